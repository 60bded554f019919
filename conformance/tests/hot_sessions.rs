//! A hot session: one visitor's many concurrent requests committing through
//! the session handle, on the memory store and on real files. Every commit
//! succeeds with the default number of attempts and no count is lost; two
//! handles on one store (two processes) back off and both finish; a commit
//! that loses every attempt says so with `Error::Contended`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use session_store_core::{
    Committed, Error, Expiry, Record, Result, SessionId, SessionStore, Sessions, SharedClock, Timestamp, async_trait,
};
use session_store_file::FileStore;
use session_store_memory::MemoryStore;

const IDLE: Duration = Duration::from_secs(600);

/// One more visit, as a read-modify-write: what the counter app does.
fn increment(s: &mut session_store_core::Session) -> Result<u64> {
    let n = s.get::<u64>("count")?.unwrap_or(0) + 1;
    s.insert("count", &n)?;
    Ok(n)
}

/// A stored session holding `count = 0`; its cookie.
async fn hot_session<S: SessionStore>(sessions: &Sessions<S>) -> String {
    let mut session = sessions.start();
    session.insert("count", &0u64).unwrap();
    assert_eq!(sessions.commit(&mut session).await.unwrap(), Committed::Created);
    session.id().unwrap().to_string()
}

/// `tasks` requests of one visitor at once, each loading the session and
/// then counting with `update`, over as many handles as given (each handle
/// stands for one process). Returns the counts they answered, sorted.
async fn count_concurrently<S: SessionStore + Clone + 'static>(
    handles: &[Sessions<S>],
    cookie: &str,
    tasks: usize,
) -> Vec<u64> {
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let mut running = Vec::new();
    for i in 0..tasks {
        let sessions = handles[i % handles.len()].clone();
        let (cookie, barrier) = (cookie.to_owned(), Arc::clone(&barrier));
        running.push(tokio::spawn(async move {
            let mut session = sessions.load(&cookie).await.unwrap().unwrap();
            barrier.wait().await; // all loaded the same version
            let (n, committed) = sessions
                .update(&mut session, increment)
                .await
                .unwrap_or_else(|e| panic!("a request of the hot session failed: {e}"));
            assert_eq!(committed, Committed::Saved);
            n
        }));
    }
    let mut counts = Vec::new();
    for task in running {
        counts.push(task.await.expect("no panic"));
    }
    counts.sort_unstable();
    counts
}

async fn every_request_counts_once<S: SessionStore + Clone + 'static>(sessions: Sessions<S>, tasks: usize) {
    let cookie = hot_session(&sessions).await;
    let counts = count_concurrently(std::slice::from_ref(&sessions), &cookie, tasks).await;
    assert_eq!(
        counts,
        (1..=tasks as u64).collect::<Vec<_>>(),
        "each count handed out once"
    );
    let stored = sessions.load(&cookie).await.unwrap().unwrap();
    assert_eq!(stored.get::<u64>("count").unwrap(), Some(tasks as u64));
    assert_eq!(stored.record().version, tasks as u64 + 1, "one write per request");
}

fn memory() -> Sessions<MemoryStore> {
    Sessions::new(MemoryStore::new()).expiry(Expiry::OnInactivity(IDLE))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_session_on_the_memory_store_commits_every_request() {
    // The default attempts (8), however many requests run at once.
    for tasks in [16, 64, 256] {
        every_request_counts_once(memory(), tasks).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_session_on_real_files_commits_every_request() {
    for tasks in [16, 64, 256] {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path()).open().unwrap();
        every_request_counts_once(Sessions::new(store).expiry(Expiry::OnInactivity(IDLE)), tasks).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_commits_of_a_hot_session_all_succeed() {
    // Each request sets a key of its own and commits: no request fails,
    // and every key survives (a conflict replays only what a request
    // changed).
    let sessions = memory();
    let cookie = hot_session(&sessions).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut running = Vec::new();
    for i in 0..64 {
        let (sessions, cookie, barrier) = (sessions.clone(), cookie.clone(), Arc::clone(&barrier));
        running.push(tokio::spawn(async move {
            let mut session = sessions.load(&cookie).await.unwrap().unwrap();
            session.insert(format!("k{i}"), &i).unwrap();
            barrier.wait().await;
            sessions.commit(&mut session).await.unwrap()
        }));
    }
    for task in running {
        assert_eq!(task.await.unwrap(), Committed::Saved);
    }
    let stored = sessions.load(&cookie).await.unwrap().unwrap();
    for i in 0..64 {
        assert_eq!(stored.get::<i32>(&format!("k{i}")).unwrap(), Some(i), "k{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_directory_back_off_and_both_finish() {
    // Two handles with two store objects on one directory: to each other
    // they are other processes, whose writes only the version check sees.
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = FileStore::builder(dir.path()).open().unwrap();
        Sessions::new(store).expiry(Expiry::OnInactivity(IDLE))
    };
    let handles = [open(), open()];
    let cookie = hot_session(&handles[0]).await;
    let counts = count_concurrently(&handles, &cookie, 64).await;
    assert_eq!(counts, (1..=64).collect::<Vec<u64>>(), "each count handed out once");
    let stored = handles[1].load(&cookie).await.unwrap().unwrap();
    assert_eq!(stored.get::<u64>("count").unwrap(), Some(64));
}

/// The memory store, where another writer (another process) saves the
/// session just before each of this handle's conditional saves, so every
/// one of them loses.
#[derive(Debug, Clone)]
struct AlwaysOvertaken {
    inner: MemoryStore,
    conditional_saves: Arc<AtomicUsize>,
}

#[async_trait]
impl SessionStore for AlwaysOvertaken {
    fn clock(&self) -> SharedClock {
        self.inner.clock()
    }
    async fn create(&self, r: &Record) -> Result<u64> {
        self.inner.create(r).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        self.inner.load(id).await
    }
    async fn save(&self, r: &Record) -> Result<u64> {
        self.inner.save(r).await
    }
    async fn save_if_version(&self, r: &Record) -> Result<u64> {
        self.conditional_saves.fetch_add(1, Ordering::SeqCst);
        if let Some(mut theirs) = self.inner.load(&r.id).await? {
            theirs.data.insert("writer", &"the other process")?;
            self.inner.save(&theirs).await?;
        }
        self.inner.save_if_version(r).await
    }
    async fn touch(&self, id: &SessionId, at: Timestamp) -> Result<bool> {
        self.inner.touch(id, at).await
    }
    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.inner.delete(id).await
    }
    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        self.inner.rotate(old, new).await
    }
    async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge_expired().await
    }
    async fn ids(&self) -> Result<Vec<session_store_core::ListingHandle>> {
        self.inner.ids().await
    }
    async fn clear(&self) -> Result<()> {
        self.inner.clear().await
    }
    fn listing_handle(&self, id: &session_store_core::SessionId) -> session_store_core::ListingHandle {
        self.inner.listing_handle(id)
    }
    async fn load_listed(
        &self,
        handle: &session_store_core::ListingHandle,
    ) -> session_store_core::Result<Option<session_store_core::Record>> {
        self.inner.load_listed(handle).await
    }
    async fn delete_listed(&self, handle: &session_store_core::ListingHandle) -> session_store_core::Result<()> {
        self.inner.delete_listed(handle).await
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
async fn a_commit_that_loses_every_attempt_says_so_and_writes_nothing() {
    let store = AlwaysOvertaken {
        inner: MemoryStore::new(),
        conditional_saves: Arc::new(AtomicUsize::new(0)),
    };
    let sessions = Sessions::new(store.clone()).commit_attempts(3);
    let cookie = hot_session(&sessions).await;
    for with_update in [false, true] {
        store.conditional_saves.store(0, Ordering::SeqCst);
        let mut session = sessions.load(&cookie).await.unwrap().unwrap();
        let error = if with_update {
            sessions.update(&mut session, increment).await.unwrap_err()
        } else {
            session.insert("count", &99u64).unwrap();
            sessions.commit(&mut session).await.unwrap_err()
        };
        let id = cookie.parse::<SessionId>().unwrap();
        assert!(
            matches!(error, Error::Contended { id: i, attempts: 3 } if i == id),
            "update {with_update}: {error:?}"
        );
        assert!(error.is_transient(), "a hot session is worth retrying later");
        assert!(!error.is_conflict(), "not a single lost race");
        assert!(!error.to_string().contains(&cookie), "only the fingerprint: {error}");
        assert_eq!(
            store.conditional_saves.load(Ordering::SeqCst),
            3,
            "exactly the attempts"
        );
        let stored = sessions.load(&cookie).await.unwrap().unwrap();
        assert_eq!(stored.get::<u64>("count").unwrap(), Some(0), "nothing of ours written");
        assert_eq!(
            stored.get::<String>("writer").unwrap().as_deref(),
            Some("the other process")
        );
    }
    // The record-level replace (the adapters' write) gives up the same way.
    store.conditional_saves.store(0, Ordering::SeqCst);
    let id = cookie.parse::<SessionId>().unwrap();
    let deadline = sessions.clock().now() + IDLE;
    let error = sessions
        .replace_record(&id, session_store_core::SessionData::new(), deadline)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Contended { attempts: 3, .. }), "{error:?}");
    assert_eq!(store.conditional_saves.load(Ordering::SeqCst), 3);
}
