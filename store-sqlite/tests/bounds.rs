//! What the store leaves on disk: a WAL that stays bounded under steady
//! writes, and owner-only files and directories.

mod common;

use session_store_core::{Clock, SessionStore};
use std::path::Path;

/// The most the `-wal` file may hold at any time under steady updates: the
/// automatic checkpoint runs at about 4 MiB; where readers keep it from
/// starting over, the writer forces a restart past 16 MiB (checked every
/// 256 writes, a few MiB more), and `journal_size_limit` trims it to 8 MiB
/// (see the crate README).
const WAL_BOUND: u64 = 24 << 20;

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn steady_updates_of_a_few_sessions_keep_the_wal_bounded() {
    let db = common::Db::new();
    let clock = common::clock();
    let store = db.builder(&clock).open().unwrap();
    let wal = db.path.with_extension("db-wal");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let (largest, last) = rt.block_on(async {
        let mut records = Vec::new();
        for n in 0..4 {
            let mut r = common::record(clock.now(), 3_600_000, n);
            r.data.insert("pad", &"x".repeat(300)).unwrap();
            store.create(&r).await.unwrap();
            r.version = 1;
            records.push(r);
        }
        // Readers alongside, as in an app, overlapping all the time (what
        // keeps a PASSIVE checkpoint from ever starting the WAL over).
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, done) = (store.clone(), done.clone());
                let ids = records.iter().map(|r| r.id).collect::<Vec<_>>();
                tokio::spawn(async move {
                    let mut k = 0usize;
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        assert!(store.load(&ids[k % ids.len()]).await.unwrap().is_some());
                        k += 1;
                    }
                })
            })
            .collect();
        let mut largest = 0;
        for i in 0..100_000u64 {
            let r = &mut records[(i % 4) as usize];
            r.data.insert("n", &i).unwrap();
            // Plain saves, as the tower-sessions adapter does: a commit
            // of any other write would run the checkpoint for them.
            r.version = store.save(r).await.unwrap();
            if i % 500 == 0 {
                largest = largest.max(size(&wal));
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            reader.await.unwrap();
        }
        (largest.max(size(&wal)), size(&wal))
    });
    println!(
        "100,000 updates: WAL at most {largest} bytes, {last} at the end; database {} bytes",
        size(&db.path)
    );
    assert!(largest > 0, "the WAL was sampled");
    assert!(
        largest <= WAL_BOUND,
        "the WAL grew to {largest} bytes (bound {WAL_BOUND})"
    );
}

#[cfg(unix)]
#[test]
fn every_file_and_directory_the_store_creates_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("app").join("state").join("sessions.db");
    let clock = common::clock();
    let store = session_store_sqlite::SqliteStore::builder(&path)
        .clock(clock.shared())
        .open()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let r = common::record(clock.now(), 60_000, 1);
        store.create(&r).await.unwrap();
        assert!(store.load(&r.id).await.unwrap().is_some());
    });
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for dir in [tmp.path().join("app"), tmp.path().join("app").join("state")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in [
        path.clone(),
        path.with_extension("db-wal"),
        path.with_extension("db-shm"),
    ] {
        assert!(file.exists(), "{} exists", file.display());
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    drop(store);

    // A file the operator made keeps the mode they gave it.
    let shared = tmp.path().join("shared.db");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
    drop(session_store_sqlite::SqliteStore::open(&shared).unwrap());
    assert_eq!(mode(&shared), 0o640);
}
