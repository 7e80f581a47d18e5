//! Chat turns: sessions in memory, every turn persisted, sessions restored from the store
//! when this process does not hold them (after a restart, or on another instance).

use std::sync::Arc;

use chrono::Utc;
use futures::Stream;
use gateway_llm::Message;
use gateway_store::{ConversationTurn, ExecutionOutcome, ExecutionRecord};
use gateway_workspace::AgentDefinition;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::{ChatRequest, ChatResult, ChatStreamEvent, Gateway, RunResult, storage};
use crate::engine::{self, EngineEvent, ExecutionStatus, RunOutcome, StopReason};
use crate::error::GatewayError;
use crate::hooks::HookEvent;
use crate::runtime::Runtime;
use crate::sessions::{ChatSession, SharedSession};
use crate::tools::ToolContext;

/// Longest conversation title (the first user message, shortened).
const TITLE_CHARS: usize = 80;

struct PreparedChat {
    runtime: Arc<Runtime>,
    agent: AgentDefinition,
    session: SharedSession,
    session_id: String,
    /// Whether this turn creates the session (its conversation gets a title).
    new_session: bool,
    execution_id: String,
    cancel: CancellationToken,
    personal: Option<super::user_config::PersonalContext>,
}

impl Gateway {
    /// One chat turn; creates the session when `request.session_id` is `None`.
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatResult, GatewayError> {
        let turn = self.prepare_chat(&request).await?;
        Ok(self.run_chat(turn, request, None).await)
    }

    /// One chat turn, streamed. The stream always ends with [`ChatStreamEvent::Done`].
    pub async fn chat_stream(
        &self,
        request: ChatRequest,
    ) -> Result<impl Stream<Item = ChatStreamEvent> + Send + 'static, GatewayError> {
        let turn = self.prepare_chat(&request).await?;
        let (events_tx, mut events_rx) = mpsc::channel::<EngineEvent>(64);
        let (out_tx, out_rx) = mpsc::channel::<ChatStreamEvent>(64);
        let gateway = self.clone();
        let session_event = ChatStreamEvent::Session {
            session_id: turn.session_id.clone(),
            execution_id: turn.execution_id.clone(),
        };
        tokio::spawn(async move {
            let _ = out_tx.send(session_event).await;
            let forward_tx = out_tx.clone();
            let forward = tokio::spawn(async move {
                while let Some(event) = events_rx.recv().await {
                    let _ = forward_tx.send(ChatStreamEvent::Engine(event)).await;
                }
            });
            let result = gateway.run_chat(turn, request, Some(events_tx)).await;
            let _ = forward.await;
            if let Some(error) = &result.error {
                let message = match result.stop_reason {
                    StopReason::Timeout => Some("Execution timed out".to_string()),
                    StopReason::Error => Some(error.clone()),
                    _ => None,
                };
                if let Some(message) = message {
                    let _ = out_tx.send(ChatStreamEvent::Error { message }).await;
                }
            }
            let _ = out_tx
                .send(ChatStreamEvent::Done {
                    stop_reason: result.stop_reason,
                    usage: result.usage,
                    turn_count: result.turn_count,
                })
                .await;
        });
        Ok(ReceiverStream::new(out_rx))
    }

    /// The live session, restored from the store when this process does not hold it.
    async fn find_session(
        &self,
        session_id: &str,
        agent: &AgentDefinition,
        user_id: &Option<String>,
    ) -> Result<SharedSession, GatewayError> {
        let check = |owner_agent: &str, owner_user: &Option<String>| {
            if owner_agent != agent.id {
                return Err(GatewayError::SessionAgentMismatch {
                    session_id: session_id.to_string(),
                    owner: owner_agent.to_string(),
                    agent_id: agent.id.clone(),
                });
            }
            if owner_user.is_some() && owner_user != user_id {
                return Err(GatewayError::SessionForbidden(session_id.to_string()));
            }
            Ok(())
        };
        if let Some(session) = self.inner.sessions.get(session_id) {
            if let Some(summary) = self.inner.sessions.summary(session_id) {
                check(&summary.agent_id, &summary.user_id)?;
            }
            return Ok(session);
        }
        let not_found = || GatewayError::SessionNotFound(session_id.to_string());
        let conversation = self
            .inner
            .store
            .get_conversation(session_id)
            .await
            .map_err(storage)?
            .ok_or_else(not_found)?;
        let ttl = chrono::Duration::seconds(self.config().sessions.ttl_seconds as i64);
        if conversation.ended_at.is_some() || conversation.updated_at + ttl < Utc::now() {
            return Err(not_found());
        }
        check(&conversation.agent_id, &conversation.user_id)?;
        let max = self.inner.sessions.max_messages() as i64;
        let offset = (conversation.message_count - max).max(0);
        let stored = self
            .inner
            .store
            .conversation_messages(session_id, max, offset)
            .await
            .map_err(storage)?;
        let mut messages: Vec<Message> = stored
            .iter()
            .filter_map(|m| match m.role.as_str() {
                "user" => Some(Message::user(m.content.clone())),
                "assistant" => Some(Message::assistant(m.content.clone())),
                _ => None,
            })
            .collect();
        // A turn that never got its answer is not part of the conversation.
        if messages
            .last()
            .is_some_and(|m| m.role == gateway_llm::Role::User)
        {
            messages.pop();
        }
        let mut session = ChatSession {
            id: session_id.to_string(),
            agent_id: conversation.agent_id.clone(),
            user_id: conversation.user_id.clone(),
            messages,
            input: serde_json::Map::new(),
            turn_count: 0,
            created_at: conversation.created_at,
            updated_at: conversation.updated_at,
        };
        session.turn_count = session
            .messages
            .iter()
            .filter(|m| m.role == gateway_llm::Role::User)
            .count() as u32;
        tracing::info!(%session_id, messages = session.messages.len(), "chat session restored from the store");
        Ok(self.inner.sessions.insert(session))
    }

    /// Ends a session: forgotten in memory, and its persisted conversation can no longer be
    /// resumed (its history stays readable). Returns whether it existed.
    pub async fn delete_session(&self, session_id: &str) -> Result<bool, GatewayError> {
        let in_memory = self.inner.sessions.remove(session_id);
        let persisted = self
            .inner
            .store
            .end_conversation(session_id, Utc::now())
            .await
            .map_err(storage)?;
        Ok(in_memory || persisted)
    }

    async fn prepare_chat(&self, request: &ChatRequest) -> Result<PreparedChat, GatewayError> {
        let runtime = self.runtime();
        let agent = Self::enabled_agent(&runtime, &request.agent_id)?;
        let personal = self
            .personal_context(&agent, request.user_id.as_deref())
            .await?;
        let (session_id, session, new_session) = match &request.session_id {
            Some(id) => (
                id.clone(),
                self.find_session(id, &agent, &request.user_id).await?,
                false,
            ),
            None => {
                let (id, session) = self
                    .inner
                    .sessions
                    .create(&agent.id, request.user_id.clone());
                (id, session, true)
            }
        };
        let execution_id = gateway_store::new_execution_id();
        let mut record = ExecutionRecord::new(
            &execution_id,
            &agent.id,
            &request.message,
            request.input.clone(),
        );
        record.status = ExecutionStatus::Running;
        record.started_at = Some(Utc::now());
        record.session_id = Some(session_id.clone());
        record.user_id = request.user_id.clone();
        let cancel = self.start_execution(record).await?;
        Ok(PreparedChat {
            runtime,
            agent,
            session,
            session_id,
            new_session,
            execution_id,
            cancel,
            personal,
        })
    }

    async fn run_chat(
        &self,
        turn: PreparedChat,
        request: ChatRequest,
        events: Option<mpsc::Sender<EngineEvent>>,
    ) -> ChatResult {
        let PreparedChat {
            runtime,
            agent,
            session,
            session_id,
            new_session,
            execution_id,
            cancel,
            personal,
        } = turn;
        let streaming = events.is_some();
        // Turns of one session run one after the other.
        let mut session = session.lock().await;
        for (key, value) in &request.input {
            session.input.insert(key.clone(), value.clone());
        }
        let hooks = &self.inner.hooks;
        if !streaming && hooks.listens("agent.invoke.before") {
            hooks
                .fire(HookEvent::AgentInvokeBefore {
                    agent_id: agent.id.clone(),
                    message: request.message.clone(),
                    execution_id: execution_id.clone(),
                })
                .await;
        }
        let tools = runtime.agent_tools(&agent);
        let extras = engine::prompt::PromptExtras {
            chat_data_collection: agent.input_schema.is_some(),
            user_instructions: super::user_config::PersonalContext::prompt_of(&personal),
            ..Default::default()
        };
        let system =
            engine::prompt::system_prompt(&runtime.workspace, &agent, &tools, &extras, Utc::now());
        let mut messages = vec![Message::system(system)];
        if agent.input_schema.is_some() && !session.input.is_empty() {
            let data = serde_json::to_string_pretty(&session.input).unwrap_or_default();
            messages.push(Message::user(format!(
                "Here is the data collected so far:\n```json\n{data}\n```"
            )));
            messages.push(Message::assistant("Understood. I will use this data."));
        }
        messages.extend(session.messages.iter().cloned());
        let user_message = Message::user(request.message.clone());
        messages.push(user_message.clone());
        let mut context = ToolContext {
            execution_id: execution_id.clone(),
            agent_id: agent.id.clone(),
            caller_identity: request.user_id.clone(),
            metadata: session.input.clone(),
            delegates_to: agent.delegates_to.clone(),
            ..ToolContext::default()
        };
        super::user_config::PersonalContext::into_tool_context(personal, &mut context);
        let spec = self.run_spec(
            &runtime,
            &agent,
            tools,
            messages,
            None,
            request.timeout_ms,
            cancel,
            context,
            events,
        );
        let outcome: RunOutcome = engine::run(spec).await;
        let completed = outcome.stop_reason == StopReason::Completed;
        if completed {
            session.messages.push(user_message);
            session
                .messages
                .extend(engine::answered_only(outcome.transcript.clone()));
            session.turn_count += 1;
            let max = self.inner.sessions.max_messages();
            session.trim(max);
        }
        session.updated_at = Utc::now();
        self.inner.sessions.update_summary(&session);
        let turn_count = session.turn_count;
        let user_id = session.user_id.clone();
        drop(session);

        // Chat turns are completed or failed (0.2.13 semantics), except timeouts/cancels.
        let status = match outcome.stop_reason {
            StopReason::Completed => ExecutionStatus::Completed,
            StopReason::Timeout => ExecutionStatus::Timeout,
            StopReason::Cancelled => ExecutionStatus::Cancelled,
            _ => ExecutionStatus::Failed,
        };
        let mut result = ChatResult {
            session_id: session_id.clone(),
            execution_id: execution_id.clone(),
            agent_id: agent.id.clone(),
            status,
            stop_reason: outcome.stop_reason,
            result: RunResult {
                output: None,
                raw_text: outcome.raw_text.clone(),
                validation_errors: None,
            },
            usage: outcome.usage.clone(),
            error: outcome.error.clone(),
            turn_count,
            failure: outcome.failure,
        };
        let stored = ExecutionOutcome {
            status,
            result: Some(json!({"content": result.result.raw_text})),
            usage: serde_json::to_value(&result.usage).ok(),
            error: result.error.clone(),
            completed_at: Utc::now(),
        };
        result.status = self
            .finish_execution(&execution_id, stored, outcome.steps)
            .await;
        if completed {
            let title = new_session.then(|| {
                request
                    .message
                    .chars()
                    .take(TITLE_CHARS)
                    .collect::<String>()
            });
            let turn = ConversationTurn {
                conversation_id: session_id,
                agent_id: agent.id.clone(),
                user_id,
                title,
                messages: vec![
                    ("user".to_string(), request.message.clone()),
                    ("assistant".to_string(), result.result.raw_text.clone()),
                ],
                at: Utc::now(),
            };
            if let Err(err) = self.inner.store.append_turn(&turn).await {
                tracing::error!(session_id = %turn.conversation_id, error = %err, "could not persist the chat turn");
            }
        }
        if !streaming && hooks.listens("agent.invoke.after") {
            hooks
                .fire(HookEvent::AgentInvokeAfter {
                    agent_id: agent.id.clone(),
                    execution_id,
                    result: serde_json::to_value(&result).unwrap_or(Value::Null),
                    duration_ms: result.usage.duration_ms,
                })
                .await;
        }
        result
    }
}
