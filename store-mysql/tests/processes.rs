//! The suite's linearizability checker with one worker per process: three
//! processes on one table (this test binary, run again as the children),
//! their calls' answers explained by one order that keeps real time, round
//! after round. Needs `store-mysql/scripts/with-mariadb`.

mod common;

use session_store_conformance::linearizability::{CheckerSettings, processes};
use session_store_core::{Clock, ManualClock, SystemClock, Timestamp};
use session_store_mysql::MysqlStore;

const TEST: &str = "histories_across_processes_are_linearizable";
const ENV_TABLE: &str = "SESSION_STORE_MYSQL_LINEARIZABLE_TABLE";

#[test]
fn histories_across_processes_are_linearizable() {
    let settings = CheckerSettings::default().rounds(150).workers(3).calls_per_worker(4);
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let open_at = |table: &str, base: Timestamp| {
        rt.block_on(
            MysqlStore::builder(&url)
                .table(table)
                .clock(ManualClock::new(base).shared())
                .pool_size(2)
                .build(),
        )
        .expect("open the store")
    };
    if let Some((worker, base)) = processes::child_role() {
        let table = std::env::var(ENV_TABLE).expect("the parent names the table");
        processes::serve_child(&open_at(&table, base), worker, base, &settings).expect("serve the parent");
        return;
    }
    let table = common::unique("linearizable");
    let base = SystemClock.now();
    let store = open_at(&table, base);
    let report = processes::across_processes(TEST, &[(ENV_TABLE, &table)], &store, base, &settings, true)
        .unwrap_or_else(|failure| panic!("{failure}"));
    eprintln!("MySQL across processes: {report:?}");
    assert_eq!(report.calls, 150 * 3 * 4);
}
