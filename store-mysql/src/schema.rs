//! The table, its schema version and migrations, and the SQL text of every
//! operation.

use mysql_async::prelude::Queryable;
use session_store_core::{Error, Result};

use crate::pool::{Attempt, Conn};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The table that records each session table's schema version, in the
/// same database.
pub const SCHEMA_TABLE: &str = "session_store_schema";

/// Whether `name` can name a table: ASCII letters, digits and `_`, not
/// starting with a digit, at most 64 bytes (MySQL's limit).
pub(crate) fn valid_table(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The SQL text of every operation on one table.
pub(crate) struct Sql {
    pub(crate) create: String,
    pub(crate) load: String,
    pub(crate) save: String,
    pub(crate) save_if_version: String,
    pub(crate) import_lock: String,
    pub(crate) import_write: String,
    pub(crate) touch: String,
    pub(crate) delete: String,
    pub(crate) rotate_clear: String,
    pub(crate) rotate_move: String,
    pub(crate) purge: String,
    pub(crate) ids: String,
    pub(crate) clear: String,
    pub(crate) owner_sessions: String,
    pub(crate) delete_owner_sessions: String,
}

impl Sql {
    /// The statements for table `t` (a name [`valid_table`] accepted).
    pub(crate) fn new(t: &str) -> Self {
        let t = format!("`{t}`");
        let insert =
            format!("INSERT INTO {t} (id, body, expires_at, version, owner, owner_key) VALUES (?, ?, ?, ?, ?, ?)");
        // ON DUPLICATE KEY UPDATE assigns left to right, each assignment
        // seeing the ones before it: `expires_at` goes last, so every
        // condition reads the stored deadline.
        Self {
            // The insert id tells the three outcomes apart, whatever the
            // connection counts as affected rows: 0 inserted, 1 an expired
            // row replaced, 2 a live row kept (the collision).
            create: format!(
                "{insert} ON DUPLICATE KEY UPDATE \
                 version = IF(expires_at <= ?, LAST_INSERT_ID(1), version + 0 * LAST_INSERT_ID(2)), \
                 body = IF(expires_at <= ?, VALUES(body), body), \
                 owner = IF(expires_at <= ?, VALUES(owner), owner), \
                 owner_key = IF(expires_at <= ?, VALUES(owner_key), owner_key), \
                 expires_at = IF(expires_at <= ?, VALUES(expires_at), expires_at)"
            ),
            load: format!("SELECT body, expires_at, version FROM {t} WHERE id = ? AND expires_at > ?"),
            // The version written comes back as the statement's insert id.
            save: format!(
                "{insert} ON DUPLICATE KEY UPDATE \
                 version = LAST_INSERT_ID(IF(expires_at > ?, version + 1, 1)), \
                 body = VALUES(body), owner = VALUES(owner), owner_key = VALUES(owner_key), \
                 expires_at = VALUES(expires_at)"
            ),
            save_if_version: format!(
                "UPDATE {t} SET body = ?, expires_at = ?, owner = ?, owner_key = ?, version = version + 1 \
                 WHERE id = ? AND version = ? AND expires_at > ?"
            ),
            import_lock: format!("SELECT version, expires_at FROM {t} WHERE id = ? FOR UPDATE"),
            import_write: format!(
                "{insert} ON DUPLICATE KEY UPDATE version = VALUES(version), body = VALUES(body), \
                 owner = VALUES(owner), owner_key = VALUES(owner_key), expires_at = VALUES(expires_at)"
            ),
            // A row that matched says so through the insert id, changed or
            // not (the same deadline again changes no row).
            touch: format!(
                "UPDATE {t} SET expires_at = IF(LAST_INSERT_ID(expires_at IS NOT NULL), ?, expires_at) \
                 WHERE id = ? AND expires_at > ?"
            ),
            delete: format!("DELETE FROM {t} WHERE id = ?"),
            rotate_clear: format!("DELETE FROM {t} WHERE id = ? AND expires_at <= ?"),
            rotate_move: format!("UPDATE {t} SET id = ? WHERE id = ? AND expires_at > ?"),
            // A total order, so that a replica deletes the same rows.
            purge: format!("DELETE FROM {t} WHERE expires_at <= ? ORDER BY expires_at, id LIMIT ?"),
            ids: format!("SELECT id FROM {t} WHERE expires_at > ?"),
            clear: format!("DELETE FROM {t}"),
            owner_sessions: format!("SELECT id FROM {t} WHERE owner_key = ? AND owner = ? AND expires_at > ?"),
            delete_owner_sessions: format!(
                "DELETE FROM {t} WHERE owner_key = ? AND owner = ? AND expires_at > ? AND id <> ?"
            ),
        }
    }
}

/// The table's definition: the 22-character id as bytes (compared exactly,
/// whatever the server's default collation), the encoded body (created
/// time, owner and data), the deadline in Unix milliseconds and the
/// version, and the owner with a fixed-length key to index it by.
fn create_table(t: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{t}` (\
         id VARBINARY(64) NOT NULL, \
         body LONGBLOB NOT NULL, \
         expires_at BIGINT NOT NULL, \
         version BIGINT UNSIGNED NOT NULL, \
         owner BLOB NULL, \
         owner_key BINARY(32) NULL, \
         PRIMARY KEY (id), \
         KEY session_expires (expires_at), \
         KEY session_owner (owner_key, expires_at)\
         ) ENGINE=InnoDB DEFAULT CHARSET=binary"
    )
}

/// Makes the table (or checks the one there), recording its schema
/// version; refuses a table a newer build migrated.
pub(crate) async fn migrate(conn: &Conn, table: &str) -> Result<()> {
    let table = table.to_owned();
    conn.run("migrating the session table", |mut c| {
        let table = table.clone();
        async move {
            c.query_drop(format!(
                "CREATE TABLE IF NOT EXISTS `{SCHEMA_TABLE}` (\
                 table_name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, \
                 version INT UNSIGNED NOT NULL) ENGINE=InnoDB"
            ))
            .await?;
            let stored: Option<u32> = c
                .exec_first(
                    format!("SELECT version FROM `{SCHEMA_TABLE}` WHERE table_name = ?"),
                    (table.as_str(),),
                )
                .await?;
            if let Some(v) = stored
                && v > SCHEMA_VERSION
            {
                return Err(Attempt::Store(Error::config(format!(
                    "the table {table} has schema version {v}, newer than this build's {SCHEMA_VERSION}: \
                     upgrade session-store-mysql"
                ))));
            }
            // Every write must commit on its own.
            let autocommit: Option<u64> = c.query_first("SELECT @@autocommit").await?;
            if autocommit != Some(1) {
                return Err(Attempt::Store(Error::config(
                    "the pool's connections run with autocommit off: the store's writes would not commit \
                     (remove SET autocommit=0 from the pool's setup)",
                )));
            }
            let exists: Option<u64> = c
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                    (table.as_str(),),
                )
                .await?;
            if exists.unwrap_or(0) == 0 {
                // Version 1: the table and both indexes. A table dropped
                // under a running app is made again at the next start.
                c.query_drop(create_table(&table)).await?;
            } else if stored.is_none() {
                // A table of that name this store did not make: another
                // program's sessions, perhaps, which `clear` would empty.
                let columns: Vec<String> = c
                    .exec(
                        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                        (table.as_str(),),
                    )
                    .await?;
                if columns != ["id", "body", "expires_at", "version", "owner", "owner_key"] {
                    return Err(Attempt::Store(Error::config(format!(
                        "the table {table} exists and is not a session-store table (columns {columns:?}): \
                         give this store another table with MysqlStoreBuilder::table"
                    ))));
                }
            }
            c.exec_drop(
                format!(
                    "INSERT INTO `{SCHEMA_TABLE}` (table_name, version) VALUES (?, ?) \
                     ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))"
                ),
                (table.as_str(), SCHEMA_VERSION),
            )
            .await?;
            Ok(())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for good in ["sessions", "app_sessions", "_x", "S1", &"a".repeat(64)] {
            assert!(valid_table(good), "{good}");
        }
        for bad in ["", "1x", "a-b", "a b", "a`b", "sessions;", "é", &"a".repeat(65)] {
            assert!(!valid_table(bad), "{bad}");
        }
    }
}
