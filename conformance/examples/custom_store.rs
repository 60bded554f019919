//! A third-party store tested with the conformance suite.
//!
//! `TinyStore` keeps encoded records in a `Mutex<HashMap>` that stands in
//! for a key-value server: the map outlives any one store object, several
//! store objects can share it, and the harness can reach its raw bytes. So
//! `TinyHarness` declares every capability and the suite runs every
//! property against it (see `tests/custom_store.rs`, which includes this
//! file and invokes `conformance_tests!`).
//!
//! Run the example itself with `cargo run -p session-store-conformance
//! --example custom_store`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use session_store_conformance::{Capabilities, Harness, StoreConfig};
use session_store_core::{
    Error, ListingHandle, Record, Result, SessionId, SessionStore, SharedClock, Timestamp, async_trait, raw::codec,
};

/// The "server": id to encoded record (`codec::encode_record`).
pub type Table = Arc<Mutex<HashMap<SessionId, Vec<u8>>>>;

/// A small store: every operation locks the table, so each is atomic.
#[derive(Debug, Clone)]
pub struct TinyStore {
    table: Table,
    clock: SharedClock,
    max_record_bytes: usize,
}

impl TinyStore {
    /// A store over `table`, deciding liveness with `clock`.
    pub fn new(table: Table, clock: SharedClock, max_record_bytes: usize) -> Self {
        Self {
            table,
            clock,
            max_record_bytes,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<SessionId, Vec<u8>>>> {
        self.table
            .lock()
            .map_err(|_| Error::backend_msg("custom", "the table's lock was poisoned by a panic"))
    }

    /// The live record under `id`, decoding its bytes.
    fn live(table: &HashMap<SessionId, Vec<u8>>, id: &SessionId, now: Timestamp) -> Result<Option<Record>> {
        match table.get(id) {
            None => Ok(None),
            Some(bytes) => {
                let record = codec::decode_record(*id, bytes)?;
                Ok(record.is_live_at(now).then_some(record))
            }
        }
    }

    fn put(table: &mut HashMap<SessionId, Vec<u8>>, record: &Record, version: u64) -> Result<()> {
        let mut stored = record.clone();
        stored.version = version;
        table.insert(stored.id, codec::encode_record(&stored)?);
        Ok(())
    }

    /// Every record that decodes, with whether it is live; corrupt ones are
    /// left alone (a load of them reports the decode error).
    fn decodable(table: &HashMap<SessionId, Vec<u8>>) -> impl Iterator<Item = Record> + '_ {
        table
            .iter()
            .filter_map(|(id, bytes)| codec::decode_record(*id, bytes).ok())
    }
}

#[async_trait]
impl SessionStore for TinyStore {
    fn clock(&self) -> SharedClock {
        Arc::clone(&self.clock)
    }

    async fn create(&self, record: &Record) -> Result<u64> {
        codec::check_size(&record.data, self.max_record_bytes)?;
        let mut table = self.lock()?;
        if Self::live(&table, &record.id, self.clock.now())?.is_some() {
            return Err(Error::IdCollision { id: record.id });
        }
        Self::put(&mut table, record, 1)?;
        Ok(1)
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        Self::live(&*self.lock()?, id, self.clock.now())
    }

    async fn save(&self, record: &Record) -> Result<u64> {
        codec::check_size(&record.data, self.max_record_bytes)?;
        let mut table = self.lock()?;
        let version = Self::live(&table, &record.id, self.clock.now())?.map_or(1, |r| r.version + 1);
        Self::put(&mut table, record, version)?;
        Ok(version)
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        codec::check_size(&record.data, self.max_record_bytes)?;
        let mut table = self.lock()?;
        match Self::live(&table, &record.id, self.clock.now())? {
            Some(stored) if stored.version == record.version => {
                Self::put(&mut table, record, record.version + 1)?;
                Ok(record.version + 1)
            }
            _ => Err(Error::Conflict {
                id: record.id,
                expected: record.version,
            }),
        }
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        let mut table = self.lock()?;
        let Some(mut record) = Self::live(&table, id, self.clock.now())? else {
            return Ok(false);
        };
        record.expires_at = expires_at;
        let version = record.version;
        Self::put(&mut table, &record, version)?;
        Ok(true)
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.lock()?.remove(id);
        Ok(())
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let now = self.clock.now();
        let mut table = self.lock()?;
        if Self::live(&table, new, now)?.is_some() {
            return Err(Error::IdCollision { id: *new });
        }
        let Some(mut record) = Self::live(&table, old, now)? else {
            return Ok(false);
        };
        table.remove(old);
        record.id = *new;
        let version = record.version;
        Self::put(&mut table, &record, version)?;
        Ok(true)
    }

    async fn purge_expired(&self) -> Result<u64> {
        let now = self.clock.now();
        let mut table = self.lock()?;
        let expired: Vec<SessionId> = Self::decodable(&table)
            .filter(|r| !r.is_live_at(now))
            .map(|r| r.id)
            .collect();
        for id in &expired {
            table.remove(id);
        }
        Ok(expired.len() as u64)
    }

    /// This store keeps ids as they are, so a listing handle holds the id.
    async fn ids(&self) -> Result<Vec<ListingHandle>> {
        let now = self.clock.now();
        Ok(Self::decodable(&*self.lock()?)
            .filter(|r| r.is_live_at(now))
            .map(|r| ListingHandle::from_stored(r.id))
            .collect())
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
        self.lock()?.clear();
        Ok(())
    }

    /// No owner index: the suite skips the owner properties (the harness
    /// does not declare `owner_index`).
    async fn owner_sessions(&self, _owner: &str) -> Result<Vec<ListingHandle>> {
        Err(Error::Unsupported("an owner index"))
    }

    async fn delete_owner_sessions(&self, _owner: &str, _keep: Option<&SessionId>) -> Result<u64> {
        Err(Error::Unsupported("an owner index"))
    }
}

/// Opens `TinyStore`s for the suite: one table per namespace, kept by the
/// harness as a server would keep it.
#[derive(Debug, Default)]
pub struct TinyHarness {
    next: AtomicU64,
    tables: Mutex<HashMap<u64, Table>>,
}

impl TinyHarness {
    /// The table of `namespace`.
    pub fn table(&self, namespace: u64) -> Result<Table> {
        let tables = self
            .tables
            .lock()
            .map_err(|_| Error::backend_msg("custom", "the harness's lock was poisoned"))?;
        tables
            .get(&namespace)
            .cloned()
            .ok_or_else(|| Error::backend_msg("custom", format!("namespace {namespace} was never created")))
    }
}

#[async_trait]
impl Harness for TinyHarness {
    type Store = TinyStore;
    type Namespace = u64;

    fn capabilities(&self) -> Capabilities {
        // The table outlives store objects (durable), several store objects
        // share it (shared), and the harness reaches its bytes (raw access).
        Capabilities::all()
    }

    async fn new_namespace(&self) -> Result<u64> {
        let namespace = self.next.fetch_add(1, Ordering::Relaxed);
        self.tables
            .lock()
            .map_err(|_| Error::backend_msg("custom", "the harness's lock was poisoned"))?
            .insert(namespace, Table::default());
        Ok(namespace)
    }

    async fn open(&self, namespace: &u64, config: &StoreConfig) -> Result<TinyStore> {
        Ok(TinyStore::new(
            self.table(*namespace)?,
            config.clock.clone(),
            config.max_record_bytes,
        ))
    }

    /// Forgets the namespace's table, as a server would drop a table.
    async fn teardown(&self, namespace: &u64) -> Result<()> {
        self.tables
            .lock()
            .map_err(|_| Error::backend_msg("custom", "the harness's lock was poisoned"))?
            .remove(namespace);
        Ok(())
    }

    async fn read_raw(&self, namespace: &u64, id: &SessionId) -> Result<Option<Vec<u8>>> {
        let table = self.table(*namespace)?;
        let table = table.lock().map_err(|_| Error::backend_msg("custom", "poisoned"))?;
        Ok(table.get(id).cloned())
    }

    async fn write_raw(&self, namespace: &u64, id: &SessionId, bytes: &[u8]) -> Result<()> {
        let table = self.table(*namespace)?;
        let mut table = table.lock().map_err(|_| Error::backend_msg("custom", "poisoned"))?;
        match table.get_mut(id) {
            Some(stored) => {
                *stored = bytes.to_vec();
                Ok(())
            }
            None => Err(Error::backend_msg("custom", "write_raw of an absent record")),
        }
    }
}

/// Runs a few properties directly and prints their verdicts; the full suite
/// runs in `tests/custom_store.rs`.
fn main() {
    use session_store_conformance::{block_on, properties};
    let harness = TinyHarness::default();
    let verdicts = block_on(async {
        vec![
            (
                "load_returns_none_at_the_exact_deadline",
                properties::load_returns_none_at_the_exact_deadline(&harness).await,
            ),
            (
                "corrupt_bytes_give_a_decode_error_for_that_record_only",
                properties::corrupt_bytes_give_a_decode_error_for_that_record_only(&harness).await,
            ),
            (
                "records_survive_drop_and_reopen",
                properties::records_survive_drop_and_reopen(&harness).await,
            ),
        ]
    });
    for (name, verdict) in verdicts {
        match verdict {
            Ok(pass) => println!("{name}: {pass:?}"),
            Err(failure) => println!("{failure}"),
        }
    }
}
