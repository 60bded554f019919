//! What the tests of the `session-store` binary share: running it, seeding
//! stores, and the private Redis server from the environment.

#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use futures::StreamExt;
use session_store_core::{Clock, Record, SessionData, SessionId, SessionStore, SystemClock, Timestamp};
use session_store_file::{Durability, FileStore};

pub const BIN: &str = env!("CARGO_BIN_EXE_session-store");

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Never a panic nor a backtrace, whatever happened.
    pub fn assert_clean(&self) -> &Self {
        for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
            assert!(!self.stderr.contains(bad), "{bad} in stderr: {self:?}");
        }
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs the binary with `args`, standard input closed (not a terminal).
pub fn run(args: &[&str]) -> Run {
    let run: Run = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run session-store")
        .into();
    run.assert_clean();
    run
}

/// Runs the binary with `args` and these environment variables set,
/// standard input closed.
pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let run: Run = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run session-store")
        .into();
    run.assert_clean();
    run
}

/// `SESSION_STORE_REDIS_URL` (the private server `store-redis/scripts/with-redis`
/// starts), or `None` after saying how to get one; under
/// `SESSION_STORE_STRICT=1` a missing server fails the test.
pub fn redis_url() -> Option<String> {
    env_or_skip("SESSION_STORE_REDIS_URL")
}

/// The value of `var`, or `None` after saying how to get it (a failure
/// under `SESSION_STORE_STRICT=1`).
pub fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let msg = format!(
                "{var} is not set: run the tests under \
                 `store-redis/scripts/with-redis cargo test -p session-store-cli` (or ./scripts/test), \
                 which starts private Redis servers on free loopback ports"
            );
            assert!(std::env::var("SESSION_STORE_STRICT").as_deref() != Ok("1"), "{msg}");
            eprintln!("skipped: {msg}");
            None
        }
    }
}

/// A store URL on the test Redis with a fresh prefix of its own.
pub fn redis_store(base: &str) -> String {
    let prefix = format!("sst-cli:{}:", SessionId::random());
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}prefix={prefix}")
}

/// `file:<dir>`.
pub fn file_url(dir: &Path) -> String {
    format!("file:{}", dir.display())
}

/// `sqlite:<path>`.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The record number `i` of a seeded store: varied data (unicode keys,
/// nested values, the integer extremes), every seventh with an owner,
/// deadlines spread over the next days.
pub fn seed_record(i: u64, now: Timestamp) -> Record {
    let mut data = SessionData::new();
    data.insert("n", &i).unwrap();
    data.insert("ключ ✓", &format!("value {i} ✓")).unwrap();
    if i.is_multiple_of(3) {
        data.insert(
            "nested",
            &serde_json::json!({"a": [1, 2, {"b": null}], "max": u64::MAX}),
        )
        .unwrap();
    }
    if i.is_multiple_of(11) {
        data.insert("", &i64::MIN).unwrap();
    }
    let mut record = Record::with_deadline(
        SessionId::random(),
        data,
        now - Duration::from_secs(i % 1000),
        now + Duration::from_secs(3600 + i * 7),
    );
    if i.is_multiple_of(7) {
        record.owner = Some(format!("user-{}", i % 100));
    }
    record
}

/// Seeds `n` live sessions in a file store on `dir` (no fsync: quick), the
/// first `bumped` of them saved twice more (version 3); also `expired`
/// sessions whose deadline has passed. Returns the live records as stored.
pub fn seed_file(dir: &Path, n: u64, bumped: u64, expired: u64) -> Vec<Record> {
    runtime().block_on(async {
        let store = FileStore::builder(dir).durability(Durability::NoSync).open().unwrap();
        let now = SystemClock.now();
        let store = &store;
        let records: Vec<Record> = futures::stream::iter(0..n)
            .map(|i| async move {
                let mut r = seed_record(i, now);
                store.create(&r).await.unwrap();
                r.version = 1;
                if i < bumped {
                    for _ in 0..2 {
                        r.data.insert("bumped", &r.version).unwrap();
                        r.version = store.save_if_version(&r).await.unwrap();
                    }
                }
                r
            })
            .buffer_unordered(32)
            .collect()
            .await;
        for i in 0..expired {
            let mut r = seed_record(i, now);
            r.expires_at = now - Duration::from_secs(1);
            store.save(&r).await.unwrap();
        }
        records
    })
}

/// Checks that every record of `expected` loads from `store` with the same
/// data, created time, deadline, version and owner, and that the store holds
/// nothing else live.
pub async fn assert_holds(store: &dyn SessionStore, expected: &[Record]) {
    assert_eq!(
        store.count().await.unwrap(),
        expected.len() as u64,
        "live sessions in {store:?}"
    );
    let mismatches: Vec<String> = futures::stream::iter(expected)
        .map(|want| async move {
            match store.load(&want.id).await {
                Ok(Some(got)) if got == *want => None,
                Ok(Some(got)) => Some(format!(
                    "{}: got v{} {:?} {:?}, want v{} {:?} {:?}",
                    want.id.fingerprint(),
                    got.version,
                    got.expires_at,
                    got.owner,
                    want.version,
                    want.expires_at,
                    want.owner
                )),
                Ok(None) => Some(format!("{}: missing", want.id.fingerprint())),
                Err(e) => Some(format!("{}: {e}", want.id.fingerprint())),
            }
        })
        .buffer_unordered(64)
        .filter_map(|m| async move { m })
        .collect()
        .await;
    assert!(
        mismatches.is_empty(),
        "{} of {} sessions differ, e.g. {:?}",
        mismatches.len(),
        expected.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}
