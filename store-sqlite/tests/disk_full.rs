//! A full disk: every write either is durable when it returns `Ok`, or
//! returns an error and changes nothing.
//!
//! The child (this test binary run again) writes under a file-size limit of
//! 192 KiB, which the database itself outgrows (records of up to 40 KB):
//! see `session_store_conformance::disk_full`. A WAL that merely reaches
//! the limit is truncated and the write made again, so that alone never
//! fills the disk for good (the second test).

use session_store_conformance::disk_full;
use session_store_sqlite::SqliteStore;

const TEST: &str = "a_full_disk_fails_writes_and_loses_no_acknowledged_one";
const ENV_DB: &str = "SESSION_STORE_SQLITE_DISK_FULL_DB";

#[test]
fn a_full_disk_fails_writes_and_loses_no_acknowledged_one() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    if let Ok(db) = std::env::var(ENV_DB) {
        let store = SqliteStore::open(&db).unwrap();
        // Values of 1 to 40 KB: overflow pages, so the database outgrows the limit.
        rt.block_on(disk_full::write_until_full(&store, 1_000..=40_000));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let transcript = disk_full::run_under_file_size_limit(TEST, ENV_DB, db.to_str().unwrap(), 192);
    // Space is back: the database holds exactly what was acknowledged.
    let store = SqliteStore::open(&db).unwrap();
    let report = rt.block_on(disk_full::check_acknowledged(&store, &transcript));
    println!("disk full: {report:?}");
}

const SMALL: &str = "a_wal_never_wedges_a_disk_smaller_than_itself";
const ENV_SMALL_DB: &str = "SESSION_STORE_SQLITE_SMALL_DISK_DB";
/// Updates of one small record: each commit adds a page to the WAL, so
/// under a 1 MiB limit the WAL reaches it after about 250, long before
/// SQLite's automatic checkpoint (1,000 pages, 4 MiB) would reset it.
const UPDATES: i64 = 1_500;

/// One visitor's counter on a disk smaller than SQLite's WAL grows before
/// its automatic checkpoint: every update succeeds (the writer truncates
/// the WAL when a write runs out of space), and the last one is what a
/// restart finds.
#[test]
fn a_wal_never_wedges_a_disk_smaller_than_itself() {
    use session_store_conformance::fixtures::RecordBuilder;
    use session_store_core::{Clock, SessionId, SessionStore, SystemClock};
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    if let Ok(spec) = std::env::var(ENV_SMALL_DB) {
        let (db, id) = spec.split_once('#').unwrap();
        let id: SessionId = id.parse().unwrap();
        let store = SqliteStore::open(db).unwrap();
        rt.block_on(async {
            let mut r = RecordBuilder::new(SystemClock.now())
                .ttl(std::time::Duration::from_secs(3_600))
                .n(0)
                .build();
            r.id = id;
            r.version = store.create(&r).await.unwrap();
            let mut failed = 0;
            for n in 1..=UPDATES {
                r.data.insert("n", &n).unwrap();
                match store.save_if_version(&r).await {
                    Ok(v) => r.version = v,
                    Err(e) => {
                        failed += 1;
                        println!("ERR update {n}: {}", e.chain());
                    }
                }
            }
            println!("\nFAILED {failed}");
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let id = SessionId::random();
    let said = disk_full::run_under_file_size_limit(SMALL, ENV_SMALL_DB, &format!("{}#{id}", db.display()), 1_024);
    assert!(said.contains("FAILED 0"), "every update succeeds: {said}");
    let store = SqliteStore::open(&db).unwrap();
    let r = rt.block_on(store.load(&id)).unwrap().expect("the record");
    assert_eq!(r.data.get::<i64>("n").unwrap(), Some(UPDATES));
    let wal = std::fs::metadata(dir.path().join("sessions.db-wal")).map_or(0, |m| m.len());
    assert!(wal <= 1_024 * 1_024, "the WAL stayed within the limit: {wal} bytes");
}
