//! Executions in this process: their records (bounded, newest kept) and the cancellation
//! handles of those still running.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::engine::{ExecutionStatus, Usage};

/// Most execution records kept in memory.
const MAX_RECORDS: usize = 10_000;

/// One execution as listed by the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExecutionRecord {
    pub execution_id: String,
    pub agent_id: String,
    pub status: ExecutionStatus,
    pub message: String,
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_execution_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_execution_id: Option<String>,
    pub delegation_depth: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ExecutionRecord {
    pub fn new(
        execution_id: &str,
        agent_id: &str,
        message: &str,
        input: Map<String, Value>,
    ) -> Self {
        Self {
            execution_id: execution_id.to_string(),
            agent_id: agent_id.to_string(),
            status: ExecutionStatus::Queued,
            message: message.to_string(),
            input,
            result: None,
            error: None,
            usage: None,
            session_id: None,
            user_id: None,
            parent_execution_id: None,
            root_execution_id: None,
            delegation_depth: 0,
            started_at: None,
            completed_at: None,
            created_at: Utc::now(),
        }
    }
}

#[derive(Default)]
struct State {
    records: HashMap<String, ExecutionRecord>,
    order: VecDeque<String>,
    running: HashMap<String, CancellationToken>,
}

/// The execution table of this process.
#[derive(Default)]
pub struct ExecutionLog {
    state: Mutex<State>,
}

/// What a cancel request achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    NotFound,
    /// Already finished.
    NotCancellable(ExecutionStatus),
}

impl ExecutionLog {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new execution and returns its cancellation handle.
    pub fn start(&self, record: ExecutionRecord) -> CancellationToken {
        let token = CancellationToken::new();
        let mut state = self.lock();
        let id = record.execution_id.clone();
        if state.records.insert(id.clone(), record).is_none() {
            state.order.push_back(id.clone());
        }
        state.running.insert(id, token.clone());
        while state.order.len() > MAX_RECORDS {
            if let Some(old) = state.order.pop_front() {
                if !state.running.contains_key(&old) {
                    state.records.remove(&old);
                } else {
                    state.order.push_back(old);
                    break;
                }
            }
        }
        token
    }

    /// Applies `change` to a record.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut ExecutionRecord)) {
        if let Some(record) = self.lock().records.get_mut(id) {
            change(record);
        }
    }

    /// Marks a record finished and forgets its cancellation handle. A record already
    /// cancelled by the API stays cancelled.
    pub fn finish(&self, id: &str, change: impl FnOnce(&mut ExecutionRecord)) {
        let mut state = self.lock();
        state.running.remove(id);
        if let Some(record) = state.records.get_mut(id) {
            let was_cancelled = record.status == ExecutionStatus::Cancelled;
            change(record);
            if was_cancelled {
                record.status = ExecutionStatus::Cancelled;
            }
            record.completed_at.get_or_insert_with(Utc::now);
        }
    }

    pub fn get(&self, id: &str) -> Option<ExecutionRecord> {
        self.lock().records.get(id).cloned()
    }

    pub fn cancel(&self, id: &str) -> CancelOutcome {
        let mut state = self.lock();
        let Some(status) = state.records.get(id).map(|r| r.status) else {
            return CancelOutcome::NotFound;
        };
        if status.is_terminal() {
            return CancelOutcome::NotCancellable(status);
        }
        if let Some(token) = state.running.get(id) {
            token.cancel();
        }
        if let Some(record) = state.records.get_mut(id) {
            record.status = ExecutionStatus::Cancelled;
            record.completed_at = Some(Utc::now());
        }
        CancelOutcome::Cancelled
    }

    /// Records, newest first, optionally of one agent or session.
    pub fn list(
        &self,
        agent_id: Option<&str>,
        session_id: Option<&str>,
        limit: usize,
    ) -> Vec<ExecutionRecord> {
        let state = self.lock();
        state
            .order
            .iter()
            .rev()
            .filter_map(|id| state.records.get(id))
            .filter(|r| agent_id.is_none_or(|a| r.agent_id == a))
            .filter(|r| session_id.is_none_or(|s| r.session_id.as_deref() == Some(s)))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn running_count(&self) -> usize {
        self.lock().running.len()
    }
}
