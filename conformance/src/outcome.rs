//! What a property returns: passed, skipped (with a reason) or a failure
//! naming the broken rule.

use std::fmt;

/// A property that ran to the end without finding a broken rule, or one
/// that could not run on this store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pass {
    /// Every check of the property held.
    Passed,
    /// The store lacks a capability the property needs; nothing was checked.
    Skipped {
        /// Why the property could not run (the missing capability).
        reason: String,
    },
}

impl Pass {
    /// Whether the property was skipped.
    #[must_use]
    pub fn is_skipped(&self) -> bool {
        matches!(self, Self::Skipped { .. })
    }
}

/// A broken rule: which property found it, which rule of the contract, and
/// what the store did instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The property (its function name).
    pub property: &'static str,
    /// The rule of the contract that was broken, in words.
    pub rule: String,
    /// What the store did, with the values involved.
    pub detail: String,
}

impl Failure {
    /// A failure of `property` against `rule`.
    #[must_use]
    pub fn new(property: &'static str, rule: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            property,
            rule: rule.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance property `{}` failed\n  rule broken: {}\n  what happened: {}",
            self.property, self.rule, self.detail
        )
    }
}

impl std::error::Error for Failure {}

/// The result of one property: `Ok(Pass)` or the [`Failure`] that names the
/// broken rule.
pub type Verdict = Result<Pass, Failure>;
