//! The session-store contract shared by every backend of this family.
//!
//! A web app keeps each visitor's state in a session: the browser holds a
//! cookie with a random [`SessionId`], and the [`Record`] lives server-side
//! in a [`SessionStore`] (memory, files, SQLite, Redis). This crate defines
//! the id, the record and its [`SessionData`], the [`Clock`] every liveness
//! decision asks, the [`Expiry`] policies that become one absolute deadline,
//! the [`Error`] type, the record codec ([`raw::codec`]), the [`Sessions`] handle, and a
//! background `Purger` (feature `purger`).
//!
//! A request's session in a few lines, with the [`Sessions`] handle (here on
//! the memory store; any backend works the same):
//!
//! ```
//! use session_store_core::Sessions;
//! use session_store_memory::MemoryStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let sessions = Sessions::new(MemoryStore::new());         // the store's clock, default expiry
//! let mut session = sessions.load_or_start(None).await?;    // first request: no cookie yet
//! session.insert("count", &1)?;
//! sessions.commit(&mut session).await?;                     // created
//! let cookie = session.id().expect("stored").to_string();   // goes in Set-Cookie
//!
//! let mut session = sessions.load_or_start(Some(&cookie)).await?; // the next request
//! let count: u64 = session.get("count")?.unwrap_or(0);
//! session.insert("count", &(count + 1))?;
//! sessions.commit(&mut session).await?;                     // version-checked save
//! assert_eq!(sessions.load(&cookie).await?.unwrap().get::<u64>("count")?, Some(2));
//! # Ok::<(), session_store_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! The handle takes the clock from the store, turns the [`Expiry`] policy
//! into deadlines, keeps versions, replays a request's changes when another
//! request of the same visitor committed first, never writes back a session
//! that was logged out or rotated away meanwhile, and treats a record that
//! does not decode as a session that is gone (a warning with the id's
//! [`Fingerprint`], never an error page). Adapters to a framework's own
//! session middleware (tower-sessions, actix-session) use the same handle
//! through its record-level calls ([`Sessions::load_record`],
//! [`Sessions::replace_record`], ...) and the [`raw::adapter`] module's generic
//! failure message and log line, so every layer above the trait treats a
//! damaged record and a failing store alike. Below it, the
//! [`SessionStore`] trait is what a backend implements; its docs state
//! every rule.
//!
//! Features: `tracing` (default) for the handle's warnings; `at-rest` for
//! `at_rest::Protected` (any store with ids hashed and bodies encrypted at
//! rest); `seal` for the `seal::KeyRing` alone (XChaCha20-Poly1305 with key
//! rotation, which `at-rest` and the tower layer's cookie mode seal with;
//! without it no AEAD crate is compiled); `purger` for the background
//! `Purger` (a tokio task); `blocking` for `raw::blocking`, the offload
//! helper of backends whose calls block. A crate that only implements the trait needs
//! none of them (`default-features = false`): no tracing, and of tokio only
//! its `sync` part (the handle's per-session write turns), never an
//! executor or a timer.
//!
//! Backends: `session-store-memory`, `session-store-file`,
//! `session-store-sqlite`, `session-store-redis`. The conformance suite,
//! `session-store-conformance`, checks any store against the rules written on
//! [`SessionStore`].
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "at-rest")]
pub mod at_rest;
pub mod contract {
    #![doc = include_str!("../CONTRACT.md")]
}
mod error;
mod expiry;
mod id;
mod listing;
#[cfg(feature = "purger")]
mod purger;
pub mod raw;
mod record;
#[cfg(feature = "seal")]
pub mod seal;
mod session;
mod store;
mod time;

pub use async_trait::async_trait;
pub use error::{BoxError, Error, Result};
pub use expiry::Expiry;
pub use id::{EncodedId, Fingerprint, InvalidId, SESSION_ID_LEN, SessionId};
pub use listing::{ListedSession, ListingHandle};
#[cfg(feature = "purger")]
pub use purger::Purger;
pub use record::{OWNER_KEY_LEN, Record, SessionData, owner_key};
pub use session::{Committed, DEFAULT_COMMIT_ATTEMPTS, DEFAULT_TOUCH_THROTTLE, Session, Sessions};
pub use store::{DEFAULT_MAX_RECORD_BYTES, SessionStore, SessionStoreExt};
pub use time::{Clock, ManualClock, SharedClock, SystemClock, Timestamp, system_clock};

/// The README's examples, compiled as doctests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
