//! The server goes away in the middle of a workload: calls fail with a
//! transient error within the timeout (no hang, no panic), and once the
//! server is back on the same port the same store object works again;
//! nothing that was acknowledged is lost, through a clean stop and through
//! a crash (`pg_ctl stop -m immediate`, recovery from the write-ahead log).
//!
//! Runs a cluster of its own (`SESSION_STORE_POSTGRES_BIN`, set by
//! `store-postgres/scripts/with-postgres`), so the shared server of the
//! other tests is never stopped.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use session_store_core::{Clock, Record, SessionData, SessionId, SessionStore, SystemClock};
use session_store_postgres::PostgresStore;

const TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling slack on a loaded 2-core machine, over the timeout.
const SLACK: Duration = Duration::from_millis(1_000);

#[derive(Default)]
struct Tally {
    acknowledged: Vec<(SessionId, u64)>,
    ok_after_recovery: u64,
    failures: u64,
    other_errors: Vec<String>,
}

fn record(n: u64) -> Record {
    let mut data = SessionData::new();
    data.insert("n", &n).unwrap();
    let now = SystemClock.now();
    Record::with_deadline(SessionId::random(), data, now, now + Duration::from_secs(3600))
}

async fn outage(cluster: &common::Cluster, store: &PostgresStore, mode: &str) {
    let phase = Arc::new(AtomicU8::new(0)); // 0 up, 1 down, 2 back
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (store, phase, stop, tally) = (store.clone(), phase.clone(), stop.clone(), tally.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r = record(w * 1_000_000 + n);
                let seen = phase.load(Ordering::Relaxed);
                let start = Instant::now();
                // The outer bound only catches a hang; the store's own timeout must fire first.
                let result = tokio::time::timeout(TIMEOUT * 6, async {
                    store.create(&r).await?;
                    let mut loaded = store.load(&r.id).await?.expect("a record just created loads");
                    loaded.data.insert("n", &(n + 1)).unwrap();
                    store.save_if_version(&loaded).await
                })
                .await
                .unwrap_or_else(|_| panic!("a store call hung past {:?}", TIMEOUT * 6));
                let took = start.elapsed();
                {
                    let mut t = tally.lock().unwrap();
                    match result {
                        Ok(version) => {
                            assert_eq!(version, 2);
                            t.acknowledged.push((r.id, n + 1));
                            if seen == 2 {
                                t.ok_after_recovery += 1;
                            }
                        }
                        Err(e) if e.is_transient() => {
                            assert!(took <= TIMEOUT * 3 + SLACK, "a failing call took {took:?}");
                            assert!(!e.chain().contains(&r.id.to_string()), "{}", e.chain());
                            t.failures += 1;
                        }
                        Err(e) => t.other_errors.push(e.chain()),
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = tally.lock().unwrap().acknowledged.len();
    assert!(before > 0, "the workload ran before the outage");
    // pg_ctl blocks: off the runtime's worker.
    tokio::task::block_in_place(|| cluster.pg_ctl_stop(mode));
    phase.store(1, Ordering::Relaxed);

    // While it is down: every call fails, each within the timeout.
    let down = Instant::now();
    let mut down_calls = 0;
    while down.elapsed() < Duration::from_millis(1_500) {
        let start = Instant::now();
        let err = store
            .load(&SessionId::random())
            .await
            .expect_err("a load against a stopped server fails");
        let took = start.elapsed();
        assert!(err.is_transient(), "{}", err.chain());
        assert!(took <= TIMEOUT + SLACK, "a call took {took:?}, over the timeout");
        down_calls += 1;
    }
    assert!(down_calls > 0);

    // Back on the same port: the same store object works again.
    let restarted = Instant::now();
    tokio::task::block_in_place(|| cluster.pg_ctl_start());
    phase.store(2, Ordering::Relaxed);
    let mut recovered = None;
    while restarted.elapsed() < Duration::from_secs(30) {
        if store.load(&SessionId::random()).await.is_ok() {
            recovered = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered = recovered.expect("the store recovered by itself");
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("a worker panicked");
    }

    let t = std::mem::take(&mut *tally.lock().unwrap());
    assert!(t.other_errors.is_empty(), "non-transient errors: {:?}", t.other_errors);
    assert!(t.ok_after_recovery > 0, "workers succeeded again after the restart");
    // Nothing acknowledged is lost, through the stop and the restart.
    for (id, n) in &t.acknowledged {
        let r = store
            .load(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged record {} lost ({mode} stop)", id.fingerprint()));
        assert_eq!(r.data.get::<u64>("n").unwrap(), Some(*n));
        assert_eq!(r.version, 2);
    }
    println!(
        "{mode} stop: {} acknowledged writes kept, {} failed during the outage, {down_calls} calls against the \
         stopped server each failed within the timeout, recovered {recovered:?} after the restart began",
        t.acknowledged.len(),
        t.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_fast_and_the_same_store_recovers_losing_nothing() {
    let Some(cluster) = common::Cluster::start() else {
        return;
    };
    let store = PostgresStore::builder(cluster.url())
        .table("fault")
        .timeout(TIMEOUT)
        .pool_size(8)
        .build()
        .await
        .unwrap();
    outage(&cluster, &store, "fast").await;
    outage(&cluster, &store, "immediate").await;
}

/// The trade-off [`unlogged`](session_store_postgres::PostgresStoreBuilder::unlogged)
/// states: an unlogged table keeps its rows through a clean restart and
/// loses them all in a crash, while a logged one keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlogged_table_survives_a_clean_restart_and_is_emptied_by_a_crash() {
    let Some(cluster) = common::Cluster::start() else {
        return;
    };
    let open = |table: &'static str, unlogged: bool| {
        PostgresStore::builder(cluster.url())
            .table(table)
            .unlogged(unlogged)
            .timeout(TIMEOUT)
            .build()
    };
    let unlogged = open("unlogged", true).await.unwrap();
    let logged = open("logged", false).await.unwrap();
    let (a, b) = (record(1), record(2));
    unlogged.create(&a).await.unwrap();
    logged.create(&b).await.unwrap();

    tokio::task::block_in_place(|| cluster.pg_ctl_stop("fast"));
    tokio::task::block_in_place(|| cluster.pg_ctl_start());
    let reload = async |store: &PostgresStore, id| {
        for _ in 0..100 {
            if let Ok(found) = store.load(id).await {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the store did not recover");
    };
    assert!(
        reload(&unlogged, &a.id).await.is_some(),
        "a clean restart keeps unlogged rows"
    );
    assert!(reload(&logged, &b.id).await.is_some());

    tokio::task::block_in_place(|| cluster.pg_ctl_stop("immediate"));
    tokio::task::block_in_place(|| cluster.pg_ctl_start());
    assert!(
        reload(&unlogged, &a.id).await.is_none(),
        "a crash empties an unlogged table"
    );
    assert!(reload(&logged, &b.id).await.is_some(), "a crash keeps logged rows");
    // Reopening the table with the other persistence is refused.
    let err = open("unlogged", false).await.unwrap_err();
    assert!(
        matches!(err, session_store_core::Error::Config { .. }),
        "{}",
        err.chain()
    );
}
