//! What the suite needs from a store under test.

use std::fmt::Debug;

use session_store_core::seal::KeyRing;
use session_store_core::{DEFAULT_MAX_RECORD_BYTES, Result, SessionId, SessionStore, SharedClock, async_trait};

/// What a store can do, so the suite runs exactly the properties that apply
/// and reports the others as skipped, by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Records survive dropping the store and opening it again on the same
    /// namespace.
    pub durable: bool,
    /// Several store objects opened on one namespace at once (as several
    /// processes would) share records, and conditional writes stay atomic
    /// across them.
    pub shared: bool,
    /// The harness can read and overwrite a record's stored bytes
    /// ([`Harness::read_raw`], [`Harness::write_raw`]).
    pub raw_access: bool,
    /// A weaker rule for rotate, declared by a backend that cannot move a
    /// record in one atomic step (a Redis Cluster rotating between two hash
    /// slots): while a rotate runs, a reader may load the record under both
    /// the old and the new id, but never under neither; once rotate has
    /// returned, only the new id loads; and the old id may keep an expired
    /// remainder that a later purge removes and counts (a rotate that
    /// copies, then ends the old id with a version-checked write). Without
    /// this flag the suite demands the full rule: a reader sees exactly one
    /// of the two ids live, and a purge counts only records that expired.
    pub rotate_briefly_shows_both_ids: bool,
    /// The store keeps an owner index: [`SessionStore::owner_sessions`] and
    /// [`SessionStore::delete_owner_sessions`] work (a store without one
    /// answers [`Error::Unsupported`](session_store_core::Error::Unsupported)).
    /// Not part of [`all`](Self::all): declare it with
    /// [`owner_index`](Self::owner_index).
    pub owner_index: bool,
    /// The store keeps secrets at rest: ids hashed (no listing or stored
    /// byte holds a cookie value) and bodies sealed with a key ring, the
    /// stored id as associated data, under the keys of
    /// [`StoreConfig::at_rest_keys`] when given. The at-rest properties
    /// run only with it ([`AtRestHarness`](crate::AtRestHarness) declares
    /// it). Not part of [`all`](Self::all).
    pub at_rest: bool,
}

impl Capabilities {
    /// No optional capability (an in-memory store).
    #[must_use]
    pub const fn none() -> Self {
        Self {
            durable: false,
            shared: false,
            raw_access: false,
            rotate_briefly_shows_both_ids: false,
            owner_index: false,
            at_rest: false,
        }
    }

    /// A durable, shared store with raw access, and no weakened rule (add
    /// [`owner_index`](Self::owner_index) where the store has one).
    #[must_use]
    pub const fn all() -> Self {
        Self {
            durable: true,
            shared: true,
            raw_access: true,
            rotate_briefly_shows_both_ids: false,
            owner_index: false,
            at_rest: false,
        }
    }

    /// Sets [`durable`](Self::durable).
    #[must_use]
    pub const fn durable(mut self, yes: bool) -> Self {
        self.durable = yes;
        self
    }

    /// Sets [`shared`](Self::shared).
    #[must_use]
    pub const fn shared(mut self, yes: bool) -> Self {
        self.shared = yes;
        self
    }

    /// Sets [`raw_access`](Self::raw_access).
    #[must_use]
    pub const fn raw_access(mut self, yes: bool) -> Self {
        self.raw_access = yes;
        self
    }

    /// Sets [`owner_index`](Self::owner_index).
    #[must_use]
    pub const fn owner_index(mut self, yes: bool) -> Self {
        self.owner_index = yes;
        self
    }

    /// Sets [`at_rest`](Self::at_rest).
    #[must_use]
    pub const fn at_rest(mut self, yes: bool) -> Self {
        self.at_rest = yes;
        self
    }

    /// Sets [`rotate_briefly_shows_both_ids`](Self::rotate_briefly_shows_both_ids).
    #[must_use]
    pub const fn rotate_briefly_shows_both_ids(mut self, yes: bool) -> Self {
        self.rotate_briefly_shows_both_ids = yes;
        self
    }
}

/// How the suite wants a store opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The clock the store must use for every liveness decision.
    pub clock: SharedClock,
    /// The store's limit on a record's data size
    /// ([`SessionData::byte_size`](session_store_core::SessionData::byte_size)).
    pub max_record_bytes: usize,
    /// The key ring an at-rest store ([`Capabilities::at_rest`]) must seal
    /// and open with, when the property gives one (the key-rotation
    /// properties open one namespace under several rings); `None` means
    /// the harness's own. Other stores ignore it.
    pub at_rest_keys: Option<KeyRing>,
}

impl StoreConfig {
    /// A config with this clock and the default size limit.
    #[must_use]
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            at_rest_keys: None,
        }
    }

    /// Sets the size limit.
    #[must_use]
    pub fn max_record_bytes(mut self, limit: usize) -> Self {
        self.max_record_bytes = limit;
        self
    }

    /// Sets [`at_rest_keys`](Self::at_rest_keys).
    #[must_use]
    pub fn at_rest_keys(mut self, keys: KeyRing) -> Self {
        self.at_rest_keys = Some(keys);
        self
    }
}

/// Builds isolated stores of one backend for the suite.
///
/// A *namespace* is whatever isolates one store's records from another's in
/// this backend: a key prefix, a table, a directory. Every call to
/// [`new_namespace`](Self::new_namespace) must give one that no other test
/// uses, so tests can run in parallel against one server or file.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// The store under test.
    type Store: SessionStore + 'static;
    /// Names one isolated namespace.
    type Namespace: Clone + Debug + Send + Sync + 'static;

    /// What this store can do.
    fn capabilities(&self) -> Capabilities;

    /// Whether the service the store needs is here: `Ok(())` to run the
    /// tests, or `Err(why)` (for example "SESSION_STORE_REDIS_URL is not
    /// set: start a server with ...") to skip them.
    ///
    /// Each test [`conformance_tests!`](crate::conformance_tests) generates
    /// asks first. On `Err` it prints one line,
    /// `skipped: <test>: service unavailable: <why>`, and passes, so a third
    /// party's CI without the service skips instead of failing; with
    /// `SESSION_STORE_STRICT=1` in the environment (this repository's CI
    /// sets it) the test fails with the same reason instead. The default is
    /// always available. A harness that cannot reach its service must say so
    /// here rather than panic in its constructor, which the macro evaluates
    /// in every test.
    async fn available(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    /// A fresh namespace, empty and used by no one else.
    async fn new_namespace(&self) -> Result<Self::Namespace>;

    /// Opens a store on `namespace` with `config`. Called again on the same
    /// namespace after the previous store was dropped (reopen, for durable
    /// stores) or while it is still open (for shared stores).
    async fn open(&self, namespace: &Self::Namespace, config: &StoreConfig) -> Result<Self::Store>;

    /// Drops `namespace` after a test: the table, the key prefix, the
    /// directory, with whatever the test left in it (live, expired or
    /// corrupt records). The suite calls it once for every namespace
    /// [`new_namespace`](Self::new_namespace) gave during a test that
    /// [`conformance_tests!`](crate::conformance_tests) generated, after
    /// the property returned (passed, failed or panicked) and its stores
    /// were dropped. The default does nothing (a namespace that vanishes by
    /// itself, like an in-memory store or a temporary directory).
    ///
    /// An error here fails a test that otherwise passed: a harness that
    /// leaks namespaces fills a shared server run after run.
    async fn teardown(&self, namespace: &Self::Namespace) -> Result<()> {
        let _ = namespace;
        Ok(())
    }

    /// The stored bytes of `id`'s record (the codec blob), for stores with
    /// raw access; `Ok(None)` when absent. The default says raw access is
    /// not supported.
    async fn read_raw(&self, namespace: &Self::Namespace, id: &SessionId) -> Result<Option<Vec<u8>>> {
        let _ = (namespace, id);
        Err(session_store_core::Error::Unsupported(
            "raw access to the stored bytes (this harness)",
        ))
    }

    /// Overwrites the stored bytes of `id`'s existing record with `bytes`,
    /// leaving whatever the backend keeps beside the blob (deadline, version)
    /// as it was, so the record stays live but undecodable.
    async fn write_raw(&self, namespace: &Self::Namespace, id: &SessionId, bytes: &[u8]) -> Result<()> {
        let _ = (namespace, id, bytes);
        Err(session_store_core::Error::Unsupported(
            "raw access to the stored bytes (this harness)",
        ))
    }

    /// Breaks `id`'s existing record in a way only this backend can, beyond
    /// bad bytes: a column or key of the wrong type (a Redis key of our
    /// shape holding a string instead of a hash, an integer in a blob
    /// column), and may add entries of the backend's own shape that are no
    /// records at all (a row whose id column is not a session id). Returns
    /// how many such extra entries it added, or `Ok(None)` when the harness
    /// has no such way (the default).
    ///
    /// Afterwards loading `id` must give [`Error::Decode`](session_store_core::Error::Decode)
    /// naming it, while `count`, `ids` and `purge_expired` keep working for
    /// every healthy record. The entries count as live (their deadline, if
    /// the backend keeps one beside the data, lies in the future).
    async fn write_malformed(&self, namespace: &Self::Namespace, id: &SessionId) -> Result<Option<u64>> {
        let _ = (namespace, id);
        Ok(None)
    }
}
