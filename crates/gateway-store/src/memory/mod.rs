//! The in-memory store (`persistence.enabled: false`): the same behaviour as the SQL store,
//! kept in this process and bounded. This file holds the store, its lock and state, and the
//! compact form executions are kept in; `<kind>.rs` implements that kind's trait.

mod approvals;
mod conversations;
mod executions;
mod instances;
mod mcp_servers;
mod memories;
mod notifications;
mod schedules;
mod user_configs;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::records::{
    ApprovalRecord, ConversationRecord, ExecutionRecord, McpServerRecord, MemoryRecord,
    NotificationRecord, ScheduleRecord, StepRecord, Store, UserConfigRecord,
};

/// Most executions kept; the oldest finished ones are dropped first.
const MAX_EXECUTIONS: usize = 10_000;
/// Most conversations kept; the least recently updated are dropped first.
const MAX_CONVERSATIONS: usize = 10_000;
/// Most messages kept per conversation; the oldest are dropped first (a session is restored
/// from the newest `sessions.max_messages`, 100 by default).
const MAX_MESSAGES_PER_CONVERSATION: usize = 200;

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
    /// Agents' memories by id (bounded by the core's per-scope limits).
    memories: HashMap<String, MemoryRecord>,
    schedules: BTreeMap<String, ScheduleRecord>,
    notifications: Vec<NotificationRecord>,
    conversations: HashMap<String, ConversationRecord>,
    /// Conversation ids by last update, oldest first (eviction without a scan).
    conversation_order: BTreeMap<(DateTime<Utc>, String), ()>,
    messages: HashMap<String, conversations::KeptMessages>,
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
            memories: HashMap::new(),
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

impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }
}
