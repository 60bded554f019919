//! The counter through tower-sessions and this workspace's
//! `session-store-tower-sessions` adapter (`--middleware tower-sessions`):
//! last writer wins, so concurrent requests of one visitor can lose counts.

use std::sync::Arc;

use axum::Router;
use axum::body::HttpBody as _;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use session_store_core::SessionStore;
use session_store_tower_sessions::{Adapter, to_session_id};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::config::Config;
use crate::{COUNT, INTERNAL_ERROR, chain};

/// `GET /`: one more visit.
async fn visit(session: Session) -> Result<String, (StatusCode, &'static str)> {
    let count: u64 = session
        .get(COUNT)
        .await
        .map_err(|e| internal("visit", &session, &e))?
        .unwrap_or(0)
        + 1;
    session
        .insert(COUNT, count)
        .await
        .map_err(|e| internal("visit", &session, &e))?;
    Ok(format!("{count}\n"))
}

/// `POST /login`: a new session id, the same data.
async fn login(session: Session) -> Result<&'static str, (StatusCode, &'static str)> {
    session.cycle_id().await.map_err(|e| internal("login", &session, &e))?;
    Ok(crate::LOGGED_IN)
}

/// `POST /logout`: the session is deleted.
async fn logout(session: Session) -> Result<&'static str, (StatusCode, &'static str)> {
    session.flush().await.map_err(|e| internal("logout", &session, &e))?;
    Ok(crate::LOGGED_OUT)
}

/// Logs a failed session operation (with the session's fingerprint, never
/// its id) and answers a generic 500.
fn internal(route: &'static str, session: &Session, error: &dyn std::error::Error) -> (StatusCode, &'static str) {
    match session.id() {
        Some(id) => tracing::error!(
            route,
            session = %to_session_id(id).fingerprint(),
            error = %chain(error),
            "request failed"
        ),
        None => tracing::error!(route, error = %chain(error), "request failed"),
    }
    (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
}

/// Gives a server error that has no body (tower-sessions answers a failed
/// save with an empty 500) the generic body too.
async fn generic_error_body(response: Response) -> Response {
    if response.status().is_server_error() && response.body().size_hint().exact() == Some(0) {
        return (response.status(), INTERNAL_ERROR).into_response();
    }
    response
}

/// The app's routes over `store`, through tower-sessions.
pub fn app(store: Arc<dyn SessionStore>, config: &Config) -> Router {
    let same_site = match config.same_site {
        session_store_tower::SameSite::Strict => tower_sessions::cookie::SameSite::Strict,
        session_store_tower::SameSite::Lax => tower_sessions::cookie::SameSite::Lax,
        session_store_tower::SameSite::None => tower_sessions::cookie::SameSite::None,
    };
    let sessions = SessionManagerLayer::new(Adapter::from_arc(store))
        .with_secure(config.secure)
        .with_same_site(same_site)
        .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::days(7)));
    Router::new()
        .route("/", get(visit))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(sessions)
        .layer(axum::middleware::map_response(generic_error_body))
}
