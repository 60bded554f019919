//! The counter scenario through actix-web: `SessionMiddleware` with the
//! adapter over every backend, driven request by request with the cookies a
//! browser would send; on file, SQLite and Redis also a damaged record (a
//! fresh session, other visitors untouched) and a failing store (a 5xx with
//! a generic body, the detail in the log).
//!
//! Redis needs a server: `store-redis/scripts/with-redis cargo test -p
//! session-store-actix-session` starts a private one and sets
//! `SESSION_STORE_REDIS_URL`. Without it the Redis tests say so and skip,
//! unless `SESSION_STORE_STRICT=1`, where they fail.

mod backends;

use std::sync::Arc;

use actix_session::storage::{SessionKey, SessionStore as _};
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{Cookie, Key};
use actix_web::dev::ServiceResponse;
use actix_web::{App, HttpResponse, test, web};
use backends::Backend;
use session_store_actix_session::Adapter;
use session_store_core::SessionStore;
use session_store_file::FileStore;
use session_store_memory::MemoryStore;
use session_store_sqlite::SqliteStore;

const COOKIE: &str = "id";

async fn visit(session: Session) -> actix_web::Result<String> {
    let count = session.get::<u64>("count")?.unwrap_or(0) + 1;
    session.insert("count", count)?;
    Ok(count.to_string())
}

async fn login(session: Session) -> HttpResponse {
    session.renew();
    HttpResponse::Ok().body("logged in")
}

async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok().body("logged out")
}

/// The session cookie a response sets, if any (an empty value removes it).
fn set_cookie(response: &ServiceResponse) -> Option<Cookie<'static>> {
    response
        .response()
        .cookies()
        .find(|c| c.name() == COOKIE)
        .map(Cookie::into_owned)
}

/// One request; answers the body and the session cookie the client holds
/// afterwards (the one it sent, unless the response set or removed it).
macro_rules! call {
    ($app:expr, $method:literal, $path:literal, $cookie:expr) => {{
        let cookie: Option<&Cookie<'static>> = $cookie;
        let mut request = match $method {
            "GET" => test::TestRequest::get(),
            _ => test::TestRequest::post(),
        }
        .uri($path);
        if let Some(cookie) = cookie {
            request = request.cookie(Cookie::new(COOKIE, cookie.value().to_owned()));
        }
        let response = test::call_service($app, request.to_request()).await;
        assert!(
            response.status().is_success(),
            "{} {}: {}",
            $method,
            $path,
            response.status()
        );
        let next = match set_cookie(&response) {
            Some(c) if c.value().is_empty() => None,
            Some(c) => Some(c),
            None => cookie.cloned(),
        };
        let body = String::from_utf8(test::read_body(response).await.to_vec()).expect("UTF-8 body");
        (body, next)
    }};
}

/// The app under test: the counter routes behind `SessionMiddleware` with
/// the adapter over `store`.
macro_rules! app {
    ($store:expr, $key:expr) => {
        test::init_service(
            App::new()
                .wrap(
                    SessionMiddleware::builder(Adapter::from_arc($store), $key.clone())
                        .cookie_name(COOKIE.to_owned())
                        .cookie_secure(false)
                        .build(),
                )
                .route("/", web::get().to(visit))
                .route("/login", web::post().to(login))
                .route("/logout", web::post().to(logout)),
        )
        .await
    };
}

/// The whole story against the store `open` gives; for a durable store
/// `open` is called again to "restart" the app on the same data.
async fn scenario(open: impl AsyncFn() -> Arc<dyn SessionStore>, durable: bool) {
    let key = Key::generate();
    let store = open().await;
    let app = app!(Arc::clone(&store), key);

    // The count goes 1, 2, 3; the first response sets the cookie.
    let (body, first) = call!(&app, "GET", "/", None);
    assert_eq!(body, "1");
    let mut jar = first.clone();
    assert!(jar.is_some(), "the first response sets the session cookie");
    for expected in ["2", "3"] {
        let (body, next) = call!(&app, "GET", "/", jar.as_ref());
        assert_eq!(body, expected);
        jar = next;
    }
    assert_eq!(store.count().await.unwrap(), 1, "one session in the store");

    // A second client starts at 1.
    let (body, other) = call!(&app, "GET", "/", None);
    assert_eq!(body, "1");
    assert_ne!(other.as_ref().map(Cookie::value), jar.as_ref().map(Cookie::value));
    assert_eq!(store.count().await.unwrap(), 2);

    // A durable store: a new app on a newly opened store; the count carries on.
    let (store, app) = if durable {
        drop(app);
        drop(store);
        let store = open().await;
        (Arc::clone(&store), app!(store, key))
    } else {
        (store, app)
    };
    let (body, next) = call!(&app, "GET", "/", jar.as_ref());
    assert_eq!(body, "4");
    jar = next;

    // Login renews the key and keeps the data; the old key no longer loads.
    let before_login = jar.clone();
    let (_, after_login) = call!(&app, "POST", "/login", jar.as_ref());
    assert_ne!(
        after_login.as_ref().map(Cookie::value),
        before_login.as_ref().map(Cookie::value),
        "login sets a new cookie"
    );
    assert_eq!(
        store.count().await.unwrap(),
        2,
        "the old key was deleted, the new one stored"
    );
    let (body, next) = call!(&app, "GET", "/", after_login.as_ref());
    assert_eq!(body, "5", "the data moved to the new key");
    jar = next;
    let (body, _) = call!(&app, "GET", "/", before_login.as_ref());
    assert_eq!(body, "1", "the pre-login cookie starts a new session");
    assert_eq!(store.count().await.unwrap(), 3);

    // Logout deletes the session; the old cookie starts again at 1.
    let before_logout = jar.clone();
    let (_, after_logout) = call!(&app, "POST", "/logout", jar.as_ref());
    assert!(after_logout.is_none(), "logout removes the cookie");
    assert_eq!(store.count().await.unwrap(), 2, "the session was deleted");
    let (body, _) = call!(&app, "GET", "/", before_logout.as_ref());
    assert_eq!(body, "1");

    // A cookie that is not a valid signed/encrypted session cookie: a new session.
    let garbage = Cookie::new(COOKIE, "../../etc/passwd");
    let (body, _) = call!(&app, "GET", "/", Some(&garbage));
    assert_eq!(body, "1");
}

/// One test per backend, each running `$run(&backend)`; a Redis test
/// without a server skips (see the crate docs).
macro_rules! per_backend {
    ($name:ident: $run:ident, [$($backend:ident),*]) => {
        mod $name {
            $(
                #[actix_web::test]
                async fn $backend() {
                    let Some(backend) = crate::backends::Backend::by_name(stringify!($backend)).await else {
                        return;
                    };
                    super::$run(&backend).await;
                    backend.teardown().await;
                }
            )*
        }
    };
}

per_backend!(the_counter_story: story, [memory, file, sqlite, redis]);
per_backend!(a_damaged_record_gives_a_fresh_session_and_other_visitors_are_untouched: damaged, [file, sqlite, redis]);
per_backend!(a_failing_store_gives_a_5xx_with_a_generic_body: failing, [file, sqlite, redis]);

async fn story(backend: &Backend) {
    scenario(async || backend.open().await, backend.name != "memory").await;
}

#[actix_web::test]
async fn keys_that_are_not_ids_are_no_session() {
    let adapter = Adapter::new(MemoryStore::new());
    for bad in [
        "",
        "short",
        "../../etc/passwd",
        "AAAAAAAAAAAAAAAAAAAAA*",
        "0123456789abcdefghijklmnopqrstuvwxyz",
    ] {
        let key = SessionKey::try_from(bad.to_owned()).unwrap();
        assert_eq!(adapter.load(&key).await.unwrap(), None, "{bad:?}");
        adapter
            .update_ttl(&key, &actix_web::cookie::time::Duration::hours(1))
            .await
            .unwrap();
        adapter.delete(&key).await.unwrap();
    }
}

#[actix_web::test]
async fn a_late_update_never_revives_a_deleted_session() {
    let store = Arc::new(MemoryStore::new());
    let adapter = Adapter::from_arc(Arc::clone(&store));
    let ttl = actix_web::cookie::time::Duration::hours(1);
    let state = std::collections::HashMap::from([("count".to_owned(), "1".to_owned())]);
    let key = adapter.save(state.clone(), &ttl).await.unwrap();
    assert_eq!(key.as_ref().len(), 22, "keys are the id text form");
    assert_eq!(adapter.load(&key).await.unwrap(), Some(state.clone()));

    // A logout deletes it while a slow request still holds the key.
    let key_text = key.as_ref().to_owned();
    adapter.delete(&key).await.unwrap();
    let key = SessionKey::try_from(key_text).unwrap();
    let returned = adapter.update(key, state, &ttl).await.unwrap();
    assert_eq!(adapter.load(&returned).await.unwrap(), None, "nothing was written");
    assert_eq!(store.count().await.unwrap(), 0);
}

/// A real store that lets "another request" write the record right after
/// this request loaded it, once: the race `update` must handle.
#[derive(Debug)]
struct RacingWriter {
    inner: MemoryStore,
    armed: std::sync::atomic::AtomicBool,
}

#[session_store_core::async_trait]
impl SessionStore for RacingWriter {
    fn clock(&self) -> session_store_core::SharedClock {
        self.inner.clock()
    }
    async fn create(&self, record: &session_store_core::Record) -> session_store_core::Result<u64> {
        self.inner.create(record).await
    }
    async fn load(
        &self,
        id: &session_store_core::SessionId,
    ) -> session_store_core::Result<Option<session_store_core::Record>> {
        let loaded = self.inner.load(id).await?;
        if let Some(record) = &loaded
            && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            let mut other = record.clone();
            other.data.insert("count", &100).unwrap();
            self.inner.save(&other).await?;
        }
        Ok(loaded)
    }
    async fn save(&self, record: &session_store_core::Record) -> session_store_core::Result<u64> {
        self.inner.save(record).await
    }
    async fn save_if_version(&self, record: &session_store_core::Record) -> session_store_core::Result<u64> {
        self.inner.save_if_version(record).await
    }
    async fn touch(
        &self,
        id: &session_store_core::SessionId,
        expires_at: session_store_core::Timestamp,
    ) -> session_store_core::Result<bool> {
        self.inner.touch(id, expires_at).await
    }
    async fn delete(&self, id: &session_store_core::SessionId) -> session_store_core::Result<()> {
        self.inner.delete(id).await
    }
    async fn rotate(
        &self,
        old: &session_store_core::SessionId,
        new: &session_store_core::SessionId,
    ) -> session_store_core::Result<bool> {
        self.inner.rotate(old, new).await
    }
    async fn purge_expired(&self) -> session_store_core::Result<u64> {
        self.inner.purge_expired().await
    }
    async fn ids(&self) -> session_store_core::Result<Vec<session_store_core::ListingHandle>> {
        self.inner.ids().await
    }
    async fn clear(&self) -> session_store_core::Result<()> {
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

#[actix_web::test]
async fn an_update_racing_another_write_is_last_writer_wins() {
    let store = Arc::new(RacingWriter {
        inner: MemoryStore::new(),
        armed: false.into(),
    });
    let adapter = Adapter::from_arc(Arc::clone(&store));
    let ttl = actix_web::cookie::time::Duration::hours(1);
    let key = adapter
        .save([("count".to_owned(), "1".to_owned())].into(), &ttl)
        .await
        .unwrap();
    let id: session_store_core::SessionId = key.as_ref().parse().unwrap();

    // Another request writes between this update's load and its write: the
    // conditional write fails once, the adapter re-reads and writes again.
    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let key = adapter
        .update(key, [("count".to_owned(), "2".to_owned())].into(), &ttl)
        .await
        .unwrap();
    assert_eq!(key.as_ref(), id.to_string(), "same session key");
    assert!(
        !store.armed.load(std::sync::atomic::Ordering::SeqCst),
        "the race happened"
    );
    let record = store.inner.load(&id).await.unwrap().expect("live");
    assert_eq!(
        record.data.get::<u32>("count").unwrap(),
        Some(2),
        "the last writer wins"
    );
    assert_eq!(record.version, 3, "create, the racing save, then this update");
}

#[actix_web::test]
async fn concurrent_updates_of_one_session_all_land_whole() {
    // SQLite on this single-threaded runtime runs each call on the blocking
    // pool, so the updates really interleave between their loads and writes.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("race.db")).unwrap());
    let adapter = Adapter::from_arc(Arc::clone(&store));
    let ttl = actix_web::cookie::time::Duration::hours(1);
    let key = adapter
        .save([("n".to_owned(), "0".to_owned())].into(), &ttl)
        .await
        .unwrap();
    let id: session_store_core::SessionId = key.as_ref().parse().unwrap();
    let updates = (1..=16).map(|n| {
        let adapter = adapter.clone();
        let key = SessionKey::try_from(id.to_string()).unwrap();
        async move {
            let state = [("n".to_owned(), n.to_string()), ("m".to_owned(), n.to_string())].into();
            adapter.update(key, state, &ttl).await.map(|_| ())
        }
    });
    for result in futures_join_all(updates).await {
        result.unwrap_or_else(|e| panic!("update failed: {e:?}"));
    }
    let record = store.load(&id).await.unwrap().expect("live");
    let n: u32 = record.data.get("n").unwrap().unwrap();
    assert!((1..=16).contains(&n));
    assert_eq!(
        record.data.get::<u32>("m").unwrap(),
        Some(n),
        "never a mix of two writes"
    );
    assert_eq!(record.version, 17, "every update was written");
}

/// Runs the futures concurrently on this task and collects their outputs.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    let handles: Vec<_> = futures.into_iter().map(actix_web::rt::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("the task finished"));
    }
    out
}

/// Everything logged by this test binary (one global subscriber, since
/// tests run on several threads).
fn log() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: &'static std::sync::Mutex<Vec<u8>> = Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || LogWriter(buffer))
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    })
}

struct LogWriter(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines that mention `needle`.
fn logged(needle: &str) -> Vec<String> {
    let bytes = log().lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// The one session id in `store` (a plain store: its listing handle holds
/// the id).
async fn only_id(store: &dyn SessionStore) -> session_store_core::SessionId {
    let ids = store.ids().await.unwrap();
    assert_eq!(ids.len(), 1, "one session in the store");
    ids[0].stored()
}

/// Alice's record is damaged (each way the backend allows): her next
/// request gets a fresh session under a fresh key, answered normally, and
/// Bob's session is untouched.
async fn damaged(backend: &Backend) {
    log();
    for &damage in backend.damages() {
        let store = backend.open().await;
        store.clear().await.unwrap();
        let key = Key::generate();
        let app = app!(Arc::clone(&store), key);

        let (body, alice) = call!(&app, "GET", "/", None);
        assert_eq!(body, "1");
        let (body, alice) = call!(&app, "GET", "/", alice.as_ref());
        assert_eq!(body, "2");
        let damaged = only_id(&*store).await;
        let (body, bob) = call!(&app, "GET", "/", None);
        assert_eq!(body, "1");

        backend.damage(&damaged, damage).await;

        let (body, fresh) = call!(&app, "GET", "/", alice.as_ref());
        assert_eq!(
            body, "1",
            "{} {damage:?}: a fresh session, answered normally",
            backend.name
        );
        assert_ne!(
            fresh.as_ref().map(Cookie::value),
            alice.as_ref().map(Cookie::value),
            "under a fresh key"
        );
        let (body, _) = call!(&app, "GET", "/", fresh.as_ref());
        assert_eq!(body, "2", "{} {damage:?}: and it sticks", backend.name);
        let (body, _) = call!(&app, "GET", "/", bob.as_ref());
        assert_eq!(body, "2", "{} {damage:?}: Bob is untouched", backend.name);

        let warnings = logged(&damaged.fingerprint().to_string());
        assert!(
            warnings
                .iter()
                .any(|l| l.contains(" WARN ") && l.contains(damage.logged())),
            "{} {damage:?}: a warning names the damaged session's fingerprint and the cause: {warnings:#?}",
            backend.name
        );
        assert!(
            logged(&damaged.to_string()).is_empty(),
            "the log never holds the id itself"
        );
    }
}

/// The store fails under Alice's request: a 5xx whose body names neither
/// the session nor the store's own error; the detail and the fingerprint
/// are in the log.
async fn failing(backend: &Backend) {
    log();
    let store = backend.open().await;
    let key = Key::generate();
    let app = app!(Arc::clone(&store), key);
    let (body, alice) = call!(&app, "GET", "/", None);
    assert_eq!(body, "1");
    let id = only_id(&*store).await;

    let detail = backend.fail(&id).await;

    let request = test::TestRequest::get()
        .uri("/")
        .cookie(Cookie::new(COOKIE, alice.expect("a cookie").value().to_owned()))
        .to_request();
    // What the server sends: the response, or the error's own response.
    let response = match test::try_call_service(&app, request).await {
        Ok(response) => response.into_parts().1,
        Err(error) => error.error_response(),
    };
    let status = response.status();
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    assert!(status.is_server_error(), "{}: {status}: {body}", backend.name);
    for secret in [
        id.to_string(),
        detail.to_owned(),
        "os error".to_owned(),
        "session".to_owned(),
    ] {
        assert!(
            !body.contains(&secret),
            "{}: the body {body:?} holds {secret:?}",
            backend.name
        );
    }

    let errors = logged(&id.fingerprint().to_string());
    assert!(
        errors.iter().any(|l| l.contains(" ERROR ") && l.contains(detail)),
        "{}: the detail is logged with the fingerprint: {errors:#?}",
        backend.name
    );
    assert!(logged(&id.to_string()).is_empty(), "the log never holds the id itself");
}

#[actix_web::test]
async fn store_errors_reach_actix_session_with_a_generic_message() {
    log();
    let dir = tempfile::tempdir().unwrap();
    let files = Arc::new(FileStore::open(dir.path().join("sessions")).unwrap());
    let adapter = Adapter::from_arc(Arc::clone(&files));
    let ttl = actix_web::cookie::time::Duration::hours(1);
    let key = adapter
        .save([("count".to_owned(), "1".to_owned())].into(), &ttl)
        .await
        .unwrap();
    let id: session_store_core::SessionId = key.as_ref().parse().unwrap();
    // A file where the session's shard directory was: an I/O failure.
    let shard = files.path_of(&id).parent().unwrap().to_owned();
    std::fs::remove_dir_all(&shard).unwrap();
    std::fs::write(&shard, b"not a directory").unwrap();

    let shown = match adapter.load(&key).await {
        Err(actix_session::storage::LoadError::Other(e)) => format!("{e:?} / {e:#}"),
        other => panic!("expected LoadError::Other, got {other:?}"),
    };
    let update = adapter
        .update(key, [("count".to_owned(), "2".to_owned())].into(), &ttl)
        .await;
    let shown = match update {
        Err(actix_session::storage::UpdateError::Other(e)) => format!("{shown} / {e:?} / {e:#}"),
        other => panic!("expected UpdateError::Other, got {other:?}"),
    };
    // Even the Debug form, with every cause, is generic.
    assert!(shown.contains(session_store_actix_session::STORE_FAILED), "{shown}");
    for secret in [id.to_string(), "directory".to_owned(), "os error".to_owned()] {
        assert!(!shown.contains(&secret), "{shown:?} holds {secret:?}");
    }
}

/// The whole story over a file store with ids hashed and bodies sealed at
/// rest (`at_rest::Protected`), restart included: the adapter only loads,
/// saves and deletes the cookie's own id, never a listed handle, so
/// nothing changes for actix-session; no file is named by a cookie's id.
#[actix_web::test]
async fn the_counter_story_over_a_store_with_ids_hashed_and_bodies_sealed() {
    use session_store_core::at_rest::{AtRest, Protected, inner_limit};
    use session_store_core::seal::KeyRing;
    let dir = tempfile::tempdir().expect("a temp dir");
    let open = async || {
        let keys = KeyRing::parse(&format!("1:{}", "3c".repeat(32))).expect("a key ring");
        let inner = FileStore::builder(dir.path())
            .max_record_bytes(inner_limit(session_store_core::DEFAULT_MAX_RECORD_BYTES))
            .open()
            .expect("the file store opens");
        let store: Arc<dyn SessionStore> = Arc::new(Protected::new(inner, AtRest::new().hash_ids(true).encrypt(keys)));
        store
    };
    scenario(open, true).await;
    let store = open().await;
    let handles = store.ids().await.unwrap();
    // Bob's, the replayed pre-login cookie's, the replayed logged-out
    // cookie's and the garbage cookie's.
    assert_eq!(handles.len(), 4, "the live sessions at the end of the story");
    for handle in handles {
        let record = store
            .load_listed(&handle)
            .await
            .unwrap()
            .expect("a listed handle loads");
        assert!(record.data.get::<u64>("count").unwrap().is_some());
        assert!(
            store.load(&handle.stored()).await.unwrap().is_none(),
            "a handle is no cookie value"
        );
    }
}
