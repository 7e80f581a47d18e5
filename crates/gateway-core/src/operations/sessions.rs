//! Chat sessions as the store holds them: listed, read and ended the same on every instance
//! (a session cached in one process is only a copy; see `run::chat`).

use std::sync::Arc;

use chrono::Utc;
use gateway_store::ConversationFilter;

use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::session_cache::{SessionInfo, resumable, resumable_since};
use crate::state::GatewayState;

/// Operations on chat sessions (`gateway.sessions()`).
pub struct Sessions<'a> {
    state: &'a Arc<GatewayState>,
}

impl<'a> Sessions<'a> {
    pub(crate) fn new(state: &'a Arc<GatewayState>) -> Self {
        Self { state }
    }

    fn ttl_seconds(&self) -> u64 {
        self.state.generation().config().sessions.ttl_seconds
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
            updated_since: Some(resumable_since(self.ttl_seconds(), Utc::now())),
            open_only: true,
            limit,
            offset: 0,
        };
        let stored = self.state.store.list_conversations(&filter).await?;
        Ok(stored.iter().map(SessionInfo::from_stored).collect())
    }

    /// A session the actor may see: as stored, or — before its first turn completed — as
    /// cached here.
    pub async fn get(&self, actor: &Actor, session_id: &str) -> Result<SessionInfo, GatewayError> {
        let not_found = || GatewayError::not_found(Record::Session, session_id);
        let info = match self.state.store.get_conversation(session_id).await? {
            Some(stored) if resumable(&stored, self.ttl_seconds()) => {
                SessionInfo::from_stored(&stored)
            }
            Some(_) => return Err(not_found()),
            None => self
                .state
                .sessions
                .summary(session_id)
                .ok_or_else(not_found)?,
        };
        actor.check_access(Record::Session, session_id, info.user_id.as_deref())?;
        Ok(info)
    }

    /// Ends a session: forgotten here, and its stored conversation can no longer be resumed
    /// on any instance (its history stays readable). A turn in progress here ends first (its
    /// answer is stored, then the session ends). Returns whether it existed.
    pub async fn end(&self, actor: &Actor, session_id: &str) -> Result<bool, GatewayError> {
        let state = self.state;
        let cached = state.sessions.summary(session_id);
        let stored = state.store.get_conversation(session_id).await?;
        let owner = match (&stored, &cached) {
            (Some(conversation), _) => conversation.user_id.clone(),
            (None, Some(summary)) => summary.user_id.clone(),
            (None, None) => return Ok(false),
        };
        actor.check_access(Record::Session, session_id, owner.as_deref())?;
        // Wait for a turn of this instance to store its answer: ending first would let that
        // turn create the conversation again, open.
        let held = match cached {
            Some(_) => Some(
                state
                    .sessions
                    .get_or_insert(session_id, || {
                        crate::session_cache::ChatSession::unread(session_id)
                    })
                    .lock_owned()
                    .await,
            ),
            None => None,
        };
        let forgotten = state.sessions.remove(session_id);
        let ended = state.store.end_conversation(session_id, Utc::now()).await?;
        drop(held);
        Ok(forgotten || ended)
    }
}
