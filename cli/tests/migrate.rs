//! `migrate`, run as the real binary: a large round trip file -> SQLite ->
//! Redis -> file that keeps every session's data, deadline and version, a
//! second run that copies nothing, and a migration killed halfway that a
//! second run completes.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use session_store_core::SessionStore;
use session_store_file::FileStore;
use session_store_redis::RedisStore;
use session_store_sqlite::SqliteStore;

/// How many sessions the round trip moves (100,000 by default;
/// `SESSION_STORE_CLI_SESSIONS` sets another number).
fn sessions() -> u64 {
    std::env::var("SESSION_STORE_CLI_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn migrate(from: &str, to: &str) -> serde_json::Value {
    let started = Instant::now();
    let run = run(&["--json", "migrate", "--from", from, "--to", to, "--concurrency", "64"]);
    assert_eq!(run.code, 0, "{run:?}");
    let v = run.json();
    eprintln!(
        "migrate {} -> {}: {} in {:.1}s",
        from.split(':').next().unwrap_or(""),
        to.split(':').next().unwrap_or(""),
        v["copied"],
        started.elapsed().as_secs_f64()
    );
    v
}

#[test]
fn round_trip_file_sqlite_redis_file_keeps_every_session() {
    let Some(redis) = redis_url() else { return };
    let n = sessions();
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let expected = seed_file(&tmp.path().join("src"), n, n / 100, 50);
    eprintln!("seeded {n} sessions in {:.1}s", started.elapsed().as_secs_f64());

    let file_a = file_url(&tmp.path().join("src"));
    let sqlite = sqlite_url(&tmp.path().join("sessions.db"));
    let redis = redis_store(&redis);
    let file_b = format!("{}?durability=nosync", file_url(&tmp.path().join("back")));

    for (from, to) in [(&file_a, &sqlite), (&sqlite, &redis), (&redis, &file_b)] {
        let v = migrate(from, to);
        assert_eq!(v["total"], n, "{v}");
        assert_eq!(v["copied"], n, "{v}");
        assert_eq!(v["failed"], 0, "{v}");
    }
    // Idempotent: a second run copies nothing and loses nothing.
    let again = migrate(&sqlite, &redis);
    assert_eq!(
        (again["copied"].as_u64(), again["already_there"].as_u64()),
        (Some(0), Some(n)),
        "{again}"
    );

    runtime().block_on(async {
        let sqlite_store = SqliteStore::open(tmp.path().join("sessions.db")).unwrap();
        assert_holds(&sqlite_store, &expected).await;
        let (server, prefix) = redis.split_once("?prefix=").expect("redis_store adds a prefix");
        let redis_store = RedisStore::builder(server).prefix(prefix).build().await.unwrap();
        assert_holds(&redis_store, &expected).await;
        let back = FileStore::open(tmp.path().join("back")).unwrap();
        assert_holds(&back, &expected).await;
        redis_store.clear().await.unwrap();
    });
}

#[test]
fn a_migration_killed_halfway_completes_on_the_next_run() {
    let n = 20_000;
    let tmp = tempfile::tempdir().unwrap();
    let expected = seed_file(&tmp.path().join("src"), n, 100, 0);
    let from = file_url(&tmp.path().join("src"));
    let db = tmp.path().join("target.db");
    let to = sqlite_url(&db);

    let mut child = Command::new(BIN)
        .args([
            "migrate",
            "--from",
            &from,
            "--to",
            &to,
            "--concurrency",
            "1",
            "--progress",
            "lines",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL) once a few thousand sessions are in.
    let copied_before_kill = runtime().block_on(async {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(Instant::now() < deadline, "the migration copied too little in 120 s");
            assert!(
                child.try_wait().unwrap().is_none(),
                "the migration ended before it was killed"
            );
            if db.exists()
                && let Ok(store) = SqliteStore::open(&db)
                && store.count().await.unwrap_or(0) >= 2_000
            {
                child.kill().unwrap();
                child.wait().unwrap();
                break store.count().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(copied_before_kill < n, "killed after it was done");

    let v = run(&["--json", "migrate", "--from", &from, "--to", &to]);
    assert_eq!(v.code, 0, "{v:?}");
    let v = v.json();
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(
        v["copied"].as_u64().unwrap() + v["already_there"].as_u64().unwrap(),
        n,
        "{v}"
    );
    assert!(v["already_there"].as_u64().unwrap() >= copied_before_kill, "{v}");
    runtime().block_on(async {
        assert_holds(&SqliteStore::open(&db).unwrap(), &expected).await;
    });
}

#[test]
fn a_second_run_copies_what_changed_in_the_source_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let mut expected = seed_file(&src, 200, 0, 0);
    let to = sqlite_url(&tmp.path().join("t.db"));
    let first = migrate(&file_url(&src), &to);
    assert_eq!(first["copied"], 200);
    // The app keeps serving from the source: one session changes, one ends.
    runtime().block_on(async {
        let store = FileStore::open(&src).unwrap();
        expected[0].data.insert("later", &true).unwrap();
        expected[0].version = store.save_if_version(&expected[0]).await.unwrap();
        store.delete(&expected[1].id).await.unwrap();
    });
    let second = migrate(&file_url(&src), &to);
    assert_eq!(
        (second["copied"].as_u64(), second["already_there"].as_u64()),
        (Some(1), Some(198)),
        "{second}"
    );
    runtime().block_on(async {
        let target = SqliteStore::open(tmp.path().join("t.db")).unwrap();
        assert_eq!(target.load(&expected[0].id).await.unwrap().as_ref(), Some(&expected[0]));
        // A session logged out in the source after the first copy is still
        // in the target: a migration copies, it does not delete.
        assert!(target.load(&expected[1].id).await.unwrap().is_some());
    });
}

#[test]
fn to_a_redis_cluster_and_back() {
    let Some(urls) = env_or_skip("SESSION_STORE_REDIS_CLUSTER_URLS") else {
        return;
    };
    let n = 2_000;
    let tmp = tempfile::tempdir().unwrap();
    let expected = seed_file(&tmp.path().join("src"), n, 20, 5);
    let cluster = redis_store(&urls);
    let v = migrate(&file_url(&tmp.path().join("src")), &cluster);
    assert_eq!((v["copied"].as_u64(), v["failed"].as_u64()), (Some(n), Some(0)), "{v}");
    let r = run(&["--json", "count", &cluster]);
    assert_eq!(r.json()["count"], n, "{r:?}");
    let back = sqlite_url(&tmp.path().join("back.db"));
    let v = migrate(&cluster, &back);
    assert_eq!(v["copied"], n, "{v}");
    runtime().block_on(async {
        assert_holds(&SqliteStore::open(tmp.path().join("back.db")).unwrap(), &expected).await;
    });
    let r = run(&["--json", "clear", "--yes", &cluster]);
    assert_eq!(r.json()["cleared"], n, "{r:?}");
}
