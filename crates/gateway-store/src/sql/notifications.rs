//! The notification log on SQL: [`NotificationStore`] for [`SqlStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::error::StoreError;
use crate::records::{NotificationFilter, NotificationRecord, NotificationStore};

macro_rules! notification_row {
    ($row:expr) => {{
        let row = $row;
        NotificationRecord {
            id: row.try_get("id")?,
            execution_id: row.try_get("execution_id")?,
            agent_id: row.try_get("agent_id")?,
            event_type: row.try_get("event_type")?,
            channel: row.try_get("channel")?,
            target: row.try_get("target")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
            payload: row
                .try_get::<Option<Value>, _>("payload")?
                .unwrap_or(Value::Null),
            created_at: row.try_get("created_at")?,
            delivered_at: row.try_get("delivered_at")?,
        }
    }};
}

const NOTIFICATION_COLUMNS: &str = "id, execution_id, agent_id, event_type, channel, target, status, attempts, last_error, payload, created_at, delivered_at";

#[async_trait]
impl NotificationStore for SqlStore {
    async fn insert_notification(&self, record: &NotificationRecord) -> Result<i64, StoreError> {
        on_write!(self, pool => {
            let id: i64 = sqlx::query_scalar("INSERT INTO notification_log (execution_id, agent_id, event_type, channel, target, status, attempts, last_error, payload, created_at, delivered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id")
                .bind(&record.execution_id)
                .bind(&record.agent_id)
                .bind(&record.event_type)
                .bind(&record.channel)
                .bind(&record.target)
                .bind(&record.status)
                .bind(record.attempts)
                .bind(&record.last_error)
                .bind(sqlx::types::Json(&record.payload))
                .bind(record.created_at)
                .bind(record.delivered_at)
                .fetch_one(pool)
                .await?;
            Ok(id)
        })
    }

    async fn update_notification(
        &self,
        id: i64,
        status: &str,
        attempts: i64,
        last_error: Option<&str>,
        delivered_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        on_write!(self, pool => {
            sqlx::query("UPDATE notification_log SET status = $2, attempts = $3, last_error = $4, delivered_at = $5 WHERE id = $1")
                .bind(id)
                .bind(status)
                .bind(attempts)
                .bind(last_error)
                .bind(delivered_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn get_notification(&self, id: i64) -> Result<Option<NotificationRecord>, StoreError> {
        let sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notification_log WHERE id = $1");
        on_read!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(notification_row!(&row))),
                None => Ok(None),
            }
        })
    }

    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<(Vec<NotificationRecord>, i64), StoreError> {
        let condition = "($1 IS NULL OR status = $1) AND ($2 IS NULL OR agent_id = $2) AND ($3 IS NULL OR channel = $3) AND ($4 IS NULL OR execution_id = $4) AND ($5 IS NULL OR execution_id IN (SELECT id FROM executions WHERE user_id = $5))";
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notification_log WHERE {condition} ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7"
        );
        let count = format!("SELECT COUNT(*) FROM notification_log WHERE {condition}");
        on_read!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&filter.status)
                .bind(&filter.agent_id)
                .bind(&filter.channel)
                .bind(&filter.execution_id)
                .bind(&filter.owner)
                .bind(filter.limit.max(0))
                .bind(filter.offset.max(0))
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
                .bind(&filter.status)
                .bind(&filter.agent_id)
                .bind(&filter.channel)
                .bind(&filter.execution_id)
                .bind(&filter.owner)
                .fetch_one(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(notification_row!(row));
            }
            Ok((out, total))
        })
    }
}
