//! One hot session: `n` requests of one visitor at once, each loading the
//! session and counting with `Sessions::update` (what the tower layer and
//! the counter app do), on every backend. Criterion reports the time of
//! one round of `n` concurrent requests and the requests per second
//! (`Throughput::Elements(n)`); every request must succeed and count once,
//! or the bench panics.
//!
//! `store-redis/scripts/with-redis store-postgres/scripts/with-postgres cargo bench -p session-store-benches --bench hot_session`
//! (the Redis and PostgreSQL rows need `SESSION_STORE_REDIS_URL` and
//! `SESSION_STORE_POSTGRES_URL`, private servers the scripts start;
//! without them they are left out, with a line saying so).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use session_store_core::{Committed, SessionStore, Sessions};
use session_store_file::FileStore;
use session_store_memory::MemoryStore;
use session_store_postgres::PostgresStore;
use session_store_redis::RedisStore;
use session_store_sqlite::SqliteStore;

/// Concurrent requests of the one visitor.
const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// `n` requests at once on the session `cookie`; panics unless each counts
/// once.
async fn round(sessions: &Sessions<Arc<dyn SessionStore>>, cookie: &str, n: usize) {
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (sessions, cookie) = (sessions.clone(), cookie.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut session = sessions
                .load(&cookie)
                .await
                .expect("the store answers")
                .expect("the session is live");
            let (_, committed) = sessions
                .update(&mut session, |s| {
                    let count = s.get::<u64>("count")?.unwrap_or(0) + 1;
                    s.insert("count", &count)?;
                    Ok(count)
                })
                .await
                .unwrap_or_else(|e| panic!("a request of the hot session failed: {e}"));
            assert_eq!(committed, Committed::Saved);
        }));
    }
    for task in tasks {
        task.await.expect("no request panicked");
    }
}

fn hot_session(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut subjects: Vec<(&str, Arc<dyn SessionStore>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "file",
            Arc::new(FileStore::builder(dir.path().join("hot")).open().expect("a directory")),
        ),
        (
            "sqlite",
            Arc::new(SqliteStore::open(dir.path().join("hot.db")).expect("a database")),
        ),
    ];
    match std::env::var("SESSION_STORE_REDIS_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => {
            let prefix = format!("bench-hot:{}:", session_store_core::SessionId::random().fingerprint());
            let store = rt
                .block_on(RedisStore::builder(url).prefix(prefix).build())
                .expect("the Redis server answers");
            subjects.push(("redis", Arc::new(store)));
        }
        None => eprintln!("hot_session: SESSION_STORE_REDIS_URL is not set; the Redis rows are left out"),
    }
    match std::env::var("SESSION_STORE_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(url) => {
            let table = format!("bench_hot_{}", session_store_core::SessionId::random().fingerprint());
            let store = rt
                .block_on(PostgresStore::builder(url).table(&table).build())
                .expect("the PostgreSQL server answers");
            subjects.push(("postgres", Arc::new(store)));
        }
        None => eprintln!("hot_session: SESSION_STORE_POSTGRES_URL is not set; the PostgreSQL rows are left out"),
    }
    let mut group = c.benchmark_group("hot_session");
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    for (name, store) in subjects {
        let sessions = Sessions::new(store);
        let cookie = rt.block_on(async {
            let mut session = sessions.start();
            session.insert("count", &0u64).expect("a number encodes");
            sessions.commit(&mut session).await.expect("the session is stored");
            session.id().expect("stored").to_string()
        });
        for n in CONCURRENCY {
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    let (sessions, cookie) = (sessions.clone(), cookie.clone());
                    rt.block_on(async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            round(&sessions, &cookie, n).await;
                        }
                        start.elapsed()
                    })
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, hot_session);
criterion_main!(benches);
