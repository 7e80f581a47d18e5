//! Group commit: the two writes every execution makes (its start and its end) are queued to
//! one task, which commits whatever has queued up in a single transaction.
//!
//! Why: on SQLite there is one writer, each statement is a round trip to the connection's
//! thread, and a commit writes every page it touched (the executions table carries eight
//! indexes) to the write-ahead log; on PostgreSQL every commit waits for its WAL flush. Under
//! concurrent load one transaction for many executions writes shared pages once, flushes once
//! and saves the BEGIN/COMMIT round trips. A write that fails makes the group retry write by
//! write, so it fails alone and never takes the others with it.
//!
//! The SQL of those two writes lives here too: nothing else runs it.

use std::sync::Arc;

use serde_json::Value;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::StoreError;
use crate::records::{ExecutionOutcome, ExecutionRecord, StepRecord};

/// Records the start of an execution through `$executor` (a transaction of either backend).
/// Evaluates to `Result<(), sqlx::Error>`.
macro_rules! write_start {
    ($executor:expr, $record:expr) => {{
        let r: &ExecutionRecord = $record;
        sqlx::query(
            "INSERT INTO executions (id, agent_id, status, message, input, options, session_id, user_id, schedule_id, schedule_name, parent_execution_id, root_execution_id, delegation_depth, instance_id, started_at, created_at, trace_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&r.execution_id)
        .bind(&r.agent_id)
        .bind(r.status.as_str())
        .bind(&r.message)
        .bind(sqlx::types::Json(&r.input))
        .bind(json(&r.options))
        .bind(&r.session_id)
        .bind(&r.user_id)
        .bind(&r.schedule_id)
        .bind(&r.schedule_name)
        .bind(&r.parent_execution_id)
        .bind(&r.root_execution_id)
        .bind(r.delegation_depth)
        .bind(&r.instance_id)
        .bind(r.started_at)
        .bind(r.created_at)
        .bind(&r.trace_id)
        .execute($executor)
        .await
        .map(|_| ())
    }};
}

/// Records the end of an execution (its row, then its steps) inside the open transaction
/// `$tx`. A cancel that landed first wins: the row keeps `cancelled`. Evaluates to
/// `Result<String, sqlx::Error>`: the status the row ends with.
macro_rules! write_finish {
    ($tx:expr, $execution_id:expr, $outcome:expr, $steps:expr) => {
        async {
            let (execution_id, outcome, steps): (&str, &ExecutionOutcome, &[StepRecord]) =
                ($execution_id, $outcome, $steps);
            let status: Option<String> = sqlx::query_scalar(
                "UPDATE executions SET status = CASE WHEN status = 'cancelled' THEN status ELSE $2 END, result = $3, usage = $4, error = COALESCE(error, $5), completed_at = COALESCE(completed_at, $6) WHERE id = $1 RETURNING status",
            )
            .bind(execution_id)
            .bind(outcome.status.as_str())
            .bind(json(&outcome.result))
            .bind(json(&outcome.usage))
            .bind(&outcome.error)
            .bind(outcome.completed_at)
            .fetch_optional(&mut *$tx)
            .await?;
            for chunk in steps.chunks(STEPS_PER_INSERT) {
                let mut insert = sqlx::query(sqlx::AssertSqlSafe(steps_insert_sql(chunk.len())))
                    .bind(execution_id);
                for step in chunk {
                    insert = insert
                        .bind(&step.step_type)
                        .bind(step.sequence)
                        .bind(sqlx::types::Json(&step.data))
                        .bind(step.duration_ms)
                        .bind(step.created_at);
                }
                insert.execute(&mut *$tx).await?;
            }
            Ok::<String, sqlx::Error>(status.unwrap_or_else(|| outcome.status.as_str().to_string()))
        }
        .await
    };
}

/// Steps written by one statement (5 parameters each, far below either database's limit).
const STEPS_PER_INSERT: usize = 200;

/// `INSERT INTO execution_steps` for `rows` steps of one execution: `$1` is the execution id,
/// then five parameters per step.
fn steps_insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO execution_steps (execution_id, step_type, sequence, data, duration_ms, created_at) VALUES ",
    );
    for row in 0..rows {
        let first = 2 + row * 5;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "($1, ${}, ${}, ${}, ${}, ${})",
            first,
            first + 1,
            first + 2,
            first + 3,
            first + 4
        ));
    }
    sql
}

/// Bind parameters: JSON values are stored as text on SQLite and JSONB on PostgreSQL by the
/// driver from the same `serde_json::Value`.
fn json(value: &Option<Value>) -> Option<sqlx::types::Json<&Value>> {
    value.as_ref().map(sqlx::types::Json)
}

/// Writers committing groups side by side on PostgreSQL.
const POSTGRES_WRITERS: usize = 4;
/// Most writes committed together.
const MAX_GROUP: usize = 64;
/// Writes waiting for the writer before senders wait too (back-pressure).
const QUEUE_DEPTH: usize = 1024;

/// Where the writer commits.
#[derive(Debug, Clone)]
pub enum WriterPool {
    /// The single-connection writer pool.
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One write of the hot path.
#[derive(Debug)]
pub enum HotWrite {
    Start(Box<ExecutionRecord>),
    Finish {
        execution_id: String,
        outcome: Box<ExecutionOutcome>,
        steps: Vec<StepRecord>,
    },
}

/// What a write answers: the status the row ends with, for `Finish`.
type Answer = Result<Option<String>, StoreError>;

#[derive(Debug)]
struct Pending {
    write: HotWrite,
    answer: oneshot::Sender<Answer>,
}

/// The handle to the writer task; the task ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts the writers on `pool`: one on SQLite (it has one writer connection anyway);
    /// several on PostgreSQL, so that a group waiting for its WAL flush does not hold up
    /// the next (the server flushes concurrent commits together).
    pub fn start(pool: WriterPool) -> Self {
        let writers = match pool {
            WriterPool::Sqlite(_) => 1,
            WriterPool::Postgres(_) => POSTGRES_WRITERS,
        };
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers {
            tokio::spawn(run(pool.clone(), Arc::clone(&receiver)));
        }
        Self { queue }
    }

    /// Queues `write` and waits until it is committed (or failed).
    pub async fn submit(&self, write: HotWrite) -> Answer {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Pending { write, answer })
            .await
            .map_err(|_| writer_stopped())?;
        answered.await.map_err(|_| writer_stopped())?
    }
}

fn writer_stopped() -> StoreError {
    StoreError::WriterStopped
}

async fn run(pool: WriterPool, queue: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    // Waits for one write, then takes every write queued meanwhile (up to MAX_GROUP). Only
    // one idle writer waits on the queue at a time; the others wait for their turn.
    while queue.lock().await.recv_many(&mut group, MAX_GROUP).await > 0 {
        let writes: Vec<&HotWrite> = group.iter().map(|pending| &pending.write).collect();
        let answers = commit(&pool, &writes).await;
        for (pending, answer) in group.drain(..).zip(answers) {
            // The caller may have gone (its request was dropped): the write stands anyway.
            let _ = pending.answer.send(answer);
        }
    }
}

/// Commits `writes` in one transaction, one answer per write in order. When the group fails,
/// each write is committed on its own so that only the failing one reports the error.
pub(super) async fn commit(pool: &WriterPool, writes: &[&HotWrite]) -> Vec<Answer> {
    match together(pool, writes).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(err) if writes.len() == 1 => vec![Err(err.into())],
        Err(_) => {
            let mut answers = Vec::with_capacity(writes.len());
            for write in writes {
                let answer = together(pool, std::slice::from_ref(write))
                    .await
                    .map(|mut one| one.pop().flatten())
                    .map_err(StoreError::from);
                answers.push(answer);
            }
            answers
        }
    }
}

async fn together(
    pool: &WriterPool,
    writes: &[&HotWrite],
) -> Result<Vec<Option<String>>, sqlx::Error> {
    // The same statements on either driver (their transaction types differ).
    macro_rules! in_one_transaction {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await?;
            let mut answers = Vec::with_capacity(writes.len());
            for write in writes {
                answers.push(match write {
                    HotWrite::Start(record) => {
                        write_start!(&mut *tx, record)?;
                        None
                    }
                    HotWrite::Finish {
                        execution_id,
                        outcome,
                        steps,
                    } => Some(write_finish!(tx, execution_id, outcome, steps)?),
                });
            }
            tx.commit().await?;
            Ok(answers)
        }};
    }
    match pool {
        WriterPool::Sqlite(pool) => in_one_transaction!(pool),
        WriterPool::Postgres(pool) => in_one_transaction!(pool),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate;
    use crate::records::{ExecutionStatus, ExecutionStore, Store};
    use crate::sql::SqlStore;

    fn start(id: &str) -> HotWrite {
        HotWrite::Start(Box::new(ExecutionRecord::new(
            id,
            "agent",
            "hello",
            serde_json::Map::new(),
        )))
    }

    fn finish(id: &str) -> HotWrite {
        HotWrite::Finish {
            execution_id: id.to_string(),
            outcome: Box::new(ExecutionOutcome {
                status: ExecutionStatus::Completed,
                result: None,
                usage: None,
                error: None,
                completed_at: chrono::Utc::now(),
            }),
            steps: Vec::new(),
        }
    }

    /// Commits a group whose second write fails and checks the others landed.
    async fn check_a_failing_write_fails_alone(store: SqlStore) {
        let writer = match &store.backend {
            crate::sql::Backend::Sqlite { write, .. } => WriterPool::Sqlite(write.clone()),
            crate::sql::Backend::Postgres(pool) => WriterPool::Postgres(pool.clone()),
        };
        let Ok(_) = migrate::upgrade(&store, None).await else {
            unreachable!("cannot migrate")
        };
        let Ok(()) = store
            .insert_execution(ExecutionRecord::new("a", "agent", "hi", Default::default()))
            .await
        else {
            unreachable!("first insert failed")
        };
        // "a" exists already: its second start violates the primary key.
        let group = [start("b"), start("a"), finish("a"), start("c")];
        let refs: Vec<&HotWrite> = group.iter().collect();
        let answers = commit(&writer, &refs).await;
        let backend = store.backend();
        assert!(matches!(answers[0], Ok(None)), "{backend}");
        assert!(answers[1].is_err(), "{backend}: {:?}", answers[1]);
        assert!(
            matches!(&answers[2], Ok(Some(status)) if status == "completed"),
            "{backend}: {:?}",
            answers[2]
        );
        assert!(matches!(answers[3], Ok(None)), "{backend}");
        for id in ["a", "b", "c"] {
            assert!(
                matches!(store.get_execution(id).await, Ok(Some(_))),
                "{backend}: {id} was lost"
            );
        }
        assert!(matches!(
            store.get_execution("a").await,
            Ok(Some(record)) if record.status == ExecutionStatus::Completed
        ));
    }

    #[tokio::test]
    async fn a_failing_write_fails_alone_on_sqlite() {
        let Ok(dir) = tempfile::tempdir() else {
            unreachable!("no temporary directory")
        };
        let Ok(store) = SqlStore::connect("sqlite:///group.db", dir.path()).await else {
            unreachable!("cannot open SQLite")
        };
        check_a_failing_write_fails_alone(store).await;
    }

    #[tokio::test]
    async fn a_failing_write_fails_alone_on_postgres() {
        let Some(url) = test_services::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
            return;
        };
        let schema = format!("group_{}", uuid::Uuid::new_v4().simple());
        let Ok(store) =
            SqlStore::connect_in_schema(&url, std::path::Path::new("."), Some(&schema)).await
        else {
            unreachable!("cannot reach PostgreSQL at {url}")
        };
        check_a_failing_write_fails_alone(store.clone()).await;
        let crate::sql::Backend::Postgres(pool) = &store.backend else {
            unreachable!("not PostgreSQL")
        };
        let drop_schema = format!("DROP SCHEMA \"{schema}\" CASCADE");
        let Ok(_) = sqlx::query(sqlx::AssertSqlSafe(drop_schema))
            .execute(pool)
            .await
        else {
            unreachable!("cannot drop the test schema")
        };
    }
}
