//! The switch from tower-sessions, end to end: visitors count on a
//! tower-sessions app over its sqlx SQLite store (a process of its own:
//! `benches/sqlx-peers/examples/tower_sessions_counter.rs`, since sqlx
//! links another SQLite than ours); the app stops; `session-store
//! import-tower-sessions` brings the sessions over; the native layer over
//! our SQLite store serves the same cookies, and each visitor's count goes
//! on where it was.
//!
//! The old app's binary comes from `TOWER_SESSIONS_COUNTER` (`scripts/test`
//! builds it and sets it); without it the test says so and skips, unless
//! `SESSION_STORE_STRICT=1`, where it fails.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use axum::Router;
use axum::routing::get;
use common::{run, sqlite_url};
use session_store_sqlite::SqliteStore;
use session_store_tower::{Session, SessionError, SessionLayer};

/// `GET /` on the native layer: the counter's handler.
async fn visit(session: Session) -> Result<String, SessionError> {
    let count = session
        .update(|s| {
            let count = s.get::<u64>("count")?.unwrap_or(0) + 1;
            s.insert("count", &count)?;
            Ok(count)
        })
        .await?;
    Ok(format!("{count}\n"))
}

/// The old app, killed when dropped.
struct OldApp(Child);

impl Drop for OldApp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A visit to `base` with `cookie` (the `id=...` pair), answering the
/// count and the cookie the answer set, if any.
async fn visit_with(client: &reqwest::Client, base: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut request = client.get(base);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let set = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    (response.text().await.unwrap(), set)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_keep_counting_across_the_import_and_the_switch() {
    let Some(binary) = common::env_or_skip("TOWER_SESSIONS_COUNTER") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let old_db = tmp.path().join("tower-sessions.db");
    let client = reqwest::Client::new();

    // Before: two visitors on tower-sessions.
    let mut old = OldApp(
        Command::new(&binary)
            .arg(&old_db)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{binary}: {e}")),
    );
    let mut line = String::new();
    BufReader::new(old.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().strip_prefix("listening on ").expect(&line).to_owned();
    let (one, Some(alice)) = visit_with(&client, &base, None).await else {
        panic!("a cookie")
    };
    assert_eq!(one, "1\n");
    for n in 2..=3 {
        assert_eq!(visit_with(&client, &base, Some(&alice)).await.0, format!("{n}\n"));
    }
    let (_, Some(bob)) = visit_with(&client, &base, None).await else {
        panic!("a cookie")
    };
    drop(old);

    // The import.
    let new_db = tmp.path().join("sessions.db");
    let imported = run(&[
        "--json",
        "import-tower-sessions",
        "--from",
        &format!("sqlite:{}", old_db.display()),
        "--to",
        &sqlite_url(&new_db),
    ]);
    assert_eq!(imported.code, 0, "{imported:?}");
    assert_eq!(imported.json()["imported"].as_u64(), Some(2), "{imported:?}");

    // After: the native layer, the same cookies.
    let store = SqliteStore::open(&new_db).unwrap();
    let app = Router::new()
        .route("/", get(visit))
        .layer(SessionLayer::new(store).secure(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    assert_eq!(visit_with(&client, &base, Some(&alice)).await.0, "4\n");
    assert_eq!(visit_with(&client, &base, Some(&bob)).await.0, "2\n");
    assert_eq!(visit_with(&client, &base, Some(&alice)).await.0, "5\n");
    assert_eq!(
        visit_with(&client, &base, None).await.0,
        "1\n",
        "a new visitor starts at one"
    );
}
