//! The linearizability checker: concurrent histories checked against the
//! sequential rules.
//!
//! Each round opens the store on a fresh namespace (several store objects
//! when the harness declares `shared`, else one shared by every worker),
//! seeds three ids (one live record), then lets four workers make a few
//! random calls each at once: create, load, save, save-if-version (with the
//! version the worker last saw), touch, delete and rotate among the three
//! ids, listings (of the records' one owner, or of the whole store) and
//! purges. Every call is timed (invoked, answered). The clock stands still
//! while they run, so no record expires. The round's history is then
//! searched for one order of the calls that keeps real time (a call that
//! answered before another was made comes first) and in which every call
//! answers what the sequential rules say (Wing and Gong's search, with the
//! states already tried remembered). A round with no such order fails,
//! and its whole timeline (a dozen calls) is the report.
//!
//! What this finds that the targeted properties need a property of their
//! own for: any write that is not one atomic step (a save whose deadline
//! lands later than its data, a conditional save that checks then writes,
//! a touch that writes back what it read, a rotate that copies then
//! deletes) shows up as a history no order explains, whichever calls it
//! happened to race.
//!
//! A listing is not a snapshot (the contract reads a listing per record),
//! so each listing is checked as one read per id, each of which may take
//! effect at its own moment while the listing runs: an id listed must be
//! live at that moment, an id not listed must not, and no id is listed
//! twice. Every record the checker writes names one owner, so on a store
//! with an owner index the owner listing is checked against the records
//! (a write whose index entry a racing purge drops shows as a live
//! record its owner's listing misses); a store without one answers
//! [`Unsupported`](session_store_core::Error::Unsupported), and that
//! listing is made as `ids` instead. The clock stands still, so a purge
//! must leave every record as it is.
//!
//! A store that declares `rotate_briefly_shows_both_ids` (a Redis Cluster)
//! is checked without rotates: the weaker rule has its own property.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store_core::{Error, Record, SessionData, SessionId, SessionStore, Timestamp};

use crate::env::{Env, chain};
use crate::{Failure, Harness, Pass, Verdict};

const PROPERTY: &str = "histories_of_concurrent_calls_are_linearizable";
const RULE: &str = "every call is one atomic step: the answers of concurrent calls are those of some order of the calls that keeps real time";

/// How many ids a round's calls share.
const IDS: usize = 3;

/// The most calls a round may make: each may be a listing, read as one
/// call per id, and the search keeps a bit per call.
const MAX_CALLS: usize = 40;
const MAX_EVENTS: usize = 128;
const _: () = assert!(MAX_CALLS * IDS <= MAX_EVENTS);

/// How long one round may take before the checker calls it stuck.
const ROUND_PATIENCE: Duration = Duration::from_secs(30);

/// How the checker runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckerSettings {
    /// Rounds, each a fresh namespace and one history (default 60).
    pub rounds: usize,
    /// Concurrent workers per round (default 4).
    pub workers: usize,
    /// Calls each worker makes per round (default 3).
    pub calls_per_worker: usize,
    /// The seed of the first round (each round's is the next one); fixed
    /// by default so a failure replays.
    pub seed: u64,
}

impl Default for CheckerSettings {
    fn default() -> Self {
        Self {
            rounds: 60,
            workers: 4,
            calls_per_worker: 3,
            seed: 0x5e55_1011,
        }
    }
}

impl CheckerSettings {
    /// Sets [`rounds`](Self::rounds).
    #[must_use]
    pub fn rounds(mut self, rounds: usize) -> Self {
        self.rounds = rounds;
        self
    }

    /// Sets [`workers`](Self::workers) (across processes: the number of
    /// child processes).
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Sets [`calls_per_worker`](Self::calls_per_worker).
    #[must_use]
    pub fn calls_per_worker(mut self, calls: usize) -> Self {
        self.calls_per_worker = calls;
        self
    }
}

/// What the checker measured over its rounds, on success.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckerReport {
    /// Rounds checked.
    pub rounds: usize,
    /// Calls made and checked.
    pub calls: usize,
    /// The calls' total time divided by the rounds' total time: how many
    /// calls were in flight on average while a round ran.
    pub in_flight: f64,
    /// Wall time of the whole check.
    pub elapsed: Duration,
}

/// One call of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Create {
        id: usize,
        tag: i64,
    },
    Load {
        id: usize,
    },
    Save {
        id: usize,
        tag: i64,
    },
    SaveIfVersion {
        id: usize,
        tag: i64,
        version: u64,
    },
    Touch {
        id: usize,
        to: i64,
    },
    Delete {
        id: usize,
    },
    Rotate {
        from: usize,
        to: usize,
    },
    /// How many times a listing named `id`: the owner's listing
    /// (`by_owner`) or the whole store's. One listing is one such read per
    /// id, all with the listing's times.
    Listed {
        id: usize,
        by_owner: bool,
    },
    /// `purge_expired` (its count is not checked: a store may hold expired
    /// remainders of its own).
    Purge,
}

/// What a worker plans to call; a listing becomes a [`Call::Listed`] per id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    One(Call),
    List { by_owner: bool },
}

/// The one owner every record the checker writes names.
const OWNER: &str = "linearizability owner";

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create { id, tag } => write!(f, "create(id{id}, data {tag})"),
            Self::Load { id } => write!(f, "load(id{id})"),
            Self::Save { id, tag } => write!(f, "save(id{id}, data {tag})"),
            Self::SaveIfVersion { id, tag, version } => {
                write!(f, "save_if_version(id{id}, data {tag}, version {version})")
            }
            Self::Touch { id, to } => write!(f, "touch(id{id}, deadline +{to} ms)"),
            Self::Delete { id } => write!(f, "delete(id{id})"),
            Self::Rotate { from, to } => write!(f, "rotate(id{from} -> id{to})"),
            Self::Listed { id, by_owner: true } => write!(f, "owner_sessions(), times id{id} listed"),
            Self::Listed { id, by_owner: false } => write!(f, "ids(), times id{id} listed"),
            Self::Purge => write!(f, "purge_expired()"),
        }
    }
}

/// A stored record as the model sees it: data tag, version, deadline (ms
/// after the round's start).
type Slot = (i64, u64, i64);

/// A call's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Version(u64),
    Loaded(Option<Slot>),
    Bool(bool),
    Done,
    Conflict,
    Collision,
    /// How many times a listing named an id.
    Times(usize),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => write!(f, "version {v}"),
            Self::Loaded(None) => write!(f, "none"),
            Self::Loaded(Some((tag, v, d))) => write!(f, "data {tag}, version {v}, deadline +{d} ms"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Done => write!(f, "ok"),
            Self::Conflict => write!(f, "Conflict"),
            Self::Collision => write!(f, "IdCollision"),
            Self::Times(n) => write!(f, "{n}"),
        }
    }
}

/// One timed call.
#[derive(Debug, Clone)]
struct Event {
    worker: usize,
    call: Call,
    answer: Answer,
    /// Nanoseconds from the round's start.
    start: u64,
    end: u64,
}

/// The sequential rules over the round's ids: live records only (the clock
/// stands still and every deadline lies ahead).
type State = BTreeMap<usize, Slot>;

/// The deadline a write of `tag` sets: distinct per write, so a load tells
/// which write's deadline it sees.
fn deadline_of(tag: i64) -> i64 {
    60_000 + tag
}

/// The state after `call` if `got` is an answer the rules allow for it.
fn step(state: &State, call: Call, got: &Answer) -> Option<State> {
    let mut next = state.clone();
    let ok = match call {
        Call::Create { id, tag } => match state.get(&id) {
            Some(_) => *got == Answer::Collision,
            None => {
                next.insert(id, (tag, 1, deadline_of(tag)));
                *got == Answer::Version(1)
            }
        },
        Call::Load { id } => *got == Answer::Loaded(state.get(&id).copied()),
        Call::Save { id, tag } => {
            let version = state.get(&id).map_or(1, |s| s.1 + 1);
            next.insert(id, (tag, version, deadline_of(tag)));
            *got == Answer::Version(version)
        }
        Call::SaveIfVersion { id, tag, version } => match state.get(&id) {
            Some(s) if s.1 == version => {
                next.insert(id, (tag, version + 1, deadline_of(tag)));
                *got == Answer::Version(version + 1)
            }
            _ => *got == Answer::Conflict,
        },
        Call::Touch { id, to } => match next.get_mut(&id) {
            Some(s) => {
                s.2 = to;
                *got == Answer::Bool(true)
            }
            None => *got == Answer::Bool(false),
        },
        Call::Delete { id } => {
            next.remove(&id);
            *got == Answer::Done
        }
        Call::Rotate { from, to } => match (state.get(&from).copied(), state.contains_key(&to)) {
            (_, true) if from == to => *got == Answer::Collision,
            (Some(_), true) => *got == Answer::Collision,
            (None, true) => matches!(got, Answer::Bool(false) | Answer::Collision),
            (None, false) => *got == Answer::Bool(false),
            (Some(slot), false) => {
                next.remove(&from);
                next.insert(to, slot);
                *got == Answer::Bool(true)
            }
        },
        Call::Listed { id, .. } => *got == Answer::Times(usize::from(state.contains_key(&id))),
        Call::Purge => *got == Answer::Done,
    };
    ok.then_some(next)
}

/// Whether some order of `events` that keeps real time explains every
/// answer, starting from `init`.
fn linearizable(events: &[Event], init: &State) -> bool {
    assert!(events.len() <= MAX_EVENTS, "a history of at most {MAX_EVENTS} calls");
    let full = if events.len() == 128 {
        u128::MAX
    } else {
        (1_u128 << events.len()) - 1
    };
    let mut tried: HashSet<(u128, State)> = HashSet::new();
    search(events, 0, full, init, &mut tried)
}

fn search(events: &[Event], done: u128, full: u128, state: &State, tried: &mut HashSet<(u128, State)>) -> bool {
    if done == full {
        return true;
    }
    // A call may go next only if no call still to place answered before
    // it was made.
    let first_end = (0..events.len())
        .filter(|i| done & (1_u128 << i) == 0)
        .map(|i| events[i].end)
        .min()
        .unwrap_or(u64::MAX);
    for i in 0..events.len() {
        if done & (1_u128 << i) != 0 || events[i].start > first_end {
            continue;
        }
        if let Some(next) = step(state, events[i].call, &events[i].answer) {
            let done = done | (1_u128 << i);
            if tried.insert((done, next.clone())) && search(events, done, full, &next, tried) {
                return true;
            }
        }
    }
    false
}

/// A small deterministic generator (splitmix64): rounds replay from their seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Checks `settings.rounds` concurrent histories of the harness's store.
/// Blocking: call it from a plain `#[test]`.
///
/// # Errors
///
/// A [`Failure`] with the first round no order explains, as a timeline.
pub fn histories_are_linearizable<H: Harness>(harness: &H, settings: &CheckerSettings) -> Verdict {
    check(harness, settings).map(|_| Pass::Passed)
}

/// As [`histories_are_linearizable`], answering what it measured.
///
/// # Errors
///
/// As [`histories_are_linearizable`].
pub fn check<H: Harness>(harness: &H, settings: &CheckerSettings) -> Result<CheckerReport, Failure> {
    if settings.workers * settings.calls_per_worker > MAX_CALLS || settings.workers == 0 {
        return Err(Failure::new(
            PROPERTY,
            RULE,
            format!("the checker's settings: between 1 and {MAX_CALLS} calls per round (workers x calls_per_worker)"),
        ));
    }
    let rt = crate::__private::runtime();
    let started = Instant::now();
    let mut report = CheckerReport::default();
    let (mut busy, mut wall) = (0_u128, 0_u128);
    for round in 0..settings.rounds {
        let seed = settings.seed.wrapping_add(round as u64);
        let (events, span) = rt.block_on(async {
            tokio::time::timeout(ROUND_PATIENCE, run_round(harness, settings, seed))
                .await
                .unwrap_or_else(|_| {
                    Err(Failure::new(
                        PROPERTY,
                        RULE,
                        format!(
                            "round {round} (seed {seed:#x}): the calls had not all answered after {} s \
                                 (a call waits forever: a deadlock?)",
                            ROUND_PATIENCE.as_secs()
                        ),
                    ))
                })
        })?;
        report.rounds += 1;
        report.calls += settings.workers * settings.calls_per_worker;
        busy += busy_time(&events);
        wall += u128::from(span);
        let init: State = [(0, (0, 1, deadline_of(0)))].into();
        if !linearizable(&events, &init) {
            return Err(Failure::new(
                PROPERTY,
                RULE,
                format!(
                    "round {round} (seed {seed:#x}): no order of these calls explains their answers \
                     (id0 held data 0 at version 1, deadline +{} ms; id1 and id2 were free):\n{}",
                    deadline_of(0),
                    timeline(&events)
                ),
            ));
        }
    }
    report.in_flight = if wall == 0 { 0.0 } else { busy as f64 / wall as f64 };
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The calls' total time (a listing, read as one call per id, counted once).
fn busy_time(events: &[Event]) -> u128 {
    events
        .iter()
        .filter(|e| !matches!(e.call, Call::Listed { id, .. } if id > 0))
        .map(|e| u128::from(e.end - e.start))
        .sum()
}

/// The calls by start time, one line each.
fn timeline(events: &[Event]) -> String {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| (e.start, e.end));
    let mut out = String::new();
    for e in sorted {
        let _ = writeln!(
            out,
            "  worker {} {:>9.3} ms .. {:>9.3} ms  {} -> {}",
            e.worker,
            e.start as f64 / 1e6,
            e.end as f64 / 1e6,
            e.call,
            e.answer
        );
    }
    out
}

async fn run_round<H: Harness>(
    harness: &H,
    settings: &CheckerSettings,
    seed: u64,
) -> Result<(Vec<Event>, u64), Failure> {
    let env = Env::new(harness, PROPERTY).await?;
    let caps = harness.capabilities();
    let stores: Vec<Arc<H::Store>> = if caps.shared {
        let mut stores = Vec::new();
        for _ in 0..settings.workers {
            stores.push(Arc::new(env.open().await?));
        }
        stores
    } else {
        vec![Arc::new(env.open().await?)]
    };
    let ids: Arc<[SessionId; IDS]> = Arc::new(std::array::from_fn(|_| SessionId::random()));
    let base = env.now();
    stores[0]
        .create(&record_of(ids[0], 0, base))
        .await
        .map_err(env.op("create"))?;

    let plans = plan(seed, settings, !caps.rotate_briefly_shows_both_ids);

    let round_start = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(settings.workers));
    let mut tasks = Vec::new();
    for (worker, (calls, pauses)) in plans.into_iter().enumerate() {
        let store = Arc::clone(&stores[worker % stores.len()]);
        let (ids, barrier) = (Arc::clone(&ids), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let clock = || round_start.elapsed().as_nanos() as u64;
            run_worker(&*store, worker, &ids, calls, pauses, base, clock).await
        }));
    }
    let mut events = Vec::new();
    for task in tasks {
        let done = task
            .await
            .map_err(|e| env.fail(RULE, format!("a worker panicked: {e}")))?
            .map_err(|e| env.fail(crate::env::HEALTHY, e))?;
        events.extend(done);
    }
    let span = round_start.elapsed().as_nanos() as u64;
    drop(stores);
    Ok((events, span))
}

/// Each worker's calls and the pauses before them, drawn from `seed`
/// (tags are distinct across the round).
fn plan(seed: u64, settings: &CheckerSettings, rotates: bool) -> Vec<(Vec<Planned>, Vec<usize>)> {
    let mut rng = Rng(seed);
    let mut plans = Vec::new();
    for worker in 0..settings.workers {
        let mut calls = Vec::new();
        for k in 0..settings.calls_per_worker {
            let tag = (1 + worker * settings.calls_per_worker + k) as i64;
            let id = rng.below(IDS);
            let kinds = if rotates { 11 } else { 10 };
            calls.push(match rng.below(kinds) {
                0 => Planned::One(Call::Create { id, tag }),
                1 | 2 => Planned::One(Call::Load { id }),
                3 => Planned::One(Call::Save { id, tag }),
                // The version is taken from what this worker loaded last.
                4 | 5 => Planned::One(Call::SaveIfVersion { id, tag, version: 0 }),
                6 => Planned::One(Call::Touch { id, to: 120_000 + tag }),
                7 => Planned::One(Call::Delete { id }),
                8 => Planned::List { by_owner: id != 0 },
                9 => Planned::One(Call::Purge),
                _ => Planned::One(Call::Rotate {
                    from: id,
                    to: rng.below(IDS),
                }),
            });
        }
        let pauses: Vec<usize> = (0..settings.calls_per_worker).map(|_| rng.below(3)).collect();
        plans.push((calls, pauses));
    }
    plans
}

/// The record a write of `tag` to `id` stores: its data says the tag, its
/// deadline [`deadline_of`] the tag, after `base`; its owner is [`OWNER`].
fn record_of(id: SessionId, tag: i64, base: Timestamp) -> Record {
    let mut data = SessionData::new();
    data.insert("tag", &tag).expect("an integer encodes");
    let mut record = Record::with_deadline(id, data, base, base + Duration::from_millis(deadline_of(tag) as u64));
    record.owner = Some(OWNER.to_owned());
    record
}

/// One worker's calls, timed by `clock` (nanoseconds).
async fn run_worker<S: SessionStore + ?Sized>(
    store: &S,
    worker: usize,
    ids: &[SessionId; IDS],
    calls: Vec<Planned>,
    pauses: Vec<usize>,
    base: Timestamp,
    clock: impl Fn() -> u64,
) -> Result<Vec<Event>, String> {
    let record = |id: SessionId, tag: i64| record_of(id, tag, base);
    let mut seen: BTreeMap<usize, u64> = BTreeMap::new();
    let mut events = Vec::new();
    for (mut call, pause) in calls.into_iter().zip(pauses) {
        // Spread the calls, so a fast store's overlap too.
        for _ in 0..pause {
            tokio::task::yield_now().await;
        }
        if let Planned::One(Call::SaveIfVersion { id, version, .. }) = &mut call {
            *version = seen.get(id).copied().unwrap_or(1);
        }
        let start = clock();
        let answers = make(store, ids, call, base, &record).await;
        let end = clock();
        let answers = answers.map_err(|e| format!("worker {worker}: {call} failed: {}", chain(&e)))?;
        for (call, answer) in answers {
            if let (Call::Load { id }, Answer::Loaded(Some((_, v, _)))) = (call, &answer) {
                seen.insert(id, *v);
            }
            events.push(Event {
                worker,
                call,
                answer,
                start,
                end,
            });
        }
    }
    Ok(events)
}

impl fmt::Display for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One(call) => call.fmt(f),
            Self::List { by_owner: true } => f.write_str("owner_sessions()"),
            Self::List { by_owner: false } => f.write_str("ids()"),
        }
    }
}

/// Makes `planned` on `store`, reduced to what the rules decide: one call
/// and its answer, or a listing's read per id.
async fn make<S: SessionStore + ?Sized>(
    store: &S,
    ids: &[SessionId; IDS],
    planned: Planned,
    base: Timestamp,
    record: &impl Fn(SessionId, i64) -> Record,
) -> Result<Vec<(Call, Answer)>, Error> {
    let call = match planned {
        Planned::One(call) => call,
        Planned::List { by_owner } => {
            let (listed, by_owner) = match by_owner {
                true => match store.owner_sessions(OWNER).await {
                    Err(Error::Unsupported(_)) => (store.ids().await?, false),
                    listed => (listed?, true),
                },
                false => (store.ids().await?, false),
            };
            return Ok((0..IDS)
                .map(|id| {
                    let handle = store.listing_handle(&ids[id]);
                    let times = listed.iter().filter(|h| **h == handle).count();
                    (Call::Listed { id, by_owner }, Answer::Times(times))
                })
                .collect());
        }
    };
    make_one(store, ids, call, base, record)
        .await
        .map(|answer| vec![(call, answer)])
}

/// Makes one call on `store`, reduced to what the rules decide.
async fn make_one<S: SessionStore + ?Sized>(
    store: &S,
    ids: &[SessionId; IDS],
    call: Call,
    base: Timestamp,
    record: &impl Fn(SessionId, i64) -> Record,
) -> Result<Answer, Error> {
    let written = |result: Result<u64, Error>| match result {
        Ok(v) => Ok(Answer::Version(v)),
        Err(Error::Conflict { .. }) => Ok(Answer::Conflict),
        Err(Error::IdCollision { .. }) => Ok(Answer::Collision),
        Err(e) => Err(e),
    };
    match call {
        Call::Create { id, tag } => written(store.create(&record(ids[id], tag)).await),
        Call::Load { id } => {
            let loaded = store.load(&ids[id]).await?;
            Ok(Answer::Loaded(loaded.map(|r| {
                let tag = r.data.get::<i64>("tag").ok().flatten().unwrap_or(-1);
                let deadline = r.expires_at.as_millis() - base.as_millis();
                (tag, r.version, deadline)
            })))
        }
        Call::Save { id, tag } => written(store.save(&record(ids[id], tag)).await),
        Call::SaveIfVersion { id, tag, version } => {
            let mut r = record(ids[id], tag);
            r.version = version;
            written(store.save_if_version(&r).await)
        }
        Call::Touch { id, to } => Ok(Answer::Bool(
            store.touch(&ids[id], base + Duration::from_millis(to as u64)).await?,
        )),
        Call::Delete { id } => store.delete(&ids[id]).await.map(|()| Answer::Done),
        Call::Rotate { from, to } => match store.rotate(&ids[from], &ids[to]).await {
            Ok(moved) => Ok(Answer::Bool(moved)),
            Err(Error::IdCollision { .. }) => Ok(Answer::Collision),
            Err(e) => Err(e),
        },
        Call::Purge => store.purge_expired().await.map(|_| Answer::Done),
        // Planned as `Planned::List`, never as one call.
        Call::Listed { .. } => Err(Error::Unsupported("a listing made as one call")),
    }
}

/// The calls and answers of a history as words, for histories made in
/// other processes.
impl Call {
    fn words(self) -> String {
        match self {
            Self::Create { id, tag } => format!("create {id} {tag}"),
            Self::Load { id } => format!("load {id}"),
            Self::Save { id, tag } => format!("save {id} {tag}"),
            Self::SaveIfVersion { id, tag, version } => format!("save_if_version {id} {tag} {version}"),
            Self::Touch { id, to } => format!("touch {id} {to}"),
            Self::Delete { id } => format!("delete {id}"),
            Self::Rotate { from, to } => format!("rotate {from} {to}"),
            Self::Listed { id, by_owner } => format!("listed {id} {}", if by_owner { "owner" } else { "all" }),
            Self::Purge => "purge".to_owned(),
        }
    }

    fn parse(words: &[&str]) -> Option<Self> {
        let n = |i: usize| words.get(i).and_then(|w| w.parse::<i64>().ok());
        let id = |i: usize| n(i).and_then(|v| usize::try_from(v).ok()).filter(|&v| v < IDS);
        Some(match *words.first()? {
            "create" => Self::Create { id: id(1)?, tag: n(2)? },
            "load" => Self::Load { id: id(1)? },
            "save" => Self::Save { id: id(1)?, tag: n(2)? },
            "save_if_version" => Self::SaveIfVersion {
                id: id(1)?,
                tag: n(2)?,
                version: u64::try_from(n(3)?).ok()?,
            },
            "touch" => Self::Touch { id: id(1)?, to: n(2)? },
            "delete" => Self::Delete { id: id(1)? },
            "rotate" => Self::Rotate {
                from: id(1)?,
                to: id(2)?,
            },
            "listed" => Self::Listed {
                id: id(1)?,
                by_owner: match *words.get(2)? {
                    "owner" => true,
                    "all" => false,
                    _ => return None,
                },
            },
            "purge" => Self::Purge,
            _ => return None,
        })
    }
}

impl Answer {
    fn words(&self) -> String {
        match self {
            Self::Version(v) => format!("version {v}"),
            Self::Loaded(None) => "none".to_owned(),
            Self::Loaded(Some((tag, v, d))) => format!("loaded {tag} {v} {d}"),
            Self::Bool(b) => format!("bool {b}"),
            Self::Done => "done".to_owned(),
            Self::Conflict => "conflict".to_owned(),
            Self::Collision => "collision".to_owned(),
            Self::Times(n) => format!("times {n}"),
        }
    }

    fn parse(words: &[&str]) -> Option<Self> {
        let n = |i: usize| words.get(i).and_then(|w| w.parse::<i64>().ok());
        let u = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
        Some(match *words.first()? {
            "version" => Self::Version(u(1)?),
            "none" => Self::Loaded(None),
            "loaded" => Self::Loaded(Some((n(1)?, u(2)?, n(3)?))),
            "bool" => Self::Bool(words.get(1)?.parse().ok()?),
            "done" => Self::Done,
            "conflict" => Self::Conflict,
            "collision" => Self::Collision,
            "times" => Self::Times(words.get(1)?.parse().ok()?),
            _ => return None,
        })
    }
}

/// Histories from several processes: the same rounds and the same check,
/// with each worker a process of its own on the same backend (a file
/// directory, an SQLite file, a PostgreSQL table, a Redis prefix), so
/// that what one process's locks or caches hide from another shows.
///
/// A backend's test runs itself again as the children (as its other
/// multi-process tests do); each child opens its own store on the shared
/// namespace, with its clock standing at the parent's `base`, and calls
/// [`serve_child`](processes::serve_child); the parent calls [`check_across_processes`](processes::check_across_processes) with the
/// children, spawned with piped stdin and stdout. Times are the system
/// clock's, which every process on the machine shares. The children's
/// lines on stdout are prefixed, so the test harness's own lines pass by.
pub mod processes {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Child;
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    use session_store_core::{SessionId, SessionStore, Timestamp};

    use super::{Answer, Call, CheckerReport, CheckerSettings, Event, IDS, PROPERTY, RULE, State, deadline_of};
    use crate::Failure;

    /// The prefix of every line of the protocol on a child's stdout.
    const PREFIX: &str = "linearizability:";

    /// Where a child finds its worker number ([`child_role`]).
    pub const WORKER_VAR: &str = "SESSION_STORE_LINEARIZABILITY_WORKER";
    /// Where a child finds the parent's `base` (milliseconds).
    pub const BASE_VAR: &str = "SESSION_STORE_LINEARIZABILITY_BASE";

    /// In a child spawned by [`across_processes`]: its worker number and the
    /// instant its clock must stand at. `None` in the parent.
    #[must_use]
    pub fn child_role() -> Option<(usize, Timestamp)> {
        let worker = std::env::var(WORKER_VAR).ok()?.parse().ok()?;
        let base = std::env::var(BASE_VAR).ok()?.parse().ok()?;
        Some((worker, Timestamp::from_millis(base)))
    }

    /// The parent's side in one call: spawns `settings.workers` copies of
    /// this test binary that run only the test `test` (with `env` added to
    /// their environment, where the test finds its namespace), each of which
    /// opens its store and calls [`serve_child`] (it knows it is a child
    /// from [`child_role`]); then [`check_across_processes`] with them, and
    /// waits for them (or kills them on a failure).
    ///
    /// # Errors
    ///
    /// As [`check_across_processes`]; a child that could not be spawned.
    pub fn across_processes<S: SessionStore>(
        test: &str,
        env: &[(&str, &str)],
        store: &S,
        base: Timestamp,
        settings: &CheckerSettings,
        rotates: bool,
    ) -> Result<CheckerReport, Failure> {
        let exe =
            std::env::current_exe().map_err(|e| Failure::new(PROPERTY, RULE, format!("this test binary: {e}")))?;
        let mut children = Vec::new();
        for worker in 0..settings.workers {
            let spawned = std::process::Command::new(&exe)
                .args(["--exact", test, "--nocapture", "--test-threads=1"])
                .env(WORKER_VAR, worker.to_string())
                .env(BASE_VAR, base.as_millis().to_string())
                .envs(env.iter().copied())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn();
            match spawned {
                Ok(child) => children.push(child),
                Err(e) => {
                    for mut child in children {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    return Err(Failure::new(PROPERTY, RULE, format!("spawning a child: {e}")));
                }
            }
        }
        let checked = check_across_processes(store, base, &mut children, settings, rotates);
        for mut child in children {
            if checked.is_err() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        checked
    }

    fn wall_nanos() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    /// Serves the parent's rounds as worker `worker` on `store` (this
    /// process's own, on the parent's namespace, its clock standing at the
    /// parent's `base`): reads one line per round from stdin, waits for the
    /// round's start instant, makes this worker's calls of the round,
    /// writes each timed call to stdout, and
    /// returns at the end of stdin. `settings` must be the parent's.
    /// Blocking: call it from the child's plain `#[test]`.
    ///
    /// # Errors
    ///
    /// Reading stdin or writing stdout failed. A call that fails is
    /// reported to the parent, which fails the check with it.
    pub fn serve_child<S: SessionStore>(
        store: &S,
        worker: usize,
        base: Timestamp,
        settings: &CheckerSettings,
    ) -> std::io::Result<()> {
        let rt = crate::__private::runtime();
        let mut out = std::io::stdout().lock();
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            let words: Vec<&str> = line.split_whitespace().collect();
            let (Some(seed), Some(rotates), Some(start_at), Some(ids)) = (
                words.first().and_then(|w| w.parse::<u64>().ok()),
                words.get(1).and_then(|w| w.parse::<bool>().ok()),
                words.get(2).and_then(|w| w.parse::<u64>().ok()),
                parse_ids(&words[3.min(words.len())..]),
            ) else {
                writeln!(out, "{PREFIX} fail the round line is not understood")?;
                continue;
            };
            let mut plans = super::plan(seed, settings, rotates);
            let (calls, pauses) = if worker < plans.len() {
                plans.swap_remove(worker)
            } else {
                (Vec::new(), Vec::new())
            };
            // Every child starts its calls at the same instant, so that
            // they overlap however the round line reached each.
            let wait = start_at.saturating_sub(wall_nanos());
            std::thread::sleep(std::time::Duration::from_nanos(wait.min(1_000_000_000)));
            match rt.block_on(super::run_worker(store, worker, &ids, calls, pauses, base, wall_nanos)) {
                Ok(events) => {
                    for e in events {
                        writeln!(
                            out,
                            "{PREFIX} event {} {} {} = {}",
                            e.start,
                            e.end,
                            e.call.words(),
                            e.answer.words()
                        )?;
                    }
                }
                Err(e) => writeln!(out, "{PREFIX} fail {}", e.replace('\n', " "))?,
            }
            writeln!(out, "{PREFIX} end")?;
            out.flush()?;
        }
        Ok(())
    }

    fn parse_ids(words: &[&str]) -> Option<[SessionId; IDS]> {
        if words.len() != IDS {
            return None;
        }
        let ids: Vec<SessionId> = words.iter().filter_map(|w| w.parse().ok()).collect();
        ids.try_into().ok()
    }

    /// Runs `settings.rounds` rounds across `children` (each serving as
    /// worker `i` through [`serve_child`], spawned with piped stdin and
    /// stdout), seeding each round's first record through `store` (the
    /// parent's, on the same namespace, its clock at `base`), and checks
    /// every round's history. `settings.workers` is the number of
    /// children. The children's stdin is closed at the end; the caller
    /// waits for them.
    ///
    /// # Errors
    ///
    /// A [`Failure`] with the first round no order explains, as a
    /// timeline; or a child that failed a call, stopped, or answered
    /// something else than the protocol.
    pub fn check_across_processes<S: SessionStore>(
        store: &S,
        base: Timestamp,
        children: &mut [Child],
        settings: &CheckerSettings,
        rotates: bool,
    ) -> Result<CheckerReport, Failure> {
        let fail = |detail: String| Failure::new(PROPERTY, RULE, detail);
        if children.len() != settings.workers || children.is_empty() {
            return Err(fail(format!(
                "{} children for {} workers",
                children.len(),
                settings.workers
            )));
        }
        let rt = crate::__private::runtime();
        let started = Instant::now();
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for child in children.iter_mut() {
            inputs.push(
                child
                    .stdin
                    .take()
                    .ok_or_else(|| fail("a child without piped stdin".into()))?,
            );
            outputs.push(BufReader::new(
                child
                    .stdout
                    .take()
                    .ok_or_else(|| fail("a child without piped stdout".into()))?,
            ));
        }
        let mut report = CheckerReport::default();
        let (mut busy, mut wall) = (0_u128, 0_u128);
        for round in 0..settings.rounds {
            let seed = settings.seed.wrapping_add(round as u64);
            let ids: [SessionId; IDS] = std::array::from_fn(|_| SessionId::random());
            rt.block_on(store.create(&super::record_of(ids[0], 0, base)))
                .map_err(|e| fail(format!("seeding round {round}: {}", crate::env::chain(&e))))?;
            // Two milliseconds for the line to reach every child.
            let start_at = wall_nanos() + 2_000_000;
            let line = format!(
                "{seed} {rotates} {start_at} {}\n",
                ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
            );
            for input in &mut inputs {
                input
                    .write_all(line.as_bytes())
                    .and_then(|()| input.flush())
                    .map_err(|e| fail(format!("a child stopped reading: {e}")))?;
            }
            let mut events = Vec::new();
            for (worker, output) in outputs.iter_mut().enumerate() {
                events.extend(read_round(output, worker).map_err(&fail)?);
            }
            let first = events.iter().map(|e| e.start).min().unwrap_or(0);
            let last = events.iter().map(|e| e.end).max().unwrap_or(first);
            for e in &mut events {
                e.start -= first;
                e.end -= first;
            }
            report.rounds += 1;
            report.calls += settings.workers * settings.calls_per_worker;
            busy += super::busy_time(&events);
            wall += u128::from(last - first);
            let init: State = [(0, (0, 1, deadline_of(0)))].into();
            if !super::linearizable(&events, &init) {
                return Err(fail(format!(
                    "round {round} (seed {seed:#x}), one worker per process: no order of these calls \
                     explains their answers (id0 held data 0 at version 1, deadline +{} ms; id1 and id2 \
                     were free):\n{}",
                    deadline_of(0),
                    super::timeline(&events)
                )));
            }
        }
        // End of input: the children return; read what they still write
        // (their test harness's summary) so none of them meets a closed pipe.
        drop(inputs);
        for mut output in outputs {
            let _ = std::io::copy(&mut output, &mut std::io::sink());
        }
        report.in_flight = if wall == 0 { 0.0 } else { busy as f64 / wall as f64 };
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// One child's events of a round, up to its `end` line.
    fn read_round(output: &mut impl BufRead, worker: usize) -> Result<Vec<Event>, String> {
        let mut events = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if output
                .read_line(&mut line)
                .map_err(|e| format!("reading child {worker}: {e}"))?
                == 0
            {
                return Err(format!("child {worker} stopped before the round ended"));
            }
            // The test harness's own output passes by; its `test name ...`
            // has no line end of its own, so a line may begin with it.
            let Some(at) = line.find(PREFIX) else {
                continue;
            };
            let rest = line[at + PREFIX.len()..].trim_end();
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.first() {
                Some(&"end") => return Ok(events),
                Some(&"fail") => return Err(format!("child {worker}: {}", words[1..].join(" "))),
                Some(&"event") => {
                    let parsed = (|| {
                        let start = words.get(1)?.parse().ok()?;
                        let end = words.get(2)?.parse().ok()?;
                        let eq = words.iter().position(|w| *w == "=")?;
                        Some(Event {
                            worker,
                            call: Call::parse(&words[3..eq])?,
                            answer: Answer::parse(&words[eq + 1..])?,
                            start,
                            end,
                        })
                    })();
                    events.push(parsed.ok_or_else(|| format!("child {worker} wrote {line:?}"))?);
                }
                _ => return Err(format!("child {worker} wrote {line:?}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(start: u64, end: u64, call: Call, answer: Answer) -> Event {
        Event {
            worker: 0,
            call,
            answer,
            start,
            end,
        }
    }

    fn init() -> State {
        [(0, (0, 1, deadline_of(0)))].into()
    }

    #[test]
    fn overlapping_calls_may_take_either_order() {
        // A load overlapping a save may see the old or the new record.
        for seen in [(0, 1, deadline_of(0)), (5, 2, deadline_of(5))] {
            let events = [
                event(0, 10, Call::Save { id: 0, tag: 5 }, Answer::Version(2)),
                event(1, 9, Call::Load { id: 0 }, Answer::Loaded(Some(seen))),
            ];
            assert!(linearizable(&events, &init()), "{seen:?}");
        }
    }

    #[test]
    fn real_time_is_kept() {
        // The save answered before the load began: the load must see it.
        let events = [
            event(0, 10, Call::Save { id: 0, tag: 5 }, Answer::Version(2)),
            event(
                11,
                20,
                Call::Load { id: 0 },
                Answer::Loaded(Some((0, 1, deadline_of(0)))),
            ),
        ];
        assert!(!linearizable(&events, &init()));
    }

    #[test]
    fn a_torn_save_is_no_order() {
        // New data with the old deadline: no single write left that.
        let events = [
            event(0, 10, Call::Save { id: 0, tag: 5 }, Answer::Version(2)),
            event(1, 9, Call::Load { id: 0 }, Answer::Loaded(Some((5, 2, deadline_of(0))))),
        ];
        assert!(!linearizable(&events, &init()));
    }

    #[test]
    fn two_conditional_winners_are_no_order() {
        let events = [
            event(
                0,
                10,
                Call::SaveIfVersion {
                    id: 0,
                    tag: 1,
                    version: 1,
                },
                Answer::Version(2),
            ),
            event(
                0,
                10,
                Call::SaveIfVersion {
                    id: 0,
                    tag: 2,
                    version: 1,
                },
                Answer::Version(2),
            ),
        ];
        assert!(!linearizable(&events, &init()));
        let events = [
            event(
                0,
                10,
                Call::SaveIfVersion {
                    id: 0,
                    tag: 1,
                    version: 1,
                },
                Answer::Version(2),
            ),
            event(
                0,
                10,
                Call::SaveIfVersion {
                    id: 0,
                    tag: 2,
                    version: 1,
                },
                Answer::Conflict,
            ),
        ];
        assert!(linearizable(&events, &init()));
    }

    #[test]
    fn calls_and_answers_round_trip_through_words() {
        let calls = [
            Call::Create { id: 0, tag: 7 },
            Call::Load { id: 2 },
            Call::Save { id: 1, tag: -3 },
            Call::SaveIfVersion {
                id: 0,
                tag: 4,
                version: 9,
            },
            Call::Touch { id: 1, to: 120_004 },
            Call::Delete { id: 2 },
            Call::Rotate { from: 0, to: 2 },
            Call::Listed { id: 1, by_owner: true },
            Call::Listed { id: 2, by_owner: false },
            Call::Purge,
        ];
        for call in calls {
            let words = call.words();
            let split: Vec<&str> = words.split_whitespace().collect();
            assert_eq!(Call::parse(&split), Some(call), "{words}");
        }
        let answers = [
            Answer::Version(3),
            Answer::Loaded(None),
            Answer::Loaded(Some((5, 2, 60_005))),
            Answer::Bool(true),
            Answer::Bool(false),
            Answer::Done,
            Answer::Conflict,
            Answer::Collision,
            Answer::Times(2),
        ];
        for answer in answers {
            let words = answer.words();
            let split: Vec<&str> = words.split_whitespace().collect();
            assert_eq!(Answer::parse(&split), Some(answer.clone()), "{words}");
        }
        assert_eq!(Call::parse(&["load", "3"]), None, "an id out of range");
        assert_eq!(Call::parse(&["create", "0"]), None);
        assert_eq!(Answer::parse(&["loaded", "1", "2"]), None);
    }

    #[test]
    fn a_rotate_seen_as_neither_id_is_no_order() {
        let events = [
            event(0, 10, Call::Rotate { from: 0, to: 1 }, Answer::Bool(true)),
            event(1, 2, Call::Load { id: 0 }, Answer::Loaded(None)),
            event(3, 4, Call::Load { id: 1 }, Answer::Loaded(None)),
        ];
        assert!(!linearizable(&events, &init()));
    }

    #[test]
    fn a_listing_reads_each_id_at_its_own_moment() {
        // id0 rotated to id1 while a listing ran: neither id listed is an
        // order (id1 read before the move, id0 after); so is both.
        let listing = |id, times| event(1, 9, Call::Listed { id, by_owner: true }, Answer::Times(times));
        let rotate = event(0, 10, Call::Rotate { from: 0, to: 1 }, Answer::Bool(true));
        for times in [0, 1] {
            let events = [rotate.clone(), listing(0, times), listing(1, times), listing(2, 0)];
            assert!(linearizable(&events, &init()), "listed {times} times");
        }
    }

    #[test]
    fn a_listing_that_misses_a_live_record_or_names_it_twice_is_no_order() {
        let listing = |times| event(2, 3, Call::Listed { id: 1, by_owner: true }, Answer::Times(times));
        let create = event(0, 1, Call::Create { id: 1, tag: 4 }, Answer::Version(1));
        let purge = event(0, 5, Call::Purge, Answer::Done);
        assert!(linearizable(&[create.clone(), purge.clone(), listing(1)], &init()));
        assert!(
            !linearizable(&[create.clone(), purge, listing(0)], &init()),
            "missed after a purge"
        );
        assert!(!linearizable(&[create, listing(2)], &init()), "listed twice");
    }
}
