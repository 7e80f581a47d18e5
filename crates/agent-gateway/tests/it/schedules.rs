//! Schedules: a fast cron firing, pause/resume/trigger, the admin lifecycle, runtime edits
//! that survive a restart, three instances running each fire exactly once, and the Redis
//! lock's holders crashing or its server going away.

use std::collections::BTreeMap;
use std::time::Duration;

use agent_gateway::Gateway;
use mock_llm::Reply;
use serde_json::{Value, json};

use crate::support::*;

async fn scheduled_runs(server: &TestServer, agent: &str) -> Vec<Value> {
    let (_, list) = server
        .get(&format!("/v1/executions?agent_id={agent}&limit=500"))
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["schedule_id"].is_string())
        .cloned()
        .collect()
}

fn ticking_workspace(extra: &str) -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.config(&format!("model:\n  default: {MODEL}\n{extra}"));
    ws.agent(
        "ticker",
        "schedules:\n  - name: every-second\n    cron: \"* * * * * *\"\n    message: Tick\n    input: {kind: tick}\n    instructions: Report the tick in one word.",
        "You tick.",
    );
    ws
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fast_cron_fires_and_can_be_paused_resumed_and_triggered() {
    let ws = ticking_workspace("");
    let (mock, server) = start(&ws).await;
    mock.set_default(Reply::text("tick"));
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let runs = scheduled_runs(&server, "ticker").await;
    assert!(runs.len() >= 2, "{runs:?}");
    assert_eq!(runs[0]["schedule_id"], "ticker:every-second");
    assert_eq!(runs[0]["schedule_name"], "every-second");
    assert_eq!(runs[0]["input"]["source"], "scheduled");
    assert_eq!(runs[0]["input"]["kind"], "tick");
    let system = mock.requests()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(system.contains("Report the tick in one word."), "{system}");

    let (_, listed) = server.get("/v1/schedules").await;
    assert_eq!(listed[0]["id"], "ticker:every-second");
    assert_eq!(listed[0]["source"], "workspace");
    assert!(listed[0]["next_run_at"].is_string());

    let (status, body) = server
        .post("/v1/schedules/ticker:every-second/pause", json!({}))
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("paused")));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let paused_at = scheduled_runs(&server, "ticker").await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        scheduled_runs(&server, "ticker").await.len(),
        paused_at,
        "no fires while paused"
    );

    let (status, body) = server
        .post("/v1/schedules/ticker:every-second/trigger", json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    let execution = body["execution_id"].as_str().unwrap().to_string();
    for _ in 0..100 {
        let (_, record) = server.get(&format!("/v1/executions/{execution}")).await;
        if record["status"] == "completed" {
            assert_eq!(record["input"]["source"], "manual_trigger");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, record) = server.get(&format!("/v1/executions/{execution}")).await;
    assert_eq!(record["status"], "completed");

    server
        .post("/v1/schedules/ticker:every-second/resume", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(
        scheduled_runs(&server, "ticker").await.len() > paused_at + 1,
        "fires again"
    );
    let (status, _) = server.post("/v1/schedules/nope/pause", json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn admin_schedules_and_runtime_edits() {
    let ws = TestWorkspace::new();
    ws.agent(
        "writer",
        "schedules:\n  - name: daily\n    cron: \"0 9 * * *\"\n    message: Write the daily note",
        "Write.",
    );
    let (mock, server) = start(&ws).await;
    let create = |name: &str, cron: &str, agent: &str| json!({"agent_id": agent, "name": name, "cron_expr": cron, "message": "Weekly summary", "timezone": "Europe/Oslo", "instructions": "Be brief."});
    let (status, body) = server
        .post("/v1/schedules", create("weekly", "0 8 * * 1", "writer"))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"status": "created", "schedule_id": "admin:writer:weekly"})
    );
    let (status, body) = server
        .post("/v1/schedules", create("weekly", "0 8 * * 1", "writer"))
        .await;
    assert_eq!((status, error_code(&body)), (409, "schedule_conflict"));
    let (status, body) = server
        .post("/v1/schedules", create("bad", "every monday", "writer"))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "schedule_validation_error")
    );
    let (status, _) = server
        .post("/v1/schedules", create("x", "0 8 * * 1", "ghost"))
        .await;
    assert_eq!(status, 400, "unknown agent");
    let (status, _) = server
        .post("/v1/schedules", create("bad name!", "0 8 * * 1", "writer"))
        .await;
    assert_eq!(status, 400);

    let (_, detail) = server.get("/v1/schedules/admin:writer:weekly").await;
    assert_eq!(detail["source"], "admin");
    assert_eq!(detail["timezone"], "Europe/Oslo");
    assert_eq!(detail["instructions"], "Be brief.");

    // A workspace schedule is edited at runtime, not deleted.
    let (status, body) = server.delete("/v1/schedules/writer:daily").await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "cannot_delete_workspace_schedule")
    );
    let response = server
        .client
        .patch(format!("{}/v1/schedules/writer:daily", server.url))
        .json(&json!({"cron_expr": "30 7 * * *", "instructions": "Mention the weather."}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bad_edit = server
        .client
        .patch(format!("{}/v1/schedules/writer:daily", server.url))
        .json(&json!({"timezone": "Mars/Base"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_edit.status(), 400);
    let agent_md = std::fs::read_to_string(ws.path().join("agents/writer/AGENT.md")).unwrap();
    assert!(agent_md.contains("0 9 * * *"), "AGENT.md is never written");

    let (status, body) = server.delete("/v1/schedules/admin:writer:weekly").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("deleted")));
    let (status, _) = server.get("/v1/schedules/admin:writer:weekly").await;
    assert_eq!(status, 404);
    server
        .post("/v1/schedules", create("monthly", "0 8 1 * *", "writer"))
        .await;

    if std::env::var("AGW_TEST_PERSISTENCE").as_deref() == Ok("memory") {
        return;
    }
    // After a restart: the edit and the admin schedule are still there.
    drop(server);
    let again = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    let (_, daily) = again.get("/v1/schedules/writer:daily").await;
    assert_eq!(daily["cron_expr"], "30 7 * * *");
    assert_eq!(daily["instructions"], "Mention the weather.");
    assert_eq!(daily["message"], "Write the daily note");
    let (status, _) = again.get("/v1/schedules/admin:writer:monthly").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_run_each_fire_exactly_once() {
    if std::env::var("AGW_TEST_PERSISTENCE").as_deref() == Ok("memory") {
        eprintln!("note: instances cannot share an in-memory store; skipped");
        return;
    }
    // The lock under test: PostgreSQL advisory locks on PostgreSQL, else Redis when present.
    let postgres = std::env::var("AGW_TEST_PERSISTENCE").as_deref() == Ok("postgres");
    let lock = match std::env::var("TEST_REDIS_URL") {
        _ if postgres => {
            "scheduler:\n  distributed_lock:\n    enabled: true\n    backend: postgres\n"
                .to_string()
        }
        Ok(url) => format!(
            "scheduler:\n  distributed_lock:\n    enabled: true\n    backend: redis\n    redis_url: {url}\n    key_prefix: \"agw-test-{}:\"\n",
            uuid::Uuid::new_v4().simple()
        ),
        Err(_) => String::new(),
    };
    let ws = ticking_workspace(&lock);
    let mock = mock_llm::MockLlm::start().await.unwrap();
    mock.set_default(Reply::text("tick"));
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await);
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for server in &servers {
        server
            .post("/v1/schedules/ticker:every-second/pause", json!({}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = scheduled_runs(&servers[0], "ticker").await;
    let mut per_fire: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        *per_fire
            .entry(run["input"]["scheduled_for"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(per_fire.len() >= 2, "{per_fire:?}");
    assert!(
        per_fire.values().all(|n| *n == 1),
        "each fire once: {per_fire:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_left_by_a_crashed_holder_expires() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let prefix = format!("agw-test-{}:", uuid::Uuid::new_v4().simple());
    // The crashed holder's lock, with 1.5 s left to live.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}ticker:every-second"))
        .arg("dead-holder")
        .arg("PX")
        .arg(4000)
        .query_async(&mut connection)
        .await
        .unwrap();
    let ws = ticking_workspace(&format!(
        "scheduler:\n  misfire_grace_seconds: 1\n  distributed_lock:\n    enabled: true\n    backend: redis\n    redis_url: {url}\n    key_prefix: \"{prefix}\"\n"
    ));
    let (mock, server) = start(&ws).await;
    mock.set_default(Reply::text("tick"));
    // The crashed holder's lock lives 1.5 s more from now, however long the start took (a
    // slow start on a busy machine must not let it expire unseen).
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}ticker:every-second"))
        .arg("dead-holder")
        .arg("PX")
        .arg(1500)
        .query_async(&mut connection)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        scheduled_runs(&server, "ticker").await.is_empty(),
        "the held lock blocks fires"
    );
    let mut fired = false;
    for _ in 0..50 {
        if !scheduled_runs(&server, "ticker").await.is_empty() {
            fired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fired, "after the TTL the schedule fires again");
}

#[tokio::test(flavor = "multi_thread")]
async fn fires_wait_while_the_lock_s_redis_is_away_and_resume_when_it_returns() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let (redis, proxied) = crate::live_ops::behind_proxy(&url, 6379).await;
    let prefix = format!("agw-test-{}:", uuid::Uuid::new_v4().simple());
    let ws = ticking_workspace(&format!(
        "scheduler:\n  misfire_grace_seconds: 1\n  distributed_lock:\n    enabled: true\n    backend: redis\n    redis_url: {proxied}\n    key_prefix: \"{prefix}\"\n"
    ));
    let (mock, server) = start(&ws).await;
    mock.set_default(Reply::text("tick"));
    let mut before = Vec::new();
    for _ in 0..50 {
        before = scheduled_runs(&server, "ticker").await;
        if !before.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!before.is_empty(), "fires while Redis is there");

    // Without the lock no instance may know it is alone: the fires wait (never twice).
    redis.close().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let at_outage = scheduled_runs(&server, "ticker").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        scheduled_runs(&server, "ticker").await.len(),
        at_outage,
        "no fire while the lock is unreachable"
    );
    let (status, ready) = server.get("/v1/ready").await;
    assert_eq!(status, 503, "{ready}");

    redis.reopen().await;
    // The lock's connection comes back on its own, after its reconnection backoff (seconds).
    let mut resumed = false;
    for _ in 0..200 {
        if scheduled_runs(&server, "ticker").await.len() > at_outage {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resumed, "fires resume once Redis is back");
}
