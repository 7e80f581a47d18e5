//! What the store keeps, one module per kind of record: the records of that kind and the
//! trait of its operations. [`Store`] is all of them at once.

mod approvals;
mod conversations;
mod executions;
mod instances;
mod mcp_servers;
mod memories;
mod notifications;
mod schedules;
mod user_configs;

pub use approvals::{ApprovalDecision, ApprovalRecord, ApprovalStatus, ApprovalStore};
pub use conversations::{
    ConversationFilter, ConversationRecord, ConversationStore, ConversationTurn, MessageRecord,
    new_message_id,
};
pub use executions::{
    CancelResult, ExecutionFilter, ExecutionOutcome, ExecutionRecord, ExecutionStatus,
    ExecutionStore, StepRecord, new_execution_id,
};
pub use instances::{InstanceRecord, InstanceStore, PING_TIMEOUT};
pub use mcp_servers::{McpServerRecord, McpServerStore};
pub use memories::{
    AgentMemoryStore, MemoryFilter, MemoryRecord, MemoryScope, MemorySource, MemoryType,
    new_memory_id,
};
pub use notifications::{NotificationFilter, NotificationRecord, NotificationStore};
pub use schedules::{ScheduleRecord, ScheduleStore};
pub use user_configs::{UserConfigRecord, UserConfigStore};

/// The storage operations the gateway needs: every kind of record. Held as
/// `Arc<dyn Store>` ([`crate::SharedStore`]), on which the methods of every kind's trait can be
/// called directly.
pub trait Store:
    ExecutionStore
    + InstanceStore
    + ApprovalStore
    + ConversationStore
    + ScheduleStore
    + McpServerStore
    + NotificationStore
    + UserConfigStore
    + AgentMemoryStore
    + Send
    + Sync
{
    /// `memory`, `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
}
