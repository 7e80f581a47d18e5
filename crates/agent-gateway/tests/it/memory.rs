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

/// Whether a mock request is an extraction call.
fn is_extraction(request: &mock_llm::RecordedRequest) -> bool {
    request.body["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("long-term memory of a user"))
}

async fn memories_of(
    gateway: &Gateway,
    agent: &str,
    user: &str,
) -> Vec<agent_gateway::store::MemoryRecord> {
    let query = agent_gateway::MemoryQuery {
        owner: agent_gateway::MemoryOwner::User(user.into()),
        limit: 100,
        ..Default::default()
    };
    gateway
        .memories()
        .list(&Actor::system(), agent, &query)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn extraction_saves_validated_facts_once_and_is_debounced() {
    let ws = TestWorkspace::new();
    ws.agent(
        "buddy",
        "description: x\nmemory:\n  enabled: true\n  auto_extract: true\n  max_content_chars: 60",
        "x",
    );
    let mock = MockLlm::start().await.unwrap();
    let gateway = gateway(&ws, &mock).await;
    let dana = Actor::user("dana", vec!["agents:invoke".into()]);

    mock.push(Reply::text("Nice to meet you, Dana."));
    mock.push(Reply::text(
        json!([
            {"content": "Dana lives in Lisbon.", "type": "semantic", "importance": 0.8},
            {"content": "dana lives in lisbon", "type": "semantic", "importance": 0.9},
            {"content": "Dana said hello.", "type": "episodic", "importance": 0.1},
            {"content": "x".repeat(61), "type": "semantic", "importance": 0.9},
            {"content": "Dana prefers trains.", "type": "feeling", "importance": 0.5},
            {"content": "   ", "importance": 0.9}
        ])
        .to_string(),
    ));
    let turn = gateway
        .run(
            &dana,
            RunRequest::chat("buddy", "Hi, I'm Dana from Lisbon; I like trains.", None),
        )
        .await
        .unwrap();
    let session = turn.chat.unwrap().session_id;
    let mut saved = Vec::new();
    for _ in 0..100 {
        saved = memories_of(&gateway, "buddy", "dana").await;
        if saved.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut contents: Vec<&str> = saved.iter().map(|m| m.content.as_str()).collect();
    contents.sort();
    assert_eq!(contents, ["Dana lives in Lisbon.", "Dana prefers trains."]);
    assert!(
        saved
            .iter()
            .all(|m| m.source == agent_gateway::store::MemorySource::Extracted)
    );
    let extraction = mock.requests().into_iter().find(is_extraction).unwrap();
    let asked = extraction.body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(asked.contains("user: Hi, I'm Dana"), "{asked}");
    assert!(
        asked.contains("assistant: Nice to meet you, Dana."),
        "{asked}"
    );

    // A second turn within the debounce interval extracts nothing.
    mock.push(Reply::text("Trains are great."));
    gateway
        .run(&dana, RunRequest::chat("buddy", "Indeed.", Some(session)))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        mock.requests().iter().filter(|r| is_extraction(r)).count(),
        1
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn compaction_with_a_failing_model_deletes_nothing_and_with_a_working_one_replaces() {
    let ws = TestWorkspace::new();
    ws.agent("buddy", "description: x\nmemory:\n  enabled: true", "x");
    ws.config(&format!(
        "model:\n  default: {MODEL}\nmemory:\n  compaction:\n    max_memories_per_scope: 3\n    min_age_hours: 0\n    compact_ratio: 0.5"
    ));
    let mock = MockLlm::start().await.unwrap();
    let gateway = gateway(&ws, &mock).await;
    let erin = Actor::user("erin", vec!["agents:invoke".into(), "agents:manage".into()]);
    for fact in [
        "Erin likes tea.",
        "Erin likes green tea.",
        "Erin drinks tea daily.",
        "Erin owns a teapot.",
    ] {
        gateway
            .memories()
            .create(
                &erin,
                "buddy",
                agent_gateway::MemoryCreate {
                    owner: agent_gateway::MemoryOwner::Caller,
                    content: fact.into(),
                    memory_type: Default::default(),
                    importance: 0.4,
                    pinned: false,
                },
            )
            .await
            .unwrap();
    }
    // The model fails (after its retries) or answers nonsense: nothing is deleted.
    mock.push(Reply::error(500, None).times(3));
    assert!(gateway.memories().compact(&erin, "buddy").await.is_err());
    assert_eq!(memories_of(&gateway, "buddy", "erin").await.len(), 4);
    mock.push(Reply::text("I cannot do that."));
    let err = gateway
        .memories()
        .compact(&erin, "buddy")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(memories_of(&gateway, "buddy", "erin").await.len(), 4);

    // A working model: the two lowest-scored are replaced by one summary, at once.
    mock.push(Reply::text(
        r#"[{"content": "Erin loves tea, green tea too.", "importance": 0.6}]"#,
    ));
    let report = gateway.memories().compact(&erin, "buddy").await.unwrap();
    assert_eq!((report.global_compacted, report.user_compacted), (0, 2));
    let kept = memories_of(&gateway, "buddy", "erin").await;
    assert_eq!(kept.len(), 3);
    let summary = kept
        .iter()
        .find(|m| m.source == agent_gateway::store::MemorySource::Compacted)
        .unwrap();
    assert_eq!(summary.content, "Erin loves tea, green tea too.");
    assert_eq!(summary.user_id.as_deref(), Some("erin"));
}

#[tokio::test]
async fn the_0_2_13_example_memory_files_are_injected_and_left_unchanged() {
    // `.ci/run` downloads agents-gateway 0.2.13 from PyPI and points here at its example.
    let Some(example) = test_services::service_url(
        "AGW_0213_EXAMPLE_WORKSPACE",
        "the agents-gateway 0.2.13 example workspace",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("workspace");
    test_services::copy_tree(std::path::Path::new(&example), &ws, &[]).unwrap();
    let memory_file = ws.join("agents/travel-planner/MEMORY.md");
    let original = std::fs::read(&memory_file).unwrap();
    let mock = MockLlm::start().await.unwrap();
    let gateway = Gateway::builder(&ws)
        .env(mock_env(&mock))
        .background(false)
        // Its agents name Gemini models; the mock answers for them all.
        .model(MODEL)
        .configure(|config| {
            config.persistence.enabled = false;
            config.scheduler.enabled = false;
            config.scheduler.distributed_lock.enabled = false;
            config.memory.backend = agent_gateway::workspace::config::MemoryBackend::Files;
        })
        .build()
        .await
        .unwrap();
    mock.push(Reply::text("Thailand it is."));
    let input =
        json!({"destination": "Bangkok", "origin": "Lisbon", "departure_date": "2027-01-10"});
    gateway
        .run(
            &Actor::system(),
            RunRequest::invoke("travel-planner", "Plan my beach trip.")
                .input(input.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    let prompt = system_prompt(&mock, 0);
    assert!(
        prompt.contains("- [semantic] The user prefers beach destinations in Southeast Asia."),
        "{prompt}"
    );
    assert!(
        prompt.contains("- [episodic] The user is traveling to Thailand tomorrow"),
        "{prompt}"
    );
    // The run counted its accesses (kept beside the file), and the file is as 0.2.13 wrote it.
    let listed = gateway
        .memories()
        .list(
            &Actor::system(),
            "travel-planner",
            &agent_gateway::MemoryQuery {
                owner: agent_gateway::MemoryOwner::Shared,
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.1, 13);
    assert!(listed.0.iter().any(|m| m.access_count == 1));
    assert_eq!(std::fs::read(&memory_file).unwrap(), original);
}

#[tokio::test]
async fn with_an_embedding_model_recall_finds_memories_by_similarity() {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nmemory:\n  embedding_model: openai/text-embedding-3-small"
    ));
    ws.agent("buddy", "description: x\nmemory:\n  enabled: true", "x");
    let mock = MockLlm::start().await.unwrap();
    let gateway = gateway(&ws, &mock).await;
    let fay = Actor::user("fay", vec!["agents:invoke".into()]);
    for fact in [
        "Fay's cat sleeps all day.",
        "Fay works night shifts at the hospital.",
    ] {
        gateway
            .memories()
            .create(
                &fay,
                "buddy",
                agent_gateway::MemoryCreate {
                    owner: agent_gateway::MemoryOwner::Caller,
                    content: fact.into(),
                    memory_type: Default::default(),
                    importance: 0.5,
                    pinned: false,
                },
            )
            .await
            .unwrap();
    }
    // Each memory was embedded through the provider's endpoint when saved.
    let embedded = mock
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/embeddings")
        .count();
    assert_eq!(embedded, 2);
    mock.clear_requests();
    mock.push(Reply::tool_call(
        "memory_recall",
        json!({"query": "hospital shifts"}),
    ));
    mock.push(Reply::text("ok"));
    gateway
        .run(&fay, RunRequest::invoke("buddy", "When do I work?"))
        .await
        .unwrap();
    let recalled = last_tool_result(&mock);
    assert_eq!(
        recalled[0]["content"], "Fay works night shifts at the hospital.",
        "{recalled}"
    );
    // The query and the run's input were embedded too.
    assert!(
        mock.requests()
            .iter()
            .filter(|r| r.path == "/v1/embeddings")
            .count()
            >= 2
    );
}

#[tokio::test]
async fn a_save_past_the_compaction_limit_compacts_the_scope() {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nmemory:\n  compaction:\n    max_memories_per_scope: 2\n    min_age_hours: 0\n    compact_ratio: 1.0"
    ));
    ws.agent("buddy", "description: x\nmemory:\n  enabled: true", "x");
    let mock = MockLlm::start().await.unwrap();
    let gateway = gateway(&ws, &mock).await;
    let gus = Actor::user("gus", vec!["agents:invoke".into()]);
    for fact in ["Gus likes jazz.", "Gus plays the piano."] {
        gateway
            .memories()
            .create(
                &gus,
                "buddy",
                agent_gateway::MemoryCreate {
                    owner: agent_gateway::MemoryOwner::Caller,
                    content: fact.into(),
                    memory_type: Default::default(),
                    importance: 0.3,
                    pinned: false,
                },
            )
            .await
            .unwrap();
    }
    assert!(mock.requests().is_empty(), "at the limit: no compaction");
    mock.push(Reply::tool_call(
        "memory_save",
        json!({"content": "Gus plays jazz piano on Fridays.", "importance": 0.3}),
    ));
    mock.push(Reply::text(
        r#"[{"content": "Gus loves jazz and plays jazz piano on Fridays.", "importance": 0.5}]"#,
    ));
    mock.push(Reply::text("Saved."));
    let result = gateway
        .run(
            &gus,
            RunRequest::invoke("buddy", "I play jazz piano on Fridays."),
        )
        .await
        .unwrap();
    assert_eq!(result.answer.raw_text, "Saved.");
    let kept = memories_of(&gateway, "buddy", "gus").await;
    let contents: Vec<&str> = kept.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        contents,
        ["Gus loves jazz and plays jazz piano on Fridays."]
    );
}
