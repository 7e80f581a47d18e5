//! The current user's persisted conversations.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gateway_store::{ConversationRecord, MessageRecord};
use serde::Deserialize;

use super::error::{ApiError, ApiPath, ApiQuery, ErrorResponse, IdKind, check_id};
use super::identity::Caller;
use super::state::check_limit;
use crate::gateway::Gateway;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ConversationQuery {
    pub agent_id: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

fn check_offset(offset: i64) -> Result<(), ApiError> {
    if offset < 0 {
        return Err(ApiError::validation(
            "offset must not be negative",
            Vec::new(),
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/v1/users/me/conversations", tag = "Conversations", summary = "List conversations",
    description = "The caller's conversations, most recently updated first.",
    params(ConversationQuery),
    responses((status = 200, body = [ConversationRecord]), (status = 401, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn list_conversations(
    State(gateway): State<Gateway>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ConversationQuery>,
) -> Result<Json<Vec<ConversationRecord>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    check_limit("limit", limit, 200)?;
    let offset = query.offset.unwrap_or(0);
    check_offset(offset)?;
    let conversations = gateway
        .store()
        .list_conversations(
            caller.user_id.as_deref(),
            query.agent_id.as_deref(),
            limit,
            offset,
        )
        .await
        .map_err(crate::gateway::storage)?;
    Ok(Json(conversations))
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
    caller: Caller,
    ApiPath(conversation_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<MessageQuery>,
) -> Result<Json<Vec<MessageRecord>>, ApiError> {
    check_id("conversation_id", &conversation_id, IdKind::Dotted)?;
    let limit = query.limit.unwrap_or(100);
    check_limit("limit", limit, 500)?;
    let offset = query.offset.unwrap_or(0);
    check_offset(offset)?;
    let store = gateway.store();
    let conversation = store
        .get_conversation(&conversation_id)
        .await
        .map_err(crate::gateway::storage)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("Conversation '{conversation_id}' not found"),
            )
        })?;
    if conversation.user_id != caller.user_id && !caller.is_admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This conversation belongs to another user",
        ));
    }
    let messages = store
        .conversation_messages(&conversation_id, limit, offset)
        .await
        .map_err(crate::gateway::storage)?;
    Ok(Json(messages))
}
