//! Sessions in Redis (feature `redis`): one hash per session, claims and commits done by Lua
//! scripts so each is atomic on the server; the key expires after the idle TTL.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use super::session::{Claim, FlowSession, SessionStore, SessionStoreError, new_token, now_ms};

const CLAIM: &str = r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {0, ''} end
local now = tonumber(ARGV[3])
local held = tonumber(redis.call('HGET', KEYS[1], 'claim_until') or '0')
if held > now then return {2, state} end
local session = cjson.decode(state)
local allowed = false
for _, step in ipairs(session['allowed_next_steps']) do
  if step == ARGV[1] then allowed = true end
end
if not allowed then return {2, state} end
redis.call('HSET', KEYS[1], 'claim', ARGV[2], 'claim_until', tostring(now + tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, state}
"#;

const COMMIT: &str = r#"
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
redis.call('HDEL', KEYS[1], 'claim', 'claim_until')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

const RELEASE: &str = r#"
if redis.call('HGET', KEYS[1], 'claim') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'claim', 'claim_until')
end
return 1
"#;

/// Sessions shared by every instance of a site through Redis.
#[derive(Clone)]
pub struct RedisSessionStore {
    connection: ConnectionManager,
    prefix: String,
    ttl: Duration,
}

fn failure(err: impl std::fmt::Display) -> SessionStoreError {
    SessionStoreError(err.to_string())
}

impl RedisSessionStore {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`); keys are `<prefix><session id>`.
    pub async fn connect(
        url: &str,
        prefix: impl Into<String>,
        ttl: Duration,
    ) -> Result<Self, SessionStoreError> {
        let client = redis::Client::open(url).map_err(failure)?;
        let connection = client.get_connection_manager().await.map_err(failure)?;
        Ok(Self {
            connection,
            prefix: prefix.into(),
            ttl,
        })
    }

    fn key(&self, session_id: &str) -> String {
        format!("{}{session_id}", self.prefix)
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }
}

fn decode(state: &str) -> Result<FlowSession, SessionStoreError> {
    serde_json::from_str(state)
        .map_err(|err| SessionStoreError(format!("unreadable session: {err}")))
}

fn encode(session: &FlowSession) -> Result<String, SessionStoreError> {
    serde_json::to_string(session).map_err(failure)
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn create(&self, session: &FlowSession) -> Result<(), SessionStoreError> {
        let mut connection = self.connection.clone();
        redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(self.key(&session.session_id))
            .arg("state")
            .arg(encode(session)?)
            .ignore()
            .cmd("PEXPIRE")
            .arg(self.key(&session.session_id))
            .arg(self.ttl_ms())
            .ignore()
            .query_async::<()>(&mut connection)
            .await
            .map_err(failure)
    }

    async fn get(&self, session_id: &str) -> Result<Option<FlowSession>, SessionStoreError> {
        let mut connection = self.connection.clone();
        let key = self.key(session_id);
        let (state, _): (Option<String>, i64) = redis::pipe()
            .cmd("HGET")
            .arg(&key)
            .arg("state")
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(self.ttl_ms())
            .query_async(&mut connection)
            .await
            .map_err(failure)?;
        state.as_deref().map(decode).transpose()
    }

    async fn claim(
        &self,
        session_id: &str,
        step: &str,
        lease: Duration,
    ) -> Result<Claim, SessionStoreError> {
        let mut connection = self.connection.clone();
        let token = new_token();
        let (outcome, state): (i64, String) = redis::Script::new(CLAIM)
            .key(self.key(session_id))
            .arg(step)
            .arg(&token)
            .arg(now_ms())
            .arg(lease.as_millis() as u64)
            .arg(self.ttl_ms())
            .invoke_async(&mut connection)
            .await
            .map_err(failure)?;
        Ok(match outcome {
            1 => Claim::Granted {
                session: decode(&state)?,
                token,
            },
            2 => Claim::NotAllowed {
                session: decode(&state)?,
            },
            _ => Claim::NotFound,
        })
    }

    async fn commit(&self, updated: &FlowSession, token: &str) -> Result<bool, SessionStoreError> {
        let mut connection = self.connection.clone();
        let done: i64 = redis::Script::new(COMMIT)
            .key(self.key(&updated.session_id))
            .arg(token)
            .arg(encode(updated)?)
            .arg(self.ttl_ms())
            .invoke_async(&mut connection)
            .await
            .map_err(failure)?;
        Ok(done == 1)
    }

    async fn release(&self, session_id: &str, token: &str) -> Result<(), SessionStoreError> {
        let mut connection = self.connection.clone();
        redis::Script::new(RELEASE)
            .key(self.key(session_id))
            .arg(token)
            .invoke_async::<i64>(&mut connection)
            .await
            .map(|_| ())
            .map_err(failure)
    }
}
