//! The file store's owner index on disk: marker files, their order against
//! the record, stale markers filtered by reads and removed by purge. The
//! owner properties themselves are checked by the conformance suite.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use session_store_conformance::fixtures::{RecordBuilder, start_clock as clock};
use session_store_core::{Clock, ManualClock, Record, SessionId, SessionStore, SessionStoreExt};
use session_store_file::FileStore;

fn store(dir: &Path, clock: &ManualClock) -> FileStore {
    FileStore::builder(dir).clock(clock.shared()).open().unwrap()
}

fn owned(clock: &ManualClock, owner: &str, ttl: Duration) -> Record {
    let mut r = RecordBuilder::new(clock.now()).ttl(ttl).n(1).build();
    r.owner = Some(owner.to_owned());
    r
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread")]
async fn a_create_makes_an_owner_only_marker_and_an_unowned_record_none() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let s = store(&tmp.path().join("s"), &clock);
    let r = owned(&clock, "alice", HOUR);
    s.create(&r).await.unwrap();
    let marker = s.marker_path("alice", &r.id);
    assert!(marker.is_file(), "no marker after a create");
    assert_eq!(fs::metadata(&marker).unwrap().len(), 0);
    assert_eq!(mode(&marker), 0o600);
    assert_eq!(mode(marker.parent().unwrap()), 0o700);
    assert_eq!(mode(marker.parent().unwrap().parent().unwrap()), 0o700);
    assert_eq!(
        s.owner_sessions("alice")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>(),
        vec![r.id]
    );

    let mut plain = RecordBuilder::new(clock.now()).ttl(HOUR).n(2).build();
    plain.owner = None;
    s.create(&plain).await.unwrap();
    let owners = s.dir().join("owners");
    let dirs: Vec<_> = fs::read_dir(&owners).unwrap().collect();
    assert_eq!(dirs.len(), 1, "an unowned record made an owner directory");
    // The index is no shard: the scans do not see it.
    assert_eq!(s.count().await.unwrap(), 2);
}

/// While sessions are created, a watcher that sees a record file always
/// finds its marker already there: the marker is made before the rename.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_file_never_exists_without_its_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let s = store(&tmp.path().join("s"), &clock);
    let records: Vec<Record> = (0..200).map(|_| owned(&clock, "carol", HOUR)).collect();
    let paths: Vec<_> = records
        .iter()
        .map(|r| (s.path_of(&r.id), s.marker_path("carol", &r.id)))
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let (mut seen, mut missing) = (0u64, 0u64);
            while !done.load(Ordering::Acquire) {
                for (file, marker) in &paths {
                    // Record first, then marker: had the marker come after
                    // the record, this would catch it in between.
                    if file.exists() {
                        seen += 1;
                        if !marker.exists() {
                            missing += 1;
                        }
                    }
                }
            }
            (seen, missing)
        })
    };
    for r in &records {
        s.create(r).await.unwrap();
    }
    done.store(true, Ordering::Release);
    let (seen, missing) = watcher.join().unwrap();
    assert!(seen > 0, "the watcher saw no record");
    assert_eq!(missing, 0, "{missing} of {seen} sightings of a record had no marker");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_and_an_owner_change_move_the_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let s = store(&tmp.path().join("s"), &clock);
    let r = owned(&clock, "alice", HOUR);
    s.create(&r).await.unwrap();
    let new = SessionId::random();
    assert!(s.rotate(&r.id, &new).await.unwrap());
    assert!(s.marker_path("alice", &new).is_file(), "no marker for the new id");
    assert!(!s.marker_path("alice", &r.id).exists(), "the old id's marker stayed");

    let mut moved = s.load(&new).await.unwrap().unwrap();
    moved.owner = Some("bob".into());
    s.save(&moved).await.unwrap();
    assert!(s.marker_path("bob", &new).is_file());
    assert!(!s.marker_path("alice", &new).exists(), "alice's marker stayed");

    moved.owner = None;
    s.save(&moved).await.unwrap();
    assert!(!s.marker_path("bob", &new).exists(), "bob's marker stayed");
    assert!(
        s.owner_sessions("bob")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>()
            .is_empty()
    );
}

/// A delete leaves its marker; reads filter it; purge removes it (and the
/// owner's directory once empty), as it removes the markers of expired
/// records and of records that name another owner.
#[tokio::test(flavor = "multi_thread")]
async fn stale_markers_are_filtered_by_reads_and_removed_by_purge() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let s = store(&tmp.path().join("s"), &clock);
    let gone = owned(&clock, "alice", HOUR);
    let short = owned(&clock, "alice", Duration::from_secs(1));
    let kept = owned(&clock, "alice", HOUR);
    let bobs = owned(&clock, "bob", HOUR);
    for r in [&gone, &short, &kept, &bobs] {
        s.create(r).await.unwrap();
    }
    s.delete(&gone.id).await.unwrap();
    let stale = s.marker_path("alice", &gone.id);
    assert!(
        stale.is_file(),
        "the delete removed its marker (this test expects it left)"
    );
    // A planted marker for bob's session under alice (what a hash
    // collision or a lost removal would leave).
    let planted = s.marker_path("alice", &bobs.id);
    fs::write(&planted, b"").unwrap();

    clock.advance(Duration::from_secs(1));
    assert_eq!(
        s.owner_sessions("alice")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>(),
        vec![kept.id]
    );
    assert_eq!(
        s.owner_sessions("bob")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>(),
        vec![bobs.id]
    );

    assert_eq!(s.purge_expired().await.unwrap(), 1);
    assert!(!stale.exists(), "purge left the deleted session's marker");
    assert!(!planted.exists(), "purge left a marker naming another owner's session");
    assert!(
        !s.marker_path("alice", &short.id).exists(),
        "purge left an expired session's marker"
    );
    assert!(
        s.marker_path("alice", &kept.id).is_file(),
        "purge removed a live marker"
    );
    assert!(s.marker_path("bob", &bobs.id).is_file(), "purge removed bob's marker");
    assert!(s.load(&bobs.id).await.unwrap().is_some());

    // Revoking alice leaves bob, and her emptied directory goes at purge.
    assert_eq!(s.delete_owner_sessions("alice", None).await.unwrap(), 1);
    let alice_dir = s.marker_path("alice", &kept.id).parent().unwrap().to_owned();
    s.purge_expired().await.unwrap();
    assert!(!alice_dir.exists(), "purge left an empty owner directory");
    assert_eq!(
        s.owner_sessions("bob")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>(),
        vec![bobs.id]
    );

    // A new login of alice makes her directory again.
    let again = owned(&clock, "alice", HOUR);
    s.create(&again).await.unwrap();
    assert_eq!(
        s.owner_sessions("alice")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>(),
        vec![again.id]
    );

    // Clear removes every marker with the records.
    s.clear().await.unwrap();
    // (Owner lock files, like shard lock files, stay.)
    let left: Vec<_> = fs::read_dir(s.dir().join("owners"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(left.is_empty(), "clear left {} owner directories", left.len());
}

/// A revoke reaches a session whose marker a previous version never made,
/// once a touch (or any write) has restored it.
#[tokio::test(flavor = "multi_thread")]
async fn a_touch_restores_a_missing_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let s = store(&tmp.path().join("s"), &clock);
    let r = owned(&clock, "dave", HOUR);
    s.create(&r).await.unwrap();
    fs::remove_file(s.marker_path("dave", &r.id)).unwrap();
    assert!(
        s.owner_sessions("dave")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>()
            .is_empty()
    );
    assert!(s.touch(&r.id, r.expires_at).await.unwrap());
    assert_eq!(
        s.owner_sessions("dave")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>(),
        vec![r.id]
    );
    assert_eq!(s.delete_owner_sessions("dave", None).await.unwrap(), 1);
    assert!(s.load(&r.id).await.unwrap().is_none());
}

/// A revoke racing a chain of rotations of one of the owner's sessions
/// (re-logins) still removes it: a revoke holds the owner's lock, and a
/// rotate of that owner's record waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoke_follows_a_session_rotated_while_it_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let s = store(&tmp.path().join("s"), &clock);
    for round in 0..20 {
        let others: Vec<Record> = (0..5).map(|_| owned(&clock, "erin", HOUR)).collect();
        for r in &others {
            s.create(r).await.unwrap();
        }
        let moving = owned(&clock, "erin", HOUR);
        s.create(&moving).await.unwrap();
        let rotator = {
            let s = s.clone();
            tokio::spawn(async move {
                let mut id = moving.id;
                let mut moves = 0u32;
                // Bounded, so a revoke that misses the session fails the
                // test instead of hanging it.
                while moves < 5_000
                    && let Some(new) = s.rotate_to_fresh_id(&id).await.unwrap()
                {
                    id = new;
                    moves += 1;
                }
                (id, moves)
            })
        };
        tokio::task::yield_now().await;
        let removed = s.delete_owner_sessions("erin", None).await.unwrap();
        let (last, moves) = rotator.await.unwrap();
        assert_eq!(removed, 6, "round {round}: revoked {removed} of 6 ({moves} rotations)");
        assert!(
            s.load(&last).await.unwrap().is_none(),
            "round {round}: the rotated session survived"
        );
        assert!(
            s.owner_sessions("erin")
                .await
                .unwrap()
                .into_iter()
                .map(|h| h.stored())
                .collect::<Vec<_>>()
                .is_empty()
        );
    }
}
