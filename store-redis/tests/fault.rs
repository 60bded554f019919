//! The server dies in the middle of a workload: calls fail with a clear
//! error within the timeout (no hang, no panic), and once the server is back
//! on the same port the same store object works again.
//!
//! Starts its own redis-server (`SESSION_STORE_REDIS_SERVER`, set by
//! `store-redis/scripts/with-redis`) on a free loopback port.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::sync::Mutex;

use session_store_core::{Clock, Error, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_redis::RedisStore;

const TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling slack on a loaded 2-core machine, over the timeout.
const SLACK: Duration = Duration::from_millis(1_000);

use common::{free_port, start_server, wait_until_up};

#[derive(Default)]
struct Tally {
    ok_before: u64,
    failures: Vec<Duration>,
    ok_after_recovery: u64,
    other_errors: Vec<String>,
}

/// A `tracing` writer into a shared buffer (the store's events).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// The lines that contain `needle`.
    fn lines(&self, needle: &str) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_fast_and_the_same_store_recovers() {
    let Some(binary) = common::env_or_skip("SESSION_STORE_REDIS_SERVER") else {
        return;
    };
    // The store's own events (the only test of this binary, so a global subscriber).
    let log = Log::default();
    let writer = log.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish(),
    )
    .expect("the only subscriber");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start_server(&binary, port, dir.path());
    wait_until_up(port).await;

    let store = RedisStore::builder(format!("redis://127.0.0.1:{port}/"))
        .prefix(common::random_prefix())
        .timeout(TIMEOUT)
        .build()
        .await
        .unwrap();

    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0)); // 0 up, 1 down, 2 recovered
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (store, phase, stop, tally) = (store.clone(), phase.clone(), stop.clone(), tally.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut data = SessionData::new();
                data.insert("n", &1).unwrap();
                let r = Record::with_deadline(
                    SessionId::random(),
                    data,
                    SystemClock.now(),
                    SystemClock.now() + Duration::from_secs(60),
                );
                let seen = phase.load(Ordering::Relaxed);
                let start = Instant::now();
                // The outer bound only catches a hang; the store's own timeout must fire first.
                let result = tokio::time::timeout(TIMEOUT * 6, async {
                    store.create(&r).await?;
                    let loaded = store.load(&r.id).await?;
                    assert!(loaded.is_some(), "a record just created loads");
                    store.save(&r).await
                })
                .await
                .unwrap_or_else(|_| panic!("a store call hung past {:?}", TIMEOUT * 6));
                let took = start.elapsed();
                {
                    let mut t = tally.lock().unwrap();
                    match result {
                        Ok(_) if seen == 0 => t.ok_before += 1,
                        Ok(_) if seen == 2 => t.ok_after_recovery += 1,
                        Ok(_) => {}
                        Err(e @ (Error::Backend { .. } | Error::Timeout(_))) => {
                            assert!(!e.to_string().is_empty());
                            t.failures.push(took);
                        }
                        Err(e) => t.other_errors.push(e.to_string()),
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    // SIGKILL, mid-workload.
    server.kill().unwrap();
    server.wait().unwrap();
    phase.store(1, Ordering::Relaxed);
    let killed = Instant::now();

    // While it is down: every call fails, each within the timeout.
    let mut down_calls = Vec::new();
    let mut first_error_after_kill = None;
    while killed.elapsed() < Duration::from_millis(1_500) {
        let start = Instant::now();
        let result = store.load(&SessionId::random()).await;
        let took = start.elapsed();
        let err = result.expect_err("a load against a dead server fails");
        assert!(err.is_transient(), "{err}");
        first_error_after_kill.get_or_insert(killed.elapsed());
        assert!(took <= TIMEOUT + SLACK, "a call took {took:?}, over the timeout");
        down_calls.push((took, err.to_string()));
    }

    // Back on the same port: the same store object works again.
    let mut server = start_server(&binary, port, dir.path());
    let restarted = Instant::now();
    wait_until_up(port).await;
    let listening = restarted.elapsed();
    let recovered = loop {
        if store.load(&SessionId::random()).await.is_ok() {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "the store did not recover within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    phase.store(2, Ordering::Relaxed);
    let r = Record::with_deadline(
        SessionId::random(),
        SessionData::new(),
        SystemClock.now(),
        SystemClock.now() + Duration::from_secs(60),
    );
    store.create(&r).await.unwrap();
    assert!(store.load(&r.id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("no worker panicked");
    }

    // A server that stops answering (SIGSTOP) without closing the socket:
    // the call gives up at the timeout; after SIGCONT the store works again.
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &server.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let start = Instant::now();
    let err = store.load(&r.id).await.unwrap_err();
    let stalled = start.elapsed();
    assert!(matches!(err, Error::Timeout(t) if t == TIMEOUT), "{err}");
    assert!(stalled <= TIMEOUT + SLACK, "{stalled:?}");
    // Still stopped: the next calls (on a fresh connection) fail within the bound too.
    for _ in 0..3 {
        let start = Instant::now();
        let err = store.load(&r.id).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(start.elapsed() <= TIMEOUT + SLACK, "{:?}", start.elapsed());
    }
    signal("-CONT");
    let resumed = Instant::now();
    let back = loop {
        match store.load(&r.id).await {
            Ok(Some(_)) => break resumed.elapsed(),
            Ok(None) => panic!("the record vanished"),
            Err(_) => assert!(resumed.elapsed() < Duration::from_secs(15), "no recovery after SIGCONT"),
        }
    };
    server.kill().unwrap();
    server.wait().unwrap();

    let t = tally.lock().unwrap();
    let mut fails: Vec<Duration> = down_calls
        .iter()
        .map(|(d, _)| *d)
        .chain(t.failures.iter().copied())
        .collect();
    fails.sort();
    let median = fails[fails.len() / 2];
    let max = *fails.last().unwrap();
    eprintln!(
        "FAULT FIGURES: timeout {TIMEOUT:?}; first error {:?} after SIGKILL; {} failed calls, time to fail median {median:?}, max {max:?}; \
         after restart: listening in {listening:?}, store working again {recovered:?} after the restart (same store object); \
         workload ops ok before {} / after recovery {}; sample error: {}; \
         SIGSTOP: a call timed out after {stalled:?}, working again {back:?} after SIGCONT",
        first_error_after_kill.unwrap(),
        fails.len(),
        t.ok_before,
        t.ok_after_recovery,
        down_calls.first().map_or("", |(_, e)| e.as_str()),
    );
    assert!(t.other_errors.is_empty(), "{:?}", t.other_errors);
    assert!(
        t.ok_before > 0 && t.ok_after_recovery > 0,
        "the workload ran before and after"
    );
    assert!(max <= TIMEOUT + SLACK, "{max:?}");

    // The operator heard of each outage once, of each recovery once, and of
    // each replaced connection; not of every failed call.
    let out = log.lines("Redis is out of reach");
    let back_again = log.lines("Redis answers again");
    let replaced = log.lines("replacing the connection");
    eprintln!(
        "FAULT LOG: {} failed calls gave {} out-of-reach warnings, {} recovery notes, {} replaced connections",
        fails.len(),
        out.len(),
        back_again.len(),
        replaced.len()
    );
    assert!(out.iter().all(|l| l.contains(" WARN ")), "{out:#?}");
    assert!(!out.is_empty() && !back_again.is_empty(), "{out:#?} {back_again:#?}");
    assert!(
        out.len() <= 2 * back_again.len() + 1,
        "one warning per outage, not per call: {out:#?}"
    );
    assert!(
        out.len() < fails.len() / 2,
        "{} warnings for {} failures",
        out.len(),
        fails.len()
    );
    assert!(!replaced.is_empty(), "the SIGSTOP timeout replaced the connection");
}

/// A server that accepts and never answers: connecting gives up within the
/// timeout with `Error::Timeout`; a refused port and a malformed URL are
/// backend errors that say so. Needs no server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_and_a_refused_or_malformed_url_is_a_backend_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let err = RedisStore::builder(format!("redis://{addr}/"))
        .timeout(timeout)
        .build()
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Timeout(t) if t == timeout), "{err}");
    assert!(took < timeout * 10, "{took:?}");
    hold.abort();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = RedisStore::builder(format!("redis://{closed}/"))
        .timeout(timeout)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    assert!(err.is_transient(), "a refused connection may come back: {err}");
    let err = RedisStore::builder("not a url").build().await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }) && !err.is_transient(), "{err:?}");
    if !cfg!(feature = "tls") {
        let err = RedisStore::builder("rediss://127.0.0.1:1/").build().await.unwrap_err();
        assert!(err.to_string().contains("tls"), "{err}");
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
    }
}
