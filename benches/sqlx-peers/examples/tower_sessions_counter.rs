//! The counter as a tower-sessions app would write it: tower-sessions 0.14
//! over its sqlx `SqliteStore`, the count under `count` (get, then insert).
//! It is the "before" of the switch test
//! (`cli/tests/switch_from_tower_sessions.rs`): visitors count here, the
//! sessions are imported with `session-store import-tower-sessions`, and
//! the same cookies go on counting on the native layer.
//!
//! `tower_sessions_counter DATABASE_FILE`: serves on a free loopback port
//! and prints `listening on http://ADDRESS/` once it accepts connections.

use axum::Router;
use axum::routing::get;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlx_store::SqliteStore;
use tower_sessions_sqlx_store::sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

/// `GET /`: one more visit.
async fn visit(session: Session) -> Result<String, (axum::http::StatusCode, &'static str)> {
    let failed = |_| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
    let count = session.get::<u64>("count").await.map_err(failed)?.unwrap_or(0) + 1;
    session.insert("count", count).await.map_err(failed)?;
    Ok(format!("{count}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: tower_sessions_counter DATABASE_FILE")?;
    let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
    let store = SqliteStore::new(SqlitePool::connect_with(options).await?);
    store.migrate().await?;
    let layer = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(7)));
    let app = Router::new().route("/", get(visit)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
