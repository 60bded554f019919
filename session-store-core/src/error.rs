//! The one error type of every store.

use std::time::Duration;

use crate::{InvalidId, SessionId};

/// A boxed error source, kept so callers can inspect the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a store operation.
///
/// Non-exhaustive: match the variants you handle and keep a catch-all arm.
/// Every variant that wraps a lower-level failure keeps it as its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend could not be reached, or its I/O failed.
    #[error("session store backend failed: {message}")]
    Backend {
        /// What was being done.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend did not answer within the configured time.
    #[error("session store backend did not answer within {0:?}")]
    Timeout(Duration),
    /// A stored record could not be decoded; other records are unaffected.
    #[error("stored session {id} could not be decoded: {reason}")]
    Decode {
        /// The record's id, written out in full so an operator can find it.
        id: String,
        /// Why decoding failed.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A conditional save found a different version, or no live record.
    #[error("session {id:?} was changed or removed since it was loaded (expected version {expected})")]
    Conflict {
        /// The session id.
        id: SessionId,
        /// The version the caller expected.
        expected: u64,
    },
    /// Create or rotate found a live record under the new id already.
    #[error("a live session with id {id:?} already exists")]
    IdCollision {
        /// The colliding id.
        id: SessionId,
    },
    /// The record is larger than the store accepts; nothing was written.
    #[error("session data is {size} bytes, over this store's limit of {limit} bytes")]
    TooLarge {
        /// The record's size (see [`SessionData::byte_size`](crate::SessionData::byte_size)).
        size: usize,
        /// The store's limit.
        limit: usize,
    },
    /// A string was not a valid session id.
    #[error("invalid session id: {0}")]
    InvalidId(#[from] InvalidId),
}

impl Error {
    /// A backend failure with a message and a source.
    pub fn backend(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A backend failure described by a message alone.
    pub fn backend_msg(message: impl Into<String>) -> Self {
        Self::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// A decode failure for the record `id`.
    pub fn decode(id: impl std::fmt::Display, reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Decode {
            id: id.to_string(),
            reason: reason.into(),
            source,
        }
    }

    /// Whether this is a [`Error::Conflict`].
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Whether this is a [`Error::Decode`].
    #[must_use]
    pub fn is_decode(&self) -> bool {
        matches!(self, Self::Decode { .. })
    }

    /// Whether retrying later may succeed (backend failure or timeout).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Backend { .. } | Self::Timeout(_))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::backend("I/O failed", e)
    }
}

/// The result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
