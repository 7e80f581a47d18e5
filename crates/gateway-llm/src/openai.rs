//! OpenAI chat completions — and every server that speaks it (Ollama, vLLM, llama.cpp, LM
//! Studio...): only the base URL differs.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::http::{Endpoint, StreamDecoder, decode_stream, parse_arguments};
use crate::sse::SseEvent;
use crate::{
    Completion, CompletionRequest, CompletionStream, FinishReason, LlmError, ModelProvider, Role,
    StreamEvent, TokenUsage, ToolCall,
};

pub struct OpenAi {
    endpoint: Endpoint,
}

impl OpenAi {
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }

    fn auth(&self) -> Vec<(&'static str, String)> {
        self.endpoint
            .api_key
            .as_ref()
            .map(|key| vec![("authorization", format!("Bearer {key}"))])
            .unwrap_or_default()
    }

    async fn send(
        &self,
        model: &str,
        request: &CompletionRequest,
        stream: bool,
    ) -> Result<reqwest::Response, LlmError> {
        let body = request_body(model, request, stream);
        self.endpoint
            .post(&self.endpoint.url("/chat/completions"), &self.auth(), &body)
            .await
    }
}

/// The request body for `model`.
pub fn request_body(model: &str, request: &CompletionRequest, stream: bool) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| match m.role {
            Role::System => json!({"role": "system", "content": m.content}),
            Role::User => json!({"role": "user", "content": m.content}),
            Role::Assistant => {
                let mut message = json!({"role": "assistant", "content": m.content});
                if !m.tool_calls.is_empty() {
                    if m.content.is_empty() {
                        message["content"] = Value::Null;
                    }
                    message["tool_calls"] = m
                        .tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function",
                                   "function": {"name": c.name, "arguments": c.arguments.to_string()}})
                        })
                        .collect();
                }
                message
            }
            Role::Tool => json!({
                "role": "tool",
                "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
                "content": m.content,
            }),
        })
        .collect();
    let mut body = json!({"model": model, "messages": messages});
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(n) = request.max_tokens {
        body["max_tokens"] = json!(n);
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn finish_reason(text: Option<&str>) -> FinishReason {
    match text {
        Some("stop") | None => FinishReason::Stop,
        Some("tool_calls") | Some("function_call") => FinishReason::ToolCalls,
        Some("length") => FinishReason::Length,
        Some(other) => FinishReason::Other(other.to_string()),
    }
}

fn usage(value: &Value) -> TokenUsage {
    TokenUsage {
        input_tokens: value["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: value["completion_tokens"].as_u64().unwrap_or(0),
    }
}

/// Reads a whole (non-streamed) answer.
pub fn parse_response(
    endpoint: &Endpoint,
    model: &str,
    body: &Value,
) -> Result<Completion, LlmError> {
    let choice = body["choices"]
        .get(0)
        .ok_or_else(|| endpoint.invalid("no choices in the answer"))?;
    let message = &choice["message"];
    if !message.is_object() {
        return Err(endpoint.invalid("choice without a message"));
    }
    let tool_calls = message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .enumerate()
                .map(|(i, c)| ToolCall {
                    id: c["id"]
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| format!("call_{i}")),
                    name: c["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    arguments: match &c["function"]["arguments"] {
                        Value::String(text) => parse_arguments(text),
                        Value::Object(map) => Value::Object(map.clone()),
                        _ => json!({}),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Completion {
        text: message["content"].as_str().unwrap_or_default().to_string(),
        tool_calls,
        usage: usage(&body["usage"]),
        finish_reason: finish_reason(choice["finish_reason"].as_str()),
        model: model.to_string(),
    })
}

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

struct Decoder {
    endpoint: Endpoint,
    model: String,
    text: String,
    calls: Vec<PartialCall>,
    usage: TokenUsage,
    finish: Option<String>,
}

impl StreamDecoder for Decoder {
    fn on_event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, LlmError> {
        if event.data.trim() == "[DONE]" {
            return Ok(true);
        }
        let chunk: Value = serde_json::from_str(&event.data).map_err(|err| {
            self.endpoint
                .invalid(format!("stream chunk is not JSON: {err}"))
        })?;
        if let Some(error) = chunk.get("error") {
            return Err(self.endpoint.invalid(format!("stream error: {error}")));
        }
        if chunk["usage"].is_object() {
            self.usage = usage(&chunk["usage"]);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return Ok(false);
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text.push_str(text);
            out.push(StreamEvent::Text(text.to_string()));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(self.calls.len() as u64) as usize;
            while self.calls.len() <= index {
                self.calls.push(PartialCall::default());
            }
            let partial = &mut self.calls[index];
            if let Some(id) = call["id"].as_str() {
                partial.id = id.to_string();
            }
            if let Some(name) = call["function"]["name"].as_str() {
                partial.name.push_str(name);
            }
            if let Some(arguments) = call["function"]["arguments"].as_str() {
                partial.arguments.push_str(arguments);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish = Some(reason.to_string());
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
    async fn complete(
        &self,
        model: &str,
        request: &CompletionRequest,
    ) -> Result<Completion, LlmError> {
        let response = self.send(model, request, false).await?;
        let body = self.endpoint.json(response).await?;
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
            Decoder {
                endpoint: self.endpoint.clone(),
                model: model.to_string(),
                text: String::new(),
                calls: Vec::new(),
                usage: TokenUsage::default(),
                finish: None,
            },
        ))
    }
}
