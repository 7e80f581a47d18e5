//! Who is calling, as the guard found out: the [`Actor`] every core operation takes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use gateway_core::Actor;

use super::error::{ApiError, RequestError};

/// The caller of a request. Only the guard attaches one: a route it did not see is refused
/// rather than served as anybody.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| RequestError::Unguarded.into())
    }
}
