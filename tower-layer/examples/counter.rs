//! The smallest app on the layer: a visit counter in a server-side
//! session, with login (a fresh session id) and logout.
//!
//! ```console
//! $ cargo run -p session-store-tower --example counter
//! $ curl -c jar -b jar localhost:3000/        # 1, then 2, 3, ...
//! $ curl -c jar -b jar -X POST localhost:3000/login
//! $ curl -c jar -b jar -X POST localhost:3000/logout
//! ```
//!
//! It keeps sessions in memory; any backend crate's store goes in its
//! place (`session_store_sqlite::SqliteStore::open("sessions.db")?`, say).

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use session_store_memory::MemoryStore;
use session_store_tower::{Expiry, Session, SessionError, SessionLayer};

/// One more visit: a read-modify-write committed at once, so concurrent
/// requests of one visitor each count once.
async fn count(session: Session) -> Result<String, SessionError> {
    let n = session
        .update(|s| {
            let n = s.get::<u64>("count")?.unwrap_or(0) + 1;
            s.insert("count", &n)?;
            Ok(n)
        })
        .await?;
    Ok(format!("{n}\n"))
}

/// A fresh session id for the same data: call it when a visitor logs in.
async fn login(session: Session) -> Result<&'static str, SessionError> {
    session.log_in("alice").await?;
    Ok("logged in\n")
}

/// The session is deleted and the cookie cleared.
async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.end().await?;
    Ok("logged out\n")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let layer = SessionLayer::new(MemoryStore::new())
        // 30 minutes without a visit, 12 hours at most however busy.
        .expiry(Expiry::IdleAndAbsolute {
            idle: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
        })
        // Plain HTTP on localhost; keep `Secure` on behind TLS.
        .secure(false);
    let app = Router::new()
        .route("/", get(count))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("counting visits on http://127.0.0.1:3000/");
    axum::serve(listener, app).await
}
