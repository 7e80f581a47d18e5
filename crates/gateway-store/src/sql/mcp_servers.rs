//! MCP servers on SQL: [`McpServerStore`] for [`SqlStore`].

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;

use super::{Backend, SqlStore, conflict_or};
use crate::error::StoreError;
use crate::records::{McpServerRecord, McpServerStore};

macro_rules! mcp_server_row {
    ($row:expr) => {{
        let row = $row;
        let args: Option<Value> = row.try_get("args")?;
        McpServerRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            transport: row.try_get("transport")?,
            command: row.try_get("command")?,
            args: match args {
                Some(Value::Array(items)) => items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
                _ => Vec::new(),
            },
            url: row.try_get("url")?,
            encrypted_env: row.try_get("encrypted_env")?,
            encrypted_headers: row.try_get("encrypted_headers")?,
            encrypted_credentials: row.try_get("encrypted_credentials")?,
            enabled: row.try_get("enabled")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }
    }};
}

const MCP_SERVER_COLUMNS: &str = "id, name, transport, command, args, url, encrypted_env, encrypted_headers, encrypted_credentials, enabled, created_at, updated_at";

#[async_trait]
impl McpServerStore for SqlStore {
    async fn insert_mcp_server(&self, record: &McpServerRecord) -> Result<(), StoreError> {
        let what = format!("MCP server '{}'", record.name);
        on_write!(self, pool => {
            sqlx::query("INSERT INTO mcp_servers (id, name, transport, command, args, url, encrypted_env, encrypted_headers, encrypted_credentials, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                .bind(&record.id)
                .bind(&record.name)
                .bind(&record.transport)
                .bind(&record.command)
                .bind(sqlx::types::Json(&record.args))
                .bind(&record.url)
                .bind(&record.encrypted_env)
                .bind(&record.encrypted_headers)
                .bind(&record.encrypted_credentials)
                .bind(record.enabled)
                .bind(record.created_at)
                .bind(record.updated_at)
                .execute(pool)
                .await
                .map_err(|e| conflict_or(e, &what))?;
        });
        Ok(())
    }

    async fn update_mcp_server(&self, record: &McpServerRecord) -> Result<bool, StoreError> {
        let what = format!("MCP server '{}'", record.name);
        on_write!(self, pool => {
            let changed = sqlx::query("UPDATE mcp_servers SET name = $2, transport = $3, command = $4, args = $5, url = $6, encrypted_env = $7, encrypted_headers = $8, encrypted_credentials = $9, enabled = $10, updated_at = $11 WHERE id = $1")
                .bind(&record.id)
                .bind(&record.name)
                .bind(&record.transport)
                .bind(&record.command)
                .bind(sqlx::types::Json(&record.args))
                .bind(&record.url)
                .bind(&record.encrypted_env)
                .bind(&record.encrypted_headers)
                .bind(&record.encrypted_credentials)
                .bind(record.enabled)
                .bind(record.updated_at)
                .execute(pool)
                .await
                .map_err(|e| conflict_or(e, &what))?
                .rows_affected();
            Ok(changed > 0)
        })
    }

    async fn delete_mcp_server(&self, id: &str) -> Result<bool, StoreError> {
        on_write!(self, pool => {
            let changed = sqlx::query("DELETE FROM mcp_servers WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(changed > 0)
        })
    }

    async fn get_mcp_server(&self, id: &str) -> Result<Option<McpServerRecord>, StoreError> {
        let sql = format!("SELECT {MCP_SERVER_COLUMNS} FROM mcp_servers WHERE id = $1");
        on_read!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(mcp_server_row!(&row))),
                None => Ok(None),
            }
        })
    }

    async fn list_mcp_servers(&self) -> Result<Vec<McpServerRecord>, StoreError> {
        let sql = format!("SELECT {MCP_SERVER_COLUMNS} FROM mcp_servers ORDER BY name");
        on_read!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(mcp_server_row!(row));
            }
            Ok(out)
        })
    }
}
