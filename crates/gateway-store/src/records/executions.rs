//! Executions (runs of an agent) and their steps: the records and [`ExecutionStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::StoreError;

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
    /// The OpenTelemetry trace the run was recorded in (when traces are exported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
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
            trace_id: None,
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

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelResult {
    /// The execution was queued or running and is now cancelled.
    Cancelled,
    NotFound,
    /// It had already ended with this status.
    AlreadyFinished(ExecutionStatus),
}

/// A new execution id: a time-ordered UUID (version 7). Ids made later sort later, so the
/// executions' primary-key index and the steps' execution index grow at their right edge:
/// with random ids every insert dirtied a leaf page somewhere in each index.
pub fn new_execution_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Executions and their steps: recording, the run's transitions, listing, cancels, and the
/// executions of instances that are gone.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Records a new execution. Records are taken, not borrowed: the callers are done with
    /// them, and a store that keeps or queues them would otherwise copy them.
    async fn insert_execution(&self, record: ExecutionRecord) -> Result<(), StoreError>;

    /// `queued` → `running` (a cancelled execution stays cancelled). Returns whether it moved.
    async fn mark_running(&self, execution_id: &str, at: DateTime<Utc>)
    -> Result<bool, StoreError>;

    /// Records the end of an execution and its steps in one transaction. An execution
    /// cancelled meanwhile stays `cancelled`; the final status is returned.
    async fn finish_execution(
        &self,
        execution_id: &str,
        outcome: ExecutionOutcome,
        steps: Vec<StepRecord>,
    ) -> Result<ExecutionStatus, StoreError>;

    async fn get_execution(
        &self,
        execution_id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError>;

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, StoreError>;

    /// The execution and every execution delegated from it (directly or not), by depth then
    /// age. Starts from the root when `execution_id` is itself a delegated child.
    async fn workflow(&self, execution_id: &str) -> Result<Vec<ExecutionRecord>, StoreError>;

    async fn execution_steps(&self, execution_id: &str) -> Result<Vec<StepRecord>, StoreError>;

    async fn cancel_execution(
        &self,
        execution_id: &str,
        at: DateTime<Utc>,
    ) -> Result<CancelResult, StoreError>;

    /// Which of `execution_ids` have been cancelled (by any instance).
    async fn cancelled_among(&self, execution_ids: &[String]) -> Result<Vec<String>, StoreError>;

    /// Marks `failed` (with `reason`) every queued or running execution that does not belong
    /// to one of the `alive` instances, and forgets every other instance. Executions carried
    /// by a durable queue (`options.queue = "durable"`) are left to it: it redelivers them.
    /// Returns how many executions failed.
    async fn fail_orphans(&self, alive: &[String], reason: &str) -> Result<u64, StoreError>;

    /// Takes a queued execution for `instance` (`queued` → `running`), or takes over one left
    /// `running` by an instance not in `alive` (its worker died and the queue redelivered
    /// the job). Returns whether this caller now runs it.
    async fn claim_queued_execution(
        &self,
        execution_id: &str,
        instance: &str,
        alive: &[String],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::new_execution_id;

    #[test]
    fn execution_ids_are_uuids_that_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| new_execution_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} came before {}", pair[0], pair[1]);
        }
        for id in &ids {
            let Ok(parsed) = uuid::Uuid::parse_str(id) else {
                unreachable!("{id} is not a UUID")
            };
            assert_eq!(parsed.get_version_num(), 7);
        }
    }
}
