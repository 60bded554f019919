//! The suite's linearizability checker with one worker per process: three
//! processes on one prefix of one Redis (and of a Redis Cluster, without
//! rotates, whose weaker rule has its own property), this test binary run
//! again as the children; their calls' answers explained by one order that
//! keeps real time, round after round. Needs `store-redis/scripts/with-redis`.

mod common;

use common::Target;
use session_store_conformance::linearizability::{CheckerSettings, processes};
use session_store_core::{Clock, ManualClock, SessionStore, SystemClock};

const ENV_PREFIX: &str = "SESSION_STORE_REDIS_LINEARIZABLE_PREFIX";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn across_processes(test: &str, target: Option<Target>, rotates: bool) {
    let settings = CheckerSettings::default().rounds(150).workers(3).calls_per_worker(4);
    let Some(target) = target else { return };
    let rt = runtime();
    if let Some((worker, base)) = processes::child_role() {
        let prefix = std::env::var(ENV_PREFIX).expect("the parent names the prefix");
        let store = rt.block_on(target.open(&prefix, ManualClock::new(base).shared()));
        processes::serve_child(&store, worker, base, &settings).expect("serve the parent");
        return;
    }
    let prefix = common::random_prefix();
    let base = SystemClock.now();
    let store = rt.block_on(target.open(&prefix, ManualClock::new(base).shared()));
    let report = processes::across_processes(test, &[(ENV_PREFIX, &prefix)], &store, base, &settings, rotates)
        .unwrap_or_else(|failure| panic!("{failure}"));
    eprintln!("{test}: {report:?}");
    assert_eq!(report.calls, 150 * 3 * 4);
    rt.block_on(store.clear()).expect("remove the test's keys");
}

#[test]
fn histories_across_processes_are_linearizable() {
    across_processes("histories_across_processes_are_linearizable", Target::single(), true);
}

#[test]
fn histories_across_processes_are_linearizable_on_a_cluster() {
    across_processes(
        "histories_across_processes_are_linearizable_on_a_cluster",
        Target::cluster(),
        false,
    );
}
