//! Chat sessions are the store's: two live instances on one database answer the same session
//! in turn with the whole history, list the same sessions, and a session ended on one is gone
//! on the other.

use agent_gateway::Gateway;
use mock_llm::{MockLlm, Reply};
use serde_json::{Value, json};

use crate::support::*;

/// The (role, content) pairs a model request carried.
fn conversation(request: &Value) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_answer_one_session_in_turn_with_the_whole_history() {
    if std::env::var("AGW_TEST_PERSISTENCE").as_deref() == Ok("memory") {
        eprintln!("note: instances cannot share an in-memory store; skipped");
        return;
    }
    let ws = TestWorkspace::new();
    ws.agent("buddy", "description: chatty", "Chat.");
    let mock = MockLlm::start().await.unwrap();
    let one = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    let two = TestServer::start(Gateway::builder(ws.path()).env(mock_env(&mock))).await;
    for reply in ["first answer", "second answer", "third answer"] {
        mock.push(Reply::text(reply));
    }

    let (status, first) = one
        .post("/v1/agents/buddy/chat", json!({"message": "turn one"}))
        .await;
    assert_eq!(status, 200, "{first}");
    let session = first["session_id"].as_str().unwrap().to_string();
    let (status, second) = two
        .post(
            "/v1/agents/buddy/chat",
            json!({"message": "turn two", "session_id": session}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["turn_count"], 2);
    // Back on the first instance, whose cached copy has not seen turn two.
    let (status, third) = one
        .post(
            "/v1/agents/buddy/chat",
            json!({"message": "turn three", "session_id": session}),
        )
        .await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["turn_count"], 3);

    let requests = mock.requests();
    let history = |i: usize| conversation(&requests[i].body)[1..].to_vec();
    let pair = |role: &str, text: &str| (role.to_string(), text.to_string());
    assert_eq!(
        history(1),
        vec![
            pair("user", "turn one"),
            pair("assistant", "first answer"),
            pair("user", "turn two")
        ]
    );
    assert_eq!(
        history(2),
        vec![
            pair("user", "turn one"),
            pair("assistant", "first answer"),
            pair("user", "turn two"),
            pair("assistant", "second answer"),
            pair("user", "turn three")
        ],
        "the first instance sent the turn the second one answered"
    );

    // Both list the session, as the store holds it.
    for server in [&one, &two] {
        let (status, list) = server.get("/v1/sessions?agent_id=buddy").await;
        assert_eq!(status, 200, "{list}");
        let listed = list.as_array().unwrap();
        assert_eq!(listed.len(), 1, "{list}");
        assert_eq!(listed[0]["session_id"], session);
        assert_eq!(listed[0]["turn_count"], 3);
        assert_eq!(listed[0]["message_count"], 6);
    }

    // Ended on one instance, gone on the other.
    let (status, _) = two.delete(&format!("/v1/sessions/{session}")).await;
    assert_eq!(status, 200);
    let (status, body) = one
        .post(
            "/v1/agents/buddy/chat",
            json!({"message": "still there?", "session_id": session}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (404, "session_not_found"));
    let (status, _) = one.get(&format!("/v1/sessions/{session}")).await;
    assert_eq!(status, 404);
    let (_, list) = one.get("/v1/sessions").await;
    assert_eq!(list, json!([]));
    assert_eq!(
        mock.requests().len(),
        3,
        "no model call for an ended session"
    );
}

#[tokio::test]
async fn a_session_lists_before_and_after_its_first_turn_completes() {
    let ws = TestWorkspace::new();
    ws.agent("buddy", "description: chatty", "Chat.");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::error(400, Some("model down")));
    let (status, failed) = server
        .post("/v1/agents/buddy/chat", json!({"message": "hello?"}))
        .await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["status"], "failed");
    let session = failed["session_id"].as_str().unwrap().to_string();
    // Nothing was stored yet: the session is known here, not listed as resumable.
    let (status, info) = server.get(&format!("/v1/sessions/{session}")).await;
    assert_eq!((status, info["turn_count"].clone()), (200, json!(0)));
    let (_, list) = server.get("/v1/sessions").await;
    assert_eq!(list, json!([]));

    mock.push(Reply::text("here now"));
    let (status, again) = server
        .post(
            "/v1/agents/buddy/chat",
            json!({"message": "hello again", "session_id": session}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["turn_count"], 1);
    let (_, list) = server.get("/v1/sessions").await;
    assert_eq!(list[0]["session_id"], session);
    assert_eq!(list[0]["message_count"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_turns_on_one_session_take_turns_even_when_it_is_not_cached() {
    let ws = TestWorkspace::new();
    // One cached session at most: opening a second pushes the first out of the cache.
    ws.config(&format!(
        "model:\n  default: {MODEL}\nsessions:\n  max_sessions: 1\n"
    ));
    ws.agent("buddy", "description: chatty", "Chat.");
    let (mock, server) = start(&ws).await;
    mock.push(Reply::text("hello"));
    mock.push(Reply::text("other session"));
    let (_, first) = server
        .post("/v1/agents/buddy/chat", json!({"message": "start"}))
        .await;
    let session = first["session_id"].as_str().unwrap().to_string();
    let (status, _) = server
        .post("/v1/agents/buddy/chat", json!({"message": "another"}))
        .await;
    assert_eq!(status, 200);

    mock.push(Reply::text("answer A").with_delay(300));
    mock.push(Reply::text("answer B").with_delay(300));
    let turn = |message: &'static str| {
        server.post(
            "/v1/agents/buddy/chat",
            json!({"message": message, "session_id": session}),
        )
    };
    let ((status_a, a), (status_b, b)) = tokio::join!(turn("turn A"), turn("turn B"));
    assert_eq!((status_a, status_b), (200, 200), "{a} {b}");
    let mut counts = vec![a["turn_count"].as_u64(), b["turn_count"].as_u64()];
    counts.sort_unstable();
    assert_eq!(counts, vec![Some(2), Some(3)], "one turn after the other");
    // Whichever ran second saw the first one's turn.
    let requests = mock.requests();
    let second = conversation(&requests[3].body);
    let earlier: Vec<&str> = second.iter().map(|(_, text)| text.as_str()).collect();
    assert!(
        (earlier.contains(&"turn A") && earlier.contains(&"answer A"))
            || (earlier.contains(&"turn B") && earlier.contains(&"answer B")),
        "the second turn's history holds the first: {earlier:?}"
    );
    assert!(earlier.contains(&"start") && earlier.contains(&"hello"));
}
