//! The store contract, checked against one deployment. `contract_tests!`
//! turns each function into a `#[tokio::test]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store_core::{Clock, Error, ManualClock, Record, SessionData, SessionId, SessionStore, Timestamp};
use session_store_redis::RedisStore;

use super::{Target, random_prefix};

/// Generates one `#[tokio::test]` per contract test, against `$target`
/// (an expression giving `Option<Target>`).
#[macro_export]
macro_rules! contract_tests {
    ($target:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(target) = $target else { return };
            common::suite::$name(&target).await;
        }
    )*};
}

const T0: i64 = 1_700_000_000_000;

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_millis(T0))
}

fn data(n: i64) -> SessionData {
    let mut d = SessionData::new();
    d.insert("n", &n).unwrap();
    d.insert("user", &"alice").unwrap();
    d
}

fn record(clock: &ManualClock, ttl_ms: u64, n: i64) -> Record {
    let now = clock.now();
    Record::with_deadline(SessionId::random(), data(n), now, now + Duration::from_millis(ttl_ms))
}

async fn open(target: &Target, clock: &ManualClock) -> RedisStore {
    target.open(&random_prefix(), clock.shared()).await
}

pub async fn round_trip_of_awkward_data(target: &Target) {
    let clock = clock();
    let store = open(target, &clock).await;
    let mut d = SessionData::new();
    d.insert("", &"empty key").unwrap();
    d.insert("ünïcødé 🔑", &"välue ✓ \u{0}").unwrap();
    d.insert("ints", &(i64::MIN, i64::MAX, u64::MAX, u128::MAX, i128::MIN))
        .unwrap();
    d.insert("nested", &serde_like_nested()).unwrap();
    d.insert("big", &"x".repeat(3 << 20)).unwrap();
    let mut empty = record(&clock, 60_000, 0);
    empty.data = SessionData::new();
    store.create(&empty).await.unwrap();
    assert_eq!(store.load(&empty.id).await.unwrap().unwrap().data, SessionData::new());

    let r = Record::with_deadline(
        SessionId::random(),
        d,
        Timestamp::from_millis(T0 - 123),
        Timestamp::from_millis(T0 + 60_001),
    );
    store.create(&r).await.unwrap();
    let back = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!(back.data, r.data);
    assert_eq!(back.created_at, r.created_at);
    assert_eq!(back.expires_at, r.expires_at);
    assert_eq!(back.version, 1);
    // A far-future deadline round-trips too (the TTL is capped, not overflowed).
    let far = Record::with_deadline(SessionId::random(), data(1), clock.now(), Timestamp::MAX);
    store.create(&far).await.unwrap();
    assert_eq!(store.load(&far.id).await.unwrap().unwrap().expires_at, Timestamp::MAX);
    store.clear().await.unwrap();
}

fn serde_like_nested() -> Vec<(String, Vec<Option<f64>>)> {
    vec![("a".into(), vec![Some(1.5), None, Some(-0.0)]), (String::new(), vec![])]
}

pub async fn create_never_overwrites_a_live_record(target: &Target) {
    let clock = clock();
    let store = open(target, &clock).await;
    let r = record(&clock, 1_000, 1);
    store.create(&r).await.unwrap();
    let mut other = r.clone();
    other.data = data(2);
    assert!(matches!(store.create(&other).await, Err(Error::IdCollision { id }) if id == r.id));
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().data, r.data);
    // Once expired, the id can be created again, from version 1.
    clock.advance(Duration::from_millis(1_000));
    other.expires_at = clock.now() + Duration::from_secs(5);
    store.create(&other).await.unwrap();
    let back = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!((back.data, back.version), (other.data.clone(), 1));
    let mut fresh = other.clone();
    store.create_with_fresh_id(&mut fresh).await.unwrap();
    assert_ne!(fresh.id, other.id);
    store.clear().await.unwrap();
}

pub async fn liveness_follows_the_injected_clock(target: &Target) {
    let clock = clock();
    let store = open(target, &clock).await;
    let r = record(&clock, 500, 1);
    store.create(&r).await.unwrap();
    clock.advance(Duration::from_millis(499));
    assert!(store.load(&r.id).await.unwrap().is_some(), "live at expires_at - 1");
    assert_eq!(store.count().await.unwrap(), 1);
    clock.advance(Duration::from_millis(1));
    assert!(store.load(&r.id).await.unwrap().is_none(), "expired at expires_at");
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(store.ids().await.unwrap().is_empty());
    assert!(!store.touch(&r.id, clock.now() + Duration::from_secs(60)).await.unwrap());
    assert!(store.load(&r.id).await.unwrap().is_none(), "touch never revives");
    // The clock standing still while real time passes loses nothing.
    let clock2 = ManualClock::new(Timestamp::from_millis(5_000));
    let store2 = target.open(&random_prefix(), clock2.shared()).await;
    let r2 = record(&clock2, 100, 1);
    store2.create(&r2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(store2.load(&r2.id).await.unwrap().is_some());
    store.clear().await.unwrap();
    store2.clear().await.unwrap();
}

pub async fn save_bumps_versions(target: &Target) {
    let clock = clock();
    let store = open(target, &clock).await;
    let mut r = record(&clock, 1_000, 1);
    r.version = 77; // ignored
    assert_eq!(store.save(&r).await.unwrap(), 1);
    r.data = data(2);
    assert_eq!(store.save(&r).await.unwrap(), 2);
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().data, data(2));
    clock.advance(Duration::from_millis(1_000));
    r.expires_at = clock.now() + Duration::from_secs(1);
    assert_eq!(
        store.save(&r).await.unwrap(),
        1,
        "an expired predecessor does not count"
    );
    store.clear().await.unwrap();
}

pub async fn save_if_version_is_a_compare_and_set(target: &Target) {
    let clock = clock();
    let store = open(target, &clock).await;
    let mut r = record(&clock, 10_000, 1);
    store.create(&r).await.unwrap();
    r.version = 1;
    r.data = data(2);
    assert_eq!(store.save_if_version(&r).await.unwrap(), 2);
    // Stale.
    r.data = data(3);
    assert!(store.save_if_version(&r).await.unwrap_err().is_conflict());
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().data, data(2));
    r.version = u64::MAX;
    assert!(store.save_if_version(&r).await.unwrap_err().is_conflict());
    // Deleted meanwhile: never brought back.
    r.version = 2;
    store.delete(&r.id).await.unwrap();
    assert!(store.save_if_version(&r).await.unwrap_err().is_conflict());
    assert!(store.load(&r.id).await.unwrap().is_none());
    // Expired.
    store.create(&r).await.unwrap();
    r.version = 1;
    clock.advance(Duration::from_secs(10));
    assert!(store.save_if_version(&r).await.unwrap_err().is_conflict());
    store.delete(&r.id).await.unwrap();
    store.delete(&r.id).await.unwrap(); // absent: not an error
    store.clear().await.unwrap();
}

pub async fn touch_moves_only_the_deadline(target: &Target) {
    let clock = clock();
    let store = open(target, &clock).await;
    let r = record(&clock, 1_000, 1);
    store.create(&r).await.unwrap();
    store.save(&r).await.unwrap();
    let later = clock.now() + Duration::from_secs(3_600);
    assert!(store.touch(&r.id, later).await.unwrap());
    let back = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!((back.expires_at, back.version, back.data), (later, 2, r.data.clone()));
    clock.advance(Duration::from_secs(60));
    assert!(store.load(&r.id).await.unwrap().is_some());
    assert!(!store.touch(&SessionId::random(), later).await.unwrap());
    // Touching into the past expires it.
    assert!(store.touch(&r.id, clock.now()).await.unwrap());
    assert!(store.load(&r.id).await.unwrap().is_none());
    store.clear().await.unwrap();
}

pub async fn rotate_moves_the_record(target: &Target) {
    let clock = clock();
    let store = open(target, &clock).await;
    for _ in 0..10 {
        let r = record(&clock, 5_000, 1);
        store.create(&r).await.unwrap();
        store.save(&r).await.unwrap();
        let new = SessionId::random();
        assert!(store.rotate(&r.id, &new).await.unwrap());
        assert!(store.load(&r.id).await.unwrap().is_none());
        let moved = store.load(&new).await.unwrap().unwrap();
        assert_eq!(
            (moved.data, moved.created_at, moved.expires_at, moved.version),
            (r.data.clone(), r.created_at, r.expires_at, 2)
        );
        // new == old while live: a collision.
        assert!(matches!(store.rotate(&new, &new).await, Err(Error::IdCollision { .. })));
        // onto another live id: a collision, nothing changes.
        let other = record(&clock, 5_000, 9);
        store.create(&other).await.unwrap();
        assert!(matches!(
            store.rotate(&new, &other.id).await,
            Err(Error::IdCollision { .. })
        ));
        assert_eq!(store.load(&new).await.unwrap().unwrap().data, r.data);
        assert_eq!(store.load(&other.id).await.unwrap().unwrap().data, data(9));
    }
    assert!(!store.rotate(&SessionId::random(), &SessionId::random()).await.unwrap());
    // An expired record is not moved.
    let r = record(&clock, 10, 1);
    store.create(&r).await.unwrap();
    clock.advance(Duration::from_millis(10));
    assert!(!store.rotate(&r.id, &SessionId::random()).await.unwrap());
    assert_eq!(store.rotate_to_fresh_id(&r.id).await.unwrap(), None);
    assert_eq!(store.count().await.unwrap(), 20);
    store.clear().await.unwrap();
}

pub async fn purge_count_ids_clear(target: &Target) {
    let clock = clock();
    let store = open(target, &clock).await;
    let mut live = Vec::new();
    for i in 0..2_500 {
        let r = record(&clock, if i % 5 == 0 { 10 } else { 60_000 }, i);
        store.create(&r).await.unwrap();
        if i % 5 != 0 {
            live.push(r.id);
        }
    }
    assert_eq!(store.count().await.unwrap(), 2_500);
    clock.advance(Duration::from_millis(10));
    assert_eq!(store.count().await.unwrap(), 2_000);
    let mut ids = store.ids().await.unwrap();
    ids.sort();
    live.sort();
    assert_eq!(ids, live);
    assert_eq!(store.purge_expired().await.unwrap(), 500);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert_eq!(store.count().await.unwrap(), 2_000);
    store.clear().await.unwrap();
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(store.load(&live[0]).await.unwrap().is_none());
}

pub async fn namespaces_are_isolated(target: &Target) {
    let clock = clock();
    let base = random_prefix();
    // Glob characters in a prefix are taken literally, and a prefix that is
    // a prefix of another does not see its records.
    let prefixes = [
        format!("{base}*"),
        format!("{base}?["),
        base.clone(),
        format!("{base}a"),
    ];
    let mut stores = Vec::new();
    for p in &prefixes {
        let s = target.open(p, clock.shared()).await;
        for i in 0..3 {
            s.create(&record(&clock, 60_000, i)).await.unwrap();
        }
        stores.push(s);
    }
    for s in &stores {
        assert_eq!(s.count().await.unwrap(), 3, "{s:?}");
    }
    stores[0].clear().await.unwrap();
    stores[2].purge_expired().await.unwrap();
    assert_eq!(stores[0].count().await.unwrap(), 0);
    for s in &stores[1..] {
        assert_eq!(s.count().await.unwrap(), 3, "{s:?}");
        s.clear().await.unwrap();
    }
}

pub async fn too_large_is_refused_and_nothing_written(target: &Target) {
    let clock = clock();
    let store = target
        .builder()
        .prefix(random_prefix())
        .clock(clock.shared())
        .max_record_bytes(100)
        .build()
        .await
        .unwrap();
    let mut r = record(&clock, 60_000, 1);
    r.data.insert("big", &"x".repeat(200)).unwrap();
    assert!(matches!(
        store.create(&r).await,
        Err(Error::TooLarge { limit: 100, .. })
    ));
    assert!(matches!(store.save(&r).await, Err(Error::TooLarge { .. })));
    assert!(store.load(&r.id).await.unwrap().is_none());
    let small = record(&clock, 60_000, 1);
    store.create(&small).await.unwrap();
    let mut big = small.clone();
    big.version = 1;
    big.data = r.data.clone();
    assert!(matches!(store.save_if_version(&big).await, Err(Error::TooLarge { .. })));
    assert_eq!(store.load(&small.id).await.unwrap().unwrap().data, small.data);
    store.clear().await.unwrap();
}

pub async fn garbage_is_a_decode_error_for_that_record_only(target: &Target) {
    let clock = clock();
    let store = open(target, &clock).await;
    let mut raw = target.raw().await;
    let good = record(&clock, 60_000, 1);
    store.create(&good).await.unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("d", vec![]),
        ("d", vec![0x7f, 1, 2]),
        ("d", vec![0x11, 0xff, 0xff, 0xff]),
        ("e", b"soon".to_vec()),
        ("v", b"-1".to_vec()),
    ];
    for (field, bytes) in cases {
        let r = record(&clock, 60_000, 2);
        store.create(&r).await.unwrap();
        let _: i64 = raw
            .query(redis::cmd("HSET").arg(store.key(&r.id)).arg(field).arg(&bytes))
            .await
            .unwrap();
        let err = store.load(&r.id).await.unwrap_err();
        assert!(err.is_decode(), "{field}={bytes:?}: {err}");
        assert!(err.to_string().contains(&r.id.to_string()), "{err}");
        assert!(store.load(&good.id).await.unwrap().is_some());
        store.delete(&r.id).await.unwrap();
    }
    // A key of the wrong type under our name: an error, not a panic.
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
    // It fails only its own load: the scans skip it.
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert!(store.save(&record(&clock, 1, 1)).await.is_ok());
    let _: i64 = raw.query(redis::cmd("DEL").arg(store.key(&id))).await.unwrap();
    // A truncated body keeps its id in the error.
    let body: Vec<u8> = raw
        .query(redis::cmd("HGET").arg(store.key(&good.id)).arg("d"))
        .await
        .unwrap();
    let _: i64 = raw
        .query(
            redis::cmd("HSET")
                .arg(store.key(&good.id))
                .arg("d")
                .arg(&body[..body.len() - 1]),
        )
        .await
        .unwrap();
    assert!(store.load(&good.id).await.unwrap_err().is_decode());
    store.clear().await.unwrap();
}

pub async fn the_ttl_follows_the_deadline_plus_grace(target: &Target) {
    let clock = clock();
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
    let r = record(&clock, 100_000, 1);
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
    // Expired keys vanish by themselves, without a purge.
    let quick = target
        .builder()
        .prefix(random_prefix())
        .clock(clock.shared())
        .ttl_grace(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let q = record(&clock, 50, 1);
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

pub async fn reopen_and_share(target: &Target) {
    let clock = clock();
    let prefix = random_prefix();
    let a = target.open(&prefix, clock.shared()).await;
    let r = record(&clock, 60_000, 1);
    a.create(&r).await.unwrap();
    drop(a);
    let b = target.open(&prefix, clock.shared()).await;
    let c = target.open(&prefix, clock.shared()).await;
    assert_eq!(b.load(&r.id).await.unwrap().unwrap().data, r.data);
    let mut v1 = r.clone();
    v1.version = 1;
    v1.data = data(2);
    assert_eq!(c.save_if_version(&v1).await.unwrap(), 2);
    assert!(b.save_if_version(&v1).await.unwrap_err().is_conflict());
    b.clear().await.unwrap();
    assert_eq!(c.count().await.unwrap(), 0);
}

pub async fn concurrent_conditional_saves_lose_nothing(target: &Target) {
    let clock = clock();
    let prefix = random_prefix();
    let stores = [
        target.open(&prefix, clock.shared()).await,
        target.open(&prefix, clock.shared()).await,
    ];
    let r = record(&clock, 600_000, 0);
    stores[0].create(&r).await.unwrap();
    let stores = Arc::new(stores);
    let mut tasks = Vec::new();
    for t in 0..16 {
        let stores = Arc::clone(&stores);
        let id = r.id;
        tasks.push(tokio::spawn(async move {
            let store = &stores[t % 2];
            let mut wins = 0;
            while wins < 5 {
                let mut cur = store.load(&id).await.unwrap().unwrap();
                let n: i64 = cur.data.get("n").unwrap().unwrap();
                cur.data.insert("n", &(n + 1)).unwrap();
                match store.save_if_version(&cur).await {
                    Ok(v) => {
                        assert_eq!(v, cur.version + 1);
                        wins += 1;
                    }
                    Err(e) if e.is_conflict() => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end = stores[1].load(&r.id).await.unwrap().unwrap();
    assert_eq!(end.data.get::<i64>("n").unwrap(), Some(80), "no lost update");
    assert_eq!(end.version, 81);
    stores[0].clear().await.unwrap();
}

pub async fn a_silent_server_times_out(_target: &Target) {
    // A listener that accepts and never answers: connecting must give up
    // within the timeout, with Error::Timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let err = RedisStore::builder(format!("redis://{addr}/"))
        .timeout(timeout)
        .build()
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Timeout(t) if t == timeout), "{err}");
    assert!(took < timeout * 10, "{took:?}");
    hold.abort();
    // Refused and malformed: backend errors that say so.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = RedisStore::builder(format!("redis://{closed}/"))
        .timeout(timeout)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    let err = RedisStore::builder("not a url").build().await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    if !cfg!(feature = "tls") {
        let err = RedisStore::builder("rediss://127.0.0.1:1/").build().await.unwrap_err();
        assert!(err.to_string().contains("tls"), "{err}");
    }
}
