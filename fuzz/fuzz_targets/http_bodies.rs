//! JSON request bodies through the REST API, in process (no socket): the route's extractor,
//! the handler's checks and the core's (input and setup schemas, a caller's output schema,
//! cron expressions and timezones of schedules, memory rules), on a gateway whose agents
//! answer with the scripted model.
//!
//! The input is a request line (`POST /v1/agents/a/invoke`), a newline, and the body. Only
//! writes under `/v1` are sent, and not those that start outside work (MCP servers connect or
//! spawn their command; a reload rereads the workspace). Any answer is fine except a server
//! error: a body, whatever it holds, is the caller's mistake or a valid request.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use agent_gateway::workspace::config::ApiKeyConfig;
use agent_gateway::{Gateway, GatewayRouter};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Site {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

const API_KEY: &str = "fuzz-key";

const AGENT: &str = "---
description: Answers with what it was given
input_schema:
  type: object
  properties:
    city: {type: string, maxLength: 40}
    days: {type: integer, minimum: 1}
memory: {enabled: true}
schedules:
  - {name: daily, cron: '0 9 * * *', message: Report, input: {city: Oslo}}
---
Answer briefly.
";

const PERSONAL: &str = "---
description: Needs each user's setup
scope: personal
setup_schema:
  type: object
  properties:
    token: {type: string, sensitive: true}
    region: {type: string, enum: [eu, us]}
  required: [region]
---
Help the user.
";

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        for (file, text) in [
            ("agents/a/AGENT.md", AGENT),
            ("agents/p/AGENT.md", PERSONAL),
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("folders");
            std::fs::write(path, text).expect("an agent");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let env = BTreeMap::from([(
            "AGENT_GATEWAY_SECRET_KEY".to_string(),
            "fuzz-secret-key-of-enough-length-0123456789".to_string(),
        )]);
        let gateway = runtime
            .block_on(
                Gateway::builder(dir.path())
                    .env(env)
                    .background(false)
                    .notifications(false)
                    .model("scripted/fuzz")
                    .configure(|config| {
                        // One caller with every scope: an identified user (personal
                        // agents' setup needs one) who is also an admin.
                        config.auth.enabled = true;
                        config.auth.api_keys = vec![ApiKeyConfig {
                            name: "fuzz".into(),
                            key: Some(API_KEY.into()),
                            key_sha256: None,
                            scopes: vec!["*".into()],
                        }];
                        config.persistence.enabled = false;
                        config.scheduler.enabled = false;
                        config.scheduler.distributed_lock.enabled = false;
                        config.rate_limit.enabled = false;
                        config.memory.backend =
                            agent_gateway::workspace::config::MemoryBackend::Store;
                    })
                    .build(),
            )
            .expect("the gateway");
        Site {
            router: gateway.router(),
            runtime,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().position(|b| *b == b'\n') else {
        return;
    };
    let Ok(line) = std::str::from_utf8(&data[..newline]) else {
        return;
    };
    let Some((method, path)) = line.split_once(' ') else {
        return;
    };
    if !matches!(method, "POST" | "PUT" | "PATCH")
        || !path.starts_with("/v1/")
        || path.contains("mcp")
        || path.contains("reload")
    {
        return;
    }
    let Ok(request) = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", API_KEY)
        .body(Body::from(data[newline + 1..].to_vec()))
    else {
        return;
    };
    let site = site();
    let status = site.runtime.block_on(async {
        let response = site
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        // Streamed answers end with their run: read them to the end.
        let body = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await;
        // `FUZZ_SHOW=1 cargo fuzz run http_bodies <files>` prints what each input got.
        if std::env::var_os("FUZZ_SHOW").is_some()
            && let Ok(body) = &body
        {
            eprintln!("{line} -> {status} {}", String::from_utf8_lossy(body));
        }
        status
    });
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{line}");
});
