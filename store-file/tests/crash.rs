//! Crash test: a child process saving continuously is killed with SIGKILL at
//! random moments. After each kill every file in the directory decodes or is
//! an ignored temporary file (or a lock file), and the last acknowledged
//! write of every session is there. A counter incremented with load and
//! save-if-version holds its last acknowledged value or one more (a write
//! that completed but was not acknowledged), never less and never two more.
//!
//! The child is this same test binary, started again with
//! `SESSION_STORE_FILE_CRASH_CHILD` naming the directory. It prints one line
//! `ack <id> <version>` (flushed) after each save returns, and
//! `inc <n>` after each increment. Set
//! `SESSION_STORE_FILE_CRASH_KILLS` to change the number of kills (default
//! 100).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use session_store_core::{Clock, Record, SessionData, SessionId, SessionStore, SystemClock, raw::codec};
use session_store_file::{Durability, FileStore};

const CHILD_ENV: &str = "SESSION_STORE_FILE_CRASH_CHILD";
const DURABILITY_ENV: &str = "SESSION_STORE_FILE_CRASH_DURABILITY";
const KILLS_ENV: &str = "SESSION_STORE_FILE_CRASH_KILLS";
/// Sessions the child writes to, shared by its writer tasks.
const SESSIONS: u128 = 24;
/// Writer tasks in the child.
const WRITERS: usize = 4;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("crash: test");
        return;
    }
    match std::env::var(CHILD_ENV) {
        Ok(dir) => child(Path::new(&dir)),
        Err(_) => parent(),
    }
}

fn counter() -> SessionId {
    SessionId::from_u128(0xC0C0_C0C0_C0C0_C0C0_C0C0_C0C0_C0C0_C0C0)
}

fn session(i: u128) -> SessionId {
    SessionId::from_u128((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
}

/// Saves continuously until killed.
fn child(dir: &Path) {
    let durability = match std::env::var(DURABILITY_ENV).as_deref() {
        Ok("nosync") => Durability::NoSync,
        _ => Durability::Fsync,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let store = std::sync::Arc::new(FileStore::builder(dir).durability(durability).open().expect("open"));
        for w in 0..WRITERS {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                let mut seq = (w as u64) << 40;
                loop {
                    seq += 1;
                    let id = session(u128::from(seq.wrapping_mul(7919)) % SESSIONS);
                    let mut data = SessionData::new();
                    data.insert("seq", &seq).expect("json");
                    // Sizes vary so that a torn write would show.
                    data.insert("pad", &"p".repeat((seq % 3_000) as usize)).expect("json");
                    let now = SystemClock.now();
                    let record = Record::with_deadline(id, data, now, now + Duration::from_secs(3_600));
                    let version = store.save(&record).await.unwrap_or_else(|e| {
                        // The parent notices a child that exits by itself.
                        eprintln!("save failed: {e}");
                        std::process::exit(3)
                    });
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {id} {version}").expect("stdout");
                    out.flush().expect("stdout");
                }
            });
        }
        // One more writer increments a counter with load and save-if-version,
        // acknowledging each new value: `inc <n>`.
        tokio::spawn(async move {
            let id = counter();
            loop {
                let fail = |e: session_store_core::Error| -> ! {
                    eprintln!("counter failed: {e}");
                    std::process::exit(3)
                };
                let Some(mut r) = store.load(&id).await.unwrap_or_else(|e| fail(e)) else {
                    let now = SystemClock.now();
                    let mut data = SessionData::new();
                    data.insert("n", &0u64).expect("json");
                    let fresh = Record::with_deadline(id, data, now, now + Duration::from_secs(3_600));
                    store.create(&fresh).await.unwrap_or_else(|e| fail(e));
                    continue;
                };
                let n = r.data.get::<u64>("n").ok().flatten().unwrap_or_else(|| {
                    eprintln!("counter holds no number");
                    std::process::exit(3)
                }) + 1;
                r.data.insert("n", &n).expect("json");
                store.save_if_version(&r).await.unwrap_or_else(|e| fail(e));
                let mut out = std::io::stdout().lock();
                writeln!(out, "inc {n}").expect("stdout");
                out.flush().expect("stdout");
            }
        });
        std::future::pending::<()>().await;
    });
}

/// A small xorshift generator, seeded from the OS.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Default)]
struct Findings {
    files: usize,
    temp_files: usize,
    undecodable: Vec<String>,
}

/// Every file in the store's directory decodes, or is a lock or temp file.
fn inspect(dir: &Path) -> Findings {
    let mut found = Findings::default();
    for shard in std::fs::read_dir(dir).expect("list the store") {
        let shard = shard.expect("entry").path();
        for file in std::fs::read_dir(&shard).expect("list a shard") {
            let path = file.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if name == ".lock" {
                continue;
            }
            if name.starts_with(".tmp-") {
                found.temp_files += 1;
                continue;
            }
            found.files += 1;
            let ok = name
                .parse::<SessionId>()
                .ok()
                .and_then(|id| codec::decode_record(id, &std::fs::read(&path).ok()?).ok())
                .is_some();
            if !ok {
                found.undecodable.push(path.display().to_string());
            }
        }
    }
    found
}

fn parent() {
    let kills: usize = std::env::var(KILLS_ENV)
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(100);
    let exe = std::env::current_exe().expect("the test binary");
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("sessions");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    let mut rng = Rng(SessionId::random().as_u128() as u64 | 1);
    // The highest version acknowledged so far for each session, over all rounds.
    let mut acked: HashMap<SessionId, u64> = HashMap::new();
    let (mut acks, mut checked, mut losses, mut temp_left, mut kills_with_temp) = (0usize, 0usize, 0usize, 0, 0);
    let mut undecodable = Vec::new();
    // The highest acknowledged counter value, and how many increments were acknowledged.
    let (mut inc_acked, mut incs, mut counter_faults) = (0u64, 0usize, 0usize);
    // The counter value found after the previous kill: the next child starts
    // from it, even when no child acknowledged it.
    let mut inc_found = 0u64;
    let started = Instant::now();

    for round in 0..kills {
        let durability = if round % 4 == 3 { "nosync" } else { "fsync" };
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, &dir)
            .env(DURABILITY_ENV, durability)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child writes, then kill it at a random moment.
        let first = rx.recv_timeout(Duration::from_secs(30));
        if first.is_err() {
            let _ = child.kill();
            let status = child.wait().expect("wait");
            panic!("round {round}: the child wrote nothing within 30 s (status {status})");
        }
        std::thread::sleep(Duration::from_micros(rng.below(25_000)));
        if let Some(status) = child.try_wait().expect("poll the child") {
            panic!("round {round}: the child stopped by itself: {status}");
        }
        child.kill().expect("SIGKILL the child"); // SIGKILL on Unix
        let status = child.wait().expect("wait for the child");
        assert!(!status.success(), "round {round}: the child was not killed: {status}");
        reader.join().expect("reader");

        for line in first.into_iter().chain(rx.try_iter()) {
            let mut parts = line.split_whitespace();
            match parts.next() {
                Some("ack") => {}
                Some("inc") => {
                    let n: u64 = parts.next().and_then(|s| s.parse().ok()).expect("a count");
                    inc_acked = inc_acked.max(n);
                    incs += 1;
                    continue;
                }
                _ => continue,
            }
            let id: SessionId = parts.next().and_then(|s| s.parse().ok()).expect("an id");
            let version: u64 = parts.next().and_then(|s| s.parse().ok()).expect("a version");
            let max = acked.entry(id).or_default();
            *max = (*max).max(version);
            acks += 1;
        }

        let found = inspect(&dir);
        // The sweep at each reopen removes the previous kills' leftovers.
        if found.temp_files > temp_left {
            kills_with_temp += 1;
        }
        temp_left = found.temp_files;
        let decodable = found.files - found.undecodable.len();
        undecodable.extend(found.undecodable);
        let store = FileStore::open(&dir).expect("reopen");
        runtime.block_on(async {
            for (id, &version) in &acked {
                checked += 1;
                match store.load(id).await {
                    Ok(Some(r)) if r.version >= version => {}
                    other => {
                        losses += 1;
                        eprintln!(
                            "round {round}: session {id} acknowledged at version {version}, found {:?}",
                            other.map(|r| r.map(|r| r.version))
                        );
                    }
                }
            }
            // The counter holds the value this round's child started from or
            // last acknowledged, or one more (an increment that completed but
            // was not acknowledged): none lost, none doubled. The child
            // starts from the value the previous kill left, acknowledged or
            // not.
            let n = match store.load(&counter()).await {
                Ok(Some(r)) => r.data.get::<u64>("n").ok().flatten(),
                _ => None,
            };
            let base = inc_acked.max(inc_found);
            if base > 0 && !n.is_some_and(|n| n == base || n == base + 1) {
                counter_faults += 1;
                eprintln!(
                    "round {round}: counter acknowledged at {inc_acked}, previously found {inc_found}, found {n:?}"
                );
            }
            if let Some(n) = n {
                inc_found = inc_found.max(n);
            }
            // Temporary files never count as sessions. (A save may have
            // completed without its acknowledgement being printed, so there
            // may be more sessions than acknowledged ones; those missing are
            // counted as losses above.)
            let count = store.count().await.expect("count");
            assert_eq!(
                count, decodable as u64,
                "round {round}: count differs from the decodable session files"
            );
        });
    }

    println!(
        "crash test: {kills} kills (SIGKILL), {acks} acknowledged saves, {checked} session checks \
         ({} sessions), {losses} losses, {} undecodable files, {kills_with_temp} kills left a \
         temporary file ({temp_left} present at the end), {:.1} s",
        acked.len(),
        undecodable.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "crash test: counter by load + save_if_version: {incs} acknowledged increments, final \
         acknowledged value {inc_acked}, {counter_faults} rounds with a lost or doubled increment"
    );
    // The last kill's leftovers go at the next open or purge: the writer
    // is dead, so its shard's lock is free.
    let store = FileStore::open(&dir).expect("reopen");
    runtime.block_on(store.purge_expired()).expect("purge");
    let left = inspect(&dir).temp_files;
    println!("crash test: {left} temporary files left after a reopen and a purge");
    assert_eq!(left, 0, "temporary files of dead writers were left behind");
    assert!(undecodable.is_empty(), "undecodable files: {undecodable:?}");
    assert_eq!(losses, 0, "acknowledged writes were lost");
    assert_eq!(counter_faults, 0, "acknowledged increments were lost or doubled");
    assert!(incs > 0, "the counter was never incremented");
    assert!(acks >= kills, "the children acknowledged too few writes: {acks}");
}
