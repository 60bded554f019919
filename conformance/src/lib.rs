//! The conformance suite every session store runs: property-based,
//! model-checked.
//!
//! A store author implements [`Harness`] (how to open the store on a fresh
//! namespace with a given clock, and what it can do) and adds one line to an
//! integration test; the macro generates one `#[test]` per property plus the
//! model-based test, on a Tokio runtime the suite owns:
//!
//! ```
//! use session_store_conformance::{Capabilities, Harness, StoreConfig};
//! use session_store_core::{Result, async_trait};
//! use session_store_memory::MemoryStore;
//!
//! struct MemoryHarness;
//!
//! #[async_trait]
//! impl Harness for MemoryHarness {
//!     type Store = MemoryStore;
//!     type Namespace = ();
//!
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities::none()
//!     }
//!     async fn new_namespace(&self) -> Result<()> {
//!         Ok(()) // every open() builds a new, empty store
//!     }
//!     async fn open(&self, _: &(), config: &StoreConfig) -> Result<MemoryStore> {
//!         Ok(MemoryStore::builder()
//!             .clock(config.clock.clone())
//!             .max_record_bytes(config.max_record_bytes)
//!             .build())
//!     }
//! }
//!
//! // In tests/conformance.rs: one #[test] per property, plus the model test.
//! session_store_conformance::conformance_tests!(MemoryHarness);
//!
//! // Or call one property directly, from a plain #[test]:
//! # fn main() {
//! use session_store_conformance::{Pass, block_on, properties};
//! let verdict = block_on(properties::load_returns_none_at_the_exact_deadline(&MemoryHarness));
//! assert_eq!(verdict, Ok(Pass::Passed));
//! # }
//! ```
//!
//! The layers, each built on the one below:
//!
//! 1. [`properties`]: one `pub async fn` per rule, named as a sentence,
//!    returning a [`Verdict`]: [`Pass::Passed`], [`Pass::Skipped`] (the
//!    store lacks a [`Capabilities`] flag the property needs) or a
//!    [`Failure`] naming the broken rule.
//! 2. [`model`]: proptest sequences of operations and clock moves, run on
//!    the store and on a reference model, compared after every step.
//! 3. [`conformance_tests!`]: the one-line test generator.
//!
//! Beside them, [`fixtures`]: the start clock, a record builder and data
//! strategies, for a store author's own backend tests.
//!
//! `PROPTEST_CASES` sets the model test's case count (default 64).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod at_rest;
pub mod disk_full;
mod env;
pub mod fixtures;
mod harness;
pub mod linearizability;
pub mod model;
mod outcome;
pub mod properties;

pub use at_rest::{AtRestHarness, default_keys as default_at_rest_keys};
pub use harness::{Capabilities, Harness, StoreConfig};
pub use outcome::{Failure, Pass, Verdict};
pub use properties::PROPERTY_NAMES;
/// The proptest the suite is built on, for running [`fixtures`]'
/// strategies without a proptest dependency of one's own.
pub use proptest;
pub use session_store_core::async_trait;

/// Runs `future` to completion on the suite's multi-thread Tokio runtime:
/// how a plain `#[test]` calls one property of [`properties`] directly.
///
/// Must not be called from inside an async context.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    __private::runtime().block_on(future)
}

/// Generates one `#[test]` per property of [`properties`] plus the
/// model-based test `model_matches_the_reference`, all against the harness
/// `$harness` (any expression of a type implementing [`Harness`], evaluated
/// afresh inside each test, within the suite's Tokio runtime).
///
/// Each test first asks [`Harness::available`]: when the service is not
/// here it prints `skipped: <test>: service unavailable: <why>` to stderr
/// and passes, or fails under [`SESSION_STORE_STRICT=1`](strict). A
/// property the store lacks a capability for prints
/// `skipped: <property>: <reason>`; a failure panics with the broken rule
/// and what happened. After the property (or the model test) returns or
/// panics, every namespace the harness gave during the test is handed to
/// [`Harness::teardown`]. Model-test regressions are saved beside the
/// calling file.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr $(,)?) => {
        $crate::__property_list!(__conformance_properties!($harness));

        #[test]
        fn model_matches_the_reference() {
            $crate::__private::run_model(file!(), async { $harness });
        }

        #[test]
        fn histories_of_concurrent_calls_are_linearizable() {
            $crate::__private::run_checker(async { $harness });
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __property_names {
    (() $($name:ident),* $(,)?) => {
        &[$(stringify!($name)),*]
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_properties {
    (($harness:expr) $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::__private::run_property(stringify!($name), async { $harness }, |harness| {
                    ::std::boxed::Box::pin($crate::properties::$name(harness))
                });
            }
        )*
    };
}

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The environment variable that turns "the service is not here" from a
/// skip into a failure: [`strict`] reads it.
pub const STRICT_VAR: &str = "SESSION_STORE_STRICT";

/// Whether `SESSION_STORE_STRICT` is set (to anything but empty or `0`):
/// then a test whose service is unavailable ([`Harness::available`]) fails
/// instead of printing one `skipped:` line. This repository's CI sets it;
/// backend tests outside the macro that need a service can ask it too.
#[must_use]
pub fn strict() -> bool {
    std::env::var_os(STRICT_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The README's examples, compiled (and run) as doctests so they cannot go
/// stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    /// The names of every `pub async fn` in the property sources
    /// (`src/properties.rs` or every file under `src/properties/`), read
    /// from disk so a new file is seen too.
    fn property_fns_in_the_source() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![root.join("properties.rs")];
        if let Ok(dir) = std::fs::read_dir(root.join("properties")) {
            files.extend(dir.map(|e| e.expect("a readable directory entry").path()));
        }
        let mut found = Vec::new();
        for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
            let Ok(source) = std::fs::read_to_string(file) else {
                continue;
            };
            for line in source.lines() {
                if let Some(rest) = line.trim_start().strip_prefix("pub async fn ") {
                    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    found.push((name, file.display().to_string()));
                }
            }
        }
        found
    }

    #[test]
    fn every_pub_async_fn_property_is_in_the_list_the_macro_expands() {
        let found = property_fns_in_the_source();
        assert!(found.len() >= 26, "found only {found:?}: is the parser still right?");
        let listed: std::collections::BTreeSet<&str> = crate::PROPERTY_NAMES.iter().copied().collect();
        let missing: Vec<_> = found
            .iter()
            .filter(|(name, _)| !listed.contains(name.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "these properties run nowhere: add them to `__property_list!` in src/properties/mod.rs: {missing:?}"
        );
        let defined: std::collections::BTreeSet<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        let stale: Vec<_> = listed.difference(&defined).collect();
        assert!(stale.is_empty(), "listed but not defined as `pub async fn`: {stale:?}");
        assert_eq!(defined.len(), found.len(), "a property name defined twice: {found:?}");
    }

    #[test]
    fn property_names_are_distinct_sentences() {
        let names: std::collections::BTreeSet<_> = crate::PROPERTY_NAMES.iter().collect();
        assert_eq!(names.len(), crate::PROPERTY_NAMES.len());
        assert!(crate::PROPERTY_NAMES.len() >= 26);
        assert!(names.iter().all(|n| n.split('_').count() >= 3), "{names:?}");
    }
}
