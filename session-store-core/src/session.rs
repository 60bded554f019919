//! The session handle: what a request does with its session, on any store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::raw::session::{clamp_throttle, touch_window};
use crate::{
    Error, Expiry, ListedSession, ListingHandle, Record, Result, SessionData, SessionId, SessionStore, SessionStoreExt,
    SharedClock, Timestamp,
};

/// How many times [`Sessions::commit`] replays a request's changes onto a
/// record another request changed meanwhile before it gives up.
pub const DEFAULT_COMMIT_ATTEMPTS: usize = 8;

/// How many write turns a handle keeps ([`Sessions`]' per-session
/// serialization): commits of two sessions wait for each other only when
/// their ids share a turn, one chance in this many.
const WRITE_TURNS: usize = 1024;

/// The first pause between two attempts of a commit that lost to a writer
/// outside this handle; each further pause may be twice as long, up to
/// [`BACKOFF_CAP`], and each is drawn at random below its ceiling.
const BACKOFF_BASE: Duration = Duration::from_millis(1);

/// The longest pause between two attempts of one commit.
const BACKOFF_CAP: Duration = Duration::from_millis(100);

/// The default touch throttle of [`Sessions::touch_throttle`]: an unchanged
/// session's deadline is moved at most once per a tenth of the idle timeout.
pub const DEFAULT_TOUCH_THROTTLE: f64 = 0.1;

/// A store, its clock and an expiry policy: the lifecycle of a session in a
/// request, with no version or clock bookkeeping left to the caller.
///
/// ```
/// # use session_store_core::{Sessions, SessionStore};
/// # async fn visit(store: impl SessionStore, cookie: Option<&str>) -> session_store_core::Result<()> {
/// let sessions = Sessions::new(store);                   // the store's own clock, default expiry
/// let mut session = sessions.load_or_start(cookie).await?; // bad, expired or damaged cookie: a new one
/// let count: u64 = session.get("count")?.unwrap_or(0) + 1;
/// session.insert("count", &count)?;
/// sessions.commit(&mut session).await?;                  // version-checked; retried on a conflict
/// let cookie_value = session.id().expect("stored").to_string(); // goes in the Set-Cookie
/// # let _ = cookie_value; Ok(()) }
/// ```
///
/// What each step does:
///
/// - [`load`](Self::load) takes the cookie's text. Text that is not a
///   session id, an absent or expired record, and a record that does not
///   decode (logged as a warning with the id's fingerprint) are all "no
///   session": the visitor gets a fresh one, never an error page.
/// - [`commit`](Self::commit) writes only what changed: a new session that
///   holds data or an owner is created (a new session left empty is not
///   stored); a changed one is saved with
///   [`SessionStore::save_if_version`]; an unchanged one only has its
///   deadline moved
///   ([`touch`](SessionStore::touch)) when the policy moves it. On a
///   conflict (another request of the same visitor committed first) it
///   reloads the record and replays only the keys this request changed onto
///   it, so changes to different keys both survive; for the same key the
///   later commit wins. A session that was deleted (logout) or rotated away
///   (login) meanwhile is never written back: the commit answers
///   [`Committed::Gone`].
/// - [`update`](Self::update) is a read-modify-write that commits at once
///   (a counter, a cart): on a conflict it reloads the record and runs the
///   closure again on the fresh data, so nothing computed from an old value
///   is ever written.
/// - Sliding expiry is throttled ([`touch_throttle`](Self::touch_throttle)):
///   the commit of an unchanged session moves its deadline only once it
///   would move by at least a tenth of the idle timeout (by default), so
///   read-only traffic does not write on every request.
/// - [`rotate`](Self::rotate) moves the session to a fresh id (call it at
///   login), [`end`](Self::end) deletes it (logout).
#[derive(Debug, Clone)]
pub struct Sessions<S> {
    store: S,
    clock: SharedClock,
    expiry: Expiry,
    attempts: usize,
    /// The share of the idle timeout an unchanged session's deadline must
    /// move by before a commit touches it, in `0.0..=1.0`.
    touch_throttle: f64,
    /// At most this many sessions per owner (see `max_sessions_per_owner`).
    max_per_owner: Option<usize>,
    /// Per-session write turns, shared by every clone of this handle.
    turns: Arc<WriteTurns>,
}

/// Write turns: a session's version-checked writes through one handle (and
/// its clones) take turns, so within a process they never race each other
/// into conflicts; only writers elsewhere (another process, another handle,
/// a direct store call) can make a write lose.
struct WriteTurns(Box<[tokio::sync::Mutex<()>]>);

impl WriteTurns {
    fn new() -> Self {
        Self((0..WRITE_TURNS).map(|_| tokio::sync::Mutex::new(())).collect())
    }

    /// Waits for `id`'s turn (ids are random, so their low bits spread them).
    async fn take(&self, id: &SessionId) -> tokio::sync::MutexGuard<'_, ()> {
        // The remainder is below the length, which is a `usize`.
        #[allow(clippy::cast_possible_truncation)]
        let turn = (id.as_u128() % self.0.len() as u128) as usize;
        self.0[turn].lock().await
    }
}

impl std::fmt::Debug for WriteTurns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTurns").field("turns", &self.0.len()).finish()
    }
}

/// What one attempt of [`Sessions::write_loop`] is to do.
enum Step<T> {
    /// Write this record (version-checked against its `version`).
    Write(Record, T),
    /// Nothing to write.
    Done(T),
}

/// How [`Sessions::write_loop`] ended.
enum Outcome<T> {
    /// Written: the record as stored, new version included.
    Saved(Record, T),
    /// The step found nothing to write.
    Done(T),
    /// The session was deleted, rotated away, expired or damaged (a
    /// warning was logged): nothing was written. Holds the last step's
    /// value, if a step ran.
    Gone(Option<T>),
}

/// A pause before retry `retry` (1 for the first pause, after the second
/// lost write): full jitter, a random time below `BACKOFF_BASE *
/// 2^(retry - 1)` (1 ms, then 2, 4, ...), capped at [`BACKOFF_CAP`].
///
/// The pause is kept by a short-lived thread of its own, so it needs no
/// timer from the caller's runtime (any executor, or a tokio runtime built
/// without `enable_time`): only a session that keeps losing writes to
/// other processes ever pauses, so the thread is rare and cheap by
/// comparison.
async fn back_off(retry: u32) {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << retry.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    // 53 random bits: a uniform fraction in [0, 1).
    #[allow(clippy::cast_precision_loss)]
    let fraction = (SessionId::random().as_u128() >> 75) as f64 / (1u64 << 53) as f64;
    let pause = ceiling.mul_f64(fraction);
    let (done, wait) = tokio::sync::oneshot::channel();
    let sleeper = std::thread::Builder::new()
        .name("session-backoff".into())
        .spawn(move || {
            std::thread::sleep(pause);
            let _ = done.send(());
        });
    // Without a thread to be had, go on without a pause.
    if sleeper.is_ok() {
        let _ = wait.await;
    }
}

/// What [`Sessions::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Committed {
    /// Nothing to write: no change, and the deadline did not move (or a
    /// new session held no data, or the session had ended).
    Nothing,
    /// A new session was stored: send its cookie.
    Created,
    /// The changes were saved.
    Saved,
    /// Only the deadline moved.
    Touched,
    /// The session was deleted or moved to another id by another request
    /// meanwhile; nothing was written. Clear the visitor's cookie.
    Gone,
}

/// Where a [`Session`] stands with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Started in this request, not stored yet.
    New,
    /// Loaded from (or written to) the store.
    Stored,
    /// Ended in this request, or found gone by a commit.
    Gone,
}

/// One visitor's session during a request: its data, and what this request
/// changed. Get one from [`Sessions`]; write it back with
/// [`Sessions::commit`].
#[derive(Debug, Clone)]
pub struct Session {
    record: Record,
    state: State,
    /// Keys this request set (`Some(json)`) or removed (`None`).
    changes: BTreeMap<String, Option<String>>,
    /// Whether this request cleared the data first.
    cleared: bool,
    /// The owner this request set (`Some(None)`: removed), if it did.
    owner_change: Option<Option<String>>,
    /// The session must be written out again even if nothing changed
    /// ([`raw::session::require_rewrite`](crate::raw::session::require_rewrite)):
    /// in cookie mode a fresh id after a rotation, or a cookie sealed under
    /// an older key; over a store, the next commit touches it whatever
    /// the throttle (a layer that must send its cookie again, confirmed
    /// live).
    reseal: bool,
    /// This session's own expiry policy, in place of the handle's
    /// ([`set_expiry`](Self::set_expiry)).
    expiry: Option<Expiry>,
}

impl Session {
    fn new(record: Record, state: State) -> Self {
        Self {
            record,
            state,
            changes: BTreeMap::new(),
            cleared: false,
            owner_change: None,
            reseal: false,
            expiry: None,
        }
    }

    /// A session of cookie mode: `stored` when it came from a cookie.
    pub(crate) fn from_cookie(record: Record, stored: bool) -> Self {
        Self::new(record, if stored { State::Stored } else { State::New })
    }

    /// The record, for cookie mode's commit.
    pub(crate) fn record_mut(&mut self) -> &mut Record {
        &mut self.record
    }

    /// Cookie mode: whether the session came from a cookie (or was sealed
    /// into one), started in this request, or ended.
    pub(crate) fn cookie_state(&self) -> (bool, bool) {
        (self.state == State::Stored, self.state == State::Gone)
    }

    /// Cookie mode: seal again at the next commit, even if unchanged.
    pub(crate) fn set_reseal(&mut self) {
        self.reseal = true;
    }

    /// Cookie mode: whether the next commit must seal again.
    pub(crate) fn needs_reseal(&self) -> bool {
        self.reseal
    }

    /// Cookie mode: the session ended (logout); the next commit clears the
    /// cookie.
    pub(crate) fn mark_ended(&mut self) {
        self.state = State::Gone;
        self.changes.clear();
        self.cleared = false;
        self.owner_change = None;
    }

    /// Cookie mode: the session was sealed into the response's cookie.
    pub(crate) fn mark_sealed(&mut self) {
        self.committed();
        self.reseal = false;
    }

    /// The authenticated user this session belongs to, if any.
    #[must_use]
    pub fn owner(&self) -> Option<&str> {
        self.record.owner.as_deref()
    }

    /// Sets (or, with `None`, removes) the session's owner: call it at
    /// login, together with [`Sessions::rotate`]. The next commit writes it
    /// with the data, in the same step, and from then on the store's owner
    /// index lists the session under it
    /// ([`Sessions::owner_sessions`], [`Sessions::log_out_everywhere`]).
    pub fn set_owner(&mut self, owner: Option<String>) {
        self.record.owner.clone_from(&owner);
        self.owner_change = Some(owner);
    }

    /// Gives this session its own expiry policy (`None`: the handle's
    /// again) for the rest of this request: its commits compute the
    /// deadline with it, as they would with the handle's (an unchanged
    /// session is touched only past the [touch
    /// throttle](Sessions::touch_throttle)). The policy is not stored with
    /// the session: a later request starts from the handle's policy again,
    /// so an app that gives some sessions a policy of their own ("remember
    /// me") sets it on each of their requests, from something it keeps in
    /// the session's data.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_store_core::{Expiry, Sessions};
    /// use session_store_memory::MemoryStore;
    ///
    /// let sessions = Sessions::new(MemoryStore::new());
    /// let mut session = sessions.start();
    /// let remember_me = Expiry::OnInactivity(Duration::from_secs(30 * 24 * 3600));
    /// session.set_expiry(Some(remember_me));
    /// assert_eq!(sessions.policy_of(&session), remember_me);
    /// session.set_expiry(None);
    /// assert_eq!(sessions.policy_of(&session), *sessions.policy());
    /// ```
    pub fn set_expiry(&mut self, expiry: Option<Expiry>) {
        self.expiry = expiry;
    }

    /// The policy [`set_expiry`](Self::set_expiry) gave this session, if
    /// any ([`Sessions::policy_of`] answers the one that applies).
    #[must_use]
    pub fn expiry(&self) -> Option<Expiry> {
        self.expiry
    }

    /// The session's id, once it is stored (a new session gets its id at
    /// its first commit); `None` for a new or ended session.
    #[must_use]
    pub fn id(&self) -> Option<SessionId> {
        (self.state == State::Stored).then_some(self.record.id)
    }

    /// Whether the session was started in this request and not stored yet.
    #[must_use]
    pub fn is_new(&self) -> bool {
        self.state == State::New
    }

    /// The owner this session's next commit logs in (set, not removed).
    fn login(&self) -> Option<String> {
        self.owner_change.clone().flatten()
    }

    /// Whether this request changed the data.
    #[must_use]
    pub fn is_changed(&self) -> bool {
        self.cleared || !self.changes.is_empty() || self.owner_change.is_some()
    }

    /// The value under `key`, decoded from its JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] when the stored JSON is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(self.record.data.get(key)?)
    }

    /// Sets `key` to `value` (held as JSON).
    ///
    /// # Errors
    ///
    /// [`Error::Data`] when `value` does not serialize to JSON (a map with
    /// non-string keys, say); nothing changes then.
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: impl Into<String>, value: &T) -> Result<()> {
        let key = key.into();
        let json = serde_json::to_string(value)?;
        self.record.data.insert_raw(key.clone(), json.clone());
        self.changes.insert(key, Some(json));
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let was = self.record.data.remove(key).is_some();
        self.changes.insert(key.to_owned(), None);
        was
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.record.data.clear();
        self.changes.clear();
        self.cleared = true;
    }

    /// The session's data as this request sees it.
    #[must_use]
    pub fn data(&self) -> &SessionData {
        &self.record.data
    }

    /// The session's record: data, created time, deadline, version.
    #[must_use]
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The deadline: the session is live while `now < expires_at`.
    #[must_use]
    pub fn expires_at(&self) -> Timestamp {
        self.record.expires_at
    }

    /// Applies this request's changes to `data` (another request's newer
    /// version of the same session).
    fn replay_onto(&self, data: &mut SessionData) {
        if self.cleared {
            data.clear();
        }
        for (key, change) in &self.changes {
            match change {
                Some(json) => {
                    data.insert_raw(key.clone(), json.clone());
                }
                None => {
                    data.remove(key);
                }
            }
        }
    }

    fn committed(&mut self) {
        self.changes.clear();
        self.cleared = false;
        self.owner_change = None;
        self.reseal = false;
        self.state = State::Stored;
    }
}

impl<S: SessionStore> Sessions<S> {
    /// A handle on `store`, deciding time with the store's own clock, with
    /// the default expiry policy ([`Expiry::default`]).
    pub fn new(store: S) -> Self {
        let clock = store.clock();
        Self {
            store,
            clock,
            expiry: Expiry::default(),
            attempts: DEFAULT_COMMIT_ATTEMPTS,
            touch_throttle: DEFAULT_TOUCH_THROTTLE,
            max_per_owner: None,
            turns: Arc::new(WriteTurns::new()),
        }
    }

    /// Keeps at most `cap` sessions per owner (at least 1): a commit that
    /// sets a session's owner ([`Session::set_owner`], a login) and leaves
    /// the owner with more than `cap` live sessions ends the oldest of the
    /// others (by creation time) until `cap` remain. Off by default.
    ///
    /// It needs a store with an owner index. The login itself is committed
    /// first and stands whatever happens next: when ending the extra
    /// sessions fails (a store without an index, a backend failure), the
    /// commit still succeeds and the failure is logged as a warning. Two
    /// logins racing may each end a session, so the owner can briefly have
    /// fewer than `cap`, never more once both have returned.
    #[must_use]
    pub fn max_sessions_per_owner(mut self, cap: usize) -> Self {
        self.max_per_owner = Some(cap.max(1));
        self
    }

    /// The expiry policy every commit and touch applies.
    #[must_use]
    pub fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// How many writes a commit (an [`update`](Self::update), a
    /// [`replace_record`](Self::replace_record)) may lose to concurrent
    /// writers of the same session before it returns
    /// [`Error::Contended`] (default [`DEFAULT_COMMIT_ATTEMPTS`], at least
    /// 1).
    ///
    /// Commits of one session through this handle and its clones take
    /// turns, so a visitor's concurrent requests in one process lose at
    /// most one write each (to the request that committed while they ran),
    /// however many there are. Only writers this handle does not see (other
    /// processes or hosts, other handles, direct store calls) cost more
    /// attempts, and after the second lost write each attempt waits a
    /// random pause first (up to 1 ms, then 2, 4, ... capped at 100 ms), so
    /// a hot session's writers spread out instead of colliding again.
    #[must_use]
    pub fn commit_attempts(mut self, attempts: usize) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Throttles sliding expiry: the commit of an unchanged session touches
    /// it (moves its deadline) only when the deadline would move by at
    /// least `fraction` of the policy's idle timeout (the `idle` of
    /// [`Expiry::OnInactivity`] and [`Expiry::IdleAndAbsolute`], the `cap`
    /// of [`Expiry::OnSessionEnd`]); otherwise it writes nothing and
    /// answers [`Committed::Nothing`]. Default [`DEFAULT_TOUCH_THROTTLE`]
    /// (a tenth): with a 30-minute idle timeout, a visitor's read-only
    /// requests write at most once every 3 minutes, and the session may
    /// end up to 3 minutes before the last request + 30 minutes.
    ///
    /// `0.0` turns throttling off (every commit that moves the deadline
    /// touches). The value is clamped into `0.0..=1.0` (NaN counts as
    /// `0.0`); at `1.0` an unchanged session is never touched in time, so
    /// keep it small. Changed sessions are always saved with a fresh
    /// deadline, and [`touch`](Self::touch) is never throttled.
    #[must_use]
    pub fn touch_throttle(mut self, fraction: f64) -> Self {
        self.touch_throttle = clamp_throttle(fraction);
        self
    }

    /// The expiry policy that applies to `session`: its own
    /// ([`Session::set_expiry`]), or the handle's.
    #[must_use]
    pub fn policy_of(&self, session: &Session) -> Expiry {
        session.expiry.unwrap_or(self.expiry)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The expiry policy.
    pub fn policy(&self) -> &Expiry {
        &self.expiry
    }

    /// The clock (the store's).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// A new, empty session, stored at its first commit that finds data in
    /// it.
    #[must_use]
    pub fn start(&self) -> Session {
        let now = self.clock.now();
        Session::new(Record::new(SessionData::new(), now, &self.expiry), State::New)
    }

    /// The live session named by `cookie` (the cookie's text), or `None`
    /// when the text is not a session id, no live record is under it, or
    /// the record does not decode (a warning is logged with the id's
    /// fingerprint: to the visitor the damaged session is simply gone).
    ///
    /// # Errors
    ///
    /// What the store returns for anything else (unreachable, timed out).
    pub async fn load(&self, cookie: &str) -> Result<Option<Session>> {
        let Ok(id) = cookie.parse::<SessionId>() else {
            return Ok(None);
        };
        Ok(self
            .load_record(&id)
            .await?
            .map(|record| Session::new(record, State::Stored)))
    }

    /// [`load`](Self::load) when a cookie is given and names a live
    /// session, else [`start`](Self::start).
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub async fn load_or_start(&self, cookie: Option<&str>) -> Result<Session> {
        if let Some(cookie) = cookie
            && let Some(session) = self.load(cookie).await?
        {
            return Ok(session);
        }
        Ok(self.start())
    }

    /// Writes what this request did to the session (see the type's docs):
    /// creates a new session that holds data, saves a changed one
    /// (version-checked, replaying this request's changes onto a record
    /// changed meanwhile), or moves an unchanged one's deadline.
    ///
    /// # Errors
    ///
    /// What the store returns ([`Error::TooLarge`], backend failures);
    /// [`Error::Contended`] only after
    /// [`commit_attempts`](Self::commit_attempts) writes all lost a race.
    pub async fn commit(&self, session: &mut Session) -> Result<Committed> {
        let login = session.login();
        let committed = self.commit_once(session).await?;
        self.after_commit(login, committed, session).await;
        Ok(committed)
    }

    async fn commit_once(&self, session: &mut Session) -> Result<Committed> {
        let now = self.clock.now();
        let policy = self.policy_of(session);
        match session.state {
            State::Gone => Ok(Committed::Nothing),
            State::New => {
                if session.record.data.is_empty() && session.record.owner.is_none() {
                    return Ok(Committed::Nothing);
                }
                session.record.created_at = now;
                session.record.refresh(now, &policy);
                session.record.version = self.store.create_with_fresh_id(&mut session.record).await?;
                session.committed();
                Ok(Committed::Created)
            }
            State::Stored if !session.is_changed() => {
                let deadline = policy.deadline(session.record.created_at, now);
                if deadline == session.record.expires_at && !session.reseal {
                    return Ok(Committed::Nothing);
                }
                // Throttled: the deadline would move by less than the window
                // (unless the session was given a policy of its own).
                let window = touch_window(&policy, self.touch_throttle);
                if !session.reseal
                    && !window.is_zero()
                    && deadline > session.record.expires_at
                    && deadline.saturating_duration_since(session.record.expires_at) < window
                {
                    return Ok(Committed::Nothing);
                }
                match self.store.touch(&session.record.id, deadline).await {
                    Ok(true) => {
                        session.record.expires_at = deadline;
                        session.reseal = false;
                        Ok(Committed::Touched)
                    }
                    Ok(false) => {
                        session.state = State::Gone;
                        Ok(Committed::Gone)
                    }
                    Err(e) if e.is_decode() => Ok(self.gone(session, &e)),
                    Err(e) => Err(e),
                }
            }
            State::Stored => self.save(session).await,
        }
    }

    async fn save(&self, session: &mut Session) -> Result<Committed> {
        let id = session.record.id;
        let policy = self.policy_of(session);
        let outcome = self
            .write_loop(&id, Some(session.record.clone()), |mut record, reloaded| {
                if reloaded {
                    // Another request committed first: start from what it
                    // wrote, with this request's changes on top.
                    session.replay_onto(&mut record.data);
                    if let Some(owner) = &session.owner_change {
                        record.owner.clone_from(owner);
                    }
                }
                record.refresh(self.clock.now(), &policy);
                Ok(Step::Write(record, ()))
            })
            .await?;
        Ok(match outcome {
            Outcome::Saved(record, ()) => {
                session.record = record;
                session.committed();
                Committed::Saved
            }
            // Deleted (logout), rotated away (login) or damaged meanwhile:
            // never written back.
            Outcome::Gone(_) => {
                session.state = State::Gone;
                Committed::Gone
            }
            Outcome::Done(()) => Committed::Nothing,
        })
    }

    /// An atomic read-modify-write: runs `f` on the session and commits at
    /// once. A stored session is saved with
    /// [`SessionStore::save_if_version`]; when another request committed
    /// first, the record is reloaded, this request's earlier uncommitted
    /// changes are replayed onto it, and `f` runs again on the fresh data,
    /// up to [`commit_attempts`](Self::commit_attempts) times. So a value
    /// computed from the old one (a counter, a cart) is never lost to a
    /// concurrent request of the same visitor, nor written from stale data.
    ///
    /// Returns what `f` returned on the run that counted, and what was
    /// written:
    ///
    /// - [`Committed::Saved`] (a stored session), [`Committed::Created`]
    ///   (a new session that holds data; a new id cannot conflict),
    /// - [`Committed::Nothing`] when `f` changed nothing and nothing was
    ///   pending (the deadline is left to the request's [`commit`](Self::commit)),
    ///   or for a new session left empty,
    /// - [`Committed::Gone`] when the session was ended in this request,
    ///   or deleted, rotated away or damaged meanwhile: nothing is written
    ///   (a late write never brings a session back) and the value is that
    ///   of `f`'s last run.
    ///
    /// `f` may run several times: keep it free of side effects outside the
    /// session. It sees the session with this request's earlier changes.
    /// When it fails, its error is returned and nothing of that run is
    /// written or kept.
    ///
    /// ```
    /// # use session_store_core::{Sessions, SessionStore};
    /// # async fn visit(sessions: &Sessions<impl SessionStore>, cookie: Option<&str>) -> session_store_core::Result<u64> {
    /// let mut session = sessions.load_or_start(cookie).await?;
    /// let (count, _) = sessions
    ///     .update(&mut session, |s| {
    ///         let count = s.get::<u64>("count")?.unwrap_or(0) + 1;
    ///         s.insert("count", &count)?;
    ///         Ok(count)
    ///     })
    ///     .await?;
    /// # Ok(count) }
    /// ```
    ///
    /// # Errors
    ///
    /// What `f` returns; what the store returns ([`Error::TooLarge`],
    /// backend failures); [`Error::Contended`] when every attempt lost a
    /// race.
    pub async fn update<T, F>(&self, session: &mut Session, mut f: F) -> Result<(T, Committed)>
    where
        F: FnMut(&mut Session) -> Result<T>,
    {
        match session.state {
            State::Gone => {
                let mut scratch = session.clone();
                let value = f(&mut scratch)?;
                Ok((value, Committed::Gone))
            }
            State::New => {
                let mut trial = session.clone();
                let value = f(&mut trial)?;
                *session = trial;
                let committed = self.commit(session).await?;
                Ok((value, committed))
            }
            State::Stored => {
                let id = session.record.id;
                let policy = self.policy_of(session);
                let outcome = self
                    .write_loop(&id, Some(session.record.clone()), |fresh, reloaded| {
                        // What `f` starts from: the session as loaded, or
                        // another request's newer record, with this
                        // request's pending changes on top either way.
                        let mut trial = session.clone();
                        if reloaded {
                            trial.record = fresh;
                            session.replay_onto(&mut trial.record.data);
                            if let Some(owner) = &session.owner_change {
                                trial.record.owner.clone_from(owner);
                            }
                        }
                        let value = f(&mut trial)?;
                        if !trial.is_changed() {
                            return Ok(Step::Done((value, trial)));
                        }
                        let mut record = trial.record.clone();
                        record.refresh(self.clock.now(), &policy);
                        Ok(Step::Write(record, (value, trial)))
                    })
                    .await?;
                match outcome {
                    Outcome::Saved(record, (value, mut trial)) => {
                        let login = trial.login();
                        trial.record = record;
                        trial.committed();
                        *session = trial;
                        self.after_commit(login, Committed::Saved, session).await;
                        Ok((value, Committed::Saved))
                    }
                    Outcome::Done((value, trial)) => {
                        *session = trial;
                        Ok((value, Committed::Nothing))
                    }
                    Outcome::Gone(last) => {
                        session.state = State::Gone;
                        let value = match last {
                            Some((value, _)) => value,
                            // Gone before `f` ran (not reached: the first
                            // attempt runs `f` on the loaded session).
                            None => f(&mut session.clone())?,
                        };
                        Ok((value, Committed::Gone))
                    }
                }
            }
        }
    }

    /// After a commit that wrote a login (an owner set on the session):
    /// with a cap per owner, ends that owner's oldest other sessions past it.
    async fn after_commit(&self, login: Option<String>, committed: Committed, session: &Session) {
        let (Some(cap), Some(owner), Committed::Created | Committed::Saved, Some(current)) =
            (self.max_per_owner, login, committed, session.id())
        else {
            return;
        };
        match self.end_oldest_past(&owner, cap, &current).await {
            Ok(0) => {}
            #[cfg(feature = "tracing")]
            Ok(ended) => tracing::debug!(ended, cap, "a login ended the owner's oldest sessions past the cap"),
            #[cfg(not(feature = "tracing"))]
            Ok(_) => {}
            #[cfg(feature = "tracing")]
            Err(e) => tracing::warn!(
                error = %e.chain(),
                cap,
                "a login could not end the owner's sessions past the cap; the login stands"
            ),
            #[cfg(not(feature = "tracing"))]
            Err(_) => {}
        }
    }

    /// Ends `owner`'s oldest sessions but `current` until at most `cap`
    /// remain; how many it ended.
    async fn end_oldest_past(&self, owner: &str, cap: usize, current: &SessionId) -> Result<usize> {
        let mut others = self.owner_sessions(owner).await?;
        let current = self.store.listing_handle(current);
        others.retain(|s| s.handle != current);
        // With the current one, over the cap by this many.
        let excess = (others.len() + 1).saturating_sub(cap);
        others.sort_by_key(|s| (s.created_at, s.handle));
        for s in others.iter().take(excess) {
            self.store.delete_listed(&s.handle).await?;
        }
        Ok(excess.min(others.len()))
    }

    /// The one write loop of the handle, behind [`commit`](Self::commit),
    /// [`update`](Self::update) and [`replace_record`](Self::replace_record).
    ///
    /// It waits for the session's write turn (so the commits of one
    /// visitor's concurrent requests through this handle take turns instead
    /// of racing), then asks `step` what to write, starting from `first`
    /// (or, when `first` is `None`, from the record loaded in its turn), and
    /// writes it with [`SessionStore::save_if_version`]. On a conflict it
    /// reloads the record and asks `step` again with the fresh one
    /// (`reloaded` is then `true`). The first conflict is expected (the
    /// record was loaded before the turn); later ones come from writers
    /// outside this handle, and each is followed by a jittered, growing
    /// pause. A session found deleted, rotated away, expired or damaged is
    /// never written back ([`Outcome::Gone`]). After
    /// [`commit_attempts`](Self::commit_attempts) lost writes it logs a
    /// warning and answers [`Error::Contended`].
    async fn write_loop<T>(
        &self,
        id: &SessionId,
        first: Option<Record>,
        mut step: impl FnMut(Record, bool) -> Result<Step<T>>,
    ) -> Result<Outcome<T>> {
        let mut turn = Some(self.turns.take(id).await);
        let (mut base, mut reloaded) = match first {
            Some(record) => (record, false),
            None => match self.reload(id).await? {
                Some(record) => (record, true),
                None => return Ok(Outcome::Gone(None)),
            },
        };
        for attempt in 1..=self.attempts {
            let (mut record, value) = match step(base, reloaded)? {
                Step::Done(value) => return Ok(Outcome::Done(value)),
                Step::Write(record, value) => (record, value),
            };
            match self.store.save_if_version(&record).await {
                Ok(version) => {
                    record.version = version;
                    return Ok(Outcome::Saved(record, value));
                }
                Err(e) if e.is_conflict() => {}
                Err(e) if e.is_decode() => {
                    warn_damaged(id, &e);
                    return Ok(Outcome::Gone(Some(value)));
                }
                Err(e) => return Err(e),
            }
            if attempt == self.attempts {
                break;
            }
            if attempt > 1 {
                // Another process keeps winning: let go of the turn while
                // pausing, so the sessions that share it need not wait.
                drop(turn.take());
                back_off(u32::try_from(attempt - 1).unwrap_or(u32::MAX)).await;
                turn = Some(self.turns.take(id).await);
            }
            base = match self.reload(id).await? {
                Some(fresh) => fresh,
                None => return Ok(Outcome::Gone(Some(value))),
            };
            reloaded = true;
        }
        #[cfg(feature = "tracing")]
        tracing::warn!(
            session = %id.fingerprint(),
            attempts = self.attempts,
            "every attempt to write the session lost to a concurrent write; giving up"
        );
        Err(Error::Contended {
            id: *id,
            attempts: self.attempts,
        })
    }

    /// The live record under `id` for another attempt, or `None` when it is
    /// gone (deleted, rotated away, expired) or damaged (with a warning).
    async fn reload(&self, id: &SessionId) -> Result<Option<Record>> {
        match self.store.load(id).await {
            Ok(found) => Ok(found),
            Err(e) if e.is_decode() => {
                warn_damaged(id, &e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Marks `session` gone because its stored record does not decode.
    fn gone(&self, session: &mut Session, error: &Error) -> Committed {
        warn_damaged(&session.record.id, error);
        session.state = State::Gone;
        Committed::Gone
    }

    /// Moves the session's deadline as the policy says for activity now,
    /// without writing its data. Returns `false` when the session is not
    /// stored (new, ended, or gone from the store).
    ///
    /// # Errors
    ///
    /// What the store returns.
    pub async fn touch(&self, session: &mut Session) -> Result<bool> {
        if session.state != State::Stored {
            return Ok(false);
        }
        let deadline = self
            .policy_of(session)
            .deadline(session.record.created_at, self.clock.now());
        match self.store.touch(&session.record.id, deadline).await {
            Ok(true) => {
                session.record.expires_at = deadline;
                session.reseal = false;
                Ok(true)
            }
            Ok(false) => {
                session.state = State::Gone;
                Ok(false)
            }
            Err(e) if e.is_decode() => {
                self.gone(session, &e);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Moves a stored session to a fresh id (data, deadline and version
    /// kept) and removes the old id: call it when the visitor logs in or
    /// gains privileges. A new session has no id yet, so there is nothing
    /// to move: it gets a fresh id at its commit. Returns `false` when the
    /// session is gone from the store.
    ///
    /// # Errors
    ///
    /// What the store returns.
    pub async fn rotate(&self, session: &mut Session) -> Result<bool> {
        match session.state {
            State::New => Ok(true),
            State::Gone => Ok(false),
            State::Stored => match self.store.rotate_to_fresh_id(&session.record.id).await {
                Ok(Some(new)) => {
                    session.record.id = new;
                    Ok(true)
                }
                Ok(None) => {
                    session.state = State::Gone;
                    Ok(false)
                }
                Err(e) if e.is_decode() => {
                    self.gone(session, &e);
                    Ok(false)
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Deletes the session (logout). Later commits of it write nothing.
    ///
    /// # Errors
    ///
    /// What the store returns; the session counts as ended anyway.
    pub async fn end(&self, session: &mut Session) -> Result<()> {
        let was = std::mem::replace(&mut session.state, State::Gone);
        session.changes.clear();
        session.cleared = false;
        if was == State::Stored {
            self.store.delete(&session.record.id).await?;
        }
        Ok(())
    }
}

/// Owners: "your devices", "log out everywhere", "log out my other
/// sessions", on a store with an owner index
/// ([`SessionStore::owner_sessions`]); other stores answer
/// [`Error::Unsupported`].
impl<S: SessionStore> Sessions<S> {
    /// The live sessions of `owner` (created time, deadline, data), for a
    /// page that lists where a user is logged in. Costs in proportion to
    /// that owner's sessions. A session that expired, was removed or is
    /// damaged between the listing and its load is left out.
    ///
    /// Each is named by its [`ListingHandle`], never by its id: compare it
    /// with [`listing_handle`](Self::listing_handle) of the cookie's id to
    /// find the current session, and end one with
    /// [`end_listed`](Self::end_listed).
    ///
    /// # Errors
    ///
    /// What the store returns ([`Error::Unsupported`] without an index).
    pub async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListedSession>> {
        let mut listed = Vec::new();
        for handle in self.store.owner_sessions(owner).await? {
            match self.store.load_listed(&handle).await {
                Ok(Some(record)) if record.owner.as_deref() == Some(owner) => {
                    listed.push(ListedSession::new(handle, record));
                }
                Ok(_) => {}
                Err(e) if e.is_decode() => warn_damaged_listed(&handle, &e),
                Err(e) => return Err(e),
            }
        }
        Ok(listed)
    }

    /// The handle under which [`owner_sessions`](Self::owner_sessions) and
    /// the store's listings name the session `id` (see
    /// [`SessionStore::listing_handle`]).
    #[must_use]
    pub fn listing_handle(&self, id: &SessionId) -> ListingHandle {
        self.store.listing_handle(id)
    }

    /// Ends the session a listing named `handle` (a "log out this device"
    /// button on a devices page); an absent one is no error.
    ///
    /// # Errors
    ///
    /// What the store returns.
    pub async fn end_listed(&self, handle: &ListingHandle) -> Result<()> {
        self.store.delete_listed(handle).await
    }

    /// Ends every session of `owner` ("log out everywhere", after a
    /// password reset say) and returns how many live ones it ended.
    ///
    /// # Errors
    ///
    /// What the store returns ([`Error::Unsupported`] without an index).
    pub async fn log_out_everywhere(&self, owner: &str) -> Result<u64> {
        self.store.delete_owner_sessions(owner, None).await
    }

    /// Ends every other session of this session's owner, keeping this one
    /// ("log out my other devices"), and returns how many it ended; 0 for a
    /// session without an owner or not stored yet.
    ///
    /// # Errors
    ///
    /// What the store returns ([`Error::Unsupported`] without an index).
    pub async fn log_out_other_sessions(&self, session: &Session) -> Result<u64> {
        match (session.owner(), session.id()) {
            (Some(owner), Some(id)) => self.store.delete_owner_sessions(owner, Some(&id)).await,
            _ => Ok(0),
        }
    }
}

/// [`warn_damaged`] for a record a listing named.
fn warn_damaged_listed(handle: &ListingHandle, error: &Error) {
    warn_damaged_by(handle.fingerprint(), error);
}

/// The one log line of a damaged record: a warning with the fingerprint.
fn warn_damaged(id: &SessionId, error: &Error) {
    warn_damaged_by(id.fingerprint(), error);
}

fn warn_damaged_by(fingerprint: crate::Fingerprint, error: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        session = %fingerprint,
        // With every cause: the backend's own word (WRONGTYPE, a codec error).
        error = %error.chain(),
        "a stored session does not decode: to the visitor it is gone"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (fingerprint, error);
}

/// Record-level calls, for layers that hold whole records rather than a
/// [`Session`]: adapters to a framework's own store trait
/// (tower-sessions, actix-session), which hand over the whole state and a
/// deadline and expect a record back. They keep the handle's rules: the
/// clock is the store's, versions are kept by the handle, a record that does
/// not decode is a session that is gone (one warning with the id's
/// fingerprint), and a session deleted, rotated away or expired meanwhile is
/// never written back. The expiry policy is not used here: the caller gives
/// the deadline.
impl<S: SessionStore> Sessions<S> {
    /// The live record under `id`, or `None` when there is none, it expired,
    /// or it is damaged: it does not decode, or a value is not valid JSON
    /// text (a warning is logged with the id's fingerprint; the damaged
    /// record itself is left alone, and expires like any other).
    /// [`load`](Self::load) is this, from the cookie's text.
    ///
    /// # Errors
    ///
    /// What the store returns for anything else (unreachable, timed out).
    pub async fn load_record(&self, id: &SessionId) -> Result<Option<Record>> {
        self.load_record_with(id, |record| {
            record.check_json()?;
            Ok(record)
        })
        .await
    }

    /// [`load_record`](Self::load_record) with a conversion of the record
    /// (into a framework's own type): a decode error from `convert` is a
    /// damaged record too ("no session", with the warning), so a framework
    /// adapter needs no policy of its own. `convert` is expected to check
    /// the values' JSON when it reads them ([`Record::json_values`] does).
    ///
    /// # Errors
    ///
    /// What the store returns, or what `convert` returns, for anything but
    /// a decode error.
    pub async fn load_record_with<T>(
        &self,
        id: &SessionId,
        convert: impl FnOnce(Record) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.store.load(id).await.and_then(|r| r.map(convert).transpose()) {
            Err(e) if e.is_decode() => {
                warn_damaged(id, &e);
                Ok(None)
            }
            loaded => loaded,
        }
    }

    /// Stores `data` as a new session until `expires_at`, created now by the
    /// store's clock: under `id` unless a live session holds that id, else
    /// under a fresh one (a live session is never overwritten). Returns the
    /// stored record, id and version (1) included.
    ///
    /// # Errors
    ///
    /// What the store returns ([`Error::TooLarge`], backend failures).
    pub async fn create_record(&self, id: SessionId, data: SessionData, expires_at: Timestamp) -> Result<Record> {
        let mut record = Record::with_deadline(id, data, self.clock.now(), expires_at);
        record.version = self.store.create_with_fresh_id(&mut record).await?;
        Ok(record)
    }

    /// Replaces the data and deadline of the live session `id` with `data`
    /// and `expires_at`, keeping its created time: the whole state of a
    /// request, last writer wins. The write is version-checked
    /// ([`SessionStore::save_if_version`]), so a session that was deleted
    /// (logout), rotated away (login), expired or damaged meanwhile is never
    /// written back: that answers `Ok(None)` and writes nothing. Another
    /// request's write in between makes it re-read and write again, up to
    /// [`commit_attempts`](Self::commit_attempts) times (taking turns with
    /// the handle's other writes of the session, as [`commit`](Self::commit)
    /// does). Returns the new version.
    ///
    /// # Errors
    ///
    /// What the store returns; [`Error::Contended`] when every attempt lost
    /// a race with another write.
    pub async fn replace_record(
        &self,
        id: &SessionId,
        data: SessionData,
        expires_at: Timestamp,
    ) -> Result<Option<u64>> {
        let outcome = self
            .write_loop(id, None, |stored, _| {
                let record = Record {
                    data: data.clone(),
                    expires_at,
                    ..stored
                };
                Ok(Step::Write(record, ()))
            })
            .await?;
        Ok(match outcome {
            Outcome::Saved(record, ()) => Some(record.version),
            Outcome::Gone(_) | Outcome::Done(()) => None,
        })
    }

    /// Moves the deadline of the live session `id` to `expires_at` without
    /// writing its data; `false` when it is absent, expired or damaged (a
    /// warning then).
    ///
    /// # Errors
    ///
    /// What the store returns for anything else.
    pub async fn touch_record(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        match self.store.touch(id, expires_at).await {
            Err(e) if e.is_decode() => {
                warn_damaged(id, &e);
                Ok(false)
            }
            touched => touched,
        }
    }

    /// Deletes the session `id` (logout); an absent one is no error, nor is
    /// a damaged one the store cannot read (a warning then).
    ///
    /// # Errors
    ///
    /// What the store returns for anything else.
    pub async fn delete_record(&self, id: &SessionId) -> Result<()> {
        match self.store.delete(id).await {
            Err(e) if e.is_decode() => {
                warn_damaged(id, &e);
                Ok(())
            }
            deleted => deleted,
        }
    }
}
