//! Tests of the store's internals; they need the servers that
//! `store-redis/scripts/with-redis` starts.

use std::time::Duration;

use session_store_core::{Clock, ManualClock, SessionStore};

use redis::cluster_routing::Slot;

use super::*;
use crate::scan::escape_glob;

const HOW: &str = "run the tests under `store-redis/scripts/with-redis cargo test -p session-store-redis`, \
                   which starts private Redis servers (installing redis-server when missing) and exports it";

fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let msg = format!("{var} is not set: {HOW}");
            assert!(!session_store_conformance::strict(), "{msg}");
            // Past the test harness's output capture, so the skip shows.
            let _ = std::io::Write::write_fmt(&mut std::io::stderr().lock(), format_args!("skipped: {msg}\n"));
            None
        }
    }
}

fn prefix() -> String {
    format!("sst:{}:", SessionId::random())
}

fn record(now: Timestamp, ttl_ms: u64) -> Record {
    session_store_conformance::fixtures::RecordBuilder::new(now)
        .ttl_ms(ttl_ms)
        .build()
}

async fn cluster_store(clock: &ManualClock) -> Option<RedisStore> {
    let urls = env_or_skip("SESSION_STORE_REDIS_CLUSTER_URLS")?;
    Some(
        RedisStore::cluster_builder(urls.split(','))
            .prefix(prefix())
            .clock(clock.shared())
            .build()
            .await
            .unwrap(),
    )
}

/// Two fresh ids whose keys are in different slots.
fn ids_in_two_slots(store: &RedisStore) -> (SessionId, SessionId) {
    loop {
        let (a, b) = (SessionId::random(), SessionId::random());
        if Slot::for_key(store.key(&a)) != Slot::for_key(store.key(&b)) {
            return (a, b);
        }
    }
}

#[test]
fn glob_characters_are_escaped() {
    assert_eq!(escape_glob("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
    assert_eq!(escape_glob("sst:x:"), "sst:x:");
}

#[tokio::test]
async fn a_crash_between_copy_and_delete_leaves_both_ids_valid() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let Some(store) = cluster_store(&clock).await else {
        return;
    };
    let (old, new) = ids_in_two_slots(&store);
    let mut r = record(clock.now(), 60_000);
    r.id = old;
    store.create(&r).await.unwrap();
    // The copy lands, the delete never runs (the process died in between).
    assert!(store.rotate_copy_only(&old, &new).await.unwrap());
    let at_old = store.load(&old).await.unwrap().expect("the old id stays valid");
    let at_new = store.load(&new).await.unwrap().expect("the new id holds the copy");
    assert_eq!(at_old.data, r.data);
    assert_eq!(at_new.data, r.data);
    assert_eq!((at_new.version, at_new.expires_at), (at_old.version, at_old.expires_at));
    // The copy never overwrote a live record: a second copy is refused.
    assert!(!store.rotate_copy_only(&old, &new).await.unwrap());
    // A full rotate onto the live copy is a collision and changes nothing.
    assert!(matches!(store.rotate(&old, &new).await, Err(Error::IdCollision { .. })));
    assert!(store.load(&old).await.unwrap().is_some());
    store.clear().await.unwrap();
}

#[tokio::test]
async fn cross_slot_rotate_moves_the_record() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let Some(store) = cluster_store(&clock).await else {
        return;
    };
    for _ in 0..20 {
        let (old, new) = ids_in_two_slots(&store);
        let mut r = record(clock.now(), 60_000);
        r.id = old;
        store.create(&r).await.unwrap();
        store.save(&r).await.unwrap();
        assert!(store.rotate(&old, &new).await.unwrap());
        assert!(store.load(&old).await.unwrap().is_none());
        let moved = store.load(&new).await.unwrap().unwrap();
        assert_eq!(
            (moved.data, moved.version, moved.expires_at),
            (r.data.clone(), 2, r.expires_at)
        );
        // Rotating the now-absent old id again: nothing to move.
        assert!(!store.rotate(&old, &SessionId::random()).await.unwrap());
        // Absent old onto a live new id: a collision.
        assert!(matches!(store.rotate(&old, &new).await, Err(Error::IdCollision { .. })));
    }
    assert_eq!(store.count().await.unwrap(), 20);
    store.clear().await.unwrap();
    assert_eq!(store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn expired_record_under_the_new_id_is_replaced_by_a_cross_slot_rotate() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let Some(store) = cluster_store(&clock).await else {
        return;
    };
    let (old, new) = ids_in_two_slots(&store);
    let mut stale = record(clock.now(), 10);
    stale.id = new;
    store.create(&stale).await.unwrap();
    let mut r = record(clock.now(), 60_000);
    r.id = old;
    store.create(&r).await.unwrap();
    clock.advance(Duration::from_millis(10));
    assert!(store.rotate(&old, &new).await.unwrap());
    assert_eq!(store.load(&new).await.unwrap().unwrap().expires_at, r.expires_at);
    store.clear().await.unwrap();
}
