//! The one way an agent runs, whatever asked for it (REST, CLI, schedules, agentgate, a
//! delegating agent, a queue worker, a library caller): [`start`] checks the request (agent
//! enabled, the actor's scope, a personal agent's setup, the input), records the execution,
//! and either hands it to the queue or returns a [`RunTicket`]; the ticket runs it ([`RunTicket::finish`],
//! or [`RunTicket::stream`] for its events) with the same hooks, usage, recorded result and
//! notifications for an invocation and a chat turn. A chat turn adds its session around the
//! run (`chat`).

mod chat;
pub mod request;

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use futures::Stream;
use gateway_llm::Message;
use gateway_store::{ExecutionOutcome, ExecutionRecord, ExecutionStatus, StepRecord};
use gateway_workspace::{AgentDefinition, ExecutionMode};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::actor::Actor;
use crate::approvals::ApprovalGate;
use crate::engine::{self, EngineEvent, Limits, RunSpec};
use crate::error::{GatewayError, Record};
use crate::generation::Generation;
use crate::hooks::HookEvent;
use crate::operations::sessions::Sessions;
use crate::operations::user_configs::{PersonalContext, personal_context};
use crate::runner::Runner;
use crate::state::Shared;
use crate::tools::ToolContext;

use chat::Conversation;
use request::{
    ChatTurn, FinalAnswer, Origin, ParentLink, QueuedRun, RunEvent, RunKind, RunRequest, RunResult,
    ScheduleRun, StoredResult,
};

/// How [`start`] left a run.
pub enum Started {
    /// Recorded `queued` and handed to the queue: a worker runs it.
    Queued(QueuedRun),
    /// Recorded `running` in this process: the ticket runs it.
    Running(RunTicket),
}

/// A run checked, recorded and registered for cancellation, ready to run in this process.
pub struct RunTicket {
    shared: Arc<Shared>,
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
    conversation: Option<Conversation>,
    cancel: CancellationToken,
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
    shared: &Arc<Shared>,
    actor: &Actor,
    request: RunRequest,
) -> Result<Started, GatewayError> {
    let checked = check(shared, actor, &request).await?;
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
        Some(id) => Some(Conversation::open(shared, actor, &checked.agent, id.as_deref()).await?),
        None => None,
    };
    let execution_id = gateway_store::new_execution_id();
    let mut record =
        ExecutionRecord::new(&execution_id, &checked.agent.id, &message, input.clone());
    record.user_id = actor.user_id().map(String::from);
    record.instance_id = Some(shared.instance_id.clone());
    record.session_id = conversation.as_ref().map(|c| c.session_id().to_string());
    if conversation.is_none() {
        let mut options = json!({
            "async": run_async,
            "timeout_ms": timeout_ms,
            "output_schema": output_schema_option,
        });
        if queued && shared.queue.durable() {
            // The queue redelivers it if its worker dies: the orphan reaper leaves it alone.
            options["queue"] = json!("durable");
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
        shared.store.insert_execution(record).await?;
        if let Err(err) = shared.queue.push(&execution_id).await {
            fail_recorded(shared, &execution_id, format!("could not be queued: {err}")).await;
            return Err(GatewayError::QueueUnavailable(err));
        }
        return Ok(Started::Queued(QueuedRun {
            execution_id,
            agent_id: checked.agent.id,
        }));
    }
    record.status = ExecutionStatus::Running;
    record.started_at = Some(Utc::now());
    let cancel = shared.running.start(&execution_id);
    if let Err(err) = shared.store.insert_execution(record).await {
        shared.running.finish(&execution_id);
        return Err(err.into());
    }
    Ok(Started::Running(RunTicket {
        shared: Arc::clone(shared),
        prepared: Box::new(Prepared {
            checked,
            asked: Asked {
                message,
                input,
                timeout_ms,
                origin,
            },
            actor: actor.clone(),
            execution_id,
            conversation,
            cancel,
        }),
    }))
}

/// What a run needs before it is recorded: its agent (enabled, and one the actor may run),
/// the user's setup of a personal agent, a valid input, the output schema that applies.
async fn check(
    shared: &Shared,
    actor: &Actor,
    request: &RunRequest,
) -> Result<Checked, GatewayError> {
    let generation = shared.generation();
    let agent = generation
        .agent(&request.agent_id)
        .ok_or_else(|| GatewayError::not_found(Record::Agent, &request.agent_id))?;
    if !agent.enabled {
        return Err(GatewayError::AgentDisabled(agent.id.clone()));
    }
    // A delegated child is authorised by its parent agent's `delegates_to`.
    if !matches!(request.origin, Origin::Delegation(_)) {
        actor.check_run(&agent.id)?;
    }
    let agent = agent.clone();
    let personal = personal_context(shared, &agent, actor.user_id()).await?;
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
                return Err(GatewayError::InvalidInput { violations });
            }
        }
        output_schema = match asked {
            Some(schema) => {
                let validator = gateway_workspace::schema::compile(schema).map_err(|message| {
                    GatewayError::InvalidInput {
                        violations: vec![gateway_workspace::schema::Violation::new(
                            vec![gateway_workspace::schema::PathSegment::Key(
                                "output_schema".into(),
                            )],
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
    shared: &Arc<Shared>,
    actor: &Actor,
    mut request: RunRequest,
) -> Result<RunResult, GatewayError> {
    request.may_queue = false;
    match start(shared, actor, request).await? {
        Started::Running(ticket) => Ok(ticket.finish().await),
        // Unreachable without `may_queue`; answered plainly rather than assumed away.
        Started::Queued(queued) => Err(GatewayError::Internal(format!(
            "execution {} was queued although the caller waits",
            queued.execution_id
        ))),
    }
}

/// Starts `request` streamed: its events, ending with the result.
pub(crate) async fn stream(
    shared: &Arc<Shared>,
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
    match start(shared, actor, request).await? {
        Started::Running(ticket) => Ok(ticket.stream()),
        Started::Queued(_) => Err(GatewayError::StreamingNotSupported),
    }
}

impl RunTicket {
    pub fn execution_id(&self) -> &str {
        &self.prepared.execution_id
    }

    pub fn agent_id(&self) -> &str {
        &self.prepared.checked.agent.id
    }

    /// The session of a chat turn.
    pub fn session_id(&self) -> Option<&str> {
        self.prepared
            .conversation
            .as_ref()
            .map(Conversation::session_id)
    }

    /// Runs to the end and records the result.
    pub async fn finish(self) -> RunResult {
        execute(&self.shared, self.prepared, None).await
    }

    /// Runs in a task of its own, yielding its events as they happen.
    pub fn stream(self) -> RunStream {
        let (events_tx, mut events_rx) = mpsc::channel::<EngineEvent>(64);
        let (out_tx, out_rx) = mpsc::channel::<RunEvent>(64);
        let started = RunEvent::Started {
            execution_id: self.execution_id().to_string(),
            session_id: self.session_id().map(String::from),
        };
        let shared = Arc::clone(&self.shared);
        let prepared = self.prepared;
        shared.tasks.spawn({
            let shared = Arc::clone(&shared);
            async move {
                let _ = out_tx.send(started).await;
                let forward_tx = out_tx.clone();
                let forward = tokio::spawn(async move {
                    while let Some(event) = events_rx.recv().await {
                        let _ = forward_tx.send(RunEvent::Engine(event)).await;
                    }
                });
                let result = execute(&shared, prepared, Some(events_tx)).await;
                let _ = forward.await;
                let _ = out_tx.send(RunEvent::Finished(Box::new(result))).await;
            }
        });
        Box::pin(ReceiverStream::new(out_rx))
    }
}

/// Runs a prepared run to its end: hooks, prompt, the engine, the recorded result, the chat
/// turn, notifications.
async fn execute(
    shared: &Shared,
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
    } = *prepared;
    let hooks = &shared.hooks;
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
    let extras = engine::prompt::PromptExtras {
        schedule_instructions,
        user_instructions: PersonalContext::prompt_of(&personal),
        chat_data_collection: conversation.is_some() && agent.input_schema.is_some(),
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
    let spec = run_spec(
        shared,
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
    let outcome = engine::run(spec).await;
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
        let turn_count = conversation.finish(shared, &message, completed).await;
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
    result.status = finish_execution(shared, &execution_id, stored, outcome.steps).await;
    if !agent.notifications.is_empty() {
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
        shared.tasks.spawn(crate::notifications::notify(
            Arc::clone(&shared.store),
            generation.workspace.config.notifications.clone(),
            agent.clone(),
            event,
        ));
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
    shared: &Shared,
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
        hooks: shared.hooks.clone(),
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
            approvals: Arc::clone(&shared.approvals),
            timeout: Duration::from_millis(guardrails.approval_timeout_ms.max(1)),
        },
    }
}

/// Records the end of an execution. Returns the stored status (a cancel that landed first
/// wins). A storage failure is logged: the caller still gets its answer.
async fn finish_execution(
    shared: &Shared,
    execution_id: &str,
    outcome: ExecutionOutcome,
    steps: Vec<StepRecord>,
) -> ExecutionStatus {
    shared.running.finish(execution_id);
    let status = outcome.status;
    match shared
        .store
        .finish_execution(execution_id, outcome, steps)
        .await
    {
        Ok(status) => status,
        Err(err) => {
            tracing::error!(%execution_id, error = %err, "could not record the end of an execution");
            status
        }
    }
}

/// Ends a recorded execution that will never run, saying why.
pub(crate) async fn fail_recorded(shared: &Shared, execution_id: &str, error: String) {
    let outcome = ExecutionOutcome {
        status: ExecutionStatus::Failed,
        result: None,
        usage: None,
        error: Some(error),
        completed_at: Utc::now(),
    };
    if let Err(err) = shared
        .store
        .finish_execution(execution_id, outcome, Vec::new())
        .await
    {
        tracing::error!(%execution_id, error = %err, "could not record a failed execution");
    }
}

/// Rebuilds the run of a recorded execution that a worker claimed (already `running` here):
/// the same checks, for the user who asked for it.
pub(crate) async fn resume(
    shared: &Arc<Shared>,
    record: ExecutionRecord,
) -> Result<RunTicket, GatewayError> {
    let options = record.options.clone().unwrap_or(Value::Null);
    let mut request = RunRequest::invoke(&record.agent_id, &record.message).input(record.input);
    if let Some(schema) = options.get("output_schema").filter(|v| !v.is_null()) {
        request = request.output_schema(schema.clone());
    }
    request.timeout_ms = options.get("timeout_ms").and_then(Value::as_u64);
    if let (Some(parent), Some(root)) = (&record.parent_execution_id, &record.root_execution_id) {
        request.origin = Origin::Delegation(ParentLink {
            execution_id: parent.clone(),
            root_execution_id: root.clone(),
            depth: u32::try_from(record.delegation_depth).unwrap_or(0),
        });
    } else if let (Some(id), Some(name)) = (&record.schedule_id, &record.schedule_name) {
        let instructions = shared
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
    let checked = check(shared, &actor, &request).await?;
    let RunRequest {
        message,
        input,
        timeout_ms,
        origin,
        ..
    } = request;
    let cancel = shared.running.start(&record.execution_id);
    Ok(RunTicket {
        shared: Arc::clone(shared),
        prepared: Box::new(Prepared {
            checked,
            asked: Asked {
                message,
                input,
                timeout_ms,
                origin,
            },
            actor,
            execution_id: record.execution_id,
            conversation: None,
            cancel,
        }),
    })
}

/// The gateway as the delegation tool (and any part below the gateway) sees it: weakly, so
/// that the generation holding the tool does not keep the gateway alive.
pub(crate) struct RunnerHandle(pub Weak<Shared>);

#[async_trait]
impl Runner for RunnerHandle {
    async fn run(&self, actor: &Actor, request: RunRequest) -> Result<RunResult, GatewayError> {
        let shared = self.0.upgrade().ok_or(GatewayError::ShuttingDown)?;
        Box::pin(run(&shared, actor, request)).await
    }

    async fn end_session(&self, actor: &Actor, session_id: &str) -> Result<bool, GatewayError> {
        let shared = self.0.upgrade().ok_or(GatewayError::ShuttingDown)?;
        Sessions::new(&shared).end(actor, session_id).await
    }
}
