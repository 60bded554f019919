//! `tests/conformance.rs` of a store crate: the whole suite against the store.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use session_store_conformance::{Capabilities, Harness, Pass, StoreConfig, block_on, properties};
use session_store_core::{Error, Result, SessionId, async_trait};
// The store under test: here this workspace's file store; yours goes here.
use session_store_file::FileStore;

/// Opens stores for the suite. A namespace is a directory; a Redis store
/// would use a key prefix, an SQL store a table.
struct MyHarness {
    root: tempfile::TempDir,
    next: AtomicU64,
}

impl MyHarness {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("a temporary directory");
        Self {
            root,
            next: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl Harness for MyHarness {
    type Store = FileStore;
    type Namespace = PathBuf;

    fn capabilities(&self) -> Capabilities {
        // Declare only what the store really does: the properties that need
        // more are reported as skipped, by name.
        Capabilities::none().durable(true).shared(true).raw_access(true)
    }

    // A store on a server answers `Err("MY_STORE_URL is not set: ...")`
    // here when there is none: each test then prints one `skipped:` line,
    // or fails under SESSION_STORE_STRICT=1. A directory is always here.
    async fn available(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    async fn new_namespace(&self) -> Result<PathBuf> {
        // Unique per call: tests run in parallel against one backend.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(self.root.path().join(format!("ns{n}")))
    }

    async fn open(&self, dir: &PathBuf, config: &StoreConfig) -> Result<FileStore> {
        FileStore::builder(dir)
            .clock(config.clock.clone()) // every liveness decision uses it
            .max_record_bytes(config.max_record_bytes)
            .open()
    }

    // After each test, whatever it left: drop the table, delete the keys.
    async fn teardown(&self, dir: &PathBuf) -> Result<()> {
        std::fs::remove_dir_all(dir).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(Error::backend("file", "removing a namespace", e)),
        })
    }

    // With raw_access: a record's stored blob, and a way to overwrite it.
    async fn read_raw(&self, dir: &PathBuf, id: &SessionId) -> Result<Option<Vec<u8>>> {
        match std::fs::read(FileStore::path_in(dir, id)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::backend("file", "reading a session file", e)),
        }
    }

    async fn write_raw(&self, dir: &PathBuf, id: &SessionId, bytes: &[u8]) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(FileStore::path_in(dir, id))
            .map_err(|e| Error::backend("file", "opening a session file", e))?;
        file.write_all(bytes)
            .map_err(|e| Error::backend("file", "writing a session file", e))
    }
}

// One #[test] per property, plus the model test.
session_store_conformance::conformance_tests!(MyHarness::new());

// One property by hand (to assert that a deliberately broken store fails
// it, match on `Err(failure)` instead).
#[test]
fn create_never_overwrites_a_live_record_by_hand() {
    let verdict = block_on(properties::create_never_overwrites_a_live_record(&MyHarness::new()));
    assert_eq!(verdict, Ok(Pass::Passed));
}
