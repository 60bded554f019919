//! Every workload against every subject: `cargo bench -p session-store-benches
//! [--features peers]`, or `scripts/bench` at the repository root for the
//! whole comparison and its table.

use criterion::Criterion;
use session_store_benches::{targets, workloads};

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = workloads::runtime();
    let runners = match rt.block_on(targets::all()) {
        Ok(runners) => runners,
        Err(e) => {
            eprintln!("session-store-benches: cannot set up the subjects: {e}");
            std::process::exit(1);
        }
    };
    workloads::run_all(&mut c, &rt, &runners);
    c.final_summary();
}
