//! The memory API over HTTP with auth on: who may list, read, change and delete which
//! memories (users their own and, read-only, the shared knowledge; admins everything), the
//! error answers, filters and pages, and compaction through `POST .../memory/compact` with a
//! working, a failing and a nonsensical model.

use mock_llm::Reply;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const USER_SCOPES: &str = "[agents:read, agents:invoke]";

/// `buddy` and `pal` remember, `plain` does not; keys: `root` (admin), `alice` and `bob` (users),
/// `carol` (a user who may compact), `reader` (read only). The memory listing of `pal` is a
/// public path, so a caller without identity reaches the operation.
fn workspace() -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nproviders:\n  openai:\n    max_retries: 0\nauth:\n  api_keys:\n    - {{name: root, key: root-key}}\n    - {{name: alice, key: alice-key, scopes: {USER_SCOPES}}}\n    - {{name: bob, key: bob-key, scopes: {USER_SCOPES}}}\n    - {{name: carol, key: carol-key, scopes: [agents:read, agents:invoke, agents:manage]}}\n    - {{name: reader, key: reader-key, scopes: [agents:read]}}\n    - {{name: narrow, key: narrow-key, scopes: [agents:read, \"agents:invoke:buddy\"]}}\n  public_paths: [/v1/health, /v1/agents/pal/memories]\nmemory:\n  compaction:\n    max_memories_per_scope: 3\n    min_age_hours: 0\n"
    ));
    ws.agent(
        "buddy",
        "description: remembers\nmemory:\n  enabled: true",
        "Be a friend.",
    );
    ws.agent(
        "pal",
        "description: remembers too\nmemory:\n  enabled: true",
        "Be a pal.",
    );
    ws.agent("plain", "description: forgets", "Help.");
    ws
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

async fn get(server: &TestServer, path: &str, key: &str) -> (u16, Value) {
    send(server, Method::GET, path, Some(key), None).await
}

/// Creates a memory of `buddy` as `key`; its id.
async fn create(server: &TestServer, key: &str, body: Value) -> String {
    let (status, memory) = send(
        server,
        Method::POST,
        "/v1/agents/buddy/memories",
        Some(key),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{memory}");
    memory["id"].as_str().unwrap().to_string()
}

fn memory_path(id: &str) -> String {
    format!("/v1/agents/buddy/memories/{id}")
}

/// The ids of a listing's page.
fn ids(page: &Value) -> Vec<String> {
    page["memories"]
        .as_array()
        .unwrap_or_else(|| panic!("no memories in {page}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn users_reach_their_own_memories_and_read_the_shared_knowledge_admins_reach_all() {
    let ws = workspace();
    let (_mock, server) = start(&ws).await;

    // Alice and Bob save memories of their own.
    let (status, alices) = send(
        &server,
        Method::POST,
        "/v1/agents/buddy/memories",
        Some("alice-key"),
        Some(json!({"content": "Alice likes tea.\nGreen, mostly."})),
    )
    .await;
    assert_eq!(status, 201, "{alices}");
    assert_eq!(alices["user_id"], "alice");
    assert_eq!(alices["agent_id"], "buddy");
    assert_eq!(alices["content"], "Alice likes tea.\nGreen, mostly.");
    assert_eq!(alices["memory_type"], "semantic");
    assert_eq!(alices["source"], "api");
    assert_eq!(alices["importance"], 0.5);
    assert_eq!(alices["pinned"], false);
    let alice_id = alices["id"].as_str().unwrap().to_string();
    let bob_id = create(
        &server,
        "bob-key",
        json!({"content": "Bob likes coffee.", "memory_type": "episodic", "importance": 0.2}),
    )
    .await;

    // Alice lists, reads, edits and (later) deletes her own.
    let (status, page) = get(&server, "/v1/agents/buddy/memories", "alice-key").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), [alice_id.as_str()]);
    assert_eq!(
        (
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (json!(1), json!(50), json!(0))
    );
    let (status, mine) = get(&server, "/v1/agents/buddy/memories?user=alice", "alice-key").await;
    assert_eq!((status, ids(&mine)), (200, vec![alice_id.clone()]));
    let (status, read) = get(&server, &memory_path(&alice_id), "alice-key").await;
    assert_eq!(
        (status, read["content"].clone()),
        (200, alices["content"].clone())
    );
    let (status, edited) = send(
        &server,
        Method::PATCH,
        &memory_path(&alice_id),
        Some("alice-key"),
        Some(json!({"importance": 0.9, "pinned": true, "memory_type": "procedural"})),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["importance"], 0.9);
    assert_eq!(edited["pinned"], true);
    assert_eq!(edited["memory_type"], "procedural");
    assert_eq!(edited["content"], alices["content"], "absent fields stay");

    // Bob's memory is out of Alice's reach, and she cannot write into his scope.
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"content": "Bob hates coffee."}))),
        (Method::DELETE, None),
    ] {
        let (status, answer) = send(
            &server,
            method.clone(),
            &memory_path(&bob_id),
            Some("alice-key"),
            body,
        )
        .await;
        assert_eq!(status, 403, "{method} bob's memory: {answer}");
        assert_eq!(error_code(&answer), "forbidden");
    }
    let (status, answer) = get(&server, "/v1/agents/buddy/memories?user=bob", "alice-key").await;
    assert_eq!(
        (status, error_code(&answer)),
        (403, "forbidden"),
        "{answer}"
    );
    let (status, answer) = send(
        &server,
        Method::POST,
        "/v1/agents/buddy/memories",
        Some("alice-key"),
        Some(json!({"content": "Bob is late.", "user_id": "bob"})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (403, "forbidden"),
        "{answer}"
    );
    let (_, bobs) = get(&server, &memory_path(&bob_id), "bob-key").await;
    assert_eq!(bobs["content"], "Bob likes coffee.", "unchanged");

    // The shared knowledge: written by admins, read by users, changed by no user.
    let (status, shared) = send(
        &server,
        Method::POST,
        "/v1/agents/buddy/memories",
        Some("root-key"),
        Some(json!({"content": "The office opens at nine.", "shared": true, "pinned": true})),
    )
    .await;
    assert_eq!(status, 201, "{shared}");
    assert_eq!(shared["user_id"], Value::Null);
    let shared_id = shared["id"].as_str().unwrap().to_string();
    let (status, page) = get(
        &server,
        "/v1/agents/buddy/memories?scope=shared",
        "alice-key",
    )
    .await;
    assert_eq!(
        (status, ids(&page)),
        (200, vec![shared_id.clone()]),
        "{page}"
    );
    let (status, read) = get(&server, &memory_path(&shared_id), "alice-key").await;
    assert_eq!(
        (status, read["content"].clone()),
        (200, json!("The office opens at nine."))
    );
    for (method, path, body) in [
        (
            Method::PATCH,
            memory_path(&shared_id),
            Some(json!({"pinned": false})),
        ),
        (Method::DELETE, memory_path(&shared_id), None),
        (
            Method::POST,
            "/v1/agents/buddy/memories".to_string(),
            Some(json!({"content": "Free lunch on Fridays.", "shared": true})),
        ),
    ] {
        let (status, answer) = send(&server, method.clone(), &path, Some("alice-key"), body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_eq!(error_code(&answer), "forbidden");
    }
    // A user's own listing holds only their scope, not the shared knowledge.
    let (_, page) = get(&server, "/v1/agents/buddy/memories", "bob-key").await;
    assert_eq!(ids(&page), [bob_id.as_str()]);

    // An admin lists each user's, reads, edits and deletes anyone's, and writes for a user.
    let (_, page) = get(&server, "/v1/agents/buddy/memories?user=alice", "root-key").await;
    assert_eq!(ids(&page), [alice_id.as_str()]);
    let (_, page) = get(&server, "/v1/agents/buddy/memories?user=bob", "root-key").await;
    assert_eq!(ids(&page), [bob_id.as_str()]);
    // ... or every scope at once; a user may not.
    let (_, page) = get(&server, "/v1/agents/buddy/memories?scope=all", "root-key").await;
    for id in [&alice_id, &bob_id, &shared_id] {
        assert!(ids(&page).contains(id), "{page}");
    }
    let (status, answer) = get(&server, "/v1/agents/buddy/memories?scope=all", "alice-key").await;
    assert_eq!(
        (status, error_code(&answer)),
        (403, "forbidden"),
        "{answer}"
    );
    let (status, _) = get(&server, &memory_path(&bob_id), "root-key").await;
    assert_eq!(status, 200);
    let (status, edited) = send(
        &server,
        Method::PATCH,
        &memory_path(&bob_id),
        Some("root-key"),
        Some(json!({"content": "Bob likes espresso."})),
    )
    .await;
    assert_eq!(
        (status, edited["content"].clone()),
        (200, json!("Bob likes espresso."))
    );
    assert_eq!(edited["user_id"], "bob", "the owner stays");
    let (status, edited) = send(
        &server,
        Method::PATCH,
        &memory_path(&shared_id),
        Some("root-key"),
        Some(json!({"content": "The office opens at eight."})),
    )
    .await;
    assert_eq!(
        (status, edited["content"].clone()),
        (200, json!("The office opens at eight."))
    );
    let for_alice = create(
        &server,
        "root-key",
        json!({"content": "Alice's birthday is in May.", "user_id": "alice"}),
    )
    .await;
    let (_, page) = get(&server, "/v1/agents/buddy/memories", "alice-key").await;
    let mut listed = ids(&page);
    listed.sort();
    let mut expected = vec![alice_id.clone(), for_alice.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    let (status, body) = send(
        &server,
        Method::DELETE,
        &memory_path(&bob_id),
        Some("root-key"),
        None,
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, answer) = get(&server, &memory_path(&bob_id), "bob-key").await;
    assert_eq!((status, error_code(&answer)), (404, "memory_not_found"));

    // Alice deletes her own.
    let (status, _) = send(
        &server,
        Method::DELETE,
        &memory_path(&alice_id),
        Some("alice-key"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, page) = get(&server, "/v1/agents/buddy/memories", "alice-key").await;
    assert_eq!(ids(&page), [for_alice]);

    // Scopes: reading needs agents:read, writing agents:invoke.
    let (status, _) = get(&server, "/v1/agents/buddy/memories", "reader-key").await;
    assert_eq!(status, 200);
    let (status, answer) = send(
        &server,
        Method::POST,
        "/v1/agents/buddy/memories",
        Some("reader-key"),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!((status, error_code(&answer)), (403, "insufficient_scope"));
    // A key that may run only this agent may keep its memories (agents:invoke:<agent>).
    let (status, answer) = send(
        &server,
        Method::POST,
        "/v1/agents/buddy/memories",
        Some("narrow-key"),
        Some(json!({"content": "Narrow keeps notes."})),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = send(
        &server,
        Method::POST,
        "/v1/agents/plain/memories",
        Some("narrow-key"),
        Some(json!({"content": "Not for plain."})),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (403, "insufficient_scope"),
        "{answer}"
    );

    // A caller without a user id (a public path, no credential) has no memories of its own
    // and may not read the shared knowledge either.
    for path in [
        "/v1/agents/pal/memories",
        "/v1/agents/pal/memories?scope=shared",
    ] {
        let (status, answer) = send(&server, Method::GET, path, None, None).await;
        assert_eq!(status, 401, "{path}: {answer}");
        assert_eq!(error_code(&answer), "auth_required");
    }
    let (status, answer) = send(
        &server,
        Method::GET,
        "/v1/agents/pal/memories?user=bob",
        None,
        None,
    )
    .await;
    assert_eq!((status, error_code(&answer)), (403, "forbidden"));
    let (status, answer) = send(
        &server,
        Method::GET,
        "/v1/agents/buddy/memories",
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (401, "auth_required"),
        "not public"
    );
}

#[tokio::test]
async fn unknown_records_agents_without_memory_and_bad_requests_get_the_one_error_shape() {
    let ws = workspace();
    let (_mock, server) = start(&ws).await;
    let id = create(&server, "alice-key", json!({"content": "Alice is tall."})).await;

    // Unknown memory, unknown agent.
    for method in [Method::GET, Method::DELETE] {
        let (status, answer) = send(
            &server,
            method.clone(),
            &memory_path("0123456789ab"),
            Some("alice-key"),
            None,
        )
        .await;
        assert_eq!(
            (status, error_code(&answer)),
            (404, "memory_not_found"),
            "{method}"
        );
    }
    let (status, answer) = send(
        &server,
        Method::PATCH,
        &memory_path("0123456789ab"),
        Some("alice-key"),
        Some(json!({"pinned": true})),
    )
    .await;
    assert_eq!((status, error_code(&answer)), (404, "memory_not_found"));
    for (method, path, body) in [
        (Method::GET, "/v1/agents/ghost/memories".to_string(), None),
        (Method::GET, format!("/v1/agents/ghost/memories/{id}"), None),
        (
            Method::POST,
            "/v1/agents/ghost/memories".to_string(),
            Some(json!({"content": "x"})),
        ),
        (
            Method::DELETE,
            format!("/v1/agents/ghost/memories/{id}"),
            None,
        ),
        (
            Method::POST,
            "/v1/agents/ghost/memory/compact".to_string(),
            None,
        ),
    ] {
        let (status, answer) = send(&server, method.clone(), &path, Some("root-key"), body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(error_code(&answer), "agent_not_found");
    }
    // A memory of one agent is not found under another.
    let (status, answer) = get(
        &server,
        &format!("/v1/agents/pal/memories/{id}"),
        "alice-key",
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (404, "memory_not_found"),
        "{answer}"
    );

    // An agent without memory.
    for (method, path, body) in [
        (Method::GET, "/v1/agents/plain/memories".to_string(), None),
        (
            Method::POST,
            "/v1/agents/plain/memories".to_string(),
            Some(json!({"content": "x"})),
        ),
        (
            Method::PATCH,
            format!("/v1/agents/plain/memories/{id}"),
            Some(json!({"pinned": true})),
        ),
        (
            Method::DELETE,
            format!("/v1/agents/plain/memories/{id}"),
            None,
        ),
        (
            Method::POST,
            "/v1/agents/plain/memory/compact".to_string(),
            None,
        ),
    ] {
        let (status, answer) = send(&server, method.clone(), &path, Some("root-key"), body).await;
        assert_eq!(status, 503, "{method} {path}: {answer}");
        assert_eq!(error_code(&answer), "memory_unavailable");
    }

    // Bad bodies and queries: 422 with where the problem is.
    let invalid = [
        (
            Method::POST,
            "/v1/agents/buddy/memories",
            json!({"content": ""}),
            None,
        ),
        (
            Method::POST,
            "/v1/agents/buddy/memories",
            json!({"content": "   "}),
            None,
        ),
        (
            Method::POST,
            "/v1/agents/buddy/memories",
            json!({}),
            Some(json!(["body"])),
        ),
        (
            Method::POST,
            "/v1/agents/buddy/memories",
            json!({"content": "x", "importance": 1.5}),
            Some(json!(["body", "importance"])),
        ),
        (
            Method::POST,
            "/v1/agents/buddy/memories",
            json!({"content": "x", "importance": -0.1}),
            Some(json!(["body", "importance"])),
        ),
        (
            Method::POST,
            "/v1/agents/buddy/memories",
            json!({"content": "x", "memory_type": "feeling"}),
            Some(json!(["body", "memory_type"])),
        ),
        (
            Method::POST,
            "/v1/agents/buddy/memories",
            json!({"content": "x", "user_id": "alice", "shared": true}),
            Some(json!(["body", "shared"])),
        ),
        (
            Method::POST,
            "/v1/agents/buddy/memories",
            json!({"content": "x", "colour": "red"}),
            Some(json!(["body"])),
        ),
    ];
    let patch = memory_path(&id);
    let patches = [
        (json!({"colour": "red"}), Some(json!(["body"]))),
        (
            json!({"importance": 1.5}),
            Some(json!(["body", "importance"])),
        ),
        (json!({"content": ""}), None),
        (json!({"pinned": "yes"}), Some(json!(["body", "pinned"]))),
    ];
    let mut cases: Vec<(Method, String, Value, Option<Value>)> = invalid
        .into_iter()
        .map(|(m, p, b, l)| (m, p.to_string(), b, l))
        .collect();
    cases.extend(
        patches
            .into_iter()
            .map(|(b, l)| (Method::PATCH, patch.clone(), b, l)),
    );
    for (method, path, body, loc) in cases {
        let (status, answer) = send(
            &server,
            method.clone(),
            &path,
            Some("root-key"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 422, "{method} {path} {body}: {answer}");
        assert_eq!(error_code(&answer), "validation_error", "{body}");
        if let Some(loc) = loc {
            // The location names the field, or the body for a field it does not know.
            let found = answer["error"]["details"][0]["loc"]
                .as_array()
                .unwrap()
                .clone();
            let expected = loc.as_array().unwrap();
            assert!(found.starts_with(expected), "{body}: {answer}");
        }
    }
    for query in [
        "limit=0",
        "limit=201",
        "offset=-1",
        "type=feeling",
        "source=dreamt",
        "scope=everyone",
        "user=bob&scope=shared",
        "limit=many",
    ] {
        let (status, answer) = get(
            &server,
            &format!("/v1/agents/buddy/memories?{query}"),
            "root-key",
        )
        .await;
        assert_eq!(status, 422, "{query}: {answer}");
        assert_eq!(error_code(&answer), "validation_error");
        assert_eq!(
            answer["error"]["details"][0]["loc"][0], "query",
            "{query}: {answer}"
        );
    }
    let (status, answer) = get(&server, "/v1/agents/buddy/memories/bad%20id", "root-key").await;
    assert_eq!((status, error_code(&answer)), (422, "validation_error"));
    let (status, answer) = send(
        &server,
        Method::POST,
        "/v1/agents/buddy/memories",
        Some("root-key"),
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (415, "unsupported_media_type")
    );
    // Nothing of the refused requests was stored.
    let (_, page) = get(&server, "/v1/agents/buddy/memories?user=alice", "root-key").await;
    assert_eq!(page["total"], 1, "{page}");
    let (_, read) = get(&server, &patch, "alice-key").await;
    assert_eq!(
        (read["content"].clone(), read["importance"].clone()),
        (json!("Alice is tall."), json!(0.5))
    );
}

#[tokio::test]
async fn listings_filter_by_type_source_and_text_and_page() {
    let ws = workspace();
    let (mock, server) = start(&ws).await;
    // One memory saved by the agent's tool in a run (source `manual`)...
    mock.push(Reply::tool_call(
        "memory_save",
        json!({"content": "Alice's cat is called Tom.", "importance": 0.7}),
    ));
    mock.push(Reply::text("Noted."));
    let (status, run) = send(
        &server,
        Method::POST,
        "/v1/agents/buddy/invoke",
        Some("alice-key"),
        Some(json!({"message": "My cat is Tom."})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    // ... and five through the API.
    let mut api_ids = Vec::new();
    for (content, kind) in [
        ("Alice drinks tea at five.", "episodic"),
        ("Alice prefers TEA to coffee.", "semantic"),
        ("To brew tea, boil water first.", "procedural"),
        ("Alice went to Porto.", "episodic"),
        ("Alice lives in Lisbon.", "semantic"),
    ] {
        api_ids.push(
            create(
                &server,
                "alice-key",
                json!({"content": content, "memory_type": kind}),
            )
            .await,
        );
    }
    // Bob's memories never show in Alice's listings.
    create(
        &server,
        "bob-key",
        json!({"content": "Bob drinks tea too.", "memory_type": "episodic"}),
    )
    .await;

    let listing = |query: &str| format!("/v1/agents/buddy/memories?{query}");
    let (_, all) = get(&server, &listing(""), "alice-key").await;
    assert_eq!(all["total"], 6, "{all}");
    let (_, episodic) = get(&server, &listing("type=episodic"), "alice-key").await;
    assert_eq!(episodic["total"], 2, "{episodic}");
    assert!(
        episodic["memories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["memory_type"] == "episodic" && m["user_id"] == "alice")
    );
    let (_, manual) = get(&server, &listing("source=manual"), "alice-key").await;
    assert_eq!(manual["total"], 1, "{manual}");
    assert_eq!(
        manual["memories"][0]["content"],
        "Alice's cat is called Tom."
    );
    let (_, from_api) = get(&server, &listing("source=api"), "alice-key").await;
    let mut listed = ids(&from_api);
    listed.sort();
    let mut expected = api_ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    let (_, tea) = get(&server, &listing("q=tea"), "alice-key").await;
    assert_eq!(tea["total"], 3, "text search ignores case: {tea}");
    let (_, both) = get(
        &server,
        &listing("q=tea&type=episodic&source=api"),
        "alice-key",
    )
    .await;
    assert_eq!(both["total"], 1, "{both}");
    assert_eq!(both["memories"][0]["content"], "Alice drinks tea at five.");
    let (_, none) = get(&server, &listing("q=nothing-like-this"), "alice-key").await;
    assert_eq!((none["total"].clone(), ids(&none).len()), (json!(0), 0));

    // Pages: disjoint, in one order, together the whole listing; the total stays.
    let mut paged = Vec::new();
    for offset in [0, 4] {
        let (status, page) = get(
            &server,
            &listing(&format!("limit=4&offset={offset}")),
            "alice-key",
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 6);
        assert_eq!(
            (page["limit"].clone(), page["offset"].clone()),
            (json!(4), json!(offset))
        );
        paged.extend(ids(&page));
    }
    assert_eq!(paged, ids(&all), "pages follow the listing's order");
    let (_, past) = get(&server, &listing("offset=10"), "alice-key").await;
    assert_eq!((past["total"].clone(), ids(&past).len()), (json!(6), 0));
    // An admin's listing of one user filters the same way.
    let (_, admin) = get(&server, &listing("user=alice&type=semantic"), "root-key").await;
    assert_eq!(admin["total"], 3, "{admin}");
}

#[tokio::test]
async fn compaction_through_the_api_replaces_originals_only_when_the_model_answers() {
    let ws = workspace();
    let (mock, server) = start(&ws).await;
    let compact = "/v1/agents/buddy/memory/compact";
    for fact in [
        "Carol likes tea.",
        "Carol likes green tea.",
        "Carol drinks tea daily.",
        "Carol owns a teapot.",
        "Carol buys tea in bulk.",
    ] {
        create(
            &server,
            "carol-key",
            json!({"content": fact, "importance": 0.3}),
        )
        .await;
    }
    let count = |page: &Value| page["total"].as_i64().unwrap();

    // Compacting needs agents:manage; an unknown agent is 404.
    let (status, answer) = send(&server, Method::POST, compact, Some("alice-key"), None).await;
    assert_eq!((status, error_code(&answer)), (403, "insufficient_scope"));
    let (status, answer) = send(
        &server,
        Method::POST,
        "/v1/agents/ghost/memory/compact",
        Some("carol-key"),
        None,
    )
    .await;
    assert_eq!((status, error_code(&answer)), (404, "agent_not_found"));

    // The model fails, then answers nonsense: an error, and nothing is deleted.
    for failure in [Reply::error(500, None), Reply::text("I cannot do that.")] {
        mock.push(failure);
        let (status, answer) = send(&server, Method::POST, compact, Some("carol-key"), None).await;
        assert_eq!(
            (status, error_code(&answer)),
            (502, "memory_model_failed"),
            "{answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was changed"),
            "{answer}"
        );
        let (_, page) = get(&server, "/v1/agents/buddy/memories", "carol-key").await;
        assert_eq!(count(&page), 5, "{page}");
    }
    assert_eq!(
        count(
            &get(
                &server,
                "/v1/agents/buddy/memories?source=compacted",
                "carol-key"
            )
            .await
            .1
        ),
        0
    );

    // A working model: the lowest-scored originals are replaced by its summary.
    mock.push(Reply::text(
        r#"[{"content": "Carol loves tea, green tea above all.", "importance": 0.6}]"#,
    ));
    let (status, report) = send(&server, Method::POST, compact, Some("carol-key"), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report,
        json!({"agent_id": "buddy", "global_compacted": 0, "user_compacted": 2})
    );
    let (_, page) = get(&server, "/v1/agents/buddy/memories", "carol-key").await;
    assert_eq!(count(&page), 4, "{page}");
    let (_, summaries) = get(
        &server,
        "/v1/agents/buddy/memories?source=compacted",
        "carol-key",
    )
    .await;
    assert_eq!(count(&summaries), 1, "{summaries}");
    let summary = &summaries["memories"][0];
    assert_eq!(summary["content"], "Carol loves tea, green tea above all.");
    assert_eq!(summary["user_id"], "carol");
    assert_eq!(summary["importance"], 0.6);

    // The shared knowledge is compacted too (an admin's call; the admin's own scope is empty).
    for fact in [
        "The shop sells tea.",
        "The shop sells green tea.",
        "The shop sells black tea.",
        "The shop sells teapots.",
    ] {
        create(
            &server,
            "root-key",
            json!({"content": fact, "importance": 0.3, "shared": true}),
        )
        .await;
    }
    mock.push(Reply::text(
        r#"[{"content": "The shop sells green and black tea.", "importance": 0.5}]"#,
    ));
    let (status, report) = send(&server, Method::POST, compact, Some("root-key"), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report,
        json!({"agent_id": "buddy", "global_compacted": 2, "user_compacted": 0})
    );
    let (_, shared) = get(
        &server,
        "/v1/agents/buddy/memories?scope=shared",
        "alice-key",
    )
    .await;
    assert_eq!(count(&shared), 3, "{shared}");
    // Under the limit there is nothing to do, and no model call.
    let before = mock.requests().len();
    let (status, report) = send(&server, Method::POST, compact, Some("alice-key"), None).await;
    assert_eq!(status, 403, "{report}");
    let (status, report) = send(&server, Method::POST, compact, Some("root-key"), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            report["global_compacted"].clone(),
            report["user_compacted"].clone()
        ),
        (json!(0), json!(0))
    );
    assert_eq!(mock.requests().len(), before);
}
