//! Users' configs of personal agents on SQL: [`UserConfigStore`] for [`SqlStore`].

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::error::StoreError;
use crate::records::{UserConfigRecord, UserConfigStore};

#[async_trait]
impl UserConfigStore for SqlStore {
    async fn put_user_config(&self, record: &UserConfigRecord) -> Result<(), StoreError> {
        on_write!(self, pool => {
            sqlx::query("INSERT INTO user_agent_configs (user_id, agent_id, instructions, config_values, encrypted_secrets, setup_completed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id, agent_id) DO UPDATE SET instructions = excluded.instructions, config_values = excluded.config_values, encrypted_secrets = excluded.encrypted_secrets, setup_completed = excluded.setup_completed, updated_at = excluded.updated_at")
                .bind(&record.user_id)
                .bind(&record.agent_id)
                .bind(&record.instructions)
                .bind(sqlx::types::Json(&record.config_values))
                .bind(sqlx::types::Json(&record.encrypted_secrets))
                .bind(record.setup_completed)
                .bind(record.created_at)
                .bind(record.updated_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn get_user_config(
        &self,
        user_id: &str,
        agent_id: &str,
    ) -> Result<Option<UserConfigRecord>, StoreError> {
        on_read!(self, pool => {
            let row = sqlx::query("SELECT user_id, agent_id, instructions, config_values, encrypted_secrets, setup_completed, created_at, updated_at FROM user_agent_configs WHERE user_id = $1 AND agent_id = $2")
                .bind(user_id)
                .bind(agent_id)
                .fetch_optional(pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let object = |value: Option<Value>| match value {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            Ok(Some(UserConfigRecord {
                user_id: row.try_get("user_id")?,
                agent_id: row.try_get("agent_id")?,
                instructions: row.try_get("instructions")?,
                config_values: object(row.try_get("config_values")?),
                encrypted_secrets: object(row.try_get("encrypted_secrets")?),
                setup_completed: row.try_get("setup_completed")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            }))
        })
    }

    async fn delete_user_config(&self, user_id: &str, agent_id: &str) -> Result<bool, StoreError> {
        on_write!(self, pool => {
            let changed = sqlx::query("DELETE FROM user_agent_configs WHERE user_id = $1 AND agent_id = $2")
                .bind(user_id)
                .bind(agent_id)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(changed > 0)
        })
    }
}
