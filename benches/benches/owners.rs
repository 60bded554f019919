//! Revoking an owner's sessions costs in proportion to that owner's
//! sessions, not to all sessions stored: one owner's 5 sessions revoked
//! among 1,000 and among 100,000 stored sessions (of other owners), on
//! every backend with an owner index.
//!
//! `cargo bench -p session-store-benches --bench owners`

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use session_store_core::{Clock, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_memory::MemoryStore;
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
    for stored in [1_000usize, 100_000] {
        let subjects: Vec<(&str, Arc<dyn SessionStore>)> = vec![
            ("memory", Arc::new(MemoryStore::builder().capacity(2 * stored).build())),
            (
                "sqlite",
                Arc::new(SqliteStore::open(dir.path().join(format!("owners-{stored}.db"))).expect("a database")),
            ),
        ];
        for (name, store) in subjects {
            rt.block_on(async {
                for i in 0..stored {
                    store.create(&record(&format!("user-{i}"))).await.expect("seed");
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
        }
    }
    group.finish();
}

criterion_group!(benches, revoke);
criterion_main!(benches);
