//! `SessionStore::import`'s default (create, then one conditional save per
//! version step) on the memory store, which does not override it; the file
//! and SQLite overrides are exercised by the `session-store` command's
//! migration tests.

use std::time::Duration;

use session_store_core::{Clock, ManualClock, Record, SessionData, SessionId, SessionStore, Timestamp};
use session_store_memory::MemoryStore;

fn record(clock: &ManualClock, version: u64, n: i32) -> Record {
    let now = clock.now();
    let mut data = SessionData::new();
    data.insert("n", &n).unwrap();
    let mut r = Record::with_deadline(
        SessionId::from_u128(7),
        data,
        now - Duration::from_secs(5),
        now + Duration::from_secs(60),
    );
    r.version = version;
    r.owner = Some("alice".into());
    r
}

#[tokio::test]
async fn import_keeps_the_version_and_never_replaces_a_newer_one() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let store = MemoryStore::builder().clock(clock.shared()).build();

    let v5 = record(&clock, 5, 1);
    assert!(store.import(&v5).await.unwrap());
    assert_eq!(store.load(&v5.id).await.unwrap(), Some(v5.clone()));
    // The same version again, or an older one: nothing written.
    assert!(!store.import(&v5).await.unwrap());
    assert!(!store.import(&record(&clock, 3, 2)).await.unwrap());
    assert_eq!(store.load(&v5.id).await.unwrap(), Some(v5.clone()));
    // A newer one replaces it, with its own data and version.
    let v8 = record(&clock, 8, 3);
    assert!(store.import(&v8).await.unwrap());
    assert_eq!(store.load(&v8.id).await.unwrap(), Some(v8.clone()));
    // A record already expired, or never stored (version 0): nothing written.
    let mut expired = record(&clock, 9, 4);
    expired.expires_at = clock.now();
    assert!(!store.import(&expired).await.unwrap());
    assert!(!store.import(&record(&clock, 0, 5)).await.unwrap());
    assert_eq!(store.load(&v8.id).await.unwrap().map(|r| r.version), Some(8));
    // An expired record in the target is replaced like an absent one.
    clock.advance(Duration::from_secs(120));
    let fresh = record(&clock, 2, 6);
    assert!(store.import(&fresh).await.unwrap());
    assert_eq!(store.load(&fresh.id).await.unwrap(), Some(fresh));
}
