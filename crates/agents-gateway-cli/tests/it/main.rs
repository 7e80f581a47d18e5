//! The `agents-gateway` binary, run as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use mock_llm::{MockLlm, Reply};

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agents-gateway"));
    // A clean environment: no provider keys or overrides leak in from the machine.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error");
    command
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn write(root: &Path, relative: &str, content: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[test]
fn version_and_help() {
    let output = bin().arg("version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        text(&output).0.trim(),
        format!("agents-gateway {}", env!("CARGO_PKG_VERSION"))
    );
    let output = bin().output().unwrap();
    assert!(
        !output.status.success(),
        "no arguments prints help and fails"
    );
    assert!(text(&output).1.contains("Usage"));
}

#[test]
fn init_creates_a_project_that_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let output = bin()
        .current_dir(dir.path())
        .args(["init", "demo"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", text(&output));
    assert!(text(&output).0.starts_with("Created project 'demo'."));
    let output = bin()
        .current_dir(dir.path().join("demo"))
        .arg("check")
        .output()
        .unwrap();
    let (stdout, _) = text(&output);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("[ok] assistant"), "{stdout}");
    assert!(stdout.contains("[ok] current-time (function)"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("Validation passed."),
        "{stdout}"
    );
    let output = bin()
        .current_dir(dir.path())
        .args(["init", "demo"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(text(&output).1.contains("already exists"));
}

#[test]
fn check_reports_every_mistake_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    write(
        ws,
        "gateway.yaml",
        "server:\n  port: 8000\n  colour: blue\nmodel:\n  default: openai/gpt-4o-mini\n",
    );
    write(
        ws,
        "agents/writer/AGENT.md",
        "---\ndescription: writes\nskills:\n  - research\n  - nonexistent\ndelegates_to:\n  - ghost\nschedules:\n  - name: daily\n    cron: \"61 * * * *\"\n    message: go\ninput_schema:\n  type: objekt\n---\nWrite well.\n",
    );
    write(
        ws,
        "agents/Bad_Name/AGENT.md",
        "---\ndescription: x\n---\nX.\n",
    );
    write(
        ws,
        "agents/empty/AGENT.md",
        "---\ndescription: nothing below\n---\n\n",
    );
    write(
        ws,
        "agents/broken/AGENT.md",
        "---\ndescription: [unclosed\n---\nBody.\n",
    );
    write(
        ws,
        "skills/research/SKILL.md",
        "---\ndescription: r\ntools:\n  - search\nsteps:\n  - name: one\n    tool: search\n    prompt: both\n  - name: two\n    tool: search\n    input:\n      q: $.steps.later.output\n---\nResearch.\n",
    );
    write(
        ws,
        "tools/search/TOOL.md",
        "---\ndescription: find\nparameters:\n  q:\n    type: string\n    required: true\n---\n",
    );
    write(
        ws,
        "tools/search/handler.py",
        "def handle(arguments, context):\n    return []\n",
    );

    let output = bin().args(["check", "-w"]).arg(ws).output().unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    let expect = [
        "agents/writer/AGENT.md:5: agent 'writer' uses unknown skill 'nonexistent'",
        "agents/writer/AGENT.md:7: agent 'writer' delegates to unknown agent 'ghost'",
        "agents/writer/AGENT.md:10: schedule 'daily': invalid cron expression '61 * * * *'",
        "agents/writer/AGENT.md:12: 'input_schema': invalid JSON Schema",
        "agents/Bad_Name: invalid id 'Bad_Name'",
        "agents/empty/AGENT.md: AGENT.md has no prompt",
        "agents/broken/AGENT.md:2: invalid frontmatter YAML",
        "skills/research/SKILL.md:6: step 'one' must have exactly one of 'tool', 'tools' or 'prompt'",
        "skills/research/SKILL.md:9: step 'two' refers to '$.steps.later'",
        "gateway.yaml:3: unknown key 'server.colour'",
        "OPENAI_API_KEY",
    ];
    for needle in expect {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    assert!(stdout.contains("Errors:") && stdout.contains("Warnings:"));
    assert!(stdout.trim_end().contains("Validation failed"), "{stdout}");
}

#[test]
fn invoke_streams_the_answer_as_it_is_written() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockLlm::start()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    write(
        ws,
        "gateway.yaml",
        "model:\n  default: openai/gpt-test\npersistence:\n  enabled: false\n",
    );
    write(ws, "agents/greeter/AGENT.md", "Greet.\n");
    let invoke = |args: &[&str]| {
        bin()
            .args(["invoke", "greeter", "hello", "--stream", "-w"])
            .arg(ws)
            .args(args)
            .env("OPENAI_API_KEY", "k")
            .env("OPENAI_API_BASE", mock.openai_base())
            .output()
            .unwrap()
    };
    mock.push(Reply::text("one two three"));
    let output = invoke(&[]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("one two three\n"), "{stdout}");
    assert!(stdout.contains("Status: completed"), "{stdout}");
    assert!(
        mock.requests().last().unwrap().stream,
        "the model was asked to stream"
    );

    mock.push(Reply::text("one two three"));
    let output = invoke(&["--json"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events[0]["event"], "execution");
    let tokens: String = events
        .iter()
        .filter(|e| e["event"] == "token")
        .map(|e| e["content"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, "one two three");
    assert!(
        events.iter().filter(|e| e["event"] == "token").count() > 1,
        "{stdout}"
    );
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"]["raw_text"], "one two three");
    assert_eq!(done["execution_id"], events[0]["execution_id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn invoke_and_list_against_the_mock() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("Bonjour!"));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    write(ws, "gateway.yaml", "model:\n  default: openai/gpt-test\n");
    write(
        ws,
        "agents/greeter/AGENT.md",
        "---\ndescription: greets\n---\nGreet in French.\n",
    );
    let base = mock.openai_base();
    let ws_path = ws.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        bin()
            .args(["invoke", "greeter", "hello", "-f", "json", "-w"])
            .arg(&ws_path)
            .env("OPENAI_API_KEY", "k")
            .env("OPENAI_API_BASE", base)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    let body: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["result"]["raw_text"], "Bonjour!");

    let output = bin()
        .args(["agents", "-f", "csv", "-w"])
        .arg(ws)
        .output()
        .unwrap();
    assert_eq!(
        text(&output).0.trim(),
        "id,skills,tools,model\ngreeter,0,0,(default)"
    );
    let output = bin()
        .args(["invoke", "nobody", "hi", "-w"])
        .arg(ws)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).1.contains("Agent 'nobody' not found"));
    let output = bin()
        .args(["agents", "-f", "xml", "-w"])
        .arg(ws)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_streams_answers_and_keeps_the_session() {
    use std::io::Write;
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("Hello Ann!"));
    mock.push(Reply::text("You are Ann."));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().to_path_buf();
    write(&ws, "gateway.yaml", "model:\n  default: openai/gpt-test\n");
    write(&ws, "agents/buddy/AGENT.md", "Chat kindly.\n");
    let base = mock.openai_base();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = bin()
            .args(["chat", "buddy", "-w"])
            .arg(&ws)
            .env("OPENAI_API_KEY", "k")
            .env("OPENAI_API_BASE", base)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"I am Ann\n\nwho am I?\nquit\n")
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("agent> Hello Ann!\n"), "{stdout}");
    assert!(stdout.contains("agent> You are Ann.\n"), "{stdout}");
    assert!(stdout.trim_end().ends_with("Bye!"), "{stdout}");
    let second = &mock.requests()[1].body["messages"];
    assert_eq!(
        second.as_array().unwrap().len(),
        4,
        "the second turn carries the first: {second}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_healthy(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("{base}/v1/health")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("server at {base} never became healthy");
}

fn serve(ws: &Path, port: u16, mock: &MockLlm) -> std::process::Child {
    serve_with(ws, port, mock, &[])
}

/// `agents-gateway serve -w WS` on 127.0.0.1:`port`, its output discarded: a command to add
/// arguments, environment and a stderr to, then spawn.
fn serve_command(ws: &Path, port: u16) -> Command {
    let mut command = bin();
    command
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-w",
        ])
        .arg(ws)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// `agents-gateway serve` on `port`, talking to the mock, with extra environment.
fn serve_with(ws: &Path, port: u16, mock: &MockLlm, env: &[(&str, &str)]) -> std::process::Child {
    serve_command(ws, port)
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_API_BASE", mock.openai_base())
        .envs(env.iter().copied())
        .spawn()
        .unwrap()
}

/// An API process with extra environment, once it answers; and its base URL.
async fn api_with(
    ws: &Path,
    mock: &MockLlm,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let api = serve_with(ws, port, mock, env);
    wait_healthy(&base).await;
    (api, base)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_leaves_no_running_execution_behind() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("never delivered").with_delay(60_000));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    write(
        ws,
        "gateway.yaml",
        "model:\n  default: openai/gpt-test\npersistence:\n  url: sqlite:///state/gateway.db\n",
    );
    write(ws, "agents/slow/AGENT.md", "Take your time.\n");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = serve(ws, port, &mock);
    wait_healthy(&base).await;
    let client = reqwest::Client::new();
    let queued: serde_json::Value = client
        .post(format!("{base}/v1/agents/slow/invoke"))
        .json(&serde_json::json!({"message": "go", "options": {"async": true}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = queued["execution_id"].as_str().unwrap().to_string();
    let mut status = String::new();
    for _ in 0..100 {
        let record: serde_json::Value = client
            .get(format!("{base}/v1/executions/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status = record["status"].as_str().unwrap_or_default().to_string();
        if status == "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, "running");

    first.kill().unwrap(); // SIGKILL: no shutdown code runs
    first.wait().unwrap();

    let mut second = serve(ws, port, &mock);
    wait_healthy(&base).await;
    let record: serde_json::Value = client
        .get(format!("{base}/v1/executions/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(record["status"], "failed", "{record}");
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("stopped before it finished"),
        "{record}"
    );
    assert!(record["completed_at"].is_string());

    // The schema commands on the same database.
    let run = |args: &[&str]| {
        let output = bin().args(args).arg("-w").arg(ws).output().unwrap();
        assert!(output.status.success(), "{args:?}: {:?}", text(&output));
        text(&output).0.trim().to_string()
    };
    assert_eq!(run(&["db", "current"]), "6");
    assert!(run(&["db", "history"]).contains("applied"));
    assert_eq!(run(&["db", "downgrade"]), "Downgraded to 5");
    assert_eq!(run(&["db", "downgrade", "0"]), "Downgraded to 0");
    assert_eq!(run(&["db", "current"]), "0");
    assert_eq!(run(&["db", "upgrade", "1"]), "Upgraded to 1");
    assert_eq!(run(&["db", "upgrade"]), "Upgraded to 6");
    let output = bin()
        .args(["db", "upgrade", "8", "-w"])
        .arg(ws)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).1.contains("unknown version 8"));
}

mod first_run;
mod kill;
mod memory;
mod secrets;
mod serve_ops;
mod telemetry;
mod workspace_tests;

#[path = "../../../agentgate/examples/shared/foodpanda.rs"]
#[allow(dead_code)]
mod foodpanda;

#[tokio::test(flavor = "multi_thread")]
async fn site_discover_and_call_an_agentgate_site() {
    let app = foodpanda::app(std::sync::Arc::new(
        agentgate::server::MemorySessionStore::default(),
    ))
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app.mount(axum::Router::new())).await });
    let run =
        |args: Vec<String>| tokio::task::spawn_blocking(move || bin().args(args).output().unwrap());
    let output = run(vec!["site".into(), "discover".into(), url.clone()])
        .await
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("FoodPanda 1.0"), "{stdout}");
    assert!(stdout.contains("auth: api_key (X-API-Key)"));
    assert!(stdout.contains("search_restaurants"));
    assert!(
        stdout.contains("search(query, location) → select_restaurant"),
        "{stdout}"
    );
    let output = run(vec![
        "site".into(),
        "discover".into(),
        url.clone(),
        "-f".into(),
        "json".into(),
    ])
    .await
    .unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text(&output).0).unwrap();
    assert_eq!(manifest["flows"][1]["name"], "track_delivery");

    let call = |key: &str| {
        vec![
            "site".to_string(),
            "call".into(),
            url.clone(),
            "search_restaurants".into(),
            "--json".into(),
            r#"{"query": "pizza", "location": "Berlin"}"#.into(),
            "--api-key".into(),
            key.to_string(),
        ]
    };
    let output = run(call("demo-key")).await.unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result[1]["name"], "Burger Barn");
    let output = run(call("wrong")).await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).1.contains("unauthorized"),
        "{:?}",
        text(&output)
    );
    let output = run(vec![
        "site".into(),
        "discover".into(),
        "http://127.0.0.1:1".into(),
    ])
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).1.contains("does not speak agentgate"));
}

#[test]
fn keys_create_prints_a_key_and_a_config_line_with_its_hash() {
    use std::io::Write;
    let output = bin()
        .args([
            "keys",
            "create",
            "ci-bot",
            "--scopes",
            "agents:read,agents:invoke",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", text(&output));
    let (stdout, stderr) = text(&output);
    let key = stdout.trim().to_string();
    assert!(key.starts_with("agw_") && key.len() == 68, "{key}");
    let line = stderr
        .lines()
        .find(|l| l.contains("key_sha256"))
        .unwrap()
        .to_string();
    assert!(
        line.contains(r#"["agents:read","agents:invoke"]"#),
        "{line}"
    );
    assert!(!line.contains(&key), "the config line never holds the key");

    let mut child = bin()
        .args(["keys", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{key}").unwrap();
    let hashed = child.wait_with_output().unwrap();
    let hash = String::from_utf8_lossy(&hashed.stdout).trim().to_string();
    assert!(line.contains(&hash), "{line} / {hash}");

    // The printed line is a valid configuration; api_key mode without keys is not.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("agents/a")).unwrap();
    std::fs::write(
        dir.path().join("agents/a/AGENT.md"),
        "---\ndescription: a\n---\nHi.\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("gateway.yaml"),
        format!("auth:\n  api_keys:\n{line}\n"),
    )
    .unwrap();
    let checked = bin()
        .arg("check")
        .arg("-w")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(checked.status.success(), "{:?}", text(&checked));
    std::fs::write(dir.path().join("gateway.yaml"), "auth:\n  mode: api_key\n").unwrap();
    let checked = bin()
        .arg("check")
        .arg("-w")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!checked.status.success());
    assert!(text(&checked).0.contains("api_keys") || text(&checked).1.contains("api_keys"));
}

#[test]
fn schedules_lists_workspace_schedules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("agents/writer")).unwrap();
    std::fs::write(
        dir.path().join("agents/writer/AGENT.md"),
        "---\ndescription: w\nschedules:\n  - {name: daily, cron: \"0 9 * * *\", message: Write, timezone: Europe/Oslo}\n---\nWrite.\n",
    )
    .unwrap();
    let output = bin()
        .args(["schedules", "-f", "csv", "-w"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", text(&output));
    let (stdout, _) = text(&output);
    assert!(
        stdout.starts_with("id,agent,cron,enabled,timezone,source,next_run"),
        "{stdout}"
    );
    assert!(
        stdout.contains("writer:daily,writer,0 9 * * *,true,Europe/Oslo,workspace,"),
        "{stdout}"
    );
}

fn worker(ws: &Path, mock: &MockLlm) -> std::process::Child {
    bin()
        .args(["serve", "--worker-only", "-w"])
        .arg(ws)
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_API_BASE", mock.openai_base())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn execution_status(base: &str, id: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/v1/executions/{id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A workspace whose `slow` agent runs asynchronously through `queue_yaml`, served by an API
/// process without workers (the workers are separate processes). Returns the API process and
/// its base URL.
async fn queued_api(ws: &Path, queue_yaml: &str, mock: &MockLlm) -> (std::process::Child, String) {
    write(
        ws,
        "gateway.yaml",
        &format!(
            "model:\n  default: openai/gpt-test\npersistence:\n  url: sqlite:///gateway.db\nqueue:\n{queue_yaml}"
        ),
    );
    write(
        ws,
        "agents/slow/AGENT.md",
        "---\nexecution_mode: async\n---\nTake your time.\n",
    );
    api_with(ws, mock, &[("AGENT_GATEWAY_QUEUE__WORKERS", "0")]).await
}

/// Queues a run of `slow` and waits until a worker is inside its model call.
async fn queue_and_wait_for_the_model(base: &str, mock: &MockLlm) -> String {
    let queued: serde_json::Value = post_json(
        format!("{base}/v1/agents/slow/invoke"),
        &serde_json::json!({"message": "go"}),
    )
    .await;
    for _ in 0..300 {
        if !mock.requests().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    queued["execution_id"].as_str().unwrap().to_string()
}

/// A job in the hands of a worker that is SIGKILLed is finished by another worker, once.
async fn killed_worker_job_is_finished_elsewhere(queue_yaml: &str) {
    let mock = MockLlm::start().await.unwrap();
    // The first call hangs long enough to kill its worker; the retry answers at once.
    mock.push(Reply::text("from the dead worker").with_delay(60_000));
    mock.set_default(Reply::text("finished by the second worker"));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let (mut api, base) = queued_api(ws, queue_yaml, &mock).await;
    let mut first = worker(ws, &mock);
    let id = queue_and_wait_for_the_model(&base, &mock).await;
    assert_eq!(mock.requests().len(), 1, "the first worker took the job");
    assert_eq!(execution_status(&base, &id).await["status"], "running");
    first.kill().unwrap(); // SIGKILL: no acknowledgement, no cleanup
    first.wait().unwrap();

    let mut second = worker(ws, &mock);
    let mut record = serde_json::Value::Null;
    for _ in 0..400 {
        record = execution_status(&base, &id).await;
        if record["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Let any duplicate delivery show itself before counting.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let requests = mock.requests().len();
    second.kill().unwrap();
    second.wait().unwrap();
    api.kill().unwrap();
    api.wait().unwrap();
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(
        record["result"]["raw_text"],
        "finished by the second worker"
    );
    assert_eq!(
        requests, 2,
        "the job ran once more, and only once, after the kill"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_no_redis_job() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let stream = format!("agw-cli-test-{}", std::process::id());
    killed_worker_job_is_finished_elsewhere(&format!(
        "  backend: redis\n  redis_url: {url}\n  stream_key: {stream}-{}\n  workers: 1\n  visibility_timeout_s: 1\n",
        rand_suffix()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_no_rabbitmq_job() {
    let Some(url) = test_services::service_url("TEST_RABBITMQ_URL", "RabbitMQ") else {
        return;
    };
    killed_worker_job_is_finished_elsewhere(&format!(
        "  backend: rabbitmq\n  rabbitmq_url: \"{url}\"\n  queue_name: agw.cli.test.{}\n  workers: 1\n",
        rand_suffix()
    ))
    .await;
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_worker_finish_its_job() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("finished while stopping").with_delay(1500));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let queue_yaml = format!(
        "  backend: redis\n  redis_url: {url}\n  stream_key: agw-drain-{}\n  workers: 1\n",
        rand_suffix()
    );
    let (mut api, base) = queued_api(ws, &queue_yaml, &mock).await;
    let mut stopping = worker(ws, &mock);
    let id = queue_and_wait_for_the_model(&base, &mock).await;
    let terminated = Command::new("kill")
        .args(["-TERM", &stopping.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let exit = tokio::task::spawn_blocking(move || stopping.wait().unwrap())
        .await
        .unwrap();
    let record = execution_status(&base, &id).await;
    api.kill().unwrap();
    api.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(
        record["status"], "completed",
        "the job in hand finished before exit: {record}"
    );
    assert_eq!(record["result"]["raw_text"], "finished while stopping");
}

/// An API process over `ws` that neither fires schedules nor takes jobs: it only answers.
async fn quiet_api(ws: &Path, mock: &MockLlm) -> (std::process::Child, String) {
    api_with(
        ws,
        mock,
        &[
            ("AGENT_GATEWAY_QUEUE__WORKERS", "0"),
            ("AGENT_GATEWAY_SCHEDULER__ENABLED", "false"),
        ],
    )
    .await
}

/// POSTs `body` as JSON to `url` and reads the JSON answer.
async fn post_json(url: String, body: &serde_json::Value) -> serde_json::Value {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn get_json(url: String) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// A workspace whose `greeter` answers, `slow` runs asynchronously through `queue_yaml`, and
/// `ticker` has a schedule due every second.
fn command_workspace(ws: &Path, queue_yaml: &str) {
    write(
        ws,
        "gateway.yaml",
        &format!(
            "model:\n  default: openai/gpt-test\npersistence:\n  url: sqlite:///gateway.db\nqueue:\n{queue_yaml}"
        ),
    );
    write(ws, "agents/greeter/AGENT.md", "Greet.\n");
    write(
        ws,
        "agents/slow/AGENT.md",
        "---\nexecution_mode: async\n---\nTake your time.\n",
    );
    write(
        ws,
        "agents/ticker/AGENT.md",
        "---\nschedules:\n  - {name: often, cron: \"* * * * * *\", message: tick}\n---\nTick.\n",
    );
}

/// `agents-gateway invoke greeter hi` over `ws`, to its end.
async fn invoke_greeter(ws: &Path, mock: &MockLlm) {
    let (ws_path, openai) = (ws.to_path_buf(), mock.openai_base());
    let output = tokio::task::spawn_blocking(move || {
        bin()
            .args(["invoke", "greeter", "hi", "-f", "json", "-w"])
            .arg(&ws_path)
            .env("OPENAI_API_KEY", "k")
            .env("OPENAI_API_BASE", openai)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{:?}", text(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_fires_no_schedule_and_leaves_nothing_running() {
    let mock = MockLlm::start().await.unwrap();
    mock.set_default(Reply::text("hello"));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    command_workspace(ws, "  workers: 2\n");
    // A schedule is due every second in the command's configuration, and it runs a while.
    invoke_greeter(ws, &mock).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (mut api, base) = quiet_api(ws, &mock).await;
    let ticks = get_json(format!("{base}/v1/executions?agent_id=ticker")).await;
    let running = get_json(format!("{base}/v1/executions?status=running")).await;
    let greeted = get_json(format!("{base}/v1/executions?agent_id=greeter")).await;
    api.kill().unwrap();
    api.wait().unwrap();
    assert_eq!(
        ticks,
        serde_json::json!([]),
        "the command fired no schedule"
    );
    assert_eq!(running, serde_json::json!([]), "nothing is left running");
    assert_eq!(greeted[0]["status"], "completed", "{greeted}");
    assert_eq!(
        mock.requests().len(),
        1,
        "one model call: the command's own"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_takes_no_queued_job() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let mock = MockLlm::start().await.unwrap();
    mock.set_default(Reply::text("hello"));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    command_workspace(
        ws,
        &format!(
            "  backend: redis\n  redis_url: {url}\n  stream_key: agw-cli-cmd-{}\n  workers: 2\n",
            rand_suffix()
        ),
    );
    let (mut api, base) = quiet_api(ws, &mock).await;
    let queued: serde_json::Value = post_json(
        format!("{base}/v1/agents/slow/invoke"),
        &serde_json::json!({"message": "later"}),
    )
    .await;
    let job = queued["execution_id"].as_str().unwrap().to_string();
    // The command's configuration has two workers on the same queue.
    invoke_greeter(ws, &mock).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let job_now = execution_status(&base, &job).await;
    api.kill().unwrap();
    api.wait().unwrap();
    assert_eq!(
        job_now["status"], "queued",
        "the command took no job: {job_now}"
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "one model call: the command's own"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_a_commands_run_and_records_it() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("too late").with_delay(60_000));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    write(
        ws,
        "gateway.yaml",
        "model:\n  default: openai/gpt-test\npersistence:\n  url: sqlite:///gateway.db\n",
    );
    write(ws, "agents/slow/AGENT.md", "Take your time.\n");
    let child = bin()
        .args(["invoke", "slow", "go", "-w"])
        .arg(ws)
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_API_BASE", mock.openai_base())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if !mock.requests().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(mock.requests().len(), 1, "the run reached its model call");
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let started = std::time::Instant::now();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the command ended without waiting for the model"
    );
    assert_eq!(output.status.code(), Some(1), "{:?}", text(&output));
    let (stdout, stderr) = text(&output);
    assert!(stdout.contains("Status: cancelled"), "{stdout}{stderr}");

    let (mut api, base) = quiet_api(ws, &mock).await;
    let all = get_json(format!("{base}/v1/executions?agent_id=slow")).await;
    api.kill().unwrap();
    api.wait().unwrap();
    assert_eq!(all[0]["status"], "cancelled", "{all}");
}

#[test]
fn the_0_2_13_example_workspace_passes_check_unchanged() {
    // `.ci/run` downloads agents-gateway 0.2.13 from PyPI and points here at its example.
    let Some(path) = test_services::service_url(
        "AGW_0213_EXAMPLE_WORKSPACE",
        "the agents-gateway 0.2.13 example workspace",
    ) else {
        return;
    };
    let output = bin().args(["check", "-w"]).arg(&path).output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("Validation passed"), "{stdout}");
    assert!(
        stdout.contains("skill 'general-tools' uses tool 'echo', which no file defines"),
        "a skill's tool no file defines is reported as a warning: {stdout}"
    );
}
