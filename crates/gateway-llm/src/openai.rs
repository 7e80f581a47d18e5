//! OpenAI chat completions — and every server that speaks it (Ollama, vLLM, llama.cpp, LM
//! Studio...): only the base URL differs.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{Endpoint, StreamDecoder, decode_stream, parse_arguments};
use crate::sse::SseEvent;
use crate::{
    Completion, CompletionRequest, CompletionStream, FinishReason, LlmError, ModelProvider, Role,
    StreamEvent, TokenUsage, ToolCall,
};

pub struct OpenAi {
    endpoint: Endpoint,
    /// `{base}/chat/completions`, parsed once.
    chat_url: Result<reqwest::Url, LlmError>,
    /// `Bearer <key>`, built once.
    authorization: Option<String>,
}

impl OpenAi {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            chat_url: endpoint.parse_url("/chat/completions"),
            authorization: endpoint.api_key.as_ref().map(|key| format!("Bearer {key}")),
            endpoint,
        }
    }

    async fn send(
        &self,
        model: &str,
        request: &CompletionRequest,
        stream: bool,
    ) -> Result<reqwest::Response, LlmError> {
        let url = self.chat_url.clone()?;
        let auth: &[(&str, &str)] = match &self.authorization {
            Some(value) => &[("authorization", value)],
            None => &[],
        };
        self.endpoint
            .post(url, auth, &request_body(model, request, stream))
            .await
    }
}

/// The body of a chat completions request, borrowing from the conversation: serialized
/// straight to bytes, without building a JSON tree first.
#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    /// `null` only for an assistant turn that is nothing but tool calls.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
}

#[derive(Debug, Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    /// OpenAI sends and expects the arguments as a JSON text.
    arguments: String,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

/// The request body for `model`.
pub fn request_body<'a>(
    model: &'a str,
    request: &'a CompletionRequest,
    stream: bool,
) -> ChatRequest<'a> {
    let messages = request
        .messages
        .iter()
        .map(|m| {
            let (role, tool_call_id) = match m.role {
                Role::System => ("system", None),
                Role::User => ("user", None),
                Role::Assistant => ("assistant", None),
                Role::Tool => ("tool", Some(m.tool_call_id.as_deref().unwrap_or_default())),
            };
            let tool_calls: Vec<WireToolCall> = if m.role == Role::Assistant {
                m.tool_calls
                    .iter()
                    .map(|c| WireToolCall {
                        id: &c.id,
                        r#type: "function",
                        function: WireFunctionCall {
                            name: &c.name,
                            arguments: c.arguments.to_string(),
                        },
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let content = if !tool_calls.is_empty() && m.content.is_empty() {
                None
            } else {
                Some(m.content.as_str())
            };
            WireMessage {
                role,
                content,
                tool_call_id,
                tool_calls,
            }
        })
        .collect();
    ChatRequest {
        model,
        messages,
        tools: request
            .tools
            .iter()
            .map(|t| WireTool {
                r#type: "function",
                function: WireFunction {
                    name: &t.name,
                    description: &t.description,
                    parameters: &t.parameters,
                },
            })
            .collect(),
        temperature: request.temperature,
        max_tokens: request.max_tokens,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    }
}

/// A whole (non-streamed) answer, as far as we read it; unknown fields are skipped.
#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: Option<ResponseMessage>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponseMessage {
    content: Option<String>,
    tool_calls: Option<Vec<ResponseToolCall>>,
}

#[derive(Debug, Deserialize)]
struct ResponseToolCall {
    id: Option<String>,
    function: ResponseFunction,
}

#[derive(Debug, Deserialize)]
struct ResponseFunction {
    name: Option<String>,
    /// A JSON text by the specification; some compatible servers send an object.
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<WireUsage> for TokenUsage {
    fn from(usage: WireUsage) -> Self {
        TokenUsage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        }
    }
}

fn finish_reason(text: Option<&str>) -> FinishReason {
    match text {
        Some("stop") | None => FinishReason::Stop,
        Some("tool_calls") | Some("function_call") => FinishReason::ToolCalls,
        Some("length") => FinishReason::Length,
        Some(other) => FinishReason::Other(other.to_string()),
    }
}

/// Reads a whole (non-streamed) answer.
pub fn parse_response(
    endpoint: &Endpoint,
    model: &str,
    body: &[u8],
) -> Result<Completion, LlmError> {
    let body: ChatResponse = endpoint.decode(body)?;
    let choice = body
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| endpoint.invalid("no choices in the answer"))?;
    let message = choice
        .message
        .ok_or_else(|| endpoint.invalid("choice without a message"))?;
    let tool_calls = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            id: c.id.unwrap_or_else(|| format!("call_{i}")),
            name: c.function.name.unwrap_or_default(),
            arguments: match c.function.arguments {
                Value::String(text) => parse_arguments(&text),
                map @ Value::Object(_) => map,
                _ => Value::Object(Default::default()),
            },
        })
        .collect();
    Ok(Completion {
        text: message.content.unwrap_or_default(),
        tool_calls,
        usage: body.usage.unwrap_or_default().into(),
        finish_reason: finish_reason(choice.finish_reason.as_deref()),
        model: model.to_string(),
    })
}

/// Reads an embeddings answer for `count` texts, in the order of the texts.
pub(crate) fn parse_embeddings(
    endpoint: &Endpoint,
    body: &[u8],
    count: usize,
) -> Result<Vec<Vec<f32>>, LlmError> {
    #[derive(Deserialize)]
    struct Item {
        index: usize,
        embedding: Vec<f32>,
    }
    #[derive(Deserialize)]
    struct Answer {
        data: Vec<Item>,
    }
    let mut answer: Answer = endpoint.decode(body)?;
    answer.data.sort_by_key(|item| item.index);
    if answer.data.len() != count {
        return Err(endpoint.invalid(format!(
            "{} embeddings for {count} texts",
            answer.data.len()
        )));
    }
    Ok(answer.data.into_iter().map(|item| item.embedding).collect())
}

/// One streamed chunk.
#[derive(Debug, Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<StreamChoice>,
    usage: Option<WireUsage>,
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StreamChoice {
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Delta {
    content: Option<String>,
    tool_calls: Option<Vec<DeltaToolCall>>,
}

#[derive(Debug, Deserialize)]
struct DeltaToolCall {
    index: Option<usize>,
    id: Option<String>,
    function: Option<DeltaFunction>,
}

#[derive(Debug, Deserialize)]
struct DeltaFunction {
    name: Option<String>,
    arguments: Option<String>,
}

/// How far ahead of the calls seen so far a streamed tool call's index may jump (indexes
/// count up from 0; a wild one must not make us allocate millions of calls).
const MAX_CALL_INDEX_GAP: usize = 16;

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

pub(crate) struct Decoder {
    endpoint: Endpoint,
    model: String,
    text: String,
    calls: Vec<PartialCall>,
    usage: TokenUsage,
    finish: Option<String>,
}

impl Decoder {
    pub(crate) fn new(endpoint: &Endpoint, model: &str) -> Self {
        Self {
            endpoint: endpoint.clone(),
            model: model.to_string(),
            text: String::new(),
            calls: Vec::new(),
            usage: TokenUsage::default(),
            finish: None,
        }
    }
}

impl StreamDecoder for Decoder {
    fn on_event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, LlmError> {
        if event.data.trim() == "[DONE]" {
            return Ok(true);
        }
        let chunk: StreamChunk = self.endpoint.decode(event.data.as_bytes())?;
        if let Some(error) = chunk.error {
            return Err(self.endpoint.invalid(format!("stream error: {error}")));
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage.into();
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(false);
        };
        let delta = choice.delta.unwrap_or_default();
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            self.text.push_str(&text);
            out.push(StreamEvent::Text(text));
        }
        for call in delta.tool_calls.into_iter().flatten() {
            let index = call.index.unwrap_or(self.calls.len());
            if index > self.calls.len() + MAX_CALL_INDEX_GAP {
                return Err(self
                    .endpoint
                    .invalid(format!("stream chunk names tool call {index} out of order")));
            }
            while self.calls.len() <= index {
                self.calls.push(PartialCall::default());
            }
            let partial = &mut self.calls[index];
            if let Some(id) = call.id {
                partial.id = id;
            }
            if let Some(function) = call.function {
                if let Some(name) = function.name {
                    partial.name.push_str(&name);
                }
                if let Some(arguments) = function.arguments {
                    partial.arguments.push_str(&arguments);
                }
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(reason);
        }
        Ok(false)
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let calls: Vec<ToolCall> = std::mem::take(&mut self.calls)
            .into_iter()
            .enumerate()
            .filter(|(_, p)| !p.name.is_empty())
            .map(|(i, p)| ToolCall {
                id: if p.id.is_empty() {
                    format!("call_{i}")
                } else {
                    p.id
                },
                name: p.name,
                arguments: parse_arguments(&p.arguments),
            })
            .collect();
        out.extend(calls.iter().cloned().map(StreamEvent::ToolCall));
        out.push(StreamEvent::Finished(Completion {
            text: std::mem::take(&mut self.text),
            tool_calls: calls,
            usage: self.usage,
            finish_reason: finish_reason(self.finish.as_deref()),
            model: self.model.clone(),
        }));
        Ok(())
    }
}

#[async_trait]
impl ModelProvider for OpenAi {
    async fn embed(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let auth: &[(&str, &str)] = match &self.authorization {
            Some(value) => &[("authorization", value)],
            None => &[],
        };
        let body = serde_json::json!({"model": model, "input": texts});
        let response = self
            .endpoint
            .post(self.endpoint.parse_url("/embeddings")?, auth, &body)
            .await?;
        let bytes = self.endpoint.bytes(response).await?;
        parse_embeddings(&self.endpoint, &bytes, texts.len())
    }

    async fn complete(
        &self,
        model: &str,
        request: &CompletionRequest,
    ) -> Result<Completion, LlmError> {
        let response = self.send(model, request, false).await?;
        let body = self.endpoint.bytes(response).await?;
        parse_response(&self.endpoint, model, &body)
    }

    async fn stream(
        &self,
        model: &str,
        request: &CompletionRequest,
    ) -> Result<CompletionStream, LlmError> {
        let response = self.send(model, request, true).await?;
        Ok(decode_stream(
            &self.endpoint,
            response,
            Decoder::new(&self.endpoint, model),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, ToolSpec};
    use serde_json::json;

    fn endpoint() -> Endpoint {
        Endpoint {
            provider: "openai".into(),
            http: reqwest::Client::new(),
            base: "http://127.0.0.1:1/v1".into(),
            api_key: None,
            headers: Default::default(),
            timeout: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn the_body_follows_the_wire_format() {
        let request = CompletionRequest {
            messages: vec![
                Message::system("Be brief."),
                Message::user("Weather?"),
                Message::assistant_with_tool_calls(
                    "",
                    vec![ToolCall {
                        id: "c1".into(),
                        name: "weather".into(),
                        arguments: json!({"city": "Oslo"}),
                    }],
                ),
                Message::tool_result("c1", "weather", "-3"),
            ],
            tools: vec![ToolSpec {
                name: "weather".into(),
                description: "Reads the weather".into(),
                parameters: json!({"type": "object"}),
            }],
            temperature: Some(0.5),
            max_tokens: None,
            output_schema: None,
        };
        let body = serde_json::to_value(request_body("m", &request, true)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function",
                         "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "-3"},
                ],
                "tools": [{"type": "function", "function": {
                    "name": "weather", "description": "Reads the weather",
                    "parameters": {"type": "object"}}}],
                "temperature": 0.5,
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
        let plain = serde_json::to_value(request_body("m", &request, false)).unwrap();
        assert!(plain.get("stream").is_none() && plain.get("max_tokens").is_none());
    }

    #[test]
    fn answers_are_read_leniently_where_servers_differ() {
        let body = json!({
            "id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null, "tool_calls": [
                    {"type": "function", "function": {"name": "a", "arguments": {"k": 1}}},
                    {"id": "b1", "type": "function", "function": {"name": "b", "arguments": "not json"}},
                ]}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
        });
        let completion = parse_response(&endpoint(), "m", body.to_string().as_bytes()).unwrap();
        assert_eq!(completion.text, "");
        assert_eq!(completion.finish_reason, FinishReason::ToolCalls);
        assert_eq!(completion.tool_calls[0].id, "call_0");
        assert_eq!(completion.tool_calls[0].arguments, json!({"k": 1}));
        assert_eq!(
            completion.tool_calls[1].arguments,
            json!({"_raw": "not json"})
        );
        assert_eq!(completion.usage.input_tokens, 7);
    }

    #[test]
    fn answers_of_another_shape_are_told_apart_from_broken_json() {
        let message = |body: &str| match parse_response(&endpoint(), "m", body.as_bytes()) {
            Err(LlmError::InvalidResponse { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(message("{}"), "no choices in the answer");
        assert_eq!(message(r#"{"choices": [{}]}"#), "choice without a message");
        assert!(message(r#"{"choices": 3}"#).starts_with("unexpected answer"));
        assert!(message(r#"{"choices": ["#).starts_with("body is not JSON"));
    }

    #[test]
    fn a_streamed_call_index_far_out_of_order_is_refused() {
        let mut decoder = Decoder::new(&endpoint(), "m");
        let chunk = |index: usize| SseEvent {
            event: None,
            data: json!({"choices": [{"delta": {"tool_calls": [
                {"index": index, "function": {"name": "a", "arguments": ""}}]}}]})
            .to_string(),
        };
        let mut out = Vec::new();
        assert!(decoder.on_event(chunk(0), &mut out).is_ok());
        assert!(decoder.on_event(chunk(1), &mut out).is_ok());
        assert!(decoder.on_event(chunk(4_000_000_000), &mut out).is_err());
        assert_eq!(decoder.calls.len(), 2);
    }
}
