//! Faults on a MariaDB server of the test's own (made with the binaries
//! `SESSION_STORE_MYSQL_BIN` names, which `store-mysql/scripts/with-mariadb`
//! exports): the server shut down cleanly and killed mid-workload, then
//! started again on the same port. Calls fail with a transient error while
//! it is gone, within the store's timeout; the same store object works
//! again once it is back, without a restart of the app; and no write the
//! store acknowledged is missing afterwards.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use session_store_core::{Clock, Error, Expiry, Record, SessionData, SessionStore, SystemClock};
use session_store_mysql::MysqlStore;

/// A MariaDB server in a temporary directory, on a free loopback port.
struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn tool(bin: &Path, names: &[&str]) -> PathBuf {
    for name in names {
        for dir in [bin.to_path_buf(), PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")] {
            let path = dir.join(name);
            if path.exists() {
                return path;
            }
        }
    }
    panic!("none of {names:?} next to {} or in /usr/bin", bin.display());
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Server {
    fn start(bin: &Path) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let status = Command::new(tool(bin, &["mariadb-install-db", "mysql_install_db"]))
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--user={}", user()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db runs");
        assert!(status.success(), "mariadb-install-db failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            bin: bin.to_path_buf(),
            dir,
            port,
            child: None,
        };
        server.run();
        let sql = "CREATE DATABASE app; CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app'; \
                   GRANT ALL PRIVILEGES ON *.* TO 'app'@'127.0.0.1';";
        let status = Command::new(tool(bin, &["mariadb", "mysql"]))
            .args(["--no-defaults", "-uroot"])
            .arg(format!("--socket={}", server.socket().display()))
            .args(["-e", sql])
            .status()
            .expect("the client runs");
        assert!(status.success(), "creating the test user failed");
        server
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    fn url(&self) -> String {
        format!("mysql://app:app@127.0.0.1:{}/app", self.port)
    }

    /// Starts mariadbd on the data directory and waits until it answers.
    fn run(&mut self) {
        let server = tool(&self.bin, &["mariadbd", "mysqld"]);
        let child = Command::new(server)
            .arg("--no-defaults")
            .arg(format!("--user={}", user()))
            .arg(format!("--datadir={}", self.dir.path().join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", self.dir.path().join("mysqld.pid").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
            ])
            .arg(format!("--log-error={}", self.dir.path().join("server.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() || !self.socket().exists() {
            assert!(started.elapsed() < Duration::from_secs(30), "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A clean shutdown (SIGTERM), waiting for it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn counter() -> Record {
    let mut data = SessionData::new();
    data.insert("count", &0_u64).unwrap();
    Record::new(
        data,
        SystemClock.now(),
        &Expiry::OnInactivity(Duration::from_secs(3600)),
    )
}

/// One increment through load and a conditional save; `Ok(true)` when the
/// store acknowledged it.
async fn increment(store: &MysqlStore, id: &session_store_core::SessionId) -> Result<bool, Error> {
    let Some(mut r) = store.load(id).await? else {
        panic!("the counter is gone");
    };
    let n: u64 = r.data.get("count").unwrap().unwrap();
    r.data.insert("count", &(n + 1)).unwrap();
    match store.save_if_version(&r).await {
        Ok(_) => Ok(true),
        Err(Error::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Increments until `n` were acknowledged, failing on any error.
async fn increments(store: &MysqlStore, id: &session_store_core::SessionId, n: u64) {
    let mut done = 0;
    while done < n {
        if increment(store, id).await.expect("the server is up") {
            done += 1;
        }
    }
}

/// While the server is gone every call fails, transiently, within the
/// timeout; back on the same port, the same store object works again
/// within a few seconds.
async fn outage(store: &MysqlStore, id: &session_store_core::SessionId, timeout: Duration) -> u64 {
    let mut failed = 0;
    for _ in 0..3 {
        let started = Instant::now();
        match increment(store, id).await {
            Ok(_) => panic!("a call succeeded with the server gone"),
            Err(e) => {
                assert!(e.is_transient(), "{e:?}");
                assert!(!e.to_string().contains(&id.to_string()), "{e}");
                failed += 1;
            }
        }
        assert!(started.elapsed() < timeout * 3, "a call took {:?}", started.elapsed());
    }
    failed
}

async fn recovers(store: &MysqlStore, id: &session_store_core::SessionId) {
    let started = Instant::now();
    loop {
        match increment(store, id).await {
            Ok(acknowledged) => {
                assert!(acknowledged, "one writer: no conflict");
                return;
            }
            Err(e) => {
                assert!(e.is_transient(), "{e:?}");
                assert!(started.elapsed() < Duration::from_secs(15), "no recovery: {e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_stopped_server_fails_calls_and_the_store_recovers_when_it_is_back() {
    let Some(bin) = common::env_or_skip("SESSION_STORE_MYSQL_BIN") else {
        return;
    };
    let mut server = Server::start(Path::new(&bin));
    let timeout = Duration::from_secs(1);
    let store = MysqlStore::builder(server.url())
        .timeout(timeout)
        .pool_size(4)
        .build()
        .await
        .expect("the store opens");
    let r = counter();
    store.create(&r).await.unwrap();
    increments(&store, &r.id, 50).await;

    server.kill();
    outage(&store, &r.id, timeout).await;
    server.run();
    recovers(&store, &r.id).await;
    increments(&store, &r.id, 49).await;

    server.stop();
    outage(&store, &r.id, timeout).await;
    server.run();
    recovers(&store, &r.id).await;
    increments(&store, &r.id, 49).await;

    // 50 + 1 + 49 + 1 + 49 acknowledged: none lost to the crash.
    let count: u64 = store
        .load(&r.id)
        .await
        .unwrap()
        .unwrap()
        .data
        .get("count")
        .unwrap()
        .unwrap();
    assert_eq!(count, 150);
}
