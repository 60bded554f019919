//! A PostgreSQL session store (tokio-postgres, deadpool-postgres): one
//! table shared by every app server.
//!
//! ```no_run
//! use session_store_core::{Clock, Expiry, Record, SessionData, SessionStore, SystemClock};
//! use session_store_postgres::PostgresStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::builder("postgres://app:secret@127.0.0.1:5432/app")
//!     .table("sessions")
//!     .timeout(std::time::Duration::from_secs(2))
//!     .build()
//!     .await?;
//! let mut data = SessionData::new();
//! data.insert("user", &"alice")?;
//! let record = Record::new(data, SystemClock.now(), &Expiry::default());
//! store.create(&record).await?;
//! let loaded = store.load(&record.id).await?.expect("live");
//! assert_eq!(loaded.data.get::<String>("user")?.as_deref(), Some("alice"));
//! assert_eq!(loaded.version, 1);
//!
//! // Or on a pool the application already has.
//! # let pool: deadpool_postgres::Pool = unimplemented!();
//! let store = PostgresStore::with_pool(pool).schema("auth").build().await?;
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! Records live in one table (name and schema configurable, see
//! [`PostgresStoreBuilder::table`] and [`PostgresStoreBuilder::schema`]):
//! `id text PRIMARY KEY` (the 22-character id), `body bytea` (created time,
//! owner and data, [`codec::encode_body`]), `expires_at bigint` (the
//! deadline in Unix milliseconds, indexed), `version bigint` and `owner
//! text` (with a partial index over the rows that have one). The table is
//! created, or migrated, when a store is built; the schema version of each
//! table is kept in `session_store_schema`, in the same schema.
//!
//! # Operations
//!
//! Every operation is one SQL statement, so one round trip and atomic:
//! create is an `INSERT ... ON CONFLICT DO UPDATE ... WHERE` the stored row
//! has expired (a live row is never overwritten); save bumps the version in
//! its `ON CONFLICT` clause; save-if-version is an `UPDATE` whose `WHERE`
//! compares the version; rotate is one statement with data-modifying common
//! table expressions (delete the old row, insert it under the new id).
//! Statements are prepared once per connection (deadpool-postgres's
//! statement cache). Liveness is decided with the store's injected clock,
//! whose time is a parameter of every statement; the server's `now()` is
//! never asked.
//!
//! # Failures
//!
//! Every call is bounded by [`PostgresStoreBuilder::timeout`] (waiting for
//! a connection, connecting, the statement) and returns
//! [`Error::Timeout`] past it. A serialization failure or deadlock is
//! retried a few times ([`PostgresStoreBuilder::max_retries`]), then
//! answered with [`Error::Timeout`]. A connection the server dropped is
//! left out of the pool and replaced by a new one at the next call, so the
//! store recovers by itself once the server is back. Error messages keep
//! PostgreSQL's code and message but never its `DETAIL` (which may quote a
//! key), so no session id reaches an error or a log line.
//!
//! # Durability
//!
//! An acknowledged write is committed: as durable as the server is
//! configured to be (`synchronous_commit`, `fsync`). An
//! [`unlogged`](PostgresStoreBuilder::unlogged) table skips the write-ahead
//! log: faster writes, but the table is emptied after a server crash and
//! not replicated.
//!
//! # Purging
//!
//! [`SessionStore::purge_expired`] deletes expired rows in batches on the
//! expiry index, each its own short transaction, sized to take about
//! [`PostgresStoreBuilder::purge_batch_time`]; run it from core's
//! background `Purger`.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod inspect;
mod pool;
mod purge;
mod schema;

use std::fmt;
use std::sync::Arc;

pub use deadpool_postgres;
pub use tokio_postgres;

use session_store_core::{
    Error, Fingerprint, ListingHandle, Record, Result, SessionId, SessionStore, SharedClock, Timestamp, async_trait,
    raw::codec,
};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

pub use builder::{
    DEFAULT_MAX_RETRIES, DEFAULT_PURGE_BATCH, DEFAULT_PURGE_BATCH_TIME, DEFAULT_TABLE, DEFAULT_TIMEOUT,
    PostgresStoreBuilder,
};

use pool::{Attempt, Conn};
use schema::{Names, Sql};

/// The PostgreSQL store. Cloning it shares the same pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) sql: Sql,
    pub(crate) names: Names,
    pub(crate) conn: Conn,
    pub(crate) clock: SharedClock,
    pub(crate) max_record_bytes: usize,
    pub(crate) purge_batch: usize,
    pub(crate) purge_batch_time: std::time::Duration,
    pub(crate) unlogged: bool,
}

impl Inner {
    pub(crate) fn now(&self) -> i64 {
        self.clock.now().as_millis()
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("PostgresStore")
            .field("schema", &i.names.schema)
            .field("table", &i.names.table)
            .field("unlogged", &i.unlogged)
            .field("timeout", &i.conn.timeout)
            .field("pool_size", &i.conn.pool.status().max_size)
            .field("max_record_bytes", &i.max_record_bytes)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A builder for a store on the server at `url`
    /// (`postgres://user:password@host:port/database?options`, or the
    /// `key=value` form of libpq), with a pool of its own.
    #[must_use]
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder::from_url(url.into())
    }

    /// A builder for a store on a pool the application already has. The
    /// pool should bound its waits (a `wait_timeout`); the store bounds
    /// every call by its own timeout either way.
    #[must_use]
    pub fn with_pool(pool: deadpool_postgres::Pool) -> PostgresStoreBuilder {
        PostgresStoreBuilder::from_pool(pool)
    }

    /// The table holding this store's records.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.inner.names.table
    }

    /// The schema holding the table, if one was named.
    #[must_use]
    pub fn schema(&self) -> Option<&str> {
        self.inner.names.schema.as_deref()
    }

    /// The connection pool.
    #[must_use]
    pub fn pool(&self) -> &deadpool_postgres::Pool {
        &self.inner.conn.pool
    }
}

/// A stored version as the contract's `u64`.
fn version_of(id: &SessionId, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::decode(id, format!("the version column holds {v}, a negative number"), None))
}

/// The session id in an id column, if it holds one.
fn id_of(row: &Row) -> std::result::Result<SessionId, Fingerprint> {
    match row.try_get::<_, &str>(0) {
        Ok(text) => text
            .parse::<SessionId>()
            .map_err(|_| Fingerprint::of_bytes(text.as_bytes())),
        Err(_) => Err(Fingerprint::of_bytes(b"")),
    }
}

/// The ids of `rows`, skipping (with a warning naming its fingerprint) a
/// row whose id column holds no session id: a row this store never wrote.
fn ids_of(rows: &[Row], table: &str, what: &str) -> Vec<ListingHandle> {
    rows.iter()
        .filter_map(|row| match id_of(row) {
            Ok(id) => Some(ListingHandle::from_stored(id)),
            Err(fingerprint) => {
                tracing::warn!(table, id = %fingerprint, "{what} skipped a row whose id column holds no valid session id");
                None
            }
        })
        .collect()
}

fn decode_row(id: &SessionId, row: &Row) -> Result<Record> {
    let bytes: &[u8] = row
        .try_get(0)
        .map_err(|e| Error::decode(id, "the body column is not bytea", Some(Box::new(e))))?;
    let expires_at: i64 = row
        .try_get(1)
        .map_err(|e| Error::decode(id, "the expires_at column is not a bigint", Some(Box::new(e))))?;
    let version: i64 = row
        .try_get(2)
        .map_err(|e| Error::decode(id, "the version column is not a bigint", Some(Box::new(e))))?;
    codec::decode_body(*id, bytes, Timestamp::from_millis(expires_at), version_of(id, version)?)
}

/// The owner column's value: the record's owner.
fn owner_of(record: &Record) -> Option<&str> {
    record.owner.as_deref()
}

#[async_trait]
impl SessionStore for PostgresStore {
    fn clock(&self) -> SharedClock {
        Arc::clone(&self.inner.clock)
    }

    async fn create(&self, record: &Record) -> Result<u64> {
        let s = &*self.inner;
        codec::check_size(&record.data, s.max_record_bytes)?;
        let body = codec::encode_body(record)?;
        let (key, expires_at, owner) = (record.id.encode(), record.expires_at.as_millis(), owner_of(record));
        let (key, body) = (key.as_str(), body.as_slice());
        let created = s
            .conn
            .run("create", |c| async move {
                let stmt = c.prepare_cached(&s.sql.create).await?;
                Ok(c.execute(&stmt, &[&key, &body, &expires_at, &s.now(), &owner]).await?)
            })
            .await?;
        if created == 0 {
            return Err(Error::IdCollision { id: record.id });
        }
        Ok(1)
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let s = &*self.inner;
        let key = id.encode();
        let key = key.as_str();
        let row = s
            .conn
            .run("load", |c| async move {
                let stmt = c.prepare_cached(&s.sql.load).await?;
                Ok(c.query_opt(&stmt, &[&key, &s.now()]).await?)
            })
            .await?;
        row.map(|row| decode_row(id, &row)).transpose()
    }

    async fn save(&self, record: &Record) -> Result<u64> {
        let s = &*self.inner;
        codec::check_size(&record.data, s.max_record_bytes)?;
        let body = codec::encode_body(record)?;
        let (key, expires_at, owner) = (record.id.encode(), record.expires_at.as_millis(), owner_of(record));
        let (key, body) = (key.as_str(), body.as_slice());
        let version: i64 = s
            .conn
            .run("save", |c| async move {
                let stmt = c.prepare_cached(&s.sql.save).await?;
                Ok(c.query_one(&stmt, &[&key, &body, &expires_at, &s.now(), &owner])
                    .await?
                    .try_get(0)?)
            })
            .await?;
        version_of(&record.id, version)
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        let s = &*self.inner;
        codec::check_size(&record.data, s.max_record_bytes)?;
        let conflict = Error::Conflict {
            id: record.id,
            expected: record.version,
        };
        // A version a bigint cannot hold was never stored.
        let Ok(expected) = i64::try_from(record.version) else {
            return Err(conflict);
        };
        let body = codec::encode_body(record)?;
        let (key, expires_at, owner) = (record.id.encode(), record.expires_at.as_millis(), owner_of(record));
        let (key, body) = (key.as_str(), body.as_slice());
        let written = s
            .conn
            .run("save_if_version", |c| async move {
                let stmt = c.prepare_cached(&s.sql.save_if_version).await?;
                Ok(
                    c.execute(&stmt, &[&key, &body, &expires_at, &expected, &s.now(), &owner])
                        .await?,
                )
            })
            .await?;
        if written == 0 {
            return Err(conflict);
        }
        Ok(record.version + 1)
    }

    /// One statement (the trait's default costs a write per version).
    async fn import(&self, record: &Record) -> Result<bool> {
        let s = &*self.inner;
        let now = s.now();
        // A version a bigint cannot hold is refused like any bad input.
        let Ok(version) = i64::try_from(record.version) else {
            return Err(Error::config(format!(
                "import of version {}: PostgreSQL keeps versions up to {}",
                record.version,
                i64::MAX
            )));
        };
        if record.expires_at.as_millis() <= now || version == 0 {
            return Ok(false);
        }
        codec::check_size(&record.data, s.max_record_bytes)?;
        let body = codec::encode_body(record)?;
        let (key, expires_at, owner) = (record.id.encode(), record.expires_at.as_millis(), owner_of(record));
        let (key, body) = (key.as_str(), body.as_slice());
        let written = s
            .conn
            .run("import", |c| async move {
                let stmt = c.prepare_cached(&s.sql.import).await?;
                Ok(c.execute(&stmt, &[&key, &body, &expires_at, &version, &now, &owner])
                    .await?)
            })
            .await?;
        Ok(written == 1)
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        let s = &*self.inner;
        let key = id.encode();
        let (key, expires_at) = (key.as_str(), expires_at.as_millis());
        let touched = s
            .conn
            .run("touch", |c| async move {
                let stmt = c.prepare_cached(&s.sql.touch).await?;
                Ok(c.execute(&stmt, &[&key, &expires_at, &s.now()]).await?)
            })
            .await?;
        Ok(touched > 0)
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        let s = &*self.inner;
        let key = id.encode();
        let key = key.as_str();
        s.conn
            .run("delete", |c| async move {
                let stmt = c.prepare_cached(&s.sql.delete).await?;
                c.execute(&stmt, &[&key]).await?;
                Ok(())
            })
            .await
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let s = &*self.inner;
        let (old_key, new_key) = (old.encode(), new.encode());
        let (old_key, new_key) = (old_key.as_str(), new_key.as_str());
        let new = *new;
        s.conn
            .run("rotate", |c| async move {
                let stmt = c.prepare_cached(&s.sql.rotate).await?;
                let row = match c.query_one(&stmt, &[&old_key, &new_key, &s.now()]).await {
                    Ok(row) => row,
                    // A live row appeared under the new id after the
                    // statement's snapshot: the guard divided by zero, or
                    // the insert met the row as a unique violation. Either
                    // way the statement was rolled back, the old row kept.
                    Err(e)
                        if e.code() == Some(&SqlState::DIVISION_BY_ZERO)
                            || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
                    {
                        return Err(Error::IdCollision { id: new }.into());
                    }
                    Err(e) => return Err(e.into()),
                };
                let collides: bool = row.try_get(0)?;
                let moved: i64 = row.try_get(1)?;
                if collides {
                    return Err(Attempt::Store(Error::IdCollision { id: new }));
                }
                Ok(moved > 0)
            })
            .await
    }

    async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge().await
    }

    async fn count(&self) -> Result<u64> {
        let s = &*self.inner;
        let n: i64 = s
            .conn
            .run("count", |c| async move {
                let stmt = c.prepare_cached(&s.sql.count).await?;
                Ok(c.query_one(&stmt, &[&s.now()]).await?.try_get(0)?)
            })
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn ids(&self) -> Result<Vec<ListingHandle>> {
        let s = &*self.inner;
        let rows = s
            .conn
            .run("ids", |c| async move {
                let stmt = c.prepare_cached(&s.sql.ids).await?;
                Ok(c.query(&stmt, &[&s.now()]).await?)
            })
            .await?;
        Ok(ids_of(&rows, &s.names.table, "ids"))
    }

    fn listing_handle(&self, id: &SessionId) -> ListingHandle {
        ListingHandle::from_stored(*id)
    }

    async fn load_listed(&self, handle: &ListingHandle) -> Result<Option<Record>> {
        self.load(&handle.stored()).await
    }

    async fn delete_listed(&self, handle: &ListingHandle) -> Result<()> {
        self.delete(&handle.stored()).await
    }

    async fn clear(&self) -> Result<()> {
        let s = &*self.inner;
        s.conn
            .run("clear", |c| async move {
                let stmt = c.prepare_cached(&s.sql.clear).await?;
                c.execute(&stmt, &[]).await?;
                Ok(())
            })
            .await
    }

    async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListingHandle>> {
        let s = &*self.inner;
        let rows = s
            .conn
            .run("owner_sessions", |c| async move {
                let stmt = c.prepare_cached(&s.sql.owner_sessions).await?;
                Ok(c.query(&stmt, &[&owner, &s.now()]).await?)
            })
            .await?;
        Ok(ids_of(&rows, &s.names.table, "owner_sessions"))
    }

    async fn delete_owner_sessions(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64> {
        let s = &*self.inner;
        let keep = keep.map(|id| id.encode());
        let keep = keep.as_ref().map(|k| k.as_str());
        let live: i64 = s
            .conn
            .run("delete_owner_sessions", |c| async move {
                let stmt = c.prepare_cached(&s.sql.delete_owner_sessions).await?;
                Ok(c.query_one(&stmt, &[&owner, &keep, &s.now()]).await?.try_get(0)?)
            })
            .await?;
        Ok(live.max(0) as u64)
    }
}

/// The README's example, compiled as a doctest so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
