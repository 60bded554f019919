//! The session handle over real stores: the lifecycle of a request, lost
//! updates, late writes after logout and login, and damaged records.

use std::time::Duration;

use session_store_core::{Clock, Committed, Error, Expiry, ManualClock, SessionStore, Sessions, Timestamp};
use session_store_file::FileStore;
use session_store_memory::MemoryStore;

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_millis(1_700_000_000_000))
}

fn memory(clock: &ManualClock) -> MemoryStore {
    MemoryStore::builder().clock(clock.shared()).build()
}

const IDLE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_visit_counter_in_a_few_lines() -> session_store_core::Result<()> {
    let clock = clock();
    let sessions = Sessions::new(memory(&clock)).expiry(Expiry::OnInactivity(IDLE));
    let mut cookie: Option<String> = None;
    for expected in 1..=3u64 {
        let mut session = sessions.load_or_start(cookie.as_deref()).await?;
        let count: u64 = session.get("count")?.unwrap_or(0) + 1;
        session.insert("count", &count)?;
        let committed = sessions.commit(&mut session).await?;
        assert_eq!(count, expected);
        assert_eq!(
            committed,
            if expected == 1 {
                Committed::Created
            } else {
                Committed::Saved
            }
        );
        assert_eq!(session.record().version, expected, "versions flow without bookkeeping");
        cookie = Some(session.id().expect("stored").to_string());
    }
    // The deadline came from the store's own clock.
    let session = sessions.load(cookie.as_deref().unwrap()).await?.unwrap();
    assert_eq!(session.expires_at(), clock.now() + IDLE);
    Ok(())
}

#[tokio::test]
async fn bad_expired_and_absent_cookies_are_no_session() {
    let clock = clock();
    let sessions = Sessions::new(memory(&clock)).expiry(Expiry::OnInactivity(IDLE));
    for cookie in ["", "not an id", "../../etc/passwd", "AAAAAAAAAAAAAAAAAAAAAA"] {
        assert!(sessions.load(cookie).await.unwrap().is_none(), "{cookie:?}");
    }
    let mut session = sessions.start();
    session.insert("k", &1).unwrap();
    sessions.commit(&mut session).await.unwrap();
    let cookie = session.id().unwrap().to_string();
    clock.advance(IDLE);
    assert!(
        sessions.load(&cookie).await.unwrap().is_none(),
        "expired at the deadline"
    );
    let fresh = sessions.load_or_start(Some(&cookie)).await.unwrap();
    assert!(fresh.is_new() && fresh.id().is_none());
}

#[tokio::test]
async fn nothing_is_written_for_a_request_that_changed_nothing() {
    let clock = clock();
    let store = memory(&clock);
    let sessions = Sessions::new(store.clone()).expiry(Expiry::AtDateTime(clock.now() + IDLE));
    // A new session left empty is not stored.
    let mut empty = sessions.start();
    assert_eq!(sessions.commit(&mut empty).await.unwrap(), Committed::Nothing);
    assert_eq!(store.count().await.unwrap(), 0);
    let mut session = sessions.start();
    session.insert("k", &1).unwrap();
    sessions.commit(&mut session).await.unwrap();
    // A fixed deadline does not move: no write at all.
    let mut again = sessions
        .load(&session.id().unwrap().to_string())
        .await
        .unwrap()
        .unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(sessions.commit(&mut again).await.unwrap(), Committed::Nothing);
    assert_eq!(store.load(&session.id().unwrap()).await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn sliding_expiry_touches_without_rewriting_and_the_lifetime_caps_it() {
    let clock = clock();
    let store = memory(&clock);
    let policy = Expiry::IdleAndAbsolute {
        idle: IDLE,
        lifetime: Duration::from_secs(150),
    };
    let sessions = Sessions::new(store.clone()).expiry(policy);
    let mut session = sessions.start();
    session.insert("k", &1).unwrap();
    sessions.commit(&mut session).await.unwrap();
    let created = clock.now();
    let cookie = session.id().unwrap().to_string();
    for _ in 0..5 {
        clock.advance(Duration::from_secs(50));
        let Some(mut s) = sessions.load(&cookie).await.unwrap() else {
            // Past the lifetime: gone, whatever the activity.
            assert!(clock.now() >= created + Duration::from_secs(150));
            return;
        };
        assert_eq!(sessions.commit(&mut s).await.unwrap(), Committed::Touched);
        assert_eq!(s.record().version, 1, "a touch rewrites no data");
        assert!(s.expires_at() <= created + Duration::from_secs(150));
    }
    panic!("the session outlived its absolute lifetime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_changing_different_keys_both_survive() {
    let clock = clock();
    let sessions = Sessions::new(memory(&clock)).expiry(Expiry::OnInactivity(IDLE));
    let mut session = sessions.start();
    session.insert("a", &0).unwrap();
    session.insert("b", &0).unwrap();
    sessions.commit(&mut session).await.unwrap();
    let cookie = session.id().unwrap().to_string();
    // Two requests load the same version, each changes its own key.
    let mut first = sessions.load(&cookie).await.unwrap().unwrap();
    let mut second = sessions.load(&cookie).await.unwrap().unwrap();
    first.insert("a", &1).unwrap();
    second.insert("b", &2).unwrap();
    second.remove("missing");
    assert_eq!(sessions.commit(&mut first).await.unwrap(), Committed::Saved);
    assert_eq!(sessions.commit(&mut second).await.unwrap(), Committed::Saved);
    let stored = sessions.load(&cookie).await.unwrap().unwrap();
    assert_eq!(stored.get::<i32>("a").unwrap(), Some(1));
    assert_eq!(stored.get::<i32>("b").unwrap(), Some(2));
    assert_eq!(stored.record().version, 3);
    // On the same key the later commit wins.
    let mut x = sessions.load(&cookie).await.unwrap().unwrap();
    let mut y = sessions.load(&cookie).await.unwrap().unwrap();
    x.insert("a", &10).unwrap();
    y.insert("a", &20).unwrap();
    sessions.commit(&mut x).await.unwrap();
    sessions.commit(&mut y).await.unwrap();
    let stored = sessions.load(&cookie).await.unwrap().unwrap();
    assert_eq!(stored.get::<i32>("a").unwrap(), Some(20));
    assert_eq!(stored.get::<i32>("b").unwrap(), Some(2));

    // Many at once, each incrementing its own key: nothing lost.
    let mut tasks = Vec::new();
    for k in 0..16 {
        let (sessions, cookie) = (sessions.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = sessions.load(&cookie).await.unwrap().unwrap();
            s.insert(format!("k{k}"), &k).unwrap();
            sessions.commit(&mut s).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Committed::Saved);
    }
    let stored = sessions.load(&cookie).await.unwrap().unwrap();
    for k in 0..16 {
        assert_eq!(stored.get::<i32>(&format!("k{k}")).unwrap(), Some(k));
    }
}

#[tokio::test]
async fn a_late_commit_never_brings_back_a_session_ended_or_rotated_meanwhile() {
    let clock = clock();
    let store = memory(&clock);
    let sessions = Sessions::new(store.clone()).expiry(Expiry::OnInactivity(IDLE));
    for ending in ["logout", "login"] {
        let mut session = sessions.start();
        session.insert("user", &"alice").unwrap();
        sessions.commit(&mut session).await.unwrap();
        let old = session.id().unwrap();
        // A slow request loaded the session before the logout or login.
        let mut slow = sessions.load(&old.to_string()).await.unwrap().unwrap();
        let mut fast = sessions.load(&old.to_string()).await.unwrap().unwrap();
        if ending == "logout" {
            sessions.end(&mut fast).await.unwrap();
            assert_eq!(sessions.commit(&mut fast).await.unwrap(), Committed::Nothing);
        } else {
            assert!(sessions.rotate(&mut fast).await.unwrap());
            assert_ne!(fast.id(), Some(old));
        }
        slow.insert("cart", &3).unwrap();
        assert_eq!(sessions.commit(&mut slow).await.unwrap(), Committed::Gone, "{ending}");
        assert!(
            store.load(&old).await.unwrap().is_none(),
            "{ending}: the old id stays gone"
        );
        // An unchanged slow request (a touch) does not revive it either.
        let mut idle = slow.clone();
        assert_eq!(sessions.commit(&mut idle).await.unwrap(), Committed::Nothing);
        assert!(store.load(&old).await.unwrap().is_none(), "{ending}");
    }
}

#[tokio::test]
async fn rotate_keeps_the_data_under_a_fresh_id() {
    let clock = clock();
    let sessions = Sessions::new(memory(&clock)).expiry(Expiry::OnInactivity(IDLE));
    let mut session = sessions.start();
    session.insert("cart", &[1, 2]).unwrap();
    sessions.commit(&mut session).await.unwrap();
    let old = session.id().unwrap();
    assert!(sessions.rotate(&mut session).await.unwrap());
    session.insert("user", &"alice").unwrap();
    assert_eq!(sessions.commit(&mut session).await.unwrap(), Committed::Saved);
    let new = session.id().unwrap();
    assert_ne!(new, old);
    assert!(sessions.load(&old.to_string()).await.unwrap().is_none());
    let moved = sessions.load(&new.to_string()).await.unwrap().unwrap();
    assert_eq!(moved.get::<Vec<i32>>("cart").unwrap(), Some(vec![1, 2]));
    assert_eq!(moved.get::<String>("user").unwrap().as_deref(), Some("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_is_a_fresh_session_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = FileStore::builder(tmp.path()).clock(clock.shared()).open().unwrap();
    let sessions = Sessions::new(store.clone()).expiry(Expiry::OnInactivity(IDLE));
    let mut session = sessions.start();
    session.insert("count", &7).unwrap();
    sessions.commit(&mut session).await.unwrap();
    let mut other = sessions.start();
    other.insert("count", &1).unwrap();
    sessions.commit(&mut other).await.unwrap();
    let id = session.id().unwrap();
    std::fs::write(store.path_of(&id), b"\x01 damaged by a disk").unwrap();
    assert!(store.load(&id).await.unwrap_err().is_decode());
    // To the visitor the damaged session is just gone.
    let mut fresh = sessions.load_or_start(Some(&id.to_string())).await.unwrap();
    assert!(fresh.is_new());
    fresh.insert("count", &1).unwrap();
    assert_eq!(sessions.commit(&mut fresh).await.unwrap(), Committed::Created);
    assert_ne!(fresh.id(), Some(id));
    // A request that loaded it before the damage does not write over it.
    session.insert("count", &8).unwrap();
    assert_eq!(sessions.commit(&mut session).await.unwrap(), Committed::Gone);
    // Other visitors are untouched.
    let other = sessions.load(&other.id().unwrap().to_string()).await.unwrap().unwrap();
    assert_eq!(other.get::<i32>("count").unwrap(), Some(1));
}

#[tokio::test]
async fn values_that_are_not_json_are_data_errors_and_change_nothing() {
    let clock = clock();
    let sessions = Sessions::new(memory(&clock));
    let mut session = sessions.start();
    let mut bad = std::collections::HashMap::new();
    bad.insert(vec![1u8], 1); // a map with non-string keys is no JSON object
    let err = session.insert("m", &bad).unwrap_err();
    assert!(matches!(err, Error::Data(_)) && !err.is_transient(), "{err:?}");
    assert!(!session.is_changed());
    session.insert("n", &"text").unwrap();
    assert!(matches!(session.get::<u32>("n"), Err(Error::Data(_))));
}

#[tokio::test]
async fn log_out_everywhere_and_other_devices_through_the_handle() {
    let clock = clock();
    let store = memory(&clock);
    let sessions = Sessions::new(store.clone()).expiry(Expiry::OnInactivity(IDLE));
    // Alice logs in on three devices; Bob on one.
    let mut devices = Vec::new();
    for user in ["alice", "alice", "alice", "bob"] {
        let mut s = sessions.start();
        s.insert("cart", &0).unwrap();
        sessions.commit(&mut s).await.unwrap();
        assert!(sessions.rotate(&mut s).await.unwrap());
        s.set_owner(Some(user.to_owned()));
        assert_eq!(
            sessions.commit(&mut s).await.unwrap(),
            Committed::Saved,
            "the owner is a change"
        );
        devices.push(s);
    }
    let listed = sessions.owner_sessions("alice").await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|r| r.owner.as_deref() == Some("alice")));
    // A concurrent request of one device that changed data keeps the owner.
    let mut other = sessions
        .load(&devices[0].id().unwrap().to_string())
        .await
        .unwrap()
        .unwrap();
    other.insert("cart", &2).unwrap();
    sessions.commit(&mut other).await.unwrap();
    assert_eq!(sessions.owner_sessions("alice").await.unwrap().len(), 3);

    let current = &devices[1];
    assert_eq!(sessions.log_out_other_sessions(current).await.unwrap(), 2);
    let left = sessions.owner_sessions("alice").await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.handle).collect::<Vec<_>>(),
        vec![sessions.listing_handle(&current.id().unwrap())]
    );
    assert!(
        sessions
            .load(&devices[0].id().unwrap().to_string())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(sessions.log_out_everywhere("alice").await.unwrap(), 1);
    assert!(sessions.owner_sessions("alice").await.unwrap().is_empty());
    assert_eq!(
        sessions.owner_sessions("bob").await.unwrap().len(),
        1,
        "bob is untouched"
    );
    // A session without an owner has no other devices.
    assert_eq!(sessions.log_out_other_sessions(&sessions.start()).await.unwrap(), 0);
}

/// A store that keeps no owner index: the memory store, its owner methods
/// answering `Error::Unsupported`.
#[derive(Debug)]
struct NoIndex(MemoryStore);

#[session_store_core::async_trait]
impl SessionStore for NoIndex {
    fn clock(&self) -> session_store_core::SharedClock {
        self.0.clock()
    }
    async fn create(&self, r: &session_store_core::Record) -> session_store_core::Result<u64> {
        self.0.create(r).await
    }
    async fn load(
        &self,
        id: &session_store_core::SessionId,
    ) -> session_store_core::Result<Option<session_store_core::Record>> {
        self.0.load(id).await
    }
    async fn save(&self, r: &session_store_core::Record) -> session_store_core::Result<u64> {
        self.0.save(r).await
    }
    async fn save_if_version(&self, r: &session_store_core::Record) -> session_store_core::Result<u64> {
        self.0.save_if_version(r).await
    }
    async fn touch(&self, id: &session_store_core::SessionId, at: Timestamp) -> session_store_core::Result<bool> {
        self.0.touch(id, at).await
    }
    async fn delete(&self, id: &session_store_core::SessionId) -> session_store_core::Result<()> {
        self.0.delete(id).await
    }
    async fn rotate(
        &self,
        old: &session_store_core::SessionId,
        new: &session_store_core::SessionId,
    ) -> session_store_core::Result<bool> {
        self.0.rotate(old, new).await
    }
    async fn purge_expired(&self) -> session_store_core::Result<u64> {
        self.0.purge_expired().await
    }
    async fn ids(&self) -> session_store_core::Result<Vec<session_store_core::ListingHandle>> {
        self.0.ids().await
    }
    async fn clear(&self) -> session_store_core::Result<()> {
        self.0.clear().await
    }
    fn listing_handle(&self, id: &session_store_core::SessionId) -> session_store_core::ListingHandle {
        self.0.listing_handle(id)
    }
    async fn load_listed(
        &self,
        handle: &session_store_core::ListingHandle,
    ) -> session_store_core::Result<Option<session_store_core::Record>> {
        self.0.load_listed(handle).await
    }
    async fn delete_listed(&self, handle: &session_store_core::ListingHandle) -> session_store_core::Result<()> {
        self.0.delete_listed(handle).await
    }
    async fn owner_sessions(&self, _owner: &str) -> session_store_core::Result<Vec<session_store_core::ListingHandle>> {
        Err(session_store_core::Error::Unsupported("an owner index"))
    }
    async fn delete_owner_sessions(
        &self,
        _owner: &str,
        _keep: Option<&session_store_core::SessionId>,
    ) -> session_store_core::Result<u64> {
        Err(session_store_core::Error::Unsupported("an owner index"))
    }
}

#[tokio::test]
async fn a_store_without_an_owner_index_says_so() {
    let clock = clock();
    let sessions = Sessions::new(NoIndex(memory(&clock)));
    let err = sessions.log_out_everywhere("alice").await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)) && !err.is_transient(), "{err:?}");
    let err = sessions.owner_sessions("alice").await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    // A cap per owner cannot be kept there: the login still stands.
    let sessions = sessions.max_sessions_per_owner(1);
    for _ in 0..2 {
        let mut s = sessions.start();
        s.set_owner(Some("alice".into()));
        assert_eq!(sessions.commit(&mut s).await.unwrap(), Committed::Created);
    }
    assert_eq!(sessions.store().count().await.unwrap(), 2);
}

/// Logs `user` in on a new device: a session with data, then (as an app's
/// login handler does) a rotate and the owner in the next commit.
async fn log_in<S: SessionStore>(sessions: &Sessions<S>, user: &str) -> session_store_core::Session {
    let mut s = sessions.start();
    s.insert("cart", &0).unwrap();
    sessions.commit(&mut s).await.unwrap();
    assert!(sessions.rotate(&mut s).await.unwrap());
    s.set_owner(Some(user.to_owned()));
    sessions.commit(&mut s).await.unwrap();
    s
}

#[tokio::test]
async fn a_login_past_the_cap_ends_the_owners_oldest_session() {
    let clock = clock();
    let store = memory(&clock);
    let sessions = Sessions::new(store.clone())
        .expiry(Expiry::OnInactivity(IDLE))
        .max_sessions_per_owner(2);
    let bob = log_in(&sessions, "bob").await;
    let mut alice = Vec::new();
    for _ in 0..2 {
        alice.push(log_in(&sessions, "alice").await);
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(sessions.owner_sessions("alice").await.unwrap().len(), 2);
    // The third login ends the first (the oldest), not the second.
    alice.push(log_in(&sessions, "alice").await);
    let mut left: Vec<_> = sessions
        .owner_sessions("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.handle.stored())
        .collect();
    left.sort();
    let mut want = vec![alice[1].id().unwrap(), alice[2].id().unwrap()];
    want.sort();
    assert_eq!(left, want);
    assert!(store.load(&alice[0].id().unwrap()).await.unwrap().is_none());
    // Through update too; other owners, and sessions without one, untouched.
    let mut s = sessions.start();
    s.insert("cart", &0).unwrap();
    sessions.commit(&mut s).await.unwrap();
    let (_, committed) = sessions
        .update(&mut s, |s| {
            s.set_owner(Some("alice".into()));
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(committed, Committed::Saved);
    assert_eq!(sessions.owner_sessions("alice").await.unwrap().len(), 2);
    assert!(store.load(&alice[1].id().unwrap()).await.unwrap().is_none());
    assert!(store.load(&bob.id().unwrap()).await.unwrap().is_some());
    let anonymous = {
        let mut a = sessions.start();
        a.insert("n", &1).unwrap();
        sessions.commit(&mut a).await.unwrap();
        a
    };
    // A save that changes data only (no login) never trims.
    let mut again = sessions.load(&s.id().unwrap().to_string()).await.unwrap().unwrap();
    again.insert("cart", &1).unwrap();
    sessions.commit(&mut again).await.unwrap();
    assert_eq!(sessions.owner_sessions("alice").await.unwrap().len(), 2);
    assert!(store.load(&anonymous.id().unwrap()).await.unwrap().is_some());
}

#[tokio::test]
async fn update_runs_again_on_fresh_data_after_a_conflict() {
    let clock = clock();
    let store = memory(&clock);
    let sessions = Sessions::new(store.clone()).expiry(Expiry::OnInactivity(IDLE));
    let mut session = sessions.start();
    session.insert("count", &1u64).unwrap();
    sessions.commit(&mut session).await.unwrap();
    let cookie = session.id().unwrap().to_string();
    // Both load version 1; the other request counts first.
    let mut slow = sessions.load(&cookie).await.unwrap().unwrap();
    let mut fast = sessions.load(&cookie).await.unwrap().unwrap();
    let increment = |s: &mut session_store_core::Session| {
        let n = s.get::<u64>("count")?.unwrap_or(0) + 1;
        s.insert("count", &n)?;
        Ok(n)
    };
    assert_eq!(
        sessions.update(&mut fast, increment).await.unwrap(),
        (2, Committed::Saved)
    );
    let mut runs = 0;
    let (n, committed) = sessions
        .update(&mut slow, |s| {
            runs += 1;
            increment(s)
        })
        .await
        .unwrap();
    assert_eq!(
        (n, committed, runs),
        (3, Committed::Saved, 2),
        "rerun on the fresh data"
    );
    assert_eq!(slow.record().version, 3);
    assert!(!slow.is_changed(), "committed at once");
    let stored = store.load(&slow.id().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.data.get::<u64>("count").unwrap(), Some(3));
    // The request's own commit afterwards has nothing to write.
    assert_eq!(sessions.commit(&mut slow).await.unwrap(), Committed::Nothing);
    assert_eq!(store.load(&slow.id().unwrap()).await.unwrap().unwrap().version, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_counter_lose_nothing() {
    let clock = clock();
    let sessions = Sessions::new(memory(&clock))
        .expiry(Expiry::OnInactivity(IDLE))
        // 32 tasks: each attempt lost is another task's success, so 32 attempts always suffice.
        .commit_attempts(32);
    let mut session = sessions.start();
    session.insert("count", &0u64).unwrap();
    sessions.commit(&mut session).await.unwrap();
    let cookie = session.id().unwrap().to_string();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (sessions, cookie, barrier) = (sessions.clone(), cookie.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = sessions.load(&cookie).await.unwrap().unwrap();
            barrier.wait().await; // all loaded the same version
            sessions
                .update(&mut s, |s| {
                    let n = s.get::<u64>("count")?.unwrap_or(0) + 1;
                    s.insert("count", &n)?;
                    Ok(n)
                })
                .await
                .unwrap()
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        let (n, committed) = t.await.unwrap();
        assert_eq!(committed, Committed::Saved);
        seen.push(n);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=32).collect::<Vec<u64>>(), "each count handed out once");
    let stored = sessions.load(&cookie).await.unwrap().unwrap();
    assert_eq!(stored.get::<u64>("count").unwrap(), Some(32));
    assert_eq!(stored.record().version, 33);
}

#[tokio::test]
async fn update_never_writes_back_a_session_ended_or_rotated_meanwhile() {
    let clock = clock();
    let store = memory(&clock);
    let sessions = Sessions::new(store.clone()).expiry(Expiry::OnInactivity(IDLE));
    for ending in ["logout", "login"] {
        let mut session = sessions.start();
        session.insert("count", &1u64).unwrap();
        sessions.commit(&mut session).await.unwrap();
        let old = session.id().unwrap();
        let mut slow = sessions.load(&old.to_string()).await.unwrap().unwrap();
        let mut fast = sessions.load(&old.to_string()).await.unwrap().unwrap();
        if ending == "logout" {
            sessions.end(&mut fast).await.unwrap();
        } else {
            assert!(sessions.rotate(&mut fast).await.unwrap());
        }
        let (n, committed) = sessions
            .update(&mut slow, |s| {
                let n = s.get::<u64>("count")?.unwrap_or(0) + 1;
                s.insert("count", &n)?;
                Ok(n)
            })
            .await
            .unwrap();
        assert_eq!((n, committed), (2, Committed::Gone), "{ending}");
        assert!(
            store.load(&old).await.unwrap().is_none(),
            "{ending}: the old id stays gone"
        );
        assert_eq!(
            sessions.commit(&mut slow).await.unwrap(),
            Committed::Nothing,
            "{ending}"
        );
        assert!(store.load(&old).await.unwrap().is_none(), "{ending}");
        if let Some(new) = fast.id() {
            let moved = store.load(&new).await.unwrap().unwrap();
            assert_eq!(
                moved.data.get::<u64>("count").unwrap(),
                Some(1),
                "the rotated session is untouched"
            );
        }
    }
    // On a session ended in this request: the closure runs, nothing is written.
    let mut session = sessions.start();
    session.insert("k", &1).unwrap();
    sessions.commit(&mut session).await.unwrap();
    let id = session.id().unwrap();
    sessions.end(&mut session).await.unwrap();
    let (_, committed) = sessions.update(&mut session, |s| s.insert("k", &2)).await.unwrap();
    assert_eq!(committed, Committed::Gone);
    assert!(store.load(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn update_writes_pending_changes_and_a_failing_closure_writes_nothing() {
    let clock = clock();
    let store = memory(&clock);
    let sessions = Sessions::new(store.clone()).expiry(Expiry::OnInactivity(IDLE));
    // A new session: created by the update.
    let mut session = sessions.start();
    let (_, committed) = sessions.update(&mut session, |s| s.insert("a", &1)).await.unwrap();
    assert_eq!(committed, Committed::Created);
    let id = session.id().unwrap();
    // An empty new session stays unstored.
    let mut empty = sessions.start();
    assert_eq!(
        sessions.update(&mut empty, |s| s.get::<i32>("a")).await.unwrap(),
        (None, Committed::Nothing)
    );
    assert_eq!(store.count().await.unwrap(), 1);

    // A pending change of this request goes with the update, also after a conflict.
    let mut slow = sessions.load(&id.to_string()).await.unwrap().unwrap();
    let mut other = sessions.load(&id.to_string()).await.unwrap().unwrap();
    other.insert("b", &2).unwrap();
    sessions.commit(&mut other).await.unwrap();
    slow.insert("pending", &"yes").unwrap();
    slow.remove("gone-key");
    let (seen, committed) = sessions
        .update(&mut slow, |s| {
            let b = s.get::<i32>("b")?;
            s.insert("c", &3)?;
            Ok(b)
        })
        .await
        .unwrap();
    assert_eq!(
        (seen, committed),
        (Some(2), Committed::Saved),
        "the rerun saw the other request's key"
    );
    let stored = store.load(&id).await.unwrap().unwrap();
    for (key, value) in [("a", "1"), ("b", "2"), ("c", "3"), ("pending", "\"yes\"")] {
        assert_eq!(stored.data.get_raw(key), Some(value), "{key}");
    }
    let version = stored.version;

    // A closure that fails: its error, nothing written, the session as before.
    let err = sessions
        .update(&mut slow, |s| {
            s.insert("d", &4)?;
            s.get::<u32>("pending") // a string, not a number
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Data(_)), "{err:?}");
    assert!(!slow.is_changed() && slow.get::<i32>("d").unwrap().is_none());
    assert_eq!(store.load(&id).await.unwrap().unwrap().version, version);
    // A closure that changes nothing writes nothing.
    assert_eq!(
        sessions.update(&mut slow, |s| s.get::<i32>("a")).await.unwrap(),
        (Some(1), Committed::Nothing)
    );
    assert_eq!(store.load(&id).await.unwrap().unwrap().version, version);
}

#[tokio::test]
async fn read_only_commits_touch_at_most_once_per_throttle_window() {
    let clock = clock();
    let store = memory(&clock);
    // Idle 60 s: the default throttle window is 6 s.
    let sessions = Sessions::new(store.clone()).expiry(Expiry::OnInactivity(IDLE));
    let mut session = sessions.start();
    session.insert("k", &1).unwrap();
    sessions.commit(&mut session).await.unwrap();
    let id = session.id().unwrap();
    let created_deadline = session.expires_at();
    for _ in 0..5 {
        clock.advance(Duration::from_secs(1));
        let mut s = sessions.load(&id.to_string()).await.unwrap().unwrap();
        assert_eq!(
            sessions.commit(&mut s).await.unwrap(),
            Committed::Nothing,
            "inside the window"
        );
    }
    assert_eq!(
        store.load(&id).await.unwrap().unwrap().expires_at,
        created_deadline,
        "no write"
    );
    clock.advance(Duration::from_secs(1)); // 6 s since the last write: the window is over
    let mut s = sessions.load(&id.to_string()).await.unwrap().unwrap();
    assert_eq!(sessions.commit(&mut s).await.unwrap(), Committed::Touched);
    let touched = store.load(&id).await.unwrap().unwrap();
    assert_eq!(touched.expires_at, clock.now() + IDLE);
    assert_eq!(touched.version, 1, "a touch rewrites no data");
    // The window starts again from the touch.
    clock.advance(Duration::from_secs(5));
    let mut s = sessions.load(&id.to_string()).await.unwrap().unwrap();
    assert_eq!(sessions.commit(&mut s).await.unwrap(), Committed::Nothing);
    // A changed session is always saved, with a fresh deadline.
    let mut s = sessions.load(&id.to_string()).await.unwrap().unwrap();
    s.insert("k", &2).unwrap();
    assert_eq!(sessions.commit(&mut s).await.unwrap(), Committed::Saved);
    assert_eq!(store.load(&id).await.unwrap().unwrap().expires_at, clock.now() + IDLE);
    // The explicit touch is never throttled.
    clock.advance(Duration::from_secs(1));
    let mut s = sessions.load(&id.to_string()).await.unwrap().unwrap();
    assert!(sessions.touch(&mut s).await.unwrap());
    assert_eq!(store.load(&id).await.unwrap().unwrap().expires_at, clock.now() + IDLE);

    // Throttling off: every commit that moves the deadline touches.
    let eager = Sessions::new(store.clone())
        .expiry(Expiry::OnInactivity(IDLE))
        .touch_throttle(0.0);
    for _ in 0..3 {
        clock.advance(Duration::from_millis(10));
        let mut s = eager.load(&id.to_string()).await.unwrap().unwrap();
        assert_eq!(eager.commit(&mut s).await.unwrap(), Committed::Touched);
    }
    // A larger fraction, a larger window (a half of 60 s); NaN and huge values are clamped.
    let lazy = Sessions::new(store.clone())
        .expiry(Expiry::OnInactivity(IDLE))
        .touch_throttle(0.5);
    clock.advance(Duration::from_secs(29));
    let mut s = lazy.load(&id.to_string()).await.unwrap().unwrap();
    assert_eq!(lazy.commit(&mut s).await.unwrap(), Committed::Nothing);
    clock.advance(Duration::from_secs(1));
    let mut s = lazy.load(&id.to_string()).await.unwrap().unwrap();
    assert_eq!(lazy.commit(&mut s).await.unwrap(), Committed::Touched);
    for odd in [f64::NAN, -1.0, f64::INFINITY] {
        let odd = Sessions::new(store.clone())
            .expiry(Expiry::OnInactivity(Duration::MAX))
            .touch_throttle(odd);
        let mut s = odd.load(&id.to_string()).await.unwrap().unwrap();
        odd.commit(&mut s).await.unwrap(); // no panic on any of them
    }
}
