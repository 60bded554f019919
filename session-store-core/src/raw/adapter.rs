//! What adapters to a web framework's session middleware share, next to the
//! record-level calls of [`Sessions`](crate::Sessions)
//! ([`load_record`](crate::Sessions::load_record) and the rest): the one
//! generic message a framework (and so a visitor) gets when the store
//! fails, and the one log line that keeps the detail for the operator.
//!
//! ```
//! use session_store_core::raw::adapter::{STORE_FAILED, log_failure};
//! use session_store_core::{Error, SessionId};
//!
//! fn answer(id: &SessionId, error: &Error) -> String {
//!     log_failure("load", Some(id), error); // the detail and the fingerprint, to the log
//!     STORE_FAILED.to_owned()              // what the framework shows
//! }
//! # let id = SessionId::random();
//! # assert_eq!(answer(&id, &Error::backend_msg("file", "disk on fire")), STORE_FAILED);
//! ```

use crate::{Error, SessionId};

/// The message every store failure reaches a framework with: generic, so
/// nothing internal (a backend's reply, an id) can end up in a response
/// body or an outside log. The detail goes to the log ([`log_failure`]).
pub const STORE_FAILED: &str = "the session store failed (the detail is in the server log)";

/// Logs a store failure of `operation` (on session `id`, when there is
/// one) with its whole chain of causes ([`Error::chain`]) and the session's
/// [fingerprint](SessionId::fingerprint), never the id: a `tracing` `error`
/// event "session store failed", or a `warn` event "session refused" for a
/// record over the store's size limit (the request's fault, not the
/// store's). Without the `tracing` feature it does nothing.
pub fn log_failure(operation: &'static str, id: Option<&SessionId>, error: &Error) {
    #[cfg(feature = "tracing")]
    {
        let session = id.map(|id| tracing::field::display(id.fingerprint()));
        if matches!(error, Error::TooLarge { .. }) {
            tracing::warn!(session, operation, error = %error.chain(), "session refused");
        } else {
            tracing::error!(session, operation, error = %error.chain(), "session store failed");
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (operation, id, error);
}

/// How many times the framework adapters let
/// [`Sessions::replace_record`](crate::Sessions::replace_record) re-read
/// and write again after another request's write landed in between
/// ([`Sessions::commit_attempts`](crate::Sessions::commit_attempts)). The
/// handle's writes of one session take turns, and each retry means a write
/// from outside the handle succeeded, so a replace gives up (with
/// [`Error::Contended`]) only when more than this
/// many such writes land while it runs.
pub const REPLACE_ATTEMPTS: usize = 32;
