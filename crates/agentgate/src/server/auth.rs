//! Who may call a site's intents and flows. The manifest is always public.

use std::any::Any;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use axum::http::HeaderMap;
use futures::future::BoxFuture;

use crate::protocol::AuthDef;

/// Who a verifier found the caller to be, as the site's own type (see
/// [`super::Context::caller`]).
pub(crate) type Caller = Arc<dyn Any + Send + Sync>;

/// A site's check of a credential: `None` refuses it; `Some` accepts it, with the caller
/// when the check tells who it is.
type Verifier = Arc<dyn Fn(String) -> BoxFuture<'static, Option<Option<Caller>>> + Send + Sync>;

/// Accepted credentials: a fixed set, or a check done by the site.
#[derive(Clone)]
enum Accepts {
    Set(Arc<HashSet<String>>),
    Verifier(Verifier),
}

impl Accepts {
    /// `None`: refused; `Some(caller)`: accepted.
    async fn check(&self, credential: String) -> Option<Option<Caller>> {
        match self {
            Self::Set(values) => values.contains(&credential).then_some(None),
            Self::Verifier(verify) => verify(credential).await,
        }
    }
}

/// The auth policy of a site.
#[derive(Clone)]
pub struct Auth {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    None,
    ApiKey { header: String, accepts: Accepts },
    Bearer { accepts: Accepts },
}

fn set<I, S>(values: I) -> Accepts
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Accepts::Set(Arc::new(values.into_iter().map(Into::into).collect()))
}

fn verifier<F, Fut>(verify: F) -> Accepts
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let verify = Arc::new(verify);
    Accepts::Verifier(Arc::new(move |credential| {
        let verify = Arc::clone(&verify);
        Box::pin(async move { verify(credential).await.then_some(None) })
    }))
}

fn identifier<F, Fut, T>(identify: F) -> Accepts
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<T>> + Send + 'static,
    T: Send + Sync + 'static,
{
    let identify = Arc::new(identify);
    Accepts::Verifier(Arc::new(move |credential| {
        let identify = Arc::clone(&identify);
        Box::pin(async move {
            identify(credential)
                .await
                .map(|caller| Some(Arc::new(caller) as Caller))
        })
    }))
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub message: String,
    /// `WWW-Authenticate` to send back.
    pub challenge: Option<&'static str>,
}

impl Auth {
    /// Anyone may call.
    pub fn none() -> Self {
        Self { kind: Kind::None }
    }

    /// Calls carry one of `keys` in `header` (e.g. `X-API-Key`).
    pub fn api_key<I, S>(header: impl Into<String>, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            kind: Kind::ApiKey {
                header: header.into(),
                accepts: set(keys),
            },
        }
    }

    /// Calls carry a key in `header` that `verify` accepts.
    pub fn api_key_verified<F, Fut>(header: impl Into<String>, verify: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self {
            kind: Kind::ApiKey {
                header: header.into(),
                accepts: verifier(verify),
            },
        }
    }

    /// Calls carry `Authorization: Bearer <token>` with one of `tokens`.
    pub fn bearer<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            kind: Kind::Bearer {
                accepts: set(tokens),
            },
        }
    }

    /// Calls carry a bearer token that `verify` accepts (a JWT check, a lookup...).
    pub fn bearer_verified<F, Fut>(verify: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self {
            kind: Kind::Bearer {
                accepts: verifier(verify),
            },
        }
    }

    /// Calls carry a bearer token from which `identify` tells who calls (`None` refuses it);
    /// handlers read the caller with [`super::Context::caller`].
    pub fn bearer_identified<F, Fut, T>(identify: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
        T: Send + Sync + 'static,
    {
        Self {
            kind: Kind::Bearer {
                accepts: identifier(identify),
            },
        }
    }

    /// What the manifest declares.
    pub fn definition(&self) -> AuthDef {
        match &self.kind {
            Kind::None => AuthDef::default(),
            Kind::ApiKey { header, .. } => AuthDef {
                kind: "api_key".into(),
                header: Some(header.clone()),
            },
            Kind::Bearer { .. } => AuthDef {
                kind: "bearer".into(),
                header: None,
            },
        }
    }

    /// Checks a call's headers; an accepted call may come with who the caller is.
    pub(crate) async fn check(&self, headers: &HeaderMap) -> Result<Option<Caller>, Refusal> {
        match &self.kind {
            Kind::None => Ok(None),
            Kind::ApiKey { header, accepts } => {
                let Some(key) = headers.get(header.as_str()).and_then(|v| v.to_str().ok()) else {
                    return Err(Refusal {
                        message: format!("Missing API key: send it in the {header} header"),
                        challenge: None,
                    });
                };
                accepts.check(key.to_string()).await.ok_or_else(|| Refusal {
                    message: "Invalid API key".into(),
                    challenge: None,
                })
            }
            Kind::Bearer { accepts } => {
                let token = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                let Some(token) = token else {
                    return Err(Refusal {
                        message: "Missing bearer token: send 'Authorization: Bearer <token>'"
                            .into(),
                        challenge: Some("Bearer"),
                    });
                };
                accepts
                    .check(token.trim().to_string())
                    .await
                    .ok_or_else(|| Refusal {
                        message: "Invalid bearer token".into(),
                        challenge: Some("Bearer"),
                    })
            }
        }
    }
}
