//! What the integration tests share: the servers from the environment, a
//! raw connection for poking at stored bytes, and the conformance harness.

#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue};
use session_store_core::{SessionId, SharedClock};
use session_store_redis::{RedisStore, RedisStoreBuilder};

pub const HOW: &str = "run the tests under `store-redis/scripts/with-redis cargo test -p session-store-redis` \
                       (or the project's ./scripts/test), which starts private Redis servers on free loopback \
                       ports, installing redis-server when missing, and exports their URLs";

/// The value of `var`, or `None` after saying how to get it; under
/// `SESSION_STORE_STRICT=1` a missing server fails the test instead.
pub fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let msg = format!("{var} is not set: {HOW}");
            assert!(!session_store_conformance::strict(), "{msg}");
            // Past the test harness's output capture, so the skip shows.
            let _ = std::io::Write::write_fmt(&mut std::io::stderr().lock(), format_args!("skipped: {msg}\n"));
            None
        }
    }
}

/// A fresh random prefix: this test's namespace.
pub fn random_prefix() -> String {
    format!("sst:{}:", SessionId::random())
}

/// Which deployment a test runs against.
#[derive(Debug, Clone)]
pub enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl Target {
    pub fn single() -> Option<Self> {
        env_or_skip("SESSION_STORE_REDIS_URL").map(Self::Single)
    }

    pub fn cluster() -> Option<Self> {
        env_or_skip("SESSION_STORE_REDIS_CLUSTER_URLS")
            .map(|urls| Self::Cluster(urls.split(',').map(str::to_owned).collect()))
    }

    pub fn builder(&self) -> RedisStoreBuilder {
        match self {
            Self::Single(url) => RedisStore::builder(url.clone()),
            Self::Cluster(urls) => RedisStore::cluster_builder(urls.clone()),
        }
    }

    /// A store on `prefix` with `clock`.
    pub async fn open(&self, prefix: &str, clock: SharedClock) -> RedisStore {
        self.builder()
            .prefix(prefix)
            .clock(clock)
            .ttl_grace(std::time::Duration::from_secs(600))
            .build()
            .await
            .expect("connect to the test Redis")
    }

    pub async fn raw(&self) -> Raw {
        match self {
            Self::Single(url) => Raw::Single(
                redis::Client::open(url.as_str())
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap(),
            ),
            Self::Cluster(urls) => Raw::Cluster(
                redis::cluster::ClusterClient::new(urls.clone())
                    .unwrap()
                    .get_async_connection()
                    .await
                    .unwrap(),
            ),
        }
    }
}

/// A plain connection for reading and writing stored bytes.
pub enum Raw {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Raw {
    pub async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> redis::RedisResult<T> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// The conformance suite's view of a deployment: a namespace is a random
/// key prefix on the shared test server (or cluster).
pub struct RedisHarness {
    /// The deployment, or why there is none (the variable is not set).
    target: std::result::Result<Target, String>,
}

impl RedisHarness {
    /// The harness for the deployment `SESSION_STORE_REDIS_URL` (or, with
    /// `cluster`, `SESSION_STORE_REDIS_CLUSTER_URLS`) names. Without one it
    /// is unavailable: each conformance test then prints one `skipped:`
    /// line saying how to get a server, or fails under
    /// `SESSION_STORE_STRICT=1`.
    pub fn from_env(cluster: bool) -> Self {
        let var = if cluster {
            "SESSION_STORE_REDIS_CLUSTER_URLS"
        } else {
            "SESSION_STORE_REDIS_URL"
        };
        let target = match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(if cluster {
                Target::Cluster(value.split(',').map(str::to_owned).collect())
            } else {
                Target::Single(value)
            }),
            _ => Err(format!("{var} is not set: {HOW}")),
        };
        Self { target }
    }

    fn target(&self) -> session_store_core::Result<&Target> {
        self.target
            .as_ref()
            .map_err(|why| session_store_core::Error::backend_msg("redis", why.clone()))
    }

    fn key(prefix: &str, id: &SessionId) -> String {
        format!("{prefix}{{{id}}}")
    }
}

/// Escapes Redis glob characters so `SCAN MATCH` takes them literally.
pub fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every key starting with `prefix` on the server at `url` (one node of a
/// cluster scans only its own keys).
async fn keys_on_node(url: &str, prefix: &str) -> redis::RedisResult<Vec<Vec<u8>>> {
    let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let pattern = format!("{}*", escape_glob(prefix));
    let mut keys = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let (next, page): (String, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut conn)
            .await?;
        keys.extend(page);
        if next == "0" {
            return Ok(keys);
        }
        cursor = next;
    }
}

#[session_store_core::async_trait]
impl session_store_conformance::Harness for RedisHarness {
    type Store = RedisStore;
    type Namespace = String;

    /// Everything, the owner index too; on a cluster also the weaker
    /// rotate rule the store documents for a rotate between two hash slots.
    fn capabilities(&self) -> session_store_conformance::Capabilities {
        session_store_conformance::Capabilities::all()
            .owner_index(true)
            .rotate_briefly_shows_both_ids(matches!(self.target, Ok(Target::Cluster(_))))
    }

    async fn available(&self) -> std::result::Result<(), String> {
        self.target.as_ref().map(drop).map_err(Clone::clone)
    }

    async fn new_namespace(&self) -> session_store_core::Result<String> {
        Ok(random_prefix())
    }

    /// Deletes every key under the prefix, whatever the test left there
    /// (live, expired, corrupt or of the wrong type): SCAN each node, DEL
    /// through a connection that routes each key to its slot's master.
    async fn teardown(&self, prefix: &String) -> session_store_core::Result<()> {
        let target = self.target()?;
        let urls = match target {
            Target::Single(url) => std::slice::from_ref(url),
            Target::Cluster(urls) => urls.as_slice(),
        };
        let mut raw = target.raw().await;
        for url in urls {
            let keys = keys_on_node(url, prefix)
                .await
                .map_err(|e| session_store_core::Error::backend("redis", "SCAN for teardown", e))?;
            for key in keys {
                raw.query::<i64>(redis::cmd("DEL").arg(key))
                    .await
                    .map_err(|e| session_store_core::Error::backend("redis", "DEL for teardown", e))?;
            }
        }
        Ok(())
    }

    async fn open(
        &self,
        prefix: &String,
        config: &session_store_conformance::StoreConfig,
    ) -> session_store_core::Result<RedisStore> {
        self.target()?
            .builder()
            .prefix(prefix.clone())
            .clock(config.clock.clone())
            .max_record_bytes(config.max_record_bytes)
            .ttl_grace(std::time::Duration::from_secs(600))
            .build()
            .await
    }

    async fn read_raw(&self, prefix: &String, id: &SessionId) -> session_store_core::Result<Option<Vec<u8>>> {
        let mut raw = self.target()?.raw().await;
        raw.query(redis::cmd("HGET").arg(Self::key(prefix, id)).arg("d"))
            .await
            .map_err(|e| session_store_core::Error::backend("redis", "HGET d", e))
    }

    async fn write_raw(&self, prefix: &String, id: &SessionId, bytes: &[u8]) -> session_store_core::Result<()> {
        let mut raw = self.target()?.raw().await;
        raw.query::<i64>(redis::cmd("HSET").arg(Self::key(prefix, id)).arg("d").arg(bytes))
            .await
            .map(drop)
            .map_err(|e| session_store_core::Error::backend("redis", "HSET d", e))
    }

    /// `id`'s key becomes a string (the wrong Redis type), and a live key of
    /// our shape whose id part is no valid session id is added.
    async fn write_malformed(&self, prefix: &String, id: &SessionId) -> session_store_core::Result<Option<u64>> {
        let mut raw = self.target()?.raw().await;
        let fail = |e| session_store_core::Error::backend("redis", "writing malformed keys", e);
        let key = Self::key(prefix, id);
        raw.query::<i64>(redis::cmd("DEL").arg(&key)).await.map_err(fail)?;
        raw.query::<()>(redis::cmd("SET").arg(&key).arg("not a hash").arg("EX").arg(600))
            .await
            .map_err(fail)?;
        let foreign = format!("{prefix}{{not a session id!!!!!!}}");
        raw.query::<i64>(
            redis::cmd("HSET")
                .arg(&foreign)
                .arg("d")
                .arg("x")
                .arg("e")
                .arg(i64::MAX)
                .arg("v")
                .arg(1),
        )
        .await
        .map_err(fail)?;
        raw.query::<i64>(redis::cmd("EXPIRE").arg(&foreign).arg(600))
            .await
            .map_err(fail)?;
        Ok(Some(1))
    }
}

/// A `redis-server` in the foreground on `127.0.0.1:port`, without
/// persistence, working in `dir`, its output discarded: add options, then
/// spawn it.
pub fn server_command(binary: &str, port: u16, dir: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .arg("--dir")
    .arg(dir)
    .args(["--daemonize", "no", "--logfile", ""])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

/// A server process, killed even when the test panics.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

pub fn start_server(binary: &str, port: u16, dir: &std::path::Path) -> KillOnDrop {
    KillOnDrop(server_command(binary, port, dir).spawn().expect("start redis-server"))
}

pub async fn wait_until_up(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("redis-server did not come up on port {port}");
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    assert_ne!(port, 6379);
    port
}
