//! The notification log: the records and [`NotificationStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::StoreError;

/// One notification: a message to one target (Slack channel or webhook) about an execution,
/// with every delivery attempt counted. `payload` is what was sent, so a retry replays it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NotificationRecord {
    pub id: i64,
    pub execution_id: String,
    pub agent_id: String,
    /// `execution.completed`, `execution.failed` or `execution.timeout`.
    pub event_type: String,
    /// `slack` or `webhook`.
    pub channel: String,
    /// The Slack channel, or the webhook URL without its query.
    pub target: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Which notifications to list (newest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotificationFilter {
    pub status: Option<String>,
    pub agent_id: Option<String>,
    pub channel: Option<String>,
    pub execution_id: Option<String>,
    /// Only deliveries about executions this user owns.
    pub owner: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// The log of notifications sent about executions.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Records a notification to send; returns its id.
    async fn insert_notification(&self, record: &NotificationRecord) -> Result<i64, StoreError>;

    /// Records an attempt's outcome.
    async fn update_notification(
        &self,
        id: i64,
        status: &str,
        attempts: i64,
        last_error: Option<&str>,
        delivered_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;

    async fn get_notification(&self, id: i64) -> Result<Option<NotificationRecord>, StoreError>;

    /// A page of notifications matching `filter`, and how many match in all.
    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<(Vec<NotificationRecord>, i64), StoreError>;
}
