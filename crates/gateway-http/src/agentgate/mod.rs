//! The gateway as an agentgate site: every enabled agent is an intent (a single invoke whose
//! input is `message` plus the agent's `input_schema`), and a server-orchestrated flow
//! `chat_<agent>` (`begin` → `say`* → `end`) holds a conversation with it. Runs go through the
//! core's [`Runner`] for the caller the site's auth identified, so they are the caller's
//! executions and sessions, under the same scope and ownership rules as the REST API.
//!
//! The site is rebuilt when the workspace generation changes (reload republishes it); its
//! flow sessions outlive reloads.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use agentgate::protocol::ErrorBody;
use agentgate::server::{
    AgentApp, Auth, BuildError, Context, Flow, HandlerError, Intent, MemorySessionStore,
    SessionStore, Step,
};
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use gateway_core::workspace::AgentDefinition;
use gateway_core::{Actor, Gateway, GatewayError, Generation, RunRequest, Runner};
use serde_json::{Map, Value, json};

/// Session data key holding the gateway chat session of a flow session.
const CHAT_SESSION: &str = "chat_session_id";

/// `message` plus the agent's own input properties.
fn input_schema(agent: &AgentDefinition) -> Value {
    let mut properties = Map::new();
    properties.insert(
        "message".into(),
        json!({"type": "string", "description": format!("What to ask {}", agent.id)}),
    );
    let mut required = vec![Value::String("message".into())];
    if let Some(schema) = &agent.input_schema {
        if let Some(own) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in own {
                if name != "message" {
                    properties.insert(name.clone(), property.clone());
                }
            }
        }
        if let Some(own) = schema.get("required").and_then(Value::as_array) {
            required.extend(
                own.iter()
                    .filter(|r| r.as_str() != Some("message"))
                    .cloned(),
            );
        }
    }
    let mut schema = json!({"type": "object", "properties": properties, "required": required});
    if let Some(defs) = agent.input_schema.as_ref().and_then(|s| s.get("$defs")) {
        schema["$defs"] = defs.clone();
    }
    schema
}

fn invoke_output(agent: &AgentDefinition) -> Value {
    json!({
        "type": "object",
        "properties": {
            "execution_id": {"type": "string"},
            "status": {"type": "string", "enum": ["completed", "failed", "cancelled", "timeout"]},
            "output": agent.output_schema.clone().unwrap_or_else(|| json!({})),
            "raw_text": {"type": "string"},
            "error": {"type": ["string", "null"]}
        },
        "required": ["execution_id", "status", "raw_text"]
    })
}

fn chat_output() -> Value {
    json!({
        "type": "object",
        "properties": {
            "reply": {"type": "string"},
            "status": {"type": "string"},
            "turn_count": {"type": "integer"},
            "error": {"type": ["string", "null"]}
        },
        "required": ["reply", "status", "turn_count"]
    })
}

/// Splits `message` from the agent's input.
fn split(arguments: Value) -> Result<(String, Map<String, Value>), HandlerError> {
    let Value::Object(mut map) = arguments else {
        return Err(HandlerError::invalid_input("expected an object"));
    };
    match map.remove("message") {
        Some(Value::String(message)) => Ok((message, map)),
        _ => Err(HandlerError::invalid_input(
            "'message' (a string) is required",
        )),
    }
}

/// The protocol's answer to a refusal of the core.
fn refused(err: GatewayError) -> HandlerError {
    match err {
        GatewayError::InvalidInput { .. }
        | GatewayError::NotFound { .. }
        | GatewayError::AgentDisabled(_)
        | GatewayError::SessionAgentMismatch { .. }
        | GatewayError::SetupRequired { .. } => HandlerError::invalid_input(err.to_string()),
        GatewayError::Forbidden { .. }
        | GatewayError::InsufficientScope { .. }
        | GatewayError::AuthRequired => HandlerError::forbidden(err.to_string()),
        other => HandlerError::failed(other.to_string()),
    }
}

/// How runs reach the core, and who asks.
#[derive(Clone)]
struct Calls {
    runner: Arc<dyn Runner>,
    /// Whether the site identifies its callers (auth on): a call without an identified
    /// caller is then refused rather than run as nobody.
    identified: bool,
}

impl Calls {
    fn actor(&self, ctx: &Context) -> Result<Actor, HandlerError> {
        match (ctx.caller::<Actor>(), self.identified) {
            (Some(actor), _) => Ok(actor.clone()),
            (None, false) => Ok(Actor::anonymous()),
            (None, true) => Err(HandlerError::forbidden("the caller was not identified")),
        }
    }
}

fn intent(agent: &AgentDefinition, calls: Calls) -> Intent {
    let agent_id = agent.id.clone();
    Intent::dynamic(
        agent.id.clone(),
        agent.display_description(),
        input_schema(agent),
        invoke_output(agent),
        move |ctx: Context, arguments: Value| {
            let (calls, agent_id) = (calls.clone(), agent_id.clone());
            async move {
                let actor = calls.actor(&ctx)?;
                let (message, input) = split(arguments)?;
                let result = calls
                    .runner
                    .run(&actor, RunRequest::invoke(agent_id, message).input(input))
                    .await
                    .map_err(refused)?;
                Ok(json!({
                    "execution_id": result.execution_id,
                    "status": result.status,
                    "output": result.answer.output,
                    "raw_text": result.answer.raw_text,
                    "error": result.error,
                }))
            }
        },
    )
}

/// One chat turn for a flow step; `begin` creates the gateway session, `say` continues it.
async fn turn(
    calls: Calls,
    agent_id: String,
    ctx: Context,
    arguments: Value,
) -> Result<Value, HandlerError> {
    let actor = calls.actor(&ctx)?;
    let (message, input) = split(arguments)?;
    let request = RunRequest::chat(agent_id, message, ctx.get::<String>(CHAT_SESSION)).input(input);
    let result = calls.runner.run(&actor, request).await.map_err(refused)?;
    let (session_id, turn_count) = result
        .chat
        .map(|chat| (chat.session_id, chat.turn_count))
        .unwrap_or_default();
    ctx.set(CHAT_SESSION, &session_id);
    Ok(json!({
        "reply": result.answer.raw_text,
        "status": result.status,
        "turn_count": turn_count,
        "error": result.error,
    }))
}

fn chat_flow(agent: &AgentDefinition, calls: Calls) -> Flow {
    let step = |name: &str, after: Vec<String>, description: String| {
        let (calls, agent_id) = (calls.clone(), agent.id.clone());
        Step::dynamic(
            name,
            after,
            description,
            input_schema(agent),
            chat_output(),
            move |ctx: Context, arguments: Value| {
                turn(calls.clone(), agent_id.clone(), ctx, arguments)
            },
        )
    };
    let end_calls = calls.clone();
    let earlier = vec!["begin".to_string(), "say".to_string()];
    Flow::server(
        format!("chat_{}", agent.id),
        format!(
            "A conversation with {}: {}",
            agent.id,
            agent.display_description()
        ),
    )
    .step(step(
        "begin",
        Vec::new(),
        "Start the conversation with a first message".into(),
    ))
    .step(step("say", earlier.clone(), "Send the next message".into()))
    .step(Step::dynamic(
        "end",
        earlier,
        "End the conversation",
        json!({"type": "object", "properties": {}, "required": []}),
        json!({"type": "object", "properties": {"ended": {"type": "boolean"}}}),
        move |ctx: Context, _arguments: Value| {
            let calls = end_calls.clone();
            async move {
                if let Some(session) = ctx.get::<String>(CHAT_SESSION) {
                    let actor = calls.actor(&ctx)?;
                    calls
                        .runner
                        .end_session(&actor, &session)
                        .await
                        .map_err(refused)?;
                }
                Ok(json!({"ended": true}))
            }
        },
    ))
}

/// The agentgate app of a workspace generation. The manifest mirrors the gateway's auth:
/// callers present the same bearer credential (API key or token) as on `/v1`; which agents
/// they may run is decided by the core, as for every run.
fn app(
    generation: &Generation,
    gateway: &Gateway,
    sessions: Arc<dyn SessionStore>,
) -> Result<AgentApp, BuildError> {
    let identified = generation.auth_enabled();
    let policy = if identified {
        let gateway = gateway.clone();
        Auth::bearer_identified(move |token: String| {
            let gateway = gateway.clone();
            async move { gateway.authenticate(Some(&token)).await.ok() }
        })
    } else {
        Auth::none()
    };
    let calls = Calls {
        runner: Arc::new(gateway.clone()),
        identified,
    };
    let mut builder = AgentApp::builder(generation.config().dashboard.title.clone())
        .description("AI agents of this Agent Gateway")
        .version(env!("CARGO_PKG_VERSION"))
        .auth(policy)
        .shared_session_store(sessions);
    for agent in generation.agents().filter(|a| a.enabled) {
        builder = builder
            .intent(intent(agent, calls.clone()))
            .flow(chat_flow(agent, calls.clone()));
    }
    builder.build()
}

/// The agentgate endpoints of the current generation, built once per generation.
pub(crate) struct Publisher {
    gateway: Gateway,
    /// Flow sessions, kept across generations.
    sessions: Arc<dyn SessionStore>,
    /// The generation the router was built for, and the router (`None`: not published).
    current: RwLock<Option<(u64, Option<Router>)>>,
}

impl Publisher {
    pub(crate) fn new(gateway: Gateway) -> Self {
        let config = gateway.config();
        let sessions: Arc<dyn SessionStore> = Arc::new(MemorySessionStore::new(
            config.agentgate.max_sessions,
            Duration::from_secs(config.agentgate.session_ttl_seconds),
        ));
        Self {
            gateway,
            sessions,
            current: RwLock::new(None),
        }
    }

    /// The router of the generation in effect.
    fn router(&self) -> Option<Router> {
        let generation = self.gateway.generation();
        let number = generation.number();
        if let Some((built_for, router)) = &*self.current.read().unwrap_or_else(|p| p.into_inner())
            && *built_for == number
        {
            return router.clone();
        }
        let router = if generation.config().agentgate.enabled {
            match app(&generation, &self.gateway, Arc::clone(&self.sessions)) {
                Ok(app) => Some(app.router(&generation.config().server.public_url)),
                Err(err) => {
                    tracing::warn!(error = %err, "agentgate manifest not published");
                    None
                }
            }
        } else {
            None
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some((number, router.clone()));
        router
    }
}

/// The agentgate routes (`/.well-known/agent-manifest.json`, `/agent/...`).
pub(crate) fn routes(gateway: Gateway) -> Router {
    let publisher = Arc::new(Publisher::new(gateway));
    Router::new()
        .route(
            agentgate::protocol::MANIFEST_PATH,
            axum::routing::any(endpoint),
        )
        .route("/agent/{*rest}", axum::routing::any(endpoint))
        .with_state(publisher)
}

/// Hands a request to the current generation's site.
async fn endpoint(State(publisher): State<Arc<Publisher>>, request: Request) -> Response {
    use tower::ServiceExt;
    // The inner router matches the path itself: it must not see this route's parameters.
    let (mut parts, body) = request.into_parts();
    parts.extensions = http::Extensions::new();
    let request = Request::from_parts(parts, body);
    match publisher.router() {
        Some(router) => match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(ErrorBody {
                error: "not_found".into(),
                message: "This gateway does not publish an agentgate manifest".into(),
                current_step: None,
                allowed_next_steps: None,
                details: None,
            }),
        )
            .into_response(),
    }
}
