//! The handle's record-level calls (what framework adapters build on), over
//! the real memory store.

use std::time::Duration;

use session_store_core::{
    Clock, Expiry, ManualClock, Record, SessionData, SessionId, SessionStore, Sessions, Timestamp,
};
use session_store_memory::MemoryStore;

const TTL: Duration = Duration::from_secs(60);

fn setup() -> (ManualClock, MemoryStore, Sessions<MemoryStore>) {
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let store = MemoryStore::builder().clock(clock.shared()).build();
    (clock.clone(), store.clone(), Sessions::new(store))
}

fn data(count: u32) -> SessionData {
    let mut data = SessionData::new();
    data.insert("count", &count).unwrap();
    data
}

#[tokio::test]
async fn create_keeps_the_given_id_and_never_overwrites_a_live_session() -> session_store_core::Result<()> {
    let (clock, store, sessions) = setup();
    let id = SessionId::random();
    let created = sessions.create_record(id, data(1), clock.now() + TTL).await?;
    assert_eq!((created.id, created.version), (id, 1));
    assert_eq!(created.created_at, clock.now(), "created now by the store's clock");
    assert_eq!(
        store.load(&id).await?,
        Some(created.clone()),
        "what is returned is what is stored"
    );

    let again = sessions.create_record(id, data(2), clock.now() + TTL).await?;
    assert_ne!(again.id, id, "a fresh id for a taken one");
    assert_eq!(store.load(&id).await?.unwrap().data.get::<u32>("count")?, Some(1));
    assert_eq!(store.load(&again.id).await?.unwrap().data.get::<u32>("count")?, Some(2));
    Ok(())
}

#[tokio::test]
async fn replace_keeps_the_created_time_and_never_revives_a_session() -> session_store_core::Result<()> {
    let (clock, store, sessions) = setup();
    let created = sessions
        .create_record(SessionId::random(), data(1), clock.now() + TTL)
        .await?;
    clock.advance(Duration::from_secs(10));
    let deadline = clock.now() + TTL;
    assert_eq!(sessions.replace_record(&created.id, data(2), deadline).await?, Some(2));
    let stored = store.load(&created.id).await?.unwrap();
    assert_eq!(stored.data.get::<u32>("count")?, Some(2));
    assert_eq!(
        (stored.created_at, stored.expires_at, stored.version),
        (created.created_at, deadline, 2)
    );

    // Deleted meanwhile (a logout): nothing is written.
    sessions.delete_record(&created.id).await?;
    assert_eq!(sessions.replace_record(&created.id, data(3), deadline).await?, None);
    assert_eq!(store.count().await?, 0);
    // Expired meanwhile: nothing is written either.
    let short = sessions
        .create_record(SessionId::random(), data(1), clock.now() + TTL)
        .await?;
    clock.advance(TTL);
    assert_eq!(
        sessions.replace_record(&short.id, data(3), clock.now() + TTL).await?,
        None
    );
    assert_eq!(store.count().await?, 0);
    // Never stored at all.
    assert_eq!(
        sessions.replace_record(&SessionId::random(), data(3), deadline).await?,
        None
    );
    Ok(())
}

#[tokio::test]
async fn a_value_that_is_not_json_is_a_damaged_record_left_alone() -> session_store_core::Result<()> {
    let (clock, store, sessions) = setup();
    let bad: SessionData = [("k".to_owned(), "{not json".to_owned())].into_iter().collect();
    let mut damaged = Record::new(bad, clock.now(), &Expiry::OnInactivity(TTL));
    store.create(&damaged).await?;
    damaged.version = 1;
    let error = damaged.check_json().unwrap_err();
    assert!(error.is_decode() && error.to_string().contains("\"k\""), "{error}");
    assert!(damaged.json_values().unwrap_err().is_decode());

    assert_eq!(sessions.load_record(&damaged.id).await?, None, "no session");
    assert_eq!(
        sessions
            .load(&damaged.id.to_string())
            .await?
            .map(|s| s.record().clone()),
        None
    );
    let converted = sessions.load_record_with(&damaged.id, |r| r.json_values()).await?;
    assert_eq!(converted, None, "a conversion's decode error is the same policy");
    assert_eq!(store.load(&damaged.id).await?, Some(damaged.clone()), "left alone");

    // A good record converts.
    let good = sessions
        .create_record(SessionId::random(), data(5), clock.now() + TTL)
        .await?;
    let values = sessions.load_record_with(&good.id, |r| r.json_values()).await?.unwrap();
    assert_eq!(values["count"], serde_json::json!(5));
    assert_eq!(sessions.load_record(&good.id).await?, Some(good));
    Ok(())
}

#[tokio::test]
async fn touch_moves_only_a_live_deadline() -> session_store_core::Result<()> {
    let (clock, store, sessions) = setup();
    let created = sessions
        .create_record(SessionId::random(), data(1), clock.now() + TTL)
        .await?;
    let later = clock.now() + TTL * 2;
    assert!(sessions.touch_record(&created.id, later).await?);
    let stored = store.load(&created.id).await?.unwrap();
    assert_eq!((stored.expires_at, stored.version), (later, 1), "data not rewritten");
    assert!(!sessions.touch_record(&SessionId::random(), later).await?);
    sessions.delete_record(&SessionId::random()).await?; // absent: no error
    Ok(())
}
