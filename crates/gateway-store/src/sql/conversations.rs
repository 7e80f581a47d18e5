//! Conversations and their messages on SQL: [`ConversationStore`] for [`SqlStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::error::StoreError;
use crate::records::{
    ConversationFilter, ConversationRecord, ConversationStore, ConversationTurn, MessageRecord,
    new_message_id,
};

macro_rules! conversation_row {
    ($row:expr) => {{
        let row = $row;
        ConversationRecord {
            conversation_id: row.try_get("conversation_id")?,
            agent_id: row.try_get("agent_id")?,
            user_id: row.try_get("user_id")?,
            title: row.try_get("title")?,
            summary: row.try_get("summary")?,
            message_count: row.try_get("message_count")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            ended_at: row.try_get("ended_at")?,
        }
    }};
}

const CONVERSATION_COLUMNS: &str = "conversation_id, agent_id, user_id, title, summary, message_count, created_at, updated_at, ended_at";

/// A value a conversation listing filters on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FilterValue<'a> {
    Text(&'a str),
    Time(DateTime<Utc>),
}

/// The listing query for `filter` and the values of its filters, in placeholder order (the
/// limit and offset follow them). As for executions (`list_executions_sql`), only the filters
/// given appear in the statement, so each database can use the index of the one that narrows
/// the search instead of scanning the table.
fn list_conversations_sql(filter: &ConversationFilter) -> (String, Vec<FilterValue<'_>>) {
    // (condition before its placeholder, value) for each filter given.
    let given: Vec<(&str, FilterValue<'_>)> = [
        (
            "user_id = ",
            filter.user_id.as_deref().map(FilterValue::Text),
        ),
        (
            "agent_id = ",
            filter.agent_id.as_deref().map(FilterValue::Text),
        ),
        (
            "updated_at >= ",
            filter.updated_since.map(FilterValue::Time),
        ),
    ]
    .into_iter()
    .filter_map(|(condition, value)| Some((condition, value?)))
    .collect();
    let mut conditions: Vec<String> = given
        .iter()
        .enumerate()
        .map(|(i, (condition, _))| format!("{condition}${}", i + 1))
        .collect();
    if filter.open_only {
        conditions.push("ended_at IS NULL".to_string());
    }
    let values: Vec<FilterValue<'_>> = given.into_iter().map(|(_, value)| value).collect();
    let filters = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let next = values.len();
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations{filters} ORDER BY updated_at DESC, conversation_id DESC LIMIT ${} OFFSET ${}",
        next + 1,
        next + 2
    );
    (sql, values)
}

#[async_trait]
impl ConversationStore for SqlStore {
    async fn append_turn(&self, turn: &ConversationTurn) -> Result<(), StoreError> {
        let count = turn.messages.len() as i64;
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO conversations (conversation_id, agent_id, user_id, title, message_count, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (conversation_id) DO UPDATE SET message_count = conversations.message_count + excluded.message_count, updated_at = excluded.updated_at, title = COALESCE(conversations.title, excluded.title)",
            )
            .bind(&turn.conversation_id)
            .bind(&turn.agent_id)
            .bind(&turn.user_id)
            .bind(&turn.title)
            .bind(count)
            .bind(turn.at)
            .execute(&mut *tx)
            .await?;
            let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM conversation_messages WHERE conversation_id = $1")
                .bind(&turn.conversation_id)
                .fetch_one(&mut *tx)
                .await?;
            for (i, (role, content)) in turn.messages.iter().enumerate() {
                sqlx::query("INSERT INTO conversation_messages (message_id, conversation_id, seq, role, content, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(new_message_id())
                    .bind(&turn.conversation_id)
                    .bind(next + 1 + i as i64)
                    .bind(role)
                    .bind(content)
                    .bind(turn.at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn get_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        let sql =
            format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = $1");
        on_read!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(conversation_id)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => Ok(Some(conversation_row!(&row))),
                None => Ok(None),
            }
        })
    }

    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let (sql, values) = list_conversations_sql(filter);
        on_read!(self, pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for value in values {
                query = match value {
                    FilterValue::Text(text) => query.bind(text),
                    FilterValue::Time(at) => query.bind(at),
                };
            }
            let rows = query
                .bind(filter.limit.max(0))
                .bind(filter.offset.max(0))
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(conversation_row!(row));
            }
            Ok(out)
        })
    }

    async fn conversation_messages(
        &self,
        conversation_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        on_read!(self, pool => {
            let rows = sqlx::query("SELECT message_id, role, content, created_at FROM conversation_messages WHERE conversation_id = $1 ORDER BY seq ASC LIMIT $2 OFFSET $3")
                .bind(conversation_id)
                .bind(limit.max(0))
                .bind(offset.max(0))
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(MessageRecord {
                    message_id: row.try_get("message_id")?,
                    role: row.try_get("role")?,
                    content: row.try_get("content")?,
                    created_at: row.try_get("created_at")?,
                });
            }
            Ok(out)
        })
    }

    async fn delete_conversation(&self, conversation_id: &str) -> Result<bool, StoreError> {
        let deleted = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM conversation_messages WHERE conversation_id = $1").bind(conversation_id).execute(&mut *tx).await?;
            let n = sqlx::query("DELETE FROM conversations WHERE conversation_id = $1").bind(conversation_id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n
        });
        Ok(deleted > 0)
    }

    async fn end_conversation(
        &self,
        conversation_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = on_write!(self, pool => {
            sqlx::query("UPDATE conversations SET ended_at = COALESCE(ended_at, $2) WHERE conversation_id = $1")
                .bind(conversation_id)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_names_only_the_filters_given() {
        let none = ConversationFilter::default();
        let (sql, values) = list_conversations_sql(&none);
        assert!(
            sql.ends_with(" FROM conversations ORDER BY updated_at DESC, conversation_id DESC LIMIT $1 OFFSET $2"),
            "{sql}"
        );
        assert!(values.is_empty());

        let since = Utc::now();
        let every = ConversationFilter {
            user_id: Some("u".into()),
            agent_id: Some("a".into()),
            updated_since: Some(since),
            open_only: true,
            ..ConversationFilter::default()
        };
        let (sql, values) = list_conversations_sql(&every);
        assert!(
            sql.contains(" WHERE user_id = $1 AND agent_id = $2 AND updated_at >= $3 AND ended_at IS NULL ORDER BY "),
            "{sql}"
        );
        assert!(sql.ends_with(" LIMIT $4 OFFSET $5"), "{sql}");
        assert_eq!(
            values,
            [
                FilterValue::Text("u"),
                FilterValue::Text("a"),
                FilterValue::Time(since)
            ]
        );

        let open_of_agent = ConversationFilter {
            agent_id: Some("a".into()),
            open_only: true,
            ..ConversationFilter::default()
        };
        let (sql, values) = list_conversations_sql(&open_of_agent);
        assert!(
            sql.contains(" WHERE agent_id = $1 AND ended_at IS NULL ORDER BY "),
            "{sql}"
        );
        assert!(sql.ends_with(" LIMIT $2 OFFSET $3"), "{sql}");
        assert_eq!(values, [FilterValue::Text("a")]);
    }

    /// A user's listing searches the user index (a catch-all `($1 IS NULL OR ...)` condition
    /// made SQLite scan the table).
    #[tokio::test]
    async fn a_users_listing_searches_the_user_index() {
        let Ok(dir) = tempfile::tempdir() else {
            unreachable!("a temporary directory")
        };
        let Ok(store) = SqlStore::connect("sqlite:///plan.db", dir.path()).await else {
            unreachable!("a SQLite store")
        };
        let Ok(_) = crate::migrate::upgrade(&store, None).await else {
            unreachable!("migrated")
        };
        let Backend::Sqlite { read, .. } = &store.backend else {
            unreachable!("a SQLite store")
        };
        let filter = ConversationFilter {
            user_id: Some("u".into()),
            open_only: true,
            limit: 50,
            ..ConversationFilter::default()
        };
        let (sql, values) = list_conversations_sql(&filter);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for value in values {
            let FilterValue::Text(text) = value else {
                unreachable!("text filters only")
            };
            query = query.bind(text);
        }
        let Ok(rows) = query.bind(50_i64).bind(0_i64).fetch_all(read).await else {
            unreachable!("the plan of {sql}")
        };
        let plan: Vec<String> = rows
            .iter()
            .filter_map(|row| row.try_get::<String, _>(3).ok())
            .collect();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX ix_conversations_user")),
            "{plan:?}"
        );
    }
}
