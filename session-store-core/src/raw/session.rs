//! Hooks for a session layer that keeps sessions somewhere other than a
//! [`SessionStore`](crate::SessionStore): the tower layer's cookie mode
//! (sessions sealed in the cookie itself) builds on these. A layer over a
//! store uses [`Sessions`](crate::Sessions) instead.
//!
//! Such a layer builds each request's [`Session`] from what it keeps
//! ([`restore`]), lets the request use it as usual, and at the end writes
//! it out again (the changes are in the session's record, [`record_mut`]),
//! then marks it written ([`mark_written`]).

use std::time::Duration;

use crate::{Expiry, Record, Session};

/// A session holding `record`: one the layer found (`found`, a cookie that
/// opened) or a new one.
#[must_use]
pub fn restore(record: Record, found: bool) -> Session {
    Session::from_cookie(record, found)
}

/// The session's record, to change what [`Session`]'s own methods do not
/// (a fresh id at a rotation).
pub fn record_mut(session: &mut Session) -> &mut Record {
    session.record_mut()
}

/// Whether the session was found or written out before (not new), and
/// whether it ended in this request.
#[must_use]
pub fn found_and_ended(session: &Session) -> (bool, bool) {
    session.cookie_state()
}

/// The session must be written out again at the end of the request, even
/// if nothing changed (a fresh id, a newer key).
pub fn require_rewrite(session: &mut Session) {
    session.set_reseal();
}

/// Whether [`require_rewrite`] was called since the session was last
/// written.
#[must_use]
pub fn rewrite_required(session: &Session) -> bool {
    session.needs_reseal()
}

/// The session ended (logout): its pending changes are dropped.
pub fn mark_ended(session: &mut Session) {
    session.mark_ended();
}

/// The session was written out: nothing is pending any more.
pub fn mark_written(session: &mut Session) {
    session.mark_sealed();
}

/// How far an unchanged session's deadline must move before it is worth
/// writing, for `expiry` and a throttle `fraction` in `0.0..=1.0` (as
/// [`Sessions::touch_throttle`](crate::Sessions::touch_throttle) decides).
#[must_use]
pub fn touch_window(expiry: &Expiry, fraction: f64) -> Duration {
    let idle = match *expiry {
        Expiry::OnInactivity(idle) | Expiry::IdleAndAbsolute { idle, .. } => idle,
        Expiry::OnSessionEnd { cap } => cap,
        // A fixed deadline never moves: nothing to throttle.
        Expiry::AtDateTime(_) => return Duration::ZERO,
    };
    // At most `idle` (the fraction is at most 1); never a panic on a huge one.
    Duration::try_from_secs_f64(idle.as_secs_f64() * fraction).map_or(idle, |w| w.min(idle))
}

/// A throttle fraction clamped into `0.0..=1.0` (NaN counts as `0.0`), as
/// [`Sessions::touch_throttle`](crate::Sessions::touch_throttle) clamps it.
#[must_use]
pub fn clamp_throttle(fraction: f64) -> f64 {
    if fraction > 0.0 { fraction.min(1.0) } else { 0.0 }
}
