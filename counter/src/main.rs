//! The counter app: a visit counter kept in a server-side session.
//!
//! ```text
//! cargo run -p counter                      # file store in ./counter-sessions/, port 3000
//! cargo run -p counter -- --store sqlite    # or memory, file, sqlite, redis
//! PORT=8080 SESSION_STORE=memory cargo run -p counter
//! ```
//!
//! - `GET /` adds one to the counter in the visitor's session and answers
//!   the count; the first answer sets the session cookie.
//! - `POST /login` gives the session a new id and keeps its data (the
//!   defence against session fixation); the old id no longer loads.
//! - `POST /logout` deletes the session.
//!
//! Sessions go through tower-sessions and this workspace's
//! `session-store-tower-sessions` adapter to the chosen backend.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use session_store_core::{Purger, SessionStore};
use session_store_tower_sessions::Adapter;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

mod config;
mod stores;

use config::Config;

/// The session key of the counter.
const COUNT: &str = "count";

/// `GET /`: one more visit.
async fn visit(session: Session) -> Result<String, (StatusCode, String)> {
    let count: u64 = session.get(COUNT).await.map_err(internal)?.unwrap_or(0) + 1;
    session.insert(COUNT, count).await.map_err(internal)?;
    Ok(format!("{count}\n"))
}

/// `POST /login`: a new session id, the same data.
async fn login(session: Session) -> Result<&'static str, (StatusCode, String)> {
    session.cycle_id().await.map_err(internal)?;
    Ok("logged in: new session id, same data\n")
}

/// `POST /logout`: the session is deleted.
async fn logout(session: Session) -> Result<&'static str, (StatusCode, String)> {
    session.flush().await.map_err(internal)?;
    Ok("logged out: session deleted\n")
}

fn internal(error: tower_sessions::session::Error) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("session error: {error}\n"))
}

/// The app's routes over the given store.
fn app(store: Arc<dyn SessionStore>) -> Router {
    let sessions = SessionManagerLayer::new(Adapter::from_arc(store))
        // Plain HTTP on the loopback interface: a `Secure` cookie would not be sent back.
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::days(7)));
    Router::new()
        .route("/", get(visit))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(sessions)
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

async fn run(config: Config) -> Result<(), String> {
    let (store, description) = stores::open(&config).await?;
    // Expired sessions are removed in the background (file and SQLite keep them until then).
    let _purger = Purger::spawn(Arc::clone(&store), Duration::from_secs(600));
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    println!("counter: listening on http://{bound}/");
    println!("counter: session store: {description}");
    println!("counter: try `curl -c jar -b jar http://{bound}/` (Ctrl-C stops)");
    axum::serve(listener, app(store))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))
}

fn main() -> ExitCode {
    let config = match Config::from_args_and_env(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{}", config::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("counter: {message}\n\n{}", config::USAGE);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("counter: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("counter: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Where the file and SQLite stores keep their data by default.
fn default_dir() -> PathBuf {
    PathBuf::from("counter-sessions")
}
