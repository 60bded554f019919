//! `doctor`: checks a store's layout, schema, permissions, temporary files
//! and records, and with `--fix` removes what cannot be read.
//!
//! - file: [`session_store_file::inspect`] (the directory is read without
//!   opening a store, whose start-up sweep would hide stray temporary files).
//! - SQLite: [`session_store_sqlite::inspect`] (read-only), and the modes of
//!   the database file and its `-wal`/`-shm` companions.
//! - Redis: raw commands on the server, or on every master of a cluster
//!   (`CLUSTER NODES`): the store's key layout, the `d`/`e`/`v` hash fields
//!   decoded with the core codec, TTLs, and the eviction policy. Over TLS
//!   with a private CA (`ca=`) only the store's own calls are checked; the
//!   report says so.

use std::path::Path;

use redis::AsyncCommands;
use serde_json::json;
use session_store_core::{Fingerprint, SessionId, SessionStore as _, Timestamp, raw::codec};

use crate::fail::{Exit, Failure};
use crate::open::{Mode, open};
use crate::output::Printer;
use crate::url::{Kind, StoreUrl};

/// One line of the report.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
    undecodable: Vec<(Fingerprint, String)>,
    fixed: Vec<String>,
}

impl Report {
    fn check(&mut self, name: &'static str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            ok,
            detail: detail.into(),
        });
    }
    fn problems(&self) -> usize {
        self.checks.iter().filter(|c| !c.ok).count()
    }
}

pub async fn run(url: &StoreUrl, fix: bool, out: &Printer) -> Result<Exit, Failure> {
    let mut report = Report::default();
    crate::open::check_local(url, Mode::Existing)?;
    match &url.kind {
        Kind::File { dir, .. } => file(url, dir, fix, &mut report)?,
        Kind::Sqlite { path, table } => sqlite(url, path, table, fix, &mut report)?,
        Kind::Redis { cluster, prefix, .. } => redis_checks(url, *cluster, prefix, fix, &mut report).await?,
        Kind::Postgres { .. } => postgres(url, fix, &mut report).await?,
        Kind::Mysql { .. } => mysql(url, fix, &mut report).await?,
    }
    let problems = report.problems();
    out.result(
        json!({
            "store": url.shown,
            "backend": url.backend(),
            "healthy": problems == 0,
            "problems": problems,
            "checks": report.checks.iter().map(|c| json!({"check": c.name, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
            "undecodable": report.undecodable.iter().map(|(f, why)| json!({"fingerprint": f.to_string(), "error": why})).collect::<Vec<_>>(),
            "fixed": report.fixed,
        }),
        || {
            let mut text = format!("{} ({})", url.shown, url.backend());
            for c in &report.checks {
                text.push_str(&format!("\n{:<7} {}: {}", if c.ok { "ok" } else { "PROBLEM" }, c.name, c.detail));
            }
            for (f, why) in &report.undecodable {
                text.push_str(&format!("\n        undecodable session {f}: {why}"));
            }
            for f in &report.fixed {
                text.push_str(&format!("\nfixed   {f}"));
            }
            text.push_str(&match problems {
                0 => "\nhealthy".to_owned(),
                n => format!("\n{n} problem{}", if n == 1 { "" } else { "s" }),
            });
            text
        },
    );
    Ok(if problems == 0 { Exit::Ok } else { Exit::Problems })
}

fn unavailable(url: &StoreUrl, e: &session_store_core::Error) -> Failure {
    Failure::new(Exit::Unavailable, Some(url), e.chain())
}

fn file(url: &StoreUrl, dir: &Path, fix: bool, report: &mut Report) -> Result<(), Failure> {
    use session_store_file::inspect;
    if !dir.exists() {
        return Err(Failure::new(
            Exit::Unavailable,
            Some(url),
            format!("the directory {} does not exist", dir.display()),
        ));
    }
    let mut found = inspect::inspect(dir).map_err(|e| unavailable(url, &e))?;
    if fix {
        let mut removed = 0;
        for bad in &found.undecodable {
            match inspect::remove_undecodable(dir, bad) {
                Ok(true) => removed += 1,
                Ok(false) => {}
                // One that cannot go (a directory with entries): still
                // reported below, the others are removed.
                Err(e) if e.is_decode() => {}
                Err(e) => return Err(Failure::store(url, &e)),
            }
        }
        if removed > 0 {
            report
                .fixed
                .push(format!("removed {removed} undecodable session file(s)"));
        }
        let tmp = inspect::remove_orphaned_temporary_files(dir).map_err(|e| Failure::store(url, &e))?;
        if tmp > 0 {
            report.fixed.push(format!("removed {tmp} orphaned temporary file(s)"));
        }
        found = inspect::inspect(dir).map_err(|e| unavailable(url, &e))?;
    }
    report.check(
        "layout",
        found.unexpected.is_empty(),
        if found.unexpected.is_empty() {
            format!("{} shard directories, {} session files", found.shards, found.records)
        } else {
            format!(
                "{} entries that are not part of a file store: {}",
                found.unexpected.len(),
                found
                    .unexpected
                    .iter()
                    .take(5)
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    );
    report.check(
        "permissions",
        found.permissions.is_empty(),
        if found.permissions.is_empty() {
            "owner only".to_owned()
        } else {
            format!(
                "open to others: {}",
                found
                    .permissions
                    .iter()
                    .take(5)
                    .map(|(p, m)| format!("{p} ({m:o})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    );
    report.check(
        "temporary files",
        found.temporary.is_empty(),
        if found.temporary.is_empty() {
            "none".to_owned()
        } else {
            format!(
                "{} left by interrupted writes (shards {}); --fix removes those whose writer is gone",
                found.temporary.len(),
                found.temporary.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            )
        },
    );
    report.check(
        "expired",
        true,
        format!("{} expired session files (purge removes them)", found.expired),
    );
    records_check(
        report,
        found
            .undecodable
            .iter()
            .map(|u| (u.fingerprint, u.reason.clone()))
            .collect(),
    );
    Ok(())
}

fn records_check(report: &mut Report, undecodable: Vec<(Fingerprint, String)>) {
    report.check(
        "records",
        undecodable.is_empty(),
        if undecodable.is_empty() {
            "every record decodes".to_owned()
        } else {
            format!("{} undecodable (--fix removes them)", undecodable.len())
        },
    );
    report.undecodable = undecodable;
}

fn sqlite(url: &StoreUrl, path: &Path, table: &str, fix: bool, report: &mut Report) -> Result<(), Failure> {
    use session_store_sqlite::inspect;
    if !path.exists() {
        return Err(Failure::new(
            Exit::Unavailable,
            Some(url),
            format!("the database {} does not exist", path.display()),
        ));
    }
    let mut found = inspect::inspect(path, table).map_err(|e| unavailable(url, &e))?;
    if fix && !found.undecodable.is_empty() {
        let n = inspect::remove_undecodable(path, table, &found.undecodable).map_err(|e| Failure::store(url, &e))?;
        report.fixed.push(format!("removed {n} undecodable row(s)"));
        found = inspect::inspect(path, table).map_err(|e| unavailable(url, &e))?;
    }
    report.check(
        "schema",
        found.schema_version == Some(inspect::SCHEMA_VERSION),
        match found.schema_version {
            Some(v) if v == inspect::SCHEMA_VERSION => format!("table {table:?} at schema version {v}"),
            Some(v) => format!(
                "table {table:?} at schema version {v}, this build writes {} (opening a store migrates an older one)",
                inspect::SCHEMA_VERSION
            ),
            None => format!("no session table {table:?} in this database"),
        },
    );
    let mut open_modes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Some(mode) = mode_of(Path::new(&p))
            && mode & 0o077 != 0
        {
            open_modes.push(format!("{} ({mode:o})", Path::new(&p).display()));
        }
    }
    report.check(
        "permissions",
        open_modes.is_empty(),
        if open_modes.is_empty() {
            "owner only".to_owned()
        } else {
            format!("open to others: {}", open_modes.join(", "))
        },
    );
    report.check(
        "expired",
        true,
        format!("{} of {} rows expired (purge removes them)", found.expired, found.rows),
    );
    records_check(
        report,
        found
            .undecodable
            .iter()
            .map(|u| (u.fingerprint, u.reason.clone()))
            .collect(),
    );
    Ok(())
}

#[cfg(unix)]
fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn mode_of(_: &Path) -> Option<u32> {
    None
}

/// Escapes Redis glob characters so `SCAN MATCH` takes the prefix literally.
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

/// Why the hash under a store key does not decode, if it does not.
fn redis_record_problem(id: SessionId, fields: &[Option<Vec<u8>>]) -> Option<String> {
    let [Some(d), Some(e), Some(v)] = fields else {
        return Some("the hash lacks one of the fields d, e, v".into());
    };
    let parse = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| s.parse::<i64>().ok());
    let Some(e) = parse(e) else {
        return Some("the deadline field e is not a decimal integer".into());
    };
    let Some(v) = parse(v).filter(|v| *v >= 0) else {
        return Some("the version field v is not a decimal integer".into());
    };
    codec::decode_body(id, d, Timestamp::from_millis(e), v as u64)
        .err()
        .map(|err| match err {
            session_store_core::Error::Decode { reason, .. } => reason,
            other => other.to_string(),
        })
}

/// The `host:port` of every master that `CLUSTER NODES` lists as healthy.
fn cluster_masters(nodes: &str) -> Vec<String> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, addr, flags) = (fields.next()?, fields.next()?, fields.next()?);
            let is_master = flags.split(',').any(|f| f == "master");
            let failing = flags.split(',').any(|f| f == "fail" || f == "noaddr");
            // `ip:port@cport[,hostname]`
            let addr = addr.split(['@', ',']).next()?;
            (is_master && !failing && !addr.starts_with(':')).then(|| addr.to_owned())
        })
        .collect()
}

/// `seed` (scheme, credentials, options) pointed at `addr` instead.
fn node_url(seed: &str, addr: &str) -> String {
    let Some(scheme_end) = seed.find("://") else {
        return seed.to_owned();
    };
    let rest = &seed[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let userinfo = authority.rfind('@').map_or("", |at| &authority[..=at]);
    format!("{}{userinfo}{addr}{}", &seed[..scheme_end + 3], &rest[authority_end..])
}

async fn redis_checks(
    url: &StoreUrl,
    cluster: bool,
    prefix: &str,
    fix: bool,
    report: &mut Report,
) -> Result<(), Failure> {
    let opened = open(url, Mode::Existing).await?;
    let live = opened.store.count().await.map_err(|e| Failure::store(url, &e))?;
    report.check(
        "connection",
        true,
        format!("{live} live sessions under prefix {prefix:?}"),
    );
    let Kind::Redis { urls, ca, .. } = &url.kind else {
        return Ok(());
    };
    if ca.is_some() {
        report.check(
            "records",
            true,
            "not inspected: raw inspection over TLS with a private CA (ca=) is not implemented",
        );
        return Ok(());
    }
    if urls[0].to_ascii_lowercase().starts_with("redis+sentinel://") {
        report.check(
            "records",
            true,
            "not inspected: raw inspection behind Sentinel is not implemented (give the master's redis:// URL)",
        );
        return Ok(());
    }
    let failed = |e: redis::RedisError| Failure::new(Exit::Failed, Some(url), format!("Redis: {e}"));
    // Every node to scan: the server, or each master of the cluster.
    let nodes = if cluster {
        let client = redis::Client::open(urls[0].as_str()).map_err(failed)?;
        let mut seed = client.get_multiplexed_async_connection().await.map_err(failed)?;
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut seed)
            .await
            .map_err(failed)?;
        let masters = cluster_masters(&text);
        if masters.is_empty() {
            return Err(Failure::new(Exit::Failed, Some(url), "CLUSTER NODES lists no master"));
        }
        masters.iter().map(|addr| node_url(&urls[0], addr)).collect()
    } else {
        vec![urls[0].clone()]
    };

    let pattern = format!("{}{{*}}", glob_escape(prefix));
    let mut keys = 0u64;
    let mut no_ttl = 0u64;
    let mut bad: Vec<(Fingerprint, String, Vec<u8>)> = Vec::new();
    let mut policies = Vec::new();
    let mut conns = Vec::new();
    for node in &nodes {
        let client = redis::Client::open(node.as_str()).map_err(failed)?;
        let mut conn = client.get_multiplexed_async_connection().await.map_err(failed)?;
        let policy: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        policies.push(policy.get(1).cloned());
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(failed)?;
            // Two round trips per batch, not three per key: the type and
            // TTL of every key of this store's shape, then the fields of
            // the hashes among them.
            let ours: Vec<(SessionId, Vec<u8>)> = batch
                .into_iter()
                .filter_map(|key| {
                    let id = key
                        .strip_prefix(prefix.as_bytes())
                        .and_then(|k| k.strip_prefix(b"{"))
                        .and_then(|k| k.strip_suffix(b"}"))
                        .and_then(|k| std::str::from_utf8(k).ok())
                        .and_then(|k| k.parse::<SessionId>().ok())?;
                    Some((id, key))
                })
                .collect();
            if ours.is_empty() {
                cursor = next;
                if cursor == 0 {
                    break;
                }
                continue;
            }
            let mut pipe = redis::pipe();
            for (_, key) in &ours {
                pipe.cmd("TYPE").arg(key).cmd("PTTL").arg(key);
            }
            let kinds: Vec<redis::Value> = pipe.query_async(&mut conn).await.map_err(failed)?;
            let mut hashes = Vec::new();
            for ((id, key), pair) in ours.into_iter().zip(kinds.chunks(2)) {
                let parse_failed =
                    |e: redis::ParsingError| Failure::new(Exit::Failed, Some(url), format!("Redis: {e}"));
                let kind: String = redis::from_redis_value(pair[0].clone()).map_err(parse_failed)?;
                let ttl: i64 = redis::from_redis_value(pair[1].clone()).map_err(parse_failed)?;
                if kind == "none" {
                    continue; // gone since the scan
                }
                keys += 1;
                if ttl == -1 {
                    no_ttl += 1;
                }
                if kind == "hash" {
                    hashes.push((id, key));
                } else {
                    bad.push((id.fingerprint(), format!("the key holds a {kind}, not a hash"), key));
                }
            }
            if !hashes.is_empty() {
                let mut pipe = redis::pipe();
                for (_, key) in &hashes {
                    pipe.cmd("HMGET").arg(key).arg("d").arg("e").arg("v");
                }
                let fields: Vec<Vec<Option<Vec<u8>>>> = pipe.query_async(&mut conn).await.map_err(failed)?;
                for ((id, key), fields) in hashes.into_iter().zip(fields) {
                    if fields.iter().all(Option::is_none) {
                        keys -= 1; // expired or deleted since the first round trip
                        continue;
                    }
                    if let Some(why) = redis_record_problem(id, &fields) {
                        bad.push((id.fingerprint(), why, key));
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        conns.push(conn);
    }
    match policies.iter().flatten().find(|p| p.starts_with("allkeys-")) {
        Some(p) => report.check(
            "eviction",
            false,
            format!(
                "maxmemory-policy is {p}: Redis may evict live sessions under memory pressure \
                 (use noeviction or volatile-*)"
            ),
        ),
        None => match policies.iter().flatten().next() {
            Some(p) => report.check("eviction", true, format!("maxmemory-policy is {p}")),
            None => report.check(
                "eviction",
                true,
                "CONFIG GET is not allowed here: eviction policy not checked",
            ),
        },
    }
    if fix && !bad.is_empty() {
        // On the node that holds the key (the others answer MOVED).
        let mut removed = 0;
        let mut still = Vec::new();
        for (fingerprint, why, key) in bad.drain(..) {
            let mut gone = false;
            for conn in &mut conns {
                let n: u64 = conn.del(&key).await.unwrap_or(0);
                if n > 0 {
                    gone = true;
                    removed += n;
                    break;
                }
            }
            if !gone {
                still.push((fingerprint, why, key));
            }
        }
        bad = still;
        report.fixed.push(format!("removed {removed} undecodable key(s)"));
    }
    report.check(
        "layout",
        true,
        format!("{keys} keys of this store's shape ({prefix}{{<id>}})"),
    );
    report.check(
        "expiry",
        no_ttl == 0,
        if no_ttl == 0 {
            "every key has a TTL".to_owned()
        } else {
            format!("{no_ttl} keys have no TTL: Redis never drops them (written by something else?)")
        },
    );
    records_check(report, bad.into_iter().map(|(f, why, _)| (f, why)).collect());
    report.check(
        "not checked",
        true,
        "schema and permissions have no meaning on Redis; the server's persistence is not inspected",
    );
    Ok(())
}

/// PostgreSQL: the store opens (so the schema is at this build's version,
/// migrated if older, refused if newer, and a table dropped behind its
/// back made again), every row decodes, and every row's id is a session
/// id; `--fix` deletes the rows that fail either.
async fn postgres(url: &StoreUrl, fix: bool, report: &mut Report) -> Result<(), Failure> {
    let store = crate::open::postgres_store(url, session_store_core::DEFAULT_MAX_RECORD_BYTES).await?;
    report.check("schema", true, "the table is at this build's schema version");
    let mut bad = postgres_problems(url, &store).await?;
    if fix && !bad.is_empty() {
        let failed = |e: session_store_core::Error| Failure::new(Exit::Failed, Some(url), e.chain());
        let mut removed = store.remove_malformed_rows().await.map_err(failed)?;
        for handle in bad.iter().filter_map(|(handle, ..)| handle.as_ref()) {
            // Only if it still does not decode: a row rewritten meanwhile stays.
            if matches!(store.load_listed(handle).await, Err(e) if e.is_decode()) {
                store.delete_listed(handle).await.map_err(failed)?;
                removed += 1;
            }
        }
        report.fixed.push(format!("removed {removed} undecodable row(s)"));
        bad = postgres_problems(url, &store).await?;
    }
    records_check(report, bad.into_iter().map(|(_, f, why)| (f, why)).collect());
    Ok(())
}

/// MySQL: the store opens (so the table is there, at a schema version
/// this build reads), and every live row decodes; `--fix` deletes the rows
/// that do not.
async fn mysql(url: &StoreUrl, fix: bool, report: &mut Report) -> Result<(), Failure> {
    let store = crate::open::mysql_store(url, session_store_core::DEFAULT_MAX_RECORD_BYTES).await?;
    report.check("schema", true, "the table is at this build's schema version");
    let mut bad = undecodable(url, &store).await?;
    if fix && !bad.is_empty() {
        let failed = |e: session_store_core::Error| Failure::new(Exit::Failed, Some(url), e.chain());
        let mut removed = 0;
        for (handle, ..) in &bad {
            // Only if it still does not decode: a row rewritten meanwhile stays.
            if matches!(store.load_listed(handle).await, Err(e) if e.is_decode()) {
                store.delete_listed(handle).await.map_err(failed)?;
                removed += 1;
            }
        }
        report.fixed.push(format!("removed {removed} undecodable row(s)"));
        bad = undecodable(url, &store).await?;
    }
    records_check(report, bad.into_iter().map(|(_, f, why)| (f, why)).collect());
    Ok(())
}

/// Every live record of `store` that does not decode, with its listing handle.
async fn undecodable(
    url: &StoreUrl,
    store: &dyn session_store_core::SessionStore,
) -> Result<Vec<(session_store_core::ListingHandle, Fingerprint, String)>, Failure> {
    let failed = |e: session_store_core::Error| Failure::new(Exit::Failed, Some(url), e.chain());
    let mut bad = Vec::new();
    for handle in store.ids().await.map_err(failed)? {
        match store.load_listed(&handle).await {
            Ok(_) => {}
            Err(e) if e.is_decode() => bad.push((handle, handle.fingerprint(), decode_reason(&e))),
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(bad)
}

/// Every live row that does not decode (with its listing handle) and every
/// row whose id is no session id (which has none).
async fn postgres_problems(
    url: &StoreUrl,
    store: &session_store_postgres::PostgresStore,
) -> Result<Vec<(Option<session_store_core::ListingHandle>, Fingerprint, String)>, Failure> {
    let failed = |e: session_store_core::Error| Failure::new(Exit::Failed, Some(url), e.chain());
    let mut bad = Vec::new();
    for handle in store.ids().await.map_err(failed)? {
        match store.load_listed(&handle).await {
            Ok(_) => {}
            Err(e) if e.is_decode() => bad.push((Some(handle), handle.fingerprint(), decode_reason(&e))),
            Err(e) => return Err(failed(e)),
        }
    }
    for fingerprint in store.malformed_rows().await.map_err(failed)? {
        bad.push((
            None,
            fingerprint,
            "the id column does not hold a valid session id".to_owned(),
        ));
    }
    Ok(bad)
}

/// The reason of a decode error, without the `Error`'s own wording.
fn decode_reason(e: &session_store_core::Error) -> String {
    match e {
        session_store_core::Error::Decode { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_and_their_urls() {
        let nodes = "a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                     b 127.0.0.1:7001@17001,host master - 0 0 2 connected 5461-10922\n\
                     c 127.0.0.1:7002@17002 slave a 0 0 1 connected\n\
                     d 127.0.0.1:7003@17003 master,fail - 0 0 3 connected\n";
        assert_eq!(cluster_masters(nodes), ["127.0.0.1:7000", "127.0.0.1:7001"]);
        assert_eq!(
            node_url("redis://:pw@10.0.0.1:6379/?x=1", "h:7001"),
            "redis://:pw@h:7001/?x=1"
        );
        assert_eq!(node_url("rediss://10.0.0.1", "h:7001"), "rediss://h:7001");
    }
}
