//! [`LlmClient`]: `provider/model` names → adapters, with credentials, timeouts, retries and
//! the fallback model.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use model_script::{Player, Script};
use rand::Rng;

use crate::anthropic::Anthropic;
use crate::gemini::Gemini;
use crate::http::Endpoint;
use crate::openai::OpenAi;
use crate::scripted::{self, Scripted};
use crate::{Completion, CompletionRequest, CompletionStream, LlmError, ModelProvider};

/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A provider's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Gemini,
    /// Answered in-process by a script ([`crate::scripted`]): no endpoint, no key.
    Scripted,
}

/// How to reach one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSettings {
    pub kind: ProviderKind,
    /// The key itself (from configuration).
    pub api_key: Option<String>,
    /// Environment variable holding the key (named in errors when it is missing).
    pub api_key_env: Option<String>,
    /// Further variables tried for the key, in order (e.g. `GOOGLE_API_KEY`).
    pub api_key_env_fallbacks: Vec<String>,
    /// Base URL from configuration.
    pub api_base: Option<String>,
    /// Environment variables tried for the base URL, in order.
    pub api_base_env: Vec<String>,
    /// Base URL when nothing overrides it.
    pub default_base: Option<String>,
    /// Appended to a base URL read from the environment (Ollama's `/v1`).
    pub env_base_suffix: String,
    /// Whether calls to the default base need a key (false for local servers).
    pub key_required: bool,
    pub headers: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    pub max_retries: Option<u32>,
    pub retry_base_delay: Option<Duration>,
}

impl ProviderSettings {
    /// A provider of `kind` with nothing configured yet (key optional, no default base).
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            api_key: None,
            api_key_env: None,
            api_key_env_fallbacks: Vec::new(),
            api_base: None,
            api_base_env: Vec::new(),
            default_base: None,
            env_base_suffix: String::new(),
            key_required: false,
            headers: BTreeMap::new(),
            timeout: None,
            max_retries: None,
            retry_base_delay: None,
        }
    }

    fn builtin(kind: ProviderKind, key_env: &str, base_env: &[&str], default_base: &str) -> Self {
        Self {
            api_key_env: Some(key_env.to_string()),
            api_base_env: base_env.iter().map(|s| s.to_string()).collect(),
            default_base: Some(default_base.to_string()),
            key_required: true,
            ..Self::new(kind)
        }
    }
}

/// Everything the client needs: providers, the environment snapshot, and retry policy.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Environment values (keys, base URLs), taken once so tests never touch the process env.
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub max_retries: u32,
    pub retry_base_delay: Duration,
    /// Scripts of the `scripted/<name>` models by name; a name without one answers with the
    /// echo.
    pub scripts: BTreeMap<String, Script>,
}

impl LlmSettings {
    /// Built-in providers (`openai`, `anthropic`, `gemini`, `ollama`, `scripted`) over the
    /// process environment.
    pub fn from_env() -> Self {
        Self::from_env_map(std::env::vars().collect())
    }

    /// Built-in providers over the given environment.
    pub fn from_env_map(env: BTreeMap<String, String>) -> Self {
        let mut providers = BTreeMap::new();
        providers.insert(
            "openai".to_string(),
            ProviderSettings::builtin(
                ProviderKind::OpenAi,
                "OPENAI_API_KEY",
                &["OPENAI_API_BASE", "OPENAI_BASE_URL"],
                "https://api.openai.com/v1",
            ),
        );
        providers.insert(
            "anthropic".to_string(),
            ProviderSettings::builtin(
                ProviderKind::Anthropic,
                "ANTHROPIC_API_KEY",
                &["ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"],
                "https://api.anthropic.com",
            ),
        );
        let mut gemini = ProviderSettings::builtin(
            ProviderKind::Gemini,
            "GEMINI_API_KEY",
            &["GEMINI_API_BASE"],
            "https://generativelanguage.googleapis.com",
        );
        gemini.api_key_env_fallbacks = vec!["GOOGLE_API_KEY".to_string()];
        providers.insert("gemini".to_string(), gemini);
        providers.insert(
            "ollama".to_string(),
            ProviderSettings {
                api_base_env: vec!["OLLAMA_API_BASE".to_string(), "OLLAMA_HOST".to_string()],
                default_base: Some("http://localhost:11434/v1".to_string()),
                env_base_suffix: "/v1".to_string(),
                key_required: false,
                ..ProviderSettings::new(ProviderKind::OpenAi)
            },
        );
        providers.insert(
            scripted::PROVIDER.to_string(),
            ProviderSettings::new(ProviderKind::Scripted),
        );
        Self {
            providers,
            env,
            timeout: Duration::from_secs(120),
            max_retries: 2,
            retry_base_delay: Duration::from_millis(500),
            scripts: BTreeMap::new(),
        }
    }
}

/// The model a caller wants, with its per-call settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTarget {
    /// `provider/model` (or a bare model name inferred as LiteLLM does).
    pub name: String,
    /// Used when the request sets none.
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// Base URL for this model only (wins over the provider's).
    pub api_base: Option<String>,
    /// Model tried when this one fails.
    pub fallback: Option<String>,
}

impl ModelTarget {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            temperature: None,
            max_tokens: None,
            api_base: None,
            fallback: None,
        }
    }
}

/// A model name resolved to its adapter and endpoint.
struct Resolved {
    /// `provider/model`.
    full_name: String,
    model: String,
    #[cfg(test)]
    endpoint: Endpoint,
    adapter: Box<dyn ModelProvider>,
    max_retries: u32,
    retry_base_delay: Duration,
}

/// Most resolutions kept; past it the cache starts over (names come from configuration, so
/// this is only reached by something unusual, and must not grow without end).
const MAX_RESOLVED: usize = 1024;

/// Routes calls to providers. Cheap to clone.
#[derive(Clone)]
pub struct LlmClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: LlmSettings,
    http: reqwest::Client,
    /// Resolutions by model name (and `\0` + base when the target overrides the base):
    /// the settings never change, so a name resolves to the same adapter every time.
    resolved: RwLock<HashMap<String, Arc<Resolved>>>,
    /// The players of scripted models by name, kept apart from `resolved` (which may be
    /// emptied) so a script is played once through, whatever else is resolved.
    players: RwLock<HashMap<String, Arc<Player>>>,
}

/// Splits `provider/model`, inferring the provider of a bare name.
fn split_name(name: &str) -> Result<(String, String), LlmError> {
    if let Some((provider, model)) = name.split_once('/')
        && !provider.is_empty()
        && !model.is_empty()
    {
        return Ok((provider.to_string(), model.to_string()));
    }
    let provider = if ["gpt-", "o1", "o3", "o4", "chatgpt-"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        "openai"
    } else if name.starts_with("claude-") {
        "anthropic"
    } else if name.starts_with("gemini-") {
        "gemini"
    } else {
        return Err(LlmError::UnknownProvider {
            model: name.to_string(),
            hint: "name the provider, as in openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest, gemini/gemini-2.0-flash or ollama/llama3.2".to_string(),
        });
    };
    Ok((provider.to_string(), name.to_string()))
}

impl LlmClient {
    pub fn new(settings: LlmSettings) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            inner: Arc::new(Inner {
                settings,
                http,
                resolved: RwLock::new(HashMap::new()),
                players: RwLock::new(HashMap::new()),
            }),
        }
    }

    fn env(&self, name: &str) -> Option<String> {
        self.inner
            .settings
            .env
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }

    /// [`Self::resolve`], remembered.
    fn resolved(&self, name: &str, api_base: Option<&str>) -> Result<Arc<Resolved>, LlmError> {
        let key = match api_base {
            None => std::borrow::Cow::Borrowed(name),
            Some(base) => std::borrow::Cow::Owned(format!("{name}\0{base}")),
        };
        if let Some(found) = self
            .inner
            .resolved
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key.as_ref())
        {
            return Ok(Arc::clone(found));
        }
        let resolved = Arc::new(self.resolve(name, api_base)?);
        let mut cache = self
            .inner
            .resolved
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_RESOLVED {
            cache.clear();
        }
        cache.insert(key.into_owned(), Arc::clone(&resolved));
        Ok(resolved)
    }

    /// The player of the scripted model `model`, started on first use.
    fn player(&self, model: &str) -> Arc<Player> {
        if let Some(player) = self
            .inner
            .players
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(model)
        {
            return Arc::clone(player);
        }
        let mut players = self
            .inner
            .players
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let script = self.inner.settings.scripts.get(model).cloned();
        Arc::clone(
            players
                .entry(model.to_string())
                .or_insert_with(|| Arc::new(Player::new(script.unwrap_or_default()))),
        )
    }

    fn resolve(&self, name: &str, api_base: Option<&str>) -> Result<Resolved, LlmError> {
        let settings = &self.inner.settings;
        let (provider_name, model) = split_name(name)?;
        let provider = settings.providers.get(&provider_name).ok_or_else(|| {
            let known: Vec<&str> = settings.providers.keys().map(String::as_str).collect();
            LlmError::UnknownProvider {
                model: name.to_string(),
                hint: format!(
                    "no provider '{provider_name}' (known: {}); declare it under 'providers' in gateway.yaml",
                    known.join(", ")
                ),
            }
        })?;
        if provider.kind == ProviderKind::Scripted {
            return Ok(Resolved {
                full_name: format!("{provider_name}/{model}"),
                #[cfg(test)]
                endpoint: Endpoint {
                    provider: provider_name.clone(),
                    http: self.inner.http.clone(),
                    base: String::new(),
                    api_key: None,
                    headers: BTreeMap::new(),
                    timeout: settings.timeout,
                },
                adapter: Box::new(Scripted::new(self.player(&model))),
                model,
                max_retries: provider.max_retries.unwrap_or(settings.max_retries),
                retry_base_delay: provider
                    .retry_base_delay
                    .unwrap_or(settings.retry_base_delay),
            });
        }
        let env_base = provider
            .api_base_env
            .iter()
            .find_map(|var| self.env(var))
            .map(|base| {
                let base = base.trim_end_matches('/').to_string();
                if provider.env_base_suffix.is_empty() || base.ends_with(&provider.env_base_suffix)
                {
                    base
                } else {
                    format!("{base}{}", provider.env_base_suffix)
                }
            });
        let overridden = api_base.is_some() || provider.api_base.is_some() || env_base.is_some();
        let base = api_base
            .map(String::from)
            .or_else(|| provider.api_base.clone())
            .or(env_base)
            .or_else(|| provider.default_base.clone())
            .ok_or_else(|| LlmError::UnknownProvider {
                model: name.to_string(),
                hint: format!("provider '{provider_name}' has no api_base"),
            })?;
        let key = provider.api_key.clone().or_else(|| {
            provider
                .api_key_env
                .iter()
                .chain(&provider.api_key_env_fallbacks)
                .find_map(|var| self.env(var))
        });
        // Built-in hosted providers need a key unless pointed elsewhere; a provider declared
        // with its own `api_key_env` needs that variable.
        let needs_key = if provider.key_required {
            !overridden
        } else {
            provider.api_key_env.is_some()
        };
        if key.is_none() && needs_key {
            return Err(LlmError::MissingCredential {
                provider: provider_name.clone(),
                env_var: provider
                    .api_key_env
                    .clone()
                    .unwrap_or_else(|| format!("the api_key of provider '{provider_name}'")),
                model: name.to_string(),
            });
        }
        let endpoint = Endpoint {
            provider: provider_name.clone(),
            http: self.inner.http.clone(),
            base,
            api_key: key,
            headers: provider.headers.clone(),
            timeout: provider.timeout.unwrap_or(settings.timeout),
        };
        // A base that is not a usable URL is the configuration's fault: say so now, rather
        // than fail (and retry) every call.
        endpoint.parse_url("")?;
        #[cfg(test)]
        let kept_endpoint = endpoint.clone();
        let adapter: Box<dyn ModelProvider> = match provider.kind {
            ProviderKind::OpenAi => Box::new(OpenAi::new(endpoint)),
            ProviderKind::Anthropic => Box::new(Anthropic::new(endpoint)),
            ProviderKind::Gemini => Box::new(Gemini::new(endpoint)),
            ProviderKind::Scripted => Box::new(Scripted::new(self.player(&model))),
        };
        Ok(Resolved {
            full_name: format!("{provider_name}/{model}"),
            model,
            #[cfg(test)]
            endpoint: kept_endpoint,
            adapter,
            max_retries: provider.max_retries.unwrap_or(settings.max_retries),
            retry_base_delay: provider
                .retry_base_delay
                .unwrap_or(settings.retry_base_delay),
        })
    }

    /// Checks that `name` can be called as configured (provider known, key present) without
    /// calling it.
    pub fn check_model(&self, name: &str) -> Result<(), LlmError> {
        self.resolved(name, None).map(|_| ())
    }

    fn fill(target: &ModelTarget, request: &CompletionRequest) -> CompletionRequest {
        let mut request = request.clone();
        if request.temperature.is_none() {
            request.temperature = target.temperature;
        }
        if request.max_tokens.is_none() {
            request.max_tokens = target.max_tokens;
        }
        request
    }

    /// Runs `call` with retries on retryable errors.
    async fn with_retries<T, F, Fut>(resolved: &Resolved, mut call: F) -> Result<T, LlmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let mut attempt = 0u32;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_retryable() && attempt < resolved.max_retries => {
                    let delay = match &err {
                        LlmError::Http {
                            retry_after: Some(wait),
                            ..
                        } => (*wait).min(MAX_RETRY_AFTER),
                        _ => {
                            let base = resolved
                                .retry_base_delay
                                .saturating_mul(1 << attempt.min(10));
                            let jitter_ms = rand::rng().random_range(
                                0..=(resolved.retry_base_delay.as_millis() as u64 / 2),
                            );
                            base + Duration::from_millis(jitter_ms)
                        }
                    };
                    tracing::warn!(model = %resolved.full_name, attempt = attempt + 1, error = %err, ?delay, "model call failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn complete_one(
        &self,
        name: &str,
        api_base: Option<&str>,
        request: &CompletionRequest,
    ) -> Result<Completion, LlmError> {
        let resolved = self.resolved(name, api_base)?;
        let mut completion = Self::with_retries(&resolved, || {
            resolved.adapter.complete(&resolved.model, request)
        })
        .await?;
        completion.model = resolved.full_name.clone();
        Ok(completion)
    }

    async fn stream_one(
        &self,
        name: &str,
        api_base: Option<&str>,
        request: &CompletionRequest,
    ) -> Result<CompletionStream, LlmError> {
        let resolved = self.resolved(name, api_base)?;
        let stream = Self::with_retries(&resolved, || {
            resolved.adapter.stream(&resolved.model, request)
        })
        .await?;
        let full_name = resolved.full_name.clone();
        Ok(Box::pin(futures::StreamExt::map(stream, move |event| {
            event.map(|event| match event {
                crate::StreamEvent::Finished(mut completion) => {
                    completion.model = full_name.clone();
                    crate::StreamEvent::Finished(completion)
                }
                other => other,
            })
        })))
    }

    /// One embedding per text from `model` (`provider/model`), with retries.
    pub async fn embed(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let resolved = self.resolved(model, None)?;
        Self::with_retries(&resolved, || resolved.adapter.embed(&resolved.model, texts)).await
    }

    /// One completion: the target model with retries, then its fallback if it still fails.
    pub async fn complete(
        &self,
        target: &ModelTarget,
        request: &CompletionRequest,
    ) -> Result<Completion, LlmError> {
        let request = Self::fill(target, request);
        match self
            .complete_one(&target.name, target.api_base.as_deref(), &request)
            .await
        {
            Ok(completion) => Ok(completion),
            Err(err) => match &target.fallback {
                Some(fallback) => {
                    tracing::warn!(model = %target.name, %fallback, error = %err, "model failed; using the fallback");
                    self.complete_one(fallback, None, &request).await
                }
                None => Err(err),
            },
        }
    }

    /// A streamed completion. Retries and the fallback apply until the stream has started.
    pub async fn stream(
        &self,
        target: &ModelTarget,
        request: &CompletionRequest,
    ) -> Result<CompletionStream, LlmError> {
        let request = Self::fill(target, request);
        match self
            .stream_one(&target.name, target.api_base.as_deref(), &request)
            .await
        {
            Ok(stream) => Ok(stream),
            Err(err) => match &target.fallback {
                Some(fallback) => {
                    tracing::warn!(model = %target.name, %fallback, error = %err, "model failed; using the fallback");
                    self.stream_one(fallback, None, &request).await
                }
                None => Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_inference() {
        assert_eq!(
            split_name("gemini/gemini-2.0-flash").unwrap(),
            ("gemini".into(), "gemini-2.0-flash".into())
        );
        assert_eq!(
            split_name("gpt-4o-mini").unwrap(),
            ("openai".into(), "gpt-4o-mini".into())
        );
        assert_eq!(split_name("claude-3-5-haiku").unwrap().0, "anthropic");
        assert_eq!(split_name("o3-mini").unwrap().0, "openai");
        assert!(matches!(
            split_name("llama3"),
            Err(LlmError::UnknownProvider { .. })
        ));
        // Only the first slash separates the provider (model names may contain slashes).
        assert_eq!(
            split_name("local/org/model").unwrap(),
            ("local".into(), "org/model".into())
        );
    }

    fn client(env: &[(&str, &str)]) -> LlmClient {
        LlmClient::new(LlmSettings::from_env_map(
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    #[test]
    fn credentials_and_bases() {
        let err = client(&[]).check_model("anthropic/claude-x").unwrap_err();
        assert!(err.to_string().contains("ANTHROPIC_API_KEY"), "{err}");
        assert!(err.is_configuration());
        assert!(
            client(&[("ANTHROPIC_API_KEY", "k")])
                .check_model("anthropic/claude-x")
                .is_ok()
        );
        assert!(
            client(&[("GOOGLE_API_KEY", "k")])
                .check_model("gemini/gemini-x")
                .is_ok()
        );
        assert!(
            client(&[]).check_model("ollama/llama3.2").is_ok(),
            "local servers need no key"
        );
        assert!(
            client(&[("OPENAI_API_BASE", "http://localhost:8080/v1")])
                .check_model("openai/local")
                .is_ok()
        );
        let err = client(&[]).check_model("nope/model").unwrap_err();
        assert!(
            err.to_string()
                .contains("known: anthropic, gemini, ollama, openai, scripted"),
            "{err}"
        );

        let err = client(&[("OPENAI_API_BASE", "localhost:8080/v1")])
            .check_model("openai/m")
            .unwrap_err();
        assert!(err.is_configuration() && !err.is_retryable(), "{err:?}");
        assert!(
            err.to_string()
                .contains("invalid api_base 'localhost:8080/v1': it must start with http"),
            "{err}"
        );
        let err = client(&[("OPENAI_API_BASE", "http://")])
            .check_model("openai/m")
            .unwrap_err();
        assert!(err.to_string().contains("empty host"), "{err}");

        let c = client(&[("OLLAMA_API_BASE", "http://gpu:11434")]);
        let resolved = c.resolve("ollama/llama3.2", None).unwrap();
        assert_eq!(resolved.endpoint.base, "http://gpu:11434/v1");
        let resolved = c
            .resolve("ollama/llama3.2", Some("http://other/v1"))
            .unwrap();
        assert_eq!(resolved.endpoint.base, "http://other/v1");
    }
}
