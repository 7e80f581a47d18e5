//! The manifest, every row of the protocol's error table, auth, the Link header.

use agentgate::server::{AgentApp, Auth, BuildError, Context, Flow, HandlerError, Intent, Step};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn the_manifest_is_exactly_as_specified() {
    let site = foodpanda_site().await;
    let response = site
        .http
        .get(format!("{}/.well-known/agent-manifest.json", site.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "public: no key needed");
    assert_eq!(response.headers()["content-type"], "application/json");
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let manifest: Value = response.json().await.unwrap();
    let keys: Vec<&String> = manifest.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        vec![
            "agent_api_version",
            "name",
            "description",
            "version",
            "base_url",
            "auth",
            "intents",
            "flows"
        ]
    );
    assert_eq!(manifest["agent_api_version"], "1.0");
    assert_eq!(manifest["name"], "FoodPanda");
    assert_eq!(manifest["version"], "1.0");
    assert_eq!(manifest["base_url"], "");
    assert_eq!(
        manifest["auth"],
        json!({"type": "api_key", "header": "X-API-Key"})
    );
    let intent = &manifest["intents"][0];
    assert_eq!(intent["name"], "search_restaurants");
    assert_eq!(intent["endpoint"], "/agent/intents/search_restaurants");
    assert_eq!(intent["method"], "POST");
    assert_eq!(intent["input_schema"]["type"], "object");
    assert_eq!(
        intent["input_schema"]["required"],
        json!(["query", "location"])
    );
    assert_eq!(intent["output_schema"]["type"], "array");
    let flows: Vec<&str> = manifest["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(flows, vec!["order_food", "track_delivery"]);
    let order = &manifest["flows"][0];
    assert_eq!(order["orchestration"], "server");
    let steps: Vec<(&str, bool, Value)> = order["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["entry"].as_bool().unwrap(),
                s["next_steps"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("search", true, json!(["select_restaurant"])),
            ("select_restaurant", false, json!(["checkout"])),
            ("checkout", false, json!([]))
        ],
        "definition order, not alphabetical"
    );
    // The nested CartItem type resolves from the step's own schema.
    let checkout = &order["steps"][2]["input_schema"];
    let reference = checkout["properties"]["items"]["items"]["$ref"]
        .as_str()
        .unwrap();
    let name = reference.strip_prefix("#/$defs/").unwrap();
    assert_eq!(
        checkout["$defs"][name]["required"],
        json!(["item_id", "quantity"])
    );
    assert_eq!(manifest["flows"][1]["orchestration"], "client");

    let cached = site
        .http
        .get(format!("{}/.well-known/agent-manifest.json", site.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(cached.headers()["etag"], etag.as_str());
}

#[tokio::test]
async fn every_error_of_the_table() {
    let site = foodpanda_site().await;
    let session = site.start_order().await;
    let sid = [("x-session-id", session.as_str())];
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/agent/intents/search_restaurants",
            "not json",
            &[],
            400,
            "invalid_json",
        ),
        (
            "/agent/intents/search_restaurants",
            "[1, 2]",
            &[],
            400,
            "invalid_json",
        ),
        (
            "/agent/flows/order_food/step/search",
            r#"{"query":"a","location":"b"}"#,
            &[],
            400,
            "missing_session_id",
        ),
        ("/agent/intents/nope", "{}", &[], 404, "intent_not_found"),
        ("/agent/flows/nope/start", "{}", &[], 404, "flow_not_found"),
        (
            "/agent/flows/order_food/step/nope",
            "{}",
            &sid,
            404,
            "step_not_found",
        ),
        (
            "/agent/flows/order_food/step/search",
            "{}",
            &[("x-session-id", "no-such-session")],
            404,
            "session_not_found",
        ),
        (
            "/agent/flows/track_delivery/start",
            "{}",
            &[],
            404,
            "wrong_orchestration",
        ),
        (
            "/agent/flows/track_delivery/step/initiate",
            "{}",
            &sid,
            404,
            "wrong_orchestration",
        ),
        (
            "/agent/flows/order_food/steps/search",
            "{}",
            &[],
            404,
            "wrong_orchestration",
        ),
        (
            "/agent/flows/track_delivery/steps/nope",
            "{}",
            &[],
            404,
            "step_not_found",
        ),
        (
            "/agent/flows/order_food/step/checkout",
            r#"{"items":[],"delivery_address":"x"}"#,
            &sid,
            422,
            "step_not_allowed",
        ),
        (
            "/agent/intents/search_restaurants",
            r#"{"query": 5}"#,
            &[],
            422,
            "invalid_input",
        ),
        (
            "/agent/flows/track_delivery/steps/initiate",
            r#"{}"#,
            &[],
            422,
            "invalid_input",
        ),
    ];
    for (path, body, headers, want_status, want_code) in cases {
        let (status, answer) = site.post(path, body, headers).await;
        assert_eq!(status, want_status, "{path} {body}: {answer}");
        assert_eq!(answer["error"], want_code, "{path}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    // step_not_allowed carries the session's position.
    let (_, answer) = site
        .post(
            "/agent/flows/order_food/step/checkout",
            r#"{"items":[],"delivery_address":"x"}"#,
            &sid,
        )
        .await;
    assert_eq!(answer["current_step"], "");
    assert_eq!(answer["allowed_next_steps"], json!(["search"]));
    assert_eq!(
        answer["message"],
        "Step 'checkout' cannot follow ''. Allowed next: [\"search\"]"
    );
    // invalid_input carries field details, and the session did not move.
    let (_, answer) = site
        .post(
            "/agent/flows/order_food/step/search",
            r#"{"query": "pizza"}"#,
            &sid,
        )
        .await;
    assert_eq!(answer["error"], "invalid_input");
    assert!(!answer["details"].as_array().unwrap().is_empty());
    let (_, state) = site
        .get(&format!("/agent/flows/order_food/session/{session}"))
        .await;
    assert_eq!(state["current_step"], "");
    // A session used under another flow's URL is not found.
    let (status, answer) = site
        .get(&format!("/agent/flows/track_delivery/session/{session}"))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("wrong_orchestration"))
    );
    let other = serve(
        AgentApp::builder("two")
            .flow(Flow::server("a", "").step(Step::entry("s", "", ok_step)))
            .flow(Flow::server("b", "").step(Step::entry("s", "", ok_step)))
            .build()
            .unwrap(),
    )
    .await;
    let (_, started) = other.post("/agent/flows/a/start", "{}", &[]).await;
    let a_session = started["session_id"].as_str().unwrap();
    let (status, answer) = other
        .post(
            "/agent/flows/b/step/s",
            "{}",
            &[("x-session-id", a_session)],
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("session_not_found"))
    );
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Nothing {}

async fn ok_step(_ctx: Context, _args: Nothing) -> Result<Value, HandlerError> {
    Ok(json!("ok"))
}

async fn failing(_ctx: Context, _args: Nothing) -> Result<Value, HandlerError> {
    Err(HandlerError::failed("database password is hunter2"))
}

#[tokio::test]
async fn a_failing_handler_leaks_nothing() {
    let site = serve(
        AgentApp::builder("fails")
            .intent(Intent::new("boom", "fails", failing))
            .build()
            .unwrap(),
    )
    .await;
    let (status, answer) = site.post("/agent/intents/boom", "{}", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(answer["error"], "handler_failed");
    assert!(!answer.to_string().contains("hunter2"), "{answer}");
}

#[tokio::test]
async fn auth_is_enforced_on_calls_never_on_the_manifest() {
    let site = foodpanda_site().await;
    let call = |key: Option<&'static str>| {
        let mut request = site
            .http
            .post(format!("{}/agent/intents/search_restaurants", site.url))
            .json(&json!({"query": "pizza", "location": "Berlin"}));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.send()
    };
    let response = call(None).await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(call(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(call(Some("demo-key")).await.unwrap().status(), 200);
    let (status, _) = site.get("/agent/flows/order_food/session/whatever").await;
    assert_eq!(
        status, 404,
        "with the key, an unknown session is simply not found"
    );
    let anonymous = site
        .http
        .get(format!("{}/agent/flows/order_food/session/x", site.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Bearer: static tokens and a verifier.
    let bearer = serve(
        AgentApp::builder("b")
            .auth(Auth::bearer(["t0k3n"]))
            .intent(Intent::new("ping", "", ok_step))
            .build()
            .unwrap(),
    )
    .await;
    let ping = |token: Option<&'static str>| {
        let mut request = bearer
            .http
            .post(format!("{}/agent/intents/ping", bearer.url))
            .json(&json!({}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let refused = ping(None).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    assert_eq!(ping(Some("nope")).await.unwrap().status(), 401);
    assert_eq!(ping(Some("t0k3n")).await.unwrap().status(), 200);
    let manifest: Value = bearer.get("/.well-known/agent-manifest.json").await.1;
    assert_eq!(manifest["auth"], json!({"type": "bearer", "header": null}));

    let verified = serve(
        AgentApp::builder("v")
            .auth(Auth::bearer_verified(|token: String| async move {
                token.starts_with("valid-")
            }))
            .intent(Intent::new("ping", "", ok_step))
            .build()
            .unwrap(),
    )
    .await;
    let call = |token: &'static str| {
        verified
            .http
            .post(format!("{}/agent/intents/ping", verified.url))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
    };
    assert_eq!(call("valid-123").await.unwrap().status(), 200);
    assert_eq!(call("forged").await.unwrap().status(), 401);
}

/// Who the site's auth said calls: the handler reads it, and refuses one caller.
async fn whoami(ctx: Context, _args: Nothing) -> Result<Value, HandlerError> {
    match ctx.caller::<String>() {
        Some(user) if user == "mallory" => Err(HandlerError::forbidden("not for mallory")),
        Some(user) => Ok(json!({"user": user})),
        None => Err(HandlerError::failed("no caller")),
    }
}

#[tokio::test]
async fn an_identifying_auth_tells_handlers_who_calls() {
    let site = serve(
        AgentApp::builder("who")
            .auth(Auth::bearer_identified(|token: String| async move {
                token.strip_prefix("user-").map(String::from)
            }))
            .intent(Intent::new("whoami", "", whoami))
            .build()
            .unwrap(),
    )
    .await;
    let call = |token: &'static str| {
        site.http
            .post(format!("{}/agent/intents/whoami", site.url))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
    };
    let alice = call("user-alice").await.unwrap();
    assert_eq!(alice.status(), 200);
    assert_eq!(
        alice.json::<Value>().await.unwrap(),
        json!({"user": "alice"})
    );
    assert_eq!(call("forged").await.unwrap().status(), 401);
    let refused = call("user-mallory").await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["message"], "not for mallory");
}

#[tokio::test]
async fn host_routes_are_untouched_and_point_agents_at_the_manifest() {
    let site = foodpanda_site().await;
    let browser = site
        .http
        .get(format!("{}/", site.url))
        .send()
        .await
        .unwrap();
    assert!(browser.headers().get("link").is_none());
    assert!(browser.text().await.unwrap().contains("<h1>FoodPanda</h1>"));
    let agent = site
        .http
        .get(format!("{}/api/menu", site.url))
        .header("x-agent-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(
        agent.headers()["link"],
        "</.well-known/agent-manifest.json>; rel=\"agent-manifest\""
    );
    assert_eq!(agent.text().await.unwrap(), "plain json route");
}

#[test]
fn flow_definitions_are_validated_when_built() {
    let build = |flow: Flow| AgentApp::builder("x").flow(flow).build().err();
    assert_eq!(
        build(Flow::server("f", "").step(Step::after("a", "b", "", ok_step))),
        Some(BuildError::EntrySteps {
            flow: "f".into(),
            count: 0
        })
    );
    assert_eq!(
        build(
            Flow::server("f", "")
                .step(Step::entry("a", "", ok_step))
                .step(Step::entry("b", "", ok_step))
        ),
        Some(BuildError::EntrySteps {
            flow: "f".into(),
            count: 2
        })
    );
    assert!(matches!(
        build(
            Flow::server("f", "")
                .step(Step::entry("a", "", ok_step))
                .step(Step::after("b", "ghost", "", ok_step))
        ),
        Some(BuildError::UnknownAfter { .. })
    ));
    assert!(matches!(
        build(
            Flow::server("f", "")
                .step(Step::entry("a", "", ok_step))
                .step(Step::after("b", "c", "", ok_step))
                .step(Step::after("c", "b", "", ok_step))
        ),
        Some(BuildError::Unreachable { .. })
    ));
    assert!(matches!(
        build(
            Flow::server("f", "")
                .step(Step::entry("a", "", ok_step))
                .step(Step::after("a", "a", "", ok_step))
        ),
        Some(BuildError::DuplicateStep { .. })
    ));
    // Branches are fine.
    assert!(
        build(
            Flow::server("f", "")
                .step(Step::entry("a", "", ok_step))
                .step(Step::after("b", "a", "", ok_step))
                .step(Step::after("c", "a", "", ok_step))
        )
        .is_none()
    );
}
