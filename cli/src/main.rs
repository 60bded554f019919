//! `session-store`: the admin command of the session-store family.
//!
//! Count, list, show, delete, purge and clear the sessions of any store,
//! migrate every live session from one store to another, and check a
//! store's health. A store is named by a URL:
//!
//! ```text
//! session-store count file:./sessions
//! session-store list 'sqlite:./sessions.db?table=sessions'
//! session-store purge 'redis://127.0.0.1:6379/0?prefix=app:session:'
//! session-store migrate --from file:./sessions --to redis://127.0.0.1:6379/
//! session-store migrate --from file:./sessions --to file:./protected --to-hash-ids --to-keys-env KEYS
//! session-store doctor file:./sessions --fix
//! session-store import-tower-sessions --from sqlite:./tower.db --to sqlite:./sessions.db
//! ```
//!
//! URLs, options and exit codes are described in the crate's README and in
//! `session-store --help`. Every command takes `--json` for a single JSON
//! document on standard output. Errors name the store and the cause;
//! messages name sessions by fingerprint, never by id.
//!
//! A store protected at rest (`session_store_core::at_rest`: ids hashed,
//! data sealed) is opened with `--hash-ids` and `--keys-env VAR` (for
//! `migrate`, `--from-…` and `--to-…`); with hashed ids, listings show
//! handles (the stored hashes), never cookie values.

mod commands;
mod doctor;
mod fail;
mod import;
mod migrate;
mod open;
mod output;
mod url;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::fail::{Exit, Failure};
use crate::open::Protection;
use crate::output::Printer;
use crate::url::StoreUrl;

const EXIT_CODES: &str = "\
Store URLs:
  file:DIR                    a file store directory (?durability=nosync for bulk loads)
  sqlite:PATH                 an SQLite database (?table=NAME, default sessions)
  redis://HOST[:PORT][/DB]    a Redis server (?prefix=P, default session:; ?timeout_ms=N)
  rediss://...                the same over TLS (?ca=PEM-FILE for a private CA)
  redis://A,redis://B,...     a Redis Cluster, these nodes as seeds (or one URL with ?cluster)
  postgres://USER@HOST/DB     a PostgreSQL database (?schema=S, ?table=NAME, default sessions; ?timeout_ms=N)
  mysql://USER:PW@HOST/DB     a MySQL or MariaDB database (?table=NAME, default sessions; ?timeout_ms=N)

Stores protected at rest (an app's hashed ids and sealed data):
  --hash-ids, --keys-env VAR  how the store was written; with hashed ids, listed values are
                              handles (stored hashes), not cookie values
  migrate --from PLAIN --to NEW --to-hash-ids --to-keys-env VAR
                              protects a store that has sessions (nobody is logged out)

Exit codes:
  0  done
  1  the store failed during the command, or a migration could not copy some sessions
  2  bad arguments, a URL that names no known store, or a missing or bad key ring
  3  the store could not be opened (missing, another kind of file, server down)
  4  show/delete: no live session under that id or fingerprint
  5  clear: not confirmed (declined, or no terminal and no --yes)
  6  doctor: problems found (and not all fixed)";

/// Inspect, purge, migrate and check session stores.
#[derive(Debug, Parser)]
#[command(name = "session-store", version, after_help = EXIT_CODES)]
struct Cli {
    /// Print one JSON document on standard output instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The store a command works on.
#[derive(Debug, Args)]
struct StoreArg {
    /// The store's URL (see below).
    store: String,
}

/// The store a command works on, and how it is protected at rest (what
/// the app's `--hash-ids` and `--encrypt` wrote).
#[derive(Debug, Args)]
struct ProtectedStoreArg {
    /// The store's URL (see below).
    store: String,
    /// The store keeps each session under a hash of its id: listed values
    /// are then handles (the stored hashes), not cookie values; show and
    /// delete take a handle, its fingerprint, or a session id.
    #[arg(long)]
    hash_ids: bool,
    /// The store's session data is sealed with the key ring in the
    /// environment variable VAR ("1:KEY" or "1:OLD,2:NEW"; the key
    /// is never shown).
    #[arg(long, value_name = "VAR")]
    keys_env: Option<String>,
}

impl ProtectedStoreArg {
    fn protection(&self) -> Protection {
        Protection {
            hash_ids: self.hash_ids,
            keys_env: self.keys_env.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The number of live sessions.
    Count(ProtectedStoreArg),
    /// Remove every expired session (Django's clearsessions).
    Purge(ProtectedStoreArg),
    /// Every live session: fingerprint, created, deadline, owner, size.
    ///
    /// With --hash-ids the listed values are handles (the stored hashes of
    /// the ids), not cookie values: their fingerprints are not those of the
    /// cookies' ids that an app's log shows.
    List {
        #[command(flatten)]
        store: ProtectedStoreArg,
        /// Show full session ids (they are credentials: mind where the
        /// output goes); with --hash-ids, the full handles.
        #[arg(long)]
        show_ids: bool,
        /// List at most this many sessions.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One session's data and details.
    Show {
        #[command(flatten)]
        store: ProtectedStoreArg,
        /// The session id, or a handle or fingerprint as `list` prints it
        /// (with --hash-ids listed values are handles, not cookie values).
        /// An id may start with `-`.
        #[arg(allow_hyphen_values = true)]
        session: String,
    },
    /// Delete sessions.
    Delete {
        #[command(flatten)]
        store: ProtectedStoreArg,
        /// Session ids, or handles or fingerprints as `list` prints them
        /// (with --hash-ids listed values are handles, not cookie values).
        /// An id that starts with `-` goes after `--`.
        #[arg(required = true)]
        sessions: Vec<String>,
    },
    /// Delete every session of the store (asks first).
    Clear {
        #[command(flatten)]
        store: ProtectedStoreArg,
        /// Do not ask (required when standard input is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Copy every live session from one store to another.
    ///
    /// To protect a plain store at rest, migrate it into a new one:
    /// migrate --from PLAIN --to NEW --to-hash-ids --to-keys-env VAR.
    Migrate(migrate::MigrateArgs),
    /// Import every live session of a tower-sessions store (its sqlx SQLite
    /// or PostgreSQL store, or its Redis store) under the same ids, so
    /// visitors stay logged in across the switch; a second run imports
    /// nothing twice.
    ImportTowerSessions(import::ImportArgs),
    /// Check a store: layout, schema, permissions, temporary files, undecodable records.
    Doctor {
        #[command(flatten)]
        store: StoreArg,
        /// Remove undecodable records and orphaned temporary files.
        #[arg(long)]
        fix: bool,
    },
}

fn parse_url(text: &str) -> Result<StoreUrl, Failure> {
    StoreUrl::parse(text).map_err(|e| Failure::new(Exit::Usage, None, e))
}

async fn run(cli: Cli, out: &Printer) -> Result<Exit, Failure> {
    match cli.command {
        Command::Count(s) => commands::count(&parse_url(&s.store)?, &s.protection(), out).await,
        Command::Purge(s) => commands::purge(&parse_url(&s.store)?, &s.protection(), out).await,
        Command::List { store, show_ids, limit } => {
            commands::list(&parse_url(&store.store)?, &store.protection(), show_ids, limit, out).await
        }
        Command::Show { store, session } => {
            commands::show(&parse_url(&store.store)?, &store.protection(), &session, out).await
        }
        Command::Delete { store, sessions } => {
            commands::delete(&parse_url(&store.store)?, &store.protection(), &sessions, out).await
        }
        Command::Clear { store, yes } => {
            commands::clear(&parse_url(&store.store)?, &store.protection(), yes, out).await
        }
        Command::Migrate(args) => migrate::run(&parse_url(&args.from)?, &parse_url(&args.to)?, &args, out).await,
        Command::ImportTowerSessions(args) => import::run(&args, out).await,
        Command::Doctor { store, fix } => doctor::run(&parse_url(&store.store)?, fix, out).await,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { Exit::Usage } else { Exit::Ok };
            let _ = e.print();
            return code.into();
        }
    };
    let out = Printer::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            out.failure(&Failure::new(Exit::Failed, None, format!("starting the runtime: {e}")));
            return Exit::Failed.into();
        }
    };
    // A bug must still end with a message and an exit code, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("session-store: internal error (a bug, please report it): {what}");
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(run(cli, &out))))
        .unwrap_or_else(|_| {
            Err(Failure::new(
                Exit::Failed,
                None,
                "the command stopped on an internal error",
            ))
        });
    // A Redis connection's background tasks must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(exit) => exit.into(),
        Err(failure) => {
            out.failure(&failure);
            failure.exit.into()
        }
    }
}
