//! The floor of each medium: the least work a store on it can do, written
//! plainly with no contract beyond the operation itself. Our stores are
//! measured against these to see what their own machinery costs.
//!
//! Every floor keeps our [`Record`] and encodes it with the core codec where
//! the medium holds bytes, so the floor includes the encoding any store of
//! that medium must pay.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use session_store_core::raw::codec::{decode_body, decode_record, encode_body, encode_record};
use session_store_core::{Record, SessionId, Timestamp, system_clock};

use crate::Payload;
use crate::subject::{BenchResult, Op, Subject};

fn now() -> Timestamp {
    system_clock().now()
}

fn new_record(payload: &Payload, expires_at: Timestamp) -> Record {
    Record::with_deadline(SessionId::random(), payload.to_session_data(), now(), expires_at)
}

/// Implements the id plumbing shared by the floors (all hold our `Record`).
macro_rules! record_ids {
    () => {
        type Rec = Record;
        type Id = SessionId;

        fn fresh_id(&self) -> SessionId {
            SessionId::random()
        }

        fn record(&self, payload: &Payload, expires_at: Timestamp) -> Record {
            new_record(payload, expires_at)
        }

        fn id_of(rec: &Record) -> SessionId {
            rec.id
        }

        fn set_id(rec: &mut Record, id: SessionId) {
            rec.id = id;
        }
    };
}

/// A plain `HashMap` behind one `std::sync::RwLock`: the memory floor.
#[derive(Debug, Default)]
pub struct HashMapFloor {
    map: RwLock<HashMap<SessionId, Record>>,
}

impl HashMapFloor {
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SessionId, Record>> {
        self.map.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<SessionId, Record>> {
        self.map.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Subject for HashMapFloor {
    record_ids!();

    fn supports(&self, _op: Op) -> bool {
        true
    }

    async fn create(&self, rec: &mut Record) -> BenchResult<()> {
        let now = now();
        let mut map = self.write();
        if map.get(&rec.id).is_some_and(|r| r.is_live_at(now)) {
            return Err("id collision".into());
        }
        rec.version = 1;
        map.insert(rec.id, rec.clone());
        Ok(())
    }

    async fn load(&self, id: SessionId) -> BenchResult<Option<Record>> {
        let now = now();
        Ok(self.read().get(&id).filter(|r| r.is_live_at(now)).cloned())
    }

    async fn save(&self, rec: &Record) -> BenchResult<()> {
        let now = now();
        let mut map = self.write();
        let version = map
            .get(&rec.id)
            .filter(|r| r.is_live_at(now))
            .map_or(1, |r| r.version + 1);
        let mut rec = rec.clone();
        rec.version = version;
        map.insert(rec.id, rec);
        Ok(())
    }

    async fn delete(&self, id: SessionId) -> BenchResult<()> {
        self.write().remove(&id);
        Ok(())
    }

    async fn save_if_version(&self, rec: &mut Record) -> BenchResult<()> {
        let now = now();
        let mut map = self.write();
        match map.get_mut(&rec.id) {
            Some(stored) if stored.is_live_at(now) && stored.version == rec.version => {
                rec.version += 1;
                *stored = rec.clone();
                Ok(())
            }
            _ => Err("conflict".into()),
        }
    }

    async fn touch(&self, id: SessionId, expires_at: Timestamp) -> BenchResult<bool> {
        let now = now();
        Ok(match self.write().get_mut(&id) {
            Some(r) if r.is_live_at(now) => {
                r.expires_at = expires_at;
                true
            }
            _ => false,
        })
    }

    async fn rotate(&self, old: SessionId, new: SessionId) -> BenchResult<bool> {
        let now = now();
        let mut map = self.write();
        if map.get(&new).is_some_and(|r| r.is_live_at(now)) {
            return Err("id collision".into());
        }
        match map.remove(&old) {
            Some(mut r) if r.is_live_at(now) => {
                r.id = new;
                map.insert(new, r);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn purge(&self) -> BenchResult<Option<u64>> {
        let now = now();
        let mut map = self.write();
        let before = map.len();
        map.retain(|_, r| r.is_live_at(now));
        Ok(Some((before - map.len()) as u64))
    }

    async fn clear(&self, _ids: Vec<SessionId>) -> BenchResult<()> {
        self.write().clear();
        Ok(())
    }
}

/// Raw rusqlite: one connection behind a mutex, cached prepared statements,
/// WAL with `synchronous = NORMAL`, on the SQLite store's schema (`id` text
/// key, `data` body blob from the core codec, `expires_at` and `version`
/// columns, an index on `expires_at`). Statements run inline on the calling
/// task: no hop to another thread.
#[derive(Debug)]
pub struct SqliteFloor {
    conn: Mutex<Connection>,
}

const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sessions (
         id TEXT PRIMARY KEY NOT NULL,
         data BLOB NOT NULL,
         expires_at INTEGER NOT NULL,
         version INTEGER NOT NULL
     );
     CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);";

impl SqliteFloor {
    /// Opens (creating) the database file at `path`.
    ///
    /// # Errors
    ///
    /// When SQLite cannot open the file or create the table.
    pub fn open(path: &Path) -> BenchResult<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SQLITE_SCHEMA)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> BenchResult<T> {
        let conn = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(f(&conn)?)
    }
}

impl Subject for SqliteFloor {
    record_ids!();

    fn supports(&self, _op: Op) -> bool {
        true
    }

    async fn create(&self, rec: &mut Record) -> BenchResult<()> {
        let body = encode_body(rec)?;
        let changed = self.with(|c| {
            c.prepare_cached(
                "INSERT INTO sessions (id, data, expires_at, version) VALUES (?1, ?2, ?3, 1) \
                 ON CONFLICT(id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, version = 1 \
                 WHERE sessions.expires_at <= ?4",
            )?
            .execute(params![
                rec.id.encode().as_str(),
                body,
                rec.expires_at.as_millis(),
                now().as_millis()
            ])
        })?;
        if changed == 0 {
            return Err("id collision".into());
        }
        rec.version = 1;
        Ok(())
    }

    async fn load(&self, id: SessionId) -> BenchResult<Option<Record>> {
        let row = self.with(|c| {
            c.prepare_cached("SELECT data, expires_at, version FROM sessions WHERE id = ?1 AND expires_at > ?2")?
                .query_row(params![id.encode().as_str(), now().as_millis()], |row| {
                    Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                })
                .optional()
        })?;
        match row {
            None => Ok(None),
            Some((data, expires_at, version)) => Ok(Some(decode_body(
                id,
                &data,
                Timestamp::from_millis(expires_at),
                u64::try_from(version)?,
            )?)),
        }
    }

    async fn save(&self, rec: &Record) -> BenchResult<()> {
        let body = encode_body(rec)?;
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "INSERT INTO sessions (id, data, expires_at, version) VALUES (?1, ?2, ?3, 1) \
                 ON CONFLICT(id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, \
                 version = CASE WHEN sessions.expires_at > ?4 THEN sessions.version + 1 ELSE 1 END \
                 RETURNING version",
            )?;
            let mut rows = stmt.query(params![
                rec.id.encode().as_str(),
                body,
                rec.expires_at.as_millis(),
                now().as_millis()
            ])?;
            let version = rows.next()?.map(|row| row.get::<_, i64>(0)).transpose()?;
            // Stepped to its end, as the store does: the commit and the WAL's
            // automatic checkpoint happen there (a statement dropped after
            // its row commits in the reset and never checkpoints).
            while rows.next()?.is_some() {}
            Ok(version)
        })?;
        Ok(())
    }

    async fn delete(&self, id: SessionId) -> BenchResult<()> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM sessions WHERE id = ?1")?
                .execute(params![id.encode().as_str()])
        })?;
        Ok(())
    }

    async fn save_if_version(&self, rec: &mut Record) -> BenchResult<()> {
        let body = encode_body(rec)?;
        let version = i64::try_from(rec.version)?;
        let changed = self.with(|c| {
            c.prepare_cached(
                "UPDATE sessions SET data = ?2, expires_at = ?3, version = version + 1 \
                 WHERE id = ?1 AND version = ?4 AND expires_at > ?5",
            )?
            .execute(params![
                rec.id.encode().as_str(),
                body,
                rec.expires_at.as_millis(),
                version,
                now().as_millis()
            ])
        })?;
        if changed != 1 {
            return Err("conflict".into());
        }
        rec.version += 1;
        Ok(())
    }

    async fn touch(&self, id: SessionId, expires_at: Timestamp) -> BenchResult<bool> {
        let changed = self.with(|c| {
            c.prepare_cached("UPDATE sessions SET expires_at = ?2 WHERE id = ?1 AND expires_at > ?3")?
                .execute(params![id.encode().as_str(), expires_at.as_millis(), now().as_millis()])
        })?;
        Ok(changed == 1)
    }

    async fn rotate(&self, old: SessionId, new: SessionId) -> BenchResult<bool> {
        let changed = self.with(|c| {
            c.prepare_cached("UPDATE sessions SET id = ?2 WHERE id = ?1 AND expires_at > ?3")?
                .execute(params![old.encode().as_str(), new.encode().as_str(), now().as_millis()])
        })?;
        Ok(changed == 1)
    }

    async fn purge(&self) -> BenchResult<Option<u64>> {
        let removed = self.with(|c| {
            c.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
                .execute(params![now().as_millis()])
        })?;
        Ok(Some(removed as u64))
    }

    async fn clear(&self, _ids: Vec<SessionId>) -> BenchResult<()> {
        self.with(|c| c.execute_batch("DELETE FROM sessions"))?;
        Ok(())
    }
}

/// Raw redis-rs: one multiplexed connection, plain `GET`/`SET … PX` of the
/// core codec's record bytes under a random key prefix.
#[derive(Clone)]
pub struct RedisFloor {
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
}

impl std::fmt::Debug for RedisFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFloor")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisFloor {
    /// Connects to the server at `url`, keeping keys under a fresh random
    /// prefix.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached.
    pub async fn connect(url: &str) -> BenchResult<Self> {
        let client = redis::Client::open(url)?;
        let conn = client.get_multiplexed_async_connection().await?;
        Ok(Self {
            conn,
            prefix: format!("bench-floor-{}:", SessionId::random().encode().as_str()),
        })
    }

    fn key(&self, id: SessionId) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 22);
        key.push_str(&self.prefix);
        key.push_str(id.encode().as_str());
        key
    }

    fn ttl_ms(expires_at: Timestamp) -> i64 {
        (expires_at.as_millis() - now().as_millis()).max(1)
    }
}

impl Subject for RedisFloor {
    record_ids!();

    fn supports(&self, op: Op) -> bool {
        matches!(op, Op::Touch | Op::Rotate)
    }

    async fn create(&self, rec: &mut Record) -> BenchResult<()> {
        rec.version = 1;
        let bytes = encode_record(rec)?;
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(rec.id))
            .arg(bytes)
            .arg("PX")
            .arg(Self::ttl_ms(rec.expires_at))
            .arg("NX")
            .query_async(&mut self.conn.clone())
            .await?;
        if set.is_none() {
            return Err("id collision".into());
        }
        Ok(())
    }

    async fn load(&self, id: SessionId) -> BenchResult<Option<Record>> {
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.key(id))
            .query_async(&mut self.conn.clone())
            .await?;
        let Some(bytes) = bytes else { return Ok(None) };
        let record = decode_record(id, &bytes)?;
        Ok(record.is_live_at(now()).then_some(record))
    }

    async fn save(&self, rec: &Record) -> BenchResult<()> {
        let bytes = encode_record(rec)?;
        let () = redis::cmd("SET")
            .arg(self.key(rec.id))
            .arg(bytes)
            .arg("PX")
            .arg(Self::ttl_ms(rec.expires_at))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn delete(&self, id: SessionId) -> BenchResult<()> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.key(id))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// `PEXPIRE` only: the floor does not rewrite the deadline kept in the
    /// blob, so it is below what a correct store must do.
    async fn touch(&self, id: SessionId, expires_at: Timestamp) -> BenchResult<bool> {
        let set: i64 = redis::cmd("PEXPIRE")
            .arg(self.key(id))
            .arg(Self::ttl_ms(expires_at))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(set == 1)
    }

    async fn rotate(&self, old: SessionId, new: SessionId) -> BenchResult<bool> {
        let moved: redis::RedisResult<i64> = redis::cmd("RENAMENX")
            .arg(self.key(old))
            .arg(self.key(new))
            .query_async(&mut self.conn.clone())
            .await;
        match moved {
            Ok(1) => Ok(true),
            Ok(_) => Err("id collision".into()),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn clear(&self, ids: Vec<SessionId>) -> BenchResult<()> {
        for chunk in ids.chunks(1_000) {
            let mut cmd = redis::cmd("DEL");
            for id in chunk {
                cmd.arg(self.key(*id));
            }
            let _: i64 = cmd.query_async(&mut self.conn.clone()).await?;
        }
        Ok(())
    }
}

/// Raw files: one file per session named by its id, written to a temporary
/// file, fsynced, renamed into place and the directory fsynced; loaded with
/// one read and decoded with the core codec.
#[derive(Debug)]
pub struct FileFloor {
    dir: PathBuf,
}

impl FileFloor {
    /// Keeps the files in `dir` (created if missing).
    ///
    /// # Errors
    ///
    /// When the directory cannot be created.
    pub fn open(dir: &Path) -> BenchResult<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self { dir: dir.to_owned() })
    }

    fn path(&self, id: SessionId) -> PathBuf {
        self.dir.join(id.encode().as_str())
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        fs::File::open(&self.dir)?.sync_all()
    }

    fn write(&self, rec: &Record, sync: bool) -> BenchResult<()> {
        let bytes = encode_record(rec)?;
        let tmp = self.dir.join(format!(".tmp-{}", SessionId::random().encode().as_str()));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, self.path(rec.id))?;
        if sync {
            self.sync_dir()?;
        }
        Ok(())
    }

    fn read(&self, id: SessionId) -> BenchResult<Option<Record>> {
        match fs::read(self.path(id)) {
            Ok(bytes) => {
                let record = decode_record(id, &bytes)?;
                Ok(record.is_live_at(now()).then_some(record))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl Subject for FileFloor {
    record_ids!();

    fn supports(&self, op: Op) -> bool {
        matches!(op, Op::Purge)
    }

    /// Write and rename, with no check for a live record under the id.
    async fn create(&self, rec: &mut Record) -> BenchResult<()> {
        rec.version = 1;
        self.write(rec, true)
    }

    /// Setting up: the same write without the fsyncs.
    async fn seed_create(&self, rec: &mut Record) -> BenchResult<()> {
        rec.version = 1;
        self.write(rec, false)
    }

    async fn load(&self, id: SessionId) -> BenchResult<Option<Record>> {
        self.read(id)
    }

    async fn save(&self, rec: &Record) -> BenchResult<()> {
        self.write(rec, true)
    }

    async fn delete(&self, id: SessionId) -> BenchResult<()> {
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(self.sync_dir()?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn purge(&self) -> BenchResult<Option<u64>> {
        let now = now();
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<SessionId>().ok()) else {
                continue;
            };
            let bytes = fs::read(entry.path())?;
            if !decode_record(id, &bytes)?.is_live_at(now) {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        self.sync_dir()?;
        Ok(Some(removed))
    }

    async fn clear(&self, _ids: Vec<SessionId>) -> BenchResult<()> {
        for entry in fs::read_dir(&self.dir)? {
            fs::remove_file(entry?.path())?;
        }
        Ok(())
    }

    fn purge_population(&self) -> usize {
        FILE_PURGE_POPULATION
    }
}

/// How many records the purge workload stores on file-backed subjects:
/// writing 100,000 fsynced files for each of a dozen samples would take
/// the better part of an hour.
pub const FILE_PURGE_POPULATION: usize = 10_000;

/// The PostgreSQL store's schema, for the floor's own table.
const POSTGRES_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS {t} (
         id text COLLATE \"C\" PRIMARY KEY NOT NULL,
         body bytea{compression} NOT NULL,
         expires_at bigint NOT NULL,
         version bigint NOT NULL,
         owner text COLLATE \"C\"
     );
     CREATE INDEX IF NOT EXISTS sessions_expires_at ON {t} (expires_at);";

/// How many expired rows one statement of the floor's batched purge
/// deletes: the PostgreSQL store's default batch.
pub const POSTGRES_PURGE_BATCH: i64 = 5_000;

/// One connection of the PostgreSQL floor and its prepared statements.
struct PgConn {
    client: tokio_postgres::Client,
    create: tokio_postgres::Statement,
    load: tokio_postgres::Statement,
    save: tokio_postgres::Statement,
    save_if_version: tokio_postgres::Statement,
    touch: tokio_postgres::Statement,
    delete: tokio_postgres::Statement,
    rotate: tokio_postgres::Statement,
    purge: tokio_postgres::Statement,
}

/// Raw tokio-postgres: a fixed set of connections used round-robin (no pool
/// bookkeeping, no timeout, no retry), each with its statements prepared
/// once, on the PostgreSQL store's schema in a schema of its own. Rotate is
/// a plain `UPDATE ... SET id` (no collision check); purge is fixed batches
/// of [`POSTGRES_PURGE_BATCH`] rows, each a `DELETE ... WHERE ctid =
/// ANY(ARRAY(SELECT ctid ... WHERE expires_at <= now LIMIT n))` on the
/// expiry index (the form `WHERE id IN (SELECT id ... LIMIT n)` measured
/// four times slower).
pub struct PostgresFloor {
    conns: Vec<PgConn>,
    next: std::sync::atomic::AtomicUsize,
    schema: String,
}

impl std::fmt::Debug for PostgresFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresFloor")
            .field("schema", &self.schema)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl PostgresFloor {
    /// Connects `connections` times to the server at `url` and creates the
    /// table in a fresh schema.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses the schema.
    pub async fn connect(url: &str, connections: usize) -> BenchResult<Self> {
        let schema = format!("bench_floor_{}", SessionId::random().fingerprint())
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let t = format!("\"{schema}\".sessions");
        let mut conns = Vec::with_capacity(connections);
        for i in 0..connections.max(1) {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            if i == 0 {
                // lz4 where the server has it, as the store does.
                let lz4: bool = client
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_settings \
                         WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals))",
                        &[],
                    )
                    .await?
                    .get(0);
                let ddl = POSTGRES_SCHEMA
                    .replace("{t}", &t)
                    .replace("{compression}", if lz4 { " COMPRESSION lz4" } else { "" });
                client
                    .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"; {ddl}"))
                    .await?;
            }
            let prepare = |sql: String| {
                let client = &client;
                async move { client.prepare(&sql).await }
            };
            conns.push(PgConn {
                create: prepare(format!(
                    "INSERT INTO {t} AS t (id, body, expires_at, version) VALUES ($1, $2, $3, 1) \
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at, \
                     version = 1 WHERE t.expires_at <= $4"
                ))
                .await?,
                load: prepare(format!(
                    "SELECT body, expires_at, version FROM {t} WHERE id = $1 AND expires_at > $2"
                ))
                .await?,
                save: prepare(format!(
                    "INSERT INTO {t} AS t (id, body, expires_at, version) VALUES ($1, $2, $3, 1) \
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at, \
                     version = CASE WHEN t.expires_at > $4 THEN t.version + 1 ELSE 1 END RETURNING version"
                ))
                .await?,
                save_if_version: prepare(format!(
                    "UPDATE {t} SET body = $2, expires_at = $3, version = version + 1 \
                     WHERE id = $1 AND version = $4 AND expires_at > $5"
                ))
                .await?,
                touch: prepare(format!(
                    "UPDATE {t} SET expires_at = $2 WHERE id = $1 AND expires_at > $3"
                ))
                .await?,
                delete: prepare(format!("DELETE FROM {t} WHERE id = $1")).await?,
                rotate: prepare(format!("UPDATE {t} SET id = $2 WHERE id = $1 AND expires_at > $3")).await?,
                purge: prepare(format!(
                    "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE expires_at <= $1 LIMIT $2))"
                ))
                .await?,
                client,
            });
        }
        Ok(Self {
            conns,
            next: std::sync::atomic::AtomicUsize::new(0),
            schema,
        })
    }

    fn conn(&self) -> &PgConn {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.conns[i % self.conns.len()]
    }
}

impl Subject for PostgresFloor {
    record_ids!();

    fn supports(&self, _op: Op) -> bool {
        true
    }

    async fn create(&self, rec: &mut Record) -> BenchResult<()> {
        let body = encode_body(rec)?;
        let c = self.conn();
        let changed = c
            .client
            .execute(
                &c.create,
                &[
                    &rec.id.encode().as_str(),
                    &body,
                    &rec.expires_at.as_millis(),
                    &now().as_millis(),
                ],
            )
            .await?;
        if changed == 0 {
            return Err("id collision".into());
        }
        rec.version = 1;
        Ok(())
    }

    async fn load(&self, id: SessionId) -> BenchResult<Option<Record>> {
        let c = self.conn();
        let row = c
            .client
            .query_opt(&c.load, &[&id.encode().as_str(), &now().as_millis()])
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(decode_body(
                id,
                row.try_get::<_, &[u8]>(0)?,
                Timestamp::from_millis(row.try_get(1)?),
                u64::try_from(row.try_get::<_, i64>(2)?)?,
            )?)),
        }
    }

    async fn save(&self, rec: &Record) -> BenchResult<()> {
        let body = encode_body(rec)?;
        let c = self.conn();
        c.client
            .query_one(
                &c.save,
                &[
                    &rec.id.encode().as_str(),
                    &body,
                    &rec.expires_at.as_millis(),
                    &now().as_millis(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn delete(&self, id: SessionId) -> BenchResult<()> {
        let c = self.conn();
        c.client.execute(&c.delete, &[&id.encode().as_str()]).await?;
        Ok(())
    }

    async fn save_if_version(&self, rec: &mut Record) -> BenchResult<()> {
        let body = encode_body(rec)?;
        let version = i64::try_from(rec.version)?;
        let c = self.conn();
        let changed = c
            .client
            .execute(
                &c.save_if_version,
                &[
                    &rec.id.encode().as_str(),
                    &body,
                    &rec.expires_at.as_millis(),
                    &version,
                    &now().as_millis(),
                ],
            )
            .await?;
        if changed != 1 {
            return Err("conflict".into());
        }
        rec.version += 1;
        Ok(())
    }

    async fn touch(&self, id: SessionId, expires_at: Timestamp) -> BenchResult<bool> {
        let c = self.conn();
        let changed = c
            .client
            .execute(
                &c.touch,
                &[&id.encode().as_str(), &expires_at.as_millis(), &now().as_millis()],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn rotate(&self, old: SessionId, new: SessionId) -> BenchResult<bool> {
        let c = self.conn();
        let changed = c
            .client
            .execute(
                &c.rotate,
                &[&old.encode().as_str(), &new.encode().as_str(), &now().as_millis()],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn purge(&self) -> BenchResult<Option<u64>> {
        let c = self.conn();
        let now = now().as_millis();
        let mut total = 0;
        loop {
            let removed = c.client.execute(&c.purge, &[&now, &POSTGRES_PURGE_BATCH]).await?;
            total += removed;
            if removed < POSTGRES_PURGE_BATCH as u64 {
                return Ok(Some(total));
            }
        }
    }

    async fn clear(&self, _ids: Vec<SessionId>) -> BenchResult<()> {
        self.conn()
            .client
            .batch_execute(&format!("DELETE FROM \"{}\".sessions", self.schema))
            .await?;
        Ok(())
    }
}

/// How many expired rows one statement of the MySQL floor's purge deletes:
/// the MySQL store's default batch.
pub const MYSQL_PURGE_BATCH: u64 = 5_000;

/// Raw mysql_async: a fixed set of connections used round-robin (no pool
/// bookkeeping, no timeout, no retry), each statement prepared once per
/// connection (the driver's statement cache), on the MySQL store's table
/// shape in a table of its own. Create and save are one `INSERT ... ON
/// DUPLICATE KEY UPDATE` each (save without reading its version back);
/// rotate is a plain `UPDATE ... SET id` (no collision check); purge is
/// `DELETE ... ORDER BY expires_at LIMIT n` batches on the expiry index.
pub struct MysqlFloor {
    conns: Vec<tokio::sync::Mutex<mysql_async::Conn>>,
    next: std::sync::atomic::AtomicUsize,
    table: String,
}

impl std::fmt::Debug for MysqlFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlFloor")
            .field("table", &self.table)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl MysqlFloor {
    /// Connects `connections` times to the server at `url` and creates the
    /// floor's table.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses the table.
    pub async fn connect(url: &str, connections: usize) -> BenchResult<Self> {
        use mysql_async::prelude::Queryable;
        let table = format!("bench_floor_{}", SessionId::random().fingerprint())
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let opts = mysql_async::Opts::from_url(url)?;
        let mut conns = Vec::with_capacity(connections);
        for i in 0..connections.max(1) {
            let mut conn = mysql_async::Conn::new(opts.clone()).await?;
            if i == 0 {
                conn.query_drop(format!(
                    "CREATE TABLE IF NOT EXISTS `{table}` (id VARBINARY(64) NOT NULL, body LONGBLOB NOT NULL, \
                     expires_at BIGINT NOT NULL, version BIGINT UNSIGNED NOT NULL, owner BLOB NULL, \
                     owner_key BINARY(32) NULL, PRIMARY KEY (id), KEY session_expires (expires_at)) \
                     ENGINE=InnoDB DEFAULT CHARSET=binary"
                ))
                .await?;
            }
            conns.push(tokio::sync::Mutex::new(conn));
        }
        Ok(Self {
            conns,
            next: std::sync::atomic::AtomicUsize::new(0),
            table,
        })
    }

    async fn conn(&self) -> tokio::sync::MutexGuard<'_, mysql_async::Conn> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.conns[i % self.conns.len()].lock().await
    }
}

impl Subject for MysqlFloor {
    record_ids!();

    fn supports(&self, _op: Op) -> bool {
        true
    }

    async fn create(&self, rec: &mut Record) -> BenchResult<()> {
        use mysql_async::prelude::Queryable;
        let body = encode_body(rec)?;
        let t = &self.table;
        let mut c = self.conn().await;
        c.exec_drop(
            format!(
                "INSERT INTO `{t}` (id, body, expires_at, version) VALUES (?, ?, ?, 1) ON DUPLICATE KEY UPDATE \
                 body = IF(expires_at <= ?, VALUES(body), body), version = IF(expires_at <= ?, 1, version), \
                 expires_at = IF(expires_at <= ?, VALUES(expires_at), expires_at)"
            ),
            (
                rec.id.encode().as_str(),
                body,
                rec.expires_at.as_millis(),
                now().as_millis(),
                now().as_millis(),
                now().as_millis(),
            ),
        )
        .await?;
        if c.affected_rows() == 0 {
            return Err("id collision".into());
        }
        rec.version = 1;
        Ok(())
    }

    async fn load(&self, id: SessionId) -> BenchResult<Option<Record>> {
        use mysql_async::prelude::Queryable;
        let t = &self.table;
        let row: Option<(Vec<u8>, i64, u64)> = self
            .conn()
            .await
            .exec_first(
                format!("SELECT body, expires_at, version FROM `{t}` WHERE id = ? AND expires_at > ?"),
                (id.encode().as_str(), now().as_millis()),
            )
            .await?;
        match row {
            None => Ok(None),
            Some((body, expires_at, version)) => Ok(Some(decode_body(
                id,
                &body,
                Timestamp::from_millis(expires_at),
                version,
            )?)),
        }
    }

    async fn save(&self, rec: &Record) -> BenchResult<()> {
        use mysql_async::prelude::Queryable;
        let body = encode_body(rec)?;
        let t = &self.table;
        let now = now().as_millis();
        self.conn()
            .await
            .exec_drop(
                format!(
                    "INSERT INTO `{t}` (id, body, expires_at, version) VALUES (?, ?, ?, 1) ON DUPLICATE KEY UPDATE \
                     version = IF(expires_at > ?, version + 1, 1), body = VALUES(body), expires_at = VALUES(expires_at)"
                ),
                (rec.id.encode().as_str(), body, rec.expires_at.as_millis(), now),
            )
            .await?;
        Ok(())
    }

    async fn delete(&self, id: SessionId) -> BenchResult<()> {
        use mysql_async::prelude::Queryable;
        let t = &self.table;
        self.conn()
            .await
            .exec_drop(format!("DELETE FROM `{t}` WHERE id = ?"), (id.encode().as_str(),))
            .await?;
        Ok(())
    }

    async fn save_if_version(&self, rec: &mut Record) -> BenchResult<()> {
        use mysql_async::prelude::Queryable;
        let body = encode_body(rec)?;
        let t = &self.table;
        let mut c = self.conn().await;
        c.exec_drop(
            format!(
                "UPDATE `{t}` SET body = ?, expires_at = ?, version = version + 1 \
                 WHERE id = ? AND version = ? AND expires_at > ?"
            ),
            (
                body,
                rec.expires_at.as_millis(),
                rec.id.encode().as_str(),
                rec.version,
                now().as_millis(),
            ),
        )
        .await?;
        if c.affected_rows() != 1 {
            return Err("conflict".into());
        }
        rec.version += 1;
        Ok(())
    }

    async fn touch(&self, id: SessionId, expires_at: Timestamp) -> BenchResult<bool> {
        use mysql_async::prelude::Queryable;
        let t = &self.table;
        let mut c = self.conn().await;
        c.exec_drop(
            format!("UPDATE `{t}` SET expires_at = ? WHERE id = ? AND expires_at > ?"),
            (expires_at.as_millis(), id.encode().as_str(), now().as_millis()),
        )
        .await?;
        // Rows matched, not changed: a touch to the same deadline still counts.
        Ok(c.affected_rows() == 1 || c.info().contains("matched: 1"))
    }

    async fn rotate(&self, old: SessionId, new: SessionId) -> BenchResult<bool> {
        use mysql_async::prelude::Queryable;
        let t = &self.table;
        let mut c = self.conn().await;
        c.exec_drop(
            format!("UPDATE `{t}` SET id = ? WHERE id = ? AND expires_at > ?"),
            (new.encode().as_str(), old.encode().as_str(), now().as_millis()),
        )
        .await?;
        Ok(c.affected_rows() == 1)
    }

    async fn purge(&self) -> BenchResult<Option<u64>> {
        use mysql_async::prelude::Queryable;
        let t = &self.table;
        let now = now().as_millis();
        let mut c = self.conn().await;
        let mut total = 0;
        loop {
            c.exec_drop(
                format!("DELETE FROM `{t}` WHERE expires_at <= ? ORDER BY expires_at LIMIT {MYSQL_PURGE_BATCH}"),
                (now,),
            )
            .await?;
            let removed = c.affected_rows();
            total += removed;
            if removed < MYSQL_PURGE_BATCH {
                return Ok(Some(total));
            }
        }
    }

    async fn clear(&self, _ids: Vec<SessionId>) -> BenchResult<()> {
        use mysql_async::prelude::Queryable;
        let t = &self.table;
        self.conn().await.query_drop(format!("DELETE FROM `{t}`")).await?;
        Ok(())
    }
}
