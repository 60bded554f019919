//! Expiry policies, each turned into the one absolute deadline stores see.

use std::time::Duration;

use crate::Timestamp;

/// How long a session lives. Stores never see a policy: the core turns it
/// into one absolute deadline with [`Expiry::deadline`], and a record is live
/// while `now < deadline`.
///
/// ```
/// use std::time::Duration;
/// use session_store_core::{Expiry, Timestamp};
///
/// let created = Timestamp::from_millis(0);
/// let policy = Expiry::IdleAndAbsolute {
///     idle: Duration::from_secs(30 * 60),
///     lifetime: Duration::from_secs(8 * 3600),
/// };
/// // Activity an hour in: idle timeout wins.
/// let now = created + Duration::from_secs(3600);
/// assert_eq!(policy.deadline(created, now), now + Duration::from_secs(1800));
/// // Activity just before the lifetime ends: the lifetime wins.
/// let late = created + Duration::from_secs(8 * 3600 - 60);
/// assert_eq!(policy.deadline(created, late), created + Duration::from_secs(8 * 3600));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expiry {
    /// Sliding expiry: the session ends after this long without activity.
    OnInactivity(Duration),
    /// The session ends at this fixed instant, whatever the activity.
    AtDateTime(Timestamp),
    /// The cookie lives until the browser closes (no `Max-Age`); the server
    /// keeps the session at most `cap` after the last activity, because a
    /// server never learns when a browser closes.
    OnSessionEnd {
        /// Server-side cap after the last activity.
        cap: Duration,
    },
    /// Both an idle timeout and an absolute lifetime (as OWASP asks): the
    /// deadline is the earlier of last activity + `idle` and creation +
    /// `lifetime`, so no amount of activity keeps a session past its
    /// lifetime.
    IdleAndAbsolute {
        /// Idle timeout after the last activity.
        idle: Duration,
        /// Absolute lifetime from creation.
        lifetime: Duration,
    },
}

impl Expiry {
    /// The absolute deadline for a session created at `created_at` with
    /// activity at `now`.
    #[must_use]
    pub fn deadline(&self, created_at: Timestamp, now: Timestamp) -> Timestamp {
        match *self {
            Self::OnInactivity(idle) => now + idle,
            Self::AtDateTime(at) => at,
            Self::OnSessionEnd { cap } => now + cap,
            Self::IdleAndAbsolute { idle, lifetime } => (now + idle).min(created_at + lifetime),
        }
    }

    /// The cookie `Max-Age` for this policy at `now`: `None` for a browser
    /// session cookie, otherwise the time left until the deadline.
    #[must_use]
    pub fn cookie_max_age(&self, created_at: Timestamp, now: Timestamp) -> Option<Duration> {
        match self {
            Self::OnSessionEnd { .. } => None,
            _ => Some(self.deadline(created_at, now).saturating_duration_since(now)),
        }
    }
}

impl Default for Expiry {
    /// Two weeks of inactivity, as most session libraries default to.
    fn default() -> Self {
        Self::OnInactivity(Duration::from_secs(14 * 24 * 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn sliding_moves_with_activity() {
        let e = Expiry::OnInactivity(Duration::from_secs(10));
        assert_eq!(e.deadline(T0, T0), T0 + Duration::from_secs(10));
        let later = T0 + Duration::from_secs(7);
        assert_eq!(e.deadline(T0, later), later + Duration::from_secs(10));
    }

    #[test]
    fn fixed_time_does_not_move() {
        let at = T0 + Duration::from_secs(99);
        let e = Expiry::AtDateTime(at);
        assert_eq!(e.deadline(T0, T0 + Duration::from_secs(50)), at);
        assert_eq!(e.cookie_max_age(T0, T0), Some(Duration::from_secs(99)));
    }

    #[test]
    fn session_end_has_no_cookie_age_but_a_server_cap() {
        let e = Expiry::OnSessionEnd {
            cap: Duration::from_secs(60),
        };
        assert_eq!(e.cookie_max_age(T0, T0), None);
        assert_eq!(e.deadline(T0, T0), T0 + Duration::from_secs(60));
    }

    #[test]
    fn idle_and_absolute_takes_the_earlier() {
        let e = Expiry::IdleAndAbsolute {
            idle: Duration::from_secs(10),
            lifetime: Duration::from_secs(25),
        };
        assert_eq!(e.deadline(T0, T0), T0 + Duration::from_secs(10));
        let mut now = T0;
        let mut deadline = e.deadline(T0, now);
        // Constant activity never gets past the lifetime.
        for _ in 0..10 {
            now = now + Duration::from_secs(5);
            deadline = e.deadline(T0, now);
        }
        assert_eq!(deadline, T0 + Duration::from_secs(25));
    }
}
