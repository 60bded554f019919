//! The owner index: one empty marker file per owned session.
//!
//! `dir/owners/<key>/<session id>`, where `<key>` is the lowercase hex of
//! the first 16 bytes of the SHA-256 of the owner (so any owner string,
//! however long or strange, names a fixed-size, safe directory). Markers
//! are 0600, directories 0700. `owners` is not a shard name, so the
//! session scans never enter it.
//!
//! The rules (see the crate docs):
//! - a write whose record names an owner creates the marker *before* the
//!   record file is renamed into place, under the session's shard lock, so
//!   a stored record never names an owner without its marker;
//! - a write that changes or removes the owner, and a rotate, remove the
//!   old marker *after* the rename;
//! - a delete leaves its marker;
//! - the index may therefore hold stale markers (record absent, expired,
//!   or naming another owner, a hash collision included): every read
//!   checks the record itself, and purge and clear remove stale markers
//!   under the session's shard lock;
//! - a revoke holds `owners/<key>.lock` exclusively, and a rotate of a
//!   record naming that owner holds it shared, so no session of the owner
//!   rotates away from a revoke's listing.

use std::fs::{self, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;

use session_store_core::{Error, OWNER_KEY_LEN, Record, Result, SessionId, owner_key};

use crate::disk::{Disk, dir_builder, io_error, open_lock_file, sync_dir};

/// A held lock on one owner (see [`Disk::lock_owner`]); dropping it
/// releases it.
pub(crate) struct OwnerLock {
    _file: fs::File,
}

/// The directory under the store's root that holds the owner index.
pub(crate) const OWNERS_DIR: &str = "owners";

/// Length of an owner directory's name ([`owner_key`]).
const KEY_LEN: usize = OWNER_KEY_LEN;

fn is_key(name: &str) -> bool {
    name.len() == KEY_LEN && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `record` is live now and names the owner whose key is `key`.
fn belongs(disk: &Disk, record: &Record, key: &str) -> bool {
    record.is_live_at(disk.now()) && record.owner.as_deref().is_some_and(|o| owner_key(o) == key)
}

impl Disk {
    fn owners_root(&self) -> PathBuf {
        self.root.join(OWNERS_DIR)
    }

    fn owner_dir(&self, owner: &str) -> PathBuf {
        self.owners_root().join(owner_key(owner))
    }

    /// Makes sure `owner`'s marker for `id` exists, and (in
    /// [`Durability::Fsync`](crate::Durability::Fsync) mode) has reached
    /// the disk when it was created now. Called under `id`'s shard lock,
    /// before the record that names `owner` is renamed into place.
    pub(crate) fn add_marker(&self, owner: &str, id: &SessionId) -> Result<()> {
        let dir = self.owner_dir(owner);
        let path = dir.join(id.encode().as_str());
        // Three tries: a purge may remove the (empty) owner directory
        // between our making it and our creating the marker in it.
        for attempt in 0..3 {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            options.mode(0o600);
            match options.open(&path) {
                Ok(file) => {
                    drop(file);
                    return self.sync_dir_if_durable(&dir);
                }
                // Made by an earlier write of this session, which synced it.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 2 => self.make_owner_dir(&dir)?,
                Err(e) => return Err(io_error("creating an owner marker", Some(id), e)),
            }
        }
        Err(Error::backend_msg(
            "file",
            "creating an owner marker: its directory keeps vanishing",
        ))
    }

    fn make_owner_dir(&self, dir: &Path) -> Result<()> {
        dir_builder()
            .recursive(true)
            .create(dir)
            .map_err(|e| io_error("creating an owner directory", None, e))?;
        if self.durability == crate::Durability::Fsync {
            sync_dir(&self.owners_root())?;
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// Opens `owners/<key>.lock` (0600, never removed, like a shard's
    /// `.lock`: one per owner that ever rotated or was revoked).
    fn open_owner_lock(&self, owner: &str) -> Result<fs::File> {
        let path = self.owners_root().join(format!("{}.lock", owner_key(owner)));
        match open_lock_file(&path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                dir_builder()
                    .recursive(true)
                    .create(self.owners_root())
                    .map_err(|e| io_error("creating the owner index", None, e))?;
                open_lock_file(&path).map_err(|e| io_error("opening an owner lock file", None, e))
            }
            Err(e) => Err(io_error("opening an owner lock file", None, e)),
        }
    }

    /// Takes `owner`'s lock exclusively, waiting for it: held by a revoke
    /// for its whole run, so that no session of the owner rotates (and
    /// escapes to an id the revoke already listed) meanwhile.
    pub(crate) fn lock_owner(&self, owner: &str) -> Result<OwnerLock> {
        let file = self.open_owner_lock(owner)?;
        file.lock().map_err(|e| io_error("locking an owner", None, e))?;
        Ok(OwnerLock { _file: file })
    }

    /// Takes `owner`'s lock shared if no revoke holds it now: a rotate holds
    /// it, under its shard locks, across the move. `None` when a revoke
    /// runs: the rotate must let go of its shard locks and
    /// [`wait_for_owner`](Self::wait_for_owner) (the revoke needs them).
    pub(crate) fn try_lock_owner_shared(&self, owner: &str) -> Result<Option<OwnerLock>> {
        let file = self.open_owner_lock(owner)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(OwnerLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(io_error("locking an owner", None, e)),
        }
    }

    /// Waits until no revoke of `owner` runs.
    pub(crate) fn wait_for_owner(&self, owner: &str) -> Result<()> {
        let file = self.open_owner_lock(owner)?;
        file.lock_shared().map_err(|e| io_error("locking an owner", None, e))
    }

    /// Removes `owner`'s marker for `id`; an absent one is fine. Not synced:
    /// a marker that comes back after a power loss is only stale.
    pub(crate) fn remove_marker(&self, owner: &str, id: &SessionId) -> Result<()> {
        self.remove_marker_at(&self.owner_dir(owner).join(id.encode().as_str()), id)
    }

    fn remove_marker_at(&self, path: &Path, id: &SessionId) -> Result<()> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("removing an owner marker", Some(id), e)),
        }
    }

    /// Keeps the index in step with a write of a record naming `new_owner`:
    /// call this before the rename, and
    /// [`markers_after_write`](Self::markers_after_write) once it is done.
    /// The caller holds the shard lock.
    pub(crate) fn markers_before_write(&self, id: &SessionId, new_owner: Option<&str>) -> Result<()> {
        match new_owner {
            Some(owner) => self.add_marker(owner, id),
            None => Ok(()),
        }
    }

    /// After a write naming `new_owner` over a stored record (live or not)
    /// naming `old_owner`: removes the old owner's marker if it changed.
    pub(crate) fn markers_after_write(
        &self,
        id: &SessionId,
        new_owner: Option<&str>,
        old_owner: Option<&str>,
    ) -> Result<()> {
        match old_owner {
            Some(old) if new_owner != Some(old) => self.remove_marker(old, id),
            _ => Ok(()),
        }
    }

    /// The ids `owner`'s markers name (stale ones included), in directory
    /// order. Names that are not ids are skipped.
    pub(crate) fn markers(&self, owner: &str) -> Result<Vec<SessionId>> {
        list_ids(&self.owner_dir(owner))
    }

    /// The live sessions of `owner`: its markers, each checked against its
    /// record (live, and naming `owner`). An undecodable record is skipped.
    pub(crate) fn owner_sessions(&self, owner: &str) -> Result<Vec<SessionId>> {
        let mut ids = Vec::new();
        for id in self.markers(owner)? {
            match self.read_live(&self.place(id)) {
                Ok(Some(r)) if r.owner.as_deref() == Some(owner) => ids.push(id),
                Ok(_) => {}
                Err(e) if e.is_decode() => {
                    tracing::warn!(error = %e, "owner_sessions skipped an undecodable session file");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ids)
    }

    /// Removes every stale marker (its record absent, expired, or naming
    /// another owner), each under its session's shard lock, and the owner
    /// directories left empty. A marker whose record does not decode is
    /// left (its owner cannot be told). Returns how many it removed.
    pub(crate) fn sweep_markers(&self) -> Result<u64> {
        let owners = match fs::read_dir(self.owners_root()) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_error("listing the owner index", None, e)),
        };
        let mut removed = 0;
        for entry in owners {
            let entry = entry.map_err(|e| io_error("listing the owner index", None, e))?;
            let name = entry.file_name();
            let Some(key) = name.to_str().filter(|n| is_key(n)) else {
                continue;
            };
            let dir = entry.path();
            for id in list_ids(&dir)? {
                let place = self.place(id);
                // With the lock (made if need be: a create may be making
                // the shard right now), no write of this session is half
                // done: a marker whose record does not belong is stale.
                let Some(_lock) = self.lock(&place.shard, true)? else {
                    continue;
                };
                let stale = match self.read(id, &place.file) {
                    Ok(Some(r)) => !belongs(self, &r, key),
                    Ok(None) => true,
                    Err(e) if e.is_decode() => false,
                    Err(e) => return Err(e),
                };
                if stale {
                    self.remove_marker_at(&dir.join(id.encode().as_str()), &id)?;
                    removed += 1;
                }
            }
            // Only an empty directory goes; a marker made meanwhile keeps it
            // (and `add_marker` makes the directory again if it lost it).
            let _ = fs::remove_dir(&dir);
        }
        Ok(removed)
    }
}

fn list_ids(dir: &Path) -> Result<Vec<SessionId>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(io_error("listing an owner's markers", None, e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("listing an owner's markers", None, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_directories_are_recognised() {
        assert!(is_key(&owner_key("")));
        assert!(is_key(&owner_key(&"x".repeat(10_000))));
        assert!(!is_key("ab"));
        assert!(!is_key(&"G".repeat(KEY_LEN)));
        assert!(!is_key(&"A".repeat(KEY_LEN)));
    }
}
