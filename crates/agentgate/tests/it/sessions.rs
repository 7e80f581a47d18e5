//! Server-flow sessions: data, branches, failures, expiry, and atomic transitions on every
//! store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentgate::server::{
    AgentApp, Context, Flow, HandlerError, MemorySessionStore, SessionStore, Step,
};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn a_full_flow_with_session_data() {
    let site = foodpanda_site().await;
    let session = site.start_order().await;
    let sid = [("x-session-id", session.as_str())];
    let (status, step) = site
        .post(
            "/agent/flows/order_food/step/search",
            r#"{"query":"pizza","location":"Berlin"}"#,
            &sid,
        )
        .await;
    assert_eq!(status, 200, "{step}");
    assert_eq!(
        step["result"],
        json!([{"id": "r1", "name": "Pizza Palace", "cuisine": "Italian", "rating": 4.5}])
    );
    assert_eq!(step["current_step"], "search");
    assert_eq!(step["allowed_next_steps"], json!(["select_restaurant"]));
    assert_eq!(step["flow_complete"], false);
    site.post(
        "/agent/flows/order_food/step/select_restaurant",
        r#"{"restaurant_id":"r1"}"#,
        &sid,
    )
    .await;
    let (status, done) = site
        .post(
            "/agent/flows/order_food/step/checkout",
            r#"{"items":[{"item_id":"m1","quantity":2}],"delivery_address":"Alexanderplatz 1"}"#,
            &sid,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        done["result"],
        json!({"order_id": "ORD-001", "status": "confirmed", "estimated_minutes": 35})
    );
    assert_eq!(done["flow_complete"], true);
    assert_eq!(done["allowed_next_steps"], json!([]));

    let (_, state) = site
        .get(&format!("/agent/flows/order_food/session/{session}"))
        .await;
    assert_eq!(state["flow_name"], "order_food");
    assert_eq!(state["flow_complete"], true);
    let steps: Vec<&str> = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["step_name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, vec!["search", "select_restaurant", "checkout"]);
    assert_eq!(state["history"][1]["input"], json!({"restaurant_id": "r1"}));
    assert_eq!(
        state["data"],
        json!({"query": "pizza", "location": "Berlin", "restaurant_id": "r1", "delivery_address": "Alexanderplatz 1"})
    );
    // Nothing is allowed after the last step.
    let (status, answer) = site
        .post(
            "/agent/flows/order_food/step/search",
            r#"{"query":"a","location":"b"}"#,
            &sid,
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("step_not_allowed"))
    );
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Nothing {}

#[tokio::test]
async fn branches_close_behind_the_one_taken() {
    let step = |label: &'static str| {
        move |_ctx: Context, _args: Nothing| async move { Ok::<_, HandlerError>(json!(label)) }
    };
    let app = AgentApp::builder("branching")
        .flow(
            Flow::server("pick", "")
                .step(Step::entry("start", "", step("start")))
                .step(Step::after("left", "start", "", step("left")))
                .step(Step::after("right", "start", "", step("right")))
                .step(Step::after("after_left", "left", "", step("after_left"))),
        )
        .build()
        .unwrap();
    let site = serve(app).await;
    let (_, started) = site.post("/agent/flows/pick/start", "{}", &[]).await;
    let sid = started["session_id"].as_str().unwrap().to_string();
    let h = [("x-session-id", sid.as_str())];
    let (_, first) = site.post("/agent/flows/pick/step/start", "{}", &h).await;
    assert_eq!(first["allowed_next_steps"], json!(["left", "right"]));
    let (status, _) = site.post("/agent/flows/pick/step/left", "{}", &h).await;
    assert_eq!(status, 200);
    let (status, answer) = site.post("/agent/flows/pick/step/right", "{}", &h).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("step_not_allowed"))
    );
    assert_eq!(answer["allowed_next_steps"], json!(["after_left"]));
}

#[tokio::test]
async fn a_failing_step_leaves_the_session_unchanged_and_can_be_retried() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let flaky = move |ctx: Context, _args: Nothing| {
        let counter = Arc::clone(&counter);
        async move {
            ctx.set("touched", true);
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(HandlerError::failed("the payment provider is down"))
            } else {
                Ok(json!("paid"))
            }
        }
    };
    let app = AgentApp::builder("flaky")
        .flow(Flow::server("pay", "").step(Step::entry("charge", "", flaky)))
        .build()
        .unwrap();
    let site = serve(app).await;
    let (_, started) = site.post("/agent/flows/pay/start", "{}", &[]).await;
    let sid = started["session_id"].as_str().unwrap().to_string();
    let h = [("x-session-id", sid.as_str())];
    let (status, answer) = site.post("/agent/flows/pay/step/charge", "{}", &h).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (500, Some("handler_failed"))
    );
    let (_, state) = site.get(&format!("/agent/flows/pay/session/{sid}")).await;
    assert_eq!(state["current_step"], "");
    assert_eq!(
        state["data"],
        json!({}),
        "data written by a failed step is dropped"
    );
    assert_eq!(state["history"], json!([]));
    let (status, answer) = site.post("/agent/flows/pay/step/charge", "{}", &h).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "paid");
    assert_eq!(answer["flow_complete"], true);
}

#[tokio::test]
async fn memory_sessions_expire_and_stay_bounded() {
    let site = foodpanda_with(Arc::new(MemorySessionStore::new(
        2,
        Duration::from_millis(300),
    )))
    .await;
    let first = site.start_order().await;
    let second = site.start_order().await;
    let third = site.start_order().await;
    let (status, _) = site
        .get(&format!("/agent/flows/order_food/session/{first}"))
        .await;
    assert_eq!(status, 404, "the least recently used session was evicted");
    let (status, _) = site
        .get(&format!("/agent/flows/order_food/session/{third}"))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, answer) = site
        .get(&format!("/agent/flows/order_food/session/{second}"))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("session_not_found"))
    );
}

/// Fires 50 identical step calls at one session: exactly one may advance it.
pub async fn exactly_one_of_fifty_wins(store: Arc<dyn SessionStore>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let slow = move |_ctx: Context, _args: Nothing| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, HandlerError>(json!("done"))
        }
    };
    let app = AgentApp::builder("race")
        .shared_session_store(store)
        .flow(
            Flow::server("once", "")
                .step(Step::entry("go", "", slow))
                .step(Step::after("next", "go", "", slow_ok)),
        )
        .build()
        .unwrap();
    let site = Arc::new(serve(app).await);
    let (_, started) = site.post("/agent/flows/once/start", "{}", &[]).await;
    let sid = started["session_id"].as_str().unwrap().to_string();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let site = Arc::clone(&site);
            let sid = sid.clone();
            tokio::spawn(async move {
                site.post(
                    "/agent/flows/once/step/go",
                    "{}",
                    &[("x-session-id", sid.as_str())],
                )
                .await
            })
        })
        .collect();
    let mut wins = 0;
    let mut refused = 0;
    for call in calls {
        let (status, body) = call.await.unwrap();
        match status {
            200 => wins += 1,
            422 if body["error"] == "step_not_allowed" => refused += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((wins, refused), (1, 49));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    let (_, state) = site.get(&format!("/agent/flows/once/session/{sid}")).await;
    assert_eq!(state["history"].as_array().unwrap().len(), 1);
    assert_eq!(state["allowed_next_steps"], json!(["next"]));
}

async fn slow_ok(_ctx: Context, _args: Nothing) -> Result<Value, HandlerError> {
    Ok(json!("ok"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_steps_on_the_memory_store() {
    exactly_one_of_fifty_wins(Arc::new(MemorySessionStore::default())).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_steps_on_redis() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let prefix = format!("agentgate-test:{}:", uuid_like());
    let store = agentgate::server::redis_store::RedisSessionStore::connect(
        &url,
        prefix,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    exactly_one_of_fifty_wins(Arc::new(store.clone())).await;
    // Idle sessions expire in Redis too.
    let short = agentgate::server::redis_store::RedisSessionStore::connect(
        &url,
        format!("agentgate-test:{}:", uuid_like()),
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    expiry(Arc::new(short)).await;
}

#[cfg(feature = "sql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_steps_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let store =
        agentgate::server::sql_store::SqlSessionStore::connect(&url, Duration::from_secs(60))
            .await
            .unwrap();
    exactly_one_of_fifty_wins(Arc::new(store)).await;
    let short =
        agentgate::server::sql_store::SqlSessionStore::connect(&url, Duration::from_millis(200))
            .await
            .unwrap();
    expiry(Arc::new(short)).await;
}

#[cfg(feature = "sql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_steps_on_postgres() {
    let Some(url) = test_services::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    let store =
        agentgate::server::sql_store::SqlSessionStore::connect(&url, Duration::from_secs(60))
            .await
            .unwrap();
    exactly_one_of_fifty_wins(Arc::new(store)).await;
    let short =
        agentgate::server::sql_store::SqlSessionStore::connect(&url, Duration::from_millis(200))
            .await
            .unwrap();
    expiry(Arc::new(short)).await;
}

#[cfg(any(feature = "redis", feature = "sql"))]
fn uuid_like() -> String {
    format!("{:x}{:x}", std::process::id(), agentgate::server::now_ms())
}

/// A session idle for longer than the store's TTL is gone.
#[cfg(any(feature = "redis", feature = "sql"))]
async fn expiry(store: Arc<dyn SessionStore>) {
    let site = foodpanda_with(store).await;
    let session = site.start_order().await;
    let (status, _) = site
        .get(&format!("/agent/flows/order_food/session/{session}"))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, answer) = site
        .get(&format!("/agent/flows/order_food/session/{session}"))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("session_not_found"))
    );
}

#[tokio::test]
async fn a_step_may_repeat_until_the_flow_ends() {
    let echo = |_ctx: Context, _args: Nothing| async move { Ok::<_, HandlerError>(json!("ok")) };
    let app = AgentApp::builder("loop")
        .flow(
            Flow::server("talk", "")
                .step(Step::entry("begin", "", echo))
                .step(Step::after_any("say", ["begin", "say"], "", echo))
                .step(Step::after_any("end", ["begin", "say"], "", echo)),
        )
        .build()
        .unwrap();
    let manifest = app.manifest().clone();
    assert_eq!(manifest.flows[0].steps[1].next_steps, vec!["say", "end"]);
    let site = serve(app).await;
    let (_, started) = site.post("/agent/flows/talk/start", "{}", &[]).await;
    let sid = started["session_id"].as_str().unwrap().to_string();
    let h = [("x-session-id", sid.as_str())];
    site.post("/agent/flows/talk/step/begin", "{}", &h).await;
    for _ in 0..3 {
        let (status, answer) = site.post("/agent/flows/talk/step/say", "{}", &h).await;
        assert_eq!(status, 200);
        assert_eq!(answer["flow_complete"], false);
    }
    let (_, answer) = site.post("/agent/flows/talk/step/end", "{}", &h).await;
    assert_eq!(answer["flow_complete"], true);
}
