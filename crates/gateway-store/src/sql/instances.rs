//! Gateway instances on SQL: [`InstanceStore`] for [`SqlStore`].

use async_trait::async_trait;
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::error::StoreError;
use crate::records::{InstanceRecord, InstanceStore, PING_TIMEOUT};

#[async_trait]
impl InstanceStore for SqlStore {
    async fn heartbeat(&self, instance: &InstanceRecord) -> Result<(), StoreError> {
        on_write!(self, pool => {
            sqlx::query("INSERT INTO gateway_instances (id, host, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at")
                .bind(&instance.id)
                .bind(&instance.host)
                .bind(instance.pid)
                .bind(instance.heartbeat_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn instances(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        on_read!(self, pool => {
            let rows = sqlx::query("SELECT id, host, pid, heartbeat_at FROM gateway_instances ORDER BY started_at")
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(InstanceRecord {
                    id: row.try_get("id")?,
                    host: row.try_get("host")?,
                    pid: row.try_get("pid")?,
                    heartbeat_at: row.try_get("heartbeat_at")?,
                });
            }
            Ok(out)
        })
    }

    async fn remove_instance(&self, instance_id: &str) -> Result<(), StoreError> {
        on_write!(self, pool => {
            sqlx::query("DELETE FROM gateway_instances WHERE id = $1").bind(instance_id).execute(pool).await?;
        });
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The reader pool: SQLite's writer may be busy with a long group commit, which is no
        // reason to call the store unready.
        let query = async {
            on_read!(self, pool => {
                sqlx::query("SELECT 1").execute(pool).await?;
            });
            Ok::<(), StoreError>(())
        };
        match tokio::time::timeout(PING_TIMEOUT, query).await {
            Ok(answer) => answer,
            Err(_) => Err(StoreError::TimedOut(format!(
                "the database did not answer within {} ms",
                PING_TIMEOUT.as_millis()
            ))),
        }
    }
}
