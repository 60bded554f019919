//! What the integration tests share: the server from the environment, a
//! raw connection for poking at stored rows, and the conformance harness.

#![allow(dead_code, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};

use session_store_conformance::{Capabilities, Harness, StoreConfig};
use session_store_core::{Error, Result, SessionId, async_trait};
use session_store_postgres::PostgresStore;
use tokio_postgres::{Client, NoTls};

pub const URL_VAR: &str = "SESSION_STORE_POSTGRES_URL";

pub const HOW: &str = "run the tests under `store-postgres/scripts/with-postgres cargo test -p session-store-postgres` \
                       (or the project's ./scripts/test), which starts a private PostgreSQL on a free loopback \
                       port, installing Debian's postgresql package when missing, and exports its URL";

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

/// A plain connection to `url` (its connection task spawned on the
/// current runtime).
pub async fn raw(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| Error::backend("postgres", "connecting for the test", e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A name no other test (nor another run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let random = SessionId::random().fingerprint().to_string();
    let random: String = random.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{prefix}_{}_{n}_{}", std::process::id(), random.to_ascii_lowercase())
}

/// One namespace: a table in the default schema, or the table `sessions`
/// in a schema of its own (every other namespace), so the suite checks
/// isolation between tables and between schemas.
#[derive(Debug, Clone)]
pub struct Namespace {
    pub schema: Option<String>,
    pub table: String,
}

impl Namespace {
    pub fn qualified(&self) -> String {
        match &self.schema {
            Some(s) => format!("\"{s}\".\"{}\"", self.table),
            None => format!("\"{}\"", self.table),
        }
    }

    pub fn builder(&self, url: &str) -> session_store_postgres::PostgresStoreBuilder {
        let b = PostgresStore::builder(url).table(&self.table).pool_size(8);
        match &self.schema {
            Some(s) => b.schema(s),
            None => b,
        }
    }
}

/// The conformance suite's view of the server `SESSION_STORE_POSTGRES_URL`
/// names.
pub struct PostgresHarness {
    url: std::result::Result<String, String>,
    next: AtomicUsize,
}

impl PostgresHarness {
    pub fn from_env() -> Self {
        let url = match std::env::var(URL_VAR) {
            Ok(v) if !v.is_empty() => Ok(v),
            _ => Err(format!("{URL_VAR} is not set: {HOW}")),
        };
        Self {
            url,
            next: AtomicUsize::new(0),
        }
    }

    fn url(&self) -> Result<&str> {
        self.url
            .as_deref()
            .map_err(|why| Error::backend_msg("postgres", why.to_owned()))
    }

    async fn raw(&self) -> Result<Client> {
        raw(self.url()?).await
    }
}

fn failed(what: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::backend("postgres", what, e)
}

#[async_trait]
impl Harness for PostgresHarness {
    type Store = PostgresStore;
    type Namespace = Namespace;

    fn capabilities(&self) -> Capabilities {
        Capabilities::all().owner_index(true)
    }

    async fn available(&self) -> std::result::Result<(), String> {
        self.url.as_ref().map(drop).map_err(Clone::clone)
    }

    async fn new_namespace(&self) -> Result<Namespace> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(if n.is_multiple_of(2) {
            Namespace {
                schema: None,
                table: unique("t"),
            }
        } else {
            Namespace {
                schema: Some(unique("s")),
                table: "sessions".to_owned(),
            }
        })
    }

    async fn open(&self, ns: &Namespace, config: &StoreConfig) -> Result<PostgresStore> {
        ns.builder(self.url()?)
            .clock(config.clock.clone())
            .max_record_bytes(config.max_record_bytes)
            .build()
            .await
    }

    /// Drops the namespace's schema (with everything in it), or its table
    /// and its row in the bookkeeping table.
    async fn teardown(&self, ns: &Namespace) -> Result<()> {
        let client = self.raw().await?;
        match &ns.schema {
            Some(s) => client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
                .await
                .map_err(failed("dropping the schema")),
            None => {
                client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {}", ns.qualified()))
                    .await
                    .map_err(failed("dropping the table"))?;
                let meta = client
                    .query_one("SELECT to_regclass('session_store_schema') IS NOT NULL", &[])
                    .await
                    .map_err(failed("looking for the schema table"))?
                    .get::<_, bool>(0);
                if meta {
                    client
                        .execute("DELETE FROM session_store_schema WHERE table_name = $1", &[&ns.table])
                        .await
                        .map_err(failed("forgetting the table's schema version"))?;
                }
                Ok(())
            }
        }
    }

    async fn read_raw(&self, ns: &Namespace, id: &SessionId) -> Result<Option<Vec<u8>>> {
        let row = self
            .raw()
            .await?
            .query_opt(
                &format!("SELECT body FROM {} WHERE id = $1", ns.qualified()),
                &[&id.to_string()],
            )
            .await
            .map_err(failed("reading raw bytes"))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn write_raw(&self, ns: &Namespace, id: &SessionId, bytes: &[u8]) -> Result<()> {
        let changed = self
            .raw()
            .await?
            .execute(
                &format!("UPDATE {} SET body = $1 WHERE id = $2", ns.qualified()),
                &[&bytes, &id.to_string()],
            )
            .await
            .map_err(failed("writing raw bytes"))?;
        if changed != 1 {
            return Err(Error::backend_msg(
                "postgres",
                format!("no record {} to overwrite", id.fingerprint()),
            ));
        }
        Ok(())
    }

    /// `id`'s version column becomes negative (a value this store never
    /// writes), and a live row is added whose id column holds no valid
    /// session id.
    async fn write_malformed(&self, ns: &Namespace, id: &SessionId) -> Result<Option<u64>> {
        let client = self.raw().await?;
        let changed = client
            .execute(
                &format!("UPDATE {} SET version = -7 WHERE id = $1", ns.qualified()),
                &[&id.to_string()],
            )
            .await
            .map_err(failed("writing malformed rows"))?;
        if changed != 1 {
            return Err(Error::backend_msg(
                "postgres",
                format!("no record {} to break", id.fingerprint()),
            ));
        }
        client
            .execute(
                &format!(
                    "INSERT INTO {} (id, body, expires_at, version) VALUES ('not a session id!!!!!!', '\\x00', $1, 1)",
                    ns.qualified()
                ),
                &[&i64::MAX],
            )
            .await
            .map_err(failed("writing malformed rows"))?;
        Ok(Some(1))
    }
}

/// A PostgreSQL cluster of a test's own (the fault test stops and restarts
/// it), made with the binaries `SESSION_STORE_POSTGRES_BIN` names, run as
/// `SESSION_STORE_POSTGRES_USER` (PostgreSQL refuses root), on a free
/// loopback port. Stopped and removed on drop.
pub struct Cluster {
    bin: std::path::PathBuf,
    user: String,
    dir: std::path::PathBuf,
    pub port: u16,
}

impl Cluster {
    /// A fresh cluster, started; `None` (after saying how) without the
    /// variables.
    pub fn start() -> Option<Self> {
        let bin = std::path::PathBuf::from(env_or_skip("SESSION_STORE_POSTGRES_BIN")?);
        let user = std::env::var("SESSION_STORE_POSTGRES_USER").unwrap_or_default();
        let dir = std::env::temp_dir().join(unique("pgcluster"));
        std::fs::create_dir(&dir).expect("a directory for the cluster");
        if !user.is_empty() {
            let status = std::process::Command::new("chown")
                .arg(&user)
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown {user} {}", dir.display());
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert_ne!(port, 5432);
        let cluster = Self { bin, user, dir, port };
        let out = cluster
            .command("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.pg_ctl_start();
        Some(cluster)
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        let mut cmd = if self.user.is_empty() {
            std::process::Command::new(path)
        } else {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", &self.user, "--"]).arg(path);
            c
        };
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    /// Starts the server (on the same port every time) and waits for it.
    pub fn pg_ctl_start(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                self.port,
                self.dir.display()
            ))
            .arg("start")
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server: `immediate` is a crash (no checkpoint; recovery
    /// from the write-ahead log at the next start), `fast` a clean shutdown.
    pub fn pg_ctl_stop(&self, mode: &str) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "stop"])
            .output()
            .expect("run pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
