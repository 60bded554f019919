//! A writer process killed with SIGKILL mid-workload leaves a database that
//! opens and holds every acknowledged write.
//!
//! The child (this test binary run again with an environment variable)
//! writes as fast as it can and prints `ACK <id> <version>` after each write
//! returns; the parent kills it at a random moment, then checks every
//! acknowledged version against the database. Rounds share one file, so
//! each round also starts from a database recovered after a kill.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use session_store_core::{Clock, Expiry, Record, SessionData, SessionId, SessionStore, SessionStoreExt, SystemClock};
use session_store_sqlite::SqliteStore;

const TEST: &str = "killed_writer_loses_no_acknowledged_write";
const ENV_DB: &str = "SESSION_STORE_SQLITE_CRASH_DB";
const ROUNDS: usize = 20;
const WORKING_SET: usize = 16;

#[test]
fn killed_writer_loses_no_acknowledged_write() {
    if let Ok(db) = std::env::var(ENV_DB) {
        child(&db);
        return;
    }
    let db = common::Db::new();
    let started = Instant::now();
    // The highest version of each id the child acknowledged (or saw).
    let mut acked: HashMap<SessionId, u64> = HashMap::new();
    let mut total_acks = 0usize;
    // Rounds where the kill landed between a commit and its acknowledgement.
    let mut unacked_commits = 0usize;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(ENV_DB, &db.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("re-running the test binary as a child process");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        // Wait for the first acknowledged write, then kill at a random moment.
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the child acknowledges writes");
            let first = line.starts_with("ACK ");
            lines.push(line);
            if first {
                break;
            }
        }
        let delay = 5 + (SessionId::random().as_u128() % 120) as u64;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "round {round}: the child died of SIGKILL, not an error"
            );
        }
        assert!(!status.success(), "round {round}: the child was killed, not finished");
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        for line in &lines {
            let Some(rest) = line.strip_prefix("ACK ").or_else(|| line.strip_prefix("SAW ")) else {
                continue;
            };
            // The last line may be cut by the kill: ignore what does not parse.
            let Some((id, version)) = rest.split_once(' ') else {
                continue;
            };
            let (Ok(id), Ok(version)) = (id.parse::<SessionId>(), version.parse::<u64>()) else {
                continue;
            };
            if line.starts_with("ACK ") {
                total_acks += 1;
            }
            let entry = acked.entry(id).or_insert(0);
            *entry = (*entry).max(version);
        }

        // The database opens, is intact, and holds every acknowledged write.
        let conn = common::raw(&db.path);
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "round {round}");
        drop(conn);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = SqliteStore::open(&db.path).unwrap();
        let ahead: Vec<SessionId> = rt.block_on(async {
            let mut ahead = Vec::new();
            for (id, &version) in &acked {
                let r = store
                    .load(id)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("round {round}: acknowledged record {id} lost"));
                // The kill may land after a commit and before its ACK line.
                assert!(
                    r.version == version || r.version == version + 1,
                    "round {round}: {id} acknowledged at version {version}, stored {}",
                    r.version
                );
                assert_eq!(r.data.get::<u64>("v").unwrap(), Some(r.version), "data matches version");
                if r.version == version + 1 {
                    ahead.push(*id);
                }
            }
            ahead
        });
        // The stored version is known now: count each such kill once.
        unacked_commits += ahead.len();
        for id in ahead {
            if let Some(v) = acked.get_mut(&id) {
                *v += 1;
            }
        }
    }
    println!(
        "crash: {ROUNDS} SIGKILLed writers, {total_acks} acknowledged writes over {} records, all present \
         ({unacked_commits} kills landed between a commit and its acknowledgement), in {:?}",
        acked.len(),
        started.elapsed()
    );
}

/// The writer: picks up the records already there, then creates and
/// conditionally saves records forever, acknowledging each write.
fn child(db: &str) {
    // libtest printed "test <name> ... " without a newline: end that line.
    println!();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = SqliteStore::open(db).unwrap();
    let expiry = Expiry::OnInactivity(Duration::from_secs(3600));
    rt.block_on(async {
        let mut working: Vec<Record> = Vec::new();
        for id in store
            .ids()
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.stored())
            .collect::<Vec<_>>()
            .into_iter()
            .take(WORKING_SET)
        {
            let r = store.load(&id).await.unwrap().unwrap();
            println!("SAW {} {}", r.id, r.version);
            working.push(r);
        }
        let mut i = 0u64;
        loop {
            i += 1;
            if working.len() < WORKING_SET || i.is_multiple_of(8) {
                let mut data = SessionData::new();
                data.insert("v", &1u64).unwrap();
                let mut r = Record::new(data, SystemClock.now(), &expiry);
                store.create_with_fresh_id(&mut r).await.unwrap();
                r.version = 1;
                println!("ACK {} 1", r.id);
                let slot = (i as usize) % WORKING_SET;
                if working.len() < WORKING_SET {
                    working.push(r);
                } else {
                    working[slot] = r;
                }
            } else {
                let slot = (i as usize) % working.len();
                let r = &mut working[slot];
                r.data.insert("v", &(r.version + 1)).unwrap();
                if i.is_multiple_of(5) {
                    // Now and then a larger record, so kills land mid-write too.
                    r.data.insert("pad", &"x".repeat(64 * 1024)).unwrap();
                } else {
                    r.data.remove("pad");
                }
                r.version = store.save_if_version(r).await.unwrap();
                println!("ACK {} {}", r.id, r.version);
            }
        }
    });
}
