//! What the end-to-end tests share: the backends, a store that counts its
//! writes, a served app, a browser that keeps its cookie by hand, and the
//! captured log.

#![allow(dead_code, missing_docs)]

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use session_store_core::{Record, Result, SessionId, SessionStore, SharedClock, Timestamp, async_trait};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    File,
    Sqlite,
    Redis,
}

/// How a test damages a stored record's bytes on its backend.
pub enum Raw {
    /// The memory store keeps decoded records: nothing to damage.
    None,
    File(session_store_file::FileStore),
    Sqlite {
        path: PathBuf,
        table: String,
    },
    Redis {
        url: String,
        store: session_store_redis::RedisStore,
    },
}

/// One backend, opened for one test.
pub struct Backend {
    pub kind: Kind,
    pub store: Arc<dyn SessionStore>,
    pub raw: Raw,
    _dir: Option<tempfile::TempDir>,
}

/// Whether a missing service fails the run instead of skipping.
pub fn strict() -> bool {
    std::env::var("SESSION_STORE_STRICT").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The value of `var`, or `None` after saying how to get it (a failure
/// under `SESSION_STORE_STRICT=1`).
pub fn env_or_skip(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let how = format!(
                "{var} is not set: run `store-redis/scripts/with-redis cargo test -p session-store-tower` \
                 (it starts private redis-servers; apt-get install redis-server if missing)"
            );
            assert!(!strict(), "{how}");
            // Past the test harness's capture, so the skip shows.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {how}");
            None
        }
    }
}

impl Backend {
    /// `kind` with `clock`, or `None` for Redis without a server (skipped, and said).
    pub async fn open(kind: Kind, clock: SharedClock, test: &str) -> Option<Self> {
        Some(match kind {
            Kind::Memory => Self {
                kind,
                store: Arc::new(session_store_memory::MemoryStore::builder().clock(clock).build()),
                raw: Raw::None,
                _dir: None,
            },
            Kind::File => {
                let dir = tempfile::tempdir().expect("a temp dir");
                let store = session_store_file::FileStore::builder(dir.path())
                    .clock(clock)
                    .open()
                    .expect("the file store opens");
                Self {
                    kind,
                    store: Arc::new(store.clone()),
                    raw: Raw::File(store),
                    _dir: Some(dir),
                }
            }
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("a temp dir");
                let path = dir.path().join("sessions.db");
                let store = session_store_sqlite::SqliteStore::builder(&path)
                    .clock(clock)
                    .open()
                    .expect("the SQLite store opens");
                let table = store.table().to_owned();
                Self {
                    kind,
                    store: Arc::new(store),
                    raw: Raw::Sqlite { path, table },
                    _dir: Some(dir),
                }
            }
            Kind::Redis => {
                let url = env_or_skip("SESSION_STORE_REDIS_URL", test)?;
                let store = session_store_redis::RedisStore::builder(url.clone())
                    .prefix(format!("sst-tower:{}:", SessionId::random()))
                    .clock(clock)
                    .timeout(Duration::from_secs(2))
                    .build()
                    .await
                    .expect("the test Redis answers");
                Self {
                    kind,
                    store: Arc::new(store.clone()),
                    raw: Raw::Redis { url, store },
                    _dir: None,
                }
            }
        })
    }

    /// Overwrites the stored bytes of `id` with garbage; `false` where the
    /// backend holds no bytes (memory).
    pub async fn damage(&self, id: &SessionId) -> bool {
        let garbage: &[u8] = b"\x07garbage, not a session record";
        match &self.raw {
            Raw::None => false,
            Raw::File(store) => {
                std::fs::write(store.path_of(id), garbage).expect("damage the file");
                true
            }
            Raw::Sqlite { path, table } => {
                let conn = rusqlite::Connection::open(path).expect("a raw connection");
                let changed = conn
                    .execute(
                        &format!("UPDATE \"{table}\" SET data = ?1 WHERE id = ?2"),
                        rusqlite::params![garbage, id.to_string()],
                    )
                    .expect("damage the row");
                assert_eq!(changed, 1, "the session's row");
                true
            }
            Raw::Redis { url, store } => {
                let client = redis::Client::open(url.as_str()).expect("a Redis URL");
                let mut conn = client.get_multiplexed_async_connection().await.expect("a connection");
                let _: i64 = redis::cmd("HSET")
                    .arg(store.key(id))
                    .arg("d")
                    .arg(garbage)
                    .query_async(&mut conn)
                    .await
                    .expect("HSET");
                true
            }
        }
    }

    /// Removes what the test stored (Redis is shared by every test).
    pub async fn cleanup(&self) {
        if self.kind == Kind::Redis {
            self.store.clear().await.expect("clear the test's keys");
        }
    }
}

/// Counts what reaches the wrapped store: loads and writes.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn SessionStore>,
    pub loads: AtomicU64,
    pub writes: AtomicU64,
}

impl Counting {
    pub fn new(inner: Arc<dyn SessionStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            loads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        })
    }

    /// (loads, writes) since the last call, and starts again from zero.
    pub fn take(&self) -> (u64, u64) {
        (
            self.loads.swap(0, Ordering::SeqCst),
            self.writes.swap(0, Ordering::SeqCst),
        )
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

/// Every write (create, save, save-if-version, touch, delete, rotate) counts
/// once; `SessionStoreExt::create_with_fresh_id` and `rotate_to_fresh_id`
/// go through `create` and `rotate`.
#[async_trait]
impl SessionStore for Counting {
    fn clock(&self) -> SharedClock {
        self.inner.clock()
    }
    async fn create(&self, record: &Record) -> Result<u64> {
        self.wrote();
        self.inner.create(record).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(id).await
    }
    async fn save(&self, record: &Record) -> Result<u64> {
        self.wrote();
        self.inner.save(record).await
    }
    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        self.wrote();
        self.inner.save_if_version(record).await
    }
    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        self.wrote();
        self.inner.touch(id, expires_at).await
    }
    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.wrote();
        self.inner.delete(id).await
    }
    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        self.wrote();
        self.inner.rotate(old, new).await
    }
    async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge_expired().await
    }
    async fn ids(&self) -> Result<Vec<session_store_core::ListingHandle>> {
        self.inner.ids().await
    }
    async fn clear(&self) -> Result<()> {
        self.inner.clear().await
    }
    fn listing_handle(&self, id: &session_store_core::SessionId) -> session_store_core::ListingHandle {
        self.inner.listing_handle(id)
    }
    async fn load_listed(
        &self,
        handle: &session_store_core::ListingHandle,
    ) -> session_store_core::Result<Option<session_store_core::Record>> {
        self.inner.load_listed(handle).await
    }
    async fn delete_listed(&self, handle: &session_store_core::ListingHandle) -> session_store_core::Result<()> {
        self.inner.delete_listed(handle).await
    }
    async fn owner_sessions(&self, _owner: &str) -> session_store_core::Result<Vec<session_store_core::ListingHandle>> {
        Err(session_store_core::Error::Unsupported("an owner index"))
    }
    async fn delete_owner_sessions(
        &self,
        _owner: &str,
        _keep: Option<&session_store_core::SessionId>,
    ) -> session_store_core::Result<u64> {
        Err(session_store_core::Error::Unsupported("an owner index"))
    }
}

/// Serves `app` on a free loopback port; answers its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("the server runs");
    });
    format!("http://{addr}")
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub set_cookie: Vec<String>,
}

/// A browser that keeps its `id` cookie by hand (so tests see every
/// `Set-Cookie` and can replay old cookies). Clones share the cookie.
#[derive(Clone)]
pub struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: Arc<Mutex<Option<String>>>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a client"),
            base: base.to_owned(),
            cookie: Arc::default(),
        }
    }

    /// The session id the browser holds.
    pub fn id(&self) -> Option<SessionId> {
        self.cookie_value().and_then(|v| v.parse().ok())
    }

    /// The `id` cookie's value.
    pub fn cookie_value(&self) -> Option<String> {
        self.cookie.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Sets the cookie's value by hand (`None`: no cookie).
    pub fn set_cookie_value(&self, value: Option<&str>) {
        *self.cookie.lock().unwrap_or_else(PoisonError::into_inner) = value.map(str::to_owned);
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path).await
    }

    pub async fn post(&self, path: &str) -> Answer {
        self.send(reqwest::Method::POST, path).await
    }

    /// GET that must succeed; answers the body.
    pub async fn ok(&self, path: &str) -> String {
        let answer = self.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {path}: {answer:?}");
        answer.body
    }

    pub async fn send(&self, method: reqwest::Method, path: &str) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(value) = self.cookie_value() {
            request = request.header(COOKIE, format!("id={value}"));
        }
        let response = request.send().await.expect("the app answers");
        let status = response.status();
        let set_cookie: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ASCII").to_owned())
            .collect();
        for header in &set_cookie {
            let (pair, attributes) = header.split_once(';').unwrap_or((header, ""));
            if let Some(value) = pair.strip_prefix("id=") {
                let cleared = attributes.split(';').any(|a| a.trim() == "Max-Age=0");
                self.set_cookie_value((!cleared).then_some(value));
            }
        }
        let body = response.text().await.expect("a text body");
        Answer {
            status,
            body,
            set_cookie,
        }
    }
}

/// The log of this test binary (every test's events; tests pick theirs by
/// a session's fingerprint).
pub fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        let writer = log.clone();
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish(),
        );
        log
    })
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// The lines that contain every one of `needles`.
    pub fn lines(&self, needles: &[&str]) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }

    /// Whether any line holds `needle`.
    pub fn holds(&self, needle: &str) -> bool {
        !self.lines(&[needle]).is_empty()
    }
}
