//! [`Gateway`]: the library's entry point. It owns the loaded workspace, the tools, the model
//! client, the store, sessions and running executions, and runs invocations and chat turns
//! for the API, the CLI and programmatic callers.

mod background;
mod chat;
mod invoke;
mod mcp;
mod schedules;
mod user_config;
mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use gateway_llm::Message;
use gateway_store::{
    ApprovalRecord, CancelResult, ExecutionFilter, ExecutionRecord, MemoryStore, SharedStore,
    StepRecord,
};
use gateway_workspace::{AgentDefinition, GatewayConfig, Workspace};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::approvals::{ApprovalGate, Approvals};
use crate::auth::Authenticator;
use crate::engine::{EngineEvent, ExecutionStatus, Failure, Limits, RunSpec, StopReason, Usage};
use crate::error::GatewayError;
use crate::executions::Running;
use crate::hooks::{HookEvent, Hooks, UnknownEvent};
use crate::mcp::{McpManager, McpServerConfig};
use crate::rate_limit::RateLimiter;
use crate::runtime::{Parts, Runtime};
use crate::scheduler::SchedulerState;
use crate::secrets::SecretBox;
use crate::sessions::SessionStore;
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

/// The execution that delegated a run (for child executions).
#[derive(Debug, Clone, PartialEq)]
pub struct ParentLink {
    pub execution_id: String,
    /// The root of the delegation tree (the parent itself when it is top-level).
    pub root_execution_id: String,
    /// Depth of the child (parent's depth + 1).
    pub depth: u32,
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
    /// Set when another execution delegated this one.
    pub parent: Option<ParentLink>,
    /// An asynchronous run goes through the queue (not run by the caller itself).
    pub(crate) via_queue: bool,
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
            parent: None,
            via_queue: false,
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

/// What cancelling an execution did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    NotFound,
    /// It had already ended with this status.
    NotCancellable(ExecutionStatus),
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
    store: Option<SharedStore>,
    mcp_servers: Vec<McpServerConfig>,
}

impl GatewayBuilder {
    /// Adds an MCP server (its tools go to the agents listing it in `mcp_servers`).
    pub fn mcp_server(mut self, server: McpServerConfig) -> Self {
        self.mcp_servers.push(server);
        self
    }

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

    /// Uses this store instead of the one `persistence` configures.
    pub fn store(mut self, store: SharedStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Loads the workspace and opens the store. Fails on an invalid `gateway.yaml` or an
    /// unreachable database; problems in agent, skill and tool files are reported (see
    /// [`Gateway::diagnostics`]) and the gateway starts degraded.
    pub async fn build(self) -> Result<Gateway, GatewayError> {
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
        let store = match self.store {
            Some(store) => store,
            None => open_store(&config, &self.workspace).await?,
        };
        let auth = authenticator(&config)?;
        let rate_limiter = RateLimiter::from_config(&config.rate_limit)
            .await
            .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?
            .map(Arc::new);
        let scheduler = Arc::new(SchedulerState {
            lock: crate::scheduler::lock_for(&config)
                .await
                .map_err(GatewayError::InvalidRequest)?,
            runs: Arc::default(),
        });
        crate::scheduler::sync_workspace(&store, &workspace)
            .await
            .map_err(GatewayError::Storage)?;
        let queue = crate::queue::open(&config.queue)
            .await
            .map_err(|e| GatewayError::QueueUnavailable(e.to_string()))?;
        let secrets = SecretBox::from_env(&env);
        let mcp = mcp::start_manager(
            &config,
            &self.workspace.join("gateway.yaml"),
            self.mcp_servers,
            &store,
            secrets.as_ref(),
        )
        .await?;
        let (site_tools, site_diagnostics) = crate::tools::site::discover(&workspace).await;
        let sessions = SessionStore::new(
            Duration::from_secs(config.sessions.ttl_seconds),
            config.sessions.max_sessions,
            config.sessions.max_messages,
        );
        let agentgate_sessions: Arc<dyn agentgate::server::SessionStore> =
            Arc::new(agentgate::server::MemorySessionStore::new(
                config.agentgate.max_sessions,
                Duration::from_secs(config.agentgate.session_ttl_seconds),
            ));
        let code_tools = self.code_tools;
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let handle = GatewayHandle(weak.clone());
            let runtime = Runtime::build(
                workspace,
                Parts {
                    code_tools: &code_tools,
                    site_tools,
                    site_diagnostics,
                    env: &env,
                    handle: &handle,
                    agentgate_sessions: Arc::clone(&agentgate_sessions),
                    mcp: Arc::clone(&mcp),
                    auth,
                },
            );
            for diagnostic in runtime.diagnostics.iter() {
                tracing::warn!("{diagnostic}");
            }
            Inner {
                workspace_path: self.workspace,
                env: env.clone(),
                code_tools: code_tools.clone(),
                hooks: self.hooks,
                reload_enabled: self.reload_enabled,
                runtime: RwLock::new(Arc::new(runtime)),
                sessions,
                running: Arc::new(Running::default()),
                approvals: Arc::new(Approvals::new(Arc::clone(&store))),
                store,
                instance_id: uuid::Uuid::new_v4().to_string(),
                openapi_tags: self.openapi_tags,
                background: CancellationToken::new(),
                handle,
                agentgate_sessions,
                mcp,
                secrets,
                rate_limiter,
                scheduler,
                queue,
                in_flight: Arc::default(),
            }
        });
        let gateway = Gateway { inner };
        background::start(&gateway).await?;
        Ok(gateway)
    }
}

/// The auth policy of `config`; an unusable one is a configuration error.
fn authenticator(config: &GatewayConfig) -> Result<Option<Arc<Authenticator>>, GatewayError> {
    let auth = Authenticator::from_config(&config.auth)
        .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
    if auth.is_none() {
        tracing::warn!("auth is off: every /v1 route is open to anyone who can reach the server");
    }
    Ok(auth.map(Arc::new))
}

/// Opens what `persistence` asks for: the database (migrated to the latest schema), or
/// memory when persistence is off.
async fn open_store(config: &GatewayConfig, workspace: &Path) -> Result<SharedStore, GatewayError> {
    let persistence = &config.persistence;
    if !persistence.enabled {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if !persistence.table_prefix.is_empty() {
        tracing::warn!(prefix = %persistence.table_prefix, "persistence.table_prefix is not supported: tables keep their plain names (use persistence.db_schema on PostgreSQL to separate them)");
    }
    gateway_store::open(
        &persistence.url,
        workspace,
        persistence.db_schema.as_deref(),
    )
    .await
    .map_err(|err| GatewayError::Storage(err.to_string()))
}

pub(crate) struct Inner {
    workspace_path: PathBuf,
    env: BTreeMap<String, String>,
    code_tools: Vec<SharedTool>,
    pub(crate) hooks: Hooks,
    reload_enabled: bool,
    runtime: RwLock<Arc<Runtime>>,
    pub(crate) sessions: SessionStore,
    pub(crate) running: Arc<Running>,
    pub(crate) store: SharedStore,
    /// Tool calls waiting for a person's decision.
    pub(crate) approvals: Arc<Approvals>,
    /// Identifies this process among the instances sharing the database.
    pub(crate) instance_id: String,
    pub(crate) openapi_tags: Vec<(String, String)>,
    /// Stops the background tasks.
    background: CancellationToken,
    /// This gateway, weakly: what the published agentgate handlers call.
    handle: GatewayHandle,
    /// Chat-flow sessions of the agentgate endpoints, kept across reloads.
    agentgate_sessions: Arc<dyn agentgate::server::SessionStore>,
    /// MCP servers and their connections, kept across reloads.
    pub(crate) mcp: Arc<McpManager>,
    /// Seals secrets at rest (`AGENT_GATEWAY_SECRET_KEY`); `None` refuses to store any.
    pub(crate) secrets: Option<SecretBox>,
    /// Request rate limits (`None`: off). Built once: storage changes need a restart.
    pub(crate) rate_limiter: Option<Arc<RateLimiter>>,
    /// The scheduler's lock and run counts (its loop is a background task).
    pub(crate) scheduler: Arc<SchedulerState>,
    /// Where asynchronous executions wait for a worker.
    pub(crate) queue: crate::queue::SharedQueue,
    /// Jobs this process's workers are running (drained on shutdown).
    pub(crate) in_flight: Arc<worker::InFlight>,
}

/// A weak reference to a gateway (parts of the gateway that call back into it hold one, so
/// they do not keep it alive).
#[derive(Clone)]
pub(crate) struct GatewayHandle(Weak<Inner>);

impl GatewayHandle {
    pub fn get(&self) -> Option<Gateway> {
        self.0.upgrade().map(|inner| Gateway { inner })
    }
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
            store: None,
            mcp_servers: Vec::new(),
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
            tool_count: runtime.all_tools().len(),
        }
    }

    /// The definition of agent `id` in the current workspace.
    pub fn agent(&self, id: &str) -> Option<AgentDefinition> {
        self.runtime().agent(id).cloned()
    }

    /// The store executions and conversations are kept in.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// Whether `POST /v1/reload` is allowed.
    pub fn reload_enabled(&self) -> bool {
        self.inner.reload_enabled
    }

    /// Re-reads the workspace and swaps it in; requests in flight finish on the old one.
    /// Returns the number of agents.
    pub async fn reload(&self) -> Result<usize, GatewayError> {
        let workspace = Workspace::load(&self.inner.workspace_path, &self.inner.env);
        if !workspace.config_valid {
            let messages: Vec<String> = workspace
                .diagnostics
                .errors()
                .map(|d| d.to_string())
                .collect();
            return Err(GatewayError::ReloadFailed(messages.join("; ")));
        }
        mcp::sync_config_servers(
            &self.inner.mcp,
            &workspace.config,
            &self.inner.workspace_path.join("gateway.yaml"),
        )
        .await?;
        let auth = authenticator(&workspace.config)
            .map_err(|e| GatewayError::ReloadFailed(e.to_string()))?;
        crate::scheduler::sync_workspace(&self.inner.store, &workspace)
            .await
            .map_err(GatewayError::ReloadFailed)?;
        let (site_tools, site_diagnostics) = crate::tools::site::discover(&workspace).await;
        let runtime = Runtime::build(
            workspace,
            Parts {
                code_tools: &self.inner.code_tools,
                site_tools,
                site_diagnostics,
                env: &self.inner.env,
                handle: &self.inner.handle,
                agentgate_sessions: Arc::clone(&self.inner.agentgate_sessions),
                mcp: Arc::clone(&self.inner.mcp),
                auth,
            },
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

    #[allow(clippy::too_many_arguments)]
    fn run_spec(
        &self,
        runtime: &Runtime,
        agent: &AgentDefinition,
        tools: Vec<SharedTool>,
        messages: Vec<Message>,
        output_schema: Option<(Value, Arc<jsonschema::Validator>)>,
        timeout_ms: Option<u64>,
        cancel: CancellationToken,
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
            approval: ApprovalGate {
                approvals: Arc::clone(&self.inner.approvals),
                timeout: Duration::from_millis(guardrails.approval_timeout_ms.max(1)),
            },
        }
    }

    /// Records the start of an execution: the store row and this process's cancel handle.
    async fn start_execution(
        &self,
        mut record: ExecutionRecord,
    ) -> Result<CancellationToken, GatewayError> {
        record.instance_id = Some(self.inner.instance_id.clone());
        let execution_id = record.execution_id.clone();
        let token = self.inner.running.start(&execution_id);
        if let Err(err) = self.inner.store.insert_execution(record).await {
            self.inner.running.finish(&execution_id);
            return Err(GatewayError::Storage(err.to_string()));
        }
        Ok(token)
    }

    /// Records the end of an execution. Returns the stored status (a cancel that landed
    /// first wins). A storage failure is logged: the caller still gets its answer.
    async fn finish_execution(
        &self,
        execution_id: &str,
        outcome: gateway_store::ExecutionOutcome,
        steps: Vec<StepRecord>,
    ) -> ExecutionStatus {
        self.inner.running.finish(execution_id);
        let status = outcome.status;
        match self
            .inner
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

    /// One execution record.
    pub async fn execution(
        &self,
        execution_id: &str,
    ) -> Result<Option<ExecutionRecord>, GatewayError> {
        self.inner
            .store
            .get_execution(execution_id)
            .await
            .map_err(storage)
    }

    /// Execution records matching `filter`.
    pub async fn executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, GatewayError> {
        self.inner
            .store
            .list_executions(filter)
            .await
            .map_err(storage)
    }

    /// An execution and its delegation tree.
    pub async fn workflow(&self, execution_id: &str) -> Result<Vec<ExecutionRecord>, GatewayError> {
        self.inner
            .store
            .workflow(execution_id)
            .await
            .map_err(storage)
    }

    /// The recorded steps of an execution.
    pub async fn execution_steps(
        &self,
        execution_id: &str,
    ) -> Result<Vec<StepRecord>, GatewayError> {
        self.inner
            .store
            .execution_steps(execution_id)
            .await
            .map_err(storage)
    }

    /// Cancels a queued or running execution. A run in this process stops at its next step;
    /// one on another instance stops when that instance sees the cancel (within a second).
    pub async fn cancel(&self, execution_id: &str) -> Result<CancelOutcome, GatewayError> {
        let result = self
            .inner
            .store
            .cancel_execution(execution_id, chrono::Utc::now())
            .await
            .map_err(storage)?;
        Ok(match result {
            CancelResult::Cancelled => {
                self.inner.running.cancel(execution_id);
                CancelOutcome::Cancelled
            }
            CancelResult::NotFound => CancelOutcome::NotFound,
            CancelResult::AlreadyFinished(status) => CancelOutcome::NotCancellable(status),
        })
    }

    /// The approval requests of an execution, oldest first.
    pub async fn approvals(&self, execution_id: &str) -> Result<Vec<ApprovalRecord>, GatewayError> {
        self.inner
            .store
            .approvals(execution_id)
            .await
            .map_err(storage)
    }

    /// Approves (or denies) the tool calls an execution waits on: all of them, or the one
    /// named by `approval_id`. The run goes on within a moment, on whichever instance runs it.
    pub async fn decide_approval(
        &self,
        execution_id: &str,
        approval_id: Option<&str>,
        approve: bool,
        reason: Option<String>,
        decided_by: Option<String>,
    ) -> Result<ApprovalOutcome, GatewayError> {
        let Some(record) = self.execution(execution_id).await? else {
            return Ok(ApprovalOutcome::NotFound);
        };
        if record.status != ExecutionStatus::WaitingApproval {
            return Ok(ApprovalOutcome::NotWaiting(record.status));
        }
        let decided = self
            .inner
            .approvals
            .decide(execution_id, approval_id, approve, reason, decided_by)
            .await
            .map_err(storage)?;
        Ok(if decided.is_empty() {
            ApprovalOutcome::NothingPending
        } else {
            ApprovalOutcome::Decided(decided)
        })
    }

    /// A page of the notification log and the number of matching deliveries.
    pub async fn notifications(
        &self,
        filter: &gateway_store::NotificationFilter,
    ) -> Result<(Vec<gateway_store::NotificationRecord>, i64), GatewayError> {
        self.inner
            .store
            .list_notifications(filter)
            .await
            .map_err(storage)
    }

    /// Sends a logged notification's original message again.
    pub async fn retry_notification(
        &self,
        id: i64,
    ) -> Result<gateway_store::NotificationRecord, GatewayError> {
        let record = self
            .inner
            .store
            .get_notification(id)
            .await
            .map_err(storage)?
            .ok_or(GatewayError::NotificationNotFound(id))?;
        if record.payload.is_null() {
            return Err(GatewayError::Conflict(format!(
                "Notification {id} was never sent ({}); fix the configuration instead",
                record.last_error.unwrap_or_default()
            )));
        }
        let config = self.runtime().workspace.config.notifications.clone();
        Ok(crate::notifications::deliver(&self.inner.store, &config, record).await)
    }

    /// The sessions table (API listings).
    pub(crate) fn sessions(&self) -> &SessionStore {
        &self.inner.sessions
    }

    /// Fires `gateway.startup`; call once when serving starts.
    pub async fn startup(&self) {
        self.inner.hooks.fire(HookEvent::GatewayStartup).await;
    }

    /// Fires `gateway.shutdown`, stops the background tasks and says goodbye to the store;
    /// call once when serving stops.
    pub async fn shutdown(&self) {
        // Workers stop taking jobs, then those in hand finish (up to the drain timeout).
        self.inner.background.cancel();
        self.drain().await;
        self.inner.mcp.shutdown().await;
        self.inner.hooks.fire(HookEvent::GatewayShutdown).await;
        if self.inner.running.is_empty() {
            let _ = self
                .inner
                .store
                .remove_instance(&self.inner.instance_id)
                .await;
        }
    }
}

pub use mcp::{McpServerCreate, McpServerInfo, McpServerUpdate};
pub use schedules::{ScheduleCreate, ScheduleEdit};
pub use user_config::UserConfigInfo;

/// What an approve or deny request found.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalOutcome {
    /// These approvals were decided.
    Decided(Vec<ApprovalRecord>),
    NotFound,
    /// The execution does not wait for approval: it has this status.
    NotWaiting(ExecutionStatus),
    /// The execution waits, but not on the named approval (unknown or already decided).
    NothingPending,
}

pub(crate) fn storage(err: gateway_store::StoreError) -> GatewayError {
    GatewayError::Storage(err.to_string())
}
