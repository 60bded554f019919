//! A MySQL and MariaDB session store (mysql_async): one table shared by
//! every app server.
//!
//! ```no_run
//! use session_store_core::{Clock, Expiry, Record, SessionData, SessionStore, SystemClock};
//! use session_store_mysql::MysqlStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MysqlStore::builder("mysql://app:secret@127.0.0.1:3306/app")
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
//! # let pool: mysql_async::Pool = unimplemented!();
//! let store = MysqlStore::with_pool(pool).table("auth_sessions").build().await?;
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! Records live in one InnoDB table ([`MysqlStoreBuilder::table`]):
//! `id VARBINARY(64) PRIMARY KEY` (the 22-character id, compared byte for
//! byte whatever the server's collation), `body LONGBLOB` (created time,
//! owner and data, [`codec::encode_body`]), `expires_at BIGINT` (the
//! deadline in Unix milliseconds, indexed), `version BIGINT UNSIGNED`, and
//! `owner BLOB` with `owner_key BINARY(32)` (a hash of the owner, indexed
//! with the deadline). The table is made when a store is built; its schema
//! version is kept in `session_store_schema`, in the same database, and a
//! table a newer build migrated is refused.
//!
//! # Operations
//!
//! One statement, so one round trip and atomic, wherever the server
//! allows: create is an `INSERT ... ON DUPLICATE KEY UPDATE` whose
//! assignments replace the stored row only if it has expired (a live row
//! is never overwritten: no row changes, and that is the collision); save
//! bumps the version in its `ON DUPLICATE KEY UPDATE` and reads it back as
//! the statement's `LAST_INSERT_ID`; save-if-version is an `UPDATE` whose
//! `WHERE` compares the version; touch is an `UPDATE` of the deadline. Two
//! calls are a short transaction: rotate (move the live row by updating
//! its key; a duplicate key there is the collision, unless the row holding
//! the new id has expired, which is then removed and the move made again)
//! and import (lock the id, compare the
//! versions, write). Statements are prepared once per connection
//! (mysql_async's statement cache, kept across uses of a pooled
//! connection). Liveness is decided with the store's injected clock, whose
//! time is a parameter of every statement; the server's `NOW()` is never
//! asked.
//!
//! # Failures
//!
//! Every call is bounded by [`MysqlStoreBuilder::timeout`] (waiting for a
//! connection, connecting, the statements) and answers [`Error::Timeout`]
//! past it. A deadlock or lock wait timeout is retried a few times
//! ([`MysqlStoreBuilder::max_retries`]), then answered with
//! [`Error::Timeout`]. A connection the server dropped is left out of the
//! pool and replaced at the next call, so the store recovers by itself once
//! the server is back. Error messages keep the server's error number and
//! message, except a duplicate-key message (which quotes the key), so no
//! session id reaches an error or a log line. A table dropped or altered
//! under a running store answers [`Error::Corrupt`].
//!
//! # Durability
//!
//! An acknowledged write is committed: as durable as the server is
//! configured to be (`innodb_flush_log_at_trx_commit=1`, the default,
//! flushes the log at every commit; `sync_binlog` for the binary log).
//!
//! # Purging
//!
//! [`SessionStore::purge_expired`] deletes expired rows in batches on the
//! expiry index, each its own short transaction, sized to take about
//! [`MysqlStoreBuilder::purge_batch_time`]; run it from core's background
//! `Purger`.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod pool;
mod purge;
mod schema;

use std::fmt;
use std::sync::Arc;

pub use mysql_async;

use mysql_async::TxOpts;
use mysql_async::prelude::Queryable;
use session_store_core::{
    EncodedId, Error, Fingerprint, ListingHandle, Record, Result, SessionId, SessionStore, SharedClock, Timestamp,
    async_trait, owner_key, raw::codec,
};

pub use builder::{
    DEFAULT_MAX_RETRIES, DEFAULT_POOL_SIZE, DEFAULT_PURGE_BATCH, DEFAULT_PURGE_BATCH_TIME, DEFAULT_TABLE,
    DEFAULT_TIMEOUT, MysqlStoreBuilder,
};
pub use schema::{SCHEMA_TABLE, SCHEMA_VERSION};

use pool::{Attempt, Conn, code, server_code};
use schema::Sql;

/// The MySQL (or MariaDB) store. Cloning it shares the same pool.
#[derive(Clone)]
pub struct MysqlStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) sql: Sql,
    pub(crate) table: String,
    pub(crate) conn: Conn,
    pub(crate) clock: SharedClock,
    pub(crate) max_record_bytes: usize,
    pub(crate) purge_batch: usize,
    pub(crate) purge_batch_time: std::time::Duration,
}

impl Inner {
    pub(crate) fn now(&self) -> i64 {
        self.clock.now().as_millis()
    }
}

impl fmt::Debug for MysqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("MysqlStore")
            .field("table", &i.table)
            .field("timeout", &i.conn.timeout)
            .field("max_record_bytes", &i.max_record_bytes)
            .finish_non_exhaustive()
    }
}

impl MysqlStore {
    /// A builder for a store on the server at `url`
    /// (`mysql://user:password@host:port/database?options`, mysql_async's
    /// URL options), with a pool of its own.
    pub fn builder(url: impl Into<String>) -> MysqlStoreBuilder {
        MysqlStoreBuilder::from_url(url.into())
    }

    /// A builder for a store on a pool the application already has. The
    /// store bounds every call by its own timeout. A pool that resets its
    /// connections when they return (mysql_async's default) prepares the
    /// statements again on every call.
    pub fn with_pool(pool: mysql_async::Pool) -> MysqlStoreBuilder {
        MysqlStoreBuilder::from_pool(pool)
    }

    /// The table holding this store's records.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// The connection pool.
    #[must_use]
    pub fn pool(&self) -> &mysql_async::Pool {
        &self.inner.conn.pool
    }
}

/// What a write stores of a record: its key, encoded body, deadline, owner
/// and the owner's index key.
struct Columns<'r> {
    key: EncodedId,
    body: Vec<u8>,
    expires_at: i64,
    owner: Option<&'r str>,
    owner_key: Option<String>,
}

impl Columns<'_> {
    /// The statement parameters, in the order every write names them.
    fn params(&self) -> (&str, &[u8], i64, Option<&str>, Option<&str>) {
        (
            self.key.as_str(),
            &self.body,
            self.expires_at,
            self.owner,
            self.owner_key.as_deref(),
        )
    }
}

impl Inner {
    /// `record`'s columns, once its data is checked against the size limit.
    fn columns<'r>(&self, record: &'r Record) -> Result<Columns<'r>> {
        codec::check_size(&record.data, self.max_record_bytes)?;
        Ok(Columns {
            key: record.id.encode(),
            body: codec::encode_body(record)?,
            expires_at: record.expires_at.as_millis(),
            owner: record.owner.as_deref(),
            owner_key: record.owner.as_deref().map(owner_key),
        })
    }
}

/// The session id in an id column, if it holds one.
fn id_of(bytes: &[u8]) -> std::result::Result<SessionId, Fingerprint> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse::<SessionId>().ok())
        .ok_or_else(|| Fingerprint::of_bytes(bytes))
}

/// The handles of `ids`, skipping (with a warning naming its fingerprint) a
/// row whose id column holds no session id: a row this store never wrote.
fn handles_of(ids: Vec<Vec<u8>>, table: &str, what: &str) -> Vec<ListingHandle> {
    ids.iter()
        .filter_map(|bytes| match id_of(bytes) {
            Ok(id) => Some(ListingHandle::from_stored(id)),
            Err(fingerprint) => {
                tracing::warn!(table, id = %fingerprint, "{what} skipped a row whose id column holds no valid session id");
                None
            }
        })
        .collect()
}

#[async_trait]
impl SessionStore for MysqlStore {
    fn clock(&self) -> SharedClock {
        Arc::clone(&self.inner.clock)
    }

    async fn create(&self, record: &Record) -> Result<u64> {
        let s = &*self.inner;
        let columns = s.columns(record)?;
        let (key, body, expires_at, owner, owner_key) = columns.params();
        let kept_live = s
            .conn
            .run("create", |mut c| async move {
                let now = s.now();
                c.exec_drop(
                    &s.sql.create,
                    (key, body, expires_at, 1_u64, owner, owner_key, now, now, now, now, now),
                )
                .await?;
                Ok(c.last_insert_id() == Some(2))
            })
            .await?;
        if kept_live {
            return Err(Error::IdCollision { id: record.id });
        }
        Ok(1)
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let s = &*self.inner;
        let key = id.encode();
        let key = key.as_str();
        let row: Option<mysql_async::Row> = s
            .conn
            .run("load", |mut c| async move {
                Ok(c.exec_first(&s.sql.load, (key, s.now())).await?)
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        // Never a panic, nor the row in a message: columns another program
        // changed are this record's decode error.
        let (body, expires_at, version) = mysql_async::from_row_opt::<(Vec<u8>, i64, u64)>(row)
            .map_err(|_| Error::decode(*id, "the row's columns are not of the types this store writes", None))?;
        codec::decode_body(*id, &body, Timestamp::from_millis(expires_at), version).map(Some)
    }

    async fn save(&self, record: &Record) -> Result<u64> {
        let s = &*self.inner;
        let columns = s.columns(record)?;
        let (key, body, expires_at, owner, owner_key) = columns.params();
        s.conn
            .run("save", |mut c| async move {
                c.exec_drop(&s.sql.save, (key, body, expires_at, 1_u64, owner, owner_key, s.now()))
                    .await?;
                // 1: inserted (version 1); otherwise the version the update
                // wrote came back as the insert id.
                if c.affected_rows() == 1 {
                    return Ok(1);
                }
                c.last_insert_id().filter(|v| *v > 0).ok_or_else(|| {
                    Attempt::Store(Error::backend_msg(
                        "mysql",
                        "MySQL: save did not report the version it wrote",
                    ))
                })
            })
            .await
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        let s = &*self.inner;
        let columns = s.columns(record)?;
        let (key, body, expires_at, owner, owner_key) = columns.params();
        let expected = record.version;
        let written = s
            .conn
            .run("save_if_version", |mut c| async move {
                c.exec_drop(
                    &s.sql.save_if_version,
                    (body, expires_at, owner, owner_key, key, expected, s.now()),
                )
                .await?;
                Ok(c.affected_rows())
            })
            .await?;
        if written == 0 {
            return Err(Error::Conflict {
                id: record.id,
                expected: record.version,
            });
        }
        Ok(record.version + 1)
    }

    /// One short transaction (the trait's default costs a write per
    /// version): lock the id, compare, write.
    async fn import(&self, record: &Record) -> Result<bool> {
        let s = &*self.inner;
        let now = s.now();
        if record.expires_at.as_millis() <= now || record.version == 0 {
            return Ok(false);
        }
        let columns = s.columns(record)?;
        let (key, body, expires_at, owner, owner_key) = columns.params();
        let version = record.version;
        s.conn
            .run("import", |mut c| async move {
                let mut tx = c.start_transaction(TxOpts::default()).await?;
                let stored: Option<mysql_async::Row> = tx.exec_first(&s.sql.import_lock, (key,)).await?;
                // A row whose columns do not convert is no live record of ours.
                let stored = stored.and_then(|row| mysql_async::from_row_opt::<(u64, i64)>(row).ok());
                if stored.is_some_and(|(v, e)| e > now && v >= version) {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.exec_drop(&s.sql.import_write, (key, body, expires_at, version, owner, owner_key))
                    .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        let s = &*self.inner;
        let key = id.encode();
        let (key, expires_at) = (key.as_str(), expires_at.as_millis());
        s.conn
            .run("touch", |mut c| async move {
                c.exec_drop(&s.sql.touch, (expires_at, key, s.now())).await?;
                // Changed, or matched with the same deadline (the insert id
                // the assignment set says so).
                Ok(c.affected_rows() > 0 || c.last_insert_id() == Some(1))
            })
            .await
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        let s = &*self.inner;
        let key = id.encode();
        let key = key.as_str();
        s.conn
            .run("delete", |mut c| async move {
                c.exec_drop(&s.sql.delete, (key,)).await?;
                Ok(())
            })
            .await
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let s = &*self.inner;
        let (old_key, new_key) = (old.encode(), new.encode());
        let (old_key, new_key) = (old_key.as_str(), new_key.as_str());
        if old == new {
            // Onto itself: a live record is in the way of its own move.
            return match self.load(old).await? {
                Some(_) => Err(Error::IdCollision { id: *new }),
                None => Ok(false),
            };
        }
        let new = *new;
        s.conn
            .run("rotate", |mut c| async move {
                let now = s.now();
                let mut tx = c.start_transaction(TxOpts::default()).await?;
                // The move first: it locks the old row, not a gap for
                // concurrent rotates to deadlock on. A duplicate key rolls
                // back that statement alone.
                let mut cleared = false;
                loop {
                    match tx.exec_drop(&s.sql.rotate_move, (new_key, old_key, now)).await {
                        Ok(()) => break,
                        Err(e) if server_code(&e) == Some(code::DUP_ENTRY) && !cleared => {
                            // An expired row under the new id is as good as
                            // absent: remove it and move again. A live one is
                            // the collision (rolled back on drop).
                            tx.exec_drop(&s.sql.rotate_clear, (new_key, now)).await?;
                            if tx.affected_rows() == 0 {
                                return Err(Attempt::Store(Error::IdCollision { id: new }));
                            }
                            cleared = true;
                        }
                        Err(e) if server_code(&e) == Some(code::DUP_ENTRY) => {
                            return Err(Attempt::Store(Error::IdCollision { id: new }));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                let moved = tx.affected_rows() > 0;
                tx.commit().await?;
                Ok(moved)
            })
            .await
    }

    async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge().await
    }

    async fn ids(&self) -> Result<Vec<ListingHandle>> {
        let s = &*self.inner;
        let ids: Vec<Vec<u8>> = s
            .conn
            .run("ids", |mut c| async move { Ok(c.exec(&s.sql.ids, (s.now(),)).await?) })
            .await?;
        Ok(handles_of(ids, &s.table, "ids"))
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
            .run("clear", |mut c| async move {
                c.query_drop(&s.sql.clear).await?;
                Ok(())
            })
            .await
    }

    async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListingHandle>> {
        let s = &*self.inner;
        let key = owner_key(owner);
        let key = key.as_str();
        let ids: Vec<Vec<u8>> = s
            .conn
            .run("owner_sessions", |mut c| async move {
                Ok(c.exec(&s.sql.owner_sessions, (key, owner, s.now())).await?)
            })
            .await?;
        Ok(handles_of(ids, &s.table, "owner_sessions"))
    }

    async fn delete_owner_sessions(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64> {
        let s = &*self.inner;
        let key = owner_key(owner);
        let key = key.as_str();
        // No id is empty: "keep nothing".
        let keep = keep.map(|id| id.encode());
        let keep = keep.as_ref().map_or("", |k| k.as_str());
        s.conn
            .run("delete_owner_sessions", |mut c| async move {
                c.exec_drop(&s.sql.delete_owner_sessions, (key, owner, s.now(), keep))
                    .await?;
                Ok(c.affected_rows())
            })
            .await
    }
}

/// The README's example, compiled as a doctest so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
