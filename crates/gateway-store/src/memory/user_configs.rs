//! Users' configs of personal agents in memory: [`UserConfigStore`] for [`MemoryStore`].

use async_trait::async_trait;

use super::MemoryStore;
use crate::error::StoreError;
use crate::records::{UserConfigRecord, UserConfigStore};

#[async_trait]
impl UserConfigStore for MemoryStore {
    async fn put_user_config(&self, record: &UserConfigRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        let key = (record.user_id.clone(), record.agent_id.clone());
        let created_at = state
            .user_configs
            .get(&key)
            .map_or(record.created_at, |r| r.created_at);
        let mut record = record.clone();
        record.created_at = created_at;
        state.user_configs.insert(key, record);
        Ok(())
    }

    async fn get_user_config(
        &self,
        user_id: &str,
        agent_id: &str,
    ) -> Result<Option<UserConfigRecord>, StoreError> {
        Ok(self
            .lock()
            .user_configs
            .get(&(user_id.to_string(), agent_id.to_string()))
            .cloned())
    }

    async fn delete_user_config(&self, user_id: &str, agent_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .user_configs
            .remove(&(user_id.to_string(), agent_id.to_string()))
            .is_some())
    }
}
