//! Agent Gateway: a folder of markdown files (agents, tools, skills) served as a production
//! API for AI agents.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agent_gateway::GatewayError> {
//! let gateway = agent_gateway::Gateway::builder("./workspace").build().await?;
//! let result = gateway.invoke("assistant", "Hello!").await?;
//! println!("{}", result.result.raw_text);
//! // Serve it, or nest it in an existing axum app:
//! let app = axum::Router::new().nest("/ai", gateway.router());
//! # let _ = app; Ok(()) }
//! ```

pub mod api;
pub mod approvals;
pub mod auth;
pub mod engine;
mod error;
pub mod executions;
mod gateway;
pub mod hooks;
mod llm_settings;
pub mod mcp;
pub mod notifications;
mod publish;
pub mod queue;
mod rate_limit;
mod runtime;
pub mod scheduler;
pub mod secrets;
mod serve;
pub mod sessions;
pub mod tools;

pub use error::GatewayError;
pub use gateway::{
    ApprovalOutcome, CancelOutcome, ChatRequest, ChatResult, ChatStreamEvent, ExecutionOptions,
    ExecutionResult, Gateway, GatewayBuilder, Health, InvokeRequest, McpServerCreate,
    McpServerInfo, McpServerUpdate, RunResult, ScheduleRun,
};
pub use gateway_store as store;
pub use gateway_workspace as workspace;
pub use runtime::check_models;
pub use serve::{ServeOptions, serve};
