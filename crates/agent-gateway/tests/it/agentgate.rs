//! The gateway speaking agentgate both ways: publishing its agents, and calling sites.

use std::sync::Arc;

use agentgate::client::AgentClient;
use mock_llm::Reply;
use serde_json::json;

use crate::support::*;

#[path = "../../../agentgate/examples/shared/foodpanda.rs"]
#[allow(dead_code)]
mod foodpanda;

#[tokio::test]
async fn the_gateway_publishes_its_agents_as_intents_and_chat_flows() {
    let ws = TestWorkspace::new();
    ws.agent(
        "planner",
        "description: Plans trips\ninput_schema:\n  type: object\n  required: [city]\n  properties:\n    city: {type: string}",
        "Plan.",
    );
    ws.agent("retired", "enabled: false", "Gone.");
    let (mock, server) = start(&ws).await;
    let site = AgentClient::builder()
        .build()
        .unwrap()
        .discover(&server.url)
        .await
        .unwrap();
    assert_eq!(
        site.intents(),
        vec!["planner"],
        "disabled agents are not published"
    );
    assert_eq!(site.flows(), vec!["chat_planner"]);
    let intent = site.manifest().intent("planner").unwrap();
    assert_eq!(intent.description, "Plans trips");
    assert_eq!(intent.input_schema["required"], json!(["message", "city"]));
    assert_eq!(intent.input_schema["properties"]["city"]["type"], "string");

    mock.push(Reply::text("Go to Rome."));
    let result = site
        .call_intent("planner", json!({"message": "Where to?", "city": "Rome"}))
        .await
        .unwrap();
    assert_eq!(result["status"], "completed");
    assert_eq!(result["raw_text"], "Go to Rome.");
    let sent = mock.requests()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sent.starts_with("Where to?\n\n## Input"), "{sent}");
    let err = site
        .call_intent("planner", json!({"message": "no city"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_input"), "{err}");

    mock.push(Reply::text("Hi! Where shall we go?"));
    mock.push(Reply::text("Rome is lovely."));
    let mut chat = site.flow("chat_planner").unwrap().start().await.unwrap();
    let first = chat
        .step("begin", json!({"message": "Hello", "city": "Rome"}))
        .await
        .unwrap();
    assert_eq!(first["reply"], "Hi! Where shall we go?");
    assert_eq!(
        chat.allowed_next_steps(),
        ["say".to_string(), "end".to_string()]
    );
    let second = chat
        .step("say", json!({"message": "Rome?", "city": "Rome"}))
        .await
        .unwrap();
    assert_eq!(second["turn_count"], 2);
    let history = mock.requests().last().unwrap().body["messages"].clone();
    assert!(
        history.to_string().contains("Hi! Where shall we go?"),
        "the flow keeps one conversation"
    );
    chat.step("end", json!({})).await.unwrap();
    assert!(chat.is_complete());
}

#[tokio::test]
async fn agents_call_the_sites_they_list() {
    let food = foodpanda::app(Arc::new(agentgate::server::MemorySessionStore::default())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, food.mount(axum::Router::new())).await });

    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\n{ALLOW_LOOPBACK}sites:\n  \"{url}\":\n    api_key: demo-key\n"
    ));
    ws.agent(
        "shopper",
        &format!("description: Orders food\nsites:\n  - {url}"),
        "Order food.",
    );
    ws.agent("bystander", "description: no sites", "Nothing.");
    let (mock, server) = start(&ws).await;

    let (_, tools) = server.get("/v1/tools").await;
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "foodpanda__search_restaurants",
        "foodpanda__order_food__start",
        "foodpanda__order_food__step",
        "foodpanda__track_delivery__initiate",
        "foodpanda__track_delivery__get_status",
    ] {
        assert!(names.contains(&expected), "missing {expected} in {names:?}");
    }
    let search = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "foodpanda__search_restaurants")
        .unwrap();
    assert_eq!(search["source"], "site");
    let (_, shopper) = server.get("/v1/agents/shopper").await;
    assert!(shopper["tools"].as_array().unwrap().len() >= 5);
    let (_, bystander) = server.get("/v1/agents/bystander").await;
    assert_eq!(
        bystander["tools"],
        json!(["delegate_to_agent"]),
        "only agents listing the site get its tools"
    );

    mock.push(Reply::tool_call(
        "foodpanda__search_restaurants",
        json!({"query": "pizza", "location": "Berlin"}),
    ));
    mock.push(Reply::tool_call("foodpanda__order_food__start", json!({})));
    mock.push(Reply::text("Pizza Palace it is."));
    let (status, body) = server
        .post(
            "/v1/agents/shopper/invoke",
            json!({"message": "Find pizza"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let requests = mock.requests();
    let result = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        result.contains("Pizza Palace") && result.contains("Burger Barn"),
        "{result}"
    );
    let started: serde_json::Value = serde_json::from_str(
        requests[2].body["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["content"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let session_id = started["session_id"].as_str().unwrap().to_string();
    assert_eq!(started["allowed_next_steps"], json!(["search"]));

    mock.push(Reply::tool_call(
        "foodpanda__order_food__step",
        json!({"session_id": session_id, "step": "search", "arguments": {"query": "pizza", "location": "Berlin"}}),
    ));
    mock.push(Reply::text("Searching done."));
    server
        .post("/v1/agents/shopper/invoke", json!({"message": "continue"}))
        .await;
    let last = mock.requests();
    let stepped: serde_json::Value = serde_json::from_str(
        last[last.len() - 1].body["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["content"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        stepped["allowed_next_steps"],
        json!(["select_restaurant"]),
        "{stepped}"
    );
    assert_eq!(stepped["result"][0]["name"], "Pizza Palace");
}

#[tokio::test]
async fn an_unreachable_site_is_a_warning_not_a_failure() {
    let ws = TestWorkspace::new();
    ws.agent("shopper", "sites:\n  - http://127.0.0.1:1", "Shop.");
    let (_mock, server) = start(&ws).await;
    let warnings = server.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("http://127.0.0.1:1") && w.contains("unavailable")),
        "{warnings:?}"
    );
    let (status, _) = server.get("/v1/health").await;
    assert_eq!(status, 200);
}
