//! Asynchronous executions through the queue: enqueueing a recorded execution, the worker
//! loops that take jobs and run them, and draining in-flight work on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use gateway_store::ExecutionRecord;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::invoke::PreparedInvoke;
use super::{ExecutionOptions, Gateway, GatewayHandle, InvokeRequest, ParentLink, ScheduleRun};
use crate::error::GatewayError;

/// Jobs being run by this process's workers.
#[derive(Default)]
pub(crate) struct InFlight(AtomicUsize);

impl InFlight {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// What became of a job a worker took.
enum JobEnd {
    /// Ran (or needs no run): acknowledge it.
    Done,
    /// Another live worker runs it: give it back.
    Elsewhere,
}

impl Gateway {
    /// Hands a recorded `queued` execution to the queue. Its row holds everything a worker
    /// needs.
    pub(crate) async fn enqueue(&self, prepared: PreparedInvoke) -> Result<(), GatewayError> {
        let execution_id = prepared.execution_id.clone();
        // The run happens elsewhere: this process no longer holds its cancel handle.
        self.inner.running.finish(&execution_id);
        drop(prepared);
        if let Err(err) = self.inner.queue.push(&execution_id).await {
            self.fail_recorded(&execution_id, format!("could not be queued: {err}"))
                .await;
            return Err(GatewayError::QueueUnavailable(err.to_string()));
        }
        Ok(())
    }

    /// Ends a recorded execution that will never run, saying why.
    async fn fail_recorded(&self, execution_id: &str, error: String) {
        let outcome = gateway_store::ExecutionOutcome {
            status: crate::engine::ExecutionStatus::Failed,
            result: None,
            usage: None,
            error: Some(error),
            completed_at: Utc::now(),
        };
        if let Err(err) = self
            .inner
            .store
            .finish_execution(execution_id, outcome, Vec::new())
            .await
        {
            tracing::error!(%execution_id, error = %err, "could not record a failed execution");
        }
    }

    /// Whether queued executions are carried by a queue that outlives this process.
    pub(crate) fn durable_queue(&self) -> bool {
        self.inner.queue.durable()
    }

    async fn run_job(&self, execution_id: &str) -> Result<JobEnd, GatewayError> {
        let store = &self.inner.store;
        let Some(record) = store
            .get_execution(execution_id)
            .await
            .map_err(super::storage)?
        else {
            return Ok(JobEnd::Done);
        };
        if record.status.is_terminal() {
            return Ok(JobEnd::Done);
        }
        let alive = super::background::alive_instances(self).await;
        let claimed = store
            .claim_queued_execution(execution_id, &self.inner.instance_id, &alive, Utc::now())
            .await
            .map_err(super::storage)?;
        if !claimed {
            return Ok(JobEnd::Elsewhere);
        }
        let prepared = match self.prepare_recorded(record).await {
            Ok(prepared) => prepared,
            Err(err) => {
                self.fail_recorded(execution_id, err.to_string()).await;
                return Ok(JobEnd::Done);
            }
        };
        self.run_invoke(prepared).await;
        Ok(JobEnd::Done)
    }

    /// Rebuilds the invocation of a recorded execution (already marked running here).
    async fn prepare_recorded(
        &self,
        record: ExecutionRecord,
    ) -> Result<PreparedInvoke, GatewayError> {
        let options = record.options.clone().unwrap_or(Value::Null);
        let mut request = InvokeRequest::new(&record.agent_id, &record.message)
            .input(record.input.clone())
            .options(ExecutionOptions {
                output_schema: options
                    .get("output_schema")
                    .filter(|v| !v.is_null())
                    .cloned(),
                timeout_ms: options.get("timeout_ms").and_then(Value::as_u64),
                run_async: false,
            });
        request.user_id = record.user_id.clone();
        if let (Some(parent), Some(root)) = (&record.parent_execution_id, &record.root_execution_id)
        {
            request.parent = Some(ParentLink {
                execution_id: parent.clone(),
                root_execution_id: root.clone(),
                depth: u32::try_from(record.delegation_depth).unwrap_or(0),
            });
        }
        if let (Some(id), Some(name)) = (&record.schedule_id, &record.schedule_name) {
            let instructions = self
                .inner
                .store
                .get_schedule(id)
                .await
                .ok()
                .flatten()
                .and_then(|s| s.instructions);
            request.schedule = Some(ScheduleRun {
                schedule_id: id.clone(),
                schedule_name: name.clone(),
                instructions,
            });
        }
        self.prepare_existing(request, record.execution_id).await
    }

    /// Waits (up to `queue.drain_timeout_s`) for the jobs this process runs.
    pub(crate) async fn drain(&self) {
        let limit = Duration::from_secs(self.config().queue.drain_timeout_s);
        let deadline = tokio::time::Instant::now() + limit;
        while self.inner.in_flight.count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.inner.in_flight.count();
        if left > 0 {
            tracing::warn!(
                jobs = left,
                "shutdown with jobs still running; the queue will hand them to another worker"
            );
        }
    }
}

/// One worker: takes jobs until `stop`, finishing the one in hand first.
pub(super) async fn run_worker(handle: GatewayHandle, name: String, stop: CancellationToken) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        let Some(gateway) = handle.get() else { return };
        let queue = Arc::clone(&gateway.inner.queue);
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
        gateway.inner.in_flight.0.fetch_add(1, Ordering::SeqCst);
        let execution_id = delivery.execution_id.clone();
        tracing::debug!(worker = %name, %execution_id, deliveries = delivery.deliveries, "job taken");
        let end = gateway.run_job(&execution_id).await;
        let settled = match end {
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
        gateway.inner.in_flight.0.fetch_sub(1, Ordering::SeqCst);
    }
}
