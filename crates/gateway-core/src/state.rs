//! What one gateway holds: the current workspace generation, the store, the chat-session
//! cache, the runs in this process, the queue and the rest. The run pipeline, the record
//! operations and the background loops all work on it; [`crate::Gateway`] is its public face.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use gateway_store::SharedStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::approvals::Approvals;
use crate::cancels::CancelHandles;
use crate::generation::{Generation, ModelOverrides};
use crate::health::ReloadReport;
use crate::hooks::Hooks;
use crate::mcp::McpManager;
use crate::queue::SharedQueue;
use crate::rate_limit::RateLimiter;
use crate::runner::Runner;
use crate::scheduler::SchedulerState;
use crate::secrets::SecretBox;
use crate::session_cache::SessionCache;
use crate::tools::SharedTool;

pub(crate) struct GatewayState {
    pub workspace_path: PathBuf,
    pub env: BTreeMap<String, String>,
    pub code_tools: Vec<SharedTool>,
    /// Models chosen in code, applied to every generation.
    pub models: ModelOverrides,
    /// Where agents' memories are kept (`memory.backend`, chosen at start).
    pub memories: Arc<dyn gateway_store::AgentMemoryStore>,
    /// Debounces and bounds memory extractions.
    pub extractions: Arc<crate::memory::extract::ExtractionGate>,
    pub hooks: Hooks,
    pub reload_enabled: bool,
    /// Whether ended runs send their agents' notifications.
    pub notifications_enabled: bool,
    /// The generation in effect: read it with [`GatewayState::generation`], swap it with
    /// [`GatewayState::replace_generation`].
    pub generation: RwLock<Arc<Generation>>,
    /// How many generations were built (numbers them: concurrent reloads never share one).
    pub generations: AtomicU64,
    /// One reload at a time (a file watcher and `POST /v1/reload` may ask at once).
    pub reloading: tokio::sync::Mutex<()>,
    /// What the last reload did (`None`: none was asked for).
    pub last_reload: Mutex<Option<ReloadReport>>,
    pub sessions: SessionCache,
    pub running: Arc<CancelHandles>,
    pub store: SharedStore,
    /// Tool calls waiting for a person's decision.
    pub approvals: Arc<Approvals>,
    /// Identifies this process among the instances sharing the database.
    pub instance_id: String,
    /// Stops the background loops.
    pub background: CancellationToken,
    /// Whether the gateway starts work of its own (a long-lived server or worker: fire loop,
    /// workers, periodic reaping) or not (a command that runs and exits).
    pub background_enabled: bool,
    /// This gateway as the delegation tool of each generation sees it (weakly).
    pub runner: Arc<dyn Runner>,
    /// MCP servers and their connections, kept across reloads.
    pub mcp: Arc<McpManager>,
    /// Seals secrets at rest (`AGENT_GATEWAY_SECRET_KEY`); `None` refuses to store any.
    pub secrets: Option<SecretBox>,
    /// Request rate limits (`None`: off). Built once: storage changes need a restart.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// The scheduler's lock and run counts (its loop is a background task).
    pub scheduler: Arc<SchedulerState>,
    /// Where asynchronous executions wait for a worker.
    pub queue: SharedQueue,
    /// Jobs this process's workers are running (drained on shutdown).
    pub in_flight: InFlight,
    /// What this gateway counts and measures (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Work a run leaves behind (notification deliveries, runs started in the background):
    /// shutdown waits for it.
    pub tasks: TaskTracker,
    /// The push of the metrics over OTLP (`telemetry.exporter: otlp`), stopped by shutdown
    /// after everything else, so that its last push counts all.
    pub metrics_export: MetricsExport,
}

/// A background push of the metrics, and what stops it.
#[derive(Default)]
pub(crate) struct MetricsExport {
    pub stop: CancellationToken,
    pub task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl GatewayState {
    /// Every metric now, with the gauges read at this moment (queue depth, sessions).
    pub async fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let depth = tokio::time::timeout(crate::queue::PING_TIMEOUT, self.queue.depth())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        self.metrics.set_queue(self.queue.backend(), depth);
        self.metrics.set_active_sessions(self.sessions.active());
        self.metrics.snapshot()
    }

    /// The workspace generation in effect now.
    pub fn generation(&self) -> Arc<Generation> {
        let guard = self.generation.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }

    /// Puts a new generation in effect; runs in flight keep theirs.
    pub fn replace_generation(&self, generation: Arc<Generation>) {
        self.metrics
            .set_recording(generation.config().metrics.enabled);
        let mut guard = self.generation.write().unwrap_or_else(|p| p.into_inner());
        *guard = generation;
    }
}

/// Jobs being run by this process's workers: their execution ids.
#[derive(Default)]
pub(crate) struct InFlight(Mutex<HashSet<String>>);

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// The executions of the jobs in hand.
    pub fn ids(&self) -> HashSet<String> {
        self.lock().clone()
    }

    /// Counts a job until the returned guard is dropped (its run ended, or its worker
    /// stopped mid-way).
    pub fn enter(&self, execution_id: &str) -> InFlightJob<'_> {
        self.lock().insert(execution_id.to_string());
        InFlightJob {
            jobs: self,
            execution_id: execution_id.to_string(),
        }
    }
}

/// One job being run (see [`InFlight::enter`]).
pub(crate) struct InFlightJob<'a> {
    jobs: &'a InFlight,
    execution_id: String,
}

impl Drop for InFlightJob<'_> {
    fn drop(&mut self) {
        self.jobs.lock().remove(&self.execution_id);
    }
}
