//! The counter app: a visit counter kept in a server-side session.
//!
//! ```text
//! cargo run -p counter                      # file store in ./counter-sessions/, port 3000
//! cargo run -p counter -- --store sqlite    # or memory, file, sqlite, redis, postgres
//! SESSION_COOKIE_KEYS="1:$(openssl rand -hex 32)" cargo run -p counter -- --store cookie
//! SESSION_AT_REST_KEYS="1:$(openssl rand -hex 32)" cargo run -p counter -- --store sqlite --hash-ids --encrypt
//! PORT=8080 SESSION_STORE=memory cargo run -p counter
//! ```
//!
//! - `GET /` adds one to the counter in the visitor's session and answers
//!   the count; the first answer sets the session cookie.
//! - `POST /login` gives the session a new id and keeps its data (the
//!   defence against session fixation); the old id no longer loads.
//! - `POST /logout` deletes the session.
//! - `POST /login/{user}` logs in as `user`; `GET /sessions` lists that
//!   user's sessions by fingerprint; `POST /logout-everywhere` ends them all
//!   (every store of the workspace keeps an owner index).
//! - `--hash-ids` and `--encrypt` (`at_rest`) keep the store's records
//!   under a hash of their id and sealed under the key ring of
//!   `SESSION_AT_REST_KEYS`: the store's files, keys or rows hold no
//!   cookie value and no session data.
//!
//! Sessions go through `session-store-tower` (the default: version-checked
//! commits, so concurrent requests of one visitor never lose a count) or,
//! with `--middleware tower-sessions`, through tower-sessions and this
//! workspace's `session-store-tower-sessions` adapter (last writer wins),
//! to the chosen backend. The cookie is `HttpOnly`, `SameSite=Lax` (or
//! `--same-site`) and `Secure` unless `--secure false` (see `config`).
//!
//! Errors: a visitor whose stored session is damaged simply gets a fresh
//! session. Any other failure is answered with a generic `internal error`
//! body (never a session id or a backend's text), status 503 when the
//! store is unreachable or failing, else 500; the detail goes to the log,
//! with the session's fingerprint. Logs are `tracing` events on
//! stderr, filtered by `RUST_LOG` (default `info`). A startup error prints
//! its whole chain of causes.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use session_store_core::{Purger, SessionStore};
use session_store_tower::CookieSessions;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// `println!` that never panics: once stdout is closed (`counter | head`)
/// what follows is dropped and the app goes on.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod at_rest;
mod config;
mod cookie_mode;
mod layer_app;
mod stores;
mod tower_sessions_app;

use config::{Config, Middleware};

/// The session key of the counter.
const COUNT: &str = "count";

/// The body of every error response: nothing about the session or the store.
const INTERNAL_ERROR: &str = "internal error\n";

/// The answer to `POST /login`.
const LOGGED_IN: &str = "logged in: new session id, same data\n";

/// The answer to `POST /logout`.
const LOGGED_OUT: &str = "logged out: session deleted\n";

/// The message of `error` followed by every cause, `: `-separated.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Some errors repeat their cause in their own message: say it once.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Logs to stderr, filtered by `RUST_LOG` (default: `info`; a malformed
/// directive is skipped).
fn init_logging() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours on a terminal only, not in a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The app's routes over the given store, through the chosen middleware.
fn app(store: Arc<dyn SessionStore>, config: &Config) -> Router {
    match config.middleware {
        Middleware::Layer => layer_app::app(store, config),
        Middleware::TowerSessions => tower_sessions_app::app(store, config),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

async fn run(config: Config, cookie: Option<CookieSessions>, protection: at_rest::Protection) -> Result<(), String> {
    let (router, description, _purger) = match cookie {
        Some(sessions) => {
            let description = cookie_mode::describe(&sessions);
            (layer_app::cookie_app(sessions, &config), description, None)
        }
        None => {
            let (store, description) = stores::open(&config, protection.at_rest.as_ref()).await?;
            // Expired sessions are removed in the background (file and SQLite keep them until then).
            let purger = Purger::spawn(Arc::clone(&store), Duration::from_secs(600));
            (app(store, &config), description, Some(purger))
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {}", chain(&e)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {}", chain(&e)))?;
    say!("counter: listening on http://{bound}/");
    say!("counter: session store: {description}");
    if config.backend != config::Backend::Cookie {
        say!("counter: at rest: {}", protection.description);
    }
    say!(
        "counter: sessions through {}; cookie: {}",
        config.middleware,
        config.cookie_description()
    );
    tracing::info!(
        %bound,
        store = %description,
        at_rest = %protection.description,
        middleware = %config.middleware,
        "counter started"
    );
    say!("counter: try `curl -c jar -b jar http://{bound}/` (Ctrl-C stops)");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {}", chain(&e)))
}

fn main() -> ExitCode {
    let config = match Config::from_args_and_env(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Some(config)) => config,
        Ok(None) => {
            say!("{}", config::USAGE.trim_end());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            say_err!("counter: {message}\n\n{}", config::USAGE);
            return ExitCode::from(2);
        }
    };
    // --hash-ids and --encrypt: checked (and the key ring read) before
    // anything starts, like cookie mode's keys.
    let protection = match at_rest::protection(&config, |name| std::env::var(name).ok().filter(|v| !v.is_empty())) {
        Ok(protection) => protection,
        Err(message) => {
            say_err!("counter: {message}");
            return ExitCode::from(2);
        }
    };
    // Cookie mode: the key ring must be there and valid before anything
    // starts (nothing is generated, and the key is never printed).
    let cookie = if config.backend == config::Backend::Cookie {
        match cookie_mode::sessions(&config, |name| std::env::var(name).ok().filter(|v| !v.is_empty())) {
            Ok(sessions) => Some(sessions),
            Err(message) => {
                say_err!("counter: {message}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            say_err!("counter: cannot start the runtime: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, cookie, protection)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            say_err!("counter: {message}");
            ExitCode::FAILURE
        }
    }
}
