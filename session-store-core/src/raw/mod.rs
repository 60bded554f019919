//! For store and adapter authors: the plumbing every backend of this family
//! shares, and that a third-party store may use too.
//!
//! Less stable than the rest of the crate (like opendal's `raw`): what an
//! app needs is at the crate root, and an app never names this module.
//!
//! - [`codec`]: serde and bincode in a versioned envelope, the only place
//!   bincode is used; [`codec::check_size`] for the size limit.
//! - `blocking` (feature `blocking`): where a blocking backend (files,
//!   SQLite) runs its calls from async code.
//! - [`purge_batch`]: how big the next batch of a batched purge is.
//! - [`adapter`]: what adapters to a framework's session middleware share
//!   (the generic failure message and log line).
//! - [`session`]: hooks for a session layer that keeps sessions somewhere
//!   other than a store (the tower layer's cookie mode).

pub mod adapter;
#[cfg(feature = "blocking")]
pub mod blocking;
pub mod codec;
pub mod purge_batch;
pub mod session;
