//! The per-property environment: a fresh namespace, a manual clock, helpers.

use std::error::Error as _;
use std::fmt::Write as _;
use std::time::Duration;

use session_store_core::{DEFAULT_MAX_RECORD_BYTES, Error, ManualClock, Record, SessionData, SessionId, Timestamp};

use crate::{Failure, Harness, StoreConfig};

/// Where every property's clock starts ([`fixtures::START`](crate::fixtures::START)).
pub(crate) const START_MILLIS: i64 = crate::fixtures::START.as_millis();

/// The rule behind an unexpected error from an operation that should work.
pub(crate) const HEALTHY: &str = "operations on a healthy store with valid input succeed";

/// Returns early with a [`Failure`] when `cond` is false.
macro_rules! ensure {
    ($env:expr, $cond:expr, $rule:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($env.fail($rule, format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure;

/// One property's environment: the harness, a fresh namespace and a manual
/// clock the stores opened here share.
pub(crate) struct Env<'h, H: Harness> {
    pub(crate) h: &'h H,
    pub(crate) property: &'static str,
    pub(crate) clock: ManualClock,
    pub(crate) ns: H::Namespace,
    pub(crate) config: StoreConfig,
}

impl<'h, H: Harness> Env<'h, H> {
    /// A fresh namespace with the default size limit.
    pub(crate) async fn new(h: &'h H, property: &'static str) -> Result<Self, Failure> {
        Self::with_limit(h, property, DEFAULT_MAX_RECORD_BYTES).await
    }

    /// A fresh namespace whose stores refuse data over `limit` bytes.
    pub(crate) async fn with_limit(h: &'h H, property: &'static str, limit: usize) -> Result<Self, Failure> {
        let clock = crate::fixtures::start_clock();
        let config = StoreConfig::new(clock.shared()).max_record_bytes(limit);
        let ns = h.new_namespace().await.map_err(|e| {
            Failure::new(
                property,
                HEALTHY,
                format!("harness.new_namespace() failed: {}", chain(&e)),
            )
        })?;
        Ok(Self {
            h,
            property,
            clock,
            ns,
            config,
        })
    }

    /// Opens a store on this environment's namespace.
    pub(crate) async fn open(&self) -> Result<H::Store, Failure> {
        self.open_on(&self.ns).await
    }

    /// Opens a store on `ns` with this environment's clock and limit.
    pub(crate) async fn open_on(&self, ns: &H::Namespace) -> Result<H::Store, Failure> {
        self.h
            .open(ns, &self.config)
            .await
            .map_err(|e| self.fail(HEALTHY, format!("harness.open({ns:?}) failed: {}", chain(&e))))
    }

    /// Another fresh namespace.
    pub(crate) async fn another_namespace(&self) -> Result<H::Namespace, Failure> {
        self.h
            .new_namespace()
            .await
            .map_err(|e| self.fail(HEALTHY, format!("harness.new_namespace() failed: {}", chain(&e))))
    }

    /// A failure of this property against `rule`.
    pub(crate) fn fail(&self, rule: &str, detail: impl Into<String>) -> Failure {
        Failure::new(self.property, rule, detail)
    }

    /// Maps an unexpected error of `what` to a failure.
    pub(crate) fn op<'a>(&'a self, what: &'a str) -> impl FnOnce(Error) -> Failure + 'a {
        move |e| self.fail(HEALTHY, format!("{what} returned an error: {}", chain(&e)))
    }

    /// The clock's current time.
    pub(crate) fn now(&self) -> Timestamp {
        use session_store_core::Clock as _;
        self.clock.now()
    }

    /// Moves the clock forward.
    pub(crate) fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    /// Sets the clock (forward or back).
    pub(crate) fn set(&self, to: Timestamp) {
        self.clock.set(to);
    }

    /// A record with a fresh id, created now, live for `ttl_ms`.
    pub(crate) fn record(&self, data: SessionData, ttl_ms: u64) -> Record {
        let now = self.now();
        Record::with_deadline(SessionId::random(), data, now, now + Duration::from_millis(ttl_ms))
    }
}

/// The error and its sources, one after the other.
pub(crate) fn chain(e: &Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

/// Data with these keys and integer values.
pub(crate) fn data_of(entries: &[(&str, i64)]) -> SessionData {
    let mut data = SessionData::new();
    for (k, v) in entries {
        data.insert(*k, v).unwrap_or_default();
    }
    data
}

/// Data with one string value of `len` bytes of JSON text under `key`
/// (`len >= 2`: the quotes count).
pub(crate) fn data_of_size(key: &str, total: usize, seed: u64) -> SessionData {
    let body = total.saturating_sub(key.len() + 2);
    let mut data = SessionData::new();
    data.insert_raw(key.to_owned(), format!("\"{}\"", pseudo_random_text(body, seed)));
    data
}

/// `len` bytes of varied ASCII letters and digits (no JSON escaping needed).
pub(crate) fn pseudo_random_text(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALPHABET[(state % ALPHABET.len() as u64) as usize])
        })
        .collect()
}

/// A short description of a record, for failure messages.
pub(crate) fn describe(record: Option<&Record>) -> String {
    match record {
        None => "no record".to_owned(),
        Some(r) => format!(
            "record {} (version {}, created {}, expires {}, {} keys, {} bytes)",
            r.id,
            r.version,
            r.created_at,
            r.expires_at,
            r.data.len(),
            r.data.byte_size()
        ),
    }
}

/// Where two data maps differ, for failure messages.
pub(crate) fn diff_data(expected: &SessionData, got: &SessionData) -> String {
    let mut out = String::new();
    for (k, v) in expected.iter() {
        match got.get_raw(k) {
            None => {
                let _ = write!(out, "key {k:?} is missing; ");
            }
            Some(g) if g != v => {
                let _ = write!(
                    out,
                    "key {k:?}: wrote {} bytes {:?}, read {} bytes {:?}; ",
                    v.len(),
                    clip(v),
                    g.len(),
                    clip(g)
                );
            }
            Some(_) => {}
        }
    }
    for (k, _) in got.iter() {
        if !expected.contains_key(k) {
            let _ = write!(out, "key {k:?} was never written; ");
        }
    }
    if out.is_empty() {
        out.push_str("no difference");
    }
    out
}

fn clip(s: &str) -> String {
    if s.len() <= 60 {
        s.to_owned()
    } else {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}
