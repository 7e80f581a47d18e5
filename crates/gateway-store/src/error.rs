//! The one error type of every store operation. A database's own error stays the source.

use std::sync::Arc;

/// Why a storage operation failed. Cheap to clone (a failed group of writes answers each
/// writer with the same error).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[source] Arc<sqlx::Error>),
    /// The database could not be reached or opened (`what` says which and where).
    #[error("{what}: {source}")]
    Unreachable {
        what: String,
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The folder of a SQLite file could not be created.
    #[error("{what}: {source}")]
    Filesystem {
        what: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The task that commits execution starts and ends has stopped (the store is closing).
    #[error("the store's writer has stopped")]
    WriterStopped,
    #[error("migration error: {0}")]
    Migration(String),
    #[error("migration error: {0}")]
    Migrator(#[source] Arc<sqlx::migrate::MigrateError>),
    #[error("invalid database URL '{}': {reason}", without_password(url))]
    InvalidUrl { url: String, reason: String },
    #[error("unreadable row: {0}")]
    Corrupt(String),
    /// The store did not answer in time (a readiness ping).
    #[error("{0}")]
    TimedOut(String),
    /// A unique value (a name) is already taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The change clashes with the records as they are now (one was removed meanwhile, an id
    /// belongs to another owner): nothing was changed.
    #[error("{0}")]
    Clash(String),
}

/// `url` with the password of its user part masked: an error message must not carry it.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(Arc::new(err))
    }
}
