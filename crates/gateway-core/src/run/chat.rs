//! What a chat turn adds around a run: its session (locked for the whole turn), the history
//! sent to the model, and the turn written to the store. The store holds the truth: every turn
//! takes the session's lock, then reads the session's stored state, so a turn answered
//! meanwhile by another instance is in the history, and a session ended anywhere is gone
//! everywhere.

use chrono::Utc;
use gateway_llm::{Message, Role};
use gateway_store::{ConversationRecord, ConversationTurn};
use gateway_workspace::AgentDefinition;
use serde_json::{Map, Value};
use tokio::sync::OwnedMutexGuard;

use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::session_cache::{ChatSession, resumable};
use crate::state::GatewayState;

/// Longest conversation title (the first user message, shortened).
const TITLE_CHARS: usize = 80;

/// A chat session held for one turn.
pub(crate) struct HeldSession {
    session: OwnedMutexGuard<ChatSession>,
    /// This turn starts the session (its stored conversation gets a title).
    new: bool,
}

/// Refuses a session of another agent or another user.
fn check_owner(
    actor: &Actor,
    agent: &AgentDefinition,
    session_id: &str,
    owner_agent: &str,
    owner_user: Option<&str>,
) -> Result<(), GatewayError> {
    if owner_agent != agent.id {
        return Err(GatewayError::SessionAgentMismatch {
            session_id: session_id.to_string(),
            owner: owner_agent.to_string(),
            agent_id: agent.id.clone(),
        });
    }
    actor.check_access(Record::Session, session_id, owner_user)
}

impl HeldSession {
    /// The session of a turn, locked: a new one, or `session_id` brought up to date with the
    /// store (read once the lock is held, so no turn of this instance is half-seen).
    pub async fn open(
        state: &GatewayState,
        actor: &Actor,
        agent: &AgentDefinition,
        session_id: Option<&str>,
    ) -> Result<Self, GatewayError> {
        let Some(session_id) = session_id else {
            let session = state
                .sessions
                .create(&agent.id, actor.user_id().map(String::from));
            return Ok(Self {
                session: session.lock_owned().await,
                new: true,
            });
        };
        let session = state
            .sessions
            .get_or_insert(session_id, || ChatSession::unread(session_id));
        let mut held = session.lock_owned().await;
        let not_found = || {
            state.sessions.remove(session_id);
            GatewayError::not_found(Record::Session, session_id)
        };
        let ttl_seconds = state.generation().config().sessions.ttl_seconds;
        match state.store.get_conversation(session_id).await? {
            Some(stored) if resumable(&stored, ttl_seconds) => {
                check_owner(
                    actor,
                    agent,
                    session_id,
                    &stored.agent_id,
                    stored.user_id.as_deref(),
                )?;
                if held.stored_messages != stored.message_count {
                    // Read before, or another instance answered a turn since this one looked.
                    restore(state, &mut held, &stored).await?;
                }
            }
            Some(_) => return Err(not_found()),
            // Started here, and no turn of it stored yet: only the cache knows it.
            None if held.stored_messages == 0 => check_owner(
                actor,
                agent,
                session_id,
                &held.agent_id,
                held.user_id.as_deref(),
            )?,
            None => return Err(not_found()),
        }
        Ok(Self {
            session: held,
            new: false,
        })
    }

    pub fn session_id(&self) -> &str {
        &self.session.id
    }

    /// Adds a turn's input to what the session collected.
    pub fn collect(&mut self, input: &Map<String, Value>) {
        for (key, value) in input {
            self.session.input.insert(key.clone(), value.clone());
        }
    }

    /// What the session collected so far.
    pub fn input(&self) -> &Map<String, Value> {
        &self.session.input
    }

    /// The history before this turn (no system prompt).
    pub fn history(&self) -> &[Message] {
        &self.session.messages
    }

    /// Ends the turn: a completed one joins the history and the store. Returns the session's
    /// completed turns.
    pub async fn finish(
        mut self,
        state: &GatewayState,
        message: &str,
        completed: Option<(Vec<Message>, &str)>,
    ) -> u32 {
        let session = &mut *self.session;
        if let Some((transcript, answer)) = completed {
            session.messages.push(Message::user(message));
            session.messages.extend(transcript);
            session.turn_count += 1;
            session.trim(state.sessions.max_messages());
            let turn = ConversationTurn {
                conversation_id: session.id.clone(),
                agent_id: session.agent_id.clone(),
                user_id: session.user_id.clone(),
                title: self
                    .new
                    .then(|| message.chars().take(TITLE_CHARS).collect()),
                messages: vec![
                    ("user".to_string(), message.to_string()),
                    ("assistant".to_string(), answer.to_string()),
                ],
                at: Utc::now(),
            };
            match state.store.append_turn(&turn).await {
                Ok(()) => session.stored_messages += 2,
                // The next turn finds the store's count different and reads its history.
                Err(err) => {
                    tracing::error!(session_id = %session.id, error = %err, "could not persist the chat turn")
                }
            }
        }
        session.updated_at = Utc::now();
        state.sessions.update_summary(session);
        session.turn_count
    }
}

/// Replaces a session's history with the store's (user and assistant texts, the newest
/// `sessions.max_messages`; a turn that never got its answer is left out).
async fn restore(
    state: &GatewayState,
    session: &mut ChatSession,
    conversation: &ConversationRecord,
) -> Result<(), GatewayError> {
    let max = i64::try_from(state.sessions.max_messages()).unwrap_or(i64::MAX);
    let offset = (conversation.message_count - max).max(0);
    let stored = state
        .store
        .conversation_messages(&conversation.conversation_id, max, offset)
        .await?;
    let mut messages: Vec<Message> = stored
        .iter()
        .filter_map(|m| match m.role.as_str() {
            "user" => Some(Message::user(m.content.clone())),
            "assistant" => Some(Message::assistant(m.content.clone())),
            _ => None,
        })
        .collect();
    if messages.last().is_some_and(|m| m.role == Role::User) {
        messages.pop();
    }
    session.agent_id.clone_from(&conversation.agent_id);
    session.user_id.clone_from(&conversation.user_id);
    session.turn_count = u32::try_from(conversation.message_count.max(0) / 2).unwrap_or(u32::MAX);
    session.messages = messages;
    session.stored_messages = conversation.message_count;
    session.created_at = conversation.created_at;
    session.updated_at = conversation.updated_at;
    tracing::debug!(session_id = %session.id, messages = session.messages.len(), "chat session read from the store");
    Ok(())
}
