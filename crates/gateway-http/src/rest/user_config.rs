//! `/v1/agents/{agent_id}/config`: the caller's setup of a personal agent.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value};

use gateway_core::{Gateway, UserConfigInfo};

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorResponse};
use crate::kit::extract::{ApiJson, ApiPath};

#[utoipa::path(post, path = "/v1/agents/{agent_id}/config", tag = "User Config", summary = "Set agent config",
    description = "Sets fields of the caller's setup: present keys replace, `null` removes, `instructions` goes to the prompt. Values are checked against the agent's `setup_schema`; `sensitive: true` fields are encrypted at rest and shown as `***`.",
    params(("agent_id" = String, Path, description = "Agent id")),
    request_body(content = Object),
    responses((status = 200, body = UserConfigInfo), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn set_config(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<UserConfigInfo>, ApiError> {
    Ok(Json(
        gateway.user_configs().set(&actor, &agent_id, body).await?,
    ))
}

#[utoipa::path(get, path = "/v1/agents/{agent_id}/config", tag = "User Config", summary = "Get agent config",
    params(("agent_id" = String, Path, description = "Agent id")),
    responses((status = 200, body = UserConfigInfo), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn get_config(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(agent_id): ApiPath<String>,
) -> Result<Json<UserConfigInfo>, ApiError> {
    Ok(Json(gateway.user_configs().get(&actor, &agent_id).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigDeleted {
    pub deleted: bool,
}

#[utoipa::path(delete, path = "/v1/agents/{agent_id}/config", tag = "User Config", summary = "Delete agent config",
    params(("agent_id" = String, Path, description = "Agent id")),
    responses((status = 200, body = ConfigDeleted), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn delete_config(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(agent_id): ApiPath<String>,
) -> Result<Json<ConfigDeleted>, ApiError> {
    gateway.user_configs().delete(&actor, &agent_id).await?;
    Ok(Json(ConfigDeleted { deleted: true }))
}
