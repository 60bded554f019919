//! Revoking an owner's sessions costs in proportion to that owner's
//! sessions, not to all sessions stored: one owner's 5 sessions revoked
//! among 1,000 and among 100,000 stored sessions (of other owners), on
//! every backend with an owner index.
//!
//! `store-redis/scripts/with-redis cargo bench -p session-store-benches --bench owners`
//! (the Redis rows need `SESSION_STORE_REDIS_URL`, a private server the
//! script starts; without it they are left out, with a line saying so).
//! The file store is seeded without fsync (`Durability::NoSync`): seeding
//! 100,000 files with it would take minutes and measure nothing more.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use session_store_core::{Clock, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_file::{Durability, FileStore};
use session_store_memory::MemoryStore;
use session_store_redis::RedisStore;
use session_store_sqlite::SqliteStore;

const OWNED: usize = 5;

fn record(owner: &str) -> Record {
    let mut data = SessionData::new();
    data.insert("user", &owner).expect("a string encodes");
    let now = SystemClock.now();
    let mut r = Record::with_deadline(SessionId::random(), data, now, now + Duration::from_secs(3_600));
    r.owner = Some(owner.to_owned());
    r
}

fn revoke(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut group = c.benchmark_group("revoke_owner");
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    let redis_url = std::env::var("SESSION_STORE_REDIS_URL").ok().filter(|u| !u.is_empty());
    if redis_url.is_none() {
        eprintln!(
            "owners: SESSION_STORE_REDIS_URL is not set; the Redis rows are left out (run under store-redis/scripts/with-redis)"
        );
    }
    for stored in [1_000usize, 100_000] {
        let mut subjects: Vec<(&str, Arc<dyn SessionStore>)> = vec![
            ("memory", Arc::new(MemoryStore::builder().capacity(2 * stored).build())),
            (
                "sqlite",
                Arc::new(SqliteStore::open(dir.path().join(format!("owners-{stored}.db"))).expect("a database")),
            ),
            (
                "file",
                Arc::new(
                    FileStore::builder(dir.path().join(format!("owners-{stored}")))
                        .durability(Durability::NoSync)
                        .open()
                        .expect("a directory"),
                ),
            ),
        ];
        if let Some(url) = &redis_url {
            let store = rt
                .block_on(
                    RedisStore::builder(url.clone())
                        .prefix(format!("bench-owners:{}:", SessionId::random()))
                        .build(),
                )
                .expect("the Redis server answers");
            subjects.push(("redis", Arc::new(store)));
        }
        for (name, store) in subjects {
            rt.block_on(async {
                // Eight writers at a time: seeding is not what is measured.
                let mut tasks = Vec::new();
                for w in 0..8 {
                    let store = Arc::clone(&store);
                    tasks.push(tokio::spawn(async move {
                        for i in (w..stored).step_by(8) {
                            store.create(&record(&format!("user-{i}"))).await.expect("seed");
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("a seeding task");
                }
            });
            group.bench_with_input(BenchmarkId::new(name, stored), &stored, |b, _| {
                b.iter_batched(
                    || {
                        rt.block_on(async {
                            for _ in 0..OWNED {
                                store.create(&record("target")).await.expect("a login");
                            }
                        });
                    },
                    |()| {
                        let removed = rt
                            .block_on(store.delete_owner_sessions("target", None))
                            .expect("revoke");
                        assert_eq!(removed, OWNED as u64);
                    },
                    BatchSize::PerIteration,
                );
            });
            // Leave nothing behind on the shared server.
            rt.block_on(store.clear()).expect("clear");
        }
    }
    group.finish();
}

criterion_group!(benches, revoke);
criterion_main!(benches);
