//! [`PostgresStoreBuilder`]: every setting of a [`PostgresStore`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use session_store_core::{DEFAULT_MAX_RECORD_BYTES, Error, Result, SharedClock, system_clock};

use crate::pool::{Conn, pool_from_url};
use crate::schema::{self, Names, Sql};
use crate::{Inner, PostgresStore};

/// The default table name.
pub const DEFAULT_TABLE: &str = "sessions";

/// The default of [`PostgresStoreBuilder::timeout`]: 5 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default of [`PostgresStoreBuilder::purge_batch`].
pub const DEFAULT_PURGE_BATCH: usize = 5_000;

/// The default of [`PostgresStoreBuilder::purge_batch_time`]: 50 ms.
pub const DEFAULT_PURGE_BATCH_TIME: Duration = Duration::from_millis(50);

/// The default of [`PostgresStoreBuilder::max_retries`].
pub const DEFAULT_MAX_RETRIES: u32 = 10;

/// Where the connections come from.
enum Source {
    Url(String),
    Pool(Pool),
}

/// Builds a [`PostgresStore`]: `PostgresStore::builder(url)...build().await`
/// or `PostgresStore::with_pool(pool)...build().await`.
pub struct PostgresStoreBuilder {
    source: Source,
    schema: Option<String>,
    table: String,
    unlogged: bool,
    clock: SharedClock,
    max_record_bytes: usize,
    timeout: Duration,
    pool_size: usize,
    purge_batch: usize,
    purge_batch_time: Duration,
    max_retries: u32,
}

impl fmt::Debug for PostgresStoreBuilder {
    // The URL may hold a password: not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStoreBuilder")
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("unlogged", &self.unlogged)
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .field("max_record_bytes", &self.max_record_bytes)
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    fn new(source: Source) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            source,
            schema: None,
            table: DEFAULT_TABLE.to_owned(),
            unlogged: false,
            clock: system_clock(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            timeout: DEFAULT_TIMEOUT,
            pool_size: (cpus * 4).clamp(4, 32),
            purge_batch: DEFAULT_PURGE_BATCH,
            purge_batch_time: DEFAULT_PURGE_BATCH_TIME,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }

    pub(crate) fn from_url(url: String) -> Self {
        Self::new(Source::Url(url))
    }

    pub(crate) fn from_pool(pool: Pool) -> Self {
        Self::new(Source::Pool(pool))
    }

    /// The schema holding the table (and the bookkeeping table
    /// `session_store_schema`), created if missing. Default: none, so the
    /// connection's `search_path` decides (usually `public`). Must be a
    /// plain identifier, `[A-Za-z_][A-Za-z0-9_]{0,62}`, not starting with
    /// `pg_`; it is quoted, so its case is kept. Checked by
    /// [`build`](Self::build).
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The table holding this store's records (default `sessions`). Two
    /// stores with different tables (or schemas) are isolated namespaces.
    /// Must be a plain identifier, `[A-Za-z_][A-Za-z0-9_]{0,47}`, not
    /// starting with `pg_`; it is quoted, so its case is kept. Checked by
    /// [`build`](Self::build).
    #[must_use]
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Creates the table `UNLOGGED` (default: logged). Writes skip the
    /// write-ahead log, so they are faster (no WAL flush at commit) but
    /// **the table is emptied after a crash of the server** (every session
    /// is lost; a clean shutdown keeps them) and it is not copied to
    /// replicas. Acknowledged writes survive a server restart, not a
    /// server crash. Applies when the table is created; opening an existing
    /// table with the other setting is an [`Error::Config`].
    #[must_use]
    pub fn unlogged(mut self, unlogged: bool) -> Self {
        self.unlogged = unlogged;
        self
    }

    /// The clock every liveness decision asks (default: the system clock).
    /// Its time is passed to every statement; the server's `now()` is never
    /// asked, so app servers and the database need not agree on the time.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The largest data size accepted, in bytes (default
    /// [`DEFAULT_MAX_RECORD_BYTES`]).
    #[must_use]
    pub fn max_record_bytes(mut self, limit: usize) -> Self {
        self.max_record_bytes = limit;
        self
    }

    /// The bound on every call (default [`DEFAULT_TIMEOUT`]): waiting for a
    /// pooled connection, connecting, the statement and its retries. Past
    /// it the call returns [`Error::Timeout`]. A pool made from a URL also
    /// gets it as the server's `statement_timeout` (unless the URL sets
    /// `options`) and as its connect timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The most connections of a pool made from a URL (default: four per
    /// CPU, between 4 and 32). A caller's pool keeps its own size.
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How many expired rows the first statement of a purge deletes, and
    /// the fewest any later one deletes (default [`DEFAULT_PURGE_BATCH`]).
    /// Each batch is its own short transaction; later batches grow while
    /// they finish well within [`purge_batch_time`](Self::purge_batch_time)
    /// and shrink when one overruns it.
    #[must_use]
    pub fn purge_batch(mut self, rows: usize) -> Self {
        self.purge_batch = rows.max(1);
        self
    }

    /// How long one purge statement should hold its rows' locks (default
    /// [`DEFAULT_PURGE_BATCH_TIME`], 50 ms): the batch size adapts so that
    /// each batch takes about this long, so a writer replacing an expired
    /// row waits at most about this long for a purge. `Duration::ZERO`
    /// keeps every batch at [`purge_batch`](Self::purge_batch) rows.
    #[must_use]
    pub fn purge_batch_time(mut self, time: Duration) -> Self {
        self.purge_batch_time = time;
        self
    }

    /// How often a statement that PostgreSQL refused with a serialization
    /// failure or a deadlock is tried again (default
    /// [`DEFAULT_MAX_RETRIES`]), before the call returns [`Error::Timeout`].
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Checks the names, makes the pool (for a URL), connects, and creates
    /// or migrates the table, within the timeout. Several processes may
    /// build stores on one table at once.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid name or URL, a table written by a
    /// newer version of this crate or of the other persistence
    /// ([`unlogged`](Self::unlogged)); [`Error::Backend`] when the server
    /// cannot be reached or refuses; [`Error::Timeout`] when it does not
    /// answer within the timeout.
    pub async fn build(self) -> Result<PostgresStore> {
        let names = Names::new(self.schema, self.table)?;
        let pool = match self.source {
            Source::Url(url) => pool_from_url(&url, self.pool_size, self.timeout)?,
            Source::Pool(pool) => pool,
        };
        let conn = Conn {
            pool,
            timeout: self.timeout,
            max_retries: self.max_retries,
        };
        let unlogged = self.unlogged;
        conn.run("creating the table", |mut client| {
            let names = &names;
            async move {
                match schema::migrate(&mut client, names, unlogged).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(refusal)) => Err(Error::config(refusal).into()),
                    Err(e) => Err(e.into()),
                }
            }
        })
        .await?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                sql: Sql::new(&names),
                names,
                conn,
                clock: self.clock,
                max_record_bytes: self.max_record_bytes,
                purge_batch: self.purge_batch,
                purge_batch_time: self.purge_batch_time,
                unlogged,
            }),
        })
    }
}
