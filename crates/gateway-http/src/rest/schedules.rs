//! `/v1/schedules`: cron schedules of AGENT.md and those created at runtime.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use gateway_core::store::ScheduleRecord;
use gateway_core::{Gateway, ScheduleCreate, ScheduleEdit};

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorResponse};
use crate::kit::extract::{ApiJson, ApiPath};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleStatus {
    /// `created`, `deleted`, `paused`, `resumed` or `triggered`.
    pub status: String,
    pub schedule_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
}

fn status(status: &str, schedule_id: String, execution_id: Option<String>) -> Json<ScheduleStatus> {
    Json(ScheduleStatus {
        status: status.to_string(),
        schedule_id,
        execution_id,
    })
}

#[utoipa::path(get, path = "/v1/schedules", tag = "Schedules", summary = "List schedules",
    responses((status = 200, body = [ScheduleRecord]), (status = 503, body = ErrorResponse)))]
pub async fn list_schedules(
    State(gateway): State<Gateway>,
) -> Result<Json<Vec<ScheduleRecord>>, ApiError> {
    Ok(Json(gateway.schedules().list().await?))
}

#[utoipa::path(post, path = "/v1/schedules", tag = "Schedules", summary = "Create admin schedule",
    description = "Creates `admin:<agent_id>:<name>`. A duplicate is 409; a bad cron expression, timezone or unknown agent is 400.",
    request_body = ScheduleCreate,
    responses((status = 201, body = ScheduleStatus), (status = 400, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn create_schedule(
    State(gateway): State<Gateway>,
    ApiJson(request): ApiJson<ScheduleCreate>,
) -> Result<Response, ApiError> {
    let record = gateway.schedules().create(request).await?;
    Ok((StatusCode::CREATED, status("created", record.id, None)).into_response())
}

#[utoipa::path(get, path = "/v1/schedules/{schedule_id}", tag = "Schedules", summary = "Schedule details",
    params(("schedule_id" = String, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleRecord), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn get_schedule(
    State(gateway): State<Gateway>,
    ApiPath(schedule_id): ApiPath<String>,
) -> Result<Json<ScheduleRecord>, ApiError> {
    Ok(Json(gateway.schedules().get(&schedule_id).await?))
}

#[utoipa::path(patch, path = "/v1/schedules/{schedule_id}", tag = "Schedules", summary = "Edit schedule",
    description = "Changes cron, message, timezone, enabled or instructions at runtime. Persisted; AGENT.md is never written (its other fields still apply).",
    params(("schedule_id" = String, Path, description = "Schedule id")),
    request_body = ScheduleEdit,
    responses((status = 200, body = ScheduleRecord), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn edit_schedule(
    State(gateway): State<Gateway>,
    ApiPath(schedule_id): ApiPath<String>,
    ApiJson(edit): ApiJson<ScheduleEdit>,
) -> Result<Json<ScheduleRecord>, ApiError> {
    Ok(Json(gateway.schedules().edit(&schedule_id, edit).await?))
}

#[utoipa::path(delete, path = "/v1/schedules/{schedule_id}", tag = "Schedules", summary = "Delete admin schedule",
    params(("schedule_id" = String, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleStatus), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn delete_schedule(
    State(gateway): State<Gateway>,
    ApiPath(schedule_id): ApiPath<String>,
) -> Result<Json<ScheduleStatus>, ApiError> {
    gateway.schedules().delete(&schedule_id).await?;
    Ok(status("deleted", schedule_id, None))
}

async fn set_enabled(
    gateway: &Gateway,
    schedule_id: String,
    enabled: bool,
) -> Result<Json<ScheduleStatus>, ApiError> {
    let edit = ScheduleEdit {
        enabled: Some(enabled),
        ..ScheduleEdit::default()
    };
    gateway.schedules().edit(&schedule_id, edit).await?;
    Ok(status(
        if enabled { "resumed" } else { "paused" },
        schedule_id,
        None,
    ))
}

#[utoipa::path(post, path = "/v1/schedules/{schedule_id}/pause", tag = "Schedules", summary = "Pause schedule",
    params(("schedule_id" = String, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleStatus), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn pause_schedule(
    State(gateway): State<Gateway>,
    ApiPath(schedule_id): ApiPath<String>,
) -> Result<Json<ScheduleStatus>, ApiError> {
    set_enabled(&gateway, schedule_id, false).await
}

#[utoipa::path(post, path = "/v1/schedules/{schedule_id}/resume", tag = "Schedules", summary = "Resume schedule",
    params(("schedule_id" = String, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleStatus), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn resume_schedule(
    State(gateway): State<Gateway>,
    ApiPath(schedule_id): ApiPath<String>,
) -> Result<Json<ScheduleStatus>, ApiError> {
    set_enabled(&gateway, schedule_id, true).await
}

#[utoipa::path(post, path = "/v1/schedules/{schedule_id}/trigger", tag = "Schedules", summary = "Trigger schedule",
    description = "Runs the schedule now, in the background, for the caller (who needs `agents:invoke` for its agent and owns the execution); poll the returned execution.",
    params(("schedule_id" = String, Path, description = "Schedule id")),
    responses((status = 202, body = ScheduleStatus), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn trigger_schedule(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(schedule_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let execution_id = gateway.schedules().trigger(&actor, &schedule_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        status("triggered", schedule_id, Some(execution_id)),
    )
        .into_response())
}
