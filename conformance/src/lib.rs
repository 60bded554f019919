//! The conformance suite every session store runs: property-based, model-checked.

mod harness;

pub use harness::{Capabilities, Harness, StoreConfig};
