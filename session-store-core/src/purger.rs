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
    /// [`purge_expired`](SessionStore::purge_expired) at once and then every
    /// `every` (so a process that restarts more often than the interval
    /// still purges).
    ///
    /// Each run is one `tracing` event (target `session_store_core::purger`):
    /// `info` with the number of records removed and the time taken
    /// (`removed`, `elapsed_ms`), or `error` with the whole chain of causes
    /// when the purge failed, after which the task keeps going. One line per
    /// interval, nothing on the request path.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime, or with a zero interval.
    pub fn spawn<S: SessionStore + ?Sized + 'static>(store: Arc<S>, every: Duration) -> Self {
        assert!(!every.is_zero(), "a purge interval must be above zero");
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let started = std::time::Instant::now();
                let result = store.purge_expired().await;
                let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                match result {
                    Ok(removed) => tracing::info!(removed, elapsed_ms, "purged expired sessions"),
                    Err(error) => tracing::error!(
                        error = %error.chain(),
                        elapsed_ms,
                        "purging expired sessions failed; will retry at the next interval"
                    ),
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
