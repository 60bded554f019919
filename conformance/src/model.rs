//! The model-based test: random sequences of operations and clock moves,
//! run on the store and on a plain reference model, compared after every
//! step.
//!
//! The reference model is a `BTreeMap` that keeps the rules written on
//! [`SessionStore`]: liveness `now < expires_at`, versions, `IdCollision`,
//! `Conflict`, `TooLarge`, rotate and purge. Operations use a pool of four
//! ids so they collide, and the clock moves by random steps, onto a known
//! deadline exactly, and onto one millisecond before it. A `durable` store
//! is also dropped and reopened at random points, and a `shared` store is
//! driven through two store objects on one namespace (alternating steps).
//! Deadlines include `Timestamp::MAX`, touch also moves deadlines into the
//! past (or to exactly now), and save_if_version also sends the last
//! version an id had before it was deleted, rotated away or expired (a
//! late write). Records carry an owner (one of [`OWNERS`], or none), which
//! every load compares; with the `owner_index` capability the sequences also
//! list and revoke owners' sessions (with and without a session to keep). Answers are compared exactly; the one range is a purge's
//! count, which must include every expired record no operation looked at
//! since it expired (one that was looked at may have been removed lazily,
//! as the contract allows).
//! proptest shrinks a failure to the shortest failing sequence and saves it
//! beside the calling test file, so it is replayed first on the next run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};
use session_store_core::{Error, ListingHandle, ManualClock, Record, SessionData, SessionId, SessionStore, Timestamp};

use crate::env::{START_MILLIS, chain};
use crate::{Failure, Harness, Pass, StoreConfig, Verdict};

/// The record-size limit the model test opens stores with, so that some
/// generated writes are refused with `TooLarge`.
pub const MODEL_MAX_RECORD_BYTES: usize = 96;
/// How many ids the operations draw from.
pub const ID_POOL: usize = 4;
/// The owners records are written with (a record may have none).
pub const OWNERS: [&str; 2] = ["alice", "bob"];

const PROPERTY: &str = "model_matches_the_reference";

/// How long one sequence may take before the store is reported as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// How the model test runs: cases, sequence length, where regressions go.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModelSettings {
    /// Number of random sequences (`PROPTEST_CASES`, default 64).
    pub cases: u32,
    /// Longest sequence of operations (default 40).
    pub max_ops: usize,
    /// The test file beside which regressions are saved, as
    /// `<file stem>.proptest-regressions` (commit it: failing sequences are
    /// replayed first on every later run), or `None` to save nothing.
    pub source_file: Option<&'static str>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            cases: 64,
            max_ops: 40,
            source_file: None,
        }
    }
}

impl ModelSettings {
    /// The defaults, with `cases` from `PROPTEST_CASES` when it is set.
    #[must_use]
    pub fn from_env() -> Self {
        let mut settings = Self::default();
        if let Some(cases) = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.trim().parse().ok()) {
            settings.cases = cases;
        }
        settings
    }

    /// Sets the number of cases.
    #[must_use]
    pub fn cases(mut self, cases: u32) -> Self {
        self.cases = cases;
        self
    }

    /// Sets the longest sequence.
    #[must_use]
    pub fn max_ops(mut self, max_ops: usize) -> Self {
        self.max_ops = max_ops.max(1);
        self
    }

    /// Saves regressions beside `source_file` (pass `file!()`).
    #[must_use]
    pub fn regressions_beside(mut self, source_file: &'static str) -> Self {
        self.source_file = Some(source_file);
        self
    }
}

/// Which version a generated `save_if_version` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionPick {
    /// The version the model holds for the id (0 when it holds none).
    Current,
    /// That version plus this (non-zero) offset: stale or from the future.
    Off(i8),
    /// The last version a record under the id had, even if it was since
    /// deleted, rotated away or expired: a late write of a request that
    /// loaded it before.
    LastKnown,
}

/// One generated step. Slots index the pool of [`ID_POOL`] ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `create` a record live for `ttl` ms.
    Create {
        /// Id slot.
        slot: usize,
        /// The record's owner: an index into [`OWNERS`], or none.
        owner: Option<usize>,
        /// Data entries (key, integer value, padding length).
        data: Vec<(String, i64)>,
        /// Extra bytes of padding (may push the record over the limit).
        pad: usize,
        /// Time to live from now, ms.
        ttl: u64,
    },
    /// `load`.
    Load {
        /// Id slot.
        slot: usize,
    },
    /// `save` a record live for `ttl` ms.
    Save {
        /// Id slot.
        slot: usize,
        /// The record's owner: an index into [`OWNERS`], or none.
        owner: Option<usize>,
        /// Data entries.
        data: Vec<(String, i64)>,
        /// Extra bytes of padding.
        pad: usize,
        /// Time to live from now, ms.
        ttl: u64,
    },
    /// `save_if_version` with the current or a wrong version.
    SaveIfVersion {
        /// Id slot.
        slot: usize,
        /// The record's owner: an index into [`OWNERS`], or none.
        owner: Option<usize>,
        /// Data entries.
        data: Vec<(String, i64)>,
        /// Extra bytes of padding.
        pad: usize,
        /// Time to live from now, ms.
        ttl: u64,
        /// Which version to send.
        version: VersionPick,
    },
    /// `touch` to now + `ttl`.
    Touch {
        /// Id slot.
        slot: usize,
        /// New time to live from now, ms.
        ttl: u64,
    },
    /// `touch` to now - `ms`: into the past (or exactly now, for 0).
    TouchBack {
        /// Id slot.
        slot: usize,
        /// How far back, ms.
        ms: u64,
    },
    /// `delete`.
    Delete {
        /// Id slot.
        slot: usize,
    },
    /// `rotate(from, to)`.
    Rotate {
        /// Old id slot.
        from: usize,
        /// New id slot.
        to: usize,
    },
    /// `purge_expired`.
    Purge,
    /// `count`.
    Count,
    /// `ids`.
    Ids,
    /// `clear`.
    Clear,
    /// `owner_sessions` (only with the `owner_index` capability).
    OwnerSessions {
        /// Index into [`OWNERS`].
        owner: usize,
    },
    /// `delete_owner_sessions` (only with the `owner_index` capability).
    RevokeOwner {
        /// Index into [`OWNERS`].
        owner: usize,
        /// The id slot to keep, if any.
        keep: Option<usize>,
    },
    /// `import` of a record carrying `version` (live for `ttl` ms, or, when
    /// `ttl` is 0, with its deadline now: no longer live).
    Import {
        /// Id slot.
        slot: usize,
        /// The record's owner: an index into [`OWNERS`], or none.
        owner: Option<usize>,
        /// Data entries.
        data: Vec<(String, i64)>,
        /// Time to live from now, ms (0: expired).
        ttl: u64,
        /// The version it carries.
        version: u64,
    },
    /// Moves the clock forward by `ms`.
    Advance {
        /// Milliseconds.
        ms: u64,
    },
    /// Drops every store object and opens them again on the same namespace
    /// (only for `durable` stores; a no-op otherwise).
    Reopen,
    /// Moves the clock onto the deadline the model knows for `slot` (minus
    /// one millisecond when `minus_one`), if that is in the future.
    ToDeadline {
        /// Id slot.
        slot: usize,
        /// Stop one millisecond short of the deadline.
        minus_one: bool,
    },
}

fn data_strategy() -> impl Strategy<Value = (Vec<(String, i64)>, usize)> {
    let key = prop_oneof![
        Just(String::new()),
        Just("a".to_owned()),
        Just("ü".to_owned()),
        Just("user".to_owned())
    ];
    let value = prop_oneof![any::<i64>(), -3_i64..3];
    (
        proptest::collection::vec((key, value), 0..3),
        prop_oneof![4 => Just(0_usize), 1 => 40_usize..120],
    )
}

fn owner_strategy() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![2 => Just(None), 2 => (0..OWNERS.len()).prop_map(Some)]
}

/// The strategy for one operation.
pub fn op_strategy() -> impl Strategy<Value = Op> {
    let slot = 0..ID_POOL;
    let owner = owner_strategy;
    // u64::MAX: a deadline of Timestamp::MAX (the sum saturates).
    let ttl = prop_oneof![8 => 1_u64..=3, 8 => 1_u64..2_000, 1 => Just(u64::MAX)];
    let version = prop_oneof![
        6 => Just(VersionPick::Current),
        2 => prop_oneof![Just(-1_i8), Just(1_i8), Just(2_i8)].prop_map(VersionPick::Off),
        2 => Just(VersionPick::LastKnown),
    ];
    let common = prop_oneof![
        3 => (slot.clone(), owner(), data_strategy(), ttl.clone()).prop_map(|(slot, owner, (data, pad), ttl)| Op::Create { slot, owner, data, pad, ttl }),
        3 => slot.clone().prop_map(|slot| Op::Load { slot }),
        2 => (slot.clone(), owner(), data_strategy(), ttl.clone()).prop_map(|(slot, owner, (data, pad), ttl)| Op::Save { slot, owner, data, pad, ttl }),
        3 => (slot.clone(), owner(), data_strategy(), ttl.clone(), version)
            .prop_map(|(slot, owner, (data, pad), ttl, version)| Op::SaveIfVersion { slot, owner, data, pad, ttl, version }),
        2 => (slot.clone(), ttl).prop_map(|(slot, ttl)| Op::Touch { slot, ttl }),
        1 => (slot.clone(), prop_oneof![Just(0_u64), Just(1), 1_u64..5_000]).prop_map(|(slot, ms)| Op::TouchBack { slot, ms }),
        1 => slot.clone().prop_map(|slot| Op::Delete { slot }),
        2 => (slot.clone(), slot.clone()).prop_map(|(from, to)| Op::Rotate { from, to }),
        2 => (slot.clone(), owner(), data_strategy(), prop_oneof![1 => Just(0_u64), 4 => 1_u64..2_000], 1_u64..=5)
            .prop_map(|(slot, owner, (data, _), ttl, version)| Op::Import { slot, owner, data, ttl, version }),
        1 => Just(Op::Purge),
        1 => Just(Op::Count),
        1 => Just(Op::Ids),
        2 => (0..OWNERS.len()).prop_map(|owner| Op::OwnerSessions { owner }),
        2 => (0..OWNERS.len(), proptest::option::of(slot.clone())).prop_map(|(owner, keep)| Op::RevokeOwner { owner, keep }),
        2 => prop_oneof![Just(0_u64), Just(1), 1_u64..1_500].prop_map(|ms| Op::Advance { ms }),
        3 => (slot, any::<bool>()).prop_map(|(slot, minus_one)| Op::ToDeadline { slot, minus_one }),
        1 => Just(Op::Reopen),
    ];
    // A clear is rare (it empties the store the rest of the sequence tests)
    // by weight, not by a filter: filtered values count as proptest's local
    // rejects, which abort a run of many thousand cases.
    prop_oneof![620 => common, 1 => Just(Op::Clear)]
}

/// The strategy for a whole sequence of up to `max_ops` operations.
pub fn ops_strategy(max_ops: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op_strategy(), 1..=max_ops.max(1))
}

/// What an operation answered, reduced to what the rules decide.
#[derive(Clone, PartialEq, Eq)]
pub enum Answer {
    /// `Ok(())`.
    Done,
    /// `Ok(bool)` of touch or rotate.
    Bool(bool),
    /// `Ok(version)` of save or save_if_version.
    Version(u64),
    /// `Ok(record)` of load.
    Loaded(Option<Record>),
    /// `Ok(n)` of count or purge.
    Number(u64),
    /// `Ok(ids)` of ids, as slots (`usize::MAX` for an id outside the pool,
    /// duplicates kept).
    Ids(Vec<usize>),
    /// `Err(IdCollision)`.
    IdCollision,
    /// `Err(Conflict)`.
    Conflict,
    /// `Err(TooLarge)`.
    TooLarge,
    /// Any other error (never expected).
    OtherError(String),
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Done => write!(f, "Ok(())"),
            Self::Bool(b) => write!(f, "Ok({b})"),
            Self::Version(v) => write!(f, "Ok(version {v})"),
            Self::Loaded(None) => write!(f, "Ok(None)"),
            Self::Loaded(Some(r)) => write!(
                f,
                "Ok(Some(version {}, created {}, expires {}, owner {:?}, data {:?}))",
                r.version,
                r.created_at.as_millis() - START_MILLIS,
                r.expires_at.as_millis() - START_MILLIS,
                r.owner,
                r.data.iter().collect::<Vec<_>>()
            ),
            Self::Number(n) => write!(f, "Ok({n})"),
            Self::Ids(ids) => write!(f, "Ok(slots {ids:?})"),
            Self::IdCollision => write!(f, "Err(IdCollision)"),
            Self::Conflict => write!(f, "Err(Conflict)"),
            Self::TooLarge => write!(f, "Err(TooLarge)"),
            Self::OtherError(e) => write!(f, "Err({e})"),
        }
    }
}

fn answer<T>(r: Result<T, Error>, ok: impl FnOnce(T) -> Answer) -> Answer {
    match r {
        Ok(v) => ok(v),
        Err(Error::IdCollision { .. }) => Answer::IdCollision,
        Err(Error::Conflict { .. }) => Answer::Conflict,
        Err(Error::TooLarge { .. }) => Answer::TooLarge,
        Err(e) => Answer::OtherError(chain(&e)),
    }
}

/// The reference model: the records a correct store holds (expired ones
/// included until removed), and the clock.
#[derive(Debug, Clone)]
pub struct Reference {
    now: Timestamp,
    records: BTreeMap<usize, Record>,
    limit: usize,
    /// The last version each slot's record had (kept after delete, rotate
    /// and expiry), for late writes.
    last_version: BTreeMap<usize, u64>,
    /// Slots whose expired record an operation on that id has looked at:
    /// the store may have removed it lazily then, so a purge may not count it.
    seen_expired: BTreeSet<usize>,
    /// Whether a rotate may leave an expired remainder under the old id
    /// for a purge to remove and count (a store declaring
    /// `rotate_briefly_shows_both_ids`, which copies then ends).
    rotate_remainders: bool,
    /// Rotates since the last purge or clear that may have left one.
    remainders: u64,
}

/// What the model accepts as the store's answer.
enum Expect {
    /// Any of these answers.
    OneOf(Vec<Answer>),
    /// A purge count in this range: every expired record no operation has
    /// looked at since it expired must be counted; one that was looked at
    /// (load, touch, a conflicting write, a rotate) may have been removed
    /// lazily then, as the contract allows, and so may be missing from the count.
    Purged {
        /// Expired records nothing looked at since they expired.
        at_least: u64,
        /// Every expired record the model holds.
        at_most: u64,
    },
    /// ids: exactly these slots, in any order.
    IdSet(BTreeSet<usize>),
}

impl Reference {
    /// An empty model at `now` with the size limit `limit`.
    #[must_use]
    pub fn new(now: Timestamp, limit: usize) -> Self {
        Self {
            now,
            records: BTreeMap::new(),
            limit,
            last_version: BTreeMap::new(),
            seen_expired: BTreeSet::new(),
            rotate_remainders: false,
            remainders: 0,
        }
    }

    /// The same, for a store whose rotate leaves an expired remainder under
    /// the old id for a purge to count (see [`Capabilities::rotate_briefly_shows_both_ids`](crate::Capabilities::rotate_briefly_shows_both_ids)).
    #[must_use]
    pub fn with_rotate_remainders(mut self, yes: bool) -> Self {
        self.rotate_remainders = yes;
        self
    }

    /// Notes that an operation looked at `slot`'s record while it was expired.
    fn look(&mut self, slot: usize) {
        if self.records.get(&slot).is_some_and(|r| !r.is_live_at(self.now)) {
            self.seen_expired.insert(slot);
        }
    }

    /// Stores `record` in `slot` (replacing whatever was there).
    fn put(&mut self, slot: usize, record: Record) {
        self.last_version.insert(slot, record.version);
        self.seen_expired.remove(&slot);
        self.records.insert(slot, record);
    }

    /// Removes `slot`'s record.
    fn remove(&mut self, slot: usize) -> Option<Record> {
        self.seen_expired.remove(&slot);
        self.records.remove(&slot)
    }

    fn live(&self, slot: usize) -> Option<&Record> {
        self.records.get(&slot).filter(|r| r.is_live_at(self.now))
    }

    fn live_count(&self) -> u64 {
        self.records.values().filter(|r| r.is_live_at(self.now)).count() as u64
    }

    fn too_large(&self, record: &Record) -> bool {
        record.data.byte_size() > self.limit
    }

    /// What a correct store answers to `op`, applying its effect.
    fn step(&mut self, op: &ModelOp) -> Expect {
        use Answer::*;
        match op {
            ModelOp::Create(slot, _)
            | ModelOp::Load(slot)
            | ModelOp::Save(slot, _)
            | ModelOp::SaveIfVersion(slot, _)
            | ModelOp::Touch(slot, _)
            | ModelOp::Import(slot, _) => self.look(*slot),
            ModelOp::Rotate(from, to, _) => {
                self.look(*from);
                self.look(*to);
            }
            ModelOp::Delete(_)
            | ModelOp::Purge
            | ModelOp::Count
            | ModelOp::Ids
            | ModelOp::Clear
            | ModelOp::OwnerSessions(_)
            | ModelOp::Revoke(..) => {}
        }
        match op {
            ModelOp::Create(slot, record) => {
                let collides = self.live(*slot).is_some();
                if self.too_large(record) {
                    return Expect::OneOf(if collides {
                        vec![TooLarge, IdCollision]
                    } else {
                        vec![TooLarge]
                    });
                }
                if collides {
                    return Expect::OneOf(vec![IdCollision]);
                }
                let mut r = record.clone();
                r.version = 1;
                self.put(*slot, r);
                Expect::OneOf(vec![Version(1)])
            }
            ModelOp::Load(slot) => Expect::OneOf(vec![Loaded(self.live(*slot).cloned())]),
            ModelOp::Save(slot, record) => {
                if self.too_large(record) {
                    return Expect::OneOf(vec![TooLarge]);
                }
                let version = self.live(*slot).map_or(1, |r| r.version + 1);
                let mut r = record.clone();
                r.version = version;
                self.put(*slot, r);
                Expect::OneOf(vec![Version(version)])
            }
            ModelOp::SaveIfVersion(slot, record) => {
                let matches = self.live(*slot).is_some_and(|r| r.version == record.version);
                if self.too_large(record) {
                    return Expect::OneOf(if matches {
                        vec![TooLarge]
                    } else {
                        vec![TooLarge, Conflict]
                    });
                }
                if !matches {
                    return Expect::OneOf(vec![Conflict]);
                }
                let mut r = record.clone();
                r.version = record.version + 1;
                let v = r.version;
                self.put(*slot, r);
                Expect::OneOf(vec![Version(v)])
            }
            ModelOp::Touch(slot, deadline) => {
                if self.live(*slot).is_none() {
                    return Expect::OneOf(vec![Bool(false)]);
                }
                if let Some(r) = self.records.get_mut(slot) {
                    r.expires_at = *deadline;
                }
                Expect::OneOf(vec![Bool(true)])
            }
            ModelOp::Delete(slot) => {
                self.remove(*slot);
                Expect::OneOf(vec![Done])
            }
            ModelOp::Import(slot, record) => {
                let newer_or_same = self.live(*slot).is_some_and(|r| r.version >= record.version);
                if !record.is_live_at(self.now) || newer_or_same {
                    return Expect::OneOf(vec![Bool(false)]);
                }
                self.put(*slot, record.clone());
                Expect::OneOf(vec![Bool(true)])
            }
            ModelOp::Rotate(from, to, new_id) => {
                let old_live = self.live(*from).is_some();
                let new_live = self.live(*to).is_some();
                match (old_live, new_live) {
                    (_, true) if from == to => Expect::OneOf(vec![IdCollision]),
                    (true, true) => Expect::OneOf(vec![IdCollision]),
                    (false, true) => Expect::OneOf(vec![Bool(false), IdCollision]),
                    (false, false) => Expect::OneOf(vec![Bool(false)]),
                    (true, false) => {
                        if let Some(mut r) = self.remove(*from) {
                            r.id = *new_id;
                            self.put(*to, r);
                        }
                        if self.rotate_remainders {
                            self.remainders += 1;
                        }
                        Expect::OneOf(vec![Bool(true)])
                    }
                }
            }
            ModelOp::Purge => {
                let now = self.now;
                let expired: Vec<usize> = self
                    .records
                    .iter()
                    .filter(|(_, r)| !r.is_live_at(now))
                    .map(|(slot, _)| *slot)
                    .collect();
                let at_most = expired.len() as u64 + std::mem::take(&mut self.remainders);
                let at_least = expired.iter().filter(|s| !self.seen_expired.contains(s)).count() as u64;
                for slot in expired {
                    self.remove(slot);
                }
                Expect::Purged { at_least, at_most }
            }
            ModelOp::Count => Expect::OneOf(vec![Number(self.live_count())]),
            ModelOp::Ids => Expect::IdSet(
                self.records
                    .iter()
                    .filter(|(_, r)| r.is_live_at(self.now))
                    .map(|(slot, _)| *slot)
                    .collect(),
            ),
            ModelOp::Clear => {
                self.records.clear();
                self.seen_expired.clear();
                self.remainders = 0;
                Expect::OneOf(vec![Done])
            }
            ModelOp::OwnerSessions(owner) => Expect::IdSet(
                self.records
                    .iter()
                    .filter(|(_, r)| r.is_live_at(self.now) && r.owner.as_deref() == Some(owner))
                    .map(|(slot, _)| *slot)
                    .collect(),
            ),
            ModelOp::Revoke(owner, keep) => {
                let now = self.now;
                let doomed: Vec<(usize, bool)> = self
                    .records
                    .iter()
                    .filter(|(slot, r)| r.owner.as_deref() == Some(owner) && Some(**slot) != *keep)
                    .map(|(slot, r)| (*slot, r.is_live_at(now)))
                    .collect();
                let mut live = 0;
                for (slot, is_live) in doomed {
                    if is_live {
                        live += 1;
                        self.remove(slot);
                    } else {
                        // The store may delete an expired record of the
                        // owner too, or leave it to purge.
                        self.seen_expired.insert(slot);
                    }
                }
                Expect::OneOf(vec![Number(live)])
            }
        }
    }
}

/// A generated op resolved against the model: ids and deadlines filled in.
enum ModelOp {
    Create(usize, Record),
    Load(usize),
    Save(usize, Record),
    SaveIfVersion(usize, Record),
    Touch(usize, Timestamp),
    Delete(usize),
    Import(usize, Record),
    Rotate(usize, usize, SessionId),
    Purge,
    Count,
    Ids,
    Clear,
    OwnerSessions(String),
    Revoke(String, Option<usize>),
}

fn build_data(entries: &[(String, i64)], pad: usize) -> SessionData {
    let mut data = SessionData::new();
    for (k, v) in entries {
        let _ = data.insert(k.clone(), v);
    }
    if pad > 0 {
        data.insert_raw("pad".to_owned(), format!("\"{}\"", "p".repeat(pad)));
    }
    data
}

/// One case: a fresh namespace and clock, the ops on store and model, and a
/// final sweep comparing every slot and the count.
async fn run_case<H: Harness>(harness: &H, ops: &[Op]) -> Result<(), String> {
    let start = Timestamp::from_millis(START_MILLIS);
    let clock = ManualClock::new(start);
    let config = StoreConfig::new(clock.shared()).max_record_bytes(MODEL_MAX_RECORD_BYTES);
    let ns = harness
        .new_namespace()
        .await
        .map_err(|e| format!("harness.new_namespace() failed: {}", chain(&e)))?;
    let mut stores = Stores {
        harness,
        ns,
        config,
        open: Vec::new(),
    };
    stores.open_all().await?;
    let result = run_ops(&mut stores, &clock, ops).await;
    if let Some(store) = stores.open.first() {
        let _ = store.clear().await;
    }
    result
}

/// The store objects a case drives: one, or two on one namespace when the
/// harness declares `shared` (odd steps then go to the second).
struct Stores<'h, H: Harness> {
    harness: &'h H,
    ns: H::Namespace,
    config: StoreConfig,
    open: Vec<H::Store>,
}

impl<H: Harness> Stores<'_, H> {
    async fn open_all(&mut self) -> Result<(), String> {
        self.open.clear();
        let objects = if self.harness.capabilities().shared { 2 } else { 1 };
        for _ in 0..objects {
            let store = self
                .harness
                .open(&self.ns, &self.config)
                .await
                .map_err(|e| format!("harness.open() failed: {}", chain(&e)))?;
            self.open.push(store);
        }
        Ok(())
    }

    /// The store object for `step`, and its name for messages.
    fn for_step(&self, step: usize) -> (&H::Store, &'static str) {
        if self.open.len() > 1 && step % 2 == 1 {
            (&self.open[1], " via the second store object")
        } else {
            (&self.open[0], "")
        }
    }
}

async fn run_ops<H: Harness>(stores: &mut Stores<'_, H>, clock: &ManualClock, ops: &[Op]) -> Result<(), String> {
    use session_store_core::Clock as _;
    let durable = stores.harness.capabilities().durable;
    let owner_index = stores.harness.capabilities().owner_index;
    let start = clock.now();
    let ids: Vec<SessionId> = (0..ID_POOL).map(|_| SessionId::random()).collect();
    // Listings answer handles (the ids themselves unless the store hashes
    // ids at rest): a listed handle names the slot whose id has it.
    let handles: Vec<ListingHandle> = {
        let store = stores.for_step(0).0;
        ids.iter().map(|id| store.listing_handle(id)).collect()
    };
    let slot_of = |handle: &ListingHandle| handles.iter().position(|h| h == handle).unwrap_or(usize::MAX);
    let mut model = Reference::new(start, MODEL_MAX_RECORD_BYTES)
        .with_rotate_remainders(stores.harness.capabilities().rotate_briefly_shows_both_ids);
    // Rotate moves records between slots of the pool, so the record in a
    // slot always has that slot's id.
    let record = |slot: usize, owner: &Option<usize>, data: &[(String, i64)], pad: usize, ttl: u64, now: Timestamp| {
        let mut r = Record::with_deadline(ids[slot], build_data(data, pad), now, now + Duration::from_millis(ttl));
        r.owner = owner.map(|o| OWNERS[o].to_owned());
        r
    };
    let rel = |t: Timestamp| t.as_millis() - start.as_millis();
    for (step, op) in ops.iter().enumerate() {
        let now = clock.now();
        let resolved = match op {
            Op::Advance { ms } => {
                clock.advance(Duration::from_millis(*ms));
                model.now = clock.now();
                continue;
            }
            Op::Reopen => {
                if durable {
                    stores.open_all().await?;
                }
                continue;
            }
            Op::ToDeadline { slot, minus_one } => {
                if let Some(r) = model.records.get(slot) {
                    let target = r.expires_at - Duration::from_millis(u64::from(*minus_one));
                    if target > now {
                        clock.set(target);
                        model.now = target;
                    }
                }
                continue;
            }
            Op::OwnerSessions { .. } | Op::RevokeOwner { .. } if !owner_index => continue,
            Op::OwnerSessions { owner } => ModelOp::OwnerSessions(OWNERS[*owner].to_owned()),
            Op::RevokeOwner { owner, keep } => ModelOp::Revoke(OWNERS[*owner].to_owned(), *keep),
            Op::Create {
                slot,
                owner,
                data,
                pad,
                ttl,
            } => ModelOp::Create(*slot, record(*slot, owner, data, *pad, *ttl, now)),
            Op::Load { slot } => ModelOp::Load(*slot),
            Op::Save {
                slot,
                owner,
                data,
                pad,
                ttl,
            } => ModelOp::Save(*slot, record(*slot, owner, data, *pad, *ttl, now)),
            Op::SaveIfVersion {
                slot,
                owner,
                data,
                pad,
                ttl,
                version,
            } => {
                let current = model.records.get(slot).map_or(0, |r| r.version);
                let mut r = record(*slot, owner, data, *pad, *ttl, now);
                r.version = match version {
                    VersionPick::Current => current,
                    VersionPick::Off(d) => current.wrapping_add_signed(i64::from(*d)),
                    VersionPick::LastKnown => model.last_version.get(slot).copied().unwrap_or(0),
                };
                ModelOp::SaveIfVersion(*slot, r)
            }
            Op::Touch { slot, ttl } => ModelOp::Touch(*slot, now + Duration::from_millis(*ttl)),
            Op::TouchBack { slot, ms } => ModelOp::Touch(*slot, now - Duration::from_millis(*ms)),
            Op::Delete { slot } => ModelOp::Delete(*slot),
            Op::Import {
                slot,
                owner,
                data,
                ttl,
                version,
            } => {
                let mut r = record(*slot, owner, data, 0, *ttl, now);
                r.version = *version;
                ModelOp::Import(*slot, r)
            }
            Op::Rotate { from, to } => ModelOp::Rotate(*from, *to, ids[*to]),
            Op::Purge => ModelOp::Purge,
            Op::Count => ModelOp::Count,
            Op::Ids => ModelOp::Ids,
            Op::Clear => ModelOp::Clear,
        };
        let (store, via) = stores.for_step(step);
        let got = match &resolved {
            ModelOp::Create(_, r) => answer(store.create(r).await, Answer::Version),
            ModelOp::Load(slot) => answer(store.load(&ids[*slot]).await, Answer::Loaded),
            ModelOp::Save(_, r) => answer(store.save(r).await, Answer::Version),
            ModelOp::SaveIfVersion(_, r) => answer(store.save_if_version(r).await, Answer::Version),
            ModelOp::Touch(slot, deadline) => answer(store.touch(&ids[*slot], *deadline).await, Answer::Bool),
            ModelOp::Delete(slot) => answer(store.delete(&ids[*slot]).await, |()| Answer::Done),
            ModelOp::Import(_, r) => answer(store.import(r).await, Answer::Bool),
            ModelOp::Rotate(from, to, _) => answer(store.rotate(&ids[*from], &ids[*to]).await, Answer::Bool),
            ModelOp::Purge => answer(store.purge_expired().await, Answer::Number),
            ModelOp::Count => answer(store.count().await, Answer::Number),
            ModelOp::Ids => answer(store.ids().await, |ids| Answer::Ids(ids.iter().map(slot_of).collect())),
            ModelOp::Clear => answer(store.clear().await, |()| Answer::Done),
            ModelOp::OwnerSessions(owner) => answer(store.owner_sessions(owner).await, |ids| {
                Answer::Ids(ids.iter().map(slot_of).collect())
            }),
            ModelOp::Revoke(owner, keep) => answer(
                store.delete_owner_sessions(owner, keep.map(|k| &ids[k])).await,
                Answer::Number,
            ),
        };
        let expected = model.step(&resolved);
        let ok = match &expected {
            Expect::OneOf(answers) => answers.contains(&got),
            Expect::Purged { at_least, at_most } => {
                matches!(got, Answer::Number(p) if (*at_least..=*at_most).contains(&p))
            }
            Expect::IdSet(set) => match &got {
                Answer::Ids(slots) => {
                    slots.len() == set.len() && slots.iter().copied().collect::<BTreeSet<_>>() == *set
                }
                _ => false,
            },
        };
        if !ok {
            let expected = match expected {
                Expect::OneOf(a) => format!("{a:?}"),
                Expect::Purged { at_least, at_most } if at_least == at_most => format!("Ok({at_most}) purged"),
                Expect::Purged { at_least, at_most } => format!(
                    "Ok(from {at_least} to {at_most} purged: {} expired records were looked at after they expired and may have been removed then)",
                    at_most - at_least
                ),
                Expect::IdSet(s) => format!("Ok(slots {s:?} in any order)"),
            };
            return Err(format!(
                "step {step} ({op:?}{via}) at clock +{}ms: the store answered {got:?}, the rules say {expected}",
                rel(now)
            ));
        }
    }
    // Final sweep: every slot and the count agree.
    let store = &stores.open[0];
    for (slot, id) in ids.iter().enumerate() {
        let got = answer(store.load(id).await, Answer::Loaded);
        let want = Answer::Loaded(model.live(slot).cloned());
        if got != want {
            return Err(format!(
                "after the last step, at clock +{}ms: load(slot {slot}) answered {got:?}, the rules say {want:?}",
                rel(model.now)
            ));
        }
    }
    let got = answer(store.count().await, Answer::Number);
    let want = Answer::Number(model.live_count());
    if got != want {
        return Err(format!(
            "after the last step: count answered {got:?}, the rules say {want:?}"
        ));
    }
    Ok(())
}

/// The model-based test: `settings.cases` random sequences of operations
/// and clock moves (create, load, save, save_if_version with the right and
/// wrong versions, touch, delete, import, rotate, purge, count, ids, clear) on a
/// fresh namespace each, compared with the reference model after every
/// step. On failure, reports the shortest failing sequence proptest found.
///
/// Blocking: it drives the store on the suite's runtime, so call it from a
/// plain `#[test]`, not from async code.
pub fn model_matches_the_reference<H: Harness>(harness: &H, settings: &ModelSettings) -> Verdict {
    let rt = crate::__private::runtime();
    let config = Config {
        cases: settings.cases,
        source_file: settings.source_file,
        failure_persistence: settings.source_file.map(|_| {
            Box::new(FileFailurePersistence::WithSource("proptest-regressions"))
                as Box<dyn proptest::test_runner::FailurePersistence>
        }),
        max_shrink_iters: 4_096,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops_strategy(settings.max_ops), |ops| {
        rt.block_on(async {
            tokio::time::timeout(CASE_TIMEOUT, run_case(harness, &ops))
                .await
                .unwrap_or_else(|_| Err(format!("one sequence did not finish within {CASE_TIMEOUT:?}")))
        })
        .map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => Ok(Pass::Passed),
        Err(TestError::Fail(reason, ops)) => Err(Failure::new(
            PROPERTY,
            "the store answers every operation as the reference model of the SessionStore rules does",
            format!(
                "{reason}\n  shortest failing sequence ({} ops, ids are slots of a pool of {ID_POOL}):\n    {}",
                ops.len(),
                ops.iter()
                    .map(|op| format!("{op:?}"))
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ),
        )),
        Err(TestError::Abort(reason)) => Err(Failure::new(
            PROPERTY,
            "the model test runs to the end",
            format!("proptest aborted: {reason}"),
        )),
    }
}
