//! One request through each session middleware:
//! `cargo bench -p session-store-benches --bench middleware` (groups
//! `middleware_*`, see `session_store_benches::middleware`).

use criterion::Criterion;
use session_store_benches::{middleware, workloads};

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = workloads::runtime();
    middleware::run_all(&mut c, &rt);
    c.final_summary();
}
