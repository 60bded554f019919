//! `import-tower-sessions --from SOURCE --to STORE`: every live session of
//! one of tower-sessions' own stores, into any store of this family, under
//! the same id (the cookie stays valid: visitors stay logged in), with the
//! same data and expiry.
//!
//! The sources, read only, as tower-sessions' stores write them (each
//! record MessagePack-encoded by `rmp_serde` from tower-sessions-core's
//! `Record`: id, data, expiry date):
//!
//! - `sqlite:PATH` (`?table=`, default `tower_sessions`):
//!   tower-sessions-sqlx-store's `SqliteStore`, column `data`;
//! - `postgres://...` (`?schema=`, default `tower_sessions`; `?table=`,
//!   default `session`): its `PostgresStore`, column `data`;
//! - `redis://HOST[:PORT][/DB]` (`?prefix=`, default none):
//!   tower-sessions-redis-store, one string key per session, named by the
//!   id.
//!
//! Each session goes in with [`SessionStore::import`] at version 1, which
//! writes nothing over a session already there: a run again after an
//! interrupted one completes it. It never replaces or deletes a session
//! already imported, so the old app must be stopped first (what it changed
//! or ended afterwards would not follow). tower-sessions keeps no creation
//! time (an imported session's is the time of the import) and no owner.
//! An entry that does not decode is reported by fingerprint and skipped.

use std::collections::HashMap;

use clap::Args;
use serde_json::json;
use session_store_core::{Fingerprint, Record, SessionData, SessionId, SessionStore, Timestamp};
use session_store_tower_sessions::core_014::{to_session_id, to_timestamp};
use tower_sessions_core_014::session::Record as TowerRecord;

use crate::fail::{Exit, Failure};
use crate::open::{Mode, Protection, open_with};
use crate::output::Printer;
use crate::url::StoreUrl;

/// The arguments of `import-tower-sessions`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tower-sessions store to read: sqlite:PATH[?table=T],
    /// postgres://...[?schema=S&table=T] or redis://HOST[:PORT][/DB][?prefix=P].
    #[arg(long)]
    pub from: String,
    /// The store to import into (created when missing).
    #[arg(long)]
    pub to: String,
    /// Write the target with each session under a hash of its id.
    #[arg(long)]
    pub to_hash_ids: bool,
    /// Seal the target's session data with the key ring in the environment
    /// variable VAR.
    #[arg(long, value_name = "VAR")]
    pub to_keys_env: Option<String>,
}

/// A tower-sessions store to read.
#[derive(Debug)]
enum Source {
    Sqlite { path: String, table: String },
    Postgres { url: String, schema: String, table: String },
    Redis { url: String, prefix: String },
}

/// An SQL identifier tower-sessions' stores accept (and that is safe to quote).
fn identifier(what: &str, name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!("{what} {name:?}: letters, digits and _ only"))
    }
}

impl Source {
    fn parse(text: &str) -> Result<Self, String> {
        let shown = crate::url::redact(text);
        let (base, query) = text.split_once('?').unwrap_or((text, ""));
        let mut options: HashMap<String, String> = crate::url::parse_query(query)
            .map_err(|e| format!("{shown}: {e}"))?
            .into_iter()
            .collect();
        let mut take = |key: &str, default: &str| options.remove(key).unwrap_or_else(|| default.to_owned());
        let source = if let Some(rest) = base.strip_prefix("sqlite:") {
            // sqlx's own form too: sqlite://sessions.db, sqlite:///abs.db.
            let path = crate::url::local_path(rest).ok_or_else(|| format!("{shown}: the database path is missing"))?;
            // sqlx's `mode` (rwc...) means nothing to a reader.
            take("mode", "");
            Self::Sqlite {
                path: path.display().to_string(),
                table: identifier("table", &take("table", "tower_sessions"))?,
            }
        } else if base.starts_with("postgres://") || base.starts_with("postgresql://") {
            let schema = identifier("schema", &take("schema", "tower_sessions"))?;
            let table = identifier("table", &take("table", "session"))?;
            // What is left goes to the connection (sslmode, password...).
            let rest: Vec<String> = options.drain().map(|(k, v)| format!("{k}={v}")).collect();
            let url = if rest.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", rest.join("&"))
            };
            return Ok(Self::Postgres { url, schema, table });
        } else if base.starts_with("redis://") {
            Self::Redis {
                url: base.to_owned(),
                prefix: take("prefix", ""),
            }
        } else {
            return Err(format!(
                "{shown}: not a tower-sessions store (sqlite:PATH, postgres://..., redis://...)"
            ));
        };
        if let Some(key) = options.keys().next() {
            return Err(format!("{shown}: unknown option {key:?}"));
        }
        Ok(source)
    }

    /// Every stored entry: its key (for naming it) and its bytes.
    async fn read(&self) -> Result<Vec<(String, Vec<u8>)>, String> {
        match self {
            Self::Sqlite { path, table } => {
                // rusqlite blocks: off the runtime's worker threads.
                let (path, table) = (path.clone(), table.clone());
                tokio::task::spawn_blocking(move || read_sqlite(&path, &table))
                    .await
                    .map_err(|e| format!("reading the SQLite database: {e}"))?
            }
            Self::Postgres { url, schema, table } => {
                use session_store_postgres::tokio_postgres;
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("connecting: {e}"))?;
                tokio::spawn(connection);
                let rows = client
                    .query(&format!("SELECT id, data FROM \"{schema}\".\"{table}\""), &[])
                    .await
                    .map_err(|e| format!("reading \"{schema}\".\"{table}\": {e}"))?;
                Ok(rows
                    .iter()
                    .map(|row| {
                        let id: String = row.try_get(0).unwrap_or_default();
                        let data: Vec<u8> = row.try_get(1).unwrap_or_default();
                        (id, data)
                    })
                    .collect())
            }
            Self::Redis { url, prefix } => {
                let fail = |e: redis::RedisError| format!("Redis: {e}");
                let client = redis::Client::open(url.as_str()).map_err(fail)?;
                let mut conn = client.get_multiplexed_async_connection().await.map_err(fail)?;
                // One node of a cluster holds a share of the keys only.
                let info: String = redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if info.contains("cluster_enabled:1") {
                    return Err("a Redis Cluster: importing from a cluster is not supported yet".to_owned());
                }
                let pattern = format!("{}*", glob_escape(prefix));
                let mut entries = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                        .map_err(fail)?;
                    // Only string keys named by an id (after the prefix).
                    let keys: Vec<Vec<u8>> = keys
                        .into_iter()
                        .filter(|k| {
                            k.strip_prefix(prefix.as_bytes())
                                .and_then(|k| std::str::from_utf8(k).ok())
                                .is_some_and(|k| k.parse::<SessionId>().is_ok())
                        })
                        .collect();
                    if !keys.is_empty() {
                        let mut pipe = redis::pipe();
                        for key in &keys {
                            pipe.cmd("TYPE").arg(key);
                        }
                        let kinds: Vec<String> = pipe.query_async(&mut conn).await.map_err(fail)?;
                        let strings: Vec<&Vec<u8>> = keys
                            .iter()
                            .zip(&kinds)
                            .filter(|(_, kind)| *kind == "string")
                            .map(|(k, _)| k)
                            .collect();
                        if !strings.is_empty() {
                            let mut pipe = redis::pipe();
                            for key in &strings {
                                pipe.cmd("GET").arg(*key);
                            }
                            let values: Vec<Option<Vec<u8>>> = pipe.query_async(&mut conn).await.map_err(fail)?;
                            for (key, value) in strings.into_iter().zip(values) {
                                if let Some(value) = value {
                                    entries.push((String::from_utf8_lossy(key).into_owned(), value));
                                }
                            }
                        }
                    }
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
                Ok(entries)
            }
        }
    }
}

/// Every row of tower-sessions-sqlx-store's SQLite table: its id and data.
fn read_sqlite(path: &str, table: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("opening {path}: {e}"))?;
    let mut stmt = conn
        .prepare(&format!("SELECT id, data FROM \"{table}\""))
        .map_err(|e| format!("reading table {table}: {e}"))?;
    let rows = stmt
        .query_map([], |row| {
            let id: String = row.get::<_, Option<String>>(0)?.unwrap_or_default();
            let data: Vec<u8> = row.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default();
            Ok((id, data))
        })
        .map_err(|e| format!("reading table {table}: {e}"))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| format!("reading table {table}: {e}"))
}

/// `s` with Redis glob characters escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A tower-sessions record as one of ours: the same id and deadline, each
/// value as its JSON text, created now, version 1.
fn convert(record: &TowerRecord, now: Timestamp) -> Record {
    let mut data = SessionData::new();
    for (key, value) in &record.data {
        data.insert_json(key.as_str(), value);
    }
    let mut converted = Record::with_deadline(to_session_id(record.id), data, now, to_timestamp(record.expiry_date));
    converted.version = 1;
    converted
}

pub async fn run(args: &ImportArgs, out: &Printer) -> Result<Exit, Failure> {
    let source = Source::parse(&args.from).map_err(|e| Failure::new(Exit::Usage, None, e))?;
    let to_url = StoreUrl::parse(&args.to).map_err(|e| Failure::new(Exit::Usage, None, e))?;
    let shown_from = crate::url::redact(&args.from);
    let protection = Protection {
        hash_ids: args.to_hash_ids,
        keys_env: args.to_keys_env.clone(),
    };
    // The source first: a wrong source creates no target.
    let entries = source
        .read()
        .await
        .map_err(|e| Failure::new(Exit::Unavailable, None, format!("{shown_from}: {e}")))?;
    let to = open_with(&to_url, Mode::Create, &protection, args.to_hash_ids).await?;
    let now = to.store.clock().now();
    let (mut imported, mut present, mut expired) = (0_u64, 0_u64, 0_u64);
    let mut undecodable: Vec<(Fingerprint, String)> = Vec::new();
    for (key, bytes) in &entries {
        let record = match rmp_serde::from_slice::<TowerRecord>(bytes) {
            Ok(record) => convert(&record, now),
            Err(_) => {
                // Named as the app's log names the session (the id's
                // fingerprint), never by the entry's content.
                let id = key.rsplit(':').next().and_then(|k| k.parse::<SessionId>().ok());
                let fingerprint = id.map_or_else(|| Fingerprint::of_bytes(key.as_bytes()), |id| id.fingerprint());
                undecodable.push((fingerprint, "not a tower-sessions record (MessagePack)".to_owned()));
                continue;
            }
        };
        if !record.is_live_at(now) {
            expired += 1;
            continue;
        }
        match to.store.import(&record).await {
            Ok(true) => imported += 1,
            Ok(false) => present += 1,
            Err(e) => return Err(Failure::store(&to_url, &e)),
        }
    }
    let exit = if undecodable.is_empty() { Exit::Ok } else { Exit::Failed };
    out.result(
        json!({
            "from": shown_from,
            "to": to_url.shown,
            "read": entries.len(),
            "imported": imported,
            "already_there": present,
            "expired": expired,
            "undecodable": undecodable.iter().map(|(f, why)| json!({"fingerprint": f.to_string(), "error": why})).collect::<Vec<_>>(),
        }),
        || {
            let mut text = format!(
                "imported {imported} session{} from {shown_from} into {} ({present} already there, {expired} expired)",
                if imported == 1 { "" } else { "s" },
                to_url.shown
            );
            for (f, why) in &undecodable {
                text.push_str(&format!("\n{f} undecodable: {why}"));
            }
            text
        },
    );
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_their_defaults() {
        match Source::parse("sqlite:./s.db").unwrap() {
            Source::Sqlite { path, table } => assert_eq!((path.as_str(), table.as_str()), ("./s.db", "tower_sessions")),
            other => panic!("{other:?}"),
        }
        match Source::parse("postgres://u:pw@h/db?schema=app&sslmode=disable").unwrap() {
            Source::Postgres { url, schema, table } => {
                assert_eq!(url, "postgres://u:pw@h/db?sslmode=disable");
                assert_eq!((schema.as_str(), table.as_str()), ("app", "session"));
            }
            other => panic!("{other:?}"),
        }
        match Source::parse("redis://h:1/2?prefix=ts:").unwrap() {
            Source::Redis { url, prefix } => assert_eq!((url.as_str(), prefix.as_str()), ("redis://h:1/2", "ts:")),
            other => panic!("{other:?}"),
        }
        assert!(Source::parse("sqlite:s.db?table=x;drop").is_err());
        match Source::parse("sqlite://sessions.db?mode=rwc").unwrap() {
            Source::Sqlite { path, .. } => assert_eq!(path, "sessions.db"),
            other => panic!("{other:?}"),
        }
        match Source::parse("redis://h?prefix=ts%3A").unwrap() {
            Source::Redis { prefix, .. } => assert_eq!(prefix, "ts:"),
            other => panic!("{other:?}"),
        }
        assert!(Source::parse("redis://h?prefix=a&prefix=b").is_err(), "an option twice");
        assert!(Source::parse("file:./dir").is_err());
        assert!(Source::parse("redis://h?cluster=true").is_err());
        let err = Source::parse("mongodb://u:secret@h").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}
