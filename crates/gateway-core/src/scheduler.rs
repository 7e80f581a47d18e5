//! Cron schedules: those of AGENT.md (`source: workspace`) and those created at runtime
//! (`admin`), stored, fired by every instance's loop but run exactly once per fire time.
//!
//! Exactly once comes from the store: an instance runs a fire only after moving the
//! schedule's `last_run_at` forward to that fire time in one conditional update, which one
//! caller wins. The distributed lock (Redis `SET NX PX` with a token, or a PostgreSQL
//! advisory lock) keeps instances from racing for it; a lock left by a crashed holder
//! expires after `lock_ttl_seconds`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gateway_store::{ScheduleRecord, SharedStore, StoreError};
use gateway_workspace::config::{LockBackend, PersistenceBackend, SchedulerConfig};
use gateway_workspace::{GatewayConfig, Workspace};
use serde_json::{Map, Value};

/// How often each instance looks for due fires.
const TICK: Duration = Duration::from_millis(250);

/// Fields of a schedule that can be edited at runtime.
pub const EDITABLE: [&str; 5] = [
    "cron_expr",
    "message",
    "timezone",
    "enabled",
    "instructions",
];

/// The next fire of `record` strictly after `after`.
pub fn next_fire(record: &ScheduleRecord, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = gateway_workspace::schedule::parse_cron(&record.cron_expr).ok()?;
    let tz = gateway_workspace::schedule::parse_timezone(&record.timezone).ok()?;
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The fires of `record` in `(from, to]`, oldest first (at most `limit`).
fn fires_between(
    record: &ScheduleRecord,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut at = from;
    while out.len() < limit {
        match next_fire(record, at) {
            Some(next) if next <= to => {
                out.push(next);
                at = next;
            }
            _ => break,
        }
    }
    out
}

/// Which fires to run now: those within the misfire grace; with `coalesce`, only the latest.
pub fn due_fires(
    record: &ScheduleRecord,
    now: DateTime<Utc>,
    config: &SchedulerConfig,
) -> Vec<DateTime<Utc>> {
    let from = record.last_run_at.unwrap_or(record.created_at);
    let grace = chrono::Duration::seconds(config.misfire_grace_seconds.max(1) as i64);
    let earliest = now - grace;
    let candidates = fires_between(
        record,
        from.max(earliest - chrono::Duration::seconds(1)),
        now,
        1000,
    );
    let mut due: Vec<DateTime<Utc>> = candidates.into_iter().filter(|t| *t >= earliest).collect();
    if config.coalesce && due.len() > 1 {
        due = due.split_off(due.len() - 1);
    }
    due
}

/// How many fires of `record` fell strictly between `since` and `fire_at` (at most 1000):
/// fires that never ran (missed past the misfire grace, or coalesced into `fire_at`).
pub fn missed_between(
    record: &ScheduleRecord,
    since: DateTime<Utc>,
    fire_at: DateTime<Utc>,
) -> u64 {
    fires_between(record, since, fire_at, 1000)
        .into_iter()
        .filter(|t| *t < fire_at)
        .count() as u64
}

/// The record for an AGENT.md schedule: the file's values, with runtime edits over them.
pub fn workspace_record(
    agent_id: &str,
    definition: &gateway_workspace::ScheduleDefinition,
    default_timezone: &str,
    existing: Option<&ScheduleRecord>,
) -> ScheduleRecord {
    let overrides = existing.map(|e| e.overrides.clone()).unwrap_or_default();
    let mut record = ScheduleRecord {
        id: format!("{agent_id}:{}", definition.name),
        agent_id: agent_id.to_string(),
        name: definition.name.clone(),
        cron_expr: definition.cron.clone(),
        message: definition.message.clone(),
        instructions: definition.instructions.clone(),
        input: definition.input.clone(),
        enabled: definition.enabled,
        timezone: definition
            .timezone
            .clone()
            .unwrap_or_else(|| default_timezone.to_string()),
        source: "workspace".into(),
        last_run_at: existing.and_then(|e| e.last_run_at),
        next_run_at: None,
        overrides: Map::new(),
        created_at: existing.map_or_else(Utc::now, |e| e.created_at),
    };
    apply_edits(&mut record, &overrides);
    record.overrides = overrides;
    record.next_run_at = next_fire(&record, Utc::now());
    record
}

/// Applies edited fields (already validated) to a record.
pub fn apply_edits(record: &mut ScheduleRecord, edits: &Map<String, Value>) {
    for (key, value) in edits {
        match (key.as_str(), value) {
            ("cron_expr", Value::String(v)) => record.cron_expr = v.clone(),
            ("message", Value::String(v)) => record.message = v.clone(),
            ("timezone", Value::String(v)) => record.timezone = v.clone(),
            ("enabled", Value::Bool(v)) => record.enabled = *v,
            ("instructions", Value::String(v)) => record.instructions = Some(v.clone()),
            ("instructions", Value::Null) => record.instructions = None,
            _ => {}
        }
    }
}

/// Brings the stored workspace schedules in line with the workspace: new ones added, edits
/// kept, removed ones deleted. Admin schedules are untouched.
pub async fn sync_workspace(store: &SharedStore, workspace: &Workspace) -> Result<(), StoreError> {
    let stored = store.list_schedules().await?;
    let by_id: HashMap<&str, &ScheduleRecord> = stored.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut wanted = Vec::new();
    for agent in workspace.agents.values() {
        for definition in &agent.schedules {
            let id = format!("{}:{}", agent.id, definition.name);
            let record = workspace_record(
                &agent.id,
                definition,
                &workspace.config.timezone,
                by_id.get(id.as_str()).copied(),
            );
            if by_id.get(id.as_str()).is_none_or(|old| {
                let mut old = (*old).clone();
                old.next_run_at = record.next_run_at;
                old != record
            }) {
                store.put_schedule(&record).await?;
            }
            wanted.push(id);
        }
    }
    for record in stored.iter().filter(|r| r.source == "workspace") {
        if !wanted.contains(&record.id) {
            store.delete_schedule(&record.id, Utc::now()).await?;
        }
    }
    Ok(())
}

/// The Redis side of the distributed lock.
pub struct RedisLock {
    manager: redis::aio::ConnectionManager,
    prefix: String,
    ttl: Duration,
}

/// Releases the lock only if it still holds our token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

impl RedisLock {
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self, String> {
        let manager = crate::queue::connect_redis(url).await?;
        Ok(Self {
            manager,
            prefix: prefix.to_string(),
            ttl,
        })
    }

    /// Whether the lock's Redis answers `PING` now.
    pub async fn ping(&self) -> Result<(), String> {
        crate::queue::ping_redis(&self.manager)
            .await
            .map_err(|err| err.to_string())
    }

    /// Takes the lock of `name`; returns its token when taken.
    async fn acquire(&self, name: &str) -> Option<String> {
        let token = uuid::Uuid::new_v4().to_string();
        let mut connection = self.manager.clone();
        let taken: Result<Option<String>, _> = redis::cmd("SET")
            .arg(format!("{}{name}", self.prefix))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .query_async(&mut connection)
            .await;
        match taken {
            Ok(Some(_)) => Some(token),
            Ok(None) => None,
            Err(err) => {
                tracing::error!(error = %err, "scheduler lock unavailable; this instance skips the fire");
                None
            }
        }
    }

    async fn release(&self, name: &str, token: &str) {
        let mut connection = self.manager.clone();
        let released: Result<i64, _> = redis::Script::new(RELEASE)
            .key(format!("{}{name}", self.prefix))
            .arg(token)
            .invoke_async(&mut connection)
            .await;
        if let Err(err) = released {
            tracing::warn!(error = %err, "scheduler lock not released; it expires on its own");
        }
    }
}

/// Which lock the configuration asks for.
pub enum LockKind {
    None,
    Redis(RedisLock),
    PostgresAdvisory,
}

pub async fn lock_for(config: &GatewayConfig) -> Result<LockKind, String> {
    let lock = &config.scheduler.distributed_lock;
    if !lock.enabled {
        return Ok(LockKind::None);
    }
    let redis_url = if lock.redis_url.is_empty() {
        config.queue.redis_url.clone()
    } else {
        lock.redis_url.clone()
    };
    let postgres = config.persistence.enabled
        && (config.persistence.backend == PersistenceBackend::Postgres
            || config.persistence.url.starts_with("postgres"));
    let ttl = Duration::from_secs(lock.lock_ttl_seconds.max(1));
    let backend = match lock.backend {
        LockBackend::Auto => {
            let redis_queue =
                config.queue.backend == gateway_workspace::config::QueueBackend::Redis;
            if redis_queue || !lock.redis_url.is_empty() {
                LockBackend::Redis
            } else if postgres {
                LockBackend::Postgres
            } else {
                LockBackend::None
            }
        }
        other => other,
    };
    Ok(match backend {
        LockBackend::Redis => {
            LockKind::Redis(RedisLock::connect(&redis_url, &lock.key_prefix, ttl).await?)
        }
        LockBackend::Postgres if !postgres => {
            return Err(
                "scheduler.distributed_lock.backend postgres needs PostgreSQL persistence".into(),
            );
        }
        LockBackend::Postgres => LockKind::PostgresAdvisory,
        LockBackend::None | LockBackend::Auto => LockKind::None,
    })
}

/// Counts the runs of each schedule in progress in this process (`max_instances`).
#[derive(Default)]
pub struct RunCounts(Mutex<HashMap<String, u32>>);

impl RunCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot if fewer than `max` runs are in progress.
    pub fn try_start(&self, id: &str, max: u32) -> bool {
        let mut counts = self.lock();
        let count = counts.entry(id.to_string()).or_default();
        if *count >= max.max(1) {
            return false;
        }
        *count += 1;
        true
    }

    pub fn finish(&self, id: &str) {
        let mut counts = self.lock();
        if let Some(count) = counts.get_mut(id) {
            *count = count.saturating_sub(1);
        }
    }
}

/// Claims a fire under the configured lock. Returns whether this instance runs it.
pub async fn claim(
    store: &SharedStore,
    lock: &LockKind,
    record: &ScheduleRecord,
    fire_at: DateTime<Utc>,
) -> bool {
    let next = next_fire(record, Utc::now());
    let token = match lock {
        LockKind::Redis(redis) => match redis.acquire(&record.id).await {
            Some(token) => Some(token),
            None => return false,
        },
        _ => None,
    };
    let advisory = matches!(lock, LockKind::PostgresAdvisory);
    let claimed = match store
        .claim_schedule_fire(&record.id, fire_at, next, advisory)
        .await
    {
        Ok(claimed) => claimed,
        Err(err) => {
            tracing::error!(schedule = %record.id, error = %err, "could not claim a schedule fire");
            false
        }
    };
    if let (LockKind::Redis(redis), Some(token)) = (lock, token) {
        redis.release(&record.id, &token).await;
    }
    claimed
}

/// Shared state of the scheduler loop.
pub struct SchedulerState {
    pub lock: LockKind,
    pub runs: Arc<RunCounts>,
}

pub fn tick() -> Duration {
    TICK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cron: &str, last: Option<DateTime<Utc>>) -> ScheduleRecord {
        ScheduleRecord {
            id: "a:s".into(),
            agent_id: "a".into(),
            name: "s".into(),
            cron_expr: cron.into(),
            message: "m".into(),
            instructions: None,
            input: Map::new(),
            enabled: true,
            timezone: "UTC".into(),
            source: "workspace".into(),
            last_run_at: last,
            next_run_at: None,
            overrides: Map::new(),
            created_at: Utc::now() - chrono::Duration::hours(1),
        }
    }

    #[test]
    fn misfires_beyond_the_grace_are_skipped_and_others_coalesce() {
        let now = Utc::now();
        let config = |coalesce| SchedulerConfig {
            misfire_grace_seconds: 10,
            coalesce,
            ..SchedulerConfig::default()
        };
        // Every second, last run 30 s ago: only the fires of the last 10 s count.
        let every_second = record("* * * * * *", Some(now - chrono::Duration::seconds(30)));
        let all = due_fires(&every_second, now, &config(false));
        assert!((9..=11).contains(&all.len()), "{}", all.len());
        assert!(
            all.iter()
                .all(|t| now - *t <= chrono::Duration::seconds(10))
        );
        let one = due_fires(&every_second, now, &config(true));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0], *all.last().unwrap_or(&now));
        // What the coalesced fire stands for: every fire since the last run but itself.
        let since = now - chrono::Duration::seconds(30);
        let missed = missed_between(&every_second, since, one[0]);
        assert!((28..=30).contains(&missed), "{missed}");
        assert_eq!(missed_between(&every_second, one[0], one[0]), 0);
        // Nothing due right after a run.
        let fresh = record("0 0 1 1 *", Some(now));
        assert!(due_fires(&fresh, now, &config(true)).is_empty());
    }

    #[test]
    fn edits_override_the_file() {
        let definition = gateway_workspace::ScheduleDefinition {
            name: "daily".into(),
            cron: "0 9 * * *".into(),
            message: "from file".into(),
            input: Map::new(),
            enabled: true,
            timezone: None,
            instructions: Some("file instructions".into()),
        };
        let mut existing = workspace_record("writer", &definition, "UTC", None);
        existing.overrides = serde_json::json!({"cron_expr": "0 10 * * *", "enabled": false})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let merged = workspace_record("writer", &definition, "Europe/Oslo", Some(&existing));
        assert_eq!(merged.cron_expr, "0 10 * * *");
        assert!(!merged.enabled);
        assert_eq!(merged.message, "from file");
        assert_eq!(merged.timezone, "Europe/Oslo");
        let runs = RunCounts::default();
        assert!(runs.try_start("x", 1) && !runs.try_start("x", 1));
        runs.finish("x");
        assert!(runs.try_start("x", 1));
    }
}
