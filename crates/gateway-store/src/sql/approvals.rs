//! Tool-call approvals on SQL: [`ApprovalStore`] for [`SqlStore`].

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::error::StoreError;
use crate::records::{ApprovalDecision, ApprovalRecord, ApprovalStatus, ApprovalStore};

macro_rules! approval_row {
    ($row:expr) => {{
        let row = $row;
        let status: String = row.try_get("status")?;
        ApprovalRecord {
            approval_id: row.try_get("id")?,
            execution_id: row.try_get("execution_id")?,
            tool_name: row.try_get("tool_name")?,
            call_id: row.try_get("call_id")?,
            arguments: row
                .try_get::<Option<Value>, _>("arguments")?
                .unwrap_or(Value::Null),
            status: ApprovalStatus::parse(&status).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown approval status '{status}'"))
            })?,
            reason: row.try_get("reason")?,
            decided_by: row.try_get("decided_by")?,
            created_at: row.try_get("created_at")?,
            decided_at: row.try_get("decided_at")?,
        }
    }};
}

const APPROVAL_COLUMNS: &str = "id, execution_id, tool_name, call_id, arguments, status, reason, decided_by, created_at, decided_at";

#[async_trait]
impl ApprovalStore for SqlStore {
    async fn request_approvals(&self, approvals: &[ApprovalRecord]) -> Result<(), StoreError> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for approval in approvals {
                sqlx::query("INSERT INTO tool_approvals (id, execution_id, tool_name, call_id, arguments, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(&approval.approval_id)
                    .bind(&approval.execution_id)
                    .bind(&approval.tool_name)
                    .bind(&approval.call_id)
                    .bind(sqlx::types::Json(&approval.arguments))
                    .bind(approval.status.as_str())
                    .bind(approval.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut executions: Vec<&str> = approvals.iter().map(|a| a.execution_id.as_str()).collect();
            executions.dedup();
            for execution_id in executions {
                sqlx::query("UPDATE executions SET status = 'waiting_approval' WHERE id = $1 AND status = 'running'")
                    .bind(execution_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn decide_approvals(
        &self,
        execution_id: &str,
        approval_id: Option<&str>,
        decision: &ApprovalDecision,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let sql = format!(
            "UPDATE tool_approvals SET status = $3, reason = $4, decided_by = $5, decided_at = $6 WHERE execution_id = $1 AND ($2 IS NULL OR id = $2) AND status = 'pending' RETURNING {APPROVAL_COLUMNS}"
        );
        on_write!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(execution_id)
                .bind(approval_id)
                .bind(decision.status.as_str())
                .bind(&decision.reason)
                .bind(&decision.decided_by)
                .bind(decision.at)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(approval_row!(row));
            }
            out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.approval_id.cmp(&b.approval_id)));
            Ok(out)
        })
    }

    async fn approvals(&self, execution_id: &str) -> Result<Vec<ApprovalRecord>, StoreError> {
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM tool_approvals WHERE execution_id = $1 ORDER BY created_at ASC, id ASC"
        );
        on_read!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(execution_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(approval_row!(row));
            }
            Ok(out)
        })
    }

    async fn resume_execution(&self, execution_id: &str) -> Result<bool, StoreError> {
        on_write!(self, pool => {
            let changed = sqlx::query("UPDATE executions SET status = 'running' WHERE id = $1 AND status = 'waiting_approval'")
                .bind(execution_id)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(changed > 0)
        })
    }
}
