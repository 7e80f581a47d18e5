//! Who is calling: the identity the guard attached to the request, or the anonymous caller
//! when auth is off.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The caller of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The user id (API key name or token subject); `None` when auth is off.
    pub user_id: Option<String>,
    /// The caller's scopes (empty when auth is off).
    pub scopes: Vec<String>,
    /// Sees every user's resources (`*` or `admin`).
    pub is_admin: bool,
}

impl Caller {
    /// Whether this caller may see a resource owned by `owner`. With auth off everything is
    /// shared; with auth on a caller sees its own resources, admins see all.
    pub fn can_see(&self, owner: Option<&str>) -> bool {
        match &self.user_id {
            None => true,
            Some(me) => self.is_admin || owner == Some(me.as_str()),
        }
    }

    /// The owner filter for listings: `None` means every user's.
    pub fn listing_filter(&self) -> Option<String> {
        if self.is_admin {
            None
        } else {
            self.user_id.clone()
        }
    }
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
