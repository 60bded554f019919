//! Inspection of a store's directory for operators: what the
//! `session-store doctor` command reports and repairs.
//!
//! [`inspect`] reads the directory without opening a [`FileStore`](crate::FileStore)
//! (opening one starts a sweep of temporary files, which would hide what it
//! found) and without changing anything. Nothing it returns holds a session
//! id: records are named by their [`Fingerprint`], temporary files by their
//! shard.
//!
//! ```
//! use session_store_file::{FileStore, inspect};
//!
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("sessions");
//! FileStore::open(&dir)?; // makes the directory, 0700
//! let report = inspect::inspect(&dir)?;
//! assert!(report.is_healthy(), "{report:?}");
//! assert_eq!(report.records, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use session_store_core::{DEFAULT_MAX_RECORD_BYTES, Error, Fingerprint, Result, SessionId, system_clock};

use crate::Durability;
use crate::disk::{Disk, Entry, LOCK_FILE, io_error};
use crate::owners::OWNERS_DIR;

/// What [`inspect`] found in a store's directory.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Report {
    /// Shard directories.
    pub shards: u64,
    /// Session files (live, expired or undecodable).
    pub records: u64,
    /// Session files whose deadline has passed (a purge removes them).
    pub expired: u64,
    /// Temporary files of interrupted writes, by shard directory name. A
    /// temporary file whose shard is not locked now belongs to a writer
    /// that died ([`remove_orphaned_temporary_files`] removes those).
    pub temporary: Vec<String>,
    /// Entries that are not part of the layout (not a shard directory, the
    /// owner index, a lock, a session or a temporary file): something else
    /// writes into this directory, or it is not a file store.
    pub unexpected: Vec<PathBuf>,
    /// Files and directories readable or writable by others than the owner
    /// (the store makes files 0600 and directories 0700). Session files are
    /// named by fingerprint, as `<shard>/<fingerprint>`.
    pub permissions: Vec<(String, u32)>,
    /// Session files that do not decode.
    pub undecodable: Vec<Undecodable>,
}

impl Report {
    /// Whether nothing needs an operator's attention.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        self.temporary.is_empty()
            && self.unexpected.is_empty()
            && self.permissions.is_empty()
            && self.undecodable.is_empty()
    }
}

/// A session file that does not decode.
#[derive(Debug, Clone)]
pub struct Undecodable {
    /// The record's fingerprint ([`SessionId::fingerprint`]).
    pub fingerprint: Fingerprint,
    /// Why it does not decode.
    pub reason: String,
    id: SessionId,
}

/// Reads the store directory `dir` and reports its state. Changes nothing.
///
/// # Errors
///
/// [`Error::Config`] when `dir` is missing or not a directory;
/// [`Error::Backend`] when it cannot be read.
pub fn inspect(dir: &Path) -> Result<Report> {
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::config(format!("{} does not exist", dir.display())));
        }
        Err(e) => return Err(io_error("inspecting the session directory", None, e)),
    };
    if !meta.is_dir() {
        return Err(Error::config(format!("{} is not a directory", dir.display())));
    }
    let mut report = Report::default();
    check_mode(&mut report, dir, ".".into(), &meta);
    for entry in fs::read_dir(dir).map_err(|e| io_error("listing the session directory", None, e))? {
        let entry = entry.map_err(|e| io_error("listing the session directory", None, e))?;
        let name = entry.file_name();
        let path = entry.path();
        let meta = entry
            .metadata()
            .map_err(|e| io_error("inspecting the session directory", None, e))?;
        match name.to_str() {
            Some(OWNERS_DIR) if meta.is_dir() => check_mode(&mut report, &path, OWNERS_DIR.into(), &meta),
            Some(n) if meta.is_dir() && crate::disk::is_shard_name(n) => {
                report.shards += 1;
                check_mode(&mut report, &path, n.into(), &meta);
                inspect_shard(&mut report, &path, n)?;
            }
            _ => report.unexpected.push(path),
        }
    }
    let disk = disk_on(dir);
    let now = disk.now();
    disk.scan(|entry| {
        match entry {
            Entry::Temp(path) => report.temporary.push(shard_name(&path)),
            Entry::Session(id, path) => {
                report.records += 1;
                match disk.read(id, &path) {
                    Ok(Some(record)) if !record.is_live_at(now) => report.expired += 1,
                    Ok(_) => {}
                    Err(e) if e.is_decode() => report.undecodable.push(Undecodable {
                        fingerprint: id.fingerprint(),
                        reason: decode_reason(&e),
                        id,
                    }),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    })?;
    Ok(report)
}

/// Removes an undecodable session file that [`inspect`] reported (or an
/// empty directory standing in its place), under its shard's lock, after
/// checking that it still does not decode (a record written meanwhile is
/// kept). Returns whether it removed it.
///
/// # Errors
///
/// [`Error::Backend`] when the file cannot be read or removed.
pub fn remove_undecodable(dir: &Path, record: &Undecodable) -> Result<bool> {
    let disk = disk_on(dir);
    let place = disk.place(record.id);
    let Some(_lock) = disk.lock(&place.shard, false)? else {
        return Ok(false);
    };
    match disk.read(record.id, &place.file) {
        // A file this process may not read may be a valid session of
        // another user's store: never removed.
        Err(Error::Decode { reason, .. }) if reason == crate::disk::UNREADABLE => Ok(false),
        Err(e) if e.is_decode() => disk.remove(&place),
        Err(e) => Err(e),
        Ok(_) => Ok(false),
    }
}

/// Removes every temporary file whose writer is gone (its shard is not
/// locked; a shard locked at first is tried again for a few seconds), as
/// an opened store does in the background; returns how many.
///
/// # Errors
///
/// [`Error::Backend`] when the directory cannot be read or a file removed.
pub fn remove_orphaned_temporary_files(dir: &Path) -> Result<u64> {
    disk_on(dir).sweep_tmp()
}

fn disk_on(dir: &Path) -> Disk {
    Disk::new(
        dir.to_path_buf(),
        system_clock(),
        Durability::Fsync,
        DEFAULT_MAX_RECORD_BYTES,
    )
}

fn inspect_shard(report: &mut Report, shard: &Path, shard_name: &str) -> Result<()> {
    for entry in fs::read_dir(shard).map_err(|e| io_error("listing a shard directory", None, e))? {
        let entry = entry.map_err(|e| io_error("listing a shard directory", None, e))?;
        let name = entry.file_name();
        let Ok(meta) = entry.metadata() else { continue };
        match name.to_str() {
            Some(LOCK_FILE) => check_mode(report, &entry.path(), format!("{shard_name}/{LOCK_FILE}"), &meta),
            Some(n) if n.starts_with(crate::disk::TMP_PREFIX) => {}
            // Anything else under a session's name (a directory, a FIFO) is
            // reported with the undecodable records, by fingerprint.
            Some(n) if !meta.is_file() && crate::disk::session_file_id(shard_name, n).is_some() => {}
            Some(n) if meta.is_file() && crate::disk::session_file_id(shard_name, n).is_some() => {
                let id: SessionId = n.parse().map_err(Error::from)?;
                check_mode(
                    report,
                    &entry.path(),
                    format!("{shard_name}/{}", id.fingerprint()),
                    &meta,
                );
            }
            _ => report.unexpected.push(entry.path()),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn check_mode(report: &mut Report, _path: &Path, shown: String, meta: &fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        report.permissions.push((shown, mode));
    }
}

#[cfg(not(unix))]
fn check_mode(_: &mut Report, _: &Path, _: String, _: &fs::Metadata) {}

fn shard_name(tmp: &Path) -> String {
    tmp.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn decode_reason(e: &Error) -> String {
    match e {
        Error::Decode { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}
