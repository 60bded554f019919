//! A full disk, for stores that write files: every write either is durable
//! when it returns `Ok`, or returns an error and changes nothing.
//!
//! A backend's test runs its own test binary again as a child process under
//! a file-size limit ([`run_under_file_size_limit`]: `ulimit -f`, with
//! `SIGXFSZ` ignored, so a write past the limit fails with `EFBIG` as on a
//! full disk; no privileges needed). The child opens the store and calls
//! [`write_until_full`], which drives every write path (save,
//! save-if-version, create, touch, rotate, delete) until writes have failed
//! for a while, printing what each call returned. The parent then reopens
//! the store without the limit (space is back) and calls
//! [`check_acknowledged`], which replays the acknowledged calls on a model
//! and demands exactly the model's records.
//!
//! ```no_run
//! # async fn demo(store: impl session_store_core::SessionStore) {
//! use session_store_conformance::disk_full;
//! const TEST: &str = "a_full_disk_loses_no_acknowledged_write";
//! if std::env::var_os("MY_STORE_CHILD").is_some() {
//!     // In the child: open the store, then
//!     disk_full::write_until_full(&store, 1_000..=12_000).await;
//!     return;
//! }
//! let transcript = disk_full::run_under_file_size_limit(TEST, "MY_STORE_CHILD", "1", 1_024);
//! // Reopen the store without a limit, then:
//! let report = disk_full::check_acknowledged(&store, &transcript).await;
//! assert!(report.failed > 0);
//! # }
//! ```

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::process::{Command, Stdio};
use std::time::Duration;

use session_store_core::{Clock, ListingHandle, Record, SessionData, SessionId, SessionStore, SystemClock};

/// How many records the writer keeps and cycles through.
const WORKING_SET: usize = 8;
/// The writer stops after this many failed calls...
const FAILURES: usize = 200;
/// ...or after this many calls.
const CALLS: usize = 20_000;

/// Runs this test binary again, as `--exact test`, with `env=value` set,
/// under a file-size limit of `limit_kib` KiB, and returns what it printed.
///
/// # Panics
///
/// If `bash` cannot run or the child fails: this is a test helper.
#[must_use]
pub fn run_under_file_size_limit(test: &str, env: &str, value: &str, limit_kib: u64) -> String {
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {limit_kib}; exec \"$0\" --exact {test} --nocapture --test-threads=1"
        ))
        .arg(std::env::current_exe().expect("the test binary's path"))
        .env(env, value)
        .stderr(Stdio::inherit())
        .stdout(Stdio::piped())
        .output()
        .expect("bash runs the child");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "the child failed: {}\n{stdout}", output.status);
    stdout
}

/// The writer: every write path, round robin over a few records whose data
/// is padded with `pad_bytes` bytes (cycling through the range), until
/// calls have failed for a while. Prints one line per call to stdout for
/// [`check_acknowledged`]: `HAS id count deadline` for the record an
/// acknowledged call left, `GONE id`, `MOVED old new`, `ERR op id error`
/// for a failed call, and `CONFLICT ...` where a failed write turns out to
/// have been kept. The store must use the system clock.
///
/// # Panics
///
/// If the first few creates fail, or a store answers what no store may
/// (a touch or rotate of a live record returning false).
pub async fn write_until_full<S: SessionStore + ?Sized>(store: &S, pad_bytes: RangeInclusive<usize>) {
    // libtest printed "test <name> ... " without a newline: end that line.
    println!();
    let now = SystemClock.now();
    let (low, span) = (
        *pad_bytes.start(),
        pad_bytes.end().saturating_sub(*pad_bytes.start()) + 1,
    );
    let fresh = |pad: usize| {
        let mut data = SessionData::new();
        data.insert("count", &0u64).expect("an integer encodes");
        data.insert("pad", &"p".repeat(pad)).expect("a string encodes");
        Record::with_deadline(SessionId::random(), data, now, now + Duration::from_secs(3_600))
    };
    let has = |r: &Record| {
        let count = r.data.get::<u64>("count").ok().flatten().unwrap_or_default();
        println!("HAS {} {count} {}", r.id, r.expires_at.as_millis());
    };
    let mut working: Vec<Record> = Vec::new();
    // Slots whose record is still to be created (a create failed).
    let mut pending = [false; WORKING_SET];
    while working.len() < WORKING_SET {
        let mut r = fresh(low);
        store.create(&r).await.expect("the first creates fit");
        r.version = 1;
        has(&r);
        working.push(r);
    }
    let (mut failures, mut i) = (0usize, 0usize);
    while failures < FAILURES && i < CALLS {
        i += 1;
        let slot = i % WORKING_SET;
        let pad = low + (i * 7_919) % span;
        let r = &mut working[slot];
        if pending[slot] {
            match store.create(r).await {
                Ok(version) => {
                    r.version = version;
                    pending[slot] = false;
                    has(r);
                }
                Err(e) => {
                    failures += 1;
                    println!("ERR create {:?} {e}", r.id);
                }
            }
            continue;
        }
        let failed = match i % 6 {
            0..=2 => {
                let mut next = r.clone();
                let count = next.data.get::<u64>("count").ok().flatten().unwrap_or_default() + 1;
                next.data.insert("count", &count).expect("an integer encodes");
                next.data.insert("pad", &"q".repeat(pad)).expect("a string encodes");
                let result = if i.is_multiple_of(6) {
                    store.save(&next).await
                } else {
                    store.save_if_version(&next).await
                };
                match result {
                    Ok(version) => {
                        next.version = version;
                        has(&next);
                        *r = next;
                        None
                    }
                    Err(e) if e.is_conflict() => {
                        println!("CONFLICT save_if_version {:?}: {e}", r.id);
                        None
                    }
                    Err(e) => Some(("save", e)),
                }
            }
            3 => {
                let deadline = r.expires_at + Duration::from_millis(1);
                match store.touch(&r.id, deadline).await {
                    Ok(true) => {
                        r.expires_at = deadline;
                        has(r);
                        None
                    }
                    Ok(false) => panic!("touch found no live record"),
                    Err(e) => Some(("touch", e)),
                }
            }
            4 => {
                let new = SessionId::random();
                match store.rotate(&r.id, &new).await {
                    Ok(true) => {
                        println!("MOVED {} {new}", r.id);
                        r.id = new;
                        None
                    }
                    Ok(false) => panic!("rotate found no live record"),
                    Err(e) => Some(("rotate", e)),
                }
            }
            _ => match store.delete(&r.id).await {
                Ok(()) => {
                    println!("GONE {}", r.id);
                    *r = fresh(pad);
                    pending[slot] = true;
                    None
                }
                Err(e) => Some(("delete", e)),
            },
        };
        if let Some((op, e)) = failed {
            failures += 1;
            println!("ERR {op} {:?} {e}", r.id);
        }
    }
}

/// What [`check_acknowledged`] found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Report {
    /// Calls the store acknowledged.
    pub acknowledged: usize,
    /// Acknowledged calls after the first failure.
    pub acknowledged_after_a_failure: usize,
    /// Calls that returned an error.
    pub failed: usize,
    /// The last error line, for the test's output.
    pub last_error: String,
    /// Records the store holds, all checked.
    pub records: usize,
}

/// Replays a [`write_until_full`] transcript on a model and checks that
/// `store` (reopened without the limit) holds exactly the model's records,
/// each with its acknowledged counter and deadline.
///
/// # Panics
///
/// On any difference, naming the record (by its fingerprint-safe `Debug`)
/// and what differs; and if the transcript shows fewer than 20
/// acknowledged or 50 failed calls (the limit was not reached, or reached
/// at once).
pub async fn check_acknowledged<S: SessionStore + ?Sized>(store: &S, transcript: &str) -> Report {
    let mut model: HashMap<SessionId, (u64, i64)> = HashMap::new();
    let mut report = Report::default();
    for line in transcript.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let id = |k: usize| -> SessionId { words[k].parse().expect("the child prints ids") };
        let num = |k: usize| -> i64 { words[k].parse().expect("the child prints numbers") };
        match words[0] {
            "HAS" => {
                model.insert(id(1), (num(2) as u64, num(3)));
            }
            "GONE" => {
                model.remove(&id(1));
            }
            "MOVED" => {
                let moved = model.remove(&id(1)).expect("rotated a known record");
                model.insert(id(2), moved);
            }
            "ERR" => {
                report.failed += 1;
                report.last_error = line.to_owned();
                continue;
            }
            "CONFLICT" => panic!("a failed write changed the stored version: {line}"),
            _ => continue,
        }
        report.acknowledged += 1;
        if report.failed > 0 {
            report.acknowledged_after_a_failure += 1;
        }
    }
    assert!(
        report.acknowledged >= 20,
        "the child acknowledged only {} calls before the disk filled",
        report.acknowledged
    );
    assert!(
        report.failed >= 50,
        "only {} calls failed: the limit was not reached",
        report.failed
    );
    let mut ids = store.ids().await.expect("ids after space is back");
    ids.sort();
    let mut expected: Vec<ListingHandle> = model.keys().map(|id| store.listing_handle(id)).collect();
    expected.sort();
    assert_eq!(ids, expected, "the stored ids are the acknowledged ones");
    for (id, &(count, deadline)) in &model {
        let record = store
            .load(id)
            .await
            .expect("load after space is back")
            .unwrap_or_else(|| panic!("acknowledged record {id:?} lost"));
        let stored = (
            record.data.get::<u64>("count").ok().flatten().unwrap_or_default(),
            record.expires_at.as_millis(),
        );
        assert_eq!(stored, (count, deadline), "record {id:?}: (count, deadline)");
    }
    report.records = model.len();
    report
}
