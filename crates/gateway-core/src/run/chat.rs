//! What a chat turn adds around a run: its session (locked for the whole turn), the history
//! sent to the model, and the turn written to the store. The store holds the truth: every
//! turn starts by reading the session's stored state, so a turn answered meanwhile on another
//! instance is in the history, and a session deleted anywhere is gone everywhere.

use chrono::Utc;
use gateway_llm::{Message, Role};
use gateway_store::{ConversationRecord, ConversationTurn};
use gateway_workspace::AgentDefinition;
use serde_json::{Map, Value};
use tokio::sync::OwnedMutexGuard;

use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::sessions::ChatSession;
use crate::state::Shared;

/// Longest conversation title (the first user message, shortened).
const TITLE_CHARS: usize = 80;

/// A chat session held for one turn.
pub(crate) struct Conversation {
    session: OwnedMutexGuard<ChatSession>,
    /// This turn starts the session (its stored conversation gets a title).
    new: bool,
}

/// Whether a stored conversation can still be continued.
fn resumable(shared: &Shared, conversation: &ConversationRecord) -> bool {
    let ttl = chrono::Duration::seconds(
        i64::try_from(shared.generation().config().sessions.ttl_seconds).unwrap_or(i64::MAX),
    );
    conversation.ended_at.is_none() && conversation.updated_at + ttl >= Utc::now()
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

impl Conversation {
    /// The session of a turn, locked: a new one, the cached one (brought up to date with the
    /// store), or one restored from the store.
    pub async fn open(
        shared: &Shared,
        actor: &Actor,
        agent: &AgentDefinition,
        session_id: Option<&str>,
    ) -> Result<Self, GatewayError> {
        let Some(session_id) = session_id else {
            let (_, session) = shared
                .sessions
                .create(&agent.id, actor.user_id().map(String::from));
            return Ok(Self {
                session: session.lock_owned().await,
                new: true,
            });
        };
        let not_found = || GatewayError::not_found(Record::Session, session_id);
        let stored = shared.store.get_conversation(session_id).await?;
        let cached = shared.sessions.get(session_id);
        let session = match (&stored, cached) {
            (Some(conversation), cached) => {
                if !resumable(shared, conversation) {
                    shared.sessions.remove(session_id);
                    return Err(not_found());
                }
                check_owner(
                    actor,
                    agent,
                    session_id,
                    &conversation.agent_id,
                    conversation.user_id.as_deref(),
                )?;
                cached.unwrap_or_else(|| shared.sessions.insert(placeholder(conversation)))
            }
            (None, Some(cached)) => {
                // Started here, and no turn of it completed yet (or none was stored).
                let summary = shared.sessions.summary(session_id).ok_or_else(not_found)?;
                check_owner(
                    actor,
                    agent,
                    session_id,
                    &summary.agent_id,
                    summary.user_id.as_deref(),
                )?;
                cached
            }
            (None, None) => return Err(not_found()),
        };
        let mut guard = session.lock_owned().await;
        let stored_messages = stored.as_ref().map_or(0, |c| c.message_count);
        if guard.stored_messages != stored_messages {
            // Another instance answered a turn since this one last looked (or the session was
            // just restored): the store's history is the conversation. The lock is held, so
            // this read sees every turn of this instance too.
            let fresh = shared
                .store
                .get_conversation(session_id)
                .await?
                .filter(|c| resumable(shared, c))
                .ok_or_else(not_found)?;
            restore(shared, &mut guard, &fresh).await?;
        }
        Ok(Self {
            session: guard,
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
        shared: &Shared,
        message: &str,
        completed: Option<(Vec<Message>, &str)>,
    ) -> u32 {
        let session = &mut *self.session;
        if let Some((transcript, answer)) = completed {
            session.messages.push(Message::user(message));
            session.messages.extend(transcript);
            session.turn_count += 1;
            session.trim(shared.sessions.max_messages());
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
            match shared.store.append_turn(&turn).await {
                Ok(()) => session.stored_messages += 2,
                // The next turn finds the store's count different and reads its history.
                Err(err) => {
                    tracing::error!(session_id = %session.id, error = %err, "could not persist the chat turn")
                }
            }
        }
        session.updated_at = Utc::now();
        shared.sessions.update_summary(session);
        session.turn_count
    }
}

/// A cached session for a stored conversation, filled by [`restore`] under its lock.
fn placeholder(conversation: &ConversationRecord) -> ChatSession {
    ChatSession {
        id: conversation.conversation_id.clone(),
        agent_id: conversation.agent_id.clone(),
        user_id: conversation.user_id.clone(),
        messages: Vec::new(),
        input: Map::new(),
        turn_count: 0,
        // Never a real count: the first turn reads the history.
        stored_messages: -1,
        created_at: conversation.created_at,
        updated_at: conversation.updated_at,
    }
}

/// Replaces a session's history with the store's (user and assistant texts, the newest
/// `sessions.max_messages`; a turn that never got its answer is left out).
async fn restore(
    shared: &Shared,
    session: &mut ChatSession,
    conversation: &ConversationRecord,
) -> Result<(), GatewayError> {
    let max = i64::try_from(shared.sessions.max_messages()).unwrap_or(i64::MAX);
    let offset = (conversation.message_count - max).max(0);
    let stored = shared
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
    session.turn_count = u32::try_from(conversation.message_count.max(0) / 2).unwrap_or(u32::MAX);
    session.messages = messages;
    session.stored_messages = conversation.message_count;
    session.updated_at = conversation.updated_at;
    tracing::debug!(session_id = %session.id, messages = session.messages.len(), "chat session read from the store");
    Ok(())
}
