//! The `SessionStore` trait every backend implements.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Error, ListingHandle, Record, Result, SessionId, SharedClock, Timestamp};

/// The default limit on a record's data size: 8 MiB (see
/// [`SessionData::byte_size`](crate::SessionData::byte_size)).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 8 * 1024 * 1024;

/// How many fresh ids the `*_fresh_id` helpers of [`SessionStoreExt`] try
/// before giving up. A
/// collision of 128-bit random ids is astronomically unlikely; more than one
/// in a row means something else is wrong.
const FRESH_ID_ATTEMPTS: usize = 4;

/// A place that keeps session records.
///
/// Every method states the rule it keeps; the conformance suite
/// (`session-store-conformance`) checks each one. The rules shared by all
/// methods:
///
/// - **Liveness** is decided with the store's injected clock: a record is
///   live while `now < expires_at` and expired from `now == expires_at` on.
///   No method ever returns or revives an expired record; an expired record
///   is treated exactly like an absent one, whether or not it was physically
///   removed yet.
/// - **Versions** are set by the store. Every write of data (create, save,
///   save-if-version) stores a new version: 1 for a record with no live
///   predecessor, else one more than the live record it replaces. Touch and
///   rotate keep the version.
/// - **Size**: data over the store's configured limit is refused with
///   [`Error::TooLarge`] and nothing is written.
/// - **Namespace**: a store sees only the records of its own namespace (key
///   prefix, table, directory).
///
/// Every method a store must get right is required; the two provided ones
/// ([`count`](Self::count) and [`import`](Self::import)) are built on the
/// required ones and correct for any store, a wrapper of another store
/// included (which may still forward them, to keep the inner store's faster
/// or atomic version). A store without an owner index answers
/// [`Error::Unsupported`] from [`owner_sessions`](Self::owner_sessions) and
/// [`delete_owner_sessions`](Self::delete_owner_sessions). Conveniences
/// built on the trait ([`SessionStoreExt::create_with_fresh_id`],
/// [`SessionStoreExt::rotate_to_fresh_id`]) are in [`SessionStoreExt`],
/// which every store has.
///
/// The trait is object safe: `Arc<dyn SessionStore>` is a store too.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// The clock this store decides liveness with (the one its builder was
    /// given). Everything above the store that computes deadlines (the
    /// [`Sessions`](crate::Sessions) handle, the adapters) asks it here, so
    /// no caller pairs clocks by hand.
    fn clock(&self) -> SharedClock;

    /// Inserts a new record with version 1 (the record's own `version` is
    /// ignored) and returns the version it stored, 1, as every write tells
    /// its caller the version it wrote.
    ///
    /// Never overwrites a live record: when one exists under `record.id`,
    /// returns [`Error::IdCollision`] and changes nothing. The check and the
    /// write are one atomic step. An expired record under the id is
    /// replaced.
    async fn create(&self, record: &Record) -> Result<u64>;

    /// The record under `id` if it is live, else `None`.
    async fn load(&self, id: &SessionId) -> Result<Option<Record>>;

    /// Inserts or overwrites the record (last writer wins) and returns the
    /// version it stored. Atomic: a concurrent reader sees the old record or
    /// the new one, never a mix.
    async fn save(&self, record: &Record) -> Result<u64>;

    /// Overwrites the record only if a live record with exactly
    /// `record.version` is stored (the version the caller loaded), and
    /// returns the new version, `record.version + 1`.
    ///
    /// Otherwise returns [`Error::Conflict`] and changes nothing: a stale
    /// version, an expired record and a record deleted meanwhile are all
    /// conflicts, so a late write never brings a deleted session back. The
    /// comparison and the write are one atomic step on every backend.
    async fn save_if_version(&self, record: &Record) -> Result<u64>;

    /// Moves the deadline of a live record to `expires_at` without rewriting
    /// its data or changing its version. Returns `false`, changing nothing,
    /// when no live record is under `id`.
    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool>;

    /// Removes the record under `id`. Removing an absent id is not an error.
    async fn delete(&self, id: &SessionId) -> Result<()>;

    /// Moves the live record under `old` to `new` (data, created time,
    /// deadline and version unchanged) and removes `old`, in one atomic step:
    /// the defence against session fixation at login.
    ///
    /// Returns `false`, changing nothing, when no live record is under `old`.
    /// Returns [`Error::IdCollision`], changing nothing, when a live record is
    /// under `new` (including when `new == old`).
    ///
    /// What a backend may weaken, and only by saying so (in its docs and as
    /// the conformance capability `rotate_briefly_shows_both_ids`): a
    /// backend that cannot move a record in one step (a Redis Cluster with
    /// the two ids in different hash slots) may let a concurrent reader
    /// load the record under both ids while rotate runs. It must never let
    /// a reader find neither id live, and once rotate has returned only the
    /// new id loads. A crash in the middle leaves both ids live, never
    /// neither.
    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool>;

    /// Removes every expired record of this store and returns how many it
    /// removed. Live records are untouched. A backend whose records vanish
    /// by themselves (Redis TTLs) counts only what it removed itself.
    async fn purge_expired(&self) -> Result<u64>;

    /// The handles of every live record in this store's namespace, in no
    /// particular order (see [`ListingHandle`]: the ids themselves on a
    /// store that keeps ids as they are, the stored hashes on one that
    /// hashes ids at rest).
    ///
    /// A record whose deadline cannot be read (it does not decode) may be
    /// listed, and loading it then answers [`Error::Decode`]: that is how a
    /// listing reports it. An entry that is no session at all (a row whose
    /// id column holds no session id) is never listed. One undecodable
    /// record never fails the whole listing.
    async fn ids(&self) -> Result<Vec<ListingHandle>>;

    /// The handle under which listings name the session `id` (see
    /// [`ListingHandle`]): `ListingHandle::from_stored(*id)` on a store that
    /// keeps ids as they are, the stored hash on one that hashes ids. A
    /// store that wraps another forwards it (or maps it, if it changes how
    /// ids are stored).
    fn listing_handle(&self, id: &SessionId) -> ListingHandle;

    /// The live record a listing named `handle`, or `None`. On a store that
    /// keeps ids as they are it is [`load`](Self::load) of
    /// `handle.stored()`; on one that hashes ids, the record's `id` is the
    /// stored hash (the store does not know the id itself).
    async fn load_listed(&self, handle: &ListingHandle) -> Result<Option<Record>>;

    /// Removes the record a listing named `handle` (how a "your devices"
    /// page ends one device); an absent one is not an error. On a store
    /// that keeps ids as they are it is [`delete`](Self::delete) of
    /// `handle.stored()`.
    async fn delete_listed(&self, handle: &ListingHandle) -> Result<()>;

    /// Removes every record of this store's namespace, and nothing outside it.
    async fn clear(&self) -> Result<()>;

    /// The handles of the live sessions whose record names `owner` (see
    /// [`Record::owner`]), in no particular order: a "your devices" page, or
    /// what "log out everywhere" is about to end.
    ///
    /// A store with an owner index keeps it in the same atomic step as the
    /// write, delete, rotate, purge or eviction that changes a record's
    /// owner or existence, and answers in time proportional to that owner's
    /// sessions, not to all sessions stored. Expired records are never
    /// listed. A backend that cannot update its index in the same step
    /// (its docs and the conformance capability say so) may hold stale
    /// entries, but filters every one out of every answer and removes them
    /// when it purges.
    ///
    /// A store without an owner index answers [`Error::Unsupported`].
    async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListingHandle>>;

    /// Deletes every session whose record names `owner`, except `keep` when
    /// given (the current device), and returns how many live sessions it
    /// deleted: "log out everywhere" and "log out my other sessions". A
    /// session created for the owner while this runs (a concurrent login)
    /// may survive it; every session that existed before it began is gone
    /// when it returns.
    ///
    /// A store without an owner index answers [`Error::Unsupported`].
    async fn delete_owner_sessions(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64>;

    /// The number of live records in this store's namespace: always the
    /// length of [`ids`](Self::ids) (the same records, undecodable ones
    /// included or not alike), which is what the default counts. A backend
    /// that counts faster keeps to it.
    async fn count(&self) -> Result<u64> {
        Ok(self.ids().await?.len() as u64)
    }

    /// Copies `record` in from another store (a migration), keeping its
    /// version: afterwards the record under `record.id` holds `record`'s
    /// data, created time, deadline, owner and exactly `record.version`.
    ///
    /// Returns `false`, writing nothing, when a live record with the same or
    /// a newer version is already stored under the id (so copying twice
    /// writes nothing twice, and never replaces a newer write to this store),
    /// or when `record` is no longer live by this store's clock.
    ///
    /// This is the one write that does not let the store pick the version.
    /// The default, built on [`create`](Self::create) and
    /// [`save_if_version`](Self::save_if_version), stores the record with
    /// version 1 and then bumps it one conditional save at a time (the data
    /// and deadline stay those of `record` all along), so it costs
    /// `record.version` writes and is not one atomic step; a concurrent
    /// writer to the same id makes it return [`Error::Conflict`]. A backend
    /// overrides it with one atomic write where it can.
    async fn import(&self, record: &Record) -> Result<bool> {
        let now = self.clock().now();
        if !record.is_live_at(now) || record.version == 0 {
            return Ok(false);
        }
        let mut stored = match self.load(&record.id).await? {
            Some(existing) if existing.version >= record.version => return Ok(false),
            Some(existing) => existing.version,
            None => match self.create(record).await {
                Ok(version) => version,
                Err(Error::IdCollision { id }) => return Err(Error::Conflict { id, expected: 0 }),
                Err(e) => return Err(e),
            },
        };
        let mut step = record.clone();
        while stored < record.version {
            step.version = stored;
            stored = self.save_if_version(&step).await?;
        }
        Ok(true)
    }
}

/// Conveniences every store has, built on [`SessionStore`] (like
/// object_store's `ObjectStoreExt`): no store implements or overrides them.
#[async_trait]
pub trait SessionStoreExt: SessionStore {
    /// Creates `record`, drawing a fresh id on the (astronomically unlikely)
    /// collision with a live record; `record.id` holds the id that was
    /// stored. Returns the version stored (1).
    async fn create_with_fresh_id(&self, record: &mut Record) -> Result<u64> {
        let mut last = None;
        for _ in 0..FRESH_ID_ATTEMPTS {
            match self.create(record).await {
                Err(Error::IdCollision { id }) => {
                    last = Some(id);
                    record.id = SessionId::random();
                }
                other => return other,
            }
        }
        Err(Error::IdCollision {
            id: last.unwrap_or(record.id),
        })
    }

    /// Rotates the live record under `old` to a fresh random id and returns
    /// it, or `None` when no live record is under `old`.
    async fn rotate_to_fresh_id(&self, old: &SessionId) -> Result<Option<SessionId>> {
        let mut last = *old;
        for _ in 0..FRESH_ID_ATTEMPTS {
            let new = SessionId::random();
            match self.rotate(old, &new).await {
                Ok(true) => return Ok(Some(new)),
                Ok(false) => return Ok(None),
                Err(Error::IdCollision { id }) => last = id,
                Err(e) => return Err(e),
            }
        }
        Err(Error::IdCollision { id: last })
    }
}

impl<S: SessionStore + ?Sized> SessionStoreExt for S {}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        // Every method is forwarded, those with a default too, so that a
        // store's own version is never lost behind a pointer; the lint
        // fails the build if a method added to the trait is not.
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<S: SessionStore + ?Sized> SessionStore for $ty {
            fn clock(&self) -> SharedClock {
                (**self).clock()
            }
            async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListingHandle>> {
                (**self).owner_sessions(owner).await
            }
            async fn delete_owner_sessions(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64> {
                (**self).delete_owner_sessions(owner, keep).await
            }
            async fn create(&self, record: &Record) -> Result<u64> {
                (**self).create(record).await
            }
            async fn import(&self, record: &Record) -> Result<bool> {
                (**self).import(record).await
            }
            async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
                (**self).load(id).await
            }
            async fn save(&self, record: &Record) -> Result<u64> {
                (**self).save(record).await
            }
            async fn save_if_version(&self, record: &Record) -> Result<u64> {
                (**self).save_if_version(record).await
            }
            async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
                (**self).touch(id, expires_at).await
            }
            async fn delete(&self, id: &SessionId) -> Result<()> {
                (**self).delete(id).await
            }
            async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
                (**self).rotate(old, new).await
            }
            async fn purge_expired(&self) -> Result<u64> {
                (**self).purge_expired().await
            }
            async fn count(&self) -> Result<u64> {
                (**self).count().await
            }
            async fn ids(&self) -> Result<Vec<ListingHandle>> {
                (**self).ids().await
            }
            async fn clear(&self) -> Result<()> {
                (**self).clear().await
            }
            fn listing_handle(&self, id: &SessionId) -> ListingHandle {
                (**self).listing_handle(id)
            }
            async fn load_listed(&self, handle: &ListingHandle) -> Result<Option<Record>> {
                (**self).load_listed(handle).await
            }
            async fn delete_listed(&self, handle: &ListingHandle) -> Result<()> {
                (**self).delete_listed(handle).await
            }
        }
    )*};
}

forward_store!(Arc<S>, Box<S>);
