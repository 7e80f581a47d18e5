//! Operations on agents' memories (`gateway.memories()`): list, read, create, update, delete
//! and compact. Users see and change their own memories and may read the agent's shared
//! knowledge; admins (and trusted code) reach every user's and change the shared knowledge.

use std::sync::Arc;

use chrono::Utc;
use gateway_store::{MemoryFilter, MemoryRecord, MemoryScope, MemorySource, MemoryType};
use serde::Serialize;

use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::generation::Generation;
use crate::memory::{MemoryBank, NewMemory};
use crate::state::GatewayState;

/// Whose memories an operation is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MemoryOwner {
    /// The asking actor's own (for an admin without a user: every scope when listing).
    #[default]
    Caller,
    /// One user's (admins only, unless it is the caller).
    User(String),
    /// The agent's shared knowledge (readable by all, changed by admins).
    Shared,
    /// Every scope: the shared knowledge and every user's (admins only, listing only).
    All,
}

/// Which memories to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryQuery {
    pub owner: MemoryOwner,
    pub memory_type: Option<MemoryType>,
    pub source: Option<MemorySource>,
    /// Text the content contains.
    pub search: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// A memory to create.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryCreate {
    pub owner: MemoryOwner,
    pub content: String,
    pub memory_type: MemoryType,
    pub importance: f64,
    pub pinned: bool,
}

/// Changes to a memory; absent fields stay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryEdit {
    pub content: Option<String>,
    pub memory_type: Option<MemoryType>,
    pub importance: Option<f64>,
    pub pinned: Option<bool>,
}

/// What a compaction did (0.2.13's response shape).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CompactReport {
    pub agent_id: String,
    /// Shared memories replaced by summaries.
    pub global_compacted: usize,
    /// The caller's own memories replaced by summaries.
    pub user_compacted: usize,
}

pub struct Memories<'a> {
    state: &'a Arc<GatewayState>,
}

impl<'a> Memories<'a> {
    pub(crate) fn new(state: &'a Arc<GatewayState>) -> Self {
        Self { state }
    }

    /// The generation and its memory bank, for an existing agent with memory.
    fn bank(&self, agent_id: &str) -> Result<(Arc<Generation>, MemoryBank), GatewayError> {
        let generation = self.state.generation();
        if generation.agent(agent_id).is_none() {
            return Err(GatewayError::not_found(Record::Agent, agent_id));
        }
        if !generation.memory.enabled(agent_id) {
            return Err(GatewayError::MemoryUnavailable(agent_id.to_string()));
        }
        let bank = generation.memory.clone();
        Ok((generation, bank))
    }

    /// The scope `owner` names for `actor`, when the actor may read it (`write`: change it).
    fn scope(actor: &Actor, owner: &MemoryOwner, write: bool) -> Result<MemoryScope, GatewayError> {
        let refuse = |id: &str| GatewayError::Forbidden {
            record: Record::Memory,
            id: id.to_string(),
        };
        match owner {
            MemoryOwner::Caller => match actor.user_id() {
                Some(user) => Ok(MemoryScope::User(user.to_string())),
                None if actor.is_admin() && !write => Ok(MemoryScope::All),
                None if actor.is_admin() => Ok(MemoryScope::Shared),
                None => Err(GatewayError::AuthRequired),
            },
            MemoryOwner::User(user) => {
                if actor.may_access(Some(user)) {
                    Ok(MemoryScope::User(user.clone()))
                } else {
                    Err(refuse(user))
                }
            }
            MemoryOwner::All => {
                if write || !actor.is_admin() {
                    Err(refuse("all"))
                } else {
                    Ok(MemoryScope::All)
                }
            }
            MemoryOwner::Shared => {
                if write && !actor.is_admin() {
                    Err(refuse("shared"))
                } else if actor.user_id().is_none() && !actor.is_admin() {
                    Err(GatewayError::AuthRequired)
                } else {
                    Ok(MemoryScope::Shared)
                }
            }
        }
    }

    /// A memory the actor may read (`write`: change), else not found / forbidden.
    async fn owned(
        &self,
        actor: &Actor,
        bank: &MemoryBank,
        agent_id: &str,
        id: &str,
        write: bool,
    ) -> Result<MemoryRecord, GatewayError> {
        let memory = bank
            .store()
            .get_memory(agent_id, id)
            .await?
            .ok_or_else(|| GatewayError::not_found(Record::Memory, id))?;
        let shared_read = memory.user_id.is_none() && !write && actor.user_id().is_some();
        if shared_read {
            // The agent's shared knowledge is for those who may run the agent.
            actor.check_run(agent_id)?;
        } else {
            actor.check_access(Record::Memory, id, memory.user_id.as_deref())?;
        }
        Ok(memory)
    }

    pub async fn list(
        &self,
        actor: &Actor,
        agent_id: &str,
        query: &MemoryQuery,
    ) -> Result<(Vec<MemoryRecord>, i64), GatewayError> {
        let (_, bank) = self.bank(agent_id)?;
        if query.owner == MemoryOwner::Shared {
            // The agent's shared knowledge is for those who may run the agent.
            actor.check_run(agent_id)?;
        }
        let filter = MemoryFilter {
            agent_id: agent_id.to_string(),
            scope: Self::scope(actor, &query.owner, false)?,
            memory_type: query.memory_type,
            source: query.source,
            contains: query.search.clone().filter(|s| !s.trim().is_empty()),
            limit: query.limit,
            offset: query.offset,
        };
        let (records, total) = bank.store().list_memories(&filter).await?;
        Ok((records, total))
    }

    pub async fn get(
        &self,
        actor: &Actor,
        agent_id: &str,
        id: &str,
    ) -> Result<MemoryRecord, GatewayError> {
        let (_, bank) = self.bank(agent_id)?;
        self.owned(actor, &bank, agent_id, id, false).await
    }

    pub async fn create(
        &self,
        actor: &Actor,
        agent_id: &str,
        create: MemoryCreate,
    ) -> Result<MemoryRecord, GatewayError> {
        let (_, bank) = self.bank(agent_id)?;
        let scope = Self::scope(actor, &create.owner, true)?;
        let memory = NewMemory {
            content: create.content,
            memory_type: create.memory_type,
            importance: create.importance,
            pinned: create.pinned,
            source: MemorySource::Api,
        };
        let saved = bank.save(agent_id, &scope, memory).await?;
        bank.compact_after_save(agent_id, &scope).await;
        Ok(saved)
    }

    pub async fn update(
        &self,
        actor: &Actor,
        agent_id: &str,
        id: &str,
        edit: MemoryEdit,
    ) -> Result<MemoryRecord, GatewayError> {
        let (_, bank) = self.bank(agent_id)?;
        let mut memory = self.owned(actor, &bank, agent_id, id, true).await?;
        if let Some(content) = edit.content {
            memory.content = bank.checked_content(agent_id, &content)?;
            // The old content's embedding no longer describes it.
            memory.embedding = bank.embedding_of(&memory.content).await;
        }
        if let Some(memory_type) = edit.memory_type {
            memory.memory_type = memory_type;
        }
        if let Some(importance) = edit.importance {
            memory.importance = importance.clamp(0.0, 1.0);
        }
        if let Some(pinned) = edit.pinned {
            memory.pinned = pinned;
        }
        memory.updated_at = Utc::now();
        // Where it still is: a memory compacted away meanwhile is not brought back.
        if !bank.store().update_memory(&memory).await? {
            return Err(GatewayError::not_found(Record::Memory, id));
        }
        Ok(memory)
    }

    pub async fn delete(
        &self,
        actor: &Actor,
        agent_id: &str,
        id: &str,
    ) -> Result<(), GatewayError> {
        let (_, bank) = self.bank(agent_id)?;
        self.owned(actor, &bank, agent_id, id, true).await?;
        bank.store().delete_memory(agent_id, id).await?;
        Ok(())
    }

    /// Compacts the shared knowledge and the caller's own memories where they pass the
    /// agent's limit: the lowest-scored unprotected memories are summarised by a model and
    /// the summaries replace them in one step. A failed summary changes nothing (the error
    /// says why).
    pub async fn compact(
        &self,
        actor: &Actor,
        agent_id: &str,
    ) -> Result<CompactReport, GatewayError> {
        let generation = self.state.generation();
        if generation.agent(agent_id).is_none() {
            return Err(GatewayError::not_found(Record::Agent, agent_id));
        }
        if !generation.memory.enabled(agent_id) {
            return Err(GatewayError::MemoryUnavailable(agent_id.to_string()));
        }
        let bank = &generation.memory;
        let global_compacted = bank.compact(agent_id, &MemoryScope::Shared).await?;
        let user_compacted = match actor.user_id() {
            Some(user) => {
                bank.compact(agent_id, &MemoryScope::User(user.to_string()))
                    .await?
            }
            None => 0,
        };
        Ok(CompactReport {
            agent_id: agent_id.to_string(),
            global_compacted,
            user_compacted,
        })
    }
}
