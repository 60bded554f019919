//! The session-store contract shared by every backend of this family.
//!
//! A web app keeps each visitor's state in a session: the browser holds a
//! cookie with a random [`SessionId`], and the [`Record`] lives server-side
//! in a [`SessionStore`] (memory, files, SQLite, Redis). This crate defines
//! the id, the record and its [`SessionData`], the [`Clock`] every liveness
//! decision asks, the [`Expiry`] policies that become one absolute deadline,
//! the [`Error`] type, the record [`codec`], and a background [`Purger`].
//!
//! ```
//! use session_store_core::{Clock, Expiry, Record, SessionData, SessionId, SessionStore};
//!
//! /// One request: load the visitor's session (or start one) and count it.
//! async fn visit(
//!     store: &dyn SessionStore,
//!     clock: &dyn Clock,
//!     cookie: Option<&str>,
//! ) -> session_store_core::Result<(SessionId, u64)> {
//!     let expiry = Expiry::default();
//!     let now = clock.now();
//!     // A malformed cookie is just "no session"; a parsed id is safe to use as a key.
//!     let id = cookie.and_then(|c| c.parse::<SessionId>().ok());
//!     let loaded = match id {
//!         Some(id) => store.load(&id).await?,
//!         None => None,
//!     };
//!     let mut record = match loaded {
//!         Some(record) => record,
//!         None => {
//!             let mut record = Record::new(SessionData::new(), now, &expiry);
//!             store.create_with_fresh_id(&mut record).await?;
//!             record.version = 1;
//!             record
//!         }
//!     };
//!     let count = record.data.get::<u64>("count").ok().flatten().unwrap_or(0) + 1;
//!     record.data.insert("count", &count).expect("a number is valid JSON");
//!     record.refresh(now, &expiry);
//!     store.save_if_version(&record).await?;
//!     Ok((record.id, count))
//! }
//! ```
//!
//! Backends: `session-store-memory`, `session-store-file`,
//! `session-store-sqlite`, `session-store-redis`. The conformance suite,
//! `session-store-conformance`, checks any store against the rules written on
//! [`SessionStore`].

pub mod blocking;
pub mod codec;
mod error;
mod expiry;
mod id;
mod purger;
mod record;
mod store;
mod time;

pub use async_trait::async_trait;
pub use error::{BoxError, Error, Result};
pub use expiry::Expiry;
pub use id::{EncodedId, Fingerprint, InvalidId, SESSION_ID_LEN, SessionId};
pub use purger::Purger;
pub use record::{Record, SessionData};
pub use store::{DEFAULT_MAX_RECORD_BYTES, SessionStore};
pub use time::{Clock, ManualClock, SharedClock, SystemClock, Timestamp, system_clock};
