//! Sessions, executions and administration.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{
    ApiError, ApiJson, ApiPath, ApiQuery, ErrorDetail, ErrorResponse, IdKind, check_id,
};
use super::identity::Caller;
use crate::engine::ExecutionStatus;
use crate::executions::{ExecutionRecord, StepRecord};
use crate::gateway::{ApprovalOutcome, CancelOutcome, Gateway};
use crate::sessions::SessionInfo;
use gateway_store::ApprovalRecord;
use gateway_store::ExecutionFilter;

pub(crate) fn check_limit<N: PartialOrd + From<u8> + std::fmt::Display + Copy>(
    name: &str,
    value: N,
    max: N,
) -> Result<(), ApiError> {
    if value >= N::from(1) && value <= max {
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
    caller: Caller,
    ApiQuery(query): ApiQuery<SessionQuery>,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    check_limit("limit", limit, 200)?;
    let owner = caller.listing_filter();
    Ok(Json(gateway.sessions().list(
        query.agent_id.as_deref(),
        owner.as_deref(),
        limit,
    )))
}

fn forbidden(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("This {what} belongs to another user"),
    )
}

/// A session the caller may see.
fn own_session(
    gateway: &Gateway,
    caller: &Caller,
    session_id: &str,
) -> Result<SessionInfo, ApiError> {
    check_id("session_id", session_id, IdKind::Dotted)?;
    let session = gateway
        .sessions()
        .summary(session_id)
        .ok_or_else(|| ApiError::not_found("session", session_id))?;
    if !caller.can_see(session.user_id.as_deref()) {
        return Err(forbidden("session"));
    }
    Ok(session)
}

#[utoipa::path(get, path = "/v1/sessions/{session_id}", tag = "Sessions", summary = "Session details",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionInfo), (status = 404, body = ErrorResponse)))]
pub async fn get_session(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<SessionInfo>, ApiError> {
    own_session(&gateway, &caller, &session_id).map(Json)
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
    caller: Caller,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    check_id("session_id", &session_id, IdKind::Dotted)?;
    if let Some(session) = gateway.sessions().summary(&session_id)
        && !caller.can_see(session.user_id.as_deref())
    {
        return Err(forbidden("session"));
    }
    if gateway.delete_session(&session_id).await? {
        Ok(Json(Deleted { deleted: true }))
    } else {
        Err(ApiError::not_found("session", &session_id))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExecutionQuery {
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    /// The delegation tree of this root (ordered by depth, then age).
    pub root_execution_id: Option<String>,
    /// `queued`, `running`, `waiting_approval`, `completed`, `failed`, `cancelled` or `timeout`.
    pub status: Option<String>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/v1/executions", tag = "Executions", summary = "List executions",
    description = "Newest first; filters combine.",
    params(ExecutionQuery),
    responses((status = 200, body = [ExecutionRecord]), (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn list_executions(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ExecutionQuery>,
) -> Result<Json<Vec<ExecutionRecord>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    check_limit("limit", limit, 500)?;
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::validation(
            "offset must not be negative",
            Vec::new(),
        ));
    }
    let status =
        match query.status.as_deref() {
            None => None,
            Some(text) => Some(ExecutionStatus::parse(text).ok_or_else(|| {
                ApiError::validation(format!("unknown status '{text}'"), Vec::new())
            })?),
        };
    let filter = ExecutionFilter {
        agent_id: query.agent_id,
        session_id: query.session_id,
        root_execution_id: query.root_execution_id,
        user_id: caller.listing_filter(),
        status,
        limit,
        offset,
    };
    Ok(Json(gateway.executions(&filter).await?))
}

/// An execution the caller may see.
async fn found(
    gateway: &Gateway,
    caller: &Caller,
    execution_id: &str,
) -> Result<ExecutionRecord, ApiError> {
    check_id("execution_id", execution_id, IdKind::Strict)?;
    let record = gateway
        .execution(execution_id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution", execution_id))?;
    if !caller.can_see(record.user_id.as_deref()) {
        return Err(forbidden("execution"));
    }
    Ok(record)
}

#[utoipa::path(get, path = "/v1/executions/{execution_id}", tag = "Executions", summary = "Execution status",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = ExecutionRecord), (status = 404, body = ErrorResponse)))]
pub async fn get_execution(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<ExecutionRecord>, ApiError> {
    Ok(Json(found(&gateway, &caller, &execution_id).await?))
}

#[utoipa::path(get, path = "/v1/executions/{execution_id}/steps", tag = "Executions", summary = "Execution steps",
    description = "The recorded model calls, tool calls and tool results of an execution, in order.",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = [StepRecord]), (status = 404, body = ErrorResponse)))]
pub async fn execution_steps(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<Vec<StepRecord>>, ApiError> {
    found(&gateway, &caller, &execution_id).await?;
    Ok(Json(gateway.execution_steps(&execution_id).await?))
}

#[utoipa::path(get, path = "/v1/executions/{execution_id}/workflow", tag = "Executions", summary = "Full delegation workflow tree",
    description = "The execution's root and every execution delegated from it, by depth then age.",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = [ExecutionRecord]), (status = 404, body = ErrorResponse)))]
pub async fn execution_workflow(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<Vec<ExecutionRecord>>, ApiError> {
    found(&gateway, &caller, &execution_id).await?;
    Ok(Json(gateway.workflow(&execution_id).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancelResponse {
    pub execution_id: String,
    pub status: ExecutionStatus,
}

#[utoipa::path(post, path = "/v1/executions/{execution_id}/cancel", tag = "Executions", summary = "Cancel execution",
    description = "A queued execution never starts; a running one stops at its next step.",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = CancelResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn cancel_execution(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<CancelResponse>, ApiError> {
    found(&gateway, &caller, &execution_id).await?;
    match gateway.cancel(&execution_id).await? {
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

#[utoipa::path(get, path = "/v1/executions/{execution_id}/approvals", tag = "Executions", summary = "Approval requests",
    description = "The tool calls of the execution that needed a person's approval, with their decisions, oldest first.",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = [ApprovalRecord]), (status = 404, body = ErrorResponse)))]
pub async fn execution_approvals(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<Vec<ApprovalRecord>>, ApiError> {
    found(&gateway, &caller, &execution_id).await?;
    Ok(Json(gateway.approvals(&execution_id).await?))
}

/// A decision on an execution's pending tool calls (the body is optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// Decide only this approval (default: every pending one).
    pub approval_id: Option<String>,
    /// Why; a denial's reason reaches the model.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalResponse {
    pub execution_id: String,
    /// The approvals this request decided.
    pub decided: Vec<ApprovalRecord>,
}

async fn decide(
    gateway: &Gateway,
    caller: Caller,
    execution_id: String,
    body: Option<ApiJson<ApprovalRequest>>,
    approve: bool,
) -> Result<Json<ApprovalResponse>, ApiError> {
    found(gateway, &caller, &execution_id).await?;
    let request = body.map(|ApiJson(r)| r).unwrap_or_default();
    let outcome = gateway
        .decide_approval(
            &execution_id,
            request.approval_id.as_deref(),
            approve,
            request.reason,
            caller.user_id.clone(),
        )
        .await?;
    match outcome {
        ApprovalOutcome::Decided(decided) => Ok(Json(ApprovalResponse {
            execution_id,
            decided,
        })),
        ApprovalOutcome::NotFound => Err(ApiError::not_found("execution", &execution_id)),
        ApprovalOutcome::NotWaiting(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            format!(
                "Execution '{execution_id}' is {} and does not wait for approval",
                status.as_str()
            ),
        )),
        ApprovalOutcome::NothingPending => Err(ApiError::not_found(
            "approval",
            request.approval_id.as_deref().unwrap_or_default(),
        )),
    }
}

#[utoipa::path(post, path = "/v1/executions/{execution_id}/approve", tag = "Executions", summary = "Approve pending tool calls",
    description = "Lets an execution in `waiting_approval` run the tool calls it waits on (all, or the one named by `approval_id`).",
    params(("execution_id" = String, Path, description = "Execution id")),
    request_body(content = Option<ApprovalRequest>, content_type = "application/json"),
    responses((status = 200, body = ApprovalResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn approve_execution(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiPath(execution_id): ApiPath<String>,
    body: Option<ApiJson<ApprovalRequest>>,
) -> Result<Json<ApprovalResponse>, ApiError> {
    decide(&gateway, caller, execution_id, body, true).await
}

#[utoipa::path(post, path = "/v1/executions/{execution_id}/deny", tag = "Executions", summary = "Deny pending tool calls",
    description = "Refuses the tool calls an execution in `waiting_approval` waits on; the model is told they were denied (with the reason) and goes on.",
    params(("execution_id" = String, Path, description = "Execution id")),
    request_body(content = Option<ApprovalRequest>, content_type = "application/json"),
    responses((status = 200, body = ApprovalResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn deny_execution(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiPath(execution_id): ApiPath<String>,
    body: Option<ApiJson<ApprovalRequest>>,
) -> Result<Json<ApprovalResponse>, ApiError> {
    decide(&gateway, caller, execution_id, body, false).await
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
    let agents = gateway.reload().await?;
    Ok(Json(ReloadResponse {
        status: "ok".into(),
        agents,
        message: "Workspace reloaded successfully".into(),
    }))
}
