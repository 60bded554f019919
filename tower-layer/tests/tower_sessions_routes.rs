//! tower-sessions' own route tests (its `tests/common/mod.rs`: the routes
//! `/insert`, `/get`, `/remove_value`, `/cycle_id`, `/flush`,
//! `/set_expiry`... and the assertions on their cookies), ported to the
//! native layer and run on every backend (Redis under
//! `store-redis/scripts/with-redis`). What the port changes, call by call,
//! is the guide's table (`session-store/guides/from-tower-sessions.md`); the
//! lines that differ from upstream beyond renamed calls are marked
//! `DIFFERENCE:` and listed in the guide's "Deliberate differences".
//!
//! Then the layer's answers to what a tower-sessions user relies on beyond
//! those routes: `is_empty`, `is_modified`, `always_save`, a cookie that
//! names no session left alone, and sessions carried in a header instead
//! of a cookie.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::{Backend, Counting, Kind};
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response, StatusCode};
use session_store_core::{Expiry, ManualClock, SessionId, SessionStore};
use session_store_tower::{SameSite, Session, SessionLayer};
use tower_service::Service as _;

/// The routes of tower-sessions' route tests, on the native `Session`.
fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { "Hello, world!" }))
        .route(
            "/insert",
            get(|session: Session| async move { session.insert("foo", 42).await.unwrap() }),
        )
        .route(
            "/get",
            get(|session: Session| async move { format!("{}", session.get::<usize>("foo").await.unwrap().unwrap()) }),
        )
        .route(
            "/get_value",
            get(|session: Session| async move {
                format!("{:?}", session.get::<serde_json::Value>("foo").await.unwrap())
            }),
        )
        .route(
            "/remove_value",
            get(|session: Session| async move {
                session.remove("foo").await.unwrap();
            }),
        )
        .route(
            "/cycle_id",
            get(|session: Session| async move {
                session.rotate().await.unwrap();
            }),
        )
        .route(
            "/flush",
            get(|session: Session| async move { session.end().await.unwrap() }),
        )
        .route(
            "/set_expiry",
            get(|session: Session| async move {
                let tomorrow = std::time::SystemTime::now() + Duration::from_secs(24 * 3600);
                let at = session_store_core::Timestamp::from_system_time(tomorrow);
                session.set_expiry(Some(Expiry::AtDateTime(at))).await.unwrap();
            }),
        )
        .route(
            "/expiry_then_fail",
            get(|session: Session| async move {
                session
                    .set_expiry(Some(Expiry::OnSessionEnd {
                        cap: Duration::from_secs(24 * 3600),
                    }))
                    .await
                    .unwrap();
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/remove_expiry",
            // DIFFERENCE: a browser-session cookie has a server-side cap here.
            get(|session: Session| async move {
                session
                    .set_expiry(Some(Expiry::OnSessionEnd {
                        cap: Duration::from_secs(24 * 3600),
                    }))
                    .await
                    .unwrap();
            }),
        )
}

/// One app of the port: a fresh store of `kind`, the layer as
/// tower-sessions' `build_app` sets it up (`max_age`: sliding expiry,
/// none: a browser-session cookie; an optional `Domain`).
struct App {
    router: Router,
    _backend: Backend,
}

impl App {
    async fn new(kind: Kind, test: &str, max_age: Option<Duration>, domain: Option<&str>) -> Option<Self> {
        let backend = Backend::open(
            kind,
            ManualClock::at_system_time().shared(),
            &format!("{kind:?} {test}"),
        )
        .await?;
        // DIFFERENCE: tower-sessions defaults to SameSite=Strict and a
        // browser-session cookie; the layer to Lax and two weeks' sliding
        // expiry (and a server-side cap on a browser session).
        let mut layer = SessionLayer::from_arc(Arc::clone(&backend.store)).same_site(SameSite::Strict);
        layer = layer.expiry(match max_age {
            Some(age) => Expiry::OnInactivity(age),
            None => Expiry::OnSessionEnd {
                cap: Duration::from_secs(24 * 3600),
            },
        });
        if let Some(domain) = domain {
            layer = layer.cookie_domain(domain);
        }
        Some(Self {
            router: routes().layer(layer),
            _backend: backend,
        })
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Response<Body> {
        let mut request = Request::builder().uri(uri);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        self.router
            .clone()
            .call(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }
}

/// The response's one `Set-Cookie`, parsed.
#[derive(Debug)]
struct SetCookie {
    name: String,
    value: String,
    attributes: Vec<(String, Option<String>)>,
}

impl SetCookie {
    fn of(response: &Response<Body>) -> Option<Self> {
        let mut all = response.headers().get_all(SET_COOKIE).iter();
        let text = all.next()?.to_str().unwrap().to_owned();
        assert!(all.next().is_none(), "one Set-Cookie at most");
        let mut parts = text.split("; ");
        let (name, value) = parts.next().unwrap().split_once('=').unwrap();
        let attributes = parts
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_owned())),
                None => (p.to_ascii_lowercase(), None),
            })
            .collect();
        Some(Self {
            name: name.to_owned(),
            value: value.to_owned(),
            attributes,
        })
    }

    fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref())
    }

    fn max_age(&self) -> Option<u64> {
        self.attribute("max-age").map(|v| v.unwrap().parse().unwrap())
    }

    /// What the browser sends back.
    fn pair(&self) -> String {
        format!("{}={}", self.name, self.value)
    }
}

async fn body(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: u64 = 24 * 3600;

async fn no_session_set(kind: Kind) {
    let Some(app) = App::new(kind, "no_session_set", Some(HOUR), None).await else {
        return;
    };
    let res = app.get("/", None).await;
    assert!(SetCookie::of(&res).is_none());
}

async fn bogus_session_cookie(kind: Kind) {
    let Some(app) = App::new(kind, "bogus_session_cookie", Some(HOUR), None).await else {
        return;
    };
    let res = app.get("/insert", Some("id=AAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = SetCookie::of(&res).unwrap();
    assert_ne!(cookie.value, "AAAAAAAAAAAAAAAAAAAAAA");
}

async fn malformed_session_cookie(kind: Kind) {
    let Some(app) = App::new(kind, "malformed_session_cookie", Some(HOUR), None).await else {
        return;
    };
    let res = app.get("/", Some("id=malformed")).await;
    assert_eq!(res.status(), StatusCode::OK);
    // DIFFERENCE: tower-sessions clears it; the layer leaves every cookie
    // alone unless it ends the session or hands out a new one (a clear by
    // name could wipe the cookie of a login that raced this request).
    assert!(SetCookie::of(&res).is_none());
    let res = app.get("/insert", Some("id=malformed")).await;
    assert_ne!(SetCookie::of(&res).unwrap().value, "malformed");
}

async fn insert_session(kind: Kind) {
    let Some(app) = App::new(kind, "insert_session", Some(HOUR), None).await else {
        return;
    };
    let cookie = SetCookie::of(&app.get("/insert", None).await).unwrap();
    assert_eq!(cookie.name, "id");
    assert_eq!(cookie.attribute("httponly"), Some(None));
    assert_eq!(cookie.attribute("samesite"), Some(Some("Strict")));
    assert!(cookie.max_age().is_some_and(|age| age <= HOUR.as_secs()));
    assert_eq!(cookie.attribute("secure"), Some(None));
    assert_eq!(cookie.attribute("path"), Some(Some("/")));
}

async fn session_max_age(kind: Kind) {
    let Some(app) = App::new(kind, "session_max_age", None, None).await else {
        return;
    };
    let cookie = SetCookie::of(&app.get("/insert", None).await).unwrap();
    assert_eq!(cookie.name, "id");
    assert_eq!(cookie.attribute("samesite"), Some(Some("Strict")));
    assert_eq!(cookie.max_age(), None);
    assert_eq!(cookie.attribute("secure"), Some(None));
}

async fn get_session(kind: Kind) {
    let Some(app) = App::new(kind, "get_session", Some(HOUR), None).await else {
        return;
    };
    let cookie = SetCookie::of(&app.get("/insert", None).await).unwrap();
    let res = app.get("/get", Some(&cookie.pair())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "42");
}

async fn get_no_value(kind: Kind) {
    let Some(app) = App::new(kind, "get_no_value", Some(HOUR), None).await else {
        return;
    };
    assert_eq!(body(app.get("/get_value", None).await).await, "None");
}

async fn remove_last_value(kind: Kind) {
    let Some(app) = App::new(kind, "remove_last_value", Some(HOUR), None).await else {
        return;
    };
    let cookie = SetCookie::of(&app.get("/insert", None).await).unwrap();
    app.get("/remove_value", Some(&cookie.pair())).await;
    assert_eq!(body(app.get("/get_value", Some(&cookie.pair())).await).await, "None");
}

async fn cycle_session_id(kind: Kind) {
    let Some(app) = App::new(kind, "cycle_session_id", Some(HOUR), None).await else {
        return;
    };
    let first = SetCookie::of(&app.get("/insert", None).await).unwrap();
    let second = SetCookie::of(&app.get("/cycle_id", Some(&first.pair())).await).unwrap();
    assert_ne!(first.value, second.value);
    assert_eq!(body(app.get("/get", Some(&second.pair())).await).await, "42");
    // Beyond upstream: the old id no longer finds the session.
    assert_eq!(body(app.get("/get_value", Some(&first.pair())).await).await, "None");
}

async fn flush_session(kind: Kind) {
    let Some(app) = App::new(kind, "flush_session", Some(HOUR), None).await else {
        return;
    };
    let cookie = SetCookie::of(&app.get("/insert", None).await).unwrap();
    let cleared = SetCookie::of(&app.get("/flush", Some(&cookie.pair())).await).unwrap();
    assert_eq!(cleared.value, "");
    assert_eq!(cleared.max_age(), Some(0));
    assert_eq!(cleared.attribute("path"), Some(Some("/")));
    assert_eq!(body(app.get("/get_value", Some(&cookie.pair())).await).await, "None");
}

async fn flush_with_domain(kind: Kind) {
    let Some(app) = App::new(kind, "flush_with_domain", Some(HOUR), Some("localhost")).await else {
        return;
    };
    let cookie = SetCookie::of(&app.get("/insert", None).await).unwrap();
    let cleared = SetCookie::of(&app.get("/flush", Some(&cookie.pair())).await).unwrap();
    assert_eq!(cleared.value, "");
    assert_eq!(cleared.max_age(), Some(0));
    assert_eq!(cleared.attribute("domain"), Some(Some("localhost")));
    assert_eq!(cleared.attribute("path"), Some(Some("/")));
}

/// Within a second of `expected` (upstream's tolerance).
fn about(actual: Option<u64>, expected: u64) {
    let actual = actual.expect("a Max-Age");
    assert!(
        actual.abs_diff(expected) <= 1,
        "Max-Age {actual}, expected about {expected}"
    );
}

async fn set_expiry(kind: Kind) {
    let Some(app) = App::new(kind, "set_expiry", Some(HOUR), Some("localhost")).await else {
        return;
    };
    let cookie = SetCookie::of(&app.get("/insert", None).await).unwrap();
    about(cookie.max_age(), HOUR.as_secs());
    let res = app.get("/set_expiry", Some(&cookie.pair())).await;
    let renewed = SetCookie::of(&res).unwrap();
    assert_eq!(renewed.value, cookie.value);
    about(renewed.max_age(), DAY);
}

async fn change_expiry_type(kind: Kind) {
    let Some(app) = App::new(kind, "change_expiry_type", None, Some("localhost")).await else {
        return;
    };
    let cookie = SetCookie::of(&app.get("/insert", None).await).unwrap();
    assert_eq!(cookie.max_age(), None);
    let renewed = SetCookie::of(&app.get("/set_expiry", Some(&cookie.pair())).await).unwrap();
    about(renewed.max_age(), DAY);

    let Some(app2) = App::new(kind, "change_expiry_type 2", Some(HOUR), Some("localhost")).await else {
        return;
    };
    let cookie = SetCookie::of(&app2.get("/insert", None).await).unwrap();
    about(cookie.max_age(), HOUR.as_secs());
    // A server error commits nothing, and so sends no cookie.
    assert!(SetCookie::of(&app2.get("/expiry_then_fail", Some(&cookie.pair())).await).is_none());
    let renewed = SetCookie::of(&app2.get("/remove_expiry", Some(&cookie.pair())).await).unwrap();
    assert_eq!(renewed.max_age(), None);
}

/// `is_empty`, `is_modified`, and the deadline a session's own policy gives.
async fn emptiness_modification_and_expiry_are_answered(kind: Kind) {
    let Some(backend) = Backend::open(
        kind,
        ManualClock::at_system_time().shared(),
        &format!("{kind:?} checks"),
    )
    .await
    else {
        return;
    };
    let checks = get(|session: Session| async move {
        let mut seen = Vec::new();
        seen.push(session.is_empty().await.unwrap());
        seen.push(session.is_modified().await.unwrap());
        session.insert("k", 1).await.unwrap();
        seen.push(session.is_empty().await.unwrap());
        seen.push(session.is_modified().await.unwrap());
        let before = session.expires_at().await.unwrap();
        session.set_expiry(Some(Expiry::OnInactivity(HOUR * 48))).await.unwrap();
        let after = session.expires_at().await.unwrap();
        assert_eq!(session.expiry().await.unwrap(), Expiry::OnInactivity(HOUR * 48));
        assert_eq!(after.saturating_duration_since(before), HOUR * 47);
        format!("{seen:?}")
    });
    let app = Router::new()
        .route("/checks", checks)
        .layer(SessionLayer::from_arc(Arc::clone(&backend.store)).expiry(Expiry::OnInactivity(HOUR)));
    let res = app
        .clone()
        .call(Request::get("/checks").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = SetCookie::of(&res).unwrap();
    about(cookie.max_age(), 48 * HOUR.as_secs());
    assert_eq!(body(res).await, "[true, false, false, true]");
    // A later request applies the layer's policy again (as tower-sessions).
    let id: SessionId = cookie.value.parse().unwrap();
    let stored = backend.store.load(&id).await.unwrap().unwrap();
    let now = backend.store.clock().now();
    assert_eq!(stored.expires_at.saturating_duration_since(now), HOUR * 48);
}

/// `always_save`: a request that never uses its session still moves its
/// deadline, with no throttle; without it, such a request costs no store
/// call at all.
async fn always_save_touches_a_session_the_handler_did_not_use(kind: Kind) {
    let clock = ManualClock::at_system_time();
    let Some(backend) = Backend::open(kind, clock.shared(), &format!("{kind:?} always_save")).await else {
        return;
    };
    let counting = Counting::new(Arc::clone(&backend.store));
    let writes = || counting.writes.load(Ordering::SeqCst);
    let shared: Arc<dyn SessionStore> = counting.clone();
    let app = |always: bool| {
        routes().layer(
            SessionLayer::from_arc(Arc::clone(&shared))
                .expiry(Expiry::OnInactivity(HOUR))
                .always_save(always),
        )
    };
    let call = |app: Router, cookie: Option<String>| async move {
        let mut request = Request::get("/");
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        app.clone().call(request.body(Body::empty()).unwrap()).await.unwrap()
    };
    let res = app(false)
        .clone()
        .call(Request::get("/insert").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = SetCookie::of(&res).unwrap();
    let id: SessionId = cookie.value.parse().unwrap();
    let first = shared.load(&id).await.unwrap().unwrap().expires_at;

    clock.advance(Duration::from_secs(1));
    let before = writes();
    assert!(SetCookie::of(&call(app(false), Some(cookie.pair())).await).is_none());
    assert_eq!(writes(), before, "unused and not always_save: nothing written");

    let res = call(app(true), Some(cookie.pair())).await;
    assert_eq!(writes(), before + 1, "always_save: one touch, a second later");
    let moved = shared.load(&id).await.unwrap().unwrap().expires_at;
    assert_eq!(moved.saturating_duration_since(first), Duration::from_secs(1));
    about(SetCookie::of(&res).unwrap().max_age(), HOUR.as_secs());
}

/// A cookie of the session's name that names no session, or cannot be a
/// session id, is left alone unless the request stores a session: clearing
/// it could undo a login a concurrent request just made.
async fn a_cookie_that_names_no_session_is_left_alone(kind: Kind) {
    let Some(app) = App::new(kind, "junk", Some(HOUR), None).await else {
        return;
    };
    for junk in ["id=malformed", "id=", "id=../../etc/passwd; other=1"] {
        let res = app.get("/get_value", Some(junk)).await;
        assert!(SetCookie::of(&res).is_none(), "{junk}");
        assert_eq!(body(res).await, "None");
    }
    let unknown = format!("id={}", SessionId::random());
    assert!(SetCookie::of(&app.get("/get_value", Some(&unknown)).await).is_none());
    assert!(SetCookie::of(&app.get("/", Some("other=1")).await).is_none());
    // A valid id beside junk of the same name: the id is used, nothing cleared.
    let cookie = SetCookie::of(&app.get("/insert", None).await).unwrap();
    let both = format!("id=junk; {}", cookie.pair());
    let res = app.get("/get", Some(&both)).await;
    assert!(SetCookie::of(&res).is_none());
    assert_eq!(body(res).await, "42");
}

/// Sessions in a header: the id comes in `x-session` and goes back in it
/// when it changes; an ended session sends it empty; cookies are ignored.
async fn a_session_can_travel_in_a_header(kind: Kind) {
    let Some(backend) = Backend::open(
        kind,
        ManualClock::at_system_time().shared(),
        &format!("{kind:?} header"),
    )
    .await
    else {
        return;
    };
    let app = routes().layer(SessionLayer::from_arc(Arc::clone(&backend.store)).header("x-session"));
    let call = |uri: &'static str, header: Option<String>, cookie: Option<String>| {
        let app = app.clone();
        async move {
            let mut request = Request::get(uri);
            if let Some(value) = header {
                request = request.header("x-session", value);
            }
            if let Some(value) = cookie {
                request = request.header(COOKIE, value);
            }
            let res = app.clone().call(request.body(Body::empty()).unwrap()).await.unwrap();
            assert!(res.headers().get(SET_COOKIE).is_none(), "no cookie in header mode");
            if res.headers().contains_key("x-session") {
                assert_eq!(res.headers()["cache-control"], "no-store");
            }
            let given = res.headers().get("x-session").map(|v| v.to_str().unwrap().to_owned());
            (given, body(res).await)
        }
    };
    let (Some(id), _) = call("/insert", None, None).await else {
        panic!("a new session's id")
    };
    assert!(id.parse::<SessionId>().is_ok());
    assert_eq!(call("/get", Some(id.clone()), None).await, (None, "42".to_owned()));
    // A cookie is not a session in header mode.
    assert_eq!(call("/get_value", None, Some(format!("id={id}"))).await.1, "None");
    // A client-chosen or unknown id is no session; a new one is issued.
    let chosen = SessionId::random().to_string();
    let (fresh, _) = call("/insert", Some(chosen.clone()), None).await;
    assert!(fresh.is_some_and(|f| f != chosen));
    let (Some(rotated), _) = call("/cycle_id", Some(id.clone()), None).await else {
        panic!("the rotated id")
    };
    assert_ne!(rotated, id);
    assert_eq!(call("/get_value", Some(id), None).await.1, "None");
    assert_eq!(call("/flush", Some(rotated.clone()), None).await.0.as_deref(), Some(""));
    assert_eq!(call("/get_value", Some(rotated), None).await.1, "None");
}

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
    no_session_set,
    bogus_session_cookie,
    malformed_session_cookie,
    insert_session,
    session_max_age,
    get_session,
    get_no_value,
    remove_last_value,
    cycle_session_id,
    flush_session,
    flush_with_domain,
    set_expiry,
    change_expiry_type,
    emptiness_modification_and_expiry_are_answered,
    always_save_touches_a_session_the_handler_did_not_use,
    a_cookie_that_names_no_session_is_left_alone,
    a_session_can_travel_in_a_header,
);
