//! A full disk: every write either is durable when it returns `Ok`, or
//! returns an error and changes nothing.
//!
//! The child (this test binary run again with an environment variable)
//! runs under `ulimit -f` (`RLIMIT_FSIZE`) with `SIGXFSZ` ignored, so a
//! write that would grow a file past the limit fails with `EFBIG`, as it
//! would on a full disk; no privileges needed. It drives every write path
//! (save, save-if-version, create, touch, rotate, delete) until writes have
//! failed for a while, and prints what each call returned. The parent then
//! replays the acknowledged calls on a model, reopens the database without
//! a limit (space is back) and demands exactly the model's records.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use session_store_core::{Clock, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_sqlite::SqliteStore;

const TEST: &str = "a_full_disk_fails_writes_and_loses_no_acknowledged_one";
const ENV_DB: &str = "SESSION_STORE_SQLITE_DISK_FULL_DB";
/// The file-size limit, in KiB: the WAL reaches it long before its
/// automatic checkpoint (about 4 MiB).
const LIMIT_KIB: u64 = 1024;
const WORKING_SET: usize = 8;
const HOUR_MS: i64 = 3_600_000;

/// What the store must hold for one id: the counter and the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expected {
    count: u64,
    expires_ms: i64,
}

#[test]
fn a_full_disk_fails_writes_and_loses_no_acknowledged_one() {
    if let Ok(db) = std::env::var(ENV_DB) {
        child(&db);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {LIMIT_KIB}; exec \"$0\" --exact {TEST} --nocapture --test-threads=1"
        ))
        .arg(std::env::current_exe().unwrap())
        .env(ENV_DB, &db)
        .stderr(Stdio::inherit())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash runs the child")
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the child failed: {}\n{stdout}", output.status);

    let mut model: HashMap<SessionId, Expected> = HashMap::new();
    let (mut acks, mut errors, mut acks_after_first_error) = (0usize, 0usize, 0usize);
    let mut last_error = String::new();
    for line in BufReader::new(stdout.as_bytes()).lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split(' ').collect();
        let id = |k: usize| words[k].parse::<SessionId>().unwrap();
        let num = |k: usize| words[k].parse::<i64>().unwrap();
        match words[0] {
            "HAS" => {
                model.insert(
                    id(1),
                    Expected {
                        count: num(2) as u64,
                        expires_ms: num(3),
                    },
                );
            }
            "GONE" => {
                model.remove(&id(1));
            }
            "MOVED" => {
                let moved = model.remove(&id(1)).expect("rotated a known record");
                model.insert(id(2), moved);
            }
            "ERR" => {
                errors += 1;
                last_error = line.clone();
                continue;
            }
            "CONFLICT" => panic!("a failed write changed the stored version: {line}"),
            _ => continue,
        }
        acks += 1;
        if errors > 0 {
            acks_after_first_error += 1;
        }
    }
    assert!(
        acks >= 20,
        "the child acknowledged only {acks} writes before the disk filled"
    );
    assert!(errors >= 50, "only {errors} writes failed: the limit was not reached");
    println!(
        "disk full: {acks} acknowledged calls ({acks_after_first_error} after the first failure), \
         {errors} failed, e.g. {last_error:?}"
    );

    // Space is back: the database holds exactly what was acknowledged.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = SqliteStore::open(&db).unwrap();
    rt.block_on(async {
        let mut ids = store.ids().await.unwrap();
        ids.sort();
        let mut expected_ids: Vec<SessionId> = model.keys().copied().collect();
        expected_ids.sort();
        assert_eq!(ids, expected_ids, "the stored ids are the acknowledged ones");
        for (id, want) in &model {
            let record = store.load(id).await.unwrap().expect("acknowledged record present");
            let got = Expected {
                count: record.data.get::<u64>("count").unwrap().unwrap(),
                expires_ms: record.expires_at.as_millis(),
            };
            assert_eq!(got, *want, "record {id:?}");
        }
    });
}

/// The writer: every write path, round robin over a working set, until
/// writes have failed for a while. Prints `HAS id count deadline` for a
/// record an acknowledged call left, `GONE id`, `MOVED old new`,
/// `ERR op id error` for a failed call, `CONFLICT ...` if a failed write
/// turns out to have been kept.
fn child(db: &str) {
    // libtest printed "test <name> ... " without a newline: end that line.
    println!();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = SqliteStore::open(db).unwrap();
    let now = SystemClock.now();
    rt.block_on(async {
        let fresh = |count: u64, pad: usize| {
            let mut data = SessionData::new();
            data.insert("count", &count).unwrap();
            data.insert("pad", &"p".repeat(pad)).unwrap();
            Record::with_deadline(
                SessionId::random(),
                data,
                now,
                now + Duration::from_millis(HOUR_MS as u64),
            )
        };
        let has = |r: &Record| {
            let count = r.data.get::<u64>("count").unwrap().unwrap();
            println!("HAS {} {count} {}", r.id, r.expires_at.as_millis());
        };
        let mut working: Vec<Record> = Vec::new();
        // Slots whose record is still to be created (its create failed).
        let mut pending = [false; WORKING_SET];
        while working.len() < WORKING_SET {
            let mut r = fresh(0, 1_000);
            store.create(&r).await.expect("the first creates fit");
            r.version = 1;
            has(&r);
            working.push(r);
        }
        let mut errors = 0usize;
        let mut i = 0usize;
        while errors < 200 && i < 20_000 {
            i += 1;
            let slot = i % WORKING_SET;
            // Values of 1 to 12 KiB: overflow pages, so the WAL fills fast.
            let pad = 1_000 + (i * 7_919) % 11_000;
            let r = &mut working[slot];
            if pending[slot] {
                match store.create(r).await {
                    Ok(()) => {
                        r.version = 1;
                        pending[slot] = false;
                        has(r);
                    }
                    Err(e) => {
                        errors += 1;
                        println!("ERR create {:?} {e}", r.id);
                    }
                }
                continue;
            }
            let failed = match i % 6 {
                0..=2 => {
                    let mut next = r.clone();
                    let count = next.data.get::<u64>("count").unwrap().unwrap() + 1;
                    next.data.insert("count", &count).unwrap();
                    next.data.insert("pad", &"q".repeat(pad)).unwrap();
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
                        *r = fresh(0, pad);
                        pending[slot] = true;
                        None
                    }
                    Err(e) => Some(("delete", e)),
                },
            };
            if let Some((op, e)) = failed {
                errors += 1;
                println!("ERR {op} {:?} {e}", r.id);
            }
        }
    });
}
