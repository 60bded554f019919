//! Table names, the SQL of every operation, and schema migrations.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use session_store_core::{Error, Result};

/// The table that records each session table's schema version.
pub(crate) const META_TABLE: &str = "session_store_schema";

/// The schema version this library writes.
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// Checks that `name` is a plain identifier: `[A-Za-z_][A-Za-z0-9_]{0,62}`,
/// not reserved by SQLite (`sqlite_*`) nor by this crate.
pub(crate) fn validate_table(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let plain = !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if !plain {
        return Err(Error::config(format!(
            "invalid SQLite table name {name:?}: use 1 to 63 of A-Z a-z 0-9 _, not starting with a digit"
        )));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("sqlite_") || lower == META_TABLE {
        return Err(Error::config(format!(
            "invalid SQLite table name {name:?}: the name is reserved"
        )));
    }
    Ok(())
}

/// The SQL text of every statement, with the (validated) table name in it.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) load: String,
    pub(crate) create: String,
    pub(crate) save: String,
    pub(crate) save_if_version: String,
    pub(crate) import: String,
    pub(crate) touch: String,
    pub(crate) delete: String,
    pub(crate) live_exists: String,
    pub(crate) rename: String,
    pub(crate) purge: String,
    pub(crate) count: String,
    pub(crate) ids: String,
    pub(crate) clear: String,
    pub(crate) owner_sessions: String,
    pub(crate) delete_owner_sessions: String,
}

/// Whether the `id` column holds a session id: 22 characters of the
/// URL-safe base64 alphabet, the last holding the final two bits of 128
/// (so one of `A`, `Q`, `g`, `w`). Exactly the strings
/// [`SessionId`](session_store_core::SessionId) parses.
pub(crate) const IS_SESSION_ID: &str = "typeof(id) = 'text' AND length(CAST(id AS BLOB)) = 22 \
     AND id NOT GLOB '*[^A-Za-z0-9_-]*' AND substr(id, 22) GLOB '[AQgw]'";

impl Sql {
    pub(crate) fn new(table: &str) -> Self {
        let t = format!("\"{table}\"");
        Self {
            load: format!("SELECT data, expires_at, version FROM {t} WHERE id = ?1 AND expires_at > ?2"),
            create: format!(
                "INSERT INTO {t} (id, data, expires_at, version, owner) VALUES (?1, ?2, ?3, 1, ?5) \
                 ON CONFLICT(id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, version = 1, \
                 owner = excluded.owner \
                 WHERE {t}.expires_at <= ?4"
            ),
            save: format!(
                "INSERT INTO {t} (id, data, expires_at, version, owner) VALUES (?1, ?2, ?3, 1, ?5) \
                 ON CONFLICT(id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, \
                 version = CASE WHEN {t}.expires_at > ?4 THEN {t}.version + 1 ELSE 1 END, owner = excluded.owner \
                 RETURNING version"
            ),
            save_if_version: format!(
                "UPDATE {t} SET data = ?2, expires_at = ?3, version = version + 1, owner = ?6 \
                 WHERE id = ?1 AND version = ?4 AND expires_at > ?5"
            ),
            // A migration's write: keeps the given version, unless a live row
            // with the same or a newer one is there.
            import: format!(
                "INSERT INTO {t} (id, data, expires_at, version, owner) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, \
                 version = excluded.version, owner = excluded.owner \
                 WHERE {t}.expires_at <= ?6 OR {t}.version < excluded.version"
            ),
            touch: format!("UPDATE {t} SET expires_at = ?2 WHERE id = ?1 AND expires_at > ?3"),
            delete: format!("DELETE FROM {t} WHERE id = ?1"),
            live_exists: format!("SELECT 1 FROM {t} WHERE id = ?1 AND expires_at > ?2"),
            rename: format!("UPDATE {t} SET id = ?2 WHERE id = ?1 AND expires_at > ?3"),
            purge: format!("DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE expires_at <= ?1 LIMIT ?2)"),
            // Both skip rows whose id is no session id (no visitor can load
            // them), so they always agree; `doctor` reports those rows.
            count: format!("SELECT COUNT(*) FROM {t} WHERE expires_at > ?1 AND {IS_SESSION_ID}"),
            ids: format!("SELECT id FROM {t} WHERE expires_at > ?1 AND {IS_SESSION_ID}"),
            clear: format!("DELETE FROM {t}"),
            owner_sessions: format!("SELECT id FROM {t} WHERE owner = ?1 AND expires_at > ?2"),
            // RETURNING tells live from expired rows; the caller steps it to
            // the end (the commit happens there).
            delete_owner_sessions: format!(
                "DELETE FROM {t} WHERE owner = ?1 AND (?2 IS NULL OR id != ?2) RETURNING expires_at > ?3"
            ),
        }
    }
}

/// The migration from version `i` to `i + 1`, with `{t}` standing for the
/// quoted table name, `{i}` for the quoted deadline index name and `{o}`
/// for the quoted owner index name.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the table and its deadline index.
    "CREATE TABLE IF NOT EXISTS {t} (
         id TEXT PRIMARY KEY NOT NULL,
         data BLOB NOT NULL,
         expires_at INTEGER NOT NULL,
         version INTEGER NOT NULL
     );
     CREATE INDEX IF NOT EXISTS {i} ON {t} (expires_at);",
    // 1 -> 2: the owner index (a partial index: sessions without an owner
    // cost it nothing).
    "ALTER TABLE {t} ADD COLUMN owner TEXT;
     CREATE INDEX IF NOT EXISTS {o} ON {t} (owner) WHERE owner IS NOT NULL;",
];

/// Creates the bookkeeping table and brings `table` to [`SCHEMA_VERSION`],
/// in one `BEGIN IMMEDIATE` transaction so concurrent openers (other
/// processes) migrate exactly once.
pub(crate) fn migrate(conn: &mut Connection, table: &str) -> rusqlite::Result<std::result::Result<(), String>> {
    debug_assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {META_TABLE} (
             table_name TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
             version INTEGER NOT NULL
         )"
    ))?;
    let found: Option<i64> = tx
        .query_row(
            &format!("SELECT version FROM {META_TABLE} WHERE table_name = ?1"),
            [table],
            |row| row.get(0),
        )
        .optional()?;
    let current = found.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Ok(Err(format!(
            "table {table:?} has schema version {current}, newer than this library's {SCHEMA_VERSION}; \
             upgrade session-store-sqlite"
        )));
    }
    if current < 0 {
        return Ok(Err(format!("table {table:?} has an invalid schema version {current}")));
    }
    if current == SCHEMA_VERSION {
        return Ok(Ok(()));
    }
    let quoted_table = format!("\"{table}\"");
    let quoted_index = format!("\"{table}.expires_at\"");
    let quoted_owner_index = format!("\"{table}.owner\"");
    for step in &MIGRATIONS[current as usize..] {
        tx.execute_batch(
            &step
                .replace("{t}", &quoted_table)
                .replace("{i}", &quoted_index)
                .replace("{o}", &quoted_owner_index),
        )?;
    }
    tx.execute(
        &format!(
            "INSERT INTO {META_TABLE} (table_name, version) VALUES (?1, ?2) \
             ON CONFLICT(table_name) DO UPDATE SET version = excluded.version"
        ),
        rusqlite::params![table, SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_store_core::SessionId;

    /// `IS_SESSION_ID` holds for exactly the values `SessionId` parses.
    #[test]
    fn the_id_filter_is_the_parser() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY)").unwrap();
        let mut values: Vec<String> = (0..500).map(|_| SessionId::random().to_string()).collect();
        let id = SessionId::random().to_string();
        for last in ["B", "R", "h", "x", "-", "_", "9", "é"] {
            values.push(format!("{}{last}", &id[..21]));
        }
        values.extend(
            [
                "",
                "short",
                &"A".repeat(23),
                &format!("{}.", &id[..21]),
                &format!("{} ", &id[..21]),
            ]
            .map(String::from),
        );
        values.push(format!("{}*{}", &id[..10], &id[11..]));
        values.push(format!("{}[{}", &id[..10], &id[11..]));
        // SQLite's text functions stop at a NUL.
        values.push(format!("{}\0junk", &id));
        for v in &values {
            c.execute("INSERT OR IGNORE INTO t VALUES (?1)", [v]).unwrap();
        }
        c.execute(
            "INSERT INTO t VALUES (x'41414141414141414141414141414141414141414141')",
            [],
        )
        .unwrap();
        let mut stmt = c.prepare(&format!("SELECT id FROM t WHERE {IS_SESSION_ID}")).unwrap();
        let mut passed: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        let mut parsed: Vec<String> = values
            .iter()
            .filter(|v| v.parse::<SessionId>().is_ok())
            .cloned()
            .collect();
        passed.sort();
        parsed.sort();
        parsed.dedup();
        assert!(parsed.len() >= 500, "random ids parse");
        assert_eq!(passed, parsed);
    }

    #[test]
    fn table_names() {
        for ok in ["sessions", "_x", "S1_2", &"a".repeat(63)] {
            assert!(validate_table(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "x;DROP TABLE y",
            "é",
            &"a".repeat(64),
            "sqlite_master",
            "SQLITE_x",
            META_TABLE,
        ] {
            assert!(validate_table(bad).is_err(), "{bad}");
        }
    }
}
