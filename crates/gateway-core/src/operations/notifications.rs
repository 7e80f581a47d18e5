//! The notification log: deliveries listed, and a delivery sent again.

use std::sync::Arc;

use gateway_store::{NotificationFilter, NotificationRecord};

use crate::error::{GatewayError, Record};
use crate::state::Shared;

/// Operations on the notification log (`gateway.notifications()`).
pub struct Notifications<'a> {
    shared: &'a Arc<Shared>,
}

impl<'a> Notifications<'a> {
    pub(crate) fn new(shared: &'a Arc<Shared>) -> Self {
        Self { shared }
    }

    /// A page of the log and the number of matching deliveries.
    pub async fn list(
        &self,
        filter: &NotificationFilter,
    ) -> Result<(Vec<NotificationRecord>, i64), GatewayError> {
        Ok(self.shared.store.list_notifications(filter).await?)
    }

    /// Sends a logged notification's original message again.
    pub async fn retry(&self, id: i64) -> Result<NotificationRecord, GatewayError> {
        let record = self
            .shared
            .store
            .get_notification(id)
            .await?
            .ok_or_else(|| GatewayError::not_found(Record::Notification, id.to_string()))?;
        if record.payload.is_null() {
            return Err(GatewayError::Conflict(format!(
                "Notification {id} was never sent ({}); fix the configuration instead",
                record.last_error.unwrap_or_default()
            )));
        }
        let config = self.shared.generation().config().notifications.clone();
        Ok(crate::notifications::deliver(&self.shared.store, &config, record).await)
    }
}
