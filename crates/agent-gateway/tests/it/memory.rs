//! Agents' memory through the one run pipeline: saved by the tools in a user's scope,
//! injected into every later run of that user (chat in another session, invoke), never into
//! another user's, and out of reach of another user's `memory_forget`.

use agent_gateway::prelude::*;
use mock_llm::{MockLlm, Reply};
use serde_json::{Value, json};

use crate::support::*;

/// The system prompt of the mock's `n`-th request.
fn system_prompt(mock: &MockLlm, n: usize) -> String {
    mock.requests()[n].body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The last tool result the mock was sent, parsed.
fn last_tool_result(mock: &MockLlm) -> Value {
    let requests = mock.requests();
    let messages = requests.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .clone();
    let result = messages.iter().rev().find(|m| m["role"] == "tool").unwrap();
    serde_json::from_str(result["content"].as_str().unwrap()).unwrap()
}

async fn gateway(ws: &TestWorkspace, mock: &MockLlm) -> Gateway {
    Gateway::builder(ws.path())
        .env(mock_env(mock))
        .reload(true)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_users_memory_reaches_their_later_runs_and_nobody_elses() {
    let ws = TestWorkspace::new();
    ws.agent(
        "buddy",
        "description: remembers\nmemory:\n  enabled: true",
        "Be a friend.",
    );
    let mock = MockLlm::start().await.unwrap();
    let gateway = gateway(&ws, &mock).await;
    let alice = Actor::user("alice", vec!["agents:invoke".into()]);
    let bob = Actor::user("bob", vec!["agents:invoke".into()]);

    // Alice's first chat: the model saves a fact.
    mock.push(Reply::tool_call(
        "memory_save",
        json!({"content": "Alice's dog is called Rex.", "importance": 0.7}),
    ));
    mock.push(Reply::text("Noted."));
    let first = gateway
        .run(&alice, RunRequest::chat("buddy", "My dog is Rex.", None))
        .await
        .unwrap();
    assert_eq!(first.answer.raw_text, "Noted.");
    let saved = last_tool_result(&mock);
    assert_eq!(saved["status"], "saved", "{saved}");
    let memory_id = saved["id"].as_str().unwrap().to_string();
    let first_request = &mock.requests()[0];
    let offered: Vec<&str> = first_request.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(
        ["memory_save", "memory_recall", "memory_forget"]
            .iter()
            .all(|t| offered.contains(t)),
        "{offered:?}"
    );

    // Another session of Alice's sees it, fenced as data; so does an invocation of hers.
    mock.clear_requests();
    gateway
        .run(
            &alice,
            RunRequest::chat("buddy", "What is my dog called?", None),
        )
        .await
        .unwrap();
    let prompt = system_prompt(&mock, 0);
    assert!(prompt.contains("<memory-data>"), "{prompt}");
    assert!(
        prompt.contains("- [semantic] Alice's dog is called Rex."),
        "{prompt}"
    );
    mock.clear_requests();
    gateway
        .run(
            &alice,
            RunRequest::invoke("buddy", "Plan a walk for my dog."),
        )
        .await
        .unwrap();
    assert!(system_prompt(&mock, 0).contains("Rex"));

    // Bob's runs never see it, and his forget cannot reach it.
    mock.clear_requests();
    mock.push(Reply::tool_call(
        "memory_forget",
        json!({"memory_id": memory_id}),
    ));
    mock.push(Reply::text("Done."));
    gateway
        .run(&bob, RunRequest::chat("buddy", "Forget everything.", None))
        .await
        .unwrap();
    assert!(!system_prompt(&mock, 0).contains("Rex"));
    assert_eq!(last_tool_result(&mock)["deleted"], false);

    // Recall finds it for Alice, and her forget removes it.
    mock.clear_requests();
    mock.push(Reply::tool_call(
        "memory_recall",
        json!({"query": "dog name"}),
    ));
    mock.push(Reply::tool_call(
        "memory_forget",
        json!({"memory_id": memory_id}),
    ));
    mock.push(Reply::text("Forgotten."));
    gateway
        .run(&alice, RunRequest::invoke("buddy", "Forget my dog."))
        .await
        .unwrap();
    let requests = mock.requests();
    let recalled: Value = {
        let messages = requests[1].body["messages"].as_array().unwrap();
        let result = messages.iter().rev().find(|m| m["role"] == "tool").unwrap();
        serde_json::from_str(result["content"].as_str().unwrap()).unwrap()
    };
    assert_eq!(recalled[0]["id"], memory_id.as_str(), "{recalled}");
    assert_eq!(recalled[0]["scope"], "user");
    assert_eq!(last_tool_result(&mock)["deleted"], true);
    mock.clear_requests();
    gateway
        .run(
            &alice,
            RunRequest::invoke("buddy", "Anything about my dog?"),
        )
        .await
        .unwrap();
    assert!(!system_prompt(&mock, 0).contains("Rex"));
}

#[tokio::test]
async fn without_a_user_the_tools_write_shared_knowledge_only_when_the_agent_allows_it() {
    let ws = TestWorkspace::new();
    ws.agent("closed", "description: x\nmemory:\n  enabled: true", "x");
    ws.agent(
        "open",
        "description: x\nmemory:\n  enabled: true\n  shared_writes: true",
        "x",
    );
    let mock = MockLlm::start().await.unwrap();
    let gateway = gateway(&ws, &mock).await;
    let nobody = Actor::system();

    mock.push(Reply::tool_call(
        "memory_save",
        json!({"content": "Shared fact."}),
    ));
    mock.push(Reply::text("ok"));
    gateway
        .run(&nobody, RunRequest::invoke("closed", "remember"))
        .await
        .unwrap();
    let refused = mock.requests().last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(refused.contains("shared_writes"), "{refused}");

    mock.push(Reply::tool_call(
        "memory_save",
        json!({"content": "Shared fact."}),
    ));
    mock.push(Reply::text("ok"));
    gateway
        .run(&nobody, RunRequest::invoke("open", "remember"))
        .await
        .unwrap();
    assert_eq!(last_tool_result(&mock)["status"], "saved");

    // Shared knowledge reaches every user's runs, under its own heading.
    mock.clear_requests();
    let carol = Actor::user("carol", vec!["agents:invoke".into()]);
    gateway
        .run(&carol, RunRequest::invoke("open", "hello"))
        .await
        .unwrap();
    let prompt = system_prompt(&mock, 0);
    assert!(
        prompt.contains("### Agent Knowledge\n- [semantic] Shared fact."),
        "{prompt}"
    );
    // An agent without memory gets neither the tools nor a memory block.
    ws.agent("plain", "description: x", "x");
    gateway.reload().await.unwrap();
    mock.clear_requests();
    gateway
        .run(&carol, RunRequest::invoke("plain", "hello"))
        .await
        .unwrap();
    assert!(
        mock.requests()[0]
            .body
            .get("tools")
            .is_none_or(|t| { !t.to_string().contains("memory_save") })
    );
    assert!(!system_prompt(&mock, 0).contains("memory-data"));
}
