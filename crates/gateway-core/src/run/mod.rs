//! The one way an agent runs, whatever asked for it (REST, CLI, schedules, agentgate, a
//! delegating agent, a queue worker, a library caller): [`start`] checks the request (agent
//! enabled, the actor's scope, a personal agent's setup, the input), records the execution,
//! and either hands it to the queue or returns a [`RunTicket`]; the ticket runs it
//! ([`RunTicket::run`], or [`RunTicket::stream`] for its events) with the same hooks, usage,
//! recorded result and notifications for an invocation and a chat turn. A chat turn adds its
//! session around the run (`chat`). A ticket dropped before its run ended (a caller that went
//! away) records the execution cancelled.

mod chat;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::Stream;
use gateway_llm::{Message, Role};
use gateway_store::{ExecutionOutcome, ExecutionRecord, ExecutionStatus, StepRecord};
use gateway_telemetry::context::TraceFutureExt as _;
use gateway_workspace::{AgentDefinition, ExecutionMode};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::actor::Actor;
use crate::approvals::ApprovalGate;
use crate::engine::{self, EngineEvent, Limits, RunSpec};
use crate::error::{GatewayError, InputPart, Record};
use crate::generation::Generation;
use crate::hooks::HookEvent;
use crate::personal::{PersonalContext, personal_context};
use crate::runs::{
    ChatTurn, FinalAnswer, Origin, ParentLink, QueuedRun, RunEvent, RunKind, RunRequest, RunResult,
    ScheduleRun, StoredResult,
};
use crate::state::GatewayState;
use crate::tools::ToolContext;

use chat::HeldSession;

/// How [`start`] left a run.
pub enum Started {
    /// Recorded `queued` and handed to the queue: a worker runs it.
    Queued(QueuedRun),
    /// Recorded `running` in this process: the ticket runs it.
    Running(RunTicket),
}

/// A run checked, recorded and registered for cancellation, ready to run in this process.
pub struct RunTicket {
    state: Arc<GatewayState>,
    /// Boxed: a ticket moves through several futures, and the run's parts are large.
    prepared: Box<Prepared>,
}

/// The events of a streamed run (see [`RunEvent`]).
pub type RunStream = std::pin::Pin<Box<dyn Stream<Item = RunEvent> + Send>>;

/// Everything a run needs once it is recorded.
struct Prepared {
    checked: Checked,
    asked: Asked,
    actor: Actor,
    execution_id: String,
    conversation: Option<HeldSession>,
    cancel: CancellationToken,
    /// Records the run cancelled if it is dropped before its end is recorded.
    end: EndGuard,
    /// The run's exported span (`invoke_agent`); disabled when no traces are exported.
    trace: tracing::Span,
}

/// The end of a recorded run that must not be lost: dropped before the run's end was
/// recorded (its caller went away and its future with it), it records the execution
/// `cancelled` rather than leave it `running`.
struct EndGuard {
    state: Arc<GatewayState>,
    execution_id: String,
    /// The agent and the start, to count the execution if it ends here.
    agent_id: String,
    started: Instant,
    armed: bool,
}

impl EndGuard {
    fn new(state: &Arc<GatewayState>, execution_id: &str, agent_id: &str) -> Self {
        Self {
            state: Arc::clone(state),
            execution_id: execution_id.to_string(),
            agent_id: agent_id.to_string(),
            started: Instant::now(),
            armed: true,
        }
    }

    /// The run recorded its own end.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.state.running.finish(&self.execution_id);
        let cancelled = ExecutionStatus::Cancelled.as_str();
        let elapsed = self.started.elapsed();
        (self.state.metrics).execution(&self.agent_id, cancelled, elapsed);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(execution_id = %self.execution_id, "a run was dropped outside the runtime: its end is not recorded");
            return;
        };
        let state = Arc::clone(&self.state);
        let execution_id = std::mem::take(&mut self.execution_id);
        self.state.tasks.spawn_on(
            async move {
                let outcome = ExecutionOutcome {
                    status: ExecutionStatus::Cancelled,
                    result: None,
                    usage: None,
                    error: Some("The caller went away before the run ended".to_string()),
                    completed_at: Utc::now(),
                };
                record_end(&state, &execution_id, outcome, Vec::new()).await;
            },
            &runtime,
        );
    }
}

/// What the request asked for, besides the agent and the kind of run.
struct Asked {
    message: String,
    input: Map<String, Value>,
    timeout_ms: Option<u64>,
    origin: Origin,
}

/// A request that passed its checks.
struct Checked {
    generation: Arc<Generation>,
    agent: AgentDefinition,
    personal: Option<PersonalContext>,
    output_schema: Option<(Value, Arc<jsonschema::Validator>)>,
}

/// Checks and records a run: queued (when the caller takes that and the run is asynchronous)
/// or ready to run here.
pub(crate) async fn start(
    state: &Arc<GatewayState>,
    actor: &Actor,
    request: RunRequest,
) -> Result<Started, GatewayError> {
    // Once shutdown began, no new run starts; a run in flight may still delegate (its child
    // is part of what the drain waits for).
    if state.background.is_cancelled() && !matches!(request.origin, Origin::Delegation(_)) {
        return Err(GatewayError::ShuttingDown);
    }
    let checked = check(state, actor, &request).await?;
    let RunRequest {
        agent_id: _,
        message,
        input,
        kind,
        timeout_ms,
        may_queue,
        origin,
    } = request;
    let (run_async, output_schema_option, session_id) = match kind {
        RunKind::Invoke {
            output_schema,
            run_async,
        } => (
            run_async || checked.agent.execution_mode == ExecutionMode::Async,
            output_schema,
            None,
        ),
        RunKind::Chat { session_id } => (false, None, Some(session_id)),
    };
    let queued = run_async && may_queue;
    // A chat turn holds its session from here to its end: turns of a session run in order.
    let conversation = match &session_id {
        Some(id) => Some(HeldSession::open(state, actor, &checked.agent, id.as_deref()).await?),
        None => None,
    };
    let execution_id = gateway_store::new_execution_id();
    let mut record =
        ExecutionRecord::new(&execution_id, &checked.agent.id, &message, input.clone());
    // A queued run is traced as sent (a producer span) and run by a worker in that trace.
    let mut trace_context = None;
    let trace = if queued {
        let sent = gateway_telemetry::spans::enqueue_run(&checked.agent.id, &execution_id);
        record.trace_id = gateway_telemetry::context::trace_id(&sent);
        trace_context = Some(sent.in_scope(gateway_telemetry::context::outbound_map));
        tracing::Span::none()
    } else {
        let trace = gateway_telemetry::spans::agent_run(&checked.agent.id, &execution_id);
        record.trace_id = gateway_telemetry::context::trace_id(&trace);
        trace
    };
    record.user_id = actor.user_id().map(String::from);
    record.instance_id = Some(state.instance_id.clone());
    record.session_id = conversation.as_ref().map(|c| c.session_id().to_string());
    if conversation.is_none() {
        let mut options = json!({
            "async": run_async,
            "timeout_ms": timeout_ms,
            "output_schema": output_schema_option,
        });
        if queued && state.queue.durable() {
            // The queue redelivers it if its worker dies: the orphan reaper leaves it alone.
            options["queue"] = json!("durable");
        }
        if let Some(carrier) = trace_context.filter(|c| !c.is_empty()) {
            options["trace_context"] = json!(carrier);
        }
        record.options = Some(options);
    }
    match &origin {
        Origin::Request => {}
        Origin::Schedule(schedule) => {
            record.schedule_id = Some(schedule.schedule_id.clone());
            record.schedule_name = Some(schedule.schedule_name.clone());
        }
        Origin::Delegation(parent) => {
            record.parent_execution_id = Some(parent.execution_id.clone());
            record.root_execution_id = Some(parent.root_execution_id.clone());
            record.delegation_depth = i64::from(parent.depth);
        }
    }
    if queued {
        state.store.insert_execution(record).await?;
        if let Err(err) = state.queue.push(&execution_id).await {
            let reason = format!("could not be queued: {err}");
            fail_recorded(state, &execution_id, &checked.agent.id, reason).await;
            return Err(GatewayError::QueueUnavailable(err));
        }
        return Ok(Started::Queued(QueuedRun {
            execution_id,
            agent_id: checked.agent.id,
        }));
    }
    record.status = ExecutionStatus::Running;
    record.started_at = Some(Utc::now());
    let cancel = state.running.start(&execution_id);
    if let Err(err) = state.store.insert_execution(record).await {
        state.running.finish(&execution_id);
        return Err(err.into());
    }
    let end = EndGuard::new(state, &execution_id, &checked.agent.id);
    Ok(Started::Running(RunTicket {
        state: Arc::clone(state),
        prepared: Box::new(Prepared {
            checked,
            asked: Asked {
                message,
                input,
                timeout_ms,
                origin,
            },
            actor: actor.clone(),
            end,
            execution_id,
            conversation,
            cancel,
            trace,
        }),
    }))
}

/// What a run needs before it is recorded: its agent (enabled, and one the actor may run),
/// the user's setup of a personal agent, a valid input, the output schema that applies.
async fn check(
    state: &GatewayState,
    actor: &Actor,
    request: &RunRequest,
) -> Result<Checked, GatewayError> {
    let generation = state.generation();
    let agent = generation
        .agent(&request.agent_id)
        .ok_or_else(|| GatewayError::not_found(Record::Agent, &request.agent_id))?;
    if !agent.enabled {
        return Err(GatewayError::AgentDisabled(agent.id.clone()));
    }
    actor.check_run(&agent.id)?;
    let agent = agent.clone();
    let personal = personal_context(state, &agent, actor.user_id()).await?;
    let mut output_schema = None;
    if let RunKind::Invoke {
        output_schema: asked,
        ..
    } = &request.kind
    {
        if let Some(validator) = generation.input_validators.get(&agent.id) {
            let violations = gateway_workspace::schema::violations(
                validator,
                &Value::Object(request.input.clone()),
            );
            if !violations.is_empty() {
                return Err(GatewayError::InvalidInput {
                    part: InputPart::RunInput,
                    violations,
                });
            }
        }
        output_schema = match asked {
            Some(schema) => {
                let validator = gateway_workspace::schema::compile(schema).map_err(|message| {
                    GatewayError::InvalidInput {
                        part: InputPart::OutputSchema,
                        violations: vec![gateway_workspace::schema::Violation::new(
                            Vec::new(),
                            message,
                            "schema",
                        )],
                    }
                })?;
                Some((schema.clone(), Arc::new(validator)))
            }
            None => generation.output_validators.get(&agent.id).cloned(),
        };
    }
    Ok(Checked {
        generation,
        agent,
        personal,
        output_schema,
    })
}

/// Runs `request` to its end in this process (the caller waits; nothing is queued).
pub(crate) async fn run(
    state: &Arc<GatewayState>,
    actor: &Actor,
    mut request: RunRequest,
) -> Result<RunResult, GatewayError> {
    request.may_queue = false;
    match start(state, actor, request).await? {
        Started::Running(ticket) => Ok(ticket.run().await),
        // Unreachable without `may_queue`; answered plainly rather than assumed away.
        Started::Queued(queued) => Err(GatewayError::Internal(format!(
            "execution {} was queued although the caller waits",
            queued.execution_id
        ))),
    }
}

/// Starts `request` streamed: its events, ending with the result.
pub(crate) async fn stream(
    state: &Arc<GatewayState>,
    actor: &Actor,
    mut request: RunRequest,
) -> Result<RunStream, GatewayError> {
    if let RunKind::Invoke {
        run_async: true, ..
    } = request.kind
    {
        return Err(GatewayError::StreamingNotSupported);
    }
    request.may_queue = false;
    match start(state, actor, request).await? {
        Started::Running(ticket) => Ok(ticket.stream()),
        Started::Queued(_) => Err(GatewayError::StreamingNotSupported),
    }
}

impl RunTicket {
    pub fn execution_id(&self) -> &str {
        &self.prepared.execution_id
    }

    /// The session of a chat turn.
    pub fn session_id(&self) -> Option<&str> {
        self.prepared
            .conversation
            .as_ref()
            .map(HeldSession::session_id)
    }

    /// Runs to the end and records the result.
    pub async fn run(self) -> RunResult {
        let span = self.span();
        let trace = self.prepared.trace.clone();
        execute(&self.state, self.prepared, None)
            .instrument(span)
            .instrument(trace)
            .await
    }

    /// The span every log line of the run is written in (`execution_id`, `agent_id`).
    fn span(&self) -> tracing::Span {
        // At error level: enabled whatever the log level, so every line has its ids.
        let span = tracing::error_span!(
            "execution",
            execution_id = %self.prepared.execution_id,
            agent_id = %self.prepared.checked.agent.id,
            trace_id = tracing::field::Empty,
        );
        if let Some(trace_id) = gateway_telemetry::context::trace_id(&self.prepared.trace) {
            span.record("trace_id", trace_id);
        }
        span
    }

    /// Runs in a task of its own, yielding its events as they happen.
    pub fn stream(self) -> RunStream {
        let (events_tx, mut events_rx) = mpsc::channel::<EngineEvent>(64);
        let (out_tx, out_rx) = mpsc::channel::<RunEvent>(64);
        let started = RunEvent::Started {
            execution_id: self.execution_id().to_string(),
            session_id: self.session_id().map(String::from),
        };
        let span = self.span();
        let trace = self.prepared.trace.clone();
        let state = Arc::clone(&self.state);
        let prepared = self.prepared;
        state.tasks.spawn(
            {
                let state = Arc::clone(&state);
                async move {
                    let _ = out_tx.send(started).await;
                    let forward_tx = out_tx.clone();
                    let forward = tokio::spawn(async move {
                        while let Some(event) = events_rx.recv().await {
                            let _ = forward_tx.send(RunEvent::Engine(event)).await;
                        }
                    });
                    let result = execute(&state, prepared, Some(events_tx)).await;
                    let _ = forward.await;
                    let _ = out_tx.send(RunEvent::Finished(Box::new(result))).await;
                }
            }
            .instrument(span)
            .instrument(trace),
        );
        Box::pin(ReceiverStream::new(out_rx))
    }
}

/// Runs a prepared run to its end: hooks, prompt, the engine, the recorded result, the chat
/// turn, notifications.
async fn execute(
    state: &GatewayState,
    prepared: Box<Prepared>,
    events: Option<mpsc::Sender<EngineEvent>>,
) -> RunResult {
    let Prepared {
        checked:
            Checked {
                generation,
                agent,
                personal,
                output_schema,
            },
        asked:
            Asked {
                message,
                input,
                timeout_ms,
                origin,
            },
        actor,
        execution_id,
        mut conversation,
        cancel,
        end,
        trace,
    } = *prepared;
    let began = Instant::now();
    let hooks = &state.hooks;
    if hooks.listens("agent.invoke.before") {
        hooks
            .fire(HookEvent::AgentInvokeBefore {
                agent_id: agent.id.clone(),
                message: message.clone(),
                execution_id: execution_id.clone(),
            })
            .await;
    }
    let tools = generation.agent_tools(&agent);
    let schedule_instructions = match &origin {
        Origin::Schedule(schedule) => schedule.instructions.as_deref(),
        _ => None,
    };
    let memory = generation
        .memory
        .prompt_block(&agent.id, actor.user_id(), &message)
        .await;
    let extras = engine::prompt::PromptExtras {
        schedule_instructions,
        user_instructions: PersonalContext::prompt_of(&personal),
        chat_data_collection: conversation.is_some() && agent.input_schema.is_some(),
        memory: memory.as_deref(),
        ..Default::default()
    };
    let mut system =
        engine::prompt::system_prompt(&generation.workspace, &agent, &tools, &extras, Utc::now());
    if let Some((schema, _)) = &output_schema {
        system.push_str(&engine::prompt::output_format_instruction(schema));
    }
    let mut messages = vec![Message::system(system)];
    let metadata = match &mut conversation {
        Some(conversation) => {
            conversation.collect(&input);
            let collected = conversation.input();
            if agent.input_schema.is_some() && !collected.is_empty() {
                let data = serde_json::to_string_pretty(collected).unwrap_or_default();
                messages.push(Message::user(format!(
                    "Here is the data collected so far:\n```json\n{data}\n```"
                )));
                messages.push(Message::assistant("Understood. I will use this data."));
            }
            messages.extend(conversation.history().iter().cloned());
            messages.push(Message::user(message.clone()));
            collected.clone()
        }
        None => {
            let mut user = message.clone();
            if agent.input_schema.is_some() && !input.is_empty() {
                let block = serde_json::to_string_pretty(&input).unwrap_or_default();
                user = format!("{user}\n\n## Input\n```json\n{block}\n```");
            }
            messages.push(Message::user(user));
            input.clone()
        }
    };
    let parent = match &origin {
        Origin::Delegation(parent) => Some(parent),
        _ => None,
    };
    let mut context = ToolContext {
        execution_id: execution_id.clone(),
        agent_id: agent.id.clone(),
        caller_identity: actor.user_id().map(String::from),
        metadata,
        delegates_to: agent.delegates_to.clone(),
        parent_execution_id: parent.map(|p| p.execution_id.clone()),
        root_execution_id: parent.map(|p| p.root_execution_id.clone()),
        delegation_depth: parent.map_or(0, |p| p.depth),
        ..ToolContext::default()
    };
    PersonalContext::into_tool_context(personal, &mut context);
    // What an extraction after the run would read: the last messages before the answer.
    let recent: Option<Vec<(String, String)>> = generation
        .memory
        .settings(&agent.id)
        .filter(|s| {
            s.enabled
                && if conversation.is_some() {
                    s.auto_extract
                } else {
                    s.extract_on_invoke
                }
        })
        .map(|_| {
            let said: Vec<(String, String)> = messages
                .iter()
                .filter(|m| matches!(m.role, Role::User | Role::Assistant) && !m.content.is_empty())
                .map(|m| {
                    let role = if m.role == Role::User {
                        "user"
                    } else {
                        "assistant"
                    };
                    (role.to_string(), m.content.clone())
                })
                .collect();
            let skip = said
                .len()
                .saturating_sub(crate::memory::extract::MAX_MESSAGES - 1);
            said.into_iter().skip(skip).collect()
        });
    let spec = run_spec(
        state,
        &generation,
        &agent,
        RunParts {
            tools,
            messages,
            output_schema,
            timeout_ms,
            cancel,
            context,
            events,
        },
    );
    let mut outcome = engine::run(spec).await;
    if let Some(reason) = state.running.take_reason(&execution_id)
        && outcome.stop_reason == engine::StopReason::Cancelled
    {
        outcome.error = Some(reason);
    }
    let mut result = RunResult {
        execution_id: execution_id.clone(),
        agent_id: agent.id.clone(),
        status: outcome.stop_reason.status(),
        stop_reason: outcome.stop_reason,
        answer: FinalAnswer {
            output: outcome.output,
            raw_text: outcome.raw_text,
            validation_errors: outcome.validation_errors,
        },
        usage: outcome.usage,
        error: outcome.error,
        chat: None,
        failure: outcome.failure,
    };
    if let Some(conversation) = conversation {
        let session_id = conversation.session_id().to_string();
        let completed = (result.stop_reason == engine::StopReason::Completed).then(|| {
            (
                engine::answered_only(outcome.transcript),
                result.answer.raw_text.as_str(),
            )
        });
        let turn_count = conversation.finish(state, &message, completed).await;
        result.chat = Some(ChatTurn {
            session_id,
            turn_count,
        });
    }
    let stored = ExecutionOutcome {
        status: result.status,
        result: serde_json::to_value(StoredResult::from(&result)).ok(),
        usage: serde_json::to_value(&result.usage).ok(),
        error: result.error.clone(),
        completed_at: Utc::now(),
    };
    state.running.finish(&execution_id);
    result.status = record_end(state, &execution_id, stored, outcome.steps).await;
    end.disarm();
    let elapsed = began.elapsed();
    (state.metrics).execution(&agent.id, result.status.as_str(), elapsed);
    gateway_telemetry::spans::record_run_end(
        &trace,
        result.status.as_str(),
        result.error.as_deref(),
        result.usage.input_tokens,
        result.usage.output_tokens,
    );
    tracing::info!(
        status = result.status.as_str(),
        duration_ms = result.usage.duration_ms,
        "execution ended"
    );
    if state.notifications_enabled && !agent.notifications.is_empty() {
        let event = crate::notifications::ExecutionEvent {
            execution_id: execution_id.clone(),
            agent_id: agent.id.clone(),
            status: result.status,
            message,
            input,
            output: result.answer.output.clone(),
            raw_text: result.answer.raw_text.clone(),
            error: result.error.clone(),
            usage: serde_json::to_value(&result.usage).unwrap_or(Value::Null),
            duration_ms: result.usage.duration_ms,
        };
        state.tasks.spawn(
            crate::notifications::notify(
                Arc::clone(&state.store),
                generation.workspace.config.notifications.clone(),
                generation.outbound.clone(),
                Arc::clone(&state.metrics),
                agent.clone(),
                event,
            )
            .in_current_span()
            .with_current_trace(),
        );
    }
    if let Some(mut recent) = recent
        && result.stop_reason == engine::StopReason::Completed
    {
        recent.push(("assistant".to_string(), result.answer.raw_text.clone()));
        extract_later(state, &generation, &agent, &actor, recent);
    }
    if hooks.listens("agent.invoke.after") {
        hooks
            .fire(HookEvent::AgentInvokeAfter {
                agent_id: agent.id.clone(),
                execution_id,
                result: hook_payload(&result),
                duration_ms: result.usage.duration_ms,
            })
            .await;
    }
    result
}

/// Starts a background extraction of what the run's conversation taught about its user, when
/// the scope may be written and no other extraction of it ran within the debounce interval.
fn extract_later(
    state: &GatewayState,
    generation: &Arc<Generation>,
    agent: &AgentDefinition,
    actor: &Actor,
    conversation: Vec<(String, String)>,
) {
    let Ok(scope) = generation.memory.writable_scope(&agent.id, actor.user_id()) else {
        return;
    };
    let config = &generation.workspace.config.memory;
    let debounce = std::time::Duration::from_secs(config.extract_debounce_seconds);
    if !state.extractions.admit(&agent.id, &scope, debounce) {
        return;
    }
    // A permit is taken before the task exists: when every extraction slot is busy this one
    // is skipped rather than queued, so a slow model cannot pile up waiting tasks.
    let Ok(permit) = state.extractions.permits().try_acquire_owned() else {
        tracing::debug!(agent = %agent.id, "memory extraction skipped: every slot is busy");
        return;
    };
    let generation = Arc::clone(generation);
    let agent_id = agent.id.clone();
    let min_importance = config.min_extracted_importance;
    state.tasks.spawn(
        async move {
            let _permit = permit;
            let outcome = crate::memory::extract::extract(
                &generation.memory,
                &agent_id,
                &scope,
                &conversation,
                min_importance,
            )
            .await;
            match outcome {
                Ok(saved) => tracing::debug!(agent = %agent_id, saved, "memories extracted"),
                Err(err) => {
                    tracing::warn!(agent = %agent_id, error = %err, "memory extraction failed")
                }
            }
        }
        .in_current_span()
        .with_current_trace(),
    );
}

/// The result as hooks get it (the API's shape of a result).
fn hook_payload(result: &RunResult) -> Value {
    let mut payload = json!({
        "execution_id": result.execution_id,
        "agent_id": result.agent_id,
        "status": result.status,
        "stop_reason": result.stop_reason,
        "result": result.answer,
        "usage": result.usage,
        "error": result.error,
    });
    if let Some(chat) = &result.chat {
        payload["session_id"] = json!(chat.session_id);
        payload["turn_count"] = json!(chat.turn_count);
    }
    payload
}

/// The per-run parts of a [`RunSpec`].
struct RunParts {
    tools: Vec<crate::tools::SharedTool>,
    messages: Vec<Message>,
    output_schema: Option<(Value, Arc<jsonschema::Validator>)>,
    timeout_ms: Option<u64>,
    cancel: CancellationToken,
    context: ToolContext,
    events: Option<mpsc::Sender<EngineEvent>>,
}

/// The engine's input: the run's parts under the agent's guardrails (its own over
/// `gateway.yaml`'s).
fn run_spec(
    state: &GatewayState,
    generation: &Generation,
    agent: &AgentDefinition,
    parts: RunParts,
) -> RunSpec {
    let config = &generation.workspace.config;
    let guardrails = &config.guardrails;
    let own = &agent.guardrails;
    let timeout = parts
        .timeout_ms
        .or(own.timeout_ms)
        .unwrap_or(guardrails.timeout_ms);
    RunSpec {
        llm: generation.llm.clone(),
        hooks: state.hooks.clone(),
        agent_id: agent.id.clone(),
        tools: parts.tools,
        validators: Arc::clone(&generation.tool_validators),
        target: generation.model_target(agent),
        messages: parts.messages,
        output_schema: parts.output_schema,
        limits: Limits {
            max_iterations: own
                .max_iterations
                .unwrap_or(guardrails.max_iterations)
                .max(1),
            max_tool_calls: own.max_tool_calls.unwrap_or(guardrails.max_tool_calls),
            max_parallel_tool_calls: guardrails.max_parallel_tool_calls.max(1) as usize,
            max_tool_output_chars: guardrails.max_tool_output_chars.max(1),
            tool_timeout: Duration::from_millis(config.tools.timeout_ms.max(1)),
        },
        deadline: Instant::now() + Duration::from_millis(timeout.max(1)),
        cancel: parts.cancel,
        context: parts.context,
        events: parts.events,
        approval: ApprovalGate {
            approvals: Arc::clone(&state.approvals),
            timeout: Duration::from_millis(guardrails.approval_timeout_ms.max(1)),
        },
        metrics: Arc::clone(&state.metrics),
        capture_content: config.telemetry.capture_content,
    }
}

/// How often, and after how long, a failed write of a run's end is tried again.
const END_RETRIES: [Duration; 5] = [
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(30),
];

/// Records the end of an execution. Returns the stored status (a cancel that landed first
/// wins). When the store refuses, the caller still gets its answer and the end is written
/// again in the background (status and error only: the result is the caller's by then), so
/// the row never stays `running`.
async fn record_end(
    state: &GatewayState,
    execution_id: &str,
    outcome: ExecutionOutcome,
    steps: Vec<StepRecord>,
) -> ExecutionStatus {
    let status = outcome.status;
    let err = match state
        .store
        .finish_execution(execution_id, outcome, steps)
        .await
    {
        Ok(status) => return status,
        Err(err) => err,
    };
    tracing::error!(%execution_id, error = %err, "could not record the end of an execution; retrying");
    let store = Arc::clone(&state.store);
    let execution_id = execution_id.to_string();
    let reason = format!("The result could not be stored: {err}");
    state.tasks.spawn(
        async move {
        for delay in END_RETRIES {
            tokio::time::sleep(delay).await;
            let outcome = ExecutionOutcome {
                status,
                result: None,
                usage: None,
                error: Some(reason.clone()),
                completed_at: Utc::now(),
            };
            match store.finish_execution(&execution_id, outcome, Vec::new()).await {
                Ok(_) => return,
                Err(err) => tracing::warn!(%execution_id, error = %err, "the end of an execution is still not recorded"),
            }
        }
        tracing::error!(%execution_id, "gave up recording the end of an execution");
    }
        .in_current_span(),
    );
    status
}

/// Ends a recorded execution of `agent_id` that will never run, saying why, and counts it
/// (without a duration: it never ran).
pub(crate) async fn fail_recorded(
    state: &GatewayState,
    execution_id: &str,
    agent_id: &str,
    error: String,
) {
    let status = record_failed(state, execution_id, error).await;
    state.metrics.execution_not_run(agent_id, status.as_str());
}

/// Records `failed` for an execution, saying why; returns the status it ended with (a cancel
/// recorded first stays). Not counted here: [`fail_recorded`] counts what never ran, and a run
/// failed at the shutdown deadline is counted by its ticket when it ends.
pub(crate) async fn record_failed(
    state: &GatewayState,
    execution_id: &str,
    error: String,
) -> ExecutionStatus {
    let outcome = ExecutionOutcome {
        status: ExecutionStatus::Failed,
        result: None,
        usage: None,
        error: Some(error),
        completed_at: Utc::now(),
    };
    record_end(state, execution_id, outcome, Vec::new()).await
}

/// Rebuilds the run of a recorded execution that a worker claimed (already `running` here):
/// the same checks, for the user who asked for it.
pub(crate) async fn resume(
    state: &Arc<GatewayState>,
    record: ExecutionRecord,
) -> Result<RunTicket, GatewayError> {
    let options = record.options.clone().unwrap_or(Value::Null);
    let output_schema = options
        .get("output_schema")
        .filter(|v| !v.is_null())
        .cloned();
    let kind = RunKind::Invoke {
        output_schema,
        run_async: false,
    };
    let mut request = RunRequest::new(&record.agent_id, &record.message, kind).input(record.input);
    request.timeout_ms = options.get("timeout_ms").and_then(Value::as_u64);
    if let (Some(parent), Some(root)) = (&record.parent_execution_id, &record.root_execution_id) {
        request.origin = Origin::Delegation(ParentLink {
            execution_id: parent.clone(),
            root_execution_id: root.clone(),
            depth: u32::try_from(record.delegation_depth).unwrap_or(0),
        });
    } else if let (Some(id), Some(name)) = (&record.schedule_id, &record.schedule_name) {
        let instructions = state
            .store
            .get_schedule(id)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.instructions);
        request.origin = Origin::Schedule(ScheduleRun {
            schedule_id: id.clone(),
            schedule_name: name.clone(),
            instructions,
        });
    }
    // The request was checked for its actor when it was queued; the run is theirs.
    let actor = match &record.user_id {
        Some(user) => Actor::on_behalf_of(user.clone()),
        None => Actor::system(),
    };
    let checked = check(state, &actor, &request).await?;
    let RunRequest {
        message,
        input,
        timeout_ms,
        origin,
        ..
    } = request;
    let cancel = state.running.start(&record.execution_id);
    let end = EndGuard::new(state, &record.execution_id, &checked.agent.id);
    let trace = gateway_telemetry::spans::agent_run(&checked.agent.id, &record.execution_id);
    if let Some(carrier) = options
        .get("trace_context")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
    {
        gateway_telemetry::context::continue_from_map(&trace, &carrier);
    }
    Ok(RunTicket {
        state: Arc::clone(state),
        prepared: Box::new(Prepared {
            checked,
            asked: Asked {
                message,
                input,
                timeout_ms,
                origin,
            },
            actor,
            end,
            execution_id: record.execution_id,
            conversation: None,
            cancel,
            trace,
        }),
    })
}
