//! [`Gateway`]: the library's entry point and the only door to the core. It runs agents (the
//! one run pipeline), hands out the operations on each kind of record, and reads the current
//! workspace generation. Surfaces (the REST API, agentgate publishing, the CLI, ...) are built
//! on these public operations only.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use gateway_workspace::{AgentDefinition, Diagnostics, GatewayConfig};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::actor::Actor;
use crate::auth::AuthError;
use crate::error::GatewayError;
use crate::generation::Generation;
use crate::health::Readiness;
use crate::hooks::HookEvent;
use crate::operations::admin::{self, Health};
use crate::operations::conversations::Conversations;
use crate::operations::executions::Executions;
use crate::operations::mcp_servers::McpServers;
use crate::operations::memories::Memories;
use crate::operations::notifications::Notifications;
use crate::operations::schedules::Schedules;
use crate::operations::sessions::Sessions;
use crate::operations::user_configs::UserConfigs;
use crate::rate_limit::Verdict;
use crate::run::{self, RunStream, Started};
use crate::runner::Runner;
use crate::runs::{RunKind, RunRequest, RunResult};
use crate::state::GatewayState;

/// The gateway. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) state: Arc<GatewayState>,
}

impl Gateway {
    /// Checks and records a run for `actor`: queued when the request lets it and the run is
    /// asynchronous, else ready to run here (see [`run::RunTicket`]).
    pub async fn start(&self, actor: &Actor, request: RunRequest) -> Result<Started, GatewayError> {
        run::start(&self.state, actor, request).await
    }

    /// Runs `request` for `actor` to its end (nothing is queued: the caller waits).
    pub async fn run(&self, actor: &Actor, request: RunRequest) -> Result<RunResult, GatewayError> {
        run::run(&self.state, actor, request).await
    }

    /// Runs `request` for `actor`, streaming its events (see [`crate::RunEvent`]).
    pub async fn run_stream(
        &self,
        actor: &Actor,
        request: RunRequest,
    ) -> Result<RunStream, GatewayError> {
        run::stream(&self.state, actor, request).await
    }

    /// Runs an agent once for `actor` and waits for its answer ([`Actor::system`] for the
    /// host program's own calls).
    pub async fn invoke(
        &self,
        actor: &Actor,
        agent_id: &str,
        message: &str,
    ) -> Result<RunResult, GatewayError> {
        self.run(actor, RunRequest::invoke(agent_id, message)).await
    }

    /// Runs an agent once for `actor` and deserializes its structured output into `T` (whose
    /// JSON Schema is sent as the output schema).
    pub async fn invoke_typed<T: DeserializeOwned + JsonSchema>(
        &self,
        actor: &Actor,
        agent_id: &str,
        message: &str,
    ) -> Result<T, GatewayError> {
        let schema = crate::tools::clean_schema(
            serde_json::to_value(schemars::schema_for!(T))
                .map_err(|e| GatewayError::Internal(e.to_string()))?,
        );
        let request = RunRequest::new(
            agent_id,
            message,
            RunKind::Invoke {
                output_schema: Some(schema),
                run_async: false,
            },
        );
        let result = self.run(actor, request).await?;
        if result.status != crate::engine::ExecutionStatus::Completed {
            return Err(GatewayError::ExecutionFailed(
                result
                    .error
                    .unwrap_or_else(|| result.status.as_str().to_string()),
            ));
        }
        let output = result.answer.output.ok_or_else(|| {
            GatewayError::OutputMismatch(
                result
                    .answer
                    .validation_errors
                    .map(|e| e.join("; "))
                    .unwrap_or_else(|| "no structured output".to_string()),
            )
        })?;
        serde_json::from_value(output).map_err(|e| GatewayError::OutputMismatch(e.to_string()))
    }

    pub fn executions(&self) -> Executions<'_> {
        Executions::new(&self.state)
    }

    pub fn sessions(&self) -> Sessions<'_> {
        Sessions::new(&self.state)
    }

    pub fn conversations(&self) -> Conversations<'_> {
        Conversations::new(&self.state)
    }

    pub fn schedules(&self) -> Schedules<'_> {
        Schedules::new(&self.state)
    }

    pub fn user_configs(&self) -> UserConfigs<'_> {
        UserConfigs::new(&self.state)
    }

    pub fn memories(&self) -> Memories<'_> {
        Memories::new(&self.state)
    }

    pub fn mcp_servers(&self) -> McpServers<'_> {
        McpServers::new(&self.state)
    }

    pub fn notifications(&self) -> Notifications<'_> {
        Notifications::new(&self.state)
    }

    /// The workspace generation in effect: agents, skills, tools, configuration.
    pub fn generation(&self) -> Arc<Generation> {
        self.state.generation()
    }

    /// The configuration in effect.
    pub fn config(&self) -> GatewayConfig {
        self.generation().config().clone()
    }

    /// Loading problems and reference checks of the current workspace.
    pub fn diagnostics(&self) -> Diagnostics {
        self.generation().diagnostics().clone()
    }

    /// The definition of agent `id` in the current workspace.
    pub fn agent(&self, id: &str) -> Option<AgentDefinition> {
        self.generation().agent(id).cloned()
    }

    /// Liveness and a summary of the workspace, with what the last reload did. Cheap: asks
    /// nothing of the store.
    pub fn health(&self) -> Health {
        Health::of(&self.state)
    }

    /// Whether this instance can serve: the store answers a trivial query, and the queue
    /// broker and the scheduler's Redis lock (when configured) answer a ping, each within
    /// about two seconds. Fails with [`GatewayError::NotReady`] listing the failed checks.
    /// An unidentified `actor` (auth on, no valid credential) gets each check's name and
    /// outcome only: the errors name hosts, ports and drivers.
    pub async fn ready(&self, actor: &Actor) -> Result<Readiness, GatewayError> {
        let mut readiness = admin::readiness(&self.state).await;
        if actor.is_unidentified() {
            if !readiness.is_ready() {
                // The answer no longer says why: the log keeps it for the operators.
                tracing::warn!(failures = %readiness.failure_summary(), "not ready");
            }
            readiness = readiness.without_errors();
        }
        if readiness.is_ready() {
            Ok(readiness)
        } else {
            Err(GatewayError::NotReady(Box::new(readiness)))
        }
    }

    /// Where this gateway's metrics are recorded: a surface records its requests here
    /// ([`Metrics::http_request`](crate::metrics::Metrics::http_request)).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.state.metrics
    }

    /// Every metric now, with the gauges read at scrape time brought up to date first (the
    /// queue's depth and oldest job, the chat sessions cached): what `/metrics` renders, and
    /// what an exporter reads.
    pub async fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        self.state.metrics_snapshot().await
    }

    /// Whether [`Gateway::reload`] is allowed (`serve --reload`).
    pub fn reload_enabled(&self) -> bool {
        self.state.reload_enabled
    }

    /// Re-reads the workspace and swaps it in; runs in flight finish on the old generation.
    /// Returns the number of agents.
    pub async fn reload(&self) -> Result<usize, GatewayError> {
        if !self.state.reload_enabled {
            return Err(GatewayError::ReloadDisabled);
        }
        admin::reload(&self.state).await
    }

    /// Who presents `credential` under the current auth policy: an authenticated user, or
    /// [`Actor::anonymous`] while auth is off.
    pub async fn authenticate(&self, credential: Option<&str>) -> Result<Actor, AuthError> {
        match &self.generation().auth {
            None => Ok(Actor::anonymous()),
            Some(auth) => auth.authenticate(credential).await.map(Actor::from),
        }
    }

    /// Counts a request of `caller` to `route` against the configured rate limits (`None`:
    /// limits are off).
    pub async fn rate_limit(&self, caller: &str, route: &str) -> Option<Verdict> {
        match &self.state.rate_limiter {
            Some(limiter) => Some(limiter.check(caller, route).await),
            None => None,
        }
    }

    /// Whether rate limits trust `X-Forwarded-For` for the client address.
    pub fn trusts_forwarded_for(&self) -> bool {
        self.state
            .rate_limiter
            .as_ref()
            .is_some_and(|limiter| limiter.trust_forwarded_for)
    }

    /// Fires `gateway.startup`; call once when serving starts.
    pub async fn startup(&self) {
        self.state.hooks.fire(HookEvent::GatewayStartup).await;
    }

    /// Stops the background loops (schedules, queue workers, the file watcher) and lets what
    /// is in flight finish up to `server.shutdown_timeout_s`: runs (requests, streams, queue
    /// jobs) and the work they left behind (notification deliveries, runs started in the
    /// background, end records). Runs still going at the deadline are cancelled and recorded
    /// `cancelled` with the reason (a job of a durable queue is left to the queue, which
    /// hands it to another worker); one that does not stop is recorded `failed`. Then fires
    /// `gateway.shutdown` and says goodbye to the store. Call once when serving stops, and
    /// before a short-lived program exits.
    pub async fn shutdown(&self) {
        let state = &self.state;
        state.background.cancel();
        let config = self.config();
        let limit = Duration::from_secs(config.server.shutdown_timeout_s.max(1));
        let now = tokio::time::Instant::now();
        let deadline = now + limit;
        // Jobs of a durable queue are waited for up to `queue.drain_timeout_s` only: the
        // queue hands what is left to another worker.
        let jobs_deadline = now
            .checked_add(Duration::from_secs(config.queue.drain_timeout_s))
            .unwrap_or(now + Duration::from_secs(86_400));
        loop {
            let now = tokio::time::Instant::now();
            if state.running.is_empty() || now >= deadline {
                break;
            }
            if now >= jobs_deadline && state.queue.durable() {
                let jobs = state.in_flight.ids();
                if state.running.ids().iter().all(|id| jobs.contains(id)) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut tasks_deadline = deadline;
        if !state.running.is_empty() {
            stop_unfinished_runs(state, limit).await;
            // Their end records and notifications get a moment of their own.
            tasks_deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        }
        let jobs = state.in_flight.count();
        if jobs > 0 {
            tracing::warn!(
                jobs,
                "shutdown with jobs still running; the queue will hand them to another worker"
            );
        }
        state.tasks.close();
        if tokio::time::timeout_at(tasks_deadline, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = state.tasks.len(),
                "shutdown before every notification delivery and background run finished"
            );
        }
        state.mcp.shutdown().await;
        state.hooks.fire(HookEvent::GatewayShutdown).await;
        crate::background::stop_metrics_export(state).await;
        if state.running.is_empty()
            && let Err(err) = state.store.remove_instance(&state.instance_id).await
        {
            tracing::warn!(error = %err, "could not unregister this instance");
        }
    }
}

/// How long runs cancelled at the shutdown deadline get to record their end, and their
/// notifications to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// At the shutdown deadline: cancels the runs still going (not the jobs of a durable queue,
/// which another worker takes over), waits a moment for them to record `cancelled`, and
/// records `failed` those that did not stop.
async fn stop_unfinished_runs(state: &GatewayState, limit: Duration) {
    let reason = format!(
        "The gateway shut down before the run finished (server.shutdown_timeout_s = {} s)",
        limit.as_secs()
    );
    let left_to_queue: HashSet<String> = if state.queue.durable() {
        state.in_flight.ids()
    } else {
        HashSet::new()
    };
    let stopping: Vec<String> = state
        .running
        .ids()
        .into_iter()
        .filter(|id| !left_to_queue.contains(id))
        .collect();
    if stopping.is_empty() {
        return;
    }
    tracing::warn!(
        runs = stopping.len(),
        "shutdown deadline reached: cancelling the runs still going"
    );
    for id in &stopping {
        state.running.cancel_because(id, &reason);
    }
    let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let ids = || state.running.ids();
    while stopping.iter().any(|id| ids().contains(id)) && tokio::time::Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let still = ids();
    for id in stopping.iter().filter(|id| still.contains(id)) {
        tracing::error!(execution_id = %id, "a run did not stop at shutdown; recorded failed");
        state.running.finish(id);
        crate::run::record_failed(state, id, reason.clone()).await;
    }
}

/// This gateway as the parts below it see it (the delegation tool of each generation):
/// weakly, so that a generation holding the tool does not keep the gateway alive.
pub(crate) struct WeakGateway(pub Weak<GatewayState>);

#[async_trait]
impl Runner for WeakGateway {
    async fn run(&self, actor: &Actor, request: RunRequest) -> Result<RunResult, GatewayError> {
        let gateway = self.upgrade()?;
        Box::pin(Runner::run(&gateway, actor, request)).await
    }

    async fn end_session(&self, actor: &Actor, session_id: &str) -> Result<bool, GatewayError> {
        Runner::end_session(&self.upgrade()?, actor, session_id).await
    }
}

impl WeakGateway {
    fn upgrade(&self) -> Result<Gateway, GatewayError> {
        self.0
            .upgrade()
            .map(|state| Gateway { state })
            .ok_or(GatewayError::ShuttingDown)
    }
}

#[async_trait]
impl Runner for Gateway {
    async fn run(&self, actor: &Actor, request: RunRequest) -> Result<RunResult, GatewayError> {
        Gateway::run(self, actor, request).await
    }

    async fn end_session(&self, actor: &Actor, session_id: &str) -> Result<bool, GatewayError> {
        self.sessions().end(actor, session_id).await
    }
}
