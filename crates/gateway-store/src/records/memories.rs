//! Agents' memories: the record and [`AgentMemoryStore`].
//!
//! A memory belongs to one agent and one scope: a user's, or the agent's shared knowledge
//! (`user_id` empty). Who may see or change which scope is the core's rule; the store only
//! keeps what it is given and answers what it is asked.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// What kind of thing a memory holds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MemoryType {
    /// A fact or preference.
    #[default]
    Semantic,
    /// Something that happened.
    Episodic,
    /// How to do something.
    Procedural,
}

impl MemoryType {
    pub const ALL: [Self; 3] = [Self::Semantic, Self::Episodic, Self::Procedural];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Semantic => "semantic",
            Self::Episodic => "episodic",
            Self::Procedural => "procedural",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// Where a memory came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemorySource {
    /// Saved by the agent's `memory_save` tool.
    #[default]
    Manual,
    /// Extracted from a conversation by a model.
    Extracted,
    /// A summary that replaced older memories.
    Compacted,
    /// Written through the memory API or the CLI.
    Api,
}

impl MemorySource {
    pub const ALL: [Self; 4] = [Self::Manual, Self::Extracted, Self::Compacted, Self::Api];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Extracted => "extracted",
            Self::Compacted => "compacted",
            Self::Api => "api",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One memory (also what the API answers, without the embedding).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Memory)]
pub struct MemoryRecord {
    /// 12 lowercase hex characters for new memories (0.2.13's form); any id read from a file
    /// is kept.
    pub id: String,
    pub agent_id: String,
    /// The user whose memory this is; absent for the agent's shared knowledge.
    pub user_id: Option<String>,
    pub content: String,
    pub memory_type: MemoryType,
    pub source: MemorySource,
    /// 0 to 1.
    pub importance: f64,
    /// Always injected first and never compacted.
    pub pinned: bool,
    pub access_count: i64,
    pub last_accessed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The content's embedding, when an embedding model is configured.
    #[serde(skip)]
    pub embedding: Option<Vec<f32>>,
}

impl MemoryRecord {
    /// Takes what `edit` says (content, type, importance, pinned, updated_at, embedding),
    /// keeping this memory's scope, creation and access counts: what an update changes.
    pub fn apply_edit(&mut self, edit: &MemoryRecord) {
        self.content.clone_from(&edit.content);
        self.memory_type = edit.memory_type;
        self.importance = edit.importance;
        self.pinned = edit.pinned;
        self.updated_at = edit.updated_at;
        self.embedding.clone_from(&edit.embedding);
    }
}

/// A new memory id: 12 hex characters.
pub fn new_memory_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Which memories of an agent a query is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryScope {
    /// One user's memories.
    User(String),
    /// The agent's shared knowledge (no user).
    Shared,
    /// Every scope: the shared knowledge and every user's.
    All,
}

impl MemoryScope {
    /// The scope a memory with this `user_id` is in.
    pub fn of(user_id: Option<&str>) -> Self {
        match user_id {
            Some(user) => Self::User(user.to_string()),
            None => Self::Shared,
        }
    }

    /// Whether a memory with this `user_id` is in the scope.
    pub fn holds(&self, user_id: Option<&str>) -> bool {
        match self {
            Self::User(user) => user_id == Some(user.as_str()),
            Self::Shared => user_id.is_none(),
            Self::All => true,
        }
    }
}

/// Which memories to list: newest `updated_at` first, then by id.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryFilter {
    pub agent_id: String,
    pub scope: MemoryScope,
    pub memory_type: Option<MemoryType>,
    pub source: Option<MemorySource>,
    /// Text the content contains (case-insensitive).
    pub contains: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

impl MemoryFilter {
    /// Every memory of `scope`, up to `limit`.
    pub fn scope(agent_id: impl Into<String>, scope: MemoryScope, limit: i64) -> Self {
        Self {
            agent_id: agent_id.into(),
            scope,
            memory_type: None,
            source: None,
            contains: None,
            limit,
            offset: 0,
        }
    }

    /// Whether `record` passes the filter (the scope, type, source and text conditions).
    pub fn matches(&self, record: &MemoryRecord) -> bool {
        record.agent_id == self.agent_id
            && self.scope.holds(record.user_id.as_deref())
            && self.memory_type.is_none_or(|t| t == record.memory_type)
            && self.source.is_none_or(|s| s == record.source)
            && self
                .contains
                .as_deref()
                .is_none_or(|text| record.content.to_lowercase().contains(&text.to_lowercase()))
    }
}

/// Agents' memories.
#[async_trait]
pub trait AgentMemoryStore: Send + Sync {
    /// Creates or replaces a memory (by agent and id; `created_at` of an existing one stays).
    async fn save_memory(&self, record: &MemoryRecord) -> Result<(), StoreError>;

    async fn get_memory(
        &self,
        agent_id: &str,
        id: &str,
    ) -> Result<Option<MemoryRecord>, StoreError>;

    /// Changes what a memory says (content, type, importance, pinned, updated_at, embedding)
    /// where it still is; its scope, creation and access counts stay. Whether it existed (a
    /// memory removed meanwhile is not brought back).
    async fn update_memory(&self, record: &MemoryRecord) -> Result<bool, StoreError>;

    /// A page of the memories matching `filter`, and how many match in all.
    async fn list_memories(
        &self,
        filter: &MemoryFilter,
    ) -> Result<(Vec<MemoryRecord>, i64), StoreError>;

    /// Deletes one memory; whether it existed.
    async fn delete_memory(&self, agent_id: &str, id: &str) -> Result<bool, StoreError>;

    /// Counts one more access of each memory, at `at`.
    async fn touch_memories(
        &self,
        agent_id: &str,
        ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Deletes `remove` and saves `add` in one transaction: either all of it happens or none
    /// (compaction's summaries replace their originals this way). Fails, changing nothing,
    /// when one of `remove` is already gone.
    async fn replace_memories(
        &self,
        agent_id: &str,
        remove: &[String],
        add: &[MemoryRecord],
    ) -> Result<(), StoreError>;
}
