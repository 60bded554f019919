//! What only the SQLite store has: purge batching, table names, schema
//! versions and pragmas, corrupt columns, the reader pool, runtimes, locks.
//! The store contract itself is checked by the conformance suite
//! (`tests/conformance.rs`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Db, clock, raw, record};
use session_store_core::{Clock, Error, SessionId, SessionStore};
use session_store_sqlite::{Blocking, SqliteStore, Synchronous};

const MINUTE: u64 = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_in_batches_counts_and_spares_live() {
    // Batches growing with time (the default) and fixed batches of 7.
    for batch_time in [Duration::from_millis(50), Duration::ZERO] {
        purge_counts_and_spares_live(batch_time).await;
    }
}

async fn purge_counts_and_spares_live(batch_time: Duration) {
    let db = Db::new();
    let clock = clock();
    let store = db
        .builder(&clock)
        .purge_batch(7)
        .purge_batch_time(batch_time)
        .open()
        .unwrap();
    let mut live = Vec::new();
    for i in 0..100 {
        let r = record(clock.now(), if i % 4 == 0 { MINUTE } else { 10 }, i);
        store.create(&r).await.unwrap();
        if i % 4 == 0 {
            live.push(r.id);
        }
    }
    assert_eq!(store.count().await.unwrap(), 100);
    clock.advance(Duration::from_millis(10));
    assert_eq!(store.count().await.unwrap(), 25);
    assert_eq!(store.purge_expired().await.unwrap(), 75);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    let mut ids = store
        .ids()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.stored())
        .collect::<Vec<_>>();
    ids.sort();
    live.sort();
    assert_eq!(ids, live);
    let rows: i64 = raw(&db.path)
        .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_table_names_are_refused() {
    let db = Db::new();
    let clock = clock();
    for bad in [
        "",
        "x\"; DROP TABLE sessions; --",
        "1x",
        "sqlite_master",
        "session_store_schema",
        "a.b",
    ] {
        let err = db.builder(&clock).table(bad).open().unwrap_err();
        assert!(err.to_string().contains("table name"), "{bad}: {err}");
        assert!(
            matches!(err, Error::Config { .. }) && !err.is_transient(),
            "{bad}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_reopen_and_records_schema_version() {
    let db = Db::new();
    let clock = clock();
    let r = record(clock.now(), MINUTE, 1);
    {
        let store = db.builder(&clock).synchronous(Synchronous::Full).open().unwrap();
        store.create(&r).await.unwrap();
    }
    let store = db.builder(&clock).open().unwrap();
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().data, r.data);
    let conn = raw(&db.path);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row(
            "SELECT version FROM session_store_schema WHERE table_name = 'sessions'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 2);
    // A table from a newer library is refused, not misread.
    conn.execute("UPDATE session_store_schema SET version = 99", [])
        .unwrap();
    drop(store);
    let err = db.builder(&clock).open().unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_table_migrates_to_the_owner_index_keeping_its_records() {
    let db = Db::new();
    let clock = clock();
    let old = record(clock.now(), MINUTE, 1);
    {
        // The 0.1 schema, as that release left it, with one record.
        let conn = raw(&db.path);
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE session_store_schema (table_name TEXT PRIMARY KEY NOT NULL COLLATE NOCASE, version INTEGER NOT NULL);
             INSERT INTO session_store_schema VALUES ('sessions', 1);
             CREATE TABLE \"sessions\" (id TEXT PRIMARY KEY NOT NULL, data BLOB NOT NULL, expires_at INTEGER NOT NULL, version INTEGER NOT NULL);
             CREATE INDEX \"sessions.expires_at\" ON \"sessions\" (expires_at);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO \"sessions\" VALUES (?1, ?2, ?3, 1)",
            rusqlite::params![
                old.id.to_string(),
                session_store_core::raw::codec::encode_body(&old).unwrap(),
                old.expires_at.as_millis()
            ],
        )
        .unwrap();
    }
    let store = db.builder(&clock).open().unwrap();
    assert_eq!(store.load(&old.id).await.unwrap().unwrap().data, old.data);
    let mut owned = record(clock.now(), MINUTE, 2);
    owned.owner = Some("alice".into());
    store.create(&owned).await.unwrap();
    assert_eq!(
        store
            .owner_sessions("alice")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>(),
        vec![owned.id]
    );
    let plan: String = raw(&db.path)
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM \"sessions\" WHERE owner = 'alice' AND expires_at > 0",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(
        plan.contains("sessions.owner"),
        "the owner lookup uses its index: {plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_fail_alone_and_never_panic() {
    let db = Db::new();
    let clock = clock();
    let store = db.builder(&clock).open().unwrap();
    let good = record(clock.now(), MINUTE, 1);
    store.create(&good).await.unwrap();
    let conn = raw(&db.path);
    let cases: [(&str, rusqlite::types::Value); 6] = [
        ("data", rusqlite::types::Value::Blob(vec![0xff, 1, 2, 3])),
        ("data", rusqlite::types::Value::Blob(Vec::new())),
        ("data", rusqlite::types::Value::Null),
        ("data", rusqlite::types::Value::Integer(5)),
        ("expires_at", rusqlite::types::Value::Text("soon".into())),
        ("version", rusqlite::types::Value::Real(1.5)),
    ];
    for (column, value) in cases {
        let bad = record(clock.now(), MINUTE, 2);
        store.create(&bad).await.unwrap();
        let sql = format!("UPDATE sessions SET {column} = ?1 WHERE id = ?2");
        match conn.execute(&sql, rusqlite::params![value, bad.id.to_string()]) {
            Ok(1) => {}
            Ok(n) => panic!("{n} rows"),
            Err(e) => {
                // NOT NULL refuses a NULL: nothing to test for that value.
                assert!(e.to_string().contains("NOT NULL"), "{e}");
                store.delete(&bad.id).await.unwrap();
                continue;
            }
        }
        let err = store.load(&bad.id).await.unwrap_err();
        assert!(err.is_decode(), "{column}: {err}");
        assert!(
            err.to_string().contains(&bad.id.fingerprint().to_string()),
            "names the fingerprint: {err}"
        );
        assert!(!err.to_string().contains(&bad.id.to_string()), "never the id: {err}");
        assert!(store.load(&good.id).await.unwrap().is_some(), "others unaffected");
        store.delete(&bad.id).await.unwrap();
    }
    // A garbage id in the table is no record: ids() and count() skip it and
    // still see every valid row; never a panic.
    conn.execute(
        "INSERT INTO sessions (id, data, expires_at, version) VALUES ('../etc', x'00', 9223372036854775807, 1)",
        [],
    )
    .unwrap();
    assert_eq!(
        store
            .ids()
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>(),
        vec![good.id]
    );
    assert_eq!(
        store.count().await.unwrap(),
        1,
        "count and ids agree: the garbage row is no session"
    );
}

#[test]
fn current_thread_runtime_and_spawn_blocking_mode() {
    let db = Db::new();
    let clock = clock();
    for blocking in [Blocking::Auto, Blocking::SpawnBlocking] {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = db.builder(&clock).blocking(blocking).open().unwrap();
        rt.block_on(async {
            let r = record(clock.now(), MINUTE, 1);
            store.create(&r).await.unwrap();
            assert_eq!(store.load(&r.id).await.unwrap().unwrap().data, r.data);
            assert!(store.rotate(&r.id, &SessionId::random()).await.unwrap());
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_no_lost_or_torn_records() {
    let db = Db::new();
    let clock = clock();
    let store = Arc::new(db.builder(&clock).readers(3).open().unwrap());
    let mut tasks = Vec::new();
    for t in 0..8i64 {
        let store = store.clone();
        let now = clock.now();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..50 {
                let mut r = record(now, MINUTE, t * 1000 + i);
                r.data.insert("copy", &(t * 1000 + i)).unwrap();
                store.create(&r).await.unwrap();
                let back = store.load(&r.id).await.unwrap().unwrap();
                assert_eq!(
                    back.data.get::<i64>("n").unwrap(),
                    back.data.get::<i64>("copy").unwrap()
                );
                ids.push(r.id);
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(store.count().await.unwrap(), 400);
    for id in all {
        assert!(store.load(&id).await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_run_beside_a_held_write_lock_and_writes_time_out_cleanly() {
    let db = Db::new();
    let clock = clock();
    let store = db
        .builder(&clock)
        .busy_timeout(Duration::from_millis(300))
        .open()
        .unwrap();
    let r = record(clock.now(), MINUTE, 1);
    store.create(&r).await.unwrap();
    // Another process holds the write lock.
    let mut other = raw(&db.path);
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    tx.execute("UPDATE sessions SET version = version", []).unwrap();
    // WAL readers do not wait for it.
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().version, 1);
    assert_eq!(store.count().await.unwrap(), 1);
    // A write waits for the busy timeout, then reports a timeout, not "database is locked".
    let started = std::time::Instant::now();
    let err = store.save(&r).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(err.is_transient());
    assert!(started.elapsed() >= Duration::from_millis(300));
    drop(tx);
    assert_eq!(
        store.save(&r).await.unwrap(),
        2,
        "works again once the lock is released"
    );
}

/// A save tries first on the calling thread with the busy timeout off; when
/// another process holds the write lock it must neither fail nor sleep on
/// the worker, but wait under `block_in_place` and succeed once the lock
/// is released. One worker thread: a save that slept on it would stall
/// every other task.
#[test]
fn a_save_waiting_for_another_process_does_not_stall_a_one_worker_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let db = Db::new();
    let clock = clock();
    // A busy timeout far past the watchdog's patience: a save that slept in
    // SQLite's busy handler on the worker would outlast the watchdog.
    let store = db.builder(&clock).busy_timeout(Duration::from_secs(30)).open().unwrap();
    let r = record(clock.now(), MINUTE, 1);
    rt.block_on(store.create(&r)).unwrap();
    let path = db.path.clone();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let (ran, ticked) = std::sync::mpsc::channel::<()>();
    // The other process: holds the write lock until the runtime has shown
    // it still runs tasks, or for 3 s if it does not.
    let other = std::thread::spawn(move || {
        let mut conn = raw(&path);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("UPDATE sessions SET version = version", []).unwrap();
        locked.send(()).unwrap();
        let stalled = ticked.recv_timeout(Duration::from_secs(3)).is_err();
        tx.commit().unwrap();
        stalled
    });
    is_locked.recv().unwrap();
    let version = rt.block_on(async {
        let saving = tokio::spawn({
            let (store, r) = (store.clone(), r.clone());
            async move { store.save(&r).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!saving.is_finished(), "the save waits for the lock");
        // No tokio timer here: a stalled worker would not drive it.
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            let _ = ran.send(());
        });
        saving.await.unwrap().unwrap()
    });
    assert!(
        !other.join().unwrap(),
        "the runtime stalled behind a save waiting for the lock"
    );
    assert_eq!(version, 2);
    // Loads and saves on the calling thread again, the busy timeout restored.
    assert_eq!(rt.block_on(store.load(&r.id)).unwrap().unwrap().version, 2);
    assert_eq!(rt.block_on(store.save(&r)).unwrap(), 3);
}

#[test]
fn every_blocking_mode_loads_and_saves() {
    let db = Db::new();
    let clock = clock();
    for blocking in [Blocking::Auto, Blocking::InPlace, Blocking::SpawnBlocking] {
        for synchronous in [Synchronous::Normal, Synchronous::Full] {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            let store = db
                .builder(&clock)
                .blocking(blocking)
                .synchronous(synchronous)
                .open()
                .unwrap();
            rt.block_on(async {
                let r = record(clock.now(), MINUTE, 7);
                store.create(&r).await.unwrap();
                assert_eq!(store.save(&r).await.unwrap(), 2, "{blocking:?} {synchronous:?}");
                assert_eq!(store.load(&r.id).await.unwrap().unwrap().version, 2);
                assert!(store.load(&SessionId::random()).await.unwrap().is_none());
            });
        }
    }
}

#[test]
fn a_file_that_is_not_a_database_is_an_error() {
    let db = Db::new();
    std::fs::write(&db.path, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(&db.path).unwrap_err();
    // Damaged, not down: permanent (a 500, not a 503), naming the backend.
    assert!(matches!(err, Error::Corrupt { backend: "sqlite", .. }), "{err}");
    assert!(!err.is_transient(), "{err}");
    // Missing directories are created (owner-only, see tests/bounds.rs); a
    // path through a file cannot be.
    let through_a_file = db.path.join("sub").join("sessions.db");
    assert!(matches!(SqliteStore::open(through_a_file), Err(Error::Backend { .. })));
}
