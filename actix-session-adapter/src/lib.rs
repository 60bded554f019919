//! Use any session-store backend as an [actix-session] store (actix-web).
//!
//! [`Adapter`] wraps any [`session_store_core::SessionStore`] (memory, file,
//! SQLite, Redis, or your own) and implements
//! [`actix_session::storage::SessionStore`] for it, so it plugs into
//! [`actix_session::SessionMiddleware`]:
//!
//! ```no_run
//! use actix_session::{Session, SessionMiddleware};
//! use actix_web::cookie::Key;
//! use actix_web::{App, HttpServer, web};
//! use session_store_actix_session::Adapter;
//! use session_store_memory::MemoryStore;
//!
//! async fn count(session: Session) -> actix_web::Result<String> {
//!     let n = session.get::<u64>("count")?.unwrap_or(0) + 1;
//!     session.insert("count", n)?;
//!     Ok(n.to_string())
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     // Any backend of this family: MemoryStore, FileStore, SqliteStore, RedisStore...
//!     let store = Adapter::new(MemoryStore::new());
//!     // Read the cookie key from your configuration in production.
//!     let key = Key::generate();
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(SessionMiddleware::new(store.clone(), key.clone()))
//!             .route("/", web::get().to(count))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! # What maps to what
//!
//! The adapter holds the core's session handle ([`Sessions`]) over the
//! store and calls its record-level operations, as the tower-sessions
//! adapter does, so both behave the same:
//!
//! - **Session keys** are the store's 22-character id text form
//!   ([`SessionId`]'s `Display`); actix-session puts them in its (signed or
//!   private) cookie. A key that does not parse as an id is simply "no
//!   session": `load` answers `None`, `update_ttl` and `delete` do nothing,
//!   `update` starts a new session. Never an error page, never a panic.
//! - **Expiry**: actix-session's TTL becomes the absolute deadline
//!   `now + ttl` ([`deadline_after`]), `now` by the store's own clock
//!   ([`SessionStore::clock`](session_store_core::SessionStore::clock)),
//!   which also decides liveness (`now < expires_at`): there is no second
//!   clock to pair.
//! - **Values**: actix-session already holds each value as JSON text; it is
//!   stored as is and handed back as is. A value that is not valid JSON is
//!   refused with `SaveError::Serialization`.
//! - **A record that cannot be decoded** (damaged bytes, a value that is
//!   not JSON, a format this version does not know, a Redis key of another
//!   type) is a session that is gone: `load` answers `None` and a `tracing`
//!   warning names the session's [fingerprint](SessionId::fingerprint) and
//!   the cause ([`Sessions::load_record`]), so actix-session starts a fresh
//!   session under a fresh key and the request is answered normally.
//!   `update`, `update_ttl` and `delete` treat it the same way (nothing is
//!   written; a warning is logged). The damaged record is left alone (a
//!   newer version of the app may have written it); it expires like any
//!   other.
//! - **Errors** reach actix-session with a generic message
//!   ([`STORE_FAILED`], in the `Other` variants), never the store's own
//!   text, which may hold a backend's reply. The detail, with its whole
//!   chain of causes and the session's fingerprint (never the id), goes to
//!   a `tracing` `error` event of target `session_store_core::raw::adapter`
//!   ([`log_failure`]). actix-session answers a store failure with an empty
//!   HTTP 500 body.
//!
//! # Concurrent requests
//!
//! What this adapter guarantees, and what it does not:
//!
//! - `save` (a new session) never overwrites a live one: it draws a fresh
//!   id on a collision ([`Sessions::create_record`]).
//! - `update` is **last writer wins per request**
//!   ([`Sessions::replace_record`]): it loads the stored version and writes
//!   with [`save_if_version`](session_store_core::SessionStore::save_if_version),
//!   retrying when another request wrote in between, so the request that
//!   finishes last is kept whole and an earlier one's change is lost; nobody
//!   sees a mix. One session's writes through one adapter take turns, and
//!   each retry means a write from elsewhere (another instance of the app)
//!   landed, so it gives up (with `Error::Contended`) only when more than
//!   31 ([`REPLACE_ATTEMPTS`] - 1) such writes land during one update.
//!   What the
//!   version check buys: **a session deleted meanwhile (a logout, `purge`,
//!   `renew`) or expired is never brought back by a late write**. Such an
//!   `update` writes nothing and returns the old key, which loads nothing,
//!   so the next request starts a new session. The session's created time
//!   is kept.
//! - `renew` is actix-session's delete-then-save: the old key is deleted and
//!   the data is stored under a fresh key, so the old key never loads again.
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use actix_session::storage::{LoadError, SaveError, SessionKey, UpdateError};
use actix_web::cookie::time::Duration;
use session_store_core::raw::adapter::{REPLACE_ATTEMPTS, log_failure};
use session_store_core::{Error, SessionData, SessionId, Sessions, Timestamp};

pub use session_store_core::raw::adapter::STORE_FAILED;

/// Any [`session_store_core::SessionStore`] as an
/// [`actix_session::storage::SessionStore`].
///
/// Cloning is cheap and shares the wrapped store. `S` may be unsized, so an
/// `Adapter<dyn SessionStore>` serves a backend chosen at run time
/// ([`Adapter::from_arc`]).
pub struct Adapter<S: ?Sized> {
    sessions: Sessions<Arc<S>>,
}

impl<S: session_store_core::SessionStore> Adapter<S> {
    /// Wraps `store`; time is the store's own clock.
    #[must_use]
    pub fn new(store: S) -> Self {
        Self::from_arc(Arc::new(store))
    }
}

impl<S: session_store_core::SessionStore + ?Sized> Adapter<S> {
    /// Wraps a shared store (also `Arc<dyn SessionStore>`).
    #[must_use]
    pub fn from_arc(store: Arc<S>) -> Self {
        Self {
            sessions: Sessions::new(store).commit_attempts(REPLACE_ATTEMPTS),
        }
    }

    /// The wrapped store.
    #[must_use]
    pub fn store(&self) -> &Arc<S> {
        self.sessions.store()
    }

    fn deadline(&self, ttl: &Duration) -> Timestamp {
        deadline_after(self.sessions.clock().now(), ttl)
    }

    async fn create(&self, data: SessionData, ttl: &Duration) -> Result<SessionKey, anyhow::Error> {
        let id = SessionId::random();
        match self.sessions.create_record(id, data, self.deadline(ttl)).await {
            Ok(stored) => to_key(stored.id),
            Err(e) => Err(failed("create", &id, &e)),
        }
    }
}

impl<S: ?Sized> Clone for Adapter<S> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
        }
    }
}

impl<S: session_store_core::SessionStore + ?Sized + fmt::Debug> fmt::Debug for Adapter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adapter")
            .field("store", self.sessions.store())
            .finish_non_exhaustive()
    }
}

/// The deadline `ttl` after `now`, to the millisecond, saturating; a
/// negative TTL gives a deadline in the past (an expired session).
#[must_use]
pub fn deadline_after(now: Timestamp, ttl: &Duration) -> Timestamp {
    let millis = ttl.whole_milliseconds();
    let millis = i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX });
    Timestamp::from_millis(now.as_millis().saturating_add(millis))
}

/// The session id a session key names, or `None` for a key that is not one
/// of this family's ids (a malformed or foreign cookie).
#[must_use]
pub fn parse_key(key: &SessionKey) -> Option<SessionId> {
    key.as_ref().parse().ok()
}

/// The session key of an id: its 22-character text form.
///
/// # Errors
///
/// Never in practice (actix-session refuses only keys over 4064 bytes); the
/// error is passed on rather than unwrapped.
pub fn to_key(id: SessionId) -> Result<SessionKey, anyhow::Error> {
    SessionKey::try_from(id.to_string()).map_err(anyhow::Error::new)
}

/// Logs a store failure of `operation` on session `id` and answers the
/// generic error actix-session gets instead.
fn failed(operation: &'static str, id: &SessionId, error: &Error) -> anyhow::Error {
    log_failure(operation, Some(id), error);
    anyhow::Error::msg(STORE_FAILED)
}

fn to_data(state: HashMap<String, String>) -> Result<SessionData, anyhow::Error> {
    for (key, json) in &state {
        serde_json::from_str::<serde::de::IgnoredAny>(json)
            .map_err(|e| anyhow::Error::new(e).context(format!("the value under key {key:?} is not valid JSON")))?;
    }
    Ok(state.into_iter().collect())
}

fn to_state(data: &SessionData) -> HashMap<String, String> {
    data.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

impl<S> actix_session::storage::SessionStore for Adapter<S>
where
    S: session_store_core::SessionStore + ?Sized,
{
    async fn load(&self, session_key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let Some(id) = parse_key(session_key) else {
            return Ok(None);
        };
        // A damaged record is `None` here, not `LoadError::Deserialization`:
        // actix-session would keep the key and write the new state over the
        // damaged record with `update`, which a store may refuse for a
        // record it cannot read.
        match self.sessions.load_record(&id).await {
            Ok(record) => Ok(record.map(|r| to_state(&r.data))),
            Err(e) => Err(LoadError::Other(failed("load", &id, &e))),
        }
    }

    async fn save(&self, session_state: HashMap<String, String>, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let data = to_data(session_state).map_err(SaveError::Serialization)?;
        self.create(data, ttl).await.map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let data = to_data(session_state).map_err(UpdateError::Serialization)?;
        let Some(id) = parse_key(&session_key) else {
            // Not one of our ids: start a new session with this data.
            return self.create(data, ttl).await.map_err(UpdateError::Other);
        };
        // Gone meanwhile (deleted, expired, damaged): nothing is written, and
        // the old key loads nothing, so the next request starts afresh.
        match self.sessions.replace_record(&id, data, self.deadline(ttl)).await {
            Ok(_) => Ok(session_key),
            Err(e) => Err(UpdateError::Other(failed("update", &id, &e))),
        }
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        if let Some(id) = parse_key(session_key) {
            self.sessions
                .touch_record(&id, self.deadline(ttl))
                .await
                .map_err(|e| failed("update_ttl", &id, &e))?;
        }
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        if let Some(id) = parse_key(session_key) {
            self.sessions
                .delete_record(&id)
                .await
                .map_err(|e| failed("delete", &id, &e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate() {
        let now = Timestamp::from_millis(1_000);
        assert_eq!(
            deadline_after(now, &Duration::seconds(2)),
            Timestamp::from_millis(3_000)
        );
        assert_eq!(
            deadline_after(now, &Duration::milliseconds(-1_500)),
            Timestamp::from_millis(-500)
        );
        assert_eq!(deadline_after(now, &Duration::MAX), Timestamp::MAX);
        assert_eq!(
            deadline_after(now, &Duration::MIN),
            Timestamp::from_millis(i64::MIN + 1_000)
        );
    }

    #[test]
    fn keys_are_the_id_text_form() {
        let id = SessionId::random();
        let key = to_key(id).unwrap();
        assert_eq!(key.as_ref(), id.to_string());
        assert_eq!(parse_key(&key), Some(id));
        for bad in ["", "../../etc/passwd", "AAAAAAAAAAAAAAAAAAAAA*", "ÿÿÿÿÿÿÿÿÿÿÿ", "A"] {
            assert_eq!(
                parse_key(&SessionKey::try_from(bad.to_owned()).unwrap()),
                None,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn values_must_be_json() {
        let ok: HashMap<String, String> = [("k".to_owned(), "[1,{\"a\":null}]".to_owned())].into();
        assert_eq!(to_data(ok).unwrap().get_raw("k"), Some("[1,{\"a\":null}]"));
        let bad: HashMap<String, String> = [("k".to_owned(), "{oops".to_owned())].into();
        let e = to_data(bad).unwrap_err();
        assert!(format!("{e:#}").contains("\"k\""), "{e:#}");
    }
}

/// The README's example, compiled as a doctest so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
