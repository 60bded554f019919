//! The modes of the at-rest workloads: each backend plain, with hashed ids,
//! with encrypted bodies and with both ([`session_store_core::at_rest`]).
//!
//! A protected mode is [`Protected`](session_store_core::at_rest::Protected)
//! over a store of its own (its own directory, file, prefix or schema)
//! opened with [`inner_limit`] as its record limit; plain is the store
//! itself, opened as the other workloads open it. The workloads
//! (`at_rest_load_hit`, `at_rest_save_small`) report each as
//! `<group>/<backend>/<mode>`, and the report divides every mode by plain
//! on the same backend.

use session_store_core::DEFAULT_MAX_RECORD_BYTES;
use session_store_core::at_rest::{AtRest, inner_limit};
use session_store_core::seal::KeyRing;

/// The backends the at-rest workloads run on, in report order (each the
/// name of our store's subject in the other workloads).
pub const BACKENDS: [&str; 5] = ["memory", "file", "sqlite", "redis", "postgres"];

/// One way of keeping records at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The store itself: ids and bodies as they are.
    Plain,
    /// Records keyed by a hash of their id.
    Hashed,
    /// Bodies sealed with XChaCha20-Poly1305.
    Encrypted,
    /// Hashed ids and sealed bodies.
    Both,
}

impl Mode {
    /// Every mode, in report order.
    pub const ALL: [Self; 4] = [Self::Plain, Self::Hashed, Self::Encrypted, Self::Both];

    /// The mode's name: the benchmark's parameter and the report's row.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Hashed => "hashed",
            Self::Encrypted => "encrypted",
            Self::Both => "both",
        }
    }

    /// What the protecting layer does, or `None` for the store itself.
    #[must_use]
    pub fn at_rest(self) -> Option<AtRest> {
        match self {
            Self::Plain => None,
            Self::Hashed => Some(AtRest::new().hash_ids(true)),
            Self::Encrypted => Some(AtRest::new().encrypt(bench_keys())),
            Self::Both => Some(AtRest::new().hash_ids(true).encrypt(bench_keys())),
        }
    }

    /// The record limit of the store the mode runs on: the default for
    /// plain, [`inner_limit`] of it below a protecting layer.
    #[must_use]
    pub fn store_limit(self) -> usize {
        match self {
            Self::Plain => DEFAULT_MAX_RECORD_BYTES,
            _ => inner_limit(DEFAULT_MAX_RECORD_BYTES),
        }
    }
}

/// The key ring of the encrypting modes: one fixed key, as good as any
/// for measuring (these records hold nothing secret).
#[must_use]
pub fn bench_keys() -> KeyRing {
    KeyRing::new(1, [7u8; 32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_protect_as_named() {
        assert!(Mode::Plain.at_rest().is_none());
        let flags = |m: Mode| m.at_rest().map(|a| (a.hashes_ids(), a.encrypts()));
        assert_eq!(flags(Mode::Hashed), Some((true, false)));
        assert_eq!(flags(Mode::Encrypted), Some((false, true)));
        assert_eq!(flags(Mode::Both), Some((true, true)));
        assert_eq!(Mode::Plain.store_limit(), DEFAULT_MAX_RECORD_BYTES);
        assert!(Mode::Both.store_limit() > DEFAULT_MAX_RECORD_BYTES);
    }
}
