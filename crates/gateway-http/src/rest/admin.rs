//! `/v1/reload`: re-reading the workspace.

use axum::Json;
use axum::extract::State;
use gateway_core::Gateway;
use serde::Serialize;

use crate::kit::error::{ApiError, ErrorResponse};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReloadResponse {
    pub status: String,
    pub agents: usize,
    pub message: String,
}

#[utoipa::path(post, path = "/v1/reload", tag = "Admin", summary = "Reload workspace",
    description = "Re-reads the workspace folder and swaps it in atomically. Allowed only when the server was started with reload enabled (`serve --reload`).",
    responses((status = 200, body = ReloadResponse), (status = 403, body = ErrorResponse), (status = 500, body = ErrorResponse)))]
pub async fn reload(State(gateway): State<Gateway>) -> Result<Json<ReloadResponse>, ApiError> {
    let agents = gateway.reload().await?;
    Ok(Json(ReloadResponse {
        status: "ok".into(),
        agents,
        message: "Workspace reloaded successfully".into(),
    }))
}
