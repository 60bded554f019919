//! What the integration tests share: the server from the environment, a
//! raw connection for poking at stored rows, and the conformance harness.

#![allow(dead_code, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};

use mysql_async::prelude::Queryable;
use session_store_conformance::{Capabilities, Harness, StoreConfig};
use session_store_core::{Error, Result, SessionId, async_trait};
use session_store_mysql::MysqlStore;

pub const URL_VAR: &str = "SESSION_STORE_MYSQL_URL";

pub const HOW: &str = "run the tests under `store-mysql/scripts/with-mariadb cargo test -p session-store-mysql` \
                       (or the project's ./scripts/test), which starts a private MariaDB on a free loopback \
                       port, installing Debian's mariadb-server package when missing, and exports its URL";

/// The value of `var`, or `None` after saying how to get it; under
/// `SESSION_STORE_STRICT=1` a missing server fails the test instead.
pub fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let msg = format!("{var} is not set: {HOW}");
            assert!(!session_store_conformance::strict(), "{msg}");
            let _ = std::io::Write::write_fmt(&mut std::io::stderr().lock(), format_args!("skipped: {msg}\n"));
            None
        }
    }
}

/// A name no other test (nor another run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let random = SessionId::random().fingerprint().to_string();
    let random: String = random.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{prefix}_{}_{n}_{}", std::process::id(), random.to_ascii_lowercase())
}

/// A plain connection to `url`.
pub async fn raw(url: &str) -> Result<mysql_async::Conn> {
    let opts = mysql_async::Opts::from_url(url).map_err(|e| Error::backend("mysql", "the test URL", e))?;
    mysql_async::Conn::new(opts)
        .await
        .map_err(|e| Error::backend("mysql", "connecting for the test", e))
}

fn failed(what: &'static str) -> impl Fn(mysql_async::Error) -> Error {
    move |e| Error::backend("mysql", what, e)
}

/// The conformance suite's view of the server `SESSION_STORE_MYSQL_URL`
/// names: each namespace is a table of its own.
pub struct MysqlHarness {
    url: std::result::Result<String, String>,
}

impl MysqlHarness {
    pub fn from_env() -> Self {
        let url = match std::env::var(URL_VAR) {
            Ok(v) if !v.is_empty() => Ok(v),
            _ => Err(format!("{URL_VAR} is not set: {HOW}")),
        };
        Self { url }
    }

    pub fn url(&self) -> Result<&str> {
        self.url
            .as_deref()
            .map_err(|why| Error::backend_msg("mysql", why.to_owned()))
    }
}

#[async_trait]
impl Harness for MysqlHarness {
    type Store = MysqlStore;
    type Namespace = String;

    fn capabilities(&self) -> Capabilities {
        Capabilities::all().owner_index(true)
    }

    async fn available(&self) -> std::result::Result<(), String> {
        self.url.as_ref().map(drop).map_err(Clone::clone)
    }

    async fn new_namespace(&self) -> Result<String> {
        Ok(unique("t"))
    }

    async fn open(&self, table: &String, config: &StoreConfig) -> Result<MysqlStore> {
        MysqlStore::builder(self.url()?)
            .table(table)
            .pool_size(8)
            .clock(config.clock.clone())
            .max_record_bytes(config.max_record_bytes)
            .build()
            .await
    }

    /// Drops the table and its row in the bookkeeping table.
    async fn teardown(&self, table: &String) -> Result<()> {
        let mut c = raw(self.url()?).await?;
        c.query_drop(format!("DROP TABLE IF EXISTS `{table}`"))
            .await
            .map_err(failed("dropping the table"))?;
        c.exec_drop(
            "DELETE FROM session_store_schema WHERE table_name = ?",
            (table.as_str(),),
        )
        .await
        .map_err(failed("forgetting the table's schema version"))?;
        let _ = c.disconnect().await;
        Ok(())
    }

    async fn read_raw(&self, table: &String, id: &SessionId) -> Result<Option<Vec<u8>>> {
        let mut c = raw(self.url()?).await?;
        let body: Option<Vec<u8>> = c
            .exec_first(format!("SELECT body FROM `{table}` WHERE id = ?"), (id.to_string(),))
            .await
            .map_err(failed("reading raw bytes"))?;
        let _ = c.disconnect().await;
        Ok(body)
    }

    async fn write_raw(&self, table: &String, id: &SessionId, bytes: &[u8]) -> Result<()> {
        let mut c = raw(self.url()?).await?;
        c.exec_drop(
            format!("UPDATE `{table}` SET body = ? WHERE id = ?"),
            (bytes, id.to_string()),
        )
        .await
        .map_err(failed("writing raw bytes"))?;
        let changed = c.affected_rows();
        let _ = c.disconnect().await;
        if changed != 1 {
            return Err(Error::backend_msg(
                "mysql",
                format!("no record {} to overwrite", id.fingerprint()),
            ));
        }
        Ok(())
    }
}
