//! Work a gateway instance does in the background: telling the store it is alive, failing
//! executions left behind by dead instances, noticing cancels made elsewhere — and, for a
//! long-lived one (server, worker), firing schedules (`fires`) and taking queued jobs
//! (`worker`). A gateway built for a command that runs and exits starts no work of its own:
//! no fire loop and no workers, only its heartbeat and cancel watch (without them another
//! instance would take its runs for a dead instance's after a minute, and a cancel made
//! elsewhere would not reach them).

mod fires;
pub(crate) mod watch;
pub(crate) mod worker;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gateway_store::{InstanceRecord, SharedStore};
use tokio_util::sync::CancellationToken;

use crate::cancels::CancelHandles;
use crate::error::GatewayError;
use crate::state::GatewayState;

/// How often an instance says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// An instance not heard from for this long is dead; its unfinished executions fail.
const STALE_AFTER: Duration = Duration::from_secs(60);
/// How often running executions look for a cancel made on another instance.
const CANCEL_POLL: Duration = Duration::from_secs(1);

const ORPHAN_REASON: &str =
    "The gateway instance running this execution stopped before it finished";

/// This process as the store sees it.
#[derive(Debug, Clone)]
struct Me {
    id: String,
    host: String,
    pid: i64,
}

impl Me {
    fn record(&self) -> InstanceRecord {
        InstanceRecord {
            id: self.id.clone(),
            host: self.host.clone(),
            pid: self.pid,
            heartbeat_at: Utc::now(),
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Whether a process exists on this machine (`None`: cannot tell here).
fn process_exists(pid: i64) -> Option<bool> {
    let proc = std::path::Path::new("/proc");
    proc.is_dir().then(|| proc.join(pid.to_string()).exists())
}

/// Which registered instances are alive: heard from recently, and — for processes on this
/// machine — still running. A crashed process on the same host is dead at once, so the
/// executions it left behind fail at the very next start.
fn alive(me: &Me, instances: &[InstanceRecord]) -> Vec<String> {
    let stale_before = Utc::now() - chrono::Duration::from_std(STALE_AFTER).unwrap_or_default();
    let mut alive: Vec<String> = instances
        .iter()
        .filter(|i| i.id == me.id || i.heartbeat_at >= stale_before)
        .filter(|i| {
            i.id == me.id
                || i.host != me.host
                || i.pid == me.pid
                || process_exists(i.pid) != Some(false)
        })
        .map(|i| i.id.clone())
        .collect();
    if !alive.contains(&me.id) {
        alive.push(me.id.clone());
    }
    alive
}

fn me(state: &GatewayState) -> Me {
    Me {
        id: state.instance_id.clone(),
        host: host_name(),
        pid: i64::from(std::process::id()),
    }
}

/// Registers this instance, fails the orphans of dead instances, and starts the heartbeat and
/// the cancel watch; when its background work is on, also the fire loop and the workers.
pub(crate) async fn start(state: &Arc<GatewayState>) -> Result<(), GatewayError> {
    let store = Arc::clone(&state.store);
    let me = me(state);
    store.heartbeat(&me.record()).await?;
    reap(&store, &me).await;
    let stop = state.background.clone();
    tokio::spawn(heartbeats(
        Arc::clone(&store),
        me,
        state.background_enabled,
        stop.clone(),
    ));
    tokio::spawn(cancel_watch(
        store,
        Arc::clone(&state.running),
        stop.clone(),
    ));
    if !state.background_enabled {
        return Ok(());
    }
    start_metrics_export(state);
    tokio::spawn(fires::run_loop(Arc::downgrade(state), stop.clone()));
    // A local queue has no other consumers: it always gets at least one worker here.
    let configured = state.generation().config().queue.workers;
    let workers = if state.queue.durable() {
        configured
    } else {
        configured.max(1)
    };
    for n in 0..workers {
        let name = format!("{}-{n}", state.instance_id);
        tokio::spawn(worker::run_worker(
            Arc::downgrade(state),
            name,
            stop.clone(),
        ));
    }
    Ok(())
}

/// Pushes the metrics over OTLP when `telemetry:` asks for it (a long-lived gateway only).
fn start_metrics_export(state: &Arc<GatewayState>) {
    let generation = state.generation();
    let config = generation.config();
    let telemetry = config.telemetry.clone();
    if !config.metrics.enabled || !gateway_telemetry::otlp_metrics::wanted(&telemetry) {
        return;
    }
    let weak = Arc::downgrade(state);
    let stop = state.metrics_export.stop.clone();
    let task = tokio::spawn(gateway_telemetry::otlp_metrics::push_until(
        telemetry,
        move || {
            let state = weak.upgrade();
            async move {
                match state {
                    Some(state) => state.metrics_snapshot().await,
                    None => crate::metrics::Snapshot::default(),
                }
            }
        },
        async move { stop.cancelled().await },
    ));
    let mut slot = state
        .metrics_export
        .task
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    *slot = Some(task);
}

/// Stops the metrics push after its last push (at most a few seconds).
pub(crate) async fn stop_metrics_export(state: &GatewayState) {
    state.metrics_export.stop.cancel();
    let task = {
        let mut slot = state
            .metrics_export
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        slot.take()
    };
    if let Some(task) = task
        && tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .is_err()
    {
        tracing::warn!("the last push of the metrics over OTLP did not finish");
    }
}

/// The ids of the instances alive now (for taking over jobs of dead workers).
pub(crate) async fn alive_instances(state: &GatewayState) -> Vec<String> {
    let me = me(state);
    match state.store.instances().await {
        Ok(instances) => alive(&me, &instances),
        Err(_) => vec![me.id],
    }
}

async fn reap(store: &SharedStore, me: &Me) {
    let instances = match store.instances().await {
        Ok(instances) => instances,
        Err(err) => {
            tracing::error!(error = %err, "could not list gateway instances");
            return;
        }
    };
    match store
        .fail_orphans(&alive(me, &instances), ORPHAN_REASON)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            executions = n,
            "marked executions of stopped instances as failed"
        ),
        Err(err) => tracing::error!(error = %err, "could not check for orphaned executions"),
    }
}

/// Says this instance is alive every [`HEARTBEAT`]; a long-lived instance also reaps dead
/// instances' orphans every fourth beat.
async fn heartbeats(store: SharedStore, me: Me, reaping: bool, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.tick().await;
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = store.heartbeat(&me.record()).await {
            tracing::warn!(error = %err, "heartbeat failed");
        }
        ticks += 1;
        if reaping && ticks.is_multiple_of(4) {
            reap(&store, &me).await;
        }
    }
}

async fn cancel_watch(store: SharedStore, running: Arc<CancelHandles>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(CANCEL_POLL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let ids = running.ids();
        if ids.is_empty() {
            continue;
        }
        match store.cancelled_among(&ids).await {
            Ok(cancelled) => {
                for id in cancelled {
                    if running.cancel(&id) {
                        tracing::info!(execution_id = %id, "execution cancelled from another instance");
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not check for cancelled executions"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_local_processes_and_silent_instances_are_not_alive() {
        let me = Me {
            id: "me".into(),
            host: "box".into(),
            pid: i64::from(std::process::id()),
        };
        let now = Utc::now();
        let instance = |id: &str, host: &str, pid: i64, age_s: i64| InstanceRecord {
            id: id.into(),
            host: host.into(),
            pid,
            heartbeat_at: now - chrono::Duration::seconds(age_s),
        };
        let instances = vec![
            instance("me", "box", me.pid, 0),
            instance("crashed-here", "box", 999_999_999, 1),
            instance("other-host", "elsewhere", 999_999_999, 1),
            instance("silent", "elsewhere", 1, 600),
        ];
        let alive = alive(&me, &instances);
        assert!(alive.contains(&"me".to_string()));
        assert!(
            alive.contains(&"other-host".to_string()),
            "a live heartbeat from another machine counts"
        );
        if process_exists(1).is_some() {
            assert!(
                !alive.contains(&"crashed-here".to_string()),
                "its process is gone"
            );
        }
        assert!(!alive.contains(&"silent".to_string()));
    }
}
