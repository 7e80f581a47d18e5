//! Versioned schema migrations, one set per backend, embedded in the binary.
//! `upgrade` runs at startup; `agents-gateway db upgrade|downgrade|current|history` drive
//! them by hand.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::error::StoreError;
use crate::sql::{Backend, SqlStore};

/// (version, description, up, down) per backend.
type Script = (i64, &'static str, &'static str, &'static str);

const SQLITE: &[Script] = &[
    (
        1,
        "initial schema",
        include_str!("../migrations/sqlite/0001_initial.up.sql"),
        include_str!("../migrations/sqlite/0001_initial.down.sql"),
    ),
    (
        2,
        "tool approvals",
        include_str!("../migrations/sqlite/0002_tool_approvals.up.sql"),
        include_str!("../migrations/sqlite/0002_tool_approvals.down.sql"),
    ),
    (
        3,
        "schedule overrides",
        include_str!("../migrations/sqlite/0003_schedule_overrides.up.sql"),
        include_str!("../migrations/sqlite/0003_schedule_overrides.down.sql"),
    ),
    (
        4,
        "partial indexes on optional execution columns",
        include_str!("../migrations/sqlite/0004_partial_indexes.up.sql"),
        include_str!("../migrations/sqlite/0004_partial_indexes.down.sql"),
    ),
    (
        5,
        "memory pins and embeddings",
        include_str!("../migrations/sqlite/0005_memory_pins_and_embeddings.up.sql"),
        include_str!("../migrations/sqlite/0005_memory_pins_and_embeddings.down.sql"),
    ),
    (
        6,
        "execution trace ids",
        include_str!("../migrations/sqlite/0006_execution_trace_id.up.sql"),
        include_str!("../migrations/sqlite/0006_execution_trace_id.down.sql"),
    ),
];

const POSTGRES: &[Script] = &[
    (
        1,
        "initial schema",
        include_str!("../migrations/postgres/0001_initial.up.sql"),
        include_str!("../migrations/postgres/0001_initial.down.sql"),
    ),
    (
        2,
        "tool approvals",
        include_str!("../migrations/postgres/0002_tool_approvals.up.sql"),
        include_str!("../migrations/postgres/0002_tool_approvals.down.sql"),
    ),
    (
        3,
        "schedule overrides",
        include_str!("../migrations/postgres/0003_schedule_overrides.up.sql"),
        include_str!("../migrations/postgres/0003_schedule_overrides.down.sql"),
    ),
    (
        4,
        "partial indexes on optional execution columns",
        include_str!("../migrations/postgres/0004_partial_indexes.up.sql"),
        include_str!("../migrations/postgres/0004_partial_indexes.down.sql"),
    ),
    (
        5,
        "memory pins and embeddings",
        include_str!("../migrations/postgres/0005_memory_pins_and_embeddings.up.sql"),
        include_str!("../migrations/postgres/0005_memory_pins_and_embeddings.down.sql"),
    ),
    (
        6,
        "execution trace ids",
        include_str!("../migrations/postgres/0006_execution_trace_id.up.sql"),
        include_str!("../migrations/postgres/0006_execution_trace_id.down.sql"),
    ),
];

/// One known migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

fn migrator(scripts: &'static [Script]) -> Migrator {
    let mut migrations = Vec::new();
    for (version, description, up, down) in scripts {
        migrations.push(Migration::new(
            *version,
            Cow::Borrowed(*description),
            MigrationType::ReversibleUp,
            up.into_sql_str(),
            false,
        ));
        migrations.push(Migration::new(
            *version,
            Cow::Borrowed(*description),
            MigrationType::ReversibleDown,
            down.into_sql_str(),
            false,
        ));
    }
    Migrator::with_migrations(migrations)
}

fn scripts(store: &SqlStore) -> &'static [Script] {
    match store.backend {
        Backend::Sqlite { .. } => SQLITE,
        Backend::Postgres(_) => POSTGRES,
    }
}

fn latest(store: &SqlStore) -> i64 {
    scripts(store).iter().map(|s| s.0).max().unwrap_or(0)
}

fn check_target(store: &SqlStore, target: i64) -> Result<(), StoreError> {
    if target == 0 || scripts(store).iter().any(|s| s.0 == target) {
        Ok(())
    } else {
        let known: Vec<String> = scripts(store).iter().map(|s| s.0.to_string()).collect();
        Err(StoreError::Migration(format!(
            "unknown version {target} (known: 0, {})",
            known.join(", ")
        )))
    }
}

fn migration_error(err: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Migrator(std::sync::Arc::new(err))
}

/// Applies migrations up to `target` (all when `None`). Returns the version reached.
pub async fn upgrade(store: &SqlStore, target: Option<i64>) -> Result<i64, StoreError> {
    let target = target.unwrap_or_else(|| latest(store));
    check_target(store, target)?;
    let migrator = migrator(scripts(store));
    match &store.backend {
        Backend::Sqlite { write, .. } => migrator
            .run_to(target, write)
            .await
            .map_err(migration_error)?,
        Backend::Postgres(pool) => migrator
            .run_to(target, pool)
            .await
            .map_err(migration_error)?,
    }
    current(store).await
}

/// Reverts to `target` (one step when `None`). Returns the version reached.
pub async fn downgrade(store: &SqlStore, target: Option<i64>) -> Result<i64, StoreError> {
    let now = current(store).await?;
    let target = match target {
        Some(target) => target,
        None => scripts(store)
            .iter()
            .map(|s| s.0)
            .filter(|v| *v < now)
            .max()
            .unwrap_or(0),
    };
    check_target(store, target)?;
    if target > now {
        return Err(StoreError::Migration(format!(
            "cannot downgrade from {now} to the later version {target}"
        )));
    }
    let migrator = migrator(scripts(store));
    match &store.backend {
        Backend::Sqlite { write, .. } => migrator
            .undo(write, target)
            .await
            .map_err(migration_error)?,
        Backend::Postgres(pool) => migrator.undo(pool, target).await.map_err(migration_error)?,
    }
    current(store).await
}

async fn applied(store: &SqlStore) -> Result<Vec<i64>, StoreError> {
    let sql = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
    let result = match &store.backend {
        Backend::Sqlite { write, .. } => sqlx::query_scalar::<_, i64>(sql).fetch_all(write).await,
        Backend::Postgres(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_all(pool).await,
    };
    match result {
        Ok(versions) => Ok(versions),
        // No migrations table yet: nothing applied.
        Err(sqlx::Error::Database(err)) if err.message().contains("_sqlx_migrations") => {
            Ok(Vec::new())
        }
        Err(err) => Err(err.into()),
    }
}

/// The highest applied version (0 for an empty database).
pub async fn current(store: &SqlStore) -> Result<i64, StoreError> {
    Ok(applied(store).await?.into_iter().max().unwrap_or(0))
}

/// Every known migration with its state.
pub async fn history(store: &SqlStore) -> Result<Vec<MigrationInfo>, StoreError> {
    let applied = applied(store).await?;
    Ok(scripts(store)
        .iter()
        .map(|(version, description, _, _)| MigrationInfo {
            version: *version,
            description: description.to_string(),
            applied: applied.contains(version),
        })
        .collect())
}
