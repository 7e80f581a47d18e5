//! Administration: reloading the workspace into a new generation (and what the last reload
//! did), the health summary (liveness) and readiness (the store, the queue broker and the
//! scheduler's lock answer).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use gateway_workspace::{Diagnostics, Workspace};
use serde::Serialize;

use crate::auth::Authenticator;
use crate::error::GatewayError;
use crate::generation::{Generation, Parts};
use crate::health::{Readiness, ReadinessCheck, ReloadProblem, ReloadReport};
use crate::operations::mcp_servers::sync_config_servers;
use crate::scheduler::LockKind;
use crate::state::GatewayState;

/// Health summary: liveness, cheap (nothing is asked of the store or a broker).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the workspace has errors.
    pub status: String,
    pub agent_count: usize,
    pub skill_count: usize,
    pub tool_count: usize,
    /// What the last reload did (absent until a reload is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadReport>,
}

impl Health {
    pub(crate) fn of(state: &GatewayState) -> Self {
        let generation = state.generation();
        Self {
            status: if generation.diagnostics().has_errors() {
                "degraded"
            } else {
                "ok"
            }
            .to_string(),
            agent_count: generation.workspace.agents.len(),
            skill_count: generation.workspace.skills.len(),
            tool_count: generation.tools().len(),
            reload: state
                .last_reload
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// Re-reads the workspace and puts the new generation in effect; runs in flight finish on
/// the old one. The running generation stays when `gateway.yaml` is invalid or when the new
/// workspace has errors the running one does not have (a broken edit never replaces a
/// working agent; a workspace that was already degraded still takes edits that add no new
/// error). Every outcome is logged and kept for [`Health`]. Returns the number of agents.
pub(crate) async fn reload(state: &GatewayState) -> Result<usize, GatewayError> {
    let _one_at_a_time = state.reloading.lock().await;
    let outcome = build_next(state).await;
    let generation = state.generation().number();
    let report = match &outcome {
        Ok(agents) => {
            tracing::info!(generation, agents, "workspace reloaded");
            ReloadReport {
                status: "ok".into(),
                at: Utc::now(),
                generation,
                problems: Vec::new(),
            }
        }
        Err(err) => {
            let problems: Vec<ReloadProblem> = match err {
                GatewayError::ReloadFailed(diagnostics) => diagnostics
                    .errors()
                    .map(|d| ReloadProblem::of(d, &state.workspace_path))
                    .collect(),
                other => vec![ReloadProblem {
                    file: String::new(),
                    line: None,
                    message: other.to_string(),
                }],
            };
            for problem in &problems {
                tracing::error!(
                    file = %problem.file,
                    line = problem.line,
                    "reload rejected: {}",
                    problem.message
                );
            }
            tracing::error!(
                generation,
                problems = problems.len(),
                "workspace reload failed; the running generation stays"
            );
            ReloadReport {
                status: "failed".into(),
                at: Utc::now(),
                generation,
                problems,
            }
        }
    };
    *state.last_reload.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    outcome
}

/// Builds the next generation and swaps it in, or says why not.
async fn build_next(state: &GatewayState) -> Result<usize, GatewayError> {
    let workspace = Workspace::load(&state.workspace_path, &state.env);
    if !workspace.config_valid {
        let mut errors = Diagnostics::new();
        for diagnostic in workspace.diagnostics.errors() {
            errors.push(diagnostic.clone());
        }
        return Err(GatewayError::ReloadFailed(errors));
    }
    let auth = Authenticator::for_generation(&workspace.config.auth).map_err(|err| {
        let mut diagnostics = Diagnostics::new();
        diagnostics.error(
            &state.workspace_path.join("gateway.yaml"),
            None,
            err.to_string(),
        );
        GatewayError::ReloadFailed(diagnostics)
    })?;
    let (site_tools, site_diagnostics) = crate::tools::site::discover(&workspace).await;
    let number = state
        .generations
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    let generation = Generation::build(
        workspace,
        Parts {
            code_tools: &state.code_tools,
            memories: Arc::clone(&state.memories),
            models: &state.models,
            site_tools,
            site_diagnostics,
            env: &state.env,
            runner: Arc::clone(&state.runner),
            mcp: Arc::clone(&state.mcp),
            auth,
            number,
        },
    );
    let introduced = new_errors(state.generation().diagnostics(), generation.diagnostics());
    if !introduced.is_empty() {
        return Err(GatewayError::ReloadFailed(introduced));
    }
    // Only now: a rejected workspace must touch neither the MCP servers nor the stored
    // schedules of the running generation.
    sync_config_servers(
        &state.mcp,
        &generation.workspace.config,
        &state.workspace_path.join("gateway.yaml"),
    )
    .await?;
    crate::scheduler::sync_workspace(&state.store, &generation.workspace).await?;
    let agents = generation.workspace.agents.len();
    for diagnostic in generation.diagnostics().warnings() {
        tracing::warn!("{diagnostic}");
    }
    state.replace_generation(generation);
    Ok(agents)
}

/// The errors of `next` that `running` does not have (by file and message: an edit above
/// an old error moves its line).
fn new_errors(running: &Diagnostics, next: &Diagnostics) -> Diagnostics {
    let known: HashSet<(&PathBuf, &str)> = running
        .errors()
        .map(|d| (&d.file, d.message.as_str()))
        .collect();
    let mut introduced = Diagnostics::new();
    for diagnostic in next.errors() {
        if !known.contains(&(&diagnostic.file, diagnostic.message.as_str())) {
            introduced.push(diagnostic.clone());
        }
    }
    introduced
}

/// Asks the store, the queue broker (when the queue is Redis or RabbitMQ) and the scheduler's
/// Redis lock (when it has one) at once; each gives up after about two seconds.
pub(crate) async fn readiness(state: &GatewayState) -> Readiness {
    let store = async {
        let started = Instant::now();
        ReadinessCheck::of(started, state.store.ping().await)
    };
    let queue = async {
        if !state.queue.durable() {
            return None;
        }
        let started = Instant::now();
        Some(ReadinessCheck::of(started, state.queue.ping().await))
    };
    let lock = async {
        match &state.scheduler.lock {
            LockKind::Redis(lock) => {
                let started = Instant::now();
                Some(ReadinessCheck::of(started, lock.ping().await))
            }
            LockKind::None | LockKind::PostgresAdvisory => None,
        }
    };
    let (store, queue, lock) = tokio::join!(store, queue, lock);
    let mut checks = BTreeMap::from([("store".to_string(), store)]);
    if let Some(queue) = queue {
        checks.insert("queue".into(), queue);
    }
    if let Some(lock) = lock {
        checks.insert("scheduler_lock".into(), lock);
    }
    let mut readiness = Readiness {
        status: String::new(),
        checks,
    };
    readiness.status = if readiness.is_ready() {
        "ready"
    } else {
        "not_ready"
    }
    .into();
    readiness
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_the_running_generation_lacks_stop_a_reload() {
        let file = PathBuf::from("/ws/agents/a/AGENT.md");
        let mut running = Diagnostics::new();
        running.error(&file, Some(3), "old problem");
        let mut next = Diagnostics::new();
        next.error(&file, Some(5), "old problem");
        next.warning(&file, Some(1), "a warning");
        assert!(new_errors(&running, &next).is_empty());
        next.error(&file, Some(2), "invalid frontmatter YAML");
        let introduced = new_errors(&running, &next);
        assert_eq!(introduced.len(), 1);
        assert_eq!(
            ReloadProblem::of(
                introduced.iter().next().unwrap(),
                std::path::Path::new("/ws")
            )
            .file,
            "agents/a/AGENT.md"
        );
    }
}
