//! `migrate --from A --to B`: copies every live session, keeping its data,
//! created time, deadline, owner and version.
//!
//! Each session is read from the source with `load` and written to the
//! target with [`session_store_core::SessionStore::import`],
//! which keeps the version and writes nothing when the target already holds
//! that session at the same or a newer version. So a second run copies
//! nothing twice, a run that was killed picks up where it stopped, and a run
//! after the app wrote more to the source copies exactly the sessions that
//! changed. The source is only read: the app keeps serving from it meanwhile.
//! A session that expires before its turn (or before its write) is skipped.
//!
//! Either side may be protected at rest (`session_store_core::at_rest`):
//! `--from-hash-ids`/`--from-keys-env` say how the source was written,
//! `--to-hash-ids`/`--to-keys-env` how the target is written. Migrating a
//! plain store into a new protected one is how a store gets protected
//! without logging anyone out. A source with hashed ids holds no ids, only
//! their hashes: it can go only to a target with hashed ids, which gets
//! the same hashes (each record copied under its handle, unhashed again).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde_json::json;
use session_store_core::at_rest::SEALED_KEY;
use session_store_core::{Error, ListingHandle, Record, SessionStore};

use crate::fail::{Exit, Failure};
use crate::open::{Mode, Protection, open_protected, open_with};
use crate::output::Printer;
use crate::url::StoreUrl;

/// The arguments of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store to copy from (only read).
    #[arg(long)]
    pub from: String,
    /// The store to copy to (created when missing).
    #[arg(long)]
    pub to: String,
    /// How many sessions are copied at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Progress: a bar on a terminal, plain lines otherwise (auto), or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// The source keeps each session under a hash of its id (the app's
    /// --hash-ids); then the target must have --to-hash-ids too.
    #[arg(long)]
    pub from_hash_ids: bool,
    /// The source's session data is sealed with the key ring in the
    /// environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub from_keys_env: Option<String>,
    /// Write the target with each session under a hash of its id (cookie
    /// values never stored; its listings show handles).
    #[arg(long)]
    pub to_hash_ids: bool,
    /// Seal the target's session data with the key ring in the environment
    /// variable VAR (its last key seals; the key is never shown).
    #[arg(long, value_name = "VAR")]
    pub to_keys_env: Option<String>,
}

impl MigrateArgs {
    fn source_protection(&self) -> Protection {
        Protection {
            hash_ids: self.from_hash_ids,
            keys_env: self.from_keys_env.clone(),
        }
    }

    fn target_protection(&self) -> Protection {
        Protection {
            hash_ids: self.to_hash_ids,
            keys_env: self.to_keys_env.clone(),
        }
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when standard error is a terminal, else a line every few seconds.
    Auto,
    /// A line every few seconds.
    Lines,
    /// Nothing until the summary.
    None,
}

/// How many failures are named one by one (the rest are counted).
const SHOWN_FAILURES: usize = 20;
/// How often a transient failure (timeout, connection) is retried.
const ATTEMPTS: usize = 3;

enum Outcome {
    Copied,
    /// The target already holds it at the same or a newer version.
    Present,
    /// Expired or deleted in the source before it was copied.
    Gone,
    Failed(ListingHandle, &'static str, Error),
}

/// Whether `record` is still sealed as a protected store keeps it (read
/// from a sealed source without its keys).
fn still_sealed(record: &Record) -> bool {
    record.data.len() == 1 && record.data.contains_key(SEALED_KEY)
}

/// Copies the session the source lists as `id` (a handle: `load_listed`).
/// With `protected_target`, a record still sealed (a sealed source read
/// without `--from-keys-env`) is refused: sealing it again would bury it.
async fn copy_one(
    from: &dyn SessionStore,
    to: &dyn SessionStore,
    id: ListingHandle,
    protected_target: bool,
) -> Outcome {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (side, e) = match from.load_listed(&id).await {
            Ok(None) => return Outcome::Gone,
            Err(e) => ("reading it from the source", e),
            Ok(Some(record)) if protected_target && still_sealed(&record) => {
                return Outcome::Failed(
                    id,
                    "reading it from the source",
                    Error::decode(
                        id,
                        "the source's data is sealed: give its key ring with --from-keys-env",
                        None,
                    ),
                );
            }
            Ok(Some(record)) => {
                if !record.is_live_at(to.clock().now()) {
                    return Outcome::Gone;
                }
                match to.import(&record).await {
                    Ok(true) => return Outcome::Copied,
                    Ok(false) if record.is_live_at(to.clock().now()) => return Outcome::Present,
                    Ok(false) => return Outcome::Gone,
                    Err(e) => ("writing it to the target", e),
                }
            }
        };
        // A conflict is a concurrent writer to the target: read again.
        if (e.is_transient() || e.is_conflict()) && attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
            continue;
        }
        return Outcome::Failed(id, side, e);
    }
}

#[derive(Default)]
struct Tally {
    copied: u64,
    present: u64,
    gone: u64,
    failed: u64,
    failures: Vec<serde_json::Value>,
}

impl Tally {
    fn done(&self) -> u64 {
        self.copied + self.present + self.gone + self.failed
    }
    fn summary(&self) -> String {
        format!(
            "copied {}, skipped {} ({} already there, {} expired or gone), failed {}",
            self.copied,
            self.present + self.gone,
            self.present,
            self.gone,
            self.failed
        )
    }
}

pub async fn run(from_url: &StoreUrl, to_url: &StoreUrl, args: &MigrateArgs, out: &Printer) -> Result<Exit, Failure> {
    if from_url.shown == to_url.shown {
        return Err(Failure::new(
            Exit::Usage,
            Some(from_url),
            "--from and --to name the same store",
        ));
    }
    let (from_protection, to_protection) = (args.source_protection(), args.target_protection());
    if args.from_hash_ids && !args.to_hash_ids {
        return Err(Failure::new(
            Exit::Usage,
            Some(from_url),
            "--from-hash-ids: the source holds only hashes of the session ids, not the ids: its sessions can go \
             only to a target with --to-hash-ids",
        ));
    }
    let from = open_protected(from_url, Mode::Existing, &from_protection).await?;
    // Both sides hash: the source lists hashes, which the target keeps as
    // they are (hashing them again would lose every session).
    let to = open_with(
        to_url,
        Mode::Create,
        &to_protection,
        !args.from_hash_ids && args.to_hash_ids,
    )
    .await?;
    let protected_target = to_protection.is_on();
    let start = Instant::now();
    let ids = from.store.ids().await.map_err(|e| Failure::store(from_url, &e))?;
    let total = ids.len() as u64;

    let bar = match args.progress {
        ProgressMode::Auto if std::io::stderr().is_terminal() => {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} {rate} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            })
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Some(bar)
        }
        _ => None,
    };
    let lines = bar.is_none() && args.progress != ProgressMode::None;
    if lines {
        out.note(&format!(
            "migrate: {total} live session{} to copy from {} to {}",
            if total == 1 { "" } else { "s" },
            from_url.shown,
            to_url.shown
        ));
    }

    let (src, dst): (Arc<dyn SessionStore>, Arc<dyn SessionStore>) = (from.store.clone(), to.store.clone());
    let mut outcomes = futures::stream::iter(ids)
        .map(|id| {
            let (src, dst) = (src.clone(), dst.clone());
            async move { copy_one(&*src, &*dst, id, protected_target).await }
        })
        .buffer_unordered(usize::from(args.concurrency));

    let mut tally = Tally::default();
    let mut last_line = Instant::now();
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Outcome::Copied => tally.copied += 1,
            Outcome::Present => tally.present += 1,
            Outcome::Gone => tally.gone += 1,
            Outcome::Failed(id, side, e) => {
                tally.failed += 1;
                if tally.failures.len() < SHOWN_FAILURES {
                    let line = format!("session {}: {side} failed: {}", id.fingerprint(), e.chain());
                    match &bar {
                        Some(bar) => bar.println(&line),
                        None => out.note(&format!("migrate: {line}")),
                    }
                    tally.failures.push(json!({
                        "fingerprint": id.fingerprint().to_string(),
                        "while": side,
                        "error": e.chain(),
                    }));
                }
            }
        }
        let done = tally.done();
        if let Some(bar) = &bar {
            bar.set_position(done);
            if done.is_multiple_of(256) || tally.failed > 0 {
                bar.set_message(format!(
                    "copied {} skipped {} failed {}",
                    tally.copied,
                    tally.present + tally.gone,
                    tally.failed
                ));
            }
        } else if lines && last_line.elapsed() >= Duration::from_secs(2) {
            last_line = Instant::now();
            let secs = start.elapsed().as_secs_f64().max(1e-3);
            let rate = done as f64 / secs;
            let left = if rate > 0.0 { (total - done) as f64 / rate } else { 0.0 };
            out.note(&format!(
                "migrate: {done}/{total} ({:.0}%) {}; {rate:.0}/s, about {left:.0}s left",
                done as f64 * 100.0 / total.max(1) as f64,
                tally.summary()
            ));
        }
    }
    if let Some(bar) = &bar {
        bar.set_message(format!(
            "copied {} skipped {} failed {}",
            tally.copied,
            tally.present + tally.gone,
            tally.failed
        ));
        bar.finish();
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = total as f64 / secs.max(1e-3);
    out.result(
        json!({
            "from": from_url.shown,
            "to": to_url.shown,
            "to_hash_ids": args.to_hash_ids,
            "to_encrypted": args.to_keys_env.is_some(),
            "total": total,
            "copied": tally.copied,
            "skipped": tally.present + tally.gone,
            "already_there": tally.present,
            "expired_or_gone": tally.gone,
            "failed": tally.failed,
            "failures": tally.failures,
            "seconds": (secs * 1000.0).round() / 1000.0,
        }),
        || {
            format!(
                "migrated {total} session{} from {} to {} in {secs:.1}s ({rate:.0}/s): {}",
                if total == 1 { "" } else { "s" },
                from_url.shown,
                to_url.shown,
                tally.summary()
            )
        },
    );
    if tally.failed > 0 {
        if tally.failed as usize > SHOWN_FAILURES {
            out.note(&format!(
                "migrate: {} more failures not shown; run again to retry them",
                tally.failed as usize - SHOWN_FAILURES
            ));
        }
        return Ok(Exit::Failed);
    }
    Ok(Exit::Ok)
}
