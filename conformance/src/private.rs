//! What the macro's expansion needs; not a stable API.
//!
//! Every generated test goes through `run_property` or `run_model`:
//! build the harness, ask [`Harness::available`], run the property with
//! every namespace it creates recorded, tear those namespaces down, and
//! only then report (pass, skip, failure, or the property's own panic).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use session_store_core::{Result, SessionId, async_trait};

use crate::env::chain;
use crate::{Capabilities, Harness, Pass, StoreConfig, Verdict};

/// How long one property may run before it is reported as hung.
const PROPERTY_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the teardown of one test's namespaces may take.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(120);

/// A property's future, borrowing the harness it runs on.
pub type PropertyFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + 'a>>;

/// The suite's multi-thread runtime, shared by every generated test so
/// that connections a harness caches stay on one runtime.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("conformance")
            .enable_all()
            .build()
            .expect("the conformance suite could not start its Tokio runtime")
    })
}

/// A harness that remembers every namespace it hands out, so the test can
/// tear them all down afterwards.
pub struct Tracked<H: Harness> {
    inner: H,
    created: Mutex<Vec<H::Namespace>>,
}

impl<H: Harness> Tracked<H> {
    /// Wraps `inner`.
    pub fn new(inner: H) -> Self {
        Self {
            inner,
            created: Mutex::new(Vec::new()),
        }
    }

    /// Tears down every namespace handed out so far, each once; the first
    /// error (with how many failed) if any did.
    async fn teardown_all(&self) -> std::result::Result<(), String> {
        let namespaces = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        let total = namespaces.len();
        let mut errors = Vec::new();
        for ns in namespaces {
            match tokio::time::timeout(TEARDOWN_TIMEOUT, self.inner.teardown(&ns)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("teardown({ns:?}) failed: {}", chain(&e))),
                Err(_) => errors.push(format!("teardown({ns:?}) did not finish within {TEARDOWN_TIMEOUT:?}")),
            }
        }
        match errors.first() {
            None => Ok(()),
            Some(first) => Err(format!("{} of {total} namespaces: {first}", errors.len())),
        }
    }
}

#[async_trait]
impl<H: Harness> Harness for Tracked<H> {
    type Store = H::Store;
    type Namespace = H::Namespace;

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn available(&self) -> std::result::Result<(), String> {
        self.inner.available().await
    }

    async fn new_namespace(&self) -> Result<H::Namespace> {
        let ns = self.inner.new_namespace().await?;
        self.created.lock().unwrap_or_else(|e| e.into_inner()).push(ns.clone());
        Ok(ns)
    }

    async fn teardown(&self, namespace: &H::Namespace) -> Result<()> {
        self.inner.teardown(namespace).await
    }

    async fn open(&self, namespace: &H::Namespace, config: &StoreConfig) -> Result<H::Store> {
        self.inner.open(namespace, config).await
    }

    async fn read_raw(&self, namespace: &H::Namespace, id: &SessionId) -> Result<Option<Vec<u8>>> {
        self.inner.read_raw(namespace, id).await
    }

    async fn write_raw(&self, namespace: &H::Namespace, id: &SessionId, bytes: &[u8]) -> Result<()> {
        self.inner.write_raw(namespace, id, bytes).await
    }
}

/// A future that turns a panic while polling `F` into `Err(payload)`, so
/// the namespaces are torn down before the panic goes on.
struct CatchUnwind<F: ?Sized>(Pin<Box<F>>);

impl<F: Future + ?Sized> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// How one generated test ended, before it is reported.
enum Outcome {
    /// The harness said its service is not here, and why.
    Unavailable(String),
    /// The property ran: its verdict, or its panic, or a timeout; then the
    /// teardown's result.
    Ran {
        verdict: std::thread::Result<Option<Verdict>>,
        teardown: std::result::Result<(), String>,
    },
}

/// Runs one property to its verdict on the harness `harness` gives: skips
/// (or, strict, fails) when the harness is unavailable, tears down every
/// namespace the property created, then returns on pass, prints
/// `skipped: <name>: <reason>` on skip, and panics with the failure.
pub fn run_property<H, F>(name: &'static str, harness: impl Future<Output = H>, property: F)
where
    H: Harness,
    F: for<'a> FnOnce(&'a Tracked<H>) -> PropertyFuture<'a>,
{
    let outcome = runtime().block_on(async {
        let harness = Tracked::new(harness.await);
        if let Err(why) = harness.available().await {
            return Outcome::Unavailable(why);
        }
        let verdict = tokio::time::timeout(PROPERTY_TIMEOUT, CatchUnwind(property(&harness)))
            .await
            .map_or(Ok(None), |r| r.map(Some));
        let teardown = harness.teardown_all().await;
        Outcome::Ran { verdict, teardown }
    });
    conclude(name, outcome, crate::strict());
}

/// Runs the model-based test with the suite's defaults, saving
/// regressions beside `source_file`, then tears down its namespaces.
pub fn run_model<H: Harness>(source_file: &'static str, harness: impl Future<Output = H>) {
    const NAME: &str = "model_matches_the_reference";
    let harness = runtime().block_on(async { Tracked::new(harness.await) });
    let outcome = match runtime().block_on(harness.available()) {
        Err(why) => Outcome::Unavailable(why),
        Ok(()) => {
            let settings = crate::model::ModelSettings::from_env().regressions_beside(source_file);
            let verdict = catch_unwind(AssertUnwindSafe(|| {
                crate::model::model_matches_the_reference(&harness, &settings)
            }))
            .map(Some);
            let teardown = runtime().block_on(harness.teardown_all());
            Outcome::Ran { verdict, teardown }
        }
    };
    conclude(NAME, outcome, crate::strict());
}

#[doc(hidden)]
pub fn run_checker<H: Harness>(harness: impl Future<Output = H>) {
    const NAME: &str = "histories_of_concurrent_calls_are_linearizable";
    let harness = runtime().block_on(async { Tracked::new(harness.await) });
    let outcome = match runtime().block_on(harness.available()) {
        Err(why) => Outcome::Unavailable(why),
        Ok(()) => {
            let settings = crate::linearizability::CheckerSettings::default();
            let verdict = catch_unwind(AssertUnwindSafe(|| {
                crate::linearizability::check(&harness, &settings).map(|report| {
                    eprintln!(
                        "{NAME}: {} rounds, {} calls in {:.2} s, {:.2} calls in flight on average",
                        report.rounds,
                        report.calls,
                        report.elapsed.as_secs_f64(),
                        report.in_flight
                    );
                    crate::Pass::Passed
                })
            }))
            .map(Some);
            let teardown = runtime().block_on(harness.teardown_all());
            Outcome::Ran { verdict, teardown }
        }
    };
    conclude(NAME, outcome, crate::strict());
}

/// Reports one test's outcome: returns, prints one `skipped:` line, or
/// panics.
fn conclude(name: &str, outcome: Outcome, strict: bool) {
    let (verdict, teardown) = match outcome {
        Outcome::Unavailable(why) if strict => panic!(
            "conformance test `{name}` cannot run: service unavailable: {why}\n  \
             (SESSION_STORE_STRICT is set, so an unavailable service fails the test instead of skipping it)"
        ),
        Outcome::Unavailable(why) => {
            return say_skipped(name, &format!("service unavailable: {why}"));
        }
        Outcome::Ran { verdict, teardown } => (verdict, teardown),
    };
    match verdict {
        Err(panic) => resume_unwind(panic),
        Ok(None) => panic!("conformance property `{name}` did not finish within {PROPERTY_TIMEOUT:?}"),
        Ok(Some(Err(failure))) => match teardown {
            Ok(()) => panic!("{failure}"),
            Err(e) => panic!("{failure}\n  and then the harness's {e}"),
        },
        Ok(Some(Ok(pass))) => {
            if let Err(e) = teardown {
                panic!("conformance test `{name}`: the property passed, but the harness's {e}");
            }
            if let Pass::Skipped { reason } = pass {
                say_skipped(name, &reason);
            }
        }
    }
}

/// One line on the process's stderr, past the test harness's output
/// capture, so a skip shows in every run.
fn say_skipped(name: &str, reason: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "skipped: {name}: {reason}");
}
