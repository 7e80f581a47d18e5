//! Users' setups of personal agents: the record and [`UserConfigStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::StoreError;

/// A user's setup of a personal agent. `encrypted_secrets` holds values the gateway sealed
/// (sensitive fields); the store never sees them in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct UserConfigRecord {
    pub user_id: String,
    pub agent_id: String,
    pub instructions: Option<String>,
    pub config_values: Map<String, Value>,
    /// Field name → sealed value.
    pub encrypted_secrets: Map<String, Value>,
    pub setup_completed: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Users' configs of personal agents.
#[async_trait]
pub trait UserConfigStore: Send + Sync {
    /// Creates or replaces a user's config of an agent (`created_at` of an existing one
    /// stays).
    async fn put_user_config(&self, record: &UserConfigRecord) -> Result<(), StoreError>;

    async fn get_user_config(
        &self,
        user_id: &str,
        agent_id: &str,
    ) -> Result<Option<UserConfigRecord>, StoreError>;

    async fn delete_user_config(&self, user_id: &str, agent_id: &str) -> Result<bool, StoreError>;
}
