//! Google Gemini `generateContent` / `streamGenerateContent`.

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::http::{Endpoint, StreamDecoder, decode_stream};
use crate::sse::SseEvent;
use crate::{
    Completion, CompletionRequest, CompletionStream, FinishReason, LlmError, ModelProvider, Role,
    StreamEvent, TokenUsage, ToolCall,
};

pub struct Gemini {
    endpoint: Endpoint,
}

impl Gemini {
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }

    fn auth(&self) -> Vec<(&'static str, &str)> {
        self.endpoint
            .api_key
            .as_deref()
            .map(|key| vec![("x-goog-api-key", key)])
            .unwrap_or_default()
    }

    async fn send(
        &self,
        model: &str,
        request: &CompletionRequest,
        stream: bool,
    ) -> Result<reqwest::Response, LlmError> {
        let body = request_body(request);
        let path = if stream {
            format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
        } else {
            format!("/v1beta/models/{model}:generateContent")
        };
        self.endpoint
            .post(self.endpoint.parse_url(&path)?, &self.auth(), &body)
            .await
    }
}

impl Gemini {
    /// One embedding per text (`batchEmbedContents`).
    pub(crate) async fn embed_texts(
        &self,
        model: &str,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, LlmError> {
        let requests: Vec<Value> = texts
            .iter()
            .map(|text| json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}}))
            .collect();
        let path = format!("/v1beta/models/{model}:batchEmbedContents");
        let response = self
            .endpoint
            .post(
                self.endpoint.parse_url(&path)?,
                &self.auth(),
                &json!({"requests": requests}),
            )
            .await?;
        let bytes = self.endpoint.bytes(response).await?;
        parse_embeddings(&self.endpoint, &bytes, texts.len())
    }
}

/// Reads a `batchEmbedContents` answer for `count` texts.
pub(crate) fn parse_embeddings(
    endpoint: &Endpoint,
    body: &[u8],
    count: usize,
) -> Result<Vec<Vec<f32>>, LlmError> {
    #[derive(serde::Deserialize)]
    struct Embedding {
        values: Vec<f32>,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        embeddings: Vec<Embedding>,
    }
    let answer: Answer = endpoint.decode(body)?;
    if answer.embeddings.len() != count {
        return Err(endpoint.invalid(format!(
            "{} embeddings for {count} texts",
            answer.embeddings.len()
        )));
    }
    Ok(answer.embeddings.into_iter().map(|e| e.values).collect())
}

fn push_parts(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut()
        && last["role"] == role
        && let Some(existing) = last["parts"].as_array_mut()
    {
        existing.extend(parts);
        return;
    }
    contents.push(json!({"role": role, "parts": parts}));
}

pub fn request_body(request: &CompletionRequest) -> Value {
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for m in &request.messages {
        match m.role {
            Role::System => system.push(m.content.clone()),
            Role::User => push_parts(&mut contents, "user", vec![json!({"text": m.content})]),
            Role::Assistant => {
                let mut parts = Vec::new();
                if !m.content.is_empty() {
                    parts.push(json!({"text": m.content}));
                }
                for call in &m.tool_calls {
                    parts
                        .push(json!({"functionCall": {"name": call.name, "args": call.arguments}}));
                }
                push_parts(&mut contents, "model", parts);
            }
            Role::Tool => {
                // functionResponse.response must be an object.
                let response = match serde_json::from_str::<Value>(&m.content) {
                    Ok(Value::Object(map)) => Value::Object(map),
                    Ok(other) => json!({"result": other}),
                    Err(_) => json!({"result": m.content}),
                };
                let name = m.name.clone().unwrap_or_default();
                push_parts(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
        }
    }
    let mut body = json!({"contents": contents});
    if !system.is_empty() {
        body["systemInstruction"] = json!({"parts": [{"text": system.join("\n\n")}]});
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": sanitize_schema(&t.parameters)}))
            .collect();
        body["tools"] = json!([{"functionDeclarations": declarations}]);
    }
    let mut generation = Map::new();
    if let Some(t) = request.temperature {
        generation.insert("temperature".into(), json!(t));
    }
    if let Some(n) = request.max_tokens {
        generation.insert("maxOutputTokens".into(), json!(n));
    }
    if !generation.is_empty() {
        body["generationConfig"] = Value::Object(generation);
    }
    body
}

/// Schema keywords Gemini's function declarations accept.
const ALLOWED: &[&str] = &[
    "type",
    "format",
    "description",
    "nullable",
    "enum",
    "items",
    "properties",
    "required",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "anyOf",
    "propertyOrdering",
    "default",
    "title",
];

/// Reduces a JSON Schema to the subset Gemini accepts: `$ref`s into the root's `$defs` are
/// inlined (to a bounded depth), `["x", "null"]` types become `nullable`, and unsupported
/// keywords (`$schema`, `additionalProperties`, `$defs`, ...) are dropped.
pub fn sanitize_schema(schema: &Value) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .cloned()
        .unwrap_or(Value::Null);
    sanitize(schema, &defs, 0)
}

fn sanitize(schema: &Value, defs: &Value, depth: usize) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return match defs.get(name) {
            Some(target) if depth < 8 => sanitize(target, defs, depth + 1),
            _ => json!({"type": "object"}),
        };
    }
    let mut out = Map::new();
    for (key, value) in map {
        if !ALLOWED.contains(&key.as_str()) {
            continue;
        }
        let cleaned = match key.as_str() {
            "properties" => Value::Object(
                value
                    .as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(k, v)| (k.clone(), sanitize(v, defs, depth + 1)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" => sanitize(value, defs, depth + 1),
            "anyOf" => Value::Array(
                value
                    .as_array()
                    .map(|alts| alts.iter().map(|v| sanitize(v, defs, depth + 1)).collect())
                    .unwrap_or_default(),
            ),
            "type" => match value {
                Value::Array(types) => {
                    let concrete: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    if concrete.len() < types.len() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    concrete.first().map_or(json!("string"), |t| (*t).clone())
                }
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), cleaned);
    }
    Value::Object(out)
}

fn finish_reason(text: Option<&str>, has_calls: bool) -> FinishReason {
    if has_calls {
        return FinishReason::ToolCalls;
    }
    match text {
        Some("STOP") | None => FinishReason::Stop,
        Some("MAX_TOKENS") => FinishReason::Length,
        Some(other) => FinishReason::Other(other.to_lowercase()),
    }
}

fn usage(meta: &Value) -> Option<TokenUsage> {
    meta.is_object().then(|| TokenUsage {
        input_tokens: meta["promptTokenCount"].as_u64().unwrap_or(0),
        output_tokens: meta["candidatesTokenCount"].as_u64().unwrap_or(0),
    })
}

/// Text and calls of one (partial) answer. Call ids are synthesised: Gemini has none.
fn read_parts(body: &Value, next_call: &mut usize) -> (String, Vec<ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    let parts = body["candidates"][0]["content"]["parts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for part in parts {
        if let Some(t) = part["text"].as_str() {
            text.push_str(t);
        }
        if let Some(call) = part.get("functionCall") {
            calls.push(ToolCall {
                id: call["id"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| format!("call_{}", *next_call)),
                name: call["name"].as_str().unwrap_or_default().to_string(),
                arguments: if call["args"].is_object() {
                    call["args"].clone()
                } else {
                    json!({})
                },
            });
            *next_call += 1;
        }
    }
    (text, calls)
}

pub fn parse_response(
    endpoint: &Endpoint,
    model: &str,
    body: &Value,
) -> Result<Completion, LlmError> {
    if !body["candidates"].is_array() {
        let reason = body["promptFeedback"]["blockReason"]
            .as_str()
            .unwrap_or("no candidates");
        return Err(endpoint.invalid(format!("no answer: {reason}")));
    }
    let mut next_call = 0;
    let (text, tool_calls) = read_parts(body, &mut next_call);
    let has_calls = !tool_calls.is_empty();
    Ok(Completion {
        text,
        tool_calls,
        usage: usage(&body["usageMetadata"]).unwrap_or_default(),
        finish_reason: finish_reason(body["candidates"][0]["finishReason"].as_str(), has_calls),
        model: model.to_string(),
    })
}

pub(crate) struct Decoder {
    endpoint: Endpoint,
    model: String,
    text: String,
    calls: Vec<ToolCall>,
    next_call: usize,
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
            next_call: 0,
            usage: TokenUsage::default(),
            finish: None,
        }
    }
}

impl StreamDecoder for Decoder {
    fn on_event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, LlmError> {
        let chunk: Value = serde_json::from_str(&event.data).map_err(|err| {
            self.endpoint
                .invalid(format!("stream chunk is not JSON: {err}"))
        })?;
        if let Some(error) = chunk.get("error") {
            return Err(self.endpoint.invalid(format!("stream error: {error}")));
        }
        let (text, calls) = read_parts(&chunk, &mut self.next_call);
        if !text.is_empty() {
            self.text.push_str(&text);
            out.push(StreamEvent::Text(text));
        }
        for call in calls {
            out.push(StreamEvent::ToolCall(call.clone()));
            self.calls.push(call);
        }
        if let Some(u) = usage(&chunk["usageMetadata"]) {
            self.usage = u;
        }
        if let Some(reason) = chunk["candidates"][0]["finishReason"].as_str() {
            self.finish = Some(reason.to_string());
        }
        Ok(false)
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let has_calls = !self.calls.is_empty();
        out.push(StreamEvent::Finished(Completion {
            text: std::mem::take(&mut self.text),
            tool_calls: std::mem::take(&mut self.calls),
            usage: self.usage,
            finish_reason: finish_reason(self.finish.as_deref(), has_calls),
            model: self.model.clone(),
        }));
        Ok(())
    }
}

#[async_trait]
impl ModelProvider for Gemini {
    async fn embed(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        self.embed_texts(model, texts).await
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_schemas_for_gemini() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "name": {"type": ["string", "null"], "description": "n"},
                "item": {"$ref": "#/$defs/Item"},
                "tags": {"type": "array", "items": {"type": "string", "examples": ["x"]}}
            },
            "required": ["item"],
            "$defs": {"Item": {"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": false}}
        });
        assert_eq!(
            sanitize_schema(&schema),
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "nullable": true, "description": "n"},
                    "item": {"type": "object", "properties": {"id": {"type": "integer"}}},
                    "tags": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["item"]
            })
        );
    }

    #[test]
    fn recursive_refs_are_bounded() {
        let schema = json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}});
        let cleaned = sanitize_schema(&schema);
        assert_eq!(cleaned["type"], "object");
    }
}
