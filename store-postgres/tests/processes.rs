//! Several processes share one table: three child processes (this test
//! binary, run again with environment variables) increment shared counters
//! through load + conditional-save retry loops, and race to rotate the same
//! records. No increment is lost, and each raced record has exactly one
//! winner, whose new id holds the record while the old one is gone.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store_core::{Clock, Expiry, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_postgres::PostgresStore;

const TEST: &str = "processes_share_one_table";
const ENV_TABLE: &str = "SESSION_STORE_POSTGRES_CHILD_TABLE";
const ENV_TAG: &str = "SESSION_STORE_POSTGRES_CHILD_TAG";
const ENV_COUNTERS: &str = "SESSION_STORE_POSTGRES_CHILD_COUNTERS";
const ENV_RACED: &str = "SESSION_STORE_POSTGRES_CHILD_RACED";
const ENV_START: &str = "SESSION_STORE_POSTGRES_CHILD_START";
const CHILDREN: usize = 3;
const TASKS: usize = 4;
const INCREMENTS: usize = 100;
const COUNTERS: usize = 3;
const RACED: usize = 100;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn open(url: &str, table: &str) -> PostgresStore {
    PostgresStore::builder(url)
        .table(table)
        .pool_size(TASKS)
        .build()
        .await
        .expect("open the store")
}

fn record(key: &str, value: &str) -> Record {
    let mut data = SessionData::new();
    data.insert(key, &value).unwrap();
    Record::new(
        data,
        SystemClock.now(),
        &Expiry::OnInactivity(Duration::from_secs(3600)),
    )
}

#[test]
fn processes_share_one_table() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    if let Ok(table) = std::env::var(ENV_TABLE) {
        child(&url, &table);
        return;
    }
    let table = common::unique("processes");
    let rt = runtime();
    let store = rt.block_on(open(&url, &table));
    let mut counters = Vec::new();
    let mut raced = Vec::new();
    rt.block_on(async {
        for _ in 0..COUNTERS {
            let mut data = SessionData::new();
            data.insert("count", &0u64).unwrap();
            let r = Record::new(
                data,
                SystemClock.now(),
                &Expiry::OnInactivity(Duration::from_secs(3600)),
            );
            store.create(&r).await.unwrap();
            counters.push(r.id.to_string());
        }
        for i in 0..RACED {
            let r = record("raced", &i.to_string());
            store.create(&r).await.unwrap();
            raced.push(r.id);
        }
    });

    let started = Instant::now();
    // Every child starts at this instant, whatever its start-up time.
    let start_at = SystemClock.now().as_millis() + 1_000;
    let raced_env: Vec<String> = raced.iter().map(SessionId::to_string).collect();
    let children: Vec<_> = (0..CHILDREN)
        .map(|tag| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
                .env(ENV_TABLE, &table)
                .env(ENV_TAG, tag.to_string())
                .env(ENV_COUNTERS, counters.join(","))
                .env(ENV_RACED, raced_env.join(","))
                .env(ENV_START, start_at.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("re-running the test binary as a child process")
        })
        .collect();
    let mut winners: HashMap<SessionId, Vec<(usize, SessionId)>> = HashMap::new();
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
            if let Some(rest) = line.strip_prefix("ROTATED ") {
                let (old, new) = rest.split_once(' ').unwrap();
                winners
                    .entry(old.parse().unwrap())
                    .or_default()
                    .push((tag, new.parse().unwrap()));
            } else if let Some(n) = line.strip_prefix("CONFLICTS ") {
                conflicts += n.parse::<u64>().unwrap();
            }
        }
    }
    let elapsed = started.elapsed();

    rt.block_on(async {
        let mut total = 0;
        for id in &counters {
            let r = store.load(&id.parse().unwrap()).await.unwrap().unwrap();
            let count = r.data.get::<u64>("count").unwrap().unwrap();
            assert_eq!(r.version, count + 1, "one version per increment");
            total += count;
        }
        assert_eq!(total as usize, CHILDREN * TASKS * INCREMENTS, "no increment lost");
        for (i, old) in raced.iter().enumerate() {
            let won = winners.get(old).map_or(&[][..], Vec::as_slice);
            assert_eq!(
                won.len(),
                1,
                "racing rotates of record {i} had {} winners: {won:?}",
                won.len()
            );
            assert!(store.load(old).await.unwrap().is_none(), "the old id is gone");
            let moved = store
                .load(&won[0].1)
                .await
                .unwrap()
                .expect("the winner's id holds the record");
            assert_eq!(moved.data.get::<String>("raced").unwrap(), Some(i.to_string()));
            assert_eq!(moved.version, 1, "rotate keeps the version");
        }
        assert_eq!(store.count().await.unwrap() as usize, COUNTERS + RACED);
        let client = common::raw(&url).await.unwrap();
        client.batch_execute(&format!("DROP TABLE \"{table}\"")).await.unwrap();
        client
            .execute("DELETE FROM session_store_schema WHERE table_name = $1", &[&table])
            .await
            .unwrap();
    });
    println!(
        "{CHILDREN} processes: {} increments ({conflicts} conflicts retried) and {RACED} rotates raced \
         {CHILDREN} ways in {elapsed:?}, including process start and a 1 s start barrier",
        CHILDREN * TASKS * INCREMENTS
    );
}

/// One child process: `TASKS` tasks incrementing the counters, and one
/// task per raced record rotating it to a fresh id. Any error fails the
/// process.
fn child(url: &str, table: &str) {
    // libtest printed "test <name> ... " without a newline: end that line.
    println!();
    let parse = |var: &str| -> Vec<SessionId> {
        std::env::var(var)
            .unwrap()
            .split(',')
            .map(|s| s.parse().unwrap())
            .collect()
    };
    let (counters, raced) = (parse(ENV_COUNTERS), parse(ENV_RACED));
    let rt = runtime();
    let store = Arc::new(rt.block_on(open(url, table)));
    let start_at: i64 = std::env::var(ENV_START).unwrap().parse().unwrap();
    let wait = start_at - SystemClock.now().as_millis();
    std::thread::sleep(Duration::from_millis(wait.max(0) as u64));
    let conflicts: u64 = rt.block_on(async {
        let mut rotations = Vec::new();
        for old in raced {
            let store = store.clone();
            rotations.push(tokio::spawn(async move {
                let new = SessionId::random();
                if store
                    .rotate(&old, &new)
                    .await
                    .unwrap_or_else(|e| panic!("rotate failed: {e}"))
                {
                    println!("ROTATED {old} {new}");
                }
            }));
        }
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let store = store.clone();
            let counters = counters.clone();
            tasks.push(tokio::spawn(async move {
                let mut conflicts = 0u64;
                for i in 0..INCREMENTS {
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
                conflicts
            }));
        }
        for r in rotations {
            r.await.unwrap();
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    println!("CONFLICTS {conflicts}");
}

const LINEARIZABLE: &str = "histories_across_processes_are_linearizable";
const ENV_LINEARIZABLE_TABLE: &str = "SESSION_STORE_POSTGRES_LINEARIZABLE_TABLE";

/// The suite's linearizability checker with one worker per process: three
/// processes on one table, their calls' answers explained by one order that
/// keeps real time, round after round.
#[test]
fn histories_across_processes_are_linearizable() {
    use session_store_conformance::linearizability::{CheckerSettings, processes};
    use session_store_core::ManualClock;
    let settings = CheckerSettings::default().rounds(150).workers(3).calls_per_worker(4);
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let rt = runtime();
    let open_at = |table: &str, base| {
        rt.block_on(
            PostgresStore::builder(&url)
                .table(table)
                .clock(ManualClock::new(base).shared())
                .pool_size(2)
                .build(),
        )
        .expect("open the store")
    };
    if let Some((worker, base)) = processes::child_role() {
        let table = std::env::var(ENV_LINEARIZABLE_TABLE).expect("the parent names the table");
        processes::serve_child(&open_at(&table, base), worker, base, &settings).expect("serve the parent");
        return;
    }
    let table = common::unique("linearizable");
    let base = SystemClock.now();
    let store = open_at(&table, base);
    let report = processes::across_processes(
        LINEARIZABLE,
        &[(ENV_LINEARIZABLE_TABLE, &table)],
        &store,
        base,
        &settings,
        true,
    )
    .unwrap_or_else(|failure| panic!("{failure}"));
    eprintln!("PostgreSQL across processes: {report:?}");
    assert_eq!(report.calls, 150 * 3 * 4);
}
