//! The gate in front of every `/v1` route and `/metrics`: authentication, rate limits and
//! the scope each route needs. A `/v1` route without an entry in [`access`] is refused, so no
//! route can ship unguarded.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gateway_core::rate_limit::Verdict;
use gateway_core::{Actor, Gateway, GatewayError};

use super::error::{ApiError, RequestError};

/// The metrics route (guarded here though it is not under `/v1`).
const METRICS: &str = "/metrics";

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Scope(&'static str),
    /// `agents:invoke`, or `agents:invoke:<agent_id>` for that agent.
    InvokeAgent,
}

/// Whether the guard stands in front of `path` (a request path, or a route template): every
/// `/v1` route and `/metrics`. Anything else has its own rules (docs are public, agentgate
/// enforces its manifest's auth, a host program's routes are its own).
pub fn is_guarded(path: &str) -> bool {
    path.starts_with("/v1/") || path == METRICS
}

/// The access rule of each `/v1` route (by method and route pattern).
pub fn access(method: &Method, route: &str) -> Option<Access> {
    use Access::{InvokeAgent, Public, Scope};
    let get = method == Method::GET;
    let post = method == Method::POST;
    let delete = method == Method::DELETE;
    Some(match route {
        "/v1/health" | "/v1/ready" if get => Public,
        "/v1/agents"
        | "/v1/agents/{agent_id}"
        | "/v1/agents/{agent_id}/setup-schema"
        | "/v1/skills"
        | "/v1/skills/{skill_id}"
        | "/v1/tools"
        | "/v1/tools/{tool_name}"
            if get =>
        {
            Scope("agents:read")
        }
        "/v1/agents/{agent_id}/invoke" | "/v1/agents/{agent_id}/chat" if post => InvokeAgent,
        "/v1/agents/{agent_id}/config" if get || post || delete => Scope("agents:configure"),
        "/v1/agents/{agent_id}/memories" | "/v1/agents/{agent_id}/memories/{memory_id}" if get => {
            Scope("agents:read")
        }
        // Who runs an agent may keep its memories: `agents:invoke:<agent>` is enough.
        "/v1/agents/{agent_id}/memories" if post => InvokeAgent,
        "/v1/agents/{agent_id}/memories/{memory_id}" if delete || method == Method::PATCH => {
            InvokeAgent
        }
        "/v1/agents/{agent_id}/memory/compact" if post => Scope("agents:manage"),
        "/v1/sessions" | "/v1/sessions/{session_id}" if get => Scope("sessions:read"),
        "/v1/sessions/{session_id}" if delete => Scope("sessions:manage"),
        "/v1/users/me/conversations" | "/v1/users/me/conversations/{conversation_id}/messages"
            if get =>
        {
            Scope("sessions:read")
        }
        "/v1/executions"
        | "/v1/executions/{execution_id}"
        | "/v1/executions/{execution_id}/steps"
        | "/v1/executions/{execution_id}/workflow"
        | "/v1/executions/{execution_id}/approvals"
            if get =>
        {
            Scope("executions:read")
        }
        "/v1/executions/{execution_id}/cancel" if post => Scope("executions:cancel"),
        "/v1/executions/{execution_id}/approve" | "/v1/executions/{execution_id}/deny" if post => {
            Scope("executions:approve")
        }
        "/v1/schedules" | "/v1/schedules/{schedule_id}" if get => Scope("schedules:read"),
        "/v1/schedules" if post => Scope("schedules:manage"),
        "/v1/schedules/{schedule_id}" if delete || method == Method::PATCH => {
            Scope("schedules:manage")
        }
        "/v1/schedules/{schedule_id}/pause"
        | "/v1/schedules/{schedule_id}/resume"
        | "/v1/schedules/{schedule_id}/trigger"
            if post =>
        {
            Scope("schedules:manage")
        }
        "/v1/notifications" if get => Scope("notifications:read"),
        "/v1/notifications/{notification_id}/retry" if post => Scope("notifications:manage"),
        "/v1/reload" if post => Scope("admin"),
        "/metrics" if get => Scope("metrics:read"),
        route if route.starts_with("/v1/admin/mcp-servers") => Scope("admin:*"),
        _ => return None,
    })
}

/// The bearer token (or an `X-API-Key`).
fn credential(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return value.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

fn client_address(request: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for
        && let Some(first) = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
    {
        return first.trim().to_string();
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Authenticates a `/v1` request, counts it against the rate limits, checks the route's
/// scope, and attaches the caller's [`Actor`] for the handler.
pub async fn guard(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    match admit(&gateway, request).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// Refuses a caller whose scopes do not cover the route's rule.
fn check_scope(actor: &Actor, rule: Access, path: &str) -> Result<(), ApiError> {
    match rule {
        Access::Public | Access::Scope("") => Ok(()),
        Access::Scope(scope) if actor.allows(scope) => Ok(()),
        Access::Scope(scope) => Err(GatewayError::InsufficientScope {
            scope: scope.to_string(),
        }
        .into()),
        Access::InvokeAgent => {
            let agent = path
                .strip_prefix("/v1/agents/")
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default();
            Ok(actor.check_run(agent)?)
        }
    }
}

async fn admit(gateway: &Gateway, mut request: Request) -> Result<Request, ApiError> {
    let path = request.uri().path().to_string();
    // Preflights are answered by the CORS layer.
    if request.method() == Method::OPTIONS || !is_guarded(&path) {
        return Ok(request);
    }
    let generation = gateway.generation();
    // Nested under a prefix, the matched route carries it: the rules know `/v1/...` and
    // `/metrics` only.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str())
        .and_then(|m| match m.find("/v1/") {
            Some(at) => Some(m[at..].to_string()),
            None => m.ends_with(METRICS).then(|| METRICS.to_string()),
        });
    let rule = match route.as_deref() {
        Some(route) => access(request.method(), route).or_else(|| {
            // A known route with another method is a 405, answered after authentication.
            let methods = [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ];
            methods
                .iter()
                .any(|m| access(m, route).is_some())
                .then_some(Access::Scope(""))
        }),
        // Unknown paths fall through to the 404 answer (after authentication).
        None => Some(Access::Scope("")),
    };
    let Some(rule) = rule else {
        tracing::error!(route = ?route, "route without an access rule refused");
        return Err(RequestError::Unguarded.into());
    };
    let public = rule == Access::Public
        || generation
            .config()
            .auth
            .public_paths
            .iter()
            .any(|p| p == &path);
    let credential = credential(&request);
    let actor = if !generation.auth_enabled() {
        Actor::anonymous()
    } else if public {
        // A public path serves anyone; a caller who says who it is still gets its own view.
        match credential {
            Some(credential) => gateway
                .authenticate(Some(&credential))
                .await
                .unwrap_or_else(|_| Actor::public()),
            None => Actor::public(),
        }
    } else {
        gateway
            .authenticate(credential.as_deref())
            .await
            .map_err(RequestError::Unauthenticated)?
    };
    let key = match actor.user_id() {
        Some(user) => format!("user:{user}"),
        None => format!(
            "ip:{}",
            client_address(&request, gateway.trusts_forwarded_for())
        ),
    };
    if let Some(Verdict::Limited { retry_after, limit }) = gateway.rate_limit(&key, &path).await {
        return Err(RequestError::RateLimited { retry_after, limit }.into());
    }
    if !public && generation.auth_enabled() {
        check_scope(&actor, rule, &path)?;
    }
    request.extensions_mut().insert(actor);
    Ok(request)
}
