//! The one interface every measured store is driven through.
//!
//! Our stores, the tower-sessions peers and the floors each keep their own
//! record type and their own trait; a [`Subject`] wraps one of them so the
//! workloads in [`crate::workloads`] run identically against all. Each record
//! is built from the same [`Payload`] before timing starts, so only the
//! store's own work is timed.

use std::future::Future;
use std::time::Duration;

use session_store_core::Timestamp;

use crate::Payload;

/// The error a subject reports; a benchmark stops on the first one.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// A subject operation's result.
pub type BenchResult<T> = Result<T, BenchError>;

/// The operations a subject may or may not offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Overwrite only when the stored version is the one loaded.
    SaveIfVersion,
    /// Move a live record's deadline without rewriting it.
    Touch,
    /// Move a live record to a new id in one step.
    Rotate,
    /// Remove every expired record.
    Purge,
}

/// The error for an operation a subject does not offer.
#[must_use]
pub fn unsupported(op: Op) -> BenchError {
    format!("{op:?} is not offered by this subject").into()
}

/// A store under measurement, driven through its own API.
///
/// Load, create, save and delete are offered by every subject; the
/// operations of [`Op`] only where [`supports`](Self::supports) says so.
pub trait Subject: Send + Sync + 'static {
    /// The subject's own record type.
    type Rec: Clone + Send + Sync + 'static;
    /// The subject's own id type.
    type Id: Copy + Send + Sync + 'static;

    /// Whether the subject offers `op`.
    fn supports(&self, op: Op) -> bool;

    /// A fresh random id, as the subject's library would draw it.
    fn fresh_id(&self) -> Self::Id;

    /// A record with a fresh id holding `payload`, live until `expires_at`.
    fn record(&self, payload: &Payload, expires_at: Timestamp) -> Self::Rec;

    /// The id of a record.
    fn id_of(rec: &Self::Rec) -> Self::Id;

    /// Gives a record another id.
    fn set_id(rec: &mut Self::Rec, id: Self::Id);

    /// Inserts a new record.
    fn create(&self, rec: &mut Self::Rec) -> impl Future<Output = BenchResult<()>> + Send;

    /// Creates a record while setting up a workload (untimed). The default
    /// is [`create`](Self::create); durable subjects may write without
    /// syncing here, so that storing 100,000 records takes seconds rather
    /// than minutes. What is timed always goes through `create`.
    fn seed_create(&self, rec: &mut Self::Rec) -> impl Future<Output = BenchResult<()>> + Send {
        self.create(rec)
    }

    /// The live record under `id`, if any.
    fn load(&self, id: Self::Id) -> impl Future<Output = BenchResult<Option<Self::Rec>>> + Send;

    /// Inserts or overwrites a record.
    fn save(&self, rec: &Self::Rec) -> impl Future<Output = BenchResult<()>> + Send;

    /// Removes the record under `id`.
    fn delete(&self, id: Self::Id) -> impl Future<Output = BenchResult<()>> + Send;

    /// Overwrites `rec` if its version is the stored one, and records the new
    /// version in `rec`.
    fn save_if_version(&self, rec: &mut Self::Rec) -> impl Future<Output = BenchResult<()>> + Send {
        let _ = rec;
        async { Err(unsupported(Op::SaveIfVersion)) }
    }

    /// Moves the deadline of the live record under `id`.
    fn touch(&self, id: Self::Id, expires_at: Timestamp) -> impl Future<Output = BenchResult<bool>> + Send {
        let _ = (id, expires_at);
        async { Err(unsupported(Op::Touch)) }
    }

    /// Moves the live record under `old` to `new`.
    fn rotate(&self, old: Self::Id, new: Self::Id) -> impl Future<Output = BenchResult<bool>> + Send {
        let _ = (old, new);
        async { Err(unsupported(Op::Rotate)) }
    }

    /// Removes every expired record; returns how many, when the subject says.
    fn purge(&self) -> impl Future<Output = BenchResult<Option<u64>>> + Send {
        async { Err(unsupported(Op::Purge)) }
    }

    /// Removes everything the benchmark stored (`ids`, created by it),
    /// untimed, between benchmarks. The default deletes each id.
    fn clear(&self, ids: Vec<Self::Id>) -> impl Future<Output = BenchResult<()>> + Send {
        async move {
            for id in ids {
                self.delete(id).await?;
            }
            Ok(())
        }
    }

    /// How long after the deadline a record is surely seen as expired (some
    /// peers compare deadlines to the second).
    fn expiry_resolution(&self) -> Duration {
        Duration::from_millis(2)
    }

    /// How many records the purge workload stores (half of them expired).
    fn purge_population(&self) -> usize {
        100_000
    }
}
