//! Execution records: read, list, steps, delegation trees, cancel, and the approvals of the
//! tool calls a run waits on.

use std::sync::Arc;

use gateway_store::{
    ApprovalRecord, CancelResult, ExecutionFilter, ExecutionRecord, ExecutionStatus, StepRecord,
};

use crate::actor::Actor;
use crate::error::{GatewayError, Record};
use crate::state::GatewayState;

/// A person's answer to the tool calls an execution waits on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApprovalDecision {
    /// Decide only this approval (default: every pending one).
    pub approval_id: Option<String>,
    pub approve: bool,
    /// Why; a denial's reason reaches the model.
    pub reason: Option<String>,
}

/// Operations on executions (`gateway.executions()`).
pub struct Executions<'a> {
    state: &'a Arc<GatewayState>,
}

impl<'a> Executions<'a> {
    pub(crate) fn new(state: &'a Arc<GatewayState>) -> Self {
        Self { state }
    }

    /// One execution the actor may see.
    pub async fn get(
        &self,
        actor: &Actor,
        execution_id: &str,
    ) -> Result<ExecutionRecord, GatewayError> {
        let record = self
            .state
            .store
            .get_execution(execution_id)
            .await?
            .ok_or_else(|| GatewayError::not_found(Record::Execution, execution_id))?;
        actor.check_access(Record::Execution, execution_id, record.user_id.as_deref())?;
        Ok(record)
    }

    /// The executions matching `filter` that the actor may see (its owner filter replaces
    /// any given).
    pub async fn list(
        &self,
        actor: &Actor,
        mut filter: ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, GatewayError> {
        filter.user_id = actor.owner_filter().map(String::from);
        Ok(self.state.store.list_executions(&filter).await?)
    }

    /// The recorded steps of an execution.
    pub async fn steps(
        &self,
        actor: &Actor,
        execution_id: &str,
    ) -> Result<Vec<StepRecord>, GatewayError> {
        self.get(actor, execution_id).await?;
        Ok(self.state.store.execution_steps(execution_id).await?)
    }

    /// An execution and its delegation tree.
    pub async fn workflow(
        &self,
        actor: &Actor,
        execution_id: &str,
    ) -> Result<Vec<ExecutionRecord>, GatewayError> {
        self.get(actor, execution_id).await?;
        Ok(self.state.store.workflow(execution_id).await?)
    }

    /// Cancels a queued or running execution. A run in this process stops at its next step;
    /// one on another instance stops when that instance sees the cancel (within a second).
    pub async fn cancel(
        &self,
        actor: &Actor,
        execution_id: &str,
    ) -> Result<ExecutionStatus, GatewayError> {
        self.get(actor, execution_id).await?;
        match self
            .state
            .store
            .cancel_execution(execution_id, chrono::Utc::now())
            .await?
        {
            CancelResult::Cancelled => {
                self.state.running.cancel(execution_id);
                Ok(ExecutionStatus::Cancelled)
            }
            CancelResult::NotFound => Err(GatewayError::not_found(Record::Execution, execution_id)),
            CancelResult::AlreadyFinished(status) => Err(GatewayError::NotCancellable {
                execution_id: execution_id.to_string(),
                status,
            }),
        }
    }

    /// The approval requests of an execution, oldest first.
    pub async fn approvals(
        &self,
        actor: &Actor,
        execution_id: &str,
    ) -> Result<Vec<ApprovalRecord>, GatewayError> {
        self.get(actor, execution_id).await?;
        Ok(self.state.store.approvals(execution_id).await?)
    }

    /// Approves or denies the tool calls an execution waits on. The run goes on within a
    /// moment, on whichever instance runs it. Returns the approvals decided.
    pub async fn decide(
        &self,
        actor: &Actor,
        execution_id: &str,
        decision: ApprovalDecision,
    ) -> Result<Vec<ApprovalRecord>, GatewayError> {
        let record = self.get(actor, execution_id).await?;
        if record.status != ExecutionStatus::WaitingApproval {
            return Err(GatewayError::NotWaitingApproval {
                execution_id: execution_id.to_string(),
                status: record.status,
            });
        }
        let decided = self
            .state
            .approvals
            .decide(
                execution_id,
                decision.approval_id.as_deref(),
                decision.approve,
                decision.reason,
                actor.user_id().map(String::from),
            )
            .await?;
        if decided.is_empty() {
            return Err(GatewayError::not_found(
                Record::Approval,
                decision.approval_id.unwrap_or_default(),
            ));
        }
        Ok(decided)
    }
}
