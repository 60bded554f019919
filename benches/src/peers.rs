//! The peers: tower-sessions' own stores, each driven through the
//! `tower_sessions_core::SessionStore` trait it implements (0.15 for the
//! memory store; 0.14 for the sqlx and Redis stores, whose latest releases
//! still implement that one), with the same keys and JSON values as ours.

use std::path::Path;
use std::time::Duration;

use session_store_core::Timestamp;
use time::OffsetDateTime;
use tower_sessions_redis_store::fred::prelude::{Client, ClientLike, Config, KeysInterface};
use tower_sessions_sqlx_store::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::Payload;
use crate::subject::{BenchResult, Op, Subject};

fn offset_date_time(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millis()) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Implements [`Subject`] for a wrapper around a tower-sessions store of
/// the given `tower_sessions_core` version.
macro_rules! tower_subject {
    ($ty:ty, $core:ident, supports: $supports:expr) => {
        impl Subject for $ty {
            type Rec = $core::session::Record;
            type Id = $core::session::Id;

            fn supports(&self, op: Op) -> bool {
                let supports: fn(&Self, Op) -> bool = $supports;
                supports(self, op)
            }

            fn fresh_id(&self) -> Self::Id {
                $core::session::Id::default()
            }

            fn record(&self, payload: &Payload, expires_at: Timestamp) -> Self::Rec {
                $core::session::Record {
                    id: $core::session::Id::default(),
                    data: payload.to_json_map(),
                    expiry_date: offset_date_time(expires_at),
                }
            }

            fn id_of(rec: &Self::Rec) -> Self::Id {
                rec.id
            }

            fn set_id(rec: &mut Self::Rec, id: Self::Id) {
                rec.id = id;
            }

            async fn create(&self, rec: &mut Self::Rec) -> BenchResult<()> {
                Ok($core::SessionStore::create(&self.store, rec).await?)
            }

            async fn load(&self, id: Self::Id) -> BenchResult<Option<Self::Rec>> {
                Ok($core::SessionStore::load(&self.store, &id).await?)
            }

            async fn save(&self, rec: &Self::Rec) -> BenchResult<()> {
                Ok($core::SessionStore::save(&self.store, rec).await?)
            }

            async fn delete(&self, id: Self::Id) -> BenchResult<()> {
                Ok($core::SessionStore::delete(&self.store, &id).await?)
            }

            async fn purge(&self) -> BenchResult<Option<u64>> {
                self.purge_expired().await
            }

            async fn clear(&self, ids: Vec<Self::Id>) -> BenchResult<()> {
                self.clear_ids(ids).await
            }

            fn expiry_resolution(&self) -> Duration {
                self.resolution()
            }
        }
    };
}

/// tower-sessions' `MemoryStore` (tower-sessions-memory-store 0.15): one
/// `HashMap` behind a tokio `Mutex`.
#[derive(Debug, Default)]
pub struct TowerMemory {
    store: tower_sessions_memory_store::MemoryStore,
}

impl TowerMemory {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[allow(clippy::unused_async)]
    async fn purge_expired(&self) -> BenchResult<Option<u64>> {
        Err(crate::subject::unsupported(Op::Purge))
    }

    #[allow(clippy::unused_self)]
    fn resolution(&self) -> Duration {
        Duration::from_millis(2)
    }

    async fn clear_ids(&self, ids: Vec<tower_sessions_core::session::Id>) -> BenchResult<()> {
        for id in ids {
            tower_sessions_core::SessionStore::delete(&self.store, &id).await?;
        }
        Ok(())
    }
}

tower_subject!(TowerMemory, tower_sessions_core, supports: |_, _| false);

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

/// tower-sessions' `RedisStore` (tower-sessions-redis-store 0.16, fred 10)
/// on one fred client (one multiplexed connection, like redis-rs's).
///
/// The store writes bare ids as keys, with no prefix; to stay clear of
/// anything else on the server it runs on its own logical database
/// ([`TowerRedis::DATABASE`]) and deletes only the keys it wrote.
#[derive(Debug)]
pub struct TowerRedis {
    store: tower_sessions_redis_store::RedisStore<Client>,
    client: Client,
}

impl TowerRedis {
    /// The logical database the peer's keys go to.
    pub const DATABASE: u8 = 9;

    /// Connects to the server at `url`.
    ///
    /// # Errors
    ///
    /// When the URL is malformed or the server cannot be reached.
    pub async fn connect(url: &str) -> BenchResult<Self> {
        let mut config = Config::from_url(url)?;
        config.database = Some(Self::DATABASE);
        let client = Client::new(config, None, None, None);
        client.init().await?;
        Ok(Self {
            store: tower_sessions_redis_store::RedisStore::new(client.clone()),
            client,
        })
    }

    #[allow(clippy::unused_async)]
    async fn purge_expired(&self) -> BenchResult<Option<u64>> {
        Err(crate::subject::unsupported(Op::Purge))
    }

    #[allow(clippy::unused_self)]
    fn resolution(&self) -> Duration {
        Duration::from_millis(1_100)
    }

    /// Deletes exactly the keys the benchmark wrote.
    async fn clear_ids(&self, ids: Vec<tower_sessions_core_014::session::Id>) -> BenchResult<()> {
        for chunk in ids.chunks(1_000) {
            let keys: Vec<String> = chunk.iter().map(ToString::to_string).collect();
            let _: i64 = KeysInterface::del(&self.client, keys).await?;
        }
        Ok(())
    }
}

tower_subject!(TowerRedis, tower_sessions_core_014, supports: |_, _| false);

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
