//! What the store keeps: plain records, independent of how the engine produces them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Lifecycle state of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    Timeout,
    /// Paused until a person approves or denies a tool call.
    WaitingApproval,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::WaitingApproval => "waiting_approval",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "timeout" => Self::Timeout,
            "waiting_approval" => Self::WaitingApproval,
            _ => return None,
        })
    }

    /// Finished: no further transition happens.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running | Self::WaitingApproval)
    }
}

/// One execution (a run of an agent).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExecutionRecord {
    pub execution_id: String,
    pub agent_id: String,
    pub status: ExecutionStatus,
    pub message: String,
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub options: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub usage: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_execution_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_execution_id: Option<String>,
    pub delegation_depth: i64,
    /// The gateway process that runs (or ran) it.
    #[serde(skip)]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ExecutionRecord {
    pub fn new(
        execution_id: &str,
        agent_id: &str,
        message: &str,
        input: Map<String, Value>,
    ) -> Self {
        Self {
            execution_id: execution_id.to_string(),
            agent_id: agent_id.to_string(),
            status: ExecutionStatus::Queued,
            message: message.to_string(),
            input,
            options: None,
            result: None,
            error: None,
            usage: None,
            session_id: None,
            user_id: None,
            schedule_id: None,
            schedule_name: None,
            parent_execution_id: None,
            root_execution_id: None,
            delegation_depth: 0,
            instance_id: None,
            started_at: None,
            completed_at: None,
            created_at: Utc::now(),
        }
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionOutcome {
    pub status: ExecutionStatus,
    pub result: Option<Value>,
    pub usage: Option<Value>,
    pub error: Option<String>,
    pub completed_at: DateTime<Utc>,
}

/// One step of an execution: an LLM call, a tool call or a tool result.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepRecord {
    pub step_type: String,
    pub sequence: i64,
    #[schema(value_type = Object)]
    pub data: Value,
    pub duration_ms: i64,
    pub created_at: DateTime<Utc>,
}

/// Which executions to list. Filters combine; newest first unless `root` is set (then the
/// delegation tree: by depth, oldest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionFilter {
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    pub root_execution_id: Option<String>,
    pub user_id: Option<String>,
    pub status: Option<ExecutionStatus>,
    pub limit: i64,
    pub offset: i64,
}

/// A persisted chat conversation (one per session).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConversationRecord {
    pub conversation_id: String,
    pub agent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub message_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set when its session was deleted: the history stays, the session cannot resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageRecord {
    pub message_id: String,
    pub role: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

/// A chat turn to append: the conversation's identity and the new messages.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationTurn {
    pub conversation_id: String,
    pub agent_id: String,
    pub user_id: Option<String>,
    /// Set on the first turn only (the first user message, shortened).
    pub title: Option<String>,
    /// (role, content) pairs in order.
    pub messages: Vec<(String, String)>,
    pub at: DateTime<Utc>,
}

/// A gateway process sharing the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub id: String,
    /// Machine the process runs on.
    pub host: String,
    pub pid: i64,
    pub heartbeat_at: DateTime<Utc>,
}

/// Where a tool-call approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    /// Nobody decided within the approval timeout.
    Expired,
    /// The execution ended (cancelled, timed out) while it waited.
    Cancelled,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// A tool call that waits for (or got) a person's decision.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApprovalRecord {
    pub approval_id: String,
    pub execution_id: String,
    pub tool_name: String,
    /// The model's id of the call.
    pub call_id: String,
    #[schema(value_type = Object)]
    pub arguments: Value,
    pub status: ApprovalStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
}

/// A decision on pending approvals.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalDecision {
    pub status: ApprovalStatus,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub at: DateTime<Utc>,
}

/// An MCP server added through the admin API. Env, headers and credentials are sealed by the
/// gateway before they reach the store; the store never sees them in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerRecord {
    pub id: String,
    pub name: String,
    /// `stdio` or `streamable_http`.
    pub transport: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub url: Option<String>,
    pub encrypted_env: Option<String>,
    pub encrypted_headers: Option<String>,
    pub encrypted_credentials: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A user's setup of a personal agent. `encrypted_secrets` holds values the gateway sealed
/// (sensitive fields); the store never sees them in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct UserConfigRecord {
    pub user_id: String,
    pub agent_id: String,
    pub instructions: Option<String>,
    pub config_values: Map<String, Value>,
    /// Field name → sealed value.
    pub encrypted_secrets: Map<String, Value>,
    pub setup_completed: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A schedule: from AGENT.md (`source: workspace`) or created at runtime (`admin`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScheduleRecord {
    pub id: String,
    pub agent_id: String,
    pub name: String,
    pub cron_expr: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    pub enabled: bool,
    pub timezone: String,
    /// `workspace` or `admin`.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<DateTime<Utc>>,
    /// Fields edited at runtime (they win over AGENT.md).
    #[serde(skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub overrides: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

/// One notification: a message to one target (Slack channel or webhook) about an execution,
/// with every delivery attempt counted. `payload` is what was sent, so a retry replays it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NotificationRecord {
    pub id: i64,
    pub execution_id: String,
    pub agent_id: String,
    /// `execution.completed`, `execution.failed` or `execution.timeout`.
    pub event_type: String,
    /// `slack` or `webhook`.
    pub channel: String,
    /// The Slack channel, or the webhook URL without its query.
    pub target: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Which notifications to list (newest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotificationFilter {
    pub status: Option<String>,
    pub agent_id: Option<String>,
    pub channel: Option<String>,
    pub execution_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
}
