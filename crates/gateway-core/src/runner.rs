//! The narrow seam through which parts below the gateway (the delegation tool) and surfaces
//! above it (agentgate publishing) run agents, without naming the gateway type.

use async_trait::async_trait;

use crate::actor::Actor;
use crate::error::GatewayError;
use crate::runs::{RunRequest, RunResult};

/// Runs agents through the one run pipeline.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Runs `request` for `actor` to its end (the caller waits; nothing is queued).
    async fn run(&self, actor: &Actor, request: RunRequest) -> Result<RunResult, GatewayError>;

    /// Ends a chat session (its history stays readable). Returns whether it existed.
    async fn end_session(&self, actor: &Actor, session_id: &str) -> Result<bool, GatewayError>;
}
