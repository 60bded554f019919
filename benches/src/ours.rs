//! Any store of this workspace, driven through the [`SessionStore`] trait.

use std::sync::Arc;

use session_store_core::{Record, SessionId, SessionStore, Timestamp, system_clock};

use crate::Payload;
use crate::subject::{BenchResult, Op, Subject};

/// One of our stores as a [`Subject`]: every operation is one call of the
/// [`SessionStore`] trait, exactly as an application makes it.
#[derive(Debug)]
pub struct Ours<S: SessionStore + ?Sized> {
    store: Arc<S>,
    seeder: Option<Arc<S>>,
    purge_population: usize,
}

impl<S: SessionStore + ?Sized> Ours<S> {
    /// Wraps a store.
    pub fn new(store: Arc<S>) -> Self {
        Self {
            store,
            seeder: None,
            purge_population: 100_000,
        }
    }

    /// Sets another store on the same namespace that writes the records a
    /// workload sets up (untimed), for example a file store that does not
    /// fsync; the measured operations still use the main store.
    #[must_use]
    pub fn with_seeder(mut self, seeder: Arc<S>) -> Self {
        self.seeder = Some(seeder);
        self
    }

    /// Sets how many records the purge workload stores (default 100,000),
    /// for stores where writing that many takes minutes.
    #[must_use]
    pub fn with_purge_population(mut self, records: usize) -> Self {
        self.purge_population = records;
        self
    }

    /// The wrapped store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }
}

impl<S: SessionStore + ?Sized + 'static> Subject for Ours<S> {
    type Rec = Record;
    type Id = SessionId;

    fn supports(&self, _op: Op) -> bool {
        true
    }

    fn fresh_id(&self) -> SessionId {
        SessionId::random()
    }

    fn record(&self, payload: &Payload, expires_at: Timestamp) -> Record {
        let now = system_clock().now();
        Record::with_deadline(SessionId::random(), payload.to_session_data(), now, expires_at)
    }

    fn id_of(rec: &Record) -> SessionId {
        rec.id
    }

    fn set_id(rec: &mut Record, id: SessionId) {
        rec.id = id;
    }

    async fn create(&self, rec: &mut Record) -> BenchResult<()> {
        self.store.create(rec).await?;
        rec.version = 1;
        Ok(())
    }

    async fn seed_create(&self, rec: &mut Record) -> BenchResult<()> {
        self.seeder.as_ref().unwrap_or(&self.store).create(rec).await?;
        rec.version = 1;
        Ok(())
    }

    async fn load(&self, id: SessionId) -> BenchResult<Option<Record>> {
        Ok(self.store.load(&id).await?)
    }

    async fn save(&self, rec: &Record) -> BenchResult<()> {
        self.store.save(rec).await?;
        Ok(())
    }

    async fn delete(&self, id: SessionId) -> BenchResult<()> {
        Ok(self.store.delete(&id).await?)
    }

    async fn save_if_version(&self, rec: &mut Record) -> BenchResult<()> {
        rec.version = self.store.save_if_version(rec).await?;
        Ok(())
    }

    async fn touch(&self, id: SessionId, expires_at: Timestamp) -> BenchResult<bool> {
        Ok(self.store.touch(&id, expires_at).await?)
    }

    async fn rotate(&self, old: SessionId, new: SessionId) -> BenchResult<bool> {
        Ok(self.store.rotate(&old, &new).await?)
    }

    async fn purge(&self) -> BenchResult<Option<u64>> {
        Ok(Some(self.store.purge_expired().await?))
    }

    async fn clear(&self, _ids: Vec<SessionId>) -> BenchResult<()> {
        Ok(self.store.clear().await?)
    }

    fn purge_population(&self) -> usize {
        self.purge_population
    }
}
