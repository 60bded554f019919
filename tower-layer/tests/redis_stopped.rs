//! Redis stopped in the middle of a test: requests are answered with a
//! generic 503 within the store's timeout, and once Redis is back on the
//! same port the same app serves again, without a restart.
//!
//! Starts its own redis-server (`SESSION_STORE_REDIS_SERVER`, exported by
//! `store-redis/scripts/with-redis`) on a free loopback port, never 6379.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{Browser, serve};
use reqwest::StatusCode;
use session_store_core::Expiry;
use session_store_redis::RedisStore;
use session_store_tower::{Session, SessionError, SessionLayer};

const TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling slack on a loaded 2-core machine, over the timeout.
const SLACK: Duration = Duration::from_millis(1_000);

/// A server process, killed even when the test panics.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(binary: &str, port: u16, dir: &std::path::Path) -> KillOnDrop {
    let child = Command::new(binary)
        .args([
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
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    KillOnDrop(child)
}

async fn wait_until_up(port: u16) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("redis-server did not come up on port {port}");
}

async fn count(session: Session) -> Result<String, SessionError> {
    let n = session
        .update(|s| {
            let n = s.get::<u64>("count")?.unwrap_or(0) + 1;
            s.insert("count", &n)?;
            Ok(n)
        })
        .await?;
    Ok(n.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_gives_a_generic_503_within_the_timeout_and_service_comes_back() {
    let Some(binary) = common::env_or_skip("SESSION_STORE_REDIS_SERVER", "redis stopped mid-test") else {
        return;
    };
    let log = common::log();
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert_ne!(port, 6379);
    let mut server = start_server(&binary, port, dir.path());
    wait_until_up(port).await;
    let store = RedisStore::builder(format!("redis://127.0.0.1:{port}/"))
        .timeout(TIMEOUT)
        .build()
        .await
        .expect("the private Redis answers");
    let layer = SessionLayer::new(store)
        .expiry(Expiry::OnInactivity(Duration::from_secs(600)))
        .secure(false);
    let base = serve(Router::new().route("/", get(count)).layer(layer)).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.ok("/").await, "1");
    assert_eq!(browser.ok("/").await, "2");
    let id = browser.id().unwrap();

    // SIGKILL: every request fails, each within the timeout, with the generic body.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for _ in 0..3 {
        let start = Instant::now();
        let answer = browser.get("/").await;
        let took = start.elapsed();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
        assert_eq!(answer.body, "internal error\n", "a generic body");
        assert!(answer.set_cookie.is_empty(), "the cookie is left alone");
        assert!(took <= TIMEOUT + SLACK, "answered after {took:?}");
    }
    assert_eq!(browser.id(), Some(id), "the browser keeps its cookie");
    let fingerprint = id.fingerprint().to_string();
    assert!(
        !log.lines(&[&fingerprint, "ERROR", "session store"]).is_empty(),
        "the detail goes to the log with the fingerprint"
    );
    assert!(!log.holds(&id.to_string()), "the log never holds the id");

    // Back on the same port (empty: no persistence): the same app serves again.
    server = start_server(&binary, port, dir.path());
    wait_until_up(port).await;
    let back = Instant::now();
    loop {
        let answer = browser.get("/").await;
        if answer.status == StatusCode::OK {
            // The old session went with the server's memory: a fresh one.
            assert_eq!(answer.body, "1");
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(15), "no recovery: {answer:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(browser.id(), Some(id));
    assert_eq!(browser.ok("/").await, "2");

    // A server that stops answering without closing its socket (SIGSTOP):
    // the answer comes when the store's timeout fires, not later.
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &server.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let start = Instant::now();
    let answer = browser.get("/").await;
    let took = start.elapsed();
    signal("-CONT");
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert_eq!(answer.body, "internal error\n");
    assert!(took >= TIMEOUT && took <= TIMEOUT + SLACK, "answered after {took:?}");
    println!("a stalled Redis: 503 after {took:?} (timeout {TIMEOUT:?})");
    let back = Instant::now();
    loop {
        let answer = browser.get("/").await;
        if answer.status == StatusCode::OK {
            assert_eq!(answer.body, "3", "the session carried on");
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(15), "no recovery: {answer:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server);
}
