//! Agents' memory: what an agent remembers of a user (and its shared knowledge), the rules
//! of who may read and change which scope, recall, and the block injected into a run's
//! system prompt. The records live in an [`AgentMemoryStore`] (the gateway's store, or
//! 0.2.13's files); this module owns everything else.

pub(crate) mod compact;
pub(crate) mod extract;
mod rank;
pub(crate) mod tools;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use gateway_llm::{LlmClient, ModelTarget};
use gateway_store::{
    AgentMemoryStore, MemoryFilter, MemoryRecord, MemoryScope, MemorySource, MemoryType,
    StoreError, new_memory_id,
};
use gateway_workspace::config::{CompactionConfig, MemoryConfig};
use gateway_workspace::{AgentDefinition, Workspace};

pub use rank::Ranked;

/// Most memories of one scope looked at for a recall or an injection (the scope limit keeps
/// scopes far smaller; this only guards against a store that holds more).
const MAX_CANDIDATES: i64 = 5_000;

/// One agent's memory settings: `gateway.yaml`'s `memory:` overridden key by key by the
/// agent's own `memory:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySettings {
    pub enabled: bool,
    pub auto_extract: bool,
    pub extract_on_invoke: bool,
    pub max_injected_chars: usize,
    /// Most memories one scope holds (`max_memory_md_lines`).
    pub max_per_scope: usize,
    pub max_content_chars: usize,
    pub shared_writes: bool,
    pub extraction_model: Option<String>,
    pub compaction: CompactionConfig,
    /// The model of extraction and compaction (`extraction_model`, else the agent's).
    pub model: ModelTarget,
}

impl MemorySettings {
    pub fn of(config: &MemoryConfig, agent: &AgentDefinition, model: ModelTarget) -> Self {
        let own = &agent.memory;
        Self {
            enabled: own.enabled.unwrap_or(config.enabled),
            auto_extract: own.auto_extract.unwrap_or(config.auto_extract),
            extract_on_invoke: own.extract_on_invoke.unwrap_or(config.extract_on_invoke),
            max_injected_chars: own.max_injected_chars.unwrap_or(config.max_injected_chars),
            max_per_scope: own
                .max_memory_md_lines
                .unwrap_or(config.max_memory_md_lines) as usize,
            max_content_chars: own.max_content_chars.unwrap_or(config.max_content_chars),
            shared_writes: own.shared_writes.unwrap_or(config.shared_writes),
            extraction_model: own
                .extraction_model
                .clone()
                .or_else(|| config.extraction_model.clone()),
            compaction: config.compaction.clone(),
            model,
        }
    }
}

/// Why a memory operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("memory is not enabled for agent '{0}'")]
    Disabled(String),
    #[error("{0}")]
    Invalid(String),
    /// No user is known and the agent keeps its shared knowledge read-only to such callers.
    #[error(
        "no user is known for this run, and agent '{0}' does not let callers without one change its shared memory (memory.shared_writes)"
    )]
    NoUser(String),
    #[error("no memory '{0}' among the memories this caller may change")]
    NotFound(String),
    #[error("the memory of this scope is full ({0} memories): forget some or compact it")]
    Full(usize),
    /// The model of an extraction or a compaction failed or answered nonsense; nothing was
    /// changed.
    #[error("{0}")]
    ModelFailed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to remember.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMemory {
    pub content: String,
    pub memory_type: MemoryType,
    pub importance: f64,
    pub pinned: bool,
    pub source: MemorySource,
}

/// The memories of a generation's agents: the shared store, each agent's settings, and the
/// embedding model recall ranks with (when one is configured).
#[derive(Clone)]
pub(crate) struct MemoryBank {
    store: Arc<dyn AgentMemoryStore>,
    settings: Arc<HashMap<String, MemorySettings>>,
    llm: LlmClient,
    embedding_model: Option<String>,
}

impl MemoryBank {
    /// The bank of `workspace`'s agents; `model_of` gives each agent's memory model.
    pub fn new(
        store: Arc<dyn AgentMemoryStore>,
        workspace: &Workspace,
        llm: &LlmClient,
        model_of: impl Fn(&AgentDefinition) -> ModelTarget,
    ) -> Self {
        let settings = workspace
            .agents
            .values()
            .map(|agent| {
                (
                    agent.id.clone(),
                    MemorySettings::of(&workspace.config.memory, agent, model_of(agent)),
                )
            })
            .collect();
        Self {
            store,
            settings: Arc::new(settings),
            llm: llm.clone(),
            embedding_model: workspace.config.memory.embedding_model.clone(),
        }
    }

    /// The embedding of `text`, when an embedding model is configured and answers (a failure
    /// only costs the ranking by similarity: it is logged).
    pub async fn embedding_of(&self, text: &str) -> Option<Vec<f32>> {
        let model = self.embedding_model.as_ref()?;
        match self.llm.embed(model, &[text.to_string()]).await {
            Ok(mut vectors) => vectors.pop(),
            Err(err) => {
                tracing::warn!(%model, error = %err, "no embedding: memories rank by keywords only");
                None
            }
        }
    }

    pub fn store(&self) -> &Arc<dyn AgentMemoryStore> {
        &self.store
    }

    pub fn llm(&self) -> &LlmClient {
        &self.llm
    }

    /// The settings of `agent_id` (`None`: no such agent).
    pub fn settings(&self, agent_id: &str) -> Option<&MemorySettings> {
        self.settings.get(agent_id)
    }

    /// The agents with memory, sorted.
    pub fn enabled_agents(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .settings
            .iter()
            .filter(|(_, s)| s.enabled)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Whether `agent_id` has memory.
    pub fn enabled(&self, agent_id: &str) -> bool {
        self.settings(agent_id).is_some_and(|s| s.enabled)
    }

    fn enabled_settings(&self, agent_id: &str) -> Result<&MemorySettings, MemoryError> {
        self.settings(agent_id)
            .filter(|s| s.enabled)
            .ok_or_else(|| MemoryError::Disabled(agent_id.to_string()))
    }

    /// The scope a run's memory tools change: the user's, or — with no user — the shared
    /// knowledge when the agent allows it.
    pub fn writable_scope(
        &self,
        agent_id: &str,
        user: Option<&str>,
    ) -> Result<MemoryScope, MemoryError> {
        let settings = self.enabled_settings(agent_id)?;
        match user {
            Some(user) => Ok(MemoryScope::User(user.to_string())),
            None if settings.shared_writes => Ok(MemoryScope::Shared),
            None => Err(MemoryError::NoUser(agent_id.to_string())),
        }
    }

    /// Checks a memory's content against the agent's limits; the trimmed content.
    pub fn checked_content(&self, agent_id: &str, content: &str) -> Result<String, MemoryError> {
        let settings = self.enabled_settings(agent_id)?;
        let content = content.trim();
        if content.is_empty() {
            return Err(MemoryError::Invalid(
                "a memory's content cannot be empty".into(),
            ));
        }
        let chars = content.chars().count();
        if chars > settings.max_content_chars {
            return Err(MemoryError::Invalid(format!(
                "a memory holds at most {} characters (this one has {chars})",
                settings.max_content_chars
            )));
        }
        Ok(content.to_string())
    }

    /// Saves a new memory in `scope` (`User` or `Shared`). The same content already in the
    /// scope is updated instead of stored twice. Refused when the scope is full.
    pub async fn save(
        &self,
        agent_id: &str,
        scope: &MemoryScope,
        memory: NewMemory,
    ) -> Result<MemoryRecord, MemoryError> {
        let settings = self.enabled_settings(agent_id)?;
        let content = self.checked_content(agent_id, &memory.content)?;
        let user_id = match scope {
            MemoryScope::User(user) => Some(user.clone()),
            MemoryScope::Shared => None,
            MemoryScope::All => {
                return Err(MemoryError::Invalid("a memory belongs to one scope".into()));
            }
        };
        let existing = self.scope_memories(agent_id, scope).await?;
        let now = Utc::now();
        let importance = memory.importance.clamp(0.0, 1.0);
        if let Some(same) = existing
            .iter()
            .find(|m| m.content.trim().eq_ignore_ascii_case(&content))
        {
            let mut record = same.clone();
            if record.embedding.is_none() {
                record.embedding = self.embedding_of(&record.content).await;
            }
            record.importance = record.importance.max(importance);
            record.pinned |= memory.pinned;
            record.updated_at = now;
            if self.store.update_memory(&record).await? {
                return Ok(record);
            }
            // Removed meanwhile (compacted): saved anew below.
        }
        if existing.len() >= settings.max_per_scope {
            return Err(MemoryError::Full(settings.max_per_scope));
        }
        let embedding = self.embedding_of(&content).await;
        let record = MemoryRecord {
            id: new_memory_id(),
            agent_id: agent_id.to_string(),
            user_id,
            content,
            memory_type: memory.memory_type,
            source: memory.source,
            importance,
            pinned: memory.pinned,
            access_count: 0,
            last_accessed_at: None,
            created_at: now,
            updated_at: now,
            embedding,
        };
        self.store.save_memory(&record).await?;
        Ok(record)
    }

    /// Every memory of one scope (bounded).
    pub async fn scope_memories(
        &self,
        agent_id: &str,
        scope: &MemoryScope,
    ) -> Result<Vec<MemoryRecord>, MemoryError> {
        let filter = MemoryFilter::scope(agent_id, scope.clone(), MAX_CANDIDATES);
        Ok(self.store.list_memories(&filter).await?.0)
    }

    /// The memories a run for `user` sees: the user's and the shared knowledge, each tagged
    /// with whether it is the user's.
    async fn visible(
        &self,
        agent_id: &str,
        user: Option<&str>,
    ) -> Result<(Vec<MemoryRecord>, Vec<MemoryRecord>), MemoryError> {
        let own = match user {
            Some(user) => {
                self.scope_memories(agent_id, &MemoryScope::User(user.to_string()))
                    .await?
            }
            None => Vec::new(),
        };
        let shared = self.scope_memories(agent_id, &MemoryScope::Shared).await?;
        Ok((own, shared))
    }

    /// The memories most relevant to `query` among the user's and the shared ones, best
    /// first; each access is counted.
    pub async fn recall(
        &self,
        agent_id: &str,
        user: Option<&str>,
        query: &str,
        memory_type: Option<MemoryType>,
        limit: usize,
    ) -> Result<Vec<Ranked>, MemoryError> {
        self.enabled_settings(agent_id)?;
        let (own, shared) = self.visible(agent_id, user).await?;
        let keep = |m: &MemoryRecord| memory_type.is_none_or(|t| t == m.memory_type);
        let query_vector = self.embedding_of(query).await;
        let mut ranked = rank::rank(
            query,
            query_vector.as_deref(),
            own.into_iter()
                .filter(keep)
                .map(|m| (m, true))
                .chain(shared.into_iter().filter(keep).map(|m| (m, false))),
        );
        ranked.retain(|r| r.score > 0.0);
        ranked.truncate(limit);
        self.touch(agent_id, ranked.iter().map(|r| &r.memory)).await;
        Ok(ranked)
    }

    /// Compacts `scope` when it passed the agent's compaction limit; how many memories the
    /// summaries replaced.
    pub async fn compact(&self, agent_id: &str, scope: &MemoryScope) -> Result<usize, MemoryError> {
        compact::compact(self, agent_id, scope).await
    }

    /// [`Self::compact`] after a save, when a failure must not undo the save: it is logged.
    pub async fn compact_after_save(&self, agent_id: &str, scope: &MemoryScope) {
        if let Err(err) = self.compact(agent_id, scope).await {
            tracing::warn!(agent = agent_id, error = %err, "memory compaction after a save failed; nothing was removed");
        }
    }

    /// Deletes a memory of `scope`; another scope's memory is not found.
    pub async fn forget(
        &self,
        agent_id: &str,
        scope: &MemoryScope,
        id: &str,
    ) -> Result<(), MemoryError> {
        let found = self.store.get_memory(agent_id, id).await?;
        match found {
            Some(memory) if scope.holds(memory.user_id.as_deref()) => {
                self.store.delete_memory(agent_id, id).await?;
                Ok(())
            }
            _ => Err(MemoryError::NotFound(id.to_string())),
        }
    }

    /// The block of memories for a run's system prompt (`None` when memory is off or there is
    /// nothing to say): pinned memories first, then the most relevant to `input`, then the
    /// newest, within the agent's character budget — 60 % for the user's memories, the rest
    /// (and what the user's leave unused) for the shared knowledge.
    pub async fn prompt_block(
        &self,
        agent_id: &str,
        user: Option<&str>,
        input: &str,
    ) -> Option<String> {
        let settings = self.settings(agent_id).filter(|s| s.enabled)?;
        let (own, shared) = match self.visible(agent_id, user).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(agent = agent_id, error = %err, "memories could not be read; the run goes on without them");
                return None;
            }
        };
        let budget = settings.max_injected_chars;
        let input_vector = if own.is_empty() && shared.is_empty() {
            None
        } else {
            self.embedding_of(input).await
        };
        let input_vector = input_vector.as_deref();
        let mut used = Vec::new();
        let mut sections = Vec::new();
        let mut left = budget;
        if user.is_some() {
            let (lines, spent) = rank::pack(input, input_vector, own, budget * 6 / 10);
            left = budget.saturating_sub(spent);
            if !lines.is_empty() {
                sections.push(format!("### User Context\n{}", render(&lines)));
                used.extend(lines);
            }
        }
        let (lines, _) = rank::pack(input, input_vector, shared, left);
        if !lines.is_empty() {
            let body = render(&lines);
            sections.push(if user.is_some() {
                format!("### Agent Knowledge\n{body}")
            } else {
                body
            });
            used.extend(lines);
        }
        self.touch(agent_id, used.iter()).await;
        (!sections.is_empty()).then(|| sections.join("\n\n"))
    }

    /// Counts an access of each memory (a failure only costs the count).
    async fn touch<'a>(&self, agent_id: &str, memories: impl Iterator<Item = &'a MemoryRecord>) {
        let ids: Vec<String> = memories.map(|m| m.id.clone()).collect();
        if ids.is_empty() {
            return;
        }
        if let Err(err) = self.store.touch_memories(agent_id, &ids, Utc::now()).await {
            tracing::warn!(agent = agent_id, error = %err, "memory accesses not counted");
        }
    }
}

/// One memory as a prompt line: `- [type] content`, its own lines indented, every `<`
/// written `&lt;` so that no content can close (or open) a fence around the block.
pub(crate) fn prompt_line(memory: &MemoryRecord) -> String {
    let content = memory.content.replace('<', "&lt;").replace('\n', "\n  ");
    format!("- [{}] {content}", memory.memory_type.as_str())
}

fn render(memories: &[MemoryRecord]) -> String {
    memories
        .iter()
        .map(prompt_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON array in a model's answer: the whole text, or the text inside a code fence or
/// between its first `[` and last `]`.
pub(crate) fn parse_json_array(text: &str) -> Option<Vec<serde_json::Value>> {
    let text = text.trim();
    let candidates = [
        Some(text),
        text.strip_prefix("```json")
            .or_else(|| text.strip_prefix("```"))
            .and_then(|t| t.strip_suffix("```")),
        text.find('[')
            .zip(text.rfind(']'))
            .filter(|(start, end)| start < end)
            .map(|(start, end)| &text[start..=end]),
    ];
    candidates.into_iter().flatten().find_map(|candidate| {
        match serde_json::from_str(candidate.trim()) {
            Ok(serde_json::Value::Array(items)) => Some(items),
            _ => None,
        }
    })
}
