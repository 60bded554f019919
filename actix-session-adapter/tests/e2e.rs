//! The counter scenario through actix-web: `SessionMiddleware` with the
//! adapter over the in-memory store, driven request by request with the
//! cookies a browser would send.

use std::sync::Arc;

use actix_session::storage::{SessionKey, SessionStore as _};
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{Cookie, Key};
use actix_web::dev::ServiceResponse;
use actix_web::{App, HttpResponse, test, web};
use session_store_actix_session::Adapter;
use session_store_core::SessionStore as _;
use session_store_memory::MemoryStore;

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

#[actix_web::test]
async fn counter_scenario_through_actix_session() {
    let store = Arc::new(MemoryStore::new());
    let adapter = Adapter::from_arc(Arc::clone(&store));
    let key = Key::generate();
    let app = test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(adapter.clone(), key.clone())
                    .cookie_name(COOKIE.to_owned())
                    .cookie_secure(false)
                    .build(),
            )
            .route("/", web::get().to(visit))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout)),
    )
    .await;

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

    // Login renews the key and keeps the data; the old key no longer loads.
    let before_login = jar.clone();
    let (_, after_login) = call!(&app, "POST", "/login", jar.as_ref());
    assert_ne!(
        after_login.as_ref().map(Cookie::value),
        before_login.as_ref().map(Cookie::value),
        "login sets a new cookie"
    );
    let (body, next) = call!(&app, "GET", "/", after_login.as_ref());
    assert_eq!(body, "4", "the data moved to the new key");
    jar = next;
    let (body, _) = call!(&app, "GET", "/", before_login.as_ref());
    assert_eq!(body, "1", "the pre-login cookie starts a new session");

    // Logout deletes the session; the old cookie starts again at 1.
    let before_logout = jar.clone();
    let sessions = store.count().await.unwrap();
    let (_, after_logout) = call!(&app, "POST", "/logout", jar.as_ref());
    assert!(after_logout.is_none(), "logout removes the cookie");
    assert_eq!(store.count().await.unwrap(), sessions - 1, "the session was deleted");
    let (body, _) = call!(&app, "GET", "/", before_logout.as_ref());
    assert_eq!(body, "1");

    // A cookie that is not a valid signed/encrypted session cookie: a new session.
    let garbage = Cookie::new(COOKIE, "../../etc/passwd");
    let (body, _) = call!(&app, "GET", "/", Some(&garbage));
    assert_eq!(body, "1");
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
