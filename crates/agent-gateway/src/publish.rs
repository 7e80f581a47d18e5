//! The gateway as an agentgate site: every enabled agent is an intent (a single invoke whose
//! input is `message` plus the agent's `input_schema`), and a server-orchestrated flow
//! `chat_<agent>` (`begin` → `say`* → `end`) holds a conversation with it.

use std::sync::Arc;

use agentgate::server::{
    AgentApp, Auth, BuildError, Context, Flow, HandlerError, Intent, SessionStore, Step,
};
use gateway_workspace::{AgentDefinition, Workspace};
use serde_json::{Map, Value, json};

use crate::error::GatewayError;
use crate::gateway::{ChatRequest, GatewayHandle, InvokeRequest};

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

fn refused(err: GatewayError) -> HandlerError {
    match err {
        GatewayError::InvalidInput { details } => HandlerError::invalid_input(details.join("; ")),
        GatewayError::AgentNotFound(_)
        | GatewayError::AgentDisabled(_)
        | GatewayError::SessionNotFound(_) => HandlerError::invalid_input(err.to_string()),
        other => HandlerError::failed(other.to_string()),
    }
}

fn gateway(handle: &GatewayHandle) -> Result<crate::Gateway, HandlerError> {
    handle
        .get()
        .ok_or_else(|| HandlerError::failed("the gateway is shutting down"))
}

fn intent(agent: &AgentDefinition, handle: GatewayHandle) -> Intent {
    let agent_id = agent.id.clone();
    Intent::dynamic(
        agent.id.clone(),
        agent.display_description(),
        input_schema(agent),
        invoke_output(agent),
        move |_ctx: Context, arguments: Value| {
            let (handle, agent_id) = (handle.clone(), agent_id.clone());
            async move {
                let (message, input) = split(arguments)?;
                let result = gateway(&handle)?
                    .invoke_with(InvokeRequest::new(agent_id, message).input(input))
                    .await
                    .map_err(refused)?;
                Ok(json!({
                    "execution_id": result.execution_id,
                    "status": result.status,
                    "output": result.result.output,
                    "raw_text": result.result.raw_text,
                    "error": result.error,
                }))
            }
        },
    )
}

/// One chat turn for a flow step; `begin` creates the gateway session, `say` continues it.
async fn turn(
    handle: GatewayHandle,
    agent_id: String,
    ctx: Context,
    arguments: Value,
) -> Result<Value, HandlerError> {
    let (message, input) = split(arguments)?;
    let mut request = ChatRequest::new(agent_id, message);
    request.input = input;
    request.session_id = ctx.get::<String>(CHAT_SESSION);
    let result = gateway(&handle)?.chat(request).await.map_err(refused)?;
    ctx.set(CHAT_SESSION, &result.session_id);
    Ok(json!({
        "reply": result.result.raw_text,
        "status": result.status,
        "turn_count": result.turn_count,
        "error": result.error,
    }))
}

fn chat_flow(agent: &AgentDefinition, handle: GatewayHandle) -> Flow {
    let step = |name: &str, after: Vec<String>, description: String| {
        let (handle, agent_id) = (handle.clone(), agent.id.clone());
        Step::dynamic(
            name,
            after,
            description,
            input_schema(agent),
            chat_output(),
            move |ctx: Context, arguments: Value| {
                turn(handle.clone(), agent_id.clone(), ctx, arguments)
            },
        )
    };
    let end_handle = handle.clone();
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
            let handle = end_handle.clone();
            async move {
                if let Some(session) = ctx.get::<String>(CHAT_SESSION) {
                    gateway(&handle)?
                        .delete_session(&session)
                        .await
                        .map_err(refused)?;
                }
                Ok(json!({"ended": true}))
            }
        },
    ))
}

/// The agentgate app of a workspace generation.
pub(crate) fn app(
    workspace: &Workspace,
    handle: &GatewayHandle,
    sessions: Arc<dyn SessionStore>,
    auth: Option<Arc<crate::auth::Authenticator>>,
) -> Result<AgentApp, BuildError> {
    // The manifest mirrors the gateway's auth: callers present the same bearer credential
    // (API key or token) as on /v1, and need the `agents:invoke` scope.
    let policy = match auth {
        None => Auth::none(),
        Some(auth) => Auth::bearer_verified(move |token: String| {
            let auth = Arc::clone(&auth);
            async move {
                auth.authenticate(Some(&token))
                    .await
                    .is_ok_and(|identity| identity.allows("agents:invoke"))
            }
        }),
    };
    let mut builder = AgentApp::builder(workspace.config.dashboard.title.clone())
        .description("AI agents of this Agent Gateway")
        .version(env!("CARGO_PKG_VERSION"))
        .auth(policy)
        .shared_session_store(sessions);
    for agent in workspace.agents.values().filter(|a| a.enabled) {
        builder = builder
            .intent(intent(agent, handle.clone()))
            .flow(chat_flow(agent, handle.clone()));
    }
    builder.build()
}
