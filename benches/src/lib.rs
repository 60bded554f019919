//! Criterion benchmarks of every backend and its peers.
