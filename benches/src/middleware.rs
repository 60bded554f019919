//! One HTTP request through a session middleware, in process (no socket):
//! `session-store-tower`'s layer over our memory store, against
//! tower-sessions over its own memory store and over our memory store
//! through this workspace's adapter.
//!
//! Groups (`cargo bench -p session-store-benches --bench middleware`):
//!
//! | group | the request |
//! |---|---|
//! | `middleware_new_visitor` | no cookie; the handler sets the count to 1: a session is created |
//! | `middleware_read` | a live session's cookie; the handler reads the count |
//! | `middleware_count` | a live session's cookie; the handler adds one to the count |
//!
//! Subjects, each one benchmark in every group: `layer`, `layer-cookie`
//! (the same layer in cookie mode: no store, the session sealed with
//! XChaCha20-Poly1305 in the cookie; `count` seals a new cookie each
//! time, `read` only opens one), `tower-sessions`
//! (tower-sessions-memory-store), `tower-sessions-adapter` (our
//! `MemoryStore` through `session-store-tower-sessions`). Every stack uses
//! sliding expiry of seven days and a cookie that is not `Secure`; the
//! handler of the layer counts with `Session::update`, the tower-sessions
//! handlers with `get` then `insert`. A read writes nothing on any stack:
//! tower-sessions saves only a changed session (so by default a read does
//! not slide its expiry at all), the layer touches a read session at most
//! once per a tenth of the idle timeout (never within a run).

use std::future::poll_fn;
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use session_store_core::Expiry;
use session_store_memory::MemoryStore;
use tokio::runtime::Runtime;
use tower_service::Service;

/// The key the handlers count under.
const COUNT: &str = "count";
/// Sliding expiry of every stack.
const IDLE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The groups, in run order.
pub const GROUPS: [&str; 3] = ["middleware_new_visitor", "middleware_read", "middleware_count"];

/// One middleware stack: its name and its app.
pub struct Stack {
    /// The benchmark's name in each group.
    pub name: &'static str,
    router: Router,
}

/// The three stacks.
#[must_use]
pub fn stacks() -> Vec<Stack> {
    vec![
        Stack {
            name: "layer",
            router: layer_app(session_store_tower::SessionLayer::new(MemoryStore::new())),
        },
        Stack {
            name: "layer-cookie",
            router: layer_app(session_store_tower::SessionLayer::cookie(
                session_store_tower::CookieSessions::new(session_store_core::seal::KeyRing::new(1, [7; 32]), "bench"),
            )),
        },
        Stack {
            name: "tower-sessions",
            router: tower_app(tower_sessions::SessionManagerLayer::new(
                tower_sessions_memory_store::MemoryStore::default(),
            )),
        },
        Stack {
            name: "tower-sessions-adapter",
            router: tower_app(tower_sessions::SessionManagerLayer::new(
                session_store_tower_sessions::Adapter::new(MemoryStore::new()),
            )),
        },
    ]
}

fn layer_app(layer: session_store_tower::SessionLayer) -> Router {
    use session_store_tower::{Session, SessionError};

    async fn new_visitor(session: Session) -> Result<&'static str, SessionError> {
        session.insert(COUNT, 1u64).await?;
        Ok("1")
    }
    async fn read(session: Session) -> Result<String, SessionError> {
        Ok(session.get::<u64>(COUNT).await?.unwrap_or(0).to_string())
    }
    async fn count(session: Session) -> Result<String, SessionError> {
        let n = session
            .update(|s| {
                let n = s.get::<u64>(COUNT)?.unwrap_or(0) + 1;
                s.insert(COUNT, &n)?;
                Ok(n)
            })
            .await?;
        Ok(n.to_string())
    }
    Router::new()
        .route("/new", get(new_visitor))
        .route("/read", get(read))
        .route("/count", get(count))
        .layer(layer.expiry(Expiry::OnInactivity(IDLE)).secure(false))
}

fn tower_app<S>(layer: tower_sessions::SessionManagerLayer<S>) -> Router
where
    S: tower_sessions::SessionStore + Clone,
{
    use tower_sessions::Session;

    async fn new_visitor(session: Session) -> Result<&'static str, StatusCode> {
        session
            .insert(COUNT, 1u64)
            .await
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok("1")
    }
    async fn read(session: Session) -> Result<String, StatusCode> {
        let n: Option<u64> = session
            .get(COUNT)
            .await
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(n.unwrap_or(0).to_string())
    }
    async fn count(session: Session) -> Result<String, StatusCode> {
        let n: u64 = session
            .get(COUNT)
            .await
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
            .unwrap_or(0)
            + 1;
        session
            .insert(COUNT, n)
            .await
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(n.to_string())
    }
    let days = tower_sessions::cookie::time::Duration::days(7);
    Router::new()
        .route("/new", get(new_visitor))
        .route("/read", get(read))
        .route("/count", get(count))
        .layer(
            layer
                .with_secure(false)
                .with_expiry(tower_sessions::Expiry::OnInactivity(days)),
        )
}

/// Sends one request through `router`; answers the status and the
/// `Set-Cookie` name=value, if any.
async fn request(router: &Router, path: &str, cookie: Option<&str>) -> (StatusCode, Option<String>) {
    let mut builder = Request::get(path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    let request = builder.body(Body::empty()).expect("a valid request");
    let mut service = router.clone();
    let ready = poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut service, cx)).await;
    ready.expect("a router is always ready");
    let response = service.call(request).await.expect("a router never fails");
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    (response.status(), set_cookie)
}

fn on_worker<F>(rt: &Runtime, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match rt.block_on(rt.spawn(fut)) {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Times `iters` requests to `path` (with the cookie of a session that
/// holds a count, unless `path` is `/new`) as one task on a worker.
fn timed(rt: &Runtime, router: &Router, path: &'static str, iters: u64) -> Duration {
    let router = router.clone();
    on_worker(rt, async move {
        let cookie = if path == "/new" {
            None
        } else {
            let (status, cookie) = request(&router, "/new", None).await;
            assert_eq!(status, StatusCode::OK);
            Some(cookie.expect("a new session sets its cookie"))
        };
        let start = Instant::now();
        for _ in 0..iters {
            let (status, _) = black_box(request(&router, path, cookie.as_deref()).await);
            debug_assert_eq!(status, StatusCode::OK);
        }
        start.elapsed()
    })
}

fn bench(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, stack: &Stack, path: &'static str) {
    // A sanity check outside the timing: the stack answers as expected.
    let router = stack.router.clone();
    let answered = on_worker(rt, async move { request(&router, path, None).await.0 });
    assert_eq!(answered, StatusCode::OK, "{} {path}", stack.name);
    group.bench_function(stack.name, |b| {
        b.iter_custom(|iters| timed(rt, &stack.router, path, iters))
    });
}

/// Runs every middleware group against every stack.
pub fn run_all(c: &mut Criterion, rt: &Runtime) {
    let stacks = stacks();
    for (group_name, path) in GROUPS.into_iter().zip(["/new", "/read", "/count"]) {
        let mut group = c.benchmark_group(group_name);
        for stack in &stacks {
            bench(&mut group, rt, stack, path);
        }
        group.finish();
    }
}
