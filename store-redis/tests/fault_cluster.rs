//! Faults on a cluster: one master of a private three-master cluster stops
//! answering (SIGSTOP), then is killed and restarted on its port. Calls whose
//! keys live there fail within the timeout while the others keep working,
//! and the same store object recovers.
//!
//! Starts its own cluster from `SESSION_STORE_REDIS_SERVER` (set by
//! `store-redis/scripts/with-redis`), with `redis-cli` beside it or on PATH.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use session_store_core::{Clock, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_redis::RedisStore;

const TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling slack on a loaded 2-core machine, over the timeout.
const SLACK: Duration = Duration::from_millis(1_000);

/// The servers, killed even when the test panics.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(binary: &str, port: u16, dir: &Path) -> Child {
    common::server_command(binary, port, dir)
        .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
        .args(["--cluster-node-timeout", "30000"])
        .current_dir(dir)
        .spawn()
        .expect("start redis-server")
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port != 6379 && port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn cli(binary: &str) -> PathBuf {
    let beside = Path::new(binary).with_file_name("redis-cli");
    if beside.exists() {
        beside
    } else {
        PathBuf::from("redis-cli")
    }
}

fn cli_out(cli: &Path, port: u16, args: &[&str]) -> String {
    let out = Command::new(cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..400 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn record() -> Record {
    let now = SystemClock.now();
    let mut data = SessionData::new();
    data.insert("n", &1).unwrap();
    Record::with_deadline(SessionId::random(), data, now, now + Duration::from_secs(600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_or_restarted_master_fails_its_keys_fast_and_the_store_recovers() {
    let Some(binary) = common::env_or_skip("SESSION_STORE_REDIS_SERVER") else {
        return;
    };
    let cli = cli(&binary);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut servers = Servers(
        ports
            .iter()
            .zip(&dirs)
            .map(|(p, d)| start(&binary, *p, d.path()))
            .collect(),
    );
    for &p in &ports {
        wait_for("redis-server to answer", || {
            cli_out(&cli, p, &["ping"]).trim() == "PONG"
        })
        .await;
    }
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let status = Command::new(&cli)
        .args(["--cluster", "create"])
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "redis-cli --cluster create failed");
    for &p in &ports {
        wait_for("cluster_state:ok", || {
            cli_out(&cli, p, &["cluster", "info"]).contains("cluster_state:ok")
        })
        .await;
    }

    let urls: Vec<String> = ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect();
    let store = RedisStore::cluster_builder(urls)
        .prefix(common::random_prefix())
        .timeout(TIMEOUT)
        .build()
        .await
        .unwrap();
    let records: Vec<Record> = (0..30).map(|_| record()).collect();
    for r in &records {
        store.create(r).await.unwrap();
    }

    // 1. The first master stops answering: its keys time out, the rest work.
    signal(&servers.0[0], "-STOP");
    let (mut ok, mut failed, mut worst) = (0, 0, Duration::ZERO);
    for r in &records {
        let start = Instant::now();
        match store.load(&r.id).await {
            Ok(Some(_)) => ok += 1,
            Ok(None) => panic!("a record vanished"),
            Err(e) => {
                assert!(e.is_transient(), "{e}");
                failed += 1;
            }
        }
        worst = worst.max(start.elapsed());
    }
    assert!(worst <= TIMEOUT + SLACK, "a call took {worst:?}");
    assert!(
        ok > 0 && failed > 0,
        "ok {ok}, failed {failed}: the records span every master"
    );
    signal(&servers.0[0], "-CONT");
    let resumed = Instant::now();
    let mut back_after_stop = None;
    while back_after_stop.is_none() {
        let mut all = true;
        for r in &records {
            all &= matches!(store.load(&r.id).await, Ok(Some(_)));
        }
        if all {
            back_after_stop = Some(resumed.elapsed());
        } else {
            assert!(resumed.elapsed() < Duration::from_secs(20), "no recovery after SIGCONT");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // 2. The first master is killed and restarted on its port (its keys are
    // gone: persistence is off), and the same store works again.
    servers.0[0].kill().unwrap();
    servers.0[0].wait().unwrap();
    let killed = Instant::now();
    let mut worst_down = Duration::ZERO;
    for r in &records {
        let start = Instant::now();
        let _ = store.load(&r.id).await;
        worst_down = worst_down.max(start.elapsed());
    }
    assert!(
        worst_down <= TIMEOUT + SLACK,
        "a call took {worst_down:?} with a master down"
    );
    let down_for = killed.elapsed();
    servers.0[0] = start(&binary, ports[0], dirs[0].path());
    let restarted = Instant::now();
    let recovered = loop {
        let mut all = true;
        for _ in 0..10 {
            let r = record();
            all &= store.create(&r).await.is_ok() && matches!(store.load(&r.id).await, Ok(Some(_)));
        }
        if all && store.count().await.is_ok() {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(20),
            "the store did not recover"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!(
        "CLUSTER FAULT FIGURES: timeout {TIMEOUT:?}; SIGSTOP of one master: {failed} of 30 loads failed, \
         slowest call {worst:?}, all 30 load again {:?} after SIGCONT; SIGKILL: slowest call {worst_down:?} \
         (down {down_for:?}); writes on every master work again {recovered:?} after the restart",
        back_after_stop.unwrap()
    );
    store.clear().await.unwrap();
}
