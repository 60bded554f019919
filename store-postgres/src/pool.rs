//! Connections: the pool (a caller's or one made from a URL), and running
//! one operation on it, bounded by the timeout, retrying serialization
//! failures and deadlocks.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use session_store_core::{BoxError, Error, Result};
use tokio_postgres::error::SqlState;

/// A failure inside one attempt of an operation: a PostgreSQL error
/// (retried when it is a serialization failure or a deadlock) or a store
/// error to return as is.
pub(crate) enum Attempt {
    Pg(tokio_postgres::Error),
    Store(Error),
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Pg(e)
    }
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Self::Store(e)
    }
}

/// Makes a pool from a connection URL (`postgres://user:pass@host:port/db`
/// or the `key=value` form): `size` connections at most, each connect
/// bounded by `timeout`, and, unless the URL sets `options`, a server-side
/// `statement_timeout` of `timeout` so that a statement the client gave up
/// on does not go on holding locks.
pub(crate) fn pool_from_url(url: &str, size: usize, timeout: Duration) -> Result<Pool> {
    // The parser's messages name the option at fault, never its value, so
    // no password reaches the error.
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| Error::config_with("invalid PostgreSQL connection URL", e))?;
    config.connect_timeout(timeout);
    if config.get_options().is_none() {
        config.options(format!("-c statement_timeout={}", timeout.as_millis().max(1)));
    }
    if config.get_application_name().is_none() {
        config.application_name("session-store-postgres");
    }
    let manager = manager(config)?;
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|e| Error::config_with("building the PostgreSQL connection pool", e))
}

#[cfg(not(feature = "tls"))]
fn manager(config: tokio_postgres::Config) -> Result<Manager> {
    use tokio_postgres::config::SslMode;
    if config.get_ssl_mode() == SslMode::Require {
        return Err(Error::config(
            "the URL requires TLS (sslmode=require): build session-store-postgres with the `tls` feature",
        ));
    }
    Ok(Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    ))
}

#[cfg(feature = "tls")]
fn manager(config: tokio_postgres::Config) -> Result<Manager> {
    // The platform's root certificates; one that cannot be read is skipped.
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(Error::config(
            "TLS: no root certificate could be loaded from the platform's store",
        ));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config_with("configuring TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Manager::from_config(
        config,
        tokio_postgres_rustls::MakeRustlsConnect::new(tls),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    ))
}

/// The pool and the bounds every call keeps.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) pool: Pool,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
}

/// Whether PostgreSQL asks for the transaction to be tried again.
fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// A PostgreSQL error for a message: a server error's severity, code and
/// message, but not its `DETAIL` (which may quote a key, and so a session
/// id).
pub(crate) fn described(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// A PostgreSQL error as a source that never holds row values (see
/// [`described`]).
pub(crate) fn sanitized(e: tokio_postgres::Error) -> BoxError {
    if e.as_db_error().is_some() {
        Box::new(std::io::Error::other(described(&e)))
    } else {
        Box::new(e)
    }
}

/// The store error for a PostgreSQL error of `what`.
pub(crate) fn pg_error(what: &str, e: tokio_postgres::Error, timeout: Duration) -> Error {
    if e.code() == Some(&SqlState::QUERY_CANCELED) {
        // The server's statement_timeout, set to the store's timeout.
        return Error::Timeout(timeout);
    }
    if is_schema_mismatch(&e) {
        // The table is not what this build made (dropped, altered by
        // another program): retrying cannot help.
        return Error::corrupt(
            "postgres",
            format!("PostgreSQL: {what} failed: the session table is not the one this store expects"),
            Some(sanitized(e)),
        );
    }
    Error::backend("postgres", format!("PostgreSQL: {what} failed"), sanitized(e))
}

/// Whether the server said the store's table or one of its columns is not
/// there or has another type: the schema changed under the store.
fn is_schema_mismatch(e: &tokio_postgres::Error) -> bool {
    [
        SqlState::UNDEFINED_TABLE,
        SqlState::UNDEFINED_COLUMN,
        SqlState::UNDEFINED_FUNCTION,
        SqlState::DATATYPE_MISMATCH,
        SqlState::INVALID_SCHEMA_NAME,
    ]
    .iter()
    .any(|state| e.code() == Some(state))
}

fn pool_error(what: &str, e: PoolError, timeout: Duration) -> Error {
    match e {
        PoolError::Timeout(_) => Error::Timeout(timeout),
        PoolError::Backend(e) => pg_error(&format!("connecting for {what}"), e, timeout),
        other => Error::backend(
            "postgres",
            format!("PostgreSQL: getting a connection for {what} failed"),
            other,
        ),
    }
}

impl Conn {
    /// Runs `op` on a pooled connection within the timeout; the whole call,
    /// waiting for a connection and retries included, never takes longer.
    /// A serialization failure or deadlock is retried, at most
    /// `max_retries` times, then answered with [`Error::Timeout`].
    pub(crate) async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T>
    where
        F: Fn(Object) -> Fut + Send + Sync,
        Fut: Future<Output = std::result::Result<T, Attempt>> + Send,
        T: Send,
    {
        let work = async {
            let mut retries = 0;
            let mut pause = Duration::from_millis(1);
            loop {
                let client = self.pool.get().await.map_err(|e| pool_error(what, e, self.timeout))?;
                match op(client).await {
                    Ok(value) => return Ok(value),
                    Err(Attempt::Store(e)) => return Err(e),
                    Err(Attempt::Pg(e)) if retryable(&e) => {
                        if retries >= self.max_retries {
                            tracing::warn!(operation = what, retries, error = %described(&e), "PostgreSQL kept refusing: giving up");
                            return Err(Error::Timeout(self.timeout));
                        }
                        retries += 1;
                        tracing::debug!(operation = what, error = %described(&e), "PostgreSQL asked for a retry");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(50));
                    }
                    Err(Attempt::Pg(e)) => {
                        tracing::debug!(operation = what, error = %described(&e), "PostgreSQL failed");
                        return Err(pg_error(what, e, self.timeout));
                    }
                }
            }
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(operation = what, timeout = ?self.timeout, "PostgreSQL did not answer in time");
                Err(Error::Timeout(self.timeout))
            }
        }
    }
}
