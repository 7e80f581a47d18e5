//! Administration: reloading the workspace into a new generation, and the health summary.

use std::sync::Arc;

use gateway_workspace::Workspace;
use serde::Serialize;

use crate::auth::Authenticator;
use crate::error::GatewayError;
use crate::generation::{Generation, Parts};
use crate::operations::mcp_servers::sync_config_servers;
use crate::state::GatewayState;

/// Health summary.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the workspace has errors.
    pub status: String,
    pub agent_count: usize,
    pub skill_count: usize,
    pub tool_count: usize,
}

impl Health {
    pub(crate) fn of(generation: &Generation) -> Self {
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
        }
    }
}

/// Re-reads the workspace and puts the new generation in effect; runs in flight finish on
/// the old one. An invalid `gateway.yaml` keeps the running generation. Returns the number of
/// agents.
pub(crate) async fn reload(state: &GatewayState) -> Result<usize, GatewayError> {
    let workspace = Workspace::load(&state.workspace_path, &state.env);
    if !workspace.config_valid {
        return Err(GatewayError::ReloadFailed(workspace.diagnostics));
    }
    sync_config_servers(
        &state.mcp,
        &workspace.config,
        &state.workspace_path.join("gateway.yaml"),
    )
    .await?;
    let auth = Authenticator::for_generation(&workspace.config.auth).map_err(|err| {
        let mut diagnostics = gateway_workspace::Diagnostics::new();
        diagnostics.error(
            &state.workspace_path.join("gateway.yaml"),
            None,
            err.to_string(),
        );
        GatewayError::ReloadFailed(diagnostics)
    })?;
    crate::scheduler::sync_workspace(&state.store, &workspace).await?;
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
    let agents = generation.workspace.agents.len();
    state.replace_generation(generation);
    Ok(agents)
}
