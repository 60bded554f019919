//! Cookie mode end to end: an axum app behind `SessionLayer::cookie`,
//! served on a free port and driven by a real HTTP client. No store.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Browser, serve};
use reqwest::StatusCode;
use session_store_core::seal::KeyRing;
use session_store_core::{Error, Expiry, ManualClock};
use session_store_tower::CookieSessions;
use session_store_tower::{Session, SessionError, SessionLayer};

const MARKER: &str = "MARKER-visible-if-not-sealed";

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

async fn mark(session: Session) -> Result<&'static str, SessionError> {
    session.insert("note", MARKER).await?;
    Ok("marked")
}

async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session
        .get::<u64>("count")
        .await?
        .map_or_else(|| "none".to_owned(), |n| n.to_string()))
}

async fn login(session: Session) -> Result<String, SessionError> {
    session.log_in("alice").await?;
    Ok(format!("{:?}", session.owner().await?))
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.end().await?;
    Ok("bye")
}

async fn devices(session: Session) -> String {
    match session.owner_sessions().await {
        Err(e) if matches!(e.error(), Error::Unsupported(_)) => "unsupported".to_owned(),
        other => format!("{:?}", other.map(|r| r.len())),
    }
}

async fn everywhere(session: Session) -> String {
    match (
        session.log_out_everywhere().await,
        session.log_out_other_sessions().await,
    ) {
        (Err(a), Err(b))
            if matches!(a.error(), Error::Unsupported(_)) && matches!(b.error(), Error::Unsupported(_)) =>
        {
            "unsupported".to_owned()
        }
        _ => "supported?".to_owned(),
    }
}

async fn big(session: Session) -> Result<&'static str, SessionError> {
    session.insert("big", "x".repeat(4096)).await?;
    Ok("the handler answered")
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/count", get(count))
        .route("/mark", get(mark))
        .route("/get", get(read))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/devices", get(devices))
        .route("/everywhere", post(everywhere))
        .route("/big", get(big))
        .layer(layer)
}

fn ring(entries: &[(u8, u8)]) -> KeyRing {
    let text: Vec<String> = entries
        .iter()
        .map(|(id, fill)| format!("{id}:{}", format!("{fill:02x}").repeat(32)))
        .collect();
    KeyRing::parse(&text.join(",")).unwrap()
}

fn layer(keys: KeyRing, app_name: &str, clock: &ManualClock) -> SessionLayer {
    SessionLayer::cookie(CookieSessions::new(keys, app_name).clock(clock.shared()))
        .expiry(Expiry::IdleAndAbsolute {
            idle: Duration::from_secs(600),
            lifetime: Duration::from_secs(3600),
        })
        .secure(false)
}

/// The key id a sealed cookie names (its first byte).
fn key_id(cookie: &str) -> u8 {
    URL_SAFE_NO_PAD.decode(cookie).unwrap()[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_survives_a_restart_with_no_store_and_the_cookie_reveals_nothing() {
    let clock = ManualClock::at_system_time();
    let base = serve(app(layer(ring(&[(1, 0x11)]), "counter", &clock))).await;
    let browser = Browser::new(&base);
    let first = browser.get("/count").await;
    assert_eq!(first.body, "1");
    let cookie = browser.cookie_value().expect("a sealed cookie");
    assert_eq!(
        first.set_cookie,
        [format!("id={cookie}; Max-Age=600; Path=/; HttpOnly; SameSite=Lax")]
    );
    assert_eq!(browser.ok("/count").await, "2");
    assert_eq!(browser.ok("/mark").await, "marked");
    assert_eq!(browser.ok("/count").await, "3");
    let sealed = browser.cookie_value().unwrap();
    for needle in ["count", "note", "MARKER", "alice"] {
        assert!(!sealed.contains(needle), "{needle} in {sealed}");
    }
    let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
    assert!(
        !raw.windows(5).any(|w| w == b"count" || w == b"MARKE"),
        "sealed bytes reveal nothing"
    );

    // Another server (a restart, or another instance) with the same keys.
    let restarted = serve(app(layer(ring(&[(1, 0x11)]), "counter", &clock))).await;
    let browser2 = Browser::new(&restarted);
    browser2.set_cookie_value(Some(&sealed));
    assert_eq!(browser2.ok("/count").await, "4");
    // A read-only request inside the throttle window sets no cookie.
    let read = browser2.get("/get").await;
    assert_eq!((read.body.as_str(), read.set_cookie.len()), ("4", 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_truncated_garbage_and_foreign_cookies_are_fresh_sessions() {
    let clock = ManualClock::at_system_time();
    let base = serve(app(layer(ring(&[(1, 0x11)]), "counter", &clock))).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.ok("/count").await, "1");
    assert_eq!(browser.ok("/count").await, "2");
    let good = browser.cookie_value().unwrap();

    let mut flipped = good.clone().into_bytes();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let truncated = good[..good.len() - 4].to_owned();

    // Another app with the same key, and the same app name with another key.
    let other_app = Browser::new(&serve(app(layer(ring(&[(1, 0x11)]), "another-app", &clock))).await);
    assert_eq!(other_app.ok("/count").await, "1");
    let foreign_app = other_app.cookie_value().unwrap();
    let other_key = Browser::new(&serve(app(layer(ring(&[(1, 0x22)]), "counter", &clock))).await);
    assert_eq!(other_key.ok("/count").await, "1");
    let foreign_key = other_key.cookie_value().unwrap();

    for cookie in [
        flipped.as_str(),
        truncated.as_str(),
        foreign_app.as_str(),
        foreign_key.as_str(),
        "AAAA",
        "not-a-sealed-cookie",
        "\"quoted\"",
    ] {
        browser.set_cookie_value(Some(cookie));
        let answer = browser.get("/count").await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "1"),
            "{cookie:?}"
        );
        assert_ne!(browser.cookie_value().as_deref(), Some(cookie));
    }
    // The good cookie still works.
    browser.set_cookie_value(Some(&good));
    assert_eq!(browser.ok("/count").await, "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_absolute_deadlines_are_checked_with_the_clock() {
    let clock = ManualClock::at_system_time();
    let base = serve(app(layer(ring(&[(1, 0x11)]), "counter", &clock))).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.ok("/count").await, "1");
    let idle = browser.cookie_value().unwrap();
    clock.advance(Duration::from_secs(599));
    assert_eq!(browser.ok("/get").await, "1", "just inside the idle timeout");

    // A copy held since then expires at its idle deadline.
    let replay = Browser::new(&base);
    replay.set_cookie_value(Some(&idle));
    clock.advance(Duration::from_secs(1));
    assert_eq!(replay.ok("/get").await, "none", "at the idle deadline: gone");

    // Activity every 5 minutes never outlives the absolute lifetime.
    let browser = Browser::new(&base);
    assert_eq!(browser.ok("/count").await, "1");
    for n in 2..=12 {
        clock.advance(Duration::from_secs(300));
        assert_eq!(browser.ok("/count").await, n.to_string());
    }
    clock.advance(Duration::from_secs(300));
    assert_eq!(browser.ok("/count").await, "1", "past the hour: a fresh session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_keeps_visitors_and_reseals_them_then_retiring_ends_the_old_ones() {
    let clock = ManualClock::at_system_time();
    let old_server = Browser::new(&serve(app(layer(ring(&[(1, 0x11)]), "counter", &clock))).await);
    assert_eq!(old_server.ok("/count").await, "1");
    let under_1 = old_server.cookie_value().unwrap();
    assert_eq!(key_id(&under_1), 1);

    // Key 2 added last: it seals; key 1 still opens.
    let rotated = serve(app(layer(ring(&[(1, 0x11), (2, 0x22)]), "counter", &clock))).await;
    let visitor = Browser::new(&rotated);
    visitor.set_cookie_value(Some(&under_1));
    let read = visitor.get("/get").await;
    assert_eq!(read.body, "1", "the visitor is kept");
    assert_eq!(
        read.set_cookie.len(),
        1,
        "an unchanged session is sealed again under the new key"
    );
    let under_2 = visitor.cookie_value().unwrap();
    assert_eq!(key_id(&under_2), 2);
    assert_eq!(visitor.ok("/count").await, "2");

    // Key 1 retired: its cookies are fresh sessions, key 2's are kept.
    let mut retired = ring(&[(1, 0x11), (2, 0x22)]);
    retired.retire(1).unwrap();
    let after = serve(app(layer(retired, "counter", &clock))).await;
    let late = Browser::new(&after);
    late.set_cookie_value(Some(&under_1));
    assert_eq!(late.ok("/count").await, "1", "sealed under a retired key: fresh");
    let kept = Browser::new(&after);
    kept.set_cookie_value(visitor.cookie_value().as_deref());
    assert_eq!(kept.ok("/count").await, "3");
    // Key 1 simply left out of the configuration: the same.
    let without = Browser::new(&serve(app(layer(ring(&[(2, 0x22)]), "counter", &clock))).await);
    without.set_cookie_value(Some(&under_1));
    assert_eq!(without.ok("/count").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_session_is_refused_at_commit_with_a_generic_error() {
    let log = common::log();
    let clock = ManualClock::at_system_time();
    let base = serve(app(layer(ring(&[(1, 0x11)]), "counter", &clock))).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.ok("/count").await, "1");
    let before = browser.cookie_value();
    let answer = browser.get("/big").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{answer:?}");
    assert_eq!(answer.body, "internal error\n", "a generic body, not the handler's");
    assert!(answer.set_cookie.is_empty(), "no truncated cookie");
    assert_eq!(browser.cookie_value(), before);
    assert_eq!(browser.ok("/count").await, "2", "the session is as it was");
    assert!(
        !log.lines(&[
            "ERROR",
            "committing the session failed",
            "over this store's limit of 3840"
        ])
        .is_empty(),
        "the detail is in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_logout_and_what_cookie_mode_cannot_do() {
    let clock = ManualClock::at_system_time();
    let base = serve(app(layer(ring(&[(1, 0x11)]), "counter", &clock))).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.ok("/count").await, "1");
    let anonymous = browser.cookie_value().unwrap();
    let login = browser.post("/login").await;
    assert_eq!(login.body, "Some(\"alice\")");
    let logged_in = browser.cookie_value().unwrap();
    assert_ne!(logged_in, anonymous, "a fresh seal at login");
    assert_eq!(browser.ok("/count").await, "2", "data kept across login");
    assert_eq!(browser.ok("/devices").await, "unsupported");
    assert_eq!(browser.post("/everywhere").await.body, "unsupported");

    let out = browser.post("/logout").await;
    assert_eq!(out.set_cookie.len(), 1);
    assert!(out.set_cookie[0].starts_with("id=; Max-Age=0;"), "{:?}", out.set_cookie);
    assert_eq!(browser.cookie_value(), None);
    assert_eq!(browser.ok("/count").await, "1");

    // What the docs warn about: a copy of the logged-in cookie still opens.
    let replay = Browser::new(&base);
    replay.set_cookie_value(Some(&logged_in));
    assert_eq!(replay.ok("/get").await, "1", "no server-side revocation");
}
