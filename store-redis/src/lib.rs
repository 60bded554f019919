//! A Redis and Redis Cluster session store (redis-rs, tokio).
//!
//! ```no_run
//! use session_store_core::{Clock, Expiry, Record, SessionData, SessionStore, SystemClock};
//! use session_store_redis::RedisStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379/0")
//!     .prefix("myapp:session:")
//!     .timeout(std::time::Duration::from_secs(1))
//!     .build()
//!     .await?;
//! let mut data = SessionData::new();
//! data.insert("user", &"alice")?;
//! let record = Record::new(data, SystemClock.now(), &Expiry::default());
//! store.create(&record).await?;
//! let loaded = store.load(&record.id).await?.expect("live");
//! assert_eq!(loaded.data.get::<String>("user")?.as_deref(), Some("alice"));
//!
//! // The same store type on a Redis Cluster: any reachable nodes as seeds.
//! let cluster = RedisStore::cluster_builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
//!     .build()
//!     .await?;
//! # let _ = cluster;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! A record lives under the key `{prefix}{{id}}` (for example
//! `session:{AAAAAAAAAAAAAAAAAAAAAA}`): the braces make the id a hash tag, so
//! on a cluster each key's slot depends on the id alone. The key holds a hash
//! with three fields: `d`, the body ([`codec::encode_body`]: created time and
//! data), `e`, the deadline in Unix milliseconds, and `v`, the version.
//! Create, save, save-if-version, touch and a single-slot rotate are each one
//! Lua script (`EVALSHA`), so each is atomic and one round trip; a load is one
//! `HMGET`. A hash whose fields this store did not write (a `d` that does
//! not decode, an `e` or `v` that is not a decimal integer) is a decode
//! error for that record's load; a save overwrites it, restarting at
//! version 1 when the stored `v` is not one it could have written.
//!
//! # Expiry
//!
//! Liveness is decided with the store's injected [`Clock`](session_store_core::Clock):
//! the scripts compare `e` with the `now` passed to them, and a load compares
//! it on the client. Every write also sets the key's `PEXPIRE` to
//! `expires_at - now + grace` ([`RedisStoreBuilder::ttl_grace`], 60 s by
//! default, at least 1 ms), so Redis drops expired keys by itself without a
//! purge; that TTL only collects garbage and never decides liveness.
//!
//! # Cluster
//!
//! [`RedisStore::cluster_builder`] gives the same store on a Redis Cluster.
//! Every operation but rotate touches one key. Rotate moves a record between
//! two ids whose keys are in different slots, usually on different masters,
//! so there it is **not atomic**: the store reads the old record, writes it
//! under the new id only if no live record is there (never overwriting one),
//! then deletes the old key only if it still holds what was copied. A crash
//! or a lost connection between the two writes leaves **both** ids holding
//! the record (the old one still valid), never neither. A write to the old id
//! that races the rotation is detected: the copy is withdrawn and the
//! rotation retried. This is the one rule the store weakens, exactly: while
//! a cross-slot rotate runs, a reader may load the record under both ids,
//! never under neither, and once rotate has returned only the new id loads.
//! Its conformance harness declares it as the capability
//! `rotate_briefly_shows_both_ids`, and the suite checks that weaker rule.
//!
//! A key of this store's shape that holds another Redis type than a hash
//! (written by something else) is a decode error for that id
//! ([`Error::Decode`], not worth a retry), not a backend failure; `count`,
//! `ids` and `purge_expired` skip it. When both keys fall into one slot (a prefix with its own
//! hash tag, such as `app{sessions}:`) rotate is one atomic script there too.
//! `count`, `ids`, `clear` and `purge_expired` SCAN every master.
//!
//! # TLS
//!
//! With the `tls` feature, `rediss://` URLs connect over rustls, trusting
//! the platform's roots or the CA given to `RedisStoreBuilder::tls_root_ca`.
//!
//! # When Redis goes away
//!
//! Every round trip is bounded by [`RedisStoreBuilder::timeout`]: an
//! operation fails with [`Error::Timeout`] or [`Error::Backend`], never
//! hangs. The connection reconnects by itself in the background (and after a
//! timeout the store swaps in a fresh connection, so a half-open socket
//! cannot stall it), so the same store object works again once the server
//! is back.
//!
//! What the operator's log gets (`tracing`, target `session_store_redis`),
//! one event per change of state and nothing on the hot path: a `warn` when
//! calls start failing for want of a server (refused, dropped or timed-out
//! connections; then `debug` for each further failure), an `info` when
//! Redis answers again, a `warn` each time a timed-out connection is
//! replaced by a fresh one, and an `info` when a cross-slot rotate retries
//! after racing a concurrent write.

mod scripts;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use session_store_core::{
    DEFAULT_MAX_RECORD_BYTES, Error, Record, Result, SessionId, SessionStore, SharedClock, Timestamp, async_trait,
    codec, system_clock,
};

use scripts::Scripts;

/// The default bound on every round trip to Redis.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default time a key outlives its deadline before Redis drops it.
pub const DEFAULT_TTL_GRACE: Duration = Duration::from_secs(60);
/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "session:";

/// The largest TTL set on a key (about 3,000 years): a far-future deadline
/// must not overflow Redis's expiry arithmetic.
const MAX_TTL_MS: i64 = 100_000_000_000_000;
/// How often a cross-slot rotate that raced a write is retried.
const ROTATE_ATTEMPTS: usize = 4;

#[derive(Debug, Clone)]
enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// Builds a [`RedisStore`]: see [`RedisStore::builder`] and
/// [`RedisStore::cluster_builder`].
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    target: Target,
    clock: SharedClock,
    max_record_bytes: usize,
    prefix: String,
    timeout: Duration,
    ttl_grace: Duration,
    scan_count: usize,
    #[cfg(feature = "tls")]
    root_ca: Option<Vec<u8>>,
}

impl RedisStoreBuilder {
    fn new(target: Target) -> Self {
        Self {
            target,
            clock: system_clock(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            ttl_grace: DEFAULT_TTL_GRACE,
            scan_count: 1000,
            #[cfg(feature = "tls")]
            root_ca: None,
        }
    }

    /// Trusts this CA certificate (PEM) for `rediss://` connections instead
    /// of the platform's roots: for a Redis with a self-signed or private CA.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_root_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_ca = Some(pem.into());
        self
    }

    #[cfg(feature = "tls")]
    fn tls_certificates(&self) -> Option<redis::TlsCertificates> {
        // rustls needs a process-wide crypto provider; install ring's
        // unless the application installed one.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        self.root_ca.clone().map(|pem| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        })
    }

    fn client(&self, url: &str) -> Result<redis::Client> {
        let invalid = |e| Error::config_with("invalid Redis URL (redis://[user:password@]host:port/db)", e);
        #[cfg(feature = "tls")]
        if let Some(certs) = self.tls_certificates() {
            return redis::Client::build_with_tls(url, certs).map_err(invalid);
        }
        redis::Client::open(url).map_err(invalid)
    }

    fn cluster_client(&self, urls: &[String]) -> Result<redis::cluster::ClusterClient> {
        let builder = ClusterClientBuilder::new(urls.iter().map(String::as_str))
            .connection_timeout(self.timeout)
            .response_timeout(self.timeout)
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(500);
        #[cfg(feature = "tls")]
        let builder = match self.tls_certificates() {
            Some(certs) => builder.certs(certs),
            None => builder,
        };
        builder
            .build()
            .map_err(|e| Error::config_with("invalid Redis Cluster URLs", e))
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

    /// The key prefix: this store's namespace (default [`DEFAULT_PREFIX`]).
    /// Any bytes are allowed; glob characters are escaped when scanning.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound on every round trip to Redis, and on connecting (default
    /// [`DEFAULT_TIMEOUT`]). An operation that passes it fails with
    /// [`Error::Timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a key outlives its deadline before Redis's own expiry drops
    /// it (default [`DEFAULT_TTL_GRACE`]). The grace covers a clock that is
    /// behind Redis's; liveness never depends on it.
    #[must_use]
    pub fn ttl_grace(mut self, grace: Duration) -> Self {
        self.ttl_grace = grace;
        self
    }

    /// The `COUNT` hint of each `SCAN` page (default 1000).
    #[must_use]
    pub fn scan_count(mut self, count: usize) -> Self {
        self.scan_count = count.max(1);
        self
    }

    /// Connects and returns the store.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed URL or a `rediss://` URL without
    /// the `tls` feature; [`Error::Backend`] for a server that refuses the
    /// connection;
    /// [`Error::Timeout`] when connecting takes longer than the timeout.
    pub async fn build(self) -> Result<RedisStore> {
        let timeout = self.timeout;
        let urls: Vec<&str> = match &self.target {
            Target::Single(url) => vec![url.as_str()],
            Target::Cluster(urls) => urls.iter().map(String::as_str).collect(),
        };
        if urls.is_empty() {
            return Err(Error::config("a Redis Cluster store needs at least one node URL"));
        }
        if !cfg!(feature = "tls") && urls.iter().any(|u| u.starts_with("rediss://")) {
            return Err(Error::config(
                "a rediss:// URL needs the `tls` feature of session-store-redis",
            ));
        }
        let mut single = None;
        let conn = match &self.target {
            Target::Single(url) => {
                let client = self.client(url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(500))
                    .set_number_of_retries(1);
                single = Some((client.clone(), config.clone()));
                let manager = run(
                    timeout,
                    "connecting",
                    ConnectionManager::new_with_config(client, config),
                )
                .await?;
                Conn::Single(manager)
            }
            Target::Cluster(urls) => {
                let client = self.cluster_client(urls)?;
                let conn = run(timeout, "connecting to the cluster", client.get_async_connection()).await?;
                Conn::Cluster(conn)
            }
        };
        let mut pattern = escape_glob(&self.prefix);
        pattern.push('{');
        pattern.extend(std::iter::repeat_n('?', session_store_core::SESSION_ID_LEN));
        pattern.push('}');
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn: RwLock::new(ConnSlot {
                    conn,
                    since: Instant::now(),
                }),
                single,
                scripts: Scripts::new(),
                clock: self.clock,
                max_record_bytes: self.max_record_bytes,
                prefix: self.prefix,
                pattern,
                timeout,
                grace_ms: i64::try_from(self.ttl_grace.as_millis()).unwrap_or(MAX_TTL_MS),
                scan_count: self.scan_count,
                unreachable: AtomicBool::new(false),
            }),
        })
    }
}

/// Escapes Redis glob characters so `MATCH` takes them literally.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Bounds `f` by `timeout` and maps its errors.
async fn run<T>(timeout: Duration, what: &str, f: impl Future<Output = RedisResult<T>>) -> Result<T> {
    run_classified(timeout, what, f).await.map_err(|(e, _)| e)
}

/// As [`run`], and says whether a failure means the server is out of reach
/// (refused, dropped, timed out) rather than a reply it gave.
async fn run_classified<T>(
    timeout: Duration,
    what: &str,
    f: impl Future<Output = RedisResult<T>>,
) -> Result<T, (Error, bool)> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        // redis-rs's own response or connect timeout (set to the same bound).
        Ok(Err(e)) if e.is_timeout() => Err((Error::Timeout(timeout), true)),
        Ok(Err(e)) => {
            let unreachable = e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped();
            Err((Error::backend(format!("Redis failed while {what}"), e), unreachable))
        }
        Err(_) => Err((Error::Timeout(timeout), true)),
    }
}

/// One connection: a single server or a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Where one SCAN runs: the single server, or one cluster master.
#[derive(Debug, Clone)]
enum Node {
    Single,
    Master { host: String, port: u16 },
}

/// What to do with each page of scanned keys.
enum PageOp {
    Ids(Timestamp, Vec<SessionId>),
    Clear,
    Purge(Timestamp, u64),
}

/// A Redis or Redis Cluster session store. Cloning it shares the connection.
///
/// See the [crate docs](crate) for the key layout, expiry and cluster
/// behaviour.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// The current connection, and since when.
struct ConnSlot {
    conn: Conn,
    since: Instant,
}

struct Inner {
    conn: RwLock<ConnSlot>,
    /// How to make a fresh single-server connection (see `on_timeout`).
    single: Option<(redis::Client, ConnectionManagerConfig)>,
    scripts: Scripts,
    clock: SharedClock,
    max_record_bytes: usize,
    prefix: String,
    pattern: String,
    timeout: Duration,
    grace_ms: i64,
    scan_count: usize,
    /// Whether the last call failed for want of a server (see `run`).
    unreachable: AtomicBool,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field(
                "mode",
                &match self.conn() {
                    Conn::Single(_) => "single",
                    Conn::Cluster(_) => "cluster",
                },
            )
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("ttl_grace_ms", &self.inner.grace_ms)
            .field("max_record_bytes", &self.inner.max_record_bytes)
            .finish_non_exhaustive()
    }
}

fn parse_i64(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Whether `e` is Redis's `WRONGTYPE`: a key of ours holding another type
/// than a hash (written by something else).
fn is_wrong_type(e: &Error) -> bool {
    matches!(e, Error::Backend { source: Some(source), .. }
        if source.downcast_ref::<redis::RedisError>().is_some_and(|r| r.code() == Some("WRONGTYPE")))
}

/// A `WRONGTYPE` reply is a decode failure of that record, not a backend
/// failure: permanent (not worth a retry) and about `id` alone.
fn wrong_type(e: Error, id: &SessionId) -> Error {
    if is_wrong_type(&e) {
        Error::decode(
            id,
            "the key holds another Redis type than a session hash",
            Some(Box::new(e)),
        )
    } else {
        e
    }
}

fn bad_reply(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend(format!("unexpected Redis reply to {what}"), e)
}

impl RedisStore {
    /// A builder for a store on one Redis server, by URL:
    /// `redis://[[user]:password@]host[:port][/db]`, or `rediss://` (TLS,
    /// with the `tls` feature).
    #[must_use]
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Target::Single(url.into()))
    }

    /// A builder for a store on a Redis Cluster, from the URLs of one or more
    /// of its nodes (the rest are discovered).
    #[must_use]
    pub fn cluster_builder<I, S>(urls: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::new(Target::Cluster(urls.into_iter().map(Into::into).collect()))
    }

    /// The Redis key of `id`'s record: `{prefix}{{id}}`.
    #[must_use]
    pub fn key(&self, id: &SessionId) -> String {
        let id = id.encode();
        let mut key = String::with_capacity(self.inner.prefix.len() + 24);
        key.push_str(&self.inner.prefix);
        key.push('{');
        key.push_str(id.as_str());
        key.push('}');
        key
    }

    /// Whether this store runs against a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.inner.single.is_none()
    }

    /// The id of a key of this store, or `None` for a foreign key.
    fn id_of_key(&self, key: &[u8]) -> Option<SessionId> {
        let rest = key.strip_prefix(self.inner.prefix.as_bytes())?;
        let rest = rest.strip_prefix(b"{")?.strip_suffix(b"}")?;
        std::str::from_utf8(rest).ok()?.parse().ok()
    }

    fn conn(&self) -> Conn {
        self.inner
            .conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .conn
            .clone()
    }

    /// After a call timed out: the server may be gone without closing the
    /// socket (a half-open connection), which redis-rs does not treat as a
    /// reason to reconnect. Replace the single-server connection with a
    /// fresh one that connects on first use, at most once per timeout period.
    fn on_timeout(&self) {
        let Some((client, config)) = &self.inner.single else {
            return;
        };
        let mut slot = self.inner.conn.write().unwrap_or_else(PoisonError::into_inner);
        if slot.since.elapsed() < self.inner.timeout {
            return;
        }
        match ConnectionManager::new_lazy_with_config(client.clone(), config.clone()) {
            Ok(manager) => {
                tracing::warn!(
                    timeout = ?self.inner.timeout,
                    "a Redis call timed out; replacing the connection with a fresh one"
                );
                *slot = ConnSlot {
                    conn: Conn::Single(manager),
                    since: Instant::now(),
                };
            }
            Err(e) => tracing::warn!(error = %e, "a Redis call timed out and a fresh connection could not be made"),
        }
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The TTL for a key with this deadline: `expires_at - now + grace`,
    /// between 1 ms and [`MAX_TTL_MS`].
    fn ttl_ms(&self, expires_at: Timestamp, now: Timestamp) -> i64 {
        let ms = i128::from(expires_at.as_millis()) - i128::from(now.as_millis()) + i128::from(self.inner.grace_ms);
        ms.clamp(1, i128::from(MAX_TTL_MS)) as i64
    }

    async fn run<T>(&self, what: &str, f: impl Future<Output = RedisResult<T>>) -> Result<T> {
        match run_classified(self.inner.timeout, what, f).await {
            Ok(v) => {
                // One relaxed load per call; a store operator hears once when Redis is back.
                if self.inner.unreachable.load(Ordering::Relaxed)
                    && self.inner.unreachable.swap(false, Ordering::Relaxed)
                {
                    tracing::info!(operation = what, "Redis answers again");
                }
                Ok(v)
            }
            Err((error, unreachable)) => {
                if unreachable {
                    if self.inner.unreachable.swap(true, Ordering::Relaxed) {
                        tracing::debug!(operation = what, error = %error.chain(), "Redis still out of reach");
                    } else {
                        tracing::warn!(
                            operation = what,
                            error = %error.chain(),
                            "Redis is out of reach; calls fail until it answers again (reconnecting in the background)"
                        );
                    }
                }
                if matches!(error, Error::Timeout(_)) {
                    self.on_timeout();
                }
                Err(error)
            }
        }
    }

    fn encode(&self, record: &Record) -> Result<Vec<u8>> {
        codec::check_size(&record.data, self.inner.max_record_bytes)?;
        codec::encode_body(record)
    }

    /// Runs `pipe` on `node` (a cluster pipeline must stay on one node).
    async fn node_pipe(&self, node: &Node, pipe: Pipeline, what: &str) -> Result<Vec<Value>> {
        let n = pipe.len();
        match (self.conn(), node) {
            (Conn::Cluster(mut c), Node::Master { host, port }) => {
                let route = SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                };
                self.run(what, c.route_pipeline(pipe, 0, n, route)).await
            }
            (mut c, _) => self.run(what, pipe.query_async(&mut c)).await,
        }
    }

    fn scan_cmd(&self, cursor: &str) -> Cmd {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&self.inner.pattern)
            .arg("COUNT")
            .arg(self.inner.scan_count);
        cmd
    }

    /// SCANs this store's keys on every node, applying `op` to each page.
    async fn scan(&self, op: &mut PageOp) -> Result<()> {
        let mut cursors: Vec<(Node, String)> = Vec::new();
        match self.conn() {
            Conn::Single(_) => cursors.push((Node::Single, "0".to_owned())),
            Conn::Cluster(mut c) => {
                // The first page from every master at once; the reply maps
                // each master's address to its page.
                let routing =
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(ResponsePolicy::Special)));
                let reply = self
                    .run("scanning", c.route_command(self.scan_cmd("0"), routing))
                    .await?;
                let Value::Map(pages) = reply else {
                    return Err(Error::backend_msg(format!(
                        "unexpected Redis reply to SCAN on every master: {reply:?}"
                    )));
                };
                for (addr, page) in pages {
                    let addr: String = redis::from_redis_value(addr).map_err(|e| bad_reply("SCAN", e))?;
                    let (host, port) = addr
                        .rsplit_once(':')
                        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                        .ok_or_else(|| Error::backend_msg(format!("unexpected cluster node address {addr:?}")))?;
                    if let Value::ServerError(e) = page {
                        return Err(Error::backend(
                            format!("SCAN failed on {addr}"),
                            redis::RedisError::from(e),
                        ));
                    }
                    let (cursor, keys): (String, Vec<Vec<u8>>) =
                        redis::from_redis_value(page).map_err(|e| bad_reply("SCAN", e))?;
                    let node = Node::Master { host, port };
                    self.page(&node, keys, op).await?;
                    if cursor != "0" {
                        cursors.push((node, cursor));
                    }
                }
            }
        }
        for (node, mut cursor) in cursors {
            loop {
                let mut pipe = redis::pipe();
                pipe.add_command(self.scan_cmd(&cursor));
                let mut reply = self.node_pipe(&node, pipe, "scanning").await?;
                let page = reply
                    .pop()
                    .ok_or_else(|| Error::backend_msg("empty Redis reply to SCAN"))?;
                let (next, keys): (String, Vec<Vec<u8>>) =
                    redis::from_redis_value(page).map_err(|e| bad_reply("SCAN", e))?;
                self.page(&node, keys, op).await?;
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// Applies `op` to one page of keys scanned on `node`.
    async fn page(&self, node: &Node, keys: Vec<Vec<u8>>, op: &mut PageOp) -> Result<()> {
        let keys: Vec<(Vec<u8>, SessionId)> = keys
            .into_iter()
            .filter_map(|k| self.id_of_key(&k).map(|id| (k, id)))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        // A foreign value of the wrong type under a key of our shape fails
        // its own command only; it counts as not live and is not purged.
        pipe.ignore_errors();
        match op {
            PageOp::Ids(..) => {
                for (k, _) in &keys {
                    pipe.hget(k, "e");
                }
            }
            PageOp::Clear => {
                for (k, _) in &keys {
                    pipe.unlink(k);
                }
            }
            PageOp::Purge(now, _) => {
                // Loaded first in the same pipeline, so every EVALSHA after
                // it finds the script without sending its source per key.
                pipe.cmd("SCRIPT").arg("LOAD").arg(&self.inner.scripts.purge_src);
                for (k, _) in &keys {
                    pipe.cmd("EVALSHA")
                        .arg(&self.inner.scripts.purge_sha)
                        .arg(1)
                        .arg(k)
                        .arg(now.as_millis());
                }
            }
        }
        let replies = self.node_pipe(node, pipe, "reading a page of keys").await?;
        match op {
            PageOp::Ids(now, ids) => {
                for ((_, id), e) in keys.iter().zip(replies) {
                    let e: Option<Vec<u8>> = redis::from_redis_value(e).unwrap_or(None);
                    if e.as_deref().and_then(parse_i64).is_some_and(|e| e > now.as_millis()) {
                        ids.push(*id);
                    }
                }
            }
            PageOp::Clear => {}
            PageOp::Purge(_, removed) => {
                let mut replies = replies.into_iter();
                if let Some(Value::ServerError(e)) = replies.next() {
                    return Err(Error::backend(
                        "Redis failed while loading the purge script",
                        redis::RedisError::from(e),
                    ));
                }
                for r in replies {
                    let r: i64 = redis::from_redis_value(r).unwrap_or(0);
                    *removed += u64::from(r == 1);
                }
            }
        }
        Ok(())
    }

    /// Rotate across two hash slots (cluster): copy, then delete the old
    /// key only if unchanged. See the crate docs for what is guaranteed.
    async fn rotate_cross_slot(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let (old_key, new_key) = (self.key(old), self.key(new));
        for _ in 0..ROTATE_ATTEMPTS {
            let now = self.now();
            let Some((body, e, v)) = self.take(&old_key, now).await? else {
                // Not live under `old`; a live record under `new` still wins.
                return match self.is_live(&new_key, now).await? {
                    true => Err(Error::IdCollision { id: *new }),
                    false => Ok(false),
                };
            };
            let body = body.ok_or_else(|| Error::decode(old, "the stored record has no body", None))?;
            let expires_at = parse_i64(e.as_bytes())
                .map(Timestamp::from_millis)
                .ok_or_else(|| Error::decode(old, "the stored deadline is not an integer", None))?;
            let placed: i64 = self
                .run(
                    "writing the rotated record",
                    self.copy_step(&new_key, now, &body, &e, &v, expires_at)
                        .invoke_async(&mut self.conn()),
                )
                .await?;
            if placed == 0 {
                return Err(Error::IdCollision { id: *new });
            }
            if self
                .delete_if(&old_key, &e, &v, "removing the rotated record's old id")
                .await?
            {
                return Ok(true);
            }
            // The old record changed meanwhile: withdraw the copy and retry.
            self.delete_if(&new_key, &e, &v, "withdrawing a rotated copy").await?;
            tracing::info!(
                session = %old.fingerprint(),
                "a cross-slot rotate raced a concurrent write to the old id; retrying"
            );
        }
        tracing::warn!(
            session = %old.fingerprint(),
            attempts = ROTATE_ATTEMPTS,
            "a cross-slot rotate kept racing concurrent writes; nothing was moved"
        );
        Err(Error::backend_msg(
            "rotate kept racing concurrent writes to the old id; nothing was moved",
        ))
    }

    /// The first step of a cross-slot rotate: the live record under `key`
    /// as (body, deadline, version), or `None`.
    async fn take(&self, key: &str, now: Timestamp) -> Result<Option<(Option<Vec<u8>>, String, String)>> {
        self.run(
            "reading the record to rotate",
            self.inner
                .scripts
                .take
                .key(key)
                .arg(now.as_millis())
                .invoke_async(&mut self.conn()),
        )
        .await
    }

    /// Deletes `key` if it still holds deadline `e` and version `v`; whether
    /// it did.
    async fn delete_if(&self, key: &str, e: &str, v: &str, what: &str) -> Result<bool> {
        let deleted: i64 = self
            .run(
                what,
                self.inner
                    .scripts
                    .delete_if
                    .key(key)
                    .arg(e)
                    .arg(v)
                    .invoke_async(&mut self.conn()),
            )
            .await?;
        Ok(deleted == 1)
    }

    fn copy_step<'a>(
        &'a self,
        new_key: &str,
        now: Timestamp,
        body: &[u8],
        e: &str,
        v: &str,
        expires_at: Timestamp,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = self.inner.scripts.place.key(new_key);
        inv.arg(now.as_millis())
            .arg(body)
            .arg(e)
            .arg(v)
            .arg(self.ttl_ms(expires_at, now));
        inv
    }

    /// `script` on `record`'s key with the arguments every record write
    /// starts with: the body, the deadline, `now` and the key's TTL.
    fn write_step<'a>(
        &self,
        script: &'a redis::Script,
        record: &Record,
        body: Vec<u8>,
        now: Timestamp,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.key(self.key(&record.id));
        inv.arg(body)
            .arg(record.expires_at.as_millis())
            .arg(now.as_millis())
            .arg(self.ttl_ms(record.expires_at, now));
        inv
    }

    async fn is_live(&self, key: &str, now: Timestamp) -> Result<bool> {
        let mut conn = self.conn();
        let e: Option<Vec<u8>> = self
            .run(
                "reading a deadline",
                redis::cmd("HGET").arg(key).arg("e").query_async(&mut conn),
            )
            .await?;
        Ok(e.as_deref().and_then(parse_i64).is_some_and(|e| e > now.as_millis()))
    }

    #[cfg(test)]
    async fn rotate_copy_only(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        // The first two steps of a cross-slot rotate: what a crash between
        // the copy and the delete leaves behind.
        let now = self.now();
        let (old_key, new_key) = (self.key(old), self.key(new));
        let Some((body, e, v)) = self.take(&old_key, now).await? else {
            return Ok(false);
        };
        let body = body.ok_or_else(|| Error::decode(old, "the stored record has no body", None))?;
        let expires_at = Timestamp::from_millis(parse_i64(e.as_bytes()).unwrap_or(0));
        let placed: i64 = self
            .run(
                "place",
                self.copy_step(&new_key, now, &body, &e, &v, expires_at)
                    .invoke_async(&mut self.conn()),
            )
            .await?;
        Ok(placed == 1)
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    fn clock(&self) -> SharedClock {
        Arc::clone(&self.inner.clock)
    }

    async fn create(&self, record: &Record) -> Result<()> {
        let body = self.encode(record)?;
        let now = self.now();
        let created: i64 = self
            .run(
                "creating a session",
                self.write_step(&self.inner.scripts.create, record, body, now)
                    .invoke_async(&mut self.conn()),
            )
            .await
            .map_err(|e| wrong_type(e, &record.id))?;
        if created == 1 {
            Ok(())
        } else {
            Err(Error::IdCollision { id: record.id })
        }
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let mut conn = self.conn();
        let key = self.key(id);
        let (d, e, v): (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>) = self
            .run(
                "loading a session",
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("d")
                    .arg("e")
                    .arg("v")
                    .query_async(&mut conn),
            )
            .await
            .map_err(|e| wrong_type(e, id))?;
        let now = self.now();
        let Some(e) = e else {
            return match d.is_some() || v.is_some() {
                true => Err(Error::decode(id, "the stored record has no deadline", None)),
                false => Ok(None),
            };
        };
        let expires_at =
            parse_i64(&e).ok_or_else(|| Error::decode(id, "the stored deadline is not an integer", None))?;
        if expires_at <= now.as_millis() {
            return Ok(None);
        }
        let version = v
            .as_deref()
            .and_then(parse_u64)
            .ok_or_else(|| Error::decode(id, "the stored version is missing or not an integer", None))?;
        let body = d.ok_or_else(|| Error::decode(id, "the stored record has no body", None))?;
        codec::decode_body(*id, &body, Timestamp::from_millis(expires_at), version).map(Some)
    }

    async fn save(&self, record: &Record) -> Result<u64> {
        let body = self.encode(record)?;
        let now = self.now();
        let version: i64 = self
            .run(
                "saving a session",
                self.write_step(&self.inner.scripts.save, record, body, now)
                    .invoke_async(&mut self.conn()),
            )
            .await
            .map_err(|e| wrong_type(e, &record.id))?;
        u64::try_from(version).map_err(|_| Error::backend_msg(format!("the save script returned version {version}")))
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        let conflict = Error::Conflict {
            id: record.id,
            expected: record.version,
        };
        let body = self.encode(record)?;
        // No stored record ever has version u64::MAX.
        let Some(next) = record.version.checked_add(1) else {
            return Err(conflict);
        };
        let now = self.now();
        let saved: i64 = self
            .run(
                "saving a session conditionally",
                self.write_step(&self.inner.scripts.save_if_version, record, body, now)
                    .arg(record.version)
                    .arg(next)
                    .invoke_async(&mut self.conn()),
            )
            .await
            .map_err(|e| wrong_type(e, &record.id))?;
        if saved == 1 { Ok(next) } else { Err(conflict) }
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        let now = self.now();
        let touched: i64 = self
            .run(
                "touching a session",
                self.inner
                    .scripts
                    .touch
                    .key(self.key(id))
                    .arg(expires_at.as_millis())
                    .arg(now.as_millis())
                    .arg(self.ttl_ms(expires_at, now))
                    .invoke_async(&mut self.conn()),
            )
            .await
            .map_err(|e| wrong_type(e, id))?;
        Ok(touched == 1)
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        let mut conn = self.conn();
        let _: i64 = self
            .run(
                "deleting a session",
                redis::cmd("DEL").arg(self.key(id)).query_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        match self.rotate_keys(old, new).await {
            Err(e) if is_wrong_type(&e) => {
                // Name the id whose key holds the wrong type.
                let mut conn = self.conn();
                let kind: String = self
                    .run(
                        "reading a key's type",
                        redis::cmd("TYPE").arg(self.key(new)).query_async(&mut conn),
                    )
                    .await
                    .unwrap_or_default();
                let culprit = if matches!(kind.as_str(), "hash" | "none") {
                    old
                } else {
                    new
                };
                Err(wrong_type(e, culprit))
            }
            other => other,
        }
    }

    async fn purge_expired(&self) -> Result<u64> {
        let mut op = PageOp::Purge(self.now(), 0);
        self.scan(&mut op).await?;
        Ok(match op {
            PageOp::Purge(_, removed) => removed,
            _ => 0,
        })
    }

    async fn count(&self) -> Result<u64> {
        Ok(self.ids().await?.len() as u64)
    }

    async fn ids(&self) -> Result<Vec<SessionId>> {
        let mut op = PageOp::Ids(self.now(), Vec::new());
        self.scan(&mut op).await?;
        let PageOp::Ids(_, mut ids) = op else {
            return Ok(Vec::new());
        };
        // A key seen twice (SCAN may repeat one while the keyspace rehashes)
        // counts once.
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    async fn clear(&self) -> Result<()> {
        self.scan(&mut PageOp::Clear).await
    }
}

impl RedisStore {
    /// Rotate, with the keys' wrong-type errors still raw.
    async fn rotate_keys(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let (old_key, new_key) = (self.key(old), self.key(new));
        if self.is_cluster() && Slot::for_key(&old_key) != Slot::for_key(&new_key) {
            return self.rotate_cross_slot(old, new).await;
        }
        let now = self.now();
        let moved: i64 = self
            .run(
                "rotating a session id",
                self.inner
                    .scripts
                    .rotate
                    .key(&old_key)
                    .key(&new_key)
                    .arg(now.as_millis())
                    .invoke_async(&mut self.conn()),
            )
            .await?;
        match moved {
            -1 => Err(Error::IdCollision { id: *new }),
            0 => Ok(false),
            _ => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests;
