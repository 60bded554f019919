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
    the_owner_set_follows_writes_and_outlives_its_records,
    stale_owner_entries_are_filtered_by_reads_and_dropped_by_purge,
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
        assert_eq!(
            s.ids()
                .await
                .unwrap()
                .into_iter()
                .map(|h| h.stored())
                .collect::<Vec<_>>()
                .len(),
            3,
            "{s:?}"
        );
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

fn owned(now: Timestamp, ttl_ms: u64, owner: &str) -> Record {
    let mut r = record(now, ttl_ms, 1);
    r.owner = Some(owner.to_owned());
    r
}

async fn members(raw: &mut common::Raw, set: &str) -> Vec<SessionId> {
    let members: Vec<String> = raw.query(redis::cmd("SMEMBERS").arg(set)).await.unwrap();
    let mut ids: Vec<SessionId> = members.iter().map(|m| m.parse().unwrap()).collect();
    ids.sort();
    ids
}

async fn pttl(raw: &mut common::Raw, key: &str) -> i64 {
    raw.query(redis::cmd("PTTL").arg(key)).await.unwrap()
}

fn sorted(mut ids: Vec<SessionId>) -> Vec<SessionId> {
    ids.sort();
    ids
}

/// An owner's set holds the ids of its records, named by each record's `o`
/// field; its TTL is never shorter than any of its records' (after a
/// create, a save and a touch that moves a deadline out); on a single
/// server an owner change, a rotate and a delete move or drop the entry in
/// the same step, and `clear` removes the sets too.
async fn the_owner_set_follows_writes_and_outlives_its_records(target: &Target) {
    let clock = start_clock();
    let store = target.open(&random_prefix(), clock.shared()).await;
    let single = matches!(target, Target::Single(_));
    let mut raw = target.raw().await;
    let (alice, bob) = (store.owner_set("alice"), store.owner_set("bob"));
    let a1 = owned(clock.now(), 60_000, "alice");
    let mut a2 = owned(clock.now(), 600_000, "alice");
    store.create(&a1).await.unwrap();
    a2.version = store.save(&a2).await.unwrap();
    assert_eq!(members(&mut raw, &alice).await, sorted(vec![a1.id, a2.id]));
    let o: String = raw
        .query(redis::cmd("HGET").arg(store.key(&a1.id)).arg("o"))
        .await
        .unwrap();
    assert_eq!(o, alice);
    assert!(pttl(&mut raw, &alice).await >= pttl(&mut raw, &store.key(&a2.id)).await);
    assert!(
        store
            .touch(&a1.id, clock.now() + Duration::from_secs(10_000))
            .await
            .unwrap()
    );
    assert!(pttl(&mut raw, &alice).await >= pttl(&mut raw, &store.key(&a1.id)).await);

    // a2 moves to bob; then a1 rotates, then a2 is deleted.
    a2.owner = Some("bob".into());
    store.save_if_version(&a2).await.unwrap();
    assert_eq!(members(&mut raw, &bob).await, vec![a2.id]);
    let rotated = SessionId::random();
    assert!(store.rotate(&a1.id, &rotated).await.unwrap());
    assert!(members(&mut raw, &alice).await.contains(&rotated));
    store.delete(&a2.id).await.unwrap();
    if single {
        assert_eq!(members(&mut raw, &alice).await, vec![rotated], "exact on one server");
        assert!(members(&mut raw, &bob).await.is_empty(), "exact on one server");
    }
    assert_eq!(
        store
            .owner_sessions("alice")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>(),
        vec![rotated]
    );
    assert!(
        store
            .owner_sessions("bob")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>()
            .is_empty()
    );
    store.clear().await.unwrap();
    let exists: i64 = raw.query(redis::cmd("EXISTS").arg(&alice)).await.unwrap();
    assert_eq!(exists, 0, "clear removes the owner sets");
}

/// Entries whose record Redis dropped by itself (its TTL), that are not
/// ids, or whose record names another set, are never listed, not counted
/// by a revoke, and dropped by purge; a record whose `o` field was
/// rewritten to name a foreign key never makes the store touch that key.
async fn stale_owner_entries_are_filtered_by_reads_and_dropped_by_purge(target: &Target) {
    let clock = start_clock();
    let prefix = random_prefix();
    let store = target.open(&prefix, clock.shared()).await;
    let mut raw = target.raw().await;
    let set = store.owner_set("carol");
    let live = owned(clock.now(), 60_000, "carol");
    let vanished = owned(clock.now(), 60_000, "carol");
    let foreign = owned(clock.now(), 60_000, "carol");
    for r in [&live, &vanished, &foreign] {
        store.create(r).await.unwrap();
    }
    // What Redis's own expiry does: the key goes, the set stays.
    let _: i64 = raw.query(redis::cmd("DEL").arg(store.key(&vanished.id))).await.unwrap();
    let _: i64 = raw.query(redis::cmd("SADD").arg(&set).arg("not an id")).await.unwrap();
    // A record whose `o` names a key of someone else's (same slot as the
    // record, so a cluster would let a script reach it).
    let decoy = format!("{prefix}decoy{{{}}}", foreign.id);
    let _: () = raw.query(redis::cmd("SET").arg(&decoy).arg("keep me")).await.unwrap();
    let _: i64 = raw
        .query(redis::cmd("HSET").arg(store.key(&foreign.id)).arg("o").arg(&decoy))
        .await
        .unwrap();
    assert_eq!(
        store
            .owner_sessions("carol")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>(),
        vec![live.id]
    );
    store.delete(&foreign.id).await.unwrap();
    let kept: String = raw.query(redis::cmd("GET").arg(&decoy)).await.unwrap();
    assert_eq!(kept, "keep me");

    let again = owned(clock.now(), 60_000, "carol");
    store.create(&again).await.unwrap();
    let _: i64 = raw.query(redis::cmd("DEL").arg(store.key(&again.id))).await.unwrap();
    let _: i64 = raw
        .query(redis::cmd("SADD").arg(&set).arg("still not an id"))
        .await
        .unwrap();
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert_eq!(
        members(&mut raw, &set).await,
        vec![live.id],
        "purge drops every stale entry"
    );
    assert_eq!(store.delete_owner_sessions("carol", None).await.unwrap(), 1);
    assert!(
        store
            .owner_sessions("carol")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>()
            .is_empty()
    );
    let _: i64 = raw.query(redis::cmd("DEL").arg(&decoy)).await.unwrap();
    store.clear().await.unwrap();
}
