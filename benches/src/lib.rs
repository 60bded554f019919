//! Criterion benchmarks of every backend of the workspace, side by side with
//! the stores people use today (tower-sessions' own, feature `peers`) and
//! with the floor of each medium (a locked `HashMap`, raw rusqlite, raw
//! redis-rs, raw write-and-rename of a file).
//!
//! The default feature `stores` brings in every backend, the floors and
//! the middleware stacks; without it the crate is only the harness
//! ([`Subject`], [`workloads`], [`report`]), which the sqlx peers' crate
//! (`benches/sqlx-peers`, its own workspace and lock file: sqlx 0.8 links
//! an older SQLite than our SQLite store) builds its rows on.
//!
//! Every store is wrapped as a [`Subject`] and driven through the same
//! [`workloads`]; `scripts/bench` at the repository root runs them all and
//! writes `target/bench-report.md` with the `bench-report` binary.
//!
//! ```
//! # #[cfg(feature = "stores")] {
//! use session_store_benches::floors::HashMapFloor;
//! use session_store_benches::{Payload, Subject};
//! use session_store_core::{SystemClock, Clock};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // The same record for every subject: five keys, 198 bytes of JSON.
//! let floor = HashMapFloor::new();
//! let mut rec = floor.record(&Payload::small(), SystemClock.now() + Duration::from_secs(60));
//! floor.create(&mut rec).await?;
//! let loaded = floor.load(rec.id).await?.expect("live");
//! assert_eq!(loaded.data.byte_size(), 198);
//! # Ok::<(), session_store_benches::subject::BenchError>(())
//! # }).unwrap();
//! # }
//! ```

pub mod at_rest;
#[cfg(feature = "stores")]
pub mod floors;
#[cfg(feature = "stores")]
pub mod middleware;
pub mod ours;
pub mod payload;
#[cfg(feature = "peers")]
pub mod peers;
pub mod report;
pub mod subject;
pub mod targets;
#[cfg(feature = "peers")]
mod tower_subject;
pub mod workloads;

pub use payload::{Payload, Size};
pub use subject::Subject;
