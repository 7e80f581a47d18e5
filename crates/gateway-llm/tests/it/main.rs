//! The adapters and the client against mock-llm over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use gateway_llm::{
    CompletionRequest, FinishReason, LlmClient, LlmError, LlmSettings, Message, ModelTarget,
    StreamEvent, ToolCall, ToolSpec,
};
use mock_llm::{Format, MockLlm, Reply};
use serde_json::json;

mod decode;

const PROVIDERS: [(&str, Format); 3] = [
    ("openai", Format::Openai),
    ("anthropic", Format::Anthropic),
    ("gemini", Format::Gemini),
];

fn client(mock: &MockLlm, extra: &[(&str, &str)]) -> LlmClient {
    let mut env: BTreeMap<String, String> = [
        ("OPENAI_API_KEY", "sk-openai"),
        ("ANTHROPIC_API_KEY", "sk-anthropic"),
        ("GEMINI_API_KEY", "sk-gemini"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("OPENAI_API_BASE".into(), mock.openai_base());
    env.insert("ANTHROPIC_API_BASE".into(), mock.anthropic_base());
    env.insert("GEMINI_API_BASE".into(), mock.gemini_base());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let mut settings = LlmSettings::from_env_map(env);
    settings.retry_base_delay = Duration::from_millis(1);
    settings.timeout = Duration::from_secs(2);
    LlmClient::new(settings)
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "weather".into(),
        description: "Weather in a city".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}),
    }
}

fn request() -> CompletionRequest {
    CompletionRequest {
        messages: vec![
            Message::system("Be brief."),
            Message::user("Weather in Oslo?"),
        ],
        tools: vec![weather_tool()],
        temperature: Some(0.2),
        max_tokens: Some(100),
        output_schema: None,
    }
}

#[tokio::test]
async fn text_answers_in_every_format() {
    let mock = MockLlm::start().await.unwrap();
    let llm = client(&mock, &[]);
    for (provider, format) in PROVIDERS {
        mock.clear_requests();
        mock.push(Reply::text("Sunny and cold.").with_usage(21, 4));
        let target = ModelTarget::new(format!("{provider}/model-x"));
        let completion = llm.complete(&target, &request()).await.unwrap();
        assert_eq!(completion.text, "Sunny and cold.", "{provider}");
        assert!(completion.tool_calls.is_empty());
        assert_eq!(completion.finish_reason, FinishReason::Stop);
        assert_eq!(
            (
                completion.usage.input_tokens,
                completion.usage.output_tokens
            ),
            (21, 4),
            "{provider}"
        );
        assert_eq!(completion.model, format!("{provider}/model-x"));

        let sent = &mock.requests()[0];
        assert_eq!(sent.format, format);
        assert_eq!(sent.model, "model-x");
        let body = &sent.body;
        match format {
            Format::Openai => {
                assert_eq!(sent.headers["authorization"], "Bearer sk-openai");
                assert_eq!(
                    body["messages"][0],
                    json!({"role": "system", "content": "Be brief."})
                );
                assert_eq!(body["tools"][0]["function"]["name"], "weather");
                assert_eq!(body["temperature"], 0.2);
                assert_eq!(body["max_tokens"], 100);
            }
            Format::Anthropic => {
                assert_eq!(sent.headers["x-api-key"], "sk-anthropic");
                assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
                assert_eq!(body["system"], "Be brief.");
                assert_eq!(body["messages"][0]["role"], "user");
                assert_eq!(
                    body["tools"][0]["input_schema"]["required"],
                    json!(["city"])
                );
                assert_eq!(body["max_tokens"], 100);
            }
            Format::Gemini => {
                assert_eq!(sent.headers["x-goog-api-key"], "sk-gemini");
                assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be brief.");
                assert_eq!(body["contents"][0]["role"], "user");
                let parameters = &body["tools"][0]["functionDeclarations"][0]["parameters"];
                assert!(
                    parameters.get("additionalProperties").is_none(),
                    "sanitised: {parameters}"
                );
                assert_eq!(body["generationConfig"]["maxOutputTokens"], 100);
            }
        }
    }
}

#[tokio::test]
async fn tool_call_round_trips_in_every_format() {
    let mock = MockLlm::start().await.unwrap();
    let llm = client(&mock, &[]);
    for (provider, format) in PROVIDERS {
        mock.clear_requests();
        mock.push(Reply::tool_call("weather", json!({"city": "Oslo"})));
        mock.push(Reply::text("It is -3°C in Oslo."));
        let target = ModelTarget::new(format!("{provider}/m"));
        let mut conversation = request();
        let first = llm.complete(&target, &conversation).await.unwrap();
        assert_eq!(first.finish_reason, FinishReason::ToolCalls, "{provider}");
        assert_eq!(first.tool_calls.len(), 1);
        let call: &ToolCall = &first.tool_calls[0];
        assert_eq!(call.name, "weather");
        assert_eq!(call.arguments, json!({"city": "Oslo"}));
        assert!(!call.id.is_empty());

        conversation
            .messages
            .push(Message::assistant_with_tool_calls(
                "",
                first.tool_calls.clone(),
            ));
        conversation.messages.push(Message::tool_result(
            &call.id,
            "weather",
            r#"{"celsius": -3}"#,
        ));
        let second = llm.complete(&target, &conversation).await.unwrap();
        assert_eq!(second.text, "It is -3°C in Oslo.");

        let body = &mock.requests()[1].body;
        match format {
            Format::Openai => {
                let messages = body["messages"].as_array().unwrap();
                assert_eq!(
                    messages[2]["tool_calls"][0]["function"]["arguments"],
                    r#"{"city":"Oslo"}"#
                );
                assert_eq!(messages[2]["content"], serde_json::Value::Null);
                assert_eq!(
                    messages[3],
                    json!({"role": "tool", "tool_call_id": call.id, "content": "{\"celsius\": -3}"})
                );
            }
            Format::Anthropic => {
                let messages = body["messages"].as_array().unwrap();
                assert_eq!(
                    messages[1]["content"][0],
                    json!({"type": "tool_use", "id": call.id, "name": "weather", "input": {"city": "Oslo"}})
                );
                assert_eq!(messages[2]["role"], "user");
                assert_eq!(messages[2]["content"][0]["type"], "tool_result");
                assert_eq!(messages[2]["content"][0]["tool_use_id"], call.id.as_str());
            }
            Format::Gemini => {
                let contents = body["contents"].as_array().unwrap();
                assert_eq!(contents[1]["role"], "model");
                assert_eq!(
                    contents[1]["parts"][0]["functionCall"],
                    json!({"name": "weather", "args": {"city": "Oslo"}})
                );
                assert_eq!(
                    contents[2]["parts"][0]["functionResponse"],
                    json!({"name": "weather", "response": {"celsius": -3}})
                );
            }
        }
    }
}

#[tokio::test]
async fn anthropic_merges_consecutive_tool_results_into_one_user_turn() {
    let mock = MockLlm::start().await.unwrap();
    let llm = client(&mock, &[]);
    mock.push(Reply::text("ok"));
    let calls = vec![
        ToolCall {
            id: "a".into(),
            name: "weather".into(),
            arguments: json!({"city": "A"}),
        },
        ToolCall {
            id: "b".into(),
            name: "weather".into(),
            arguments: json!({"city": "B"}),
        },
    ];
    let mut conversation = request();
    conversation
        .messages
        .push(Message::assistant_with_tool_calls("Checking.", calls));
    conversation
        .messages
        .push(Message::tool_result("a", "weather", "1"));
    conversation
        .messages
        .push(Message::tool_result("b", "weather", "2"));
    llm.complete(&ModelTarget::new("anthropic/m"), &conversation)
        .await
        .unwrap();
    let messages = mock.requests()[0].body["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[1]["content"][0],
        json!({"type": "text", "text": "Checking."})
    );
    assert_eq!(messages[2]["content"].as_array().unwrap().len(), 2);
}

async fn collect(stream: gateway_llm::CompletionStream) -> Vec<StreamEvent> {
    stream.map(|e| e.unwrap()).collect().await
}

#[tokio::test]
async fn streaming_in_every_format() {
    let mock = MockLlm::start().await.unwrap();
    let llm = client(&mock, &[]);
    for (provider, _) in PROVIDERS {
        let target = ModelTarget::new(format!("{provider}/m"));
        mock.push(Reply::text("one two three").with_usage(9, 3));
        let events = collect(llm.stream(&target, &request()).await.unwrap()).await;
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "one two three", "{provider}");
        assert!(
            events
                .iter()
                .filter(|e| matches!(e, StreamEvent::Text(_)))
                .count()
                >= 3,
            "{provider}: deltas, not one block"
        );
        let StreamEvent::Finished(done) = events.last().unwrap() else {
            panic!("{provider}: no Finished")
        };
        assert_eq!(done.text, "one two three");
        assert_eq!(done.usage.output_tokens, 3, "{provider}");
        assert_eq!(done.model, format!("{provider}/m"));

        mock.push(Reply::tool_calls(vec![
            ("weather", json!({"city": "Oslo"})),
            ("weather", json!({"city": "Rome"})),
        ]));
        let events = collect(llm.stream(&target, &request()).await.unwrap()).await;
        let calls: Vec<&ToolCall> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCall(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 2, "{provider}: {events:?}");
        assert_eq!(calls[1].arguments, json!({"city": "Rome"}));
        let StreamEvent::Finished(done) = events.last().unwrap() else {
            panic!("no Finished")
        };
        assert_eq!(done.tool_calls.len(), 2);
        assert_eq!(done.finish_reason, FinishReason::ToolCalls);
    }
}

#[tokio::test]
async fn retries_on_429_and_5xx_then_succeeds() {
    let mock = MockLlm::start().await.unwrap();
    let llm = client(&mock, &[]);
    mock.push(Reply::error(429, None));
    mock.push(Reply::error(503, None));
    mock.push(Reply::text("third time lucky"));
    let completion = llm
        .complete(&ModelTarget::new("openai/m"), &request())
        .await
        .unwrap();
    assert_eq!(completion.text, "third time lucky");
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn gives_up_after_the_retries_and_reports_the_status() {
    let mock = MockLlm::start().await.unwrap();
    let llm = client(&mock, &[]);
    mock.push(Reply::error(500, Some("{\"error\": \"boom\"}")).times(10));
    let err = llm
        .complete(&ModelTarget::new("openai/m"), &request())
        .await
        .unwrap_err();
    match &err {
        LlmError::Http { status, body, .. } => {
            assert_eq!(*status, 500);
            assert!(body.contains("boom"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(mock.requests().len(), 3, "1 attempt + 2 retries");

    mock.clear();
    mock.clear_requests();
    mock.push(Reply::error(400, None));
    let err = llm
        .complete(&ModelTarget::new("openai/m"), &request())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Http { status: 400, .. }));
    assert_eq!(mock.requests().len(), 1, "client errors are not retried");
}

#[tokio::test]
async fn malformed_bodies_and_timeouts() {
    let mock = MockLlm::start().await.unwrap();
    let llm = client(&mock, &[]);
    for (provider, _) in PROVIDERS {
        mock.push(Reply::malformed("{\"not\": \"what you expected\""));
        let err = llm
            .complete(&ModelTarget::new(format!("{provider}/m")), &request())
            .await
            .unwrap_err();
        assert!(
            matches!(err, LlmError::InvalidResponse { .. }),
            "{provider}: {err:?}"
        );
    }
    mock.push(Reply::text("late").with_delay(5000).times(2));
    let mut settings = LlmSettings::from_env_map(BTreeMap::from([(
        "OPENAI_API_KEY".to_string(),
        "k".to_string(),
    )]));
    settings.timeout = Duration::from_millis(300);
    settings.max_retries = 1;
    settings.retry_base_delay = Duration::from_millis(1);
    let mut target = ModelTarget::new("openai/m");
    target.api_base = Some(mock.openai_base());
    let err = LlmClient::new(settings)
        .complete(&target, &request())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LlmError::Timeout {
                timeout_ms: 300,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn fallback_answers_when_the_primary_fails() {
    let mock = MockLlm::start().await.unwrap();
    let llm = client(&mock, &[]);
    mock.push(Reply::error(500, None).for_model("primary").times(5));
    mock.push(Reply::text("from the fallback").for_model("backup"));
    let mut target = ModelTarget::new("openai/primary");
    target.fallback = Some("anthropic/backup".into());
    let completion = llm.complete(&target, &request()).await.unwrap();
    assert_eq!(completion.text, "from the fallback");
    assert_eq!(completion.model, "anthropic/backup");

    mock.push(Reply::error(503, None).for_model("primary").times(5));
    mock.push(Reply::text("streamed fallback").for_model("backup"));
    let events = collect(llm.stream(&target, &request()).await.unwrap()).await;
    let StreamEvent::Finished(done) = events.last().unwrap() else {
        panic!()
    };
    assert_eq!(done.text, "streamed fallback");
    assert_eq!(done.model, "anthropic/backup");
}

#[tokio::test]
async fn credentials_bases_and_names() {
    let mock = MockLlm::start().await.unwrap();
    // No keys at all, bases pointing nowhere useful.
    let mut settings = LlmSettings::from_env_map(BTreeMap::new());
    settings.timeout = Duration::from_secs(2);
    let llm = LlmClient::new(settings);
    let err = llm
        .complete(&ModelTarget::new("gemini/gemini-2.0-flash"), &request())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::MissingCredential { env_var, .. } if env_var == "GEMINI_API_KEY"),
        "{err}"
    );
    assert!(mock.requests().is_empty());

    // An api_base override needs no key (a local OpenAI-compatible server).
    mock.push(Reply::text("local"));
    let mut target = ModelTarget::new("openai/llama");
    target.api_base = Some(mock.openai_base());
    let completion = llm.complete(&target, &request()).await.unwrap();
    assert_eq!(completion.text, "local");
    assert!(!mock.requests()[0].headers.contains_key("authorization"));

    // Ollama: OpenAI format, /v1 appended to OLLAMA_API_BASE, no key.
    let llm = client(&mock, &[("OLLAMA_API_BASE", &mock.url())]);
    mock.push(Reply::text("from ollama"));
    let completion = llm
        .complete(&ModelTarget::new("ollama/llama3.2"), &request())
        .await
        .unwrap();
    assert_eq!(completion.text, "from ollama");
    assert_eq!(completion.model, "ollama/llama3.2");

    // Bare names are inferred; unknown ones are explained.
    mock.push(Reply::text("bare"));
    let completion = llm
        .complete(&ModelTarget::new("gpt-4o-mini"), &request())
        .await
        .unwrap();
    assert_eq!(completion.model, "openai/gpt-4o-mini");
    let err = llm
        .complete(&ModelTarget::new("mystery-model"), &request())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::UnknownProvider { .. }));
}

#[tokio::test]
async fn target_defaults_fill_the_request() {
    let mock = MockLlm::start().await.unwrap();
    let llm = client(&mock, &[]);
    mock.push(Reply::text("ok"));
    let mut target = ModelTarget::new("openai/m");
    target.temperature = Some(0.7);
    target.max_tokens = Some(321);
    let mut plain = request();
    plain.temperature = None;
    plain.max_tokens = None;
    llm.complete(&target, &plain).await.unwrap();
    let body = &mock.requests()[0].body;
    assert_eq!(body["temperature"], 0.7);
    assert_eq!(body["max_tokens"], 321);
}

#[tokio::test]
async fn embeddings_over_the_openai_and_gemini_wire_formats_and_in_process() {
    let mock = MockLlm::start().await.unwrap();
    let llm = client(&mock, &[]);
    let texts = vec![
        "The user likes tea.".to_string(),
        "Tea, the user likes.".to_string(),
    ];
    for model in [
        "openai/text-embedding-3-small",
        "gemini/text-embedding-004",
        "scripted/any",
    ] {
        let vectors = llm.embed(model, &texts).await.unwrap();
        assert_eq!(vectors.len(), 2, "{model}");
        assert_eq!(
            vectors[0].len(),
            model_script::EMBEDDING_DIMENSIONS,
            "{model}"
        );
        // The same words in another order: the same direction.
        let cosine: f32 = vectors[0].iter().zip(&vectors[1]).map(|(a, b)| a * b).sum();
        assert!((cosine - 1.0).abs() < 1e-5, "{model}: {cosine}");
    }
    let paths: Vec<String> = mock.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v1/embeddings",
            "/v1beta/models/text-embedding-004:batchEmbedContents"
        ]
    );
    assert_eq!(mock.requests()[0].body["input"], json!(texts));
    let err = llm.embed("anthropic/claude-x", &texts).await.unwrap_err();
    assert!(err.to_string().contains("no embeddings"), "{err}");
}
