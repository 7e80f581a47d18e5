//! The notification log: deliveries listed, and a delivery sent again. A delivery carries an
//! execution's message and answer, so it is seen by whoever may see that execution.

use std::sync::Arc;

use gateway_store::{NotificationFilter, NotificationRecord};

use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::state::GatewayState;

/// Operations on the notification log (`gateway.notifications()`).
pub struct Notifications<'a> {
    state: &'a Arc<GatewayState>,
}

impl<'a> Notifications<'a> {
    pub(crate) fn new(state: &'a Arc<GatewayState>) -> Self {
        Self { state }
    }

    /// A page of the deliveries about executions the actor may see, and how many match.
    pub async fn list(
        &self,
        actor: &Actor,
        mut filter: NotificationFilter,
    ) -> Result<(Vec<NotificationRecord>, i64), GatewayError> {
        filter.owner = actor.owner_filter().map(String::from);
        Ok(self.state.store.list_notifications(&filter).await?)
    }

    /// Sends a logged notification's original message again.
    pub async fn retry(&self, actor: &Actor, id: i64) -> Result<NotificationRecord, GatewayError> {
        let record = self
            .state
            .store
            .get_notification(id)
            .await?
            .ok_or_else(|| GatewayError::not_found(Record::Notification, id.to_string()))?;
        let owner = self
            .state
            .store
            .get_execution(&record.execution_id)
            .await?
            .and_then(|execution| execution.user_id);
        actor.check_access(Record::Notification, &id.to_string(), owner.as_deref())?;
        if record.payload.is_null() {
            return Err(GatewayError::Conflict(format!(
                "Notification {id} was never sent ({}); fix the configuration instead",
                record.last_error.unwrap_or_default()
            )));
        }
        let generation = self.state.generation();
        Ok(crate::notifications::deliver(
            &self.state.store,
            &generation.config().notifications,
            &generation.outbound,
            &self.state.metrics,
            record,
        )
        .await)
    }
}
