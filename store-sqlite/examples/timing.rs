//! A quick timing of the SQLite store (not a benchmark: the criterion
//! benchmarks live in the `benches` crate): single-task latency of load,
//! save and create, and a 32-task 90/10 load/save mix, for each way of
//! running the blocking calls ([`Blocking::Auto`]: loads and saves on the
//! calling thread when they need not wait, the rest under `block_in_place`;
//! [`Blocking::InPlace`]: everything under `block_in_place`;
//! [`Blocking::SpawnBlocking`]).
//!
//! `cargo run --release -p session-store-sqlite --example timing [-- --purge]`
//! (with `--purge`, `PURGE_BATCH` sets the first batch and `PURGE_BATCH_MS`
//! the time each batch aims at; 0 keeps fixed batches)

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store_core::{Clock, ManualClock, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_sqlite::{Blocking, SqliteStore};

const N: usize = 20_000;

fn record() -> Record {
    let mut data = SessionData::new();
    data.insert("user_id", &123_456u64).unwrap();
    data.insert("name", &"Alice Example").unwrap();
    data.insert("roles", &["admin", "editor"]).unwrap();
    data.insert("csrf", &"x".repeat(64)).unwrap();
    data.insert("cart", &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let now = SystemClock.now();
    Record::with_deadline(SessionId::random(), data, now, now + Duration::from_secs(3600))
}

fn per_op(start: Instant, n: usize) -> String {
    format!("{:>8.2} µs", start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

async fn run(store: Arc<SqliteStore>) -> String {
    let proto = record();
    let mut ids = Vec::new();
    for _ in 0..1_000 {
        let mut r = proto.clone();
        r.id = SessionId::random();
        store.create(&r).await.unwrap();
        ids.push(r.id);
    }
    let start = Instant::now();
    for i in 0..N {
        store.load(&ids[i % ids.len()]).await.unwrap().unwrap();
    }
    let hit = per_op(start, N);
    let start = Instant::now();
    for _ in 0..N {
        assert!(store.load(&SessionId::random()).await.unwrap().is_none());
    }
    let miss = per_op(start, N);
    let mut r = proto.clone();
    r.id = ids[0];
    let start = Instant::now();
    for _ in 0..N / 4 {
        store.save(&r).await.unwrap();
    }
    let save = per_op(start, N / 4);
    let start = Instant::now();
    for _ in 0..N / 4 {
        let mut r = proto.clone();
        r.id = SessionId::random();
        store.create(&r).await.unwrap();
    }
    let create = per_op(start, N / 4);
    // 32 tasks, 90% loads and 10% saves.
    let ids = Arc::new(ids);
    let start = Instant::now();
    let per_task = N / 8;
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let (store, ids, proto) = (store.clone(), ids.clone(), proto.clone());
            tokio::spawn(async move {
                for i in 0..per_task {
                    let id = ids[(i * 31 + t) % ids.len()];
                    if i % 10 == 0 {
                        let mut r = proto.clone();
                        r.id = id;
                        store.save(&r).await.unwrap();
                    } else {
                        store.load(&id).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mix = (32 * per_task) as f64 / start.elapsed().as_secs_f64();
    format!("load hit {hit} | load miss {miss} | save {save} | create {create} | 32-task mix {mix:>8.0} ops/s")
}

/// Purging 50,000 expired records of 100,000.
async fn purge(path: &std::path::Path) -> String {
    let clock = ManualClock::at_system_time();
    let batch: usize = std::env::var("PURGE_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(1_000);
    let batch_time = std::env::var("PURGE_BATCH_MS")
        .ok()
        .and_then(|b| b.parse().ok())
        .map_or(session_store_sqlite::DEFAULT_PURGE_BATCH_TIME, Duration::from_millis);
    let store = SqliteStore::builder(path)
        .clock(clock.shared())
        .purge_batch(batch)
        .purge_batch_time(batch_time)
        .open()
        .unwrap();
    let proto = record();
    for i in 0..100_000u64 {
        let mut r = proto.clone();
        r.id = SessionId::random();
        r.expires_at = clock.now() + Duration::from_millis(if i % 2 == 0 { 10 } else { 3_600_000 });
        store.create(&r).await.unwrap();
    }
    clock.advance(Duration::from_millis(10));
    let start = Instant::now();
    let removed = store.purge_expired().await.unwrap();
    assert_eq!(removed, 50_000);
    format!(
        "purge of {removed} expired among 100,000 in batches from {batch} rows, {batch_time:?} each: {:?}",
        start.elapsed()
    )
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    if std::env::args().any(|a| a == "--purge") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        println!("{}", rt.block_on(purge(&dir.path().join("purge.db"))));
        return;
    }
    for round in 0..3 {
        for (name, blocking) in [
            ("auto", Blocking::Auto),
            ("block_in_place", Blocking::InPlace),
            ("spawn_blocking", Blocking::SpawnBlocking),
        ] {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            let path = dir.path().join(format!("{name}-{round}.db"));
            let store = Arc::new(SqliteStore::builder(&path).blocking(blocking).open().unwrap());
            let line = rt.block_on(run(store));
            println!("round {round} {name:<15} {line}");
        }
    }
}
