//! Who is calling: API keys (hashed, compared in constant time) and OAuth2 bearer JWTs
//! verified against the issuer's JWKS, alone or combined; and what their scopes allow.
//!
//! Every authenticated caller has an identity: the key's `name` or the token's `sub`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gateway_workspace::config::{ApiKeyConfig, AuthConfig, AuthMode, OAuth2Config};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long fetched signing keys are trusted before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches the keys at most this often (a flood of forged kids must not
/// hammer the issuer, and a rotated key is picked up within a second).
const JWKS_REFETCH_GAP: Duration = Duration::from_secs(1);

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The key name or the token subject.
    pub user_id: String,
    pub scopes: Vec<String>,
    /// How it authenticated: `api_key` or `oauth2`.
    pub method: &'static str,
}

impl Identity {
    /// Whether the scopes grant `scope`: `*`, the exact scope, or for
    /// `agents:invoke:<agent>` also plain `agents:invoke`.
    pub fn allows(&self, scope: &str) -> bool {
        scopes_allow(&self.scopes, scope)
    }

    /// Sees every user's resources.
    pub fn is_admin(&self) -> bool {
        grants_admin(&self.scopes)
    }
}

/// Whether `held` makes its holder an admin (`*` or `admin`): it sees every user's records.
pub fn grants_admin(held: &[String]) -> bool {
    held.iter().any(|s| s == "*" || s == "admin")
}

/// Whether `held` grants `scope`: `*`, the exact scope, or for `agents:invoke:<agent>` also
/// plain `agents:invoke`. No other wildcards (`admin` does not grant `admin:*`).
pub fn scopes_allow(held: &[String], scope: &str) -> bool {
    match scope.strip_prefix("agents:invoke:") {
        Some(agent_id) => may_invoke(held, agent_id),
        None => held.iter().any(|held| held == "*" || held == scope),
    }
}

/// Whether `held` lets its holder run `agent_id` (`*`, `agents:invoke`, or
/// `agents:invoke:<agent_id>`), without building the scope's name.
pub fn may_invoke(held: &[String], agent_id: &str) -> bool {
    held.iter().any(|held| {
        held == "*"
            || held == "agents:invoke"
            || held.strip_prefix("agents:invoke:") == Some(agent_id)
    })
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Authentication required: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("Invalid API key")]
    InvalidKey,
    #[error("Invalid token: {0}")]
    InvalidToken(String),
}

/// A configuration that cannot work; the gateway refuses to start on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("auth: {0}")]
pub struct AuthConfigError(pub String);

struct ApiKey {
    name: String,
    digest: [u8; 32],
    scopes: Vec<String>,
}

/// The gateway's auth policy.
pub struct Authenticator {
    keys: Vec<ApiKey>,
    oauth2: Option<JwtVerifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys.len())
            .field("oauth2", &self.oauth2.is_some())
            .finish()
    }
}

/// A new random API key: `agw_` + 32 random bytes in hex.
pub fn generate_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("agw_{}", hex::encode(bytes))
}

/// SHA-256 of a key, hex: what `key_sha256` holds.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn api_key(config: &ApiKeyConfig) -> Result<ApiKey, AuthConfigError> {
    let digest = match (&config.key, &config.key_sha256) {
        (Some(key), None) if !key.is_empty() => Sha256::digest(key.as_bytes()).into(),
        (None, Some(hash)) => {
            let bytes = hex::decode(hash.trim()).ok().filter(|b| b.len() == 32);
            let bytes = bytes.ok_or_else(|| {
                AuthConfigError(format!(
                    "api key '{}': key_sha256 must be 64 hex digits",
                    config.name
                ))
            })?;
            let mut digest = [0u8; 32];
            digest.copy_from_slice(&bytes);
            digest
        }
        _ => {
            return Err(AuthConfigError(format!(
                "api key '{}' needs exactly one of 'key' and 'key_sha256'",
                config.name
            )));
        }
    };
    if config.name.trim().is_empty() {
        return Err(AuthConfigError("every api key needs a 'name'".into()));
    }
    Ok(ApiKey {
        name: config.name.clone(),
        digest,
        scopes: config.scopes.clone(),
    })
}

impl Authenticator {
    /// The policy of `config` for a workspace generation (`None`: auth off, said loudly).
    pub fn for_generation(config: &AuthConfig) -> Result<Option<Arc<Self>>, AuthConfigError> {
        let auth = Self::from_config(config)?;
        if auth.is_none() {
            tracing::warn!(
                "auth is off: every /v1 route is open to anyone who can reach the server"
            );
        }
        Ok(auth.map(Arc::new))
    }

    /// The policy `config` describes; `None` when auth is off.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Self>, AuthConfigError> {
        if !config.enabled {
            return Ok(None);
        }
        let has_keys = !config.api_keys.is_empty();
        let mode = match config.mode {
            Some(mode) => mode,
            None => match (has_keys, config.oauth2.is_some()) {
                (true, true) => AuthMode::Composite,
                (true, false) => AuthMode::ApiKey,
                (false, true) => AuthMode::Oauth2,
                (false, false) => AuthMode::None,
            },
        };
        let keys = || -> Result<Vec<ApiKey>, AuthConfigError> {
            config.api_keys.iter().map(api_key).collect()
        };
        let oauth2 = || -> Result<JwtVerifier, AuthConfigError> {
            let settings = config.oauth2.as_ref().ok_or_else(|| {
                AuthConfigError("mode oauth2 needs an 'oauth2' block (issuer, audience)".into())
            })?;
            JwtVerifier::new(settings)
        };
        let policy = match mode {
            AuthMode::None | AuthMode::Custom => return Ok(None),
            AuthMode::ApiKey => {
                if !has_keys {
                    return Err(AuthConfigError(
                        "mode api_key has no api_keys: add keys (agents-gateway keys create) or set auth.enabled: false to run open on purpose".into(),
                    ));
                }
                Self {
                    keys: keys()?,
                    oauth2: None,
                }
            }
            AuthMode::Oauth2 => Self {
                keys: Vec::new(),
                oauth2: Some(oauth2()?),
            },
            AuthMode::Composite => {
                let oauth2 = config.oauth2.as_ref().map(|_| oauth2()).transpose()?;
                if !has_keys && oauth2.is_none() {
                    return Err(AuthConfigError(
                        "mode composite needs api_keys, an oauth2 block, or both".into(),
                    ));
                }
                Self {
                    keys: keys()?,
                    oauth2,
                }
            }
        };
        Ok(Some(policy))
    }

    /// Authenticates a bearer token (or an API key sent as one).
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
        if let Some(identity) = self.match_key(token) {
            return Ok(identity);
        }
        match &self.oauth2 {
            // A JWT has three dot-separated parts; anything else is a (wrong) API key.
            Some(verifier) if token.split('.').count() == 3 => verifier.verify(token).await,
            Some(_) if self.keys.is_empty() => Err(AuthError::InvalidToken("not a JWT".into())),
            _ => Err(AuthError::InvalidKey),
        }
    }

    fn match_key(&self, token: &str) -> Option<Identity> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every key is compared, in constant time, whatever matches first.
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        found.map(|key| Identity {
            user_id: key.name.clone(),
            scopes: key.scopes.clone(),
            method: "api_key",
        })
    }
}

/// Keys fetched from the issuer, by `kid`.
struct KeyCache {
    keys: BTreeMap<String, (DecodingKey, Algorithm)>,
    fetched: Option<Instant>,
}

/// Verifies OAuth2 access tokens (JWTs) against the issuer's JWKS.
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    jwks_uri: String,
    algorithms: Vec<Algorithm>,
    scope_claim: String,
    leeway: u64,
    cache: RwLock<KeyCache>,
    http: reqwest::Client,
    /// Serialises fetches so concurrent misses fetch once.
    fetching: tokio::sync::Mutex<()>,
}

fn algorithm(name: &str) -> Result<Algorithm, AuthConfigError> {
    match name {
        "RS256" => Ok(Algorithm::RS256),
        "RS384" => Ok(Algorithm::RS384),
        "RS512" => Ok(Algorithm::RS512),
        "PS256" => Ok(Algorithm::PS256),
        "PS384" => Ok(Algorithm::PS384),
        "PS512" => Ok(Algorithm::PS512),
        "ES256" => Ok(Algorithm::ES256),
        "ES384" => Ok(Algorithm::ES384),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => Err(AuthConfigError(format!(
            "oauth2 algorithm '{other}' is not supported (asymmetric ones only: RS256/384/512, PS256/384/512, ES256/384, EdDSA)"
        ))),
    }
}

impl JwtVerifier {
    pub fn new(config: &OAuth2Config) -> Result<Self, AuthConfigError> {
        if config.issuer.is_empty() || config.audience.is_empty() {
            return Err(AuthConfigError(
                "oauth2 needs 'issuer' and 'audience'".into(),
            ));
        }
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| algorithm(a))
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return Err(AuthConfigError("oauth2 'algorithms' is empty".into()));
        }
        let jwks_uri = config.jwks_uri.clone().unwrap_or_else(|| {
            format!(
                "{}/.well-known/jwks.json",
                config.issuer.trim_end_matches('/')
            )
        });
        Ok(Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            jwks_uri,
            algorithms,
            scope_claim: config.scope_claim.clone(),
            leeway: config.clock_skew_seconds,
            cache: RwLock::new(KeyCache {
                keys: BTreeMap::new(),
                fetched: None,
            }),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn cached(&self, kid: &str) -> (Option<(DecodingKey, Algorithm)>, Option<Instant>) {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        (cache.keys.get(kid).cloned(), cache.fetched)
    }

    /// Fetches the key set; on failure the stale copy stays.
    async fn refresh(&self, seen: Option<Instant>) {
        let _guard = self.fetching.lock().await;
        if self.cached("").1 != seen {
            return; // another request fetched meanwhile
        }
        let result = async {
            let set: JwkSet = self
                .http
                .get(&self.jwks_uri)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .error_for_status()
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(set)
        }
        .await;
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.fetched = Some(Instant::now());
        match result {
            Ok(set) => {
                let mut keys = BTreeMap::new();
                for jwk in &set.keys {
                    let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk))
                    else {
                        continue;
                    };
                    let alg = jwk
                        .common
                        .key_algorithm
                        .and_then(|a| a.to_string().parse::<Algorithm>().ok());
                    keys.insert(kid.clone(), (key, alg.unwrap_or(Algorithm::RS256)));
                }
                cache.keys = keys;
            }
            Err(err) => {
                tracing::warn!(jwks = %self.jwks_uri, error = %err, "JWKS fetch failed; keeping the keys we had");
            }
        }
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let (key, fetched) = self.cached(kid);
        let stale = fetched.is_none_or(|at| at.elapsed() > JWKS_TTL);
        if let (Some((key, _)), false) = (&key, stale) {
            return Some(key.clone());
        }
        let may_fetch = stale || fetched.is_some_and(|at| at.elapsed() > JWKS_REFETCH_GAP);
        if may_fetch {
            self.refresh(fetched).await;
        }
        self.cached(kid)
            .0
            .map(|(key, _)| key)
            .or(key.map(|(k, _)| k))
    }

    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let invalid = |why: String| AuthError::InvalidToken(why);
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("no 'kid' in the header".into()))?;
        let key = self
            .key(&kid)
            .await
            .ok_or_else(|| invalid(format!("unknown signing key '{kid}'")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.leeway;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
            .map_err(|e| invalid(e.to_string()))?;
        let claims = data.claims;
        let scopes = match claims.get(&self.scope_claim) {
            Some(Value::String(text)) => text.split_whitespace().map(String::from).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Identity {
            user_id: claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            scopes,
            method: "oauth2",
        })
    }
}

/// Shared handle.
pub type SharedAuthenticator = Arc<Authenticator>;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml_keys: Vec<ApiKeyConfig>, mode: Option<AuthMode>) -> AuthConfig {
        AuthConfig {
            enabled: true,
            mode,
            api_keys: yaml_keys,
            oauth2: None,
            public_paths: vec![],
        }
    }

    fn key(name: &str, key: &str, scopes: &[&str]) -> ApiKeyConfig {
        ApiKeyConfig {
            name: name.into(),
            key: Some(key.into()),
            key_sha256: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn keys_authenticate_by_hash_with_their_scopes() {
        let mut hashed = key("ci", "", &["agents:read"]);
        hashed.key = None;
        hashed.key_sha256 = Some(sha256_hex("ci-secret"));
        let Ok(Some(auth)) = Authenticator::from_config(&config(
            vec![key("alice", "alice-secret", &["*"]), hashed],
            None,
        )) else {
            unreachable!("two valid keys make an api_key policy")
        };
        let alice = auth.authenticate(Some("alice-secret")).await;
        assert_eq!(alice.as_ref().map(|i| i.user_id.as_str()), Ok("alice"));
        let Ok(ci) = auth.authenticate(Some("ci-secret")).await else {
            unreachable!("the hashed key authenticates")
        };
        assert_eq!(ci.user_id, "ci");
        assert!(ci.allows("agents:read") && !ci.allows("admin") && !ci.is_admin());
        assert_eq!(
            auth.authenticate(Some("nope")).await,
            Err(AuthError::InvalidKey)
        );
        assert_eq!(auth.authenticate(None).await, Err(AuthError::Missing));
    }

    #[test]
    fn scopes_match_exactly_or_by_the_invoke_rule() {
        let id = Identity {
            user_id: "u".into(),
            scopes: vec!["agents:invoke".into(), "admin:*".into()],
            method: "api_key",
        };
        assert!(id.allows("agents:invoke:writer"));
        assert!(id.allows("admin:*") && !id.allows("admin"));
        let narrow = Identity {
            scopes: vec!["agents:invoke:writer".into()],
            ..id
        };
        assert!(narrow.allows("agents:invoke:writer") && !narrow.allows("agents:invoke:other"));
    }

    #[test]
    fn unusable_configurations_are_refused() {
        let open = Authenticator::from_config(&config(vec![], None));
        assert!(matches!(open, Ok(None)), "nothing configured: no auth");
        let explicit = Authenticator::from_config(&config(vec![], Some(AuthMode::ApiKey)));
        assert!(explicit.is_err(), "api_key without keys never runs open");
        assert!(Authenticator::from_config(&config(vec![], Some(AuthMode::Oauth2))).is_err());
        let mut both = key("a", "k", &[]);
        both.key_sha256 = Some("00".into());
        assert!(Authenticator::from_config(&config(vec![both], None)).is_err());
    }
}
