//! What only the Redis store has, against a single server
//! (`SESSION_STORE_REDIS_URL`) and a three-master cluster
//! (`SESSION_STORE_REDIS_CLUSTER_URLS`): its key prefixes taken literally by
//! `SCAN MATCH`, its hash fields beside the blob, and its TTLs. The store
//! contract itself is checked by the conformance suite
//! (`tests/conformance.rs`, `tests/conformance_cluster.rs`).

mod common;

use std::time::Duration;

use common::{Target, random_prefix};
use session_store_conformance::fixtures::{RecordBuilder, start_clock};
use session_store_core::{Clock, Record, SessionId, SessionStore, Timestamp};

/// One `#[tokio::test]` per deployment for each function below.
macro_rules! on_single_and_cluster {
    ($($name:ident),* $(,)?) => {
        mod single {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(target) = super::Target::single() {
                        super::$name(&target).await;
                    }
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(target) = super::Target::cluster() {
                        super::$name(&target).await;
                    }
                }
            )*
        }
    };
}

on_single_and_cluster!(
    glob_characters_in_a_prefix_are_literal,
    a_hash_field_that_does_not_decode_fails_that_record_only,
    the_ttl_follows_the_deadline_plus_grace,
);

fn record(now: Timestamp, ttl_ms: u64, n: i64) -> Record {
    RecordBuilder::new(now).ttl_ms(ttl_ms).n(n).build()
}

/// Prefixes holding glob characters, and a prefix that is a prefix of
/// another, each see only their own keys in the SCANs behind count, purge
/// and clear.
async fn glob_characters_in_a_prefix_are_literal(target: &Target) {
    let clock = start_clock();
    let base = random_prefix();
    let prefixes = [
        format!("{base}*"),
        format!("{base}?["),
        format!("{base}\\]^-"),
        base.clone(),
        format!("{base}a"),
    ];
    let mut stores = Vec::new();
    for p in &prefixes {
        let s = target.open(p, clock.shared()).await;
        for i in 0..3 {
            s.create(&record(clock.now(), 60_000, i)).await.unwrap();
        }
        s.create(&record(clock.now(), 10, 9)).await.unwrap();
        stores.push(s);
    }
    clock.advance(Duration::from_millis(10));
    for s in &stores {
        assert_eq!(s.count().await.unwrap(), 3, "{s:?}");
        assert_eq!(s.ids().await.unwrap().len(), 3, "{s:?}");
    }
    stores[0].clear().await.unwrap();
    assert_eq!(stores[3].purge_expired().await.unwrap(), 1);
    assert_eq!(stores[0].count().await.unwrap(), 0);
    for s in &stores[1..] {
        assert_eq!(s.count().await.unwrap(), 3, "{s:?}");
    }
    for (i, s) in stores.iter().enumerate().skip(1) {
        let left = if i == 3 { 0 } else { 1 };
        assert_eq!(s.purge_expired().await.unwrap(), left, "{s:?}");
        s.clear().await.unwrap();
    }
}

/// The fields beside the blob (`e` the deadline, `v` the version) and an
/// empty or foreign blob: a decode error naming the record, for its load
/// only; a key of the wrong type under our name: an error for its load, and
/// skipped by count and purge.
async fn a_hash_field_that_does_not_decode_fails_that_record_only(target: &Target) {
    let clock = start_clock();
    let prefix = random_prefix();
    let store = target.open(&prefix, clock.shared()).await;
    let mut raw = target.raw().await;
    let good = record(clock.now(), 60_000, 1);
    store.create(&good).await.unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("d", vec![]),
        ("d", vec![0x7f, 1, 2]),
        ("d", vec![0x11, 0xff, 0xff, 0xff]),
        ("e", b"soon".to_vec()),
        ("v", b"-1".to_vec()),
    ];
    for (field, bytes) in cases {
        let r = record(clock.now(), 60_000, 2);
        store.create(&r).await.unwrap();
        let _: i64 = raw
            .query(redis::cmd("HSET").arg(store.key(&r.id)).arg(field).arg(&bytes))
            .await
            .unwrap();
        let err = store.load(&r.id).await.unwrap_err();
        assert!(err.is_decode(), "{field}={bytes:?}: {err}");
        assert!(err.to_string().contains(&r.id.fingerprint().to_string()), "{err}");
        assert!(!err.to_string().contains(&r.id.to_string()), "never the id: {err}");
        assert!(store.load(&good.id).await.unwrap().is_some());
        store.delete(&r.id).await.unwrap();
    }
    let id = SessionId::random();
    let _: () = raw
        .query(
            redis::cmd("SET")
                .arg(store.key(&id))
                .arg("not a hash")
                .arg("PX")
                .arg(60_000),
        )
        .await
        .unwrap();
    assert!(store.load(&id).await.is_err());
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    let _: i64 = raw.query(redis::cmd("DEL").arg(store.key(&id))).await.unwrap();
    store.clear().await.unwrap();
}

/// The key's TTL is the deadline minus the injected clock's now, plus the
/// grace, on create and touch; a key whose TTL ran out vanishes without a
/// purge.
async fn the_ttl_follows_the_deadline_plus_grace(target: &Target) {
    let clock = start_clock();
    let grace = Duration::from_secs(30);
    let store = target
        .builder()
        .prefix(random_prefix())
        .clock(clock.shared())
        .ttl_grace(grace)
        .build()
        .await
        .unwrap();
    let mut raw = target.raw().await;
    let r = record(clock.now(), 100_000, 1);
    store.create(&r).await.unwrap();
    let pttl: i64 = raw.query(redis::cmd("PTTL").arg(store.key(&r.id))).await.unwrap();
    assert!((129_000..=130_000).contains(&pttl), "{pttl}");
    assert!(
        store
            .touch(&r.id, clock.now() + Duration::from_secs(1_000))
            .await
            .unwrap()
    );
    let pttl: i64 = raw.query(redis::cmd("PTTL").arg(store.key(&r.id))).await.unwrap();
    assert!((1_029_000..=1_030_000).contains(&pttl), "{pttl}");
    let quick = target
        .builder()
        .prefix(random_prefix())
        .clock(clock.shared())
        .ttl_grace(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let q = record(clock.now(), 50, 1);
    quick.create(&q).await.unwrap();
    let mut gone = false;
    for _ in 0..100 {
        let exists: i64 = raw.query(redis::cmd("EXISTS").arg(quick.key(&q.id))).await.unwrap();
        if exists == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the key outlived its TTL");
    assert_eq!(quick.purge_expired().await.unwrap(), 0);
    store.clear().await.unwrap();
}
