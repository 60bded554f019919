//! A durable file session store: one file per session, atomic writes, crash safe.
//!
//! ```
//! use session_store_core::{Clock, Expiry, Record, SessionData, SessionStore, SystemClock};
//! use session_store_file::{Durability, FileStore};
//!
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("sessions");
//! # tokio::runtime::Builder::new_multi_thread().build()?.block_on(async {
//! let store = FileStore::builder(&dir).durability(Durability::Fsync).open()?;
//! let mut data = SessionData::new();
//! data.insert("count", &1)?;
//! let record = Record::new(data, SystemClock.now(), &Expiry::default());
//! store.create(&record).await?;
//!
//! // Another store on the same directory (another process, a restart) sees it.
//! let again = FileStore::open(&dir)?;
//! let loaded = again.load(&record.id).await?.expect("live");
//! assert_eq!(loaded.data.get::<i32>("count")?, Some(1));
//! assert_eq!(loaded.version, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout on disk
//!
//! The store owns one directory (made 0700 if it does not exist). Each
//! session is one file (0600) named by the id's 22-character text form,
//! inside a shard directory (0700) named by the id's first two characters:
//! `dir/ab/abXXXXXXXXXXXXXXXXXXXX`. File names come from parsed ids only, so
//! no cookie can name a path outside the directory, and 4,096 shards keep a
//! million sessions at about 250 files per directory. A file holds the whole
//! record (created, deadline, version, data) as encoded by
//! [`session_store_core::raw::codec::encode_record`]. The names are case
//! sensitive: keep the directory on a case-sensitive file system (see the
//! README).
//!
//! Each shard directory also holds `.lock`, an empty file used for advisory
//! locking, and, transiently, temporary files `.tmp-<id>-<pid>-<n>`. Neither
//! can ever be read as a session (ids hold no `.`). The directory also holds
//! `owners/`, the owner index (see [below](#owner-index)).
//!
//! # Writes, locks and crashes
//!
//! Every write goes to a temporary file, which is synced and renamed over the
//! session file; then the shard directory is synced. A reader opens either
//! the old file or the new one, never a torn mix. Create, save,
//! save-if-version, touch, delete and rotate hold the advisory lock
//! (`flock`) of the shard (rotate: of both shards, in name order) for their
//! read-check-write, so they are atomic against other tasks and against other
//! processes sharing the directory. The kernel releases the lock of a process
//! that dies, so a crash leaves no deadlock. Loads take no lock.
//!
//! A crash (or `SIGKILL`) at any moment leaves every session file either as
//! it was before the interrupted write or as it is after it; the interrupted
//! write may leave its temporary file behind. Temporary files are never
//! loaded, and they are removed as soon as the store can tell their writer
//! is gone: every write makes and renames its temporary file while holding
//! the shard's lock, so a temporary file in a shard whose lock is free
//! belongs to a dead writer. Opening a store sweeps the directory for them
//! on a background thread (a restarted app cleans up after its crash), and
//! [`purge_expired`](SessionStore::purge_expired) and
//! [`clear`](SessionStore::clear) remove those they meet.
//!
//! A purge reads only the header of each file (its first
//! [`RECORD_HEADER_MAX`](session_store_core::raw::codec::RECORD_HEADER_MAX)
//! bytes: format, created time, deadline, version), never the data.
//!
//! # Owner index
//!
//! [`owner_sessions`](SessionStore::owner_sessions) and
//! [`delete_owner_sessions`](SessionStore::delete_owner_sessions) use an
//! index of empty marker files (0600, in directories 0700):
//! `dir/owners/<key>/<id>`, where `<key>` is the lowercase hex of the first
//! 16 bytes of the SHA-256 of the owner ([`FileStore::marker_path`]). The
//! `owners` directory is not a shard, so scans never enter it. A file
//! system has no step that renames a record and changes a second directory
//! at once, so the index follows these rules instead, each under the
//! session's shard lock:
//!
//! - a write (create, save, save-if-version) of a record that names an
//!   owner makes the owner's marker (synced in [`Durability::Fsync`] mode)
//!   *before* the record file is renamed into place, and rotate makes the
//!   new id's marker before its rename: a stored record never names an
//!   owner without a marker (touch also restores a missing marker, such as
//!   one a version of this store without the index never made);
//! - a save that changes or removes the owner removes the old marker after
//!   the write; rotate removes the old id's marker after the rename;
//! - delete leaves the marker (a logout stays one file removal).
//!
//! So **the index may hold stale markers**: the record is absent, expired,
//! or names another owner (a lost removal, or two owners whose keys
//! collide). **Every read filters them out**: `owner_sessions` reads each
//! marked record and lists it only if it is live and names exactly the
//! owner asked; `delete_owner_sessions` reads each marked record under its
//! shard lock, removes it only if it names that owner (counting it if it
//! was live), and removes the marker, stale or not. **Purge removes them**:
//! [`purge_expired`](SessionStore::purge_expired) and
//! [`clear`](SessionStore::clear) remove every stale marker (checked under
//! the session's shard lock, so never the marker of a write in progress)
//! and the owner directories left empty. A marker whose record does not
//! decode is left, and its record skipped, by every one of them.
//!
//! Listing and revoking cost in proportion to the owner's markers (live
//! sessions plus stale markers not yet purged), never to all sessions
//! stored. A revoke holds the owner's lock (`owners/<key>.lock`, `flock`,
//! exclusive) from its listing to its last removal, and a rotate of a
//! record naming that owner takes the same lock shared under its shard
//! locks (or, when a revoke holds it, lets go of every lock, waits for the
//! revoke and starts again): no session of the owner moves to an id the
//! revoke's listing missed. A session created for the owner meanwhile (a
//! new login) may survive, as the trait allows. Owner lock files, like
//! shard lock files, are never removed (one per owner ever rotated or
//! revoked; removing one could let a rotate past a revoke). The purge's marker sweep reads each
//! marked record in full (the owner follows the header), so a purge costs
//! in addition about one read per owned session.
//!
//! # Durability
//!
//! - [`Durability::Fsync`] (the default): a write has reached the disk when
//!   the call returns; it survives a process crash, a kernel crash and power
//!   loss.
//! - [`Durability::NoSync`]: no `fsync`. A write survives a process crash
//!   (the kernel holds it), but a kernel crash or power loss may lose the
//!   writes of the last few seconds, including deletes, so a logged-out
//!   session may come back. A file is still never torn: it is the old or the
//!   new record (on filesystems that order a rename after the data it
//!   renames, such as ext4's default `data=ordered` and `auto_da_alloc`).
//!
//! # Undecodable files
//!
//! A file whose bytes do not decode gives [`Error::Decode`] naming the id's
//! fingerprint to every operation that must read it (load, create, save,
//! save-if-version, touch, rotate), which change nothing. Delete and clear remove it.
//! Count and ids skip it and carry on with the other records. Purge reads
//! only the header: a damaged file whose header still names a past deadline
//! is removed like any expired record; one whose header does not decode is
//! skipped (with a `tracing` warning) and left for an operator to inspect
//! before deleting it.
//!
//! # Threads
//!
//! By default ([`Blocking::Auto`]) a load, which reads one file and takes
//! no lock (microseconds from the page cache), runs on the calling thread.
//! Every other operation runs inside [`tokio::task::block_in_place`] on a
//! multi-threaded runtime (the worker hands its other tasks to another
//! thread first, and the operation does not wait for a thread hop) and
//! inside [`tokio::task::spawn_blocking`] on a current-thread runtime.
//! Outside any tokio runtime it runs on the calling thread. Where a read
//! may take long (a network file system), choose `Blocking::InPlace`
//! (loads under `block_in_place` too) or `Blocking::SpawnBlocking`.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod disk;
pub mod inspect;
mod owners;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use session_store_core::{
    DEFAULT_MAX_RECORD_BYTES, Error, ListingHandle, Record, Result, SessionId, SessionStore, SharedClock, Timestamp,
    async_trait, raw::codec::check_size, system_clock,
};

pub use session_store_core::raw::blocking::Blocking;
use session_store_core::raw::blocking::{run_blocking, run_quick_or_blocking};
use tokio::sync::{Mutex, MutexGuard};

use crate::disk::{Disk, Entry, Place};

/// When a write counts as done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `fsync` the file before renaming it into place and the directory
    /// after: a write that returned survives power loss. The default.
    #[default]
    Fsync,
    /// No `fsync`: a write that returned survives a crash of the process but
    /// not a kernel crash or power loss (the last few seconds of writes,
    /// deletes included, may be lost). Files are still never torn.
    NoSync,
}

/// Builds a [`FileStore`] on a directory.
#[derive(Debug, Clone)]
pub struct FileStoreBuilder {
    dir: PathBuf,
    clock: SharedClock,
    durability: Durability,
    max_record_bytes: usize,
    blocking: Blocking,
}

impl FileStoreBuilder {
    /// The clock every liveness decision asks (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// When a write counts as done (default [`Durability::Fsync`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The largest data size accepted, in bytes (default
    /// [`DEFAULT_MAX_RECORD_BYTES`]).
    #[must_use]
    pub fn max_record_bytes(mut self, limit: usize) -> Self {
        self.max_record_bytes = limit;
        self
    }

    /// Where blocking file I/O runs (default [`Blocking::Auto`]).
    #[must_use]
    pub fn blocking(mut self, blocking: Blocking) -> Self {
        self.blocking = blocking;
        self
    }

    /// Opens the store, creating the directory (0700) if it is missing.
    ///
    /// This blocks briefly on the file system; call it at start-up.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the directory cannot be created;
    /// [`Error::Config`] when the path is not a directory.
    pub fn open(self) -> Result<FileStore> {
        let disk = Disk::new(self.dir, self.clock, self.durability, self.max_record_bytes);
        disk.create_root()?;
        let inner = Arc::new(Inner {
            disk,
            queues: (0..QUEUES).map(|_| Mutex::new(())).collect(),
            blocking: self.blocking,
        });
        // Temporary files of writers that died (a crash before this start):
        // listing the directory takes a while on a large store, so it runs
        // beside the app rather than before it.
        let sweeper = Arc::clone(&inner);
        let spawned = std::thread::Builder::new()
            .name("session-store-file-sweep".into())
            .spawn(move || match sweeper.disk.sweep_tmp() {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed temporary session files left by dead writers"),
                Err(e) => tracing::warn!(error = %e, "sweeping temporary session files failed"),
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the sweep of temporary session files");
        }
        Ok(FileStore { inner })
    }
}

/// How many in-process queues the shards map onto.
const QUEUES: usize = 256;

/// A session store keeping one file per session in a directory.
///
/// Cloning it shares the same store. Several stores (in one process or
/// many) may open the same directory at once. See the crate docs for the
/// layout, the locking and the durability modes.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    disk: Disk,
    /// Tasks of this process that change the same shard wait here, without
    /// holding a thread, before taking the shard's file lock.
    queues: Box<[Mutex<()>]>,
    blocking: Blocking,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.inner.disk.root)
            .field("durability", &self.inner.disk.durability)
            .field("max_record_bytes", &self.inner.disk.max_record_bytes)
            .field("blocking", &self.inner.blocking)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// A builder for a store on `dir`, to set the clock, durability, size
    /// limit and blocking mode.
    pub fn builder(dir: impl Into<PathBuf>) -> FileStoreBuilder {
        FileStoreBuilder {
            dir: dir.into(),
            clock: system_clock(),
            durability: Durability::default(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            blocking: Blocking::default(),
        }
    }

    /// Opens a store on `dir` with default settings (system clock,
    /// [`Durability::Fsync`]).
    ///
    /// # Errors
    ///
    /// As [`FileStoreBuilder::open`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        Self::builder(dir).open()
    }

    /// The directory this store keeps its files in.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.disk.root
    }

    /// The file that holds (or would hold) `id`'s record in this store.
    #[must_use]
    pub fn path_of(&self, id: &SessionId) -> PathBuf {
        self.inner.disk.place(*id).file
    }

    /// The file that holds (or would hold) `id`'s record in a store on
    /// `dir`: `dir/<first two characters of the id>/<id>`.
    #[must_use]
    pub fn path_in(dir: &Path, id: &SessionId) -> PathBuf {
        disk::file_path(dir, id)
    }

    /// The owner-index marker that says `id` may belong to `owner`:
    /// `dir/owners/<hex of the first 16 bytes of SHA-256(owner)>/<id>` (see
    /// the crate docs on the owner index).
    #[must_use]
    pub fn marker_path(&self, owner: &str, id: &SessionId) -> PathBuf {
        self.inner
            .disk
            .root
            .join(owners::OWNERS_DIR)
            .join(session_store_core::owner_key(owner))
            .join(id.encode().as_str())
    }

    fn queue_of(&self, place: &Place) -> usize {
        let b = place.enc.as_str().as_bytes();
        (usize::from(b[0]) * 31 + usize::from(b[1])) % QUEUES
    }

    /// Waits for this process's other writers of `place`'s shard.
    async fn queue(&self, place: &Place) -> MutexGuard<'_, ()> {
        self.inner.queues[self.queue_of(place)].lock().await
    }

    /// Runs blocking file work off the runtime's worker threads.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Disk) -> Result<T> + Send + 'static,
    {
        run_blocking("file", self.inner.blocking, &self.inner, move |inner| f(&inner.disk)).await
    }

    /// Runs a change to one session under its shard's locks.
    async fn change<T, F>(&self, id: SessionId, create_shard: bool, f: F) -> Result<T>
    where
        T: Send + 'static + Default,
        F: FnOnce(&Disk, &Place) -> Result<T> + Send + 'static,
    {
        let place = self.inner.disk.place(id);
        let _queued = self.queue(&place).await;
        self.run(move |disk| {
            let Some(_lock) = disk.lock(&place.shard, create_shard)? else {
                // No shard directory: no record, nothing to change.
                return Ok(T::default());
            };
            f(disk, &place)
        })
        .await
    }
}

/// What one attempt at a rotate did.
enum Rotation {
    Done(bool),
    /// The record's owner is being revoked: nothing was changed.
    OwnerBusy(String),
}

impl FileStore {
    async fn rotate_once(&self, old: SessionId, new: SessionId) -> Result<Rotation> {
        let disk = &self.inner.disk;
        let (from, to) = (disk.place(old), disk.place(new));
        // In-process queues in index order, then file locks in shard-name
        // order: two rotations never wait on each other in a cycle.
        let (qa, qb) = (self.queue_of(&from), self.queue_of(&to));
        let queues = &self.inner.queues;
        let _first = queues[qa.min(qb)].lock().await;
        let _second = if qa == qb {
            None
        } else {
            Some(queues[qa.max(qb)].lock().await)
        };
        self.run(move |disk| {
            let (low, high) = if from.shard <= to.shard {
                (&from.shard, &to.shard)
            } else {
                (&to.shard, &from.shard)
            };
            let _low = disk.lock(low, true)?;
            let _high = if high == low { None } else { disk.lock(high, true)? };
            let replaced = disk.read(to.id, &to.file)?;
            if replaced.as_ref().is_some_and(|r| r.is_live_at(disk.now())) {
                return Err(Error::IdCollision { id: to.id });
            }
            let Some(moving) = disk.read_live(&from)? else {
                return Ok(Rotation::Done(false));
            };
            let owner = moving.owner.as_deref();
            // Shared with other rotations, never with a revoke of the owner.
            let _owner_lock = match owner {
                Some(o) => match disk.try_lock_owner_shared(o)? {
                    Some(lock) => Some(lock),
                    None => return Ok(Rotation::OwnerBusy(o.to_owned())),
                },
                None => None,
            };
            // The new id's marker first, the old one's after the rename.
            disk.markers_before_write(&to.id, owner)?;
            disk.rename(&from, &to)?;
            disk.markers_after_write(&from.id, None, owner)?;
            // An expired record the rename replaced leaves its marker stale.
            disk.markers_after_write(&to.id, owner, replaced.as_ref().and_then(|r| r.owner.as_deref()))?;
            Ok(Rotation::Done(true))
        })
        .await
    }
}

/// What a change found when the shard did not exist (see `change`).
#[derive(Default)]
enum Outcome<T> {
    #[default]
    Absent,
    Done(T),
}

#[async_trait]
impl SessionStore for FileStore {
    fn clock(&self) -> SharedClock {
        Arc::clone(&self.inner.disk.clock)
    }

    async fn create(&self, record: &Record) -> Result<u64> {
        check_size(&record.data, self.inner.disk.max_record_bytes)?;
        let record = record.clone();
        self.change(record.id, true, move |disk, place| {
            let stored = disk.read(place.id, &place.file)?;
            if stored.as_ref().is_some_and(|r| r.is_live_at(disk.now())) {
                return Err(Error::IdCollision { id: record.id });
            }
            write_indexed(disk, place, &record, 1, stored.as_ref())
        })
        .await
        .map(|()| 1)
    }

    /// A read of one file, which takes no lock: on a multi-threaded
    /// runtime it runs on the calling thread (see [`Blocking::Auto`]).
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let id = *id;
        run_quick_or_blocking("file", self.inner.blocking, &self.inner, move |inner, _| {
            Some(inner.disk.read_live(&inner.disk.place(id)))
        })
        .await
    }

    async fn save(&self, record: &Record) -> Result<u64> {
        check_size(&record.data, self.inner.disk.max_record_bytes)?;
        let record = record.clone();
        self.change(record.id, true, move |disk, place| {
            let stored = disk.read(place.id, &place.file)?;
            let version = stored
                .as_ref()
                .filter(|r| r.is_live_at(disk.now()))
                .map_or(1, |r| r.version + 1);
            write_indexed(disk, place, &record, version, stored.as_ref())?;
            Ok(version)
        })
        .await
    }

    /// Under the shard lock, like save: keeps `record.version`, and writes
    /// nothing when a live record with the same or a newer version is there.
    async fn import(&self, record: &Record) -> Result<bool> {
        check_size(&record.data, self.inner.disk.max_record_bytes)?;
        if record.version == 0 || !record.is_live_at(self.inner.disk.now()) {
            return Ok(false);
        }
        let record = record.clone();
        self.change(record.id, true, move |disk, place| {
            let stored = disk.read(place.id, &place.file)?;
            let now = disk.now();
            if stored
                .as_ref()
                .is_some_and(|r| r.is_live_at(now) && r.version >= record.version)
            {
                return Ok(false);
            }
            write_indexed(disk, place, &record, record.version, stored.as_ref())?;
            Ok(true)
        })
        .await
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        check_size(&record.data, self.inner.disk.max_record_bytes)?;
        let record = record.clone();
        let conflict = Error::Conflict {
            id: record.id,
            expected: record.version,
        };
        let outcome = self
            .change(record.id, false, move |disk, place| match disk.read_live(place)? {
                Some(stored) if stored.version == record.version => {
                    let version = record.version + 1;
                    write_indexed(disk, place, &record, version, Some(&stored))?;
                    Ok(Outcome::Done(version))
                }
                _ => Ok(Outcome::Absent),
            })
            .await?;
        match outcome {
            Outcome::Done(version) => Ok(version),
            Outcome::Absent => Err(conflict),
        }
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        self.change(*id, false, move |disk, place| {
            let Some(mut stored) = disk.read_live(place)? else {
                return Ok(false);
            };
            stored.expires_at = expires_at;
            let version = stored.version;
            // The owner does not change; this only restores a marker lost
            // (or never made, by a version without the index): one failed
            // `open` when it is there.
            disk.markers_before_write(&place.id, stored.owner.as_deref())?;
            disk.write(place, &stored, version)?;
            Ok(true)
        })
        .await
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.change(*id, false, |disk, place| disk.remove(place).map(drop))
            .await
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        loop {
            match self.rotate_once(*old, *new).await? {
                Rotation::Done(moved) => return Ok(moved),
                // A revoke of the record's owner runs: wait for it holding
                // no lock (it needs our shards), then start again.
                Rotation::OwnerBusy(owner) => self.run(move |disk| disk.wait_for_owner(&owner)).await?,
            }
        }
    }

    async fn purge_expired(&self) -> Result<u64> {
        self.run(|disk| {
            let mut removed = 0;
            disk.scan(|entry| {
                match entry {
                    Entry::Temp(path) => {
                        disk.remove_orphan_tmp(&path)?;
                    }
                    // Only the header (the deadline) is read.
                    Entry::Session(id, path) => match disk.read_deadline(id, &path) {
                        Ok(Some(deadline)) if deadline <= disk.now() => {
                            // Check again under the lock: a writer may have
                            // renewed it since.
                            let place = disk.place(id);
                            if let Some(_lock) = disk.lock(&place.shard, false)? {
                                let still_expired = matches!(
                                    disk.read_deadline(id, &place.file),
                                    Ok(Some(deadline)) if deadline <= disk.now()
                                );
                                // No directory sync: an expired record that
                                // comes back after a power loss is still
                                // expired, and purged again.
                                if still_expired && disk.remove_unsynced(&place)? {
                                    removed += 1;
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) if e.is_decode() => {
                            tracing::warn!(error = %e, "purge skipped an undecodable session file");
                        }
                        Err(e) => return Err(e),
                    },
                }
                Ok(())
            })?;
            // Markers of the records just removed, and any other stale ones.
            disk.sweep_markers()?;
            Ok(removed)
        })
        .await
    }

    async fn count(&self) -> Result<u64> {
        self.run(|disk| {
            let mut live = 0;
            visit_live(disk, |_| live += 1)?;
            Ok(live)
        })
        .await
    }

    async fn ids(&self) -> Result<Vec<ListingHandle>> {
        self.run(|disk| {
            let mut ids = Vec::new();
            visit_live(disk, |id| ids.push(ListingHandle::from_stored(id)))?;
            Ok(ids)
        })
        .await
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
        self.run(|disk| {
            // Each shard directory is synced once, after its files are gone.
            let mut dirty: Option<PathBuf> = None;
            disk.scan(|entry| {
                match entry {
                    Entry::Temp(path) => {
                        disk.remove_orphan_tmp(&path)?;
                    }
                    Entry::Session(id, _) => {
                        let place = disk.place(id);
                        if dirty.as_ref().is_some_and(|d| *d != place.shard) {
                            disk.sync_dir_if_durable(&dirty.take().unwrap_or_default())?;
                        }
                        // The lock is held until the end of the `if`.
                        if let Some(_lock) = disk.lock(&place.shard, false)? {
                            match disk.remove_unsynced(&place) {
                                Ok(true) => dirty = Some(place.shard),
                                Ok(false) => {}
                                // A directory with entries where a session file
                                // belongs: left for an operator.
                                Err(e) if e.is_decode() => {
                                    tracing::warn!(error = %e, "clear left an entry that is not a session file");
                                }
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
                Ok(())
            })?;
            if let Some(dir) = dirty {
                disk.sync_dir_if_durable(&dir)?;
            }
            disk.sweep_markers()?;
            Ok(())
        })
        .await
    }
    async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListingHandle>> {
        let owner = owner.to_owned();
        let ids = self.run(move |disk| disk.owner_sessions(&owner)).await?;
        Ok(ids.into_iter().map(ListingHandle::from_stored).collect())
    }

    async fn delete_owner_sessions(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64> {
        let keep = keep.copied();
        // Held to the end: no session of the owner rotates meanwhile (a
        // rotate waits for it), so every session the listing below misses
        // was made after it, a login the contract lets survive.
        let _owner_lock = {
            let owner = owner.to_owned();
            self.run(move |disk| disk.lock_owner(&owner)).await?
        };
        let listing = {
            let owner = owner.to_owned();
            self.run(move |disk| disk.markers(&owner)).await?
        };
        let mut removed = 0;
        for id in listing {
            if Some(id) == keep {
                continue;
            }
            let owner = owner.to_owned();
            removed += self
                .change(id, false, move |disk, place| revoke_one(disk, place, &owner))
                .await?;
        }
        Ok(removed)
    }
}

/// Writes `record` (with `version`) over `stored`, keeping the owner index:
/// the new owner's marker before the rename, the old owner's removed after.
fn write_indexed(disk: &Disk, place: &Place, record: &Record, version: u64, stored: Option<&Record>) -> Result<()> {
    let owner = record.owner.as_deref();
    disk.markers_before_write(&place.id, owner)?;
    disk.write(place, record, version)?;
    disk.markers_after_write(&place.id, owner, stored.and_then(|r| r.owner.as_deref()))
}

/// Under `place`'s shard lock: removes its record if it names `owner`
/// (live or expired) and then its marker, or only the marker if it is
/// stale. Returns 1 if a live record went. An undecodable record is left.
fn revoke_one(disk: &Disk, place: &Place, owner: &str) -> Result<u64> {
    let stored = match disk.read(place.id, &place.file) {
        Ok(stored) => stored,
        Err(e) if e.is_decode() => {
            tracing::warn!(error = %e, "delete_owner_sessions skipped an undecodable session file");
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    if let Some(r) = stored.filter(|r| r.owner.as_deref() == Some(owner)) {
        let live = r.is_live_at(disk.now());
        if disk.remove(place)? && live {
            removed = 1;
        }
    }
    disk.remove_marker(owner, &place.id)?;
    Ok(removed)
}

/// Calls `f` with the id of every live session, and of every entry that
/// does not decode (its deadline is unknown, so it is listed, and loading
/// it answers the decode error: `count`, `ids`, the admin command's `list`
/// and `doctor` all see it). Only the header is read.
fn visit_live(disk: &Disk, mut f: impl FnMut(SessionId)) -> Result<()> {
    disk.scan(|entry| {
        if let Entry::Session(id, path) = entry {
            match disk.read_deadline(id, &path) {
                Ok(Some(deadline)) if deadline > disk.now() => f(id),
                Ok(_) => {}
                Err(e) if e.is_decode() => f(id),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

/// The README's examples, compiled as doctests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
