//! Cookie mode (feature `cookie`): the whole session sealed in the cookie,
//! no server-side state. Built on the core's hooks for layers that keep
//! sessions outside a store (`session_store_core::raw::session`).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use session_store_core::raw::codec;
use session_store_core::raw::session::{
    clamp_throttle, found_and_ended, mark_ended, mark_written, record_mut, require_rewrite, restore, rewrite_required,
    touch_window,
};
use session_store_core::seal::KeyRing;
use session_store_core::{
    DEFAULT_TOUCH_THROTTLE, Error, Expiry, Record, Result, Session, SessionData, SessionId, SharedClock, system_clock,
};

/// The default limit on a sealed cookie's value, in bytes: browsers keep
/// about 4096 bytes for a cookie's name, value and attributes together
/// (RFC 6265 asks for at least that), which leaves 256 bytes for the name,
/// `Path`, `Max-Age`, `SameSite`, `HttpOnly`, `Secure` and a `Domain`.
pub const DEFAULT_MAX_COOKIE_VALUE: usize = 4096 - 256;

/// What the associated data starts with, before the app's name: keeps a
/// sealed cookie apart from anything else sealed with the same key ring (a
/// record sealed at rest has its session id there).
const DOMAIN: &[u8] = b"session-store sealed cookie v1\0";

/// What the response must do with the cookie after
/// [`CookieSessions::commit`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieCommit {
    /// Nothing: the cookie the browser holds is still right (or there is
    /// no session to keep).
    Nothing,
    /// Send this value in `Set-Cookie` (base64url, cookie-safe), with a
    /// `Max-Age` up to [`Session::expires_at`].
    Set(String),
    /// The session ended: send a `Set-Cookie` that removes the cookie.
    Clear,
}

impl fmt::Debug for CookieCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A sealed value is a bearer credential: its length only.
        match self {
            Self::Nothing => f.write_str("Nothing"),
            Self::Set(value) => write!(f, "Set({} bytes)", value.len()),
            Self::Clear => f.write_str("Clear"),
        }
    }
}

/// Sessions kept entirely in the browser's cookie, sealed with
/// XChaCha20-Poly1305 under a [`KeyRing`]: the cookie's value is the
/// base64url of the sealed payload (created time, deadline, version, owner,
/// data and a random [`SessionId`] that only serves as a
/// [`Fingerprint`](session_store_core::Fingerprint) in logs). No store, no server-side
/// state: any instance holding the key ring serves any visitor.
///
/// ```
/// use session_store_tower::{CookieCommit, CookieSessions, KeyRing};
///
/// let keys = KeyRing::new(1, [42; 32]);        // from KeyRing::from_env in an app
/// let sessions = CookieSessions::new(keys, "my-app");
/// let mut session = sessions.load_or_start(None); // first request: no cookie
/// session.insert("count", &1)?;
/// let CookieCommit::Set(cookie) = sessions.commit(&mut session)? else { panic!() };
///
/// let mut session = sessions.load_or_start(Some(&cookie)); // the next request
/// assert_eq!(session.get::<u64>("count")?, Some(1));
/// assert!(!cookie.contains("count"));                      // sealed: nothing readable
/// assert!(sessions.load("tampered").is_none());           // just "no session"
/// # Ok::<(), session_store_core::Error>(())
/// ```
///
/// Expiry is that of the stores: the deadline (the earlier of last
/// activity + idle and creation + lifetime under
/// [`Expiry::IdleAndAbsolute`]) is sealed in the payload and checked with
/// the injected clock on every [`load`](Self::load); sliding expiry seals a
/// fresh deadline with the same throttle as [`Sessions`](session_store_core::Sessions)
/// ([`touch_throttle`](Self::touch_throttle)). A cookie that is expired,
/// tampered with, truncated, sealed under an unknown or retired key, sealed
/// by another app (the app name is associated data) or not even base64 is
/// "no session": a `tracing` debug event says why, and the visitor gets a
/// fresh session, never an error. A cookie opened under an older key of
/// the ring is sealed again under the current key by the next commit, so a
/// key rotation moves active visitors over without logging them out.
///
/// # What cookie mode gives up
///
/// - **No server-side revocation.** Ending a session ([`end`](Self::end))
///   clears the cookie in *this* browser only. A copied cookie (stolen,
///   or kept by the browser) stays valid until its sealed deadline; only
///   retiring the key it was sealed under ends it earlier, for everyone
///   under that key. Keep deadlines short, and keep a store-backed session
///   (or a server-side revocation list of owners) where a logout must be
///   final.
/// - **No count, no ids, no purge, no owner index**: the server knows no
///   sessions, so "your devices", "log out everywhere" and a cap of
///   sessions per user cannot exist.
/// - **Replay within the lifetime.** An older cookie of the same visitor
///   (before a change, before a logout) still opens until its deadline: the
///   data it carries goes back to that older state. Keep nothing in cookie
///   mode whose rollback matters (a balance, a one-time token, a "used"
///   flag).
/// - **Small sessions only.** A sealed value over
///   [`max_value_len`](Self::max_value_len) (default
///   [`DEFAULT_MAX_COOKIE_VALUE`]) is refused by the commit with
///   [`Error::TooLarge`], never truncated; the payload costs 4/3 of the
///   data plus about 80 bytes. Every request carries the whole cookie.
/// - **Concurrent requests of one visitor**: each answer carries its own
///   sealed state and the browser keeps the last one it receives, so one
///   of two concurrent changes can be lost (the store-backed handle merges
///   them).
/// - The data is encrypted and authenticated, but its size is visible.
#[derive(Clone)]
pub struct CookieSessions {
    keys: Arc<KeyRing>,
    app: Arc<[u8]>,
    clock: SharedClock,
    expiry: Expiry,
    touch_throttle: f64,
    max_value: usize,
}

impl fmt::Debug for CookieSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieSessions")
            .field("keys", &self.keys)
            .field("app", &String::from_utf8_lossy(&self.app[DOMAIN.len()..]))
            .field("expiry", &self.expiry)
            .field("touch_throttle", &self.touch_throttle)
            .field("max_value_len", &self.max_value)
            .finish_non_exhaustive()
    }
}

impl CookieSessions {
    /// Cookie sessions sealed under `keys` for the app `app` (any name
    /// that tells your apps apart: a cookie of another app sealed with the
    /// same key does not open here), on the system clock, with the default
    /// expiry ([`Expiry::default`]).
    #[must_use]
    pub fn new(keys: KeyRing, app: &str) -> Self {
        let mut aad = DOMAIN.to_vec();
        aad.extend_from_slice(app.as_bytes());
        Self {
            keys: Arc::new(keys),
            app: aad.into(),
            clock: system_clock(),
            expiry: Expiry::default(),
            touch_throttle: DEFAULT_TOUCH_THROTTLE,
            max_value: DEFAULT_MAX_COOKIE_VALUE,
        }
    }

    /// Decides time with `clock` (a [`ManualClock`](session_store_core::ManualClock) in
    /// tests).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The expiry policy every commit applies.
    #[must_use]
    pub fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Sliding-expiry throttle, as [`Sessions::touch_throttle`](session_store_core::Sessions::touch_throttle):
    /// an unchanged session is sealed again (a new `Set-Cookie`) only once
    /// its deadline would move by this fraction of the idle timeout.
    #[must_use]
    pub fn touch_throttle(mut self, fraction: f64) -> Self {
        self.touch_throttle = clamp_throttle(fraction);
        self
    }

    /// The largest sealed value a commit accepts, in bytes (default
    /// [`DEFAULT_MAX_COOKIE_VALUE`]). Set it to 4096 minus what your
    /// cookie's name and attributes take.
    #[must_use]
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value = bytes;
        self
    }

    /// The limit of [`max_value_len`](Self::max_value_len).
    #[must_use]
    pub fn value_limit(&self) -> usize {
        self.max_value
    }

    /// The expiry policy.
    #[must_use]
    pub fn policy(&self) -> &Expiry {
        &self.expiry
    }

    /// The clock.
    #[must_use]
    pub fn clock_ref(&self) -> &SharedClock {
        &self.clock
    }

    /// The key ring.
    #[must_use]
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// A new, empty session; sealed into a cookie at its first commit that
    /// finds data (or an owner) in it.
    #[must_use]
    pub fn start(&self) -> Session {
        let now = self.clock.now();
        restore(Record::new(SessionData::new(), now, &self.expiry), false)
    }

    /// The live session sealed in `cookie` (the cookie's value), or `None`
    /// when it does not open: not base64url, truncated, tampered with,
    /// sealed under a key not in the ring (or retired), sealed for another
    /// app, or past its deadline. Each case is a `tracing` debug event
    /// (target `session_store_tower::cookie_mode`) saying why, with the payload
    /// id's fingerprint when it opened.
    #[must_use]
    pub fn load(&self, cookie: &str) -> Option<Session> {
        self.open(cookie)
            .inspect_err(|why| {
                tracing::debug!(reason = %why, "sealed session cookie refused: starting a fresh session");
            })
            .ok()
    }

    fn open(&self, cookie: &str) -> std::result::Result<Session, Refused> {
        // Bound the work on hostile input before decoding anything.
        if cookie.len() > self.max_value.max(DEFAULT_MAX_COOKIE_VALUE) {
            return Err(Refused::TooLong(cookie.len()));
        }
        let sealed = URL_SAFE_NO_PAD
            .decode(cookie.trim_matches('"'))
            .map_err(|_| Refused::NotBase64)?;
        let (key, payload) = self.keys.open_with_id(&sealed, &self.app).map_err(Refused::Open)?;
        let record = decode_payload(&payload)?;
        let now = self.clock.now();
        if !record.is_live_at(now) {
            return Err(Refused::Expired(record.id));
        }
        let mut session = restore(record, true);
        if key != self.keys.current_id() {
            require_rewrite(&mut session);
        }
        Ok(session)
    }

    /// [`load`](Self::load) when a cookie is given and opens, else
    /// [`start`](Self::start).
    #[must_use]
    pub fn load_or_start(&self, cookie: Option<&str>) -> Session {
        cookie.and_then(|c| self.load(c)).unwrap_or_else(|| self.start())
    }

    /// Gives the session a fresh random id, keeping its data and deadline
    /// (call it at login, as with a store; here the id only names the
    /// session in logs, and the new cookie is sealed at the commit). The
    /// old cookie is not revoked: see the type's docs.
    pub fn rotate(&self, session: &mut Session) {
        record_mut(session).id = SessionId::random();
        require_rewrite(session);
    }

    /// Ends the session (logout): the next commit answers
    /// [`CookieCommit::Clear`]. A copy of the cookie kept elsewhere stays
    /// valid until its deadline (see the type's docs).
    pub fn end(&self, session: &mut Session) {
        mark_ended(session);
    }

    /// Seals what this request did into what the response must send:
    ///
    /// - [`CookieCommit::Set`] for a new session that holds data or an
    ///   owner, for a changed one (version bumped, deadline refreshed), for
    ///   one rotated or opened under an older key, and for an unchanged one
    ///   whose sliding deadline moves past the throttle window;
    /// - [`CookieCommit::Clear`] for a session ended in this request;
    /// - [`CookieCommit::Nothing`] otherwise (a new session left empty, an
    ///   unchanged one inside the throttle window, a fixed deadline).
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] when the sealed value would be longer than
    /// [`max_value_len`](Self::max_value_len) (its `size` and `limit` are
    /// the value's length and the limit); the session is left as it was,
    /// so the caller can answer an error. [`Error::Encode`] if encoding
    /// fails (it does not for string data).
    pub fn commit(&self, session: &mut Session) -> Result<CookieCommit> {
        let now = self.clock.now();
        let (stored, ended) = found_and_ended(session);
        if ended {
            return Ok(CookieCommit::Clear);
        }
        let mut record = session.record().clone();
        // The session's own policy (`Session::set_expiry`), or this one.
        let policy = session.expiry().unwrap_or(self.expiry);
        if !stored {
            if record.data.is_empty() && record.owner.is_none() {
                return Ok(CookieCommit::Nothing);
            }
            record.created_at = now;
            record.refresh(now, &policy);
            record.version = 1;
        } else if session.is_changed() {
            record.refresh(now, &policy);
            record.version = record.version.saturating_add(1);
        } else {
            let deadline = policy.deadline(record.created_at, now);
            let window = touch_window(&policy, self.touch_throttle);
            let throttled = deadline == record.expires_at
                || (!window.is_zero()
                    && deadline > record.expires_at
                    && deadline.saturating_duration_since(record.expires_at) < window);
            if throttled && !rewrite_required(session) {
                return Ok(CookieCommit::Nothing);
            }
            record.expires_at = deadline;
        }
        let value = self.seal(&record)?;
        *record_mut(session) = record;
        mark_written(session);
        Ok(CookieCommit::Set(value))
    }

    /// Runs `f` on the session, keeping its changes only when it succeeds
    /// (the cookie is sealed by the request's [`commit`](Self::commit):
    /// in cookie mode there is no store to race with).
    ///
    /// # Errors
    ///
    /// What `f` returns; the session is then as it was before.
    pub fn update<T>(&self, session: &mut Session, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let before = session.clone();
        let result = f(session);
        if result.is_err() {
            *session = before;
        }
        result
    }

    /// The sealed cookie value of `record`.
    fn seal(&self, record: &Record) -> Result<String> {
        let mut payload = record.id.to_bytes().to_vec();
        payload.extend_from_slice(&codec::encode_record(record)?);
        let size = (payload.len() + session_store_core::seal::OVERHEAD).div_ceil(3) * 4;
        // Refused before sealing when even the unpadded length is over.
        if size.saturating_sub(2) > self.max_value {
            return Err(Error::TooLarge {
                size: size.saturating_sub(2),
                limit: self.max_value,
            });
        }
        let value = URL_SAFE_NO_PAD.encode(self.keys.seal(&payload, &self.app));
        if value.len() > self.max_value {
            return Err(Error::TooLarge {
                size: value.len(),
                limit: self.max_value,
            });
        }
        Ok(value)
    }
}

/// The random id (16 bytes, little-endian) and the record codec's bytes.
fn decode_payload(payload: &[u8]) -> std::result::Result<Record, Refused> {
    let Some((id, rest)) = payload.split_first_chunk::<16>() else {
        return Err(Refused::Payload);
    };
    let id = SessionId::from_u128(u128::from_le_bytes(*id));
    codec::decode_record(id, rest).map_err(|_| Refused::Payload)
}

/// Why a cookie was not a session (for the debug event only).
enum Refused {
    TooLong(usize),
    NotBase64,
    Open(session_store_core::seal::OpenError),
    Payload,
    Expired(SessionId),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(len) => write!(f, "cookie value is {len} bytes, longer than any sealed session"),
            Self::NotBase64 => f.write_str("cookie value is not base64url"),
            Self::Open(e) => write!(
                f,
                "{e} (tampered, truncated, another app's, or an unknown or retired key)"
            ),
            Self::Payload => f.write_str("sealed payload does not decode (an unknown format)"),
            Self::Expired(id) => write!(f, "session {} is past its sealed deadline", id.fingerprint()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::{Clock, ManualClock, Timestamp};
    use session_store_core::seal::KeyRing;

    fn sessions(clock: &ManualClock) -> CookieSessions {
        CookieSessions::new(KeyRing::new(1, [1; 32]), "test")
            .clock(clock.shared())
            .expiry(Expiry::IdleAndAbsolute {
                idle: Duration::from_secs(100),
                lifetime: Duration::from_secs(1000),
            })
    }

    fn set(commit: CookieCommit) -> String {
        match commit {
            CookieCommit::Set(value) => value,
            other => panic!("expected Set, got {other:?}"),
        }
    }

    fn clock() -> ManualClock {
        ManualClock::new(Timestamp::from_millis(1_700_000_000_000))
    }

    #[test]
    fn round_trip_and_nothing_for_an_empty_new_session() {
        let clock = clock();
        let s = sessions(&clock);
        let mut fresh = s.start();
        assert_eq!(s.commit(&mut fresh).unwrap(), CookieCommit::Nothing);
        fresh.insert("marker", "SECRET-MARKER").unwrap();
        fresh.set_owner(Some("alice".into()));
        let cookie = set(s.commit(&mut fresh).unwrap());
        assert!(!cookie.contains("marker") && !cookie.contains("alice"));
        let loaded = s.load(&cookie).unwrap();
        assert_eq!(
            loaded.get::<String>("marker").unwrap().as_deref(),
            Some("SECRET-MARKER")
        );
        assert_eq!(loaded.owner(), Some("alice"));
        assert_eq!(loaded.record().version, 1);
        assert_eq!(loaded.id(), fresh.id());
        assert_eq!(loaded.expires_at(), clock.now() + Duration::from_secs(100));
    }

    #[test]
    fn idle_and_absolute_deadlines_are_sealed_and_checked() {
        let clock = clock();
        let s = sessions(&clock);
        let mut session = s.start();
        session.insert("n", &1).unwrap();
        let mut cookie = set(s.commit(&mut session).unwrap());
        // Idle: just before the deadline it opens, at it not.
        clock.advance(Duration::from_millis(99_999));
        assert!(s.load(&cookie).is_some());
        clock.advance(Duration::from_millis(1));
        assert!(s.load(&cookie).is_none(), "at the deadline: expired");
        // Absolute: activity every 50 s never passes creation + 1000 s.
        let clock = self::clock();
        let s = sessions(&clock);
        let mut session = s.start();
        session.insert("n", &1).unwrap();
        cookie = set(s.commit(&mut session).unwrap());
        for _ in 0..19 {
            clock.advance(Duration::from_secs(50));
            let mut session = s.load(&cookie).expect("live");
            session.insert("n", &2).unwrap();
            cookie = set(s.commit(&mut session).unwrap());
        }
        clock.advance(Duration::from_secs(50));
        assert!(s.load(&cookie).is_none(), "past the absolute lifetime");
    }

    #[test]
    fn sliding_refresh_is_throttled() {
        let clock = clock();
        let s = sessions(&clock);
        let mut session = s.start();
        session.insert("n", &1).unwrap();
        let cookie = set(s.commit(&mut session).unwrap());
        clock.advance(Duration::from_secs(9));
        let mut session = s.load(&cookie).unwrap();
        assert_eq!(
            s.commit(&mut session).unwrap(),
            CookieCommit::Nothing,
            "within a tenth of idle"
        );
        clock.advance(Duration::from_secs(1));
        let mut session = s.load(&cookie).unwrap();
        let refreshed = set(s.commit(&mut session).unwrap());
        assert_eq!(
            s.load(&refreshed).unwrap().expires_at(),
            clock.now() + Duration::from_secs(100)
        );
        assert_eq!(
            s.load(&refreshed).unwrap().record().version,
            1,
            "a touch is not a change"
        );
    }

    #[test]
    fn foreign_tampered_truncated_and_retired_are_no_session() {
        let clock = clock();
        let s = sessions(&clock);
        let mut session = s.start();
        session.insert("n", &1).unwrap();
        let cookie = set(s.commit(&mut session).unwrap());
        let other_app = CookieSessions::new(KeyRing::new(1, [1; 32]), "other").clock(clock.shared());
        assert!(other_app.load(&cookie).is_none(), "another app's name");
        let other_key = CookieSessions::new(KeyRing::new(1, [2; 32]), "test").clock(clock.shared());
        assert!(other_key.load(&cookie).is_none(), "another key");
        for len in 0..cookie.len() {
            assert!(s.load(&cookie[..len]).is_none(), "truncated to {len}");
        }
        let mut bytes = cookie.clone().into_bytes();
        for i in 0..bytes.len() {
            let original = bytes[i];
            bytes[i] = if original == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes.clone()).unwrap();
            assert!(s.load(&tampered).is_none(), "changed at {i}");
            bytes[i] = original;
        }
        assert!(s.load("not base64 !").is_none());
        assert!(s.load(&"A".repeat(100_000)).is_none());
        let mut ring = KeyRing::new(1, [1; 32]);
        ring.add(2, [2; 32]).unwrap();
        ring.retire(1).unwrap();
        let retired = CookieSessions::new(ring, "test").clock(clock.shared());
        assert!(retired.load(&cookie).is_none(), "retired key");
    }

    #[test]
    fn rotation_reseals_under_the_new_key() {
        let clock = clock();
        let s = sessions(&clock);
        let mut session = s.start();
        session.insert("n", &7).unwrap();
        let old = set(s.commit(&mut session).unwrap());
        let mut ring = KeyRing::new(1, [1; 32]);
        ring.add(2, [2; 32]).unwrap();
        let rotated = sessions(&clock);
        let rotated = CookieSessions {
            keys: Arc::new(ring),
            ..rotated
        };
        let mut session = rotated.load(&old).expect("the old key still opens");
        let new = set(rotated.commit(&mut session).unwrap());
        assert_eq!(URL_SAFE_NO_PAD.decode(&new).unwrap()[0], 2, "sealed again under key 2");
        assert_eq!(rotated.load(&new).unwrap().get::<u64>("n").unwrap(), Some(7));
        let mut again = rotated.load(&new).unwrap();
        assert_eq!(
            rotated.commit(&mut again).unwrap(),
            CookieCommit::Nothing,
            "no reseal needed now"
        );
    }

    #[test]
    fn rotate_gives_a_fresh_id_and_end_clears() {
        let clock = clock();
        let s = sessions(&clock);
        let mut session = s.start();
        session.insert("n", &1).unwrap();
        let cookie = set(s.commit(&mut session).unwrap());
        let mut session = s.load(&cookie).unwrap();
        let before = session.id();
        s.rotate(&mut session);
        let rotated = set(s.commit(&mut session).unwrap());
        assert_ne!(s.load(&rotated).unwrap().id(), before);
        let mut session = s.load(&rotated).unwrap();
        s.end(&mut session);
        assert_eq!(s.commit(&mut session).unwrap(), CookieCommit::Clear);
    }

    #[test]
    fn oversized_is_refused_and_the_session_unchanged() {
        let clock = clock();
        let s = sessions(&clock).max_value_len(500);
        let mut session = s.start();
        session.insert("big", &"x".repeat(400)).unwrap();
        let err = s.commit(&mut session).unwrap_err();
        assert!(
            matches!(err, Error::TooLarge { limit: 500, size } if size > 500),
            "{err:?}"
        );
        assert!(session.is_new());
        session.insert("big", &"x".repeat(200)).unwrap();
        let cookie = set(s.commit(&mut session).unwrap());
        assert!(cookie.len() <= 500);
    }

    #[test]
    fn update_keeps_changes_only_on_success() {
        let clock = clock();
        let s = sessions(&clock);
        let mut session = s.start();
        let failed: Result<()> = s.update(&mut session, |s| {
            s.insert("a", &1)?;
            Err(Error::config("no"))
        });
        assert!(failed.is_err());
        assert!(session.data().is_empty());
        s.update(&mut session, |s| s.insert("a", &1)).unwrap();
        assert_eq!(session.get::<u64>("a").unwrap(), Some(1));
    }

    proptest! {
        #[test]
        fn load_never_panics(text in ".{0,300}") {
            let clock = clock();
            prop_assert!(sessions(&clock).load(&text).is_none());
        }

        #[test]
        fn load_of_random_base64_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let clock = clock();
            let mut sealed = bytes;
            if let Some(first) = sealed.first_mut() { *first = 1; }
            prop_assert!(sessions(&clock).load(&URL_SAFE_NO_PAD.encode(&sealed)).is_none());
        }
    }
}
