//! The conformance suite against the SQLite store.
//!
//! A namespace is a (database file, table) pair in the harness's temporary
//! directory: every fourth namespace starts a new file and the others add a
//! table to it, so the suite checks isolation both between files and
//! between tables of one file. Stores opened on one namespace are separate
//! connections to the same file and table, as separate processes would be.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use session_store_conformance::{Capabilities, Harness, StoreConfig};
use session_store_core::{Error, Result, SessionId, async_trait};
use session_store_sqlite::SqliteStore;

struct SqliteHarness {
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl SqliteHarness {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            next: AtomicUsize::new(0),
        }
    }
}

fn connect(ns: &(PathBuf, String)) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(&ns.0).map_err(|e| Error::backend("sqlite", "opening the database", e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| Error::backend("sqlite", "setting the busy timeout", e))?;
    Ok(conn)
}

#[async_trait]
impl Harness for SqliteHarness {
    type Store = SqliteStore;
    type Namespace = (PathBuf, String);

    fn capabilities(&self) -> Capabilities {
        Capabilities::all().owner_index(true)
    }

    async fn new_namespace(&self) -> Result<(PathBuf, String)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Ok((
            self.dir.path().join(format!("db{}.sqlite", n / 4)),
            format!("sessions_{n}"),
        ))
    }

    async fn open(&self, ns: &(PathBuf, String), config: &StoreConfig) -> Result<SqliteStore> {
        SqliteStore::builder(&ns.0)
            .table(&ns.1)
            .clock(config.clock.clone())
            .max_record_bytes(config.max_record_bytes)
            .open()
    }

    /// Drops the namespace's table (its index goes with it) and its row in
    /// the store's schema bookkeeping, in one transaction; the database
    /// file, shared with other namespaces, stays until the harness's
    /// temporary directory goes.
    async fn teardown(&self, ns: &(PathBuf, String)) -> Result<()> {
        let mut conn = connect(ns)?;
        let tx = conn
            .transaction()
            .map_err(|e| Error::backend("sqlite", "starting the teardown", e))?;
        tx.execute_batch(&format!("DROP TABLE IF EXISTS \"{}\"", ns.1))
            .map_err(|e| Error::backend("sqlite", "dropping the table", e))?;
        let bookkept: bool = tx
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'session_store_schema'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| Error::backend("sqlite", "looking for the schema table", e))?;
        if bookkept {
            tx.execute("DELETE FROM session_store_schema WHERE table_name = ?1", [&ns.1])
                .map_err(|e| Error::backend("sqlite", "forgetting the table's schema version", e))?;
        }
        tx.commit()
            .map_err(|e| Error::backend("sqlite", "committing the teardown", e))
    }

    async fn read_raw(&self, ns: &(PathBuf, String), id: &SessionId) -> Result<Option<Vec<u8>>> {
        use rusqlite::OptionalExtension;
        connect(ns)?
            .query_row(
                &format!("SELECT data FROM \"{}\" WHERE id = ?1", ns.1),
                [id.to_string()],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| Error::backend("sqlite", "reading raw bytes", e))
    }

    async fn write_raw(&self, ns: &(PathBuf, String), id: &SessionId, bytes: &[u8]) -> Result<()> {
        let changed = connect(ns)?
            .execute(
                &format!("UPDATE \"{}\" SET data = ?1 WHERE id = ?2", ns.1),
                rusqlite::params![bytes, id.to_string()],
            )
            .map_err(|e| Error::backend("sqlite", "writing raw bytes", e))?;
        if changed != 1 {
            return Err(Error::backend_msg("sqlite", format!("no record {id} to overwrite")));
        }
        Ok(())
    }

    /// `id`'s data column becomes an integer (a wrong-typed column), and two
    /// live rows are added whose id column holds no valid session id: a
    /// 22-character string outside the alphabet and an integer.
    async fn write_malformed(&self, ns: &(PathBuf, String), id: &SessionId) -> Result<Option<u64>> {
        let conn = connect(ns)?;
        let fail = |e| Error::backend("sqlite", "writing malformed rows", e);
        let changed = conn
            .execute(
                &format!("UPDATE \"{}\" SET data = 42 WHERE id = ?1", ns.1),
                [id.to_string()],
            )
            .map_err(fail)?;
        if changed != 1 {
            return Err(Error::backend_msg("sqlite", format!("no record {id} to break")));
        }
        conn.execute(
            &format!(
                "INSERT INTO \"{}\" (id, data, expires_at, version) VALUES ('not a session id!!!!!!', x'00', ?1, 1), (7, x'00', ?1, 1)",
                ns.1
            ),
            [i64::MAX],
        )
        .map_err(fail)?;
        Ok(Some(2))
    }
}

session_store_conformance::conformance_tests!(SqliteHarness::new());

/// Every property again, with ids hashed and bodies encrypted at rest.
mod at_rest {
    use super::*;

    session_store_conformance::conformance_tests!(session_store_conformance::AtRestHarness::new(SqliteHarness::new()));
}
