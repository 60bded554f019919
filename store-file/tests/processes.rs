//! The suite's linearizability checker with one worker per process: three
//! processes on one directory (this test binary, run again as the
//! children), their calls' answers explained by one order that keeps real
//! time, round after round.

use session_store_conformance::linearizability::{CheckerSettings, processes};
use session_store_core::{Clock, ManualClock, SystemClock, Timestamp};
use session_store_file::FileStore;

const TEST: &str = "histories_across_processes_are_linearizable";
const ENV_DIR: &str = "SESSION_STORE_FILE_LINEARIZABLE_DIR";

fn open_at(dir: &std::path::Path, base: Timestamp) -> FileStore {
    FileStore::builder(dir)
        .clock(ManualClock::new(base).shared())
        .open()
        .expect("open the store")
}

#[test]
fn histories_across_processes_are_linearizable() {
    let settings = CheckerSettings::default().rounds(150).workers(3).calls_per_worker(4);
    if let Some((worker, base)) = processes::child_role() {
        let dir = std::env::var(ENV_DIR).expect("the parent names the directory");
        processes::serve_child(&open_at(dir.as_ref(), base), worker, base, &settings).expect("serve the parent");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = SystemClock.now();
    let store = open_at(dir.path(), base);
    let path = dir.path().to_string_lossy().into_owned();
    let report = processes::across_processes(TEST, &[(ENV_DIR, &path)], &store, base, &settings, true)
        .unwrap_or_else(|failure| panic!("{failure}"));
    eprintln!("file store across processes: {report:?}");
    assert_eq!(report.calls, 150 * 3 * 4);
}
