//! Sessions in SQLite or PostgreSQL (feature `sql`). A claim is a conditional `UPDATE` on
//! the session's version and lease, so exactly one of concurrent claims changes the row.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::session::{Claim, FlowSession, SessionStore, SessionStoreError, new_token, now_ms};

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS agentgate_sessions (
    session_id TEXT PRIMARY KEY,
    flow_name TEXT NOT NULL,
    state TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    claim_token TEXT,
    claim_until BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL
)";
const CREATE_INDEX: &str = "CREATE INDEX IF NOT EXISTS ix_agentgate_sessions_expires_at ON agentgate_sessions (expires_at)";

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has.
macro_rules! on_pool {
    ($pool_enum:expr, $pool:ident => $body:expr) => {
        match $pool_enum {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// Sessions in a SQL table (`agentgate_sessions`, created when missing).
#[derive(Debug, Clone)]
pub struct SqlSessionStore {
    pool: Pool,
    ttl: Duration,
}

fn failure(err: impl std::fmt::Display) -> SessionStoreError {
    SessionStoreError(err.to_string())
}

fn decode(state: &str) -> Result<FlowSession, SessionStoreError> {
    serde_json::from_str(state)
        .map_err(|err| SessionStoreError(format!("unreadable session: {err}")))
}

impl SqlSessionStore {
    /// Connects to a `sqlite:` or `postgres://` URL and creates the table if needed.
    pub async fn connect(url: &str, ttl: Duration) -> Result<Self, SessionStoreError> {
        let pool = if url.starts_with("postgres") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(10)
                    .connect(url)
                    .await
                    .map_err(failure)?,
            )
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(failure)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10));
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await
                    .map_err(failure)?,
            )
        } else {
            return Err(SessionStoreError(format!(
                "unsupported database URL '{url}' (use sqlite: or postgres://)"
            )));
        };
        let store = Self { pool, ttl };
        on_pool!(&store.pool, pool => {
            sqlx::query(CREATE_TABLE).execute(pool).await.map_err(failure)?;
            sqlx::query(CREATE_INDEX).execute(pool).await.map_err(failure)?;
        });
        Ok(store)
    }

    fn expires_at(&self) -> i64 {
        now_ms() + self.ttl.as_millis() as i64
    }

    /// (state, version, lease end) of a live session.
    async fn load(
        &self,
        session_id: &str,
    ) -> Result<Option<(String, i64, i64)>, SessionStoreError> {
        let now = now_ms();
        on_pool!(&self.pool, pool => {
            sqlx::query_as::<_, (String, i64, i64)>(
                "SELECT state, version, claim_until FROM agentgate_sessions WHERE session_id = $1 AND expires_at > $2",
            )
            .bind(session_id)
            .bind(now)
            .fetch_optional(pool)
            .await
            .map_err(failure)
        })
    }
}

#[async_trait]
impl SessionStore for SqlSessionStore {
    async fn create(&self, session: &FlowSession) -> Result<(), SessionStoreError> {
        let state = serde_json::to_string(session).map_err(failure)?;
        let now = now_ms();
        let expires = self.expires_at();
        on_pool!(&self.pool, pool => {
            sqlx::query("DELETE FROM agentgate_sessions WHERE expires_at <= $1").bind(now).execute(pool).await.map_err(failure)?;
            sqlx::query("INSERT INTO agentgate_sessions (session_id, flow_name, state, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(&session.session_id)
                .bind(&session.flow_name)
                .bind(state)
                .bind(expires)
                .execute(pool)
                .await
                .map_err(failure)?;
        });
        Ok(())
    }

    async fn get(&self, session_id: &str) -> Result<Option<FlowSession>, SessionStoreError> {
        let Some((state, _, _)) = self.load(session_id).await? else {
            return Ok(None);
        };
        let expires = self.expires_at();
        on_pool!(&self.pool, pool => {
            sqlx::query("UPDATE agentgate_sessions SET expires_at = $2 WHERE session_id = $1")
                .bind(session_id)
                .bind(expires)
                .execute(pool)
                .await
                .map_err(failure)?;
        });
        decode(&state).map(Some)
    }

    async fn claim(
        &self,
        session_id: &str,
        step: &str,
        lease: Duration,
    ) -> Result<Claim, SessionStoreError> {
        let Some((state, version, held_until)) = self.load(session_id).await? else {
            return Ok(Claim::NotFound);
        };
        let session = decode(&state)?;
        let now = now_ms();
        if held_until > now || !session.allowed_next_steps.iter().any(|s| s == step) {
            return Ok(Claim::NotAllowed { session });
        }
        let token = new_token();
        let until = now + lease.as_millis() as i64;
        let expires = self.expires_at();
        let changed = on_pool!(&self.pool, pool => {
            sqlx::query(
                "UPDATE agentgate_sessions SET claim_token = $1, claim_until = $2, expires_at = $3 WHERE session_id = $4 AND version = $5 AND claim_until <= $6",
            )
            .bind(&token)
            .bind(until)
            .bind(expires)
            .bind(session_id)
            .bind(version)
            .bind(now)
            .execute(pool)
            .await
            .map_err(failure)?
            .rows_affected()
        });
        Ok(if changed == 1 {
            Claim::Granted { session, token }
        } else {
            Claim::NotAllowed { session }
        })
    }

    async fn commit(&self, updated: &FlowSession, token: &str) -> Result<bool, SessionStoreError> {
        let state = serde_json::to_string(updated).map_err(failure)?;
        let expires = self.expires_at();
        let changed = on_pool!(&self.pool, pool => {
            sqlx::query(
                "UPDATE agentgate_sessions SET state = $1, version = version + 1, claim_token = NULL, claim_until = 0, expires_at = $2 WHERE session_id = $3 AND claim_token = $4",
            )
            .bind(state)
            .bind(expires)
            .bind(&updated.session_id)
            .bind(token)
            .execute(pool)
            .await
            .map_err(failure)?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    async fn release(&self, session_id: &str, token: &str) -> Result<(), SessionStoreError> {
        on_pool!(&self.pool, pool => {
            sqlx::query("UPDATE agentgate_sessions SET claim_token = NULL, claim_until = 0 WHERE session_id = $1 AND claim_token = $2")
                .bind(session_id)
                .bind(token)
                .execute(pool)
                .await
                .map_err(failure)?;
        });
        Ok(())
    }
}
