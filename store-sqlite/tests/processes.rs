//! Several processes share one database file: two child processes (this
//! test binary, run again with an environment variable) write concurrently,
//! counters through load + conditional-save retry loops and plain creates.
//! No "database is locked" reaches the caller (a child fails on any error)
//! and nothing is lost.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store_core::{Clock, Expiry, Record, SessionData, SessionId, SessionStore, SessionStoreExt, SystemClock};
use session_store_sqlite::SqliteStore;

const TEST: &str = "two_processes_share_one_file";
const ENV_DB: &str = "SESSION_STORE_SQLITE_CHILD_DB";
const ENV_TAG: &str = "SESSION_STORE_SQLITE_CHILD_TAG";
const ENV_COUNTERS: &str = "SESSION_STORE_SQLITE_CHILD_COUNTERS";
const ENV_START: &str = "SESSION_STORE_SQLITE_CHILD_START";
const CHILDREN: usize = 2;
const TASKS: usize = 4;
const INCREMENTS: usize = 200;
const CREATES: usize = 200;
const COUNTERS: usize = 3;

#[test]
fn two_processes_share_one_file() {
    if let Ok(db) = std::env::var(ENV_DB) {
        child(&db);
        return;
    }
    let db = common::Db::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let store = SqliteStore::builder(&db.path).open().unwrap();
    let now = SystemClock.now();
    let mut counters = Vec::new();
    for _ in 0..COUNTERS {
        let mut data = SessionData::new();
        data.insert("count", &0u64).unwrap();
        let r = Record::new(data, now, &Expiry::OnInactivity(Duration::from_secs(3600)));
        rt.block_on(store.create(&r)).unwrap();
        counters.push(r.id.to_string());
    }

    let started = Instant::now();
    // Both children start writing at this instant, whatever their start-up time.
    let start_at = SystemClock.now().as_millis() + 500;
    let children: Vec<_> = (0..CHILDREN)
        .map(|tag| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
                .env(ENV_DB, &db.path)
                .env(ENV_TAG, tag.to_string())
                .env(ENV_COUNTERS, counters.join(","))
                .env(ENV_START, start_at.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("re-running the test binary as a child process")
        })
        .collect();
    let mut created = HashMap::new();
    let mut conflicts = 0u64;
    for (tag, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child {tag} failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        for line in stdout.lines() {
            if let Some(rest) = line.strip_prefix("CREATED ") {
                let (id, marker) = rest.split_once(' ').unwrap();
                created.insert(id.parse::<SessionId>().unwrap(), marker.to_owned());
            } else if let Some(t) = line.strip_prefix("WRITING ") {
                println!("child {tag} wrote for {t}");
            } else if let Some(n) = line.strip_prefix("CONFLICTS ") {
                conflicts += n.parse::<u64>().unwrap();
            }
        }
    }
    let elapsed = started.elapsed();

    let expected_creates = CHILDREN * TASKS * CREATES;
    assert_eq!(created.len(), expected_creates, "every child reported its creates");
    rt.block_on(async {
        let mut total = 0;
        for id in &counters {
            let r = store.load(&id.parse().unwrap()).await.unwrap().unwrap();
            let count = r.data.get::<u64>("count").unwrap().unwrap();
            assert_eq!(r.version, count + 1, "one version per increment");
            total += count;
        }
        assert_eq!(total as usize, CHILDREN * TASKS * INCREMENTS, "no increment lost");
        for (id, marker) in &created {
            let r = store.load(id).await.unwrap().expect("a created record is there");
            assert_eq!(
                r.data.get::<String>("marker").unwrap().as_deref(),
                Some(marker.as_str())
            );
        }
        assert_eq!(store.count().await.unwrap() as usize, COUNTERS + expected_creates);
    });
    let writes = CHILDREN * TASKS * (INCREMENTS + CREATES);
    println!(
        "two processes: {writes} acknowledged writes ({} increments, {conflicts} conflicts retried) in {elapsed:?} \
         including process start and a 500 ms start barrier",
        CHILDREN * TASKS * INCREMENTS
    );
}

/// One child process: `TASKS` tasks, each incrementing the shared counters
/// and creating records. Any error fails the process.
fn child(db: &str) {
    // libtest printed "test <name> ... " without a newline: end that line.
    println!();
    let tag: String = std::env::var(ENV_TAG).unwrap();
    let counters: Vec<SessionId> = std::env::var(ENV_COUNTERS)
        .unwrap()
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let store = Arc::new(SqliteStore::builder(db).open().unwrap());
    let start_at: i64 = std::env::var(ENV_START).unwrap().parse().unwrap();
    let wait = start_at - SystemClock.now().as_millis();
    std::thread::sleep(Duration::from_millis(wait.max(0) as u64));
    let began = Instant::now();
    let conflicts: u64 = rt.block_on(async {
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let store = store.clone();
            let counters = counters.clone();
            let tag = tag.clone();
            tasks.push(tokio::spawn(async move {
                let mut conflicts = 0u64;
                for i in 0..INCREMENTS.max(CREATES) {
                    if i < INCREMENTS {
                        let id = counters[(i + task) % counters.len()];
                        loop {
                            let mut r = store.load(&id).await.unwrap().expect("the counter is live");
                            let n: u64 = r.data.get("count").unwrap().unwrap();
                            r.data.insert("count", &(n + 1)).unwrap();
                            match store.save_if_version(&r).await {
                                Ok(_) => break,
                                Err(e) if e.is_conflict() => conflicts += 1,
                                Err(e) => panic!("increment failed: {e}"),
                            }
                        }
                    }
                    if i < CREATES {
                        let marker = format!("{tag}-{task}-{i}");
                        let mut data = SessionData::new();
                        data.insert("marker", &marker).unwrap();
                        let mut r = Record::new(
                            data,
                            SystemClock.now(),
                            &Expiry::OnInactivity(Duration::from_secs(3600)),
                        );
                        store
                            .create_with_fresh_id(&mut r)
                            .await
                            .unwrap_or_else(|e| panic!("create failed: {e}"));
                        println!("CREATED {} {marker}", r.id);
                    }
                }
                conflicts
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    println!("CONFLICTS {conflicts}");
    println!("WRITING {:?}", began.elapsed());
}

const LINEARIZABLE: &str = "histories_across_processes_are_linearizable";
const ENV_LINEARIZABLE_DB: &str = "SESSION_STORE_SQLITE_LINEARIZABLE_DB";

fn open_at(path: &std::path::Path, base: session_store_core::Timestamp) -> SqliteStore {
    SqliteStore::builder(path)
        .clock(session_store_core::ManualClock::new(base).shared())
        .open()
        .expect("open the store")
}

/// The suite's linearizability checker with one worker per process: three
/// processes on one file, their calls' answers explained by one order that
/// keeps real time, round after round.
#[test]
fn histories_across_processes_are_linearizable() {
    use session_store_conformance::linearizability::{CheckerSettings, processes};
    let settings = CheckerSettings::default().rounds(150).workers(3).calls_per_worker(4);
    if let Some((worker, base)) = processes::child_role() {
        let db = std::env::var(ENV_LINEARIZABLE_DB).expect("the parent names the file");
        processes::serve_child(&open_at(db.as_ref(), base), worker, base, &settings).expect("serve the parent");
        return;
    }
    let db = common::Db::new();
    let base = SystemClock.now();
    let store = open_at(&db.path, base);
    let path = db.path.to_string_lossy().into_owned();
    let report = processes::across_processes(
        LINEARIZABLE,
        &[(ENV_LINEARIZABLE_DB, &path)],
        &store,
        base,
        &settings,
        true,
    )
    .unwrap_or_else(|failure| panic!("{failure}"));
    eprintln!("SQLite across processes: {report:?}");
    assert_eq!(report.calls, 150 * 3 * 4);
}
