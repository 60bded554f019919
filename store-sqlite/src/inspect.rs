//! Inspection of a database for operators: what the `session-store doctor`
//! command reports and repairs.
//!
//! [`inspect`] opens the database read-only (it never creates the file, the
//! table or the schema bookkeeping, as opening a [`SqliteStore`](crate::SqliteStore)
//! does) and reports the table's schema version and every row that does not
//! decode, named by its [`Fingerprint`], never by its id.
//!
//! ```
//! use session_store_sqlite::{SqliteStore, inspect};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("sessions.db");
//! SqliteStore::open(&path)?;
//! let report = inspect::inspect(&path, "sessions")?;
//! assert_eq!(report.schema_version, Some(inspect::SCHEMA_VERSION));
//! assert!(report.is_healthy());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use session_store_core::{Error, Fingerprint, Result, SessionId, Timestamp, raw::codec, system_clock};

use crate::schema::{self, META_TABLE};

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

/// The first bytes of every SQLite database file.
pub const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// What [`inspect`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Report {
    /// The table's schema version as this crate's bookkeeping table records
    /// it; `None` when no store ever created the table in this database.
    pub schema_version: Option<i64>,
    /// Rows in the table (live, expired or undecodable).
    pub rows: u64,
    /// Rows whose deadline has passed (a purge removes them).
    pub expired: u64,
    /// Rows that do not decode.
    pub undecodable: Vec<Undecodable>,
}

impl Report {
    /// Whether the table exists at this crate's schema version and every
    /// row decodes.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        self.schema_version == Some(SCHEMA_VERSION) && self.undecodable.is_empty()
    }
}

/// A row that does not decode.
#[derive(Debug, Clone)]
pub struct Undecodable {
    /// The fingerprint of the row's id ([`SessionId::fingerprint`]), or of
    /// its raw bytes when the stored id is not a valid one.
    pub fingerprint: Fingerprint,
    /// Why it does not decode.
    pub reason: String,
    key: Vec<u8>,
}

/// Whether the file at `path` starts like an SQLite database.
///
/// # Errors
///
/// [`Error::Backend`] when the file cannot be read.
pub fn is_sqlite_file(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut file =
        std::fs::File::open(path).map_err(|e| Error::backend("sqlite", format!("opening {}", path.display()), e))?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(Error::backend("sqlite", format!("reading {}", path.display()), e)),
        }
    }
    Ok(read == head.len() && &head == SQLITE_HEADER)
}

/// The schema version of `table` in the database at `path`, read-only;
/// `None` when no store of this crate created the table there.
///
/// # Errors
///
/// [`Error::Config`] for an invalid table name; [`Error::Backend`] for a
/// file that cannot be opened or is not a database.
pub fn schema_version(path: &Path, table: &str) -> Result<Option<i64>> {
    schema::validate_table(table)?;
    let conn = open_read_only(path)?;
    read_schema_version(&conn, table).map_err(|e| sql_error(path, e))
}

/// Reads the database at `path` and reports on `table`. Changes nothing.
///
/// # Errors
///
/// As [`schema_version`].
pub fn inspect(path: &Path, table: &str) -> Result<Report> {
    schema::validate_table(table)?;
    let conn = open_read_only(path)?;
    let fail = |e| sql_error(path, e);
    let mut report = Report {
        schema_version: read_schema_version(&conn, table).map_err(fail)?,
        ..Report::default()
    };
    if report.schema_version.is_none() {
        return Ok(report);
    }
    let now = system_clock().now().as_millis();
    let mut stmt = conn
        .prepare(&format!("SELECT id, data, expires_at, version FROM \"{table}\""))
        .map_err(fail)?;
    let mut rows = stmt.query([]).map_err(fail)?;
    while let Some(row) = rows.next().map_err(fail)? {
        report.rows += 1;
        let key = match row.get_ref(0).map_err(fail)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
            other => format!("{other:?}").into_bytes(),
        };
        let Some(id) = std::str::from_utf8(&key).ok().and_then(|k| k.parse::<SessionId>().ok()) else {
            report.undecodable.push(Undecodable {
                fingerprint: Fingerprint::of_bytes(&key),
                reason: "the id column does not hold a valid session id".into(),
                key,
            });
            continue;
        };
        match decode(id, row) {
            Ok(expires_at) => {
                if expires_at <= now {
                    report.expired += 1;
                }
            }
            Err(reason) => report.undecodable.push(Undecodable {
                fingerprint: id.fingerprint(),
                reason,
                key,
            }),
        }
    }
    Ok(report)
}

/// Deletes the rows [`inspect`] reported as undecodable, each only if it
/// still does not decode (a row rewritten meanwhile is kept), in one
/// transaction; returns how many it deleted.
///
/// # Errors
///
/// As [`schema_version`], and [`Error::Backend`] when the write fails.
pub fn remove_undecodable(path: &Path, table: &str, rows: &[Undecodable]) -> Result<u64> {
    schema::validate_table(table)?;
    let fail = |e| sql_error(path, e);
    let mut conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(fail)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(fail)?;
    let mut removed = 0;
    {
        let mut select = tx
            .prepare(&format!(
                "SELECT id, data, expires_at, version FROM \"{table}\" WHERE CAST(id AS BLOB) = ?1"
            ))
            .map_err(fail)?;
        let mut delete = tx
            .prepare(&format!("DELETE FROM \"{table}\" WHERE CAST(id AS BLOB) = ?1"))
            .map_err(fail)?;
        for row in rows {
            let still_bad = {
                let mut found = select.query(params![row.key]).map_err(fail)?;
                match found.next().map_err(fail)? {
                    None => false,
                    Some(r) => match std::str::from_utf8(&row.key)
                        .ok()
                        .and_then(|k| k.parse::<SessionId>().ok())
                    {
                        None => true,
                        Some(id) => decode(id, r).is_err(),
                    },
                }
            };
            if still_bad {
                removed += delete.execute(params![row.key]).map_err(fail)? as u64;
            }
        }
    }
    tx.commit().map_err(fail)?;
    Ok(removed)
}

/// Decodes one row (`id, data, expires_at, version`); its deadline, or why
/// it does not decode.
fn decode(id: SessionId, row: &rusqlite::Row<'_>) -> std::result::Result<i64, String> {
    let data = match row.get_ref(1) {
        Ok(ValueRef::Blob(b) | ValueRef::Text(b)) => b,
        Ok(other) => return Err(format!("the data column holds {:?}", other.data_type())),
        Err(e) => return Err(e.to_string()),
    };
    let Ok(ValueRef::Integer(expires_at)) = row.get_ref(2) else {
        return Err("the expires_at column does not hold an integer".into());
    };
    let version = match row.get_ref(3) {
        Ok(ValueRef::Integer(v)) if v >= 0 => v as u64,
        _ => return Err("the version column does not hold a non-negative integer".into()),
    };
    match codec::decode_body(id, data, Timestamp::from_millis(expires_at), version) {
        Ok(_) => Ok(expires_at),
        Err(Error::Decode { reason, .. }) => Err(reason),
        Err(e) => Err(e.to_string()),
    }
}

fn open_read_only(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(Error::config(format!("{} is not a file", path.display())));
    }
    if !is_sqlite_file(path)? {
        return Err(Error::config(format!("{} is not an SQLite database", path.display())));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| sql_error(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| sql_error(path, e))?;
    Ok(conn)
}

fn read_schema_version(conn: &Connection, table: &str) -> rusqlite::Result<Option<i64>> {
    let meta: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [META_TABLE],
            |row| row.get(0),
        )
        .optional()?;
    if meta.is_none() {
        return Ok(None);
    }
    conn.query_row(
        &format!("SELECT version FROM {META_TABLE} WHERE table_name = ?1"),
        [table],
        |row| row.get(0),
    )
    .optional()
}

fn sql_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::backend("sqlite", format!("SQLite: inspecting {}", path.display()), e)
}
