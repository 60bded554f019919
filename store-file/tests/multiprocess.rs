//! Several processes share one directory: conditional saves lose no update,
//! unconditional saves never hand out one version twice, and exactly one of
//! many racing rotations of one session wins.
//!
//! The children are this same test binary, started again with
//! `SESSION_STORE_FILE_MP_CHILD` naming the directory.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store_core::{Clock, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_file::FileStore;

const CHILD_ENV: &str = "SESSION_STORE_FILE_MP_CHILD";
const CHILDREN: usize = 4;
/// Tasks per child.
const TASKS: usize = 2;
/// Increments of each counter by each task.
const INCREMENTS: u64 = 15;
/// Counter sessions, shared by every task of every child.
const COUNTERS: u128 = 3;
/// Unconditional saves of the shared session by each task.
const SAVES: u64 = 15;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("multiprocess: test");
        return;
    }
    match std::env::var(CHILD_ENV) {
        Ok(dir) => child(Path::new(&dir)),
        Err(_) => parent(),
    }
}

fn counter(i: u128) -> SessionId {
    SessionId::from_u128(0xC0FF_EE00_0000_0000_0000_0000_0000_0000 + i)
}

fn shared() -> SessionId {
    SessionId::from_u128(0x5A5E_0000_0000_0000_0000_0000_0000_0001)
}

fn rotated() -> SessionId {
    SessionId::from_u128(0x0707_0000_0000_0000_0000_0000_0000_0001)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime")
}

fn record(id: SessionId, n: u64) -> Record {
    let mut data = SessionData::new();
    data.insert("n", &n).expect("json");
    let now = SystemClock.now();
    Record::with_deadline(id, data, now, now + Duration::from_secs(3_600))
}

/// Races the others, then prints what it did, one fact a line.
fn child(dir: &Path) {
    let go = dir.join("go");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !go.exists() {
        assert!(Instant::now() < deadline, "the parent never said go");
        std::thread::sleep(Duration::from_millis(1));
    }
    runtime().block_on(async {
        let store = Arc::new(FileStore::open(dir).expect("open"));
        // Everyone rotates the same session to an id of their own at once.
        let mine = SessionId::random();
        let won = store.rotate(&rotated(), &mine).await.expect("rotate");
        println!("rotate {won} {mine}");
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut lines = Vec::new();
                for i in 0..INCREMENTS * COUNTERS as u64 {
                    let id = counter(u128::from(i) % COUNTERS);
                    let mut conflicts = 0;
                    loop {
                        let mut r = store.load(&id).await.expect("load").expect("live");
                        let n: u64 = r.data.get("n").expect("json").expect("n");
                        r.data.insert("n", &(n + 1)).expect("json");
                        match store.save_if_version(&r).await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => conflicts += 1,
                            Err(e) => panic!("save_if_version: {e}"),
                        }
                    }
                    lines.push(format!("conflicts {conflicts}"));
                    if i < SAVES {
                        let v = store.save(&record(shared(), i)).await.expect("save");
                        lines.push(format!("save {v}"));
                    }
                }
                lines
            }));
        }
        for t in tasks {
            for line in t.await.expect("task") {
                println!("{line}");
            }
        }
    });
}

fn parent() {
    let exe = std::env::current_exe().expect("the test binary");
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("sessions");
    let store = FileStore::open(&dir).expect("open");
    let rt = runtime();
    rt.block_on(async {
        for i in 0..COUNTERS {
            store.create(&record(counter(i), 0)).await.expect("create");
        }
        store.create(&record(shared(), 0)).await.expect("create");
        store.create(&record(rotated(), 42)).await.expect("create");
    });
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(&exe)
                .env(CHILD_ENV, &dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a child")
        })
        .collect();
    std::fs::write(dir.join("go"), b"").expect("say go");
    let started = Instant::now();
    let mut winners = Vec::new();
    let mut versions = Vec::new();
    let mut conflicts = 0u64;
    for child in children {
        let out = child.wait_with_output().expect("wait for a child");
        assert!(out.status.success(), "a child failed: {}", out.status);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["rotate", "true", id] => winners.push(id.parse::<SessionId>().expect("an id")),
                ["rotate", "false", _] => {}
                ["save", v] => versions.push(v.parse::<u64>().expect("a version")),
                ["conflicts", c] => conflicts += c.parse::<u64>().expect("a number"),
                _ => {}
            }
        }
    }
    let elapsed = started.elapsed();

    let total = (CHILDREN * TASKS) as u64 * INCREMENTS;
    rt.block_on(async {
        for i in 0..COUNTERS {
            let r = store.load(&counter(i)).await.expect("load").expect("live");
            assert_eq!(
                r.data.get::<u64>("n").expect("json"),
                Some(total),
                "counter {i} lost updates"
            );
            assert_eq!(r.version, 1 + total, "counter {i}");
        }
        // Unconditional saves: each one stored a version no other save got.
        let saves = (CHILDREN * TASKS) as u64 * SAVES;
        assert_eq!(versions.len() as u64, saves);
        let distinct: HashSet<u64> = versions.iter().copied().collect();
        assert_eq!(distinct.len(), versions.len(), "two saves got the same version");
        let last = store.load(&shared()).await.expect("load").expect("live");
        assert_eq!(last.version, 1 + saves);
        // Exactly one rotation won, and the record is under its id alone.
        assert_eq!(winners.len(), 1, "rotation winners: {winners:?}");
        assert!(store.load(&rotated()).await.expect("load").is_none());
        let moved = store.load(&winners[0]).await.expect("load").expect("moved");
        assert_eq!(moved.data.get::<u64>("n").expect("json"), Some(42));
        assert_eq!(store.count().await.expect("count"), COUNTERS as u64 + 2);
    });
    println!(
        "multiprocess: {CHILDREN} processes x {TASKS} tasks, {} conditional increments ({conflicts} conflicts \
         retried), {} unconditional saves, 1 of {CHILDREN} rotations won, no lost updates, {:.1} s",
        total * COUNTERS as u64,
        versions.len(),
        elapsed.as_secs_f64()
    );
}
