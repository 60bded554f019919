//! The owner index.
