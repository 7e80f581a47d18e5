//! The workspace format of Agent Gateway: `gateway.yaml` and the `AGENT.md` / `TOOL.md` /
//! `SKILL.md` files under a workspace folder.
//!
//! Pure: no async runtime, no network. Everything is parsed into typed definitions, and every
//! problem becomes a [`Diagnostic`] tied to a file and line, so `agents-gateway check` can report
//! them all at once.

pub mod agent;
pub mod config;
pub mod diagnostics;
mod document;
pub mod lenient;
pub mod rate;
pub mod replies;
pub mod schedule;
pub mod schema;
pub mod skill;
pub mod test_cases;
pub mod tool;
pub mod workspace;
pub mod yaml;

pub use agent::{AgentDefinition, AgentModel, AgentScope, ScheduleDefinition};
pub use config::{ExecutionMode, GatewayConfig};
pub use diagnostics::{Diagnostic, Diagnostics, Severity};
pub use skill::{SkillDefinition, StepAction, WorkflowStep};
pub use tool::{ToolDefinition, ToolHandler};
pub use workspace::{ExternalNames, Workspace, is_valid_id};
