//! The counter on `session-store-tower` (the default middleware):
//! version-checked commits, counts with `Session::update`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use session_store_core::{Error, Expiry, SessionStore};
use session_store_tower::CookieSessions;
use session_store_tower::{Session, SessionError, SessionLayer};

use crate::config::Config;
use crate::{COUNT, INTERNAL_ERROR};

/// How long a visitor's session lasts without a visit.
pub const IDLE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a session lasts at most, however busy (OWASP's absolute timeout).
pub const LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
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

/// `POST /login/{user}`: a new session id, the same data, and the session
/// belongs to `user` from now on (listed by `/sessions`, ended by
/// `/logout-everywhere`).
async fn login_as(session: Session, Path(user): Path<String>) -> Result<&'static str, SessionError> {
    session.log_in(user).await?;
    Ok(crate::LOGGED_IN)
}

/// What an owner route answers on a store without an owner index.
fn without_index(error: SessionError) -> Result<(StatusCode, String), SessionError> {
    if matches!(error.error(), Error::Unsupported(_)) {
        Ok((
            StatusCode::NOT_IMPLEMENTED,
            "this store keeps no owner index\n".to_owned(),
        ))
    } else {
        Err(error)
    }
}

/// `GET /sessions`: the logged-in user's sessions, one line each: the
/// listing's fingerprint (of the id, or with `--hash-ids` of its stored
/// hash; never the id), created and expiry times in Unix milliseconds, and
/// `*` for this one.
async fn list_sessions(session: Session) -> Result<(StatusCode, String), SessionError> {
    if session.owner().await?.is_none() {
        return Ok((StatusCode::UNAUTHORIZED, "not logged in\n".to_owned()));
    }
    let listed = match session.owner_sessions().await {
        Ok(listed) => listed,
        Err(e) => return without_index(e),
    };
    let mut body = String::new();
    for r in listed {
        // A listing handle (a hash with --hash-ids), never the cookie's id.
        let fingerprint = r.handle.fingerprint();
        let mark = if session.is_current(&r).await? { " *" } else { "" };
        body.push_str(&format!(
            "{fingerprint} created={} expires={}{mark}\n",
            r.created_at.as_millis(),
            r.expires_at.as_millis()
        ));
    }
    Ok((StatusCode::OK, body))
}

/// `POST /logout-everywhere`: every session of the logged-in user ends.
async fn logout_everywhere(session: Session) -> Result<(StatusCode, String), SessionError> {
    match session.log_out_everywhere().await {
        Ok(ended) => Ok((
            StatusCode::OK,
            format!("logged out everywhere: {ended} sessions ended\n"),
        )),
        Err(e) => without_index(e),
    }
}

/// `POST /logout`: the session is deleted and the cookie cleared.
async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.end().await?;
    Ok(crate::LOGGED_OUT)
}

/// The app's routes over `store`, through `session-store-tower`.
pub fn app(store: Arc<dyn SessionStore>, config: &Config) -> Router {
    let mut sessions = configure(SessionLayer::from_arc(store), config);
    if let Some(cap) = config.max_sessions_per_user {
        sessions = sessions.max_sessions_per_owner(cap);
    }
    routes(sessions)
}

/// The app's routes with no store, each session sealed in its cookie
/// (`--store cookie`).
pub fn cookie_app(sessions: CookieSessions, config: &Config) -> Router {
    routes(configure(SessionLayer::cookie(sessions), config))
}

/// The expiry, cookie attributes and error body of both modes.
fn configure(layer: SessionLayer, config: &Config) -> SessionLayer {
    layer
        .expiry(Expiry::IdleAndAbsolute {
            idle: IDLE,
            lifetime: LIFETIME,
        })
        .secure(config.secure)
        .same_site(config.same_site)
        .error_body(INTERNAL_ERROR)
}

fn routes(sessions: SessionLayer) -> Router {
    Router::new()
        .route("/", get(visit))
        .route("/login", post(login))
        .route("/login/{user}", post(login_as))
        .route("/sessions", get(list_sessions))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/logout", post(logout))
        .layer(sessions)
}
