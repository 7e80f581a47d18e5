//! Chat sessions as the store holds them: listed, read and ended the same on every instance
//! (a session cached in one process is only a copy; see `run::chat`).

use std::sync::Arc;

use chrono::Utc;
use gateway_store::ConversationFilter;

use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::sessions::SessionInfo;
use crate::state::Shared;

/// Operations on chat sessions (`gateway.sessions()`).
pub struct Sessions<'a> {
    shared: &'a Arc<Shared>,
}

impl<'a> Sessions<'a> {
    pub(crate) fn new(shared: &'a Arc<Shared>) -> Self {
        Self { shared }
    }

    /// How long an idle session can be resumed.
    fn ttl(&self) -> chrono::Duration {
        let seconds = self.shared.generation().config().sessions.ttl_seconds;
        chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX))
    }

    /// The sessions that can be resumed (not ended, used within the TTL) and that the actor
    /// may see, most recently used first.
    pub async fn list(
        &self,
        actor: &Actor,
        agent_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SessionInfo>, GatewayError> {
        let filter = ConversationFilter {
            user_id: actor.owner_filter().map(String::from),
            agent_id: agent_id.map(String::from),
            updated_since: Some(Utc::now() - self.ttl()),
            open_only: true,
            limit,
            offset: 0,
        };
        let stored = self.shared.store.list_conversations(&filter).await?;
        Ok(stored.iter().map(SessionInfo::from_stored).collect())
    }

    /// A session the actor may see: as stored, or — before its first turn completed — as
    /// cached here.
    pub async fn get(&self, actor: &Actor, session_id: &str) -> Result<SessionInfo, GatewayError> {
        let not_found = || GatewayError::not_found(Record::Session, session_id);
        let info = match self.shared.store.get_conversation(session_id).await? {
            Some(conversation) => {
                if conversation.ended_at.is_some()
                    || conversation.updated_at + self.ttl() < Utc::now()
                {
                    return Err(not_found());
                }
                SessionInfo::from_stored(&conversation)
            }
            None => self
                .shared
                .sessions
                .summary(session_id)
                .ok_or_else(not_found)?,
        };
        actor.check_access(Record::Session, session_id, info.user_id.as_deref())?;
        Ok(info)
    }

    /// Ends a session: forgotten here, and its stored conversation can no longer be resumed
    /// on any instance (its history stays readable). Returns whether it existed.
    pub async fn end(&self, actor: &Actor, session_id: &str) -> Result<bool, GatewayError> {
        let stored = self.shared.store.get_conversation(session_id).await?;
        let owner = match (&stored, self.shared.sessions.summary(session_id)) {
            (Some(conversation), _) => conversation.user_id.clone(),
            (None, Some(summary)) => summary.user_id,
            (None, None) => return Ok(false),
        };
        actor.check_access(Record::Session, session_id, owner.as_deref())?;
        let cached = self.shared.sessions.remove(session_id);
        let ended = self
            .shared
            .store
            .end_conversation(session_id, Utc::now())
            .await?;
        Ok(cached || ended)
    }
}
