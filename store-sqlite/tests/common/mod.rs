//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use session_store_core::{ManualClock, Record, SessionData, SessionId, Timestamp};
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

pub fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_millis(1_700_000_000_000))
}

pub fn record(now: Timestamp, ttl_ms: u64, n: i64) -> Record {
    let mut data = SessionData::new();
    data.insert("n", &n).unwrap();
    data.insert("user", &"alice").unwrap();
    Record::with_deadline(SessionId::random(), data, now, now + Duration::from_millis(ttl_ms))
}

/// A direct connection to the database, as an operator would open it.
pub fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}
