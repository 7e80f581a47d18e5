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
//! let turn = gateway.run(&alice, RunRequest::chat("assistant", "Hi")).await?;
//! # let _ = turn; Ok(()) }
//! ```

mod actor;
pub mod approvals;
pub mod auth;
mod background;
mod builder;
pub mod engine;
mod error;
mod gateway;
mod generation;
pub mod hooks;
mod llm_settings;
pub mod mcp;
pub mod notifications;
pub mod operations;
pub mod queue;
pub mod rate_limit;
pub mod run;
mod runner;
mod running;
pub mod scheduler;
pub mod secrets;
pub mod sessions;
mod state;
pub mod tools;

pub use actor::Actor;
pub use builder::GatewayBuilder;
pub use error::{GatewayError, Record};
pub use gateway::Gateway;
pub use gateway_store as store;
pub use gateway_workspace as workspace;
pub use generation::{Generation, check_models};
pub use operations::admin::Health;
pub use operations::executions::ApprovalDecision;
pub use operations::mcp_servers::{McpServerCreate, McpServerInfo, McpServerUpdate};
pub use operations::schedules::{ScheduleCreate, ScheduleEdit};
pub use operations::user_configs::UserConfigInfo;
pub use run::request::{
    ChatTurn, FinalAnswer, Origin, ParentLink, QueuedRun, RunEvent, RunKind, RunRequest, RunResult,
    ScheduleRun, StoredResult,
};
pub use run::{RunStream, RunTicket, Started};
pub use runner::Runner;

#[cfg(test)]
mod boundaries {
    /// The core knows no HTTP server: the surfaces that speak HTTP live above it
    /// (ARCHITECTURE.md, "Layers and boundaries").
    #[test]
    fn the_core_depends_on_no_http_server_crate() {
        let manifest = include_str!("../Cargo.toml");
        let dependencies = manifest
            .split("[dependencies]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .unwrap_or_default();
        let names: Vec<&str> = dependencies
            .lines()
            .filter_map(|line| line.split(['.', ' ', '=']).next())
            .filter(|name| !name.is_empty())
            .collect();
        assert!(names.contains(&"gateway-store"), "read {names:?}");
        for server in ["axum", "tower", "tower-http", "hyper", "utoipa-axum"] {
            assert!(
                !names.contains(&server),
                "gateway-core depends on {server}: HTTP belongs to the surfaces"
            );
        }
    }
}
