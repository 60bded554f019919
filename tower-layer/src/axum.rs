//! The axum extractor and the error answer (feature `axum`).

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::layer::DEFAULT_ERROR_BODY;
use crate::session::{Session, SessionError, error_response};

/// A handler takes the request's [`Session`] as an argument. Without a
/// [`SessionLayer`](crate::SessionLayer) around the route the request is
/// answered `500` with the generic body, and an `error` event says why.
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or_else(|| {
            tracing::error!("a handler takes a Session but no SessionLayer is around its route");
            (StatusCode::INTERNAL_SERVER_ERROR, DEFAULT_ERROR_BODY)
        })
    }
}

/// The generic answer (the layer's status and body); the detail goes to a
/// `tracing` `error` event with the session's fingerprint.
impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        self.log("session store failed");
        error_response(&self)
    }
}
