//! The suite with secrets at rest: any harness, its stores wrapped in
//! [`Protected`] with ids hashed and bodies encrypted.

use session_store_core::at_rest::{AtRest, Protected, inner_limit, stored_id};
use session_store_core::seal::KeyRing;
use session_store_core::{Result, SessionId, async_trait};

use crate::{Capabilities, Harness, StoreConfig};

/// The key ring an [`AtRestHarness`] seals with unless a property gives
/// one ([`StoreConfig::at_rest_keys`]): key id 1,
/// [`at_rest_key(1)`](crate::fixtures::at_rest_key).
#[must_use]
pub fn default_keys() -> KeyRing {
    KeyRing::new(1, crate::fixtures::at_rest_key(1))
}

/// `H`'s stores behind [`Protected`], ids hashed and bodies encrypted, so
/// that every property runs on a backend with secrets at rest, and the
/// at-rest properties run too ([`Capabilities::at_rest`]). One line per
/// backend:
///
/// ```
/// # use session_store_conformance::{Capabilities, Harness, StoreConfig};
/// # use session_store_core::{Result, async_trait};
/// # use session_store_memory::MemoryStore;
/// # struct MemoryHarness;
/// # #[async_trait]
/// # impl Harness for MemoryHarness {
/// #     type Store = MemoryStore;
/// #     type Namespace = ();
/// #     fn capabilities(&self) -> Capabilities { Capabilities::none() }
/// #     async fn new_namespace(&self) -> Result<()> { Ok(()) }
/// #     async fn open(&self, _: &(), config: &StoreConfig) -> Result<MemoryStore> {
/// #         Ok(MemoryStore::builder().clock(config.clock.clone()).max_record_bytes(config.max_record_bytes).build())
/// #     }
/// # }
/// use session_store_conformance::AtRestHarness;
///
/// session_store_conformance::conformance_tests!(AtRestHarness::new(MemoryHarness));
/// # fn main() {}
/// ```
///
/// Capabilities are `H`'s, plus `at_rest` and
/// `rotate_briefly_shows_both_ids` (an encrypted rotate seals a copy
/// first). The inner store gets [`inner_limit`] of the configured limit;
/// the wrapper enforces the limit itself. Raw access maps each id to the
/// id it is stored under.
#[derive(Debug)]
pub struct AtRestHarness<H> {
    inner: H,
    /// Whether bodies are sealed too (else ids are hashed only).
    encrypt: bool,
}

impl<H: Harness> AtRestHarness<H> {
    /// `inner`'s stores, protected: ids hashed, bodies encrypted.
    pub const fn new(inner: H) -> Self {
        Self { inner, encrypt: true }
    }

    /// `inner`'s stores with ids hashed and bodies in the clear
    /// ([`AtRest::hash_ids`] without [`AtRest::encrypt`]): listings answer
    /// hashes, so every listing property runs against handles that are not
    /// the cookie's id. Capabilities are `inner`'s; the at-rest properties,
    /// which check sealed bodies, do not run.
    pub const fn hash_only(inner: H) -> Self {
        Self { inner, encrypt: false }
    }
}

#[async_trait]
impl<H: Harness> Harness for AtRestHarness<H> {
    type Store = Protected<H::Store>;
    type Namespace = H::Namespace;

    fn capabilities(&self) -> Capabilities {
        let inner = self.inner.capabilities();
        if self.encrypt {
            inner.at_rest(true).rotate_briefly_shows_both_ids(true)
        } else {
            inner
        }
    }

    async fn available(&self) -> std::result::Result<(), String> {
        self.inner.available().await
    }

    async fn new_namespace(&self) -> Result<H::Namespace> {
        self.inner.new_namespace().await
    }

    async fn open(&self, namespace: &H::Namespace, config: &StoreConfig) -> Result<Self::Store> {
        let mut inner_config = config.clone();
        if self.encrypt {
            inner_config.max_record_bytes = inner_limit(config.max_record_bytes);
        }
        inner_config.at_rest_keys = None;
        let keys = config.at_rest_keys.clone().unwrap_or_else(default_keys);
        let store = self.inner.open(namespace, &inner_config).await?;
        let at_rest = AtRest::new().hash_ids(true).max_record_bytes(config.max_record_bytes);
        Ok(Protected::new(
            store,
            if self.encrypt { at_rest.encrypt(keys) } else { at_rest },
        ))
    }

    async fn teardown(&self, namespace: &H::Namespace) -> Result<()> {
        self.inner.teardown(namespace).await
    }

    async fn read_raw(&self, namespace: &H::Namespace, id: &SessionId) -> Result<Option<Vec<u8>>> {
        self.inner.read_raw(namespace, &stored_id(id)).await
    }

    async fn write_raw(&self, namespace: &H::Namespace, id: &SessionId, bytes: &[u8]) -> Result<()> {
        self.inner.write_raw(namespace, &stored_id(id), bytes).await
    }

    async fn write_malformed(&self, namespace: &H::Namespace, id: &SessionId) -> Result<Option<u64>> {
        self.inner.write_malformed(namespace, &stored_id(id)).await
    }
}
