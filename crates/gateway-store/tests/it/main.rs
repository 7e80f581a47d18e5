//! One suite, every backend: memory and SQLite always, PostgreSQL when `TEST_POSTGRES_URL`
//! is set (CI sets it; with `CI` set and no URL the tests fail instead of skipping it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::{Duration, Utc};
// The stores of the migration and SQLite-only tests are concrete types: the traits of the
// kinds they use must be in scope (on `dyn Store` every kind's methods are).
use gateway_store::{
    ApprovalDecision, ApprovalRecord, ApprovalStatus, ApprovalStore, CancelResult,
    ConversationFilter, ConversationTurn, ExecutionFilter, ExecutionOutcome, ExecutionRecord,
    ExecutionStatus, ExecutionStore, InstanceRecord, McpServerRecord, MemoryStore,
    NotificationFilter, NotificationRecord, ScheduleRecord, SqlStore, StepRecord, Store,
    StoreError, UserConfigRecord, migrate,
};
use serde_json::json;

mod memories;
mod roundtrip;

/// A store under test and what cleans it up.
struct Subject {
    name: &'static str,
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    cleanup: Option<(String, String)>,
}

impl Drop for Subject {
    fn drop(&mut self) {
        // Drop the test's PostgreSQL schema (best effort, on a fresh runtime).
        if let Some((url, schema)) = self.cleanup.take() {
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                        )))
                        .execute(&pool)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

fn postgres_url() -> Option<String> {
    test_services::service_url("TEST_POSTGRES_URL", "PostgreSQL")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

async fn sqlite() -> (SqlStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::connect("sqlite:///test.db", dir.path())
        .await
        .unwrap();
    migrate::upgrade(&store, None).await.unwrap();
    (store, dir)
}

async fn postgres(url: &str) -> (SqlStore, String) {
    let schema = unique("t");
    let store = SqlStore::connect_in_schema(url, std::path::Path::new("."), Some(&schema))
        .await
        .unwrap();
    migrate::upgrade(&store, None).await.unwrap();
    (store, schema)
}

async fn subjects() -> Vec<Subject> {
    let mut all = vec![Subject {
        name: "memory",
        store: Arc::new(MemoryStore::new()),
        _dir: None,
        cleanup: None,
    }];
    let (store, dir) = sqlite().await;
    all.push(Subject {
        name: "sqlite",
        store: Arc::new(store),
        _dir: Some(dir),
        cleanup: None,
    });
    if let Some(url) = postgres_url() {
        let (store, schema) = postgres(&url).await;
        all.push(Subject {
            name: "postgres",
            store: Arc::new(store),
            _dir: None,
            cleanup: Some((url, schema)),
        });
    }
    all
}

fn execution(agent: &str) -> ExecutionRecord {
    let mut record = ExecutionRecord::new(
        &uuid::Uuid::new_v4().to_string(),
        agent,
        "hello",
        serde_json::Map::new(),
    );
    record.input.insert("city".into(), json!("Oslo"));
    record.instance_id = Some("instance-a".into());
    record
}

fn outcome(status: ExecutionStatus) -> ExecutionOutcome {
    ExecutionOutcome {
        status,
        result: Some(json!({"raw_text": "done", "output": null})),
        usage: Some(json!({"input_tokens": 3})),
        error: None,
        completed_at: Utc::now(),
    }
}

#[tokio::test]
async fn execution_lifecycle_and_steps() {
    for subject in subjects().await {
        let store = &subject.store;
        let record = execution("writer");
        store.insert_execution(record.clone()).await.unwrap();
        let id = &record.execution_id;
        assert!(
            store.mark_running(id, Utc::now()).await.unwrap(),
            "{}",
            subject.name
        );
        assert!(
            !store.mark_running(id, Utc::now()).await.unwrap(),
            "only queued → running"
        );
        let loaded = store.get_execution(id).await.unwrap().unwrap();
        assert_eq!(loaded.status, ExecutionStatus::Running, "{}", subject.name);
        assert_eq!(loaded.input["city"], "Oslo");
        assert!(loaded.started_at.is_some());

        let steps = vec![
            StepRecord {
                step_type: "llm_call".into(),
                sequence: 1,
                data: json!({"model": "m"}),
                duration_ms: 5,
                created_at: Utc::now(),
            },
            StepRecord {
                step_type: "tool_call".into(),
                sequence: 2,
                data: json!({"tool_name": "t"}),
                duration_ms: 0,
                created_at: Utc::now(),
            },
        ];
        let status = store
            .finish_execution(id, outcome(ExecutionStatus::Completed), steps.clone())
            .await
            .unwrap();
        assert_eq!(status, ExecutionStatus::Completed);
        let loaded = store.get_execution(id).await.unwrap().unwrap();
        assert_eq!(
            loaded.status,
            ExecutionStatus::Completed,
            "{}",
            subject.name
        );
        assert_eq!(loaded.result.unwrap()["raw_text"], "done");
        assert_eq!(loaded.usage.unwrap()["input_tokens"], 3);
        assert!(loaded.completed_at.is_some());
        let read_steps = store.execution_steps(id).await.unwrap();
        assert_eq!(read_steps.len(), 2, "{}", subject.name);
        assert_eq!(read_steps[0].step_type, "llm_call");
        assert_eq!(read_steps[1].data["tool_name"], "t");
        assert!(store.get_execution("nope").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_long_run_records_all_its_steps_in_order() {
    // More steps than one INSERT statement carries: they are written in several.
    for subject in subjects().await {
        let store = &subject.store;
        let record = execution("long");
        store.insert_execution(record.clone()).await.unwrap();
        let steps: Vec<StepRecord> = (1..=450)
            .map(|sequence| StepRecord {
                step_type: if sequence % 2 == 0 {
                    "tool_result"
                } else {
                    "tool_call"
                }
                .into(),
                sequence,
                data: json!({"n": sequence}),
                duration_ms: sequence,
                created_at: Utc::now(),
            })
            .collect();
        store
            .finish_execution(
                &record.execution_id,
                outcome(ExecutionStatus::Completed),
                steps,
            )
            .await
            .unwrap();
        let read = store.execution_steps(&record.execution_id).await.unwrap();
        assert_eq!(read.len(), 450, "{}", subject.name);
        for (i, step) in read.iter().enumerate() {
            let sequence = i as i64 + 1;
            assert_eq!(step.sequence, sequence, "{}", subject.name);
            assert_eq!(step.data["n"], sequence, "{}", subject.name);
            assert_eq!(step.duration_ms, sequence, "{}", subject.name);
        }
    }
}

fn approval(execution_id: &str, tool: &str) -> ApprovalRecord {
    ApprovalRecord {
        approval_id: uuid::Uuid::new_v4().to_string(),
        execution_id: execution_id.to_string(),
        tool_name: tool.to_string(),
        call_id: format!("call_{tool}"),
        arguments: json!({"amount": 5}),
        status: ApprovalStatus::Pending,
        reason: None,
        decided_by: None,
        created_at: Utc::now(),
        decided_at: None,
    }
}

fn decision(status: ApprovalStatus, reason: Option<&str>) -> ApprovalDecision {
    ApprovalDecision {
        status,
        reason: reason.map(str::to_string),
        decided_by: Some("alice".into()),
        at: Utc::now(),
    }
}

#[tokio::test]
async fn approvals_pause_and_resume_an_execution() {
    for subject in subjects().await {
        let store = &subject.store;
        let name = subject.name;
        let mut record = execution("payer");
        record.status = ExecutionStatus::Running;
        store.insert_execution(record.clone()).await.unwrap();
        let id = &record.execution_id;
        let refund = approval(id, "refund");
        let email = approval(id, "email");
        store
            .request_approvals(&[refund.clone(), email.clone()])
            .await
            .unwrap();
        let status = |r: Option<ExecutionRecord>| r.unwrap().status;
        assert_eq!(
            status(store.get_execution(id).await.unwrap()),
            ExecutionStatus::WaitingApproval,
            "{name}"
        );
        // One decided by id, then the rest at once; a decided approval is not decided again.
        let first = store
            .decide_approvals(
                id,
                Some(&refund.approval_id),
                &decision(ApprovalStatus::Approved, None),
            )
            .await
            .unwrap();
        assert_eq!(first.len(), 1, "{name}");
        assert_eq!(first[0].status, ApprovalStatus::Approved);
        assert_eq!(first[0].decided_by.as_deref(), Some("alice"));
        let rest = store
            .decide_approvals(
                id,
                None,
                &decision(ApprovalStatus::Denied, Some("too risky")),
            )
            .await
            .unwrap();
        assert_eq!(rest.len(), 1, "{name}");
        assert_eq!(rest[0].approval_id, email.approval_id);
        assert!(
            store
                .decide_approvals(id, None, &decision(ApprovalStatus::Approved, None))
                .await
                .unwrap()
                .is_empty(),
            "{name}: nothing left pending"
        );
        let all = store.approvals(id).await.unwrap();
        assert_eq!(all.len(), 2, "{name}");
        let denied = all.iter().find(|a| a.tool_name == "email").unwrap();
        assert_eq!(denied.status, ApprovalStatus::Denied);
        assert_eq!(denied.reason.as_deref(), Some("too risky"));
        assert_eq!(denied.arguments, json!({"amount": 5}));
        assert!(store.resume_execution(id).await.unwrap(), "{name}");
        assert_eq!(
            status(store.get_execution(id).await.unwrap()),
            ExecutionStatus::Running
        );
        assert!(
            !store.resume_execution(id).await.unwrap(),
            "only from waiting"
        );

        // A waiting execution can be cancelled, and then never resumes.
        store
            .request_approvals(&[approval(id, "refund")])
            .await
            .unwrap();
        assert_eq!(
            store.cancel_execution(id, Utc::now()).await.unwrap(),
            CancelResult::Cancelled
        );
        assert!(!store.resume_execution(id).await.unwrap(), "{name}");
    }
}

#[tokio::test]
async fn mcp_servers_are_stored_with_unique_names() {
    for subject in subjects().await {
        let store = &subject.store;
        let name = subject.name;
        let record = McpServerRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name: "files".into(),
            transport: "stdio".into(),
            command: Some("mcp-files".into()),
            args: vec!["--root".into(), "/tmp".into()],
            url: None,
            encrypted_env: Some("v1:abcd".into()),
            encrypted_headers: None,
            encrypted_credentials: None,
            enabled: true,
            created_at: Utc::now(),
            updated_at: None,
        };
        store.insert_mcp_server(&record).await.unwrap();
        let mut twin = record.clone();
        twin.id = uuid::Uuid::new_v4().to_string();
        assert!(
            matches!(
                store.insert_mcp_server(&twin).await,
                Err(StoreError::Conflict(_))
            ),
            "{name}: names are unique"
        );
        let got = store.get_mcp_server(&record.id).await.unwrap().unwrap();
        assert_eq!(got.args, record.args, "{name}");
        assert_eq!(got.encrypted_env.as_deref(), Some("v1:abcd"));
        assert!(got.enabled);

        let mut changed = got.clone();
        changed.enabled = false;
        changed.url = None;
        changed.encrypted_env = None;
        changed.updated_at = Some(Utc::now());
        assert!(store.update_mcp_server(&changed).await.unwrap());
        let got = store.get_mcp_server(&record.id).await.unwrap().unwrap();
        assert!(!got.enabled, "{name}");
        assert_eq!(got.encrypted_env, None);
        assert!(got.updated_at.is_some());

        twin.name = "web".into();
        store.insert_mcp_server(&twin).await.unwrap();
        let names: Vec<String> = store
            .list_mcp_servers()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, vec!["files", "web"], "{name}");
        twin.name = "files".into();
        assert!(
            matches!(
                store.update_mcp_server(&twin).await,
                Err(StoreError::Conflict(_))
            ),
            "{name}: renaming onto a taken name"
        );
        assert!(store.delete_mcp_server(&record.id).await.unwrap());
        assert!(!store.delete_mcp_server(&record.id).await.unwrap());
        assert!(store.get_mcp_server(&record.id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn user_configs_are_kept_per_user_and_agent() {
    for subject in subjects().await {
        let store = &subject.store;
        let name = subject.name;
        let mut record = UserConfigRecord {
            user_id: "alice".into(),
            agent_id: "mailer".into(),
            instructions: Some("Sign as A.".into()),
            config_values: json!({"signature": "A"}).as_object().unwrap().clone(),
            encrypted_secrets: json!({"smtp_password": "v1:00ff"})
                .as_object()
                .unwrap()
                .clone(),
            setup_completed: false,
            created_at: Utc::now() - Duration::hours(1),
            updated_at: Utc::now() - Duration::hours(1),
        };
        store.put_user_config(&record).await.unwrap();
        let first_created = record.created_at;
        record.setup_completed = true;
        record.created_at = Utc::now();
        record.updated_at = Utc::now();
        store.put_user_config(&record).await.unwrap();
        let got = store
            .get_user_config("alice", "mailer")
            .await
            .unwrap()
            .unwrap();
        assert!(got.setup_completed, "{name}");
        assert_eq!(got.config_values["signature"], "A");
        assert_eq!(got.encrypted_secrets["smtp_password"], "v1:00ff");
        assert_eq!(
            got.created_at.timestamp(),
            first_created.timestamp(),
            "{name}: created_at stays"
        );
        assert!(
            store
                .get_user_config("bob", "mailer")
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.delete_user_config("alice", "mailer").await.unwrap());
        assert!(!store.delete_user_config("alice", "mailer").await.unwrap());
    }
}

#[tokio::test]
async fn each_schedule_fire_is_claimed_once() {
    for subject in subjects().await {
        let store = &subject.store;
        let name = subject.name;
        let record = ScheduleRecord {
            id: "writer:daily".into(),
            agent_id: "writer".into(),
            name: "daily".into(),
            cron_expr: "0 9 * * *".into(),
            message: "write".into(),
            instructions: None,
            input: serde_json::Map::new(),
            enabled: true,
            timezone: "UTC".into(),
            source: "workspace".into(),
            last_run_at: None,
            next_run_at: None,
            overrides: json!({"cron_expr": "0 10 * * *"})
                .as_object()
                .unwrap()
                .clone(),
            created_at: Utc::now(),
        };
        store.put_schedule(&record).await.unwrap();
        let fire = Utc::now();
        let claims: Vec<bool> = futures_join(store, &record.id, fire).await;
        assert_eq!(
            claims.iter().filter(|c| **c).count(),
            1,
            "{name}: {claims:?}"
        );
        assert!(
            !store
                .claim_schedule_fire(&record.id, fire - Duration::seconds(1), None, true)
                .await
                .unwrap(),
            "{name}: an older fire never runs after a newer one"
        );
        assert!(
            store
                .claim_schedule_fire(&record.id, fire + Duration::seconds(60), None, true)
                .await
                .unwrap()
        );
        // Writing the definition again keeps the record of fires.
        store.put_schedule(&record).await.unwrap();
        let got = store.get_schedule(&record.id).await.unwrap().unwrap();
        assert!(got.last_run_at.unwrap() > fire, "{name}");
        assert_eq!(got.overrides["cron_expr"], "0 10 * * *");
        assert_eq!(store.list_schedules().await.unwrap().len(), 1);
        assert!(store.delete_schedule(&record.id, Utc::now()).await.unwrap());
        assert!(
            store.get_schedule(&record.id).await.unwrap().is_none(),
            "{name}"
        );
        assert!(store.list_schedules().await.unwrap().is_empty());
        assert!(
            !store
                .claim_schedule_fire(&record.id, fire + Duration::seconds(120), None, false)
                .await
                .unwrap()
        );
        store.put_schedule(&record).await.unwrap();
        assert!(
            store.get_schedule(&record.id).await.unwrap().is_some(),
            "{name}: recreated"
        );
    }
}

/// Ten concurrent claims of the same fire.
async fn futures_join(store: &Arc<dyn Store>, id: &str, fire: chrono::DateTime<Utc>) -> Vec<bool> {
    let mut handles = Vec::new();
    for _ in 0..10 {
        let store = Arc::clone(store);
        let id = id.to_string();
        handles.push(tokio::spawn(async move {
            store
                .claim_schedule_fire(&id, fire, None, true)
                .await
                .unwrap()
        }));
    }
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn notifications_are_logged_filtered_and_paged() {
    for subject in subjects().await {
        let store = &subject.store;
        let name = subject.name;
        let record = |channel: &str, status: &str| NotificationRecord {
            id: 0,
            execution_id: "e1".into(),
            agent_id: "writer".into(),
            event_type: "execution.completed".into(),
            channel: channel.into(),
            target: "https://hooks.example/x".into(),
            status: status.into(),
            attempts: 0,
            last_error: None,
            payload: json!({"body": {"event": "execution.completed"}}),
            created_at: Utc::now(),
            delivered_at: None,
        };
        let first = store
            .insert_notification(&record("webhook", "pending"))
            .await
            .unwrap();
        let second = store
            .insert_notification(&record("slack", "pending"))
            .await
            .unwrap();
        assert_ne!(first, second);
        store
            .update_notification(first, "failed", 3, Some("HTTP 500"), None)
            .await
            .unwrap();
        store
            .update_notification(second, "delivered", 1, None, Some(Utc::now()))
            .await
            .unwrap();
        let got = store.get_notification(first).await.unwrap().unwrap();
        assert_eq!((got.status.as_str(), got.attempts), ("failed", 3), "{name}");
        assert_eq!(got.last_error.as_deref(), Some("HTTP 500"));
        assert_eq!(got.payload["body"]["event"], "execution.completed");
        let filter = |status: Option<&str>, channel: Option<&str>| NotificationFilter {
            status: status.map(str::to_string),
            channel: channel.map(str::to_string),
            limit: 10,
            ..NotificationFilter::default()
        };
        let (items, total) = store
            .list_notifications(&filter(Some("failed"), None))
            .await
            .unwrap();
        assert_eq!((items.len(), total), (1, 1), "{name}");
        let (items, total) = store
            .list_notifications(&filter(None, Some("slack")))
            .await
            .unwrap();
        assert_eq!((items[0].id, total), (second, 1));
        let (items, total) = store
            .list_notifications(&NotificationFilter {
                limit: 1,
                offset: 1,
                ..NotificationFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(
            (items.len(), total),
            (1, 2),
            "{name}: paged, total counts all"
        );
        assert_eq!(items[0].id, first, "newest first");

        // Deliveries about one user's executions.
        let mut owned = ExecutionRecord::new("e1", "writer", "hi", Default::default());
        owned.user_id = Some("alice".into());
        store.insert_execution(owned).await.unwrap();
        let of = |owner: &str| NotificationFilter {
            owner: Some(owner.into()),
            limit: 10,
            ..NotificationFilter::default()
        };
        let (items, total) = store.list_notifications(&of("alice")).await.unwrap();
        assert_eq!((items.len(), total), (2, 2), "{name}");
        let (items, total) = store.list_notifications(&of("bob")).await.unwrap();
        assert_eq!((items.len(), total), (0, 0), "{name}: not bob's");
    }
}

#[tokio::test]
async fn queued_jobs_are_claimed_once_and_taken_over_from_dead_workers() {
    for subject in subjects().await {
        let store = &subject.store;
        let name = subject.name;
        let mut record = execution("worker");
        record.instance_id = None;
        record.options = Some(json!({"async": true, "queue": "durable"}));
        store.insert_execution(record.clone()).await.unwrap();
        let id = record.execution_id.clone();
        let alive = vec!["a".to_string(), "b".to_string()];
        let mut handles = Vec::new();
        for worker in ["a", "b", "a", "b"] {
            let store = Arc::clone(store);
            let (id, alive) = (id.clone(), alive.clone());
            handles.push(tokio::spawn(async move {
                store
                    .claim_queued_execution(&id, worker, &alive, Utc::now())
                    .await
                    .unwrap()
            }));
        }
        let mut wins = 0;
        for handle in handles {
            wins += usize::from(handle.await.unwrap());
        }
        assert_eq!(wins, 1, "{name}: one worker runs it");
        let owner = store
            .get_execution(&id)
            .await
            .unwrap()
            .unwrap()
            .instance_id
            .unwrap();
        let other = if owner == "a" { "b" } else { "a" };
        assert!(
            !store
                .claim_queued_execution(&id, other, &alive, Utc::now())
                .await
                .unwrap(),
            "{name}: not while its worker lives"
        );
        // The reaper leaves durable-queue jobs to the queue.
        if name != "memory" {
            store
                .fail_orphans(&[other.to_string()], "gone")
                .await
                .unwrap();
            let after = store.get_execution(&id).await.unwrap().unwrap();
            assert_eq!(after.status, ExecutionStatus::Running, "{name}");
        }
        assert!(
            store
                .claim_queued_execution(&id, other, &[other.to_string()], Utc::now())
                .await
                .unwrap(),
            "{name}: taken over once its worker is gone"
        );
        store
            .finish_execution(&id, outcome(ExecutionStatus::Completed), Vec::new())
            .await
            .unwrap();
        assert!(
            !store
                .claim_queued_execution(&id, "c", &[], Utc::now())
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn cancel_wins_over_a_late_finish() {
    for subject in subjects().await {
        let store = &subject.store;
        let record = execution("a");
        store.insert_execution(record.clone()).await.unwrap();
        let id = &record.execution_id;
        assert_eq!(
            store.cancel_execution(id, Utc::now()).await.unwrap(),
            CancelResult::Cancelled
        );
        assert_eq!(
            store
                .cancelled_among(&[id.clone(), "other".into()])
                .await
                .unwrap(),
            vec![id.clone()],
            "{}",
            subject.name
        );
        let status = store
            .finish_execution(id, outcome(ExecutionStatus::Completed), Vec::new())
            .await
            .unwrap();
        assert_eq!(status, ExecutionStatus::Cancelled, "{}", subject.name);
        assert_eq!(
            store.cancel_execution(id, Utc::now()).await.unwrap(),
            CancelResult::AlreadyFinished(ExecutionStatus::Cancelled)
        );
        assert_eq!(
            store.cancel_execution("missing", Utc::now()).await.unwrap(),
            CancelResult::NotFound
        );
        assert!(
            !store.mark_running(id, Utc::now()).await.unwrap(),
            "a cancelled execution never starts"
        );
    }
}

#[tokio::test]
async fn listing_filters_order_and_pages() {
    for subject in subjects().await {
        let store = &subject.store;
        let agent = unique("agent");
        let mut ids = Vec::new();
        for i in 0..5 {
            let mut record = execution(&agent);
            record.created_at = Utc::now() - Duration::seconds(10 - i);
            record.session_id = Some(if i % 2 == 0 {
                "s-even".into()
            } else {
                "s-odd".into()
            });
            store.insert_execution(record.clone()).await.unwrap();
            ids.push(record.execution_id);
        }
        let filter = |f: ExecutionFilter| ExecutionFilter {
            agent_id: Some(agent.clone()),
            limit: if f.limit == 0 { 50 } else { f.limit },
            ..f
        };
        let all = store
            .list_executions(&filter(ExecutionFilter::default()))
            .await
            .unwrap();
        let listed: Vec<&str> = all.iter().map(|r| r.execution_id.as_str()).collect();
        let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
        assert_eq!(listed, newest_first, "{}", subject.name);
        let even = store
            .list_executions(&filter(ExecutionFilter {
                session_id: Some("s-even".into()),
                ..Default::default()
            }))
            .await
            .unwrap();
        assert_eq!(even.len(), 3);
        let page = store
            .list_executions(&filter(ExecutionFilter {
                limit: 2,
                offset: 1,
                ..Default::default()
            }))
            .await
            .unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].execution_id, ids[3]);
        let queued = store
            .list_executions(&filter(ExecutionFilter {
                status: Some(ExecutionStatus::Queued),
                ..Default::default()
            }))
            .await
            .unwrap();
        assert_eq!(queued.len(), 5);
    }
}

#[tokio::test]
async fn delegation_tree_from_any_node() {
    for subject in subjects().await {
        let store = &subject.store;
        let root = execution("boss");
        let mut child = execution("researcher");
        child.parent_execution_id = Some(root.execution_id.clone());
        child.root_execution_id = Some(root.execution_id.clone());
        child.delegation_depth = 1;
        let mut grandchild = execution("writer");
        grandchild.parent_execution_id = Some(child.execution_id.clone());
        grandchild.root_execution_id = Some(root.execution_id.clone());
        grandchild.delegation_depth = 2;
        for r in [&grandchild, &root, &child] {
            store.insert_execution(r.clone()).await.unwrap();
        }
        for start in [&root, &child, &grandchild] {
            let tree = store.workflow(&start.execution_id).await.unwrap();
            let agents: Vec<&str> = tree.iter().map(|r| r.agent_id.as_str()).collect();
            assert_eq!(
                agents,
                vec!["boss", "researcher", "writer"],
                "{}",
                subject.name
            );
        }
        assert!(store.workflow("missing").await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn orphans_of_dead_instances_fail() {
    for subject in subjects().await {
        if subject.name == "memory" {
            continue;
        }
        let store = &subject.store;
        let instance = |id: &str| InstanceRecord {
            id: id.to_string(),
            host: "h".into(),
            pid: 42,
            heartbeat_at: Utc::now(),
        };
        let dead = unique("dead");
        let alive = unique("alive");
        store.heartbeat(&instance(&dead)).await.unwrap();
        store.heartbeat(&instance(&alive)).await.unwrap();
        let ids: Vec<String> = store
            .instances()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert!(
            ids.contains(&dead) && ids.contains(&alive),
            "{}",
            subject.name
        );
        let mut orphan = execution("a");
        orphan.instance_id = Some(dead.clone());
        orphan.status = ExecutionStatus::Running;
        let mut healthy = execution("a");
        healthy.instance_id = Some(alive.clone());
        healthy.status = ExecutionStatus::Running;
        let mut done = execution("a");
        done.instance_id = Some(dead.clone());
        let mut waiting = execution("a");
        waiting.instance_id = Some(dead.clone());
        waiting.status = ExecutionStatus::Running;
        for r in [&orphan, &healthy, &done, &waiting] {
            store.insert_execution(r.clone()).await.unwrap();
        }
        let pending = approval(&waiting.execution_id, "refund");
        store
            .request_approvals(std::slice::from_ref(&pending))
            .await
            .unwrap();
        store
            .finish_execution(
                &done.execution_id,
                outcome(ExecutionStatus::Completed),
                Vec::new(),
            )
            .await
            .unwrap();
        let failed = store
            .fail_orphans(std::slice::from_ref(&alive), "gateway instance stopped")
            .await
            .unwrap();
        assert!(failed >= 1, "{}", subject.name);
        let orphan = store
            .get_execution(&orphan.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(orphan.status, ExecutionStatus::Failed);
        assert_eq!(orphan.error.as_deref(), Some("gateway instance stopped"));
        let waiting_now = store
            .get_execution(&waiting.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            waiting_now.status,
            ExecutionStatus::Failed,
            "{}",
            subject.name
        );
        let approvals = store.approvals(&waiting.execution_id).await.unwrap();
        assert_eq!(
            approvals[0].status,
            ApprovalStatus::Cancelled,
            "{}",
            subject.name
        );
        let healthy = store
            .get_execution(&healthy.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(healthy.status, ExecutionStatus::Running, "{}", subject.name);
        let done = store
            .get_execution(&done.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed);
        let ids: Vec<String> = store
            .instances()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, vec![alive.clone()], "the dead instance is forgotten");
        store.remove_instance(&alive).await.unwrap();
        assert!(store.instances().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn conversations_accumulate_turns() {
    for subject in subjects().await {
        let store = &subject.store;
        let user = unique("user");
        let conversation = unique("sess");
        let turn = |messages: Vec<(&str, &str)>, title: Option<&str>| ConversationTurn {
            conversation_id: conversation.clone(),
            agent_id: "buddy".into(),
            user_id: Some(user.clone()),
            title: title.map(String::from),
            messages: messages
                .into_iter()
                .map(|(r, c)| (r.to_string(), c.to_string()))
                .collect(),
            at: Utc::now(),
        };
        store
            .append_turn(&turn(
                vec![("user", "Hi, I am Ann"), ("assistant", "Hello Ann")],
                Some("Hi, I am Ann"),
            ))
            .await
            .unwrap();
        store
            .append_turn(&turn(
                vec![("user", "Who am I?"), ("assistant", "Ann")],
                Some("ignored"),
            ))
            .await
            .unwrap();
        let record = store
            .get_conversation(&conversation)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.message_count, 4, "{}", subject.name);
        assert_eq!(record.title.as_deref(), Some("Hi, I am Ann"));
        assert!(record.updated_at >= record.created_at);
        let messages = store
            .conversation_messages(&conversation, 100, 0)
            .await
            .unwrap();
        let text: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(
            text,
            vec!["Hi, I am Ann", "Hello Ann", "Who am I?", "Ann"],
            "{}",
            subject.name
        );
        assert!(messages.iter().all(|m| m.message_id.len() == 16));
        let page = store
            .conversation_messages(&conversation, 2, 1)
            .await
            .unwrap();
        assert_eq!(page[0].content, "Hello Ann");

        let listed = store
            .list_conversations(&of_user(&user, None))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert!(
            store
                .list_conversations(&of_user(&user, Some("other")))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .list_conversations(&of_user("someone-else", None))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .end_conversation(&conversation, Utc::now())
                .await
                .unwrap()
        );
        assert!(
            store
                .get_conversation(&conversation)
                .await
                .unwrap()
                .unwrap()
                .ended_at
                .is_some(),
            "{}",
            subject.name
        );
        assert!(!store.end_conversation("missing", Utc::now()).await.unwrap());
        assert!(store.delete_conversation(&conversation).await.unwrap());
        assert!(
            store
                .get_conversation(&conversation)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .conversation_messages(&conversation, 10, 0)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

/// The first ten conversations of `user` (of one agent when given).
fn of_user(user: &str, agent: Option<&str>) -> ConversationFilter {
    ConversationFilter {
        user_id: Some(user.to_string()),
        agent_id: agent.map(str::to_string),
        limit: 10,
        ..ConversationFilter::default()
    }
}

#[tokio::test]
async fn conversations_are_listed_by_each_filter_and_their_combination() {
    use chrono::SubsecRound;

    for subject in subjects().await {
        let store = &subject.store;
        let name = subject.name;
        let (ann, bob) = (unique("ann"), unique("bob"));
        let (chef, tutor) = (unique("chef"), unique("tutor"));
        // Whole milliseconds: every backend keeps them exactly.
        let now = Utc::now().trunc_subsecs(3);
        let ago = |minutes: i64| now - Duration::minutes(minutes);
        // (id, user, agent, last updated); listed newest first: c5 .. c1.
        let conversations = [
            ("c1", Some(&ann), &chef, ago(30)),
            ("c2", Some(&ann), &tutor, ago(20)),
            ("c3", Some(&ann), &chef, ago(10)),
            ("c4", Some(&bob), &chef, ago(5)),
            ("c5", None, &chef, ago(1)),
        ];
        for (id, user, agent, at) in conversations {
            store
                .append_turn(&ConversationTurn {
                    conversation_id: id.to_string(),
                    agent_id: agent.clone(),
                    user_id: user.cloned(),
                    title: None,
                    messages: vec![("user".into(), "hi".into())],
                    at,
                })
                .await
                .unwrap();
        }
        // Ending a conversation does not make it more recent.
        assert!(store.end_conversation("c2", now).await.unwrap(), "{name}");
        let listed = |filter: ConversationFilter| async move {
            let found = store
                .list_conversations(&ConversationFilter {
                    limit: 50,
                    ..filter
                })
                .await
                .unwrap();
            found
                .into_iter()
                .map(|c| c.conversation_id)
                .collect::<Vec<_>>()
        };
        let all = ConversationFilter::default;

        assert_eq!(
            listed(all()).await,
            ["c5", "c4", "c3", "c2", "c1"],
            "{name}: no filter lists every user's, anonymous ones included"
        );
        assert_eq!(
            listed(ConversationFilter {
                user_id: Some(ann.clone()),
                ..all()
            })
            .await,
            ["c3", "c2", "c1"],
            "{name}: by user"
        );
        assert_eq!(
            listed(ConversationFilter {
                agent_id: Some(chef.clone()),
                ..all()
            })
            .await,
            ["c5", "c4", "c3", "c1"],
            "{name}: by agent"
        );
        assert_eq!(
            listed(ConversationFilter {
                updated_since: Some(ago(10)),
                ..all()
            })
            .await,
            ["c5", "c4", "c3"],
            "{name}: updated since, the bound included"
        );
        assert_eq!(
            listed(ConversationFilter {
                open_only: true,
                ..all()
            })
            .await,
            ["c5", "c4", "c3", "c1"],
            "{name}: open only"
        );
        assert_eq!(
            listed(ConversationFilter {
                user_id: Some(ann.clone()),
                open_only: true,
                ..all()
            })
            .await,
            ["c3", "c1"],
            "{name}: a user's open ones"
        );
        assert_eq!(
            listed(ConversationFilter {
                user_id: Some(ann.clone()),
                agent_id: Some(chef.clone()),
                updated_since: Some(ago(15)),
                open_only: true,
                ..all()
            })
            .await,
            ["c3"],
            "{name}: every filter at once"
        );
        assert!(
            listed(ConversationFilter {
                user_id: Some(bob.clone()),
                agent_id: Some(tutor.clone()),
                ..all()
            })
            .await
            .is_empty(),
            "{name}: filters combine"
        );
        let page = store
            .list_conversations(&ConversationFilter {
                user_id: Some(ann.clone()),
                limit: 1,
                offset: 1,
                ..all()
            })
            .await
            .unwrap();
        let page: Vec<&str> = page.iter().map(|c| c.conversation_id.as_str()).collect();
        assert_eq!(page, ["c2"], "{name}: paged after filtering");
    }
}

/// SQLite under concurrent writers and readers: no "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_survives_concurrent_load() {
    let (store, _dir) = sqlite().await;
    let store: Arc<dyn Store> = Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let record = execution("load");
                store.insert_execution(record.clone()).await?;
                store.mark_running(&record.execution_id, Utc::now()).await?;
                store
                    .list_executions(&ExecutionFilter {
                        agent_id: Some("load".into()),
                        limit: 5,
                        ..Default::default()
                    })
                    .await?;
                store
                    .finish_execution(
                        &record.execution_id,
                        outcome(ExecutionStatus::Completed),
                        Vec::new(),
                    )
                    .await?;
            }
            Ok::<_, gateway_store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let all = store
        .list_executions(&ExecutionFilter {
            agent_id: Some("load".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 500);
    assert!(all.iter().all(|r| r.status == ExecutionStatus::Completed));
}

#[tokio::test]
async fn migrations_go_up_and_down_by_step_and_to_a_version() {
    let mut stores = Vec::new();
    let (sqlite_store, dir) = sqlite().await;
    stores.push(("sqlite", sqlite_store, None));
    if let Some(url) = postgres_url() {
        let (store, schema) = postgres(&url).await;
        stores.push(("postgres", store, Some((url, schema))));
    }
    for (name, store, cleanup) in stores {
        assert_eq!(migrate::current(&store).await.unwrap(), 6, "{name}");
        let history = migrate::history(&store).await.unwrap();
        assert_eq!(history.len(), 6);
        assert!(history.iter().all(|m| m.applied));
        // One step down drops version 2 only: executions stay, approvals go.
        store.insert_execution(execution("x")).await.unwrap();
        assert_eq!(
            migrate::downgrade(&store, Some(1)).await.unwrap(),
            1,
            "{name}"
        );
        assert!(
            store.approvals("x").await.is_err(),
            "{name}: approvals dropped"
        );
        assert_eq!(
            migrate::downgrade(&store, Some(0)).await.unwrap(),
            0,
            "{name}"
        );
        assert!(
            store.get_execution("x").await.is_err(),
            "{name}: table dropped"
        );
        assert!(
            migrate::downgrade(&store, Some(7)).await.is_err(),
            "unknown version"
        );
        assert_eq!(migrate::upgrade(&store, Some(1)).await.unwrap(), 1);
        assert_eq!(migrate::upgrade(&store, None).await.unwrap(), 6);
        assert_eq!(
            migrate::upgrade(&store, None).await.unwrap(),
            6,
            "idempotent"
        );
        assert!(
            store
                .list_executions(&ExecutionFilter {
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .is_empty()
        );
        if let Some((url, schema)) = cleanup {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA \"{schema}\" CASCADE"
            )))
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    drop(dir);
}

#[tokio::test]
async fn the_write_ahead_log_is_folded_into_the_file_in_the_background() {
    // Commits never checkpoint (that would stall the request that crosses the threshold);
    // a background task does. Without it the database file would never grow.
    let (store, dir) = sqlite().await;
    let file = dir.path().join("test.db");
    let size = || std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let before = size();
    let mut record = execution("wal");
    record.message = "x".repeat(64 * 1024);
    for _ in 0..32 {
        record.execution_id = uuid::Uuid::new_v4().to_string();
        store.insert_execution(record.clone()).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() < before + 2 * 1024 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {} bytes (was {before})",
            size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The WAL header's checkpoint sequence number: it goes up each time the log starts over.
fn wal_generation(wal: &std::path::Path) -> u32 {
    let bytes = std::fs::read(wal).unwrap_or_default();
    bytes
        .get(12..16)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_starts_over_under_continuous_writes() {
    // A background checkpoint always ends a little behind a writer that never pauses; unless
    // the log is finished off between two writes it never starts over and grows without bound.
    // Large records pass the size from which the checkpointer finishes the log quickly.
    let (store, dir) = sqlite().await;
    let store = Arc::new(store);
    let wal = dir.path().join("test.db-wal");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..8 {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        writers.push(tokio::spawn(async move {
            let mut record = execution("wal");
            record.message = "x".repeat(64 * 1024);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                record.execution_id = uuid::Uuid::new_v4().to_string();
                store.insert_execution(record.clone()).await.unwrap();
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let first = wal_generation(&wal);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut restarted = false;
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // Past 1 GiB the log is not going to start over: stop before the disk fills.
    while !restarted && std::time::Instant::now() < deadline && wal_size() < 1 << 30 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        restarted = wal_generation(&wal) > first;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let size = wal_size();
    assert!(
        restarted,
        "the log never started over; it holds {size} bytes"
    );
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let record = execution("persist");
    {
        let store = gateway_store::open("sqlite+aiosqlite:///data/gw.db", dir.path(), None)
            .await
            .unwrap();
        store.insert_execution(record.clone()).await.unwrap();
    }
    assert!(dir.path().join("data/gw.db").exists());
    let store = gateway_store::open("sqlite:///data/gw.db", dir.path(), None)
        .await
        .unwrap();
    assert!(
        store
            .get_execution(&record.execution_id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        gateway_store::open("mysql://nope", dir.path(), None)
            .await
            .is_err()
    );
}
