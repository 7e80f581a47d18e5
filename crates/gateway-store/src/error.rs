//! The one error type of every store operation.

/// Why a storage operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("migration error: {0}")]
    Migration(String),
    #[error("invalid database URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("unreadable row: {0}")]
    Corrupt(String),
    /// A unique value (a name) is already taken.
    #[error("{0} already exists")]
    Conflict(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err.to_string())
    }
}
