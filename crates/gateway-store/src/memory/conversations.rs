//! Conversations and their messages in memory: [`ConversationStore`] for [`MemoryStore`],
//! bounded to the [`MAX_CONVERSATIONS`] most recently updated, each to its
//! [`MAX_MESSAGES_PER_CONVERSATION`] newest messages.

use std::collections::VecDeque;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MAX_CONVERSATIONS, MAX_MESSAGES_PER_CONVERSATION, MemoryStore};
use crate::error::StoreError;
use crate::records::{
    ConversationFilter, ConversationRecord, ConversationStore, ConversationTurn, MessageRecord,
    new_message_id,
};

/// A conversation's newest messages; positions still count from its first message.
#[derive(Debug, Default)]
pub(super) struct KeptMessages {
    /// How many of the oldest are no longer kept.
    dropped: usize,
    kept: VecDeque<MessageRecord>,
}

impl KeptMessages {
    fn push(&mut self, message: MessageRecord) {
        self.kept.push_back(message);
        while self.kept.len() > MAX_MESSAGES_PER_CONVERSATION {
            self.kept.pop_front();
            self.dropped += 1;
        }
    }

    /// Messages `offset..offset + limit` of the conversation, those still kept.
    fn page(&self, offset: usize, limit: usize) -> Vec<MessageRecord> {
        let start = offset.max(self.dropped) - self.dropped;
        let end = offset.saturating_add(limit).max(self.dropped) - self.dropped;
        self.kept
            .iter()
            .skip(start)
            .take(end.saturating_sub(start))
            .cloned()
            .collect()
    }
}

fn matches(conversation: &ConversationRecord, filter: &ConversationFilter) -> bool {
    filter
        .user_id
        .as_ref()
        .is_none_or(|u| conversation.user_id.as_ref() == Some(u))
        && filter
            .agent_id
            .as_ref()
            .is_none_or(|a| &conversation.agent_id == a)
        && filter
            .updated_since
            .is_none_or(|since| conversation.updated_at >= since)
        && (!filter.open_only || conversation.ended_at.is_none())
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn append_turn(&self, turn: &ConversationTurn) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(previous) = state
            .conversations
            .get(&turn.conversation_id)
            .map(|c| c.updated_at)
        {
            state
                .conversation_order
                .remove(&(previous, turn.conversation_id.clone()));
        }
        let conversation = state
            .conversations
            .entry(turn.conversation_id.clone())
            .or_insert_with(|| ConversationRecord {
                conversation_id: turn.conversation_id.clone(),
                agent_id: turn.agent_id.clone(),
                user_id: turn.user_id.clone(),
                title: turn.title.clone(),
                summary: None,
                message_count: 0,
                created_at: turn.at,
                updated_at: turn.at,
                ended_at: None,
            });
        conversation.message_count += turn.messages.len() as i64;
        conversation.updated_at = turn.at;
        if conversation.title.is_none() {
            conversation.title = turn.title.clone();
        }
        let messages = state
            .messages
            .entry(turn.conversation_id.clone())
            .or_default();
        for (role, content) in &turn.messages {
            messages.push(MessageRecord {
                message_id: new_message_id(),
                role: role.clone(),
                content: content.clone(),
                created_at: turn.at,
            });
        }
        state
            .conversation_order
            .insert((turn.at, turn.conversation_id.clone()), ());
        while state.conversations.len() > MAX_CONVERSATIONS {
            let Some(((_, oldest), ())) = state.conversation_order.pop_first() else {
                break;
            };
            state.conversations.remove(&oldest);
            state.messages.remove(&oldest);
        }
        Ok(())
    }

    async fn get_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(self.lock().conversations.get(conversation_id).cloned())
    }

    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let state = self.lock();
        // Sorted by reference: only the page returned is copied.
        let mut found: Vec<&ConversationRecord> = state
            .conversations
            .values()
            .filter(|c| matches(c, filter))
            .collect();
        found.sort_by(|a, b| {
            (b.updated_at, &b.conversation_id).cmp(&(a.updated_at, &a.conversation_id))
        });
        Ok(found
            .into_iter()
            .skip(filter.offset.max(0) as usize)
            .take(filter.limit.max(0) as usize)
            .cloned()
            .collect())
    }

    async fn conversation_messages(
        &self,
        conversation_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let offset = usize::try_from(offset).unwrap_or(0);
        let limit = usize::try_from(limit).unwrap_or(0);
        Ok(self
            .lock()
            .messages
            .get(conversation_id)
            .map(|m| m.page(offset, limit))
            .unwrap_or_default())
    }

    async fn delete_conversation(&self, conversation_id: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        state.messages.remove(conversation_id);
        match state.conversations.remove(conversation_id) {
            Some(removed) => {
                state
                    .conversation_order
                    .remove(&(removed.updated_at, conversation_id.to_string()));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn end_conversation(
        &self,
        conversation_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(match self.lock().conversations.get_mut(conversation_id) {
            Some(conversation) => {
                conversation.ended_at.get_or_insert(at);
                true
            }
            None => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize) -> MessageRecord {
        MessageRecord {
            message_id: n.to_string(),
            role: "user".into(),
            content: String::new(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn only_the_newest_messages_are_kept_and_positions_still_count_from_the_first() {
        let mut messages = KeptMessages::default();
        let total = MAX_MESSAGES_PER_CONVERSATION + 10;
        for n in 0..total {
            messages.push(message(n));
        }
        assert_eq!(messages.kept.len(), MAX_MESSAGES_PER_CONVERSATION);
        let ids = |page: Vec<MessageRecord>| -> Vec<String> {
            page.into_iter().map(|m| m.message_id).collect()
        };
        // The newest two, asked for by their positions.
        assert_eq!(ids(messages.page(total - 2, 2)), ["208", "209"]);
        // A page reaching into the dropped ones holds the kept part only.
        assert_eq!(ids(messages.page(5, 7)), ["10", "11"]);
        assert!(messages.page(0, 10).is_empty());
        assert!(messages.page(total, 5).is_empty());
        assert_eq!(
            messages.page(0, usize::MAX).len(),
            MAX_MESSAGES_PER_CONVERSATION
        );
    }
}
