//! The mock's own behaviour: matching, repetition, the control API, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mock_llm::{MockLlm, Reply};
use serde_json::{Value, json};

async fn openai(mock: &MockLlm, model: &str, text: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.openai_base()))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn content(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap();
    value["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn replies_match_repeat_and_fall_back_to_the_echo() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("for b").for_model("b"));
    mock.push(Reply::text("about cats").when_contains("cat"));
    mock.push(Reply::text("twice").times(2));
    assert_eq!(content(&openai(&mock, "a", "dogs").await.1), "twice");
    assert_eq!(content(&openai(&mock, "a", "a cat").await.1), "about cats");
    assert_eq!(content(&openai(&mock, "a", "dogs").await.1), "twice");
    assert_eq!(content(&openai(&mock, "a", "hello").await.1), "echo: hello");
    assert_eq!(content(&openai(&mock, "b", "x").await.1), "for b");
    assert_eq!(mock.pending(), 0);
    assert_eq!(mock.requests().len(), 5);
    assert_eq!(mock.requests()[4].model, "b");
}

#[tokio::test]
async fn errors_and_malformed_bodies() {
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::error(429, None));
    mock.push(Reply::error(500, Some("plain failure")));
    mock.push(Reply::malformed("{oops"));
    let (status, body) = openai(&mock, "m", "x").await;
    assert_eq!(status, 429);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        429
    );
    assert_eq!(
        openai(&mock, "m", "x").await,
        (500, "plain failure".to_string())
    );
    assert_eq!(openai(&mock, "m", "x").await, (200, "{oops".to_string()));
}

#[tokio::test]
async fn control_api_scripts_the_mock_over_http() {
    let mock = MockLlm::start().await.unwrap();
    let http = reqwest::Client::new();
    let status = http
        .post(format!("{}/_mock/replies", mock.url()))
        .json(
            &json!([{"text": "scripted"}, {"tool_calls": [{"name": "t", "arguments": {"a": 1}}]}]),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    http.put(format!("{}/_mock/default", mock.url()))
        .json(&json!({"text": "new default"}))
        .send()
        .await
        .unwrap();
    assert_eq!(content(&openai(&mock, "m", "x").await.1), "scripted");
    let (_, body) = openai(&mock, "m", "x").await;
    let value: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        value["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"a\":1}"
    );
    assert_eq!(content(&openai(&mock, "m", "x").await.1), "new default");
    let requests: Value = http
        .get(format!("{}/_mock/requests", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(requests.as_array().unwrap().len(), 3);
    http.delete(format!("{}/_mock/requests", mock.url()))
        .send()
        .await
        .unwrap();
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn gemini_path_carries_the_model_and_action() {
    let mock = MockLlm::start().await.unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:generateContent",
            mock.gemini_base()
        ))
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["text"],
        "echo: hi"
    );
    assert_eq!(mock.requests()[0].model, "gemini-2.0-flash");
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:explode",
            mock.gemini_base()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}
