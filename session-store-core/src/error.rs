//! The one error type of every store.

use std::time::Duration;

use crate::{Fingerprint, InvalidId, SessionId};

/// A boxed error source, kept so callers can inspect the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a store operation.
///
/// Non-exhaustive: match the variants you handle and keep a catch-all arm.
/// Every variant that wraps a lower-level failure keeps it as its
/// [`source`](std::error::Error::source).
///
/// # Transient or permanent
///
/// Every backend sorts its failures the same way, and
/// [`is_transient`](Self::is_transient) tells them apart:
///
/// - **transient**, worth a retry later: the server unreachable,
///   restarting or refusing connections, a lost connection, a full disk, a
///   timeout ([`Error::Backend`], [`Error::Timeout`]), and a session too
///   busy to commit ([`Error::Contended`]);
/// - **permanent** until someone acts: the store's storage damaged or not
///   what this build expects, beyond one record (a corrupt database file, a
///   session table another program changed: [`Error::Corrupt`]), bad
///   configuration ([`Error::Config`]), a record
///   over the size limit, a value of the wrong type, an operation the store
///   does not offer.
///
/// One record that does not decode is neither: it is [`Error::Decode`] for
/// that id only, and the session handle treats it as a session that is
/// gone. The tower layer answers 503 to a transient error and 500 to a
/// permanent one. [`Error::Backend`] and [`Error::Corrupt`] name the
/// backend that failed (`"sqlite"`, `"redis"`, ...).
///
/// A session id is a credential, so no error message names one in full:
/// `Display` (and `Debug`) show a session's [`Fingerprint`]
/// ([`SessionId::fingerprint`]), and [`Error::Decode`] holds only the
/// fingerprint. The messages are still for operators, not for visitors: they
/// may hold backend details (a Redis reply, an I/O error), so an HTTP
/// answer should carry a generic text and leave the detail to the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend could not be reached, or its I/O failed. Transient.
    #[error("session store backend {backend} failed: {message}")]
    Backend {
        /// Which backend: `"memory"`, `"file"`, `"sqlite"`, `"redis"`,
        /// `"postgres"`, or a third-party store's own name.
        backend: &'static str,
        /// What was being done.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend's storage is damaged, or is not what this build expects,
    /// beyond a single record: a corrupt database file, a session table
    /// whose columns another program changed. Permanent until an operator
    /// repairs it (the admin command's `doctor`); a retry cannot help.
    #[error("session store backend {backend} is damaged: {message}")]
    Corrupt {
        /// Which backend (as in [`Error::Backend`]).
        backend: &'static str,
        /// What was found.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend did not answer within the configured time.
    #[error("session store backend did not answer within {0:?}")]
    Timeout(Duration),
    /// A stored record could not be decoded; other records are unaffected.
    #[error("stored session {id} could not be decoded: {reason}")]
    Decode {
        /// The record's fingerprint, never its id (a credential). An
        /// operator finds the record by comparing it with the fingerprints
        /// of stored ids ([`SessionId::fingerprint`]); where the stored key
        /// is not even a valid id, it is the fingerprint of the raw bytes
        /// ([`Fingerprint::of_bytes`]).
        id: Fingerprint,
        /// Why decoding failed.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A conditional save found a different version, or no live record.
    #[error(
        "session {} was changed or removed since it was loaded (expected version {expected})",
        id.fingerprint()
    )]
    Conflict {
        /// The session id (messages show only its fingerprint).
        id: SessionId,
        /// The version the caller expected.
        expected: u64,
    },
    /// A commit of the session handle lost every one of its attempts to
    /// concurrent writes of the same session (see
    /// [`Sessions::commit_attempts`](crate::Sessions::commit_attempts)):
    /// nothing of it was written. Transient: the session is hot, not
    /// broken, and a later request may well succeed.
    #[error(
        "session {} was written concurrently during each of {attempts} attempts; gave up",
        id.fingerprint()
    )]
    Contended {
        /// The session id (messages show only its fingerprint).
        id: SessionId,
        /// How many writes were tried.
        attempts: usize,
    },
    /// Create or rotate found a live record under the new id already.
    #[error("a live session {} already exists under that id", id.fingerprint())]
    IdCollision {
        /// The colliding id (messages show only its fingerprint).
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
    /// The store is configured in a way that cannot work (an invalid table
    /// name, a malformed URL, a feature not compiled in, a path that is not
    /// a directory). Permanent: retrying cannot help.
    #[error("session store misconfigured: {message}")]
    Config {
        /// What is wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A record could not be encoded for storage. Permanent for that
    /// record: retrying cannot help.
    #[error("encoding a session record failed")]
    Encode(#[source] BoxError),
    /// The store does not offer this operation (an owner index, say); see
    /// the store's docs. Permanent.
    #[error("this session store does not offer {0}")]
    Unsupported(&'static str),
    /// A session value did not convert to or from JSON (a value whose
    /// `Serialize` fails, or stored JSON that is not the type asked for).
    #[error("session value is not the expected JSON: {0}")]
    Data(#[from] serde_json::Error),
}

impl Error {
    /// A (transient) failure of `backend` with a message and a source.
    pub fn backend(backend: &'static str, message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A (transient) failure of `backend` described by a message alone.
    pub fn backend_msg(backend: &'static str, message: impl Into<String>) -> Self {
        Self::Backend {
            backend,
            message: message.into(),
            source: None,
        }
    }

    /// `backend`'s storage is damaged or not what this build expects
    /// (permanent: see [`Error::Corrupt`]).
    pub fn corrupt(backend: &'static str, message: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Corrupt {
            backend,
            message: message.into(),
            source,
        }
    }

    /// The backend an [`Error::Backend`] or [`Error::Corrupt`] names.
    #[must_use]
    pub fn backend_name(&self) -> Option<&'static str> {
        match self {
            Self::Backend { backend, .. } | Self::Corrupt { backend, .. } => Some(backend),
            _ => None,
        }
    }

    /// A configuration fault described by a message alone.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
            source: None,
        }
    }

    /// A configuration fault with its cause.
    pub fn config_with(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Config {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A decode failure for the record `id`: a [`SessionId`] (`&id` too),
    /// or the [`Fingerprint`] of a stored key that is not a valid id.
    pub fn decode(id: impl Into<Fingerprint>, reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Decode {
            id: id.into(),
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

    /// The fingerprint of the session this error is about, if it names one
    /// (for a log line next to a generic answer).
    #[must_use]
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        match self {
            Self::Decode { id, .. } => Some(*id),
            Self::Conflict { id, .. } | Self::Contended { id, .. } | Self::IdCollision { id } => Some(id.fingerprint()),
            _ => None,
        }
    }

    /// The message followed by every cause, `: `-separated, a cause that
    /// repeats the end of the message said once (for a log line;
    /// like `Display`, it never holds a full session id, but it may hold
    /// backend details, so it is not for a visitor's eyes).
    ///
    /// ```
    /// use session_store_core::Error;
    ///
    /// let e = Error::backend("redis", "connecting failed", std::io::Error::other("Connection refused"));
    /// assert_eq!(
    ///     e.chain(),
    ///     "session store backend redis failed: connecting failed: Connection refused"
    /// );
    /// ```
    #[must_use]
    pub fn chain(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            // Some errors repeat their cause in their own message: say it once.
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        message
    }

    /// Whether retrying later may succeed: a backend failure (unreachable,
    /// I/O, a full disk), a timeout, or a session too busy to commit
    /// ([`Error::Contended`]). A damaged store ([`Error::Corrupt`]),
    /// configuration, encoding, data, decode, size, conflict and collision
    /// errors are not: the same call fails again (see the type's docs).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Backend { .. } | Self::Timeout(_) | Self::Contended { .. })
    }
}

/// The result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error, through the chain of causes, in both `Display` and `Debug`.
    fn shown(error: &Error) -> String {
        let mut all = format!("{error} / {error:?}");
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            all.push_str(&format!(" / {cause} / {cause:?}"));
            source = cause.source();
        }
        all
    }

    #[test]
    fn no_error_built_from_an_id_shows_the_id() {
        for _ in 0..50 {
            let id = SessionId::random();
            let text = id.to_string();
            let errors = [
                Error::decode(id, "unknown record format 0x07", None),
                Error::decode(
                    id.fingerprint(),
                    "malformed record",
                    Some(Box::new(std::io::Error::other("eof"))),
                ),
                Error::Conflict { id, expected: 3 },
                Error::IdCollision { id },
                // An invalid id made from a real one by changing its last character.
                Error::from(format!("{}*", &text[..21]).parse::<SessionId>().unwrap_err()),
            ];
            for error in &errors {
                let all = shown(error);
                assert!(!all.contains(&text), "{all:?} holds the id {text}");
                // Not even its start: no characters of a credential leak.
                assert!(!all.contains(&text[..6]), "{all:?} holds the start of {text}");
                if let Some(fingerprint) = error.fingerprint() {
                    assert_eq!(fingerprint, id.fingerprint());
                    assert!(error.to_string().contains(&fingerprint.to_string()), "{error}");
                }
            }
        }
    }

    /// An error whose message repeats its cause's, as redis-rs's do.
    #[derive(Debug)]
    struct Repeating(std::io::Error);

    impl std::fmt::Display for Repeating {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)
        }
    }

    impl std::error::Error for Repeating {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chain_says_every_cause_once() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = Error::backend("redis", "Redis failed while connecting", Repeating(refused));
        assert_eq!(
            e.chain(),
            "session store backend redis failed: Redis failed while connecting: Connection refused"
        );
        assert_eq!(
            Error::Timeout(std::time::Duration::from_secs(2)).chain(),
            "session store backend did not answer within 2s"
        );
    }

    #[test]
    fn decode_of_raw_bytes_names_their_fingerprint() {
        let garbage = "../../not-an-id\u{0}";
        let error = Error::decode(
            Fingerprint::of_bytes(garbage.as_bytes()),
            "the id column holds no valid id",
            None,
        );
        assert!(!error.to_string().contains(garbage), "{error}");
        assert!(
            error
                .to_string()
                .contains(&Fingerprint::of_bytes(garbage.as_bytes()).to_string())
        );
        assert!(error.is_decode());
    }
}
