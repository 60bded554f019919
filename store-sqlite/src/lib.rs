//! An embedded SQLite session store: one file, nothing to install, shared
//! safely by several processes.
//!
//! ```
//! use session_store_core::{Clock, Expiry, Record, SessionData, SessionStore, SystemClock};
//! use session_store_sqlite::SqliteStore;
//!
//! # tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::builder(dir.path().join("sessions.db")).table("sessions").open()?;
//! let mut data = SessionData::new();
//! data.insert("count", &1)?;
//! let record = Record::new(data, SystemClock.now(), &Expiry::default());
//! store.create(&record).await?;
//! let loaded = store.load(&record.id).await?.expect("live");
//! assert_eq!(loaded.data.get::<i32>("count")?, Some(1));
//! assert_eq!(loaded.version, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Records live in one table (name configurable, see
//! [`SqliteStoreBuilder::table`]): the 22-character id as primary key, the
//! encoded data ([`codec::encode_body`]), the deadline in integer
//! milliseconds with an index, and the version. The database runs in WAL
//! mode, so readers never wait for the writer; each store keeps one writer
//! connection and a few reader connections. Every operation is one SQL
//! statement or one `BEGIN IMMEDIATE` transaction, so it is atomic across
//! threads and processes. Liveness is decided with the store's clock, passed
//! to SQL as a parameter: SQLite's own time is never asked.
//!
//! SQLite calls block. A load (a point read of microseconds) runs on the
//! calling thread when a reader connection is free, and a save (also a
//! conditional save or a touch, the writes of the session handle and the
//! layer) when the writer connection is free and `synchronous` is
//! `NORMAL`, in both cases
//! only if SQLite answers without waiting. Every other call, and a load or
//! save that would wait, runs
//! under [`tokio::task::block_in_place`] on a multi-threaded tokio runtime
//! (no hop to another thread; the runtime moves its other tasks away) and on
//! tokio's blocking pool ([`tokio::task::spawn_blocking`]) on a
//! current-thread runtime. See [`Blocking`]: `Blocking::InPlace` keeps
//! loads and saves off the worker threads too.
//!
//! See the crate README for the schema, the settings and what they risk,
//! sharing one file between processes, and purging.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod inspect;
mod schema;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use session_store_core::{
    DEFAULT_MAX_RECORD_BYTES, Error, Fingerprint, ListingHandle, Record, Result, SessionId, SessionStore, SharedClock,
    Timestamp, async_trait, raw::codec, system_clock,
};

pub use session_store_core::raw::blocking::Blocking;
use session_store_core::raw::blocking::{Wait, run_blocking, run_quick_or_blocking};

use schema::Sql;

/// The default table name.
pub const DEFAULT_TABLE: &str = "sessions";

/// The size of a purge's first batch, and the smallest batch (default of
/// [`SqliteStoreBuilder::purge_batch`]).
pub const DEFAULT_PURGE_BATCH: usize = 10_000;

/// How long one purge batch should hold the write lock (default of
/// [`SqliteStoreBuilder::purge_batch_time`]).
pub const DEFAULT_PURGE_BATCH_TIME: Duration = Duration::from_millis(50);

/// SQLite's default `wal_autocheckpoint`, in pages: the WAL is copied back
/// into the database file at the first commit that leaves it this long.
const WAL_AUTOCHECKPOINT: i64 = 1_000;

/// `wal_autocheckpoint` while a purge runs batches (32 MiB of 4 KiB pages).
const PURGE_WAL_AUTOCHECKPOINT: i64 = 8_192;

/// The most bytes a WAL file is left holding after a checkpoint resets it
/// (`PRAGMA journal_size_limit`): 8 MiB. Between checkpoints the WAL holds
/// about [`WAL_AUTOCHECKPOINT`] pages (4 MiB of 4 KiB pages), 32 MiB at most
/// while a purge defers its checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 8 << 20;

/// How often (in writes) the writer looks at the WAL's size.
const WAL_CHECK_EVERY: usize = 256;

/// The WAL size past which the writer forces a RESTART checkpoint: 16 MiB.
const WAL_RESTART_BYTES: u64 = 16 << 20;

/// Creates the database file's missing parent directories (mode 0700) and
/// the file itself (mode 0600) before SQLite opens it, so that SQLite,
/// which gives its `-wal` and `-shm` files the database file's mode, makes
/// them owner-only too. An existing file or directory keeps its mode.
fn create_owner_only(path: &Path) -> Result<()> {
    let failed = |what: &str, e: std::io::Error| {
        Error::backend("sqlite", format!("SQLite: {what} {} failed", path.display()), e)
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| failed("creating the directory of", e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(failed("creating", e)),
    }
}

/// The default of [`SqliteStoreBuilder::mmap_size`]: 0, no memory map.
/// A reader that maps the file unmaps it at its next read after any commit
/// (SQLite remaps a changed database), and the unmapping shoots down TLB
/// entries on every CPU: under a mix of loads and saves that cost more than
/// the map saved.
pub const DEFAULT_MMAP_SIZE: u64 = 0;

/// The default of [`SqliteStoreBuilder::cache_size`]: 32 MiB.
pub const DEFAULT_CACHE_SIZE: u64 = 32 << 20;

/// SQLite's `synchronous` setting: what a commit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// `NORMAL` (the default): in WAL mode a commit is durable against a
    /// crash of the process, but the last commits before a power loss or an
    /// operating system crash may be lost (the database stays consistent).
    /// Commits do not wait for fsync.
    #[default]
    Normal,
    /// `FULL`: every commit fsyncs the WAL, so it survives a power loss too;
    /// each write costs one fsync more.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// Builds a [`SqliteStore`]: `SqliteStore::builder(path)...open()`.
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    table: String,
    clock: SharedClock,
    max_record_bytes: usize,
    busy_timeout: Duration,
    synchronous: Synchronous,
    readers: usize,
    purge_batch: usize,
    purge_batch_time: Duration,
    mmap_size: u64,
    cache_size: u64,
    blocking: Blocking,
}

impl SqliteStoreBuilder {
    fn new(path: PathBuf) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            path,
            table: DEFAULT_TABLE.to_owned(),
            clock: system_clock(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            readers: cpus.clamp(2, 8),
            purge_batch: DEFAULT_PURGE_BATCH,
            purge_batch_time: DEFAULT_PURGE_BATCH_TIME,
            mmap_size: DEFAULT_MMAP_SIZE,
            cache_size: DEFAULT_CACHE_SIZE,
            blocking: Blocking::Auto,
        }
    }

    /// The table holding this store's records (default `sessions`). Two
    /// stores on one file with different tables are isolated namespaces.
    /// Must be a plain identifier, `[A-Za-z_][A-Za-z0-9_]{0,62}`, not
    /// starting with `sqlite_`; like all SQLite names it is
    /// case-insensitive. Checked by [`open`](Self::open).
    #[must_use]
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The clock every liveness decision asks (default: the system clock).
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

    /// How long an operation waits for another connection or process that
    /// holds the write lock before it fails with [`Error::Timeout`]
    /// (default 5 s).
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The `synchronous` setting (default [`Synchronous::Normal`]).
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// The number of reader connections (default: one per CPU, between 2
    /// and 8). Loads, counts and id listings use them, in parallel with the
    /// one writer connection.
    #[must_use]
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers.clamp(1, 64);
        self
    }

    /// How many expired rows the first statement of a purge deletes, and
    /// the fewest any later one deletes (default [`DEFAULT_PURGE_BATCH`]).
    /// Later batches grow while they finish well within
    /// [`purge_batch_time`](Self::purge_batch_time) and shrink when one
    /// overruns it.
    #[must_use]
    pub fn purge_batch(mut self, rows: usize) -> Self {
        self.purge_batch = rows.max(1);
        self
    }

    /// How long one purge statement should hold the write lock (default
    /// [`DEFAULT_PURGE_BATCH_TIME`], 50 ms): the batch size adapts so that
    /// each batch takes about this long, so other writers (in this process
    /// and in others) wait at most about this long for a purge.
    /// `Duration::ZERO` keeps every batch at
    /// [`purge_batch`](Self::purge_batch) rows.
    #[must_use]
    pub fn purge_batch_time(mut self, time: Duration) -> Self {
        self.purge_batch_time = time;
        self
    }

    /// The most bytes of the database file each reader connection maps
    /// into memory (`PRAGMA mmap_size`; default [`DEFAULT_MMAP_SIZE`], 0:
    /// off; the writer never maps). Mapped pages are read without a system
    /// call or a copy, which helps a store that is read far more than
    /// written; but SQLite drops a reader's map at its next read after any
    /// commit, so with writes among the reads mapping is slower (see
    /// [`DEFAULT_MMAP_SIZE`]).
    /// The risk: an I/O error on a mapped page (a failing disk, a file
    /// truncated behind SQLite's back) kills the process with `SIGBUS`
    /// instead of returning an error. It only reserves address space.
    #[must_use]
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        self.mmap_size = bytes;
        self
    }

    /// The page cache of each connection, in bytes (`PRAGMA cache_size`;
    /// default [`DEFAULT_CACHE_SIZE`], 32 MiB; SQLite's own default is
    /// 2 MiB). Memory is taken as pages are used, up to this bound per
    /// connection (the writer and every reader).
    #[must_use]
    pub fn cache_size(mut self, bytes: u64) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Where blocking SQLite calls run (default [`Blocking::Auto`]).
    #[must_use]
    pub fn blocking(mut self, blocking: Blocking) -> Self {
        self.blocking = blocking;
        self
    }

    /// Opens (creating if needed) the database file, switches it to WAL,
    /// and creates or migrates the table. Blocks briefly; several processes
    /// may open the same file at once.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid table name or a table written by a
    /// newer version of this crate; [`Error::Backend`] for a file that
    /// cannot be opened or is not a database; [`Error::Timeout`] when another process holds the lock
    /// longer than the busy timeout.
    pub fn open(self) -> Result<SqliteStore> {
        schema::validate_table(&self.table)?;
        let retry = Retry {
            timeout: self.busy_timeout,
        };
        create_owner_only(&self.path)?;
        let mut writer = retry.run("opening the database", || Ok(self.connect(false)?))?;
        let migrate = |writer: &mut Connection| {
            let mut full = false;
            let result = retry.run("creating the table", || {
                full = false;
                match schema::migrate(writer, &self.table) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(message)) => Err(Failure::Store(Error::config(message))),
                    Err(e) => {
                        full = is_disk_full(&e);
                        Err(Failure::Sql(e))
                    }
                }
            });
            (result, full)
        };
        // A WAL left filling a small disk: truncated, then the table is
        // checked again (as a write does; see `Inner::write`).
        match migrate(&mut writer) {
            (Err(_), true) if free_wal(&writer) => migrate(&mut writer).0?,
            (result, _) => result?,
        }
        let readers = (0..self.readers)
            .map(|_| retry.run("opening a reader connection", || Ok(self.connect(true)?)))
            .map(|c| c.map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                sql: Sql::new(&self.table),
                writer: Mutex::new(writer),
                readers: readers.into_boxed_slice(),
                next_reader: AtomicUsize::new(0),
                writes: AtomicUsize::new(0),
                retry,
                clock: self.clock,
                max_record_bytes: self.max_record_bytes,
                purge_batch: self.purge_batch,
                purge_batch_time: self.purge_batch_time,
                blocking: self.blocking,
                path: self.path,
                table: self.table,
                synchronous: self.synchronous,
            }),
        })
    }

    fn connect(&self, reader: bool) -> rusqlite::Result<Connection> {
        let flags = if reader {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(self.busy_timeout)?;
        if !reader {
            // Persistent in the file; a no-op once set.
            let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(rusqlite::Error::InvalidParameterName(format!(
                    "the database refused WAL mode (journal_mode is {mode})"
                )));
            }
        }
        conn.pragma_update(None, "synchronous", self.synchronous.pragma())?;
        // Checkpoints reuse the WAL from its start; this truncates a WAL
        // that a large transaction or a deferred checkpoint left longer.
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
        // Negative: a size in KiB rather than in pages.
        let cache_kib = -i64::try_from(self.cache_size / 1024).unwrap_or(i64::MAX);
        conn.pragma_update(None, "cache_size", cache_kib)?;
        // Readers only: on the writer, mapping made large saves (64 KB,
        // overflow pages) about twice as slow, and its page cache already
        // serves the pages it writes.
        let mmap = if reader {
            i64::try_from(self.mmap_size).unwrap_or(i64::MAX)
        } else {
            0
        };
        // SQLite answers with the size it granted (capped at compile time),
        // or nothing where memory mapping is unavailable.
        conn.query_row(&format!("PRAGMA mmap_size = {mmap}"), [], |_| Ok(()))
            .optional()?;
        if reader {
            conn.pragma_update(None, "query_only", true)?;
            // A reader never waits inside SQLite: a load may run directly on
            // an async worker thread (`Inner::read_as`), which must not
            // sleep in SQLite's busy handler; `Retry` waits instead.
            conn.busy_timeout(Duration::ZERO)?;
        }
        conn.set_prepared_statement_cache_capacity(24);
        Ok(conn)
    }
}

/// The SQLite store. Cloning it shares the same connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    sql: Sql,
    writer: Mutex<Connection>,
    readers: Box<[Mutex<Connection>]>,
    next_reader: AtomicUsize,
    /// Writes so far, to look at the WAL's size every [`WAL_CHECK_EVERY`].
    writes: AtomicUsize,
    retry: Retry,
    clock: SharedClock,
    max_record_bytes: usize,
    purge_batch: usize,
    purge_batch_time: Duration,
    blocking: Blocking,
    path: PathBuf,
    table: String,
    synchronous: Synchronous,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("SqliteStore")
            .field("path", &i.path)
            .field("table", &i.table)
            .field("readers", &i.readers.len())
            .field("synchronous", &i.synchronous)
            .field("busy_timeout", &i.retry.timeout)
            .field("max_record_bytes", &i.max_record_bytes)
            .finish_non_exhaustive()
    }
}

/// A failure inside an operation: an SQLite error (retried when busy) or
/// a store error to return as is.
enum Failure {
    Sql(rusqlite::Error),
    Store(Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Store(e)
    }
}

type Op<T> = std::result::Result<T, Failure>;

/// Retries an atomic operation that SQLite refused with `SQLITE_BUSY` or
/// `SQLITE_LOCKED` (cases where its own busy handler does not wait, such as
/// WAL recovery by another process), until the busy timeout has passed.
#[derive(Debug, Clone, Copy)]
struct Retry {
    timeout: Duration,
}

impl Retry {
    fn run<T>(&self, what: &str, mut op: impl FnMut() -> Op<T>) -> Result<T> {
        let start = Instant::now();
        let mut pause = Duration::from_micros(500);
        loop {
            match op() {
                Ok(value) => return Ok(value),
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::Sql(e)) if is_busy(&e) => {
                    if start.elapsed() >= self.timeout {
                        tracing::warn!(operation = what, timeout = ?self.timeout, "SQLite stayed busy past the busy timeout");
                        return Err(Error::Timeout(self.timeout));
                    }
                    tracing::debug!(operation = what, error = %e, "SQLite busy, retrying");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(Failure::Sql(e)) => return Err(failed(what, e)),
            }
        }
    }
}

/// The store error for an SQLite error that is not worth a retry.
fn failed(what: &str, e: rusqlite::Error) -> Error {
    tracing::debug!(operation = what, error = %e, "SQLite failed");
    if is_corrupt(&e) {
        return Error::corrupt(
            "sqlite",
            format!("SQLite: {what} failed: the database file is damaged"),
            Some(Box::new(e)),
        );
    }
    Error::backend("sqlite", format!("SQLite: {what} failed"), e)
}

/// Whether SQLite found the database file damaged, or not a database: a
/// retry cannot help, an operator must restore or remove it.
fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// The answer of a call made without waiting: `None` when SQLite was busy
/// (the call did nothing and is made again where it may wait).
fn quick_answer<T>(what: &str, result: Op<T>) -> Option<Result<T>> {
    match result {
        Ok(value) => Some(Ok(value)),
        Err(Failure::Sql(e)) if is_busy(&e) => None,
        Err(Failure::Sql(e)) => Some(Err(failed(what, e))),
        Err(Failure::Store(e)) => Some(Err(e)),
    }
}

/// Whether SQLite could not write for lack of space: `SQLITE_FULL`, or
/// `SQLITE_IOERR_WRITE` (a write past a file-size limit fails with
/// `EFBIG`). Never a failed sync: a write is made again only where the
/// first one surely changed nothing.
fn is_disk_full(e: &rusqlite::Error) -> bool {
    match e.sqlite_error() {
        Some(e) => e.code == ErrorCode::DiskFull || e.extended_code == rusqlite::ffi::SQLITE_IOERR_WRITE,
        None => false,
    }
}

/// Copies the whole WAL into the database and truncates it to nothing
/// (`wal_checkpoint(TRUNCATE)`), giving its space back; whether it did.
/// Pages the WAL holds are mostly pages the database already has, so this
/// usually needs no new space.
fn free_wal(conn: &Connection) -> bool {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get::<_, i64>(0)) {
        Ok(0) => {
            tracing::info!("SQLite: a write ran out of space; the WAL was checkpointed and truncated");
            true
        }
        Ok(_) => {
            tracing::warn!("SQLite: a write ran out of space, and readers kept the WAL from being truncated");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "SQLite: a write ran out of space, and checkpointing the WAL failed too");
            false
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// A stored version as the contract's `u64`.
fn version_of(id: &SessionId, value: ValueRef<'_>) -> Result<u64> {
    match value {
        ValueRef::Integer(v) if v >= 0 => Ok(v as u64),
        other => Err(Error::decode(
            id,
            format!("the version column holds {other:?}, not a non-negative integer"),
            None,
        )),
    }
}

fn millis_of(id: &SessionId, value: ValueRef<'_>) -> Result<Timestamp> {
    match value {
        ValueRef::Integer(v) => Ok(Timestamp::from_millis(v)),
        other => Err(Error::decode(
            id,
            format!("the expires_at column holds {other:?}, not an integer"),
            None,
        )),
    }
}

/// The session id in an id column, if it holds one.
fn id_of(value: ValueRef<'_>) -> Option<SessionId> {
    match value {
        ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|t| t.parse::<SessionId>().ok()),
        _ => None,
    }
}

fn decode_row(id: &SessionId, row: &rusqlite::Row<'_>) -> Op<Record> {
    let bytes = match row.get_ref(0)? {
        ValueRef::Blob(b) | ValueRef::Text(b) => b,
        other => {
            return Err(Error::decode(id, format!("the data column holds {:?}", other.data_type()), None).into());
        }
    };
    let expires_at = millis_of(id, row.get_ref(1)?)?;
    let version = version_of(id, row.get_ref(2)?)?;
    Ok(codec::decode_body(*id, bytes, expires_at, version)?)
}

impl Inner {
    fn now(&self) -> i64 {
        self.clock.now().as_millis()
    }

    /// Runs `op` on a reader connection (a free one if any, else waits for
    /// one), with the clock's time read once the connection is held.
    fn read<T>(&self, what: &str, mut op: impl FnMut(&Connection, i64) -> Op<T>) -> Result<T> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % n;
        let conn = (0..n)
            .find_map(|k| self.readers[(start + k) % n].try_lock())
            .unwrap_or_else(|| self.readers[start].lock());
        self.retry.run(what, || op(&conn, self.now()))
    }

    /// As [`read`](Self::read) with [`Wait::Yes`]. With [`Wait::No`], only
    /// on a reader connection that is free right now and only if SQLite
    /// answers without waiting (reader connections have no busy timeout:
    /// [`Retry`] does their waiting): `None` where it would wait.
    fn read_as<T>(&self, what: &str, wait: Wait, mut op: impl FnMut(&Connection, i64) -> Op<T>) -> Option<Result<T>> {
        if wait == Wait::Yes {
            return Some(self.read(what, op));
        }
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % n;
        let conn = (0..n).find_map(|k| self.readers[(start + k) % n].try_lock())?;
        quick_answer(what, op(&conn, self.now()))
    }

    /// Runs `op` on the writer connection, with the clock's time read once
    /// the connection is held (so waiting for the lock never makes a
    /// liveness decision stale).
    ///
    /// A write that fails on a full disk (or a file-size limit) may be
    /// failing because the WAL holds the space: on a disk smaller than the
    /// WAL's automatic checkpoint (4 MiB) nothing would ever reset it, and
    /// every later write would fail too. So the writer checkpoints and
    /// truncates the WAL ([`free_wal`](Self::free_wal)), and if that worked
    /// makes the write once more (the failed one changed nothing: its
    /// transaction was rolled back).
    fn write<T>(&self, what: &str, mut op: impl FnMut(&mut Connection, i64) -> Op<T>) -> Result<T> {
        let mut conn = self.writer.lock();
        let mut full = false;
        let mut result = self.retry.run(what, || {
            let answer = op(&mut conn, self.now());
            full = matches!(&answer, Err(Failure::Sql(e)) if is_disk_full(e));
            answer
        });
        if full && free_wal(&conn) {
            result = self.retry.run(what, || op(&mut conn, self.now()));
        }
        if self.writes.fetch_add(1, Ordering::Relaxed) % WAL_CHECK_EVERY == WAL_CHECK_EVERY - 1 {
            self.bound_wal(&conn);
        }
        result
    }

    /// As [`write`](Self::write) with [`Wait::Yes`]. With [`Wait::No`],
    /// only with `synchronous = NORMAL` (a commit that waits for no fsync),
    /// only if the writer connection is free right now, only if this write
    /// is not the one that looks at the WAL's size, and only if SQLite
    /// answers without waiting (the busy timeout is off for the call):
    /// `None` where it would wait, having changed nothing (a busy statement
    /// or transaction did nothing).
    fn write_as<T>(
        &self,
        what: &str,
        wait: Wait,
        mut op: impl FnMut(&mut Connection, i64) -> Op<T>,
    ) -> Option<Result<T>> {
        if wait == Wait::Yes {
            return Some(self.write(what, op));
        }
        if self.synchronous != Synchronous::Normal
            || self.writes.load(Ordering::Relaxed) % WAL_CHECK_EVERY == WAL_CHECK_EVERY - 1
        {
            return None;
        }
        let mut conn = self.writer.try_lock()?;
        conn.busy_timeout(Duration::ZERO).ok()?;
        let result = op(&mut conn, self.now());
        if let Err(e) = conn.busy_timeout(self.retry.timeout) {
            tracing::warn!(error = %e, "SQLite: restoring the busy timeout failed");
        }
        if matches!(&result, Err(Failure::Sql(e)) if is_disk_full(e)) {
            // Made again by `write`, which frees the WAL first.
            return None;
        }
        let answer = quick_answer(what, result)?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Some(answer)
    }

    /// The WAL's hard bound. SQLite's automatic checkpoint is PASSIVE: it
    /// copies what no reader still needs, and the WAL starts over only when
    /// a checkpoint finished and no reader holds an old snapshot, so readers
    /// that overlap all the time can keep it growing. Every
    /// [`WAL_CHECK_EVERY`] writes the writer looks at the WAL's size (one
    /// `stat`); past [`WAL_RESTART_BYTES`] it runs a RESTART checkpoint,
    /// which waits (within the busy timeout) for the readers of the moment
    /// to finish, so the next write starts the WAL over, and
    /// `journal_size_limit` trims the file.
    fn bound_wal(&self, conn: &Connection) {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let Ok(meta) = std::fs::metadata(&wal) else { return };
        if meta.len() <= WAL_RESTART_BYTES {
            return;
        }
        match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| row.get::<_, i64>(0)) {
            Ok(0) => tracing::debug!(wal_bytes = meta.len(), "SQLite WAL checkpointed and restarted"),
            Ok(_) => tracing::debug!(wal_bytes = meta.len(), "SQLite WAL checkpoint could not restart yet"),
            Err(e) => tracing::warn!(error = %e, wal_bytes = meta.len(), "SQLite WAL checkpoint failed"),
        }
    }
}

impl SqliteStore {
    /// A builder for a store on the database file at `path` (created if
    /// missing).
    #[must_use]
    pub fn builder(path: impl AsRef<Path>) -> SqliteStoreBuilder {
        SqliteStoreBuilder::new(path.as_ref().to_path_buf())
    }

    /// Opens a store on `path` with the default settings (table
    /// [`DEFAULT_TABLE`], system clock).
    ///
    /// # Errors
    ///
    /// As [`SqliteStoreBuilder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open()
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The table holding this store's records.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// Runs a blocking SQLite call where [`Blocking`] says.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        run_blocking("sqlite", self.inner.blocking, &self.inner, f).await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    fn clock(&self) -> SharedClock {
        Arc::clone(&self.inner.clock)
    }

    async fn create(&self, record: &Record) -> Result<u64> {
        codec::check_size(&record.data, self.inner.max_record_bytes)?;
        let body = codec::encode_body(record)?;
        let (id, expires_at, owner) = (record.id, record.expires_at.as_millis(), record.owner.clone());
        let created = self
            .run(move |s| {
                let key = id.encode();
                s.write("create", |c, now| {
                    Ok(c.prepare_cached(&s.sql.create)?
                        .execute(params![key.as_str(), body, expires_at, now, owner])?)
                })
            })
            .await?;
        if created == 0 {
            return Err(Error::IdCollision { id: record.id });
        }
        Ok(1)
    }

    /// A point read, so on a multi-threaded runtime it runs on the calling
    /// thread when a reader connection is free and the database is not
    /// busy (see [`Blocking::Auto`]), and as every other call otherwise.
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let id = *id;
        let key = id.encode();
        run_quick_or_blocking("sqlite", self.inner.blocking, &self.inner, move |s, wait| {
            s.read_as("load", wait, |c, now| {
                let mut stmt = c.prepare_cached(&s.sql.load)?;
                let mut rows = stmt.query(params![key.as_str(), now])?;
                match rows.next()? {
                    Some(row) => Ok(Some(decode_row(&id, row)?)),
                    None => Ok(None),
                }
            })
        })
        .await
    }

    async fn save(&self, record: &Record) -> Result<u64> {
        codec::check_size(&record.data, self.inner.max_record_bytes)?;
        let body = codec::encode_body(record)?;
        let (id, expires_at, owner) = (record.id, record.expires_at.as_millis(), record.owner.clone());
        let key = id.encode();
        run_quick_or_blocking("sqlite", self.inner.blocking, &self.inner, move |s, wait| {
            s.write_as("save", wait, |c, now| {
                let mut stmt = c.prepare_cached(&s.sql.save)?;
                let mut rows = stmt.query(params![key.as_str(), body, expires_at, now, owner])?;
                let row = rows.next()?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                let version = version_of(&id, row.get_ref(0)?)?;
                // Step the statement to its end: the autocommit happens
                // there, and so do its errors (a full disk) and the WAL's
                // automatic checkpoint. A statement dropped before its end
                // commits inside the reset, whose error nobody sees.
                while rows.next()?.is_some() {}
                Ok(version)
            })
        })
        .await
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        codec::check_size(&record.data, self.inner.max_record_bytes)?;
        let conflict = Error::Conflict {
            id: record.id,
            expected: record.version,
        };
        // A version SQLite cannot hold was never stored.
        let Ok(expected) = i64::try_from(record.version) else {
            return Err(conflict);
        };
        let body = codec::encode_body(record)?;
        let (id, expires_at, owner) = (record.id, record.expires_at.as_millis(), record.owner.clone());
        let key = id.encode();
        // As a save: on the calling thread when the writer is free (the
        // session handle and the layer write through this call).
        let written = run_quick_or_blocking("sqlite", self.inner.blocking, &self.inner, move |s, wait| {
            s.write_as("save_if_version", wait, |c, now| {
                // `execute` steps the statement to its end: the commit and
                // its errors happen there.
                Ok(c.prepare_cached(&s.sql.save_if_version)?.execute(params![
                    key.as_str(),
                    body,
                    expires_at,
                    expected,
                    now,
                    owner
                ])?)
            })
        })
        .await?;
        if written == 0 {
            return Err(conflict);
        }
        Ok(record.version + 1)
    }

    /// One statement: an upsert that keeps `record.version` and changes
    /// nothing when a live row with the same or a newer version is there.
    async fn import(&self, record: &Record) -> Result<bool> {
        codec::check_size(&record.data, self.inner.max_record_bytes)?;
        let Ok(version) = i64::try_from(record.version) else {
            return Err(Error::Conflict {
                id: record.id,
                expected: record.version,
            });
        };
        if version == 0 || !record.is_live_at(self.inner.clock.now()) {
            return Ok(false);
        }
        let body = codec::encode_body(record)?;
        let (id, expires_at, owner) = (record.id, record.expires_at.as_millis(), record.owner.clone());
        let written = self
            .run(move |s| {
                let key = id.encode();
                s.write("import", |c, now| {
                    Ok(c.prepare_cached(&s.sql.import)?.execute(params![
                        key.as_str(),
                        body,
                        expires_at,
                        version,
                        owner,
                        now
                    ])?)
                })
            })
            .await?;
        Ok(written > 0)
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        let id = *id;
        let expires_at = expires_at.as_millis();
        let key = id.encode();
        let touched = run_quick_or_blocking("sqlite", self.inner.blocking, &self.inner, move |s, wait| {
            s.write_as("touch", wait, |c, now| {
                Ok(c.prepare_cached(&s.sql.touch)?
                    .execute(params![key.as_str(), expires_at, now])?)
            })
        })
        .await?;
        Ok(touched > 0)
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        let id = *id;
        self.run(move |s| {
            let key = id.encode();
            s.write("delete", |c, _| {
                c.prepare_cached(&s.sql.delete)?.execute([key.as_str()])?;
                Ok(())
            })
        })
        .await
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let (old, new) = (*old, *new);
        self.run(move |s| {
            let (old_key, new_key) = (old.encode(), new.encode());
            s.write("rotate", |c, _| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // Read once the write lock is held, however long that took.
                let now = s.now();
                let collides = tx
                    .prepare_cached(&s.sql.live_exists)?
                    .exists(params![new_key.as_str(), now])?;
                if collides {
                    return Err(Error::IdCollision { id: new }.into());
                }
                // An expired record under the new id is replaced.
                tx.prepare_cached(&s.sql.delete)?.execute([new_key.as_str()])?;
                let moved =
                    tx.prepare_cached(&s.sql.rename)?
                        .execute(params![old_key.as_str(), new_key.as_str(), now])?;
                if moved == 0 {
                    // Dropping the transaction rolls the delete back.
                    return Ok(false);
                }
                tx.commit()?;
                Ok(true)
            })
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64> {
        self.run(move |s| {
            let started = Instant::now();
            let now = s.now();
            let mut batch = s.purge_batch;
            let mut total = 0u64;
            let mut checkpoint_deferred = false;
            let purged = loop {
                // One autocommit statement per batch: the write lock (and the
                // writer mutex) are released between batches.
                let limit = i64::try_from(batch).unwrap_or(i64::MAX);
                let defer = total > 0 && !checkpoint_deferred;
                let step = s.write("purge_expired", |c, _| {
                    if defer {
                        // Batches rewrite the same index pages (ids are
                        // random); checkpointing after each one would copy
                        // them to the database file (with an fsync) every
                        // time. Copy them once, after the last batch.
                        c.pragma_update(None, "wal_autocheckpoint", PURGE_WAL_AUTOCHECKPOINT)?;
                    }
                    let start = Instant::now();
                    let removed = c.prepare_cached(&s.sql.purge)?.execute(params![now, limit])?;
                    Ok((removed, start.elapsed()))
                });
                checkpoint_deferred |= defer;
                match step {
                    Ok((removed, took)) => {
                        total += removed as u64;
                        if removed < batch {
                            break Ok(total);
                        }
                        batch = session_store_core::raw::purge_batch::next_batch(
                            batch,
                            took,
                            s.purge_batch,
                            s.purge_batch_time,
                        );
                    }
                    Err(e) => break Err(e),
                }
            };
            if checkpoint_deferred {
                let conn = s.writer.lock();
                // Cannot fail on an open connection; were it to, the
                // connection would merely checkpoint less often.
                let _ = conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT);
                // PASSIVE: waits for no reader or writer. If another
                // connection is checkpointing, it or a later commit finishes
                // the job, so a failure here is no failure of the purge.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
            match &purged {
                Ok(removed) => tracing::debug!(removed, took = ?started.elapsed(), table = %s.table, "SQLite purge"),
                Err(e) => tracing::warn!(error = %e, table = %s.table, "SQLite purge failed"),
            }
            purged
        })
        .await
    }

    async fn count(&self) -> Result<u64> {
        self.run(move |s| {
            s.read("count", |c, now| {
                let n: i64 = c.prepare_cached(&s.sql.count)?.query_row([now], |row| row.get(0))?;
                Ok(n.max(0) as u64)
            })
        })
        .await
    }

    async fn ids(&self) -> Result<Vec<ListingHandle>> {
        self.run(move |s| {
            s.read("ids", |c, now| {
                let mut stmt = c.prepare_cached(&s.sql.ids)?;
                let mut rows = stmt.query([now])?;
                let mut ids = Vec::new();
                while let Some(row) = rows.next()? {
                    let value = row.get_ref(0)?;
                    let parsed = id_of(value);
                    match parsed {
                        Some(id) => ids.push(ListingHandle::from_stored(id)),
                        // A row this store never wrote (another program, a
                        // damaged file): not a record, so it is skipped, and
                        // every valid row is still listed. Logged by its
                        // fingerprint only: the value may be a credential.
                        None => {
                            let fingerprint = match value {
                                ValueRef::Text(t) | ValueRef::Blob(t) => Fingerprint::of_bytes(t),
                                other => Fingerprint::of_bytes(format!("{other:?}").as_bytes()),
                            };
                            tracing::warn!(
                                table = %s.table,
                                id = %fingerprint,
                                "ids skipped a row whose id column holds no valid session id"
                            );
                        }
                    }
                }
                Ok(ids)
            })
        })
        .await
    }

    async fn clear(&self) -> Result<()> {
        self.run(move |s| {
            s.write("clear", |c, _| {
                c.prepare_cached(&s.sql.clear)?.execute([])?;
                Ok(())
            })
        })
        .await
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

    async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListingHandle>> {
        let owner = owner.to_owned();
        self.run(move |s| {
            s.read("owner_sessions", |c, now| {
                let mut stmt = c.prepare_cached(&s.sql.owner_sessions)?;
                let mut rows = stmt.query(params![owner, now])?;
                let mut ids = Vec::new();
                while let Some(row) = rows.next()? {
                    if let Some(id) = id_of(row.get_ref(0)?) {
                        ids.push(ListingHandle::from_stored(id));
                    }
                }
                Ok(ids)
            })
        })
        .await
    }

    async fn delete_owner_sessions(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64> {
        let (owner, keep) = (owner.to_owned(), keep.map(|id| id.encode()));
        self.run(move |s| {
            s.write("delete_owner_sessions", |c, now| {
                let mut stmt = c.prepare_cached(&s.sql.delete_owner_sessions)?;
                let keep = keep.as_ref().map(|k| k.as_str());
                let mut rows = stmt.query(params![owner, keep, now])?;
                let mut live = 0;
                // Every row, to the end: the autocommit happens there.
                while let Some(row) = rows.next()? {
                    if row.get::<_, bool>(0)? {
                        live += 1;
                    }
                }
                Ok(live)
            })
        })
        .await
    }
}

/// The README's examples, compiled as doctests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
