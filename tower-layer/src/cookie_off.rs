//! Cookie mode compiled out (the `cookie` feature is off): an uninhabited
//! stand-in for the core's `CookieSessions`, so the layer's code keeps one
//! shape and no AEAD crate is compiled. No value of it can exist, so every
//! method is unreachable by construction.

use session_store_core::{Expiry, Result, Session, SharedClock};

/// No cookie mode: no value of this type exists.
#[derive(Debug, Clone)]
pub(crate) enum CookieSessions {}

/// What a cookie-mode commit answers (never built without the feature).
#[allow(dead_code)]
pub(crate) enum CookieCommit {
    /// Nothing to send.
    Nothing,
    /// Send this value.
    Set(String),
    /// Remove the cookie.
    Clear,
}

impl CookieSessions {
    pub(crate) fn start(&self) -> Session {
        match *self {}
    }
    pub(crate) fn load(&self, _: &str) -> Option<Session> {
        match *self {}
    }
    pub(crate) fn rotate(&self, _: &mut Session) {
        match *self {}
    }
    pub(crate) fn end(&self, _: &mut Session) {
        match *self {}
    }
    pub(crate) fn commit(&self, _: &mut Session) -> Result<CookieCommit> {
        match *self {}
    }
    pub(crate) fn update<T>(&self, _: &mut Session, _: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        match *self {}
    }
    pub(crate) fn clock_ref(&self) -> &SharedClock {
        match *self {}
    }
    pub(crate) fn policy(&self) -> &Expiry {
        match *self {}
    }
    pub(crate) fn expiry(self, _: Expiry) -> Self {
        match self {}
    }
    pub(crate) fn touch_throttle(self, _: f64) -> Self {
        match self {}
    }
}
