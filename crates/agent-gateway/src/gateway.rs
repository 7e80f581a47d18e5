//! [`Gateway`]: the library's entry point. It owns the loaded workspace, the tools, the model
//! client, sessions and executions, and runs invocations and chat turns for the API, the CLI
//! and programmatic callers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::Stream;
use gateway_llm::Message;
use gateway_workspace::{AgentDefinition, ExecutionMode, GatewayConfig, Workspace};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::engine::{
    self, EngineEvent, ExecutionStatus, Failure, Limits, RunOutcome, RunSpec, StopReason, Usage,
};
use crate::error::GatewayError;
use crate::executions::{ExecutionLog, ExecutionRecord};
use crate::hooks::{HookEvent, Hooks, UnknownEvent};
use crate::runtime::Runtime;
use crate::sessions::{ChatSession, SessionStore, SharedSession};
use crate::tools::{CodeTool, SharedTool, ToolContext};

/// Options of one invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionOptions {
    /// JSON Schema the final answer must match (overrides the agent's `output_schema`).
    pub output_schema: Option<Value>,
    /// Overrides `guardrails.timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// Run in the background and return at once (`202` over HTTP).
    pub run_async: bool,
}

/// A schedule that started a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRun {
    pub schedule_id: String,
    pub schedule_name: String,
    pub instructions: Option<String>,
}

/// One single-turn invocation.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    pub agent_id: String,
    pub message: String,
    pub input: Map<String, Value>,
    pub options: ExecutionOptions,
    pub user_id: Option<String>,
    pub schedule: Option<ScheduleRun>,
}

impl InvokeRequest {
    pub fn new(agent_id: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            message: message.into(),
            input: Map::new(),
            options: ExecutionOptions::default(),
            user_id: None,
            schedule: None,
        }
    }

    pub fn input(mut self, input: Map<String, Value>) -> Self {
        self.input = input;
        self
    }

    pub fn options(mut self, options: ExecutionOptions) -> Self {
        self.options = options;
        self
    }

    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }
}

/// The final answer of a run, as the API returns it under `result`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunResult {
    /// The structured output (when an output schema applied and was met), else null.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// The model's final text.
    pub raw_text: String,
    pub validation_errors: Option<Vec<String>>,
}

/// The outcome of an invocation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExecutionResult {
    pub execution_id: String,
    pub agent_id: String,
    pub status: ExecutionStatus,
    pub stop_reason: StopReason,
    pub result: RunResult,
    pub usage: Usage,
    pub error: Option<String>,
    #[serde(skip)]
    pub(crate) failure: Option<Failure>,
}

/// The outcome of a chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChatResult {
    pub session_id: String,
    pub execution_id: String,
    pub agent_id: String,
    pub status: ExecutionStatus,
    pub stop_reason: StopReason,
    pub result: RunResult,
    pub usage: Usage,
    pub error: Option<String>,
    pub turn_count: u32,
    #[serde(skip)]
    pub(crate) failure: Option<Failure>,
}

/// One chat turn.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub agent_id: String,
    pub message: String,
    pub session_id: Option<String>,
    pub input: Map<String, Value>,
    pub timeout_ms: Option<u64>,
    pub user_id: Option<String>,
}

impl ChatRequest {
    pub fn new(agent_id: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            message: message.into(),
            session_id: None,
            input: Map::new(),
            timeout_ms: None,
            user_id: None,
        }
    }

    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }
}

/// What a streamed chat turn yields: `Session` first, then the engine's events, then
/// exactly one `Done` (preceded by `Error` when the run failed).
#[derive(Debug, Clone, PartialEq)]
pub enum ChatStreamEvent {
    Session {
        session_id: String,
        execution_id: String,
    },
    Engine(EngineEvent),
    Error {
        message: String,
    },
    Done {
        stop_reason: StopReason,
        usage: Usage,
        turn_count: u32,
    },
}

/// Health summary.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the workspace has errors.
    pub status: String,
    pub agent_count: usize,
    pub skill_count: usize,
    pub tool_count: usize,
}

/// A change to the configuration made in code.
type ConfigOverride = Box<dyn FnOnce(&mut GatewayConfig) + Send>;

/// Configures and builds a [`Gateway`].
pub struct GatewayBuilder {
    workspace: PathBuf,
    env: Option<BTreeMap<String, String>>,
    code_tools: Vec<SharedTool>,
    hooks: Hooks,
    hook_errors: Vec<UnknownEvent>,
    reload_enabled: bool,
    overrides: Vec<ConfigOverride>,
    openapi_tags: Vec<(String, String)>,
}

impl GatewayBuilder {
    /// Environment used for `${VAR}`, `AGENT_GATEWAY_*` and provider keys (default: the
    /// process environment).
    pub fn env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env = Some(env);
        self
    }

    /// Registers a code tool.
    pub fn tool(mut self, tool: CodeTool) -> Self {
        self.code_tools.push(Arc::new(tool));
        self
    }

    /// Registers a lifecycle hook (see [`crate::hooks::EVENT_NAMES`]); an unknown event name
    /// makes [`GatewayBuilder::build`] fail.
    pub fn on<F, Fut>(mut self, event: &str, callback: F) -> Self
    where
        F: Fn(HookEvent) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        if let Err(err) = self.hooks.on(event, callback) {
            self.hook_errors.push(err);
        }
        self
    }

    /// Allows `POST /v1/reload` (CLI `serve --reload`).
    pub fn reload(mut self, enabled: bool) -> Self {
        self.reload_enabled = enabled;
        self
    }

    /// Changes configuration in code; applied over `gateway.yaml` and the environment.
    pub fn configure(mut self, change: impl FnOnce(&mut GatewayConfig) + Send + 'static) -> Self {
        self.overrides.push(Box::new(change));
        self
    }

    /// Adds an OpenAPI tag group (merged with the built-in ones, by name).
    pub fn openapi_tag(mut self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.openapi_tags.push((name.into(), description.into()));
        self
    }

    /// Loads the workspace. Fails on an invalid `gateway.yaml`; problems in agent, skill and
    /// tool files are reported (see [`Gateway::diagnostics`]) and the gateway starts degraded.
    pub fn build(self) -> Result<Gateway, GatewayError> {
        if let Some(err) = self.hook_errors.into_iter().next() {
            return Err(GatewayError::Internal(err.to_string()));
        }
        let env = self.env.unwrap_or_else(GatewayConfig::process_env);
        let mut workspace = Workspace::load(&self.workspace, &env);
        if !workspace.config_valid {
            return Err(GatewayError::InvalidConfig(workspace.diagnostics));
        }
        for change in self.overrides {
            change(&mut workspace.config);
        }
        let config = workspace.config.clone();
        let runtime = Runtime::build(workspace, &self.code_tools, Vec::new(), &env);
        for diagnostic in runtime.diagnostics.iter() {
            tracing::warn!("{diagnostic}");
        }
        let sessions = SessionStore::new(
            Duration::from_secs(config.sessions.ttl_seconds),
            config.sessions.max_sessions,
            config.sessions.max_messages,
        );
        Ok(Gateway {
            inner: Arc::new(Inner {
                workspace_path: self.workspace,
                env,
                code_tools: self.code_tools,
                hooks: self.hooks,
                reload_enabled: self.reload_enabled,
                runtime: RwLock::new(Arc::new(runtime)),
                sessions,
                executions: ExecutionLog::default(),
                openapi_tags: self.openapi_tags,
            }),
        })
    }
}

pub(crate) struct Inner {
    workspace_path: PathBuf,
    env: BTreeMap<String, String>,
    code_tools: Vec<SharedTool>,
    pub(crate) hooks: Hooks,
    reload_enabled: bool,
    runtime: RwLock<Arc<Runtime>>,
    pub(crate) sessions: SessionStore,
    pub(crate) executions: ExecutionLog,
    pub(crate) openapi_tags: Vec<(String, String)>,
}

/// The gateway. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

impl Gateway {
    /// Starts configuring a gateway for the workspace folder at `workspace`.
    pub fn builder(workspace: impl AsRef<Path>) -> GatewayBuilder {
        GatewayBuilder {
            workspace: workspace.as_ref().to_path_buf(),
            env: None,
            code_tools: Vec::new(),
            hooks: Hooks::default(),
            hook_errors: Vec::new(),
            reload_enabled: false,
            overrides: Vec::new(),
            openapi_tags: Vec::new(),
        }
    }

    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        let guard = self.inner.runtime.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }

    /// The configuration in effect.
    pub fn config(&self) -> GatewayConfig {
        self.runtime().workspace.config.clone()
    }

    /// Loading problems and reference checks of the current workspace.
    pub fn diagnostics(&self) -> gateway_workspace::Diagnostics {
        self.runtime().diagnostics.clone()
    }

    pub fn health(&self) -> Health {
        let runtime = self.runtime();
        Health {
            status: if runtime.diagnostics.has_errors() {
                "degraded"
            } else {
                "ok"
            }
            .to_string(),
            agent_count: runtime.workspace.agents.len(),
            skill_count: runtime.workspace.skills.len(),
            tool_count: runtime.tools.len(),
        }
    }

    /// The definition of agent `id` in the current workspace.
    pub fn agent(&self, id: &str) -> Option<AgentDefinition> {
        self.runtime().agent(id).cloned()
    }

    /// Whether `POST /v1/reload` is allowed.
    pub fn reload_enabled(&self) -> bool {
        self.inner.reload_enabled
    }

    /// Re-reads the workspace and swaps it in; requests in flight finish on the old one.
    /// Returns the number of agents.
    pub fn reload(&self) -> Result<usize, GatewayError> {
        let workspace = Workspace::load(&self.inner.workspace_path, &self.inner.env);
        if !workspace.config_valid {
            let messages: Vec<String> = workspace
                .diagnostics
                .errors()
                .map(|d| d.to_string())
                .collect();
            return Err(GatewayError::ReloadFailed(messages.join("; ")));
        }
        let runtime = Runtime::build(
            workspace,
            &self.inner.code_tools,
            Vec::new(),
            &self.inner.env,
        );
        let agents = runtime.workspace.agents.len();
        let mut guard = self
            .inner
            .runtime
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(runtime);
        Ok(agents)
    }

    fn enabled_agent(runtime: &Runtime, agent_id: &str) -> Result<AgentDefinition, GatewayError> {
        let agent = runtime
            .agent(agent_id)
            .ok_or_else(|| GatewayError::AgentNotFound(agent_id.to_string()))?;
        if !agent.enabled {
            return Err(GatewayError::AgentDisabled(agent_id.to_string()));
        }
        Ok(agent.clone())
    }

    /// Runs an agent once and waits for its answer.
    pub async fn invoke(
        &self,
        agent_id: &str,
        message: &str,
    ) -> Result<ExecutionResult, GatewayError> {
        self.invoke_with(InvokeRequest::new(agent_id, message))
            .await
    }

    /// Runs an agent once and deserializes its structured output into `T` (whose JSON Schema
    /// is sent as the output schema).
    pub async fn invoke_typed<T: DeserializeOwned + JsonSchema>(
        &self,
        agent_id: &str,
        message: &str,
    ) -> Result<T, GatewayError> {
        let schema = crate::tools::clean_schema(
            serde_json::to_value(schemars::schema_for!(T))
                .map_err(|e| GatewayError::Internal(e.to_string()))?,
        );
        let request = InvokeRequest::new(agent_id, message).options(ExecutionOptions {
            output_schema: Some(schema),
            ..ExecutionOptions::default()
        });
        let result = self.invoke_with(request).await?;
        if result.status != ExecutionStatus::Completed {
            return Err(GatewayError::ExecutionFailed(
                result
                    .error
                    .unwrap_or_else(|| result.status.as_str().to_string()),
            ));
        }
        let output = result.result.output.ok_or_else(|| {
            GatewayError::OutputMismatch(
                result
                    .result
                    .validation_errors
                    .map(|e| e.join("; "))
                    .unwrap_or_else(|| "no structured output".to_string()),
            )
        })?;
        serde_json::from_value(output).map_err(|e| GatewayError::OutputMismatch(e.to_string()))
    }

    /// Checks an invocation and records it. Returns the prepared run, or `None` when it was
    /// queued to run in the background (then the returned record says so).
    pub async fn invoke_with(
        &self,
        request: InvokeRequest,
    ) -> Result<ExecutionResult, GatewayError> {
        let prepared = self.prepare_invoke(request)?;
        Ok(self.run_invoke(prepared).await)
    }

    /// Validates and records an invocation without running it.
    pub(crate) fn prepare_invoke(
        &self,
        request: InvokeRequest,
    ) -> Result<PreparedInvoke, GatewayError> {
        let runtime = self.runtime();
        let agent = Self::enabled_agent(&runtime, &request.agent_id)?;
        if let Some(validator) = runtime.input_validators.get(&agent.id) {
            let details = gateway_workspace::schema::violations(
                validator,
                &Value::Object(request.input.clone()),
            );
            if !details.is_empty() {
                return Err(GatewayError::InvalidInput { details });
            }
        }
        let output_schema = match &request.options.output_schema {
            Some(schema) => {
                let validator = gateway_workspace::schema::compile(schema).map_err(|message| {
                    GatewayError::InvalidInput {
                        details: vec![format!("options.output_schema: {message}")],
                    }
                })?;
                Some((schema.clone(), Arc::new(validator)))
            }
            None => runtime.output_validators.get(&agent.id).cloned(),
        };
        let execution_id = uuid::Uuid::new_v4().to_string();
        let run_async = request.options.run_async || agent.execution_mode == ExecutionMode::Async;
        let mut record = ExecutionRecord::new(
            &execution_id,
            &agent.id,
            &request.message,
            request.input.clone(),
        );
        record.user_id = request.user_id.clone();
        record.status = if run_async {
            ExecutionStatus::Queued
        } else {
            ExecutionStatus::Running
        };
        let cancel = self.inner.executions.start(record);
        Ok(PreparedInvoke {
            runtime,
            agent,
            request,
            execution_id,
            output_schema,
            cancel,
            run_async,
        })
    }

    /// Runs a prepared invocation to its end and records the result.
    pub(crate) async fn run_invoke(&self, prepared: PreparedInvoke) -> ExecutionResult {
        let PreparedInvoke {
            runtime,
            agent,
            request,
            execution_id,
            output_schema,
            cancel,
            ..
        } = prepared;
        self.inner.executions.update(&execution_id, |r| {
            r.status = ExecutionStatus::Running;
            r.started_at = Some(Utc::now());
        });
        let hooks = &self.inner.hooks;
        hooks
            .fire(HookEvent::AgentInvokeBefore {
                agent_id: agent.id.clone(),
                message: request.message.clone(),
                execution_id: execution_id.clone(),
            })
            .await;
        let tools = runtime.agent_tools(&agent);
        let extras = engine::prompt::PromptExtras {
            schedule_instructions: request
                .schedule
                .as_ref()
                .and_then(|s| s.instructions.as_deref()),
            ..Default::default()
        };
        let mut system =
            engine::prompt::system_prompt(&runtime.workspace, &agent, &tools, &extras, Utc::now());
        if let Some((schema, _)) = &output_schema {
            system.push_str(&engine::prompt::output_format_instruction(schema));
        }
        let mut user = request.message.clone();
        if agent.input_schema.is_some() && !request.input.is_empty() {
            let block = serde_json::to_string_pretty(&request.input).unwrap_or_default();
            user = format!("{user}\n\n## Input\n```json\n{block}\n```");
        }
        let context = ToolContext {
            execution_id: execution_id.clone(),
            agent_id: agent.id.clone(),
            caller_identity: request.user_id.clone(),
            metadata: request.input.clone(),
            delegates_to: agent.delegates_to.clone(),
            ..ToolContext::default()
        };
        let spec = self.run_spec(
            &runtime,
            &agent,
            tools,
            vec![Message::system(system), Message::user(user)],
            output_schema,
            request.options.timeout_ms,
            cancel,
            context,
            None,
        );
        let outcome = engine::run(spec).await;
        let result = ExecutionResult {
            execution_id: execution_id.clone(),
            agent_id: agent.id.clone(),
            status: outcome.stop_reason.status(),
            stop_reason: outcome.stop_reason,
            result: RunResult {
                output: outcome.output.clone(),
                raw_text: outcome.raw_text.clone(),
                validation_errors: outcome.validation_errors.clone(),
            },
            usage: outcome.usage.clone(),
            error: outcome.error.clone(),
            failure: outcome.failure,
        };
        let stored = json!({
            "output": result.result.output,
            "raw_text": result.result.raw_text,
            "stop_reason": result.stop_reason,
            "validation_errors": result.result.validation_errors,
        });
        self.inner.executions.finish(&execution_id, |r| {
            r.status = result.status;
            r.result = Some(stored);
            r.error = result.error.clone();
            r.usage = Some(result.usage.clone());
        });
        hooks
            .fire(HookEvent::AgentInvokeAfter {
                agent_id: agent.id.clone(),
                execution_id,
                result: serde_json::to_value(&result).unwrap_or(Value::Null),
                duration_ms: result.usage.duration_ms,
            })
            .await;
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn run_spec(
        &self,
        runtime: &Runtime,
        agent: &AgentDefinition,
        tools: Vec<SharedTool>,
        messages: Vec<Message>,
        output_schema: Option<(Value, Arc<jsonschema::Validator>)>,
        timeout_ms: Option<u64>,
        cancel: tokio_util::sync::CancellationToken,
        context: ToolContext,
        events: Option<mpsc::Sender<EngineEvent>>,
    ) -> RunSpec {
        let config = &runtime.workspace.config;
        let guardrails = &config.guardrails;
        let own = &agent.guardrails;
        let timeout = timeout_ms
            .or(own.timeout_ms)
            .unwrap_or(guardrails.timeout_ms);
        RunSpec {
            llm: runtime.llm.clone(),
            hooks: self.inner.hooks.clone(),
            agent_id: agent.id.clone(),
            tools,
            validators: Arc::clone(&runtime.tool_validators),
            target: runtime.model_target(agent),
            messages,
            output_schema,
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
            cancel,
            context,
            events,
        }
    }

    /// One chat turn; creates the session when `request.session_id` is `None`.
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatResult, GatewayError> {
        let turn = self.prepare_chat(&request)?;
        Ok(self.run_chat(turn, request, None).await)
    }

    /// One chat turn, streamed. The stream always ends with [`ChatStreamEvent::Done`].
    pub fn chat_stream(
        &self,
        request: ChatRequest,
    ) -> Result<impl Stream<Item = ChatStreamEvent> + Send + 'static, GatewayError> {
        let turn = self.prepare_chat(&request)?;
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
            if let Some(error) = &result.error
                && (result.stop_reason == StopReason::Error
                    || result.stop_reason == StopReason::Timeout)
            {
                let message = if result.stop_reason == StopReason::Timeout {
                    "Execution timed out".to_string()
                } else {
                    error.clone()
                };
                let _ = out_tx.send(ChatStreamEvent::Error { message }).await;
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

    fn prepare_chat(&self, request: &ChatRequest) -> Result<PreparedChat, GatewayError> {
        let runtime = self.runtime();
        let agent = Self::enabled_agent(&runtime, &request.agent_id)?;
        let session = match &request.session_id {
            Some(id) => {
                let session = self
                    .inner
                    .sessions
                    .get(id)
                    .ok_or_else(|| GatewayError::SessionNotFound(id.clone()))?;
                let summary = self.inner.sessions.summary(id);
                if let Some(summary) = summary {
                    if summary.agent_id != agent.id {
                        return Err(GatewayError::SessionAgentMismatch {
                            session_id: id.clone(),
                            owner: summary.agent_id,
                            agent_id: agent.id.clone(),
                        });
                    }
                    if summary.user_id.is_some() && summary.user_id != request.user_id {
                        return Err(GatewayError::SessionForbidden(id.clone()));
                    }
                }
                session
            }
            None => self
                .inner
                .sessions
                .create(&agent.id, request.user_id.clone()),
        };
        let session_id = match session.try_lock() {
            Ok(guard) => guard.id.clone(),
            Err(_) => request.session_id.clone().unwrap_or_default(),
        };
        let execution_id = uuid::Uuid::new_v4().to_string();
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
        let cancel = self.inner.executions.start(record);
        Ok(PreparedChat {
            runtime,
            agent,
            session,
            session_id,
            execution_id,
            cancel,
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
            execution_id,
            cancel,
        } = turn;
        let streaming = events.is_some();
        // Turns of one session run one after the other.
        let mut session = session.lock().await;
        for (key, value) in &request.input {
            session.input.insert(key.clone(), value.clone());
        }
        let hooks = &self.inner.hooks;
        if !streaming {
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
        let context = ToolContext {
            execution_id: execution_id.clone(),
            agent_id: agent.id.clone(),
            caller_identity: request.user_id.clone(),
            metadata: session.input.clone(),
            delegates_to: agent.delegates_to.clone(),
            ..ToolContext::default()
        };
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
        if outcome.stop_reason == StopReason::Completed {
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
        drop(session);

        // Chat turns are completed or failed (0.2.13 semantics), except timeouts/cancels.
        let status = match outcome.stop_reason {
            StopReason::Completed => ExecutionStatus::Completed,
            StopReason::Timeout => ExecutionStatus::Timeout,
            StopReason::Cancelled => ExecutionStatus::Cancelled,
            _ => ExecutionStatus::Failed,
        };
        let result = ChatResult {
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
        self.inner.executions.finish(&execution_id, |r| {
            r.status = status;
            r.result = Some(json!({"content": result.result.raw_text}));
            r.error = result.error.clone();
            r.usage = Some(result.usage.clone());
        });
        if !streaming {
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

    /// The sessions table (API listings).
    pub(crate) fn sessions(&self) -> &SessionStore {
        &self.inner.sessions
    }

    /// The executions table of this process.
    pub fn executions(&self) -> &ExecutionLog {
        &self.inner.executions
    }

    /// Fires `gateway.startup`; call once when serving starts.
    pub async fn startup(&self) {
        self.inner.hooks.fire(HookEvent::GatewayStartup).await;
    }

    /// Fires `gateway.shutdown`; call once when serving stops.
    pub async fn shutdown(&self) {
        self.inner.hooks.fire(HookEvent::GatewayShutdown).await;
    }

    /// Restores a chat session (e.g. from persistence).
    pub fn restore_session(&self, session: ChatSession) -> SharedSession {
        self.inner.sessions.insert(session)
    }
}

/// An invocation checked and recorded, ready to run.
pub(crate) struct PreparedInvoke {
    runtime: Arc<Runtime>,
    agent: AgentDefinition,
    request: InvokeRequest,
    pub execution_id: String,
    output_schema: Option<(Value, Arc<jsonschema::Validator>)>,
    cancel: tokio_util::sync::CancellationToken,
    pub run_async: bool,
}

impl PreparedInvoke {
    pub fn agent_id(&self) -> &str {
        &self.agent.id
    }
}

struct PreparedChat {
    runtime: Arc<Runtime>,
    agent: AgentDefinition,
    session: SharedSession,
    session_id: String,
    execution_id: String,
    cancel: tokio_util::sync::CancellationToken,
}
