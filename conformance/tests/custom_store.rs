//! The conformance suite against the example third-party store
//! (`examples/custom_store.rs`), which declares every capability.

#[allow(dead_code)]
#[path = "../examples/custom_store.rs"]
mod custom_store;

session_store_conformance::conformance_tests!(custom_store::TinyHarness::default());
