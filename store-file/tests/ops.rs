//! Each operation of the file store, on disk, including what only a file
//! store has: permissions, temporary files, corrupt files, reopening.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use session_store_core::{Clock, Error, ManualClock, Record, SessionData, SessionId, SessionStore, Timestamp, codec};
use session_store_file::{Blocking, Durability, FileStore};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

fn clock() -> ManualClock {
    ManualClock::new(START)
}

fn store(dir: &Path, clock: &ManualClock) -> FileStore {
    FileStore::builder(dir).clock(clock.shared()).open().unwrap()
}

fn record(clock: &ManualClock, ttl: Duration, n: i64) -> Record {
    let mut data = SessionData::new();
    data.insert("n", &n).unwrap();
    data.insert("", &"empty key").unwrap();
    Record::with_deadline(SessionId::random(), data, clock.now(), clock.now() + ttl)
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
async fn versions_liveness_and_the_expiry_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let mut r = record(&clock, Duration::from_millis(100), 1);
    r.version = 77; // ignored by create
    store.create(&r).await.unwrap();
    let loaded = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!(loaded.version, 1);
    assert_eq!(loaded.data, r.data);
    assert_eq!(loaded.created_at, r.created_at);
    assert_eq!(loaded.expires_at, r.expires_at);

    assert_eq!(store.save(&r).await.unwrap(), 2);
    assert_eq!(store.save(&r).await.unwrap(), 3);
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().version, 3);

    clock.advance(Duration::from_millis(99));
    assert!(
        store.load(&r.id).await.unwrap().is_some(),
        "live one ms before the deadline"
    );
    clock.advance(Duration::from_millis(1));
    assert!(store.load(&r.id).await.unwrap().is_none(), "expired at the deadline");
    assert_eq!(store.count().await.unwrap(), 0);
    // A save over an expired record starts again at version 1.
    let mut renewed = r.clone();
    renewed.expires_at = clock.now() + Duration::from_secs(1);
    assert_eq!(store.save(&renewed).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_never_overwrites_a_live_record_but_replaces_an_expired_one() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let r = record(&clock, Duration::from_millis(10), 1);
    store.create(&r).await.unwrap();
    let mut other = r.clone();
    other.data.insert("n", &2).unwrap();
    assert!(matches!(store.create(&other).await, Err(Error::IdCollision { id }) if id == r.id));
    assert_eq!(n_of(&store.load(&r.id).await.unwrap().unwrap()), 1);
    clock.advance(Duration::from_millis(10));
    other.expires_at = clock.now() + Duration::from_secs(1);
    store.create(&other).await.unwrap();
    let loaded = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!((n_of(&loaded), loaded.version), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_if_version_conflicts_on_stale_deleted_and_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let mut r = record(&clock, Duration::from_secs(10), 1);
    store.create(&r).await.unwrap();
    r.version = 1;
    r.data.insert("n", &2).unwrap();
    assert_eq!(store.save_if_version(&r).await.unwrap(), 2);
    // Stale: the caller still holds version 1.
    let err = store.save_if_version(&r).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict { id, expected: 1 } if id == r.id),
        "{err}"
    );
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().version, 2);
    // Deleted meanwhile: a late write never brings it back.
    r.version = 2;
    store.delete(&r.id).await.unwrap();
    assert!(store.save_if_version(&r).await.unwrap_err().is_conflict());
    assert!(store.load(&r.id).await.unwrap().is_none());
    assert!(!store.path_of(&r.id).exists());
    // Never stored at all, in a shard that does not exist.
    let fresh = record(&clock, Duration::from_secs(10), 1);
    assert!(store.save_if_version(&fresh).await.unwrap_err().is_conflict());
    // Expired.
    store.create(&fresh).await.unwrap();
    let mut fresh = store.load(&fresh.id).await.unwrap().unwrap();
    clock.advance(Duration::from_secs(10));
    fresh.expires_at = clock.now() + Duration::from_secs(10);
    assert!(store.save_if_version(&fresh).await.unwrap_err().is_conflict());
    assert!(store.load(&fresh.id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_moves_the_deadline_only() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let r = record(&clock, Duration::from_millis(10), 5);
    store.create(&r).await.unwrap();
    store.save(&r).await.unwrap();
    let later = clock.now() + Duration::from_secs(60);
    assert!(store.touch(&r.id, later).await.unwrap());
    clock.advance(Duration::from_secs(1));
    let loaded = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!((loaded.expires_at, loaded.version, n_of(&loaded)), (later, 2, 5));
    assert_eq!(loaded.created_at, r.created_at);
    assert!(!store.touch(&SessionId::random(), later).await.unwrap());
    clock.advance(Duration::from_secs(60));
    assert!(
        !store.touch(&r.id, later + Duration::from_secs(60)).await.unwrap(),
        "expired"
    );
    assert!(store.load(&r.id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let r = record(&clock, Duration::from_secs(10), 1);
    store.delete(&r.id).await.unwrap();
    store.create(&r).await.unwrap();
    store.delete(&r.id).await.unwrap();
    store.delete(&r.id).await.unwrap();
    assert!(store.load(&r.id).await.unwrap().is_none());
    assert!(!store.path_of(&r.id).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_moves_the_record_in_one_step() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let r = record(&clock, Duration::from_secs(10), 9);
    store.create(&r).await.unwrap();
    store.save(&r).await.unwrap();
    let new = SessionId::random();
    assert!(store.rotate(&r.id, &new).await.unwrap());
    assert!(store.load(&r.id).await.unwrap().is_none());
    assert!(!store.path_of(&r.id).exists());
    let moved = store.load(&new).await.unwrap().unwrap();
    assert_eq!(moved.id, new);
    assert_eq!((n_of(&moved), moved.version, moved.expires_at), (9, 2, r.expires_at));
    assert_eq!(moved.created_at, r.created_at);

    // Absent old: false, nothing changes.
    assert!(!store.rotate(&r.id, &SessionId::random()).await.unwrap());
    // Onto itself, and onto another live record: a collision, nothing changes.
    assert!(matches!(store.rotate(&new, &new).await, Err(Error::IdCollision { id }) if id == new));
    let other = record(&clock, Duration::from_secs(10), 3);
    store.create(&other).await.unwrap();
    assert!(matches!(
        store.rotate(&new, &other.id).await,
        Err(Error::IdCollision { .. })
    ));
    // Absent old and a live new: the collision is reported (as the memory store does).
    assert!(matches!(
        store.rotate(&r.id, &other.id).await,
        Err(Error::IdCollision { .. })
    ));
    assert_eq!(n_of(&store.load(&other.id).await.unwrap().unwrap()), 3);
    assert_eq!(n_of(&store.load(&new).await.unwrap().unwrap()), 9);

    // An expired record under the new id is replaced.
    let short = record(&clock, Duration::from_secs(1), 4);
    store.create(&short).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(store.rotate(&new, &short.id).await.unwrap());
    assert_eq!(n_of(&store.load(&short.id).await.unwrap().unwrap()), 9);
    // An expired old one does not move.
    clock.advance(Duration::from_secs(10));
    assert!(!store.rotate(&short.id, &SessionId::random()).await.unwrap());
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
    let mut ids = store.ids().await.unwrap();
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
    assert!(store.ids().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_ids_and_clear_stay_in_their_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let a = store(&tmp.path().join("a"), &clock);
    let b = store(&tmp.path().join("b"), &clock);
    let mut in_a = Vec::new();
    for i in 0..10 {
        let r = record(&clock, Duration::from_secs(10), i);
        a.create(&r).await.unwrap();
        in_a.push(r.id);
        b.create(&record(&clock, Duration::from_secs(10), i)).await.unwrap();
    }
    assert!(b.load(&in_a[0]).await.unwrap().is_none());
    assert_eq!(a.count().await.unwrap(), 10);
    let mut ids = a.ids().await.unwrap();
    ids.sort();
    in_a.sort();
    assert_eq!(ids, in_a);
    a.clear().await.unwrap();
    assert_eq!(a.count().await.unwrap(), 0);
    assert_eq!(b.count().await.unwrap(), 10);
    // Only lock files are left in a cleared store.
    assert!(files(a.dir()).iter().all(|f| f.file_name().unwrap() == ".lock"));
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
        assert!(err.to_string().contains(&bad.id.to_string()), "names the id: {err}");
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
        assert_eq!(store.count().await.unwrap(), 1);
        assert_eq!(store.ids().await.unwrap(), vec![good.id]);
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
async fn records_over_the_limit_are_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = FileStore::builder(tmp.path())
        .clock(clock.shared())
        .max_record_bytes(100)
        .open()
        .unwrap();
    let mut r = record(&clock, Duration::from_secs(10), 1);
    r.data.insert("big", &"x".repeat(100)).unwrap();
    assert!(matches!(
        store.create(&r).await,
        Err(Error::TooLarge { limit: 100, .. })
    ));
    assert!(matches!(store.save(&r).await, Err(Error::TooLarge { .. })));
    assert!(!store.path_of(&r.id).exists());
    r.data.remove("big");
    store.create(&r).await.unwrap();
    r.version = 1;
    r.data.insert("big", &"x".repeat(100)).unwrap();
    assert!(matches!(store.save_if_version(&r).await, Err(Error::TooLarge { .. })));
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = store(tmp.path(), &clock);
    let mut r = record(&clock, Duration::from_secs(10), 1);
    let big: String = (0..3 << 20).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    r.data.insert("big", &big).unwrap();
    r.data.insert("unicode ключ 🔑", &serde_json_value()).unwrap();
    store.save(&r).await.unwrap();
    let loaded = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!(loaded.data, r.data);
}

fn serde_json_value() -> (u128, i128, Vec<Option<bool>>, String) {
    (u128::MAX, i128::MIN, vec![Some(true), None], "\u{0}é\u{10ffff}".into())
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
