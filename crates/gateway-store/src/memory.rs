//! The in-memory store (`persistence.enabled: false`): the same behaviour as the SQL store,
//! kept in this process and bounded.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::records::*;
use crate::{CancelResult, Store, StoreError};

/// Most executions kept; the oldest finished ones are dropped first.
const MAX_EXECUTIONS: usize = 10_000;
/// Most conversations kept; the least recently updated are dropped first.
const MAX_CONVERSATIONS: usize = 10_000;

/// A JSON value kept as its text: one allocation where the tree takes one per key, string and
/// container. Thousands of executions are kept, so their JSON (input, options, result, usage,
/// step data) lived in tens of thousands of small blocks; creating them and dropping the
/// oldest touched memory long out of cache on every invoke (about a fifth of an invoke's CPU
/// with 10 000 executions kept against 100). Read back only when asked for.
#[derive(Debug, Clone)]
struct JsonText(Box<str>);

impl JsonText {
    fn new(value: &Value) -> Self {
        Self(value.to_string().into_boxed_str())
    }

    fn value(&self) -> Value {
        // The text is serde_json's own rendering of a value, so it parses back exactly (floats
        // too: `float_roundtrip`). Without a depth limit: a value read from outside at the
        // parser's limit gets a few more levels when the engine wraps it (tool arguments in a
        // step), and it was already that deep in memory.
        let mut reader = serde_json::Deserializer::from_str(&self.0);
        reader.disable_recursion_limit();
        Value::deserialize(&mut reader).unwrap_or_else(|err| {
            tracing::warn!(error = %err, "kept JSON did not parse back; returned as text");
            Value::String(self.0.to_string())
        })
    }
}

fn kept_json(value: Option<Value>) -> Option<JsonText> {
    value.as_ref().map(JsonText::new)
}

fn read_json(text: &Option<JsonText>) -> Option<Value> {
    text.as_ref().map(JsonText::value)
}

/// An execution as kept here: the record's plain fields, its JSON fields as text, and its
/// steps.
#[derive(Debug)]
struct KeptExecution {
    /// The record with `input` empty and `options`, `result` and `usage` absent.
    fields: ExecutionRecord,
    json: KeptJson,
    steps: Vec<KeptStep>,
    /// Nothing runs it any more: inserted finished, finished, or cancelled before it started.
    /// A cancelled run is not done until its task records the end, so it is kept till then.
    done: bool,
}

/// The JSON fields of an execution, as text.
#[derive(Debug, Clone)]
struct KeptJson {
    input: Option<JsonText>,
    options: Option<JsonText>,
    result: Option<JsonText>,
    usage: Option<JsonText>,
}

/// A copy of a kept execution taken under the lock (plain fields and texts: copies, no
/// parsing), made into a record once the lock is released.
struct Snapshot(ExecutionRecord, KeptJson);

impl Snapshot {
    fn record(self) -> ExecutionRecord {
        let Snapshot(fields, json) = self;
        let input = match json.input.as_ref().map(JsonText::value) {
            Some(Value::Object(input)) => input,
            _ => Map::new(),
        };
        ExecutionRecord {
            input,
            options: read_json(&json.options),
            result: read_json(&json.result),
            usage: read_json(&json.usage),
            ..fields
        }
    }
}

impl KeptExecution {
    fn new(mut record: ExecutionRecord) -> Self {
        let input = std::mem::take(&mut record.input);
        Self {
            json: KeptJson {
                input: (!input.is_empty()).then(|| JsonText::new(&Value::Object(input))),
                options: kept_json(record.options.take()),
                result: kept_json(record.result.take()),
                usage: kept_json(record.usage.take()),
            },
            steps: Vec::new(),
            done: record.status.is_terminal(),
            fields: record,
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot(self.fields.clone(), self.json.clone())
    }
}

/// A step as kept here (its data as text).
#[derive(Debug, Clone)]
struct KeptStep {
    step_type: String,
    sequence: i64,
    data: JsonText,
    duration_ms: i64,
    created_at: DateTime<Utc>,
}

impl KeptStep {
    fn new(step: StepRecord) -> Self {
        Self {
            data: JsonText::new(&step.data),
            step_type: step.step_type,
            sequence: step.sequence,
            duration_ms: step.duration_ms,
            created_at: step.created_at,
        }
    }

    fn record(&self) -> StepRecord {
        StepRecord {
            step_type: self.step_type.clone(),
            sequence: self.sequence,
            data: self.data.value(),
            duration_ms: self.duration_ms,
            created_at: self.created_at,
        }
    }
}

struct State {
    /// Boxed, in a table sized up front: growing or rehashing the table under the lock would
    /// otherwise move every record while all requests wait (a measured 30–70 ms stall).
    /// Keyed by execution id, shared with `order`.
    executions: HashMap<Arc<str>, Box<KeptExecution>>,
    order: VecDeque<Arc<str>>,
    approvals: HashMap<String, Vec<ApprovalRecord>>,
    mcp_servers: BTreeMap<String, McpServerRecord>,
    user_configs: BTreeMap<(String, String), UserConfigRecord>,
    schedules: BTreeMap<String, ScheduleRecord>,
    notifications: Vec<NotificationRecord>,
    conversations: HashMap<String, ConversationRecord>,
    /// Conversation ids by last update, oldest first (eviction without a scan).
    conversation_order: BTreeMap<(DateTime<Utc>, String), ()>,
    messages: HashMap<String, Vec<MessageRecord>>,
}

impl Default for State {
    fn default() -> Self {
        // Twice the bound: removals leave tombstones, and a table kept half empty clears
        // them by cheap in-place rehashes of pointers instead of growing.
        let capacity = 2 * MAX_EXECUTIONS;
        Self {
            executions: HashMap::with_capacity(capacity),
            order: VecDeque::with_capacity(MAX_EXECUTIONS + 1),
            approvals: HashMap::new(),
            mcp_servers: BTreeMap::new(),
            user_configs: BTreeMap::new(),
            schedules: BTreeMap::new(),
            notifications: Vec::new(),
            conversations: HashMap::new(),
            conversation_order: BTreeMap::new(),
            messages: HashMap::new(),
        }
    }
}

/// Everything in memory, nothing survives the process.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

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
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

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

    async fn heartbeat(&self, _instance: &InstanceRecord) -> Result<(), StoreError> {
        Ok(())
    }

    async fn instances(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn remove_instance(&self, _instance_id: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn fail_orphans(&self, _alive: &[String], _reason: &str) -> Result<u64, StoreError> {
        // Nothing outlives the process that owns this memory.
        Ok(0)
    }

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

    async fn insert_mcp_server(&self, record: &McpServerRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.mcp_servers.values().any(|r| r.name == record.name)
            || state.mcp_servers.contains_key(&record.id)
        {
            return Err(StoreError::Conflict(format!(
                "MCP server '{}'",
                record.name
            )));
        }
        state.mcp_servers.insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn update_mcp_server(&self, record: &McpServerRecord) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state
            .mcp_servers
            .values()
            .any(|r| r.name == record.name && r.id != record.id)
        {
            return Err(StoreError::Conflict(format!(
                "MCP server '{}'",
                record.name
            )));
        }
        Ok(match state.mcp_servers.get_mut(&record.id) {
            Some(existing) => {
                let created_at = existing.created_at;
                *existing = record.clone();
                existing.created_at = created_at;
                true
            }
            None => false,
        })
    }

    async fn delete_mcp_server(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().mcp_servers.remove(id).is_some())
    }

    async fn get_mcp_server(&self, id: &str) -> Result<Option<McpServerRecord>, StoreError> {
        Ok(self.lock().mcp_servers.get(id).cloned())
    }

    async fn list_mcp_servers(&self) -> Result<Vec<McpServerRecord>, StoreError> {
        let mut all: Vec<McpServerRecord> = self.lock().mcp_servers.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn put_user_config(&self, record: &UserConfigRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        let key = (record.user_id.clone(), record.agent_id.clone());
        let created_at = state
            .user_configs
            .get(&key)
            .map_or(record.created_at, |r| r.created_at);
        let mut record = record.clone();
        record.created_at = created_at;
        state.user_configs.insert(key, record);
        Ok(())
    }

    async fn get_user_config(
        &self,
        user_id: &str,
        agent_id: &str,
    ) -> Result<Option<UserConfigRecord>, StoreError> {
        Ok(self
            .lock()
            .user_configs
            .get(&(user_id.to_string(), agent_id.to_string()))
            .cloned())
    }

    async fn delete_user_config(&self, user_id: &str, agent_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .user_configs
            .remove(&(user_id.to_string(), agent_id.to_string()))
            .is_some())
    }

    async fn put_schedule(&self, record: &ScheduleRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        let mut record = record.clone();
        if let Some(existing) = state.schedules.get(&record.id) {
            record.last_run_at = existing.last_run_at.or(record.last_run_at);
        }
        state.schedules.insert(record.id.clone(), record);
        Ok(())
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        Ok(self.lock().schedules.values().cloned().collect())
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        Ok(self.lock().schedules.get(id).cloned())
    }

    async fn delete_schedule(&self, id: &str, _at: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.lock().schedules.remove(id).is_some())
    }

    async fn claim_schedule_fire(
        &self,
        id: &str,
        fire_at: DateTime<Utc>,
        next_run_at: Option<DateTime<Utc>>,
        _advisory: bool,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(record) = state.schedules.get_mut(id) else {
            return Ok(false);
        };
        if record.last_run_at.is_some_and(|last| last >= fire_at) {
            return Ok(false);
        }
        record.last_run_at = Some(fire_at);
        record.next_run_at = next_run_at;
        Ok(true)
    }

    async fn insert_notification(&self, record: &NotificationRecord) -> Result<i64, StoreError> {
        let mut state = self.lock();
        let id = state.notifications.last().map_or(1, |n| n.id + 1);
        let mut record = record.clone();
        record.id = id;
        state.notifications.push(record);
        if state.notifications.len() > MAX_EXECUTIONS {
            state.notifications.remove(0);
        }
        Ok(id)
    }

    async fn update_notification(
        &self,
        id: i64,
        status: &str,
        attempts: i64,
        last_error: Option<&str>,
        delivered_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(record) = state.notifications.iter_mut().find(|n| n.id == id) {
            record.status = status.to_string();
            record.attempts = attempts;
            record.last_error = last_error.map(str::to_string);
            record.delivered_at = delivered_at;
        }
        Ok(())
    }

    async fn get_notification(&self, id: i64) -> Result<Option<NotificationRecord>, StoreError> {
        Ok(self
            .lock()
            .notifications
            .iter()
            .find(|n| n.id == id)
            .cloned())
    }

    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<(Vec<NotificationRecord>, i64), StoreError> {
        let state = self.lock();
        let matching: Vec<&NotificationRecord> = state
            .notifications
            .iter()
            .rev()
            .filter(|n| filter.status.as_ref().is_none_or(|s| &n.status == s))
            .filter(|n| filter.agent_id.as_ref().is_none_or(|a| &n.agent_id == a))
            .filter(|n| filter.channel.as_ref().is_none_or(|c| &n.channel == c))
            .filter(|n| {
                filter
                    .execution_id
                    .as_ref()
                    .is_none_or(|e| &n.execution_id == e)
            })
            .collect();
        let total = matching.len() as i64;
        let page = matching
            .into_iter()
            .skip(filter.offset.max(0) as usize)
            .take(filter.limit.max(0) as usize)
            .cloned()
            .collect();
        Ok((page, total))
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

    async fn append_turn(&self, turn: &ConversationTurn) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(previous) = state
            .conversations
            .get(&turn.conversation_id)
            .map(|c| c.updated_at)
        {
            state
                .conversation_order
                .remove(&(previous, turn.conversation_id.clone()));
        }
        let conversation = state
            .conversations
            .entry(turn.conversation_id.clone())
            .or_insert_with(|| ConversationRecord {
                conversation_id: turn.conversation_id.clone(),
                agent_id: turn.agent_id.clone(),
                user_id: turn.user_id.clone(),
                title: turn.title.clone(),
                summary: None,
                message_count: 0,
                created_at: turn.at,
                updated_at: turn.at,
                ended_at: None,
            });
        conversation.message_count += turn.messages.len() as i64;
        conversation.updated_at = turn.at;
        if conversation.title.is_none() {
            conversation.title = turn.title.clone();
        }
        let messages = state
            .messages
            .entry(turn.conversation_id.clone())
            .or_default();
        for (role, content) in &turn.messages {
            messages.push(MessageRecord {
                message_id: crate::new_message_id(),
                role: role.clone(),
                content: content.clone(),
                created_at: turn.at,
            });
        }
        state
            .conversation_order
            .insert((turn.at, turn.conversation_id.clone()), ());
        while state.conversations.len() > MAX_CONVERSATIONS {
            let Some(((_, oldest), ())) = state.conversation_order.pop_first() else {
                break;
            };
            state.conversations.remove(&oldest);
            state.messages.remove(&oldest);
        }
        Ok(())
    }

    async fn get_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(self.lock().conversations.get(conversation_id).cloned())
    }

    async fn list_conversations(
        &self,
        user_id: Option<&str>,
        agent_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let state = self.lock();
        let mut found: Vec<ConversationRecord> = state
            .conversations
            .values()
            .filter(|c| c.user_id.as_deref() == user_id)
            .filter(|c| agent_id.is_none_or(|a| c.agent_id == a))
            .cloned()
            .collect();
        found.sort_by(|a, b| {
            (b.updated_at, &b.conversation_id).cmp(&(a.updated_at, &a.conversation_id))
        });
        Ok(found
            .into_iter()
            .skip(offset.max(0) as usize)
            .take(limit.max(0) as usize)
            .collect())
    }

    async fn conversation_messages(
        &self,
        conversation_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        Ok(self
            .lock()
            .messages
            .get(conversation_id)
            .map(|m| {
                m.iter()
                    .skip(offset.max(0) as usize)
                    .take(limit.max(0) as usize)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn end_conversation(
        &self,
        conversation_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(match self.lock().conversations.get_mut(conversation_id) {
            Some(conversation) => {
                conversation.ended_at.get_or_insert(at);
                true
            }
            None => false,
        })
    }

    async fn delete_conversation(&self, conversation_id: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        state.messages.remove(conversation_id);
        match state.conversations.remove(conversation_id) {
            Some(removed) => {
                state
                    .conversation_order
                    .remove(&(removed.updated_at, conversation_id.to_string()));
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
