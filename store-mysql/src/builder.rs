//! Building a store: the pool, the table, the bounds.

use std::sync::Arc;
use std::time::Duration;

use session_store_core::{DEFAULT_MAX_RECORD_BYTES, Error, Result, SharedClock, system_clock};

use crate::pool::{Conn, pool_from_url};
use crate::schema::{Sql, migrate, valid_table};
use crate::{Inner, MysqlStore};

/// The table a store uses unless told otherwise.
pub const DEFAULT_TABLE: &str = "sessions";

/// How long one call may take (a connection, the statements, retries).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of a pool the store makes itself.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// Rows one purge statement deletes at most.
pub const DEFAULT_PURGE_BATCH: usize = 5_000;

/// How long a purge batch should take: later batches grow or shrink towards it.
pub const DEFAULT_PURGE_BATCH_TIME: Duration = Duration::from_millis(50);

/// Deadlocks and lock wait timeouts retried before a call gives up.
pub const DEFAULT_MAX_RETRIES: u32 = 10;

enum Source {
    Url(String),
    Pool(mysql_async::Pool),
}

/// Builds a [`MysqlStore`] ([`MysqlStore::builder`], [`MysqlStore::with_pool`]).
#[must_use]
pub struct MysqlStoreBuilder {
    source: Source,
    table: String,
    clock: SharedClock,
    max_record_bytes: usize,
    timeout: Duration,
    pool_size: usize,
    purge_batch: usize,
    purge_batch_time: Duration,
    max_retries: u32,
}

impl std::fmt::Debug for MysqlStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("MysqlStoreBuilder")
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl MysqlStoreBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            table: DEFAULT_TABLE.to_owned(),
            clock: system_clock(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            timeout: DEFAULT_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            purge_batch: DEFAULT_PURGE_BATCH,
            purge_batch_time: DEFAULT_PURGE_BATCH_TIME,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }

    pub(crate) fn from_url(url: String) -> Self {
        Self::new(Source::Url(url))
    }

    pub(crate) fn from_pool(pool: mysql_async::Pool) -> Self {
        Self::new(Source::Pool(pool))
    }

    /// The table (default [`DEFAULT_TABLE`]): ASCII letters, digits and
    /// `_`, at most 64 bytes, in the URL's database. Stores on different
    /// tables never see each other's records.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The clock deciding liveness (default the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The limit on a record's data (default [`DEFAULT_MAX_RECORD_BYTES`]);
    /// over it, writes answer [`Error::TooLarge`]. Keep it under the
    /// server's `max_allowed_packet`.
    pub fn max_record_bytes(mut self, limit: usize) -> Self {
        self.max_record_bytes = limit;
        self
    }

    /// How long one call may take, waiting for a connection and retries
    /// included (default [`DEFAULT_TIMEOUT`]); past it, [`Error::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connections of the pool the store makes from a URL (default
    /// [`DEFAULT_POOL_SIZE`]; ignored with [`MysqlStore::with_pool`]).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Rows the first purge statement deletes at most (default
    /// [`DEFAULT_PURGE_BATCH`]).
    pub fn purge_batch(mut self, rows: usize) -> Self {
        self.purge_batch = rows.max(1);
        self
    }

    /// How long each purge batch should take (default
    /// [`DEFAULT_PURGE_BATCH_TIME`]).
    pub fn purge_batch_time(mut self, time: Duration) -> Self {
        self.purge_batch_time = time;
        self
    }

    /// Deadlocks and lock wait timeouts retried before a call answers
    /// [`Error::Timeout`] (default [`DEFAULT_MAX_RETRIES`]).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Connects, makes the table (or checks the one there and its schema
    /// version) and answers the store.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL or table name, or a table a newer
    /// build migrated; [`Error::Timeout`] or a backend error when the
    /// server cannot be reached in time.
    pub async fn build(self) -> Result<MysqlStore> {
        if !valid_table(&self.table) {
            return Err(Error::config(format!(
                "{:?} is not a table name this store uses: ASCII letters, digits and _, at most 64 bytes, \
                 not starting with a digit",
                self.table
            )));
        }
        let pool = match self.source {
            Source::Url(url) => pool_from_url(&url, self.pool_size, self.timeout)?,
            Source::Pool(pool) => pool,
        };
        let conn = Conn {
            pool,
            timeout: self.timeout,
            max_retries: self.max_retries,
        };
        migrate(&conn, &self.table).await?;
        Ok(MysqlStore {
            inner: Arc::new(Inner {
                sql: Sql::new(&self.table),
                table: self.table,
                conn,
                clock: self.clock,
                max_record_bytes: self.max_record_bytes,
                purge_batch: self.purge_batch,
                purge_batch_time: self.purge_batch_time,
            }),
        })
    }
}
