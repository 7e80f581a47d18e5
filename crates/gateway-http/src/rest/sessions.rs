//! `/v1/sessions`: chat sessions that can be resumed, as the store holds them.

use axum::Json;
use axum::extract::State;
use gateway_core::{Gateway, GatewayError, Record, SessionInfo};
use serde::{Deserialize, Serialize};

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorResponse};
use crate::kit::extract::{ApiPath, ApiQuery, IdKind, check_id, check_limit};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SessionQuery {
    pub agent_id: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/sessions", tag = "Sessions", summary = "List chat sessions",
    description = "Sessions that can be resumed (not deleted, used within `sessions.ttl_seconds`), most recently used first; the same on every instance.",
    params(SessionQuery),
    responses((status = 200, body = [SessionInfo]), (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn list_sessions(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<SessionQuery>,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    check_limit("limit", limit, 200)?;
    Ok(Json(
        gateway
            .sessions()
            .list(&actor, query.agent_id.as_deref(), limit)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/sessions/{session_id}", tag = "Sessions", summary = "Session details",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionInfo), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get_session(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<SessionInfo>, ApiError> {
    check_id("session_id", &session_id, IdKind::Dotted)?;
    Ok(Json(gateway.sessions().get(&actor, &session_id).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: bool,
}

#[utoipa::path(delete, path = "/v1/sessions/{session_id}", tag = "Sessions", summary = "Delete session",
    description = "Ends the session on every instance; its conversation stays readable.",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, body = Deleted), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete_session(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    check_id("session_id", &session_id, IdKind::Dotted)?;
    if gateway.sessions().end(&actor, &session_id).await? {
        Ok(Json(Deleted { deleted: true }))
    } else {
        Err(GatewayError::not_found(Record::Session, session_id).into())
    }
}
