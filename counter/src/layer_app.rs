//! The counter on `session-store-tower` (the default middleware):
//! version-checked commits, counts with `Session::update`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use session_store_core::{Expiry, SessionStore};
use session_store_tower::{Session, SessionError, SessionLayer};

use crate::config::Config;
use crate::{COUNT, INTERNAL_ERROR};

/// How long a visitor's session lasts without a visit.
pub const IDLE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a session lasts at most, however busy (OWASP's absolute timeout).
pub const LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Concurrent requests of one visitor that may race on one count before a
/// request gives up (each lost race is another request's success).
pub const COMMIT_ATTEMPTS: usize = 64;

/// `GET /`: one more visit, as a read-modify-write: a request that lost a
/// race to another request of the same visitor counts again from what that
/// one wrote, so no count is lost.
async fn visit(session: Session) -> Result<String, SessionError> {
    let count = session
        .update(|s| {
            let count = s.get::<u64>(COUNT)?.unwrap_or(0) + 1;
            s.insert(COUNT, &count)?;
            Ok(count)
        })
        .await?;
    Ok(format!("{count}\n"))
}

/// `POST /login`: a new session id, the same data.
async fn login(session: Session) -> Result<&'static str, SessionError> {
    session.rotate().await?;
    Ok(crate::LOGGED_IN)
}

/// `POST /logout`: the session is deleted and the cookie cleared.
async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.end().await?;
    Ok(crate::LOGGED_OUT)
}

/// The app's routes over `store`, through `session-store-tower`.
pub fn app(store: Arc<dyn SessionStore>, config: &Config) -> Router {
    let sessions = SessionLayer::from_arc(store)
        .expiry(Expiry::IdleAndAbsolute {
            idle: IDLE,
            lifetime: LIFETIME,
        })
        .commit_attempts(COMMIT_ATTEMPTS)
        .secure(config.secure)
        .same_site(config.same_site)
        .error_body(INTERNAL_ERROR);
    Router::new()
        .route("/", get(visit))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(sessions)
}
