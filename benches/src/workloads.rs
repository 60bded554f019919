//! The workloads, written once and run identically against every subject.
//!
//! Every timed loop runs as one task on the same multi-threaded tokio
//! runtime (as a request handler would), with its records built and stored
//! beforehand; only the store operations are inside the clock. Criterion
//! groups are named after the workload (`load_hit`, `save_small`, ...) and
//! each subject is one benchmark in the group, so criterion's report plots
//! the subjects of a workload side by side and
//! `target/criterion/<group>/<subject>/new/estimates.json` holds each median.
//! The at-rest groups (`at_rest_load_hit`, `at_rest_save_small`) run only
//! on the targets given a [mode](Target::in_mode), one benchmark per
//! backend and mode: `target/criterion/<group>/<backend>/<mode>/...`.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use session_store_core::{Timestamp, system_clock};
use tokio::runtime::Runtime;

use crate::payload::{Payload, Size};
use crate::subject::{Op, Subject};

/// Records stored for the single-task load, save and touch workloads.
pub const HIT_RECORDS: usize = 1_000;
/// Records the save, save-if-version and touch workloads cycle over.
pub const WRITE_RECORDS: usize = 100;
/// Tasks of the contention workload.
pub const MIX_TASKS: usize = 32;
/// Records the contention workload reads and writes at random.
pub const MIX_RECORDS: usize = 10_000;
/// One in this many operations of the contention workload is a save.
pub const MIX_SAVE_EVERY: u64 = 10;
/// The stored-record counts the `load_stored` group compares.
pub const STORED_COUNTS: [usize; 2] = [1_000, 100_000];
/// Records set up at a time for the workloads that consume one per
/// operation (create, delete, rotate).
const BATCH: u64 = 50_000;

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Load of a live record among [`HIT_RECORDS`].
    LoadHit,
    /// Load of an id never stored.
    LoadMiss,
    /// Create of a new record (small).
    Create,
    /// Overwrite of a stored record of the given size.
    Save(Size),
    /// Conditional overwrite of a stored small record.
    SaveIfVersion,
    /// Deadline move of a stored record.
    Touch,
    /// Removal of a stored record.
    Delete,
    /// Move of a stored record to a fresh id.
    Rotate,
    /// Load of a live record with this many records stored.
    LoadStored(usize),
    /// Purge of half of the subject's purge population, all expired.
    Purge,
    /// [`MIX_TASKS`] tasks doing 90% loads and 10% saves at random.
    Mix,
    /// [`LoadHit`](Self::LoadHit) on a backend in one at-rest mode
    /// ([`crate::at_rest::Mode`]); only the at-rest targets run it.
    AtRestLoadHit,
    /// [`Save`](Self::Save) of a small record on a backend in one at-rest
    /// mode; only the at-rest targets run it.
    AtRestSave,
}

impl Workload {
    /// The criterion group the workload reports under.
    #[must_use]
    pub const fn group(self) -> &'static str {
        match self {
            Self::LoadHit => "load_hit",
            Self::LoadMiss => "load_miss",
            Self::Create => "create",
            Self::Save(Size::Small) => "save_small",
            Self::Save(Size::Medium) => "save_medium",
            Self::Save(Size::Large) => "save_large",
            Self::SaveIfVersion => "save_if_version",
            Self::Touch => "touch",
            Self::Delete => "delete",
            Self::Rotate => "rotate",
            Self::LoadStored(_) => "load_stored",
            Self::Purge => "purge_expired",
            Self::Mix => "mix_32_tasks",
            Self::AtRestLoadHit => "at_rest_load_hit",
            Self::AtRestSave => "at_rest_save_small",
        }
    }

    /// The optional operation the workload needs, if any.
    #[must_use]
    pub const fn needs(self) -> Option<Op> {
        match self {
            Self::SaveIfVersion => Some(Op::SaveIfVersion),
            Self::Touch => Some(Op::Touch),
            Self::Rotate => Some(Op::Rotate),
            Self::Purge => Some(Op::Purge),
            _ => None,
        }
    }

    /// Whether the workload measures a backend in an at-rest mode (run by
    /// the targets with a [mode](Target::in_mode), and only by them).
    #[must_use]
    pub const fn is_at_rest(self) -> bool {
        matches!(self, Self::AtRestLoadHit | Self::AtRestSave)
    }

    /// Every criterion group, in run order, with its workloads.
    #[must_use]
    pub fn groups() -> Vec<(&'static str, Vec<Self>)> {
        let mut groups: Vec<(&'static str, Vec<Self>)> = Vec::new();
        let all = [
            Self::LoadHit,
            Self::LoadMiss,
            Self::Create,
            Self::Save(Size::Small),
            Self::Save(Size::Medium),
            Self::Save(Size::Large),
            Self::SaveIfVersion,
            Self::Touch,
            Self::Delete,
            Self::Rotate,
            Self::LoadStored(STORED_COUNTS[0]),
            Self::LoadStored(STORED_COUNTS[1]),
            Self::Purge,
            Self::Mix,
            Self::AtRestLoadHit,
            Self::AtRestSave,
        ];
        for w in all {
            match groups.last_mut() {
                Some((name, ws)) if *name == w.group() => ws.push(w),
                _ => groups.push((w.group(), vec![w])),
            }
        }
        groups
    }
}

/// A subject ready to run, behind a name; object safe, so subjects of
/// different types share one list.
pub trait Runner {
    /// The subject's name in reports: `memory`, `sqlite-peer`, `redis-floor`...
    fn name(&self) -> &str;

    /// Whether the subject can run `workload`.
    fn supports(&self, workload: Workload) -> bool;

    /// Registers and runs `workload` in `group`.
    fn run(&self, workload: Workload, group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime);
}

/// A [`Subject`] with its name, and whatever must live as long as it (a
/// temporary directory).
pub struct Target<S: Subject> {
    name: String,
    mode: Option<&'static str>,
    subject: Arc<S>,
    _keep: Option<Box<dyn std::any::Any>>,
}

impl<S: Subject> Target<S> {
    /// A target named `name`.
    pub fn new(name: impl Into<String>, subject: S) -> Self {
        Self {
            name: name.into(),
            mode: None,
            subject: Arc::new(subject),
            _keep: None,
        }
    }

    /// Makes the target one at-rest mode (`plain`, `hashed`, ...) of the
    /// backend it is named after: it then runs the at-rest workloads
    /// (reported as `<group>/<name>/<mode>`) and no other.
    #[must_use]
    pub const fn in_mode(mut self, mode: &'static str) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Keeps `guard` (a temporary directory) alive as long as the target.
    #[must_use]
    pub fn keeping(mut self, guard: impl std::any::Any) -> Self {
        self._keep = Some(Box::new(guard));
        self
    }

    /// The subject.
    pub fn subject(&self) -> &Arc<S> {
        &self.subject
    }
}

impl<S: Subject> Runner for Target<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, workload: Workload) -> bool {
        workload.is_at_rest() == self.mode.is_some() && workload.needs().is_none_or(|op| self.subject.supports(op))
    }

    fn run(&self, workload: Workload, group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
        let s = &self.subject;
        let name = self.name.as_str();
        match workload {
            Workload::LoadHit => load(group, rt, s, BenchmarkId::from_parameter(name), HIT_RECORDS, false),
            Workload::LoadMiss => load(group, rt, s, BenchmarkId::from_parameter(name), HIT_RECORDS, true),
            Workload::LoadStored(n) => load(group, rt, s, BenchmarkId::new(name, n), n, false),
            Workload::Create => create(group, rt, s, name),
            Workload::Save(size) => save(group, rt, s, BenchmarkId::from_parameter(name), size),
            Workload::SaveIfVersion => save_if_version(group, rt, s, name),
            Workload::Touch => touch(group, rt, s, name),
            Workload::Delete => delete(group, rt, s, name),
            Workload::Rotate => rotate(group, rt, s, name),
            Workload::Purge => purge(group, rt, s, name),
            Workload::Mix => mix(group, rt, s, name),
            Workload::AtRestLoadHit => {
                let id = BenchmarkId::new(name, self.mode.unwrap_or("plain"));
                load(group, rt, s, id, HIT_RECORDS, false);
            }
            Workload::AtRestSave => {
                let id = BenchmarkId::new(name, self.mode.unwrap_or("plain"));
                save(group, rt, s, id, Size::Small);
            }
        }
    }
}

/// Runs every workload group against every runner that supports it.
pub fn run_all(c: &mut Criterion, rt: &Runtime, runners: &[Box<dyn Runner>]) {
    for (name, workloads) in Workload::groups() {
        let mut group = c.benchmark_group(name);
        if name == Workload::Purge.group() {
            // Each purge needs a fresh population written beforehand (seconds
            // on the durable stores): one purge per sample, ten samples.
            group
                .sampling_mode(SamplingMode::Flat)
                .sample_size(10)
                .warm_up_time(Duration::from_millis(1))
                .measurement_time(Duration::from_millis(1));
        }
        for workload in workloads {
            for runner in runners.iter().filter(|r| r.supports(workload)) {
                runner.run(workload, &mut group, rt);
            }
        }
        group.finish();
    }
}

/// The runtime every workload runs on: multi-threaded, one worker per CPU.
///
/// # Panics
///
/// When the operating system refuses the runtime's threads.
#[must_use]
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `fut` as a task on the runtime's workers and waits for it.
fn on_worker<F>(rt: &Runtime, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match rt.block_on(rt.spawn(fut)) {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn now() -> Timestamp {
    system_clock().now()
}

/// A deadline no benchmark outlives.
fn far() -> Timestamp {
    now() + Duration::from_secs(24 * 3600)
}

/// A small, fast pseudo-random sequence (xorshift64*), so every subject sees
/// the same ids in the same order.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Creates `n` records of `payload`, each with the deadline `deadline()`
/// gives at its creation, from [`MIX_TASKS`] tasks at once; returns them.
async fn seed<S: Subject>(
    s: Arc<S>,
    payload: Arc<Payload>,
    n: usize,
    deadline: impl Fn() -> Timestamp + Clone + Send + Sync + 'static,
) -> Vec<S::Rec> {
    let mut tasks = Vec::with_capacity(MIX_TASKS);
    for t in 0..MIX_TASKS {
        let count = n / MIX_TASKS + usize::from(t < n % MIX_TASKS);
        let (s, payload, deadline) = (s.clone(), payload.clone(), deadline.clone());
        tasks.push(tokio::spawn(async move {
            let mut recs = Vec::with_capacity(count);
            for _ in 0..count {
                let mut rec = s.record(&payload, deadline());
                s.seed_create(&mut rec).await.expect("seeding: create");
                recs.push(rec);
            }
            recs
        }));
    }
    let mut all = Vec::with_capacity(n);
    for task in tasks {
        all.extend(task.await.expect("seeding task"));
    }
    all
}

fn ids_of<S: Subject>(recs: &[S::Rec]) -> Vec<S::Id> {
    recs.iter().map(S::id_of).collect()
}

/// Removes what a benchmark stored.
async fn clear<S: Subject>(s: Arc<S>, ids: Vec<S::Id>) {
    s.clear(ids).await.expect("clearing after a benchmark");
}

/// The stored ids and the order a load workload asks for them.
type LoadState<I> = (Vec<I>, Arc<Vec<I>>);

/// Load of a live record (or, with `miss`, of an id never stored), with
/// `stored` records in the store, in a fixed pseudo-random order.
fn load<S: Subject>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    s: &Arc<S>,
    id: BenchmarkId,
    stored: usize,
    miss: bool,
) {
    let mut state: Option<LoadState<S::Id>> = None;
    g.bench_function(id, |b| {
        let (_, order) = state.get_or_insert_with(|| {
            let recs = on_worker(rt, seed(s.clone(), Arc::new(Payload::small()), stored, far));
            let stored_ids = ids_of::<S>(&recs);
            let mut rng = Rng::new(stored as u64);
            let order: Vec<S::Id> = (0..stored.clamp(1, 1 << 16))
                .map(|_| {
                    if miss {
                        s.fresh_id()
                    } else {
                        stored_ids[rng.below(stored_ids.len())]
                    }
                })
                .collect();
            (stored_ids, Arc::new(order))
        });
        let order = order.clone();
        b.iter_custom(|iters| {
            let (s, order) = (s.clone(), order.clone());
            on_worker(rt, async move {
                let mut hits = 0u64;
                let start = Instant::now();
                for i in 0..iters {
                    let id = order[i as usize % order.len()];
                    if black_box(s.load(id).await.expect("load")).is_some() {
                        hits += 1;
                    }
                }
                let elapsed = start.elapsed();
                assert_eq!(hits, if miss { 0 } else { iters }, "loads that found a record");
                elapsed
            })
        });
    });
    if let Some((ids, _)) = state {
        on_worker(rt, clear(s.clone(), ids));
    }
}

/// Create of a new small record; the store is emptied between batches.
fn create<S: Subject>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, s: &Arc<S>, name: &str) {
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter_custom(|iters| {
            let s = s.clone();
            on_worker(rt, async move {
                let mut rec = s.record(&Payload::small(), far());
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH);
                    left -= n;
                    let ids: Vec<S::Id> = (0..n).map(|_| s.fresh_id()).collect();
                    let start = Instant::now();
                    for &id in &ids {
                        S::set_id(&mut rec, id);
                        s.create(&mut rec).await.expect("create");
                    }
                    total += start.elapsed();
                    clear(s.clone(), ids).await;
                }
                total
            })
        });
    });
}

/// Seeds [`WRITE_RECORDS`] records of `size` for the overwrite workloads.
fn seed_writes<S: Subject>(rt: &Runtime, s: &Arc<S>, size: Size) -> Vec<S::Rec> {
    on_worker(rt, seed(s.clone(), Arc::new(Payload::of(size)), WRITE_RECORDS, far))
}

/// Overwrite of a stored record of `size`, cycling over [`WRITE_RECORDS`].
fn save<S: Subject>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, s: &Arc<S>, id: BenchmarkId, size: Size) {
    let mut state: Option<Arc<Vec<S::Rec>>> = None;
    g.bench_function(id, |b| {
        let recs = state.get_or_insert_with(|| Arc::new(seed_writes(rt, s, size))).clone();
        b.iter_custom(|iters| {
            let (s, recs) = (s.clone(), recs.clone());
            on_worker(rt, async move {
                let start = Instant::now();
                for i in 0..iters {
                    s.save(&recs[i as usize % recs.len()]).await.expect("save");
                }
                start.elapsed()
            })
        });
    });
    if let Some(recs) = state {
        on_worker(rt, clear(s.clone(), ids_of::<S>(&recs)));
    }
}

/// Conditional overwrite of a stored small record with the version last
/// written, cycling over [`WRITE_RECORDS`].
fn save_if_version<S: Subject>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, s: &Arc<S>, name: &str) {
    let mut state: Option<Arc<tokio::sync::Mutex<Vec<S::Rec>>>> = None;
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        let recs = state
            .get_or_insert_with(|| Arc::new(tokio::sync::Mutex::new(seed_writes(rt, s, Size::Small))))
            .clone();
        b.iter_custom(|iters| {
            let (s, recs) = (s.clone(), recs.clone());
            on_worker(rt, async move {
                let mut recs = recs.lock().await;
                let n = recs.len();
                let start = Instant::now();
                for i in 0..iters {
                    s.save_if_version(&mut recs[i as usize % n])
                        .await
                        .expect("save_if_version");
                }
                start.elapsed()
            })
        });
    });
    if let Some(recs) = state {
        let ids = ids_of::<S>(&rt.block_on(recs.lock()));
        on_worker(rt, clear(s.clone(), ids));
    }
}

/// Deadline move of a stored record, cycling over [`WRITE_RECORDS`].
fn touch<S: Subject>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, s: &Arc<S>, name: &str) {
    let mut state: Option<Arc<Vec<S::Id>>> = None;
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        let ids = state
            .get_or_insert_with(|| Arc::new(ids_of::<S>(&seed_writes(rt, s, Size::Small))))
            .clone();
        b.iter_custom(|iters| {
            let (s, ids) = (s.clone(), ids.clone());
            on_worker(rt, async move {
                let base = far();
                let start = Instant::now();
                for i in 0..iters {
                    let deadline = base + Duration::from_millis(i);
                    let live = s.touch(ids[i as usize % ids.len()], deadline).await.expect("touch");
                    assert!(live, "touch of a live record");
                }
                start.elapsed()
            })
        });
    });
    if let Some(ids) = state {
        on_worker(rt, clear(s.clone(), ids.to_vec()));
    }
}

/// Times `op` over records written beforehand in batches of up to `BATCH`
/// (the writing is not timed): `op` gets one batch's ids and returns the time
/// it measured.
fn over_seeded_batches<S, F, Fut>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, s: &Arc<S>, name: &str, op: F)
where
    S: Subject,
    F: Fn(Arc<S>, Vec<S::Id>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Duration> + Send,
{
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter_custom(|iters| {
            let (s, op) = (s.clone(), op.clone());
            on_worker(rt, async move {
                let payload = Arc::new(Payload::small());
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH);
                    left -= n;
                    let ids = ids_of::<S>(&seed(s.clone(), payload.clone(), n as usize, far).await);
                    total += op(s.clone(), ids).await;
                }
                total
            })
        });
    });
}

/// Removal of stored records.
fn delete<S: Subject>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, s: &Arc<S>, name: &str) {
    over_seeded_batches(g, rt, s, name, |s: Arc<S>, ids: Vec<S::Id>| async move {
        let start = Instant::now();
        for &id in &ids {
            s.delete(id).await.expect("delete");
        }
        start.elapsed()
    });
}

/// Move of stored records to fresh ids.
fn rotate<S: Subject>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, s: &Arc<S>, name: &str) {
    over_seeded_batches(g, rt, s, name, |s: Arc<S>, old: Vec<S::Id>| async move {
        let new: Vec<S::Id> = old.iter().map(|_| s.fresh_id()).collect();
        let start = Instant::now();
        for (&old, &new) in old.iter().zip(&new) {
            assert!(s.rotate(old, new).await.expect("rotate"), "rotate of a live record");
        }
        let took = start.elapsed();
        clear(s, new).await;
        took
    });
}

/// Purge of the expired half of [`Subject::purge_population`] records. The
/// live half is stored once; each purge gets a fresh expired half, written
/// (untimed) just before it.
fn purge<S: Subject>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, s: &Arc<S>, name: &str) {
    let population = s.purge_population();
    let expired = population / 2;
    let id = BenchmarkId::new(name, format!("{expired}_of_{population}"));
    let written = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut live: Option<()> = None;
    g.bench_function(id, |b| {
        live.get_or_insert_with(|| {
            let recs = on_worker(
                rt,
                seed(s.clone(), Arc::new(Payload::small()), population - expired, far),
            );
            lock(&written).extend(ids_of::<S>(&recs));
        });
        b.iter_custom(|iters| {
            let (s, written) = (s.clone(), written.clone());
            on_worker(rt, async move {
                let payload = Arc::new(Payload::small());
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Live at creation, expired a moment later.
                    let soon = || now() + Duration::from_millis(50);
                    let ids = ids_of::<S>(&seed(s.clone(), payload.clone(), expired, soon).await);
                    let ready = now() + Duration::from_millis(50) + s.expiry_resolution();
                    lock(&written).extend(ids);
                    while now() <= ready {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    let start = Instant::now();
                    let removed = s.purge().await.expect("purge");
                    total += start.elapsed();
                    if let Some(removed) = removed
                        && removed != expired as u64
                    {
                        eprintln!("note: purge removed {removed} of {expired} expired records");
                    }
                }
                total
            })
        });
    });
    let ids = std::mem::take(&mut *lock(&written));
    if !ids.is_empty() {
        on_worker(rt, clear(s.clone(), ids));
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// [`MIX_TASKS`] tasks at once, each doing loads and one save in
/// [`MIX_SAVE_EVERY`] on records picked at random among [`MIX_RECORDS`];
/// the time reported is per operation (its inverse is the throughput).
fn mix<S: Subject>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, s: &Arc<S>, name: &str) {
    let mut state: Option<Arc<Vec<S::Rec>>> = None;
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        let recs = state
            .get_or_insert_with(|| {
                Arc::new(on_worker(
                    rt,
                    seed(s.clone(), Arc::new(Payload::small()), MIX_RECORDS, far),
                ))
            })
            .clone();
        b.iter_custom(|iters| {
            let (s, recs) = (s.clone(), recs.clone());
            on_worker(rt, async move {
                let start = Instant::now();
                let mut tasks = Vec::with_capacity(MIX_TASKS);
                for t in 0..MIX_TASKS as u64 {
                    let ops = iters / MIX_TASKS as u64 + u64::from(t < iters % MIX_TASKS as u64);
                    let (s, recs) = (s.clone(), recs.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut rng = Rng::new(t + 1);
                        for _ in 0..ops {
                            let r = rng.next();
                            let rec = &recs[(r >> 8) as usize % recs.len()];
                            if r.is_multiple_of(MIX_SAVE_EVERY) {
                                s.save(rec).await.expect("save");
                            } else {
                                let found = black_box(s.load(S::id_of(rec)).await.expect("load"));
                                assert!(found.is_some(), "load of a live record");
                            }
                        }
                    }));
                }
                for task in tasks {
                    if let Err(e) = task.await {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
                start.elapsed()
            })
        });
    });
    if let Some(recs) = state {
        on_worker(rt, clear(s.clone(), ids_of::<S>(&recs)));
    }
}
