//! The builder: where the store connects and how it behaves.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use session_store_core::{DEFAULT_MAX_RECORD_BYTES, Error, Result, SharedClock, system_clock};

use crate::connection::{Conn, ConnSlot, run};
use crate::scan::escape_glob;
use crate::scripts::Scripts;
use crate::{DEFAULT_PREFIX, DEFAULT_TIMEOUT, DEFAULT_TTL_GRACE, Inner, MAX_TTL_MS, RedisStore};

#[derive(Debug, Clone)]
pub(crate) enum Target {
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
    pub(crate) fn new(target: Target) -> Self {
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
        let mut owner_pattern = escape_glob(&self.prefix);
        owner_pattern.push_str("o:{");
        owner_pattern.extend(std::iter::repeat_n('?', session_store_core::OWNER_KEY_LEN));
        owner_pattern.push('}');
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
                owner_pattern,
                timeout,
                grace_ms: i64::try_from(self.ttl_grace.as_millis()).unwrap_or(MAX_TTL_MS),
                scan_count: self.scan_count,
                unreachable: AtomicBool::new(false),
            }),
        })
    }
}
