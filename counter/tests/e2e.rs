//! End to end: the real `counter` binary on a free port, driven over HTTP by
//! a client with a cookie jar, once per backend.
//!
//! Redis needs a server: `store-redis/scripts/with-redis cargo test -p counter`
//! starts a private one and sets `SESSION_STORE_REDIS_URL`. Without it the
//! Redis test says so and skips, unless `SESSION_STORE_STRICT=1`, where it
//! fails. MySQL likewise under `store-mysql/scripts/with-mariadb`.
//! PostgreSQL likewise: `store-postgres/scripts/with-postgres cargo
//! test -p counter` sets `SESSION_STORE_POSTGRES_URL`.

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::COOKIE;
use session_store_core::SessionId;

/// A running `counter` process.
struct App {
    child: Child,
    base: reqwest::Url,
    args: Vec<String>,
    /// What it said on stdout and stderr so far (its log is on stderr).
    output: Arc<Mutex<Vec<String>>>,
}

impl App {
    /// Starts the binary with `--port 0` and waits until it says where it listens.
    fn start(args: &[String]) -> Self {
        Self::start_in(args, Path::new("."))
    }

    /// As [`start`](Self::start), in the working directory `cwd`.
    fn start_in(args: &[String], cwd: &Path) -> Self {
        Self::start_with(args, cwd, &[])
    }

    /// As [`start_in`](Self::start_in), with these environment variables.
    fn start_with(args: &[String], cwd: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_counter"))
            .current_dir(cwd)
            .args(args)
            .args(["--port", "0"])
            .env_remove("SESSION_STORE")
            .env_remove("PORT")
            .env_remove("REDIS_URL")
            .env_remove("DATABASE_URL")
            .env_remove("SESSION_DIR")
            .env_remove("SESSION_MEMORY_CAPACITY")
            .env_remove("RUST_LOG")
            .env_remove("SESSION_MIDDLEWARE")
            .env_remove("SESSION_COOKIE_SECURE")
            .env_remove("SESSION_COOKIE_SAMESITE")
            .env_remove("SESSION_HASH_IDS")
            .env_remove("SESSION_ENCRYPT")
            .env_remove("SESSION_AT_REST_KEYS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the counter binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("[counter] {line}");
                if let Some(rest) = line.strip_prefix("counter: listening on ") {
                    let _ = tx.send(rest.trim().to_owned());
                }
                lines.lock().unwrap_or_else(PoisonError::into_inner).push(line);
            }
        });
        // Drained all along, so a chatty log never fills the pipe.
        let lines = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                println!("[counter stderr] {line}");
                lines.lock().unwrap_or_else(PoisonError::into_inner).push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => Self {
                child,
                base: url.parse().expect("the printed address is a URL"),
                args: args.to_vec(),
                output,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let said = output.lock().unwrap_or_else(PoisonError::into_inner).join("\n");
                panic!("counter {args:?} did not say where it listens; it said:\n{said}");
            }
        }
    }

    /// The lines it printed so far that contain `needle`.
    fn said(&self, needle: &str) -> Vec<String> {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits (a few seconds at most) until it has printed a line containing
    /// every one of `needles`, and answers those lines.
    fn wait_for(&self, needles: &[&str]) -> Vec<String> {
        for _ in 0..100 {
            let lines: Vec<String> = self
                .said(needles[0])
                .into_iter()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .collect();
            if !lines.is_empty() {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let all = self.output.lock().unwrap_or_else(PoisonError::into_inner).join("\n");
        panic!("counter never printed a line with {needles:?}; it said:\n{all}");
    }

    /// Kills the process (no graceful shutdown: what was answered must be stored).
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::take(&mut self.args)
    }

    fn url(&self, path: &str) -> reqwest::Url {
        self.base.join(path).expect("a valid path")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser: a client with its own cookie jar.
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

    /// The `Cookie` header this browser would send to `app`.
    fn cookie(&self, app: &App) -> Option<String> {
        self.jar
            .cookies(&app.url("/"))
            .map(|v| v.to_str().expect("ASCII cookie").to_owned())
    }

    async fn get(&self, app: &App) -> String {
        text(self.client.get(app.url("/")).send().await).await
    }

    async fn post(&self, app: &App, path: &str) -> String {
        text(self.client.post(app.url(path)).send().await).await
    }
}

async fn text(response: reqwest::Result<reqwest::Response>) -> String {
    let response = response.expect("the app answers");
    let status = response.status();
    let body = response.text().await.expect("a text body");
    assert!(status.is_success(), "status {status}: {body}");
    body.trim().to_owned()
}

/// A request that replays a saved `Cookie` header by hand, outside any jar.
async fn replay(app: &App, cookie: &str) -> String {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client");
    text(client.get(app.url("/")).header(COOKIE, cookie).send().await).await
}

/// The whole story against one backend.
async fn scenario(args: Vec<String>, durable: bool) {
    let mut app = App::start(&args);
    let alice = Browser::new();

    // 1, 2, 3; the first response sets the cookie.
    assert_eq!(alice.get(&app).await, "1");
    let first_cookie = alice.cookie(&app).expect("the first response sets the session cookie");
    assert_eq!(alice.get(&app).await, "2");
    assert_eq!(alice.get(&app).await, "3");
    assert_eq!(
        alice.cookie(&app).as_deref(),
        Some(first_cookie.as_str()),
        "same session"
    );

    // A second client has its own session.
    let bob = Browser::new();
    assert_eq!(bob.get(&app).await, "1");
    assert_ne!(bob.cookie(&app), alice.cookie(&app));

    // Durable backends: stop the app, start it again; the count carries on.
    if durable {
        let args = app.stop();
        app = App::start(&args);
        assert_eq!(alice.get(&app).await, "4", "the session survived the restart");
        assert_eq!(bob.get(&app).await, "2");
    } else {
        assert_eq!(alice.get(&app).await, "4");
    }

    // Login: a new id, the same data; the old id no longer loads.
    let before_login = alice.cookie(&app).expect("a session");
    alice.post(&app, "/login").await;
    let after_login = alice.cookie(&app).expect("still a session");
    assert_ne!(after_login, before_login, "login rotates the session id");
    assert_eq!(alice.get(&app).await, "5", "the data moved to the new id");
    assert_eq!(
        replay(&app, &before_login).await,
        "1",
        "the pre-login id starts a new session"
    );
    assert_eq!(
        alice.get(&app).await,
        "6",
        "and the replay did not touch the live session"
    );

    // Logout: the session is deleted; the old cookie starts again at 1.
    let before_logout = alice.cookie(&app).expect("a session");
    alice.post(&app, "/logout").await;
    assert_eq!(alice.cookie(&app), None, "logout removes the cookie");
    assert_eq!(
        replay(&app, &before_logout).await,
        "1",
        "the logged-out session is gone"
    );
    assert_eq!(alice.get(&app).await, "1", "a new session after logout");

    // A malformed cookie is just "no session".
    assert_eq!(replay(&app, "id=../../etc/passwd").await, "1");
    assert_eq!(replay(&app, "id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await, "1");
    drop(app);
}

fn dir_args(backend: &str, dir: &Path) -> Vec<String> {
    vec![
        "--store".into(),
        backend.into(),
        "--dir".into(),
        dir.to_str().expect("UTF-8 temp path").into(),
    ]
}

/// Sixteen clients sharing one cookie, twenty visits each, after a first
/// visit: the counts they answered and the count a last visit answers.
async fn concurrent_visits(args: &[String]) -> (Vec<u64>, u64) {
    let app = Arc::new(App::start(args));
    let browser = Arc::new(Browser::new());
    assert_eq!(browser.get(&app).await, "1");
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (app, browser) = (Arc::clone(&app), Arc::clone(&browser));
        tasks.push(tokio::spawn(async move {
            let mut counts = Vec::new();
            for _ in 0..VISITS_EACH {
                counts.push(browser.get(&app).await);
            }
            counts
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        for count in t.await.expect("no panic") {
            counts.push(
                count
                    .parse()
                    .unwrap_or_else(|_| panic!("{args:?}: a count, not {count:?}")),
            );
        }
    }
    counts.sort_unstable();
    let last = browser.get(&app).await.parse().expect("a count");
    (counts, last)
}

/// Clients sharing one cookie in [`concurrent_visits`].
const CLIENTS: u64 = 16;
/// Visits of each client in [`concurrent_visits`].
const VISITS_EACH: u64 = 20;

/// On the layer, every one of 320 concurrent visits on one cookie counts
/// once and none fails (a hot session's commits take turns in the app).
async fn sixteen_concurrent_visits_count_sixteen(args: &[String]) {
    let (counts, last) = concurrent_visits(args).await;
    let visits = CLIENTS * VISITS_EACH;
    assert_eq!(
        counts,
        (2..=visits + 1).collect::<Vec<u64>>(),
        "{args:?}: every count once"
    );
    assert_eq!(last, visits + 2, "{args:?}: 1 + 320 + 1 visits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend() {
    let args: Vec<String> = vec!["--store".into(), "memory".into()];
    scenario(args.clone(), false).await;
    sixteen_concurrent_visits_count_sixteen(&args).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_sessions_middleware_still_serves() {
    let args: Vec<String> = ["--store", "memory", "--middleware", "tower-sessions"]
        .map(String::from)
        .into();
    let app = App::start(&args);
    app.wait_for(&["sessions through tower-sessions"]);
    drop(app);
    scenario(args.clone(), false).await;
    // Last writer wins: concurrent visits may lose counts (how many varies),
    // more often where a write takes a while (files, fsynced).
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut file = dir_args("file", dir.path());
    file.extend(["--middleware", "tower-sessions"].map(String::from));
    let (counts, last) = concurrent_visits(&file).await;
    let exact = CLIENTS * VISITS_EACH + 2;
    println!(
        "tower-sessions: {} concurrent visits on one cookie; the next visit counted {last} \
         ({exact} without lost updates): {} counts lost",
        counts.len(),
        exact.saturating_sub(last)
    );
    assert!(last <= exact);
}

/// The `Set-Cookie` of a first visit.
async fn first_set_cookie(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let app = App::start(&args);
    let response = reqwest::get(app.url("/")).await.expect("an answer");
    let set_cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .expect("a first visit sets the cookie")
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert_eq!(response.text().await.expect("a body"), "1\n");
    set_cookie
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_is_secure_by_default_and_configurable() {
    let default = first_set_cookie(&["--store", "memory"]).await;
    let id = session_in(default.split(';').next().unwrap());
    // Max-Age is the time left until the stored deadline, in whole seconds:
    // a millisecond between the commit and the answer makes it 604799.
    let seven_days =
        [604_800, 604_799].map(|age| format!("id={id}; Max-Age={age}; Path=/; HttpOnly; SameSite=Lax; Secure"));
    assert!(seven_days.contains(&default), "seven days of inactivity: {default}");
    let dev = first_set_cookie(&["--store", "memory", "--secure", "false", "--same-site", "strict"]).await;
    assert!(dev.ends_with("; HttpOnly; SameSite=Strict"), "{dev}");
    for middleware in ["layer", "tower-sessions"] {
        let cookie = first_set_cookie(&["--store", "memory", "--middleware", middleware, "--secure=false"]).await;
        assert!(
            !cookie.contains("Secure") && cookie.contains("HttpOnly"),
            "{middleware}: {cookie}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_backend() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let sessions = dir.path().join("sessions");
    scenario(dir_args("file", &sessions), true).await;
    assert!(sessions.is_dir(), "the store made --dir");
    sixteen_concurrent_visits_count_sixteen(&dir_args("file", &sessions)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_backend_is_the_file_store_in_counter_sessions() {
    let cwd = tempfile::tempdir().expect("a temp dir");
    let app = App::start_in(&[], cwd.path());
    let browser = Browser::new();
    assert_eq!(browser.get(&app).await, "1");
    assert_eq!(browser.get(&app).await, "2");
    drop(app);
    let dir = cwd.path().join("counter-sessions");
    let files = walk(&dir);
    assert_eq!(files, 1, "one session file under {}", dir.display());
}

/// The number of session files under `dir` (names without a dot).
fn walk(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("a readable directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            count += walk(&path);
        } else if !entry.file_name().to_string_lossy().contains('.') {
            count += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().expect("a temp dir");
    scenario(dir_args("sqlite", dir.path()), true).await;
    assert!(dir.path().join("sessions.db").exists(), "the database is in --dir");
    sixteen_concurrent_visits_count_sixteen(&dir_args("sqlite", dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend() {
    let Some(url) = std::env::var("SESSION_STORE_REDIS_URL").ok().filter(|u| !u.is_empty()) else {
        let how = "SESSION_STORE_REDIS_URL is not set: run `store-redis/scripts/with-redis cargo test -p counter` \
                   (it starts a private redis-server; apt-get install redis-server if missing)";
        if std::env::var("SESSION_STORE_STRICT").is_ok_and(|v| !v.is_empty() && v != "0") {
            panic!("{how}");
        }
        // Straight to the stderr stream, past the test harness capture, so the skip shows.
        let _ = writeln!(std::io::stderr(), "SKIPPED counter redis_backend: {how}");
        return;
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let prefix = format!("counter-e2e:{}-{nanos}:", std::process::id());
    let args = vec![
        "--store".into(),
        "redis".into(),
        "--redis-url".into(),
        url.clone(),
        "--redis-prefix".into(),
        prefix.clone(),
    ];
    scenario(args.clone(), true).await;
    log_out_everywhere_story(&args).await;
    sixteen_concurrent_visits_count_sixteen(&args).await;

    // A key of the wrong type where the session is: Redis answers WRONGTYPE,
    // the store calls that record undecodable, and to the visitor the
    // session is simply gone: a fresh one, the detail in the log.
    let app = App::start(&args);
    let alice = Browser::new();
    assert_eq!(alice.get(&app).await, "1");
    let id = session_in(&alice.cookie(&app).expect("a session"));
    let store = session_store_redis::RedisStore::builder(url.clone())
        .prefix(prefix.clone())
        .build()
        .await
        .expect("Redis answers");
    let client = redis::Client::open(url.as_str()).expect("a Redis URL");
    let mut conn = client.get_multiplexed_async_connection().await.expect("a connection");
    let _: () = redis::cmd("SET")
        .arg(store.key(&id))
        .arg("a string, not a hash")
        .query_async(&mut conn)
        .await
        .expect("SET");
    assert_eq!(alice.get(&app).await, "1", "a fresh session, not an error page");
    let fresh = session_in(&alice.cookie(&app).expect("a new session"));
    assert_ne!(fresh, id);
    assert_eq!(alice.get(&app).await, "2");
    app.wait_for(&[&id.fingerprint().to_string(), "WARN", "WRONGTYPE"]);
    assert!(app.said(&id.to_string()).is_empty(), "the log never holds the id");
    session_store_core::SessionStore::clear(&store).await.expect("clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend() {
    let Some(url) = std::env::var("SESSION_STORE_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        let how = "SESSION_STORE_POSTGRES_URL is not set: run `store-postgres/scripts/with-postgres cargo test -p \
                   counter` (it starts a private PostgreSQL; apt-get install postgresql if missing)";
        if std::env::var("SESSION_STORE_STRICT").is_ok_and(|v| !v.is_empty() && v != "0") {
            panic!("{how}");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED counter postgres_backend: {how}");
        return;
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let table = format!("counter_e2e_{}_{nanos}", std::process::id());
    let args = vec![
        "--store".into(),
        "postgres".into(),
        "--postgres-url".into(),
        url.clone(),
        "--postgres-table".into(),
        table.clone(),
    ];
    scenario(args.clone(), true).await;
    log_out_everywhere_story(&args).await;
    sixteen_concurrent_visits_count_sixteen(&args).await;

    // A body that does not decode where the session is: to the visitor the
    // session is simply gone, a fresh one, the detail in the log.
    let app = App::start(&args);
    let alice = Browser::new();
    assert_eq!(alice.get(&app).await, "1");
    let id = session_in(&alice.cookie(&app).expect("a session"));
    let store = session_store_postgres::PostgresStore::builder(url.clone())
        .table(table.clone())
        .build()
        .await
        .expect("PostgreSQL answers");
    let client = store.pool().get().await.expect("a connection");
    let changed = client
        .execute(
            &format!("UPDATE \"{table}\" SET body = '\\x07' WHERE id = $1"),
            &[&id.to_string()],
        )
        .await
        .expect("UPDATE");
    assert_eq!(changed, 1);
    assert_eq!(alice.get(&app).await, "1", "a fresh session, not an error page");
    let fresh = session_in(&alice.cookie(&app).expect("a new session"));
    assert_ne!(fresh, id);
    assert_eq!(alice.get(&app).await, "2");
    app.wait_for(&[&id.fingerprint().to_string(), "WARN"]);
    assert!(app.said(&id.to_string()).is_empty(), "the log never holds the id");
    client
        .batch_execute(&format!(
            "DROP TABLE \"{table}\"; DELETE FROM session_store_schema WHERE table_name = '{table}'"
        ))
        .await
        .expect("drop the table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_backend() {
    let Some(url) = std::env::var("SESSION_STORE_MYSQL_URL").ok().filter(|u| !u.is_empty()) else {
        let how = "SESSION_STORE_MYSQL_URL is not set: run `store-mysql/scripts/with-mariadb cargo test -p \
                   counter` (it starts a private MariaDB; apt-get install mariadb-server if missing)";
        if std::env::var("SESSION_STORE_STRICT").is_ok_and(|v| !v.is_empty() && v != "0") {
            panic!("{how}");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED counter mysql_backend: {how}");
        return;
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let table = format!("counter_e2e_{}_{nanos}", std::process::id());
    let args = vec![
        "--store".into(),
        "mysql".into(),
        "--mysql-url".into(),
        url.clone(),
        "--mysql-table".into(),
        table.clone(),
    ];
    scenario(args.clone(), true).await;
    log_out_everywhere_story(&args).await;
    sixteen_concurrent_visits_count_sixteen(&args).await;
    let app = App::start(&args);
    assert!(app.said("sst:sst@").is_empty(), "the password is never shown");
    drop(app);
    let store = session_store_mysql::MysqlStore::builder(url)
        .table(table)
        .build()
        .await
        .expect("MySQL answers");
    session_store_core::SessionStore::clear(&store).await.expect("clear");
    drop(store);
    mysql_counts_across_a_server_restart().await;
}

/// The counter counts on across a restart of its MariaDB: requests while
/// the server is down fail (503), and the same process, with no restart of
/// its own, counts on from where it was once the server is back. Part of
/// [`mysql_backend`], after the rest: the restart takes the server away
/// from every test using it.
async fn mysql_counts_across_a_server_restart() {
    let Some([url, restart]) = service_vars(
        "mysql_counts_across_a_server_restart",
        ["SESSION_STORE_MYSQL_URL", "SESSION_STORE_MYSQL_RESTART"],
        "store-mysql/scripts/with-mariadb",
    ) else {
        return;
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let table = format!("counter_restart_{}_{nanos}", std::process::id());
    let args: Vec<String> = vec![
        "--store".into(),
        "mysql".into(),
        "--mysql-url".into(),
        url,
        "--mysql-table".into(),
        table,
    ];
    let app = App::start(&args);
    let visitor = Browser::new();
    for n in 1..=3 {
        assert_eq!(visitor.get(&app).await, n.to_string());
    }
    let status = tokio::process::Command::new(&restart)
        .status()
        .await
        .expect("the restart script runs");
    assert!(status.success(), "the restart script failed");
    // The pool's connections died with the server: the first calls may
    // fail (503, never a count from nowhere) until fresh ones are made.
    assert_eq!(
        count_once_back(&app, &visitor).await,
        "4",
        "the count goes on from the stored 3"
    );
    assert_eq!(visitor.get(&app).await, "5");
}

/// The values of `vars`, or `None` after saying how to get them (a failure
/// under `SESSION_STORE_STRICT=1`).
fn service_vars<const N: usize>(test: &str, vars: [&str; N], script: &str) -> Option<[String; N]> {
    let values = vars.map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()));
    if values.iter().all(Option::is_some) {
        return Some(values.map(Option::unwrap_or_default));
    }
    let how = format!("{} not set: run `{script} cargo test -p counter`", vars.join(" and "));
    if std::env::var("SESSION_STORE_STRICT").is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("{how}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED counter {test}: {how}");
    None
}

/// The visitor's next count once the app answers again: every answer
/// before is a 503 (never an error page, never a count from nowhere).
async fn count_once_back(app: &App, visitor: &Browser) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = visitor.client.get(app.url("/")).send().await.expect("the app answers");
        let status = response.status();
        let body = response.text().await.expect("a body");
        if status.is_success() {
            return body.trim().to_owned();
        }
        assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the counter did not recover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The counter counts on across a Sentinel failover: its master killed, the
/// replica promoted, the same process follows it (its `--redis-url` is a
/// `redis+sentinel://` URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_counts_across_a_failover() {
    let Some([url, kill]) = service_vars(
        "redis_sentinel_counts_across_a_failover",
        [
            "SESSION_STORE_REDIS_SENTINEL_URL",
            "SESSION_STORE_REDIS_SENTINEL_KILL_MASTER",
        ],
        "store-redis/scripts/with-redis",
    ) else {
        return;
    };
    // The sentinels must know the replica and each other before a failover
    // can be agreed.
    let hosts = url
        .trim_start_matches("redis+sentinel://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    'ready: loop {
        assert!(std::time::Instant::now() < deadline, "the sentinels never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
        for host in hosts.split(',') {
            let client = redis::Client::open(format!("redis://{host}")).expect("a sentinel URL");
            let Ok(mut c) = client.get_multiplexed_async_connection().await else {
                continue 'ready;
            };
            let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg("with-redis")
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            let peers: Vec<redis::Value> = redis::cmd("SENTINEL")
                .arg("SENTINELS")
                .arg("with-redis")
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            if replicas.is_empty() || peers.len() < 2 {
                continue 'ready;
            }
        }
        break;
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let args: Vec<String> = vec![
        "--store".into(),
        "redis".into(),
        "--redis-url".into(),
        url,
        "--redis-prefix".into(),
        format!("counter-failover:{}-{nanos}:", std::process::id()),
    ];
    let app = App::start(&args);
    let visitor = Browser::new();
    for n in 1..=3 {
        assert_eq!(visitor.get(&app).await, n.to_string());
    }
    let status = tokio::process::Command::new(&kill)
        .status()
        .await
        .expect("the kill script runs");
    assert!(status.success(), "the kill script failed");
    assert_eq!(
        count_once_back(&app, &visitor).await,
        "4",
        "the promoted replica has the 3"
    );
    assert_eq!(visitor.get(&app).await, "5");
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_counter"))
        .args(["--store", "mongo"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown store \"mongo\""), "{stderr}");
}

#[test]
fn an_unreachable_redis_fails_with_the_whole_chain_of_causes() {
    // A free loopback port nobody listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let output = Command::new(env!("CARGO_BIN_EXE_counter"))
        .args(["--store", "redis", "--redis-url", &url, "--port", "0"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot use Redis at {url}")), "{stderr}");
    // What failed, and the cause at the bottom of the chain.
    assert!(stderr.contains("Redis failed while connecting"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("refused"),
        "the root cause is shown: {stderr}"
    );
    assert_eq!(
        stderr.matches("Connection refused").count(),
        1,
        "each cause is said once: {stderr}"
    );
}

/// The counter with the environment that could change its answer removed.
fn counter_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_counter"));
    for name in [
        "SESSION_STORE",
        "REDIS_URL",
        "DATABASE_URL",
        "SESSION_DIR",
        "PORT",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command
}

#[test]
fn a_redis_password_never_shows() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    for url in [
        format!("redis://:s3cret-pw@127.0.0.1:{port}/"),
        format!("redis://app:s3cret-pw@127.0.0.1:{port}/0"),
    ] {
        let output = counter_command()
            .args(["--store", "redis", "--redis-url", &url, "--port", "0"])
            .output()
            .expect("the binary runs");
        assert_eq!(output.status.code(), Some(1));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(said.contains("cannot use Redis at redis://"), "{said}");
        assert!(said.contains(":***@127.0.0.1"), "the URL is shown redacted: {said}");
        assert!(!said.contains("s3cret-pw"), "the password is never shown: {said}");
    }
}

#[test]
fn network_stores_never_default_to_a_server() {
    for (store, flag) in [
        ("postgres", "--postgres-url"),
        ("redis", "--redis-url"),
        ("mysql", "--mysql-url"),
    ] {
        let output = counter_command()
            .args(["--store", store, "--port", "0"])
            .output()
            .expect("the binary runs");
        assert_eq!(output.status.code(), Some(2), "{store}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("--store {store} needs {flag}")), "{stderr}");
    }
}

#[test]
fn a_closed_stdout_never_panics() {
    // `counter --help | head -0`: the reader is gone before anything is written.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let output = counter_command()
        .arg("--help")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The server itself: its startup lines go nowhere, and it serves on.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut child = counter_command()
        .args(["--store", "memory", "--port", "0"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let started = lines.by_ref().find(|l| l.contains("counter started"));
    assert!(started.is_some(), "the app logs that it started");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().expect("the child's status").is_none(),
        "the app still runs after writing to a closed stdout"
    );
    let _ = child.kill();
    let _ = child.wait();
    let rest: Vec<String> = lines.collect();
    assert!(!rest.iter().any(|l| l.contains("panicked")), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_file_defaults_do_not_collide() {
    let cwd = tempfile::tempdir().expect("a temp dir");
    let app = App::start_in(&["--store".into(), "sqlite".into()], cwd.path());
    let browser = Browser::new();
    assert_eq!(browser.get(&app).await, "1");
    drop(app);
    let sqlite = cwd.path().join("counter-sqlite");
    assert!(sqlite.join("sessions.db").exists(), "the database in ./counter-sqlite");
    assert!(
        !cwd.path().join("counter-sessions").exists(),
        "the file store's default is left alone"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&sqlite).expect("the directory").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the SQLite directory is owner-only");
    }
    let app = App::start_in(&[], cwd.path());
    assert_eq!(Browser::new().get(&app).await, "1");
    drop(app);
    assert_eq!(
        walk(&cwd.path().join("counter-sessions")),
        1,
        "one session file, no database beside it"
    );
}

#[test]
fn a_store_directory_that_cannot_be_made_fails_with_its_cause() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("a file");
    for backend in ["file", "sqlite"] {
        let output = Command::new(env!("CARGO_BIN_EXE_counter"))
            .args(dir_args(backend, &file.join("sessions")))
            .args(["--port", "0"])
            .output()
            .expect("the binary runs");
        assert_eq!(output.status.code(), Some(1), "{backend}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("Not a directory"),
            "{backend}: the root cause is shown: {stderr}"
        );
    }
}

/// The session id in a `Cookie` header (`id=...`).
fn session_in(cookie: &str) -> SessionId {
    cookie
        .split("; ")
        .find_map(|c| c.strip_prefix("id="))
        .expect("the id cookie")
        .parse()
        .expect("a session id")
}

/// The file under `dir` named `name`.
fn find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find(&path, name) {
                return Some(found);
            }
        } else if entry.file_name().to_str() == Some(name) {
            return Some(path);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_session_file_gives_a_fresh_count() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let sessions = dir.path().join("sessions");
    let app = App::start(&dir_args("file", &sessions));
    let (alice, bob) = (Browser::new(), Browser::new());
    assert_eq!(alice.get(&app).await, "1");
    assert_eq!(alice.get(&app).await, "2");
    assert_eq!(bob.get(&app).await, "1");
    let damaged = session_in(&alice.cookie(&app).expect("a session"));
    let file = find(&sessions, &damaged.to_string()).expect("the session's file");
    std::fs::write(&file, b"\x07garbage, not a session record").expect("damage it");

    assert_eq!(alice.get(&app).await, "1", "a fresh session, answered normally");
    let fresh = session_in(&alice.cookie(&app).expect("a session"));
    assert_ne!(fresh, damaged, "under a fresh id");
    assert_eq!(alice.get(&app).await, "2");
    assert_eq!(bob.get(&app).await, "2", "another visitor is untouched");

    let warning = app.wait_for(&[&damaged.fingerprint().to_string(), "WARN", "could not be decoded"]);
    assert!(!warning.is_empty());
    assert!(app.said(&damaged.to_string()).is_empty(), "the log never holds the id");
}

async fn store_error_gives_a_generic_body(middleware: &[&str]) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let sessions = dir.path().join("sessions");
    let mut args = dir_args("file", &sessions);
    args.extend(middleware.iter().map(|a| (*a).to_owned()));
    let app = App::start(&args);
    let alice = Browser::new();
    assert_eq!(alice.get(&app).await, "1");
    let cookie = alice.cookie(&app).expect("a session");
    let id = session_in(&cookie);
    // A directory in place of the session file: that record's problem
    // only, a fresh session answered normally, a warning in the log.
    let file = find(&sessions, &id.to_string()).expect("the session's file");
    std::fs::remove_file(&file).expect("remove it");
    std::fs::create_dir(&file).expect("a directory in its place");
    assert_eq!(alice.get(&app).await, "1", "a fresh session, not an error page");
    app.wait_for(&[&id.fingerprint().to_string(), "WARN"]);

    // An I/O failure of the store (a file where the session's shard
    // directory was): 503 (a retry may help), generic body.
    let id = session_in(&alice.cookie(&app).expect("the fresh session"));
    let file = find(&sessions, &id.to_string()).expect("the fresh session's file");
    let shard = file.parent().expect("its shard");
    std::fs::remove_dir_all(shard).expect("remove the shard");
    std::fs::write(shard, b"not a directory").expect("a file in its place");
    let response = alice.client.get(app.url("/")).send().await.expect("an answer");
    assert_eq!(response.status(), expected_status(middleware));
    assert_eq!(
        response.text().await.expect("a body"),
        "internal error\n",
        "a generic body"
    );

    // The detail is in the log, with the fingerprint, never the id.
    app.wait_for(&[&id.fingerprint().to_string(), "ERROR", "Not a directory"]);
    assert!(app.said(&id.to_string()).is_empty(), "the log never holds the id");

    // A failure writing a new visitor's session (tower-sessions saves it
    // when the response is built, and answers an empty 500 when that
    // fails): a file where the store's directory was.
    std::fs::remove_dir_all(&sessions).expect("remove the store directory");
    std::fs::write(&sessions, b"not a directory").expect("a file in its place");
    let response = Browser::new().client.get(app.url("/")).send().await.expect("an answer");
    assert_eq!(response.status(), expected_status(middleware));
    assert_eq!(
        response.text().await.expect("a body"),
        "internal error\n",
        "the same generic body"
    );
    for _ in 0..100 {
        if app
            .said("Not a directory")
            .iter()
            .filter(|l| l.contains("ERROR"))
            .count()
            >= 2
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the second failure is not in the log");
}

/// The status of a store's I/O failure: 503 on the layer (a retry may
/// help), 500 through tower-sessions (which has no such distinction).
fn expected_status(middleware: &[&str]) -> reqwest::StatusCode {
    if middleware.is_empty() {
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    } else {
        reqwest::StatusCode::INTERNAL_SERVER_ERROR
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_gives_a_generic_body() {
    store_error_gives_a_generic_body(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_gives_a_generic_body_through_tower_sessions() {
    store_error_gives_a_generic_body(&["--middleware", "tower-sessions"]).await;
}

#[test]
fn the_memory_capacity_is_reported() {
    for (args, expected) in [
        (vec![], "at most 100000 sessions"),
        (vec!["--memory-capacity", "500"], "at most 500 sessions"),
        (vec!["--memory-capacity", "unbounded"], "unbounded"),
        (vec!["--memory-capacity", "0"], "unbounded"),
    ] {
        let mut all: Vec<String> = vec!["--store".into(), "memory".into()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let app = App::start(&all);
        app.wait_for(&["counter: session store: memory", expected]);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_counter"))
        .args(["--store", "memory", "--memory-capacity", "lots"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid memory capacity"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_sets_what_is_logged() {
    let memory: Vec<String> = vec!["--store".into(), "memory".into()];
    // Default: info and above.
    let app = App::start(&memory);
    app.wait_for(&["INFO", "counter started"]);
    drop(app);
    // RUST_LOG=warn: the info line is gone, warnings still show (SameSite=None
    // on a cookie that is not Secure makes the layer warn).
    let mut args = memory.clone();
    args.extend(["--same-site", "none", "--secure", "false"].map(String::from));
    let app = App::start_with(&args, Path::new("."), &[("RUST_LOG", "warn")]);
    assert_eq!(replay(&app, &format!("id={}", SessionId::random())).await, "1");
    app.wait_for(&["WARN", "SameSite=None without Secure"]);
    assert!(
        app.said("counter started").is_empty(),
        "RUST_LOG=warn hides info events"
    );
}

/// Log in as one user from two browsers, list the sessions, log out
/// everywhere from one: both are gone. `/sessions` shows fingerprints only.
async fn log_out_everywhere_story(args: &[String]) {
    let app = App::start(args);
    let (laptop, phone, other) = (Browser::new(), Browser::new(), Browser::new());
    for b in [&laptop, &phone, &other] {
        assert_eq!(b.get(&app).await, "1");
    }
    laptop.post(&app, "/login/alice").await;
    phone.post(&app, "/login/alice").await;
    other.post(&app, "/login/bob").await;
    let listed = text(laptop.client.get(app.url("/sessions")).send().await).await;
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert_eq!(listed.matches(" *").count(), 1, "this device is marked: {listed}");
    let id = session_in(&laptop.cookie(&app).expect("a session"));
    assert!(listed.contains(&id.fingerprint().to_string()), "{listed}");
    assert!(!listed.contains(&id.to_string()), "never the id: {listed}");
    let said = phone.post(&app, "/logout-everywhere").await;
    assert_eq!(said, "logged out everywhere: 2 sessions ended");
    assert_eq!(laptop.get(&app).await, "1", "the laptop's session ended too");
    assert_eq!(phone.get(&app).await, "1");
    assert_eq!(other.get(&app).await, "2", "bob's session is untouched");
    let response = other.client.get(app.url("/sessions")).send().await.expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    // Without a login: 401, not an empty list.
    let anonymous = Browser::new();
    let response = anonymous
        .client
        .get(app.url("/sessions"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
}

/// With `--max-sessions-per-user 2`, a third login of one user ends that
/// user's oldest session; the other user's is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_past_the_cap_ends_the_oldest_device() {
    let args: Vec<String> = ["--store", "memory", "--max-sessions-per-user", "2"]
        .map(String::from)
        .into();
    let app = App::start(&args);
    let devices = [Browser::new(), Browser::new(), Browser::new()];
    let bob = Browser::new();
    assert_eq!(bob.get(&app).await, "1");
    bob.post(&app, "/login/bob").await;
    for d in &devices {
        assert_eq!(d.get(&app).await, "1");
        d.post(&app, "/login/alice").await;
        // Creation times are in milliseconds: keep the order plain.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let listed = text(devices[2].client.get(app.url("/sessions")).send().await).await;
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert_eq!(devices[0].get(&app).await, "1", "the oldest device was logged out");
    assert_eq!(devices[1].get(&app).await, "2");
    assert_eq!(devices[2].get(&app).await, "2");
    assert_eq!(bob.get(&app).await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_out_everywhere_on_stores_with_an_owner_index() {
    log_out_everywhere_story(&["--store".into(), "memory".into()]).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    log_out_everywhere_story(&dir_args("sqlite", dir.path())).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    log_out_everywhere_story(&dir_args("file", dir.path())).await;
}
