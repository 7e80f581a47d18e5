//! Executions and their steps in memory: [`ExecutionStore`] for [`MemoryStore`], bounded to
//! the newest [`MAX_EXECUTIONS`] (unfinished ones are always kept).

use std::collections::hash_map::Entry;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{KeptExecution, KeptStep, MAX_EXECUTIONS, MemoryStore, Snapshot, kept_json};
use crate::error::StoreError;
use crate::records::{
    CancelResult, ExecutionFilter, ExecutionOutcome, ExecutionRecord, ExecutionStatus,
    ExecutionStore, StepRecord,
};

fn matches(record: &ExecutionRecord, filter: &ExecutionFilter) -> bool {
    filter
        .agent_id
        .as_ref()
        .is_none_or(|a| &record.agent_id == a)
        && filter
            .session_id
            .as_ref()
            .is_none_or(|s| record.session_id.as_ref() == Some(s))
        && filter
            .user_id
            .as_ref()
            .is_none_or(|u| record.user_id.as_ref() == Some(u))
        && filter.status.is_none_or(|s| record.status == s)
        && filter.root_execution_id.as_ref().is_none_or(|r| {
            record.root_execution_id.as_ref() == Some(r) || &record.execution_id == r
        })
}

#[async_trait]
impl ExecutionStore for MemoryStore {
    async fn insert_execution(&self, record: ExecutionRecord) -> Result<(), StoreError> {
        let id: Arc<str> = Arc::from(record.execution_id.as_str());
        let mut kept = Box::new(KeptExecution::new(record));
        let mut evicted = Vec::new();
        let mut guard = self.lock();
        let state = &mut *guard;
        match state.executions.entry(id) {
            Entry::Occupied(mut entry) => {
                // The same id again: the new record, the steps recorded so far.
                kept.steps = std::mem::take(&mut entry.get_mut().steps);
                evicted.push((Some(entry.insert(kept)), None));
            }
            Entry::Vacant(entry) => {
                state.order.push_back(Arc::clone(entry.key()));
                entry.insert(kept);
            }
        }
        while state.order.len() > MAX_EXECUTIONS {
            // Drop the oldest finished execution; keep unfinished ones whatever their age.
            let Some(position) = state
                .order
                .iter()
                .position(|id| state.executions.get(&**id).is_none_or(|r| r.done))
            else {
                break;
            };
            if let Some(old) = state.order.remove(position) {
                evicted.push((state.executions.remove(&old), state.approvals.remove(&*old)));
            }
        }
        // Freed after the lock: the evicted records are cold memory, and other requests
        // need not wait while it is walked.
        drop(guard);
        drop(evicted);
        Ok(())
    }

    async fn mark_running(
        &self,
        execution_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.executions.get_mut(execution_id) {
            Some(kept) if kept.fields.status == ExecutionStatus::Queued => {
                kept.fields.status = ExecutionStatus::Running;
                kept.fields.started_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn finish_execution(
        &self,
        execution_id: &str,
        outcome: ExecutionOutcome,
        steps: Vec<StepRecord>,
    ) -> Result<ExecutionStatus, StoreError> {
        let result = kept_json(outcome.result);
        let usage = kept_json(outcome.usage);
        let steps: Vec<KeptStep> = steps.into_iter().map(KeptStep::new).collect();
        let mut state = self.lock();
        // Steps of an execution not kept (or no longer) have nothing to belong to.
        match state.executions.get_mut(execution_id) {
            Some(kept) => {
                if kept.fields.status != ExecutionStatus::Cancelled {
                    kept.fields.status = outcome.status;
                }
                kept.json.result = result;
                kept.json.usage = usage;
                if kept.fields.error.is_none() {
                    kept.fields.error = outcome.error;
                }
                kept.fields.completed_at.get_or_insert(outcome.completed_at);
                kept.steps.extend(steps);
                kept.done = true;
                Ok(kept.fields.status)
            }
            None => Ok(outcome.status),
        }
    }

    async fn get_execution(
        &self,
        execution_id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        // Parsed after the lock is released: every invoke's writes wait on it.
        let snapshot = self
            .lock()
            .executions
            .get(execution_id)
            .map(|kept| kept.snapshot());
        Ok(snapshot.map(Snapshot::record))
    }

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let state = self.lock();
        // Sorted by reference: only the page returned is copied, and parsed after the lock.
        let mut found: Vec<&KeptExecution> = state
            .executions
            .values()
            .map(|kept| &**kept)
            .filter(|kept| matches(&kept.fields, filter))
            .collect();
        if filter.root_execution_id.is_some() {
            found.sort_by_key(|kept| (kept.fields.delegation_depth, kept.fields.created_at));
        } else {
            found.sort_by(|a, b| {
                (b.fields.created_at, &b.fields.execution_id)
                    .cmp(&(a.fields.created_at, &a.fields.execution_id))
            });
        }
        let page: Vec<Snapshot> = found
            .into_iter()
            .skip(filter.offset.max(0) as usize)
            .take(filter.limit.max(0) as usize)
            .map(KeptExecution::snapshot)
            .collect();
        drop(state);
        Ok(page.into_iter().map(Snapshot::record).collect())
    }

    async fn workflow(&self, execution_id: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        let Some(record) = self.get_execution(execution_id).await? else {
            return Ok(Vec::new());
        };
        let root = record.root_execution_id.unwrap_or(record.execution_id);
        self.list_executions(&ExecutionFilter {
            root_execution_id: Some(root),
            limit: 10_000,
            ..ExecutionFilter::default()
        })
        .await
    }

    async fn execution_steps(&self, execution_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let kept: Vec<KeptStep> = self
            .lock()
            .executions
            .get(execution_id)
            .map(|kept| kept.steps.clone())
            .unwrap_or_default();
        let mut steps: Vec<StepRecord> = kept.iter().map(KeptStep::record).collect();
        steps.sort_by_key(|s| s.sequence);
        Ok(steps)
    }

    async fn cancel_execution(
        &self,
        execution_id: &str,
        at: DateTime<Utc>,
    ) -> Result<CancelResult, StoreError> {
        let mut state = self.lock();
        Ok(match state.executions.get_mut(execution_id) {
            None => CancelResult::NotFound,
            Some(kept) if kept.fields.status.is_terminal() => {
                CancelResult::AlreadyFinished(kept.fields.status)
            }
            Some(kept) => {
                // A queued one never starts now (claims take queued ones only).
                kept.done = kept.fields.status == ExecutionStatus::Queued;
                let record = &mut kept.fields;
                record.status = ExecutionStatus::Cancelled;
                record.completed_at = Some(at);
                record
                    .error
                    .get_or_insert_with(|| "Cancelled by request".to_string());
                CancelResult::Cancelled
            }
        })
    }

    async fn cancelled_among(&self, execution_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let state = self.lock();
        Ok(execution_ids
            .iter()
            .filter(|id| {
                state
                    .executions
                    .get(id.as_str())
                    .is_some_and(|kept| kept.fields.status == ExecutionStatus::Cancelled)
            })
            .cloned()
            .collect())
    }

    async fn fail_orphans(&self, _alive: &[String], _reason: &str) -> Result<u64, StoreError> {
        // Nothing outlives the process that owns this memory.
        Ok(0)
    }

    async fn claim_queued_execution(
        &self,
        execution_id: &str,
        instance: &str,
        alive: &[String],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(record) = state
            .executions
            .get_mut(execution_id)
            .map(|kept| &mut kept.fields)
        else {
            return Ok(false);
        };
        let orphaned = record.status == ExecutionStatus::Running
            && record
                .instance_id
                .as_ref()
                .is_none_or(|i| !alive.contains(i));
        if record.status != ExecutionStatus::Queued && !orphaned {
            return Ok(false);
        }
        record.status = ExecutionStatus::Running;
        record.instance_id = Some(instance.to_string());
        record.started_at.get_or_insert(at);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::records::{ApprovalRecord, ApprovalStatus, ApprovalStore};

    /// JSON kept as text comes back exactly: key order, big and negative integers,
    /// floats, escapes, nesting, empty containers.
    #[tokio::test]
    async fn records_come_back_exactly_as_given() {
        let store = MemoryStore::new();
        // 7 × 3e-6 and 952.4673882682695 are floats a fast (inexact) parser reads back one
        // bit off.
        let tricky = json!({
            "z": 1, "a": [u64::MAX, i64::MIN, 0.1, 1e300, -2.5e-8, 7.0 * 3e-6, 952.4673882682695],
            "text": "quote \" backslash \\ newline \n tab \t é 🦀 \u{0001}",
            "nested": {"deeper": {"deepest": [[], {}, null, true]}}
        });
        let mut input = Map::new();
        input.insert("second".into(), json!("b"));
        input.insert("first".into(), tricky.clone());
        let mut record = ExecutionRecord::new("e1", "agent", "hello", input);
        record.options = Some(json!({"async": false, "timeout_ms": null}));
        store.insert_execution(record.clone()).await.unwrap();
        assert_eq!(store.get_execution("e1").await.unwrap().unwrap(), record);

        let completed_at = Utc::now();
        let step = StepRecord {
            step_type: "llm_call".into(),
            sequence: 1,
            data: tricky.clone(),
            duration_ms: 3,
            created_at: completed_at,
        };
        let outcome = ExecutionOutcome {
            status: ExecutionStatus::Completed,
            result: Some(json!({"raw_text": "done", "output": tricky})),
            usage: Some(json!({"input_tokens": 3, "cost_usd": 0.000125})),
            error: None,
            completed_at,
        };
        store
            .finish_execution("e1", outcome.clone(), vec![step.clone()])
            .await
            .unwrap();
        let expected = ExecutionRecord {
            status: ExecutionStatus::Completed,
            result: outcome.result,
            usage: outcome.usage,
            completed_at: Some(completed_at),
            ..record
        };
        assert_eq!(store.get_execution("e1").await.unwrap().unwrap(), expected);
        let listed = store
            .list_executions(&ExecutionFilter {
                limit: 10,
                ..ExecutionFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(listed, vec![expected]);
        assert_eq!(store.execution_steps("e1").await.unwrap(), vec![step]);
        // Key order survives, not only equality.
        let input = store.get_execution("e1").await.unwrap().unwrap().input;
        assert_eq!(input.keys().collect::<Vec<_>>(), ["second", "first"]);
    }

    /// Deeper than serde_json's parser allows by default (128): a value read at that limit
    /// and wrapped by the engine still comes back as it was, not as text.
    #[tokio::test]
    async fn deep_json_comes_back() {
        let store = MemoryStore::new();
        let mut deep = json!("bottom");
        for _ in 0..140 {
            deep = json!([deep]);
        }
        let mut record = ExecutionRecord::new("deep", "agent", "m", Map::new());
        record.options = Some(deep.clone());
        store.insert_execution(record).await.unwrap();
        let step = StepRecord {
            step_type: "tool_call".into(),
            sequence: 1,
            data: json!({"arguments": deep.clone()}),
            duration_ms: 0,
            created_at: Utc::now(),
        };
        store
            .finish_execution("deep", outcome(), vec![step.clone()])
            .await
            .unwrap();
        let loaded = store.get_execution("deep").await.unwrap().unwrap();
        assert_eq!(loaded.options, Some(deep));
        assert_eq!(store.execution_steps("deep").await.unwrap(), vec![step]);
    }

    fn outcome() -> ExecutionOutcome {
        ExecutionOutcome {
            status: ExecutionStatus::Completed,
            result: None,
            usage: None,
            error: None,
            completed_at: Utc::now(),
        }
    }

    /// The same id inserted again keeps the steps recorded so far; steps and approvals of an
    /// execution not kept are not stored (nothing would ever drop them).
    #[tokio::test]
    async fn steps_and_approvals_belong_to_a_kept_execution() {
        let store = MemoryStore::new();
        let step = StepRecord {
            step_type: "llm_call".into(),
            sequence: 1,
            data: json!({}),
            duration_ms: 0,
            created_at: Utc::now(),
        };
        store
            .insert_execution(ExecutionRecord::new("e", "agent", "m", Map::new()))
            .await
            .unwrap();
        store
            .finish_execution("e", outcome(), vec![step.clone()])
            .await
            .unwrap();
        store
            .insert_execution(ExecutionRecord::new("e", "agent", "again", Map::new()))
            .await
            .unwrap();
        assert_eq!(
            store.execution_steps("e").await.unwrap(),
            vec![step.clone()]
        );
        assert_eq!(store.lock().order.len(), 1);

        let status = store
            .finish_execution("unknown", outcome(), vec![step])
            .await
            .unwrap();
        assert_eq!(status, ExecutionStatus::Completed);
        assert!(store.execution_steps("unknown").await.unwrap().is_empty());
        let approval = ApprovalRecord {
            approval_id: "a".into(),
            execution_id: "unknown".into(),
            tool_name: "t".into(),
            call_id: "c".into(),
            arguments: json!({}),
            status: ApprovalStatus::Pending,
            reason: None,
            decided_by: None,
            created_at: Utc::now(),
            decided_at: None,
        };
        store.request_approvals(&[approval]).await.unwrap();
        assert!(store.lock().approvals.is_empty());
    }

    #[tokio::test]
    async fn the_oldest_finished_executions_make_room() {
        let store = MemoryStore::new();
        let running = ExecutionRecord::new("running", "agent", "m", Map::new());
        store.insert_execution(running).await.unwrap();
        store.mark_running("running", Utc::now()).await.unwrap();
        for n in 0..MAX_EXECUTIONS + 5 {
            let id = format!("done-{n}");
            let mut record = ExecutionRecord::new(&id, "agent", "m", Map::new());
            record.status = ExecutionStatus::Completed;
            store.insert_execution(record).await.unwrap();
        }
        assert!(store.get_execution("running").await.unwrap().is_some());
        assert!(store.get_execution("done-5").await.unwrap().is_none());
        assert!(store.get_execution("done-6").await.unwrap().is_some());
        assert_eq!(store.lock().executions.len(), MAX_EXECUTIONS);
    }

    /// A cancelled run is kept until its task records the end (which then reports the
    /// cancel); a queued execution cancelled before it started can go at once.
    #[tokio::test]
    async fn a_cancelled_run_stays_until_its_end_is_recorded() {
        let store = MemoryStore::new();
        for id in ["running", "queued"] {
            let record = ExecutionRecord::new(id, "agent", "m", Map::new());
            store.insert_execution(record).await.unwrap();
        }
        store.mark_running("running", Utc::now()).await.unwrap();
        for id in ["running", "queued"] {
            let cancelled = store.cancel_execution(id, Utc::now()).await.unwrap();
            assert!(matches!(cancelled, CancelResult::Cancelled), "{id}");
        }
        let fill = |n: usize| {
            let id = format!("done-{n}");
            let mut record = ExecutionRecord::new(&id, "agent", "m", Map::new());
            record.status = ExecutionStatus::Completed;
            record
        };
        for n in 0..MAX_EXECUTIONS {
            store.insert_execution(fill(n)).await.unwrap();
        }
        assert!(store.get_execution("queued").await.unwrap().is_none());
        assert!(store.get_execution("running").await.unwrap().is_some());
        assert!(store.get_execution("done-0").await.unwrap().is_none());
        let status = store
            .finish_execution("running", outcome(), Vec::new())
            .await
            .unwrap();
        assert_eq!(status, ExecutionStatus::Cancelled);
        store.insert_execution(fill(MAX_EXECUTIONS)).await.unwrap();
        assert!(store.get_execution("running").await.unwrap().is_none());
    }
}
