//! The peers: tower-sessions' own stores, each driven through the
//! `tower_sessions_core::SessionStore` trait it implements (0.15 for the
//! memory store; 0.14 for the Redis store, whose latest release still
//! implements that one), with the same keys and JSON values as ours. The
//! sqlx peers (SQLite, PostgreSQL) are in `benches/sqlx-peers`, a crate of
//! its own: sqlx 0.8 links an older SQLite than our SQLite store.

use std::time::Duration;

use session_store_core::Timestamp;

use crate::tower_subject::tower_subject;
use tower_sessions_redis_store::fred::prelude::{Client, ClientLike, Config, KeysInterface};

use crate::Payload;
use crate::subject::{BenchResult, Op, Subject};

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
