//! `count`, `purge`, `list`, `show`, `delete` and `clear`.

use std::io::{BufRead, IsTerminal, Write};

use futures::StreamExt;
use serde_json::{Value, json};
use session_store_core::{ListingHandle, Record, SessionId};

use crate::fail::{Exit, Failure};
use crate::open::{Mode, Opened, Protection, open_protected};
use crate::output::{Printer, rfc3339, time_json};
use crate::url::StoreUrl;

/// How many loads `list` and fingerprint lookups keep in flight.
const IN_FLIGHT: usize = 32;

pub async fn count(url: &StoreUrl, protection: &Protection, out: &Printer) -> Result<Exit, Failure> {
    let s = open_protected(url, Mode::Existing, protection).await?;
    let n = s.store.count().await.map_err(|e| Failure::store(url, &e))?;
    out.result(json!({ "store": url.shown, "count": n }), || n.to_string());
    Ok(Exit::Ok)
}

pub async fn purge(url: &StoreUrl, protection: &Protection, out: &Printer) -> Result<Exit, Failure> {
    let s = open_protected(url, Mode::Existing, protection).await?;
    let n = s.store.purge_expired().await.map_err(|e| Failure::store(url, &e))?;
    out.result(json!({ "store": url.shown, "purged": n }), || {
        format!("purged {n} expired session{}", plural(n))
    });
    Ok(Exit::Ok)
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A listed record as JSON; its full id (under `"handle"` when the store
/// hashes ids: then it is the stored hash, not a cookie value) only when
/// asked.
fn record_json(r: &Record, show_id: bool, hashed: bool) -> Value {
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
        v[if hashed { "handle" } else { "id" }] = Value::String(r.id.to_string());
    }
    v
}

pub async fn list(
    url: &StoreUrl,
    protection: &Protection,
    show_ids: bool,
    limit: Option<usize>,
    out: &Printer,
) -> Result<Exit, Failure> {
    let s = open_protected(url, Mode::Existing, protection).await?;
    let mut ids = s.store.ids().await.map_err(|e| Failure::store(url, &e))?;
    ids.sort_unstable();
    if let Some(limit) = limit {
        ids.truncate(limit);
    }
    let store = &s.store;
    let loaded: Vec<(ListingHandle, session_store_core::Result<Option<Record>>)> =
        // Listed values are handles: `load_listed`, never `load`.
        futures::stream::iter(ids.into_iter().map(|id| async move { (id, store.load_listed(&id).await) }))
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
            "listed": if s.hashed { "handles" } else { "ids" },
            "sessions": records.iter().map(|r| record_json(r, show_ids, s.hashed)).collect::<Vec<_>>(),
            "undecodable": broken.iter().map(|(id, why)| json!({
                "fingerprint": id.fingerprint().to_string(), "error": why,
            })).collect::<Vec<_>>(),
        }),
        || {
            let mut text = String::new();
            let id_col = if show_ids {
                format!(" {:<22}", if s.hashed { "HANDLE" } else { "ID" })
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

/// The listing handles an argument may name: a full session id (its
/// handle) or a full handle as `list --show-ids` prints it (on a store
/// that hashes ids the two differ, and both are tried), or the
/// fingerprint `list` shows.
async fn resolve(s: &Opened, arg: &str) -> Result<Vec<ListingHandle>, Failure> {
    if let Ok(id) = arg.parse::<SessionId>() {
        let (of_id, as_given) = (s.store.listing_handle(&id), ListingHandle::from_stored(id));
        return Ok(if of_id == as_given {
            vec![of_id]
        } else {
            vec![of_id, as_given]
        });
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

/// What "not found" says: with hashed ids, a fingerprint from an app's
/// log (of the cookie's id) is not one `list` shows.
fn not_found(s: &Opened, arg: &str) -> String {
    let hint = if s.hashed && arg.parse::<SessionId>().is_err() {
        " (with --hash-ids a fingerprint is a listed handle's, as `list` shows, not the cookie id's of an app's \
         log: give the full session id)"
    } else {
        ""
    };
    format!("no live session {}{hint}", shown_arg(arg))
}

/// The one live session an argument names, loaded.
async fn resolve_one(s: &Opened, arg: &str) -> Result<Record, Failure> {
    let mut ids = resolve(s, arg).await?;
    if arg.parse::<SessionId>().is_ok() {
        // An id and a handle: the one that loads.
        for id in ids {
            if let Some(record) = s.store.load_listed(&id).await.map_err(|e| Failure::store(&s.url, &e))? {
                return Ok(record);
            }
        }
        ids = Vec::new();
    }
    match ids.as_slice() {
        [id] => s
            .store
            .load_listed(id)
            .await
            .map_err(|e| Failure::store(&s.url, &e))?
            .ok_or_else(|| Failure::new(Exit::NotFound, Some(&s.url), not_found(s, arg))),
        [] => Err(Failure::new(Exit::NotFound, Some(&s.url), not_found(s, arg))),
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

pub async fn show(url: &StoreUrl, protection: &Protection, arg: &str, out: &Printer) -> Result<Exit, Failure> {
    let s = open_protected(url, Mode::Existing, protection).await?;
    let record = resolve_one(&s, arg).await?;
    let data: serde_json::Map<String, Value> = record
        .data
        .iter()
        .map(|(k, raw)| {
            let value = serde_json::from_str(raw).unwrap_or_else(|_| json!({ "not_json": raw }));
            (k.to_owned(), value)
        })
        .collect();
    let mut value = record_json(&record, false, s.hashed);
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

pub async fn delete(url: &StoreUrl, protection: &Protection, args: &[String], out: &Printer) -> Result<Exit, Failure> {
    let s = open_protected(url, Mode::Existing, protection).await?;
    let mut deleted = Vec::new();
    let mut missing = Vec::new();
    for arg in args {
        let ids = resolve(&s, arg).await?;
        let mut any = false;
        for id in ids {
            // Only a live session counts as deleted; an expired one goes too.
            // Listed values are handles: `load_listed`/`delete_listed`.
            let live = s.store.load_listed(&id).await.map(|r| r.is_some()).unwrap_or(true);
            s.store.delete_listed(&id).await.map_err(|e| Failure::store(url, &e))?;
            if live {
                deleted.push(id.fingerprint().to_string());
                any = true;
            }
        }
        if !any {
            missing.push(shown_arg(arg));
            if s.hashed && arg.parse::<SessionId>().is_err() {
                out.note(&format!("session-store: {}", not_found(&s, arg)));
            }
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

pub async fn clear(url: &StoreUrl, protection: &Protection, yes: bool, out: &Printer) -> Result<Exit, Failure> {
    let s = open_protected(url, Mode::Existing, protection).await?;
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
