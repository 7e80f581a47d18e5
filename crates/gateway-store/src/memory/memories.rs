//! Agents' memories in memory: [`AgentMemoryStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::error::StoreError;
use crate::records::{AgentMemoryStore, MemoryFilter, MemoryRecord};

fn taken(record: &MemoryRecord) -> StoreError {
    StoreError::Clash(format!("memory id '{}' of another agent", record.id))
}

#[async_trait]
impl AgentMemoryStore for MemoryStore {
    async fn save_memory(&self, record: &MemoryRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        let mut record = record.clone();
        if let Some(existing) = state.memories.get(&record.id) {
            if existing.agent_id != record.agent_id {
                return Err(taken(&record));
            }
            record.created_at = existing.created_at;
        }
        state.memories.insert(record.id.clone(), record);
        Ok(())
    }

    async fn get_memory(
        &self,
        agent_id: &str,
        id: &str,
    ) -> Result<Option<MemoryRecord>, StoreError> {
        Ok(self
            .lock()
            .memories
            .get(id)
            .filter(|m| m.agent_id == agent_id)
            .cloned())
    }

    async fn list_memories(
        &self,
        filter: &MemoryFilter,
    ) -> Result<(Vec<MemoryRecord>, i64), StoreError> {
        let mut found: Vec<MemoryRecord> = self
            .lock()
            .memories
            .values()
            .filter(|m| filter.matches(m))
            .cloned()
            .collect();
        found.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
        let total = found.len() as i64;
        let page = found
            .into_iter()
            .skip(filter.offset.max(0) as usize)
            .take(filter.limit.max(0) as usize)
            .collect();
        Ok((page, total))
    }

    async fn update_memory(&self, record: &MemoryRecord) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(kept) = state
            .memories
            .get_mut(&record.id)
            .filter(|m| m.agent_id == record.agent_id)
        else {
            return Ok(false);
        };
        kept.apply_edit(record);
        Ok(true)
    }

    async fn delete_memory(&self, agent_id: &str, id: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state
            .memories
            .get(id)
            .is_some_and(|m| m.agent_id == agent_id)
        {
            state.memories.remove(id);
            return Ok(true);
        }
        Ok(false)
    }

    async fn touch_memories(
        &self,
        agent_id: &str,
        ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        for id in ids {
            if let Some(memory) = state.memories.get_mut(id)
                && memory.agent_id == agent_id
            {
                memory.access_count += 1;
                memory.last_accessed_at = Some(at);
            }
        }
        Ok(())
    }

    async fn replace_memories(
        &self,
        agent_id: &str,
        remove: &[String],
        add: &[MemoryRecord],
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        // Every check first, under the one lock: then the change cannot half happen.
        if let Some(gone) = remove.iter().find(|id| {
            state
                .memories
                .get(id.as_str())
                .is_none_or(|m| m.agent_id != agent_id)
        }) {
            return Err(StoreError::Clash(format!(
                "memory '{gone}' is gone; nothing was replaced"
            )));
        }
        if let Some(record) = add.iter().find(|r| {
            state
                .memories
                .get(&r.id)
                .is_some_and(|m| m.agent_id != r.agent_id)
        }) {
            return Err(taken(record));
        }
        for id in remove {
            state.memories.remove(id);
        }
        for record in add {
            state.memories.insert(record.id.clone(), record.clone());
        }
        Ok(())
    }
}
