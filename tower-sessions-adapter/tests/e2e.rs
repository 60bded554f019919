//! Through the real framework: axum with tower-sessions' `SessionManagerLayer`
//! over the adapter and a real file, SQLite or Redis store, served on a
//! loopback port and driven by an HTTP client with a cookie jar.
//!
//! What a visitor sees when the store's record is damaged (a fresh session,
//! HTTP 200, other visitors untouched) and when the store fails (a 5xx whose
//! body names neither the session nor the store's own error text), and what
//! the operator's log gets (the session's fingerprint and the detail).
//!
//! Redis needs a server: `store-redis/scripts/with-redis cargo test -p
//! session-store-tower-sessions` starts a private one and sets
//! `SESSION_STORE_REDIS_URL`. Without it the Redis tests say so and skip,
//! unless `SESSION_STORE_STRICT=1`, where they fail.

mod backends;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use backends::Backend;
use reqwest::cookie::{CookieStore, Jar};
use session_store_core::{SessionId, SessionStore};
use session_store_tower_sessions::Adapter;
use tower_sessions::{Session, SessionManagerLayer};

/// Everything logged by this test binary (one global subscriber: the
/// server's tasks run on the runtime's worker threads).
fn log() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Writer(buffer))
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    })
}

struct Writer(&'static Mutex<Vec<u8>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines that mention `needle`.
fn logged(needle: &str) -> Vec<String> {
    let bytes = log().lock().unwrap_or_else(PoisonError::into_inner).clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// A handler as a naive app writes it: the error's own text is the body,
/// so whatever the adapter hands tower-sessions is what a visitor sees.
async fn visit(session: Session) -> Result<String, (StatusCode, String)> {
    let failed = |e: tower_sessions::session::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let count: u64 = session.get("count").await.map_err(failed)?.unwrap_or(0) + 1;
    session.insert("count", count).await.map_err(failed)?;
    Ok(count.to_string())
}

/// Serves the counter over `store` on a free loopback port.
async fn serve(store: Arc<dyn SessionStore>) -> reqwest::Url {
    let layer = SessionManagerLayer::new(Adapter::from_arc(store)).with_secure(false);
    let app = Router::new().route("/", get(visit)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/").parse().expect("a URL")
}

struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
}

impl Browser {
    fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client");
        Self { client, jar }
    }

    async fn get(&self, url: &reqwest::Url) -> (StatusCode, String) {
        let response = self.client.get(url.clone()).send().await.expect("an answer");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("a status");
        (status, response.text().await.expect("a body"))
    }

    /// The session id in this browser's cookie.
    fn session(&self, url: &reqwest::Url) -> SessionId {
        let header = self.jar.cookies(url).expect("a session cookie");
        let text = header.to_str().expect("ASCII");
        let value = text
            .split("; ")
            .find_map(|c| c.strip_prefix("id="))
            .expect("the id cookie");
        value.parse().expect("the cookie holds a session id")
    }
}

/// One test per backend, each running `$run(&backend)`; a Redis test
/// without a server skips (see the crate docs).
macro_rules! per_backend {
    ($name:ident: $run:ident, [$($backend:ident),*]) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

per_backend!(a_damaged_record_gives_a_fresh_session_and_other_visitors_are_untouched: damaged, [file, sqlite, redis]);
per_backend!(a_failing_store_gives_a_5xx_with_a_generic_body: failing, [file, sqlite, redis]);

/// Alice's record is damaged (each way the backend allows): her next
/// request gets a fresh session under a fresh id, answered normally, and
/// Bob's session is untouched.
async fn damaged(backend: &Backend) {
    log();
    for &damage in backend.damages() {
        let url = serve(backend.open().await).await;
        let (alice, bob) = (Browser::new(), Browser::new());
        assert_eq!(alice.get(&url).await, (StatusCode::OK, "1".into()));
        assert_eq!(alice.get(&url).await, (StatusCode::OK, "2".into()));
        assert_eq!(bob.get(&url).await, (StatusCode::OK, "1".into()));
        let damaged = alice.session(&url);

        backend.damage(&damaged, damage).await;

        assert_eq!(
            alice.get(&url).await,
            (StatusCode::OK, "1".into()),
            "{} {damage:?}: a fresh session, answered normally",
            backend.name
        );
        let fresh = alice.session(&url);
        assert_ne!(fresh, damaged, "the fresh session has a fresh id");
        assert_eq!(alice.get(&url).await, (StatusCode::OK, "2".into()), "and it sticks");
        assert_eq!(
            bob.get(&url).await,
            (StatusCode::OK, "2".into()),
            "{} {damage:?}: Bob is untouched",
            backend.name
        );

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
    let url = serve(backend.open().await).await;
    let alice = Browser::new();
    assert_eq!(alice.get(&url).await, (StatusCode::OK, "1".into()));
    let id = alice.session(&url);

    let detail = backend.fail(&id).await;

    let (status, body) = alice.get(&url).await;
    assert!(status.is_server_error(), "{}: {status}: {body}", backend.name);
    for secret in [id.to_string(), detail.to_owned(), "os error".to_owned()] {
        assert!(
            !body.contains(&secret),
            "{}: the body {body:?} holds {secret:?}",
            backend.name
        );
    }
    assert!(body.contains("session store failed"), "a generic message: {body:?}");

    let errors = logged(&id.fingerprint().to_string());
    assert!(
        errors.iter().any(|l| l.contains(" ERROR ") && l.contains(detail)),
        "{}: the detail is logged with the fingerprint: {errors:#?}",
        backend.name
    );
    assert!(logged(&id.to_string()).is_empty(), "the log never holds the id itself");
}

/// Over a store with ids hashed and bodies sealed at rest
/// (`at_rest::Protected`), tower-sessions counts as over any store (the
/// adapter only loads, saves and deletes the cookie's own id, never a
/// listed handle), and the store below holds neither the cookie's id nor
/// the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_ids_hashed_and_bodies_sealed_serves_the_same() {
    use session_store_core::at_rest::{AtRest, Protected, SEALED_KEY, stored_id};
    let keys = session_store_core::seal::KeyRing::parse(&format!("1:{}", "3c".repeat(32))).expect("a key ring");
    let inner = session_store_memory::MemoryStore::new();
    let store = Protected::new(inner.clone(), AtRest::new().hash_ids(true).encrypt(keys));
    let url = serve(Arc::new(store)).await;
    let alice = Browser::new();
    for expected in ["1", "2", "3"] {
        assert_eq!(alice.get(&url).await, (StatusCode::OK, expected.to_owned()));
    }
    let id = alice.session(&url);
    assert!(inner.load(&id).await.unwrap().is_none(), "not under the cookie's id");
    let below = inner.load(&stored_id(&id)).await.unwrap().expect("under its hash");
    assert_eq!(
        below.data.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        [SEALED_KEY],
        "only the seal"
    );
    let raw = below.data.get_raw(SEALED_KEY).expect("the seal");
    assert!(!raw.contains("count") && !raw.contains(&id.to_string()), "{raw}");
}
