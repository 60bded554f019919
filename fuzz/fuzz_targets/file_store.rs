//! The file store's reading of its directory: the input becomes either the
//! bytes of one session file or the name of a stray file in a shard, in a
//! real store directory that also holds a good record. Every operation
//! answers (a decode error for the bad record only), never panics, and the
//! good record loads as saved.
#![no_main]

use std::ffi::OsStr;
use std::future::Future;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use session_store_core::{ManualClock, Record, SessionData, SessionId, SessionStore, Timestamp};
use session_store_file::{Durability, FileStore};

const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: FileStore,
    good: Record,
    bad: SessionId,
}

/// Runs a store future to completion. Outside a tokio runtime the file
/// store does its I/O on the calling thread, so the future is ready at once
/// (its per-shard lock is never contended here).
fn run<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().to_path_buf();
        let clock = ManualClock::new(NOW);
        let store = FileStore::builder(&root)
            .clock(clock.shared())
            .durability(Durability::NoSync)
            .open()
            .expect("opens");
        let mut data = SessionData::new();
        data.insert("n", &1).expect("serializes");
        let mut good = Record::with_deadline(SessionId::from_u128(1), data, NOW, Timestamp::MAX);
        good.version = run(store.save(&good)).expect("saves");
        Fixture {
            _dir: dir,
            root,
            store,
            good,
            bad: SessionId::from_u128(2),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let planted = if mode & 1 == 0 {
        // The bytes of the bad record's session file.
        let path = FileStore::path_in(&f.root, &f.bad);
        std::fs::create_dir_all(path.parent().expect("a shard")).expect("makes the shard");
        std::fs::write(&path, rest).expect("writes the file");
        match run(f.store.load(&f.bad)) {
            Ok(Some(r)) => assert_eq!(r.id, f.bad),
            Ok(None) => {}
            Err(e) => assert!(e.is_decode(), "{e}"),
        }
        path
    } else {
        // A stray file named by the input, next to the good record.
        let name: Vec<u8> = rest.iter().copied().filter(|b| *b != b'/' && *b != 0).collect();
        if name.is_empty() || name == b"." || name == b".." || name.len() > 200 {
            return;
        }
        let shard = FileStore::path_in(&f.root, &f.good.id)
            .parent()
            .expect("a shard")
            .to_path_buf();
        let path = shard.join(OsStr::from_bytes(&name));
        let names_a_session = std::str::from_utf8(&name)
            .ok()
            .and_then(|n| n.parse::<SessionId>().ok())
            .is_some_and(|id| FileStore::path_in(&f.root, &id) == path);
        if names_a_session || path.exists() {
            return;
        }
        std::fs::write(&path, rest).expect("writes the file");
        path
    };
    let ids: Vec<SessionId> = run(f.store.ids()).expect("ids").into_iter().map(|h| h.stored()).collect();
    assert!(ids.contains(&f.good.id));
    assert!(
        ids.iter().all(|id| *id == f.good.id || *id == f.bad),
        "a stray file was listed"
    );
    assert_eq!(run(f.store.count()).expect("count"), ids.len() as u64);
    run(f.store.purge_expired()).expect("purge");
    assert_eq!(run(f.store.load(&f.good.id)).expect("loads"), Some(f.good.clone()));
    let _ = std::fs::remove_file(&planted);
});
