//! The linearizability checker: concurrent histories checked against the
//! sequential rules.
//!
//! Each round opens the store on a fresh namespace (several store objects
//! when the harness declares `shared`, else one shared by every worker),
//! seeds three ids (one live record), then lets four workers make a few
//! random calls each at once: create, load, save, save-if-version (with the
//! version the worker last saw), touch, delete and rotate among the three
//! ids. Every call is timed (invoked, answered). The clock stands still
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
    Create { id: usize, tag: i64 },
    Load { id: usize },
    Save { id: usize, tag: i64 },
    SaveIfVersion { id: usize, tag: i64, version: u64 },
    Touch { id: usize, to: i64 },
    Delete { id: usize },
    Rotate { from: usize, to: usize },
}

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
    };
    ok.then_some(next)
}

/// Whether some order of `events` that keeps real time explains every
/// answer, starting from `init`.
fn linearizable(events: &[Event], init: &State) -> bool {
    assert!(events.len() <= 64, "a history of at most 64 calls");
    let full = if events.len() == 64 {
        u64::MAX
    } else {
        (1_u64 << events.len()) - 1
    };
    let mut tried: HashSet<(u64, State)> = HashSet::new();
    search(events, 0, full, init, &mut tried)
}

fn search(events: &[Event], done: u64, full: u64, state: &State, tried: &mut HashSet<(u64, State)>) -> bool {
    if done == full {
        return true;
    }
    // A call may go next only if no call still to place answered before
    // it was made.
    let first_end = (0..events.len())
        .filter(|i| done & (1 << i) == 0)
        .map(|i| events[i].end)
        .min()
        .unwrap_or(u64::MAX);
    for i in 0..events.len() {
        if done & (1 << i) != 0 || events[i].start > first_end {
            continue;
        }
        if let Some(next) = step(state, events[i].call, &events[i].answer) {
            let done = done | (1 << i);
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
    if settings.workers * settings.calls_per_worker > 64 || settings.workers == 0 {
        return Err(Failure::new(
            PROPERTY,
            RULE,
            "the checker's settings: between 1 and 64 calls per round (workers x calls_per_worker)",
        ));
    }
    let rt = crate::__private::runtime();
    let started = Instant::now();
    let mut report = CheckerReport::default();
    let (mut busy, mut wall) = (0_u128, 0_u128);
    for round in 0..settings.rounds {
        let seed = settings.seed.wrapping_add(round as u64);
        let (events, span) = rt.block_on(run_round(harness, settings, seed))?;
        report.rounds += 1;
        report.calls += events.len();
        busy += events.iter().map(|e| u128::from(e.end - e.start)).sum::<u128>();
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
    let record = move |id: SessionId, tag: i64| {
        let mut data = SessionData::new();
        data.insert("tag", &tag).expect("an integer encodes");
        Record::with_deadline(id, data, base, base + Duration::from_millis(deadline_of(tag) as u64))
    };
    stores[0].create(&record(ids[0], 0)).await.map_err(env.op("create"))?;

    // Each worker's calls, drawn before the round (tags are distinct).
    let mut rng = Rng(seed);
    let rotates = !caps.rotate_briefly_shows_both_ids;
    let mut plans = Vec::new();
    for worker in 0..settings.workers {
        let mut calls = Vec::new();
        for k in 0..settings.calls_per_worker {
            let tag = (1 + worker * settings.calls_per_worker + k) as i64;
            let id = rng.below(IDS);
            let kinds = if rotates { 9 } else { 8 };
            calls.push(match rng.below(kinds) {
                0 => Call::Create { id, tag },
                1 | 2 => Call::Load { id },
                3 => Call::Save { id, tag },
                // The version is taken from what this worker loaded last.
                4 | 5 => Call::SaveIfVersion { id, tag, version: 0 },
                6 => Call::Touch { id, to: 120_000 + tag },
                7 => Call::Delete { id },
                _ => Call::Rotate {
                    from: id,
                    to: rng.below(IDS),
                },
            });
        }
        let pauses: Vec<usize> = (0..settings.calls_per_worker).map(|_| rng.below(3)).collect();
        plans.push((calls, pauses));
    }

    let round_start = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(settings.workers));
    let mut tasks = Vec::new();
    for (worker, (calls, pauses)) in plans.into_iter().enumerate() {
        let store = Arc::clone(&stores[worker % stores.len()]);
        let (ids, barrier) = (Arc::clone(&ids), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut seen: BTreeMap<usize, u64> = BTreeMap::new();
            let mut events = Vec::new();
            for (mut call, pause) in calls.into_iter().zip(pauses) {
                // Spread the calls, so a fast store's overlap too.
                for _ in 0..pause {
                    tokio::task::yield_now().await;
                }
                if let Call::SaveIfVersion { id, version, .. } = &mut call {
                    *version = seen.get(id).copied().unwrap_or(1);
                }
                let start = round_start.elapsed().as_nanos() as u64;
                let answer = make(&*store, &ids, call, base, &record).await;
                let end = round_start.elapsed().as_nanos() as u64;
                let answer = answer.map_err(|e| format!("worker {worker}: {call} failed: {}", chain(&e)))?;
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
            Ok::<_, String>(events)
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

/// Makes `call` on `store`, reduced to what the rules decide.
async fn make<S: SessionStore + ?Sized>(
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
    fn a_rotate_seen_as_neither_id_is_no_order() {
        let events = [
            event(0, 10, Call::Rotate { from: 0, to: 1 }, Answer::Bool(true)),
            event(1, 2, Call::Load { id: 0 }, Answer::Loaded(None)),
            event(3, 4, Call::Load { id: 1 }, Answer::Loaded(None)),
        ];
        assert!(!linearizable(&events, &init()));
    }
}
