//! Persisted chat conversations and their messages: the records and [`ConversationStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::StoreError;

/// A persisted chat conversation (one per session).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConversationRecord {
    pub conversation_id: String,
    pub agent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub message_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set when its session was deleted: the history stays, the session cannot resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageRecord {
    pub message_id: String,
    pub role: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

/// A chat turn to append: the conversation's identity and the new messages.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationTurn {
    pub conversation_id: String,
    pub agent_id: String,
    pub user_id: Option<String>,
    /// Set on the first turn only (the first user message, shortened).
    pub title: Option<String>,
    /// (role, content) pairs in order.
    pub messages: Vec<(String, String)>,
    pub at: DateTime<Utc>,
}

/// Which conversations to list, most recently updated first. The filters given combine; one
/// left out (`None`, `open_only` false) does not narrow the listing.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only this user's conversations. `None` lists every user's, anonymous ones included.
    pub user_id: Option<String>,
    /// Only conversations with this agent.
    pub agent_id: Option<String>,
    /// Only conversations updated at or after this.
    pub updated_since: Option<DateTime<Utc>>,
    /// Only conversations not ended (`ended_at` unset): their session can still resume.
    pub open_only: bool,
    /// At most this many (none when 0 or less).
    pub limit: i64,
    /// After skipping this many.
    pub offset: i64,
}

/// A message id: 16 hex digits (as 0.2.13).
pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// Persisted chat conversations and their messages.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Appends a chat turn, creating the conversation on its first turn.
    async fn append_turn(&self, turn: &ConversationTurn) -> Result<(), StoreError>;

    async fn get_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError>;

    /// The conversations matching `filter`, most recently updated first.
    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<ConversationRecord>, StoreError>;

    /// Messages of a conversation, oldest first.
    async fn conversation_messages(
        &self,
        conversation_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<MessageRecord>, StoreError>;

    async fn delete_conversation(&self, conversation_id: &str) -> Result<bool, StoreError>;

    /// Marks a conversation ended (its session was deleted). Returns whether it exists.
    async fn end_conversation(
        &self,
        conversation_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
