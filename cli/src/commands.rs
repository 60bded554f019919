//! `count`, `purge`, `list`, `show`, `delete` and `clear`.

use std::io::{BufRead, IsTerminal, Write};

use futures::StreamExt;
use serde_json::{Value, json};
use session_store_core::{Record, SessionId};

use crate::fail::{Exit, Failure};
use crate::open::{Mode, Opened, open};
use crate::output::{Printer, rfc3339, time_json};
use crate::url::StoreUrl;

/// How many loads `list` and fingerprint lookups keep in flight.
const IN_FLIGHT: usize = 32;

pub async fn count(url: &StoreUrl, out: &Printer) -> Result<Exit, Failure> {
    let s = open(url, Mode::Existing).await?;
    let n = s.store.count().await.map_err(|e| Failure::store(url, &e))?;
    out.result(json!({ "store": url.shown, "count": n }), || n.to_string());
    Ok(Exit::Ok)
}

pub async fn purge(url: &StoreUrl, out: &Printer) -> Result<Exit, Failure> {
    let s = open(url, Mode::Existing).await?;
    let n = s.store.purge_expired().await.map_err(|e| Failure::store(url, &e))?;
    out.result(json!({ "store": url.shown, "purged": n }), || {
        format!("purged {n} expired session{}", plural(n))
    });
    Ok(Exit::Ok)
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn record_json(r: &Record, show_id: bool) -> Value {
    let mut v = json!({
        "fingerprint": r.id.fingerprint().to_string(),
        "created": time_json(r.created_at),
        "expires": time_json(r.expires_at),
        "owner": r.owner,
        "bytes": r.data.byte_size(),
        "keys": r.data.len(),
        "version": r.version,
    });
    if show_id {
        v["id"] = Value::String(r.id.to_string());
    }
    v
}

pub async fn list(url: &StoreUrl, show_ids: bool, limit: Option<usize>, out: &Printer) -> Result<Exit, Failure> {
    let s = open(url, Mode::Existing).await?;
    let mut ids = s.store.ids().await.map_err(|e| Failure::store(url, &e))?;
    ids.sort_unstable_by_key(|id| id.as_u128());
    if let Some(limit) = limit {
        ids.truncate(limit);
    }
    let store = &s.store;
    let loaded: Vec<(SessionId, session_store_core::Result<Option<Record>>)> =
        futures::stream::iter(ids.into_iter().map(|id| async move { (id, store.load(&id).await) }))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
    let mut records = Vec::new();
    let mut broken = Vec::new();
    for (id, result) in loaded {
        match result {
            Ok(Some(r)) => records.push(r),
            Ok(None) => {} // expired or deleted since it was listed
            Err(e) if e.is_decode() => broken.push((id, e.chain())),
            Err(e) => return Err(Failure::store(url, &e)),
        }
    }
    records.sort_by_key(|r| (r.created_at, r.id.as_u128()));
    let exit = if broken.is_empty() { Exit::Ok } else { Exit::Failed };
    out.result(
        json!({
            "store": url.shown,
            "sessions": records.iter().map(|r| record_json(r, show_ids)).collect::<Vec<_>>(),
            "undecodable": broken.iter().map(|(id, why)| json!({
                "fingerprint": id.fingerprint().to_string(), "error": why,
            })).collect::<Vec<_>>(),
        }),
        || {
            let mut text = String::new();
            let id_col = if show_ids {
                format!(" {:<22}", "ID")
            } else {
                String::new()
            };
            text.push_str(&format!(
                "{:<8}{id_col} {:<24} {:<24} {:>7} {:>8}  OWNER",
                "SESSION", "CREATED", "EXPIRES", "VERSION", "BYTES"
            ));
            for r in &records {
                let id_col = if show_ids { format!(" {}", r.id) } else { String::new() };
                text.push_str(&format!(
                    "\n{}{id_col} {:<24} {:<24} {:>7} {:>8}  {}",
                    r.id.fingerprint(),
                    rfc3339(r.created_at),
                    rfc3339(r.expires_at),
                    r.version,
                    r.data.byte_size(),
                    r.owner.as_deref().unwrap_or("-"),
                ));
            }
            for (id, why) in &broken {
                text.push_str(&format!("\n{} undecodable: {why}", id.fingerprint()));
            }
            text.push_str(&format!("\n{} session{}", records.len(), plural(records.len() as u64)));
            text
        },
    );
    Ok(exit)
}

/// The ids an argument names: a full id, or the fingerprint `list` shows.
async fn resolve(s: &Opened, arg: &str) -> Result<Vec<SessionId>, Failure> {
    if let Ok(id) = arg.parse::<SessionId>() {
        return Ok(vec![id]);
    }
    let is_fingerprint = arg.len() == 8 && arg.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_fingerprint {
        // Never echo it: it may be a mistyped credential.
        return Err(Failure::new(
            Exit::Usage,
            None,
            "a session must be given as its id (22 characters of URL-safe base64) \
             or its fingerprint (8 lowercase hex characters, as `list` shows)",
        ));
    }
    let ids = s.store.ids().await.map_err(|e| Failure::store(&s.url, &e))?;
    Ok(ids
        .into_iter()
        .filter(|id| id.fingerprint().to_string() == arg)
        .collect())
}

async fn resolve_one(s: &Opened, arg: &str) -> Result<SessionId, Failure> {
    let ids = resolve(s, arg).await?;
    match ids.as_slice() {
        [id] => Ok(*id),
        [] => Err(Failure::new(
            Exit::NotFound,
            Some(&s.url),
            format!("no live session {}", shown_arg(arg)),
        )),
        _ => Err(Failure::new(
            Exit::Usage,
            Some(&s.url),
            format!(
                "{} live sessions have the fingerprint {arg}: give the full id",
                ids.len()
            ),
        )),
    }
}

/// How an argument is named in messages: a fingerprint as is, an id by its
/// fingerprint.
fn shown_arg(arg: &str) -> String {
    match arg.parse::<SessionId>() {
        Ok(id) => id.fingerprint().to_string(),
        Err(_) => arg.to_owned(),
    }
}

pub async fn show(url: &StoreUrl, arg: &str, out: &Printer) -> Result<Exit, Failure> {
    let s = open(url, Mode::Existing).await?;
    let id = resolve_one(&s, arg).await?;
    let record = s
        .store
        .load(&id)
        .await
        .map_err(|e| Failure::store(url, &e))?
        .ok_or_else(|| {
            Failure::new(
                Exit::NotFound,
                Some(url),
                format!("no live session {}", id.fingerprint()),
            )
        })?;
    let data: serde_json::Map<String, Value> = record
        .data
        .iter()
        .map(|(k, raw)| {
            let value = serde_json::from_str(raw).unwrap_or_else(|_| json!({ "not_json": raw }));
            (k.to_owned(), value)
        })
        .collect();
    let mut value = record_json(&record, false);
    value["store"] = Value::String(url.shown.clone());
    value["data"] = Value::Object(data.clone());
    out.result(value, || {
        let mut text = format!(
            "session  {}\ncreated  {}\nexpires  {}\nversion  {}\nowner    {}\nbytes    {}\ndata",
            record.id.fingerprint(),
            rfc3339(record.created_at),
            rfc3339(record.expires_at),
            record.version,
            record.owner.as_deref().unwrap_or("-"),
            record.data.byte_size(),
        );
        for (k, v) in &data {
            text.push_str(&format!("\n  {}: {v}", Value::String(k.clone())));
        }
        text
    });
    Ok(Exit::Ok)
}

pub async fn delete(url: &StoreUrl, args: &[String], out: &Printer) -> Result<Exit, Failure> {
    let s = open(url, Mode::Existing).await?;
    let mut deleted = Vec::new();
    let mut missing = Vec::new();
    for arg in args {
        let ids = resolve(&s, arg).await?;
        let mut any = false;
        for id in ids {
            // Only a live session counts as deleted; an expired one goes too.
            let live = s.store.load(&id).await.map(|r| r.is_some()).unwrap_or(true);
            s.store.delete(&id).await.map_err(|e| Failure::store(url, &e))?;
            if live {
                deleted.push(id.fingerprint().to_string());
                any = true;
            }
        }
        if !any {
            missing.push(shown_arg(arg));
        }
    }
    let exit = if missing.is_empty() { Exit::Ok } else { Exit::NotFound };
    out.result(
        json!({ "store": url.shown, "deleted": deleted, "not_found": missing }),
        || {
            let mut lines: Vec<String> = deleted.iter().map(|f| format!("deleted {f}")).collect();
            lines.extend(missing.iter().map(|f| format!("no live session {f}")));
            lines.join("\n")
        },
    );
    Ok(exit)
}

pub async fn clear(url: &StoreUrl, yes: bool, out: &Printer) -> Result<Exit, Failure> {
    let s = open(url, Mode::Existing).await?;
    let n = s.store.count().await.map_err(|e| Failure::store(url, &e))?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(
                Exit::NotConfirmed,
                Some(url),
                "refusing to clear without confirmation: standard input is not a terminal; pass --yes",
            ));
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "Delete all {n} live session{} (and every expired one) in {}? Everyone is logged out. [y/N] ",
            plural(n),
            url.shown
        );
        let _ = stderr.flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(Failure::new(
                Exit::NotConfirmed,
                Some(url),
                "not confirmed; nothing deleted",
            ));
        }
    }
    s.store.clear().await.map_err(|e| Failure::store(url, &e))?;
    out.result(json!({ "store": url.shown, "cleared": n }), || {
        format!("cleared {n} live session{}", plural(n))
    });
    Ok(Exit::Ok)
}
