//! The errors of the gateway's operations. The API maps each to one HTTP status and code
//! (`api::error`); library users match on them.

use gateway_workspace::Diagnostics;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("Agent '{0}' not found")]
    AgentNotFound(String),
    #[error("Agent '{0}' is disabled")]
    AgentDisabled(String),
    #[error("Input validation failed: {}", details.join("; "))]
    InvalidInput { details: Vec<String> },
    #[error("Session '{0}' not found")]
    SessionNotFound(String),
    #[error("Session '{session_id}' belongs to agent '{owner}', not '{agent_id}'")]
    SessionAgentMismatch {
        session_id: String,
        owner: String,
        agent_id: String,
    },
    #[error("Session '{0}' belongs to another user")]
    SessionForbidden(String),
    #[error("Streaming is not supported for asynchronous execution")]
    StreamingNotSupported,
    /// The model cannot be reached as configured (missing key, unknown provider).
    #[error("{message}")]
    ModelUnavailable {
        message: String,
        execution_id: Option<String>,
    },
    #[error("Workspace reload is disabled (start the server with --reload)")]
    ReloadDisabled,
    #[error("Workspace reload failed: {0}")]
    ReloadFailed(String),
    /// `gateway.yaml` has errors: the gateway refuses to start on a configuration it cannot
    /// read rather than silently running on defaults.
    #[error("invalid configuration:\n{}", render(.0))]
    InvalidConfig(Diagnostics),
    #[error("structured output did not match the requested type: {0}")]
    OutputMismatch(String),
    #[error("execution failed: {0}")]
    ExecutionFailed(String),
    /// The database could not be reached or refused the operation.
    #[error("storage unavailable: {0}")]
    Storage(String),
    /// The operation needs an authenticated user (personal agents, user config).
    #[error("This needs an authenticated user: personal agents keep a configuration per user")]
    AuthRequired,
    #[error("Agent '{0}' is not a personal agent and needs no setup")]
    NotPersonalAgent(String),
    #[error("No configuration of agent '{0}' for this user")]
    ConfigNotFound(String),
    #[error("Agent '{agent_id}' needs setup first: POST /v1/agents/{agent_id}/config (missing: {})", if missing.is_empty() { "nothing; the setup was never saved".to_string() } else { missing.join(", ") })]
    SetupRequired {
        agent_id: String,
        missing: Vec<String>,
    },
    #[error("The execution queue is unavailable: {0}")]
    QueueUnavailable(String),
    #[error("Notification {0} not found")]
    NotificationNotFound(i64),
    #[error("Schedule '{0}' not found")]
    ScheduleNotFound(String),
    #[error("{0}")]
    ScheduleInvalid(String),
    #[error("Schedule '{0}' already exists")]
    ScheduleConflict(String),
    #[error(
        "Schedule '{0}' comes from AGENT.md and cannot be deleted here (disable it, or remove it from the file)"
    )]
    ScheduleProtected(String),
    #[error("MCP server '{0}' not found")]
    McpServerNotFound(String),
    /// The request clashes with what exists (a taken name, a resource edited elsewhere).
    #[error("{0}")]
    Conflict(String),
    /// A request body that is well-formed JSON but not acceptable.
    #[error("{0}")]
    InvalidRequest(String),
    /// Secrets would have to be stored or read without `AGENT_GATEWAY_SECRET_KEY`.
    #[error("{0}")]
    SecretsUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

fn render(diagnostics: &Diagnostics) -> String {
    diagnostics
        .errors()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}
