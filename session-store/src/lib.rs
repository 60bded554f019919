//! Server-side web sessions for Rust, in one dependency.
//!
//! The browser keeps only a cookie with a random session id; the session's
//! data lives in a store (memory, files, SQLite, Redis, PostgreSQL, MySQL) that
//! survives restarts and is shared by every server. This crate re-exports
//! the `session-store` family so an app adds one dependency and bumps one
//! version:
//!
//! - the contract: [`SessionStore`], [`SessionId`], [`Record`], [`Expiry`],
//!   [`Error`], the clocks, and the whole core crate as [`core`];
//! - a backend per feature: [`MemoryStore`] (`memory`, default),
//!   `FileStore` (`file`), `SqliteStore` (`sqlite`), `RedisStore`
//!   (`redis`), `PostgresStore` (`postgres`), `MysqlStore` (`mysql`); `tls`
//!   for TLS to Redis, PostgreSQL and MySQL;
//! - the tower layer and axum extractor (`tower`, default):
//!   [`SessionLayer`], [`Session`], [`SessionError`]; `cookie` adds its
//!   cookie mode (sessions sealed in the cookie, no store);
//! - `at-rest` for `at_rest::Protected` (ids hashed, data encrypted in any
//!   store), `purger` for the background `Purger`;
//! - adapters to other frameworks' session middleware: `tower-sessions`
//!   (module `tower_sessions`) and `actix-session` (module
//!   `actix_session`).
//!
//! The separate crates stay for store authors and minimal builds.
//!
//! The guides: [choosing a backend](guide::choosing_a_backend),
//! [security](guide::security), [from tower-sessions](guide::from_tower_sessions),
//! and the [contract](core::contract) every
//! store keeps.
//!
//! The README's example, an axum app (it runs as it is with the default
//! features):
#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The core crate, `session-store-core`, whole: the contract, the session
/// handle ([`core::Sessions`]), and for store authors [`core::raw`].
pub use session_store_core as core;

pub use session_store_core::{
    Clock, Committed, Error, Expiry, Fingerprint, ListedSession, ListingHandle, ManualClock, Record, Result,
    SessionData, SessionId, SessionStore, SessionStoreExt, Sessions, SharedClock, SystemClock, Timestamp, async_trait,
};

#[cfg(feature = "purger")]
pub use session_store_core::Purger;
#[cfg(feature = "at-rest")]
pub use session_store_core::at_rest;
#[cfg(feature = "seal")]
pub use session_store_core::seal;

/// The in-memory store, `session-store-memory`.
#[cfg(feature = "memory")]
pub use session_store_memory as memory;
#[cfg(feature = "memory")]
pub use session_store_memory::MemoryStore;

/// The one-file-per-session store, `session-store-file`.
#[cfg(feature = "file")]
pub use session_store_file as file;
#[cfg(feature = "file")]
pub use session_store_file::FileStore;

/// The SQLite store, `session-store-sqlite`.
#[cfg(feature = "sqlite")]
pub use session_store_sqlite as sqlite;
#[cfg(feature = "sqlite")]
pub use session_store_sqlite::SqliteStore;

/// The Redis and Redis Cluster store, `session-store-redis`.
#[cfg(feature = "redis")]
pub use session_store_redis as redis;
#[cfg(feature = "redis")]
pub use session_store_redis::RedisStore;

/// The PostgreSQL store, `session-store-postgres`.
#[cfg(feature = "postgres")]
pub use session_store_postgres as postgres;
#[cfg(feature = "postgres")]
pub use session_store_postgres::PostgresStore;

/// The MySQL and MariaDB store, `session-store-mysql`.
#[cfg(feature = "mysql")]
pub use session_store_mysql as mysql;
#[cfg(feature = "mysql")]
pub use session_store_mysql::MysqlStore;

/// The tower layer and axum extractor, `session-store-tower`.
#[cfg(feature = "tower")]
pub use session_store_tower as tower;
#[cfg(feature = "cookie")]
pub use session_store_tower::{CookieSessions, KeyRing};
#[cfg(feature = "tower")]
pub use session_store_tower::{SameSite, Session, SessionError, SessionLayer};

/// Any store as a tower-sessions store, `session-store-tower-sessions`.
#[cfg(feature = "tower-sessions")]
pub use session_store_tower_sessions as tower_sessions;

/// Any store as an actix-session store, `session-store-actix-session`.
#[cfg(feature = "actix-session")]
pub use session_store_actix_session as actix_session;

pub mod guide {
    //! Guides for app authors; the contract every store keeps is
    //! [`core::contract`](crate::core::contract).

    pub mod choosing_a_backend {
        #![doc = include_str!("../guides/choosing-a-backend.md")]
    }

    pub mod security {
        #![doc = include_str!("../guides/security.md")]
    }

    /// Moving an app from tower-sessions (and axum-login): the two roads,
    /// the import of stored sessions, every call mapped, the differences.
    pub mod from_tower_sessions {
        #![doc = include_str!("../guides/from-tower-sessions.md")]
    }
}
