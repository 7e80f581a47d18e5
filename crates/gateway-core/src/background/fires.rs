//! The fire loop every instance runs: it finds the schedules that are due and starts each
//! fire at most once across all instances (the store decides who runs it).

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::actor::Actor;
use crate::operations::schedules::Schedules;
use crate::scheduler;
use crate::state::GatewayState;

/// Fires due schedules until `stop`.
pub(super) async fn run_loop(state: Weak<GatewayState>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(scheduler::tick());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        let generation = state.generation();
        let config = generation.config().scheduler.clone();
        if !config.enabled {
            continue;
        }
        let records = match state.store.list_schedules().await {
            Ok(records) => records,
            Err(err) => {
                tracing::warn!(error = %err, "scheduler could not read schedules");
                continue;
            }
        };
        let now = Utc::now();
        for record in records.into_iter().filter(|r| r.enabled) {
            if generation
                .agent(&record.agent_id)
                .is_none_or(|a| !a.enabled)
            {
                continue;
            }
            // The fire before the next one: fires between it and the next never ran.
            let mut previous = record.last_run_at.unwrap_or(record.created_at);
            for fire_at in scheduler::due_fires(&record, now, &config) {
                let runs = Arc::clone(&state.scheduler.runs);
                if !runs.try_start(&record.id, config.max_instances) {
                    tracing::info!(schedule = %record.id, "fire skipped: max_instances runs in progress");
                    continue;
                }
                if !scheduler::claim(&state.store, &state.scheduler.lock, &record, fire_at).await {
                    runs.finish(&record.id);
                    continue;
                }
                tracing::info!(schedule = %record.id, %fire_at, "schedule fired");
                // Counted by the instance whose claim moved the schedule past them: once.
                let missed = scheduler::missed_between(&record, previous, fire_at);
                state.metrics.schedule_fire(&record.id, missed);
                previous = fire_at;
                let state = Arc::clone(&state);
                let record = record.clone();
                tokio::spawn(async move {
                    match Schedules::new(&state)
                        .dispatch(&Actor::system(), &record, fire_at, "scheduled")
                        .await
                    {
                        // Hold the slot until the run ends.
                        Ok(execution_id) => wait_for_end(&state, &execution_id).await,
                        Err(err) => {
                            tracing::error!(schedule = %record.id, error = %err, "scheduled run not started")
                        }
                    }
                    runs.finish(&record.id);
                });
            }
        }
    }
}

/// Waits until an execution has ended (on whichever instance runs it).
async fn wait_for_end(state: &GatewayState, execution_id: &str) {
    loop {
        match state.store.get_execution(execution_id).await {
            Ok(Some(record)) if !record.status.is_terminal() => {}
            _ => return,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
