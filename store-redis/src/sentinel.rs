//! Redis behind Sentinel: the master found through the sentinels, and
//! found again after a failover.
//!
//! The store keeps one connection to the master the sentinels named. When a
//! call finds it out of reach (refused, dropped, timed out) or finds that
//! the server it reaches is now a read-only replica (`READONLY`, an old
//! master come back after a failover), it asks the sentinels again, at most
//! once per [`ASK_EVERY`], and moves to the master they name once that
//! server answers as a master. The call that failed answers its error (a
//! transient one); the next calls go to the new master. A task also asks
//! every [`WATCH_EVERY`] while the store lives, so a failover that no call
//! noticed (an old master restarted and still answering) is followed too.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::SentinelClient;

use crate::RedisStore;
use crate::connection::{Conn, ConnSlot};

/// How often, at most, the store asks the sentinels for the master.
pub(crate) const ASK_EVERY: Duration = Duration::from_millis(100);

/// How often the watching task asks, calls failing or not.
pub(crate) const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Asks the sentinels every [`WATCH_EVERY`] while the store lives.
pub(crate) async fn watch(store: std::sync::Weak<crate::Inner>) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(inner) = store.upgrade() else {
            return;
        };
        RedisStore { inner }.follow_master().await;
    }
}

/// What a store behind Sentinel keeps to follow its master.
pub(crate) struct Sentinel {
    pub(crate) client: tokio::sync::Mutex<SentinelClient>,
    pub(crate) config: ConnectionManagerConfig,
    /// When the sentinels were last asked, and the master's address then.
    pub(crate) asked: Mutex<(Option<Instant>, String)>,
}

impl RedisStore {
    /// After a call that could not reach the master or reached a replica:
    /// asks the sentinels for the master and moves to it if it changed.
    pub(crate) async fn follow_master(&self) {
        let Some(sentinel) = &self.inner.sentinel else {
            return;
        };
        {
            let mut asked = sentinel.asked.lock().unwrap_or_else(PoisonError::into_inner);
            if asked.0.is_some_and(|at| at.elapsed() < ASK_EVERY) {
                return;
            }
            asked.0 = Some(Instant::now());
        }
        // Another call is asking already.
        let Ok(mut client) = sentinel.client.try_lock() else {
            return;
        };
        let found = match tokio::time::timeout(self.inner.timeout, client.async_get_client()).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the sentinels named no reachable master yet");
                return;
            }
            Err(_) => {
                tracing::debug!("the sentinels did not answer within the timeout");
                return;
            }
        };
        let address = found.get_connection_info().addr().to_string();
        {
            let mut asked = sentinel.asked.lock().unwrap_or_else(PoisonError::into_inner);
            if asked.1 == address {
                return;
            }
            asked.1.clone_from(&address);
        }
        match ConnectionManager::new_lazy_with_config(found, sentinel.config.clone()) {
            Ok(manager) => {
                tracing::warn!(master = %address, "the sentinels name a new master; following it");
                *self.inner.conn.write().unwrap_or_else(PoisonError::into_inner) = ConnSlot {
                    conn: Conn::Single(manager),
                    since: Instant::now(),
                };
            }
            Err(e) => tracing::warn!(error = %e, "a connection to the new master could not be made"),
        }
    }
}
