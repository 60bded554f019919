//! End to end: an axum app behind `SessionLayer`, served on a free port and
//! driven by a real HTTP client, on every backend (memory, file, SQLite,
//! Redis). Redis needs `store-redis/scripts/with-redis`, which exports
//! `SESSION_STORE_REDIS_URL`; without it the Redis tests say so and skip,
//! unless `SESSION_STORE_STRICT=1`, where they fail.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use common::{Backend, Browser, Counting, Kind, serve};
use reqwest::StatusCode;
use session_store_core::{Expiry, ManualClock, SessionId, SessionStore};
use session_store_tower::{Session, SessionError, SessionLayer};
use tokio::sync::{Barrier, Notify};

/// How long a test waits for another request before calling it stuck.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the test app's handlers share with the test.
#[derive(Clone)]
struct Shared {
    /// Two requests meet here after both loaded the session.
    pair: Arc<Barrier>,
    /// A slow request says it loaded the session...
    loaded: Arc<Notify>,
    /// ...and waits for this before it changes it.
    go: Arc<Notify>,
}

impl Shared {
    fn new() -> Self {
        Self {
            pair: Arc::new(Barrier::new(2)),
            loaded: Arc::new(Notify::new()),
            go: Arc::new(Notify::new()),
        }
    }
}

/// `GET /count`: one more, with `update`.
async fn count(session: Session) -> Result<String, SessionError> {
    let n = session
        .update(|s| {
            let n = s.get::<u64>("count")?.unwrap_or(0) + 1;
            s.insert("count", &n)?;
            Ok(n)
        })
        .await?;
    Ok(n.to_string())
}

/// `GET /get/{key}`: the value, read only.
async fn read(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    Ok(session
        .get::<serde_json::Value>(&key)
        .await?
        .map_or_else(|| "none".to_owned(), |v| v.to_string()))
}

/// `POST /pair/{key}`: loads, meets the other request of the pair, sets `key`.
async fn pair(State(shared): State<Shared>, session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    session.get::<u64>("count").await?;
    tokio::time::timeout(PATIENCE, shared.pair.wait())
        .await
        .expect("the other request of the pair came");
    session.insert(key, 1).await?;
    Ok("ok".to_owned())
}

/// `POST /slow/{key}`: loads, says so, waits for the go, sets `key`.
async fn slow(State(shared): State<Shared>, session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    session.get::<u64>("count").await?;
    shared.loaded.notify_one();
    tokio::time::timeout(PATIENCE, shared.go.notified())
        .await
        .expect("the test let the slow request go on");
    session.insert(key, "late").await?;
    Ok("ok".to_owned())
}

async fn login(session: Session) -> Result<&'static str, SessionError> {
    session.rotate().await?;
    Ok("logged in")
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.end().await?;
    Ok("logged out")
}

/// `GET /big`: a value over the store's limit (set by the test): the commit fails.
async fn big(session: Session) -> Result<&'static str, SessionError> {
    session.insert("big", "x".repeat(4096)).await?;
    Ok("the handler answered")
}

/// `GET /fail`: sets a key, then answers a server error.
async fn fail(session: Session) -> Result<(StatusCode, &'static str), SessionError> {
    session.insert("half-way", true).await?;
    Ok((StatusCode::INTERNAL_SERVER_ERROR, "failed"))
}

/// `GET /nothing`: never touches the session.
async fn nothing() -> &'static str {
    "nothing"
}

fn app(layer: SessionLayer, shared: Shared) -> Router {
    Router::new()
        .route("/count", get(count))
        .route("/get/{key}", get(read))
        .route("/pair/{key}", post(pair))
        .route("/slow/{key}", post(slow))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/big", get(big))
        .route("/nothing", get(nothing))
        .route("/fail", get(fail))
        .with_state(shared)
        .layer(layer)
}

/// A backend with a manual clock at the system time, or `None` (Redis without a server).
async fn open(kind: Kind, test: &str) -> Option<(Backend, ManualClock)> {
    let clock = ManualClock::at_system_time();
    let backend = Backend::open(kind, clock.shared(), &format!("{kind:?} {test}")).await?;
    Some((backend, clock))
}

/// The plain-HTTP layer of most tests (the tests' browser sends `Secure` cookies anyway).
fn layer(store: Arc<dyn SessionStore>) -> SessionLayer {
    SessionLayer::from_arc(store)
        .expiry(Expiry::OnInactivity(Duration::from_secs(600)))
        .secure(false)
}

/// The keys of the stored session `id`.
async fn stored_keys(store: &dyn SessionStore, id: &SessionId) -> Vec<String> {
    store
        .load(id)
        .await
        .expect("a load")
        .map(|r| r.data.iter().map(|(k, _)| k.to_owned()).collect())
        .unwrap_or_default()
}

const ROUNDS: usize = 25;

/// Rounds of two concurrent requests of one session, each setting its own
/// key after both loaded the session: how many keys are missing at the end.
async fn lost_keys(base: &str, store: &dyn SessionStore) -> usize {
    let browser = Browser::new(base);
    assert_eq!(browser.ok("/count").await, "1");
    let id = browser.id().expect("a session");
    for round in 0..ROUNDS {
        let (a, b) = (browser.clone(), browser.clone());
        let (pa, pb) = (format!("/pair/a{round}"), format!("/pair/b{round}"));
        let (x, y) = tokio::join!(a.post(&pa), b.post(&pb));
        assert_eq!((x.status, y.status), (StatusCode::OK, StatusCode::OK), "{x:?} {y:?}");
    }
    let keys = stored_keys(store, &id).await;
    (0..ROUNDS)
        .flat_map(|r| [format!("a{r}"), format!("b{r}")])
        .filter(|k| !keys.contains(k))
        .count()
}

async fn concurrent_requests_changing_different_keys_both_land(kind: Kind) {
    let Some((backend, _clock)) = open(kind, "concurrent keys").await else {
        return;
    };
    let base = serve(app(layer(backend.store.clone()), Shared::new())).await;
    let lost = lost_keys(&base, &*backend.store).await;

    // The same requests through tower-sessions and this workspace's adapter
    // on the same store: last writer wins, so each round loses a key.
    let tower = Router::new()
        .route("/count", get(tower_count))
        .route("/pair/{key}", post(tower_pair))
        .with_state(Shared::new())
        .layer(
            tower_sessions::SessionManagerLayer::new(session_store_tower_sessions::Adapter::from_arc(
                backend.store.clone(),
            ))
            .with_secure(false),
        );
    let lost_through_tower_sessions = lost_keys(&serve(tower).await, &*backend.store).await;
    println!(
        "{kind:?}: {ROUNDS} rounds of 2 concurrent requests, each setting its own key: \
         session-store-tower lost {lost} of {} keys, tower-sessions + adapter lost {lost_through_tower_sessions}",
        2 * ROUNDS
    );
    assert_eq!(lost, 0, "{kind:?}: the layer lost updates");
    assert!(
        lost_through_tower_sessions > 0,
        "{kind:?}: the same requests through tower-sessions lose updates (the test can tell)"
    );
    backend.cleanup().await;
}

async fn tower_count(session: tower_sessions::Session) -> String {
    let n = session.get::<u64>("count").await.expect("a load").unwrap_or(0) + 1;
    session.insert("count", n).await.expect("an insert");
    n.to_string()
}

async fn tower_pair(State(shared): State<Shared>, session: tower_sessions::Session, Path(key): Path<String>) -> String {
    session.get::<u64>("count").await.expect("a load");
    tokio::time::timeout(PATIENCE, shared.pair.wait())
        .await
        .expect("the other request of the pair came");
    session.insert(&key, 1).await.expect("an insert");
    "ok".to_owned()
}

async fn sixteen_concurrent_counts_on_one_cookie_lose_nothing(kind: Kind) {
    let Some((backend, _clock)) = open(kind, "16 concurrent counts").await else {
        return;
    };
    let base = serve(app(layer(backend.store.clone()).commit_attempts(16), Shared::new())).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.ok("/count").await, "1");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let browser = browser.clone();
        tasks.push(tokio::spawn(async move { browser.ok("/count").await }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("no panic").parse::<u64>().expect("a count"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (2..=17).collect::<Vec<u64>>(), "{kind:?}: every count once");
    assert_eq!(browser.ok("/get/count").await, "17");
    backend.cleanup().await;
}

async fn a_slow_request_never_brings_back_a_session_after_logout_or_login(kind: Kind) {
    let Some((backend, _clock)) = open(kind, "late writes").await else {
        return;
    };
    let shared = Shared::new();
    let base = serve(app(layer(backend.store.clone()), shared.clone())).await;
    for ending in ["/logout", "/login"] {
        let browser = Browser::new(&base);
        assert_eq!(browser.ok("/count").await, "1");
        let old = browser.id().expect("a session");
        let slow = {
            let browser = browser.clone();
            tokio::spawn(async move { browser.post("/slow/cart").await })
        };
        tokio::time::timeout(PATIENCE, shared.loaded.notified())
            .await
            .expect("the slow request loaded the session");
        let answer = browser.post(ending).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        shared.go.notify_one();
        let late = slow.await.expect("no panic");
        assert_eq!(late.status, StatusCode::OK, "{kind:?} {ending}: {late:?}");
        assert!(
            late.set_cookie.is_empty(),
            "{kind:?} {ending}: the late answer leaves the cookie alone: {late:?}"
        );
        assert!(
            backend.store.load(&old).await.unwrap().is_none(),
            "{kind:?} {ending}: the old id stays gone"
        );
        if ending == "/logout" {
            assert_eq!(browser.id(), None, "logout cleared the cookie");
            assert_eq!(
                backend.store.count().await.unwrap(),
                0,
                "{kind:?}: nothing was written back"
            );
        } else {
            let new = browser.id().expect("the login's cookie");
            assert_ne!(new, old);
            assert_eq!(
                stored_keys(&*backend.store, &new).await,
                ["count"],
                "{kind:?}: the late change is dropped"
            );
            assert_eq!(
                browser.ok("/count").await,
                "2",
                "{kind:?}: the session carries on under its new id"
            );
            backend.store.clear().await.unwrap();
        }
    }
    backend.cleanup().await;
}

async fn the_absolute_lifetime_ends_a_session_used_continuously(kind: Kind) {
    let Some((backend, clock)) = open(kind, "absolute lifetime").await else {
        return;
    };
    let policy = Expiry::IdleAndAbsolute {
        idle: Duration::from_secs(60),
        lifetime: Duration::from_secs(150),
    };
    let base = serve(app(layer(backend.store.clone()).expiry(policy), Shared::new())).await;
    let browser = Browser::new(&base);
    let mut counts = Vec::new();
    for _ in 0..10 {
        counts.push(browser.ok("/count").await.parse::<u64>().unwrap());
        clock.advance(Duration::from_secs(20)); // well inside the idle timeout
    }
    // Requests at 0, 20, ... 140 s count on; at 160 s the lifetime (150 s) is over.
    assert_eq!(counts, [1, 2, 3, 4, 5, 6, 7, 8, 1, 2], "{kind:?}");
    backend.cleanup().await;
}

async fn read_only_requests_within_the_throttle_window_write_nothing(kind: Kind) {
    let Some((backend, clock)) = open(kind, "touch throttle").await else {
        return;
    };
    let counting = Counting::new(backend.store.clone());
    // Idle 600 s: the default throttle window is 60 s.
    let base = serve(app(layer(counting.clone()), Shared::new())).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.ok("/count").await, "1");
    assert_eq!(counting.take(), (0, 1), "one create, no load (no cookie yet)");

    let nothing = browser.get("/nothing").await;
    assert!(nothing.set_cookie.is_empty());
    assert_eq!(
        counting.take(),
        (0, 0),
        "a request that does not use the session costs no store call"
    );

    for _ in 0..10 {
        clock.advance(Duration::from_secs(5));
        let answer = browser.get("/get/count").await;
        assert_eq!(answer.body, "1");
        assert!(
            answer.set_cookie.is_empty(),
            "{kind:?}: no new cookie inside the window"
        );
    }
    assert_eq!(
        counting.take(),
        (10, 0),
        "{kind:?}: ten loads and no write inside the window"
    );

    clock.advance(Duration::from_secs(10)); // 60 s after the last write
    let answer = browser.get("/get/count").await;
    assert_eq!(counting.take(), (1, 1), "{kind:?}: one touch once the window is over");
    assert_eq!(answer.set_cookie.len(), 1, "the cookie's Max-Age follows the deadline");
    assert!(answer.set_cookie[0].contains("Max-Age=600"), "{:?}", answer.set_cookie);
    let record = backend.store.load(&browser.id().unwrap()).await.unwrap().unwrap();
    assert_eq!(record.version, 1, "{kind:?}: a touch rewrites no data");
    backend.cleanup().await;
}

async fn a_damaged_record_gives_the_next_request_a_fresh_session(kind: Kind) {
    let Some((backend, _clock)) = open(kind, "damaged record").await else {
        return;
    };
    let log = common::log();
    let base = serve(app(layer(backend.store.clone()), Shared::new())).await;
    let (alice, bob) = (Browser::new(&base), Browser::new(&base));
    assert_eq!(alice.ok("/count").await, "1");
    assert_eq!(alice.ok("/count").await, "2");
    assert_eq!(bob.ok("/count").await, "1");
    let damaged = alice.id().unwrap();
    assert!(backend.damage(&damaged).await, "{kind:?} holds bytes to damage");
    assert!(backend.store.load(&damaged).await.unwrap_err().is_decode());

    assert_eq!(
        alice.ok("/count").await,
        "1",
        "{kind:?}: a fresh session, answered normally"
    );
    let fresh = alice.id().unwrap();
    assert_ne!(fresh, damaged, "under a fresh id");
    assert_eq!(alice.ok("/count").await, "2");
    assert_eq!(bob.ok("/count").await, "2", "another visitor is untouched");
    let fingerprint = damaged.fingerprint().to_string();
    assert!(
        !log.lines(&[&fingerprint, "WARN"]).is_empty(),
        "a warning with the fingerprint"
    );
    assert!(!log.holds(&damaged.to_string()), "the log never holds the id");
    backend.cleanup().await;
}

/// Every test above, once per backend.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Kind::Memory).await })*
        }
        mod file {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Kind::File).await })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Kind::Sqlite).await })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Kind::Redis).await })*
        }
    };
}

on_every_backend!(
    concurrent_requests_changing_different_keys_both_land,
    sixteen_concurrent_counts_on_one_cookie_lose_nothing,
    a_slow_request_never_brings_back_a_session_after_logout_or_login,
    the_absolute_lifetime_ends_a_session_used_continuously,
    read_only_requests_within_the_throttle_window_write_nothing,
);

// The memory store holds no bytes to damage.
mod damaged {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file() {
        super::a_damaged_record_gives_the_next_request_a_fresh_session(super::Kind::File).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_damaged_record_gives_the_next_request_a_fresh_session(super::Kind::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        super::a_damaged_record_gives_the_next_request_a_fresh_session(super::Kind::Redis).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_has_safe_defaults_and_a_client_chosen_id_is_never_used() {
    let (backend, _clock) = open(Kind::Memory, "cookie").await.unwrap();
    let base = serve(app(
        SessionLayer::from_arc(backend.store.clone()).expiry(Expiry::OnInactivity(Duration::from_secs(3600))),
        Shared::new(),
    ))
    .await;
    let browser = Browser::new(&base);
    let first = browser.get("/count").await;
    let id = browser.id().expect("a session");
    assert_eq!(
        first.set_cookie,
        [format!("id={id}; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax; Secure")]
    );
    let again = browser.get("/count").await;
    assert_eq!(again.body, "2");

    // Logout clears the cookie.
    let out = browser.post("/logout").await;
    assert_eq!(out.set_cookie.len(), 1);
    assert!(out.set_cookie[0].starts_with("id=; Max-Age=0;"), "{:?}", out.set_cookie);
    assert_eq!(browser.id(), None);

    // A malformed cookie, and a well-formed id the client made up: no session,
    // and the new session gets an id of the server's choosing.
    let chosen = SessionId::random().to_string();
    for cookie in ["../../etc/passwd", "AAAA", &chosen, "\"quoted\""] {
        browser.set_cookie_value(Some(cookie));
        assert_eq!(browser.ok("/count").await, "1", "{cookie:?}");
        let given = browser.cookie_value().unwrap();
        assert_ne!(given, cookie, "never the client's id");
        assert!(given.parse::<SessionId>().is_ok());
    }
    // A read of an unknown session writes nothing and sets no cookie.
    browser.set_cookie_value(Some(&chosen));
    let read = browser.get("/get/count").await;
    assert_eq!((read.body.as_str(), read.set_cookie.len()), ("none", 0));
    assert!(backend.store.load(&chosen.parse().unwrap()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_replaces_the_answer_with_a_generic_error() {
    let log = common::log();
    let clock = ManualClock::at_system_time();
    let store = session_store_memory::MemoryStore::builder()
        .clock(clock.shared())
        .max_record_bytes(1024)
        .build();
    let base = serve(app(layer(Arc::new(store)), Shared::new())).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.ok("/count").await, "1");
    let id = browser.id().unwrap();
    let answer = browser.get("/big").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{answer:?}");
    assert_eq!(answer.body, "internal error\n", "a generic body, not the handler's");
    assert!(answer.set_cookie.is_empty());
    assert_eq!(browser.ok("/get/count").await, "1", "the session is as it was");
    let fingerprint = id.fingerprint().to_string();
    assert!(
        !log.lines(&[&fingerprint, "ERROR", "over this store's limit"])
            .is_empty()
    );
    assert!(!log.holds(&id.to_string()), "the log never holds the id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_answer_commits_nothing() {
    let (backend, _clock) = open(Kind::Memory, "5xx").await.unwrap();
    let base = serve(app(layer(backend.store.clone()), Shared::new())).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.ok("/count").await, "1");
    let answer = browser.get("/fail").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "failed")
    );
    assert_eq!(
        browser.ok("/get/half-way").await,
        "none",
        "the failed request's change is dropped"
    );
    assert_eq!(browser.ok("/count").await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_without_the_layer_gets_a_generic_500() {
    let base = serve(Router::new().route("/count", get(count))).await;
    let answer = Browser::new(&base).get("/count").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.body, "internal error\n");
}
