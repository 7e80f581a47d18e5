//! The HTTP API: thin axum handlers grouped by tag, the error envelope, OpenAPI docs, and the
//! response-header middleware. Handlers parse, call the [`Gateway`], and shape the answer.

mod catalog;
mod conversations;
mod docs;
pub mod error;
pub mod guard;
pub mod identity;
mod mcp;
mod notifications;
mod run;
mod schedules;
mod state;
mod user_config;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use gateway_workspace::config::SecurityConfig;
use utoipa::OpenApi;
use utoipa::openapi::tag::TagBuilder;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody, ErrorDetail, ErrorResponse};

use crate::gateway::Gateway;

/// The built-in tag groups, in display order.
const TAGS: &[(&str, &str)] = &[
    ("Health", "Liveness and workspace summary"),
    (
        "Agents",
        "Agents of the workspace and single-turn invocation",
    ),
    ("Chat", "Multi-turn conversations, optionally streamed"),
    ("Sessions", "In-memory chat sessions"),
    (
        "Conversations",
        "Persisted conversations of the current user",
    ),
    (
        "Executions",
        "Execution records, cancellation and delegation trees",
    ),
    ("Schedules", "Cron schedules of agents"),
    ("Tools", "Tools agents can call"),
    ("Skills", "Skills: tool groups and workflows"),
    ("User Config", "Per-user configuration of personal agents"),
    ("Notifications", "Notification delivery records"),
    ("MCP", "MCP servers whose tools agents call"),
    ("Admin", "Administration"),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agent Gateway",
        description = "AI agents defined as markdown files, served as an API."
    ),
    components(schemas(ErrorResponse))
)]
struct ApiDoc;

/// Builds the API router (with `/docs`, `/redoc` and `/openapi.json`).
pub fn router(gateway: Gateway) -> Router {
    let (api, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(catalog::health))
        .routes(routes!(catalog::list_agents))
        .routes(routes!(catalog::get_agent))
        .routes(routes!(run::invoke))
        .routes(routes!(run::chat))
        .routes(routes!(catalog::setup_schema))
        .routes(routes!(
            user_config::set_config,
            user_config::get_config,
            user_config::delete_config
        ))
        .routes(routes!(catalog::list_skills))
        .routes(routes!(catalog::get_skill))
        .routes(routes!(catalog::list_tools))
        .routes(routes!(catalog::get_tool))
        .routes(routes!(state::list_sessions))
        .routes(routes!(state::get_session, state::delete_session))
        .routes(routes!(state::list_executions))
        .routes(routes!(state::get_execution))
        .routes(routes!(state::execution_steps))
        .routes(routes!(state::execution_workflow))
        .routes(routes!(state::cancel_execution))
        .routes(routes!(state::execution_approvals))
        .routes(routes!(state::approve_execution))
        .routes(routes!(state::deny_execution))
        .routes(routes!(conversations::list_conversations))
        .routes(routes!(conversations::conversation_messages))
        .routes(routes!(state::reload))
        .routes(routes!(
            schedules::list_schedules,
            schedules::create_schedule
        ))
        .routes(routes!(
            schedules::get_schedule,
            schedules::edit_schedule,
            schedules::delete_schedule
        ))
        .routes(routes!(schedules::pause_schedule))
        .routes(routes!(schedules::resume_schedule))
        .routes(routes!(schedules::trigger_schedule))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(notifications::retry_notification))
        .routes(routes!(mcp::list_servers, mcp::create_server))
        .routes(routes!(
            mcp::get_server,
            mcp::update_server,
            mcp::delete_server
        ))
        .routes(routes!(mcp::test_server))
        .routes(routes!(mcp::refresh_server))
        .routes(routes!(mcp::server_tools))
        .split_for_parts();

    let mut tags: Vec<utoipa::openapi::tag::Tag> = TAGS
        .iter()
        .map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        })
        .collect();
    for (name, description) in &gateway.inner.openapi_tags {
        if !tags.iter().any(|t| &t.name == name) {
            tags.push(
                TagBuilder::new()
                    .name(name.clone())
                    .description(Some(description.clone()))
                    .build(),
            );
        }
    }
    openapi.tags = Some(tags);
    openapi.info.version = env!("CARGO_PKG_VERSION").to_string();

    let config = gateway.config();
    let security = Arc::new(SecurityHeaders::new(&config.security));
    let cors = cors_layer(&config.cors);
    let agentgate = Router::new()
        .route(
            agentgate::protocol::MANIFEST_PATH,
            axum::routing::any(agentgate_endpoint),
        )
        .route("/agent/{*rest}", axum::routing::any(agentgate_endpoint))
        .with_state(gateway.clone());
    api.with_state(gateway.clone())
        .merge(agentgate)
        .merge(docs::router(&openapi, gateway.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(gateway, guard::guard))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            security,
            response_headers,
        ))
}

/// CORS from `cors` (a no-op layer when disabled). Preflights are answered here, before the
/// guard, so they are never authenticated or counted.
fn cors_layer(config: &gateway_workspace::config::CorsConfig) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if !config.enabled {
        return CorsLayer::new();
    }
    let origins = if config.allow_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .allow_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let methods: Vec<http::Method> = config
        .allow_methods
        .iter()
        .filter_map(|m| m.parse().ok())
        .collect();
    let headers: Vec<HeaderName> = config
        .allow_headers
        .iter()
        .filter_map(|h| HeaderName::try_from(h.as_str()).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(methods)
        .allow_headers(headers)
        .allow_credentials(config.allow_credentials)
        .max_age(std::time::Duration::from_secs(config.max_age))
}

/// The agentgate endpoints of the current workspace generation (rebuilt on reload).
async fn agentgate_endpoint(State(gateway): State<Gateway>, request: Request) -> Response {
    use tower::ServiceExt;
    // The inner router matches the path itself: it must not see this route's path parameters.
    let (mut parts, body) = request.into_parts();
    let caller = parts.extensions.remove::<identity::Caller>();
    parts.extensions = http::Extensions::new();
    if let Some(caller) = caller {
        parts.extensions.insert(caller);
    }
    let request = Request::from_parts(parts, body);
    match gateway.runtime().agentgate.clone() {
        Some(router) => match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => axum::response::IntoResponse::into_response((
            StatusCode::NOT_FOUND,
            axum::Json(
                serde_json::json!({"error": "not_found", "message": "This gateway does not publish an agentgate manifest"}),
            ),
        )),
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("No route for {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// The security headers, built once from the configuration (not parsed again for every
/// response): one set per content security policy — the API's, the docs', the dashboard's.
struct SecurityHeaders {
    api: Vec<(HeaderName, HeaderValue)>,
    docs: Vec<(HeaderName, HeaderValue)>,
    dashboard: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    fn new(config: &SecurityConfig) -> Self {
        let set = |csp: &str| -> Vec<(HeaderName, HeaderValue)> {
            if !config.enabled {
                return Vec::new();
            }
            [
                (
                    "x-content-type-options",
                    config.x_content_type_options.as_str(),
                ),
                ("x-frame-options", &config.x_frame_options),
                ("referrer-policy", &config.referrer_policy),
                (
                    "strict-transport-security",
                    &config.strict_transport_security,
                ),
                ("content-security-policy", csp),
            ]
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .filter_map(|(name, value)| match HeaderValue::from_str(value) {
                Ok(value) => Some((HeaderName::from_static(name), value)),
                Err(_) => {
                    // The workspace check refuses such values; a config built in code may not.
                    tracing::warn!(header = name, "not a valid HTTP header value: not sent");
                    None
                }
            })
            .collect()
        };
        Self {
            api: set(&config.content_security_policy),
            docs: set(&config.docs_content_security_policy),
            dashboard: set(&config.dashboard_content_security_policy),
        }
    }

    fn for_path(&self, path: &str) -> &[(HeaderName, HeaderValue)] {
        if path.starts_with("/docs") || path.starts_with("/redoc") || path == "/openapi.json" {
            &self.docs
        } else if path.starts_with("/dashboard") {
            &self.dashboard
        } else {
            &self.api
        }
    }
}

/// Adds `X-Request-Duration-Ms` to `/v1` responses and the security headers to all.
async fn response_headers(
    State(security): State<Arc<SecurityHeaders>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let timed = path.starts_with("/v1/");
    let set = security.for_path(path);
    let started = Instant::now();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if timed {
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        headers.insert("x-request-duration-ms", HeaderValue::from(millis));
    }
    for (name, value) in set {
        headers.insert(name.clone(), value.clone());
    }
    response
}
