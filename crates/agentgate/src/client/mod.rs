//! The agent side: discover a site, call its intents, drive its flows.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agentgate::client::ClientError> {
//! use agentgate::client::AgentClient;
//! use serde_json::json;
//!
//! let client = AgentClient::builder().agent_id("my-agent").api_key("demo-key").build()?;
//! let site = client.discover("http://127.0.0.1:8000").await?;
//! let restaurants = site.call_intent("search_restaurants", json!({"query": "pizza", "location": "Berlin"})).await?;
//! let mut order = site.flow("order_food")?.start().await?;
//! order.step("search", json!({"query": "pizza", "location": "Berlin"})).await?;
//! assert!(!order.is_complete());
//! # let _ = restaurants; Ok(()) }
//! ```

pub mod decode;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::protocol::{
    ErrorBody, FlowDef, HEADER_AGENT_ID, HEADER_AGENT_REQUEST, HEADER_AGENT_VERSION,
    HEADER_SESSION_ID, MANIFEST_PATH, Manifest, Orchestration, PROTOCOL_VERSION, SessionState,
    StartResponse, StepResponse,
};
use decode::{intent_error, step_error};

/// What went wrong talking to a site.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The site does not publish an agent manifest.
    #[error("{url} does not speak agentgate: {reason}")]
    ManifestNotFound { url: String, reason: String },
    #[error("intent '{0}' is not in the manifest")]
    IntentNotFound(String),
    #[error("flow '{0}' is not in the manifest")]
    FlowNotFound(String),
    /// An intent answered with an error.
    #[error("intent '{intent}' failed with HTTP {status} ({code}): {message}")]
    Intent {
        intent: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The step is not allowed now (checked locally, or refused by the site).
    #[error("step '{step}' is not allowed now; allowed: {allowed:?}")]
    StepTransition { step: String, allowed: Vec<String> },
    #[error("session '{0}' not found (expired or unknown)")]
    SessionNotFound(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Any other error answer of the site.
    #[error("HTTP {status} ({code}): {message}")]
    Http {
        status: u16,
        code: String,
        message: String,
    },
    /// The connection failed or the site answered something that is not the protocol.
    #[error("{0}")]
    Transport(String),
}

struct Cached {
    manifest: Arc<Manifest>,
    etag: Option<String>,
    fetched: Instant,
}

/// Headers computed afresh for every request (see [`AgentClientBuilder::request_headers`]).
pub type RequestHeaders = Arc<dyn Fn() -> reqwest::header::HeaderMap + Send + Sync>;

/// Configures an [`AgentClient`].
#[derive(Clone)]
pub struct AgentClientBuilder {
    agent_id: Option<String>,
    api_key: Option<String>,
    bearer_token: Option<String>,
    timeout: Duration,
    cache_ttl: Duration,
    request_headers: Option<RequestHeaders>,
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for AgentClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClientBuilder")
            .field("agent_id", &self.agent_id)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("cache_ttl", &self.cache_ttl)
            .field("request_headers", &self.request_headers.is_some())
            .field("http", &self.http.is_some())
            .finish()
    }
}

impl AgentClientBuilder {
    /// Headers added to every request, computed when it is sent: W3C trace context
    /// (`traceparent`), say, so a site's own traces continue the caller's.
    pub fn request_headers(
        mut self,
        headers: impl Fn() -> reqwest::header::HeaderMap + Send + Sync + 'static,
    ) -> Self {
        self.request_headers = Some(Arc::new(headers));
        self
    }

    /// Sent as `X-Agent-ID`.
    pub fn agent_id(mut self, id: impl Into<String>) -> Self {
        self.agent_id = Some(id.into());
        self
    }

    /// Sent in the header the manifest names, to sites with `api_key` auth.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Sent as `Authorization: Bearer`, to sites with `bearer` auth.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// The HTTP client requests go through (default: a plain one): one with a proxy, its
    /// own TLS roots, or a DNS resolver that decides which addresses may be reached. The
    /// per-request time limit still applies.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Per-request time limit (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a discovered manifest is used before it is revalidated (default 300 s).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    pub fn build(self) -> Result<AgentClient, ClientError> {
        let http = match &self.http {
            Some(client) => client.clone(),
            None => reqwest::Client::builder()
                .build()
                .map_err(|err| ClientError::Transport(err.to_string()))?,
        };
        Ok(AgentClient {
            inner: Arc::new(ClientInner {
                http,
                config: self,
                cache: Mutex::new(HashMap::new()),
            }),
        })
    }
}

struct ClientInner {
    http: reqwest::Client,
    config: AgentClientBuilder,
    cache: Mutex<HashMap<String, Cached>>,
}

/// Discovers agentgate sites and talks to them. Cheap to clone.
#[derive(Clone)]
pub struct AgentClient {
    inner: Arc<ClientInner>,
}

impl AgentClient {
    pub fn builder() -> AgentClientBuilder {
        AgentClientBuilder {
            agent_id: None,
            api_key: None,
            bearer_token: None,
            timeout: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(300),
            request_headers: None,
            http: None,
        }
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<String, Cached>> {
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn agent_headers(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let mut request = request
            .timeout(self.inner.config.timeout)
            .header(HEADER_AGENT_REQUEST, "true")
            .header(HEADER_AGENT_VERSION, PROTOCOL_VERSION);
        if let Some(id) = &self.inner.config.agent_id {
            request = request.header(HEADER_AGENT_ID, id);
        }
        if let Some(headers) = &self.inner.config.request_headers {
            request = request.headers(headers());
        }
        request
    }

    fn transport(&self, err: reqwest::Error) -> ClientError {
        if err.is_timeout() {
            ClientError::Timeout(self.inner.config.timeout)
        } else {
            // reqwest's own message is only the step that failed ("error sending request
            // for url ..."); the reason is in its sources.
            let mut message = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            ClientError::Transport(message)
        }
    }

    /// Fetches (or reuses) the manifest of the site at `url`. The manifest is cached for the
    /// TTL, then revalidated with its ETag.
    pub async fn discover(&self, url: &str) -> Result<Site, ClientError> {
        let base = url.trim_end_matches('/').to_string();
        let ttl = self.inner.config.cache_ttl;
        let etag = {
            let cache = self.cache();
            match cache.get(&base) {
                Some(cached) if cached.fetched.elapsed() < ttl => {
                    return Ok(self.site(&base, Arc::clone(&cached.manifest)));
                }
                Some(cached) => cached.etag.clone(),
                None => None,
            }
        };
        let not_found = |reason: String| ClientError::ManifestNotFound {
            url: base.clone(),
            reason,
        };
        let mut request = self.agent_headers(self.inner.http.get(format!("{base}{MANIFEST_PATH}")));
        if let Some(etag) = &etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|err| match self.transport(err) {
                ClientError::Transport(reason) => not_found(reason),
                other => other,
            })?;
        if response.status() == StatusCode::NOT_MODIFIED {
            let mut cache = self.cache();
            if let Some(cached) = cache.get_mut(&base) {
                cached.fetched = Instant::now();
                return Ok(self.site(&base, Arc::clone(&cached.manifest)));
            }
        }
        if !response.status().is_success() {
            return Err(not_found(format!(
                "GET {MANIFEST_PATH} answered HTTP {}",
                response.status().as_u16()
            )));
        }
        let new_etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = response.text().await.map_err(|err| self.transport(err))?;
        let manifest = Arc::new(decode::manifest(&base, &text)?);
        self.cache().insert(
            base.clone(),
            Cached {
                manifest: Arc::clone(&manifest),
                etag: new_etag,
                fetched: Instant::now(),
            },
        );
        Ok(self.site(&base, manifest))
    }

    fn site(&self, base: &str, manifest: Arc<Manifest>) -> Site {
        Site {
            client: self.clone(),
            base: base.to_string(),
            manifest,
        }
    }

    /// Forgets every cached manifest.
    pub fn clear_cache(&self) {
        self.cache().clear();
    }
}

/// A discovered site.
#[derive(Clone)]
pub struct Site {
    client: AgentClient,
    base: String,
    manifest: Arc<Manifest>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("name", &self.manifest.name)
            .field("intents", &self.intents())
            .field("flows", &self.flows())
            .finish()
    }
}

/// The site's error body, or a description of what came back instead.
async fn error_of(response: reqwest::Response) -> (u16, ErrorBody) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, decode::error_body(&text))
}

impl Site {
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Intent names, in manifest order.
    pub fn intents(&self) -> Vec<&str> {
        self.manifest
            .intents
            .iter()
            .map(|i| i.name.as_str())
            .collect()
    }

    /// Flow names, in manifest order.
    pub fn flows(&self) -> Vec<&str> {
        self.manifest
            .flows
            .iter()
            .map(|f| f.name.as_str())
            .collect()
    }

    /// The URL of `path` (an intent's `endpoint`: the manifest's text) on this site. Only a
    /// path on the same origin is taken: `//host/x` or `@host/x` after the base would lead
    /// to another host, with this site's credentials.
    fn endpoint_url(&self, path: &str) -> Result<reqwest::Url, ClientError> {
        let refused = |why: &str| {
            ClientError::Transport(format!(
                "the manifest's endpoint '{path}' is not a path on {}: {why}",
                self.base
            ))
        };
        if !path.starts_with('/') || path.starts_with("//") || path.contains('\\') {
            return Err(refused("it must start with a single '/'"));
        }
        let base = reqwest::Url::parse(&self.base).map_err(|_| refused("the base is not a URL"))?;
        let url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|err| refused(&err.to_string()))?;
        if url.origin() != base.origin() {
            return Err(refused("it leads to another origin"));
        }
        Ok(url)
    }

    /// The URL of the protocol route made of `segments` (flow and step names among them,
    /// each encoded as one path segment whatever it holds) under this site's base.
    fn route_url(&self, segments: &[&str]) -> Result<reqwest::Url, ClientError> {
        let mut url = reqwest::Url::parse(&self.base)
            .map_err(|err| ClientError::Transport(format!("{}: {err}", self.base)))?;
        url.path_segments_mut()
            .map_err(|()| ClientError::Transport(format!("{} cannot take a path", self.base)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// A POST with the agent headers and the credentials the manifest asks for.
    fn post(&self, url: reqwest::Url) -> reqwest::RequestBuilder {
        let request = self.client.agent_headers(self.client.inner.http.post(url));
        self.credentials(request)
    }

    fn get(&self, url: reqwest::Url) -> reqwest::RequestBuilder {
        let request = self.client.agent_headers(self.client.inner.http.get(url));
        self.credentials(request)
    }

    fn credentials(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let config = &self.client.inner.config;
        match self.manifest.auth.kind.as_str() {
            "api_key" => match &config.api_key {
                Some(key) => request.header(
                    self.manifest.auth.header.as_deref().unwrap_or("X-API-Key"),
                    key,
                ),
                None => request,
            },
            "bearer" => match &config.bearer_token {
                Some(token) => request.bearer_auth(token),
                None => request,
            },
            _ => request,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        request
            .send()
            .await
            .map_err(|err| self.client.transport(err))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, ClientError> {
        let text = response
            .text()
            .await
            .map_err(|err| self.client.transport(err))?;
        decode::answer(&text)
    }

    /// Calls an intent with named arguments (a JSON object).
    pub async fn call_intent(&self, name: &str, arguments: Value) -> Result<Value, ClientError> {
        let intent = self
            .manifest
            .intent(name)
            .ok_or_else(|| ClientError::IntentNotFound(name.to_string()))?;
        let url = self.endpoint_url(&intent.endpoint)?;
        let response = self.send(self.post(url).json(&arguments)).await?;
        if response.status().is_success() {
            return self.json(response).await;
        }
        let (status, body) = error_of(response).await;
        Err(intent_error(name, status, body))
    }

    /// Calls an intent with typed arguments and result.
    pub async fn call_intent_as<A: Serialize, T: DeserializeOwned>(
        &self,
        name: &str,
        arguments: &A,
    ) -> Result<T, ClientError> {
        let arguments = serde_json::to_value(arguments)
            .map_err(|err| ClientError::Transport(err.to_string()))?;
        let value = self.call_intent(name, arguments).await?;
        serde_json::from_value(value)
            .map_err(|err| ClientError::Transport(format!("unexpected result: {err}")))
    }

    /// A flow of the site.
    pub fn flow(&self, name: &str) -> Result<FlowHandle, ClientError> {
        let definition = self
            .manifest
            .flow(name)
            .ok_or_else(|| ClientError::FlowNotFound(name.to_string()))?;
        Ok(FlowHandle {
            site: self.clone(),
            definition: definition.clone(),
        })
    }
}

/// A flow of a discovered site.
#[derive(Clone)]
pub struct FlowHandle {
    site: Site,
    definition: FlowDef,
}

impl FlowHandle {
    pub fn definition(&self) -> &FlowDef {
        &self.definition
    }

    /// Starts a session of a server-orchestrated flow.
    pub async fn start(&self) -> Result<FlowSession, ClientError> {
        let name = &self.definition.name;
        if self.definition.orchestration != Orchestration::Server {
            return Err(ClientError::Http {
                status: 404,
                code: "wrong_orchestration".into(),
                message: format!(
                    "flow '{name}' is client-orchestrated: call its steps with call_step"
                ),
            });
        }
        let response = self
            .site
            .send(
                self.site
                    .post(self.site.route_url(&["agent", "flows", name, "start"])?)
                    .json(&serde_json::json!({})),
            )
            .await?;
        if !response.status().is_success() {
            let (status, body) = error_of(response).await;
            return Err(step_error(name, "", None, status, body));
        }
        let started: StartResponse = self.site.json(response).await?;
        Ok(FlowSession {
            site: self.site.clone(),
            flow: name.clone(),
            session_id: started.session_id,
            current_step: started.current_step,
            allowed: started.allowed_next_steps,
            complete: false,
        })
    }

    /// Picks up a session started earlier (by this or another client): its position is read
    /// from the site.
    pub async fn resume(&self, session_id: &str) -> Result<FlowSession, ClientError> {
        let mut session = FlowSession {
            site: self.site.clone(),
            flow: self.definition.name.clone(),
            session_id: session_id.to_string(),
            current_step: String::new(),
            allowed: Vec::new(),
            complete: false,
        };
        let state = session.state().await?;
        session.current_step = state.current_step;
        session.allowed = state.allowed_next_steps;
        session.complete = state.flow_complete;
        Ok(session)
    }

    /// Calls one step of a client-orchestrated flow (stateless).
    pub async fn call_step(&self, step: &str, arguments: Value) -> Result<Value, ClientError> {
        let name = &self.definition.name;
        let response = self
            .site
            .send(
                self.site
                    .post(
                        self.site
                            .route_url(&["agent", "flows", name, "steps", step])?,
                    )
                    .json(&arguments),
            )
            .await?;
        if response.status().is_success() {
            return self.site.json(response).await;
        }
        let (status, body) = error_of(response).await;
        Err(step_error(name, step, None, status, body))
    }
}

/// A session of a server-orchestrated flow.
#[derive(Clone)]
pub struct FlowSession {
    site: Site,
    flow: String,
    session_id: String,
    current_step: String,
    allowed: Vec<String>,
    complete: bool,
}

impl FlowSession {
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    pub fn current_step(&self) -> &str {
        &self.current_step
    }

    pub fn allowed_next_steps(&self) -> &[String] {
        &self.allowed
    }

    /// True once the last step has run (nothing is allowed after it).
    pub fn is_complete(&self) -> bool {
        self.complete || (!self.current_step.is_empty() && self.allowed.is_empty())
    }

    /// Runs the next step. A step that is not allowed is refused before any request.
    pub async fn step(&mut self, step: &str, arguments: Value) -> Result<Value, ClientError> {
        if !self.allowed.iter().any(|s| s == step) {
            return Err(ClientError::StepTransition {
                step: step.to_string(),
                allowed: self.allowed.clone(),
            });
        }
        let flow = self.flow.clone();
        let response = self
            .site
            .send(
                self.site
                    .post(
                        self.site
                            .route_url(&["agent", "flows", &flow, "step", step])?,
                    )
                    .header(HEADER_SESSION_ID, &self.session_id)
                    .json(&arguments),
            )
            .await?;
        if !response.status().is_success() {
            let (status, body) = error_of(response).await;
            if let Some(allowed) = &body.allowed_next_steps {
                self.allowed = allowed.clone();
            }
            return Err(step_error(
                &flow,
                step,
                Some(&self.session_id),
                status,
                body,
            ));
        }
        let answer: StepResponse = self.site.json(response).await?;
        self.current_step = answer.current_step;
        self.allowed = answer.allowed_next_steps;
        self.complete = answer.flow_complete;
        Ok(answer.result)
    }

    /// Runs the next step with typed arguments and result.
    pub async fn step_as<A: Serialize, T: DeserializeOwned>(
        &mut self,
        step: &str,
        arguments: &A,
    ) -> Result<T, ClientError> {
        let arguments = serde_json::to_value(arguments)
            .map_err(|err| ClientError::Transport(err.to_string()))?;
        let value = self.step(step, arguments).await?;
        serde_json::from_value(value)
            .map_err(|err| ClientError::Transport(format!("unexpected result: {err}")))
    }

    /// The session as the site keeps it (history and data included).
    pub async fn state(&self) -> Result<SessionState, ClientError> {
        let response = self
            .site
            .send(self.site.get(self.site.route_url(&[
                "agent",
                "flows",
                &self.flow,
                "session",
                &self.session_id,
            ])?))
            .await?;
        if !response.status().is_success() {
            let (status, body) = error_of(response).await;
            return Err(step_error(
                &self.flow,
                "",
                Some(&self.session_id),
                status,
                body,
            ));
        }
        self.site.json(response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(base: &str) -> Result<Site, ClientError> {
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "agent_api_version": "1.0", "name": "shop"
        }))
        .map_err(|err| ClientError::Transport(err.to_string()))?;
        Ok(AgentClient::builder()
            .build()?
            .site(base, Arc::new(manifest)))
    }

    #[test]
    fn an_endpoint_is_a_path_on_the_site_and_nothing_else() -> Result<(), ClientError> {
        let shop = site("https://shop.example/api")?;
        assert_eq!(
            shop.endpoint_url("/agent/intents/search")?.as_str(),
            "https://shop.example/api/agent/intents/search"
        );
        for hostile in [
            "@evil.example/x",
            "//evil.example/x",
            "evil",
            "/\\evil.example",
            ".evil.example/x",
            ":8080/x",
        ] {
            assert!(shop.endpoint_url(hostile).is_err(), "{hostile}");
        }
        Ok(())
    }

    #[test]
    fn names_are_one_path_segment_each() -> Result<(), ClientError> {
        let shop = site("https://shop.example")?;
        let url = shop.route_url(&["agent", "flows", "../admin?x=1#y", "start"])?;
        assert_eq!(url.host_str(), Some("shop.example"));
        assert_eq!(
            url.path(),
            "/agent/flows/..%2Fadmin%3Fx=1%23y/start",
            "{url}"
        );
        assert_eq!(url.query(), None);
        Ok(())
    }
}
