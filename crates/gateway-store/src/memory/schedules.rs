//! Schedules in memory: [`ScheduleStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::error::StoreError;
use crate::records::{ScheduleRecord, ScheduleStore};

#[async_trait]
impl ScheduleStore for MemoryStore {
    async fn put_schedule(&self, record: &ScheduleRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        let mut record = record.clone();
        if let Some(existing) = state.schedules.get(&record.id) {
            record.last_run_at = existing.last_run_at.or(record.last_run_at);
        }
        state.schedules.insert(record.id.clone(), record);
        Ok(())
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        Ok(self.lock().schedules.values().cloned().collect())
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        Ok(self.lock().schedules.get(id).cloned())
    }

    async fn delete_schedule(&self, id: &str, _at: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.lock().schedules.remove(id).is_some())
    }

    async fn claim_schedule_fire(
        &self,
        id: &str,
        fire_at: DateTime<Utc>,
        next_run_at: Option<DateTime<Utc>>,
        _advisory: bool,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(record) = state.schedules.get_mut(id) else {
            return Ok(false);
        };
        if record.last_run_at.is_some_and(|last| last >= fire_at) {
            return Ok(false);
        }
        record.last_run_at = Some(fire_at);
        record.next_run_at = next_run_at;
        Ok(true)
    }
}
