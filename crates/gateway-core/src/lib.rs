//! The core of Agent Gateway: a folder of markdown files (agents, tools, skills) loaded into
//! a [`Gateway`] that runs agents and keeps their records. Every surface (the REST API,
//! agentgate publishing, the CLI, a host program) goes through its public operations.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gateway_core::GatewayError> {
//! use gateway_core::{Actor, Gateway, RunRequest};
//! let gateway = Gateway::builder("./workspace").build().await?;
//! // The host program's own call runs as the system actor:
//! let result = gateway.invoke(&Actor::system(), "assistant", "Hello!").await?;
//! println!("{}", result.answer.raw_text);
//! // A chat turn for a user, who owns the session:
//! let alice = Actor::user("alice", vec!["agents:invoke".into()]);
//! let turn = gateway.run(&alice, RunRequest::chat("assistant", "Hi", None)).await?;
//! # let _ = turn; Ok(()) }
//! ```

mod actor;
pub mod approvals;
pub mod auth;
mod background;
mod builder;
mod cancels;
pub mod engine;
mod error;
mod gateway;
mod generation;
mod health;
pub mod hooks;
mod llm_settings;
pub mod mcp;
mod memory;
pub use gateway_telemetry::metrics;
pub mod notifications;
pub mod operations;
pub mod outbound;
mod personal;
pub mod queue;
pub mod rate_limit;
pub mod run;
mod runner;
mod runs;
pub mod scheduler;
pub mod secrets;
mod session_cache;
mod state;
pub mod tools;

pub use actor::Actor;
pub use builder::GatewayBuilder;
pub use error::{GatewayError, InputPart, Record};
pub use gateway::Gateway;
pub use gateway_store as store;
pub use gateway_workspace as workspace;
pub use generation::{Generation, check_models};
pub use health::{Readiness, ReadinessCheck, ReloadProblem, ReloadReport};
pub use memory::{MemoryError, MemorySettings, NewMemory};
pub use model_script;
pub use operations::admin::Health;
pub use operations::executions::ApprovalDecision;
pub use operations::mcp_servers::{McpServerCreate, McpServerInfo, McpServerUpdate};
pub use operations::memories::{CompactReport, MemoryCreate, MemoryEdit, MemoryOwner, MemoryQuery};
pub use operations::schedules::{ScheduleCreate, ScheduleEdit};
pub use operations::user_configs::UserConfigInfo;
pub use run::{RunStream, RunTicket, Started};
pub use runner::Runner;
pub use runs::{
    ChatTurn, FinalAnswer, QueuedRun, RunEvent, RunKind, RunRequest, RunResult, StoredResult,
};
pub use session_cache::SessionInfo;

#[cfg(test)]
mod boundaries {
    /// The core knows no HTTP server: the surfaces that speak HTTP live above it
    /// (ARCHITECTURE.md, "Layers and boundaries").
    #[test]
    fn the_core_depends_on_no_http_server_crate() {
        let manifest = include_str!("../Cargo.toml");
        // Every dependency, in either form: `name = ...` under [dependencies], or a table
        // of its own, `[dependencies.name]`.
        let mut names = Vec::new();
        let mut in_dependencies = false;
        for line in manifest.lines().map(str::trim) {
            if let Some(table) = line.strip_prefix('[') {
                let table = table.trim_end_matches(']');
                in_dependencies = table == "dependencies";
                if let Some(name) = table.strip_prefix("dependencies.") {
                    names.push(name.to_string());
                }
                continue;
            }
            if in_dependencies
                && let Some(name) = line.split(['.', ' ', '=']).next().filter(|n| !n.is_empty())
            {
                names.push(name.to_string());
            }
        }
        assert!(names.iter().any(|n| n == "gateway-store"), "read {names:?}");
        for server in ["axum", "tower", "tower-http", "hyper", "utoipa-axum"] {
            assert!(
                !names.iter().any(|n| n == server),
                "gateway-core depends on {server}: HTTP belongs to the surfaces"
            );
        }
    }
}
