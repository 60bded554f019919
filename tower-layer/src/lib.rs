//! Sessions for tower and axum, over any backend of the session-store
//! family, keeping the whole store contract: concurrent requests of one
//! visitor lose nothing, a logged-out or rotated session is never brought
//! back, and a damaged record is a fresh session, not an error page.
//!
//! ```no_run
//! use axum::{Router, routing::{get, post}};
//! use session_store_memory::MemoryStore;
//! use session_store_tower::{Session, SessionError, SessionLayer};
//!
//! async fn count(session: Session) -> Result<String, SessionError> {
//!     // Read-modify-write, committed at once; rerun on fresh data after a conflict.
//!     let n = session
//!         .update(|s| {
//!             let n = s.get::<u64>("count")?.unwrap_or(0) + 1;
//!             s.insert("count", &n)?;
//!             Ok(n)
//!         })
//!         .await?;
//!     Ok(n.to_string())
//! }
//!
//! async fn login(session: Session) -> Result<&'static str, SessionError> {
//!     session.rotate().await?;                  // a fresh id, the same data
//!     session.insert("user", "alice").await?;   // written when the answer is ready
//!     Ok("welcome")
//! }
//!
//! async fn logout(session: Session) -> Result<&'static str, SessionError> {
//!     session.end().await?;                     // deleted; the cookie is cleared
//!     Ok("bye")
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     // Any backend: MemoryStore, FileStore, SqliteStore, RedisStore, Arc<dyn SessionStore>...
//!     let app = Router::new()
//!         .route("/", get(count))
//!         .route("/login", post(login))
//!         .route("/logout", post(logout))
//!         .layer(SessionLayer::new(MemoryStore::new()));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await
//! }
//! ```
//!
//! # What a request does
//!
//! - **Lazy, at most one load.** [`SessionLayer`] puts a [`Session`] into
//!   every request; the session is loaded from the store on its first use
//!   and at most once per request. A request that never uses it costs no
//!   store call and gets no cookie (unless [`SessionLayer::always_save`]).
//! - **Nothing written for nothing changed.** When the response is ready
//!   the layer commits through the core handle,
//!   [`Sessions::commit`](session_store_core::Sessions::commit): a new
//!   session is stored only if it holds data; a changed one is saved with
//!   `save_if_version`; an unchanged one only has its deadline moved
//!   (`touch`, no data rewritten), and only once per a tenth of the idle
//!   timeout ([`SessionLayer::touch_throttle`]), so read-only traffic does
//!   not write on every request. A response with a server-error status
//!   (5xx) commits nothing: the handler failed half-way, so its pending
//!   changes are dropped (what it committed itself with `update`, `rotate`
//!   or `end` stays).
//! - **Concurrent requests of one visitor lose nothing, and a hot session
//!   queues instead of failing.** Their commits take turns inside the
//!   layer, so among themselves they never run out of attempts; only
//!   writers in other instances of the app can make a commit give up
//!   ([`Error::Contended`], a 503). On a version conflict (a write that landed since
//!   the request loaded the session, or one from another instance of the
//!   app) the commit reloads the record and replays only the keys this
//!   request changed onto it, then tries again (bounded,
//!   [`SessionLayer::commit_attempts`], with a random pause between writes
//!   lost to other instances): two requests that change different keys
//!   both land. **Where both changed the same key, the later commit
//!   wins.** For a value computed from the old one (a counter, a cart) use
//!   [`Session::update`]: it commits at once and, on a conflict, runs the
//!   closure again on the fresh data, so no increment is lost.
//! - **No resurrection.** A request that loaded the session before a
//!   concurrent logout ([`Session::end`]) or login ([`Session::rotate`])
//!   never writes it back, neither under the old id nor the new one; its
//!   changes are dropped. Its answer leaves the browser's cookie as it is:
//!   the logout's or login's own answer set it, and a late answer must not
//!   undo it.
//! - **A damaged record** (bytes that do not decode) is a session that is
//!   gone: a `tracing` warning with the id's fingerprint, a fresh session,
//!   a normal answer.
//! - **The store is down:** the request is answered `503` (a failure a
//!   retry may fix: unreachable, I/O, timeout) or `500` (anything else),
//!   with a generic body ([`DEFAULT_ERROR_BODY`]), as soon as the store
//!   gives up: each backend bounds its calls (the Redis store with its
//!   `timeout`). Handlers return [`SessionError`] with `?`; a failure of the
//!   commit after the handler replaces the handler's answer, since its
//!   changes were not kept. The detail, with its chain of causes and the
//!   session's fingerprint, goes to a `tracing` `error` event. Pick another
//!   status with [`SessionLayer::error_status`], another body with
//!   [`SessionLayer::error_body`].
//!
//! # Expiry
//!
//! [`SessionLayer::expiry`] takes the core's
//! [`Expiry`]: sliding expiry
//! (`OnInactivity`), a fixed deadline, a browser-session cookie with a
//! server-side cap (`OnSessionEnd`), or, as OWASP asks, an idle timeout and
//! an absolute lifetime together (`IdleAndAbsolute`): no amount of activity
//! keeps a session past its lifetime. The store decides liveness with its
//! own clock; the cookie's `Max-Age` is the time left until the stored
//! deadline, sent whenever the deadline or the id changes.
//!
//! # The cookie
//!
//! Safe by default: `HttpOnly` (always; no script needs a session id),
//! `SameSite=Lax`, `Path=/`, no `Domain`, and `Secure`, which only
//! [`SessionLayer::secure`]`(false)` turns off, for plain-HTTP development.
//! The name is `id` unless [`SessionLayer::cookie_name`] says otherwise
//! (`__Host-…` names fit the defaults). The cookie's value is the session
//! id's 22-character text; a value that is not one, or names no live
//! session, is just "no session". A new session always gets a fresh random
//! id at its first write: an id chosen by the client is never used. When
//! several cookies of the name arrive, the first whose value is a session
//! id's text is used. The cookie is cleared (`Max-Age=0`) by the answer of
//! the request that ended the session, and only then: a cookie that names
//! no session, or cannot be a session id at all, is left alone (a new
//! session replaces it), because a cookie is cleared by name, and a late
//! answer that clears it would wipe the fresh cookie of a login that raced
//! it.
//!
//! [`SessionLayer::header`] carries the session in a request and response
//! header instead, for clients without cookies (APIs, mobile apps), under
//! the same rules (and `Cache-Control: no-store` on an answer that hands
//! one out, unless the handler set its own). [`SessionLayer::always_save`]
//! loads and touches every presented session, used or not, and
//! [`Session::set_expiry`] gives one session a policy of its own for its
//! request.
//!
//! # Owners: "your devices"
//!
//! [`Session::log_in`] records an owner; [`Session::owner_sessions`] lists
//! that owner's live sessions, [`Session::log_out_everywhere`] and
//! [`Session::log_out_other_sessions`] end them. A listed session is named
//! by a [`ListingHandle`]: the session id, or its stored hash on a store
//! that hashes ids at rest
//! ([`at_rest::Protected`](session_store_core::at_rest::Protected)), so it
//! is never compared with the cookie's id: [`Session::is_current`] marks
//! this device, and [`Session::listing_fingerprint`] is the fingerprint the
//! listing shows for it. A page written that way is the same with ids
//! hashed or not:
//!
//! ```
//! use session_store_tower::{Session, SessionError};
//!
//! async fn devices(session: Session) -> Result<String, SessionError> {
//!     let mut page = String::new();
//!     for listed in session.owner_sessions().await? {
//!         let this = if session.is_current(&listed).await? { " (this device)" } else { "" };
//!         page.push_str(&format!("{}{this}\n", listed.handle.fingerprint()));
//!     }
//!     Ok(page)
//! }
//! ```
//!
//! # Cookie mode
//!
//! [`SessionLayer::cookie`] keeps each visitor's whole session sealed in
//! the cookie (XChaCha20-Poly1305 under a rotating key ring,
//! [`CookieSessions`]), with no store
//! and the same [`Session`] API. A cookie that does not open or is past its
//! sealed deadline is a fresh session; a session too large for a cookie
//! fails its request at commit (`Error::TooLarge`, the generic `500`).
//! There is no server-side state: [`Session::owner_sessions`] and the
//! `log_out_*` calls answer `Error::Unsupported`, [`Session::end`] clears
//! this browser's cookie but does not revoke a copy of it, and an older
//! cookie can be replayed until its deadline (the core type's docs list
//! all it gives up).
//!
//! # Without axum
//!
//! The layer is a plain tower [`Layer`](tower_layer::Layer) over any
//! `Service<http::Request<_>, Response = http::Response<B>>` whose body `B`
//! is `From<&'static str>` (for the error answer). A service finds the
//! [`Session`] in the request's extensions. The feature `axum` (default)
//! adds the extractor and `IntoResponse` for [`SessionError`].
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cookie;
#[cfg(feature = "cookie")]
mod cookie_mode;
#[cfg(not(feature = "cookie"))]
mod cookie_off;
mod layer;
mod session;

#[cfg(feature = "axum")]
mod axum;

pub use cookie::{DEFAULT_COOKIE_NAME, SameSite};
pub use layer::{DEFAULT_ERROR_BODY, SessionLayer, SessionService, default_error_status};
pub use session::{Result, Session, SessionError, SessionState};

// What a layer user touches of the core, so that an app names one crate of
// this family besides its backend.
#[cfg(feature = "cookie")]
pub use cookie_mode::{CookieCommit, CookieSessions, DEFAULT_MAX_COOKIE_VALUE};
#[cfg(feature = "cookie")]
pub use session_store_core::seal::KeyRing;
pub use session_store_core::{
    Clock, Committed, Error, Expiry, Fingerprint, ListedSession, ListingHandle, ManualClock, Record, SessionData,
    SessionId, SessionStore, Sessions, SharedClock, SystemClock, Timestamp,
};

/// The README's example, compiled as a doctest so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
