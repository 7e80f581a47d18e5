//! `/v1/admin/mcp-servers`: MCP servers added at runtime (stored, secrets sealed and never
//! returned), plus a read-only view of those from `gateway.yaml` and code.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use gateway_core::mcp::{McpTest, McpToolInfo};
use gateway_core::{Gateway, McpServerCreate, McpServerInfo, McpServerUpdate};

use crate::kit::error::{ApiError, ErrorResponse};
use crate::kit::extract::{ApiJson, ApiPath};

#[utoipa::path(get, path = "/v1/admin/mcp-servers", tag = "MCP", summary = "List MCP servers",
    responses((status = 200, body = [McpServerInfo]), (status = 503, body = ErrorResponse)))]
pub async fn list_servers(
    State(gateway): State<Gateway>,
) -> Result<Json<Vec<McpServerInfo>>, ApiError> {
    Ok(Json(gateway.mcp_servers().list().await?))
}

#[utoipa::path(post, path = "/v1/admin/mcp-servers", tag = "MCP", summary = "Create MCP server config",
    description = "Stores the server (env, headers and credentials encrypted with `AGENT_GATEWAY_SECRET_KEY`; refused without it) and connects it.",
    request_body = McpServerCreate,
    responses((status = 200, body = McpServerInfo), (status = 409, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn create_server(
    State(gateway): State<Gateway>,
    ApiJson(request): ApiJson<McpServerCreate>,
) -> Result<Json<McpServerInfo>, ApiError> {
    Ok(Json(gateway.mcp_servers().create(request).await?))
}

#[utoipa::path(get, path = "/v1/admin/mcp-servers/{server_id}", tag = "MCP", summary = "Get MCP server details",
    params(("server_id" = String, Path, description = "Row id, or the name")),
    responses((status = 200, body = McpServerInfo), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn get_server(
    State(gateway): State<Gateway>,
    ApiPath(server_id): ApiPath<String>,
) -> Result<Json<McpServerInfo>, ApiError> {
    Ok(Json(gateway.mcp_servers().get(&server_id).await?))
}

#[utoipa::path(put, path = "/v1/admin/mcp-servers/{server_id}", tag = "MCP", summary = "Update MCP server config",
    description = "Absent fields stay as they are; `{}` clears env, headers or credentials. The server reconnects.",
    params(("server_id" = String, Path, description = "Row id, or the name")),
    request_body = McpServerUpdate,
    responses((status = 200, body = McpServerInfo), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn update_server(
    State(gateway): State<Gateway>,
    ApiPath(server_id): ApiPath<String>,
    ApiJson(update): ApiJson<McpServerUpdate>,
) -> Result<Json<McpServerInfo>, ApiError> {
    Ok(Json(
        gateway.mcp_servers().update(&server_id, update).await?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedResponse {
    pub deleted: bool,
}

#[utoipa::path(delete, path = "/v1/admin/mcp-servers/{server_id}", tag = "MCP", summary = "Delete MCP server",
    params(("server_id" = String, Path, description = "Row id, or the name")),
    responses((status = 200, body = DeletedResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn delete_server(
    State(gateway): State<Gateway>,
    ApiPath(server_id): ApiPath<String>,
) -> Result<Json<DeletedResponse>, ApiError> {
    gateway.mcp_servers().delete(&server_id).await?;
    Ok(Json(DeletedResponse { deleted: true }))
}

#[utoipa::path(post, path = "/v1/admin/mcp-servers/{server_id}/test", tag = "MCP", summary = "Test connection",
    description = "Connects without keeping the connection, lists the tools and disconnects. Failures are in the body.",
    params(("server_id" = String, Path, description = "Row id, or the name")),
    responses((status = 200, body = McpTest), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn test_server(
    State(gateway): State<Gateway>,
    ApiPath(server_id): ApiPath<String>,
) -> Result<Json<McpTest>, ApiError> {
    Ok(Json(gateway.mcp_servers().test(&server_id).await?))
}

#[utoipa::path(post, path = "/v1/admin/mcp-servers/{server_id}/refresh", tag = "MCP", summary = "Reconnect and rediscover tools",
    params(("server_id" = String, Path, description = "Row id, or the name")),
    responses((status = 200, body = McpServerInfo), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn refresh_server(
    State(gateway): State<Gateway>,
    ApiPath(server_id): ApiPath<String>,
) -> Result<Json<McpServerInfo>, ApiError> {
    Ok(Json(gateway.mcp_servers().refresh(&server_id).await?))
}

#[utoipa::path(get, path = "/v1/admin/mcp-servers/{server_id}/tools", tag = "MCP", summary = "List discovered MCP tools",
    params(("server_id" = String, Path, description = "Row id, or the name")),
    responses((status = 200, body = [McpToolInfo]), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn server_tools(
    State(gateway): State<Gateway>,
    ApiPath(server_id): ApiPath<String>,
) -> Result<Json<Vec<McpToolInfo>>, ApiError> {
    Ok(Json(gateway.mcp_servers().tools(&server_id).await?))
}
