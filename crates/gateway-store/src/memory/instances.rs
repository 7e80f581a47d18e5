//! Gateway instances in memory: [`InstanceStore`] for [`MemoryStore`] (there is only this
//! process).

use async_trait::async_trait;

use super::MemoryStore;
use crate::error::StoreError;
use crate::records::{InstanceRecord, InstanceStore};

#[async_trait]
impl InstanceStore for MemoryStore {
    async fn heartbeat(&self, _instance: &InstanceRecord) -> Result<(), StoreError> {
        Ok(())
    }

    async fn instances(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn remove_instance(&self, _instance_id: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
