//! Chat sessions cached in this process: bounded in count (least recently used evicted),
//! forgotten after an idle TTL, each keeping at most a fixed number of messages. The store
//! holds the truth (every completed turn, whether the session ended); a cached session
//! remembers how many stored messages it has seen, so a turn answered meanwhile by another
//! instance is noticed. Turns of one session run one at a time (the session's own lock),
//! different sessions in parallel.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gateway_llm::{Message, Role};
use gateway_store::ConversationRecord;
use serde::Serialize;
use serde_json::{Map, Value};

/// One conversation with one agent.
#[derive(Debug, Clone)]
pub struct ChatSession {
    pub id: String,
    pub agent_id: String,
    pub user_id: Option<String>,
    /// User, assistant and tool messages (no system prompt).
    pub messages: Vec<Message>,
    /// `input` accumulated over the turns.
    pub input: Map<String, Value>,
    pub turn_count: u32,
    /// How many messages the store held for this session when it was last read or written
    /// here: another count in the store means another instance answered a turn.
    pub stored_messages: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ChatSession {
    fn new(agent_id: &str, user_id: Option<String>) -> Self {
        let now = Utc::now();
        Self {
            id: new_session_id(),
            agent_id: agent_id.to_string(),
            user_id,
            messages: Vec::new(),
            input: Map::new(),
            turn_count: 0,
            stored_messages: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// A session known only by its id until a turn reads it from the store (its stored count
    /// is never a real one, so the first turn reads the history).
    pub fn unread(id: &str) -> Self {
        Self {
            id: id.to_string(),
            agent_id: String::new(),
            user_id: None,
            messages: Vec::new(),
            input: Map::new(),
            turn_count: 0,
            stored_messages: -1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// Drops the oldest whole turns (a user message and what followed it) beyond `max`.
    pub fn trim(&mut self, max: usize) {
        while self.messages.len() > max {
            let next_turn = self
                .messages
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, m)| m.role == Role::User)
                .map(|(i, _)| i);
            match next_turn {
                Some(i) => {
                    self.messages.drain(..i);
                }
                None => {
                    // A single turn longer than the cap: keep its newest messages.
                    let excess = self.messages.len() - max;
                    self.messages.drain(..excess);
                }
            }
        }
    }

    pub fn summary(&self) -> SessionInfo {
        SessionInfo {
            session_id: self.id.clone(),
            agent_id: self.agent_id.clone(),
            user_id: self.user_id.clone(),
            turn_count: self.turn_count,
            message_count: self.messages.len(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// `sess_` and 12 hex digits, as 0.2.13.
pub fn new_session_id() -> String {
    format!("sess_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// What listings show of a session.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub session_id: String,
    pub agent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub turn_count: u32,
    pub message_count: usize,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The oldest last use a session can have and still be resumed: `now` less the TTL
/// (saturating: a TTL of centuries means every session).
pub(crate) fn resumable_since(ttl_seconds: u64, now: DateTime<Utc>) -> DateTime<Utc> {
    let ttl = chrono::TimeDelta::try_seconds(i64::try_from(ttl_seconds).unwrap_or(i64::MAX))
        .unwrap_or(chrono::TimeDelta::MAX);
    now.checked_sub_signed(ttl)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether a stored session can still be continued: not ended, used within the TTL.
pub(crate) fn resumable(conversation: &ConversationRecord, ttl_seconds: u64) -> bool {
    conversation.ended_at.is_none()
        && conversation.updated_at >= resumable_since(ttl_seconds, Utc::now())
}

impl SessionInfo {
    /// A session as the store holds it (its turns are the stored user messages).
    pub fn from_stored(conversation: &ConversationRecord) -> Self {
        let messages = conversation.message_count.max(0);
        Self {
            session_id: conversation.conversation_id.clone(),
            agent_id: conversation.agent_id.clone(),
            user_id: conversation.user_id.clone(),
            // Turns are stored as a user message and its answer.
            turn_count: u32::try_from(messages / 2).unwrap_or(u32::MAX),
            message_count: usize::try_from(messages).unwrap_or(usize::MAX),
            created_at: conversation.created_at,
            updated_at: conversation.updated_at,
        }
    }
}

pub type SharedSession = Arc<tokio::sync::Mutex<ChatSession>>;

struct Entry {
    session: SharedSession,
    summary: SessionInfo,
    /// Its place in the recency order (last use, tie-breaker).
    key: (Instant, u64),
}

/// Sessions by id, and their ids by last use (oldest first): expiry and eviction take from
/// the front of the order, so neither scans the table.
#[derive(Default)]
struct Table {
    map: HashMap<String, Entry>,
    order: BTreeMap<(Instant, u64), String>,
    sequence: u64,
}

impl Table {
    fn next_key(&mut self) -> (Instant, u64) {
        self.sequence += 1;
        (Instant::now(), self.sequence)
    }

    /// Marks a session used now.
    fn touch(&mut self, id: &str) -> Option<&mut Entry> {
        let key = self.next_key();
        let entry = self.map.get_mut(id)?;
        self.order.remove(&entry.key);
        entry.key = key;
        self.order.insert(key, id.to_string());
        Some(entry)
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.map.remove(id)?;
        self.order.remove(&entry.key);
        Some(entry)
    }

    /// Drops the sessions idle for `ttl` or longer that no turn holds.
    fn expire(&mut self, ttl: Duration) {
        let expired: Vec<String> = self
            .order
            .iter()
            .take_while(|(key, _)| key.0.elapsed() >= ttl)
            .filter(|(_, id)| self.map.get(*id).is_some_and(Entry::idle))
            .map(|(_, id)| id.clone())
            .collect();
        for id in expired {
            self.remove(&id);
        }
    }

    /// Drops the least recently used session that no turn holds. Returns whether one went.
    fn evict_one(&mut self) -> bool {
        let oldest_idle = self
            .order
            .values()
            .find(|id| self.map.get(*id).is_some_and(Entry::idle))
            .cloned();
        match oldest_idle {
            Some(id) => self.remove(&id).is_some(),
            None => false,
        }
    }
}

impl Entry {
    /// Whether nothing but the table holds the session: no turn runs on it or waits for it.
    /// A session in use is never dropped, so a turn on it never meets a second copy.
    fn idle(&self) -> bool {
        Arc::strong_count(&self.session) == 1
    }
}

/// The sessions cached in this process.
pub struct SessionCache {
    table: Mutex<Table>,
    ttl: Duration,
    max_sessions: usize,
    max_messages: usize,
}

impl SessionCache {
    pub fn new(ttl: Duration, max_sessions: usize, max_messages: usize) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            ttl,
            max_sessions: max_sessions.max(1),
            max_messages: max_messages.max(2),
        }
    }

    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a new session; returns the session.
    pub fn create(&self, agent_id: &str, user_id: Option<String>) -> SharedSession {
        let session = ChatSession::new(agent_id, user_id);
        let mut table = self.lock();
        self.insert(&mut table, session)
    }

    /// The cached session `id`, or `make()` cached under that id: one copy per id, whoever
    /// asks at the same time.
    pub fn get_or_insert(&self, id: &str, make: impl FnOnce() -> ChatSession) -> SharedSession {
        let mut table = self.lock();
        let expired = table
            .map
            .get(id)
            .is_some_and(|e| e.idle() && e.key.0.elapsed() >= self.ttl);
        if expired {
            table.remove(id);
        }
        if let Some(entry) = table.touch(id) {
            return Arc::clone(&entry.session);
        }
        self.insert(&mut table, make())
    }

    fn insert(&self, table: &mut Table, session: ChatSession) -> SharedSession {
        let id = session.id.clone();
        let summary = session.summary();
        let held = Arc::new(tokio::sync::Mutex::new(session));
        table.expire(self.ttl);
        table.remove(&id);
        // Sessions in use stay: the cache may then hold more than its cap for a while.
        while table.map.len() >= self.max_sessions && table.evict_one() {}
        let key = table.next_key();
        table.order.insert(key, id.clone());
        table.map.insert(
            id,
            Entry {
                session: Arc::clone(&held),
                summary,
                key,
            },
        );
        held
    }

    /// Records the state after a turn (for listings without locking every session).
    pub fn update_summary(&self, session: &ChatSession) {
        if let Some(entry) = self.lock().touch(&session.id) {
            entry.summary = session.summary();
        }
    }

    pub fn summary(&self, id: &str) -> Option<SessionInfo> {
        let table = self.lock();
        table
            .map
            .get(id)
            .filter(|e| e.key.0.elapsed() < self.ttl)
            .map(|e| e.summary.clone())
    }

    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// How many sessions are cached and live: used within the TTL, or held by a turn.
    pub fn active(&self) -> usize {
        let table = self.lock();
        table
            .map
            .values()
            .filter(|e| !e.idle() || e.key.0.elapsed() < self.ttl)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(session: &SharedSession) -> String {
        session.try_lock().map(|s| s.id.clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn evicts_least_recently_used_idle_sessions_and_expires() {
        let cache = SessionCache::new(Duration::from_secs(60), 2, 10);
        let a = id_of(&cache.create("x", None));
        let b = id_of(&cache.create("x", None));
        drop(cache.get_or_insert(&a, || ChatSession::new("x", None))); // a: most recent
        let c = id_of(&cache.create("x", None));
        assert!(cache.summary(&b).is_none(), "b was least recently used");
        assert!(cache.summary(&a).is_some() && cache.summary(&c).is_some());
        assert_eq!(cache.active(), 2);

        let short = SessionCache::new(Duration::from_millis(20), 10, 10);
        let id = id_of(&short.create("x", None));
        assert_eq!(short.active(), 1);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(short.summary(&id).is_none());
        assert_eq!(short.active(), 0, "expired sessions are not active");
    }

    #[tokio::test]
    async fn a_session_in_use_is_never_dropped_nor_copied() {
        let cache = SessionCache::new(Duration::from_secs(60), 1, 10);
        let held = cache.create("x", None);
        let id = id_of(&held);
        let turn = Arc::clone(&held).lock_owned().await;
        let _other = cache.create("x", None);
        assert!(
            cache.summary(&id).is_some(),
            "a session a turn holds stays, past the cap"
        );
        let again = cache.get_or_insert(&id, || ChatSession::new("y", None));
        assert!(
            Arc::ptr_eq(&again, &held),
            "the same session, not a second copy"
        );
        drop(turn);
    }

    #[test]
    fn ids_look_like_reference() {
        let id = new_session_id();
        assert!(id.starts_with("sess_"));
        assert_eq!(id.len(), 17);
    }

    #[test]
    fn trims_whole_turns() {
        let mut s = ChatSession::new("x", None);
        for i in 0..5 {
            s.messages.push(Message::user(format!("q{i}")));
            s.messages.push(Message::assistant(format!("a{i}")));
        }
        s.trim(5);
        assert_eq!(s.messages.len(), 4);
        assert_eq!(s.messages[0].content, "q3");
    }
}
