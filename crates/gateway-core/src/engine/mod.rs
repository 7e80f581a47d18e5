//! The execution loop: model calls, tool calls (in parallel, bounded), guardrails, structured
//! output. It knows nothing of HTTP: the gateway prepares a [`RunSpec`] and gets a
//! [`RunOutcome`] back.

pub mod output;
pub mod prompt;
mod run;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use run::{Limits, RunSpec, answered_only, run};

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model gave its final answer.
    Completed,
    /// The model kept calling tools for `max_iterations` turns.
    MaxIterations,
    /// The run used up `max_tool_calls`.
    MaxToolCalls,
    Timeout,
    Cancelled,
    /// The model could not be called.
    Error,
}

impl StopReason {
    /// The execution status this stop leads to. Guardrail stops are failures (0.2.13 reported
    /// them as `completed`, hiding that no final answer was produced).
    pub fn status(self) -> ExecutionStatus {
        match self {
            Self::Completed => ExecutionStatus::Completed,
            Self::MaxIterations | Self::MaxToolCalls | Self::Error => ExecutionStatus::Failed,
            Self::Timeout => ExecutionStatus::Timeout,
            Self::Cancelled => ExecutionStatus::Cancelled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::MaxIterations => "max_iterations",
            Self::MaxToolCalls => "max_tool_calls",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }
}

pub use gateway_store::ExecutionStatus;

/// Resources used by one execution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Estimated cost in US dollars (6 decimal places).
    pub cost_usd: f64,
    pub llm_calls: u32,
    pub tool_calls: u32,
    pub models_used: Vec<String>,
    pub duration_ms: u64,
}

impl Usage {
    pub(crate) fn add_llm_call(&mut self, model: &str, usage: gateway_llm::TokenUsage) {
        self.input_tokens += usage.input_tokens;
        self.output_tokens += usage.output_tokens;
        self.llm_calls += 1;
        let cost = gateway_llm::pricing::cost_usd(model, &usage);
        self.cost_usd = ((self.cost_usd + cost) * 1e6).round() / 1e6;
        if !self.models_used.iter().any(|m| m == model) {
            self.models_used.push(model.to_string());
        }
    }
}

/// Why a run failed in a way the caller should see as "service unavailable" rather than as a
/// failed execution: the gateway is not configured to reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    ModelUnavailable,
}

/// What happened while streaming a run, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    Token {
        content: String,
    },
    ToolCall {
        call_id: String,
        name: String,
        arguments: Value,
    },
    ToolResult {
        call_id: String,
        name: String,
        /// The raw tool result, or `{"error": ...}`.
        output: Value,
    },
    /// The run waits for a person to approve or deny this call.
    ApprovalRequired {
        approval_id: String,
        call_id: String,
        name: String,
        arguments: Value,
    },
}
