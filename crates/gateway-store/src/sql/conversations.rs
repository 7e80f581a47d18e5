//! Conversations and their messages on SQL: [`ConversationStore`] for [`SqlStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::error::StoreError;
use crate::records::{
    ConversationRecord, ConversationStore, ConversationTurn, MessageRecord, new_message_id,
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
        on_read!(self, pool => {
            let row = sqlx::query("SELECT conversation_id, agent_id, user_id, title, summary, message_count, created_at, updated_at, ended_at FROM conversations WHERE conversation_id = $1")
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
        user_id: Option<&str>,
        agent_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        on_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT conversation_id, agent_id, user_id, title, summary, message_count, created_at, updated_at, ended_at FROM conversations WHERE (($1 IS NULL AND user_id IS NULL) OR user_id = $1) AND ($2 IS NULL OR agent_id = $2) ORDER BY updated_at DESC, conversation_id DESC LIMIT $3 OFFSET $4",
            )
            .bind(user_id)
            .bind(agent_id)
            .bind(limit.max(0))
            .bind(offset.max(0))
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
