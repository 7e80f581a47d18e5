//! Human-in-the-loop approval of tool calls (`permissions.require_approval`).
//!
//! A run that wants to call such a tool records an approval request; the execution shows
//! `waiting_approval` until a person decides (`POST /v1/executions/{id}/approve|deny`) on
//! any instance sharing the store. Decisions made here wake the run at once; decisions made
//! elsewhere are seen by polling the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use gateway_llm::ToolCall;
use gateway_store::{ApprovalDecision, ApprovalRecord, ApprovalStatus, SharedStore, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How often a waiting run looks for decisions made on other instances.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Pending approval requests of this process and the store that holds every decision.
pub struct Approvals {
    store: SharedStore,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

/// Why a wait for approval ended without decisions.
#[derive(Debug)]
pub(crate) enum WaitError {
    Cancelled,
    Storage(StoreError),
}

impl Approvals {
    pub fn new(store: SharedStore) -> Self {
        Self {
            store,
            waiters: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one approval request per call and pauses the execution.
    pub(crate) async fn request(
        &self,
        execution_id: &str,
        calls: &[&ToolCall],
    ) -> Result<Vec<ApprovalRecord>, WaitError> {
        let requests: Vec<ApprovalRecord> = calls
            .iter()
            .map(|call| ApprovalRecord {
                approval_id: uuid::Uuid::new_v4().to_string(),
                execution_id: execution_id.to_string(),
                tool_name: call.name.clone(),
                call_id: call.id.clone(),
                arguments: call.arguments.clone(),
                status: ApprovalStatus::Pending,
                reason: None,
                decided_by: None,
                created_at: Utc::now(),
                decided_at: None,
            })
            .collect();
        self.store
            .request_approvals(&requests)
            .await
            .map_err(WaitError::Storage)?;
        Ok(requests)
    }

    /// Waits until every request is decided, expires after `timeout`, or `cancel` fires,
    /// then lets the execution run again. Returns the decided records in request order.
    pub(crate) async fn wait(
        &self,
        execution_id: &str,
        requests: &[ApprovalRecord],
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<ApprovalRecord>, WaitError> {
        let notify = Arc::new(Notify::new());
        self.lock()
            .insert(execution_id.to_string(), Arc::clone(&notify));
        let result = self
            .wait_registered(execution_id, requests, &notify, timeout, cancel)
            .await;
        self.lock().remove(execution_id);
        if result.is_ok()
            && let Err(err) = self.store.resume_execution(execution_id).await
        {
            tracing::error!(%execution_id, error = %err, "could not mark the execution running again");
        }
        result
    }

    async fn wait_registered(
        &self,
        execution_id: &str,
        requests: &[ApprovalRecord],
        notify: &Notify,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<ApprovalRecord>, WaitError> {
        let expires = tokio::time::Instant::now() + timeout;
        loop {
            let current = self
                .store
                .approvals(execution_id)
                .await
                .map_err(WaitError::Storage)?;
            let ours: Vec<ApprovalRecord> = requests
                .iter()
                .filter_map(|r| {
                    current
                        .iter()
                        .find(|c| c.approval_id == r.approval_id)
                        .cloned()
                })
                .collect();
            if ours.len() == requests.len()
                && ours.iter().all(|a| a.status != ApprovalStatus::Pending)
            {
                return Ok(ours);
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.close_pending(execution_id, requests, ApprovalStatus::Cancelled, "the execution ended").await;
                    return Err(WaitError::Cancelled);
                }
                _ = tokio::time::sleep_until(expires) => {
                    let reason = format!("no decision within {} ms", timeout.as_millis());
                    self.close_pending(execution_id, requests, ApprovalStatus::Expired, &reason).await;
                }
                _ = notify.notified() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// Decides what is still pending among `requests` (a decision made meanwhile stands).
    async fn close_pending(
        &self,
        execution_id: &str,
        requests: &[ApprovalRecord],
        status: ApprovalStatus,
        reason: &str,
    ) {
        let decision = ApprovalDecision {
            status,
            reason: Some(reason.to_string()),
            decided_by: None,
            at: Utc::now(),
        };
        for request in requests {
            if let Err(err) = self
                .store
                .decide_approvals(execution_id, Some(&request.approval_id), &decision)
                .await
            {
                tracing::error!(%execution_id, error = %err, "could not close an approval request");
            }
        }
    }

    /// Records a person's decision on the pending approvals of an execution (one when
    /// `approval_id` is given) and wakes the run if it waits in this process. Returns the
    /// approvals decided (none when nothing matching was pending).
    pub async fn decide(
        &self,
        execution_id: &str,
        approval_id: Option<&str>,
        approve: bool,
        reason: Option<String>,
        decided_by: Option<String>,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let decision = ApprovalDecision {
            status: if approve {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Denied
            },
            reason,
            decided_by,
            at: Utc::now(),
        };
        let decided = self
            .store
            .decide_approvals(execution_id, approval_id, &decision)
            .await?;
        if !decided.is_empty()
            && let Some(notify) = self.lock().get(execution_id)
        {
            // A stored permit: the run sees it even if it is not waiting at this instant.
            notify.notify_one();
        }
        Ok(decided)
    }
}

/// What a run needs to ask for approvals.
#[derive(Clone)]
pub(crate) struct ApprovalGate {
    pub approvals: Arc<Approvals>,
    pub timeout: Duration,
}
