//! The purger's log lines. A test binary of its own: `tracing` caches
//! whether a call site is enabled across threads, so a test that sets a
//! thread-local subscriber while other tests of the same binary run the
//! purger without one sees some events disabled.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::CountingStore;
use session_store_core::Purger;

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
    // A purge at once and one after the interval.
    tokio::time::sleep(Duration::from_secs(11)).await;
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
