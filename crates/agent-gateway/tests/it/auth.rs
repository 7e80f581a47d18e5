//! Auth, ownership, scopes, personal agents, rate limits, CORS: every route walked with no
//! credentials, a wrong key, a key lacking the scope and a valid key; JWTs against a JWKS
//! served here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_gateway::Gateway;
use mock_llm::Reply;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const ALL_USER_SCOPES: &str = "[agents:read, agents:invoke, agents:configure, sessions:read, sessions:manage, executions:read, executions:cancel, executions:approve]";

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    }
}

fn workspace(extra: &str) -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nauth:\n  api_keys:\n    - {{name: root, key: root-key}}\n    - {{name: alice, key: alice-key, scopes: {ALL_USER_SCOPES}}}\n    - {{name: bob, key: bob-key, scopes: {ALL_USER_SCOPES}}}\n    - {{name: nobody, key: nobody-key, scopes: []}}\n    - {{name: narrow, key: narrow-key, scopes: [\"agents:invoke:assistant\"]}}\n{extra}"
    ));
    ws.agent("assistant", "description: helps", "Help.");
    ws.agent("other", "description: another", "Help too.");
    ws.agent(
        "mailer",
        "description: sends mail for you\nscope: personal\nsetup_schema:\n  type: object\n  required: [signature, smtp_password]\n  properties:\n    signature: {type: string}\n    smtp_password: {type: string, sensitive: true}\n    retries: {type: integer}\ntools: [whoami]",
        "Send mail.",
    );
    ws.python_tool(
        "whoami",
        "  x:\n    type: string",
        "def handle(arguments, context):\n    return {'user': context.get('caller_identity'), 'password': context.get('user_secrets', {}).get('smtp_password'), 'signature': context.get('user_config', {}).get('signature')}\n",
    );
    ws
}

/// The scope each route needs (`None`: public). A route missing here fails the matrix.
fn expected_scope(method: &str, path: &str) -> Option<Option<&'static str>> {
    Some(match (method, path) {
        ("get", "/v1/health" | "/v1/ready") => None,
        ("get", "/v1/agents" | "/v1/agents/{agent_id}" | "/v1/agents/{agent_id}/setup-schema")
        | ("get", "/v1/skills" | "/v1/skills/{skill_id}" | "/v1/tools" | "/v1/tools/{tool_name}") => {
            Some("agents:read")
        }
        ("post", "/v1/agents/{agent_id}/invoke" | "/v1/agents/{agent_id}/chat") => {
            Some("agents:invoke")
        }
        // The typed route of an agent with schemas.
        ("post", p) if p.starts_with("/v1/agents/") && p.ends_with("/invoke") => {
            Some("agents:invoke")
        }
        ("get" | "post" | "delete", "/v1/agents/{agent_id}/config") => Some("agents:configure"),
        (
            "get",
            "/v1/agents/{agent_id}/memories" | "/v1/agents/{agent_id}/memories/{memory_id}",
        ) => Some("agents:read"),
        ("post", "/v1/agents/{agent_id}/memories")
        | ("patch" | "delete", "/v1/agents/{agent_id}/memories/{memory_id}") => {
            Some("agents:invoke")
        }
        ("post", "/v1/agents/{agent_id}/memory/compact") => Some("agents:manage"),
        ("get", "/v1/sessions" | "/v1/sessions/{session_id}") => Some("sessions:read"),
        ("delete", "/v1/sessions/{session_id}") => Some("sessions:manage"),
        (
            "get",
            "/v1/users/me/conversations" | "/v1/users/me/conversations/{conversation_id}/messages",
        ) => Some("sessions:read"),
        ("get", p) if p.starts_with("/v1/executions") => Some("executions:read"),
        ("post", "/v1/executions/{execution_id}/cancel") => Some("executions:cancel"),
        (
            "post",
            "/v1/executions/{execution_id}/approve" | "/v1/executions/{execution_id}/deny",
        ) => Some("executions:approve"),
        ("get", "/v1/schedules" | "/v1/schedules/{schedule_id}") => Some("schedules:read"),
        ("post" | "delete" | "patch", p) if p.starts_with("/v1/schedules") => {
            Some("schedules:manage")
        }
        ("get", "/v1/notifications") => Some("notifications:read"),
        ("post", "/v1/notifications/{notification_id}/retry") => Some("notifications:manage"),
        ("post", "/v1/reload") => Some("admin"),
        ("get", "/metrics") => Some("metrics:read"),
        (_, p) if p.starts_with("/v1/admin/mcp-servers") => Some("admin:*"),
        _ => return None,
    })
}

#[tokio::test]
async fn every_route_is_guarded() {
    let ws = workspace("");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("done"));
    let invoked = send(
        &server,
        Method::POST,
        "/v1/agents/assistant/invoke",
        Some("alice-key"),
        Some(json!({"message": "hi"})),
    )
    .await;
    assert_eq!(invoked.status, 200, "{}", invoked.body);
    let execution = invoked.body["execution_id"].as_str().unwrap().to_string();
    mock.push(Reply::text("hello"));
    let chatted = send(
        &server,
        Method::POST,
        "/v1/agents/assistant/chat",
        Some("alice-key"),
        Some(json!({"message": "hi"})),
    )
    .await;
    let session = chatted.body["session_id"].as_str().unwrap().to_string();
    // The walk below deletes one session; the ownership checks use another.
    mock.push(Reply::text("hello again"));
    let walked = send(
        &server,
        Method::POST,
        "/v1/agents/assistant/chat",
        Some("alice-key"),
        Some(json!({"message": "hi"})),
    )
    .await;
    let walked_session = walked.body["session_id"].as_str().unwrap().to_string();

    let spec = send(&server, Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let mut routes = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let scope = expected_scope(method, path).unwrap_or_else(|| {
                panic!("no expectation for {method} {path}: add it to the matrix")
            });
            routes += 1;
            let concrete = path
                .replace(
                    "{agent_id}",
                    if path.ends_with("/config") {
                        "mailer"
                    } else {
                        "assistant"
                    },
                )
                .replace("{execution_id}", &execution)
                .replace("{session_id}", &walked_session)
                .replace("{conversation_id}", &walked_session)
                .replace("{skill_id}", "none")
                .replace("{tool_name}", "whoami")
                .replace("{server_id}", "none")
                .replace("{memory_id}", "none")
                .replace("{schedule_id}", "none")
                .replace("{notification_id}", "999999");
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = [Method::POST, Method::PUT, Method::PATCH]
                .contains(&verb)
                .then(|| json!({}));
            let label = format!("{method} {path}");

            let anonymous = send(&server, verb.clone(), &concrete, None, body.clone()).await;
            let wrong = send(
                &server,
                verb.clone(),
                &concrete,
                Some("wrong-key"),
                body.clone(),
            )
            .await;
            let lacking = send(
                &server,
                verb.clone(),
                &concrete,
                Some("nobody-key"),
                body.clone(),
            )
            .await;
            let Some(_) = scope else {
                assert_eq!(anonymous.status, 200, "{label} is public");
                continue;
            };
            assert_eq!(anonymous.status, 401, "{label}: {}", anonymous.body);
            assert_eq!(error_code(&anonymous.body), "auth_required", "{label}");
            assert_eq!(anonymous.headers["www-authenticate"], "Bearer", "{label}");
            assert_eq!(wrong.status, 401, "{label}: {}", wrong.body);
            assert_eq!(lacking.status, 403, "{label}: {}", lacking.body);
            assert_eq!(error_code(&lacking.body), "insufficient_scope", "{label}");
            let valid = send(
                &server,
                verb.clone(),
                &concrete,
                Some("root-key"),
                body.clone(),
            )
            .await;
            let refused_by_guard = valid.status == 401
                || (valid.status == 403 && valid.body["error"]["code"] == "insufficient_scope");
            assert!(
                !refused_by_guard && valid.status != 500,
                "{label} with a valid key: {} {}",
                valid.status,
                valid.body
            );
            // Security headers on every answer, errors included.
            assert_eq!(
                lacking.headers["x-content-type-options"], "nosniff",
                "{label}"
            );
        }
    }
    assert!(routes >= 30, "walked {routes} routes");

    // Another user's resources.
    for path in [
        format!("/v1/executions/{execution}"),
        format!("/v1/executions/{execution}/steps"),
        format!("/v1/executions/{execution}/workflow"),
        format!("/v1/sessions/{session}"),
        format!("/v1/users/me/conversations/{session}/messages"),
    ] {
        let theirs = send(&server, Method::GET, &path, Some("bob-key"), None).await;
        assert_eq!(theirs.status, 403, "{path}: {}", theirs.body);
        assert_eq!(error_code(&theirs.body), "forbidden");
        let mine = send(&server, Method::GET, &path, Some("alice-key"), None).await;
        assert_eq!(mine.status, 200, "{path}: {}", mine.body);
        let admin = send(&server, Method::GET, &path, Some("root-key"), None).await;
        assert_eq!(admin.status, 200, "{path}: admins see everything");
    }
    let cancel = send(
        &server,
        Method::POST,
        &format!("/v1/executions/{execution}/cancel"),
        Some("bob-key"),
        Some(json!({})),
    )
    .await;
    assert_eq!(cancel.status, 403);
    let delete = send(
        &server,
        Method::DELETE,
        &format!("/v1/sessions/{session}"),
        Some("bob-key"),
        None,
    )
    .await;
    assert_eq!(delete.status, 403);
    let chat_theirs = send(
        &server,
        Method::POST,
        "/v1/agents/assistant/chat",
        Some("bob-key"),
        Some(json!({"message": "hi", "session_id": session})),
    )
    .await;
    assert_eq!(chat_theirs.status, 403, "{}", chat_theirs.body);
    for listing in [
        "/v1/executions",
        "/v1/sessions",
        "/v1/users/me/conversations",
    ] {
        let bobs = send(&server, Method::GET, listing, Some("bob-key"), None).await;
        assert_eq!(bobs.body, json!([]), "{listing}: bob sees none of alice's");
        let alices = send(&server, Method::GET, listing, Some("alice-key"), None).await;
        assert!(!alices.body.as_array().unwrap().is_empty(), "{listing}");
    }
    let record = send(
        &server,
        Method::GET,
        &format!("/v1/executions/{execution}"),
        Some("alice-key"),
        None,
    )
    .await;
    assert_eq!(
        record.body["user_id"], "alice",
        "the key's name is the identity"
    );

    // A scope for one agent only.
    mock.push(Reply::text("ok"));
    let one = send(
        &server,
        Method::POST,
        "/v1/agents/assistant/invoke",
        Some("narrow-key"),
        Some(json!({"message": "hi"})),
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.body);
    let other = send(
        &server,
        Method::POST,
        "/v1/agents/other/invoke",
        Some("narrow-key"),
        Some(json!({"message": "hi"})),
    )
    .await;
    assert_eq!(other.status, 403);
    // The agentgate manifest is public; its calls need a credential with agents:invoke.
    let manifest = send(
        &server,
        Method::GET,
        "/.well-known/agent-manifest.json",
        None,
        None,
    )
    .await;
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.body["auth"]["type"], "bearer", "{}", manifest.body);
    let call = send(
        &server,
        Method::POST,
        "/agent/intents/assistant",
        None,
        Some(json!({"message": "hi"})),
    )
    .await;
    assert_eq!(call.status, 401, "{}", call.body);
}

#[tokio::test]
async fn personal_agents_need_setup_and_keep_secrets_sealed() {
    let ws = workspace("");
    let mock = mock_llm::MockLlm::start().await.unwrap();
    let mut env = mock_env(&mock);
    env.insert(
        "AGENT_GATEWAY_SECRET_KEY".into(),
        "personal-secret-key".into(),
    );
    let server = TestServer::start(Gateway::builder(ws.path()).env(env)).await;
    let password = "hunter2-smtp-pass";

    let schema = send(
        &server,
        Method::GET,
        "/v1/agents/mailer/setup-schema",
        Some("alice-key"),
        None,
    )
    .await;
    assert_eq!(schema.body["scope"], "personal");
    let early = send(
        &server,
        Method::POST,
        "/v1/agents/mailer/invoke",
        Some("alice-key"),
        Some(json!({"message": "hi"})),
    )
    .await;
    assert_eq!(early.status, 409, "{}", early.body);
    assert_eq!(error_code(&early.body), "setup_required");

    let bad = send(
        &server,
        Method::POST,
        "/v1/agents/mailer/config",
        Some("alice-key"),
        Some(json!({"retries": "many"})),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    let partial = send(
        &server,
        Method::POST,
        "/v1/agents/mailer/config",
        Some("alice-key"),
        Some(json!({"signature": "Alice A.", "instructions": "Always be brief."})),
    )
    .await;
    assert_eq!(partial.status, 200, "{}", partial.body);
    assert_eq!(partial.body["setup_completed"], false);
    assert_eq!(partial.body["missing"], json!(["smtp_password"]));
    let missing = send(
        &server,
        Method::POST,
        "/v1/agents/mailer/invoke",
        Some("alice-key"),
        Some(json!({"message": "hi"})),
    )
    .await;
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("smtp_password")
    );
    let done = send(
        &server,
        Method::POST,
        "/v1/agents/mailer/config",
        Some("alice-key"),
        Some(json!({"smtp_password": password})),
    )
    .await;
    assert_eq!(done.body["setup_completed"], true, "{}", done.body);
    assert_eq!(done.body["secrets"], json!({"smtp_password": "***"}));
    let shown = send(
        &server,
        Method::GET,
        "/v1/agents/mailer/config",
        Some("alice-key"),
        None,
    )
    .await;
    assert!(!shown.body.to_string().contains(password));
    assert_eq!(shown.body["config_values"]["signature"], "Alice A.");
    let not_bobs = send(
        &server,
        Method::GET,
        "/v1/agents/mailer/config",
        Some("bob-key"),
        None,
    )
    .await;
    assert_eq!(not_bobs.status, 404, "configs are per user");
    let global = send(
        &server,
        Method::GET,
        "/v1/agents/assistant/config",
        Some("alice-key"),
        None,
    )
    .await;
    assert_eq!(global.status, 400);

    // Not in the database in clear.
    for name in ["gateway.db", "gateway.db-wal"] {
        if let Ok(bytes) = std::fs::read(ws.path().join(name)) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(password),
                "{name}"
            );
        }
    }
    if let Some((url, schema)) = ws.postgres() {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(c)::text FROM \"{schema}\".user_agent_configs c"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(rows.iter().all(|r| !r.contains(password)), "{rows:?}");
    }

    // The setup reaches the prompt and the tools.
    mock.push(Reply::tool_call("whoami", json!({"x": "1"})));
    mock.push(Reply::text("sent"));
    let run = send(
        &server,
        Method::POST,
        "/v1/agents/mailer/invoke",
        Some("alice-key"),
        Some(json!({"message": "mail bob"})),
    )
    .await;
    assert_eq!(run.status, 200, "{}", run.body);
    let requests = mock.requests();
    let system = requests[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.contains("Always be brief.") && system.contains("Alice A."),
        "{system}"
    );
    assert!(!system.contains(password), "secrets stay out of the prompt");
    let tool_saw: Value = serde_json::from_str(
        requests[1].body["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["content"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        tool_saw,
        json!({"user": "alice", "password": password, "signature": "Alice A."})
    );
    let bob = send(
        &server,
        Method::POST,
        "/v1/agents/mailer/invoke",
        Some("bob-key"),
        Some(json!({"message": "hi"})),
    )
    .await;
    assert_eq!(bob.status, 409, "bob has no setup");
    let removed = send(
        &server,
        Method::DELETE,
        "/v1/agents/mailer/config",
        Some("alice-key"),
        None,
    )
    .await;
    assert_eq!(removed.body, json!({"deleted": true}));
}

#[tokio::test]
async fn api_key_mode_without_keys_refuses_to_start() {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nauth:\n  mode: api_key\n"
    ));
    let err = Gateway::builder(ws.path())
        .build()
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("api_keys"), "{err}");
}

#[tokio::test]
async fn cors_answers_preflights_and_decorates_errors() {
    let ws = workspace("cors:\n  enabled: true\n  allow_origins: [\"https://app.example\"]\n");
    let (_mock, server) = start(&ws).await;
    let preflight = server
        .client
        .request(Method::OPTIONS, format!("{}/v1/agents", server.url))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let refused = server
        .client
        .get(format!("{}/v1/agents", server.url))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let stranger = server
        .client
        .get(format!("{}/v1/health", server.url))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        stranger
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn rate_limits_hold_across_two_instances_sharing_redis() {
    let Some(redis) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    // A fresh identity, so counters of earlier runs in this window do not count.
    let user = format!("u{}", uuid::Uuid::new_v4().simple());
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nauth:\n  api_keys:\n    - {{name: {user}, key: shared-key}}\nrate_limit:\n  enabled: true\n  default_limit: 5/minute\n  storage_uri: {redis}\ncors:\n  enabled: true\n"
    ));
    ws.agent("assistant", "", "Help.");
    let (mock, first) = start(&ws).await;
    let second = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    for _ in 0..10 {
        let preflight = first
            .client
            .request(Method::OPTIONS, format!("{}/v1/agents", first.url))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success());
    }
    for i in 0..5 {
        let server = if i % 2 == 0 { &first } else { &second };
        let answer = send(server, Method::GET, "/v1/agents", Some("shared-key"), None).await;
        assert_eq!(answer.status, 200, "request {i}: {}", answer.body);
    }
    let limited = send(&second, Method::GET, "/v1/agents", Some("shared-key"), None).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(error_code(&limited.body), "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let also = send(&first, Method::GET, "/v1/agents", Some("shared-key"), None).await;
    assert_eq!(
        also.status, 429,
        "the other instance counts the same requests"
    );
}

/// A JWKS endpoint whose key set the test can change.
async fn jwks_server(keys: Arc<Mutex<Value>>) -> String {
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let keys = Arc::clone(&keys);
            async move { axum::Json(keys.lock().unwrap().clone()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks")
}

fn token(pem: &str, alg: jsonwebtoken::Algorithm, kid: &str, claims: Value) -> String {
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .unwrap();
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// Unpadded base64url, for hand-made tokens.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An HS256 token for kid `rsa-1`, keyed with `secret`.
fn hmac_token(secret: &[u8], claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("rsa-1".to_string());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn oauth2_tokens_are_verified_against_the_jwks() {
    let all: Value = serde_json::from_str(include_str!("keys/jwks.json")).unwrap();
    let published = Arc::new(Mutex::new(json!({"keys": [all["rsa1"], all["ec1"]]})));
    let jwks = jwks_server(Arc::clone(&published)).await;
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nauth:\n  oauth2:\n    issuer: https://issuer.test\n    audience: agw\n    jwks_uri: {jwks}\n    algorithms: [RS256, ES256]\n"
    ));
    ws.agent("assistant", "", "Help.");
    let (mock, server) = start(&ws).await;
    let now = chrono::Utc::now().timestamp();
    let claims = |sub: &str, scope: &str| json!({"sub": sub, "iss": "https://issuer.test", "aud": "agw", "exp": now + 600, "iat": now, "scope": scope});
    let rsa1 = include_str!("keys/rsa1.pem");
    let rsa2 = include_str!("keys/rsa2.pem");
    let ec1 = include_str!("keys/ec1.pem");
    use jsonwebtoken::Algorithm::{ES256, RS256};

    let rs = token(
        rsa1,
        RS256,
        "rsa-1",
        claims("user-rs", "agents:read agents:invoke executions:read"),
    );
    let ok = send(&server, Method::GET, "/v1/agents", Some(&rs), None).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    mock.push(Reply::text("hi"));
    let run = send(
        &server,
        Method::POST,
        "/v1/agents/assistant/invoke",
        Some(&rs),
        Some(json!({"message": "hi"})),
    )
    .await;
    let id = run.body["execution_id"].as_str().unwrap();
    let record = send(
        &server,
        Method::GET,
        &format!("/v1/executions/{id}"),
        Some(&rs),
        None,
    )
    .await;
    assert_eq!(
        record.body["user_id"], "user-rs",
        "the subject is the identity"
    );

    let es = token(
        ec1,
        ES256,
        "ec-1",
        json!({"sub": "user-es", "iss": "https://issuer.test", "aud": "agw", "exp": now + 600, "scope": ["agents:read"]}),
    );
    assert_eq!(
        send(&server, Method::GET, "/v1/agents", Some(&es), None)
            .await
            .status,
        200
    );
    let no_scope = send(&server, Method::GET, "/v1/executions", Some(&es), None).await;
    assert_eq!(no_scope.status, 403);

    // The hand-made tokens below are well formed: only their algorithm is wrong.
    assert_eq!(base64url(b"hello?"), "aGVsbG8_");
    assert_eq!(base64url(b"hi"), "aGk");
    let mut expired = claims("u", "agents:read");
    expired["exp"] = json!(now - 3600);
    let mut wrong_audience = claims("u", "agents:read");
    wrong_audience["aud"] = json!("someone-else");
    let mut wrong_issuer = claims("u", "agents:read");
    wrong_issuer["iss"] = json!("https://evil.test");
    for (label, bad) in [
        ("expired", token(rsa1, RS256, "rsa-1", expired)),
        (
            "wrong audience",
            token(rsa1, RS256, "rsa-1", wrong_audience),
        ),
        ("wrong issuer", token(rsa1, RS256, "rsa-1", wrong_issuer)),
        (
            "signed by another key",
            token(rsa2, RS256, "rsa-1", claims("u", "agents:read")),
        ),
        ("not a token", "garbage".to_string()),
        (
            "alg none, unsigned",
            format!(
                "{}.{}.",
                base64url(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#),
                base64url(claims("u", "agents:read").to_string().as_bytes())
            ),
        ),
        (
            "HS256 keyed with the published RSA key (algorithm confusion)",
            hmac_token(
                all["rsa1"].to_string().as_bytes(),
                claims("u", "agents:read"),
            ),
        ),
        (
            "HS256 keyed with the RSA modulus",
            hmac_token(
                all["rsa1"]["n"].as_str().unwrap().as_bytes(),
                claims("u", "agents:read"),
            ),
        ),
    ] {
        let answer = send(&server, Method::GET, "/v1/agents", Some(&bad), None).await;
        assert_eq!(answer.status, 401, "{label}: {}", answer.body);
        assert_eq!(error_code(&answer.body), "auth_required");
    }

    // A key the issuer has not published yet, then published (rotation).
    let rotated = token(rsa2, RS256, "rsa-2", claims("user-new", "agents:read"));
    let unknown = send(&server, Method::GET, "/v1/agents", Some(&rotated), None).await;
    assert_eq!(unknown.status, 401);
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rsa-2")
    );
    *published.lock().unwrap() = json!({"keys": [all["rsa2"], all["ec1"]]});
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let accepted = send(&server, Method::GET, "/v1/agents", Some(&rotated), None).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
}

#[tokio::test]
async fn composite_mode_public_paths_and_limits_by_address() {
    let all: Value = serde_json::from_str(include_str!("keys/jwks.json")).unwrap();
    let jwks = jwks_server(Arc::new(Mutex::new(json!({"keys": [all["rsa1"]]})))).await;
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nauth:\n  api_keys:\n    - {{name: svc, key: svc-key}}\n  oauth2: {{issuer: https://issuer.test, audience: agw, jwks_uri: \"{jwks}\"}}\n  public_paths: [/v1/health, /v1/skills]\nrate_limit:\n  enabled: true\n  default_limit: 2/minute\n  trust_forwarded_for: true\n"
    ));
    ws.agent("assistant", "", "Help.");
    let (_mock, server) = start(&ws).await;
    let now = chrono::Utc::now().timestamp();
    let jwt = token(
        include_str!("keys/rsa1.pem"),
        jsonwebtoken::Algorithm::RS256,
        "rsa-1",
        json!({"sub": "person", "iss": "https://issuer.test", "aud": "agw", "exp": now + 60, "scope": "*"}),
    );
    assert_eq!(
        send(&server, Method::GET, "/v1/agents", Some("svc-key"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        send(&server, Method::GET, "/v1/agents", Some(&jwt), None)
            .await
            .status,
        200
    );
    assert_eq!(
        send(&server, Method::GET, "/v1/agents", Some("nope"), None)
            .await
            .status,
        401
    );

    // A public path needs no credentials; anonymous callers are limited by address.
    let from = |ip: &'static str| {
        let client = server.client.clone();
        let url = format!("{}/v1/skills", server.url);
        async move {
            client
                .get(url)
                .header("x-forwarded-for", ip)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(from("10.0.0.1").await, 200);
    assert_eq!(from("10.0.0.1").await, 200);
    assert_eq!(from("10.0.0.1").await, 429);
    assert_eq!(
        from("10.0.0.2").await,
        200,
        "another address, another window"
    );
}

/// A client of the gateway's agentgate site holding `key`.
async fn site_as(server: &TestServer, key: &str) -> agentgate::client::Site {
    agentgate::client::AgentClient::builder()
        .bearer_token(key)
        .build()
        .unwrap()
        .discover(&server.url)
        .await
        .unwrap()
}

#[tokio::test]
async fn agentgate_publishing_runs_as_the_caller() {
    let ws = workspace("");
    let mock = mock_llm::MockLlm::start().await.unwrap();
    mock.set_default(Reply::text("done"));
    let mut env = mock_env(&mock);
    env.insert("AGENT_GATEWAY_SECRET_KEY".into(), "publish-secret".into());
    let server = TestServer::start(Gateway::builder(ws.path()).env(env)).await;

    // The caller owns what it runs.
    let alice = site_as(&server, "alice-key").await;
    let result = alice
        .call_intent("assistant", json!({"message": "hi"}))
        .await
        .unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    let execution = result["execution_id"].as_str().unwrap();
    let path = format!("/v1/executions/{execution}");
    let record = send(&server, Method::GET, &path, Some("alice-key"), None).await;
    assert_eq!(record.body["user_id"], "alice", "{}", record.body);
    let theirs = send(&server, Method::GET, &path, Some("bob-key"), None).await;
    assert_eq!(theirs.status, 403);

    // Per-agent scopes hold here as on /v1.
    let narrow = site_as(&server, "narrow-key").await;
    assert_eq!(
        narrow
            .call_intent("assistant", json!({"message": "hi"}))
            .await
            .unwrap()["status"],
        "completed"
    );
    let refused = narrow
        .call_intent("other", json!({"message": "hi"}))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("forbidden"), "{refused}");
    let nobody = site_as(&server, "nobody-key").await;
    assert!(
        nobody
            .call_intent("assistant", json!({"message": "hi"}))
            .await
            .is_err(),
        "a key without agents:invoke runs nothing"
    );

    // A personal agent runs with its caller's setup.
    let early = alice
        .call_intent("mailer", json!({"message": "hi"}))
        .await
        .unwrap_err();
    assert!(early.to_string().contains("needs setup"), "{early}");
    let setup = send(
        &server,
        Method::POST,
        "/v1/agents/mailer/config",
        Some("alice-key"),
        Some(json!({"signature": "Alice", "smtp_password": "s3cret"})),
    )
    .await;
    assert_eq!(setup.body["setup_completed"], true, "{}", setup.body);
    let mailed = alice
        .call_intent("mailer", json!({"message": "hi"}))
        .await
        .unwrap();
    assert_eq!(mailed["status"], "completed", "{mailed}");
    let sent = mock.requests().last().unwrap().body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        sent.contains("signature: Alice"),
        "her setup reached the prompt"
    );

    // A chat flow is the caller's session: listed for her, refused to another user.
    let mut chat = alice.flow("chat_assistant").unwrap().start().await.unwrap();
    chat.step("begin", json!({"message": "hello"}))
        .await
        .unwrap();
    let sessions = send(
        &server,
        Method::GET,
        "/v1/sessions",
        Some("alice-key"),
        None,
    )
    .await;
    assert_eq!(
        sessions.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        sessions.body
    );
    let bob = site_as(&server, "bob-key").await;
    let mut hijack = bob
        .flow("chat_assistant")
        .unwrap()
        .resume(chat.session_id())
        .await
        .unwrap();
    let err = hijack
        .step("say", json!({"message": "mine now"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
}

#[tokio::test]
async fn a_schedule_trigger_runs_for_the_caller_within_its_scopes() {
    // The extra key continues the api_keys list of `workspace`.
    let ws = workspace(
        "    - {name: planner, key: planner-key, scopes: [\"schedules:manage\", \"executions:read\", \"agents:invoke:assistant\"]}\n",
    );
    let (mock, server) = start(&ws).await;
    mock.set_default(Reply::text("done"));
    for agent in ["assistant", "other"] {
        let created = send(
            &server,
            Method::POST,
            "/v1/schedules",
            Some("root-key"),
            Some(json!({"agent_id": agent, "name": "yearly", "cron_expr": "0 0 1 1 *", "message": "go"})),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let refused = send(
        &server,
        Method::POST,
        "/v1/schedules/admin:other:yearly/trigger",
        Some("planner-key"),
        None,
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(error_code(&refused.body), "insufficient_scope");
    let triggered = send(
        &server,
        Method::POST,
        "/v1/schedules/admin:assistant:yearly/trigger",
        Some("planner-key"),
        None,
    )
    .await;
    assert_eq!(triggered.status, 202, "{}", triggered.body);
    let execution = triggered.body["execution_id"].as_str().unwrap();
    // The caller may poll its own run, to its end.
    let mut polled = send(
        &server,
        Method::GET,
        &format!("/v1/executions/{execution}"),
        Some("planner-key"),
        None,
    )
    .await;
    for _ in 0..200 {
        if polled.status != 200 || polled.body["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        polled = send(
            &server,
            Method::GET,
            &format!("/v1/executions/{execution}"),
            Some("planner-key"),
            None,
        )
        .await;
    }
    assert_eq!(polled.status, 200, "{}", polled.body);
    assert_eq!(polled.body["status"], "completed", "{}", polled.body);
    assert_eq!(polled.body["user_id"], "planner");
}

#[tokio::test]
async fn a_public_path_shows_nobody_records() {
    // `public_paths` sits under `auth`, after the api_keys list of `workspace`.
    let ws = workspace("  public_paths: [\"/v1/executions\"]\n");
    let (mock, server) = start(&ws).await;
    mock.set_default(Reply::text("done"));
    let invoked = send(
        &server,
        Method::POST,
        "/v1/agents/assistant/invoke",
        Some("alice-key"),
        Some(json!({"message": "hi"})),
    )
    .await;
    assert_eq!(invoked.status, 200, "{}", invoked.body);
    let public = send(&server, Method::GET, "/v1/executions", None, None).await;
    assert_eq!(public.status, 200, "the path is public: {}", public.body);
    assert_eq!(public.body, json!([]), "but nobody's records are on it");
    let alices = send(
        &server,
        Method::GET,
        "/v1/executions",
        Some("alice-key"),
        None,
    )
    .await;
    assert_eq!(alices.body.as_array().map(Vec::len), Some(1));
}
