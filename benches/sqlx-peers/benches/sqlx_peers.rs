//! Every workload against the sqlx peers: `scripts/bench` runs it after the
//! main benches (`cargo bench --manifest-path benches/sqlx-peers/Cargo.toml`).

use criterion::Criterion;
use session_store_benches::workloads;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = workloads::runtime();
    let runners = match rt.block_on(session_store_sqlx_peers::all()) {
        Ok(runners) => runners,
        Err(e) => {
            eprintln!("session-store-sqlx-peers: cannot set up the subjects: {e}");
            std::process::exit(1);
        }
    };
    workloads::run_all(&mut c, &rt, &runners);
    c.final_summary();
}
