//! Exit codes and the one error type of the command.

use std::process::ExitCode;

use crate::url::StoreUrl;

/// What the exit code says. Documented in the README and in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Ok = 0,
    /// 1: the store failed during the command (I/O, timeout, a record that
    /// does not decode), or a migration left sessions it could not copy.
    Failed = 1,
    /// 2: bad arguments, a URL that names no store this build knows, or a
    /// missing or bad key ring.
    Usage = 2,
    /// 3: the store could not be opened: missing directory or database,
    /// a file of another kind, a server that does not answer.
    Unavailable = 3,
    /// 4: `show` or `delete` named no live session.
    NotFound = 4,
    /// 5: `clear` was not confirmed (declined, or no terminal and no `--yes`).
    NotConfirmed = 5,
    /// 6: `doctor` found problems (and `--fix` did not repair them all).
    Problems = 6,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Why a command did not succeed: the exit code, the store, the cause.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// The store it is about, as shown (no password).
    pub store: Option<String>,
    /// The cause (never a full session id).
    pub message: String,
}

impl Failure {
    /// A failure about `store` (if any).
    pub fn new(exit: Exit, store: Option<&StoreUrl>, message: impl Into<String>) -> Self {
        Self {
            exit,
            store: store.map(|s| s.shown.clone()),
            message: message.into(),
        }
    }

    /// A store error during a command.
    pub fn store(url: &StoreUrl, e: &session_store_core::Error) -> Self {
        let exit = match e {
            session_store_core::Error::Config { .. } => Exit::Unavailable,
            _ => Exit::Failed,
        };
        Self::new(exit, Some(url), e.chain())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.store {
            Some(store) => write!(f, "{store}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
