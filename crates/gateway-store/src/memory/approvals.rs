//! Tool-call approvals in memory: [`ApprovalStore`] for [`MemoryStore`], kept with their
//! execution.

use async_trait::async_trait;

use super::MemoryStore;
use crate::error::StoreError;
use crate::records::{
    ApprovalDecision, ApprovalRecord, ApprovalStatus, ApprovalStore, ExecutionStatus,
};

#[async_trait]
impl ApprovalStore for MemoryStore {
    async fn request_approvals(&self, approvals: &[ApprovalRecord]) -> Result<(), StoreError> {
        let mut state = self.lock();
        for approval in approvals {
            // Only for an execution kept here (a running one always is): approvals are dropped
            // with their execution, so any other would never be.
            let Some(kept) = state.executions.get_mut(approval.execution_id.as_str()) else {
                continue;
            };
            if kept.fields.status == ExecutionStatus::Running {
                kept.fields.status = ExecutionStatus::WaitingApproval;
            }
            state
                .approvals
                .entry(approval.execution_id.clone())
                .or_default()
                .push(approval.clone());
        }
        Ok(())
    }

    async fn decide_approvals(
        &self,
        execution_id: &str,
        approval_id: Option<&str>,
        decision: &ApprovalDecision,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let mut state = self.lock();
        let Some(approvals) = state.approvals.get_mut(execution_id) else {
            return Ok(Vec::new());
        };
        let mut decided = Vec::new();
        for approval in approvals.iter_mut().filter(|a| {
            a.status == ApprovalStatus::Pending && approval_id.is_none_or(|id| a.approval_id == id)
        }) {
            approval.status = decision.status;
            approval.reason = decision.reason.clone();
            approval.decided_by = decision.decided_by.clone();
            approval.decided_at = Some(decision.at);
            decided.push(approval.clone());
        }
        Ok(decided)
    }

    async fn approvals(&self, execution_id: &str) -> Result<Vec<ApprovalRecord>, StoreError> {
        Ok(self
            .lock()
            .approvals
            .get(execution_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn resume_execution(&self, execution_id: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        Ok(match state.executions.get_mut(execution_id) {
            Some(kept) if kept.fields.status == ExecutionStatus::WaitingApproval => {
                kept.fields.status = ExecutionStatus::Running;
                true
            }
            _ => false,
        })
    }
}
