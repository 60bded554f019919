//! A background task that purges expired records at an interval.

use std::sync::Arc;
use std::time::Duration;

use crate::SessionStore;

/// Handle of a background purger; the task stops when the handle is dropped.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use session_store_core::{Purger, SessionStore};
///
/// fn start(store: Arc<dyn SessionStore>) -> Purger {
///     // Must be called inside a tokio runtime.
///     Purger::spawn(store, Duration::from_secs(60))
/// }
/// ```
#[derive(Debug)]
#[must_use = "the purger stops when its handle is dropped"]
pub struct Purger {
    task: tokio::task::JoinHandle<()>,
}

impl Purger {
    /// Spawns a task on the current tokio runtime that calls
    /// [`purge_expired`](SessionStore::purge_expired) every `every`
    /// (first after one interval). A failed purge is logged with `tracing`
    /// and the task keeps going.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime, or with a zero interval.
    pub fn spawn<S: SessionStore + ?Sized + 'static>(store: Arc<S>, every: Duration) -> Self {
        assert!(!every.is_zero(), "a purge interval must be above zero");
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match store.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "purged expired sessions"),
                    Err(error) => tracing::error!(%error, "purging expired sessions failed; will retry"),
                }
            }
        });
        Self { task }
    }

    /// Stops the task now (dropping the handle does the same).
    pub fn stop(self) {}
}

impl Drop for Purger {
    fn drop(&mut self) {
        self.task.abort();
    }
}
