//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use session_store_conformance::fixtures::RecordBuilder;
use session_store_core::{ManualClock, Record, Timestamp};
use session_store_sqlite::{SqliteStore, SqliteStoreBuilder};

/// A temporary directory holding one database file.
pub struct Db {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Db {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sessions.db");
        Self { dir, path }
    }

    pub fn builder(&self, clock: &ManualClock) -> SqliteStoreBuilder {
        SqliteStore::builder(&self.path).clock(clock.shared())
    }
}

#[allow(unused_imports)] // not every test binary including this module uses it
pub use session_store_conformance::fixtures::start_clock as clock;

/// A record created at `now`, live for `ttl_ms`, marked `n` (and
/// `"user": "alice"`).
pub fn record(now: Timestamp, ttl_ms: u64, n: i64) -> Record {
    RecordBuilder::new(now).ttl_ms(ttl_ms).n(n).build()
}

/// A direct connection to the database, as an operator would open it.
pub fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}
