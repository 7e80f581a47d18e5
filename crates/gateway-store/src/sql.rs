//! The SQL store: one set of queries (with `$N` parameters) run on SQLite or PostgreSQL.
//!
//! SQLite gets a single-connection writer pool next to a reader pool, in WAL mode: writes
//! are serialised in the process instead of racing for the file lock, so concurrent
//! requests never see "database is locked".

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::records::*;
use crate::{CancelResult, Store, StoreError};

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// A store on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) backend: Backend,
    /// Where the SQLite file lives (None for PostgreSQL).
    pub sqlite_path: Option<PathBuf>,
    /// Commits the start and end of executions in groups (through the writer pool on SQLite).
    hot_writes: GroupCommit,
    /// Keeps the background WAL checkpointer of a SQLite file alive: it stops when the last
    /// clone of the store is dropped.
    _checkpointer: Option<std::sync::Arc<tokio::sync::watch::Sender<()>>>,
}

/// Runs `$body` with `$pool` bound to the writer pool of either backend.
macro_rules! on_write {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite { write: $pool, .. } => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the reader pool of either backend.
macro_rules! on_read {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite { read: $pool, .. } => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// Records the start of an execution through `$executor` (a transaction of either backend).
/// Evaluates to `Result<(), sqlx::Error>`.
macro_rules! write_start {
    ($executor:expr, $record:expr) => {{
        let r: &ExecutionRecord = $record;
        sqlx::query(
            "INSERT INTO executions (id, agent_id, status, message, input, options, session_id, user_id, schedule_id, schedule_name, parent_execution_id, root_execution_id, delegation_depth, instance_id, started_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&r.execution_id)
        .bind(&r.agent_id)
        .bind(r.status.as_str())
        .bind(&r.message)
        .bind(sqlx::types::Json(&r.input))
        .bind(json(&r.options))
        .bind(&r.session_id)
        .bind(&r.user_id)
        .bind(&r.schedule_id)
        .bind(&r.schedule_name)
        .bind(&r.parent_execution_id)
        .bind(&r.root_execution_id)
        .bind(r.delegation_depth)
        .bind(&r.instance_id)
        .bind(r.started_at)
        .bind(r.created_at)
        .execute($executor)
        .await
        .map(|_| ())
    }};
}

/// Records the end of an execution (its row, then its steps) inside the open transaction
/// `$tx`. A cancel that landed first wins: the row keeps `cancelled`. Evaluates to
/// `Result<String, sqlx::Error>`: the status the row ends with.
macro_rules! write_finish {
    ($tx:expr, $execution_id:expr, $outcome:expr, $steps:expr) => {
        async {
            let (execution_id, outcome, steps): (&str, &ExecutionOutcome, &[StepRecord]) =
                ($execution_id, $outcome, $steps);
            let status: Option<String> = sqlx::query_scalar(
                "UPDATE executions SET status = CASE WHEN status = 'cancelled' THEN status ELSE $2 END, result = $3, usage = $4, error = COALESCE(error, $5), completed_at = COALESCE(completed_at, $6) WHERE id = $1 RETURNING status",
            )
            .bind(execution_id)
            .bind(outcome.status.as_str())
            .bind(json(&outcome.result))
            .bind(json(&outcome.usage))
            .bind(&outcome.error)
            .bind(outcome.completed_at)
            .fetch_optional(&mut *$tx)
            .await?;
            for chunk in steps.chunks(STEPS_PER_INSERT) {
                let mut insert = sqlx::query(sqlx::AssertSqlSafe(steps_insert_sql(chunk.len())))
                    .bind(execution_id);
                for step in chunk {
                    insert = insert
                        .bind(&step.step_type)
                        .bind(step.sequence)
                        .bind(sqlx::types::Json(&step.data))
                        .bind(step.duration_ms)
                        .bind(step.created_at);
                }
                insert.execute(&mut *$tx).await?;
            }
            Ok::<String, sqlx::Error>(status.unwrap_or_else(|| outcome.status.as_str().to_string()))
        }
        .await
    };
}

mod group_commit;
use group_commit::{GroupCommit, HotWrite, WriterPool};

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
            instance_id: row.try_get("instance_id")?,
            started_at: row.try_get("started_at")?,
            completed_at: row.try_get("completed_at")?,
            created_at: row.try_get("created_at")?,
        }
    }};
}

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

const MCP_SERVER_COLUMNS: &str = "id, name, transport, command, args, url, encrypted_env, encrypted_headers, encrypted_credentials, enabled, created_at, updated_at";

/// A unique-constraint violation as [`StoreError::Conflict`].
fn conflict_or(err: sqlx::Error, what: &str) -> StoreError {
    match err.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(what.to_string()),
        _ => StoreError::from(err),
    }
}

const APPROVAL_COLUMNS: &str = "id, execution_id, tool_name, call_id, arguments, status, reason, decided_by, created_at, decided_at";

const EXECUTION_COLUMNS: &str = "id, agent_id, status, message, input, options, result, usage, error, session_id, user_id, schedule_id, schedule_name, parent_execution_id, root_execution_id, delegation_depth, instance_id, started_at, completed_at, created_at";

/// Whether a URL names PostgreSQL, SQLite, or neither.
fn classify(url: &str) -> Option<&'static str> {
    let scheme = url
        .split("://")
        .next()
        .unwrap_or(url)
        .split(':')
        .next()
        .unwrap_or(url);
    let base = scheme.split('+').next().unwrap_or(scheme);
    match base {
        "postgres" | "postgresql" => Some("postgres"),
        "sqlite" => Some("sqlite"),
        _ => None,
    }
}

/// `postgresql+asyncpg://...` → `postgresql://...` (SQLAlchemy driver suffixes are dropped).
fn postgres_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.split('+').next().unwrap_or(scheme)),
        None => url.to_string(),
    }
}

/// The file of a SQLite URL (`sqlite+aiosqlite:///x.db`, `sqlite:///x.db`, `sqlite://x.db`,
/// `sqlite:x.db`), relative paths resolved against `base`; `None` for `:memory:`.
fn sqlite_file(url: &str, base: &Path) -> Result<Option<PathBuf>, StoreError> {
    let rest = url.split_once(':').map(|(_, r)| r).unwrap_or_default();
    let path = rest
        .strip_prefix("///")
        .or_else(|| rest.strip_prefix("//"))
        .unwrap_or(rest);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() {
        return Err(StoreError::InvalidUrl {
            url: url.to_string(),
            reason: "no database file (expected sqlite:///path/to/file.db)".into(),
        });
    }
    if path == ":memory:" {
        return Ok(None);
    }
    let path = Path::new(path);
    Ok(Some(if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }))
}

impl SqlStore {
    /// Connects without touching the schema (see [`crate::migrate`]).
    pub async fn connect(url: &str, base_dir: &Path) -> Result<Self, StoreError> {
        Self::connect_in_schema(url, base_dir, None).await
    }

    /// Like [`SqlStore::connect`]; on PostgreSQL the tables live in `schema` (created when
    /// missing), as `persistence.db_schema` asks.
    pub async fn connect_in_schema(
        url: &str,
        base_dir: &Path,
        schema: Option<&str>,
    ) -> Result<Self, StoreError> {
        match classify(url) {
            Some("postgres") => {
                let unreachable = |err: sqlx::Error| {
                    StoreError::Database(format!("cannot connect to PostgreSQL: {err}"))
                };
                let mut options = sqlx::postgres::PgConnectOptions::from_str(&postgres_url(url))
                    .map_err(|err| StoreError::InvalidUrl {
                        url: url.to_string(),
                        reason: err.to_string(),
                    })?;
                if let Some(schema) = schema {
                    if schema.is_empty()
                        || !schema
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(StoreError::InvalidUrl {
                            url: url.to_string(),
                            reason: format!(
                                "schema name '{schema}' may only contain letters, digits and '_'"
                            ),
                        });
                    }
                    let setup = PgPoolOptions::new()
                        .max_connections(1)
                        .connect_with(options.clone())
                        .await
                        .map_err(unreachable)?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
                    )))
                    .execute(&setup)
                    .await?;
                    setup.close().await;
                    options = options.options([("search_path", schema)]);
                }
                let pool = PgPoolOptions::new()
                    .max_connections(20)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(unreachable)?;
                Ok(Self {
                    hot_writes: GroupCommit::start(WriterPool::Postgres(pool.clone())),
                    backend: Backend::Postgres(pool),
                    sqlite_path: None,
                    _checkpointer: None,
                })
            }
            Some("sqlite") => {
                let file = sqlite_file(url, base_dir)?;
                let options = match &file {
                    Some(path) => {
                        if let Some(parent) = path.parent() {
                            std::fs::create_dir_all(parent).map_err(|err| {
                                StoreError::Database(format!(
                                    "cannot create {}: {err}",
                                    parent.display()
                                ))
                            })?;
                        }
                        SqliteConnectOptions::new()
                            .filename(path)
                            .create_if_missing(true)
                    }
                    None => SqliteConnectOptions::from_str("sqlite::memory:")?,
                }
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true);
                let cannot_open = |err: sqlx::Error| {
                    StoreError::Database(format!("cannot open SQLite database: {err}"))
                };
                // A local file needs no liveness check before each use: skipping it saves a
                // round trip to the connection's thread on every query.
                let pool = |size: u32| {
                    SqlitePoolOptions::new()
                        .max_connections(size)
                        .test_before_acquire(false)
                };
                // The writer never checkpoints at commit: a checkpoint (and its fsync) there
                // would stall the request that crossed the threshold. `spawn_checkpointer`
                // does it instead.
                let write = pool(1)
                    .connect_with(
                        options
                            .clone()
                            .pragma("wal_autocheckpoint", "0")
                            // When the log starts over, its file is cut back to this size.
                            .pragma("journal_size_limit", "67108864"),
                    )
                    .await
                    .map_err(cannot_open)?;
                // An in-memory database exists once per connection: read through the writer.
                let (read, checkpointer) = if file.is_some() {
                    let read = pool(8)
                        .connect_with(options.clone().read_only(true))
                        .await
                        .map_err(cannot_open)?;
                    let checkpoints = pool(1).connect_with(options).await.map_err(cannot_open)?;
                    (read, Some(spawn_checkpointer(checkpoints, write.clone())))
                } else {
                    (write.clone(), None)
                };
                Ok(Self {
                    hot_writes: GroupCommit::start(WriterPool::Sqlite(write.clone())),
                    backend: Backend::Sqlite { read, write },
                    sqlite_path: file,
                    _checkpointer: checkpointer,
                })
            }
            _ => Err(StoreError::InvalidUrl {
                url: url.to_string(),
                reason: "expected a sqlite:// or postgresql:// URL".into(),
            }),
        }
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// How often the background checkpointer copies the SQLite write-ahead log into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Log size (pages) from which the checkpointer finishes a pass through the writer: 16 MiB of
/// 4 KiB pages. Below it the log may stay unfinished; it never grows much past it.
const LOG_RESTART_PAGES: i64 = 4096;

/// Keeps WAL checkpoints off the request path, and the WAL bounded. Every
/// [`CHECKPOINT_INTERVAL`] until the returned handle's last clone is dropped:
/// 1. a passive checkpoint on a connection of its own copies the log into the database and
///    syncs it while writes go on (the long part, off the writer). If no write came
///    meanwhile, the next write starts the log over;
/// 2. once the log holds [`LOG_RESTART_PAGES`] or more, a passive checkpoint through the
///    writer pool, which holds the one write connection so nothing is written meanwhile,
///    copies the pages written during step 1, so the log starts over after all. Without this
///    step a steady stream of writes keeps the log growing forever, since every background
///    pass ends behind; keeping it for a large log holds writes back only under sustained
///    load, at most once a pass.
fn spawn_checkpointer(
    own: SqlitePool,
    writer: SqlitePool,
) -> std::sync::Arc<tokio::sync::watch::Sender<()>> {
    let (alive, mut watch) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                // Err: every store handle is gone.
                closed = watch.changed() => if closed.is_err() { break },
            }
            match checkpoint(&own).await {
                Ok(pages) if pages >= LOG_RESTART_PAGES => {}
                Ok(_) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "SQLite WAL checkpoint failed");
                    continue;
                }
            }
            if let Err(err) = checkpoint(&writer).await {
                tracing::warn!(error = %err, "SQLite WAL checkpoint failed");
            }
        }
        own.close().await;
    });
    std::sync::Arc::new(alive)
}

/// Runs a passive checkpoint; answers the number of pages in the log when it started (it
/// copies them all unless a reader still needs some).
async fn checkpoint(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    row.try_get::<i64, _>(1)
}

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

/// Steps written by one statement (5 parameters each, far below either database's limit).
const STEPS_PER_INSERT: usize = 200;

/// `INSERT INTO execution_steps` for `rows` steps of one execution: `$1` is the execution id,
/// then five parameters per step.
fn steps_insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO execution_steps (execution_id, step_type, sequence, data, duration_ms, created_at) VALUES ",
    );
    for row in 0..rows {
        let first = 2 + row * 5;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "($1, ${}, ${}, ${}, ${}, ${})",
            first,
            first + 1,
            first + 2,
            first + 3,
            first + 4
        ));
    }
    sql
}

/// Bind parameters: JSON values are stored as text on SQLite and JSONB on PostgreSQL by the
/// driver from the same `serde_json::Value`.
fn json(value: &Option<Value>) -> Option<sqlx::types::Json<&Value>> {
    value.as_ref().map(sqlx::types::Json)
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

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
            // Approvals of executions that ended can no longer be decided.
            sqlx::query("UPDATE tool_approvals SET status = 'cancelled', decided_at = $1 WHERE status = 'pending' AND execution_id IN (SELECT id FROM executions WHERE status NOT IN ('queued', 'running', 'waiting_approval'))")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            failed
        });
        Ok(failed)
    }

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

    async fn put_user_config(&self, record: &UserConfigRecord) -> Result<(), StoreError> {
        on_write!(self, pool => {
            sqlx::query("INSERT INTO user_agent_configs (user_id, agent_id, instructions, config_values, encrypted_secrets, setup_completed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id, agent_id) DO UPDATE SET instructions = excluded.instructions, config_values = excluded.config_values, encrypted_secrets = excluded.encrypted_secrets, setup_completed = excluded.setup_completed, updated_at = excluded.updated_at")
                .bind(&record.user_id)
                .bind(&record.agent_id)
                .bind(&record.instructions)
                .bind(sqlx::types::Json(&record.config_values))
                .bind(sqlx::types::Json(&record.encrypted_secrets))
                .bind(record.setup_completed)
                .bind(record.created_at)
                .bind(record.updated_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn get_user_config(
        &self,
        user_id: &str,
        agent_id: &str,
    ) -> Result<Option<UserConfigRecord>, StoreError> {
        on_read!(self, pool => {
            let row = sqlx::query("SELECT user_id, agent_id, instructions, config_values, encrypted_secrets, setup_completed, created_at, updated_at FROM user_agent_configs WHERE user_id = $1 AND agent_id = $2")
                .bind(user_id)
                .bind(agent_id)
                .fetch_optional(pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let object = |value: Option<Value>| match value {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            Ok(Some(UserConfigRecord {
                user_id: row.try_get("user_id")?,
                agent_id: row.try_get("agent_id")?,
                instructions: row.try_get("instructions")?,
                config_values: object(row.try_get("config_values")?),
                encrypted_secrets: object(row.try_get("encrypted_secrets")?),
                setup_completed: row.try_get("setup_completed")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            }))
        })
    }

    async fn delete_user_config(&self, user_id: &str, agent_id: &str) -> Result<bool, StoreError> {
        on_write!(self, pool => {
            let changed = sqlx::query("DELETE FROM user_agent_configs WHERE user_id = $1 AND agent_id = $2")
                .bind(user_id)
                .bind(agent_id)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(changed > 0)
        })
    }

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
        let condition = "($1 IS NULL OR status = $1) AND ($2 IS NULL OR agent_id = $2) AND ($3 IS NULL OR channel = $3) AND ($4 IS NULL OR execution_id = $4)";
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notification_log WHERE {condition} ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6"
        );
        let count = format!("SELECT COUNT(*) FROM notification_log WHERE {condition}");
        on_read!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&filter.status)
                .bind(&filter.agent_id)
                .bind(&filter.channel)
                .bind(&filter.execution_id)
                .bind(filter.limit.max(0))
                .bind(filter.offset.max(0))
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
                .bind(&filter.status)
                .bind(&filter.agent_id)
                .bind(&filter.channel)
                .bind(&filter.execution_id)
                .fetch_one(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(notification_row!(row));
            }
            Ok((out, total))
        })
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
                    .bind(crate::new_message_id())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(classify("sqlite+aiosqlite:///x.db"), Some("sqlite"));
        assert_eq!(classify("postgresql+asyncpg://u@h/db"), Some("postgres"));
        assert_eq!(classify("mysql://x"), None);
        assert_eq!(
            postgres_url("postgresql+asyncpg://u@h/db"),
            "postgresql://u@h/db"
        );
        let base = Path::new("/ws");
        assert_eq!(
            sqlite_file("sqlite+aiosqlite:///agent_gateway.db", base).unwrap(),
            Some(PathBuf::from("/ws/agent_gateway.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:////var/db/x.db", base).unwrap(),
            Some(PathBuf::from("/var/db/x.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:data/x.db", base).unwrap(),
            Some(PathBuf::from("/ws/data/x.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:", base).unwrap(), None);
        assert!(sqlite_file("sqlite://", base).is_err());
    }

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
