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
    ///
    /// A backend may also run a call it knows to be short (a point read of
    /// SQLite on a free reader connection, a read of one session file)
    /// directly on the calling thread, without any hand-off: see
    /// [`run_quick_or_blocking`]. `block_in_place` hands the worker's core
    /// to another thread on every call, which costs a thread wake-up of its
    /// own, several times the cost of such a call.
    #[default]
    Auto,
    /// As [`Auto`](Self::Auto), but never on the calling thread: every call
    /// runs under `block_in_place` on a multi-threaded runtime, even the
    /// short ones [`run_quick_or_blocking`] would run directly. For storage
    /// whose reads may take long (a network file system, a disk that
    /// sleeps), where a worker thread must never stall.
    InPlace,
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
/// use session_store_core::raw::blocking::{Blocking, run_blocking};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let state = Arc::new(41);
/// let answer = run_blocking("my-store", Blocking::Auto, &state, |n| Ok(n + 1)).await?;
/// assert_eq!(answer, 42);
/// # Ok::<(), session_store_core::Error>(())
/// # }).unwrap();
/// ```
///
/// # Errors
///
/// What `f` returns, or [`Error::Backend`] naming `backend` if the
/// blocking task panicked or was cancelled.
pub async fn run_blocking<S, T, F>(backend: &'static str, blocking: Blocking, state: &Arc<S>, f: F) -> Result<T>
where
    S: Send + Sync + 'static + ?Sized,
    T: Send + 'static,
    F: FnOnce(&S) -> Result<T> + Send + 'static,
{
    let Ok(handle) = Handle::try_current() else {
        return f(state);
    };
    if blocking != Blocking::SpawnBlocking && handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        return tokio::task::block_in_place(|| f(state));
    }
    let state = Arc::clone(state);
    handle
        .spawn_blocking(move || f(&state))
        .await
        .map_err(|e| Error::backend(backend, "a blocking task of the store failed", e))?
}

/// Whether a call given to [`run_quick_or_blocking`] may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The call runs on an async worker thread: it must not wait (for a
    /// lock, a busy database), and answers `None`, having changed nothing,
    /// where it would.
    No,
    /// The call runs where blocking is fine: it waits as it must, and
    /// answers `Some`.
    Yes,
}

/// Runs the short call `f(state, Wait::No)` on the calling thread when
/// `blocking` is [`Blocking::Auto`], and returns its answer unless it is
/// `None` (the call would have had to wait); otherwise, and in the other
/// [`Blocking`] modes, runs `f(state, Wait::Yes)` as [`run_blocking`] does.
///
/// For calls of microseconds (a point read of a database on a free
/// connection, a read of one small file), where the hand-off that
/// `block_in_place` or `spawn_blocking` makes costs more than the call.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use session_store_core::raw::blocking::{Blocking, Wait, run_quick_or_blocking};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let state = Arc::new(Mutex::new(41));
/// let answer = run_quick_or_blocking("my-store", Blocking::Auto, &state, |m, wait| {
///     let n = match wait {
///         // Only if the lock is free right now.
///         Wait::No => m.try_lock().ok()?,
///         Wait::Yes => m.lock().unwrap(),
///     };
///     Some(Ok(*n + 1))
/// })
/// .await?;
/// assert_eq!(answer, 42);
/// # Ok::<(), session_store_core::Error>(())
/// # }).unwrap();
/// ```
///
/// # Errors
///
/// What `f` returns; [`Error::Backend`] if the blocking task panicked or
/// was cancelled, or if `f` answered `None` to [`Wait::Yes`].
pub async fn run_quick_or_blocking<S, T, F>(
    backend: &'static str,
    blocking: Blocking,
    state: &Arc<S>,
    f: F,
) -> Result<T>
where
    S: Send + Sync + 'static + ?Sized,
    T: Send + 'static,
    F: Fn(&S, Wait) -> Option<Result<T>> + Send + 'static,
{
    if blocking == Blocking::Auto
        && let Some(answer) = f(state, Wait::No)
    {
        return answer;
    }
    run_blocking(backend, blocking, state, move |s| {
        f(s, Wait::Yes).unwrap_or_else(|| {
            Err(Error::backend_msg(
                backend,
                "a blocking call of the store answered nothing",
            ))
        })
    })
    .await
}
