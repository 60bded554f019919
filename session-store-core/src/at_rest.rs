//! Secrets at rest (feature `at-rest`): session ids hashed and record bodies
//! encrypted before any backend sees them.
//!
//! [`Protected`] wraps any [`SessionStore`] (every backend of this family
//! and any third-party one) and is itself a store, so the option is the
//! same on every backend and lives once, here:
//!
//! - **Hashed ids** ([`AtRest::hash_ids`]): the inner store keys each record
//!   by the first 128 bits of a SHA-256 of its id ([`stored_id`]), so no
//!   file name, key, row or log line of the backend holds a cookie value. A
//!   lookup is still one probe of the backend's own index: the hash is
//!   computed, never searched for, and no secret is compared.
//! - **Encrypted bodies** ([`AtRest::encrypt`]): the data and the owner are
//!   sealed with XChaCha20-Poly1305 under the newest key of a
//!   [`KeyRing`] (each blob names its key; every key in the ring opens), with
//!   the stored id as associated data, so a body copied under another id
//!   does not open. The owner index keys an owner by a hash of the owner
//!   ([`stored_owner`]); deadlines, versions, created times and sizes stay
//!   visible, as the backend needs them.
//!
//! ```
//! use session_store_core::at_rest::{AtRest, Protected};
//! use session_store_core::seal::KeyRing;
//! use session_store_core::{Expiry, Record, SessionData, SessionStore, SessionStoreExt};
//! use session_store_memory::MemoryStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let keys = KeyRing::parse("1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")?;
//! let at_rest = AtRest::new().hash_ids(true).encrypt(keys);
//! let store = Protected::new(MemoryStore::new(), at_rest);
//!
//! let mut data = SessionData::new();
//! data.insert("user", &"alice")?;
//! let mut record = Record::new(data, store.clock().now(), &Expiry::default());
//! store.create_with_fresh_id(&mut record).await?;
//! assert_eq!(store.load(&record.id).await?.unwrap().data, record.data); // as if unprotected
//!
//! // Below, the inner store holds neither the id nor the data.
//! let stored = store.inner().load(&store.stored_id(&record.id)).await?.unwrap();
//! assert!(stored.data.get_raw("user").is_none());
//! assert!(store.inner().load(&record.id).await?.is_none());
//! # Ok::<(), session_store_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Listings return handles
//!
//! With hashed ids the store cannot give an id back: [`ids`](SessionStore::ids)
//! and [`owner_sessions`](SessionStore::owner_sessions) answer
//! [`ListingHandle`]s holding the stored hashes. A handle ends or shows that
//! session through [`delete_listed`](SessionStore::delete_listed) and
//! [`load_listed`](SessionStore::load_listed) (a "your devices" page; the
//! loaded record's `id` is the stored hash), but it is not a cookie value:
//! [`load`](SessionStore::load) of the hash finds nothing.
//! [`listing_handle`](SessionStore::listing_handle) says which handle is the
//! current session's.
//!
//! The inner store must keep records under the keys it is given, as every
//! backend of this family does (its listing handle of a key holds that
//! key): a sealed body is bound to the key it is stored under, and a
//! listed record is opened with the key the inner store names. So a
//! `Protected` does not nest inside another `Protected` that hashes ids.
//!
//! # Rotate
//!
//! With hashed ids alone, rotate is the inner store's own atomic move. With
//! encryption the body is bound to its id, so rotate seals it again under
//! the new id: it copies the record to the new id (keeping its version),
//! then ends the old id only if it still holds the version it copied, and
//! withdraws the copy and starts again if it does not. A concurrent reader
//! may find both ids live meanwhile, never neither (the conformance
//! capability `rotate_briefly_shows_both_ids`); a crash in between leaves
//! both. A plain [`save`](SessionStore::save) (not a version-checked one)
//! to the old id racing the rotate may be removed with it. The old id is
//! ended by a version-checked write of an expired, empty record, which
//! stays in the inner store until a purge removes it: a purge counts it
//! among the expired records it removed.
//!
//! # Turning it on for a store that has records: the choice
//!
//! Records written without protection are not migrated silently:
//!
//! - with hashed ids on, a record stored under its plain id is never found
//!   (it is keyed by its cookie value, which a hashed lookup never asks for);
//!   its visitor starts a fresh session and the record expires and is purged
//!   as usual;
//! - with encryption on, a record without a seal is a decode error for that
//!   record only (the session handle starts a fresh session), unless the
//!   store is opened with [`AtRest::read_unsealed`], which reads such
//!   records as they are until their next write seals them (for turning
//!   encryption on under a store already hashing ids, or without losing
//!   sessions).
//!
//! To keep every session, rewrite the store with the admin command:
//! `session-store migrate --from <plain> --to <new> --to-hash-ids
//! --to-keys-env <VAR>` copies every live record, protected.
//!
//! # Keys
//!
//! Keys come from the caller ([`KeyRing::parse`], [`KeyRing::from_env`]):
//! nothing is generated and nothing is logged. Rotate keys by adding a new
//! one (it seals from then on; the old ones still open); retire an old key
//! once no live record is sealed under it (every write seals again under
//! the newest key, so after the longest session lifetime none is). A record
//! under a retired, unknown or wrong key is a decode error for that record
//! only.
//!
//! Hashes are unkeyed SHA-256: enough for ids (128 random bits cannot be
//! guessed from their hash), but an owner that is a guessable name (an
//! e-mail address) can be confirmed from its hash by trying it; prefer an
//! opaque user id as the owner.

use std::sync::Arc;

use base64::Engine as _;
use sha2::Digest as _;

use crate::raw::codec;
use crate::seal::KeyRing;
use crate::{
    DEFAULT_MAX_RECORD_BYTES, Error, ListingHandle, Record, Result, SessionData, SessionId, SessionStore, SharedClock,
    Timestamp, async_trait,
};

/// The one key of a sealed record's data in the inner store: a name no
/// ordinary session is likely to hold alone.
pub const SEALED_KEY: &str = "\u{1}session-store:sealed";

/// What a sealed body's associated data starts with (the stored id
/// follows), so a blob sealed for anything else never opens as a record.
const AAD_TAG: &[u8] = b"session-store at rest v1\0";

/// How many times an encrypted rotate starts again when the old record
/// changes under it.
const ROTATE_ATTEMPTS: usize = 8;

/// The id a store with hashed ids keys `id`'s record by: the first 128
/// bits of SHA-256 over a fixed tag and the id's 16 bytes.
#[must_use]
pub fn stored_id(id: &SessionId) -> SessionId {
    let mut hash = sha2::Sha256::new();
    hash.update(b"session-store id v1\0");
    hash.update(id.to_bytes());
    let digest = hash.finalize();
    let mut bits = [0u8; 16];
    bits.copy_from_slice(&digest[..16]);
    SessionId::from_u128(u128::from_le_bytes(bits))
}

/// The owner an encrypting store writes beside a record (and so indexes
/// by): `h:` and 32 hex characters of SHA-256 over a fixed tag and the
/// owner. The owner itself is sealed in the body.
#[must_use]
pub fn stored_owner(owner: &str) -> String {
    let mut tagged = String::with_capacity(owner.len() + 20);
    tagged.push_str("session-store owner\0");
    tagged.push_str(owner);
    format!("h:{}", crate::owner_key(&tagged))
}

/// The data limit to give the inner store under an encrypting
/// [`Protected`] whose own limit is `limit`: sealing adds the codec's
/// framing, the key id, nonce and tag, and base64's third.
#[must_use]
pub fn inner_limit(limit: usize) -> usize {
    limit.saturating_mul(3).saturating_add(4096)
}

/// What [`Protected`] does: nothing until turned on.
#[derive(Debug, Clone)]
pub struct AtRest {
    hash_ids: bool,
    keys: Option<KeyRing>,
    read_unsealed: bool,
    max_record_bytes: usize,
}

impl Default for AtRest {
    fn default() -> Self {
        Self::new()
    }
}

impl AtRest {
    /// Nothing hashed, nothing encrypted, the default size limit.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            hash_ids: false,
            keys: None,
            read_unsealed: false,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }

    /// Keys records by a hash of their id ([`stored_id`]).
    #[must_use]
    pub const fn hash_ids(mut self, yes: bool) -> Self {
        self.hash_ids = yes;
        self
    }

    /// Seals every body under `keys`' newest key; any key of the ring
    /// opens.
    #[must_use]
    pub fn encrypt(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }

    /// With encryption: reads a record without a seal (written before
    /// encryption was turned on) as it is, instead of a decode error; its
    /// next write seals it. Off by default.
    #[must_use]
    pub const fn read_unsealed(mut self, yes: bool) -> Self {
        self.read_unsealed = yes;
        self
    }

    /// The limit on a record's data ([`SessionData::byte_size`]) before
    /// sealing (default [`DEFAULT_MAX_RECORD_BYTES`]); over it, writes are
    /// refused with [`Error::TooLarge`]. Give the inner store at least
    /// [`inner_limit`] of it.
    #[must_use]
    pub const fn max_record_bytes(mut self, limit: usize) -> Self {
        self.max_record_bytes = limit;
        self
    }

    /// Whether ids are hashed.
    #[must_use]
    pub const fn hashes_ids(&self) -> bool {
        self.hash_ids
    }

    /// Whether bodies are encrypted.
    #[must_use]
    pub const fn encrypts(&self) -> bool {
        self.keys.is_some()
    }
}

/// A store whose records are kept with hashed ids and encrypted bodies in
/// `S` (see the [module docs](self)). It keeps every rule of
/// [`SessionStore`], except that rotate with encryption may briefly show
/// both ids.
#[derive(Debug, Clone)]
pub struct Protected<S> {
    inner: S,
    hash_ids: bool,
    keys: Option<Arc<KeyRing>>,
    read_unsealed: bool,
    limit: usize,
}

impl<S: SessionStore> Protected<S> {
    /// `inner`, protected as `at_rest` says.
    pub fn new(inner: S, at_rest: AtRest) -> Self {
        Self {
            inner,
            hash_ids: at_rest.hash_ids,
            keys: at_rest.keys.map(Arc::new),
            read_unsealed: at_rest.read_unsealed,
            limit: at_rest.max_record_bytes,
        }
    }

    /// The store below, which sees only stored ids and sealed bodies.
    pub const fn inner(&self) -> &S {
        &self.inner
    }

    /// The store below, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The id the inner store keys `id`'s record by: its hash with
    /// [`AtRest::hash_ids`], else `id`.
    #[must_use]
    pub fn stored_id(&self, id: &SessionId) -> SessionId {
        if self.hash_ids { stored_id(id) } else { *id }
    }

    fn stored_owner(&self, owner: &str) -> String {
        if self.keys.is_some() {
            stored_owner(owner)
        } else {
            owner.to_owned()
        }
    }

    /// The record the inner store keeps for `record`.
    fn seal(&self, record: &Record) -> Result<Record> {
        codec::check_size(&record.data, self.limit)?;
        let stored = self.stored_id(&record.id);
        let Some(keys) = &self.keys else {
            let mut inner = record.clone();
            inner.id = stored;
            return Ok(inner);
        };
        let body = codec::encode_body(record)?;
        let blob = keys.seal(&body, &aad(&stored));
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob);
        let mut data = SessionData::new();
        data.insert_raw(SEALED_KEY.to_owned(), format!("\"{text}\""));
        Ok(Record {
            id: stored,
            data,
            created_at: record.created_at,
            expires_at: record.expires_at,
            version: record.version,
            owner: record.owner.as_deref().map(stored_owner),
        })
    }

    /// The caller's record, named `id`, from the inner record stored under
    /// `stored`.
    fn open(&self, id: SessionId, stored: &SessionId, mut inner: Record) -> Result<Record> {
        let Some(keys) = &self.keys else {
            inner.id = id;
            return Ok(inner);
        };
        let Some(text) = sealed_text(&inner.data) else {
            if self.read_unsealed {
                inner.id = id;
                return Ok(inner);
            }
            return Err(Error::decode(
                id,
                "not sealed: written without encryption at rest (AtRest::read_unsealed reads such records until \
                 they are rewritten)",
                None,
            ));
        };
        let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|e| Error::decode(id, "the sealed body is not base64", Some(Box::new(e))))?;
        let body = keys
            .open(&blob, &aad(stored))
            .map_err(|e| Error::decode(id, format!("the sealed body does not open: {e}"), Some(Box::new(e))))?;
        codec::decode_body(id, &body, inner.expires_at, inner.version)
    }

    /// An inner error about `stored`, told about `id` instead.
    fn named(e: Error, stored: &SessionId, id: &SessionId) -> Error {
        match e {
            Error::Decode { id: fp, reason, source } if fp == stored.fingerprint() => Error::Decode {
                id: id.fingerprint(),
                reason,
                source,
            },
            Error::Conflict { id: s, expected } if s == *stored => Error::Conflict { id: *id, expected },
            Error::IdCollision { id: s } if s == *stored => Error::IdCollision { id: *id },
            other => other,
        }
    }

    async fn load_stored(&self, id: SessionId, stored: &SessionId) -> Result<Option<Record>> {
        match self.inner.load(stored).await {
            Ok(Some(inner)) => self.open(id, stored, inner).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(Self::named(e, stored, &id)),
        }
    }

    /// Rotate with encryption: copy, sealed again under the new id, then
    /// end the old id if it still holds the copied version.
    async fn rotate_sealed(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let (stored_old, stored_new) = (self.stored_id(old), self.stored_id(new));
        for _ in 0..ROTATE_ATTEMPTS {
            let Some(record) = self.load_stored(*old, &stored_old).await? else {
                return Ok(false);
            };
            if stored_new == stored_old {
                return Err(Error::IdCollision { id: *new });
            }
            // The copy: created (one atomic check that the new id is free),
            // then brought to the record's version.
            let mut moved = record.clone();
            moved.id = *new;
            let sealed = self.seal(&moved)?;
            self.inner
                .create(&sealed)
                .await
                .map_err(|e| Self::named(e, &stored_new, new))?;
            if record.version > 1 {
                self.inner
                    .import(&sealed)
                    .await
                    .map_err(|e| Self::named(e, &stored_new, new))?;
            }
            // The old id ends only if nothing was written to it since the
            // copy: an expired, empty record at the next version.
            let now = self.inner.clock().now();
            let ended = Record {
                id: stored_old,
                data: SessionData::new(),
                created_at: record.created_at,
                expires_at: now,
                version: record.version,
                owner: None,
            };
            match self.inner.save_if_version(&ended).await {
                Ok(_) => {
                    // Ended: the rotate has happened. The old id keeps an
                    // expired, empty remainder until a purge removes (and
                    // counts) it. It is not deleted here: a rotate onto the
                    // old id may already have replaced it (an expired
                    // record is free to create over), and a delete would
                    // take that session with it.
                    return Ok(true);
                }
                Err(Error::Conflict { .. }) => {
                    // Changed (or ended) meanwhile: withdraw the copy, look again.
                    self.inner.delete(&stored_new).await?;
                }
                Err(e) => {
                    // Unknown whether the old id ended: keep the copy
                    // (both live, never neither) and report.
                    return Err(Self::named(e, &stored_old, old));
                }
            }
        }
        Err(Error::Conflict { id: *old, expected: 0 })
    }
}

/// The associated data of a body stored under `stored`.
fn aad(stored: &SessionId) -> [u8; AAD_TAG.len() + 16] {
    let mut aad = [0u8; AAD_TAG.len() + 16];
    aad[..AAD_TAG.len()].copy_from_slice(AAD_TAG);
    aad[AAD_TAG.len()..].copy_from_slice(&stored.to_bytes());
    aad
}

/// The base64 of a sealed body, if `data` is one.
fn sealed_text(data: &SessionData) -> Option<&str> {
    if data.len() != 1 {
        return None;
    }
    data.get_raw(SEALED_KEY)?.strip_prefix('"')?.strip_suffix('"')
}

#[async_trait]
impl<S: SessionStore> SessionStore for Protected<S> {
    fn clock(&self) -> SharedClock {
        self.inner.clock()
    }

    async fn create(&self, record: &Record) -> Result<u64> {
        let sealed = self.seal(record)?;
        self.inner
            .create(&sealed)
            .await
            .map_err(|e| Self::named(e, &sealed.id, &record.id))
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        self.load_stored(*id, &self.stored_id(id)).await
    }

    async fn save(&self, record: &Record) -> Result<u64> {
        let sealed = self.seal(record)?;
        self.inner
            .save(&sealed)
            .await
            .map_err(|e| Self::named(e, &sealed.id, &record.id))
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        let sealed = self.seal(record)?;
        self.inner
            .save_if_version(&sealed)
            .await
            .map_err(|e| Self::named(e, &sealed.id, &record.id))
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        let stored = self.stored_id(id);
        self.inner
            .touch(&stored, expires_at)
            .await
            .map_err(|e| Self::named(e, &stored, id))
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.inner.delete(&self.stored_id(id)).await
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        if self.keys.is_some() {
            return self.rotate_sealed(old, new).await;
        }
        let (stored_old, stored_new) = (self.stored_id(old), self.stored_id(new));
        self.inner
            .rotate(&stored_old, &stored_new)
            .await
            .map_err(|e| Self::named(Self::named(e, &stored_new, new), &stored_old, old))
    }

    async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge_expired().await
    }

    async fn count(&self) -> Result<u64> {
        self.inner.count().await
    }

    /// Handles of the stored hashes when ids are hashed (see the [module
    /// docs](self)).
    async fn ids(&self) -> Result<Vec<ListingHandle>> {
        self.inner.ids().await
    }

    async fn clear(&self) -> Result<()> {
        self.inner.clear().await
    }

    fn listing_handle(&self, id: &SessionId) -> ListingHandle {
        self.inner.listing_handle(&self.stored_id(id))
    }

    /// The record's `id` is the key it is stored under: the hash of the id
    /// when ids are hashed.
    async fn load_listed(&self, handle: &ListingHandle) -> Result<Option<Record>> {
        match self.inner.load_listed(handle).await {
            Ok(Some(inner)) => {
                let stored = inner.id;
                self.open(stored, &stored, inner).map(Some)
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_listed(&self, handle: &ListingHandle) -> Result<()> {
        self.inner.delete_listed(handle).await
    }

    /// Handles of the stored hashes when ids are hashed (see the [module
    /// docs](self)).
    async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListingHandle>> {
        self.inner.owner_sessions(&self.stored_owner(owner)).await
    }

    async fn delete_owner_sessions(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64> {
        let keep = keep.map(|id| self.stored_id(id));
        self.inner
            .delete_owner_sessions(&self.stored_owner(owner), keep.as_ref())
            .await
    }

    async fn import(&self, record: &Record) -> Result<bool> {
        let sealed = self.seal(record)?;
        self.inner
            .import(&sealed)
            .await
            .map_err(|e| Self::named(e, &sealed.id, &record.id))
    }
}
