//! Persistence of Agent Gateway: executions and their steps, conversations, and the other
//! tables of the reference schema, on SQLite (the embedded default) or PostgreSQL, with an
//! in-memory twin for `persistence.enabled: false`.
//!
//! Every backend implements [`Store`] with the same behaviour; one test suite runs against
//! all of them.

mod memory;
pub mod migrate;
mod records;
mod sql;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use memory::MemoryStore;
pub use records::{
    ApprovalDecision, ApprovalRecord, ApprovalStatus, ConversationRecord, ConversationTurn,
    ExecutionFilter, ExecutionOutcome, ExecutionRecord, ExecutionStatus, InstanceRecord,
    McpServerRecord, MessageRecord, NotificationFilter, NotificationRecord, ScheduleRecord,
    StepRecord, UserConfigRecord,
};
pub use sql::{Backend, SqlStore};

/// Why a storage operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("migration error: {0}")]
    Migration(String),
    #[error("invalid database URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("unreadable row: {0}")]
    Corrupt(String),
    /// A unique value (a name) is already taken.
    #[error("{0} already exists")]
    Conflict(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err.to_string())
    }
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

/// The storage operations the gateway needs.
#[async_trait]
pub trait Store: Send + Sync {
    /// `memory`, `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

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

    /// Records that an instance is alive (`heartbeat_at` of `instance` is the time).
    async fn heartbeat(&self, instance: &InstanceRecord) -> Result<(), StoreError>;

    /// The instances that have registered and not been removed.
    async fn instances(&self) -> Result<Vec<InstanceRecord>, StoreError>;

    /// Forgets an instance that stopped cleanly.
    async fn remove_instance(&self, instance_id: &str) -> Result<(), StoreError>;

    /// Marks `failed` (with `reason`) every queued or running execution that does not belong
    /// to one of the `alive` instances, and forgets every other instance. Executions carried
    /// by a durable queue (`options.queue = "durable"`) are left to it: it redelivers them.
    /// Returns how many executions failed.
    async fn fail_orphans(&self, alive: &[String], reason: &str) -> Result<u64, StoreError>;

    /// Records approval requests of one execution and moves it `running` →
    /// `waiting_approval`, in one transaction.
    async fn request_approvals(&self, approvals: &[ApprovalRecord]) -> Result<(), StoreError>;

    /// Decides the pending approvals of an execution (only `approval_id` when given).
    /// Returns the approvals it decided: none when nothing matching was pending.
    async fn decide_approvals(
        &self,
        execution_id: &str,
        approval_id: Option<&str>,
        decision: &ApprovalDecision,
    ) -> Result<Vec<ApprovalRecord>, StoreError>;

    /// The approvals of an execution, oldest first.
    async fn approvals(&self, execution_id: &str) -> Result<Vec<ApprovalRecord>, StoreError>;

    /// `waiting_approval` → `running`. Returns whether it moved (a cancel that landed first
    /// keeps the execution cancelled).
    async fn resume_execution(&self, execution_id: &str) -> Result<bool, StoreError>;

    /// Adds an MCP server; a taken name is [`StoreError::Conflict`].
    async fn insert_mcp_server(&self, record: &McpServerRecord) -> Result<(), StoreError>;

    /// Replaces an MCP server's fields (by id). Returns whether it exists.
    async fn update_mcp_server(&self, record: &McpServerRecord) -> Result<bool, StoreError>;

    async fn delete_mcp_server(&self, id: &str) -> Result<bool, StoreError>;

    async fn get_mcp_server(&self, id: &str) -> Result<Option<McpServerRecord>, StoreError>;

    /// Every stored MCP server, by name.
    async fn list_mcp_servers(&self) -> Result<Vec<McpServerRecord>, StoreError>;

    /// Creates or replaces a user's config of an agent (`created_at` of an existing one
    /// stays).
    async fn put_user_config(&self, record: &UserConfigRecord) -> Result<(), StoreError>;

    async fn get_user_config(
        &self,
        user_id: &str,
        agent_id: &str,
    ) -> Result<Option<UserConfigRecord>, StoreError>;

    async fn delete_user_config(&self, user_id: &str, agent_id: &str) -> Result<bool, StoreError>;

    /// Creates or replaces a schedule (a deleted one comes back). `last_run_at` of an existing
    /// row is kept: it records fires.
    async fn put_schedule(&self, record: &ScheduleRecord) -> Result<(), StoreError>;

    /// Schedules not deleted, by id.
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError>;

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError>;

    /// Soft-deletes a schedule. Returns whether it existed.
    async fn delete_schedule(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Claims the fire of `id` at `fire_at`: succeeds for exactly one caller per fire time
    /// (the first to move `last_run_at` forward), on any instance. With `advisory`, a
    /// PostgreSQL advisory lock on the schedule is taken for the claim as well.
    async fn claim_schedule_fire(
        &self,
        id: &str,
        fire_at: DateTime<Utc>,
        next_run_at: Option<DateTime<Utc>>,
        advisory: bool,
    ) -> Result<bool, StoreError>;

    /// Records a notification to send; returns its id.
    async fn insert_notification(&self, record: &NotificationRecord) -> Result<i64, StoreError>;

    /// Records an attempt's outcome.
    async fn update_notification(
        &self,
        id: i64,
        status: &str,
        attempts: i64,
        last_error: Option<&str>,
        delivered_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;

    async fn get_notification(&self, id: i64) -> Result<Option<NotificationRecord>, StoreError>;

    /// A page of notifications matching `filter`, and how many match in all.
    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<(Vec<NotificationRecord>, i64), StoreError>;

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

    /// Appends a chat turn, creating the conversation on its first turn.
    async fn append_turn(&self, turn: &ConversationTurn) -> Result<(), StoreError>;

    async fn get_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError>;

    /// Conversations of `user_id` (optionally of one agent), most recently updated first.
    async fn list_conversations(
        &self,
        user_id: Option<&str>,
        agent_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ConversationRecord>, StoreError>;

    /// Messages of a conversation, oldest first.
    async fn conversation_messages(
        &self,
        conversation_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<MessageRecord>, StoreError>;

    async fn delete_conversation(&self, conversation_id: &str) -> Result<bool, StoreError>;

    /// Marks a conversation ended (its session was deleted). Returns whether it exists.
    async fn end_conversation(
        &self,
        conversation_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

pub type SharedStore = Arc<dyn Store>;

/// Opens the store for a `persistence.url` (SQLite paths relative to `base_dir`; PostgreSQL
/// tables in `schema` when given) and brings its schema to the latest version.
pub async fn open(
    url: &str,
    base_dir: &Path,
    schema: Option<&str>,
) -> Result<SharedStore, StoreError> {
    let store = SqlStore::connect_in_schema(url, base_dir, schema).await?;
    migrate::upgrade(&store, None).await?;
    Ok(Arc::new(store))
}

/// A new execution id: a time-ordered UUID (version 7). Ids made later sort later, so the
/// executions' primary-key index and the steps' execution index grow at their right edge:
/// with random ids every insert dirtied a leaf page somewhere in each index.
pub fn new_execution_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A message id: 16 hex digits (as 0.2.13).
pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
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
