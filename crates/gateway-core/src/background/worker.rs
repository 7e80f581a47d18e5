//! Queue workers: loops that take queued executions and run them through the run pipeline
//! (on shutdown, [`crate::Gateway::shutdown`] waits for the jobs in hand).

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::error::GatewayError;
use crate::run;
use crate::state::GatewayState;

/// What became of a job a worker took.
enum JobEnd {
    /// Ran (or needs no run): acknowledge it.
    Done,
    /// Another live worker runs it: give it back.
    Elsewhere,
}

/// Claims the execution of a job and runs it.
async fn run_job(state: &Arc<GatewayState>, execution_id: &str) -> Result<JobEnd, GatewayError> {
    let store = &state.store;
    let Some(record) = store.get_execution(execution_id).await? else {
        return Ok(JobEnd::Done);
    };
    if record.status.is_terminal() {
        return Ok(JobEnd::Done);
    }
    let alive = super::alive_instances(state).await;
    let claimed = store
        .claim_queued_execution(execution_id, &state.instance_id, &alive, Utc::now())
        .await?;
    if !claimed {
        return Ok(JobEnd::Elsewhere);
    }
    let agent_id = record.agent_id.clone();
    match run::resume(state, record).await {
        Ok(ticket) => {
            ticket.run().await;
        }
        Err(err) => run::fail_recorded(state, execution_id, &agent_id, err.to_string()).await,
    }
    Ok(JobEnd::Done)
}

/// One worker: takes jobs until `stop`, finishing the one in hand first.
pub(super) async fn run_worker(state: Weak<GatewayState>, name: String, stop: CancellationToken) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        let queue = Arc::clone(&state.queue);
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = queue.next(&name) => next,
        };
        let delivery = match next {
            Ok(Some(delivery)) => delivery,
            Ok(None) => continue,
            Err(err) => {
                tracing::warn!(worker = %name, error = %err, "queue unavailable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let execution_id = delivery.execution_id.clone();
        let job = state.in_flight.enter(&execution_id);
        tracing::debug!(worker = %name, %execution_id, deliveries = delivery.deliveries, "job taken");
        let settled = match run_job(&state, &execution_id).await {
            Ok(JobEnd::Done) => queue.ack(delivery).await,
            Ok(JobEnd::Elsewhere) => queue.release(delivery).await,
            Err(err) => {
                tracing::error!(%execution_id, error = %err, "job failed; it will be delivered again");
                queue.release(delivery).await
            }
        };
        if let Err(err) = settled {
            tracing::warn!(%execution_id, error = %err, "could not settle a job");
        }
        drop(job);
    }
}
