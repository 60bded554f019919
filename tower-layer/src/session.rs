//! One request's session: loaded on first use, committed by the layer.

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "cookie")]
use crate::cookie_mode::CookieCommit;
use http::{Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use session_store_core::{Committed, Error, Expiry, Fingerprint, ListedSession, ListingHandle, SessionId, Timestamp};

#[cfg(not(feature = "cookie"))]
use crate::cookie_off::CookieCommit;
use tokio::sync::Mutex;

use crate::layer::{Config, Mode};

/// The state of a session as this request sees it (re-exported from the
/// core crate): what the closure of [`Session::update`] reads and changes,
/// with `get`, `insert`, `remove` and `clear`.
pub use session_store_core::Session as SessionState;

/// The session of the request being served: put into the request's
/// extensions by [`SessionLayer`](crate::SessionLayer), taken by a handler
/// as an axum extractor (feature `axum`) or with
/// `request.extensions().get::<Session>()`.
///
/// Cloning is cheap; every clone is the same session. The session is loaded
/// from the store on first use (at most once per request) and committed by
/// the layer once the response is ready; a request that does not use it
/// costs no store call.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

struct Shared {
    config: Arc<Config>,
    /// The browser's cookie (or the session header), if it could be a
    /// session.
    cookie: Option<Presented>,
    state: Mutex<State>,
}

struct State {
    slot: Slot,
    /// The id the browser holds for a session that loaded (its cookie is
    /// up to date while the id and the deadline stay the same).
    loaded: Option<(SessionId, Timestamp)>,
    /// Whether this request ended the session (its cookie is cleared
    /// unless a new session took its place).
    ended: bool,
    /// Whether this request gave the session a policy of its own: its
    /// cookie is sent again (a browser-session cookie may become a lasting
    /// one, or back, with the same deadline).
    expiry_set: bool,
}

/// The session cookie a request brought.
pub(crate) enum Presented {
    /// Store mode: the text of a session id.
    Id(SessionId),
    /// Cookie mode: a sealed session (not opened yet).
    Sealed(String),
}

impl Presented {
    fn fingerprint(&self) -> Option<Fingerprint> {
        match self {
            Self::Id(id) => Some(id.fingerprint()),
            Self::Sealed(_) => None,
        }
    }
}

enum Slot {
    /// Not used yet.
    Unloaded,
    /// Loaded (or started).
    Loaded(SessionState),
    /// The load failed; the request saw the error.
    Failed,
    /// The request is over: the session was committed.
    Finished,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the id: the cookie's fingerprint at most.
        f.debug_struct("Session")
            .field("cookie", &self.cookie_fingerprint())
            .finish_non_exhaustive()
    }
}

/// A store error met by a [`Session`] method, with the session's
/// fingerprint, the status and the generic body the layer answers it with.
///
/// With the `axum` feature it is an `IntoResponse`: a handler returns it
/// with `?`, the visitor sees the status and the generic body, and the
/// detail (the whole chain of causes and the fingerprint, never the id)
/// goes to a `tracing` `error` event. `Display` shows the detail too: it is
/// for a log, not for a response body.
pub struct SessionError {
    error: Error,
    session: Option<Fingerprint>,
    status: StatusCode,
    body: &'static str,
}

impl SessionError {
    fn new(config: &Config, error: Error, session: Option<Fingerprint>) -> Self {
        Self {
            status: (config.error_status)(&error),
            body: config.error_body,
            session: session.or_else(|| error.fingerprint()),
            error,
        }
    }

    /// The store's error.
    #[must_use]
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The store's error, taken out.
    #[must_use]
    pub fn into_error(self) -> Error {
        self.error
    }

    /// The fingerprint of the session it is about, if one was known.
    #[must_use]
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.session
    }

    /// The status the layer answers it with (see
    /// [`SessionLayer::error_status`](crate::SessionLayer::error_status)).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The generic body the layer answers it with.
    #[must_use]
    pub fn body(&self) -> &'static str {
        self.body
    }

    /// Logs the detail (a `tracing` `error` event, target
    /// `session_store_tower`, with the fingerprint and the chain of causes).
    pub fn log(&self, what: &str) {
        match self.session {
            Some(session) => tracing::error!(%session, error = %self.error.chain(), "{what}"),
            None => tracing::error!(error = %self.error.chain(), "{what}"),
        }
    }
}

impl fmt::Debug for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionError")
            .field("error", &self.error)
            .field("session", &self.session)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.session {
            Some(session) => write!(f, "session {session}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// What a [`Session`] method returns.
pub type Result<T, E = SessionError> = std::result::Result<T, E>;

impl Session {
    pub(crate) fn new(config: Arc<Config>, cookie: Option<Presented>) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                cookie,
                state: Mutex::new(State {
                    slot: Slot::Unloaded,
                    loaded: None,
                    ended: false,
                    expiry_set: false,
                }),
            }),
        }
    }

    fn config(&self) -> &Config {
        &self.shared.config
    }

    fn cookie_fingerprint(&self) -> Option<Fingerprint> {
        self.shared.cookie.as_ref().and_then(Presented::fingerprint)
    }

    fn error(&self, error: Error, session: Option<Fingerprint>) -> SessionError {
        SessionError::new(self.config(), error, session)
    }

    /// Runs `f` on the loaded session (loading it first if this is its
    /// first use in the request).
    async fn with<T>(&self, f: impl AsyncFnOnce(&Config, &mut SessionState, &mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.shared.state.lock().await;
        let state = &mut *guard;
        if matches!(state.slot, Slot::Unloaded) {
            let loaded = match (&self.config().mode, &self.shared.cookie) {
                (Mode::Store(sessions), Some(Presented::Id(id))) => sessions.load(&id.to_string()).await,
                (Mode::Cookie(sessions), Some(Presented::Sealed(value))) => Ok(sessions.load(value)),
                _ => Ok(None),
            };
            match loaded {
                Ok(Some(session)) => {
                    state.loaded = session.id().map(|id| (id, session.expires_at()));
                    state.slot = Slot::Loaded(session);
                }
                Ok(None) => state.slot = Slot::Loaded(self.config().start()),
                Err(e) => {
                    state.slot = Slot::Failed;
                    return Err(self.error(e, self.cookie_fingerprint()));
                }
            }
        }
        let mut slot = std::mem::replace(&mut state.slot, Slot::Failed);
        let result = match &mut slot {
            Slot::Loaded(session) => f(self.config(), session, state).await,
            Slot::Failed | Slot::Unloaded => Err(self.error(
                Error::backend_msg(
                    "session layer",
                    "the session could not be loaded earlier in this request",
                ),
                self.cookie_fingerprint(),
            )),
            Slot::Finished => Err(self.error(
                Error::config("the session was used after its request was answered"),
                None,
            )),
        };
        state.slot = slot;
        result
    }

    /// The value under `key`, decoded from its JSON; `None` when absent.
    ///
    /// # Errors
    ///
    /// The store failed to load the session, or the stored JSON is not a
    /// `T` ([`Error::Data`]).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.with(async |_, s, _| s.get(key).map_err(|e| self.error(e, fingerprint(s))))
            .await
    }

    /// Sets `key` to `value` (held as JSON); written when the response is
    /// ready.
    ///
    /// # Errors
    ///
    /// The store failed to load the session, or `value` does not serialize
    /// to JSON ([`Error::Data`]; nothing changes then).
    pub async fn insert<T: Serialize>(&self, key: impl Into<String>, value: T) -> Result<()> {
        let key = key.into();
        self.with(async |_, s, _| s.insert(key, &value).map_err(|e| self.error(e, fingerprint(s))))
            .await
    }

    /// Removes `key`; answers whether it was there.
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn remove(&self, key: &str) -> Result<bool> {
        self.with(async |_, s, _| Ok(s.remove(key))).await
    }

    /// Removes every key (the session stays, under its id).
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn clear(&self) -> Result<()> {
        self.with(async |_, s, _| {
            s.clear();
            Ok(())
        })
        .await
    }

    /// Whether the session holds no data (as this request sees it).
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn is_empty(&self) -> Result<bool> {
        self.with(async |_, s, _| Ok(s.data().is_empty())).await
    }

    /// Whether this request changed the session and the change is not
    /// committed yet (the layer commits it with the answer; `update`,
    /// `rotate` and `log_in` commit their own at once).
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn is_modified(&self) -> Result<bool> {
        self.with(async |_, s, _| Ok(s.is_changed())).await
    }

    /// Gives this session its own expiry policy for this request (`None`:
    /// the layer's again), as tower-sessions' `set_expiry`: the commit
    /// computes the deadline with it, and the answer sends the cookie
    /// whenever the deadline moves (an unchanged session past the touch
    /// throttle, as always) or the cookie changes kind (to or from
    /// [`Expiry::OnSessionEnd`], a cookie the browser drops when it
    /// closes). It is not stored: later requests apply the
    /// layer's [`expiry`](crate::SessionLayer::expiry) again, so a "remember
    /// me" session is given its policy on each of its requests, say from a
    /// flag kept in its data
    /// ([`SessionState::set_expiry`](session_store_core::Session::set_expiry)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_store_tower::{Expiry, Session, SessionError};
    ///
    /// async fn any_handler(session: Session) -> Result<(), SessionError> {
    ///     if session.get::<bool>("remember_me").await? == Some(true) {
    ///         let month = Duration::from_secs(30 * 24 * 3600);
    ///         session.set_expiry(Some(Expiry::OnInactivity(month))).await?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn set_expiry(&self, expiry: Option<Expiry>) -> Result<()> {
        self.with(async |config, s, state| {
            let before = policy_of(config, s);
            s.set_expiry(expiry);
            let after = policy_of(config, s);
            let session_end = |e: Expiry| matches!(e, Expiry::OnSessionEnd { .. });
            if session_end(before) != session_end(after) {
                // The cookie changes kind (one that lasts, or one the
                // browser drops when it closes): the commit touches the
                // session whatever the throttle, and the answer sends it.
                session_store_core::raw::session::require_rewrite(s);
                state.expiry_set = true;
            }
            Ok(())
        })
        .await
    }

    /// The expiry policy that applies to this session: its own
    /// ([`set_expiry`](Self::set_expiry)), or the layer's.
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn expiry(&self) -> Result<Expiry> {
        self.with(async |config, s, _| Ok(policy_of(config, s))).await
    }

    /// When the session ends unless a later request moves it (the store
    /// decides with its own clock): the stored deadline, or, for a session
    /// this request changed, started or gave a policy, the one its commit
    /// writes if it commits now (as tower-sessions' `expiry_date`).
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn expires_at(&self) -> Result<Timestamp> {
        self.with(async |config, s, _| {
            if s.id().is_none() || s.is_changed() || session_store_core::raw::session::rewrite_required(s) {
                Ok(policy_of(config, s).deadline(s.record().created_at, config.clock().now()))
            } else {
                Ok(s.expires_at())
            }
        })
        .await
    }

    /// An atomic read-modify-write, committed at once
    /// ([`Sessions::update`](session_store_core::Sessions::update)): `f`
    /// reads and changes the session; on a conflict with a concurrent
    /// request of the same visitor the session is reloaded and `f` runs
    /// again on the fresh data. Use it for anything computed from an old
    /// value (a counter, a cart). `f` may run several times: keep it free
    /// of side effects outside the session.
    ///
    /// When the session was ended or rotated away by a concurrent request,
    /// nothing is written and `f`'s last answer is returned.
    ///
    /// # Errors
    ///
    /// What `f` returns; the store failed; every attempt lost a race
    /// ([`SessionLayer::commit_attempts`](crate::SessionLayer::commit_attempts)).
    pub async fn update<T>(&self, f: impl FnMut(&mut SessionState) -> session_store_core::Result<T>) -> Result<T> {
        self.with(async |config, s, _| {
            match &config.mode {
                Mode::Store(sessions) => sessions.update(s, f).await.map(|(value, _)| value),
                // Sealed by the response's commit; no store to race with.
                Mode::Cookie(sessions) => sessions.update(s, f),
            }
            .map_err(|e| self.error(e, fingerprint(s).or(self.cookie_fingerprint())))
        })
        .await
    }

    /// Moves the session to a fresh id, keeping its data: call it at login
    /// and at any change of privilege (the defence against session
    /// fixation). The old id stops working at once; the response carries
    /// the new cookie. A session not stored yet gets a fresh id anyway.
    /// Answers `false` when the session was gone from the store meanwhile.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn rotate(&self) -> Result<bool> {
        self.with(async |config, s, _| config.rotate(s).await.map_err(|e| self.error(e, fingerprint(s))))
            .await
    }

    /// Deletes the session (logout); the response clears the cookie. Data
    /// inserted afterwards in the same request starts a new session under
    /// a fresh id.
    ///
    /// # Errors
    ///
    /// The store failed to delete it (the session counts as ended anyway).
    pub async fn end(&self) -> Result<()> {
        self.with(async |config, s, state| {
            let before = fingerprint(s);
            state.ended = true;
            let result = match &config.mode {
                Mode::Store(sessions) => sessions.end(s).await,
                Mode::Cookie(sessions) => {
                    sessions.end(s);
                    Ok(())
                }
            };
            *s = config.start();
            result.map_err(|e| self.error(e, before))
        })
        .await
    }

    /// Logs the visitor in as `owner` (an opaque user id): moves the
    /// session to a fresh id, keeping its data (as [`rotate`](Self::rotate)),
    /// and records the owner, written with the response's commit. From
    /// then on the store's owner index lists the session under `owner`.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn log_in(&self, owner: impl Into<String>) -> Result<bool> {
        let owner = owner.into();
        self.with(async |config, s, _| {
            let before = fingerprint(s);
            let rotated = config.rotate(s).await.map_err(|e| self.error(e, before))?;
            s.set_owner(Some(owner));
            Ok(rotated)
        })
        .await
    }

    /// The user this session belongs to, if it is logged in.
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn owner(&self) -> Result<Option<String>> {
        self.with(async |_, s, _| Ok(s.owner().map(str::to_owned))).await
    }

    /// The live sessions of this session's owner (a "your devices" page);
    /// empty when it is not logged in.
    ///
    /// Each is named by its [`ListingHandle`]: the session id on a store
    /// that keeps ids as they are, its stored hash on a store that hashes
    /// ids at rest
    /// ([`at_rest::Protected`](session_store_core::at_rest::Protected));
    /// never the cookie's id. [`is_current`](Self::is_current) says which
    /// one is this session, [`listing_fingerprint`](Self::listing_fingerprint)
    /// is the fingerprint to show next to the others'
    /// `handle.fingerprint()`, and [`end_listed`](Self::end_listed) ends
    /// one.
    ///
    /// # Errors
    ///
    /// The store failed, or keeps no owner index ([`Error::Unsupported`]).
    pub async fn owner_sessions(&self) -> Result<Vec<ListedSession>> {
        self.with(async |config, s, _| match (&config.mode, s.owner()) {
            (Mode::Cookie(_), _) => Err(self.error(Error::Unsupported(crate::layer::NO_SERVER_SIDE), fingerprint(s))),
            (Mode::Store(sessions), Some(owner)) => sessions
                .owner_sessions(owner)
                .await
                .map_err(|e| self.error(e, fingerprint(s))),
            (Mode::Store(_), None) => Ok(Vec::new()),
        })
        .await
    }

    /// Ends every session of this session's owner, this one included ("log
    /// out everywhere"); answers how many it ended. The response clears
    /// the cookie.
    ///
    /// # Errors
    ///
    /// The store failed, or keeps no owner index ([`Error::Unsupported`]).
    pub async fn log_out_everywhere(&self) -> Result<u64> {
        self.with(async |config, s, state| {
            let sessions = config.store().map_err(|e| self.error(e, fingerprint(s)))?;
            let Some(owner) = s.owner().map(str::to_owned) else {
                return Ok(0);
            };
            let before = fingerprint(s);
            let ended = sessions
                .log_out_everywhere(&owner)
                .await
                .map_err(|e| self.error(e, before))?;
            state.ended = true;
            *s = sessions.start();
            Ok(ended)
        })
        .await
    }

    /// Ends every other session of this session's owner, keeping this one
    /// ("log out my other devices"); answers how many it ended.
    ///
    /// # Errors
    ///
    /// The store failed, or keeps no owner index ([`Error::Unsupported`]).
    pub async fn log_out_other_sessions(&self) -> Result<u64> {
        self.with(async |config, s, _| {
            config
                .store()
                .map_err(|e| self.error(e, fingerprint(s)))?
                .log_out_other_sessions(s)
                .await
                .map_err(|e| self.error(e, fingerprint(s)))
        })
        .await
    }

    /// The fingerprint of the session's id (for a log line; never the id),
    /// `None` while it is not stored.
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn fingerprint(&self) -> Result<Option<Fingerprint>> {
        self.with(async |_, s, _| Ok(fingerprint(s))).await
    }

    /// The fingerprint under which listings name this session: of its
    /// listing handle
    /// ([`SessionStore::listing_handle`](session_store_core::SessionStore::listing_handle)),
    /// the same as [`fingerprint`](Self::fingerprint) on a store that keeps
    /// ids as they are, the fingerprint of the stored hash on a store that
    /// hashes ids at rest. It is what `handle.fingerprint()` shows for
    /// this session among [`owner_sessions`](Self::owner_sessions). `None`
    /// while the session is not stored, and in cookie mode (no listings).
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn listing_fingerprint(&self) -> Result<Option<Fingerprint>> {
        self.with(async |config, s, _| Ok(listing_handle(config, s).map(ListingHandle::fingerprint)))
            .await
    }

    /// Whether `listed`, one of [`owner_sessions`](Self::owner_sessions),
    /// is this session (its handle is this session's listing handle: an
    /// exact comparison, with ids hashed at rest or not). How a "your
    /// devices" page marks the current device. `false` while the session is
    /// not stored, and in cookie mode.
    ///
    /// # Errors
    ///
    /// The store failed to load the session.
    pub async fn is_current(&self, listed: &ListedSession) -> Result<bool> {
        self.with(async |config, s, _| Ok(listing_handle(config, s) == Some(listed.handle)))
            .await
    }

    /// Ends the session a listing named `handle` (a "log out this device"
    /// button next to one of [`owner_sessions`](Self::owner_sessions));
    /// an absent one is no error. Ending this session itself is
    /// [`end`](Self::end), which also clears the cookie.
    ///
    /// # Errors
    ///
    /// The store failed, or cookie mode ([`Error::Unsupported`]).
    pub async fn end_listed(&self, handle: &ListingHandle) -> Result<()> {
        self.with(async |config, s, _| {
            config
                .store()
                .map_err(|e| self.error(e, fingerprint(s)))?
                .end_listed(handle)
                .await
                .map_err(|e| self.error(e, fingerprint(s)))
        })
        .await
    }

    /// Commits the session, if the request used it, and sets or clears
    /// the cookie on `response`; a store error becomes the generic error
    /// answer.
    pub(crate) async fn finish<B: From<&'static str>>(&self, mut response: Response<B>) -> Response<B> {
        if self.config().always_save && self.shared.cookie.is_some() && !response.status().is_server_error() {
            // Load a session the handler did not use, to move its deadline.
            let unused = matches!(self.shared.state.lock().await.slot, Slot::Unloaded);
            if unused && let Err(error) = self.with(async |_, _, _| Ok(())).await {
                error.log("loading the session failed");
                return error_response(&error);
            }
        }
        let mut state = self.shared.state.lock().await;
        let Slot::Loaded(mut session) = std::mem::replace(&mut state.slot, Slot::Finished) else {
            return response;
        };
        let config = self.config();
        // A handler that answered a server error failed half-way: its
        // pending changes are dropped (what it committed itself, with
        // `update`, `rotate` or `end`, stays, and so does its cookie).
        let commit = if response.status().is_server_error() {
            Ok(match &config.mode {
                Mode::Store(_) => (Committed::Nothing, None),
                Mode::Cookie(_) => (Committed::Nothing, Some(CookieCommit::Nothing)),
            })
        } else {
            match &config.mode {
                Mode::Store(sessions) => sessions.commit(&mut session).await.map(|c| (c, None)),
                Mode::Cookie(sessions) => sessions.commit(&mut session).map(|c| (Committed::Nothing, Some(c))),
            }
        };
        let (committed, sealed) = match commit {
            Ok(done) => done,
            Err(e) => {
                let error = self.error(
                    e,
                    fingerprint(&session).or(state.loaded.map(|(id, _)| id.fingerprint())),
                );
                error.log("committing the session failed");
                return error_response(&error);
            }
        };
        let max_age = || {
            let now = config.clock().now();
            match policy_of(config, &session) {
                Expiry::OnSessionEnd { .. } => None,
                _ => Some(session.expires_at().saturating_duration_since(now)),
            }
        };
        let presented = self.shared.cookie.is_some();
        let cookie = match sealed {
            // Cookie mode: the core said what the cookie must become.
            Some(CookieCommit::Set(value)) => Some(config.set_session(value, max_age())),
            Some(CookieCommit::Clear) if presented => Some(config.clear_session()),
            Some(_) => (state.ended && presented).then(|| config.clear_session()),
            None => match session.id() {
                // A cookie that changes kind is sent once the commit
                // confirmed the session live (a touch or a write).
                Some(id)
                    if state.loaded != Some((id, session.expires_at()))
                        || (state.expiry_set
                            && matches!(committed, Committed::Touched | Committed::Saved | Committed::Created)) =>
                {
                    Some(config.set_session(id, max_age()))
                }
                // Ended here: the browser's cookie goes. A session found gone
                // by the commit (ended or rotated by a concurrent request) keeps
                // the browser's cookie as it is: that request's answer set it,
                // and this late answer must not undo a concurrent login.
                None if state.ended && presented => Some(config.clear_session()),
                _ => None,
            },
        };
        if let Some((name, value)) = cookie {
            if config.header.is_some() {
                // An id in a header of its own: shared caches, which know to
                // keep `Set-Cookie` answers private, do not know this one.
                response
                    .headers_mut()
                    .entry(http::header::CACHE_CONTROL)
                    .or_insert(http::HeaderValue::from_static("no-store"));
            }
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// The expiry policy that applies to `session`: its own, or the layer's.
fn policy_of(config: &Config, session: &SessionState) -> Expiry {
    session.expiry().unwrap_or(*config.policy())
}

fn fingerprint(session: &SessionState) -> Option<Fingerprint> {
    session.id().map(SessionId::fingerprint)
}

/// The handle under which the store's listings name `session`, if it is
/// stored (never in cookie mode, which lists nothing).
fn listing_handle(config: &Config, session: &SessionState) -> Option<ListingHandle> {
    match &config.mode {
        Mode::Store(sessions) => session.id().map(|id| sessions.listing_handle(&id)),
        Mode::Cookie(_) => None,
    }
}

/// The generic answer to a store error.
pub(crate) fn error_response<B: From<&'static str>>(error: &SessionError) -> Response<B> {
    let mut response = Response::new(B::from(error.body));
    *response.status_mut() = error.status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
