//! The current user's persisted conversations.

use axum::Json;
use axum::extract::State;
use gateway_core::Gateway;
use gateway_core::store::{ConversationRecord, MessageRecord};
use serde::Deserialize;

use crate::kit::actor::Caller;
use crate::kit::error::{ApiError, ErrorResponse};
use crate::kit::extract::{ApiPath, ApiQuery, IdKind, check_id, check_limit, check_offset};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ConversationQuery {
    pub agent_id: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/v1/users/me/conversations", tag = "Conversations", summary = "List conversations",
    description = "The caller's conversations, most recently updated first.",
    params(ConversationQuery),
    responses((status = 200, body = [ConversationRecord]), (status = 401, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn list_conversations(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<ConversationQuery>,
) -> Result<Json<Vec<ConversationRecord>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    check_limit("limit", limit, 200)?;
    let offset = query.offset.unwrap_or(0);
    check_offset(offset)?;
    Ok(Json(
        gateway
            .conversations()
            .list(&actor, query.agent_id.as_deref(), limit, offset)
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct MessageQuery {
    /// 1–500, default 100.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/v1/users/me/conversations/{conversation_id}/messages", tag = "Conversations", summary = "Get conversation messages",
    description = "Messages of one of the caller's conversations, oldest first.",
    params(("conversation_id" = String, Path, description = "Conversation id (the chat session id)"), MessageQuery),
    responses((status = 200, body = [MessageRecord]), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn conversation_messages(
    State(gateway): State<Gateway>,
    Caller(actor): Caller,
    ApiPath(conversation_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<MessageQuery>,
) -> Result<Json<Vec<MessageRecord>>, ApiError> {
    check_id("conversation_id", &conversation_id, IdKind::Dotted)?;
    let limit = query.limit.unwrap_or(100);
    check_limit("limit", limit, 500)?;
    let offset = query.offset.unwrap_or(0);
    check_offset(offset)?;
    Ok(Json(
        gateway
            .conversations()
            .messages(&actor, &conversation_id, limit, offset)
            .await?,
    ))
}
