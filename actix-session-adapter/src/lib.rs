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
//! - **Session keys** are the store's 22-character id text form
//!   ([`SessionId`]'s `Display`); actix-session puts them in its (signed or
//!   private) cookie. A key that does not parse as an id is simply "no
//!   session": `load` answers `None`, `update_ttl` and `delete` do nothing,
//!   `update` starts a new session. Never an error page, never a panic.
//! - **Expiry**: actix-session's TTL becomes the absolute deadline
//!   `clock.now() + ttl`, with the adapter's clock ([`Adapter::with_clock`]);
//!   give the adapter the wrapped store's clock, which decides liveness
//!   (`now < expires_at`).
//! - **Values**: actix-session already holds each value as JSON text; it is
//!   stored as is and handed back as is. A value that is not valid JSON is
//!   refused with `SaveError::Serialization`.
//! - **A record that cannot be decoded** (damaged bytes, a format this
//!   version does not know) is a session that is gone: `load` answers
//!   `None` and logs a `tracing` warning with the session's
//!   [fingerprint](SessionId::fingerprint), so actix-session starts a fresh
//!   session under a fresh key and the request is answered normally.
//!   `update`, `update_ttl` and `delete` treat it the same way (nothing is
//!   written; a warning is logged). The damaged record is left alone (a
//!   newer version of the app may have written it); it expires like any
//!   other.
//! - **Errors** reach actix-session with a generic message
//!   ([`STORE_FAILED`], in the `Other` variants), never the store's own
//!   text, which may hold a backend's reply. The detail, with its whole
//!   chain of causes and the session's fingerprint (never the id), goes to
//!   a `tracing` `error` event of target `session_store_actix_session`.
//!   actix-session answers a store failure with an empty HTTP 500 body.
//!
//! # Concurrent requests
//!
//! What this adapter guarantees, and what it does not:
//!
//! - `save` (a new session) never overwrites a live one: it maps to the
//!   store's `create` and draws a fresh id on a collision.
//! - `update` is **last writer wins per request**: it loads the stored
//!   version and writes with
//!   [`save_if_version`](session_store_core::SessionStore::save_if_version),
//!   retrying when another request wrote in between, so the request that
//!   finishes last is kept whole and an earlier one's change is lost; nobody
//!   sees a mix. Each retry means another request's write landed, so it
//!   gives up (with a conflict error) only when more than 31 other requests
//!   write the same session during one update. What the version check buys: **a session deleted meanwhile
//!   (a logout, `purge`, `renew`) or expired is never brought back by a late
//!   write**. Such an `update` writes nothing and returns the old key, which
//!   loads nothing, so the next request starts a new session.
//! - `renew` is actix-session's delete-then-save: the old key is deleted and
//!   the data is stored under a fresh key, so the old key never loads again.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use actix_session::storage::{LoadError, SaveError, SessionKey, UpdateError};
use actix_web::cookie::time::Duration;
use session_store_core::{Error, Record, SessionData, SessionId, SharedClock, Timestamp, system_clock};

/// How many times `update` re-reads the record after a concurrent write
/// before giving up with a conflict. Each failed attempt means another
/// update of the same session succeeded in between, so this many attempts
/// always suffice while fewer requests than this update one session at once.
const UPDATE_ATTEMPTS: usize = 32;

/// Any [`session_store_core::SessionStore`] as an
/// [`actix_session::storage::SessionStore`].
///
/// Cloning is cheap and shares the wrapped store. `S` may be unsized, so an
/// `Adapter<dyn SessionStore>` serves a backend chosen at run time
/// ([`Adapter::from_arc`]).
pub struct Adapter<S: ?Sized> {
    clock: SharedClock,
    store: Arc<S>,
}

impl<S> Adapter<S> {
    /// Wraps `store`; the adapter's clock is the system clock.
    #[must_use]
    pub fn new(store: S) -> Self {
        Self::from_arc(Arc::new(store))
    }
}

impl<S: ?Sized> Adapter<S> {
    /// Wraps a shared store (also `Arc<dyn SessionStore>`).
    #[must_use]
    pub fn from_arc(store: Arc<S>) -> Self {
        Self {
            clock: system_clock(),
            store,
        }
    }

    /// The clock TTLs are counted from. Give it the wrapped store's clock
    /// (default: the system clock).
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The wrapped store.
    #[must_use]
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    fn deadline(&self, ttl: &Duration) -> Timestamp {
        deadline_after(self.clock.now(), ttl)
    }
}

impl<S: ?Sized> Clone for Adapter<S> {
    fn clone(&self) -> Self {
        Self {
            clock: Arc::clone(&self.clock),
            store: Arc::clone(&self.store),
        }
    }
}

impl<S: ?Sized + fmt::Debug> fmt::Debug for Adapter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adapter")
            .field("store", &self.store)
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

/// The message every store failure reaches actix-session with: generic, so
/// nothing internal (a backend's reply, an id) can end up in a response or
/// an outside log. The detail goes to the `tracing` log.
pub const STORE_FAILED: &str = "the session store failed (the detail is in the server log)";

/// Logs a store failure of `operation` on session `id` with its whole chain
/// of causes, and answers the generic error actix-session gets instead.
fn failed(operation: &'static str, id: SessionId, error: &Error) -> anyhow::Error {
    tracing::error!(session = %id.fingerprint(), operation, error = %error.chain(), "session store failed");
    anyhow::Error::msg(STORE_FAILED)
}

/// Logs that the stored session `id` could not be decoded and is treated as
/// gone.
fn gone(operation: &'static str, id: SessionId, error: &Error) {
    tracing::warn!(
        session = %id.fingerprint(),
        operation,
        error = %error.chain(),
        "stored session could not be decoded; treating it as gone (a fresh session starts)"
    );
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

impl<S> Adapter<S>
where
    S: session_store_core::SessionStore + ?Sized,
{
    async fn create(&self, data: SessionData, ttl: &Duration) -> Result<SessionKey, anyhow::Error> {
        let now = self.clock.now();
        let mut record = Record::with_deadline(SessionId::random(), data, now, deadline_after(now, ttl));
        if let Err(e) = self.store.create_with_fresh_id(&mut record).await {
            return Err(failed("create", record.id, &e));
        }
        to_key(record.id)
    }
}

impl<S> actix_session::storage::SessionStore for Adapter<S>
where
    S: session_store_core::SessionStore + ?Sized,
{
    async fn load(&self, session_key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let Some(id) = parse_key(session_key) else {
            return Ok(None);
        };
        match self.store.load(&id).await {
            Ok(record) => Ok(record.map(|r| to_state(&r.data))),
            // Not `LoadError::Deserialization`: actix-session would keep the
            // key and write the new state over the damaged record with
            // `update`, which a store may refuse for a record it cannot read.
            Err(e) if e.is_decode() => {
                gone("load", id, &e);
                Ok(None)
            }
            Err(e) => Err(LoadError::Other(failed("load", id, &e))),
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
        let mut last = None;
        for _ in 0..UPDATE_ATTEMPTS {
            let stored = match self.store.load(&id).await {
                Ok(stored) => stored,
                Err(e) if e.is_decode() => {
                    // Damaged meanwhile: gone, like a deleted one below.
                    gone("update", id, &e);
                    None
                }
                Err(e) => return Err(UpdateError::Other(failed("update", id, &e))),
            };
            let Some(stored) = stored else {
                // Deleted or expired meanwhile: a late write never brings it back.
                return Ok(session_key);
            };
            let record = Record {
                id,
                data: data.clone(),
                created_at: stored.created_at,
                expires_at: self.deadline(ttl),
                version: stored.version,
            };
            match self.store.save_if_version(&record).await {
                Ok(_) => return Ok(session_key),
                Err(e @ Error::Conflict { .. }) => last = Some(e),
                Err(e) if e.is_decode() => {
                    gone("update", id, &e);
                    return Ok(session_key);
                }
                Err(e) => return Err(UpdateError::Other(failed("update", id, &e))),
            }
        }
        let conflict = last.unwrap_or(Error::Conflict { id, expected: 0 });
        tracing::error!(
            session = %id.fingerprint(),
            attempts = UPDATE_ATTEMPTS,
            error = %conflict.chain(),
            "session kept changing under every attempt to update it"
        );
        Err(UpdateError::Other(anyhow::Error::msg(STORE_FAILED)))
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        if let Some(id) = parse_key(session_key) {
            match self.store.touch(&id, self.deadline(ttl)).await {
                Ok(_) => {}
                Err(e) if e.is_decode() => gone("update_ttl", id, &e),
                Err(e) => return Err(failed("update_ttl", id, &e)),
            }
        }
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        if let Some(id) = parse_key(session_key) {
            match self.store.delete(&id).await {
                Ok(()) => {}
                Err(e) if e.is_decode() => gone("delete", id, &e),
                Err(e) => return Err(failed("delete", id, &e)),
            }
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
