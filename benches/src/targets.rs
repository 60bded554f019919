//! Every subject of the comparison, built from the environment.

#[cfg(feature = "stores")]
use session_store_core::SessionId;
#[cfg(feature = "stores")]
use session_store_file::{Durability, FileStore};
#[cfg(feature = "stores")]
use session_store_memory::MemoryStore;
#[cfg(feature = "stores")]
use session_store_postgres::PostgresStore;
#[cfg(feature = "stores")]
use session_store_redis::RedisStore;
#[cfg(feature = "stores")]
use session_store_sqlite::SqliteStore;

#[cfg(feature = "stores")]
use crate::floors::{FILE_PURGE_POPULATION, FileFloor, HashMapFloor, PostgresFloor, RedisFloor, SqliteFloor};
#[cfg(feature = "stores")]
use crate::ours::Ours;
use crate::subject::BenchResult;
#[cfg(feature = "stores")]
use crate::workloads::{Runner, Target};

/// The variable naming the Redis server the Redis rows run against
/// (`scripts/bench` starts a private one and sets it).
pub const REDIS_URL_VAR: &str = "SESSION_STORE_REDIS_URL";

/// The variable naming the PostgreSQL server the PostgreSQL rows run
/// against (`scripts/bench` starts a private one and sets it).
pub const POSTGRES_URL_VAR: &str = "SESSION_STORE_POSTGRES_URL";

/// Connections of each PostgreSQL subject: our store's pool, the peer's
/// pool and the floor's fixed set alike.
pub const POSTGRES_CONNECTIONS: usize = 8;

/// The subject names, in report order: each medium's store, its peer (when
/// there is one) and its floor.
pub const NAMES: [&str; 14] = [
    "memory",
    "memory-peer",
    "memory-floor",
    "file",
    "file-floor",
    "sqlite",
    "sqlite-peer",
    "sqlite-floor",
    "redis",
    "redis-peer",
    "redis-floor",
    "postgres",
    "postgres-peer",
    "postgres-floor",
];

/// A fresh temporary directory for one subject's files.
///
/// # Errors
///
/// When the directory cannot be made.
pub fn temp_dir(name: &str) -> BenchResult<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("session-store-bench-{name}-"))
        .tempdir()?)
}

/// Builds every subject this build and environment allow: ours and the
/// floors always, the peers with the `peers` feature, the Redis rows when
/// [`REDIS_URL_VAR`] is set, the PostgreSQL rows when [`POSTGRES_URL_VAR`] is. Says on stderr what it left out and why.
///
/// # Errors
///
/// When a store cannot be opened or a Redis server named by
/// [`REDIS_URL_VAR`] cannot be reached.
#[cfg(feature = "stores")]
pub async fn all() -> BenchResult<Vec<Box<dyn Runner>>> {
    let mut runners: Vec<Box<dyn Runner>> = Vec::new();

    runners.push(Box::new(Target::new(
        "memory",
        Ours::new(std::sync::Arc::new(MemoryStore::new())),
    )));
    #[cfg(feature = "peers")]
    runners.push(Box::new(Target::new("memory-peer", crate::peers::TowerMemory::new())));
    runners.push(Box::new(Target::new("memory-floor", HashMapFloor::new())));

    let dir = temp_dir("file")?;
    let store = FileStore::open(dir.path().join("sessions"))?;
    // Records set up before the clock starts are written without fsync.
    let seeder = FileStore::builder(dir.path().join("sessions"))
        .durability(Durability::NoSync)
        .open()?;
    let ours = Ours::new(std::sync::Arc::new(store))
        .with_seeder(std::sync::Arc::new(seeder))
        .with_purge_population(FILE_PURGE_POPULATION);
    runners.push(Box::new(Target::new("file", ours).keeping(dir)));
    let dir = temp_dir("file-floor")?;
    runners.push(Box::new(
        Target::new("file-floor", FileFloor::open(dir.path())?).keeping(dir),
    ));

    let dir = temp_dir("sqlite")?;
    let store = SqliteStore::open(dir.path().join("sessions.db"))?;
    runners.push(Box::new(
        Target::new("sqlite", Ours::new(std::sync::Arc::new(store))).keeping(dir),
    ));
    let dir = temp_dir("sqlite-floor")?;
    let floor = SqliteFloor::open(&dir.path().join("sessions.db"))?;
    runners.push(Box::new(Target::new("sqlite-floor", floor).keeping(dir)));

    match std::env::var(REDIS_URL_VAR) {
        Ok(url) if !url.is_empty() => {
            let prefix = format!("bench-{}:", SessionId::random().encode().as_str());
            let store = RedisStore::builder(url.clone()).prefix(prefix).build().await?;
            runners.push(Box::new(Target::new("redis", Ours::new(std::sync::Arc::new(store)))));
            #[cfg(feature = "peers")]
            runners.push(Box::new(Target::new(
                "redis-peer",
                crate::peers::TowerRedis::connect(&url).await?,
            )));
            runners.push(Box::new(Target::new("redis-floor", RedisFloor::connect(&url).await?)));
        }
        _ => eprintln!(
            "session-store-benches: {REDIS_URL_VAR} is not set, so the Redis rows are left out; \
             `scripts/bench` starts a private Redis server and sets it"
        ),
    }
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => {
            let schema = format!("bench_{}", SessionId::random().fingerprint())
                .to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
            let store = PostgresStore::builder(url.clone())
                .schema(schema)
                .pool_size(POSTGRES_CONNECTIONS)
                .build()
                .await?;
            runners.push(Box::new(Target::new("postgres", Ours::new(std::sync::Arc::new(store)))));
            runners.push(Box::new(Target::new(
                "postgres-floor",
                PostgresFloor::connect(&url, POSTGRES_CONNECTIONS).await?,
            )));
        }
        _ => eprintln!(
            "session-store-benches: {POSTGRES_URL_VAR} is not set, so the PostgreSQL rows are left out; \
             `scripts/bench` starts a private PostgreSQL and sets it"
        ),
    }
    if !cfg!(feature = "peers") {
        eprintln!(
            "session-store-benches: built without the `peers` feature, so the tower-sessions peers are left out \
             (`cargo bench -p session-store-benches --features peers`; the sqlx peers run from benches/sqlx-peers)"
        );
    }
    Ok(runners)
}
