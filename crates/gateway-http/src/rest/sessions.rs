//! `/v1/sessions`: chat sessions that can be resumed, as the store holds them.

use axum::Json;
use axum::extract::State;
use gateway_core::{Gateway, GatewayError, Record, SessionInfo};
use serde::{Deserialize, Serialize};

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorResponse};
use crate::kit::extract::{ApiPath, ApiQuery, Limit};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    pub agent_id: Option<String>,
    #[serde(default)]
    #[param(inline)]
    pub limit: Limit<200, 50>,
}

#[utoipa::path(get, path = "/v1/sessions", tag = "Sessions", summary = "List chat sessions",
    description = "Sessions that can be resumed (not deleted, used within `sessions.ttl_seconds`), most recently used first; the same on every instance.",
    params(SessionQuery),
    responses((status = 200, body = [SessionInfo]), (status = 503, body = ErrorResponse)))]
pub async fn list_sessions(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<SessionQuery>,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    Ok(Json(
        gateway
            .sessions()
            .list(&actor, query.agent_id.as_deref(), query.limit.get())
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/sessions/{session_id}", tag = "Sessions", summary = "Session details",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionInfo), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn get_session(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<SessionInfo>, ApiError> {
    Ok(Json(gateway.sessions().get(&actor, &session_id).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: bool,
}

#[utoipa::path(delete, path = "/v1/sessions/{session_id}", tag = "Sessions", summary = "Delete session",
    description = "Ends the session on every instance; its conversation stays readable.",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn delete_session(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    if gateway.sessions().end(&actor, &session_id).await? {
        Ok(Json(Deleted { deleted: true }))
    } else {
        Err(GatewayError::not_found(Record::Session, session_id).into())
    }
}
