//! Gateway instances sharing the database: the record and [`InstanceStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;

/// A gateway process sharing the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub id: String,
    /// Machine the process runs on.
    pub host: String,
    pub pid: i64,
    pub heartbeat_at: DateTime<Utc>,
}

/// The gateway instances sharing the store.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Records that an instance is alive (`heartbeat_at` of `instance` is the time).
    async fn heartbeat(&self, instance: &InstanceRecord) -> Result<(), StoreError>;

    /// The instances that have registered and not been removed.
    async fn instances(&self) -> Result<Vec<InstanceRecord>, StoreError>;

    /// Forgets an instance that stopped cleanly.
    async fn remove_instance(&self, instance_id: &str) -> Result<(), StoreError>;

    /// Whether the store answers a trivial query now, within [`PING_TIMEOUT`] (a readiness
    /// probe: it fails fast rather than wait for a pooled connection).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// How long [`InstanceStore::ping`] waits for the store.
pub const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
