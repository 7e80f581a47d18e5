//! [`GatewayBuilder`]: loads the workspace, opens the store and the queue, connects MCP
//! servers, builds the first generation and starts the background work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use gateway_store::{MemoryStore, SharedStore};
use gateway_workspace::{GatewayConfig, Workspace};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::approvals::Approvals;
use crate::auth::Authenticator;
use crate::error::GatewayError;
use crate::gateway::{Gateway, WeakGateway};
use crate::generation::{Generation, ModelOverrides, Parts};
use crate::hooks::{HookEvent, Hooks, UnknownEvent};
use crate::mcp::McpServerConfig;
use crate::operations::mcp_servers::start_manager;
use crate::rate_limit::RateLimiter;
use crate::runner::Runner;
use crate::scheduler::SchedulerState;
use crate::secrets::SecretBox;
use crate::session_cache::SessionCache;
use crate::state::{GatewayState, InFlight};
use crate::tools::{CodeTool, SharedTool};

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
    watch: bool,
    background: bool,
    notifications: bool,
    overrides: Vec<ConfigOverride>,
    store: Option<SharedStore>,
    mcp_servers: Vec<McpServerConfig>,
    models: ModelOverrides,
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
            watch: false,
            background: true,
            notifications: true,
            overrides: Vec::new(),
            store: None,
            mcp_servers: Vec::new(),
            models: ModelOverrides::default(),
        }
    }
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

    /// Allows [`Gateway::reload`] (CLI `serve --reload`).
    pub fn reload(mut self, enabled: bool) -> Self {
        self.reload_enabled = enabled;
        self
    }

    /// Watches the workspace folder and reloads on every change (after ~300 ms without
    /// another): agent, skill and tool files, handlers, context files, `replies/` and
    /// `gateway.yaml` (not `tests/`, databases or memory files). A change that breaks the
    /// workspace keeps the running generation; the problems are logged and shown by
    /// [`Gateway::health`]. Implies [`GatewayBuilder::reload`]. Stops at
    /// [`Gateway::shutdown`]. CLI `serve --reload`.
    pub fn watch(mut self, enabled: bool) -> Self {
        self.watch = enabled;
        if enabled {
            self.reload_enabled = true;
        }
        self
    }

    /// Whether the gateway starts work of its own (default: yes): the schedule fire loop,
    /// queue workers, and reaping dead instances' runs every minute. A program that runs one
    /// thing and exits (a CLI command) turns it off, so that it never takes a queued job or
    /// fires a schedule it would abandon on exit; it still says it is alive and hears cancels
    /// while its runs last.
    pub fn background(mut self, enabled: bool) -> Self {
        self.background = enabled;
        self
    }

    /// Whether ended runs send the notifications their agents ask for (default: yes). Off for
    /// a workspace's test cases, which must not message anyone.
    pub fn notifications(mut self, enabled: bool) -> Self {
        self.notifications = enabled;
        self
    }

    /// Changes configuration in code; applied over `gateway.yaml` and the environment.
    pub fn configure(mut self, change: impl FnOnce(&mut GatewayConfig) + Send + 'static) -> Self {
        self.overrides.push(Box::new(change));
        self
    }

    /// Every agent answers with this model (`provider/model`), whatever the workspace says:
    /// for running a workspace's tests against another model. Kept across reloads.
    pub fn model(mut self, name: impl Into<String>) -> Self {
        self.models.model = Some(name.into());
        self
    }

    /// The script `scripted/<name>` answers from, over a `replies/<name>.yaml` of the
    /// workspace. Kept across reloads (each generation plays it from the start).
    pub fn model_script(mut self, name: impl Into<String>, script: model_script::Script) -> Self {
        self.models.scripts.insert(name.into(), script);
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
        let auth = Authenticator::for_generation(&config.auth)?;
        let rate_limiter = RateLimiter::from_config(&config.rate_limit)
            .await?
            .map(Arc::new);
        let scheduler = Arc::new(SchedulerState {
            lock: crate::scheduler::lock_for(&config)
                .await
                .map_err(GatewayError::SchedulerLock)?,
            runs: Arc::default(),
        });
        crate::scheduler::sync_workspace(&store, &workspace).await?;
        let queue = crate::queue::open(&config.queue)
            .await
            .map_err(GatewayError::QueueUnavailable)?;
        let secrets = SecretBox::from_env(&env);
        let mcp = start_manager(
            &config,
            &self.workspace.join("gateway.yaml"),
            self.mcp_servers,
            &store,
            secrets.as_ref(),
        )
        .await?;
        let (site_tools, site_diagnostics) = crate::tools::site::discover(&workspace).await;
        let sessions = SessionCache::new(
            Duration::from_secs(config.sessions.ttl_seconds),
            config.sessions.max_sessions,
            config.sessions.max_messages,
        );
        let memories = memory_store(&config, &self.workspace, &store);
        let code_tools = self.code_tools;
        let state = Arc::new_cyclic(|weak: &Weak<GatewayState>| {
            let runner: Arc<dyn Runner> = Arc::new(WeakGateway(weak.clone()));
            let generation = Generation::build(
                workspace,
                Parts {
                    code_tools: &code_tools,
                    memories: Arc::clone(&memories),
                    models: &self.models,
                    site_tools,
                    site_diagnostics,
                    env: &env,
                    runner: Arc::clone(&runner),
                    mcp: Arc::clone(&mcp),
                    auth,
                    number: 1,
                },
            );
            for diagnostic in generation.diagnostics().iter() {
                tracing::warn!("{diagnostic}");
            }
            GatewayState {
                workspace_path: self.workspace,
                env: env.clone(),
                code_tools: code_tools.clone(),
                models: self.models.clone(),
                memories,
                extractions: Arc::new(crate::memory::extract::ExtractionGate::new(
                    config.memory.max_concurrent_extractions,
                )),
                hooks: self.hooks,
                reload_enabled: self.reload_enabled,
                notifications_enabled: self.notifications,
                generation: RwLock::new(generation),
                generations: AtomicU64::new(1),
                reloading: tokio::sync::Mutex::new(()),
                last_reload: std::sync::Mutex::new(None),
                sessions,
                running: Arc::default(),
                approvals: Arc::new(Approvals::new(Arc::clone(&store))),
                store,
                instance_id: uuid::Uuid::new_v4().to_string(),
                background: CancellationToken::new(),
                background_enabled: self.background,
                runner,
                mcp,
                secrets,
                rate_limiter,
                scheduler,
                queue,
                in_flight: InFlight::default(),
                metrics: {
                    let metrics = crate::metrics::Metrics::new();
                    metrics.set_recording(config.metrics.enabled);
                    Arc::new(metrics)
                },
                tasks: TaskTracker::new(),
                metrics_export: Default::default(),
            }
        });
        crate::background::start(&state).await?;
        if self.watch {
            crate::background::watch::start(&state)?;
        }
        Ok(Gateway { state })
    }
}

/// Where agents' memories are kept: `memory.backend`, or — `auto` — the store when
/// persistence is on and 0.2.13's files when it is off.
fn memory_store(
    config: &GatewayConfig,
    workspace: &Path,
    store: &SharedStore,
) -> Arc<dyn gateway_store::AgentMemoryStore> {
    use gateway_workspace::config::MemoryBackend;
    let files = match config.memory.backend {
        MemoryBackend::Files => true,
        MemoryBackend::Store => false,
        MemoryBackend::Auto => !config.persistence.enabled,
    };
    if files {
        Arc::new(gateway_store::files::MemoryFiles::new(
            workspace.to_path_buf(),
        ))
    } else {
        Arc::clone(store) as Arc<dyn gateway_store::AgentMemoryStore>
    }
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
    Ok(gateway_store::open(
        &persistence.url,
        workspace,
        persistence.db_schema.as_deref(),
    )
    .await?)
}
