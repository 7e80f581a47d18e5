//! Schedules on SQL: [`ScheduleStore`] for [`SqlStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::error::StoreError;
use crate::records::{ScheduleRecord, ScheduleStore};

macro_rules! schedule_row {
    ($row:expr) => {{
        let row = $row;
        let object = |value: Option<Value>| match value {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        ScheduleRecord {
            id: row.try_get("id")?,
            agent_id: row.try_get("agent_id")?,
            name: row.try_get("name")?,
            cron_expr: row.try_get("cron_expr")?,
            message: row.try_get("message")?,
            instructions: row.try_get("instructions")?,
            input: object(row.try_get("input")?),
            enabled: row.try_get("enabled")?,
            timezone: row.try_get("timezone")?,
            source: row.try_get("source")?,
            last_run_at: row.try_get("last_run_at")?,
            next_run_at: row.try_get("next_run_at")?,
            overrides: object(row.try_get("overrides")?),
            created_at: row.try_get("created_at")?,
        }
    }};
}

const SCHEDULE_COLUMNS: &str = "id, agent_id, name, cron_expr, message, instructions, input, enabled, timezone, source, last_run_at, next_run_at, overrides, created_at";

/// The advisory-lock key of a name: the first 15 hex digits of its SHA-256.
fn advisory_key(name: &str) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex = hex::encode(&digest[..8]);
    i64::from_str_radix(&hex[..15], 16).unwrap_or_default()
}

#[async_trait]
impl ScheduleStore for SqlStore {
    async fn put_schedule(&self, record: &ScheduleRecord) -> Result<(), StoreError> {
        on_write!(self, pool => {
            sqlx::query("INSERT INTO schedules (id, agent_id, name, cron_expr, message, instructions, input, enabled, timezone, source, last_run_at, next_run_at, overrides, created_at, deleted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL) ON CONFLICT (id) DO UPDATE SET agent_id = excluded.agent_id, name = excluded.name, cron_expr = excluded.cron_expr, message = excluded.message, instructions = excluded.instructions, input = excluded.input, enabled = excluded.enabled, timezone = excluded.timezone, source = excluded.source, next_run_at = excluded.next_run_at, overrides = excluded.overrides, deleted_at = NULL")
                .bind(&record.id)
                .bind(&record.agent_id)
                .bind(&record.name)
                .bind(&record.cron_expr)
                .bind(&record.message)
                .bind(&record.instructions)
                .bind(sqlx::types::Json(&record.input))
                .bind(record.enabled)
                .bind(&record.timezone)
                .bind(&record.source)
                .bind(record.last_run_at)
                .bind(record.next_run_at)
                .bind(sqlx::types::Json(&record.overrides))
                .bind(record.created_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE deleted_at IS NULL ORDER BY id"
        );
        on_read!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(schedule_row!(row));
            }
            Ok(out)
        })
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1 AND deleted_at IS NULL"
        );
        on_read!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(schedule_row!(&row))),
                None => Ok(None),
            }
        })
    }

    async fn delete_schedule(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        on_write!(self, pool => {
            let changed = sqlx::query("UPDATE schedules SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(changed > 0)
        })
    }

    async fn claim_schedule_fire(
        &self,
        id: &str,
        fire_at: DateTime<Utc>,
        next_run_at: Option<DateTime<Utc>>,
        advisory: bool,
    ) -> Result<bool, StoreError> {
        let claim = "UPDATE schedules SET last_run_at = $2, next_run_at = $3 WHERE id = $1 AND deleted_at IS NULL AND (last_run_at IS NULL OR last_run_at < $2)";
        match &self.backend {
            Backend::Sqlite { write, .. } => {
                let changed = sqlx::query(claim)
                    .bind(id)
                    .bind(fire_at)
                    .bind(next_run_at)
                    .execute(write)
                    .await?
                    .rows_affected();
                Ok(changed > 0)
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                if advisory {
                    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                        .bind(advisory_key(&format!("schedule:{id}")))
                        .fetch_one(&mut *tx)
                        .await?;
                    if !locked {
                        return Ok(false);
                    }
                }
                let changed = sqlx::query(claim)
                    .bind(id)
                    .bind(fire_at)
                    .bind(next_run_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(changed > 0)
            }
        }
    }
}
