//! The synchronous half of the store: paths, atomic writes, locks and scans.
//!
//! Everything here blocks; the async half in `lib.rs` only ever calls it off
//! the runtime's worker threads.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use session_store_core::{
    EncodedId, Error, Record, Result, SESSION_ID_LEN, SessionId, SharedClock, Timestamp,
    raw::codec::{RECORD_HEADER_MAX, decode_record, decode_record_header, encode_record},
};

use crate::Durability;

/// Name of the lock file in every shard directory.
pub(crate) const LOCK_FILE: &str = ".lock";
/// Prefix of temporary files; never a valid session id (ids hold no `.`).
pub(crate) const TMP_PREFIX: &str = ".tmp-";
/// How often [`Disk::sweep_tmp`] tries a busy shard again (about three
/// seconds in all).
const SWEEP_RETRIES: usize = 13;
/// Length of a shard directory's name: the first characters of the id.
pub(crate) const SHARD_LEN: usize = 2;

/// The directory and the settings every file operation needs.
pub(crate) struct Disk {
    pub(crate) root: PathBuf,
    pub(crate) clock: SharedClock,
    pub(crate) durability: Durability,
    pub(crate) max_record_bytes: usize,
    tmp_counter: AtomicU64,
}

/// A held advisory lock on one shard directory; dropping it closes the file,
/// which releases the lock (the kernel does the same for a dead process).
pub(crate) struct ShardLock {
    _file: File,
}

/// Where a session lives: its shard directory and its file.
pub(crate) struct Place {
    pub(crate) id: SessionId,
    pub(crate) enc: EncodedId,
    pub(crate) shard: PathBuf,
    pub(crate) file: PathBuf,
}

pub(crate) fn io_error(what: &str, id: Option<&SessionId>, e: io::Error) -> Error {
    match id {
        // Debug prints only the start of the id, so logs do not leak it.
        Some(id) => Error::backend("file", format!("{what} for session {id:?} failed"), e),
        None => Error::backend("file", format!("{what} failed"), e),
    }
}

fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether `name` can be a shard directory's name.
pub(crate) fn is_shard_name(name: &str) -> bool {
    name.len() == SHARD_LEN && name.bytes().all(is_id_char)
}

/// The session id a file in shard `shard` names, if it names one.
pub(crate) fn session_file_id(shard: &str, name: &str) -> Option<SessionId> {
    if name.len() != SESSION_ID_LEN || !name.starts_with(shard) {
        return None;
    }
    name.parse().ok()
}

/// What a scan found in one directory entry.
pub(crate) enum Entry {
    /// A session file.
    Session(SessionId, PathBuf),
    /// A temporary file.
    Temp(PathBuf),
}

impl Disk {
    pub(crate) fn new(root: PathBuf, clock: SharedClock, durability: Durability, max_record_bytes: usize) -> Self {
        Self {
            root,
            clock,
            durability,
            max_record_bytes,
            tmp_counter: AtomicU64::new(0),
        }
    }

    fn fsync(&self) -> bool {
        self.durability == Durability::Fsync
    }

    /// Creates the root directory (0700) if it is missing.
    pub(crate) fn create_root(&self) -> Result<()> {
        dir_builder()
            .recursive(true)
            .create(&self.root)
            .map_err(|e| io_error("creating the session directory", None, e))?;
        let meta = fs::metadata(&self.root).map_err(|e| io_error("inspecting the session directory", None, e))?;
        if !meta.is_dir() {
            return Err(Error::config(format!("{} is not a directory", self.root.display())));
        }
        Ok(())
    }

    pub(crate) fn place(&self, id: SessionId) -> Place {
        let enc = id.encode();
        let shard = self.root.join(&enc.as_str()[..SHARD_LEN]);
        let file = shard.join(enc.as_str());
        Place { id, enc, shard, file }
    }

    /// The largest file this store reads: far above anything it writes
    /// under its size limit, so a planted huge file is refused, not loaded.
    fn read_cap(&self) -> u64 {
        let limit = self.max_record_bytes.max(session_store_core::DEFAULT_MAX_RECORD_BYTES) as u64;
        limit.saturating_mul(4).saturating_add(64 * 1024)
    }

    /// The stored record, live or not; `None` when there is no file.
    pub(crate) fn read(&self, id: SessionId, path: &Path) -> Result<Option<Record>> {
        let Some((mut file, len)) = open_record(id, path)? else {
            return Ok(None);
        };
        if len > self.read_cap() {
            return Err(Error::decode(
                id,
                format!("the file is {len} bytes, larger than any record this store writes"),
                None,
            ));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error("reading a session file", Some(&id), e))?;
        decode_record(id, &bytes).map(Some)
    }

    /// The stored record's deadline, read from the file's first
    /// [`RECORD_HEADER_MAX`] bytes only; `None` when there is no file.
    pub(crate) fn read_deadline(&self, id: SessionId, path: &Path) -> Result<Option<Timestamp>> {
        let Some((file, _)) = open_record(id, path)? else {
            return Ok(None);
        };
        let mut header = Vec::with_capacity(RECORD_HEADER_MAX);
        file.take(RECORD_HEADER_MAX as u64)
            .read_to_end(&mut header)
            .map_err(|e| io_error("reading a session file", Some(&id), e))?;
        decode_record_header(id, &header).map(|h| Some(h.expires_at))
    }

    /// The stored record if it is live now.
    pub(crate) fn read_live(&self, place: &Place) -> Result<Option<Record>> {
        let now = self.clock.now();
        Ok(self.read(place.id, &place.file)?.filter(|r| r.is_live_at(now)))
    }

    /// Takes the advisory lock of `shard`. With `create` false, returns `None`
    /// when the shard directory does not exist (nothing to lock or change).
    pub(crate) fn lock(&self, shard: &Path, create: bool) -> Result<Option<ShardLock>> {
        let path = shard.join(LOCK_FILE);
        let file = match open_lock_file(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                self.make_shard(shard)?;
                open_lock_file(&path).map_err(|e| io_error("opening a shard lock file", None, e))?
            }
            Err(e) => return Err(io_error("opening a shard lock file", None, e)),
        };
        file.lock().map_err(|e| io_error("locking a shard", None, e))?;
        Ok(Some(ShardLock { _file: file }))
    }

    fn make_shard(&self, shard: &Path) -> Result<()> {
        match dir_builder().create(shard) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The root went away under us: make it again.
                dir_builder()
                    .recursive(true)
                    .create(shard)
                    .map_err(|e| io_error("creating a shard directory", None, e))?;
            }
            Err(e) => return Err(io_error("creating a shard directory", None, e)),
        }
        if self.fsync() {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// Writes `record` (with `version`) to its file atomically: a temporary
    /// file is written, synced, renamed over the file, and the directory is
    /// synced. The caller holds the shard lock.
    pub(crate) fn write(&self, place: &Place, record: &Record, version: u64) -> Result<()> {
        let bytes = encode_with_version(record, version)?;
        self.write_bytes(place, &bytes)
    }

    pub(crate) fn write_bytes(&self, place: &Place, bytes: &[u8]) -> Result<()> {
        let id = Some(&place.id);
        let (tmp, mut file) = self.create_tmp(place)?;
        let written = file
            .write_all(bytes)
            .and_then(|()| if self.fsync() { file.sync_data() } else { Ok(()) });
        drop(file);
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &place.file)) {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("writing a session file", id, e));
        }
        if self.fsync() {
            sync_dir(&place.shard)?;
        }
        Ok(())
    }

    fn create_tmp(&self, place: &Place) -> Result<(PathBuf, File)> {
        let pid = std::process::id();
        loop {
            let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
            let tmp = place
                .shard
                .join(format!("{TMP_PREFIX}{}-{pid}-{n}", place.enc.as_str()));
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            options.mode(0o600);
            match options.open(&tmp) {
                Ok(file) => return Ok((tmp, file)),
                // Left by a dead process that had our pid: take the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error("creating a temporary session file", Some(&place.id), e)),
            }
        }
    }

    /// Removes the session file and syncs the directory; an absent file is
    /// fine. The caller holds the shard lock. Returns whether a file was
    /// removed.
    pub(crate) fn remove(&self, place: &Place) -> Result<bool> {
        let removed = self.remove_unsynced(place)?;
        if removed {
            self.sync_dir_if_durable(&place.shard)?;
        }
        Ok(removed)
    }

    /// Removes the session file without syncing the directory. An empty
    /// directory where the file belongs (which reads as undecodable) goes
    /// too; one with entries in it is a decode error naming the session.
    pub(crate) fn remove_unsynced(&self, place: &Place) -> Result<bool> {
        match fs::remove_file(&place.file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(_) if fs::symlink_metadata(&place.file).is_ok_and(|m| m.is_dir()) => {
                match fs::remove_dir(&place.file) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                    // Something else keeps files there: that record's
                    // problem (a decode error), left for an operator.
                    Err(e) => Err(Error::decode(
                        place.id,
                        "a directory with entries stands where the session file belongs",
                        Some(Box::new(e)),
                    )),
                }
            }
            Err(e) => Err(io_error("removing a session file", Some(&place.id), e)),
        }
    }

    /// Syncs `dir` in [`Durability::Fsync`] mode.
    pub(crate) fn sync_dir_if_durable(&self, dir: &Path) -> Result<()> {
        if self.fsync() { sync_dir(dir) } else { Ok(()) }
    }

    /// Moves `from`'s file over `to`'s in one rename. The caller holds both
    /// shard locks.
    pub(crate) fn rename(&self, from: &Place, to: &Place) -> Result<()> {
        fs::rename(&from.file, &to.file).map_err(|e| io_error("renaming a session file", Some(&from.id), e))?;
        if self.fsync() {
            sync_dir(&to.shard)?;
            if to.shard != from.shard {
                sync_dir(&from.shard)?;
            }
        }
        Ok(())
    }

    /// Calls `visit` for every session and temporary file, one shard
    /// directory at a time, streaming (memory does not grow with the number
    /// of files). Other files are left alone.
    pub(crate) fn scan(&self, mut visit: impl FnMut(Entry) -> Result<()>) -> Result<()> {
        let shards = match fs::read_dir(&self.root) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("listing the session directory", None, e)),
        };
        for shard in shards {
            let shard = shard.map_err(|e| io_error("listing the session directory", None, e))?;
            let name = shard.file_name();
            let Some(shard_name) = name.to_str().filter(|n| is_shard_name(n)) else {
                continue;
            };
            let files = match fs::read_dir(shard.path()) {
                Ok(dir) => dir,
                // Vanished meanwhile, or a stray file with a shard-like name.
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => continue,
                Err(e) => return Err(io_error("listing a shard directory", None, e)),
            };
            for file in files {
                let file = file.map_err(|e| io_error("listing a shard directory", None, e))?;
                let name = file.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(TMP_PREFIX) {
                    visit(Entry::Temp(file.path()))?;
                } else if let Some(id) = session_file_id(shard_name, name) {
                    visit(Entry::Session(id, file.path()))?;
                }
            }
        }
        Ok(())
    }

    /// Removes `tmp` if no writer can still be using it; returns whether it
    /// did. Every write makes and renames its temporary file while it holds
    /// its shard's lock, so a temporary file in a shard whose lock is free
    /// belongs to a writer that died (the kernel released its lock). A
    /// shard locked now is skipped: a later sweep gets it.
    pub(crate) fn remove_orphan_tmp(&self, tmp: &Path) -> Result<bool> {
        Ok(self.remove_tmp_if_free(tmp)? == Some(true))
    }

    /// As [`remove_orphan_tmp`](Self::remove_orphan_tmp); `None` when the
    /// shard is locked now.
    fn remove_tmp_if_free(&self, tmp: &Path) -> Result<Option<bool>> {
        let Some(shard) = tmp.parent() else {
            return Ok(Some(false));
        };
        let Some(_lock) = self.try_lock(shard)? else {
            return Ok(None);
        };
        match fs::remove_file(tmp) {
            Ok(()) => {
                // The file's name holds the session id: name the shard only.
                tracing::info!(shard = %shard.display(), "removed a temporary session file left by a dead writer");
                Ok(Some(true))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(false)),
            Err(e) => Err(io_error("removing a temporary session file", None, e)),
        }
    }

    fn try_lock(&self, shard: &Path) -> Result<Option<ShardLock>> {
        let file = match open_lock_file(&shard.join(LOCK_FILE)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("opening a shard lock file", None, e)),
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(ShardLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(io_error("locking a shard", None, e)),
        }
    }

    /// Removes every orphaned temporary file (see
    /// [`remove_orphan_tmp`](Self::remove_orphan_tmp)); returns how many.
    /// A shard that is locked at the first pass is tried again for a few
    /// seconds: a writer holds the lock for one write only, so a temporary
    /// file still there when the lock is free belongs to a dead writer
    /// (this runs on a thread of its own at start-up, or in `doctor`).
    pub(crate) fn sweep_tmp(&self) -> Result<u64> {
        let mut removed = 0;
        let mut busy = Vec::new();
        self.scan(|entry| {
            if let Entry::Temp(path) = entry {
                match self.remove_tmp_if_free(&path)? {
                    Some(true) => removed += 1,
                    Some(false) => {}
                    None => busy.push(path),
                }
            }
            Ok(())
        })?;
        let mut pause = std::time::Duration::from_millis(2);
        for _ in 0..SWEEP_RETRIES {
            if busy.is_empty() {
                break;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(500));
            let mut still = Vec::new();
            for path in busy {
                match self.remove_tmp_if_free(&path)? {
                    Some(true) => removed += 1,
                    Some(false) => {}
                    None => still.push(path),
                }
            }
            busy = still;
        }
        Ok(removed)
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// Opens a session file for reading, with its length; `None` when it is
/// missing. An entry that cannot be read as a file (a directory, a FIFO, a
/// socket, a device, one the store may not read) is that record's problem
/// only: a decode error naming it, as for garbage bytes, so its visitor
/// starts afresh and listings, purges and `doctor` go on. A FIFO never
/// blocks the open (`O_NONBLOCK`, which regular files ignore).
fn open_record(id: SessionId, path: &Path) -> Result<Option<(File, u64)>> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    options.custom_flags(libc::O_NONBLOCK);
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // A socket (ENXIO), a symlink loop (ELOOP) and the like: whatever
        // the entry is, it is not a session file.
        Err(e) if fs::symlink_metadata(path).is_ok_and(|m| !m.is_file()) => {
            return Err(Error::decode(
                id,
                "the entry where the session file belongs is not a regular file",
                Some(Box::new(e)),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(Error::decode(id, UNREADABLE, Some(Box::new(e))));
        }
        Err(e) => return Err(io_error("opening a session file", Some(&id), e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_error("inspecting a session file", Some(&id), e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(Error::decode(
            id,
            format!("the entry where the session file belongs is {kind}"),
            None,
        ));
    }
    Ok(Some((file, meta.len())))
}

/// The reason of the decode error for a session file the store may not
/// read: `doctor --fix` never removes such a file (it may hold a valid
/// session of another user's store).
pub(crate) const UNREADABLE: &str = "the session file cannot be read (permission denied)";

/// `dir/<shard>/<id>`.
pub(crate) fn file_path(dir: &Path, id: &SessionId) -> PathBuf {
    let enc = id.encode();
    dir.join(&enc.as_str()[..SHARD_LEN]).join(enc.as_str())
}

fn encode_with_version(record: &Record, version: u64) -> Result<Vec<u8>> {
    if record.version == version {
        return encode_record(record);
    }
    let mut stored = record.clone();
    stored.version = version;
    encode_record(&stored)
}

pub(crate) fn dir_builder() -> DirBuilder {
    let mut builder = DirBuilder::new();
    #[cfg(unix)]
    builder.mode(0o700);
    builder
}

pub(crate) fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)
}

/// Makes the directory's entries (a rename, a new or removed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing a session directory", None, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_ids_in_their_own_shard_are_session_files() {
        let id = SessionId::random();
        let enc = id.encode();
        let name = enc.as_str();
        assert_eq!(session_file_id(&name[..2], name), Some(id));
        let other = if name.starts_with('A') { "BB" } else { "AA" };
        assert_eq!(session_file_id(other, name), None);
        assert_eq!(session_file_id(&name[..2], &format!("{TMP_PREFIX}{name}-1-2")), None);
        assert_eq!(session_file_id("..", ".."), None);
        assert!(!is_shard_name(".."));
        assert!(!is_shard_name("a"));
        assert!(is_shard_name("a-"));
    }
}
