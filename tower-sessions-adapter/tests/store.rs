//! The adapter against the in-memory backend, through tower-sessions' own
//! store trait and its `Session` type.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use session_store_core::{Clock, Expiry, ManualClock, Record, SessionData, SessionStore as _, Timestamp};
use session_store_memory::MemoryStore;
use session_store_tower_sessions::{Adapter, to_offset_date_time, to_session_id, to_tower_id};
use tower_sessions::Session;
use tower_sessions_core::session::{Id, Record as TowerRecord};
use tower_sessions_core::session_store::Error as TowerError;
use tower_sessions_core::{ExpiredDeletion as _, SessionStore, session_store};

fn setup() -> (ManualClock, Arc<MemoryStore>, Adapter<MemoryStore>) {
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let store = Arc::new(MemoryStore::builder().clock(clock.shared()).build());
    let adapter = Adapter::from_arc(Arc::clone(&store));
    (clock, store, adapter)
}

fn tower_record(clock: &ManualClock, ttl: Duration) -> TowerRecord {
    let mut data = HashMap::new();
    data.insert("count".to_owned(), json!(3));
    data.insert(
        String::new(),
        json!({"nested": [1, "two", null, u64::MAX], "é": "ünïcødé"}),
    );
    data.insert("big".to_owned(), json!(i64::MIN));
    TowerRecord {
        id: Id::default(),
        data,
        expiry_date: to_offset_date_time(clock.now() + ttl),
    }
}

#[tokio::test]
async fn create_load_save_delete_round_trip() -> session_store::Result<()> {
    let (clock, store, adapter) = setup();
    let mut record = tower_record(&clock, Duration::from_secs(60));
    let before = record.id;
    adapter.create(&mut record).await?;
    assert_eq!(record.id, before, "no collision, so the id is kept");

    let loaded = adapter.load(&record.id).await?.expect("live");
    assert_eq!(loaded, record, "data and expiry round-trip exactly");

    // The store sees the same id and the deadline, to the millisecond.
    let ours = store.load(&to_session_id(record.id)).await.unwrap().expect("same id");
    assert_eq!(ours.expires_at, clock.now() + Duration::from_secs(60));
    assert_eq!(ours.data.get::<u32>("count").unwrap(), Some(3));

    record.data.insert("count".to_owned(), json!(4));
    adapter.save(&record).await?;
    let loaded = adapter.load(&record.id).await?.expect("live");
    assert_eq!(loaded.data["count"], json!(4));

    adapter.delete(&record.id).await?;
    assert_eq!(adapter.load(&record.id).await?, None);
    adapter.delete(&record.id).await?; // deleting an absent id is fine
    Ok(())
}

#[tokio::test]
async fn create_never_overwrites_a_live_session() -> session_store::Result<()> {
    let (clock, store, adapter) = setup();
    // A live record already holds the id tower-sessions drew.
    let mut existing = SessionData::new();
    existing.insert("owner", &"first").unwrap();
    let first = Record::new(existing, clock.now(), &Expiry::OnInactivity(Duration::from_secs(60)));
    store.create(&first).await.unwrap();

    let mut record = tower_record(&clock, Duration::from_secs(60));
    record.id = to_tower_id(first.id);
    adapter.create(&mut record).await?;
    assert_ne!(record.id, to_tower_id(first.id), "a fresh id was drawn");

    let kept = adapter.load(&to_tower_id(first.id)).await?.expect("first is untouched");
    assert_eq!(kept.data["owner"], json!("first"));
    let created = adapter.load(&record.id).await?.expect("stored under the new id");
    assert_eq!(created.data["count"], json!(3));
    Ok(())
}

#[tokio::test]
async fn liveness_follows_the_store_clock() -> session_store::Result<()> {
    let (clock, store, adapter) = setup();
    let mut record = tower_record(&clock, Duration::from_millis(500));
    adapter.create(&mut record).await?;
    clock.advance(Duration::from_millis(499));
    assert!(adapter.load(&record.id).await?.is_some());
    clock.advance(Duration::from_millis(1));
    assert_eq!(adapter.load(&record.id).await?, None, "expired at now == deadline");
    assert_eq!(store.count().await.unwrap(), 0);
    // tower-sessions' deletion hook purges the store.
    let mut live = tower_record(&clock, Duration::from_secs(60));
    adapter.create(&mut live).await?;
    adapter.delete_expired().await?;
    assert_eq!(
        store.purge_expired().await.unwrap(),
        0,
        "the expired record was purged already"
    );
    assert!(adapter.load(&live.id).await?.is_some(), "live records stay");
    Ok(())
}

#[tokio::test]
async fn errors_map_to_tower_errors() {
    let clock = ManualClock::at_system_time();
    let store = MemoryStore::builder()
        .clock(clock.shared())
        .max_record_bytes(16)
        .build();
    let adapter = Adapter::new(store);
    let mut record = tower_record(&clock, Duration::from_secs(60));
    match adapter.create(&mut record).await {
        Err(TowerError::Encode(message)) => assert!(message.contains("16"), "{message}"),
        other => panic!("expected an Encode error for an oversized record, got {other:?}"),
    }
    assert_eq!(adapter.load(&record.id).await.unwrap(), None, "nothing was written");
}

#[tokio::test]
async fn a_value_that_is_not_json_is_a_session_that_is_gone() {
    let (clock, store, adapter) = setup();
    let data: SessionData = [("k".to_owned(), "{not json".to_owned())].into_iter().collect();
    let record = Record::new(data, clock.now(), &Expiry::default());
    store.create(&record).await.unwrap();
    assert_eq!(
        adapter.load(&to_tower_id(record.id)).await.unwrap(),
        None,
        "undecodable: no session, so tower-sessions starts a fresh one"
    );
    assert!(
        store.load(&record.id).await.unwrap().is_some(),
        "the record itself is left alone"
    );
}

#[tokio::test]
async fn session_cycle_id_keeps_data_and_retires_the_old_id() -> Result<(), tower_sessions::session::Error> {
    let (_clock, _store, adapter) = setup();
    let store = Arc::new(adapter);
    let session = Session::new(None, Arc::clone(&store), None);
    session.insert("count", 7).await?;
    session.save().await?;
    let old = session.id().expect("saved");

    let session = Session::new(Some(old), Arc::clone(&store), None);
    session.cycle_id().await?;
    session.save().await?;
    let new = session.id().expect("saved under a new id");
    assert_ne!(new, old);

    assert!(store.load(&old).await.unwrap().is_none(), "the old id no longer loads");
    let session = Session::new(Some(new), Arc::clone(&store), None);
    assert_eq!(session.get::<u32>("count").await?, Some(7));

    session.flush().await?;
    assert!(store.load(&new).await.unwrap().is_none(), "flush deletes");
    Ok(())
}

#[tokio::test]
async fn a_late_save_never_revives_a_deleted_session_and_keeps_the_created_time() -> session_store::Result<()> {
    let (clock, store, adapter) = setup();
    let mut record = tower_record(&clock, Duration::from_secs(60));
    adapter.create(&mut record).await?;
    let created_at = store.load(&to_session_id(record.id)).await.unwrap().unwrap().created_at;
    assert_eq!(created_at, clock.now(), "stamped by the store's clock");

    clock.advance(Duration::from_secs(5));
    record.data.insert("count".to_owned(), json!(4));
    record.expiry_date = to_offset_date_time(clock.now() + Duration::from_secs(60));
    adapter.save(&record).await?;
    let stored = store.load(&to_session_id(record.id)).await.unwrap().unwrap();
    assert_eq!(stored.created_at, created_at, "a save keeps the created time");
    assert_eq!(stored.version, 2);

    // A logout deletes it while a slow request still holds the record.
    adapter.delete(&record.id).await?;
    record.data.insert("count".to_owned(), json!(5));
    adapter.save(&record).await?;
    assert_eq!(adapter.load(&record.id).await?, None, "nothing was written");
    assert_eq!(store.count().await.unwrap(), 0);
    Ok(())
}
