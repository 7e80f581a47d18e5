//! Persisted conversations of the asking user and their messages.

use std::sync::Arc;

use gateway_store::{ConversationFilter, ConversationRecord, MessageRecord};

use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::state::GatewayState;

/// Operations on persisted conversations (`gateway.conversations()`).
pub struct Conversations<'a> {
    state: &'a Arc<GatewayState>,
}

impl<'a> Conversations<'a> {
    pub(crate) fn new(state: &'a Arc<GatewayState>) -> Self {
        Self { state }
    }

    /// The actor's own conversations (everyone's for an actor without identity), most
    /// recently updated first.
    pub async fn list(
        &self,
        actor: &Actor,
        agent_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ConversationRecord>, GatewayError> {
        let filter = ConversationFilter {
            user_id: actor.user_id().map(String::from),
            agent_id: agent_id.map(String::from),
            limit,
            offset,
            ..ConversationFilter::default()
        };
        Ok(self.state.store.list_conversations(&filter).await?)
    }

    /// Messages of a conversation the actor may see, oldest first.
    pub async fn messages(
        &self,
        actor: &Actor,
        conversation_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<MessageRecord>, GatewayError> {
        let conversation = self
            .state
            .store
            .get_conversation(conversation_id)
            .await?
            .ok_or_else(|| GatewayError::not_found(Record::Conversation, conversation_id))?;
        actor.check_access(
            Record::Conversation,
            conversation_id,
            conversation.user_id.as_deref(),
        )?;
        Ok(self
            .state
            .store
            .conversation_messages(conversation_id, limit, offset)
            .await?)
    }
}
