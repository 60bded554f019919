//! Listing handles: how a store's listings name the sessions they list.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;

use crate::{Fingerprint, InvalidId, Record, SessionData, SessionId, Timestamp};

/// How a listing ([`SessionStore::ids`](crate::SessionStore::ids),
/// [`SessionStore::owner_sessions`](crate::SessionStore::owner_sessions))
/// names a stored session: a key the store can load or delete by
/// ([`load_listed`](crate::SessionStore::load_listed),
/// [`delete_listed`](crate::SessionStore::delete_listed)), which is not
/// necessarily the session's id.
///
/// On a store that keeps ids as they are, a session's handle holds its id;
/// on a store that keeps only a hash of each id (ids hashed at rest,
/// `at_rest::Protected`), it holds the stored hash, which is no cookie
/// value. So a handle is never compared with a cookie's id: ask the store
/// for the handle of a known id
/// ([`listing_handle`](crate::SessionStore::listing_handle)) and compare
/// handles. A handle is its own type so that the compiler keeps the two
/// apart.
///
/// Its text form (`Display`, `FromStr`) is the 22 characters of the stored
/// key, for an admin tool that lists and takes handles. Where the handle is
/// the id itself, that text is a credential: `Debug` shows only the
/// [`fingerprint`](Self::fingerprint).
///
/// ```
/// use session_store_core::{ListingHandle, SessionId};
///
/// let stored = SessionId::random();
/// let handle = ListingHandle::from_stored(stored);
/// assert_eq!(handle.stored(), stored);
/// assert_eq!(handle.to_string().parse::<ListingHandle>().unwrap(), handle);
/// assert!(!format!("{handle:?}").contains(&stored.to_string()));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListingHandle(SessionId);

impl ListingHandle {
    /// The handle of the record a store keeps under `stored` (for store
    /// implementors: a store that keeps ids as they are passes the id, a
    /// store that hashes ids passes the stored hash).
    #[must_use]
    pub const fn from_stored(stored: SessionId) -> Self {
        Self(stored)
    }

    /// The stored key this handle names (for store implementors: the id a
    /// plain store loads or deletes, the key a wrapping store hands to the
    /// store it wraps). Not a session id to give a visitor.
    #[must_use]
    pub const fn stored(self) -> SessionId {
        self.0
    }

    /// A short fingerprint of the handle, for a listing page or a log
    /// line; on a store that keeps ids as they are it equals the session
    /// id's [`fingerprint`](SessionId::fingerprint).
    #[must_use]
    pub fn fingerprint(self) -> Fingerprint {
        self.0.fingerprint()
    }
}

impl From<ListingHandle> for Fingerprint {
    fn from(handle: ListingHandle) -> Self {
        handle.fingerprint()
    }
}

impl From<&ListingHandle> for Fingerprint {
    fn from(handle: &ListingHandle) -> Self {
        handle.fingerprint()
    }
}

impl fmt::Display for ListingHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ListingHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ListingHandle({})", self.0.fingerprint())
    }
}

impl FromStr for ListingHandle {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// A session as an owner listing shows it
/// ([`Sessions::owner_sessions`](crate::Sessions::owner_sessions)): its
/// [`ListingHandle`] and what its record holds, without the session id (a
/// store that hashes ids does not know it, and a page that lists devices
/// has no use for it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedSession {
    /// How the store names this session: what ends it
    /// ([`Sessions::end_listed`](crate::Sessions::end_listed)) and what
    /// tells whether it is the current one (compare with
    /// [`Sessions::listing_handle`](crate::Sessions::listing_handle) of the
    /// cookie's id).
    pub handle: ListingHandle,
    /// The session's data.
    pub data: SessionData,
    /// When the session was created.
    pub created_at: Timestamp,
    /// The session is live while `now < expires_at`.
    pub expires_at: Timestamp,
    /// The record's version.
    pub version: u64,
    /// The authenticated user the session belongs to.
    pub owner: Option<String>,
}

impl ListedSession {
    /// The listed session `handle` named, from the record the store loaded
    /// for it (whose `id` is dropped: it may be a stored hash).
    #[must_use]
    pub fn new(handle: ListingHandle, record: Record) -> Self {
        Self {
            handle,
            data: record.data,
            created_at: record.created_at,
            expires_at: record.expires_at,
            version: record.version,
            owner: record.owner,
        }
    }

    /// The value under `key`, decoded from its JSON.
    ///
    /// # Errors
    ///
    /// When the stored JSON is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, serde_json::Error> {
        self.data.get(key)
    }
}
