//! The background purger: runs on an interval, survives errors, stops on drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use session_store_core::{Error, Purger, Record, Result, SessionId, SessionStore, Timestamp, async_trait};

/// A store that only counts purge calls; every other call is unused here.
/// Every second purge fails, to show the purger keeps going.
#[derive(Debug, Default)]
struct CountingStore {
    purges: AtomicU64,
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn create(&self, _: &Record) -> Result<()> {
        Ok(())
    }
    async fn load(&self, _: &SessionId) -> Result<Option<Record>> {
        Ok(None)
    }
    async fn save(&self, _: &Record) -> Result<u64> {
        Ok(1)
    }
    async fn save_if_version(&self, r: &Record) -> Result<u64> {
        Err(Error::Conflict {
            id: r.id,
            expected: r.version,
        })
    }
    async fn touch(&self, _: &SessionId, _: Timestamp) -> Result<bool> {
        Ok(false)
    }
    async fn delete(&self, _: &SessionId) -> Result<()> {
        Ok(())
    }
    async fn rotate(&self, _: &SessionId, _: &SessionId) -> Result<bool> {
        Ok(false)
    }
    async fn purge_expired(&self) -> Result<u64> {
        let n = self.purges.fetch_add(1, Ordering::SeqCst) + 1;
        if n.is_multiple_of(2) {
            Err(Error::backend_msg("disk on fire"))
        } else {
            Ok(n)
        }
    }
    async fn ids(&self) -> Result<Vec<SessionId>> {
        Ok(Vec::new())
    }
    async fn clear(&self) -> Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn purges_on_the_interval_keeps_going_after_errors_and_stops_when_dropped() {
    let store = Arc::new(CountingStore::default());
    let purger = Purger::spawn(store.clone(), Duration::from_secs(10));

    // Nothing before the first interval has passed.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(store.purges.load(Ordering::SeqCst), 0);

    // One purge per interval, including after a failed one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.purges.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(store.purges.load(Ordering::SeqCst), 4);

    drop(purger);
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(store.purges.load(Ordering::SeqCst), 4, "a dropped purger must stop");
    // The task released its handle on the store.
    assert_eq!(Arc::strong_count(&store), 1);
}

#[tokio::test(start_paused = true)]
async fn works_with_a_trait_object() {
    let store: Arc<dyn SessionStore> = Arc::new(CountingStore::default());
    let purger = Purger::spawn(store.clone(), Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(26)).await;
    purger.stop();
    assert_eq!(store.count().await.unwrap(), 0);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

#[tokio::test(start_paused = true)]
async fn each_purge_logs_its_result() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test runtime has one thread, which also runs the purger's task.
    let _guard = tracing::subscriber::set_default(subscriber);
    let store = Arc::new(CountingStore::default());
    let purger = Purger::spawn(store.clone(), Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(21)).await;
    drop(purger);
    let text = captured.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one event per purge: {text}");
    // The first purge removed 1 (the counting store's answer), the second failed.
    assert!(
        lines[0].contains(" INFO ") && lines[0].contains("purged expired sessions"),
        "{text}"
    );
    assert!(
        lines[0].contains("removed=1") && lines[0].contains("elapsed_ms="),
        "{text}"
    );
    assert!(
        lines[1].contains(" ERROR ") && lines[1].contains("disk on fire"),
        "{text}"
    );
}
