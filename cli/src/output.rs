//! Text or JSON output, and how times are shown.

use std::io::Write;

use serde_json::{Value, json};
use session_store_core::Timestamp;

use crate::fail::Failure;

/// Where results go: text for people, or one JSON document for scripts.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// `--json`.
    pub json: bool,
}

impl Printer {
    /// A printer for `--json` or not.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints the result of a command: `value` with `--json`, else `text`.
    pub fn result(&self, value: Value, text: impl FnOnce() -> String) {
        let mut stdout = std::io::stdout().lock();
        let _ = if self.json {
            writeln!(stdout, "{value}")
        } else {
            let text = text();
            if text.is_empty() {
                Ok(())
            } else {
                writeln!(stdout, "{text}")
            }
        };
        let _ = stdout.flush();
    }

    /// Reports a failure on standard error (with `--json`, also as a JSON
    /// document on standard output).
    pub fn failure(&self, failure: &Failure) {
        if self.json {
            let value = json!({
                "error": {
                    "store": failure.store,
                    "message": failure.message,
                    "exit_code": failure.exit as u8,
                }
            });
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{value}");
        }
        let _ = writeln!(std::io::stderr().lock(), "session-store: error: {failure}");
    }

    /// A note for people on standard error (progress, warnings); JSON
    /// output is never mixed with it.
    pub fn note(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}

/// `t` as RFC 3339 in UTC with milliseconds (`2026-12-02T01:02:03.456Z`).
pub fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.as_millis()) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(dt) => {
            let format = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            dt.format(&format).unwrap_or_else(|_| format!("{}ms", t.as_millis()))
        }
        Err(_) => format!("{}ms", t.as_millis()),
    }
}

/// A timestamp as JSON: Unix milliseconds and RFC 3339.
pub fn time_json(t: Timestamp) -> Value {
    json!({ "unix_ms": t.as_millis(), "utc": rfc3339(t) })
}
