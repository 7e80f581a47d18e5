//! Persistence of Agent Gateway: executions and their steps, conversations, and the other
//! tables of the reference schema, on SQLite (the embedded default) or PostgreSQL, with an
//! in-memory twin for `persistence.enabled: false`.
//!
//! Every backend implements [`Store`] with the same behaviour; one test suite runs against
//! all of them. [`Store`] is one trait per kind of record ([`ExecutionStore`],
//! [`ConversationStore`], ...): each kind's records and trait live in a module of their own
//! (`records/<kind>.rs`), and each backend implements a kind in a file of its own
//! (`sql/<kind>.rs`, `memory/<kind>.rs`).

mod error;
pub mod files;
mod memory;
pub mod migrate;
mod records;
mod sql;

use std::path::Path;
use std::sync::Arc;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use records::{
    AgentMemoryStore, MemoryFilter, MemoryRecord, MemoryScope, MemorySource, MemoryType,
    new_memory_id,
};
pub use records::{
    ApprovalDecision, ApprovalRecord, ApprovalStatus, ApprovalStore, CancelResult,
    ConversationFilter, ConversationRecord, ConversationStore, ConversationTurn, ExecutionFilter,
    ExecutionOutcome, ExecutionRecord, ExecutionStatus, ExecutionStore, InstanceRecord,
    InstanceStore, McpServerRecord, McpServerStore, MessageRecord, NotificationFilter,
    NotificationRecord, NotificationStore, ScheduleRecord, ScheduleStore, StepRecord, Store,
    UserConfigRecord, UserConfigStore, new_execution_id, new_message_id,
};
pub use sql::{Backend, SqlStore};

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
