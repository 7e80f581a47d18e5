//! The REST API (`/v1`): thin axum handlers grouped by tag, and its OpenAPI document with
//! the docs pages. Handlers parse, call the gateway's operations with the caller's actor, and
//! shape the answer; they decide nothing about runs or who may see what.

mod admin;
mod catalog;
mod contract;
mod conversations;
mod docs;
mod executions;
mod mcp;
mod memories;
pub(crate) mod metrics;
mod notifications;
mod run;
mod schedules;
mod sessions;
mod user_config;

use axum::Router;
use gateway_core::Gateway;
use utoipa::OpenApi;
use utoipa::openapi::tag::TagBuilder;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::kit::error::ErrorResponse;

/// The built-in tag groups, in display order.
const TAGS: &[(&str, &str)] = &[
    ("Health", "Liveness and workspace summary"),
    (
        "Agents",
        "Agents of the workspace and single-turn invocation",
    ),
    ("Chat", "Multi-turn conversations, optionally streamed"),
    ("Sessions", "Chat sessions that can be resumed"),
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
    (
        "Memory",
        "What agents remember of their users, and their shared knowledge",
    ),
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

/// The `/v1` routes, a host program's `host_routes` and the docs (`/docs`, `/redoc`,
/// `/openapi.json`); `extra_tags` are tag groups a host program adds (merged with the built-in
/// ones by name). The document is completed by `contract` with what the HTTP layer answers
/// (`body_limit` is the one in force).
pub(crate) fn routes(
    gateway: &Gateway,
    extra_tags: &[(String, String)],
    host_routes: Vec<crate::HostRoutes>,
    body_limit: usize,
) -> Router {
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(catalog::health))
        .routes(routes!(catalog::ready))
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
        .routes(routes!(memories::list_memories, memories::create_memory))
        .routes(routes!(
            memories::get_memory,
            memories::edit_memory,
            memories::delete_memory
        ))
        .routes(routes!(memories::compact_memory))
        .routes(routes!(catalog::list_skills))
        .routes(routes!(catalog::get_skill))
        .routes(routes!(catalog::list_tools))
        .routes(routes!(catalog::get_tool))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::get_session, sessions::delete_session))
        .routes(routes!(executions::list_executions))
        .routes(routes!(executions::get_execution))
        .routes(routes!(executions::execution_steps))
        .routes(routes!(executions::execution_workflow))
        .routes(routes!(executions::cancel_execution))
        .routes(routes!(executions::execution_approvals))
        .routes(routes!(executions::approve_execution))
        .routes(routes!(executions::deny_execution))
        .routes(routes!(conversations::list_conversations))
        .routes(routes!(conversations::conversation_messages))
        .routes(routes!(admin::reload))
        .routes(routes!(metrics::metrics))
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
        .routes(routes!(mcp::server_tools));
    for routes in host_routes {
        api = api.merge(routes);
    }
    let (api, mut openapi) = api.split_for_parts();

    let mut tags: Vec<utoipa::openapi::tag::Tag> = TAGS
        .iter()
        .map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        })
        .collect();
    for (name, description) in extra_tags {
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
    let mut spec = serde_json::to_value(&openapi).unwrap_or_default();
    contract::complete(&mut spec, body_limit);
    api.with_state(gateway.clone())
        .merge(docs::router(spec, gateway.clone(), body_limit))
}
