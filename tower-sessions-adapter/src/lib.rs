//! Use any session-store backend as a [tower-sessions] store (axum).
//!
//! [`Adapter`] wraps any [`session_store_core::SessionStore`] (memory, file,
//! SQLite, Redis, or your own) and implements
//! [`tower_sessions_core::SessionStore`] for it, so it plugs into
//! `tower_sessions::SessionManagerLayer`:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use session_store_memory::MemoryStore;
//! use session_store_tower_sessions::Adapter;
//! use tower_sessions::{Session, SessionManagerLayer};
//!
//! async fn count(session: Session) -> String {
//!     let n: u64 = session.get("count").await.ok().flatten().unwrap_or(0) + 1;
//!     session.insert("count", n).await.expect("a number serializes");
//!     n.to_string()
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     // Any backend of this family: MemoryStore, FileStore, SqliteStore, RedisStore...
//!     let store = Adapter::new(MemoryStore::new());
//!     let app = Router::new()
//!         .route("/", get(count))
//!         .layer(SessionManagerLayer::new(store).with_secure(false));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await
//! }
//! ```
//!
//! # What maps to what
//!
//! - **Ids** are the same 128 bits: tower-sessions' `Id(i128)` and the
//!   store's [`SessionId`] convert by a bit cast ([`to_session_id`],
//!   [`to_tower_id`]). tower-sessions writes the cookie as base64 of the
//!   bits in little-endian order, which is exactly the store's 22-character
//!   text form, so the cookie reads like the file name or key in the store.
//! - **Expiry**: tower-sessions' `expiry_date` becomes the record's absolute
//!   deadline, truncated to the millisecond ([`to_timestamp`]); a loaded
//!   deadline converts back ([`to_offset_date_time`]), clamped to the years
//!   -9999..=9999 that `time` can represent. Liveness is decided by the
//!   wrapped store with its own clock (`now < expires_at`), so give the store
//!   and the adapter ([`Adapter::with_clock`]) the same clock.
//! - **Values**: each `serde_json::Value` is kept as its JSON text
//!   ([`SessionData::insert_json`]) and parsed back on load; a stored value
//!   that is not valid JSON is a decode error, never a panic.
//! - **A record that cannot be decoded** (damaged bytes, a value that is
//!   not JSON, a format this version does not know) is a session that is
//!   gone: `load` answers `None` and logs a `tracing` warning with the
//!   session's [fingerprint](SessionId::fingerprint), so tower-sessions
//!   starts a fresh session under a fresh id and the request is answered
//!   normally. The damaged record itself is left alone (a newer version of
//!   the app may have written it); it expires like any other.
//! - **Errors** reach tower-sessions with a generic message
//!   ([`STORE_FAILED`], as `Backend`), never the store's own text (which may
//!   hold a backend's reply); an oversized record becomes `Encode` with its
//!   size and the limit. The detail, with its whole chain of causes and the
//!   session's fingerprint, goes to a `tracing` `error` event (`warn` for
//!   an oversized record) of target `session_store_tower_sessions`.
//!
//! # Concurrent requests
//!
//! What this adapter guarantees, and what it does not:
//!
//! - `create` never overwrites a live session: it maps to the store's
//!   [`create`](session_store_core::SessionStore::create) and, on an id
//!   collision, draws a fresh id and tries again, as tower-sessions asks.
//! - `save` is an unconditional, atomic overwrite: **last writer wins per
//!   request**. When two requests of one session both change it, the one
//!   that finishes last is kept whole and the other's change is lost; a
//!   reader never sees a mix of the two. tower-sessions' `Record` carries no
//!   version, so the adapter cannot use the store's
//!   [`save_if_version`](session_store_core::SessionStore::save_if_version);
//!   when lost updates matter, use the store directly with it.
//! - For the same reason a request that loaded the session before a
//!   concurrent logout (`Session::flush`) or login (`Session::cycle_id`) and
//!   changes it afterwards writes it back under the id it loaded, as
//!   tower-sessions' own stores do. Sequential requests are safe: after
//!   `cycle_id` the old id never loads again, after `flush` the session is
//!   gone.
//! - `Session::cycle_id` is tower-sessions' delete-then-create: the old id
//!   is deleted at once and the data is stored under a fresh id at the end
//!   of the request.
//! - `created_at` (used by the store's absolute-lifetime policies) is not
//!   known to tower-sessions: the adapter stores the time of the write. Use
//!   tower-sessions' `Expiry` to bound the session's life.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use session_store_core::{Error, Record, SessionData, SessionId, SharedClock, Timestamp, system_clock};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record as TowerRecord};
use tower_sessions_core::session_store::{self, Error as TowerError};

/// Any [`session_store_core::SessionStore`] as a
/// [`tower_sessions_core::SessionStore`].
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

    /// The clock the adapter stamps records' `created_at` with. Give it the
    /// wrapped store's clock (default: the system clock).
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

/// The store's id for a tower-sessions id: the same 128 bits.
#[must_use]
pub fn to_session_id(id: Id) -> SessionId {
    SessionId::from_u128(id.0 as u128)
}

/// The tower-sessions id for a store id: the same 128 bits.
#[must_use]
pub fn to_tower_id(id: SessionId) -> Id {
    Id(id.as_u128() as i128)
}

/// A tower-sessions expiry date as a store deadline, truncated towards the
/// past to the millisecond (so a deadline never moves later).
#[must_use]
pub fn to_timestamp(date: OffsetDateTime) -> Timestamp {
    let millis = date.unix_timestamp_nanos().div_euclid(1_000_000);
    // `time` spans about ±10,000 years, well inside i64 milliseconds.
    Timestamp::from_millis(i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX }))
}

/// A store deadline as a tower-sessions expiry date, clamped to the range
/// `time` represents (years -9999..=9999).
#[must_use]
pub fn to_offset_date_time(deadline: Timestamp) -> OffsetDateTime {
    let nanos = i128::from(deadline.as_millis()) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or_else(|_| {
        if nanos < 0 {
            time::PrimitiveDateTime::MIN.assume_utc()
        } else {
            time::PrimitiveDateTime::MAX.assume_utc()
        }
    })
}

/// The message every store failure reaches tower-sessions with: generic, so
/// nothing internal (a backend's reply, an id) can end up in a response
/// body or an outside log. The detail goes to the `tracing` log.
pub const STORE_FAILED: &str = "the session store failed (the detail is in the server log)";

/// A store error as a tower-sessions store error, with a generic message:
/// an oversized record becomes `Encode` (its message says the size and the
/// limit, nothing internal), every other failure `Backend` with
/// [`STORE_FAILED`]. The detail is not kept; log it first
/// ([`Error::chain`]).
#[must_use]
pub fn to_tower_error(error: &Error) -> TowerError {
    match error {
        Error::TooLarge { .. } => TowerError::Encode(error.to_string()),
        _ => TowerError::Backend(STORE_FAILED.to_owned()),
    }
}

/// Logs a store failure of `operation` on session `id` with its whole
/// chain of causes, and turns it into a generic tower-sessions error.
fn failed(operation: &'static str, id: SessionId, error: &Error) -> TowerError {
    if matches!(error, Error::TooLarge { .. }) {
        tracing::warn!(session = %id.fingerprint(), operation, error = %error.chain(), "session refused");
    } else {
        tracing::error!(session = %id.fingerprint(), operation, error = %error.chain(), "session store failed");
    }
    to_tower_error(error)
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

impl<S: ?Sized> Adapter<S> {
    fn to_record(&self, record: &TowerRecord) -> Record {
        let mut data = SessionData::new();
        for (key, value) in &record.data {
            data.insert_json(key.as_str(), value);
        }
        Record::with_deadline(
            to_session_id(record.id),
            data,
            self.clock.now(),
            to_timestamp(record.expiry_date),
        )
    }
}

fn to_tower_record(record: &Record) -> Result<TowerRecord, Error> {
    let mut data = HashMap::with_capacity(record.data.len());
    for (key, json) in record.data.iter() {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            Error::decode(
                record.id,
                format!("the value under key {key:?} is not valid JSON"),
                Some(Box::new(e)),
            )
        })?;
        data.insert(key.to_owned(), value);
    }
    Ok(TowerRecord {
        id: to_tower_id(record.id),
        data,
        expiry_date: to_offset_date_time(record.expires_at),
    })
}

#[session_store_core::async_trait]
impl<S> tower_sessions_core::SessionStore for Adapter<S>
where
    S: session_store_core::SessionStore + ?Sized + 'static,
{
    /// Inserts a new session without ever overwriting a live one: on an id
    /// collision a fresh id is drawn and `record.id` updated.
    async fn create(&self, record: &mut TowerRecord) -> session_store::Result<()> {
        let mut ours = self.to_record(record);
        if let Err(e) = self.store.create_with_fresh_id(&mut ours).await {
            return Err(failed("create", ours.id, &e));
        }
        record.id = to_tower_id(ours.id);
        Ok(())
    }

    /// Overwrites the session (last writer wins, atomically). A stored
    /// record that cannot be decoded and that the store refuses to
    /// overwrite (the file store does) is a session that is gone: the write
    /// is dropped with a warning, as for a session deleted meanwhile.
    async fn save(&self, record: &TowerRecord) -> session_store::Result<()> {
        let ours = self.to_record(record);
        match self.store.save(&ours).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_decode() => {
                gone("save", ours.id, &e);
                Ok(())
            }
            Err(e) => Err(failed("save", ours.id, &e)),
        }
    }

    /// The session if it is live by the store's clock. A stored record that
    /// cannot be decoded is "no session" (logged as a warning with the
    /// session's fingerprint), so tower-sessions starts a fresh one.
    async fn load(&self, id: &Id) -> session_store::Result<Option<TowerRecord>> {
        let id = to_session_id(*id);
        let loaded = self
            .store
            .load(&id)
            .await
            .and_then(|r| r.as_ref().map(to_tower_record).transpose());
        match loaded {
            Ok(record) => Ok(record),
            Err(e) if e.is_decode() => {
                gone("load", id, &e);
                Ok(None)
            }
            Err(e) => Err(failed("load", id, &e)),
        }
    }

    /// Removes the session; an absent one is not an error.
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let id = to_session_id(*id);
        match self.store.delete(&id).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_decode() => {
                gone("delete", id, &e);
                Ok(())
            }
            Err(e) => Err(failed("delete", id, &e)),
        }
    }
}

/// Expired sessions are removed by the store's
/// [`purge_expired`](session_store_core::SessionStore::purge_expired), so
/// tower-sessions' deletion task works too. (`session_store_core::Purger`
/// does the same without tower-sessions' `deletion-task` feature.)
#[session_store_core::async_trait]
impl<S> tower_sessions_core::ExpiredDeletion for Adapter<S>
where
    S: session_store_core::SessionStore + ?Sized + 'static,
{
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self.store.purge_expired().await {
            Ok(removed) => {
                tracing::info!(removed, "purged expired sessions");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e.chain(), "purging expired sessions failed");
                Err(to_tower_error(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_bits() {
        for bits in [0u128, 1, u128::MAX, 1 << 127, 0x0123_4567_89ab_cdef_0011_2233_4455_6677] {
            let id = SessionId::from_u128(bits);
            assert_eq!(to_session_id(to_tower_id(id)), id);
            assert_eq!(to_tower_id(id).0 as u128, bits);
        }
        let tower = Id(i128::MIN);
        assert_eq!(to_tower_id(to_session_id(tower)), tower);
    }

    #[test]
    fn the_cookie_text_is_the_store_id_text() {
        for _ in 0..100 {
            let id = SessionId::random();
            assert_eq!(to_tower_id(id).to_string(), id.to_string());
        }
    }

    #[test]
    fn expiry_round_trips_to_the_millisecond() {
        for millis in [0i64, 1, -1, 1_700_000_000_123, -62_000_000_000_000] {
            let t = Timestamp::from_millis(millis);
            assert_eq!(to_timestamp(to_offset_date_time(t)), t);
        }
        // Sub-millisecond parts are truncated towards the past.
        let date = OffsetDateTime::from_unix_timestamp_nanos(1_999_999).unwrap();
        assert_eq!(to_timestamp(date), Timestamp::from_millis(1));
        let before = OffsetDateTime::from_unix_timestamp_nanos(-1).unwrap();
        assert_eq!(to_timestamp(before), Timestamp::from_millis(-1));
        // Out of `time`'s range: clamped, still far in the future or past.
        assert_eq!(to_offset_date_time(Timestamp::MAX).year(), 9999);
        assert_eq!(to_offset_date_time(Timestamp::from_millis(i64::MIN)).year(), -9999);
    }

    #[test]
    fn errors_reach_tower_sessions_with_a_generic_message() {
        let io = std::io::Error::other("WRONGTYPE disk on fire");
        match to_tower_error(&Error::backend("writing the record", io)) {
            TowerError::Backend(message) => assert_eq!(message, STORE_FAILED),
            other => panic!("expected Backend, got {other:?}"),
        }
        let id = SessionId::random();
        for error in [
            Error::decode(id, "garbage", None),
            Error::Conflict { id, expected: 1 },
            Error::IdCollision { id },
            Error::Timeout(std::time::Duration::from_secs(1)),
        ] {
            match to_tower_error(&error) {
                TowerError::Backend(message) => assert_eq!(message, STORE_FAILED, "{error}"),
                other => panic!("{error}: expected Backend, got {other:?}"),
            }
        }
        match to_tower_error(&Error::TooLarge { size: 10, limit: 5 }) {
            TowerError::Encode(message) => assert!(message.contains("over this store's limit of 5"), "{message}"),
            other => panic!("expected Encode, got {other:?}"),
        }
    }
}

/// The README's example, compiled as a doctest so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
