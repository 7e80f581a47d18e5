//! Anthropic messages API.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::http::{Endpoint, StreamDecoder, decode_stream, parse_arguments};
use crate::sse::SseEvent;
use crate::{
    Completion, CompletionRequest, CompletionStream, FinishReason, LlmError, ModelProvider, Role,
    StreamEvent, TokenUsage, ToolCall,
};

const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when neither the request nor the agent sets one.
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub struct Anthropic {
    endpoint: Endpoint,
    /// `{base}/v1/messages`, parsed once.
    messages_url: Result<reqwest::Url, LlmError>,
}

impl Anthropic {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            messages_url: endpoint.parse_url("/v1/messages"),
            endpoint,
        }
    }

    fn auth(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![("anthropic-version", API_VERSION)];
        if let Some(key) = &self.endpoint.api_key {
            headers.push(("x-api-key", key));
        }
        headers
    }

    async fn send(
        &self,
        model: &str,
        request: &CompletionRequest,
        stream: bool,
    ) -> Result<reqwest::Response, LlmError> {
        let body = request_body(model, request, stream);
        self.endpoint
            .post(self.messages_url.clone()?, &self.auth(), &body)
            .await
    }
}

/// Appends `blocks` as a message of `role`, merging with the previous message of the same
/// role (the API wants user and assistant turns to alternate).
fn push_blocks(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last["role"] == role
        && let Some(content) = last["content"].as_array_mut()
    {
        content.extend(blocks);
        return;
    }
    messages.push(json!({"role": role, "content": blocks}));
}

pub fn request_body(model: &str, request: &CompletionRequest, stream: bool) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in &request.messages {
        match m.role {
            Role::System => system.push(m.content.clone()),
            Role::User => push_blocks(
                &mut messages,
                "user",
                vec![json!({"type": "text", "text": m.content})],
            ),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for call in &m.tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}));
                }
                push_blocks(&mut messages, "assistant", blocks);
            }
            Role::Tool => push_blocks(
                &mut messages,
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": m.tool_call_id.clone().unwrap_or_default(), "content": m.content}),
                ],
            ),
        }
    }
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

fn finish_reason(text: Option<&str>) -> FinishReason {
    match text {
        Some("end_turn") | Some("stop_sequence") | None => FinishReason::Stop,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("max_tokens") => FinishReason::Length,
        Some(other) => FinishReason::Other(other.to_string()),
    }
}

pub fn parse_response(
    endpoint: &Endpoint,
    model: &str,
    body: &Value,
) -> Result<Completion, LlmError> {
    let blocks = body["content"]
        .as_array()
        .ok_or_else(|| endpoint.invalid("no content in the answer"))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_string(),
                name: block["name"].as_str().unwrap_or_default().to_string(),
                arguments: if block["input"].is_object() {
                    block["input"].clone()
                } else {
                    json!({})
                },
            }),
            _ => {}
        }
    }
    Ok(Completion {
        text,
        tool_calls,
        usage: TokenUsage {
            input_tokens: body["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: body["usage"]["output_tokens"].as_u64().unwrap_or(0),
        },
        finish_reason: finish_reason(body["stop_reason"].as_str()),
        model: model.to_string(),
    })
}

enum Block {
    Text,
    Tool {
        id: String,
        name: String,
        json: String,
    },
    Other,
}

/// How far ahead of the blocks seen so far a streamed content block's index may jump
/// (indexes count up from 0; a wild one must not make us allocate millions of blocks).
const MAX_BLOCK_INDEX_GAP: usize = 16;

pub(crate) struct Decoder {
    endpoint: Endpoint,
    model: String,
    text: String,
    calls: Vec<ToolCall>,
    blocks: Vec<Block>,
    usage: TokenUsage,
    stop: Option<String>,
}

impl Decoder {
    pub(crate) fn new(endpoint: &Endpoint, model: &str) -> Self {
        Self {
            endpoint: endpoint.clone(),
            model: model.to_string(),
            text: String::new(),
            calls: Vec::new(),
            blocks: Vec::new(),
            usage: TokenUsage::default(),
            stop: None,
        }
    }
}

impl StreamDecoder for Decoder {
    fn on_event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, LlmError> {
        let data: Value = serde_json::from_str(&event.data).map_err(|err| {
            self.endpoint
                .invalid(format!("stream event is not JSON: {err}"))
        })?;
        let kind = event
            .event
            .as_deref()
            .or(data["type"].as_str())
            .unwrap_or_default()
            .to_string();
        match kind.as_str() {
            "message_start" => {
                let usage = &data["message"]["usage"];
                self.usage.input_tokens = usage["input_tokens"].as_u64().unwrap_or(0);
                self.usage.output_tokens = usage["output_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" => {
                let block = &data["content_block"];
                let index = data["index"].as_u64().unwrap_or(self.blocks.len() as u64);
                let index = usize::try_from(index)
                    .ok()
                    .filter(|i| *i <= self.blocks.len() + MAX_BLOCK_INDEX_GAP)
                    .ok_or_else(|| {
                        self.endpoint.invalid(format!(
                            "stream event starts content block {index} out of order"
                        ))
                    })?;
                while self.blocks.len() <= index {
                    self.blocks.push(Block::Other);
                }
                self.blocks[index] = match block["type"].as_str() {
                    Some("text") => {
                        if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            self.text.push_str(text);
                            out.push(StreamEvent::Text(text.to_string()));
                        }
                        Block::Text
                    }
                    Some("tool_use") => Block::Tool {
                        id: block["id"].as_str().unwrap_or_default().to_string(),
                        name: block["name"].as_str().unwrap_or_default().to_string(),
                        json: String::new(),
                    },
                    _ => Block::Other,
                };
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap_or(0) as usize;
                let delta = &data["delta"];
                match (delta["type"].as_str(), self.blocks.get_mut(index)) {
                    (Some("text_delta"), _) => {
                        if let Some(text) = delta["text"].as_str().filter(|t| !t.is_empty()) {
                            self.text.push_str(text);
                            out.push(StreamEvent::Text(text.to_string()));
                        }
                    }
                    (Some("input_json_delta"), Some(Block::Tool { json, .. })) => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap_or(0) as usize;
                if let Some(block) = self.blocks.get_mut(index)
                    && let Block::Tool { id, name, json } = std::mem::replace(block, Block::Other)
                {
                    let call = ToolCall {
                        id,
                        name,
                        arguments: parse_arguments(&json),
                    };
                    out.push(StreamEvent::ToolCall(call.clone()));
                    self.calls.push(call);
                }
            }
            "message_delta" => {
                if let Some(stop) = data["delta"]["stop_reason"].as_str() {
                    self.stop = Some(stop.to_string());
                }
                if let Some(tokens) = data["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = tokens;
                }
            }
            "message_stop" => return Ok(true),
            "error" => {
                return Err(self
                    .endpoint
                    .invalid(format!("stream error: {}", data["error"])));
            }
            _ => {}
        }
        Ok(false)
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        out.push(StreamEvent::Finished(Completion {
            text: std::mem::take(&mut self.text),
            tool_calls: std::mem::take(&mut self.calls),
            usage: self.usage,
            finish_reason: finish_reason(self.stop.as_deref()),
            model: self.model.clone(),
        }));
        Ok(())
    }
}

#[async_trait]
impl ModelProvider for Anthropic {
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
            Decoder::new(&self.endpoint, model),
        ))
    }
}
