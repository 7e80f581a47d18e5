//! Who is calling: the identity the auth layer attached to the request, or the anonymous
//! caller when auth is off.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The caller of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The user id (API key name or token subject); `None` for the anonymous caller.
    pub user_id: Option<String>,
    /// Sees every user's resources.
    pub is_admin: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}
