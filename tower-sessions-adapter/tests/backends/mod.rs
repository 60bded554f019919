//! The backends the end-to-end tests run on, each with raw access to what
//! it stores, to damage a record or make the store fail as a disk, a DBA or
//! another program would. The same file is in both adapters' tests.
//!
//! Redis needs a server: `store-redis/scripts/with-redis cargo test -p ...`
//! starts a private one and sets `SESSION_STORE_REDIS_URL`. Without it
//! [`Backend::redis`] says so and answers `None` (the test skips), unless
//! `SESSION_STORE_STRICT=1`, where it fails.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use session_store_core::{SessionId, SessionStore};
use session_store_file::FileStore;
use session_store_memory::MemoryStore;
use session_store_redis::RedisStore;
use session_store_sqlite::SqliteStore;

/// Bytes that are no session record of any format.
pub const GARBAGE: &[u8] = b"\x07 not a session record at all \xff\xfe";

/// How a stored record gets damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Garbage where the record's bytes are (the file, the SQLite `data`
    /// column, the Redis hash's data field).
    Garbage,
    /// Redis: a key of another type (a string) where the session hash is.
    WrongType,
}

impl Damage {
    /// What the warning about the damaged record says.
    pub fn logged(self) -> &'static str {
        match self {
            Self::Garbage => "could not be decoded",
            Self::WrongType => "WRONGTYPE",
        }
    }
}

enum Kind {
    Memory(Arc<MemoryStore>),
    File(PathBuf),
    Sqlite(PathBuf),
    Redis {
        /// The server, as its default user (raw access).
        admin: String,
        /// The server as this test's own ACL user (the app's stores).
        url: String,
        user: String,
        prefix: String,
    },
}

/// One backend under test; [`open`](Self::open) gives a store on its data,
/// again and again (a restarted app).
pub struct Backend {
    pub name: &'static str,
    kind: Kind,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// The backend of that name (`memory`, `file`, `sqlite`, `redis`);
    /// `None` when Redis is not given (said on stderr).
    pub async fn by_name(name: &str) -> Option<Self> {
        match name {
            "memory" => Some(Self::memory()),
            "file" => Some(Self::file()),
            "sqlite" => Some(Self::sqlite()),
            "redis" => Self::redis().await,
            _ => panic!("no backend {name:?}"),
        }
    }

    pub fn memory() -> Self {
        Self {
            name: "memory",
            kind: Kind::Memory(Arc::new(MemoryStore::new())),
            _dir: None,
        }
    }

    pub fn file() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        Self {
            name: "file",
            kind: Kind::File(dir.path().join("sessions")),
            _dir: Some(dir),
        }
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        Self {
            name: "sqlite",
            kind: Kind::Sqlite(dir.path().join("sessions.db")),
            _dir: Some(dir),
        }
    }

    /// A Redis backend under a fresh key prefix, reached as a fresh ACL
    /// user (so that [`fail`](Self::fail) can take its rights away without
    /// touching other tests); `None` when no server is given.
    pub async fn redis() -> Option<Self> {
        let Some(admin) = std::env::var("SESSION_STORE_REDIS_URL").ok().filter(|u| !u.is_empty()) else {
            let how = "SESSION_STORE_REDIS_URL is not set: run the tests under `store-redis/scripts/with-redis` \
                       (it starts a private redis-server; apt-get install redis-server if missing)";
            if std::env::var("SESSION_STORE_STRICT").is_ok_and(|v| !v.is_empty() && v != "0") {
                panic!("{how}");
            }
            // Straight to the stderr stream, past the test harness capture, so the skip shows.
            let _ = writeln!(std::io::stderr(), "SKIPPED a Redis test: {how}");
            return None;
        };
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let unique = format!("{}-{nanos}-{}", std::process::id(), SessionId::random().fingerprint());
        let user = format!("e2e-{unique}");
        let password = format!("pw-{unique}");
        redis_cmd(
            &admin,
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(&user)
                .arg("on")
                .arg(format!(">{password}"))
                .arg("~*")
                .arg("&*")
                .arg("+@all"),
        )
        .await;
        let rest = admin.strip_prefix("redis://").expect("a redis:// URL");
        Some(Self {
            name: "redis",
            kind: Kind::Redis {
                url: format!("redis://{user}:{password}@{rest}"),
                admin,
                user,
                prefix: format!("adapter-e2e:{unique}:"),
            },
            _dir: None,
        })
    }

    /// A store on this backend's data.
    pub async fn open(&self) -> Arc<dyn SessionStore> {
        match &self.kind {
            Kind::Memory(store) => Arc::clone(store) as Arc<dyn SessionStore>,
            Kind::File(path) => Arc::new(FileStore::open(path).expect("a file store")),
            Kind::Sqlite(path) => Arc::new(SqliteStore::open(path).expect("a SQLite store")),
            Kind::Redis { url, prefix, .. } => Arc::new(
                RedisStore::builder(url.clone())
                    .prefix(prefix.clone())
                    .build()
                    .await
                    .expect("Redis at SESSION_STORE_REDIS_URL answers"),
            ),
        }
    }

    /// The damages this backend's records can suffer.
    pub fn damages(&self) -> &'static [Damage] {
        match self.kind {
            Kind::Memory(_) => &[],
            Kind::File(_) | Kind::Sqlite(_) => &[Damage::Garbage],
            Kind::Redis { .. } => &[Damage::Garbage, Damage::WrongType],
        }
    }

    /// Damages the stored record of `id`, bypassing the store.
    pub async fn damage(&self, id: &SessionId, damage: Damage) {
        match (&self.kind, damage) {
            (Kind::File(path), Damage::Garbage) => {
                let store = FileStore::open(path).expect("a file store");
                std::fs::write(store.path_of(id), GARBAGE).expect("garbage in the session file");
            }
            (Kind::Sqlite(path), Damage::Garbage) => {
                let store = SqliteStore::open(path).expect("a SQLite store");
                let db = rusqlite::Connection::open(path).expect("the database");
                db.busy_timeout(std::time::Duration::from_secs(10))
                    .expect("a busy timeout");
                let sql = format!("UPDATE \"{}\" SET data = ?1 WHERE id = ?2", store.table());
                let changed = db
                    .execute(&sql, rusqlite::params![GARBAGE, id.to_string()])
                    .expect("UPDATE");
                assert_eq!(changed, 1, "the session's row");
            }
            (Kind::Redis { admin, .. }, damage) => {
                let key = self.redis_key(id).await;
                let mut cmd = match damage {
                    Damage::Garbage => redis::cmd("HSET"),
                    Damage::WrongType => redis::cmd("SET"),
                };
                if damage == Damage::Garbage {
                    cmd.arg(&key).arg("d").arg(GARBAGE);
                } else {
                    cmd.arg(&key).arg("a string, not a session hash");
                }
                redis_cmd(admin, &mut cmd).await;
            }
            _ => panic!("{}: no such damage {damage:?}", self.name),
        }
    }

    /// Makes the store fail (I/O, SQL, a refused command) when it next
    /// reads the session `id`; answers what the log then says of the cause.
    pub async fn fail(&self, id: &SessionId) -> &'static str {
        match &self.kind {
            Kind::Memory(_) => panic!("the memory store cannot fail"),
            Kind::File(path) => {
                // A file where the session's shard directory should be:
                // reading the session fails with an I/O error (a directory
                // in place of the session file would be that record's
                // damage only, a fresh session).
                let path = FileStore::open(path).expect("a file store").path_of(id);
                let shard = path.parent().expect("the shard");
                std::fs::remove_dir_all(shard).expect("remove the shard");
                std::fs::write(shard, b"not a directory").expect("a file in its place");
                "Not a directory"
            }
            Kind::Sqlite(path) => {
                let store = SqliteStore::open(path).expect("a SQLite store");
                let db = rusqlite::Connection::open(path).expect("the database");
                db.busy_timeout(std::time::Duration::from_secs(10))
                    .expect("a busy timeout");
                db.execute_batch(&format!("DROP TABLE \"{}\"", store.table()))
                    .expect("DROP TABLE");
                "no such table"
            }
            Kind::Redis { admin, user, .. } => {
                // The app's user loses every right: each call is refused.
                redis_cmd(admin, redis::cmd("ACL").arg("SETUSER").arg(user).arg("-@all")).await;
                "no permissions"
            }
        }
    }

    async fn redis_key(&self, id: &SessionId) -> String {
        let Kind::Redis { admin, prefix, .. } = &self.kind else {
            unreachable!("a Redis backend")
        };
        let store = RedisStore::builder(admin.clone()).prefix(prefix.clone()).build().await;
        store.expect("Redis answers").key(id)
    }

    /// Removes what a Redis backend left on the shared server (its keys,
    /// its user); the others live in a temp dir.
    pub async fn teardown(self) {
        if let Kind::Redis {
            admin, user, prefix, ..
        } = &self.kind
        {
            let store = RedisStore::builder(admin.clone()).prefix(prefix.clone()).build().await;
            store.expect("Redis answers").clear().await.expect("clear");
            redis_cmd(admin, redis::cmd("ACL").arg("DELUSER").arg(user)).await;
        }
    }
}

async fn redis_cmd(url: &str, cmd: &mut redis::Cmd) {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut conn = client.get_multiplexed_async_connection().await.expect("a connection");
    let _: redis::Value = cmd.query_async(&mut conn).await.expect("the command");
}
