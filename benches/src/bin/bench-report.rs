//! Writes the comparison table from criterion's estimates:
//!
//! ```text
//! bench-report [--criterion DIR] [--out FILE] [--note TEXT]
//! ```
//!
//! Reads `DIR` (default `target/criterion`), writes the Markdown to `FILE`
//! (default `target/bench-report.md`) and prints it.

use std::path::PathBuf;
use std::process::ExitCode;

use session_store_benches::report::{Results, render};

fn main() -> ExitCode {
    let mut criterion = PathBuf::from("target/criterion");
    let mut out = PathBuf::from("target/bench-report.md");
    let mut note = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--criterion" | "--out" | "--note" => args.next(),
            "-h" | "--help" => {
                println!("usage: bench-report [--criterion DIR] [--out FILE] [--note TEXT]");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("bench-report: unknown argument {arg:?} (try --help)");
                return ExitCode::from(2);
            }
        };
        let Some(value) = value else {
            eprintln!("bench-report: {arg} needs a value");
            return ExitCode::from(2);
        };
        match arg.as_str() {
            "--criterion" => criterion = PathBuf::from(value),
            "--out" => out = PathBuf::from(value),
            _ => note = value,
        }
    }
    let results = match Results::read(&criterion) {
        Ok(results) if results.is_empty() => {
            eprintln!(
                "bench-report: no estimates under {}: run the benchmarks first",
                criterion.display()
            );
            return ExitCode::FAILURE;
        }
        Ok(results) => results,
        Err(e) => {
            eprintln!("bench-report: {e}");
            return ExitCode::FAILURE;
        }
    };
    let html = criterion.join("report").join("index.html");
    let heading = format!("{note}\n\nPlots: criterion's HTML report, `{}`.", html.display());
    let text = render(&results, heading.trim_start());
    if let Err(e) = std::fs::write(&out, &text) {
        eprintln!("bench-report: cannot write {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    print!("{text}");
    eprintln!("bench-report: written to {}", out.display());
    ExitCode::SUCCESS
}
