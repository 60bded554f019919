//! Connections: the pool (a caller's or one made from a URL), and running
//! one operation on it, bounded by the timeout, retrying deadlocks and lock
//! wait timeouts.

use std::future::Future;
use std::time::Duration;

use mysql_async::{Conn as MyConn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use session_store_core::{BoxError, Error, Result};

/// MySQL's and MariaDB's error numbers the store tells apart.
pub(crate) mod code {
    /// `ER_DUP_ENTRY`: a unique key (the id) is taken.
    pub(crate) const DUP_ENTRY: u16 = 1062;
    /// `ER_LOCK_WAIT_TIMEOUT`.
    pub(crate) const LOCK_WAIT_TIMEOUT: u16 = 1205;
    /// `ER_LOCK_DEADLOCK`.
    pub(crate) const DEADLOCK: u16 = 1213;
    /// `ER_NO_SUCH_TABLE`.
    pub(crate) const NO_SUCH_TABLE: u16 = 1146;
    /// `ER_BAD_FIELD_ERROR`: an unknown column.
    pub(crate) const BAD_FIELD: u16 = 1054;
}

/// A failure inside one attempt of an operation: a MySQL error (retried
/// when it is a deadlock or a lock wait timeout) or a store error to
/// return as is.
pub(crate) enum Attempt {
    My(mysql_async::Error),
    Store(Error),
}

impl From<mysql_async::Error> for Attempt {
    fn from(e: mysql_async::Error) -> Self {
        Self::My(e)
    }
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Self::Store(e)
    }
}

/// The server's error number, if `e` is a server error.
pub(crate) fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// Makes a pool from a connection URL (`mysql://user:pass@host:port/db`):
/// at most `size` connections (the URL's own pool options are replaced).
/// The statement cache is kept across uses of a connection (no reset when
/// it returns to the pool), rows are counted as changed, not matched (the
/// default), and a statement waits for a lock at most `timeout` (at least a
/// second).
pub(crate) fn pool_from_url(url: &str, size: usize, timeout: Duration) -> Result<Pool> {
    // The URL parser's messages can quote a parameter's value (a password),
    // so none of them reaches the error.
    let opts = Opts::from_url(url).map_err(|_| {
        Error::config("invalid MySQL connection URL (expected mysql://user:password@host:port/database?options)")
    })?;
    #[cfg(not(feature = "tls"))]
    if opts.ssl_opts().is_some() {
        return Err(Error::config(
            "the URL requires TLS (require_ssl=true): build session-store-mysql with the `tls` feature",
        ));
    }
    let constraints =
        PoolConstraints::new(0, size.max(1)).ok_or_else(|| Error::config("the MySQL pool size must be at least 1"))?;
    let pool_opts = PoolOpts::default()
        .with_constraints(constraints)
        .with_reset_connection(false)
        .with_inactive_connection_ttl(Duration::from_secs(60));
    // A statement the store gave up on (its timeout) stops waiting for
    // locks soon after, instead of InnoDB's default 50 s.
    let lock_wait = timeout.as_secs().max(1);
    let opts = OptsBuilder::from_opts(opts)
        .pool_opts(pool_opts)
        .client_found_rows(false)
        .tcp_nodelay(true)
        .setup(vec![format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}")]);
    Ok(Pool::new(opts))
}

/// The pool and the bounds every call keeps.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) pool: Pool,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
}

/// Whether the server asks for the transaction to be tried again.
fn retryable(e: &mysql_async::Error) -> bool {
    matches!(server_code(e), Some(code::DEADLOCK | code::LOCK_WAIT_TIMEOUT))
}

/// A MySQL error for a message: a server error's number, SQL state and
/// message, except a duplicate-key message (which quotes the key, and so a
/// session id); other errors as they are.
pub(crate) fn described(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) if s.code == code::DUP_ENTRY => {
            format!("error {} ({}): a duplicate key", s.code, s.state)
        }
        mysql_async::Error::Server(s) => format!("error {} ({}): {}", s.code, s.state, s.message),
        other => other.to_string(),
    }
}

/// A MySQL error as a source that never holds row values (see
/// [`described`]).
pub(crate) fn sanitized(e: mysql_async::Error) -> BoxError {
    match e {
        mysql_async::Error::Server(_) => Box::new(std::io::Error::other(described(&e))),
        other => Box::new(other),
    }
}

/// The store error for a MySQL error of `what`.
pub(crate) fn my_error(what: &str, e: mysql_async::Error) -> Error {
    if matches!(server_code(&e), Some(code::NO_SUCH_TABLE | code::BAD_FIELD)) {
        // The table is not what this build made (dropped, altered by another
        // program): retrying cannot help.
        return Error::corrupt(
            "mysql",
            format!("MySQL: {what} failed: the session table is not the one this store expects"),
            Some(sanitized(e)),
        );
    }
    Error::backend("mysql", format!("MySQL: {what} failed"), sanitized(e))
}

impl Conn {
    /// Runs `op` on a pooled connection within the timeout; the whole call,
    /// waiting for a connection and retries included, never takes longer.
    /// A deadlock or lock wait timeout is retried, at most `max_retries`
    /// times, then answered with [`Error::Timeout`].
    pub(crate) async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T>
    where
        F: Fn(MyConn) -> Fut + Send + Sync,
        Fut: Future<Output = std::result::Result<T, Attempt>> + Send,
        T: Send,
    {
        let work = async {
            let mut retries = 0;
            let mut pause = Duration::from_millis(1);
            loop {
                let conn = self
                    .pool
                    .get_conn()
                    .await
                    .map_err(|e| my_error(&format!("connecting for {what}"), e))?;
                match op(conn).await {
                    Ok(value) => return Ok(value),
                    Err(Attempt::Store(e)) => return Err(e),
                    Err(Attempt::My(e)) if retryable(&e) => {
                        if retries >= self.max_retries {
                            tracing::warn!(operation = what, retries, error = %described(&e), "MySQL kept refusing: giving up");
                            return Err(Error::Timeout(self.timeout));
                        }
                        retries += 1;
                        tracing::debug!(operation = what, error = %described(&e), "MySQL asked for a retry");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(50));
                    }
                    Err(Attempt::My(e)) => {
                        tracing::debug!(operation = what, error = %described(&e), "MySQL failed");
                        return Err(my_error(what, e));
                    }
                }
            }
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(operation = what, timeout = ?self.timeout, "MySQL did not answer in time");
                Err(Error::Timeout(self.timeout))
            }
        }
    }
}
