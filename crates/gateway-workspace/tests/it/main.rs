//! Loading whole workspaces from disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use gateway_workspace::config::{AuthMode, PersistenceBackend, QueueBackend};
use gateway_workspace::{
    ExecutionMode, ExternalNames, Severity, StepAction, ToolHandler, Workspace,
};
use serde_json::json;

mod config_roundtrip;

fn write(root: &Path, relative: &str, content: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A workspace using every frontmatter and configuration key of agents-gateway 0.2.13.
fn reference_workspace(root: &Path) {
    write(
        root,
        "gateway.yaml",
        r##"
timezone: Europe/London
context: {team: ops}
server: {host: 127.0.0.1, port: 8100, workers: 2}
model: {default: gemini/gemini-2.0-flash, temperature: 0.2, max_tokens: 2048, fallback: gemini/gemini-1.5-flash}
guardrails: {max_tool_calls: 5, max_iterations: 4, timeout_ms: 30000, max_delegation_depth: 2}
auth:
  enabled: true
  mode: composite
  api_keys:
    - {name: ci, key: "${CI_KEY}", scopes: ["agents:read", "agents:invoke"]}
  oauth2: {issuer: "https://issuer", audience: api, jwks_uri: "https://issuer/jwks", algorithms: [RS256], scope_claim: scp, clock_skew_seconds: 10}
  public_paths: [/v1/health]
notifications:
  slack: {enabled: true, bot_token: xoxb-1, default_channel: "#alerts"}
  webhooks:
    - {name: ops, url: "https://hooks.example/x", secret: s, events: [execution.failed], payload_template: '{"e": "{{ event.type }}"}'}
  webhook_secret: global
persistence: {enabled: true, backend: postgres, url: "postgresql+asyncpg://u@h/db", table_prefix: ag_, db_schema: agents}
telemetry: {enabled: false, service_name: svc, exporter: otlp, endpoint: "http://otel:4317", protocol: http, sample_rate: 0.5}
queue: {backend: redis, redis_url: "redis://r:6379/1", rabbitmq_url: "amqp://x", stream_key: s, queue_name: q, consumer_group: g, workers: 8, max_retries: 5, visibility_timeout_s: 60, drain_timeout_s: 10, default_execution_mode: async}
scheduler:
  enabled: true
  misfire_grace_seconds: 30
  max_instances: 2
  coalesce: false
  distributed_lock: {enabled: true, backend: redis, redis_url: "", key_prefix: "x:", lock_ttl_seconds: 60}
context_retrieval: {retriever_timeout_seconds: 2.5, max_retrieved_chars: 1000, max_context_file_chars: 5000}
mcp: {tool_call_timeout_ms: 1000, connection_timeout_ms: 2000}
memory:
  enabled: true
  max_injected_chars: 100
  extraction_model: openai/gpt-4o-mini
  auto_extract: true
  max_memory_md_lines: 50
  compaction: {enabled: false, max_memories_per_scope: 10, compact_ratio: 0.3, min_age_hours: 1, importance_threshold: 0.9, decay_factor: 0.5}
cors: {enabled: true, allow_origins: ["https://app"], allow_methods: [GET], allow_headers: [X-Custom], allow_credentials: true, max_age: 60}
rate_limit: {enabled: true, default_limit: 10/minute, storage_uri: "redis://r", trust_forwarded_for: true}
security: {enabled: true, x_frame_options: SAMEORIGIN, strict_transport_security: ""}
proxy: {trust_forwarded: true, forwarded_allow_ips: "10.0.0.1"}
dashboard:
  enabled: true
  title: My Agents
  subtitle: Powered by ACME
  logo_url: /static/logo.png
  favicon_url: /static/favicon.ico
  auth: {username: user, password: userpass, admin_username: admin, admin_password: secret}
  theme: {mode: dark}
"##,
    );
    write(
        root,
        "agents/AGENTS.md",
        "---\nignored: true\n---\nShared rules.\n",
    );
    write(root, "agents/BEHAVIOR.md", "Be kind.\n");
    write(
        root,
        "agents/assistant/AGENT.md",
        r##"---
description: A helpful assistant
display_name: Helper
tags: [general, demo]
version: 1.2
skills:
  - general-tools
memory:
  enabled: true
  auto_extract: true
  max_injected_chars: 500
model:
  name: gemini/gemini-2.0-flash
  temperature: 0.1
  max_tokens: 1000
  fallback: gemini/gemini-1.5-flash
execution_mode: async
delegates_to:
  - researcher
schedules:
  - name: daily
    cron: "0 9 * * 1-5"
    message: "Generate report"
    instructions: "Focus on error rates and system uptime. Use bullet points."
    timezone: America/New_York
    input: {scope: all}
    enabled: false
notifications:
  on_error:
    - channel: slack
      target: "#alerts"
  on_complete:
    - channel: webhook
      url: https://hooks.example/done
      payload_template: '{"ok": true}'
input_schema:
  type: object
  properties:
    scope: {type: string}
output_schema:
  type: object
context:
  - docs/handbook.md
retrievers: [kb]
mcp_servers: [files]
scope: global
enabled: true
---
You are a helpful assistant. Answer questions clearly.
"##,
    );
    write(
        root,
        "agents/assistant/BEHAVIOR.md",
        "Keep answers short.\n",
    );
    write(root, "agents/assistant/context/a-facts.md", "Fact A.\n");
    write(root, "agents/assistant/context/b-facts.md", "Fact B.\n");
    write(
        root,
        "agents/assistant/context/notes.txt",
        "ignored: not markdown\n",
    );
    write(root, "docs/handbook.md", "Handbook.\n");
    write(
        root,
        "agents/researcher/AGENT.md",
        "---\ndescription: Researches\nscope: personal\nsetup_schema:\n  type: object\n  required: [api_key]\n  properties:\n    api_key: {type: string, sensitive: true}\n---\nResearch things.\n",
    );
    write(
        root,
        "skills/general-tools/SKILL.md",
        r##"---
name: general-tools
description: Everyday tools
tools: [fetch-url, add]
steps:
  - name: fetch
    tool: fetch-url
    input: {url: "$.input.url"}
  - name: both
    tools:
      - {tool: fetch-url, input: {url: "$.steps.fetch.output.next"}}
      - {tool: add, input: {a: 1, b: 2}}
  - name: summarise
    prompt: "Summarise {{text}}"
    system_prompt: "Be brief."
    input: {text: "$.steps.both.output[0]"}
---
Use these tools for everyday tasks.
"##,
    );
    write(
        root,
        "tools/fetch-url/TOOL.md",
        "---\nname: fetch-url\ndescription: Fetch a URL\nparameters:\n  url:\n    type: string\n    required: true\n  method:\n    type: string\n    enum: [GET, POST]\n    default: GET\n  ignored: just a string\npermissions:\n  allowed_agents: [assistant]\n  require_approval: true\n---\nFetches pages.\n",
    );
    write(
        root,
        "tools/fetch-url/handler.py",
        "def handle(arguments, context):\n    return ''\n",
    );
    write(
        root,
        "tools/add/TOOL.md",
        "---\ndescription: Add\nparameters:\n  type: object\n  properties:\n    a: {type: number}\n    b: {type: number}\n  required: [a, b]\n---\n",
    );
    write(
        root,
        "tools/add/handler.py",
        "def handler(a, b):\n    return a + b\n",
    );
}

#[test]
fn a_0_2_13_workspace_loads_with_every_key() {
    let dir = tempfile::tempdir().unwrap();
    reference_workspace(dir.path());
    let env = BTreeMap::from([("CI_KEY".to_string(), "k-123".to_string())]);
    let ws = Workspace::load(dir.path(), &env);
    let problems: Vec<String> = ws
        .all_diagnostics(&ExternalNames::default())
        .iter()
        .map(|d| d.to_string())
        .collect();
    // Only the MCP server is unknown here (it would come from the admin API), and one
    // non-mapping parameter is skipped.
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("MCP server 'files'")));
    assert!(problems.iter().any(|p| p.contains("parameter 'ignored'")));

    let c = &ws.config;
    assert_eq!(c.timezone, "Europe/London");
    assert_eq!(c.server.port, 8100);
    assert_eq!(c.auth.mode, Some(AuthMode::Composite));
    assert_eq!(c.auth.api_keys[0].key.as_deref(), Some("k-123"));
    assert_eq!(c.auth.oauth2.as_ref().unwrap().scope_claim, "scp");
    assert_eq!(c.persistence.backend, PersistenceBackend::Postgres);
    assert_eq!(c.queue.backend, QueueBackend::Redis);
    assert_eq!(c.queue.default_execution_mode, ExecutionMode::Async);
    assert!(!c.scheduler.coalesce);
    assert_eq!(c.scheduler.distributed_lock.lock_ttl_seconds, 60);
    assert_eq!(c.memory.compaction.decay_factor, 0.5);
    assert_eq!(c.security.strict_transport_security, "");
    assert_eq!(c.dashboard.auth.admin_password.as_deref(), Some("secret"));
    assert_eq!(c.notifications.webhooks[0].events, vec!["execution.failed"]);
    assert_eq!(c.context["team"], "ops");

    assert_eq!(ws.shared_prompt.as_deref(), Some("Shared rules."));
    assert_eq!(ws.shared_behavior.as_deref(), Some("Be kind."));

    let a = &ws.agents["assistant"];
    assert_eq!(a.display_name.as_deref(), Some("Helper"));
    assert_eq!(a.version.as_deref(), Some("1.2"));
    assert_eq!(a.tags, vec!["general", "demo"]);
    assert_eq!(a.behavior.as_deref(), Some("Keep answers short."));
    assert_eq!(a.model.fallback.as_deref(), Some("gemini/gemini-1.5-flash"));
    assert_eq!(a.execution_mode, ExecutionMode::Async);
    let schedule = &a.schedules[0];
    assert_eq!(schedule.timezone.as_deref(), Some("America/New_York"));
    assert!(!schedule.enabled);
    assert_eq!(schedule.input["scope"], "all");
    assert_eq!(a.notifications.on_error[0].target, "#alerts");
    assert_eq!(
        a.notifications.on_complete[0].url.as_deref(),
        Some("https://hooks.example/done")
    );
    let contexts: Vec<&str> = a.context_files.iter().map(|f| f.content.trim()).collect();
    assert_eq!(contexts, vec!["Fact A.", "Fact B.", "Handbook."]);
    assert_eq!(
        (a.memory.enabled, a.memory.auto_extract),
        (Some(true), Some(true))
    );
    assert_eq!(a.delegates_to, vec!["researcher"]);
    assert!(a.may_delegate_to("researcher") && !a.may_delegate_to("other"));

    let r = &ws.agents["researcher"];
    assert_eq!(
        r.setup_schema.as_ref().unwrap()["properties"]["api_key"]["sensitive"],
        true
    );
    assert!(r.may_delegate_to("anyone"), "no allow-list means any agent");

    let skill = &ws.skills["general-tools"];
    assert_eq!(skill.steps.len(), 3);
    assert!(matches!(&skill.steps[1].action, StepAction::Parallel { calls } if calls.len() == 2));
    assert!(matches!(
        &skill.steps[2].action,
        StepAction::Prompt {
            system_prompt: Some(_),
            ..
        }
    ));

    let fetch = &ws.tools["fetch-url"];
    assert_eq!(
        fetch.parameters,
        json!({"type": "object", "properties": {
            "url": {"type": "string", "description": "url"},
            "method": {"type": "string", "enum": ["GET", "POST"], "default": "GET", "description": "method"}
        }, "required": ["url"]})
    );
    assert!(fetch.permissions.require_approval);
    assert!(matches!(fetch.handler, Some(ToolHandler::Python(_))));
    assert_eq!(ws.tools["add"].parameters["required"], json!(["a", "b"]));
    assert_eq!(ws.tool_names_of(a), vec!["fetch-url", "add"]);
}

#[test]
fn ids_that_could_escape_are_rejected_and_symlinks_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "agents/ok/AGENT.md", "Fine.\n");
    write(dir.path(), "agents/UPPER/AGENT.md", "Bad id.\n");
    write(dir.path(), "agents/with.dot/AGENT.md", "Bad id.\n");
    write(dir.path(), "outside/AGENT.md", "Outside.\n");
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("outside"), dir.path().join("agents/linked"))
        .unwrap();
    let ws = Workspace::load(dir.path(), &BTreeMap::new());
    assert_eq!(ws.agents.keys().collect::<Vec<_>>(), vec!["ok"]);
    let errors: Vec<String> = ws.diagnostics.errors().map(|d| d.message.clone()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    #[cfg(unix)]
    assert!(
        ws.diagnostics
            .warnings()
            .any(|d| d.message.contains("symbolic links"))
    );
}

#[test]
fn context_paths_must_stay_inside_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let ws_root = dir.path().join("ws");
    write(
        &ws_root,
        "agents/a/AGENT.md",
        "---\ncontext:\n  - ../secret.md\n---\nA.\n",
    );
    write(dir.path(), "secret.md", "secret\n");
    let ws = Workspace::load(&ws_root, &BTreeMap::new());
    let error = ws.diagnostics.errors().next().expect("an error");
    assert!(error.message.contains("outside the workspace"), "{error}");
    assert_eq!(error.line, Some(3));
    assert!(ws.agents["a"].context_files.is_empty());
}

#[test]
fn tool_handlers_must_stay_inside_their_folder() {
    let dir = tempfile::tempdir().unwrap();
    let ws_root = dir.path().join("ws");
    write(
        &ws_root,
        "tools/escape/TOOL.md",
        "---\nname: escape\ndescription: d\nhandler: ../../../payload.py\n---\nBody.\n",
    );
    write(
        dir.path(),
        "payload.py",
        "def handler(args):\n    return 1\n",
    );
    #[cfg(unix)]
    {
        write(
            &ws_root,
            "tools/linked/TOOL.md",
            "---\nname: linked\ndescription: d\nhandler: run.py\n---\nBody.\n",
        );
        std::os::unix::fs::symlink(
            dir.path().join("payload.py"),
            ws_root.join("tools/linked/run.py"),
        )
        .unwrap();
    }
    let ws = Workspace::load(&ws_root, &BTreeMap::new());
    let errors: Vec<String> = ws.diagnostics.errors().map(|d| d.to_string()).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("'../../../payload.py' does not exist inside the tool's folder")),
        "{errors:?}"
    );
    #[cfg(unix)]
    assert!(
        errors
            .iter()
            .any(|e| e.contains("'run.py' does not exist inside the tool's folder")),
        "a link to a file outside is outside: {errors:?}"
    );
    assert!(ws.tools.get("escape").is_none_or(|t| t.handler.is_none()));
}

#[test]
fn every_bad_key_of_a_file_is_reported_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "agents/a/AGENT.md",
        "---\ntags: 5\nenabled: sometimes\nexecution_mode: later\nsurprise: 1\n---\nA.\n",
    );
    let ws = Workspace::load(dir.path(), &BTreeMap::new());
    let lines: Vec<(Severity, Option<usize>)> = ws
        .diagnostics
        .iter()
        .map(|d| (d.severity, d.line))
        .collect();
    assert!(
        lines.contains(&(Severity::Error, Some(2))),
        "{:?}",
        ws.diagnostics
    );
    assert!(lines.contains(&(Severity::Error, Some(3))));
    assert!(lines.contains(&(Severity::Error, Some(4))));
    assert!(lines.contains(&(Severity::Warning, Some(5))));
    let agent = &ws.agents["a"];
    assert!(agent.enabled, "a bad value falls back to the default");
    assert_eq!(agent.execution_mode, ExecutionMode::Sync);
}

#[test]
fn a_skill_naming_a_tool_no_file_defines_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "skills/math/SKILL.md",
        "---\nname: math\ndescription: sums\ntools: [add-numbers]\nsteps:\n  - {name: first, tool: add-numbers, input: {a: 1}}\n---\nAdd.\n",
    );
    write(
        dir.path(),
        "agents/a/AGENT.md",
        "---\nskills: [math]\ntools: [nowhere]\n---\nA.\n",
    );
    let ws = Workspace::load(dir.path(), &BTreeMap::new());
    let all = ws.all_diagnostics(&ExternalNames::default());
    let about = |needle: &str| {
        all.iter()
            .filter(|d| d.message.contains(needle))
            .map(|d| (d.severity, d.line))
            .collect::<Vec<_>>()
    };
    // A host program may register it as a code tool: the skill still loads.
    assert_eq!(
        about("skill 'math' uses tool 'add-numbers'"),
        vec![(Severity::Warning, Some(4))]
    );
    assert_eq!(
        about("step 'first' of skill 'math' calls tool 'add-numbers'"),
        vec![(Severity::Warning, Some(6))]
    );
    assert_eq!(
        about("agent 'a' uses unknown tool 'nowhere'"),
        vec![(Severity::Error, Some(3))],
        "an agent's own tools list stays an error"
    );
    // A code tool of that name answers the warning.
    let external = ExternalNames {
        tools: ["add-numbers".to_string(), "nowhere".to_string()].into(),
        ..ExternalNames::default()
    };
    assert!(
        ws.all_diagnostics(&external).is_empty(),
        "{:?}",
        ws.all_diagnostics(&external)
    );
}
