//! The agent endpoints on axum, every error in the protocol's shape.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonschema::Validator;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::app::AgentApp;
use super::handler::{Callable, Context, HandlerError};
use super::session::{Claim, FlowSession};
use crate::protocol::{
    ErrorBody, HEADER_AGENT_ID, HEADER_AGENT_REQUEST, HEADER_SESSION_ID, MANIFEST_PATH,
    Orchestration, StartResponse, StepResponse,
};

/// An error answer of the protocol.
pub(crate) struct ProtocolError {
    status: StatusCode,
    /// Boxed: errors travel in `Result`s on every path.
    body: Box<ErrorBody>,
    challenge: Option<&'static str>,
}

impl ProtocolError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody {
                error: code.to_string(),
                message: message.into(),
                current_step: None,
                allowed_next_steps: None,
                details: None,
            }),
            challenge: None,
        }
    }

    fn not_allowed(step: &str, session: &FlowSession) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "step_not_allowed",
            format!(
                "Step '{step}' cannot follow '{}'. Allowed next: {:?}",
                session.current_step, session.allowed_next_steps
            ),
        );
        error.body.current_step = Some(session.current_step.clone());
        error.body.allowed_next_steps = Some(session.allowed_next_steps.clone());
        error
    }

    fn invalid_input(message: impl Into<String>, details: Vec<Value>) -> Self {
        let mut error = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message);
        error.body.details = Some(details);
        error
    }

    fn store(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "agentgate session store failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "The session store is unavailable",
        )
    }
}

impl IntoResponse for ProtocolError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(*self.body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

type Answer = Result<Response, ProtocolError>;

struct Served {
    app: AgentApp,
    manifest_json: String,
    etag: String,
    /// Input validators by (flow name or "" for intents, handler name).
    validators: HashMap<(String, String), Validator>,
}

impl AgentApp {
    /// Adds the agent endpoints to `router` (whose own routes are untouched) with an empty
    /// `base_url` in the manifest.
    pub fn mount<S>(&self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        self.mount_at(router, "")
    }

    /// Like [`AgentApp::mount`], declaring `base_url` in the manifest.
    pub fn mount_at<S>(&self, router: Router<S>, base_url: &str) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        router
            .merge(self.router(base_url))
            .layer(axum::middleware::from_fn(link_header))
    }

    /// The agent endpoints alone (no `Link` layer), with `base_url` in the manifest.
    pub fn router<S>(&self, base_url: &str) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let mut manifest = self.inner.manifest.clone();
        manifest.base_url = base_url.to_string();
        let manifest_json = serde_json::to_string(&manifest).unwrap_or_else(|_| "{}".into());
        let etag = format!(
            "\"{}\"",
            hex::encode(&Sha256::digest(manifest_json.as_bytes())[..16])
        );
        let mut validators = HashMap::new();
        let mut compile = |scope: &str, name: &str, callable: &Callable| {
            match jsonschema::validator_for(&callable.input_schema) {
                Ok(validator) => {
                    validators.insert((scope.to_string(), name.to_string()), validator);
                }
                Err(err) => {
                    tracing::warn!(%name, error = %err, "input schema does not compile; inputs are not validated")
                }
            }
        };
        for (name, callable) in &self.inner.intents {
            compile("", name, callable);
        }
        for (flow_name, flow) in &self.inner.flows {
            for (step, callable) in &flow.handlers {
                compile(flow_name, step, callable);
            }
        }
        let served = Arc::new(Served {
            app: self.clone(),
            manifest_json,
            etag,
            validators,
        });
        Router::new()
            .route(MANIFEST_PATH, get(serve_manifest))
            .route("/agent/intents/{name}", post(intent))
            .route("/agent/flows/{name}/start", post(start))
            .route("/agent/flows/{name}/step/{step}", post(server_step))
            .route(
                "/agent/flows/{name}/session/{session_id}",
                get(session_state),
            )
            .route("/agent/flows/{name}/steps/{step}", post(client_step))
            .with_state(served)
    }
}

/// Adds `Link: </.well-known/agent-manifest.json>; rel="agent-manifest"` to the host's own
/// routes when an agent calls them.
async fn link_header(request: Request, next: Next) -> Response {
    let from_agent = request
        .headers()
        .get(HEADER_AGENT_REQUEST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    if from_agent && path != MANIFEST_PATH && !path.starts_with("/agent/") {
        response.headers_mut().insert(
            header::LINK,
            HeaderValue::from_static("</.well-known/agent-manifest.json>; rel=\"agent-manifest\""),
        );
    }
    response
}

async fn serve_manifest(State(served): State<Arc<Served>>, headers: HeaderMap) -> Response {
    let etag = served.etag.as_str();
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            served.manifest_json.clone(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

async fn authorize(
    served: &Served,
    headers: &HeaderMap,
) -> Result<Option<super::auth::Caller>, ProtocolError> {
    served
        .app
        .inner
        .auth
        .check(headers)
        .await
        .map_err(|refusal| {
            let mut error =
                ProtocolError::new(StatusCode::UNAUTHORIZED, "unauthorized", refusal.message);
            error.challenge = refusal.challenge;
            error
        })
}

/// The request body as a JSON object (an empty body is `{}`).
fn arguments(body: &Bytes) -> Result<Map<String, Value>, ProtocolError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ProtocolError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The body must be a JSON object of named arguments",
        )),
        Err(err) => Err(ProtocolError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("The body is not valid JSON: {err}"),
        )),
    }
}

fn validate(served: &Served, scope: &str, name: &str, input: &Value) -> Result<(), ProtocolError> {
    let Some(validator) = served
        .validators
        .get(&(scope.to_string(), name.to_string()))
    else {
        return Ok(());
    };
    let details: Vec<Value> = validator
        .iter_errors(input)
        .map(|err| json!({"path": err.instance_path().to_string(), "message": err.to_string()}))
        .collect();
    if details.is_empty() {
        Ok(())
    } else {
        Err(ProtocolError::invalid_input(
            format!("The input of '{name}' does not match its schema"),
            details,
        ))
    }
}

fn agent_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(HEADER_AGENT_ID)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// Runs a handler; its failure never leaks internal detail.
async fn run(
    callable: &Callable,
    context: Context,
    input: Value,
    what: &str,
) -> Result<Value, ProtocolError> {
    match (callable.handler)(context, input).await {
        Ok(output) => Ok(output),
        Err(HandlerError::InvalidInput(message)) => Err(ProtocolError::invalid_input(
            message.clone(),
            vec![json!({"message": message})],
        )),
        Err(HandlerError::Forbidden(message)) => Err(ProtocolError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            message,
        )),
        Err(HandlerError::Failed(message)) => {
            tracing::error!(%what, error = %message, "agentgate handler failed");
            Err(ProtocolError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler_failed",
                format!(
                    "The handler of '{what}' failed; nothing was changed and the call may be retried"
                ),
            ))
        }
    }
}

async fn intent(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let caller = authorize(&served, &headers).await?;
    let callable = served.app.inner.intents.get(&name).ok_or_else(|| {
        ProtocolError::new(
            StatusCode::NOT_FOUND,
            "intent_not_found",
            format!("Intent '{name}' not found"),
        )
    })?;
    let input = Value::Object(arguments(&body)?);
    validate(&served, "", &name, &input)?;
    let context = Context::new(agent_id(&headers), headers, None, Map::new(), caller);
    let output = run(callable, context, input, &name).await?;
    Ok(axum::Json(output).into_response())
}

fn flow<'a>(
    served: &'a Served,
    name: &str,
    orchestration: Orchestration,
) -> Result<&'a super::app::BuiltFlow, ProtocolError> {
    let flow = served.app.inner.flows.get(name).ok_or_else(|| {
        ProtocolError::new(
            StatusCode::NOT_FOUND,
            "flow_not_found",
            format!("Flow '{name}' not found"),
        )
    })?;
    if flow.definition.orchestration != orchestration {
        let (is, hint) = match flow.definition.orchestration {
            Orchestration::Server => (
                "server",
                "start it with /start and advance it with /step/<name>",
            ),
            Orchestration::Client => ("client", "call its steps with /steps/<name>"),
        };
        return Err(ProtocolError::new(
            StatusCode::NOT_FOUND,
            "wrong_orchestration",
            format!("Flow '{name}' is {is}-orchestrated: {hint}"),
        ));
    }
    Ok(flow)
}

async fn start(
    State(served): State<Arc<Served>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Answer {
    authorize(&served, &headers).await?;
    let flow = flow(&served, &name, Orchestration::Server)?;
    let Some(entry) = flow.definition.entry() else {
        return Err(ProtocolError::new(
            StatusCode::NOT_FOUND,
            "step_not_found",
            "The flow has no entry step",
        ));
    };
    let session = FlowSession::new(uuid::Uuid::new_v4().to_string(), &name, &entry.name);
    served
        .app
        .inner
        .store
        .create(&session)
        .await
        .map_err(ProtocolError::store)?;
    Ok(axum::Json(StartResponse {
        session_id: session.session_id,
        entry_step: entry.name.clone(),
        current_step: String::new(),
        allowed_next_steps: vec![entry.name.clone()],
        input_schema: entry.input_schema.clone(),
    })
    .into_response())
}

async fn server_step(
    State(served): State<Arc<Served>>,
    Path((name, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let caller = authorize(&served, &headers).await?;
    let flow = flow(&served, &name, Orchestration::Server)?;
    let session_id = headers
        .get(HEADER_SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            ProtocolError::new(
                StatusCode::BAD_REQUEST,
                "missing_session_id",
                "Send the session id in the X-Session-ID header",
            )
        })?;
    let (Some(callable), Some(definition)) =
        (flow.handlers.get(&step), flow.definition.step(&step))
    else {
        return Err(ProtocolError::new(
            StatusCode::NOT_FOUND,
            "step_not_found",
            format!("Flow '{name}' has no step '{step}'"),
        ));
    };
    let input = Value::Object(arguments(&body)?);
    let store = &served.app.inner.store;
    let session_not_found = || {
        ProtocolError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            format!("Session '{session_id}' not found for flow '{name}'"),
        )
    };
    // A cheap look first: an out-of-order step is reported as such, not as bad input.
    let current = store
        .get(&session_id)
        .await
        .map_err(ProtocolError::store)?
        .filter(|s| s.flow_name == name)
        .ok_or_else(session_not_found)?;
    if !current.allowed_next_steps.contains(&step) {
        return Err(ProtocolError::not_allowed(&step, &current));
    }
    validate(&served, &name, &step, &input)?;
    let (session, token) = match store
        .claim(&session_id, &step, served.app.inner.claim_lease)
        .await
        .map_err(ProtocolError::store)?
    {
        Claim::Granted { session, token } => (session, token),
        Claim::NotAllowed { session } => return Err(ProtocolError::not_allowed(&step, &session)),
        Claim::NotFound => return Err(session_not_found()),
    };
    let context = Context::new(
        agent_id(&headers),
        headers.clone(),
        Some(session_id.clone()),
        session.data.clone(),
        caller,
    );
    let output = match run(
        callable,
        context.clone(),
        input.clone(),
        &format!("{name}/{step}"),
    )
    .await
    {
        Ok(output) => output,
        Err(error) => {
            if let Err(err) = store.release(&session_id, &token).await {
                tracing::error!(error = %err, "could not release a session claim");
            }
            return Err(error);
        }
    };
    let updated = session.advanced(
        &step,
        input,
        output.clone(),
        definition.next_steps.clone(),
        context.data(),
    );
    if !store
        .commit(&updated, &token)
        .await
        .map_err(ProtocolError::store)?
    {
        // The lease ran out while the handler worked and another call took the session.
        return Err(ProtocolError::not_allowed(&step, &session));
    }
    Ok(axum::Json(StepResponse {
        result: output,
        session_id,
        current_step: step,
        allowed_next_steps: updated.allowed_next_steps.clone(),
        flow_complete: updated.is_complete(),
    })
    .into_response())
}

async fn session_state(
    State(served): State<Arc<Served>>,
    Path((name, session_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    authorize(&served, &headers).await?;
    flow(&served, &name, Orchestration::Server)?;
    let session = served
        .app
        .inner
        .store
        .get(&session_id)
        .await
        .map_err(ProtocolError::store)?
        .filter(|s| s.flow_name == name)
        .ok_or_else(|| {
            ProtocolError::new(
                StatusCode::NOT_FOUND,
                "session_not_found",
                format!("Session '{session_id}' not found for flow '{name}'"),
            )
        })?;
    Ok(axum::Json(session.state()).into_response())
}

async fn client_step(
    State(served): State<Arc<Served>>,
    Path((name, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let caller = authorize(&served, &headers).await?;
    let flow = flow(&served, &name, Orchestration::Client)?;
    let callable = flow.handlers.get(&step).ok_or_else(|| {
        ProtocolError::new(
            StatusCode::NOT_FOUND,
            "step_not_found",
            format!("Flow '{name}' has no step '{step}'"),
        )
    })?;
    let input = Value::Object(arguments(&body)?);
    validate(&served, &name, &step, &input)?;
    let context = Context::new(agent_id(&headers), headers, None, Map::new(), caller);
    let output = run(callable, context, input, &format!("{name}/{step}")).await?;
    Ok(axum::Json(output).into_response())
}
