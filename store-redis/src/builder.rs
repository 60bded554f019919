//! The builder: where the store connects and how it behaves.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use session_store_core::{DEFAULT_MAX_RECORD_BYTES, Error, Result, SharedClock, system_clock};

use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};

use crate::connection::{Conn, ConnSlot, run};
use crate::scan::escape_glob;
use crate::scripts::Scripts;
use crate::sentinel::Sentinel;
use crate::{DEFAULT_PREFIX, DEFAULT_TIMEOUT, DEFAULT_TTL_GRACE, Inner, MAX_TTL_MS, RedisStore};

#[derive(Debug, Clone)]
pub(crate) enum Target {
    Single(String),
    Cluster(Vec<String>),
    Sentinel { urls: Vec<String>, master: String, db: i64 },
}

/// A `redis+sentinel://` URL's parts: the sentinels' URLs, the master's
/// name, its password and its database.
type SentinelParts = (Vec<String>, String, Option<String>, i64);

/// The parts of a `redis+sentinel://` URL; `None` for another URL.
fn sentinel_url(url: &str) -> Result<Option<SentinelParts>> {
    const SCHEME: &str = "redis+sentinel://";
    const FORM: &str = "redis+sentinel://[[user]:password@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]";
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("rediss+sentinel://") {
        return Err(Error::config(
            "rediss+sentinel:// (TLS behind Sentinel) is not supported yet; use redis+sentinel://",
        ));
    }
    if !lower.starts_with(SCHEME) {
        return Ok(None);
    }
    let invalid = |what: &str| Error::config(format!("invalid Redis Sentinel URL ({what}): expected {FORM}"));
    let rest = &url[SCHEME.len()..];
    if rest.contains('?') {
        return Err(invalid("it takes no query options"));
    }
    let (authority, path) = rest.split_once('/').ok_or_else(|| invalid("no master name"))?;
    let (password, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (
            userinfo
                .split_once(':')
                .map(|(_, p)| p.to_owned())
                .filter(|p| !p.is_empty()),
            hosts,
        ),
        None => (None, authority),
    };
    let urls: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{h}"))
        .collect();
    if urls.is_empty() {
        return Err(invalid("no sentinel"));
    }
    let (master, db) = match path.split_once('/') {
        Some((master, db)) => (master, db.parse().map_err(|_| invalid("the database is not a number"))?),
        None => (path, 0),
    };
    if master.is_empty() {
        return Err(invalid("no master name"));
    }
    Ok(Some((urls, master.to_owned(), password, db)))
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
    wait: Option<(u32, Duration)>,
    master_password: Option<String>,
    #[cfg(feature = "tls")]
    root_ca: Option<Vec<u8>>,
}

impl RedisStoreBuilder {
    pub(crate) fn new(target: Target) -> Self {
        Self {
            target,
            clock: system_clock(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            ttl_grace: DEFAULT_TTL_GRACE,
            scan_count: 1000,
            wait: None,
            master_password: None,
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

    /// A client of the sentinels at `urls` for master `master`, and a
    /// client of the master they name (checked to answer as a master).
    async fn sentinel_client(&self, urls: &[String], master: &str, db: i64) -> Result<(SentinelClient, redis::Client)> {
        let mut node = redis::RedisConnectionInfo::default().set_db(db);
        if let Some(password) = &self.master_password {
            node = node.set_password(password);
        }
        let info = SentinelNodeConnectionInfo::default().set_redis_connection_info(node);
        // A `String` without TLS, `impl AsRef<str>` with it.
        let name: String = master.into();
        let mut client = SentinelClient::build(urls.to_vec(), name, Some(info), SentinelServerType::Master)
            .map_err(|e| Error::config_with("invalid Redis Sentinel URLs (redis://host:port of each sentinel)", e))?;
        let found = run(
            self.timeout,
            "asking the sentinels for the master",
            client.async_get_client(),
        )
        .await?;
        Ok((client, found))
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

    /// After every write, waits until `replicas` replicas have it (Redis
    /// `WAIT`), at most `timeout`; a write that fewer replicas acknowledged
    /// in time answers a transient [`Error::Backend`] (it reached the master
    /// and may still be lost if the master fails now). Off by default.
    ///
    /// Replication to replicas is asynchronous: without this, a write
    /// acknowledged by a master that dies before a replica has it is lost
    /// when that replica is promoted (the crate docs give the measured
    /// loss). With it, an acknowledged write is on `replicas` replicas,
    /// at the price of a round trip to them on every write. A multiplexed
    /// connection waits behind each `WAIT`, so the store's other calls wait
    /// too. Not for a Redis Cluster (its replicas fail over as Sentinel's
    /// do, but `WAIT` there covers one master only): the build refuses it.
    #[must_use]
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait = (replicas > 0).then_some((replicas, timeout.max(Duration::from_millis(1))));
        self
    }

    /// Behind Sentinel: the password of the master and its replicas (the
    /// sentinels' own password goes in their URLs).
    #[must_use]
    pub fn master_password(mut self, password: impl Into<String>) -> Self {
        self.master_password = Some(password.into());
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
    pub async fn build(mut self) -> Result<RedisStore> {
        if let Target::Single(url) = &self.target
            && let Some((urls, master, password, db)) = sentinel_url(url)?
        {
            self.target = Target::Sentinel { urls, master, db };
            if self.master_password.is_none() {
                self.master_password = password;
            }
        }
        let timeout = self.timeout;
        let urls: Vec<&str> = match &self.target {
            Target::Single(url) => vec![url.as_str()],
            Target::Cluster(urls) | Target::Sentinel { urls, .. } => urls.iter().map(String::as_str).collect(),
        };
        if urls.is_empty() {
            return Err(Error::config(
                "a Redis Cluster or Sentinel store needs at least one node URL",
            ));
        }
        if self.wait.is_some() && matches!(self.target, Target::Cluster(_)) {
            return Err(Error::config(
                "wait_for_replicas is for one server or Sentinel, not a cluster",
            ));
        }
        if !cfg!(feature = "tls") && urls.iter().any(|u| u.starts_with("rediss://")) {
            return Err(Error::config(
                "a rediss:// URL needs the `tls` feature of session-store-redis",
            ));
        }
        let mut single = None;
        let mut sentinel = None;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500))
            .set_number_of_retries(1);
        let conn = match &self.target {
            Target::Single(url) => {
                let client = self.client(url)?;
                let config = manager_config;
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
            Target::Sentinel { urls, master, db } => {
                let (client, found) = self.sentinel_client(urls, master, *db).await?;
                let address = found.get_connection_info().addr().to_string();
                let manager = run(
                    timeout,
                    "connecting to the master",
                    ConnectionManager::new_with_config(found, manager_config.clone()),
                )
                .await?;
                sentinel = Some(Sentinel {
                    client: tokio::sync::Mutex::new(client),
                    config: manager_config,
                    asked: std::sync::Mutex::new((None, address)),
                });
                Conn::Single(manager)
            }
        };
        let cluster = matches!(conn, Conn::Cluster(_));
        let mut pattern = escape_glob(&self.prefix);
        pattern.push('{');
        pattern.extend(std::iter::repeat_n('?', session_store_core::SESSION_ID_LEN));
        pattern.push('}');
        let mut owner_pattern = escape_glob(&self.prefix);
        owner_pattern.push_str("o:{");
        owner_pattern.extend(std::iter::repeat_n('?', session_store_core::OWNER_KEY_LEN));
        owner_pattern.push('}');
        let store = RedisStore {
            inner: Arc::new(Inner {
                conn: RwLock::new(ConnSlot {
                    conn,
                    since: Instant::now(),
                }),
                single,
                sentinel,
                cluster,
                wait: self.wait,
                scripts: Scripts::new(),
                clock: self.clock,
                max_record_bytes: self.max_record_bytes,
                prefix: self.prefix,
                pattern,
                owner_pattern,
                timeout,
                grace_ms: i64::try_from(self.ttl_grace.as_millis()).unwrap_or(MAX_TTL_MS),
                scan_count: self.scan_count,
                unreachable: AtomicBool::new(false),
            }),
        };
        if store.inner.sentinel.is_some() {
            tokio::spawn(crate::sentinel::watch(Arc::downgrade(&store.inner)));
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::sentinel_url;

    #[test]
    fn sentinel_urls_name_the_sentinels_the_master_its_password_and_database() {
        let (urls, master, password, db) =
            sentinel_url("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379/sessions/2")
                .unwrap()
                .unwrap();
        assert_eq!(urls, ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]);
        assert_eq!(
            (master.as_str(), password.as_deref(), db),
            ("sessions", Some("s3cret"), 2)
        );
        let (_, master, password, db) = sentinel_url("REDIS+SENTINEL://h:1/m").unwrap().unwrap();
        assert_eq!((master.as_str(), password, db), ("m", None, 0));
        assert!(sentinel_url("redis://127.0.0.1:6379").unwrap().is_none());
    }

    #[test]
    fn a_bad_sentinel_url_says_what_is_wrong_and_never_shows_the_password() {
        for (url, why) in [
            ("redis+sentinel://:pw@h:1", "no master name"),
            ("redis+sentinel://:pw@/m", "no sentinel"),
            ("redis+sentinel://:pw@h:1/m/x", "not a number"),
            ("redis+sentinel://:pw@h:1/m?x=1", "no query"),
            ("rediss+sentinel://:pw@h:1/m", "not supported"),
        ] {
            let e = sentinel_url(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("pw"), "{url}: {e}");
        }
    }
}
