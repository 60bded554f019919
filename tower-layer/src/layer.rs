//! The tower `Layer` and `Service`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

#[cfg(feature = "cookie")]
use crate::cookie_mode::CookieSessions;
use http::header::{HeaderName, HeaderValue, SET_COOKIE};
use http::{HeaderMap, Request, Response, StatusCode};
use session_store_core::{Error, Expiry, SessionStore, Sessions};

#[cfg(not(feature = "cookie"))]
use crate::cookie_off::CookieSessions;

use crate::cookie::{CookieConfig, SameSite, could_be_sealed, is_attribute_value, is_token};
use crate::session::{Presented, Session};

/// The body of an error answer by default: nothing about the session or the
/// store (the detail goes to the log).
pub const DEFAULT_ERROR_BODY: &str = "internal error\n";

/// The status of an error answer by default: `503 Service Unavailable` when
/// retrying may help (the store is unreachable, failing or timed out, or
/// the session was too busy to commit: [`Error::is_transient`]), `500
/// Internal Server Error` for anything else (a value that is not the JSON
/// asked for, a record over the size limit, a misconfigured store).
#[must_use]
pub fn default_error_status(error: &Error) -> StatusCode {
    if error.is_transient() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// Where sessions live: a store, or sealed in the cookie itself.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// Server-side, in a store; the cookie holds the session id.
    Store(Sessions<Arc<dyn SessionStore>>),
    /// Sealed in the cookie; no store.
    #[cfg_attr(not(feature = "cookie"), allow(dead_code))]
    Cookie(CookieSessions),
}

/// What cookie mode answers for a call that needs server-side sessions.
pub(crate) const NO_SERVER_SIDE: &str = "an owner index (in cookie mode no session is kept server-side)";

/// What every request of one layer shares.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) mode: Mode,
    pub(crate) cookie: CookieConfig,
    pub(crate) error_status: fn(&Error) -> StatusCode,
    pub(crate) error_body: &'static str,
    /// The request and response header that carries the session instead
    /// of a cookie ([`SessionLayer::header`]).
    pub(crate) header: Option<HeaderName>,
    /// Load and touch the session on every request that brings one
    /// ([`SessionLayer::always_save`]).
    pub(crate) always_save: bool,
}

impl Config {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            cookie: CookieConfig::default(),
            error_status: default_error_status,
            error_body: DEFAULT_ERROR_BODY,
            header: None,
            always_save: false,
        }
    }

    /// The session the request brought: a cookie, or the header.
    fn presented(&self, headers: &HeaderMap) -> Option<Presented> {
        let from_header = |name: &HeaderName| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        match (&self.mode, &self.header) {
            (Mode::Store(_), Some(name)) => from_header(name).find_map(|v| v.parse().ok()).map(Presented::Id),
            (Mode::Cookie(_), Some(name)) => from_header(name)
                .find(|v| could_be_sealed(v))
                .map(|v| Presented::Sealed(v.to_owned())),
            (Mode::Store(_), None) => self.cookie.find(headers).map(Presented::Id),
            (Mode::Cookie(_), None) => self.cookie.find_sealed(headers).map(Presented::Sealed),
        }
    }

    /// The response header that hands the client its session `value` (an
    /// id's text, or a sealed session), good for `max_age` (`None`: until
    /// the browser closes).
    pub(crate) fn set_session(
        &self,
        value: impl std::fmt::Display,
        max_age: Option<std::time::Duration>,
    ) -> (HeaderName, HeaderValue) {
        match &self.header {
            // An id's text or base64url: always a valid header value.
            Some(name) => {
                let mut value =
                    HeaderValue::try_from(value.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""));
                // A credential: kept out of `Debug` output and HPACK tables.
                value.set_sensitive(true);
                (name.clone(), value)
            }
            None => (SET_COOKIE, self.cookie.set(value, max_age)),
        }
    }

    /// The response header that tells the client to drop its session: the
    /// cookie cleared, or the header sent empty.
    pub(crate) fn clear_session(&self) -> (HeaderName, HeaderValue) {
        match &self.header {
            Some(name) => (name.clone(), HeaderValue::from_static("")),
            None => (SET_COOKIE, self.cookie.clear()),
        }
    }

    /// A fresh session of either mode.
    pub(crate) fn start(&self) -> session_store_core::Session {
        match &self.mode {
            Mode::Store(sessions) => sessions.start(),
            Mode::Cookie(sessions) => sessions.start(),
        }
    }

    /// The store-backed handle, or [`Error::Unsupported`] in cookie mode.
    pub(crate) fn store(&self) -> Result<&Sessions<Arc<dyn SessionStore>>, Error> {
        match &self.mode {
            Mode::Store(sessions) => Ok(sessions),
            Mode::Cookie(_) => Err(Error::Unsupported(NO_SERVER_SIDE)),
        }
    }

    /// A fresh id for the session, keeping its data.
    pub(crate) async fn rotate(&self, session: &mut session_store_core::Session) -> Result<bool, Error> {
        match &self.mode {
            Mode::Store(sessions) => sessions.rotate(session).await,
            Mode::Cookie(sessions) => {
                sessions.rotate(session);
                Ok(true)
            }
        }
    }

    /// The clock deadlines are decided with.
    pub(crate) fn clock(&self) -> &session_store_core::SharedClock {
        match &self.mode {
            Mode::Store(sessions) => sessions.clock(),
            Mode::Cookie(sessions) => sessions.clock_ref(),
        }
    }

    /// The expiry policy.
    pub(crate) fn policy(&self) -> &Expiry {
        match &self.mode {
            Mode::Store(sessions) => sessions.policy(),
            Mode::Cookie(sessions) => sessions.policy(),
        }
    }
}

/// The tower [`Layer`](tower_layer::Layer) that gives every request its
/// [`Session`] and commits it when the response is ready (see the crate
/// docs for what it guarantees).
///
/// ```
/// use std::time::Duration;
/// use session_store_memory::MemoryStore;
/// use session_store_tower::{Expiry, SameSite, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::new())
///     .expiry(Expiry::IdleAndAbsolute {
///         idle: Duration::from_secs(30 * 60),
///         lifetime: Duration::from_secs(12 * 3600),
///     })
///     .same_site(SameSite::Strict)
///     .cookie_name("__Host-session");
/// ```
#[derive(Debug, Clone)]
pub struct SessionLayer {
    config: Arc<Config>,
}

impl SessionLayer {
    /// A layer over `store` (any backend of the workspace, or your own),
    /// with the default expiry policy ([`Expiry::default`]: two weeks of
    /// inactivity) and the safe cookie defaults.
    pub fn new(store: impl SessionStore + 'static) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A layer over a shared store, for a backend chosen at run time.
    #[must_use]
    pub fn from_arc(store: Arc<dyn SessionStore>) -> Self {
        Self {
            config: Arc::new(Config::new(Mode::Store(Sessions::new(store)))),
        }
    }

    /// A layer in cookie mode: each visitor's whole session is sealed in
    /// the cookie by `sessions` ([`CookieSessions`]: its key ring, app
    /// name, clock and size limit), and no store is used. The [`Session`]
    /// extractor works as over a store, except that there is no
    /// server-side state to revoke or list: [`Session::owner_sessions`]
    /// and the `log_out_*` calls answer [`Error::Unsupported`],
    /// [`Session::end`] clears this browser's cookie only, and a session
    /// too large to seal into a cookie fails its request at commit
    /// ([`Error::TooLarge`], answered `500` with the generic body). Read
    /// [`CookieSessions`]' docs for all it gives up.
    ///
    /// The layer's [`expiry`](Self::expiry) and
    /// [`touch_throttle`](Self::touch_throttle) apply to `sessions`;
    /// [`commit_attempts`](Self::commit_attempts) and
    /// [`max_sessions_per_owner`](Self::max_sessions_per_owner) have
    /// nothing to act on.
    ///
    /// ```
    /// use session_store_tower::{CookieSessions, KeyRing, SessionLayer};
    ///
    /// let keys = KeyRing::parse(&format!("1:{}", "ab".repeat(32)))?; // an app: KeyRing::from_env("SESSION_COOKIE_KEYS")?
    /// let layer = SessionLayer::cookie(CookieSessions::new(keys, "my-app"))
    ///     .cookie_name("__Host-session");
    /// # Ok::<(), session_store_tower::Error>(())
    /// ```
    #[cfg(feature = "cookie")]
    #[must_use]
    pub fn cookie(sessions: CookieSessions) -> Self {
        Self {
            config: Arc::new(Config::new(Mode::Cookie(sessions))),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    fn with_store(
        self,
        change: impl FnOnce(Sessions<Arc<dyn SessionStore>>) -> Sessions<Arc<dyn SessionStore>>,
    ) -> Self {
        self.with(|c| {
            if let Mode::Store(sessions) = &mut c.mode {
                *sessions = change(sessions.clone());
            }
        })
    }

    /// The expiry policy: the store's deadlines and the cookie's `Max-Age`
    /// ([`Expiry::OnSessionEnd`]: a cookie without `Max-Age`, which the
    /// browser drops when it closes).
    #[must_use]
    pub fn expiry(self, expiry: Expiry) -> Self {
        self.with(|c| match &mut c.mode {
            Mode::Store(sessions) => *sessions = sessions.clone().expiry(expiry),
            Mode::Cookie(sessions) => *sessions = sessions.clone().expiry(expiry),
        })
    }

    /// How many writes a commit (or an [`update`](Session::update)) may
    /// lose to concurrent writes of the same session before the request
    /// fails with [`Error::Contended`] (503 by default)
    /// ([`Sessions::commit_attempts`]; default
    /// [`DEFAULT_COMMIT_ATTEMPTS`](session_store_core::DEFAULT_COMMIT_ATTEMPTS)).
    /// A visitor's concurrent requests through one layer take turns to
    /// commit, so among themselves they lose at most one write each,
    /// however many there are; only other instances of the app, writing to
    /// the same store, cost more attempts (with a random pause before each).
    #[must_use]
    pub fn commit_attempts(self, attempts: usize) -> Self {
        self.with_store(|s| s.commit_attempts(attempts))
    }

    /// Touch throttling ([`Sessions::touch_throttle`]): a request that did
    /// not change the session moves its deadline only once it would move by
    /// this fraction of the idle timeout (default a tenth).
    #[must_use]
    pub fn touch_throttle(self, fraction: f64) -> Self {
        self.with(|c| match &mut c.mode {
            Mode::Store(sessions) => *sessions = sessions.clone().touch_throttle(fraction),
            Mode::Cookie(sessions) => *sessions = sessions.clone().touch_throttle(fraction),
        })
    }

    /// Whether every request that brings a session moves its deadline
    /// (default `false`), as tower-sessions' `with_always_save`: the layer
    /// loads the session even when the handler did not use it, and its
    /// commit touches it with no throttle (this sets
    /// [`touch_throttle`](Self::touch_throttle)`(0.0)`; the data is
    /// rewritten only when it changed). Each such request costs a load and
    /// a touch; the default throttled touch keeps a sliding session alive
    /// as well for a tenth of the writes.
    #[must_use]
    pub fn always_save(self, always: bool) -> Self {
        let this = self.with(|c| c.always_save = always);
        if always { this.touch_throttle(0.0) } else { this }
    }

    /// Sessions for clients without cookies (APIs, mobile apps, MCP
    /// servers): the session comes from the request header `name` and goes
    /// back in the response header `name` whenever the client must store a
    /// new value (a new session, a rotation, a login), as the cookie
    /// would; a response that ended the session sends the header empty
    /// (drop it). No cookie is read or written then. The contract is the
    /// cookie's: a value that is not a session id, or names no live
    /// session, is "no session", and a client never picks its own id.
    /// The deadline is the store's, as with cookies; a client learns of an
    /// expired session by being given a new one.
    ///
    /// ```
    /// use session_store_memory::MemoryStore;
    /// use session_store_tower::SessionLayer;
    ///
    /// let layer = SessionLayer::new(MemoryStore::new()).header("x-session");
    /// ```
    ///
    /// # Panics
    ///
    /// When `name` is not a valid header name (a configuration error,
    /// found when the app is built).
    #[must_use]
    pub fn header(self, name: &str) -> Self {
        let name = HeaderName::try_from(name).unwrap_or_else(|_| panic!("{name:?} is not a valid header name"));
        self.with(|c| c.header = Some(name))
    }

    /// At most `cap` sessions per user ([`Sessions::max_sessions_per_owner`]):
    /// a login that leaves its user with more ends that user's oldest other
    /// sessions. Needs a store with an owner index. Off by default.
    #[must_use]
    pub fn max_sessions_per_owner(self, cap: usize) -> Self {
        self.with_store(|s| s.max_sessions_per_owner(cap))
    }

    /// The cookie's name (default [`DEFAULT_COOKIE_NAME`](crate::DEFAULT_COOKIE_NAME), `id`).
    ///
    /// # Panics
    ///
    /// When `name` is not a cookie name (an RFC 6265 token: letters,
    /// digits and ``!#$%&'*+-.^_`|~``): a configuration error, found when
    /// the app is built.
    #[must_use]
    pub fn cookie_name(self, name: &str) -> Self {
        assert!(is_token(name), "{name:?} is not a valid cookie name");
        self.with(|c| name.clone_into(&mut c.cookie.name))
    }

    /// The cookie's `Path` (default `/`).
    ///
    /// # Panics
    ///
    /// When `path` is empty or holds a `;`, a space or a control character.
    #[must_use]
    pub fn cookie_path(self, path: &str) -> Self {
        assert!(is_attribute_value(path), "{path:?} is not a valid cookie path");
        self.with(|c| path.clone_into(&mut c.cookie.path))
    }

    /// The cookie's `Domain` (default none: the cookie goes back to this
    /// host only, the safest choice).
    ///
    /// # Panics
    ///
    /// As [`cookie_path`](Self::cookie_path).
    #[must_use]
    pub fn cookie_domain(self, domain: &str) -> Self {
        assert!(is_attribute_value(domain), "{domain:?} is not a valid cookie domain");
        self.with(|c| c.cookie.domain = Some(domain.to_owned()))
    }

    /// Whether the cookie is `Secure` (sent back over HTTPS only). On by
    /// default; turn it off only for plain-HTTP development, where a
    /// browser would not send a `Secure` cookie back (curl does).
    #[must_use]
    pub fn secure(self, secure: bool) -> Self {
        self.with(|c| c.cookie.secure = secure)
    }

    /// The cookie's `SameSite` (default [`SameSite::Lax`]).
    /// [`SameSite::None`] needs [`secure`](Self::secure): browsers refuse
    /// the cookie otherwise.
    #[must_use]
    pub fn same_site(self, same_site: SameSite) -> Self {
        self.with(|c| c.cookie.same_site = same_site)
    }

    /// The status of an error answer for a store error (default
    /// [`default_error_status`]: 503 when retrying may help, else 500).
    #[must_use]
    pub fn error_status(self, status: fn(&Error) -> StatusCode) -> Self {
        self.with(|c| c.error_status = status)
    }

    /// The body of an error answer (default [`DEFAULT_ERROR_BODY`]). Keep
    /// it generic: the detail goes to the log.
    #[must_use]
    pub fn error_body(self, body: &'static str) -> Self {
        self.with(|c| c.error_body = body)
    }

    /// The session handle the layer commits through (its store, clock and
    /// policy); `None` in cookie mode ([`cookie_sessions`](Self::cookie_sessions)).
    #[must_use]
    pub fn sessions(&self) -> Option<&Sessions<Arc<dyn SessionStore>>> {
        match &self.config.mode {
            Mode::Store(sessions) => Some(sessions),
            Mode::Cookie(_) => None,
        }
    }

    /// The cookie-mode handle ([`SessionLayer::cookie`]); `None` over a
    /// store.
    #[cfg(feature = "cookie")]
    #[must_use]
    pub fn cookie_sessions(&self) -> Option<&CookieSessions> {
        match &self.config.mode {
            Mode::Cookie(sessions) => Some(sessions),
            Mode::Store(_) => None,
        }
    }
}

impl<I> tower_layer::Layer<I> for SessionLayer {
    type Service = SessionService<I>;

    fn layer(&self, inner: I) -> SessionService<I> {
        if self.config.cookie.same_site == SameSite::None && !self.config.cookie.secure {
            tracing::warn!("SameSite=None without Secure: browsers will refuse the session cookie");
        }
        SessionService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner one.
#[derive(Debug, Clone)]
pub struct SessionService<I> {
    inner: I,
    config: Arc<Config>,
}

impl<I, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for SessionService<I>
where
    I: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    I::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<&'static str> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = I::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let presented = self.config.presented(request.headers());
        let session = Session::new(Arc::clone(&self.config), presented);
        request.extensions_mut().insert(session.clone());
        // The clone that was made ready is the one that is called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(session.finish(response).await)
        })
    }
}
