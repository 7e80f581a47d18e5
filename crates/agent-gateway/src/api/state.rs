//! Sessions, executions and administration.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiPath, ApiQuery, ErrorDetail, ErrorResponse, IdKind, check_id};
use crate::engine::ExecutionStatus;
use crate::executions::{CancelOutcome, ExecutionRecord};
use crate::gateway::Gateway;
use crate::sessions::SessionInfo;

fn check_limit(name: &str, value: usize, max: usize) -> Result<(), ApiError> {
    if (1..=max).contains(&value) {
        Ok(())
    } else {
        Err(ApiError::validation(
            format!("{name} must be between 1 and {max}"),
            vec![ErrorDetail {
                loc: vec!["query".into(), name.into()],
                msg: format!("between 1 and {max}"),
                kind: "value_error".into(),
            }],
        ))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SessionQuery {
    pub agent_id: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/sessions", tag = "Sessions", summary = "List chat sessions",
    params(SessionQuery),
    responses((status = 200, body = [SessionInfo]), (status = 422, body = ErrorResponse)))]
pub async fn list_sessions(
    State(gateway): State<Gateway>,
    ApiQuery(query): ApiQuery<SessionQuery>,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    check_limit("limit", limit, 200)?;
    Ok(Json(gateway.sessions().list(
        query.agent_id.as_deref(),
        None,
        limit,
    )))
}

#[utoipa::path(get, path = "/v1/sessions/{session_id}", tag = "Sessions", summary = "Session details",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionInfo), (status = 404, body = ErrorResponse)))]
pub async fn get_session(
    State(gateway): State<Gateway>,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<SessionInfo>, ApiError> {
    check_id("session_id", &session_id, IdKind::Dotted)?;
    gateway
        .sessions()
        .summary(&session_id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("session", &session_id))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: bool,
}

#[utoipa::path(delete, path = "/v1/sessions/{session_id}", tag = "Sessions", summary = "Delete session",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorResponse)))]
pub async fn delete_session(
    State(gateway): State<Gateway>,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    check_id("session_id", &session_id, IdKind::Dotted)?;
    if gateway.sessions().remove(&session_id) {
        Ok(Json(Deleted { deleted: true }))
    } else {
        Err(ApiError::not_found("session", &session_id))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExecutionQuery {
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    /// 1–500, default 50.
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/executions", tag = "Executions", summary = "List executions",
    params(ExecutionQuery),
    responses((status = 200, body = [ExecutionRecord]), (status = 422, body = ErrorResponse)))]
pub async fn list_executions(
    State(gateway): State<Gateway>,
    ApiQuery(query): ApiQuery<ExecutionQuery>,
) -> Result<Json<Vec<ExecutionRecord>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    check_limit("limit", limit, 500)?;
    Ok(Json(gateway.executions().list(
        query.agent_id.as_deref(),
        query.session_id.as_deref(),
        limit,
    )))
}

#[utoipa::path(get, path = "/v1/executions/{execution_id}", tag = "Executions", summary = "Execution status",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = ExecutionRecord), (status = 404, body = ErrorResponse)))]
pub async fn get_execution(
    State(gateway): State<Gateway>,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<ExecutionRecord>, ApiError> {
    check_id("execution_id", &execution_id, IdKind::Strict)?;
    gateway
        .executions()
        .get(&execution_id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("execution", &execution_id))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancelResponse {
    pub execution_id: String,
    pub status: ExecutionStatus,
}

#[utoipa::path(post, path = "/v1/executions/{execution_id}/cancel", tag = "Executions", summary = "Cancel execution",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = CancelResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn cancel_execution(
    State(gateway): State<Gateway>,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<CancelResponse>, ApiError> {
    check_id("execution_id", &execution_id, IdKind::Strict)?;
    match gateway.executions().cancel(&execution_id) {
        CancelOutcome::Cancelled => Ok(Json(CancelResponse {
            execution_id,
            status: ExecutionStatus::Cancelled,
        })),
        CancelOutcome::NotFound => Err(ApiError::not_found("execution", &execution_id)),
        CancelOutcome::NotCancellable(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            format!(
                "Execution '{execution_id}' is already {} and cannot be cancelled",
                status.as_str()
            ),
        )),
    }
}

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
    if !gateway.reload_enabled() {
        return Err(crate::error::GatewayError::ReloadDisabled.into());
    }
    let agents = gateway.reload()?;
    Ok(Json(ReloadResponse {
        status: "ok".into(),
        agents,
        message: "Workspace reloaded successfully".into(),
    }))
}
