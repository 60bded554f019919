//! End to end: the real `counter` binary with `--store cookie` (no store at
//! all, each session sealed in its cookie), on a free port, driven over HTTP.
//! Expiry by a test clock is checked through the layer itself
//! (`tower-layer/tests/cookie_mode.rs`): the binary runs on the system clock.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};

const KEY_1: &str = "1:5c1e4d0b9a7f3e2d1c0b9a8f7e6d5c4b3a29181716151413121110f0e0d0c0b0";
const KEY_2: &str = "2:Y29va2llLXRlc3Qta2V5LW51bWJlci10d28tMzJieXQ"; // base64url, unpadded
/// A marker user name: it must never be readable in a cookie.
const MARKER: &str = "MARKER-user-0xC0FFEE";

/// A running `counter --store cookie`.
struct App {
    child: Child,
    base: String,
    output: Arc<Mutex<Vec<String>>>,
}

impl App {
    fn start(keys: &str) -> Self {
        let mut child = counter(keys)
            .args(["--port", "0", "--secure", "false"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the counter binary starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        for (stream, tx) in [
            (
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                Some(tx),
            ),
            (Box::new(child.stderr.take().unwrap()), None),
        ] {
            let lines = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("[counter] {line}");
                    if let (Some(tx), Some(rest)) = (&tx, line.strip_prefix("counter: listening on ")) {
                        let _ = tx.send(rest.trim().trim_end_matches('/').to_owned());
                    }
                    lines.lock().unwrap_or_else(PoisonError::into_inner).push(line);
                }
            });
        }
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("counter did not start: {:?}", output.lock().unwrap()));
        Self { child, base, output }
    }

    fn log(&self) -> String {
        self.output.lock().unwrap_or_else(PoisonError::into_inner).join("\n")
    }

    /// Waits (5 s at most) until its output holds `needle` (the reader
    /// threads may lag behind the process).
    fn wait_for(&self, needle: &str) {
        for _ in 0..100 {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("counter never said {needle:?}; it said:\n{}", self.log());
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn counter(keys: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_counter"));
    command
        .args(["--store", "cookie"])
        .env_remove("SESSION_STORE")
        .env_remove("PORT")
        .env_remove("SESSION_MIDDLEWARE")
        .env_remove("SESSION_MAX_PER_USER")
        .env_remove("SESSION_COOKIE_SECURE")
        .env_remove("SESSION_HASH_IDS")
        .env_remove("SESSION_ENCRYPT")
        .env("RUST_LOG", "debug")
        .env("SESSION_COOKIE_KEYS", keys)
        .stdin(Stdio::null());
    command
}

/// One answer: status, body, and the cookie value it set (`Some("")`: cleared).
struct Answer {
    status: StatusCode,
    body: String,
    set_cookie: Option<String>,
    header: Option<String>,
}

async fn send(app: &App, method: reqwest::Method, path: &str, cookie: Option<&str>) -> Answer {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut request = client.request(method, format!("{}{path}", app.base));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, format!("id={cookie}"));
    }
    let response = request.send().await.expect("the app answers");
    let header = response
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let set_cookie = header.as_ref().map(|h| {
        let value = h.split(';').next().unwrap().strip_prefix("id=").expect("the id cookie");
        value.to_owned()
    });
    Answer {
        status: response.status(),
        body: response.text().await.unwrap().trim().to_owned(),
        set_cookie,
        header,
    }
}

/// A visitor that keeps its cookie.
struct Visitor(Option<String>);

impl Visitor {
    async fn get(&mut self, app: &App, path: &str) -> Answer {
        self.send(app, reqwest::Method::GET, path).await
    }

    async fn send(&mut self, app: &App, method: reqwest::Method, path: &str) -> Answer {
        let answer = send(app, method, path, self.0.as_deref()).await;
        if let Some(value) = &answer.set_cookie {
            self.0 = (!value.is_empty()).then(|| value.clone());
        }
        answer
    }

    async fn count(&mut self, app: &App) -> String {
        let answer = self.get(app, "/").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body
    }
}

fn key_id(cookie: &str) -> u8 {
    URL_SAFE_NO_PAD.decode(cookie).expect("base64url")[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_across_a_restart_with_no_store_and_reveals_nothing() {
    let app = App::start(KEY_1);
    app.wait_for("session store: cookie (no store");
    let mut alice = Visitor(None);
    let first = alice.get(&app, "/").await;
    assert_eq!(first.body, "1");
    let header = first.header.unwrap();
    // Seven days from the sealed deadline (604799 when a millisecond
    // boundary passes between the commit and the header).
    assert!(
        ["604800", "604799"]
            .iter()
            .any(|age| header.ends_with(&format!("; Max-Age={age}; Path=/; HttpOnly; SameSite=Lax"))),
        "{header}"
    );
    assert_eq!(alice.count(&app).await, "2");
    assert_eq!(alice.count(&app).await, "3");
    drop(app);

    let app = App::start(KEY_1);
    assert_eq!(
        alice.count(&app).await,
        "4",
        "the count lives in the cookie, not in a store"
    );

    // Logged in as a marker name: neither it nor the key name is readable.
    let login = alice
        .send(&app, reqwest::Method::POST, &format!("/login/{MARKER}"))
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let cookie = alice.0.clone().unwrap();
    let bytes = URL_SAFE_NO_PAD.decode(&cookie).unwrap();
    for needle in [MARKER.as_bytes(), b"MARKER", b"count", b"C0FFEE"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "sealed bytes hold {needle:?}"
        );
        assert!(!cookie.as_bytes().windows(needle.len()).any(|w| w == needle));
    }
    assert_eq!(alice.count(&app).await, "5", "the data survived the login");

    // What cookie mode cannot do is answered 501, not faked.
    assert_eq!(alice.get(&app, "/sessions").await.status, StatusCode::NOT_IMPLEMENTED);
    let everywhere = alice.send(&app, reqwest::Method::POST, "/logout-everywhere").await;
    assert_eq!(everywhere.status, StatusCode::NOT_IMPLEMENTED);

    // Logout clears the cookie (an old copy still opens: no revocation).
    let out = alice.send(&app, reqwest::Method::POST, "/logout").await;
    assert_eq!(out.set_cookie.as_deref(), Some(""));
    assert!(out.header.unwrap().contains("Max-Age=0"));
    assert_eq!(alice.count(&app).await, "1");
    assert_eq!(send(&app, reqwest::Method::GET, "/", Some(&cookie)).await.body, "5");

    let log = app.log();
    assert!(!log.contains(&KEY_1[2..]), "the key is never logged");
    assert!(!log.contains(&cookie), "a cookie is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_truncated_garbage_and_foreign_cookies_start_fresh() {
    let app = App::start(KEY_1);
    let mut alice = Visitor(None);
    assert_eq!(alice.count(&app).await, "1");
    assert_eq!(alice.count(&app).await, "2");
    let good = alice.0.clone().unwrap();

    let mut flipped = good.clone().into_bytes();
    let at = flipped.len() - 10;
    flipped[at] = if flipped[at] == b'x' { b'y' } else { b'x' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other = App::start(KEY_2);
    let mut stranger = Visitor(None);
    assert_eq!(stranger.count(&other).await, "1");
    let foreign = stranger.0.clone().unwrap();

    for cookie in [
        flipped.as_str(),
        &good[..good.len() - 1],
        &good[..30],
        foreign.as_str(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "../../etc/passwd",
    ] {
        let answer = send(&app, reqwest::Method::GET, "/", Some(cookie)).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "1"),
            "{cookie:?}"
        );
    }
    assert_eq!(alice.count(&app).await, "3", "the good cookie still counts");
    app.wait_for("sealed session cookie refused"); // a debug line says why
    app.wait_for("not in the key ring");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_keeps_visitors_then_retiring_the_old_key_starts_them_fresh() {
    let app = App::start(KEY_1);
    let mut alice = Visitor(None);
    assert_eq!(alice.count(&app).await, "1");
    assert_eq!(alice.count(&app).await, "2");
    let under_1 = alice.0.clone().unwrap();
    assert_eq!(key_id(&under_1), 1);
    drop(app);

    // Key 2 added (last: it seals), key 1 kept.
    let app = App::start(&format!("{KEY_1},{KEY_2}"));
    app.wait_for("key ids [1, 2], new cookies sealed with 2");
    assert_eq!(alice.count(&app).await, "3", "the visitor is kept");
    let under_2 = alice.0.clone().unwrap();
    assert_eq!(key_id(&under_2), 2, "and sealed again under the new key");
    drop(app);

    // Key 1 retired (left out): its cookies start fresh, key 2's carry on.
    let app = App::start(KEY_2);
    assert_eq!(alice.count(&app).await, "4");
    assert_eq!(send(&app, reqwest::Method::GET, "/", Some(&under_1)).await.body, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_session_is_refused_at_commit_with_a_generic_error() {
    let app = App::start(KEY_1);
    let mut alice = Visitor(None);
    assert_eq!(alice.count(&app).await, "1");
    let before = alice.0.clone();
    let huge = "u".repeat(3900);
    let answer = alice.send(&app, reqwest::Method::POST, &format!("/login/{huge}")).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.body, "internal error");
    assert!(answer.set_cookie.is_none(), "no truncated cookie");
    assert_eq!(alice.0, before);
    assert_eq!(alice.count(&app).await, "2", "the session is as it was");
    app.wait_for("over this store's limit of 3840");
}

#[test]
fn a_missing_or_bad_key_ring_refuses_to_start() {
    let secret = "ab".repeat(31); // 62 hex characters: one byte short
    for keys in ["", "1", "x:00", &format!("1:{secret}"), &format!("1:{secret}zz")] {
        let output = counter(keys).output().expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{keys:?}: {stderr}");
        assert!(stderr.contains("SESSION_COOKIE_KEYS"), "{stderr}");
        assert!(!stderr.contains(&secret), "the key is never printed: {stderr}");
    }
    let output = counter(KEY_1)
        .args(["--middleware", "tower-sessions"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--middleware layer only"));
}
