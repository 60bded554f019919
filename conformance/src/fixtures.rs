//! Fixtures for store tests: the suite's start clock, a record builder, and
//! proptest strategies for session data.
//!
//! The properties use these, and so can a store author's own tests (what
//! only their backend has: files, pragmas, scripts, faults), so every test
//! of a store starts its clock at the same realistic instant and builds its
//! records and data the same way:
//!
//! ```
//! use std::time::Duration;
//!
//! use session_store_conformance::fixtures::{self, RecordBuilder};
//! use session_store_core::Clock as _;
//!
//! let clock = fixtures::start_clock();
//! let record = RecordBuilder::new(clock.now()).ttl(Duration::from_secs(60)).n(7).build();
//! assert_eq!(record.created_at, fixtures::START);
//! assert_eq!(record.expires_at, fixtures::START + Duration::from_secs(60));
//! assert_eq!(record.data.get::<i64>("n")?, Some(7));
//! assert_eq!(record.version, 0);
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! The strategies ([`json_value`], [`session_data`]) are ordinary proptest
//! strategies; [`proptest`](mod@crate::proptest) is re-exported, so a test
//! needs no proptest dependency of its own to run them.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use session_store_core::{ManualClock, Record, SessionData, SessionId, Timestamp};

/// Where every property's clock starts: 2023-11-14T22:13:20Z, a realistic
/// instant (1 700 000 000 000 ms after the epoch).
pub const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// How long a [`RecordBuilder`] record lives unless told otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3_600);

/// A manual clock standing at [`START`].
#[must_use]
pub fn start_clock() -> ManualClock {
    ManualClock::new(START)
}

/// The `n`th test key of the at-rest properties: 32 fixed bytes, the same
/// in every run, distinct for every `n`. For tests only: a real key comes
/// from a secret the operator holds.
#[must_use]
pub fn at_rest_key(n: u8) -> [u8; 32] {
    let mut key = [0u8; 32];
    for (i, b) in (0u8..).zip(key.iter_mut()) {
        *b = n.wrapping_mul(73).wrapping_add(i.wrapping_mul(29)) ^ 0xA5;
    }
    key
}

/// Builds a [`Record`]: a fresh random id, data `{"user": "alice"}`,
/// created at the given instant, live for [`DEFAULT_TTL`], version 0 (a
/// record never stored).
#[derive(Debug, Clone)]
#[must_use]
pub struct RecordBuilder {
    record: Record,
}

impl RecordBuilder {
    /// A record created at `now`.
    pub fn new(now: Timestamp) -> Self {
        let mut data = SessionData::new();
        data.insert_json("user", &json!("alice"));
        Self {
            record: Record::with_deadline(SessionId::random(), data, now, now + DEFAULT_TTL),
        }
    }

    /// This id instead of a fresh random one.
    pub fn id(mut self, id: SessionId) -> Self {
        self.record.id = id;
        self
    }

    /// Exactly this data instead of `{"user": "alice"}`.
    pub fn data(mut self, data: SessionData) -> Self {
        self.record.data = data;
        self
    }

    /// Adds (or replaces) the key `key` with the JSON value `value`.
    pub fn entry(mut self, key: impl Into<String>, value: Value) -> Self {
        self.record.data.insert_json(key, &value);
        self
    }

    /// Adds (or replaces) the integer `n` under the key `"n"`: a counter,
    /// or a mark telling records apart.
    pub fn n(self, n: i64) -> Self {
        self.entry("n", json!(n))
    }

    /// Live for `ttl` from its creation time.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.record.expires_at = self.record.created_at + ttl;
        self
    }

    /// Live for `ms` milliseconds from its creation time.
    pub fn ttl_ms(self, ms: u64) -> Self {
        self.ttl(Duration::from_millis(ms))
    }

    /// Exactly this deadline.
    pub fn expires_at(mut self, deadline: Timestamp) -> Self {
        self.record.expires_at = deadline;
        self
    }

    /// The record.
    #[must_use]
    pub fn build(self) -> Record {
        self.record
    }
}

/// Any JSON value: null, booleans, the full `i64` and `u64` ranges, finite
/// floats, any strings (unicode, control characters), and arrays and
/// objects nested up to three levels.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Every finite float, generated rather than filtered (a filter's
        // rejects add up over many thousand cases).
        (proptest::num::f64::POSITIVE
            | proptest::num::f64::NEGATIVE
            | proptest::num::f64::NORMAL
            | proptest::num::f64::SUBNORMAL
            | proptest::num::f64::ZERO)
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Any session data of up to five keys: any key strings (the empty string
/// and unicode too), each holding a [`json_value`].
pub fn session_data() -> impl Strategy<Value = SessionData> {
    proptest::collection::btree_map(any::<String>(), json_value(), 0..6).prop_map(|m| {
        let mut data = SessionData::new();
        for (k, v) in m {
            data.insert_json(k, &v);
        }
        data
    })
}

/// Data every backend must round-trip exactly, each case named: the empty
/// map, the full integer ranges (`u128`, `i128`, `u64`, `i64`), empty,
/// unicode and control-character keys, and nested JSON values.
#[must_use]
pub fn awkward_data() -> Vec<(&'static str, SessionData)> {
    let mut ints = SessionData::new();
    let _ = ints.insert("u128", &u128::MAX);
    let _ = ints.insert("i128", &i128::MIN);
    let _ = ints.insert("i128max", &i128::MAX);
    let _ = ints.insert("u64", &u64::MAX);
    let _ = ints.insert("i64min", &i64::MIN);
    let _ = ints.insert("i64max", &i64::MAX);
    let _ = ints.insert("zero", &0u8);
    let mut keys = SessionData::new();
    keys.insert_json("", &json!("the empty key"));
    keys.insert_json("ключ 🔑 鍵", &json!("värde ✓ \u{0} \n \" \\ \u{10FFFF}"));
    keys.insert_json(" ", &json!(null));
    keys.insert_json("a\u{0}b", &json!(true));
    let mut nested = SessionData::new();
    nested.insert_json(
        "nested",
        &json!({"user": {"id": 7, "roles": ["admin", "ü"], "prefs": {"deep": [[[{"x": -1.5e-300}]]]}}, "": []}),
    );
    nested.insert_json("float", &json!(0.1));
    vec![
        ("the empty map", SessionData::new()),
        ("full integer ranges", ints),
        ("empty, unicode and control-character keys", keys),
        ("nested JSON values", nested),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;

    #[test]
    fn the_builder_sets_what_it_is_told() {
        let id = SessionId::random();
        let r = RecordBuilder::new(START)
            .id(id)
            .ttl_ms(1_500)
            .entry("", json!([1, 2]))
            .n(-3)
            .build();
        assert_eq!(r.id, id);
        assert_eq!(r.expires_at, Timestamp::from_millis(START.as_millis() + 1_500));
        assert_eq!(r.data.get::<i64>("n").unwrap(), Some(-3));
        assert_eq!(r.data.get::<Vec<u8>>("").unwrap(), Some(vec![1, 2]));
        assert_eq!(r.data.get::<String>("user").unwrap().as_deref(), Some("alice"));
        let r = RecordBuilder::new(START)
            .data(SessionData::new())
            .expires_at(START)
            .build();
        assert!(r.data.is_empty());
        assert!(!r.is_live_at(START));
        assert_ne!(
            RecordBuilder::new(START).build().id,
            RecordBuilder::new(START).build().id
        );
    }

    #[test]
    fn the_data_strategy_makes_varied_data() {
        let mut runner = TestRunner::deterministic();
        let strategy = session_data();
        let samples: Vec<SessionData> = (0..64)
            .map(|_| strategy.new_tree(&mut runner).unwrap().current())
            .collect();
        assert!(samples.iter().any(SessionData::is_empty));
        assert!(samples.iter().any(|d| d.len() >= 3));
        assert!(
            samples
                .iter()
                .flat_map(|d| d.iter())
                .any(|(_, v)| v.starts_with('[') || v.starts_with('{'))
        );
    }
}
