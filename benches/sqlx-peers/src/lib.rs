//! The sqlx peers of the benchmarks, on the benches' harness: tower-sessions'
//! sqlx `SqliteStore`, `PostgresStore` and `MySqlStore` (tower-sessions-sqlx-store 0.15,
//! sqlx 0.8), driven through the same workloads as every other subject.
//!
//! A crate and workspace of its own (see `Cargo.toml`): sqlx 0.8 links an
//! older SQLite than our SQLite store, so the two cannot share a build.
//! `scripts/bench` at the repository root runs it after the main benches,
//! into the same criterion directory, so one report holds every row.

use std::path::Path;
use std::time::Duration;

use session_store_benches::Payload;
use session_store_benches::subject::{BenchResult, Op, Subject};
use session_store_benches::workloads::{Runner, Target};
use session_store_core::Timestamp;
use tower_sessions_sqlx_store::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

#[path = "../../src/tower_subject.rs"]
mod tower_subject;
use tower_subject::tower_subject;

/// The subjects of this crate: the SQLite peer always, the PostgreSQL peer
/// when `SESSION_STORE_POSTGRES_URL` names a server (`scripts/bench` starts
/// a private one and sets it).
///
/// # Errors
///
/// When a store cannot be opened or the server cannot be reached.
pub async fn all() -> BenchResult<Vec<Box<dyn Runner>>> {
    let mut runners: Vec<Box<dyn Runner>> = Vec::new();
    let dir = session_store_benches::targets::temp_dir("sqlite-peer")?;
    let peer = TowerSqlite::open(&dir.path().join("sessions.db")).await?;
    runners.push(Box::new(Target::new("sqlite-peer", peer).keeping(dir)));
    match std::env::var(session_store_benches::targets::POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => {
            let connections = u32::try_from(session_store_benches::targets::POSTGRES_CONNECTIONS).unwrap_or(8);
            runners.push(Box::new(Target::new(
                "postgres-peer",
                TowerPostgres::connect(&url, connections).await?,
            )));
        }
        _ => eprintln!(
            "session-store-sqlx-peers: {} is not set, so the PostgreSQL peer is left out",
            session_store_benches::targets::POSTGRES_URL_VAR
        ),
    }
    match std::env::var(session_store_benches::targets::MYSQL_URL_VAR) {
        Ok(url) if !url.is_empty() => {
            let connections = u32::try_from(session_store_benches::targets::MYSQL_CONNECTIONS).unwrap_or(8);
            runners.push(Box::new(Target::new(
                "mysql-peer",
                TowerMysql::connect(&url, connections).await?,
            )));
        }
        _ => eprintln!(
            "session-store-sqlx-peers: {} is not set, so the MySQL peer is left out",
            session_store_benches::targets::MYSQL_URL_VAR
        ),
    }
    Ok(runners)
}

/// tower-sessions' sqlx `SqliteStore` (tower-sessions-sqlx-store 0.15, sqlx
/// 0.8) on a pool in WAL mode with `synchronous = NORMAL`, like ours.
#[derive(Debug)]
pub struct TowerSqlite {
    store: tower_sessions_sqlx_store::SqliteStore,
    pool: SqlitePool,
}

impl TowerSqlite {
    /// Opens (creating) the database at `path` and creates the table.
    ///
    /// # Errors
    ///
    /// When the database cannot be opened or migrated.
    pub async fn open(path: &Path) -> BenchResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new().connect_with(options).await?;
        let store = tower_sessions_sqlx_store::SqliteStore::new(pool.clone());
        store.migrate().await?;
        Ok(Self { store, pool })
    }

    async fn purge_expired(&self) -> BenchResult<Option<u64>> {
        tower_sessions_core_014::ExpiredDeletion::delete_expired(&self.store).await?;
        Ok(None)
    }

    /// The store compares `datetime(expiry_date) < datetime('now')`: whole
    /// seconds.
    #[allow(clippy::unused_self)]
    fn resolution(&self) -> Duration {
        Duration::from_millis(1_100)
    }

    /// Removes every row (untimed cleanup between benchmarks).
    async fn clear_ids(&self, _ids: Vec<tower_sessions_core_014::session::Id>) -> BenchResult<()> {
        tower_sessions_sqlx_store::sqlx::query("DELETE FROM tower_sessions")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

tower_subject!(TowerSqlite, tower_sessions_core_014, supports: |_, op| op == Op::Purge);

/// tower-sessions' sqlx `PostgresStore` (tower-sessions-sqlx-store 0.15
/// with its `postgres` feature, sqlx 0.8) on a pool of as many connections
/// as ours, in a schema of its own.
#[derive(Debug)]
pub struct TowerPostgres {
    store: tower_sessions_sqlx_store::PostgresStore,
    pool: tower_sessions_sqlx_store::sqlx::PgPool,
    schema: String,
}

impl TowerPostgres {
    /// Connects to the server at `url` with `connections` connections and
    /// creates the peer's table in a fresh schema.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or the table cannot be created.
    pub async fn connect(url: &str, connections: u32) -> BenchResult<Self> {
        let pool = tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions::new()
            .max_connections(connections)
            .connect(url)
            .await?;
        let schema = format!("bench_peer_{}", session_store_core::SessionId::random().fingerprint())
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let store = tower_sessions_sqlx_store::PostgresStore::new(pool.clone()).with_schema_name(&schema)?;
        store.migrate().await?;
        Ok(Self { store, pool, schema })
    }

    async fn purge_expired(&self) -> BenchResult<Option<u64>> {
        tower_sessions_core_014::ExpiredDeletion::delete_expired(&self.store).await?;
        Ok(None)
    }

    /// The store compares with the server's `now()`, to the microsecond.
    #[allow(clippy::unused_self)]
    fn resolution(&self) -> Duration {
        Duration::from_millis(20)
    }

    /// Removes every row (untimed cleanup between benchmarks).
    async fn clear_ids(&self, _ids: Vec<tower_sessions_core_014::session::Id>) -> BenchResult<()> {
        tower_sessions_sqlx_store::sqlx::query(&format!("DELETE FROM \"{}\".session", self.schema))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

tower_subject!(TowerPostgres, tower_sessions_core_014, supports: |_, op| op == Op::Purge);

/// The database (schema) the MySQL peer makes its table in.
const MYSQL_PEER_SCHEMA: &str = "tower_sessions";

/// tower-sessions' sqlx `MySqlStore` (tower-sessions-sqlx-store 0.15 with
/// its `mysql` feature, sqlx 0.8) on a pool of as many connections as ours,
/// in a table of its own.
#[derive(Debug)]
pub struct TowerMysql {
    store: tower_sessions_sqlx_store::MySqlStore,
    pool: tower_sessions_sqlx_store::sqlx::MySqlPool,
    table: String,
}

impl TowerMysql {
    /// Connects to the server at `url` with `connections` connections and
    /// creates the peer's table under a fresh name.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or the table cannot be created.
    pub async fn connect(url: &str, connections: u32) -> BenchResult<Self> {
        let pool = tower_sessions_sqlx_store::sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(connections)
            .connect(url)
            .await?;
        let table = format!("bench_peer_{}", session_store_core::SessionId::random().fingerprint())
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let store = tower_sessions_sqlx_store::MySqlStore::new(pool.clone())
            .with_schema_name(MYSQL_PEER_SCHEMA)?
            .with_table_name(&table)?;
        store.migrate().await?;
        Ok(Self { store, pool, table })
    }

    async fn purge_expired(&self) -> BenchResult<Option<u64>> {
        tower_sessions_core_014::ExpiredDeletion::delete_expired(&self.store).await?;
        Ok(None)
    }

    /// The store stores deadlines to the microsecond (`timestamp(6)`).
    #[allow(clippy::unused_self)]
    fn resolution(&self) -> Duration {
        Duration::from_millis(20)
    }

    /// Removes every row (untimed cleanup between benchmarks).
    async fn clear_ids(&self, _ids: Vec<tower_sessions_core_014::session::Id>) -> BenchResult<()> {
        tower_sessions_sqlx_store::sqlx::query(&format!("DELETE FROM `{MYSQL_PEER_SCHEMA}`.`{}`", self.table))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

tower_subject!(TowerMysql, tower_sessions_core_014, supports: |_, op| op == Op::Purge);
