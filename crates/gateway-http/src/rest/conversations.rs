//! The current user's persisted conversations.

use axum::Json;
use axum::extract::State;
use gateway_core::Gateway;
use gateway_core::store::{ConversationRecord, MessageRecord};
use serde::Deserialize;

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorResponse};
use crate::kit::extract::{ApiPath, ApiQuery, Limit, Offset};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    pub agent_id: Option<String>,
    #[serde(default)]
    #[param(inline)]
    pub limit: Limit<200, 50>,
    #[serde(default)]
    #[param(inline)]
    pub offset: Offset,
}

#[utoipa::path(get, path = "/v1/users/me/conversations", tag = "Conversations", summary = "List conversations",
    description = "The caller's conversations, most recently updated first.",
    params(ConversationQuery),
    responses((status = 200, body = [ConversationRecord]), (status = 503, body = ErrorResponse)))]
pub async fn list_conversations(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<ConversationQuery>,
) -> Result<Json<Vec<ConversationRecord>>, ApiError> {
    Ok(Json(
        gateway
            .conversations()
            .list(
                &actor,
                query.agent_id.as_deref(),
                query.limit.get(),
                query.offset.get(),
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    #[serde(default)]
    #[param(inline)]
    pub limit: Limit<500, 100>,
    #[serde(default)]
    #[param(inline)]
    pub offset: Offset,
}

#[utoipa::path(get, path = "/v1/users/me/conversations/{conversation_id}/messages", tag = "Conversations", summary = "Get conversation messages",
    description = "Messages of one of the caller's conversations, oldest first.",
    params(("conversation_id" = String, Path, description = "Conversation id (the chat session id)"), MessageQuery),
    responses((status = 200, body = [MessageRecord]), (status = 404, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn conversation_messages(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(conversation_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<MessageQuery>,
) -> Result<Json<Vec<MessageRecord>>, ApiError> {
    Ok(Json(
        gateway
            .conversations()
            .messages(
                &actor,
                &conversation_id,
                query.limit.get(),
                query.offset.get(),
            )
            .await?,
    ))
}
