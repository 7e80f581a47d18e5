//! Sessions of server-orchestrated flows, and where they are kept.
//!
//! A transition is *claimed* before its handler runs and *committed* after: the claim is the
//! atomic check-and-advance (of N concurrent identical calls exactly one claims, the others
//! get `step_not_allowed`), and a handler that fails *releases* the claim so the session is
//! unchanged and the step can be retried. A claim has a lease, so a process that dies while
//! holding one blocks nothing for long.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::{HistoryEntry, SessionState};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One session of a server-orchestrated flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowSession {
    pub session_id: String,
    pub flow_name: String,
    /// `""` until the first step.
    pub current_step: String,
    pub allowed_next_steps: Vec<String>,
    pub history: Vec<HistoryEntry>,
    /// Free-form state the step handlers read and write.
    pub data: Map<String, Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl FlowSession {
    pub fn new(session_id: String, flow_name: &str, entry_step: &str) -> Self {
        let now = now_ms();
        Self {
            session_id,
            flow_name: flow_name.to_string(),
            current_step: String::new(),
            allowed_next_steps: vec![entry_step.to_string()],
            history: Vec::new(),
            data: Map::new(),
            created_ms: now,
            updated_ms: now,
        }
    }

    /// Complete when the step just run allows nothing after it.
    pub fn is_complete(&self) -> bool {
        !self.current_step.is_empty() && self.allowed_next_steps.is_empty()
    }

    pub fn state(&self) -> SessionState {
        SessionState {
            session_id: self.session_id.clone(),
            flow_name: self.flow_name.clone(),
            current_step: self.current_step.clone(),
            allowed_next_steps: self.allowed_next_steps.clone(),
            history: self.history.clone(),
            data: self.data.clone(),
            flow_complete: self.is_complete(),
        }
    }

    /// The session after `step` succeeded.
    pub fn advanced(
        &self,
        step: &str,
        input: Value,
        output: Value,
        next: Vec<String>,
        data: Map<String, Value>,
    ) -> Self {
        let mut session = self.clone();
        session.history.push(HistoryEntry {
            step_name: step.to_string(),
            input,
            output,
        });
        session.current_step = step.to_string();
        session.allowed_next_steps = next;
        session.data = data;
        session.updated_ms = now_ms();
        session
    }
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The transition is ours: run the handler, then commit or release with `token`.
    Granted {
        session: FlowSession,
        token: String,
    },
    /// The step is not allowed now (or another call holds the session).
    NotAllowed {
        session: FlowSession,
    },
    NotFound,
}

/// A store failure (Redis or the database is unreachable, a row is unreadable...).
#[derive(Debug, Clone, thiserror::Error)]
#[error("session store: {0}")]
pub struct SessionStoreError(pub String);

/// Where sessions live. Every implementation makes `claim` atomic.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create(&self, session: &FlowSession) -> Result<(), SessionStoreError>;

    /// The session, unless unknown or expired.
    async fn get(&self, session_id: &str) -> Result<Option<FlowSession>, SessionStoreError>;

    /// Claims the transition to `step` if it is allowed and nobody holds the session.
    async fn claim(
        &self,
        session_id: &str,
        step: &str,
        lease: Duration,
    ) -> Result<Claim, SessionStoreError>;

    /// Stores `updated` and releases the claim; `false` if the claim was lost (lease over).
    async fn commit(&self, updated: &FlowSession, token: &str) -> Result<bool, SessionStoreError>;

    /// Gives the claim up, leaving the session as it was.
    async fn release(&self, session_id: &str, token: &str) -> Result<(), SessionStoreError>;
}

pub(crate) fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

struct Entry {
    session: FlowSession,
    /// (token, lease end in ms)
    claim: Option<(String, i64)>,
    last_used_ms: i64,
    /// Order of last use (milliseconds tie): the smallest is evicted first.
    touched: u64,
}

/// Sessions in this process: bounded in number (the least recently used go first) and
/// forgotten after an idle TTL.
pub struct MemorySessionStore {
    entries: Mutex<HashMap<String, Entry>>,
    max_sessions: usize,
    ttl: Duration,
    clock: std::sync::atomic::AtomicU64,
}

impl Default for MemorySessionStore {
    /// 10 000 sessions, 1 hour idle TTL.
    fn default() -> Self {
        Self::new(10_000, Duration::from_secs(3600))
    }
}

impl MemorySessionStore {
    pub fn new(max_sessions: usize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_sessions: max_sessions.max(1),
            ttl,
            clock: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self) -> u64 {
        self.clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn expired(&self, entry: &Entry, now: i64) -> bool {
        now - entry.last_used_ms >= self.ttl.as_millis() as i64
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(&self, session: &FlowSession) -> Result<(), SessionStoreError> {
        let now = now_ms();
        let mut entries = self.lock();
        let ttl = self.ttl.as_millis() as i64;
        entries.retain(|_, e| now - e.last_used_ms < ttl);
        while entries.len() >= self.max_sessions {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.touched)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => {
                    entries.remove(&id);
                }
                None => break,
            }
        }
        entries.insert(
            session.session_id.clone(),
            Entry {
                session: session.clone(),
                claim: None,
                last_used_ms: now,
                touched: self.tick(),
            },
        );
        Ok(())
    }

    async fn get(&self, session_id: &str) -> Result<Option<FlowSession>, SessionStoreError> {
        let now = now_ms();
        let mut entries = self.lock();
        if entries
            .get(session_id)
            .is_some_and(|e| self.expired(e, now))
        {
            entries.remove(session_id);
            return Ok(None);
        }
        let touched = self.tick();
        Ok(entries.get_mut(session_id).map(|e| {
            e.last_used_ms = now;
            e.touched = touched;
            e.session.clone()
        }))
    }

    async fn claim(
        &self,
        session_id: &str,
        step: &str,
        lease: Duration,
    ) -> Result<Claim, SessionStoreError> {
        let now = now_ms();
        let mut entries = self.lock();
        if entries
            .get(session_id)
            .is_some_and(|e| self.expired(e, now))
        {
            entries.remove(session_id);
        }
        let touched = self.tick();
        let Some(entry) = entries.get_mut(session_id) else {
            return Ok(Claim::NotFound);
        };
        entry.last_used_ms = now;
        entry.touched = touched;
        let held = entry.claim.as_ref().is_some_and(|(_, until)| *until > now);
        if held || !entry.session.allowed_next_steps.iter().any(|s| s == step) {
            return Ok(Claim::NotAllowed {
                session: entry.session.clone(),
            });
        }
        let token = new_token();
        entry.claim = Some((token.clone(), now + lease.as_millis() as i64));
        Ok(Claim::Granted {
            session: entry.session.clone(),
            token,
        })
    }

    async fn commit(&self, updated: &FlowSession, token: &str) -> Result<bool, SessionStoreError> {
        let mut entries = self.lock();
        match entries.get_mut(&updated.session_id) {
            Some(entry) if entry.claim.as_ref().is_some_and(|(t, _)| t == token) => {
                entry.session = updated.clone();
                entry.claim = None;
                entry.last_used_ms = now_ms();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, session_id: &str, token: &str) -> Result<(), SessionStoreError> {
        if let Some(entry) = self.lock().get_mut(session_id)
            && entry.claim.as_ref().is_some_and(|(t, _)| t == token)
        {
            entry.claim = None;
        }
        Ok(())
    }
}
