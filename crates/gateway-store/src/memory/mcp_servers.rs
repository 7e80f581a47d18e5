//! MCP servers in memory: [`McpServerStore`] for [`MemoryStore`].

use async_trait::async_trait;

use super::MemoryStore;
use crate::error::StoreError;
use crate::records::{McpServerRecord, McpServerStore};

#[async_trait]
impl McpServerStore for MemoryStore {
    async fn insert_mcp_server(&self, record: &McpServerRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.mcp_servers.values().any(|r| r.name == record.name)
            || state.mcp_servers.contains_key(&record.id)
        {
            return Err(StoreError::Conflict(format!(
                "MCP server '{}'",
                record.name
            )));
        }
        state.mcp_servers.insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn update_mcp_server(&self, record: &McpServerRecord) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state
            .mcp_servers
            .values()
            .any(|r| r.name == record.name && r.id != record.id)
        {
            return Err(StoreError::Conflict(format!(
                "MCP server '{}'",
                record.name
            )));
        }
        Ok(match state.mcp_servers.get_mut(&record.id) {
            Some(existing) => {
                let created_at = existing.created_at;
                *existing = record.clone();
                existing.created_at = created_at;
                true
            }
            None => false,
        })
    }

    async fn delete_mcp_server(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().mcp_servers.remove(id).is_some())
    }

    async fn get_mcp_server(&self, id: &str) -> Result<Option<McpServerRecord>, StoreError> {
        Ok(self.lock().mcp_servers.get(id).cloned())
    }

    async fn list_mcp_servers(&self) -> Result<Vec<McpServerRecord>, StoreError> {
        let mut all: Vec<McpServerRecord> = self.lock().mcp_servers.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }
}
