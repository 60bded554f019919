//! What only a file store has, on disk: files removed with their records,
//! permissions, temporary files, corrupt and planted files, durability and
//! offload modes, locks, runtimes. The store contract itself is checked by
//! the conformance suite (`tests/conformance.rs`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use session_store_conformance::fixtures::{RecordBuilder, START, start_clock as clock};
use session_store_core::{Clock, Error, ManualClock, Record, SessionId, SessionStore, Timestamp, raw::codec};
use session_store_file::{Blocking, Durability, FileStore};

fn store(dir: &Path, clock: &ManualClock) -> FileStore {
    FileStore::builder(dir).clock(clock.shared()).open().unwrap()
}

/// A record live for `ttl`, marked `n`, with an empty key too.
fn record(clock: &ManualClock, ttl: Duration, n: i64) -> Record {
    RecordBuilder::new(clock.now())
        .ttl(ttl)
        .n(n)
        .entry("", serde_json::json!("empty key"))
        .build()
}

fn n_of(r: &Record) -> i64 {
    r.data.get::<i64>("n").unwrap().unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_goes_takes_its_file_and_a_refused_write_leaves_none() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    // Delete removes the file.
    let r = record(&clock, Duration::from_secs(10), 1);
    store.create(&r).await.unwrap();
    assert!(store.path_of(&r.id).exists());
    store.delete(&r.id).await.unwrap();
    assert!(!store.path_of(&r.id).exists());
    // A late conditional write after the delete writes no file.
    let mut late = r.clone();
    late.version = 1;
    assert!(store.save_if_version(&late).await.unwrap_err().is_conflict());
    assert!(!store.path_of(&r.id).exists());
    // Nor does one for an id never stored, in a shard that does not exist.
    let never = record(&clock, Duration::from_secs(10), 2);
    assert!(store.save_if_version(&never).await.unwrap_err().is_conflict());
    assert!(!store.path_of(&never.id).exists());
    // Rotate leaves no file under the old id.
    store.create(&never).await.unwrap();
    let new = SessionId::random();
    assert!(store.rotate(&never.id, &new).await.unwrap());
    assert!(!store.path_of(&never.id).exists());
    assert!(store.path_of(&new).exists());
    // A record over the limit writes no file.
    let small = FileStore::builder(tmp.path().join("small"))
        .clock(clock.shared())
        .max_record_bytes(100)
        .open()
        .unwrap();
    let big = RecordBuilder::new(clock.now())
        .entry("big", serde_json::json!("x".repeat(100)))
        .build();
    assert!(small.create(&big).await.unwrap_err().to_string().contains("100"));
    assert!(small.save(&big).await.is_err());
    assert!(!small.path_of(&big.id).exists());
    // Clear leaves only the shards' lock files.
    for i in 0..10 {
        store.create(&record(&clock, Duration::from_secs(10), i)).await.unwrap();
    }
    store.clear().await.unwrap();
    assert_eq!(store.count().await.unwrap(), 0);
    let left = files(store.dir());
    assert!(!left.is_empty());
    assert!(left.iter().all(|f| f.file_name().unwrap() == ".lock"), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_expired_records_and_temporary_files_of_dead_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let mut live = Vec::new();
    for i in 0..60 {
        let r = record(&clock, Duration::from_millis(if i % 3 == 0 { 10 } else { 1_000 }), i);
        store.create(&r).await.unwrap();
        if i % 3 != 0 {
            live.push(r.id);
        }
    }
    // Two shards, each with a temporary file written just now: in the
    // first its writer is gone (the shard's lock is free), in the second a
    // write is in flight (someone holds the shard's lock).
    let shard_of = |id: &SessionId| store.path_of(id).parent().unwrap().to_owned();
    let dead_shard = shard_of(&live[0]);
    let busy_shard = live.iter().map(shard_of).find(|s| *s != dead_shard).unwrap();
    let dead = dead_shard.join(format!(".tmp-{}-1-1", live[0]));
    let in_flight = busy_shard.join(format!(".tmp-{}-1-2", live[0]));
    for tmp in [&dead, &in_flight] {
        fs::write(
            tmp,
            codec::encode_record(&record(&clock, Duration::from_secs(9), 0)).unwrap(),
        )
        .unwrap();
    }
    let writer = fs::File::open(busy_shard.join(".lock")).unwrap();
    writer.lock().unwrap();
    // A file the store does not own.
    let foreign = tmp.path().join("README");
    fs::write(&foreign, "not mine").unwrap();

    clock.advance(Duration::from_millis(10));
    assert_eq!(store.count().await.unwrap(), 40);
    assert_eq!(store.purge_expired().await.unwrap(), 20);
    assert!(!dead.exists(), "a dead writer's temporary file is removed at once");
    assert!(in_flight.exists(), "the temporary file of a write in flight stays");
    drop(writer);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert!(!in_flight.exists(), "once its writer is gone, it goes too");
    assert!(foreign.exists());
    let mut ids = store
        .ids()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.stored())
        .collect::<Vec<_>>();
    ids.sort();
    live.sort();
    assert_eq!(ids, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_store_sweeps_temporary_files_of_dead_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let first = store(tmp.path(), &clock);
    let r = record(&clock, Duration::from_secs(60), 1);
    first.create(&r).await.unwrap();
    drop(first);
    let shard = FileStore::path_in(tmp.path(), &r.id).parent().unwrap().to_owned();
    let leftover = shard.join(format!(".tmp-{}-99-0", r.id));
    fs::write(&leftover, b"half a record").unwrap();
    let reopened = store(tmp.path(), &clock);
    // The sweep runs beside the app: wait for it, boundedly.
    for _ in 0..500 {
        if !leftover.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!leftover.exists(), "the sweep at open removed the leftover");
    assert!(reopened.load(&r.id).await.unwrap().is_some(), "and nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_at_open_waits_out_a_busy_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let first = store(tmp.path(), &clock);
    let r = record(&clock, Duration::from_secs(60), 1);
    first.create(&r).await.unwrap();
    drop(first);
    let shard = FileStore::path_in(tmp.path(), &r.id).parent().unwrap().to_owned();
    let leftover = shard.join(format!(".tmp-{}-99-0", r.id));
    fs::write(&leftover, b"half a record").unwrap();
    // Another process writes in that shard as the store opens.
    let writer = fs::File::open(shard.join(".lock")).unwrap();
    writer.lock().unwrap();
    let reopened = store(tmp.path(), &clock);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(leftover.exists(), "kept while the shard's lock is held");
    drop(writer);
    for _ in 0..500 {
        if !leftover.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !leftover.exists(),
        "removed once the shard was free, not at the next purge"
    );
    assert!(reopened.load(&r.id).await.unwrap().is_some(), "and nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_files_are_never_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let r = record(&clock, Duration::from_secs(10), 1);
    let path = store.path_of(&r.id);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = codec::encode_record(&r).unwrap();
    fs::write(path.with_file_name(format!(".tmp-{}-7-7", r.id)), &bytes).unwrap();
    // A complete record under a name that is not exactly an id is ignored too.
    fs::write(path.with_file_name(format!("{}~", r.id)), &bytes).unwrap();
    assert!(store.load(&r.id).await.unwrap().is_none());
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(
        store
            .ids()
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_directories_are_the_owners_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("deep").join("sessions");
    let clock = clock();
    let store = store(&dir, &clock);
    let r = record(&clock, Duration::from_secs(10), 1);
    store.create(&r).await.unwrap();
    store.save(&r).await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    let file = store.path_of(&r.id);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&file.with_file_name(".lock")), 0o600);
    // The layout the README promises.
    let name = r.id.to_string();
    assert_eq!(file, dir.join(&name[..2]).join(&name));
    assert_eq!(FileStore::path_in(&dir, &r.id), file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_file_is_an_error_for_that_record_only() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let bad = record(&clock, Duration::from_secs(10), 1);
    let good = record(&clock, Duration::from_secs(10), 2);
    store.create(&bad).await.unwrap();
    store.create(&good).await.unwrap();
    let path = store.path_of(&bad.id);
    let bytes = fs::read(&path).unwrap();
    for garbage in [
        Vec::new(),
        bytes[..bytes.len() / 2].to_vec(),
        vec![0xff; 64],
        [&bytes[..], b"trailing"].concat(),
    ] {
        fs::write(&path, &garbage).unwrap();
        let err = store.load(&bad.id).await.unwrap_err();
        assert!(err.is_decode(), "{err}");
        assert!(
            err.to_string().contains(&bad.id.fingerprint().to_string()),
            "names the fingerprint: {err}"
        );
        assert!(!err.to_string().contains(&bad.id.to_string()), "never the id: {err}");
        assert!(store.save(&bad).await.unwrap_err().is_decode());
        assert!(store.touch(&bad.id, Timestamp::MAX).await.unwrap_err().is_decode());
        assert!(
            store
                .rotate(&bad.id, &SessionId::random())
                .await
                .unwrap_err()
                .is_decode()
        );
        assert!(store.rotate(&good.id, &bad.id).await.unwrap_err().is_decode());
        assert_eq!(fs::read(&path).unwrap(), garbage, "nothing changed");
        assert_eq!(n_of(&store.load(&good.id).await.unwrap().unwrap()), 2);
        // Listed and counted alike, so an operator sees it (`list` names it
        // by fingerprint, loading it answers the decode error).
        assert_eq!(store.count().await.unwrap(), 2);
        let mut listed: Vec<SessionId> = store.ids().await.unwrap().iter().map(|h| h.stored()).collect();
        listed.sort();
        let mut both = vec![good.id, bad.id];
        both.sort();
        assert_eq!(listed, both);
        clock.advance(Duration::from_secs(20));
        // Purge reads only the header: a file whose header still decodes
        // (a truncated or extended record) holds a deadline that has passed,
        // and goes like any expired record; one whose header does not
        // decode stays for an operator.
        let header_decodes = codec::decode_record_header(bad.id, &garbage).is_ok();
        assert_eq!(
            store.purge_expired().await.unwrap(),
            1 + u64::from(header_decodes),
            "the good one expired"
        );
        assert_eq!(path.exists(), !header_decodes, "purge leaves a file without a header");
        clock.set(START);
        store.create(&good).await.unwrap();
    }
    store.delete(&bad.id).await.unwrap();
    assert!(!path.exists());
    assert!(store.load(&bad.id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_is_not_a_file_is_that_records_problem_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sessions");
    let clock = clock();
    let store = store(&dir, &clock);
    let good = record(&clock, Duration::from_secs(10), 1);
    let as_dir = record(&clock, Duration::from_secs(10), 2);
    let as_fifo = record(&clock, Duration::from_secs(10), 3);
    let as_socket = record(&clock, Duration::from_secs(10), 4);
    for r in [&good, &as_dir, &as_fifo, &as_socket] {
        store.create(r).await.unwrap();
    }
    fs::remove_file(store.path_of(&as_socket.id)).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(store.path_of(&as_socket.id)).expect("a socket");
    // A directory and a FIFO where two session files belong.
    fs::remove_file(store.path_of(&as_dir.id)).unwrap();
    fs::create_dir(store.path_of(&as_dir.id)).unwrap();
    fs::remove_file(store.path_of(&as_fifo.id)).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(store.path_of(&as_fifo.id))
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo made the FIFO");

    for bad in [&as_dir, &as_fifo, &as_socket] {
        // A decode error naming the fingerprint (a FIFO's open never blocks).
        let err = tokio::time::timeout(Duration::from_secs(10), store.load(&bad.id))
            .await
            .expect("the load never blocks")
            .unwrap_err();
        assert!(err.is_decode(), "{err}");
        assert!(err.to_string().contains(&bad.id.fingerprint().to_string()), "{err}");
        assert!(!err.to_string().contains(&bad.id.to_string()), "never the id: {err}");
        assert!(store.save(bad).await.unwrap_err().is_decode(), "never written over");
    }
    assert_eq!(n_of(&store.load(&good.id).await.unwrap().unwrap()), 1);
    // Counted and listed alike; purge goes on.
    assert_eq!(store.count().await.unwrap(), 4);
    assert_eq!(store.ids().await.unwrap().len(), 4);
    assert_eq!(store.purge_expired().await.unwrap(), 0);

    // `doctor`'s inspection reports all three by fingerprint, and nothing else.
    let report = session_store_file::inspect::inspect(&dir).unwrap();
    let mut found: Vec<String> = report.undecodable.iter().map(|u| u.fingerprint.to_string()).collect();
    found.sort();
    let mut expected: Vec<String> = [&as_dir, &as_fifo, &as_socket]
        .iter()
        .map(|r| r.id.fingerprint().to_string())
        .collect();
    expected.sort();
    assert_eq!(found, expected, "{report:?}");
    assert!(report.unexpected.is_empty(), "{report:?}");
    assert_eq!(report.records, 4);

    clock.advance(Duration::from_secs(20));
    assert_eq!(
        store.purge_expired().await.unwrap(),
        1,
        "the good one expired, purged beside them"
    );
    assert_eq!(store.count().await.unwrap(), 3);

    // A directory with an entry in it cannot go: `clear` and `--fix` leave
    // it (reported) and carry on.
    fs::write(store.path_of(&as_dir.id).join("x"), b"x").unwrap();
    store.clear().await.expect("clear carries on past it");
    assert_eq!(
        store.count().await.unwrap(),
        1,
        "only the directory with an entry is left"
    );
    fs::remove_file(store.path_of(&as_dir.id).join("x")).unwrap();
    for r in [&as_fifo, &as_socket] {
        assert!(!store.path_of(&r.id).exists(), "clear removed {:?}", r.id);
    }
    // `--fix`: the empty directory goes too, then the store is healthy.
    let report = session_store_file::inspect::inspect(&dir).unwrap();
    assert_eq!(report.undecodable.len(), 1, "{report:?}");
    for bad in &report.undecodable {
        assert!(session_store_file::inspect::remove_undecodable(&dir, bad).unwrap());
    }
    assert!(session_store_file::inspect::inspect(&dir).unwrap().is_healthy());
    assert_eq!(store.count().await.unwrap(), 0);
    // The ids are free again.
    clock.set(START);
    store.create(&as_dir).await.unwrap();
    assert_eq!(n_of(&store.load(&as_dir.id).await.unwrap().unwrap()), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_planted_file_is_refused_not_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = FileStore::builder(tmp.path())
        .clock(clock.shared())
        .max_record_bytes(1024)
        .open()
        .unwrap();
    let r = record(&clock, Duration::from_secs(10), 1);
    store.create(&r).await.unwrap();
    let file = fs::File::options().write(true).open(store.path_of(&r.id)).unwrap();
    file.set_len(1 << 40).unwrap(); // sparse: no disk used
    assert!(store.load(&r.id).await.unwrap_err().is_decode());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_reopening_in_either_durability_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    for durability in [Durability::Fsync, Durability::NoSync] {
        let dir = tmp.path().join(format!("{durability:?}"));
        let r = record(&clock, Duration::from_secs(10), 8);
        {
            let store = FileStore::builder(&dir)
                .clock(clock.shared())
                .durability(durability)
                .open()
                .unwrap();
            store.create(&r).await.unwrap();
            store.save(&r).await.unwrap();
        }
        let store = store(&dir, &clock);
        let loaded = store.load(&r.id).await.unwrap().unwrap();
        assert_eq!((n_of(&loaded), loaded.version), (8, 2));
        assert_eq!(store.count().await.unwrap(), 1);
    }
}

/// Many tasks on two store objects sharing one directory (as two processes
/// would), each incrementing one counter with load and save-if-version.
async fn no_lost_updates(blocking: Blocking) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let open = || {
        FileStore::builder(tmp.path())
            .clock(clock.shared())
            .durability(Durability::NoSync)
            .blocking(blocking)
            .open()
            .unwrap()
    };
    let stores = [Arc::new(open()), Arc::new(open())];
    let r = record(&clock, Duration::from_secs(60), 0);
    stores[0].create(&r).await.unwrap();
    const TASKS: usize = 16;
    const EACH: i64 = 10;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&stores[t % 2]);
        let id = r.id;
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            let mut done = 0;
            while done < EACH {
                let mut cur = store.load(&id).await.unwrap().unwrap();
                cur.data.insert("n", &(n_of(&cur) + 1)).unwrap();
                match store.save_if_version(&cur).await {
                    Ok(v) => {
                        assert_eq!(v, cur.version + 1);
                        done += 1;
                    }
                    Err(e) if e.is_conflict() => conflicts += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let end = stores[1].load(&r.id).await.unwrap().unwrap();
    assert_eq!(n_of(&end), TASKS as i64 * EACH, "{conflicts} conflicts");
    assert_eq!(end.version, 1 + TASKS as u64 * EACH as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lost_updates_with_block_in_place() {
    no_lost_updates(Blocking::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lost_updates_with_spawn_blocking() {
    no_lost_updates(Blocking::SpawnBlocking).await;
}

#[tokio::test(flavor = "current_thread")]
async fn no_lost_updates_on_a_current_thread_runtime() {
    no_lost_updates(Blocking::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_in_opposite_directions_do_not_deadlock() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let stores = [Arc::new(store(tmp.path(), &clock)), Arc::new(store(tmp.path(), &clock))];
    let a = record(&clock, Duration::from_secs(60), 1);
    let b = record(&clock, Duration::from_secs(60), 2);
    stores[0].create(&a).await.unwrap();
    stores[0].create(&b).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = Arc::clone(&stores[t % 2]);
        let (x, y) = if t % 2 == 0 { (a.id, b.id) } else { (b.id, a.id) };
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                // Always a collision or an absent old record; what matters is
                // that it returns and changes nothing.
                match store.rotate(&x, &y).await {
                    Err(Error::IdCollision { .. }) | Ok(false) => {}
                    other => panic!("{other:?}"),
                }
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("rotations deadlocked");
    assert_eq!(n_of(&stores[1].load(&a.id).await.unwrap().unwrap()), 1);
    assert_eq!(n_of(&stores[1].load(&b.id).await.unwrap().unwrap()), 2);
}

#[test]
fn works_outside_any_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let r = record(&clock, Duration::from_secs(10), 1);
    block_on(store.create(&r)).unwrap();
    assert_eq!(block_on(store.load(&r.id)).unwrap().unwrap().version, 1);
}

/// Polls a future that completes without waiting (the store runs its I/O on
/// the calling thread outside tokio).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..1_000 {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the future did not complete outside a runtime");
}

/// While an operation waits on the file system (here: on a shard lock held
/// by "another process"), the runtime's worker keeps running other tasks.
fn a_blocked_operation_does_not_stall_the_runtime(runtime: tokio::runtime::Runtime, blocking: Blocking) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = FileStore::builder(tmp.path())
        .clock(clock.shared())
        .blocking(blocking)
        .open()
        .unwrap();
    let r = record(&clock, Duration::from_secs(60), 1);
    runtime.block_on(store.create(&r)).unwrap();
    // Hold the shard's lock as another process would.
    let lock = fs::File::options()
        .read(true)
        .write(true)
        .open(store.path_of(&r.id).with_file_name(".lock"))
        .unwrap();
    lock.lock().unwrap();
    // The watchdog plays the other process: it releases the lock once the
    // runtime has shown it still runs tasks, or after 10 s if it does not.
    let (ran, ticked) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let stalled = ticked.recv_timeout(Duration::from_secs(10)).is_err();
        lock.unlock().unwrap();
        stalled
    });
    let version = runtime.block_on(async {
        let saving = tokio::spawn({
            let store = store.clone();
            let r = r.clone();
            async move { store.save(&r).await }
        });
        // Let the save start and block on the lock.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!saving.is_finished(), "the save waits for the lock");
        // Another task on the same (single) worker thread must still run.
        // No tokio timer here: a stalled worker would not drive it.
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            let _ = ran.send(());
        });
        saving.await.unwrap().unwrap()
    });
    let stalled = watchdog.join().unwrap();
    assert!(!stalled, "the runtime stalled behind a blocked file operation");
    assert_eq!(version, 2);
}

#[test]
fn block_in_place_does_not_stall_a_one_worker_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    a_blocked_operation_does_not_stall_the_runtime(rt, Blocking::Auto);
}

#[test]
fn spawn_blocking_does_not_stall_a_one_worker_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    a_blocked_operation_does_not_stall_the_runtime(rt, Blocking::SpawnBlocking);
}

#[test]
fn a_current_thread_runtime_is_not_stalled() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    a_blocked_operation_does_not_stall_the_runtime(rt, Blocking::Auto);
}
