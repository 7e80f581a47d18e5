//! The notification log in memory: [`NotificationStore`] for [`MemoryStore`], bounded like
//! the executions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MAX_EXECUTIONS, MemoryStore};
use crate::error::StoreError;
use crate::records::{NotificationFilter, NotificationRecord, NotificationStore};

#[async_trait]
impl NotificationStore for MemoryStore {
    async fn insert_notification(&self, record: &NotificationRecord) -> Result<i64, StoreError> {
        let mut state = self.lock();
        let id = state.notifications.last().map_or(1, |n| n.id + 1);
        let mut record = record.clone();
        record.id = id;
        state.notifications.push(record);
        if state.notifications.len() > MAX_EXECUTIONS {
            state.notifications.remove(0);
        }
        Ok(id)
    }

    async fn update_notification(
        &self,
        id: i64,
        status: &str,
        attempts: i64,
        last_error: Option<&str>,
        delivered_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(record) = state.notifications.iter_mut().find(|n| n.id == id) {
            record.status = status.to_string();
            record.attempts = attempts;
            record.last_error = last_error.map(str::to_string);
            record.delivered_at = delivered_at;
        }
        Ok(())
    }

    async fn get_notification(&self, id: i64) -> Result<Option<NotificationRecord>, StoreError> {
        Ok(self
            .lock()
            .notifications
            .iter()
            .find(|n| n.id == id)
            .cloned())
    }

    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<(Vec<NotificationRecord>, i64), StoreError> {
        let state = self.lock();
        let matching: Vec<&NotificationRecord> = state
            .notifications
            .iter()
            .rev()
            .filter(|n| filter.status.as_ref().is_none_or(|s| &n.status == s))
            .filter(|n| filter.agent_id.as_ref().is_none_or(|a| &n.agent_id == a))
            .filter(|n| filter.channel.as_ref().is_none_or(|c| &n.channel == c))
            .filter(|n| {
                filter
                    .execution_id
                    .as_ref()
                    .is_none_or(|e| &n.execution_id == e)
            })
            .filter(|n| {
                filter.owner.as_ref().is_none_or(|owner| {
                    state
                        .executions
                        .get(n.execution_id.as_str())
                        .is_some_and(|e| e.fields.user_id.as_ref() == Some(owner))
                })
            })
            .collect();
        let total = matching.len() as i64;
        let page = matching
            .into_iter()
            .skip(filter.offset.max(0) as usize)
            .take(filter.limit.max(0) as usize)
            .cloned()
            .collect();
        Ok((page, total))
    }
}
