//! The conformance suite against the in-memory store.

use session_store_conformance::{Capabilities, Harness, StoreConfig};
use session_store_core::{Result, async_trait};
use session_store_memory::MemoryStore;

/// Every `open` builds a new, empty store: the memory store is neither
/// durable nor shared between store objects, and has no raw bytes.
struct MemoryHarness {
    shards: usize,
}

#[async_trait]
impl Harness for MemoryHarness {
    type Store = MemoryStore;
    type Namespace = ();

    fn capabilities(&self) -> Capabilities {
        Capabilities::none().owner_index(true)
    }

    async fn new_namespace(&self) -> Result<()> {
        Ok(())
    }

    async fn open(&self, _namespace: &(), config: &StoreConfig) -> Result<MemoryStore> {
        Ok(MemoryStore::builder()
            .clock(config.clock.clone())
            .max_record_bytes(config.max_record_bytes)
            .shards(self.shards)
            .build())
    }
}

session_store_conformance::conformance_tests!(MemoryHarness { shards: 16 });

/// Every property again, with ids hashed and bodies encrypted at rest.
mod at_rest {
    use super::*;

    session_store_conformance::conformance_tests!(session_store_conformance::AtRestHarness::new(MemoryHarness {
        shards: 16
    }));
}

/// Every property again, with ids hashed at rest and bodies in the clear:
/// listings answer hashes, which must load and end their records.
mod hashed_ids {
    use super::*;

    session_store_conformance::conformance_tests!(session_store_conformance::AtRestHarness::hash_only(MemoryHarness {
        shards: 16
    }));
}
