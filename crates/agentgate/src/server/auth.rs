//! Who may call a site's intents and flows. The manifest is always public.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use axum::http::HeaderMap;
use futures::future::BoxFuture;

use crate::protocol::AuthDef;

type Verifier = Arc<dyn Fn(String) -> BoxFuture<'static, bool> + Send + Sync>;

/// Accepted credentials: a fixed set, or a check done by the site.
#[derive(Clone)]
enum Accepts {
    Set(Arc<HashSet<String>>),
    Verifier(Verifier),
}

impl Accepts {
    async fn check(&self, credential: String) -> bool {
        match self {
            Self::Set(values) => values.contains(&credential),
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
    Accepts::Verifier(Arc::new(move |credential| Box::pin(verify(credential))))
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

    /// Checks a call's headers.
    pub(crate) async fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        match &self.kind {
            Kind::None => Ok(()),
            Kind::ApiKey { header, accepts } => {
                let Some(key) = headers.get(header.as_str()).and_then(|v| v.to_str().ok()) else {
                    return Err(Refusal {
                        message: format!("Missing API key: send it in the {header} header"),
                        challenge: None,
                    });
                };
                if accepts.check(key.to_string()).await {
                    Ok(())
                } else {
                    Err(Refusal {
                        message: "Invalid API key".into(),
                        challenge: None,
                    })
                }
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
                if accepts.check(token.trim().to_string()).await {
                    Ok(())
                } else {
                    Err(Refusal {
                        message: "Invalid bearer token".into(),
                        challenge: Some("Bearer"),
                    })
                }
            }
        }
    }
}
