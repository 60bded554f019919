//! Every subject of the comparison, built from the environment.

#[cfg(feature = "stores")]
use std::sync::Arc;

#[cfg(feature = "stores")]
use session_store_core::at_rest::Protected;
#[cfg(feature = "stores")]
use session_store_core::{SessionId, SessionStore};
#[cfg(feature = "stores")]
use session_store_file::{Durability, FileStore};
#[cfg(feature = "stores")]
use session_store_memory::MemoryStore;
#[cfg(feature = "stores")]
use session_store_mysql::MysqlStore;
#[cfg(feature = "stores")]
use session_store_postgres::PostgresStore;
#[cfg(feature = "stores")]
use session_store_redis::RedisStore;
#[cfg(feature = "stores")]
use session_store_sqlite::SqliteStore;

#[cfg(feature = "stores")]
use crate::at_rest::Mode;
#[cfg(feature = "stores")]
use crate::floors::{
    FILE_PURGE_POPULATION, FileFloor, HashMapFloor, MysqlFloor, PostgresFloor, RedisFloor, SqliteFloor,
};
#[cfg(feature = "stores")]
use crate::ours::Ours;
use crate::subject::BenchResult;
#[cfg(feature = "stores")]
use crate::workloads::{Runner, STORED_COUNTS, Target};

/// The variable naming the Redis server the Redis rows run against
/// (`scripts/bench` starts a private one and sets it).
pub const REDIS_URL_VAR: &str = "SESSION_STORE_REDIS_URL";

/// The variable naming the PostgreSQL server the PostgreSQL rows run
/// against (`scripts/bench` starts a private one and sets it).
pub const POSTGRES_URL_VAR: &str = "SESSION_STORE_POSTGRES_URL";

/// Connections of each PostgreSQL subject: our store's pool, the peer's
/// pool and the floor's fixed set alike.
pub const POSTGRES_CONNECTIONS: usize = 8;

/// The variable naming the MySQL or MariaDB server the MySQL rows run
/// against (`scripts/bench` starts a private MariaDB and sets it).
pub const MYSQL_URL_VAR: &str = "SESSION_STORE_MYSQL_URL";

/// Connections of each MySQL subject: our store's pool, the peer's pool
/// and the floor's fixed set alike.
pub const MYSQL_CONNECTIONS: usize = 8;

/// The subject names, in report order: each medium's store, its peer (when
/// there is one) and its floor.
pub const NAMES: [&str; 17] = [
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
    "mysql",
    "mysql-peer",
    "mysql-floor",
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
/// [`REDIS_URL_VAR`] is set, the PostgreSQL rows when [`POSTGRES_URL_VAR`] is,
/// and after them the at-rest targets of each of those backends (see
/// [`at_rest`]). Says on stderr what it left out and why.
///
/// # Errors
///
/// When a store cannot be opened or a Redis server named by
/// [`REDIS_URL_VAR`] cannot be reached.
#[cfg(feature = "stores")]
pub async fn all() -> BenchResult<Vec<Box<dyn Runner>>> {
    let mut runners: Vec<Box<dyn Runner>> = Vec::new();

    // The default bound (100,000 records, split among the shards, each of
    // which evicts when its share is full) would evict records of the
    // 100,000-record workloads before the store holds them all: a load of a
    // stored record would find nothing. Twice the largest workload leaves
    // every shard room.
    runners.push(Box::new(Target::new(
        "memory",
        Ours::new(std::sync::Arc::new(
            MemoryStore::builder().capacity(2 * STORED_COUNTS[1]).build(),
        )),
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

    let redis_url = std::env::var(REDIS_URL_VAR).ok().filter(|u| !u.is_empty());
    let postgres_url = std::env::var(POSTGRES_URL_VAR).ok().filter(|u| !u.is_empty());
    match redis_url.clone() {
        Some(url) => {
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
        None => eprintln!(
            "session-store-benches: {REDIS_URL_VAR} is not set, so the Redis rows are left out; \
             `scripts/bench` starts a private Redis server and sets it"
        ),
    }
    match postgres_url.clone() {
        Some(url) => {
            let schema = fresh_schema();
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
        None => eprintln!(
            "session-store-benches: {POSTGRES_URL_VAR} is not set, so the PostgreSQL rows are left out; \
             `scripts/bench` starts a private PostgreSQL and sets it"
        ),
    }
    match std::env::var(MYSQL_URL_VAR).ok().filter(|u| !u.is_empty()) {
        Some(url) => {
            let table = format!("bench_{}", SessionId::random().fingerprint())
                .to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
            let store = MysqlStore::builder(url.clone())
                .table(table)
                .pool_size(MYSQL_CONNECTIONS)
                .build()
                .await?;
            runners.push(Box::new(Target::new("mysql", Ours::new(std::sync::Arc::new(store)))));
            runners.push(Box::new(Target::new(
                "mysql-floor",
                MysqlFloor::connect(&url, MYSQL_CONNECTIONS).await?,
            )));
        }
        None => eprintln!(
            "session-store-benches: {MYSQL_URL_VAR} is not set, so the MySQL rows are left out; \
             `scripts/bench` starts a private MariaDB and sets it"
        ),
    }
    if !cfg!(feature = "peers") {
        eprintln!(
            "session-store-benches: built without the `peers` feature, so the tower-sessions peers are left out \
             (`cargo bench -p session-store-benches --features peers`; the sqlx peers run from benches/sqlx-peers)"
        );
    }
    runners.extend(at_rest(redis_url.as_deref(), postgres_url.as_deref()).await?);
    Ok(runners)
}

/// A fresh PostgreSQL schema name for one subject.
#[cfg(feature = "stores")]
fn fresh_schema() -> String {
    format!("bench_{}", SessionId::random().fingerprint())
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_")
}

/// The at-rest targets: every backend (memory, file, SQLite, and Redis and
/// PostgreSQL when a URL is given) in every [`Mode`], each on a namespace of
/// its own (a directory, a database file, a key prefix, a schema), the four
/// modes of a backend one after another. The protected modes are
/// [`Protected`] over a store opened with [`Mode::store_limit`]; the file
/// store's records set up before the clock starts are written without
/// fsync, as in the other workloads.
///
/// # Errors
///
/// When a store cannot be opened or a server cannot be reached.
#[cfg(feature = "stores")]
pub async fn at_rest(redis_url: Option<&str>, postgres_url: Option<&str>) -> BenchResult<Vec<Box<dyn Runner>>> {
    let mut runners = Vec::new();
    for mode in Mode::ALL {
        let store = MemoryStore::builder().max_record_bytes(mode.store_limit()).build();
        runners.push(mode_target("memory", mode, store, None, None));
    }
    for mode in Mode::ALL {
        let dir = temp_dir(&format!("file-{}", mode.name()))?;
        let open = |durability| {
            FileStore::builder(dir.path().join("sessions"))
                .durability(durability)
                .max_record_bytes(mode.store_limit())
                .open()
        };
        let (store, seeder) = (open(Durability::Fsync)?, open(Durability::NoSync)?);
        runners.push(mode_target("file", mode, store, Some(seeder), Some(dir)));
    }
    for mode in Mode::ALL {
        let dir = temp_dir(&format!("sqlite-{}", mode.name()))?;
        let store = SqliteStore::builder(dir.path().join("sessions.db"))
            .max_record_bytes(mode.store_limit())
            .open()?;
        runners.push(mode_target("sqlite", mode, store, None, Some(dir)));
    }
    if let Some(url) = redis_url {
        for mode in Mode::ALL {
            let prefix = format!("bench-{}-{}:", SessionId::random().encode().as_str(), mode.name());
            let store = RedisStore::builder(url.to_owned())
                .prefix(prefix)
                .max_record_bytes(mode.store_limit())
                .build()
                .await?;
            runners.push(mode_target("redis", mode, store, None, None));
        }
    }
    if let Some(url) = postgres_url {
        for mode in Mode::ALL {
            let store = PostgresStore::builder(url.to_owned())
                .schema(fresh_schema())
                .pool_size(POSTGRES_CONNECTIONS)
                .max_record_bytes(mode.store_limit())
                .build()
                .await?;
            runners.push(mode_target("postgres", mode, store, None, None));
        }
    }
    Ok(runners)
}

/// `backend` in `mode`: `store` itself for plain, [`Protected`] over it
/// otherwise; `seeder`, on the same namespace, writes the records set up
/// untimed; `dir` lives as long as the target.
#[cfg(feature = "stores")]
fn mode_target<S: SessionStore + 'static>(
    backend: &'static str,
    mode: Mode,
    store: S,
    seeder: Option<S>,
    dir: Option<tempfile::TempDir>,
) -> Box<dyn Runner> {
    fn target<T: SessionStore + 'static>(
        backend: &'static str,
        mode: Mode,
        store: T,
        seeder: Option<T>,
        dir: Option<tempfile::TempDir>,
    ) -> Box<dyn Runner> {
        let mut ours = Ours::new(Arc::new(store));
        if let Some(seeder) = seeder {
            ours = ours.with_seeder(Arc::new(seeder));
        }
        let target = Target::new(backend, ours).in_mode(mode.name());
        match dir {
            Some(dir) => Box::new(target.keeping(dir)),
            None => Box::new(target),
        }
    }
    match mode.at_rest() {
        None => target(backend, mode, store, seeder, dir),
        Some(at_rest) => {
            let seeder = seeder.map(|s| Protected::new(s, at_rest.clone()));
            target(backend, mode, Protected::new(store, at_rest), seeder, dir)
        }
    }
}

#[cfg(all(test, feature = "stores"))]
mod tests {
    use super::*;
    use crate::workloads::Workload;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_rest_targets_run_the_at_rest_workloads_and_no_other() {
        let runners = at_rest(None, None).await.unwrap();
        let names: Vec<&str> = runners.iter().map(|r| r.name()).collect();
        assert_eq!(names, [["memory"; 4], ["file"; 4], ["sqlite"; 4]].concat());
        for r in &runners {
            assert!(r.supports(Workload::AtRestLoadHit) && r.supports(Workload::AtRestSave));
            assert!(!r.supports(Workload::LoadHit) && !r.supports(Workload::Save(crate::Size::Small)));
        }
        let plain = Target::new("memory", Ours::new(Arc::new(MemoryStore::new())));
        assert!(plain.supports(Workload::LoadHit));
        assert!(!plain.supports(Workload::AtRestLoadHit) && !plain.supports(Workload::AtRestSave));
    }
}
