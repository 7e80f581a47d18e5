//! The SQL store: one set of queries (with `$N` parameters) run on SQLite or PostgreSQL.
//! This file holds the store itself (connecting, the pools, the background checkpointer) and
//! what the files of each kind of record share; `<kind>.rs` implements that kind's trait.
//!
//! SQLite gets a single-connection writer pool next to a reader pool, in WAL mode: writes
//! are serialised in the process instead of racing for the file lock, so concurrent
//! requests never see "database is locked".

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::StoreError;
use crate::records::Store;

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

mod group_commit;
use group_commit::{GroupCommit, WriterPool};

// After the macros above, which they use.
mod approvals;
mod conversations;
mod executions;
mod instances;
mod mcp_servers;
mod memories;
mod notifications;
mod schedules;
mod user_configs;

/// A unique-constraint violation as [`StoreError::Conflict`].
fn conflict_or(err: sqlx::Error, what: &str) -> StoreError {
    match err.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(what.to_string()),
        _ => StoreError::from(err),
    }
}

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
                let unreachable = |err: sqlx::Error| StoreError::Unreachable {
                    what: "cannot connect to PostgreSQL".into(),
                    source: std::sync::Arc::new(err),
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
                                StoreError::Filesystem {
                                    what: format!("cannot create {}", parent.display()),
                                    source: std::sync::Arc::new(err),
                                }
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
                // Which file, and why when the file system tells: "unable to open database
                // file" alone does not say where to look.
                let cannot_open = |err: sqlx::Error| {
                    let what = match &file {
                        Some(path) => {
                            let read_only = std::fs::OpenOptions::new()
                                .append(true)
                                .create(true)
                                .open(path)
                                .is_err_and(|e| e.kind() == std::io::ErrorKind::ReadOnlyFilesystem);
                            let note = if read_only {
                                " (read-only file system)"
                            } else {
                                ""
                            };
                            format!("cannot open SQLite database {}{note}", path.display())
                        }
                        None => "cannot open SQLite database in memory".to_string(),
                    };
                    StoreError::Unreachable {
                        what,
                        source: std::sync::Arc::new(err),
                    }
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

impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
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
}
