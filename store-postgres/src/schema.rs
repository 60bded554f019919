//! Names, the SQL of every operation, and schema migrations.

use session_store_core::{Error, Result};
use tokio_postgres::Client;

/// The table that records each session table's schema version (in the
/// session table's schema).
pub(crate) const META_TABLE: &str = "session_store_schema";

/// The schema version this library writes.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// The longest table name: PostgreSQL keeps 63 bytes of a name, and the
/// index names add a suffix of up to 11 bytes.
pub(crate) const MAX_TABLE_LEN: usize = 48;

/// The key of the advisory lock every migration takes ("sessions" in ASCII),
/// so that concurrent openers (other processes) migrate one after another.
const MIGRATION_LOCK: i64 = 0x7365_7373_696f_6e73;

/// Checks that `name` is a plain identifier: `[A-Za-z_][A-Za-z0-9_]*`, at
/// most `max` bytes, not reserved by PostgreSQL (`pg_*`) nor by this crate.
pub(crate) fn validate_name(what: &str, name: &str, max: usize) -> Result<()> {
    let bytes = name.as_bytes();
    let plain = !bytes.is_empty()
        && bytes.len() <= max
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if !plain {
        return Err(Error::config(format!(
            "invalid PostgreSQL {what} name {name:?}: use 1 to {max} of A-Z a-z 0-9 _, not starting with a digit"
        )));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("pg_") || lower == META_TABLE || lower == "information_schema" {
        return Err(Error::config(format!(
            "invalid PostgreSQL {what} name {name:?}: the name is reserved"
        )));
    }
    Ok(())
}

/// Where a store's rows live: an optional schema and a table, both
/// validated, always quoted in SQL (so their case is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    pub(crate) schema: Option<String>,
    pub(crate) table: String,
}

impl Names {
    pub(crate) fn new(schema: Option<String>, table: String) -> Result<Self> {
        if let Some(schema) = &schema {
            validate_name("schema", schema, 63)?;
        }
        validate_name("table", &table, MAX_TABLE_LEN)?;
        Ok(Self { schema, table })
    }

    /// `"schema".` or nothing (the connection's `search_path` decides).
    fn prefix(&self) -> String {
        self.schema.as_ref().map_or_else(String::new, |s| format!("\"{s}\"."))
    }

    /// The quoted, qualified table name.
    pub(crate) fn table(&self) -> String {
        format!("{}\"{}\"", self.prefix(), self.table)
    }

    /// The quoted, qualified name of the table's index `what`
    /// (`expires_at` or `owner`).
    fn index(&self, what: &str) -> String {
        format!("{}\"{}_{what}\"", self.prefix(), self.table)
    }

    /// The quoted, qualified bookkeeping table.
    fn meta(&self) -> String {
        format!("{}{META_TABLE}", self.prefix())
    }
}

/// The SQL text of every statement, with the (validated) table name in it.
/// Every statement passes the store clock's time as a parameter; none asks
/// the server's `now()`.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) load: String,
    pub(crate) create: String,
    pub(crate) save: String,
    pub(crate) save_if_version: String,
    pub(crate) import: String,
    pub(crate) touch: String,
    pub(crate) delete: String,
    pub(crate) rotate: String,
    pub(crate) purge: String,
    pub(crate) count: String,
    pub(crate) ids: String,
    pub(crate) malformed: String,
    pub(crate) remove_malformed: String,
    pub(crate) clear: String,
    pub(crate) owner_sessions: String,
    pub(crate) delete_owner_sessions: String,
}

/// What a session id looks like in the id column: 22 characters of the
/// URL-safe base64 alphabet, the last holding the final two bits of 128
/// (so one of `A`, `Q`, `g`, `w`). Exactly the strings
/// [`SessionId`](session_store_core::SessionId) parses.
pub(crate) const ID_PATTERN: &str = "^[A-Za-z0-9_-]{21}[AQgw]$";

impl Sql {
    pub(crate) fn new(names: &Names) -> Self {
        let t = names.table();
        Self {
            load: format!("SELECT body, expires_at, version FROM {t} WHERE id = $1::text AND expires_at > $2::bigint"),
            // Replaces an expired row only: the WHERE of DO UPDATE keeps a
            // live one, and then no row is affected (a collision).
            create: format!(
                "INSERT INTO {t} AS t (id, body, expires_at, version, owner) \
                 VALUES ($1::text, $2::bytea, $3::bigint, 1, $5::text) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at, \
                 version = 1, owner = excluded.owner \
                 WHERE t.expires_at <= $4::bigint"
            ),
            save: format!(
                "INSERT INTO {t} AS t (id, body, expires_at, version, owner) \
                 VALUES ($1::text, $2::bytea, $3::bigint, 1, $5::text) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at, \
                 version = CASE WHEN t.expires_at > $4::bigint THEN t.version + 1 ELSE 1 END, \
                 owner = excluded.owner \
                 RETURNING version"
            ),
            save_if_version: format!(
                "UPDATE {t} SET body = $2::bytea, expires_at = $3::bigint, version = version + 1, owner = $6::text \
                 WHERE id = $1::text AND version = $4::bigint AND expires_at > $5::bigint"
            ),
            // One statement: inserts, or replaces an expired row or a live
            // one of an older version; a live row of the same or a newer
            // version stays, and then no row is affected.
            import: format!(
                "INSERT INTO {t} AS t (id, body, expires_at, version, owner) \
                 VALUES ($1::text, $2::bytea, $3::bigint, $4::bigint, $6::text) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at, \
                 version = excluded.version, owner = excluded.owner \
                 WHERE t.expires_at <= $5::bigint OR t.version < excluded.version"
            ),
            touch: format!("UPDATE {t} SET expires_at = $2::bigint WHERE id = $1::text AND expires_at > $3::bigint"),
            delete: format!("DELETE FROM {t} WHERE id = $1::text"),
            // One statement: the old row is deleted only while no live row
            // is under the new id (both checked on the statement's
            // snapshot), and re-inserted under the new id, replacing an
            // expired row there. Should a live row appear under the new id
            // between the snapshot and the insert (a concurrent create of
            // the same fresh id), the insert does nothing and the guard
            // column divides by zero, which fails, and so rolls back, the
            // whole statement: the old row is never lost.
            rotate: format!(
                "WITH old AS ( \
                     DELETE FROM {t} WHERE id = $1::text AND expires_at > $3::bigint \
                     AND NOT EXISTS (SELECT 1 FROM {t} WHERE id = $2::text AND expires_at > $3::bigint) \
                     RETURNING body, expires_at, version, owner \
                 ), moved AS ( \
                     INSERT INTO {t} AS t (id, body, expires_at, version, owner) \
                     SELECT $2::text, body, expires_at, version, owner FROM old \
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at, \
                     version = excluded.version, owner = excluded.owner \
                     WHERE t.expires_at <= $3::bigint \
                     RETURNING 1 \
                 ) \
                 SELECT EXISTS (SELECT 1 FROM {t} WHERE id = $2::text AND expires_at > $3::bigint), \
                        (SELECT count(*) FROM old), \
                        1 / (1 + (SELECT count(*) FROM moved) - (SELECT count(*) FROM old))"
            ),
            // One batch: rows found on the expiry index and deleted by
            // their tuple id. A row a concurrent writer replaced meanwhile
            // (a create or save of an expired id) is not deleted: the
            // DELETE waits for that writer, then re-checks its conditions
            // on the row's newest version, whose tuple id and deadline
            // differ. No row lock is taken beforehand (`FOR UPDATE` would
            // write every row twice).
            purge: format!(
                "DELETE FROM {t} WHERE ctid = ANY(ARRAY( \
                     SELECT ctid FROM {t} WHERE expires_at <= $1::bigint LIMIT $2::bigint)) \
                 AND expires_at <= $1::bigint"
            ),
            // Both skip rows whose id is no session id (no visitor can load
            // them), so they always agree; `doctor` reports those rows.
            count: format!("SELECT count(*) FROM {t} WHERE expires_at > $1::bigint AND id ~ '{ID_PATTERN}'"),
            ids: format!("SELECT id FROM {t} WHERE expires_at > $1::bigint AND id ~ '{ID_PATTERN}'"),
            malformed: format!("SELECT id FROM {t} WHERE id !~ '{ID_PATTERN}'"),
            remove_malformed: format!("DELETE FROM {t} WHERE id !~ '{ID_PATTERN}'"),
            clear: format!("DELETE FROM {t}"),
            owner_sessions: format!("SELECT id FROM {t} WHERE owner = $1::text AND expires_at > $2::bigint"),
            delete_owner_sessions: format!(
                "WITH gone AS ( \
                     DELETE FROM {t} WHERE owner = $1::text AND ($2::text IS NULL OR id <> $2::text) \
                     RETURNING expires_at \
                 ) \
                 SELECT count(*) FILTER (WHERE expires_at > $3::bigint) FROM gone"
            ),
        }
    }
}

/// The migration from version `i` to `i + 1` (each step idempotent: `IF
/// NOT EXISTS`, so running it again makes only what is missing), with `{t}` standing for the
/// qualified table name, `{i}` for the deadline index name, `{o}` for the
/// owner index name, `{unlogged}` for `UNLOGGED` or nothing and
/// `{compression}` for ` COMPRESSION lz4` where the server has it (bodies
/// over about 2 KB are compressed; lz4 costs a fraction of the default
/// pglz's time) or nothing.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the table, its deadline index and its owner index (partial:
    // sessions without an owner cost it nothing). Ids and owners compare
    // bytewise (`COLLATE "C"`): faster than a locale, and exact.
    "CREATE {unlogged} TABLE IF NOT EXISTS {t} (
         id text COLLATE \"C\" PRIMARY KEY NOT NULL,
         body bytea{compression} NOT NULL,
         expires_at bigint NOT NULL,
         version bigint NOT NULL,
         owner text COLLATE \"C\"
     );
     CREATE INDEX IF NOT EXISTS {i} ON {t} (expires_at);
     CREATE INDEX IF NOT EXISTS {o} ON {t} (owner) WHERE owner IS NOT NULL;",
];

/// What [`migrate`] found wrong that no retry mends.
pub(crate) type Refusal = String;

/// Creates the schema (if named) and the bookkeeping table, and brings the
/// session table to [`SCHEMA_VERSION`], in one transaction under an
/// advisory lock, so concurrent openers migrate exactly once. Checks that
/// an existing table's persistence (logged or not) is the one asked for.
pub(crate) async fn migrate(
    client: &mut Client,
    names: &Names,
    unlogged: bool,
) -> std::result::Result<std::result::Result<(), Refusal>, tokio_postgres::Error> {
    debug_assert_eq!(MIGRATIONS.len() as i32, SCHEMA_VERSION);
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    if let Some(schema) = &names.schema {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (
             table_name text COLLATE \"C\" PRIMARY KEY NOT NULL,
             version integer NOT NULL
         )",
        names.meta()
    ))
    .await?;
    let found = tx
        .query_opt(
            &format!("SELECT version FROM {} WHERE table_name = $1", names.meta()),
            &[&names.table],
        )
        .await?;
    let mut current: i32 = found.map_or(0, |row| row.get(0));
    if current > 0 && current <= SCHEMA_VERSION {
        // The record may outlive what it describes (a table or an index
        // dropped by hand, a restore of part of a database): what is
        // missing is made again, since every step is idempotent.
        let complete: bool = tx
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL",
                &[&names.table(), &names.index("expires_at"), &names.index("owner")],
            )
            .await?
            .get(0);
        if !complete {
            tracing::warn!(
                table = %names.table,
                recorded = current,
                "the schema record names a session table or index that is missing: making it again"
            );
            current = 0;
        }
    }
    if current > SCHEMA_VERSION {
        return Ok(Err(format!(
            "table {:?} has schema version {current}, newer than this library's {SCHEMA_VERSION}; \
             upgrade session-store-postgres",
            names.table
        )));
    }
    if current < 0 {
        return Ok(Err(format!(
            "table {:?} has an invalid schema version {current}",
            names.table
        )));
    }
    if current < SCHEMA_VERSION {
        // lz4 is a value of this setting on PostgreSQL 14 and later built with it.
        let lz4: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_settings \
                 WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals))",
                &[],
            )
            .await?
            .get(0);
        let table = names.table();
        // Unqualified: an index lives in its table's schema.
        let index = format!("\"{}_expires_at\"", names.table);
        let owner_index = format!("\"{}_owner\"", names.table);
        for step in &MIGRATIONS[current as usize..] {
            tx.batch_execute(
                &step
                    .replace("{unlogged}", if unlogged { "UNLOGGED" } else { "" })
                    .replace("{compression}", if lz4 { " COMPRESSION lz4" } else { "" })
                    .replace("{t}", &table)
                    .replace("{i}", &index)
                    .replace("{o}", &owner_index),
            )
            .await?;
        }
        tx.execute(
            &format!(
                "INSERT INTO {} (table_name, version) VALUES ($1, $2) \
                 ON CONFLICT (table_name) DO UPDATE SET version = excluded.version",
                names.meta()
            ),
            &[&names.table, &SCHEMA_VERSION],
        )
        .await?;
    }
    // 'u' for an unlogged table, 'p' for a permanent one.
    let persistence: i8 = tx
        .query_one(
            "SELECT relpersistence FROM pg_class WHERE oid = to_regclass($1)",
            &[&names.table()],
        )
        .await?
        .get(0);
    let is_unlogged = persistence == b'u' as i8;
    if is_unlogged != unlogged {
        return Ok(Err(format!(
            "table {:?} exists {}, but the store was opened with unlogged({unlogged}); \
             change it with ALTER TABLE ... SET {} (which rewrites the table) or open it as it is",
            names.table,
            if is_unlogged { "UNLOGGED" } else { "logged" },
            if unlogged { "UNLOGGED" } else { "LOGGED" },
        )));
    }
    tx.commit().await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["sessions", "_x", "S1_2", &"a".repeat(MAX_TABLE_LEN)] {
            assert!(validate_name("table", ok, MAX_TABLE_LEN).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "x;DROP TABLE y",
            "é",
            &"a".repeat(MAX_TABLE_LEN + 1),
            "pg_class",
            "PG_x",
            META_TABLE,
        ] {
            assert!(validate_name("table", bad, MAX_TABLE_LEN).is_err(), "{bad}");
        }
        assert!(Names::new(Some("a\"; --".into()), "t".into()).is_err());
        let n = Names::new(Some("app".into()), "Sessions".into()).unwrap();
        assert_eq!(n.table(), "\"app\".\"Sessions\"");
        assert_eq!(n.meta(), "\"app\".session_store_schema");
        let n = Names::new(None, "s".into()).unwrap();
        assert_eq!(n.table(), "\"s\"");
    }
}
