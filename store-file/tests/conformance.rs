//! The conformance suite against the file store.
//!
//! A namespace is a fresh directory under one temporary directory (the store
//! creates it on open). Stores opened on one namespace are separate objects
//! on the same directory, each with its own lock files, as separate
//! processes would be. Raw access reads and writes the session file's bytes
//! directly.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use session_store_conformance::{Capabilities, Harness, StoreConfig};
use session_store_core::{Error, Result, SessionId, async_trait};
use session_store_file::FileStore;

struct FileHarness {
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl FileHarness {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            next: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl Harness for FileHarness {
    type Store = FileStore;
    type Namespace = PathBuf;

    fn capabilities(&self) -> Capabilities {
        Capabilities::all().owner_index(true)
    }

    async fn new_namespace(&self) -> Result<PathBuf> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(self.dir.path().join(format!("ns{n}")))
    }

    async fn open(&self, dir: &PathBuf, config: &StoreConfig) -> Result<FileStore> {
        FileStore::builder(dir)
            .clock(config.clock.clone())
            .max_record_bytes(config.max_record_bytes)
            .open()
    }

    /// Removes the namespace's directory with everything the test left in
    /// it (records, lock files, planted garbage), so a long run does not
    /// hold every test's megabytes until the temporary directory goes.
    async fn teardown(&self, dir: &PathBuf) -> Result<()> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::backend("file", "removing the namespace's directory", e)),
        }
    }

    async fn read_raw(&self, dir: &PathBuf, id: &SessionId) -> Result<Option<Vec<u8>>> {
        match std::fs::read(FileStore::path_in(dir, id)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::backend("file", "reading a session file", e)),
        }
    }

    async fn write_raw(&self, dir: &PathBuf, id: &SessionId, bytes: &[u8]) -> Result<()> {
        // One open, without `create`: an absent file fails it (no separate
        // existence check to race with).
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(FileStore::path_in(dir, id));
        let mut file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::backend_msg("file", "write_raw: no session file to overwrite"));
            }
            Err(e) => return Err(Error::backend("file", "opening a session file", e)),
        };
        file.write_all(bytes)
            .map_err(|e| Error::backend("file", "writing a session file", e))
    }
}

session_store_conformance::conformance_tests!(FileHarness::new());

/// Every property again, with ids hashed and bodies encrypted at rest.
mod at_rest {
    use super::*;

    session_store_conformance::conformance_tests!(session_store_conformance::AtRestHarness::new(FileHarness::new()));
}
