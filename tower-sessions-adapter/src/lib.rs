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
//! The adapter holds the core's session handle
//! ([`Sessions`]) over the store and calls its record-level operations, as
//! the actix-session adapter does, so both behave the same:
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
//!   wrapped store with its own clock (`now < expires_at`), and the adapter
//!   takes its clock from the store
//!   ([`SessionStore::clock`](session_store_core::SessionStore::clock)):
//!   there is no second clock to pair.
//! - **Values**: each `serde_json::Value` is kept as its JSON text
//!   ([`SessionData::insert_json`]) and parsed back on load; a stored value
//!   that is not valid JSON is a damaged record, never a panic.
//! - **A record that cannot be decoded** (damaged bytes, a value that is
//!   not JSON, a format this version does not know, a Redis key of another
//!   type) is a session that is gone: `load` answers `None` and a `tracing`
//!   warning names the session's [fingerprint](SessionId::fingerprint) and
//!   the cause ([`Sessions::load_record`]), so tower-sessions starts a fresh
//!   session under a fresh id and the request is answered normally. The
//!   damaged record itself is left alone (a newer version of the app may
//!   have written it); it expires like any other. `save` and `delete` treat
//!   it the same way.
//! - **Errors** reach tower-sessions with a generic message
//!   ([`STORE_FAILED`], as `Backend`), never the store's own text (which may
//!   hold a backend's reply); an oversized record becomes `Encode` with its
//!   size and the limit. The detail, with its whole chain of causes and the
//!   session's fingerprint, goes to a `tracing` `error` event (`warn` for
//!   an oversized record) of target `session_store_core::raw::adapter`
//!   ([`log_failure`]).
//!
//! # Concurrent requests
//!
//! What this adapter guarantees, and what it does not:
//!
//! - `create` never overwrites a live session: on an id collision it draws
//!   a fresh id, as tower-sessions asks
//!   ([`Sessions::create_record`]).
//! - `save` is **last writer wins per request**, atomically: when two
//!   requests of one session both change it, the one that finishes last is
//!   kept whole and the other's change is lost; a reader never sees a mix
//!   of the two. tower-sessions hands over the whole state, not what the
//!   request changed, so the core's replay of changed keys cannot apply.
//! - The write is version-checked ([`Sessions::replace_record`]): **a
//!   session deleted meanwhile (a logout, `Session::flush`, the old id of a
//!   `Session::cycle_id`) or expired is never brought back by a late
//!   `save`**; such a save writes nothing, and the next request with that
//!   cookie starts a new session. This costs one read of the record before
//!   each write. One consequence: used as the *cache* of tower-sessions'
//!   `CachingSessionStore`, this adapter is never filled by the cache's
//!   `save` of a record it does not hold (every load goes to the backing
//!   store, which stays correct).
//! - `Session::cycle_id` is tower-sessions' delete-then-create: the old id
//!   is deleted at once and the data is stored under a fresh id at the end
//!   of the request.
//! - `created_at` (used by the store's absolute-lifetime policies) is the
//!   time of `create` by the store's clock, and `save` keeps it.
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::sync::Arc;

use session_store_core::raw::adapter::{REPLACE_ATTEMPTS, log_failure};
use session_store_core::{Error, Record, SessionData, SessionId, Sessions, Timestamp};
use time::OffsetDateTime;

pub use session_store_core::raw::adapter::STORE_FAILED;

/// Any [`session_store_core::SessionStore`] as a
/// [`tower_sessions_core::SessionStore`].
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

/// The conversions and the trait impls, once per tower-sessions-core
/// version (`$core`: the crate's name in this package).
macro_rules! tower_sessions_impls {
    ($core:ident) => {
        use $core::session::{Id, Record as TowerRecord};
        use $core::session_store::Error as TowerError;

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

        /// A store error as a tower-sessions store error, with a generic message:
        /// an oversized record becomes `Encode` (its message says the size and the
        /// limit, nothing internal), every other failure `Backend` with
        /// [`STORE_FAILED`]. The detail is not kept; log it first
        /// ([`log_failure`]).
        #[must_use]
        pub fn to_tower_error(error: &Error) -> TowerError {
            match error {
                Error::TooLarge { .. } => TowerError::Encode(error.to_string()),
                _ => TowerError::Backend(STORE_FAILED.to_owned()),
            }
        }

        /// Logs a store failure of `operation` on session `id` and turns it into a
        /// generic tower-sessions error.
        fn failed(operation: &'static str, id: &SessionId, error: &Error) -> TowerError {
            log_failure(operation, Some(id), error);
            to_tower_error(error)
        }

        /// A tower-sessions record's values as session data (JSON text each).
        fn to_data(record: &TowerRecord) -> SessionData {
            let mut data = SessionData::new();
            for (key, value) in &record.data {
                data.insert_json(key.as_str(), value);
            }
            data
        }

        /// A stored record as a tower-sessions record; a value that is not JSON is
        /// a decode error (a damaged record).
        fn to_tower_record(record: &Record) -> Result<TowerRecord, Error> {
            Ok(TowerRecord {
                id: to_tower_id(record.id),
                data: record.json_values()?,
                expiry_date: to_offset_date_time(record.expires_at),
            })
        }

        #[session_store_core::async_trait]
        impl<S> $core::SessionStore for crate::Adapter<S>
        where
            S: session_store_core::SessionStore + ?Sized + 'static,
        {
            /// Inserts a new session without ever overwriting a live one: on an id
            /// collision a fresh id is drawn and `record.id` updated.
            async fn create(&self, record: &mut TowerRecord) -> $core::session_store::Result<()> {
                let id = to_session_id(record.id);
                let deadline = to_timestamp(record.expiry_date);
                match self.sessions.create_record(id, to_data(record), deadline).await {
                    Ok(stored) => {
                        record.id = to_tower_id(stored.id);
                        Ok(())
                    }
                    Err(e) => Err(failed("create", &id, &e)),
                }
            }

            /// Replaces the session's state (last writer wins, atomically). A
            /// session that was deleted, expired or damaged meanwhile is not
            /// written back: the write is dropped, and the next request with its
            /// cookie starts a new session.
            async fn save(&self, record: &TowerRecord) -> $core::session_store::Result<()> {
                let id = to_session_id(record.id);
                let deadline = to_timestamp(record.expiry_date);
                match self.sessions.replace_record(&id, to_data(record), deadline).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(failed("save", &id, &e)),
                }
            }

            /// The session if it is live by the store's clock. A stored record that
            /// cannot be decoded is "no session" (logged as a warning with the
            /// session's fingerprint), so tower-sessions starts a fresh one.
            async fn load(&self, id: &Id) -> $core::session_store::Result<Option<TowerRecord>> {
                let id = to_session_id(*id);
                match self.sessions.load_record_with(&id, |r| to_tower_record(&r)).await {
                    Ok(record) => Ok(record),
                    Err(e) => Err(failed("load", &id, &e)),
                }
            }

            /// Removes the session; an absent one is not an error.
            async fn delete(&self, id: &Id) -> $core::session_store::Result<()> {
                let id = to_session_id(*id);
                self.sessions
                    .delete_record(&id)
                    .await
                    .map_err(|e| failed("delete", &id, &e))
            }
        }

        /// Expired sessions are removed by the store's
        /// [`purge_expired`](session_store_core::SessionStore::purge_expired), so
        /// tower-sessions' deletion task works too. (`session_store_core::Purger`
        /// does the same without tower-sessions' `deletion-task` feature.)
        #[session_store_core::async_trait]
        impl<S> $core::ExpiredDeletion for crate::Adapter<S>
        where
            S: session_store_core::SessionStore + ?Sized + 'static,
        {
            async fn delete_expired(&self) -> $core::session_store::Result<()> {
                match self.store().purge_expired().await {
                    Ok(removed) => {
                        tracing::info!(removed, "purged expired sessions");
                        Ok(())
                    }
                    Err(e) => {
                        log_failure("purge_expired", None, &e);
                        Err(to_tower_error(&e))
                    }
                }
            }
        }
    };
}

tower_sessions_impls!(tower_sessions_core);

/// The same adapter for tower-sessions-core 0.14 (feature
/// `tower-sessions-core-014`), the version axum-login 0.18 and
/// tower-sessions' sqlx and Redis stores use: [`Adapter`] implements both
/// versions' `SessionStore`, so an axum-login app takes it as it is. The
/// conversions here are those of the crate root, for 0.14's types.
#[cfg(feature = "tower-sessions-core-014")]
pub mod core_014 {
    use super::*;

    tower_sessions_impls!(tower_sessions_core_014);
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
        match to_tower_error(&Error::backend("test", "writing the record", io)) {
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
