//! The two hooks a harness has besides opening stores: `available` (the
//! service is not here: skip with one line, or fail under
//! `SESSION_STORE_STRICT=1`) and `teardown` (drop every namespace a test
//! created, whatever the property did).

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::sync::{Arc, Mutex};

use session_store_conformance::{Capabilities, Harness, StoreConfig, properties};
use session_store_core::{Result, async_trait};
use session_store_memory::MemoryStore;

/// Which namespaces were handed out and which torn down, in order.
#[derive(Debug, Default)]
struct Ledger {
    created: Vec<u64>,
    torn_down: Vec<u64>,
}

/// Memory stores on numbered namespaces, keeping a ledger.
#[derive(Clone, Default)]
struct Counting {
    ledger: Arc<Mutex<Ledger>>,
}

impl Counting {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap()
    }
}

#[async_trait]
impl Harness for Counting {
    type Store = MemoryStore;
    type Namespace = u64;

    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
    }

    async fn new_namespace(&self) -> Result<u64> {
        let mut ledger = self.ledger();
        let n = ledger.created.len() as u64;
        ledger.created.push(n);
        Ok(n)
    }

    async fn open(&self, _: &u64, config: &StoreConfig) -> Result<MemoryStore> {
        Ok(MemoryStore::builder()
            .clock(config.clock.clone())
            .max_record_bytes(config.max_record_bytes)
            .build())
    }

    async fn teardown(&self, namespace: &u64) -> Result<()> {
        self.ledger().torn_down.push(*namespace);
        Ok(())
    }
}

fn assert_each_torn_down_once(ledger: &Ledger) {
    assert!(!ledger.created.is_empty(), "the test created no namespace: {ledger:?}");
    let torn: BTreeSet<_> = ledger.torn_down.iter().collect();
    assert_eq!(
        torn.len(),
        ledger.torn_down.len(),
        "a namespace torn down twice: {ledger:?}"
    );
    assert_eq!(
        ledger.created.iter().collect::<BTreeSet<_>>(),
        torn,
        "created and torn-down namespaces differ"
    );
}

#[test]
fn every_namespace_a_property_creates_is_torn_down_once() {
    let harness = Counting::default();
    let h = harness.clone();
    // namespaces_are_isolated asks for more than one namespace.
    session_store_conformance::__private::run_property("namespaces_are_isolated", async move { h }, |h| {
        Box::pin(properties::namespaces_are_isolated(h))
    });
    let ledger = harness.ledger();
    assert!(ledger.created.len() >= 2, "{ledger:?}");
    assert_each_torn_down_once(&ledger);
}

#[test]
fn a_panicking_property_still_tears_down_and_then_panics() {
    let harness = Counting::default();
    let h = harness.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        session_store_conformance::__private::run_property("panics", async move { h }, |h| {
            Box::pin(async move {
                h.new_namespace().await.unwrap();
                h.new_namespace().await.unwrap();
                panic!("the property panicked on purpose");
            })
        });
    }));
    let panic = outcome.expect_err("the property's panic must reach the test");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the property panicked on purpose"));
    let ledger = harness.ledger();
    assert_eq!(ledger.created, [0, 1]);
    assert_each_torn_down_once(&ledger);
}

#[test]
fn the_model_test_tears_down_every_namespace_of_every_case() {
    let harness = Counting::default();
    let h = harness.clone();
    session_store_conformance::__private::run_model(file!(), async move { h });
    let ledger = harness.ledger();
    assert!(ledger.created.len() >= 8, "{ledger:?}");
    assert_each_torn_down_once(&ledger);
}

/// The variable that makes [`Absent`] report its service missing; set only
/// for the child processes the tests below start.
const ABSENT: &str = "CONFORMANCE_SELF_TEST_SERVICE_ABSENT";

/// A memory-store harness whose "service" is missing when [`ABSENT`] is
/// set, as a Redis harness is without a server URL.
struct Absent;

#[async_trait]
impl Harness for Absent {
    type Store = MemoryStore;
    type Namespace = ();

    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
    }

    async fn available(&self) -> std::result::Result<(), String> {
        match std::env::var_os(ABSENT) {
            Some(_) => Err("the self-test's pretend server is not here".to_owned()),
            None => Ok(()),
        }
    }

    async fn new_namespace(&self) -> Result<()> {
        assert!(
            std::env::var_os(ABSENT).is_none(),
            "new_namespace on an unavailable harness"
        );
        Ok(())
    }

    async fn open(&self, _: &(), config: &StoreConfig) -> Result<MemoryStore> {
        Ok(MemoryStore::builder()
            .clock(config.clock.clone())
            .max_record_bytes(config.max_record_bytes)
            .build())
    }
}

/// The whole suite, generated by the macro as a store author would; with
/// the service here (every ordinary run) it passes on the memory store.
mod absent {
    session_store_conformance::conformance_tests!(super::Absent);
}

/// Runs one generated test of this binary in a child process, with the
/// service absent or not, strict or not: (passed, stderr + stdout).
fn run_child(test: &str, absent: bool, strict: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env_remove(ABSENT)
        .env_remove(session_store_conformance::STRICT_VAR);
    if absent {
        cmd.env(ABSENT, "1");
    }
    if let Some(value) = strict {
        cmd.env(session_store_conformance::STRICT_VAR, value);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        text.contains("1 passed") || text.contains("1 failed"),
        "the child ran no test:\n{text}"
    );
    (out.status.success(), text)
}

#[test]
fn an_unavailable_service_skips_each_test_with_one_line() {
    for (test, name) in [
        (
            "absent::load_returns_none_at_the_exact_deadline",
            "load_returns_none_at_the_exact_deadline",
        ),
        ("absent::model_matches_the_reference", "model_matches_the_reference"),
    ] {
        for strict in [None, Some(""), Some("0")] {
            let (passed, text) = run_child(test, true, strict);
            assert!(
                passed,
                "{test} with SESSION_STORE_STRICT={strict:?} should skip:\n{text}"
            );
            let line = format!("skipped: {name}: service unavailable: the self-test's pretend server is not here");
            assert_eq!(
                text.lines().filter(|l| l.starts_with("skipped:")).collect::<Vec<_>>(),
                [line.as_str()],
                "{text}"
            );
        }
    }
}

#[test]
fn strict_mode_turns_an_unavailable_service_into_a_failure() {
    for test in [
        "absent::load_returns_none_at_the_exact_deadline",
        "absent::model_matches_the_reference",
    ] {
        for strict in ["1", "yes"] {
            let (passed, text) = run_child(test, true, Some(strict));
            assert!(
                !passed,
                "{test} with SESSION_STORE_STRICT={strict} should fail:\n{text}"
            );
            assert!(
                text.contains("service unavailable: the self-test's pretend server is not here"),
                "{text}"
            );
            assert!(!text.contains("skipped:"), "{text}");
        }
    }
}

#[test]
fn strict_mode_leaves_a_capability_skip_a_skip() {
    // The memory harness lacks `durable`: the property skips itself, and
    // that is no unavailable service, so strict mode passes it too.
    let (passed, text) = run_child("absent::records_survive_drop_and_reopen", false, Some("1"));
    assert!(passed, "{text}");
    let skips: Vec<_> = text.lines().filter(|l| l.starts_with("skipped:")).collect();
    assert_eq!(skips.len(), 1, "{text}");
    assert!(
        skips[0].starts_with("skipped: records_survive_drop_and_reopen: "),
        "{text}"
    );
    assert!(!text.contains("service unavailable"), "{text}");
}
