//! SIGKILL under load: `serve` killed while invokes, chat turns and a schedule run, on SQLite
//! and on PostgreSQL. After a restart the database opens, no execution stays `running`, no
//! chat turn is half written, and every answered request is readable.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mock_llm::{MockLlm, Reply};
use serde_json::{Value, json};

use super::{free_port, serve_command, wait_healthy, write};

fn start(ws: &Path, port: u16, mock: &MockLlm) -> Child {
    serve_command(ws, port)
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_API_BASE", mock.openai_base())
        .spawn()
        .unwrap()
}

/// What the load got answered: execution ids of invokes, and chat turns per session.
#[derive(Default)]
struct Answered {
    executions: Vec<String>,
    turns: BTreeMap<String, u64>,
}

async fn load(base: String, answered: Arc<Mutex<Answered>>, worker: usize) {
    let client = reqwest::Client::new();
    let mut session: Option<String> = None;
    for round in 0.. {
        let chat = worker % 2 == 1;
        let (path, body) = if chat {
            let mut body = json!({"message": format!("turn {round}")});
            if let Some(id) = &session {
                body["session_id"] = json!(id);
            }
            ("chat", body)
        } else {
            ("invoke", json!({"message": format!("job {round}")}))
        };
        let sent = client
            .post(format!("{base}/v1/agents/worker/{path}"))
            .json(&body)
            .send()
            .await;
        let Ok(response) = sent else {
            return; // the server is gone
        };
        if !response.status().is_success() {
            continue;
        }
        let Ok(answer) = response.json::<Value>().await else {
            return;
        };
        let mut answered = answered.lock().unwrap();
        if chat {
            let id = answer["session_id"].as_str().unwrap().to_string();
            let turns = answer["turn_count"].as_u64().unwrap_or(0);
            answered.turns.insert(id.clone(), turns);
            session = Some(id);
        } else if answer["status"] == "completed" {
            answered
                .executions
                .push(answer["execution_id"].as_str().unwrap().to_string());
        }
    }
}

async fn kill_under_load(persistence: &str) {
    let mock = MockLlm::start().await.unwrap();
    mock.set_default(Reply::text("answer").with_delay(20));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    write(
        &ws,
        "gateway.yaml",
        &format!("model:\n  default: openai/gpt-test\n{persistence}"),
    );
    write(
        &ws,
        "agents/worker/AGENT.md",
        "---\nschedules:\n  - name: every-second\n    cron: \"* * * * * *\"\n    message: Tick\n---\nWork.\n",
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start(&ws, port, &mock);
    wait_healthy(&base).await;

    let answered = Arc::new(Mutex::new(Answered::default()));
    let workers: Vec<_> = (0..6)
        .map(|n| tokio::spawn(load(base.clone(), Arc::clone(&answered), n)))
        .collect();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
    }
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    assert!(
        answered.executions.len() > 5 && !answered.turns.is_empty(),
        "the load ran: {} invokes, {} sessions",
        answered.executions.len(),
        answered.turns.len()
    );

    let restarted = chrono::Utc::now();
    let mut server = start(&ws, port, &mock);
    wait_healthy(&base).await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    // The runs the kill interrupted were failed at the restart: none stays running (the
    // restarted instance's own schedule fires may be).
    let running = get("/v1/executions?status=running&limit=500".into()).await;
    let stale: Vec<&Value> = running
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let created = e["created_at"].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(created).unwrap() < restarted
        })
        .collect();
    assert!(
        stale.is_empty(),
        "left running by the killed instance: {stale:?}"
    );
    for id in &answered.executions {
        let record = get(format!("/v1/executions/{id}")).await;
        assert_eq!(record["status"], "completed", "{record}");
        assert_eq!(record["result"]["raw_text"], "answer");
    }
    for (session, turns) in &answered.turns {
        let messages = get(format!(
            "/v1/users/me/conversations/{session}/messages?limit=500"
        ))
        .await;
        let roles: Vec<&str> = messages
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles.len() % 2,
            0,
            "a half-written turn in {session}: {roles:?}"
        );
        assert!(
            roles.chunks(2).all(|pair| pair == ["user", "assistant"]),
            "{session}: {roles:?}"
        );
        assert!(
            roles.len() as u64 >= 2 * turns,
            "every answered turn is kept: {} messages for {turns} turns",
            roles.len()
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_under_load_on_sqlite_leaves_nothing_half_done() {
    kill_under_load("persistence:\n  url: sqlite:///state/gateway.db\n").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_under_load_on_postgresql_leaves_nothing_half_done() {
    let Some(url) = test_services::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    let schema = format!("gw_{}", uuid_like());
    kill_under_load(&format!(
        "persistence:\n  backend: postgres\n  url: \"{url}\"\n  db_schema: {schema}\n"
    ))
    .await;
}

/// A name unique to this run (no uuid crate here).
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{}", std::process::id())
}
