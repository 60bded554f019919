//! The background purger: runs on an interval, survives errors, stops on drop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use session_store_core::{Purger, SessionStore};

mod common;

use common::CountingStore;

#[tokio::test(start_paused = true)]
async fn purges_on_the_interval_keeps_going_after_errors_and_stops_when_dropped() {
    let store = Arc::new(CountingStore::default());
    let purger = Purger::spawn(store.clone(), Duration::from_secs(10));

    // One purge at once (a process restarted more often than the
    // interval still purges), then none until the interval has passed.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(store.purges.load(Ordering::SeqCst), 1);

    // One purge per interval, including after a failed one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.purges.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(store.purges.load(Ordering::SeqCst), 5);

    drop(purger);
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(store.purges.load(Ordering::SeqCst), 5, "a dropped purger must stop");
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
