//! An in-memory session store: sharded, with an expiry index and an optional
//! capacity bound.
//!
//! ```
//! use session_store_core::{Expiry, Record, SessionData, SessionStore, SystemClock, Clock};
//! use session_store_memory::MemoryStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let mut data = SessionData::new();
//! data.insert("count", &1)?;
//! let record = Record::new(data, SystemClock.now(), &Expiry::default());
//! store.create(&record).await?;
//! let loaded = store.load(&record.id).await?.expect("live");
//! assert_eq!(loaded.data.get::<i32>("count")?, Some(1));
//! assert_eq!(loaded.version, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Records live as long as the process. Loads take a read lock on one of
//! many shards (chosen from the id's bits), so concurrent loads do not queue
//! on one lock, and a load clones the record cheaply (the data map is shared
//! copy-on-write). Each shard keeps an index ordered by deadline, so purging
//! visits only expired records.
//!
//! A store is bounded by default: it keeps at most [`DEFAULT_CAPACITY`]
//! records (about 100 MB with sessions of a few hundred bytes), so a flood
//! of cookieless requests, each a new session, cannot exhaust memory.
//! [`MemoryStoreBuilder::capacity`] sets another bound and
//! [`MemoryStoreBuilder::unbounded`] removes it (then memory is bounded only
//! by how fast sessions expire and are purged).
//!
//! A store that is full **evicts**
//! rather than refuses: a write of a new id into a full shard first drops
//! that shard's expired records and then, if still full, the record with the
//! earliest deadline. A flood of new sessions therefore costs the sessions
//! closest to expiring, never memory without bound and never the ability to
//! log in. The bound is kept per shard: the capacity is split exactly among
//! the shards (a store never has more shards than its capacity), so the store
//! never holds more than `capacity` records. A shard evicts when its own
//! share is full, so a store may evict a little before it holds `capacity`
//! records in all (ids spread evenly, so a few percent at most).
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use parking_lot::RwLock;
use session_store_core::{
    DEFAULT_MAX_RECORD_BYTES, Error, ListingHandle, Record, Result, SessionId, SessionStore, SharedClock, Timestamp,
    async_trait, raw::codec::check_size, system_clock,
};

/// The number of records a store keeps by default (see
/// [`MemoryStoreBuilder::capacity`]).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Builds a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryStoreBuilder {
    clock: SharedClock,
    max_record_bytes: usize,
    capacity: Option<usize>,
    shards: usize,
}

impl Default for MemoryStoreBuilder {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(4, std::num::NonZeroUsize::get);
        Self {
            clock: system_clock(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            capacity: Some(DEFAULT_CAPACITY),
            shards: (cpus * 8).next_power_of_two().clamp(16, 256),
        }
    }
}

impl MemoryStoreBuilder {
    /// The clock every liveness decision asks (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The largest data size accepted, in bytes (default
    /// [`DEFAULT_MAX_RECORD_BYTES`]).
    #[must_use]
    pub fn max_record_bytes(mut self, limit: usize) -> Self {
        self.max_record_bytes = limit;
        self
    }

    /// Bounds the number of records kept (default [`DEFAULT_CAPACITY`]);
    /// see the crate docs for how a full store evicts. A capacity of 0 is
    /// taken as 1.
    #[must_use]
    pub fn capacity(mut self, records: usize) -> Self {
        self.capacity = Some(records.max(1));
        self
    }

    /// Removes the bound on the number of records: the store then grows
    /// with every live session, so only use it where the number of
    /// sessions is bounded otherwise (no anonymous sessions, say).
    #[must_use]
    pub fn unbounded(mut self) -> Self {
        self.capacity = None;
        self
    }

    /// The number of lock shards, rounded up to a power of two (default:
    /// eight per CPU, between 16 and 256). A bounded store uses at most as
    /// many shards as its capacity (the largest power of two not above it),
    /// so that every shard can hold a record.
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.clamp(1, 1 << 16).next_power_of_two();
        self
    }

    /// The store.
    #[must_use]
    pub fn build(self) -> MemoryStore {
        // Never more shards than records the store may keep, so that every
        // shard can hold at least one; the capacity is then split exactly
        // (the first `capacity % shards` shards take one more), so the
        // shards' bounds add up to the capacity, never more.
        let count = match self.capacity {
            Some(c) => self.shards.min(1 << (usize::BITS - 1 - c.leading_zeros())),
            None => self.shards,
        };
        let cap_of = |i: usize| self.capacity.map(|c| c / count + usize::from(i < c % count));
        // The seed only spreads ids over buckets; it need not be secret.
        let seed = (SessionId::random().as_u128() as u64) | 1;
        let shards = (0..count)
            .map(|i| RwLock::new(Shard::new(IdHash { seed }, cap_of(i))))
            .collect();
        MemoryStore {
            inner: Arc::new(Inner {
                shards,
                mask: count - 1,
                clock: self.clock,
                max_record_bytes: self.max_record_bytes,
                capacity: self.capacity,
            }),
        }
    }
}

/// The in-memory store. Cloning it shares the same records.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[RwLock<Shard>]>,
    mask: usize,
    clock: SharedClock,
    max_record_bytes: usize,
    capacity: Option<usize>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.inner.shards.len())
            .field("max_record_bytes", &self.inner.max_record_bytes)
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// A keyed multiply-xorshift hash of the id's bits: ids are random already,
/// the per-store key keeps chosen ids from piling into one bucket.
#[derive(Clone, Copy)]
struct IdHash {
    seed: u64,
}

struct IdHasher {
    seed: u64,
    state: u64,
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            seed: self.seed,
            state: 0,
        }
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let x = self.state.wrapping_mul(self.seed);
        x ^ (x >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.state = (self.state.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u128(&mut self, i: u128) {
        let lo = i as u64;
        let hi = (i >> 64) as u64;
        self.state = (lo ^ self.seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi;
    }
}

struct Shard {
    map: HashMap<u128, Record, IdHash>,
    /// (deadline, id) of every record, ordered by deadline. The index is
    /// lazy: a delete or a moved deadline leaves the old entry behind as
    /// *stale* (it no longer matches the record in `map`), which saves a
    /// B-tree removal on the hot path. Stale entries are dropped when purge
    /// or eviction reaches them, and the index is rebuilt once they
    /// outnumber the records, so it never holds more than about twice as
    /// many entries as there are records.
    by_deadline: BTreeSet<(Timestamp, u128)>,
    /// How many entries of `by_deadline` are stale.
    stale: usize,
    /// The owner index: for each owner, the keys of this shard's records
    /// that name it. Exact: kept under the shard's lock by every change of
    /// a record (write, delete, rotate, purge, eviction).
    by_owner: HashMap<String, HashSet<u128>>,
    /// This shard's share of the store's capacity (the shares add up to it).
    cap: Option<usize>,
}

impl Shard {
    fn new(hash: IdHash, cap: Option<usize>) -> Self {
        Self {
            map: HashMap::with_hasher(hash),
            by_deadline: BTreeSet::new(),
            stale: 0,
            by_owner: HashMap::new(),
            cap,
        }
    }

    fn index_owner(&mut self, key: u128, owner: Option<&String>) {
        if let Some(owner) = owner {
            self.by_owner.entry(owner.clone()).or_default().insert(key);
        }
    }

    fn unindex_owner(&mut self, key: u128, owner: Option<&String>) {
        if let Some(owner) = owner
            && let Some(keys) = self.by_owner.get_mut(owner)
        {
            keys.remove(&key);
            if keys.is_empty() {
                self.by_owner.remove(owner);
            }
        }
    }

    /// Removes the record under `key` from the map and the owner index
    /// (not from the lazy deadline index).
    fn drop_record(&mut self, key: u128) -> Option<Record> {
        let old = self.map.remove(&key)?;
        self.unindex_owner(key, old.owner.as_ref());
        Some(old)
    }

    fn live(&self, key: u128, now: Timestamp) -> Option<&Record> {
        self.map.get(&key).filter(|r| r.is_live_at(now))
    }

    /// Whether an index entry still describes the record stored under its id.
    fn is_current(&self, (deadline, key): (Timestamp, u128)) -> bool {
        self.map.get(&key).is_some_and(|r| r.expires_at == deadline)
    }

    fn note_stale(&mut self) {
        self.stale += 1;
        if self.stale > 1024 && self.stale > self.map.len() {
            self.by_deadline = self.map.values().map(|r| (r.expires_at, r.id.as_u128())).collect();
            self.stale = 0;
        }
    }

    fn remove(&mut self, key: u128) -> Option<Record> {
        let old = self.drop_record(key)?;
        self.note_stale();
        Some(old)
    }

    fn put(&mut self, record: Record) {
        let key = record.id.as_u128();
        let deadline = record.expires_at;
        let owner = record.owner.clone();
        let old = self.map.insert(key, record);
        if old.as_ref().map(|o| &o.owner) != Some(&owner) {
            self.unindex_owner(key, old.as_ref().and_then(|o| o.owner.as_ref()));
            self.index_owner(key, owner.as_ref());
        }
        match old {
            Some(old) if old.expires_at == deadline => {}
            Some(_) => {
                // The old entry goes stale; the new one may have been stale
                // already and is current again.
                if !self.by_deadline.insert((deadline, key)) {
                    self.stale = self.stale.saturating_sub(1);
                }
                self.note_stale();
            }
            None => {
                // A stale entry with the same deadline may still be indexed
                // (deleted, then written again): it becomes current again.
                if !self.by_deadline.insert((deadline, key)) {
                    self.stale = self.stale.saturating_sub(1);
                }
            }
        }
    }

    fn set_deadline(&mut self, key: u128, expires_at: Timestamp) {
        let Some(r) = self.map.get_mut(&key) else {
            return;
        };
        if r.expires_at == expires_at {
            return;
        }
        r.expires_at = expires_at;
        // The old entry goes stale; when the new one was already indexed (a
        // stale entry that is current again) the two cancel out.
        if self.by_deadline.insert((expires_at, key)) {
            self.note_stale();
        }
    }

    /// Pops index entries due at `now`, removing the records they describe.
    fn purge(&mut self, now: Timestamp) -> u64 {
        let mut removed = 0;
        while let Some(&(deadline, key)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            self.by_deadline.pop_first();
            if self.is_current((deadline, key)) {
                self.drop_record(key);
                removed += 1;
            } else {
                self.stale = self.stale.saturating_sub(1);
            }
        }
        removed
    }

    fn expired_count(&self, now: Timestamp) -> usize {
        self.by_deadline
            .range(..=(now, u128::MAX))
            .filter(|&&entry| self.is_current(entry))
            .count()
    }

    /// Makes room for one new key when the shard is at `cap`.
    fn make_room(&mut self, cap: usize, now: Timestamp) {
        if self.map.len() < cap {
            return;
        }
        self.purge(now);
        while self.map.len() >= cap {
            let Some(entry) = self.by_deadline.pop_first() else {
                break;
            };
            if self.is_current(entry) {
                self.drop_record(entry.1);
            } else {
                self.stale = self.stale.saturating_sub(1);
            }
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.by_deadline.clear();
        self.stale = 0;
        self.by_owner.clear();
    }
}

impl MemoryStore {
    /// A store on the system clock with default settings.
    #[must_use]
    pub fn new() -> Self {
        MemoryStoreBuilder::default().build()
    }

    /// A builder to set the clock, size limit, capacity and shard count.
    #[must_use]
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    fn shard_of(&self, id: &SessionId) -> usize {
        ((id.as_u128() >> 64) as usize ^ (id.as_u128() as usize)) & self.inner.mask
    }

    fn shard(&self, id: &SessionId) -> &RwLock<Shard> {
        &self.inner.shards[self.shard_of(id)]
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn write_new(&self, shard: &mut Shard, record: &Record, version: u64, now: Timestamp) {
        let key = record.id.as_u128();
        if let Some(cap) = shard.cap
            && !shard.map.contains_key(&key)
        {
            shard.make_room(cap, now);
        }
        let mut stored = record.clone();
        stored.version = version;
        shard.put(stored);
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn clock(&self) -> SharedClock {
        Arc::clone(&self.inner.clock)
    }

    async fn create(&self, record: &Record) -> Result<u64> {
        check_size(&record.data, self.inner.max_record_bytes)?;
        let now = self.now();
        let mut shard = self.shard(&record.id).write();
        if shard.live(record.id.as_u128(), now).is_some() {
            return Err(Error::IdCollision { id: record.id });
        }
        self.write_new(&mut shard, record, 1, now);
        Ok(1)
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let now = self.now();
        Ok(self.shard(id).read().live(id.as_u128(), now).cloned())
    }

    async fn save(&self, record: &Record) -> Result<u64> {
        check_size(&record.data, self.inner.max_record_bytes)?;
        let now = self.now();
        let mut shard = self.shard(&record.id).write();
        let version = shard.live(record.id.as_u128(), now).map_or(1, |r| r.version + 1);
        self.write_new(&mut shard, record, version, now);
        Ok(version)
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        check_size(&record.data, self.inner.max_record_bytes)?;
        let now = self.now();
        let mut shard = self.shard(&record.id).write();
        match shard.live(record.id.as_u128(), now) {
            Some(stored) if stored.version == record.version => {
                let version = record.version + 1;
                self.write_new(&mut shard, record, version, now);
                Ok(version)
            }
            _ => Err(Error::Conflict {
                id: record.id,
                expected: record.version,
            }),
        }
    }

    /// One step under the shard's lock (the trait's default is a write per
    /// version, and not atomic).
    async fn import(&self, record: &Record) -> Result<bool> {
        let now = self.now();
        if !record.is_live_at(now) || record.version == 0 {
            return Ok(false);
        }
        check_size(&record.data, self.inner.max_record_bytes)?;
        let mut shard = self.shard(&record.id).write();
        if shard
            .live(record.id.as_u128(), now)
            .is_some_and(|stored| stored.version >= record.version)
        {
            return Ok(false);
        }
        self.write_new(&mut shard, record, record.version, now);
        Ok(true)
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        let now = self.now();
        let mut shard = self.shard(id).write();
        if shard.live(id.as_u128(), now).is_none() {
            return Ok(false);
        }
        shard.set_deadline(id.as_u128(), expires_at);
        Ok(true)
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.shard(id).write().remove(id.as_u128());
        Ok(())
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let now = self.now();
        let (a, b) = (self.shard_of(old), self.shard_of(new));
        let (old_key, new_key) = (old.as_u128(), new.as_u128());
        let shards = &self.inner.shards;
        if a == b {
            let mut shard = shards[a].write();
            if shard.live(new_key, now).is_some() {
                return Err(Error::IdCollision { id: *new });
            }
            if shard.live(old_key, now).is_none() {
                return Ok(false);
            }
            let Some(mut record) = shard.remove(old_key) else {
                return Ok(false);
            };
            record.id = *new;
            shard.remove(new_key);
            shard.put(record);
            return Ok(true);
        }
        // Lock both shards in index order so two rotations never deadlock.
        let (mut first, mut second) = if a < b {
            let first = shards[a].write();
            (first, shards[b].write())
        } else {
            let second = shards[b].write();
            (shards[a].write(), second)
        };
        let (from, to) = (&mut *first, &mut *second);
        if to.live(new_key, now).is_some() {
            return Err(Error::IdCollision { id: *new });
        }
        if from.live(old_key, now).is_none() {
            return Ok(false);
        }
        let Some(mut record) = from.remove(old_key) else {
            return Ok(false);
        };
        record.id = *new;
        to.remove(new_key);
        to.put(record);
        Ok(true)
    }

    async fn purge_expired(&self) -> Result<u64> {
        let now = self.now();
        let mut removed = 0;
        for shard in &self.inner.shards {
            // Skip the write lock when nothing in this shard is due.
            let due = shard.read().by_deadline.first().is_some_and(|&(d, _)| d <= now);
            if due {
                removed += shard.write().purge(now);
            }
        }
        Ok(removed)
    }

    async fn count(&self) -> Result<u64> {
        let now = self.now();
        let live: usize = self
            .inner
            .shards
            .iter()
            .map(|s| {
                let s = s.read();
                s.map.len() - s.expired_count(now)
            })
            .sum();
        Ok(live as u64)
    }

    async fn ids(&self) -> Result<Vec<ListingHandle>> {
        let now = self.now();
        let mut ids = Vec::new();
        for shard in &self.inner.shards {
            let shard = shard.read();
            ids.extend(
                shard
                    .map
                    .values()
                    .filter(|r| r.is_live_at(now))
                    .map(|r| ListingHandle::from_stored(r.id)),
            );
        }
        Ok(ids)
    }

    fn listing_handle(&self, id: &SessionId) -> ListingHandle {
        ListingHandle::from_stored(*id)
    }

    async fn load_listed(&self, handle: &ListingHandle) -> Result<Option<Record>> {
        self.load(&handle.stored()).await
    }

    async fn delete_listed(&self, handle: &ListingHandle) -> Result<()> {
        self.delete(&handle.stored()).await
    }

    async fn clear(&self) -> Result<()> {
        for shard in &self.inner.shards {
            shard.write().clear();
        }
        Ok(())
    }

    async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListingHandle>> {
        let now = self.now();
        let mut ids = Vec::new();
        for shard in &self.inner.shards {
            let shard = shard.read();
            if let Some(keys) = shard.by_owner.get(owner) {
                ids.extend(
                    keys.iter()
                        .filter_map(|key| shard.live(*key, now))
                        .map(|r| ListingHandle::from_stored(r.id)),
                );
            }
        }
        Ok(ids)
    }

    async fn delete_owner_sessions(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64> {
        let now = self.now();
        let keep = keep.map(|id| id.as_u128());
        let mut removed = 0;
        for shard in &self.inner.shards {
            // Most shards hold none of this owner's sessions: no write lock.
            if !shard.read().by_owner.contains_key(owner) {
                continue;
            }
            let mut shard = shard.write();
            let keys: Vec<u128> = shard
                .by_owner
                .get(owner)
                .map(|keys| keys.iter().copied().filter(|k| Some(*k) != keep).collect())
                .unwrap_or_default();
            for key in keys {
                if shard.remove(key).is_some_and(|r| r.is_live_at(now)) {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_store_core::{Clock, ManualClock};
    use std::time::Duration;

    fn record(now: Timestamp, ttl_ms: u64) -> Record {
        session_store_conformance::fixtures::RecordBuilder::new(now)
            .ttl_ms(ttl_ms)
            .n(1)
            .build()
    }

    #[tokio::test]
    async fn capacity_evicts_the_earliest_deadline() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let store = MemoryStore::builder()
            .clock(clock.shared())
            .shards(1)
            .capacity(3)
            .build();
        let now = clock.now();
        let soon = record(now, 10);
        store.create(&soon).await.unwrap();
        let mut later = Vec::new();
        for i in 0..3 {
            let r = record(now, 1_000 + i);
            store.create(&r).await.unwrap();
            later.push(r);
        }
        assert_eq!(store.count().await.unwrap(), 3);
        assert!(
            store.load(&soon.id).await.unwrap().is_none(),
            "earliest deadline evicted"
        );
        for r in &later {
            assert!(store.load(&r.id).await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn a_default_store_is_bounded_and_unbounded_removes_the_bound() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let extra = 5_000;
        let bounded = MemoryStore::builder().clock(clock.shared()).shards(16).build();
        let unbounded = MemoryStore::builder()
            .clock(clock.shared())
            .shards(16)
            .unbounded()
            .build();
        for _ in 0..DEFAULT_CAPACITY + extra {
            let r = record(clock.now(), 60_000);
            bounded.create(&r).await.unwrap();
            unbounded.create(&r).await.unwrap();
        }
        let kept = bounded.count().await.unwrap() as usize;
        assert!(kept <= DEFAULT_CAPACITY, "a default store kept {kept} records");
        assert!(
            kept > DEFAULT_CAPACITY - extra,
            "a default store kept only {kept} records"
        );
        assert_eq!(unbounded.count().await.unwrap() as usize, DEFAULT_CAPACITY + extra);
    }

    #[tokio::test]
    async fn the_capacity_is_exact_whatever_the_shard_count() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        for (capacity, shards) in [(1, 16), (10, 16), (10, 256), (100, 64), (1_000, 16), (1_001, 256)] {
            let store = MemoryStore::builder()
                .clock(clock.shared())
                .shards(shards)
                .capacity(capacity)
                .build();
            for _ in 0..capacity * 4 {
                store.create(&record(clock.now(), 60_000)).await.unwrap();
            }
            let kept = store.count().await.unwrap() as usize;
            assert!(kept <= capacity, "capacity {capacity} with {shards} shards kept {kept}");
            assert!(
                kept * 10 >= capacity * 8,
                "capacity {capacity} with {shards} shards kept only {kept}"
            );
        }
    }

    #[tokio::test]
    async fn capacity_drops_expired_first() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let store = MemoryStore::builder()
            .clock(clock.shared())
            .shards(1)
            .capacity(2)
            .build();
        let now = clock.now();
        let a = record(now, 5_000);
        let b = record(now, 10);
        store.create(&a).await.unwrap();
        store.create(&b).await.unwrap();
        clock.advance(Duration::from_millis(20));
        let c = record(clock.now(), 100);
        store.create(&c).await.unwrap();
        assert!(store.load(&a.id).await.unwrap().is_some());
        assert!(store.load(&c.id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn rotate_across_and_within_shards() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        for shards in [1, 64] {
            let store = MemoryStore::builder().clock(clock.shared()).shards(shards).build();
            for _ in 0..50 {
                let r = record(clock.now(), 1_000);
                store.create(&r).await.unwrap();
                let new = SessionId::random();
                assert!(store.rotate(&r.id, &new).await.unwrap());
                assert!(store.load(&r.id).await.unwrap().is_none());
                assert_eq!(store.load(&new).await.unwrap().unwrap().data, r.data);
            }
            assert_eq!(store.count().await.unwrap(), 50);
        }
    }

    #[tokio::test]
    async fn purge_uses_the_deadline_index() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let store = MemoryStore::builder().clock(clock.shared()).build();
        for i in 0..100 {
            store
                .create(&record(clock.now(), if i % 2 == 0 { 10 } else { 1_000 }))
                .await
                .unwrap();
        }
        // A touch moves a record's place in the index.
        let r = record(clock.now(), 10);
        store.create(&r).await.unwrap();
        assert!(store.touch(&r.id, clock.now() + Duration::from_secs(5)).await.unwrap());
        clock.advance(Duration::from_millis(10));
        assert_eq!(store.count().await.unwrap(), 51);
        assert_eq!(store.purge_expired().await.unwrap(), 50);
        assert_eq!(store.purge_expired().await.unwrap(), 0);
        assert_eq!(store.count().await.unwrap(), 51);
    }

    /// The lazy index stays bounded and purge stays exact through churn:
    /// deletes, re-creates, moved deadlines and saves.
    #[tokio::test]
    async fn lazy_index_stays_exact_and_bounded_under_churn() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let store = MemoryStore::builder().clock(clock.shared()).shards(1).build();
        let now = clock.now();
        let keep: Vec<Record> = (0..10).map(|_| record(now, 1_000_000)).collect();
        for r in &keep {
            store.create(r).await.unwrap();
        }
        for round in 0..5_000u64 {
            let r = record(now, 10 + round % 7);
            store.create(&r).await.unwrap();
            store
                .touch(&r.id, now + Duration::from_millis(20 + round % 5))
                .await
                .unwrap();
            store.save(&r).await.unwrap();
            store.delete(&r.id).await.unwrap();
            // Re-create one kept record's twin deadline to exercise stale entries that become current.
            let k = &keep[(round % 10) as usize];
            store
                .touch(&k.id, k.expires_at + Duration::from_millis(round % 3))
                .await
                .unwrap();
        }
        {
            let shard = store.inner.shards[0].read();
            assert!(
                shard.by_deadline.len() <= 2 * shard.map.len() + 1_100,
                "index grew to {}",
                shard.by_deadline.len()
            );
            let current = shard.by_deadline.iter().filter(|&&e| shard.is_current(e)).count();
            assert_eq!(current, shard.map.len(), "every record is indexed exactly once");
            assert_eq!(shard.by_deadline.len() - current, shard.stale);
        }
        let doomed = record(now, 5);
        store.create(&doomed).await.unwrap();
        clock.advance(Duration::from_millis(5));
        assert_eq!(store.count().await.unwrap(), 10);
        assert_eq!(store.purge_expired().await.unwrap(), 1);
        assert_eq!(store.count().await.unwrap(), 10);
        for k in &keep {
            assert!(store.load(&k.id).await.unwrap().is_some());
        }
    }

    #[test]
    fn builder_rounds_shards_to_a_power_of_two() {
        let store = MemoryStore::builder().shards(10).build();
        assert_eq!(store.inner.shards.len(), 16);
    }
}

/// The README's examples, compiled as doctests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
