//! A store for the purger's tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use session_store_core::{Error, Record, Result, SessionId, SessionStore, Timestamp, async_trait};

/// A store that only counts purge calls; every other call is unused here.
/// Every second purge fails, to show the purger keeps going.
#[derive(Debug, Default)]
pub struct CountingStore {
    pub purges: AtomicU64,
}

#[async_trait]
impl SessionStore for CountingStore {
    fn clock(&self) -> session_store_core::SharedClock {
        session_store_core::system_clock()
    }
    async fn create(&self, _: &Record) -> Result<u64> {
        Ok(1)
    }
    async fn load(&self, _: &SessionId) -> Result<Option<Record>> {
        Ok(None)
    }
    async fn save(&self, _: &Record) -> Result<u64> {
        Ok(1)
    }
    async fn save_if_version(&self, r: &Record) -> Result<u64> {
        Err(Error::Conflict {
            id: r.id,
            expected: r.version,
        })
    }
    async fn touch(&self, _: &SessionId, _: Timestamp) -> Result<bool> {
        Ok(false)
    }
    async fn delete(&self, _: &SessionId) -> Result<()> {
        Ok(())
    }
    async fn rotate(&self, _: &SessionId, _: &SessionId) -> Result<bool> {
        Ok(false)
    }
    async fn purge_expired(&self) -> Result<u64> {
        let n = self.purges.fetch_add(1, Ordering::SeqCst) + 1;
        if n.is_multiple_of(2) {
            Err(Error::backend_msg("counting", "disk on fire"))
        } else {
            Ok(n)
        }
    }
    async fn ids(&self) -> Result<Vec<session_store_core::ListingHandle>> {
        Ok(Vec::new())
    }
    async fn clear(&self) -> Result<()> {
        Ok(())
    }
    fn listing_handle(&self, id: &session_store_core::SessionId) -> session_store_core::ListingHandle {
        session_store_core::ListingHandle::from_stored(*id)
    }
    async fn load_listed(
        &self,
        handle: &session_store_core::ListingHandle,
    ) -> session_store_core::Result<Option<session_store_core::Record>> {
        self.load(&handle.stored()).await
    }
    async fn delete_listed(&self, handle: &session_store_core::ListingHandle) -> session_store_core::Result<()> {
        self.delete(&handle.stored()).await
    }
    async fn owner_sessions(&self, _owner: &str) -> session_store_core::Result<Vec<session_store_core::ListingHandle>> {
        Err(session_store_core::Error::Unsupported("an owner index"))
    }
    async fn delete_owner_sessions(
        &self,
        _owner: &str,
        _keep: Option<&session_store_core::SessionId>,
    ) -> session_store_core::Result<u64> {
        Err(session_store_core::Error::Unsupported("an owner index"))
    }
}
