//! A full disk: every write either is durable when it returns `Ok`, or
//! returns an error and changes nothing.
//!
//! The child (this test binary run again) writes under a file-size limit of
//! 1 MiB, which the WAL reaches long before its automatic checkpoint (about
//! 4 MiB): see `session_store_conformance::disk_full`.

use session_store_conformance::disk_full;
use session_store_sqlite::SqliteStore;

const TEST: &str = "a_full_disk_fails_writes_and_loses_no_acknowledged_one";
const ENV_DB: &str = "SESSION_STORE_SQLITE_DISK_FULL_DB";

#[test]
fn a_full_disk_fails_writes_and_loses_no_acknowledged_one() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    if let Ok(db) = std::env::var(ENV_DB) {
        let store = SqliteStore::open(&db).unwrap();
        // Values of 1 to 12 KB: overflow pages, so the WAL fills fast.
        rt.block_on(disk_full::write_until_full(&store, 1_000..=12_000));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let transcript = disk_full::run_under_file_size_limit(TEST, ENV_DB, db.to_str().unwrap(), 1_024);
    // Space is back: the database holds exactly what was acknowledged.
    let store = SqliteStore::open(&db).unwrap();
    let report = rt.block_on(disk_full::check_acknowledged(&store, &transcript));
    println!("disk full: {report:?}");
}
