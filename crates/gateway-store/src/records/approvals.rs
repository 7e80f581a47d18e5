//! Tool-call approvals: the records and [`ApprovalStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

/// Where a tool-call approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    /// Nobody decided within the approval timeout.
    Expired,
    /// The execution ended (cancelled, timed out) while it waited.
    Cancelled,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// A tool call that waits for (or got) a person's decision.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApprovalRecord {
    pub approval_id: String,
    pub execution_id: String,
    pub tool_name: String,
    /// The model's id of the call.
    pub call_id: String,
    #[schema(value_type = Object)]
    pub arguments: Value,
    pub status: ApprovalStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
}

/// A decision on pending approvals.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalDecision {
    pub status: ApprovalStatus,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub at: DateTime<Utc>,
}

/// Approvals of tool calls, and the executions that wait for them.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Records approval requests of one execution and moves it `running` →
    /// `waiting_approval`, in one transaction.
    async fn request_approvals(&self, approvals: &[ApprovalRecord]) -> Result<(), StoreError>;

    /// Decides the pending approvals of an execution (only `approval_id` when given).
    /// Returns the approvals it decided: none when nothing matching was pending.
    async fn decide_approvals(
        &self,
        execution_id: &str,
        approval_id: Option<&str>,
        decision: &ApprovalDecision,
    ) -> Result<Vec<ApprovalRecord>, StoreError>;

    /// The approvals of an execution, oldest first.
    async fn approvals(&self, execution_id: &str) -> Result<Vec<ApprovalRecord>, StoreError>;

    /// `waiting_approval` → `running`. Returns whether it moved (a cancel that landed first
    /// keeps the execution cancelled).
    async fn resume_execution(&self, execution_id: &str) -> Result<bool, StoreError>;
}
