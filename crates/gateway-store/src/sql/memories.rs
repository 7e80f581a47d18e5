//! Agents' memories on SQL: [`AgentMemoryStore`] for [`SqlStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::error::StoreError;
use crate::records::{
    AgentMemoryStore, MemoryFilter, MemoryRecord, MemoryScope, MemorySource, MemoryType,
};

const COLUMNS: &str = "id, agent_id, user_id, content, memory_type, source, importance, pinned, access_count, last_accessed_at, created_at, updated_at, embedding";

/// `scope`'s condition on `user_id` as (kind, user) parameters.
fn scope_params(scope: &MemoryScope) -> (&'static str, Option<&str>) {
    match scope {
        MemoryScope::User(user) => ("user", Some(user.as_str())),
        MemoryScope::Shared => ("shared", None),
        MemoryScope::All => ("all", None),
    }
}

/// `text` for a `LIKE` pattern with `\` as escape: its wildcards matched literally.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn embedding_value(embedding: &Option<Vec<f32>>) -> Option<sqlx::types::Json<&Vec<f32>>> {
    embedding.as_ref().map(sqlx::types::Json)
}

/// A memory from a row of either backend (a macro: the two backends' rows are different
/// types).
macro_rules! memory_row {
    ($row:expr) => {{
        let row = $row;
        let memory_type: String = row.try_get("memory_type")?;
        let source: String = row.try_get("source")?;
        let embedding: Option<Value> = row.try_get("embedding")?;
        MemoryRecord {
            id: row.try_get("id")?,
            agent_id: row.try_get("agent_id")?,
            user_id: row.try_get("user_id")?,
            content: row.try_get("content")?,
            memory_type: MemoryType::parse(&memory_type).unwrap_or_default(),
            source: MemorySource::parse(&source).unwrap_or_default(),
            importance: row.try_get("importance")?,
            pinned: row.try_get("pinned")?,
            access_count: row.try_get("access_count")?,
            last_accessed_at: row.try_get("last_accessed_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            embedding: embedding.and_then(|v| serde_json::from_value(v).ok()),
        }
    }};
}

/// The upsert of one memory. An id taken by another agent's memory is not overwritten
/// (the `WHERE` leaves the row alone and no row is affected).
const SAVE: &str = "INSERT INTO memories (id, agent_id, user_id, content, memory_type, source, importance, pinned, access_count, last_accessed_at, created_at, updated_at, embedding) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, content = excluded.content, memory_type = excluded.memory_type, source = excluded.source, importance = excluded.importance, pinned = excluded.pinned, access_count = excluded.access_count, last_accessed_at = excluded.last_accessed_at, updated_at = excluded.updated_at, embedding = excluded.embedding WHERE memories.agent_id = excluded.agent_id";

macro_rules! bind_memory {
    ($query:expr, $record:expr) => {
        $query
            .bind(&$record.id)
            .bind(&$record.agent_id)
            .bind(&$record.user_id)
            .bind(&$record.content)
            .bind($record.memory_type.as_str())
            .bind($record.source.as_str())
            .bind($record.importance)
            .bind($record.pinned)
            .bind($record.access_count)
            .bind($record.last_accessed_at)
            .bind($record.created_at)
            .bind($record.updated_at)
            .bind(embedding_value(&$record.embedding))
    };
}

fn taken(record: &MemoryRecord) -> StoreError {
    StoreError::Clash(format!("memory id '{}' of another agent", record.id))
}

#[async_trait]
impl AgentMemoryStore for SqlStore {
    async fn save_memory(&self, record: &MemoryRecord) -> Result<(), StoreError> {
        on_write!(self, pool => {
            let changed = bind_memory!(sqlx::query(SAVE), record)
                .execute(pool)
                .await?
                .rows_affected();
            if changed == 0 {
                return Err(taken(record));
            }
            Ok(())
        })
    }

    async fn get_memory(
        &self,
        agent_id: &str,
        id: &str,
    ) -> Result<Option<MemoryRecord>, StoreError> {
        on_read!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM memories WHERE id = $1 AND agent_id = $2"
            )))
            .bind(id)
            .bind(agent_id)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(memory_row!(&row)))
        })
    }

    async fn list_memories(
        &self,
        filter: &MemoryFilter,
    ) -> Result<(Vec<MemoryRecord>, i64), StoreError> {
        let condition = "agent_id = $1 AND ($2 = 'all' OR ($2 = 'shared' AND user_id IS NULL) OR ($2 = 'user' AND user_id = $3)) AND ($4 IS NULL OR memory_type = $4) AND ($5 IS NULL OR source = $5) AND ($6 IS NULL OR LOWER(content) LIKE $6 ESCAPE '\\')";
        let sql = format!(
            "SELECT {COLUMNS} FROM memories WHERE {condition} ORDER BY updated_at DESC, id LIMIT $7 OFFSET $8"
        );
        let count = format!("SELECT COUNT(*) FROM memories WHERE {condition}");
        let (kind, user) = scope_params(&filter.scope);
        let memory_type = filter.memory_type.map(MemoryType::as_str);
        let source = filter.source.map(MemorySource::as_str);
        let pattern = filter.contains.as_deref().map(like_pattern);
        on_read!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&filter.agent_id)
                .bind(kind)
                .bind(user)
                .bind(memory_type)
                .bind(source)
                .bind(&pattern)
                .bind(filter.limit.max(0))
                .bind(filter.offset.max(0))
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
                .bind(&filter.agent_id)
                .bind(kind)
                .bind(user)
                .bind(memory_type)
                .bind(source)
                .bind(&pattern)
                .fetch_one(pool)
                .await?;
            let mut records = Vec::with_capacity(rows.len());
            for row in &rows {
                records.push(memory_row!(row));
            }
            Ok((records, total))
        })
    }

    async fn update_memory(&self, record: &MemoryRecord) -> Result<bool, StoreError> {
        on_write!(self, pool => {
            let changed = sqlx::query("UPDATE memories SET content = $1, memory_type = $2, importance = $3, pinned = $4, updated_at = $5, embedding = $6 WHERE id = $7 AND agent_id = $8")
                .bind(&record.content)
                .bind(record.memory_type.as_str())
                .bind(record.importance)
                .bind(record.pinned)
                .bind(record.updated_at)
                .bind(embedding_value(&record.embedding))
                .bind(&record.id)
                .bind(&record.agent_id)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(changed > 0)
        })
    }

    async fn delete_memory(&self, agent_id: &str, id: &str) -> Result<bool, StoreError> {
        on_write!(self, pool => {
            let changed = sqlx::query("DELETE FROM memories WHERE id = $1 AND agent_id = $2")
                .bind(id)
                .bind(agent_id)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(changed > 0)
        })
    }

    async fn touch_memories(
        &self,
        agent_id: &str,
        ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in ids {
                sqlx::query("UPDATE memories SET access_count = access_count + 1, last_accessed_at = $1 WHERE id = $2 AND agent_id = $3")
                    .bind(at)
                    .bind(id)
                    .bind(agent_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn replace_memories(
        &self,
        agent_id: &str,
        remove: &[String],
        add: &[MemoryRecord],
    ) -> Result<(), StoreError> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in remove {
                let changed = sqlx::query("DELETE FROM memories WHERE id = $1 AND agent_id = $2")
                    .bind(id)
                    .bind(agent_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if changed == 0 {
                    // Dropping `tx` rolls back what was deleted so far.
                    return Err(StoreError::Clash(format!(
                        "memory '{id}' is gone; nothing was replaced"
                    )));
                }
            }
            for record in add {
                let changed = bind_memory!(sqlx::query(SAVE), record)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if changed == 0 {
                    return Err(taken(record));
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
