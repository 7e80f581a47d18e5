//! The errors of the gateway's operations. Each surface maps them once to its wire format
//! (the REST API to one status and code each); library users match on them. Causes keep their
//! type as `#[source]`, and input problems stay typed [`Violation`]s all the way out.

use gateway_store::{ExecutionStatus, StoreError};
use gateway_workspace::Diagnostics;
use gateway_workspace::schema::Violation;

use crate::auth::AuthConfigError;
use crate::queue::QueueError;
use crate::rate_limit::RateLimitError;
use crate::secrets::SecretError;

/// A kind of record an operation looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Agent,
    Skill,
    Tool,
    Execution,
    Session,
    Conversation,
    Approval,
    Schedule,
    McpServer,
    Notification,
    /// A user's setup of a personal agent (its id is the agent's).
    Config,
    Memory,
}

impl Record {
    /// The record's name in error codes (`<name>_not_found`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Skill => "skill",
            Self::Tool => "tool",
            Self::Execution => "execution",
            Self::Session => "session",
            Self::Conversation => "conversation",
            Self::Approval => "approval",
            Self::Schedule => "schedule",
            Self::McpServer => "mcp_server",
            Self::Notification => "notification",
            Self::Config => "config",
            Self::Memory => "memory",
        }
    }

    /// The record's name in messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Agent => "Agent",
            Self::Skill => "Skill",
            Self::Tool => "Tool",
            Self::Execution => "Execution",
            Self::Session => "Session",
            Self::Conversation => "Conversation",
            Self::Approval => "Approval",
            Self::Schedule => "Schedule",
            Self::McpServer => "MCP server",
            Self::Notification => "Notification",
            Self::Config => "Configuration",
            Self::Memory => "Memory",
        }
    }
}

/// Which input of an operation a violation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputPart {
    /// A run's structured input.
    RunInput,
    /// The output schema a run asked for.
    OutputSchema,
    /// A user's setup of a personal agent.
    Setup,
}

fn not_found_message(record: Record, id: &str) -> String {
    match record {
        Record::Config => format!("No configuration of agent '{id}' for this user"),
        _ => format!("{} '{id}' not found", record.label()),
    }
}

fn joined(violations: &[Violation]) -> String {
    gateway_workspace::schema::lines(violations).join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{}", not_found_message(*.record, .id))]
    NotFound { record: Record, id: String },
    /// The record belongs to another user (the one visibility rule of [`crate::Actor`]).
    #[error("This {} belongs to another user", .record.label().to_lowercase())]
    Forbidden { record: Record, id: String },
    /// The actor's scopes do not allow the operation.
    #[error("Insufficient scopes. Missing: {scope}")]
    InsufficientScope { scope: String },
    #[error("Agent '{0}' is disabled")]
    AgentDisabled(String),
    /// An input breaks its schema (the agent's input schema, the setup schema, or the JSON
    /// Schema rules for an asked output schema).
    #[error("Input validation failed: {}", joined(.violations))]
    InvalidInput {
        part: InputPart,
        violations: Vec<Violation>,
    },
    #[error("Session '{session_id}' belongs to agent '{owner}', not '{agent_id}'")]
    SessionAgentMismatch {
        session_id: String,
        owner: String,
        agent_id: String,
    },
    #[error("Streaming is not supported for asynchronous execution")]
    StreamingNotSupported,
    /// The model cannot be reached as configured (missing key, unknown provider).
    #[error("{message}")]
    ModelUnavailable {
        message: String,
        execution_id: Option<String>,
    },
    #[error("Execution '{execution_id}' is already {} and cannot be cancelled", .status.as_str())]
    NotCancellable {
        execution_id: String,
        status: ExecutionStatus,
    },
    #[error("Execution '{execution_id}' is {} and does not wait for approval", .status.as_str())]
    NotWaitingApproval {
        execution_id: String,
        status: ExecutionStatus,
    },
    #[error("Workspace reload is disabled (start the server with --reload)")]
    ReloadDisabled,
    /// The new `gateway.yaml` has errors: the running generation stays.
    #[error("Workspace reload failed: {}", render(.0, "; "))]
    ReloadFailed(Diagnostics),
    /// `gateway.yaml` has errors: the gateway refuses to start on a configuration it cannot
    /// read rather than silently running on defaults.
    #[error("invalid configuration:\n{}", render(.0, "\n"))]
    InvalidConfig(Diagnostics),
    #[error(transparent)]
    AuthConfig(#[from] AuthConfigError),
    #[error(transparent)]
    RateLimitConfig(#[from] RateLimitError),
    #[error("scheduler lock: {0}")]
    SchedulerLock(String),
    #[error("structured output did not match the requested type: {0}")]
    OutputMismatch(String),
    #[error("execution failed: {0}")]
    ExecutionFailed(String),
    /// The database could not be reached or refused the operation.
    #[error("storage unavailable: {0}")]
    Storage(#[from] StoreError),
    /// The operation needs an authenticated user (personal agents, user config).
    #[error("This needs an authenticated user: personal agents keep a configuration per user")]
    AuthRequired,
    #[error("Agent '{0}' is not a personal agent and needs no setup")]
    NotPersonalAgent(String),
    #[error("Agent '{agent_id}' needs setup first: POST /v1/agents/{agent_id}/config (missing: {})", if missing.is_empty() { "nothing; the setup was never saved".to_string() } else { missing.join(", ") })]
    SetupRequired {
        agent_id: String,
        missing: Vec<String>,
    },
    #[error("The execution queue is unavailable: {0}")]
    QueueUnavailable(#[source] QueueError),
    /// A schedule that cannot work as asked (cron expression, timezone, name, agent).
    #[error("{0}")]
    ScheduleInvalid(String),
    #[error("Schedule '{0}' already exists")]
    ScheduleConflict(String),
    #[error(
        "Schedule '{0}' comes from AGENT.md and cannot be deleted here (disable it, or remove it from the file)"
    )]
    ScheduleProtected(String),
    /// The request clashes with what exists (a taken name, a resource edited elsewhere).
    #[error("{0}")]
    Conflict(String),
    /// A request that is well-formed but not acceptable.
    #[error("{0}")]
    InvalidRequest(String),
    /// Secrets would have to be stored or read without `AGENT_GATEWAY_SECRET_KEY`, or a
    /// stored one cannot be opened.
    #[error(transparent)]
    Secrets(#[from] SecretError),
    /// The gateway is shutting down (a tool called back into it as it stopped).
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// A dependency of this instance did not answer (readiness): every failed check.
    #[error("Not ready: {}", .0.failure_summary())]
    NotReady(Box<crate::health::Readiness>),
    /// The agent has no memory (`memory.enabled` is off for it).
    #[error("Memory is not enabled for agent '{0}'")]
    MemoryUnavailable(String),
    /// The scope holds as many memories as it may.
    #[error("The memory of this scope is full ({0} memories): forget some or compact it")]
    MemoryFull(usize),
    /// The model of a memory compaction or extraction failed or answered nonsense.
    #[error("{0}")]
    MemoryModelFailed(String),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::memory::MemoryError> for GatewayError {
    fn from(err: crate::memory::MemoryError) -> Self {
        use crate::memory::MemoryError as M;
        match err {
            M::Disabled(agent) => Self::MemoryUnavailable(agent),
            M::Invalid(message) => Self::InvalidRequest(message),
            M::NoUser(_) => Self::AuthRequired,
            M::NotFound(id) => Self::not_found(Record::Memory, id),
            M::Full(limit) => Self::MemoryFull(limit),
            M::ModelFailed(message) => Self::MemoryModelFailed(message),
            M::Store(StoreError::Clash(message)) => Self::Conflict(message),
            M::Store(err) => Self::Storage(err),
        }
    }
}

impl GatewayError {
    pub fn not_found(record: Record, id: impl Into<String>) -> Self {
        Self::NotFound {
            record,
            id: id.into(),
        }
    }
}

fn render(diagnostics: &Diagnostics, separator: &str) -> String {
    diagnostics
        .errors()
        .map(|d| {
            if separator == "\n" {
                format!("  {d}")
            } else {
                d.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(separator)
}
