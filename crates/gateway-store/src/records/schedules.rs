//! Schedules (workspace and admin): the record and [`ScheduleStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::StoreError;

/// A schedule: from AGENT.md (`source: workspace`) or created at runtime (`admin`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScheduleRecord {
    pub id: String,
    pub agent_id: String,
    pub name: String,
    pub cron_expr: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    pub enabled: bool,
    pub timezone: String,
    /// `workspace` or `admin`.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<DateTime<Utc>>,
    /// Fields edited at runtime (they win over AGENT.md).
    #[serde(skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub overrides: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

/// Schedules and the claim of each fire.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Creates or replaces a schedule (a deleted one comes back). `last_run_at` of an existing
    /// row is kept: it records fires.
    async fn put_schedule(&self, record: &ScheduleRecord) -> Result<(), StoreError>;

    /// Schedules not deleted, by id.
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError>;

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError>;

    /// Soft-deletes a schedule. Returns whether it existed.
    async fn delete_schedule(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Claims the fire of `id` at `fire_at`: succeeds for exactly one caller per fire time
    /// (the first to move `last_run_at` forward), on any instance. With `advisory`, a
    /// PostgreSQL advisory lock on the schedule is taken for the claim as well.
    async fn claim_schedule_fire(
        &self,
        id: &str,
        fire_at: DateTime<Utc>,
        next_run_at: Option<DateTime<Utc>>,
        advisory: bool,
    ) -> Result<bool, StoreError>;
}
