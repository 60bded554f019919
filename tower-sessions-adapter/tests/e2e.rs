//! Through the real framework: axum with tower-sessions' `SessionManagerLayer`
//! over the adapter and a real file store, served on a loopback port and
//! driven by an HTTP client with a cookie jar.
//!
//! What a visitor sees when the store's record is damaged (a fresh session,
//! HTTP 200) and when the store fails (a 5xx whose body names neither the
//! session nor the store's own error text), and what the operator's log
//! gets (the session's fingerprint and the detail).

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use reqwest::cookie::{CookieStore, Jar};
use session_store_core::SessionId;
use session_store_file::FileStore;
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
async fn serve(store: Arc<FileStore>) -> reqwest::Url {
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

fn store_in(dir: &Path) -> Arc<FileStore> {
    Arc::new(FileStore::open(dir.join("sessions")).expect("a file store"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_gives_a_fresh_session_and_other_visitors_are_untouched() {
    log();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = store_in(dir.path());
    let url = serve(Arc::clone(&store)).await;
    let (alice, bob) = (Browser::new(), Browser::new());
    assert_eq!(alice.get(&url).await, (StatusCode::OK, "1".into()));
    assert_eq!(alice.get(&url).await, (StatusCode::OK, "2".into()));
    assert_eq!(bob.get(&url).await, (StatusCode::OK, "1".into()));
    let damaged = alice.session(&url);

    // Garbage where the store keeps Alice's session.
    std::fs::write(store.path_of(&damaged), b"\x07 not a session record at all").expect("write garbage");

    assert_eq!(
        alice.get(&url).await,
        (StatusCode::OK, "1".into()),
        "a fresh session, answered normally"
    );
    let fresh = alice.session(&url);
    assert_ne!(fresh, damaged, "the fresh session has a fresh id");
    assert_eq!(alice.get(&url).await, (StatusCode::OK, "2".into()), "and it sticks");
    assert_eq!(bob.get(&url).await, (StatusCode::OK, "2".into()), "Bob is untouched");

    let warnings = logged(&damaged.fingerprint().to_string());
    assert!(
        warnings
            .iter()
            .any(|l| l.contains(" WARN ") && l.contains("could not be decoded")),
        "a warning names the damaged session's fingerprint: {warnings:#?}"
    );
    assert!(
        logged(&damaged.to_string()).is_empty(),
        "the log never holds the id itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_gives_a_5xx_with_a_generic_body() {
    log();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = store_in(dir.path());
    let url = serve(Arc::clone(&store)).await;
    let alice = Browser::new();
    assert_eq!(alice.get(&url).await, (StatusCode::OK, "1".into()));
    let id = alice.session(&url);

    // A directory where the session file should be: every read of it fails
    // with an I/O error ("Is a directory"), a real store failure.
    let path = store.path_of(&id);
    std::fs::remove_file(&path).expect("remove the session file");
    std::fs::create_dir(&path).expect("a directory in its place");

    let (status, body) = alice.get(&url).await;
    assert!(status.is_server_error(), "{status}: {body}");
    for secret in [
        id.to_string(),
        "directory".to_owned(),
        "os error".to_owned(),
        "session file".to_owned(),
    ] {
        assert!(!body.contains(&secret), "the body {body:?} holds {secret:?}");
    }
    assert!(body.contains("session store failed"), "a generic message: {body:?}");

    let errors = logged(&id.fingerprint().to_string());
    assert!(
        errors
            .iter()
            .any(|l| l.contains(" ERROR ") && l.contains("Is a directory")),
        "the detail is logged with the fingerprint: {errors:#?}"
    );
    assert!(logged(&id.to_string()).is_empty(), "the log never holds the id itself");
}
