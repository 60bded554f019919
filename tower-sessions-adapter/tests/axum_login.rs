//! axum-login 0.18, which runs on tower-sessions 0.14, over the adapter
//! (feature `tower-sessions-core-014`): a visitor logs in, reaches a
//! protected route, logs out and is turned away again, on the memory, file,
//! SQLite and Redis stores; an anonymous session gets a new id at login
//! (axum-login's fixation defence goes through the store) and keeps its
//! data, and a second visitor is never let in by the first one's login.
//!
//! `scripts/test` runs it as `cargo test -p session-store-tower-sessions
//! --features tower-sessions-core-014 --test axum_login` under
//! `store-redis/scripts/with-redis`.

mod backends;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId, login_required};
use backends::Backend;
use session_store_core::SessionStore;
use session_store_tower_sessions::Adapter;
use tower_sessions_014::SessionManagerLayer;

#[derive(Clone, Debug)]
struct User {
    id: i64,
    name: &'static str,
    /// Changing it logs the user out everywhere (axum-login compares it).
    password: &'static [u8],
}

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        self.password
    }
}

const ALICE: User = User {
    id: 1,
    name: "alice",
    password: b"secret",
};

/// One user, alice, with the password `secret`.
#[derive(Clone, Debug)]
struct Users;

impl AuthnBackend for Users {
    type User = User;
    type Credentials = (String, String);
    type Error = Infallible;

    async fn authenticate(&self, (name, password): Self::Credentials) -> Result<Option<User>, Infallible> {
        Ok((name == ALICE.name && password.as_bytes() == ALICE.password).then_some(ALICE))
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Infallible> {
        Ok((*id == ALICE.id).then_some(ALICE))
    }
}

async fn login(mut auth: AuthSession<Users>, Path(credentials): Path<(String, String)>) -> StatusCode {
    match auth.authenticate(credentials).await {
        Ok(Some(user)) => match auth.login(&user).await {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        },
        Ok(None) => StatusCode::UNAUTHORIZED,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn logout(mut auth: AuthSession<Users>) -> StatusCode {
    match auth.logout().await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Counts visits in the tower-sessions session, logged in or not.
async fn visit(session: tower_sessions_014::Session) -> Result<String, StatusCode> {
    let n: u64 = session
        .get("visits")
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .unwrap_or(0)
        + 1;
    session
        .insert("visits", n)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(n.to_string())
}

async fn protected(auth: AuthSession<Users>) -> String {
    format!("hello {}", auth.user.map_or("nobody", |u| u.name))
}

fn app(store: Arc<dyn SessionStore>) -> Router {
    let sessions = SessionManagerLayer::new(Adapter::from_arc(store)).with_secure(false);
    let auth = AuthManagerLayerBuilder::new(Users, sessions).build();
    Router::new()
        .route("/protected", get(protected))
        .route_layer(login_required!(Users))
        .route("/visit", get(visit))
        .route("/login/{name}/{password}", post(login))
        .route("/logout", post(logout))
        .layer(auth)
}

/// Serves `app` on a free loopback port; the base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the server runs") });
    format!("http://{addr}")
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("an HTTP client")
}

async fn status(request: reqwest::RequestBuilder) -> (StatusCode, String) {
    let response = request.send().await.expect("an answer");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("a status");
    (status, response.text().await.expect("a body"))
}

/// The stored session ids, sorted.
async fn ids(store: &dyn SessionStore) -> Vec<session_store_core::ListingHandle> {
    let mut ids = store.ids().await.expect("ids");
    ids.sort();
    ids
}

async fn log_in_reach_and_log_out(backend: &str) {
    let Some(backend) = Backend::by_name(backend).await else {
        return;
    };
    let name = backend.name;
    let store = backend.open().await;
    let base = serve(app(Arc::clone(&store))).await;
    let (alice, mallory) = (browser(), browser());

    let (code, _) = status(alice.get(format!("{base}/protected"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{name}: not logged in yet");
    let (code, _) = status(alice.post(format!("{base}/login/alice/wrong"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{name}: a wrong password");

    // An anonymous session first: the login gives it a new id (axum-login's
    // fixation defence goes through the store) and keeps its data.
    let (code, body) = status(alice.get(format!("{base}/visit"))).await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "1"), "{name}: a visit");
    let anonymous = ids(&*store).await;
    assert_eq!(anonymous.len(), 1, "{name}: the anonymous session: {anonymous:?}");

    let (code, _) = status(alice.post(format!("{base}/login/alice/secret"))).await;
    assert_eq!(code, StatusCode::OK, "{name}: logged in");
    let stored = ids(&*store).await;
    assert_eq!(stored.len(), 1, "{name}: one session in the store: {stored:?}");
    assert_ne!(stored, anonymous, "{name}: a new id at login");
    let (code, body) = status(alice.get(format!("{base}/protected"))).await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "hello alice"), "{name}");
    let (code, body) = status(alice.get(format!("{base}/visit"))).await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "2"), "{name}: the data kept");
    let (code, _) = status(mallory.get(format!("{base}/protected"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{name}: another visitor");

    // Logging in again while logged in keeps the session.
    let (code, _) = status(alice.post(format!("{base}/login/alice/secret"))).await;
    assert_eq!(code, StatusCode::OK, "{name}");
    assert_eq!(ids(&*store).await, stored, "{name}: the same session");

    let (code, _) = status(alice.post(format!("{base}/logout"))).await;
    assert_eq!(code, StatusCode::OK, "{name}: logged out");
    let (code, _) = status(alice.get(format!("{base}/protected"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{name}: out again");
    assert!(ids(&*store).await.is_empty(), "{name}: logout deleted the session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_login_on_the_memory_store() {
    log_in_reach_and_log_out("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_login_on_the_file_store() {
    log_in_reach_and_log_out("file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_login_on_the_sqlite_store() {
    log_in_reach_and_log_out("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_login_on_the_redis_store() {
    log_in_reach_and_log_out("redis").await;
}
