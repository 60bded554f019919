//! Running a backend's blocking calls (file I/O, SQLite) from async code:
//! one helper every blocking backend shares.

use std::sync::Arc;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::{Error, Result};

/// Where a backend runs its blocking calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Blocking {
    /// [`tokio::task::block_in_place`] on a multi-threaded tokio runtime
    /// (no hop to another thread: the runtime hands the worker's other tasks
    /// to another thread first), [`tokio::task::spawn_blocking`] on a
    /// current-thread runtime, and a plain call outside any tokio runtime.
    /// The default, and the faster choice for calls of microseconds: a hop
    /// to another thread costs more than such a call on a machine whose
    /// idle CPUs are slow to wake.
    #[default]
    Auto,
    /// Always hand the call to tokio's blocking pool
    /// ([`tokio::task::spawn_blocking`]) inside a tokio runtime: keeps
    /// worker threads free of any blocking at the price of a thread hop
    /// there and back per call.
    SpawnBlocking,
}

/// Runs `f(state)`, a blocking call, where `blocking` says (see
/// [`Blocking`]), and returns its result.
///
/// ```
/// use std::sync::Arc;
/// use session_store_core::blocking::{Blocking, run_blocking};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let state = Arc::new(41);
/// let answer = run_blocking(Blocking::Auto, &state, |n| Ok(n + 1)).await?;
/// assert_eq!(answer, 42);
/// # Ok::<(), session_store_core::Error>(())
/// # }).unwrap();
/// ```
///
/// # Errors
///
/// What `f` returns, or [`Error::Backend`] if the blocking task panicked
/// or was cancelled.
pub async fn run_blocking<S, T, F>(blocking: Blocking, state: &Arc<S>, f: F) -> Result<T>
where
    S: Send + Sync + 'static + ?Sized,
    T: Send + 'static,
    F: FnOnce(&S) -> Result<T> + Send + 'static,
{
    let Ok(handle) = Handle::try_current() else {
        return f(state);
    };
    if blocking == Blocking::Auto && handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        return tokio::task::block_in_place(|| f(state));
    }
    let state = Arc::clone(state);
    handle
        .spawn_blocking(move || f(&state))
        .await
        .map_err(|e| Error::backend("a blocking task of the store failed", e))?
}
