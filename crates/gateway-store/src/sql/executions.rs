//! Executions and their steps on SQL: [`ExecutionStore`] for [`SqlStore`]. Their start and end
//! go through the group commit (`group_commit.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row;

use super::group_commit::HotWrite;
use super::{Backend, SqlStore};
use crate::error::StoreError;
use crate::records::{
    CancelResult, ExecutionFilter, ExecutionOutcome, ExecutionRecord, ExecutionStatus,
    ExecutionStore, StepRecord,
};

/// Decodes an execution row (the same column names on both backends).
macro_rules! execution_row {
    ($row:expr) => {{
        let row = $row;
        let status: String = row.try_get("status")?;
        ExecutionRecord {
            execution_id: row.try_get("id")?,
            agent_id: row.try_get("agent_id")?,
            status: ExecutionStatus::parse(&status).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown execution status '{status}'"))
            })?,
            message: row.try_get("message")?,
            input: match row.try_get::<Option<Value>, _>("input")? {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            },
            options: row.try_get("options")?,
            result: row.try_get("result")?,
            error: row.try_get("error")?,
            usage: row.try_get("usage")?,
            session_id: row.try_get("session_id")?,
            user_id: row.try_get("user_id")?,
            schedule_id: row.try_get("schedule_id")?,
            schedule_name: row.try_get("schedule_name")?,
            parent_execution_id: row.try_get("parent_execution_id")?,
            root_execution_id: row.try_get("root_execution_id")?,
            delegation_depth: row.try_get("delegation_depth")?,
            trace_id: row.try_get("trace_id")?,
            instance_id: row.try_get("instance_id")?,
            started_at: row.try_get("started_at")?,
            completed_at: row.try_get("completed_at")?,
            created_at: row.try_get("created_at")?,
        }
    }};
}

const EXECUTION_COLUMNS: &str = "id, agent_id, status, message, input, options, result, usage, error, session_id, user_id, schedule_id, schedule_name, parent_execution_id, root_execution_id, delegation_depth, instance_id, started_at, completed_at, created_at, trace_id";

/// The listing query for `filter` and the values of its filters, in placeholder order (the
/// limit and offset follow them). Only the filters given appear in the statement, so each
/// database can pick the index of the one that narrows the search; a catch-all
/// `($n IS NULL OR column = $n)` form would scan the table.
fn list_executions_sql(filter: &ExecutionFilter) -> (String, Vec<&str>) {
    // (condition with `{n}` for its placeholder, value) for each filter given.
    let given: Vec<(&str, &str)> = [
        ("agent_id = {n}", filter.agent_id.as_deref()),
        ("session_id = {n}", filter.session_id.as_deref()),
        (
            "(root_execution_id = {n} OR id = {n})",
            filter.root_execution_id.as_deref(),
        ),
        ("user_id = {n}", filter.user_id.as_deref()),
        ("status = {n}", filter.status.map(ExecutionStatus::as_str)),
    ]
    .into_iter()
    .filter_map(|(condition, value)| Some((condition, value?)))
    .collect();
    let conditions: Vec<String> = given
        .iter()
        .enumerate()
        .map(|(i, (condition, _))| condition.replace("{n}", &format!("${}", i + 1)))
        .collect();
    let values: Vec<&str> = given.iter().map(|(_, value)| *value).collect();
    let order = if filter.root_execution_id.is_some() {
        "delegation_depth ASC, created_at ASC"
    } else {
        "created_at DESC, id DESC"
    };
    let filters = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let next = values.len();
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions{filters} ORDER BY {order} LIMIT ${} OFFSET ${}",
        next + 1,
        next + 2
    );
    (sql, values)
}

#[async_trait]
impl ExecutionStore for SqlStore {
    async fn insert_execution(&self, record: ExecutionRecord) -> Result<(), StoreError> {
        self.hot_writes
            .submit(HotWrite::Start(Box::new(record)))
            .await
            .map(|_| ())
    }

    async fn mark_running(
        &self,
        execution_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = on_write!(self, pool => {
            sqlx::query("UPDATE executions SET status = 'running', started_at = $2 WHERE id = $1 AND status = 'queued'")
                .bind(execution_id)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    async fn finish_execution(
        &self,
        execution_id: &str,
        outcome: ExecutionOutcome,
        steps: Vec<StepRecord>,
    ) -> Result<ExecutionStatus, StoreError> {
        let fallback = outcome.status;
        let status = self
            .hot_writes
            .submit(HotWrite::Finish {
                execution_id: execution_id.to_string(),
                outcome: Box::new(outcome),
                steps,
            })
            .await?
            .unwrap_or_else(|| fallback.as_str().to_string());
        ExecutionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown status '{status}'")))
    }

    async fn get_execution(
        &self,
        execution_id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1");
        on_read!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(execution_id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(execution_row!(&row))),
                None => Ok(None),
            }
        })
    }

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let (sql, values) = list_executions_sql(filter);
        on_read!(self, pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for value in values {
                query = query.bind(value);
            }
            let rows = query
                .bind(filter.limit.max(0))
                .bind(filter.offset.max(0))
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(execution_row!(row));
            }
            Ok(out)
        })
    }

    async fn workflow(&self, execution_id: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        let Some(record) = self.get_execution(execution_id).await? else {
            return Ok(Vec::new());
        };
        let root = record
            .root_execution_id
            .clone()
            .unwrap_or(record.execution_id.clone());
        self.list_executions(&ExecutionFilter {
            root_execution_id: Some(root),
            limit: 10_000,
            ..ExecutionFilter::default()
        })
        .await
    }

    async fn execution_steps(&self, execution_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        on_read!(self, pool => {
            let rows = sqlx::query("SELECT step_type, sequence, data, duration_ms, created_at FROM execution_steps WHERE execution_id = $1 ORDER BY sequence ASC, id ASC")
                .bind(execution_id)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(StepRecord {
                    step_type: row.try_get("step_type")?,
                    sequence: row.try_get("sequence")?,
                    data: row.try_get::<Option<Value>, _>("data")?.unwrap_or(Value::Null),
                    duration_ms: row.try_get("duration_ms")?,
                    created_at: row.try_get("created_at")?,
                });
            }
            Ok(out)
        })
    }

    async fn cancel_execution(
        &self,
        execution_id: &str,
        at: DateTime<Utc>,
    ) -> Result<CancelResult, StoreError> {
        on_write!(self, pool => {
            let changed = sqlx::query("UPDATE executions SET status = 'cancelled', completed_at = $2, error = COALESCE(error, 'Cancelled by request') WHERE id = $1 AND status IN ('queued', 'running', 'waiting_approval')")
                .bind(execution_id)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected();
            if changed > 0 {
                return Ok(CancelResult::Cancelled);
            }
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM executions WHERE id = $1")
                .bind(execution_id)
                .fetch_optional(pool)
                .await?;
            Ok(match status.as_deref().and_then(ExecutionStatus::parse) {
                Some(status) => CancelResult::AlreadyFinished(status),
                None => CancelResult::NotFound,
            })
        })
    }

    async fn cancelled_among(&self, execution_ids: &[String]) -> Result<Vec<String>, StoreError> {
        if execution_ids.is_empty() {
            return Ok(Vec::new());
        }
        // A JSON array parameter keeps the statement the same for any number of ids.
        let ids = Value::Array(
            execution_ids
                .iter()
                .map(|id| Value::String(id.clone()))
                .collect(),
        );
        let ids = sqlx::types::Json(ids);
        match &self.backend {
            Backend::Sqlite { read, .. } => Ok(sqlx::query_scalar(
                "SELECT id FROM executions WHERE status = 'cancelled' AND id IN (SELECT value FROM json_each($1))",
            )
            .bind(ids)
            .fetch_all(read)
            .await?),
            Backend::Postgres(pool) => Ok(sqlx::query_scalar(
                "SELECT id FROM executions WHERE status = 'cancelled' AND id IN (SELECT jsonb_array_elements_text($1))",
            )
            .bind(ids)
            .fetch_all(pool)
            .await?),
        }
    }

    async fn fail_orphans(&self, alive: &[String], reason: &str) -> Result<u64, StoreError> {
        let alive = sqlx::types::Json(Value::Array(
            alive.iter().map(|id| Value::String(id.clone())).collect(),
        ));
        let now = Utc::now();
        let (executions, instances) = match &self.backend {
            Backend::Sqlite { .. } => (
                "UPDATE executions SET status = 'failed', error = $2, completed_at = $3 WHERE status IN ('queued', 'running', 'waiting_approval') AND (instance_id IS NULL OR instance_id NOT IN (SELECT value FROM json_each($1))) AND (options IS NULL OR json_extract(options, '$.queue') IS NOT 'durable')",
                "DELETE FROM gateway_instances WHERE id NOT IN (SELECT value FROM json_each($1))",
            ),
            Backend::Postgres(_) => (
                "UPDATE executions SET status = 'failed', error = $2, completed_at = $3 WHERE status IN ('queued', 'running', 'waiting_approval') AND (instance_id IS NULL OR instance_id NOT IN (SELECT jsonb_array_elements_text($1))) AND (options IS NULL OR options->>'queue' IS DISTINCT FROM 'durable')",
                "DELETE FROM gateway_instances WHERE id NOT IN (SELECT jsonb_array_elements_text($1))",
            ),
        };
        let failed = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let failed = sqlx::query(executions).bind(&alive).bind(reason).bind(now).execute(&mut *tx).await?.rows_affected();
            sqlx::query(instances).bind(&alive).execute(&mut *tx).await?;
            // Approvals of executions that ended can no longer be decided. A correlated EXISTS
            // looks up each pending approval's execution by its key; `IN (SELECT ...)` made
            // SQLite scan every execution inside the writer's transaction once a minute
            // (1.5 s on a 1-million-row table, every write waiting: bench/soak.sh).
            sqlx::query("UPDATE tool_approvals SET status = 'cancelled', decided_at = $1 WHERE status = 'pending' AND EXISTS (SELECT 1 FROM executions e WHERE e.id = tool_approvals.execution_id AND e.status NOT IN ('queued', 'running', 'waiting_approval'))")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            failed
        });
        Ok(failed)
    }

    async fn claim_queued_execution(
        &self,
        execution_id: &str,
        instance: &str,
        alive: &[String],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let alive = sqlx::types::Json(Value::Array(
            alive.iter().map(|id| Value::String(id.clone())).collect(),
        ));
        let sql = match &self.backend {
            Backend::Sqlite { .. } => {
                "UPDATE executions SET status = 'running', instance_id = $2, started_at = COALESCE(started_at, $4) WHERE id = $1 AND (status = 'queued' OR (status = 'running' AND (instance_id IS NULL OR instance_id NOT IN (SELECT value FROM json_each($3)))))"
            }
            Backend::Postgres(_) => {
                "UPDATE executions SET status = 'running', instance_id = $2, started_at = COALESCE(started_at, $4) WHERE id = $1 AND (status = 'queued' OR (status = 'running' AND (instance_id IS NULL OR instance_id NOT IN (SELECT jsonb_array_elements_text($3)))))"
            }
        };
        on_write!(self, pool => {
            let changed = sqlx::query(sql)
                .bind(execution_id)
                .bind(instance)
                .bind(&alive)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(changed > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How SQLite would run the listing query for `filter`: the details of its plan.
    async fn listing_plan(store: &SqlStore, filter: &ExecutionFilter) -> String {
        let Backend::Sqlite { read, .. } = &store.backend else {
            unreachable!("a SQLite store")
        };
        let (sql, values) = list_executions_sql(filter);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for value in values {
            query = query.bind(value);
        }
        let Ok(rows) = query.bind(50_i64).bind(0_i64).fetch_all(read).await else {
            unreachable!("the plan of {sql}")
        };
        rows.iter()
            .filter_map(|row| row.try_get::<String, _>(3).ok())
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[tokio::test]
    async fn listing_by_a_filter_searches_that_filters_index() {
        let Ok(dir) = tempfile::tempdir() else {
            unreachable!("a temporary directory")
        };
        let Ok(store) = SqlStore::connect("sqlite:///plan.db", dir.path()).await else {
            unreachable!("a SQLite store")
        };
        let Ok(_) = crate::migrate::upgrade(&store, None).await else {
            unreachable!("migrated")
        };
        let by = |set: fn(&mut ExecutionFilter)| {
            let mut filter = ExecutionFilter {
                limit: 50,
                ..ExecutionFilter::default()
            };
            set(&mut filter);
            filter
        };
        for (filter, index) in [
            (
                by(|f| f.session_id = Some("s".into())),
                "ix_executions_session_id",
            ),
            (
                by(|f| f.agent_id = Some("a".into())),
                "ix_executions_agent_id",
            ),
            (
                by(|f| f.user_id = Some("u".into())),
                "ix_executions_user_id",
            ),
            (
                by(|f| f.root_execution_id = Some("r".into())),
                "ix_executions_root_execution_id",
            ),
        ] {
            let plan = listing_plan(&store, &filter).await;
            assert!(plan.contains(index), "{filter:?}: {plan}");
        }
        // With no filter, the newest come straight off the creation-time index.
        let plan = listing_plan(&store, &by(|_| {})).await;
        assert!(plan.contains("ix_executions_created_at"), "{plan}");
    }
}
