//! `/v1/executions`: execution records, their steps and delegation trees, cancel, and the
//! approvals of the tool calls a run waits on.

use axum::Json;
use axum::extract::State;
use gateway_core::engine::ExecutionStatus;
use gateway_core::store::{ApprovalRecord, ExecutionFilter, ExecutionRecord, StepRecord};
use gateway_core::{ApprovalDecision, Gateway};
use serde::{Deserialize, Serialize};

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorResponse};
use crate::kit::extract::{ApiJson, ApiPath, ApiQuery, Limit, Offset};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExecutionQuery {
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    /// The delegation tree of this root (ordered by depth, then age).
    pub root_execution_id: Option<String>,
    #[param(inline)]
    pub status: Option<ExecutionStatus>,
    #[serde(default)]
    #[param(inline)]
    pub limit: Limit<500, 50>,
    #[serde(default)]
    #[param(inline)]
    pub offset: Offset,
}

#[utoipa::path(get, path = "/v1/executions", tag = "Executions", summary = "List executions",
    description = "Newest first; filters combine.",
    params(ExecutionQuery),
    responses((status = 200, body = [ExecutionRecord]), (status = 503, body = ErrorResponse)))]
pub async fn list_executions(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<ExecutionQuery>,
) -> Result<Json<Vec<ExecutionRecord>>, ApiError> {
    let filter = ExecutionFilter {
        agent_id: query.agent_id,
        session_id: query.session_id,
        root_execution_id: query.root_execution_id,
        user_id: None,
        status: query.status,
        limit: query.limit.get(),
        offset: query.offset.get(),
    };
    Ok(Json(gateway.executions().list(&actor, filter).await?))
}

#[utoipa::path(get, path = "/v1/executions/{execution_id}", tag = "Executions", summary = "Execution status",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = ExecutionRecord), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn get_execution(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<ExecutionRecord>, ApiError> {
    Ok(Json(gateway.executions().get(&actor, &execution_id).await?))
}

#[utoipa::path(get, path = "/v1/executions/{execution_id}/steps", tag = "Executions", summary = "Execution steps",
    description = "The recorded model calls, tool calls and tool results of an execution, in order.",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = [StepRecord]), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn execution_steps(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<Vec<StepRecord>>, ApiError> {
    Ok(Json(
        gateway.executions().steps(&actor, &execution_id).await?,
    ))
}

#[utoipa::path(get, path = "/v1/executions/{execution_id}/workflow", tag = "Executions", summary = "Full delegation workflow tree",
    description = "The execution's root and every execution delegated from it, by depth then age.",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = [ExecutionRecord]), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn execution_workflow(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<Vec<ExecutionRecord>>, ApiError> {
    Ok(Json(
        gateway.executions().workflow(&actor, &execution_id).await?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancelResponse {
    pub execution_id: String,
    pub status: ExecutionStatus,
}

#[utoipa::path(post, path = "/v1/executions/{execution_id}/cancel", tag = "Executions", summary = "Cancel execution",
    description = "A queued execution never starts; a running one stops at its next step.",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = CancelResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn cancel_execution(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<CancelResponse>, ApiError> {
    let status = gateway.executions().cancel(&actor, &execution_id).await?;
    Ok(Json(CancelResponse {
        execution_id,
        status,
    }))
}

#[utoipa::path(get, path = "/v1/executions/{execution_id}/approvals", tag = "Executions", summary = "Approval requests",
    description = "The tool calls of the execution that needed a person's approval, with their decisions, oldest first.",
    params(("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = [ApprovalRecord]), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn execution_approvals(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(execution_id): ApiPath<String>,
) -> Result<Json<Vec<ApprovalRecord>>, ApiError> {
    Ok(Json(
        gateway
            .executions()
            .approvals(&actor, &execution_id)
            .await?,
    ))
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
    actor: &gateway_core::Actor,
    execution_id: String,
    body: Option<ApiJson<Option<ApprovalRequest>>>,
    approve: bool,
) -> Result<Json<ApprovalResponse>, ApiError> {
    // No body, and a `null` one, decide every pending call.
    let request = body.and_then(|ApiJson(r)| r).unwrap_or_default();
    let decided = gateway
        .executions()
        .decide(
            actor,
            &execution_id,
            ApprovalDecision {
                approval_id: request.approval_id,
                approve,
                reason: request.reason,
            },
        )
        .await?;
    Ok(Json(ApprovalResponse {
        execution_id,
        decided,
    }))
}

#[utoipa::path(post, path = "/v1/executions/{execution_id}/approve", tag = "Executions", summary = "Approve pending tool calls",
    description = "Lets an execution in `waiting_approval` run the tool calls it waits on (all, or the one named by `approval_id`).",
    params(("execution_id" = String, Path, description = "Execution id")),
    request_body(content = Option<ApprovalRequest>, content_type = "application/json"),
    responses((status = 200, body = ApprovalResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn approve_execution(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(execution_id): ApiPath<String>,
    body: Option<ApiJson<Option<ApprovalRequest>>>,
) -> Result<Json<ApprovalResponse>, ApiError> {
    decide(&gateway, &actor, execution_id, body, true).await
}

#[utoipa::path(post, path = "/v1/executions/{execution_id}/deny", tag = "Executions", summary = "Deny pending tool calls",
    description = "Refuses the tool calls an execution in `waiting_approval` waits on; the model is told they were denied (with the reason) and goes on.",
    params(("execution_id" = String, Path, description = "Execution id")),
    request_body(content = Option<ApprovalRequest>, content_type = "application/json"),
    responses((status = 200, body = ApprovalResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn deny_execution(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(execution_id): ApiPath<String>,
    body: Option<ApiJson<Option<ApprovalRequest>>>,
) -> Result<Json<ApprovalResponse>, ApiError> {
    decide(&gateway, &actor, execution_id, body, false).await
}
