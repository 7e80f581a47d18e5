//! The three providers' wire formats: reading what a request asks, and writing answers
//! (whole or as server-sent events).

use serde::Serialize;
use serde_json::{Value, json};

use crate::script::ScriptedCall;

/// Which API a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Openai,
    Anthropic,
    Gemini,
}

/// A resolved answer: text, calls with ids, usage.
#[derive(Debug, Clone)]
pub struct Answer {
    pub model: String,
    pub text: String,
    pub calls: Vec<(String, String, Value)>,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Answer {
    pub fn new(
        model: &str,
        text: String,
        calls: &[ScriptedCall],
        input_tokens: u64,
        output_tokens: u64,
    ) -> Self {
        let calls = calls
            .iter()
            .enumerate()
            .map(|(i, call)| {
                let id = call
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("call_{}_{i}", short_id()));
                let arguments = if call.arguments.is_null() {
                    json!({})
                } else {
                    call.arguments.clone()
                };
                (id, call.name.clone(), arguments)
            })
            .collect();
        Self {
            model: model.to_string(),
            text,
            calls,
            input_tokens,
            output_tokens,
        }
    }
}

pub fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Text of the last user message of a request, in any format.
pub fn last_user_text(format: Format, body: &Value) -> String {
    let text_of = |content: &Value| -> String {
        match content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        }
    };
    match format {
        Format::Openai | Format::Anthropic => body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .map(|m| text_of(&m["content"]))
            .unwrap_or_default(),
        Format::Gemini => body["contents"]
            .as_array()
            .and_then(|c| {
                c.iter()
                    .rev()
                    .find(|c| c["role"] == "user" || c.get("role").is_none())
            })
            .map(|c| text_of(&c["parts"]))
            .unwrap_or_default(),
    }
}

/// A rough token count (4 characters per token) for replies without scripted usage.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// The provider's usual error body.
pub fn error_body(format: Format, status: u16) -> Value {
    let message = format!("mock error {status}");
    match format {
        Format::Openai => {
            json!({"error": {"message": message, "type": "server_error", "code": status}})
        }
        Format::Anthropic => {
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        }
        Format::Gemini => {
            json!({"error": {"code": status, "message": message, "status": "UNAVAILABLE"}})
        }
    }
}

/// Splits text into word-sized pieces, keeping the spaces.
pub fn pieces(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(String::from).collect()
}

/// Splits a JSON text into two or three fragments (as providers stream arguments).
fn fragments(json: &str) -> Vec<String> {
    let chars: Vec<char> = json.chars().collect();
    if chars.len() < 4 {
        return vec![json.to_string()];
    }
    let third = chars.len() / 3;
    vec![
        chars[..third].iter().collect(),
        chars[third..2 * third].iter().collect(),
        chars[2 * third..].iter().collect(),
    ]
}

// ---------------------------------------------------------------- OpenAI chat completions

pub fn openai_response(answer: &Answer) -> Value {
    let mut message = json!({"role": "assistant", "content": if answer.text.is_empty() && !answer.calls.is_empty() { Value::Null } else { Value::String(answer.text.clone()) }});
    if !answer.calls.is_empty() {
        message["tool_calls"] = answer
            .calls
            .iter()
            .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
            .collect();
    }
    json!({
        "id": format!("chatcmpl-{}", short_id()),
        "object": "chat.completion",
        "created": now(),
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "finish_reason": if answer.calls.is_empty() { "stop" } else { "tool_calls" }}],
        "usage": {"prompt_tokens": answer.input_tokens, "completion_tokens": answer.output_tokens, "total_tokens": answer.input_tokens + answer.output_tokens},
    })
}

/// SSE `data:` payloads (without framing) for a streamed OpenAI answer.
pub fn openai_stream(answer: &Answer, include_usage: bool) -> Vec<String> {
    let id = format!("chatcmpl-{}", short_id());
    let created = now();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": answer.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let mut out = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for piece in pieces(&answer.text) {
        out.push(chunk(json!({"content": piece}), Value::Null));
    }
    for (index, (call_id, name, args)) in answer.calls.iter().enumerate() {
        out.push(chunk(
            json!({"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        for fragment in fragments(&args.to_string()) {
            out.push(chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                Value::Null,
            ));
        }
    }
    let finish = if answer.calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    out.push(chunk(json!({}), json!(finish)));
    if include_usage {
        out.push(
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": answer.model, "choices": [],
                   "usage": {"prompt_tokens": answer.input_tokens, "completion_tokens": answer.output_tokens, "total_tokens": answer.input_tokens + answer.output_tokens}})
            .to_string(),
        );
    }
    out.push("[DONE]".to_string());
    out
}

// ---------------------------------------------------------------- Anthropic messages

pub fn anthropic_response(answer: &Answer) -> Value {
    let mut content = Vec::new();
    if !answer.text.is_empty() {
        content.push(json!({"type": "text", "text": answer.text}));
    }
    for (id, name, args) in &answer.calls {
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": args}));
    }
    json!({
        "id": format!("msg_{}", short_id()),
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": if answer.calls.is_empty() { "end_turn" } else { "tool_use" },
        "stop_sequence": null,
        "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
    })
}

/// (event name, data) pairs for a streamed Anthropic answer.
pub fn anthropic_stream(answer: &Answer) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |event: &str, data: Value| out.push((event.to_string(), data.to_string()));
    push(
        "message_start",
        json!({"type": "message_start", "message": {"id": format!("msg_{}", short_id()), "type": "message", "role": "assistant",
               "model": answer.model, "content": [], "stop_reason": null, "stop_sequence": null,
               "usage": {"input_tokens": answer.input_tokens, "output_tokens": 1}}}),
    );
    let mut index = 0;
    if !answer.text.is_empty() {
        push(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        );
        for piece in pieces(&answer.text) {
            push(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
            );
        }
        push(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    }
    for (id, name, args) in &answer.calls {
        push(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        );
        for fragment in fragments(&args.to_string()) {
            push(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": fragment}}),
            );
        }
        push(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    }
    push(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": if answer.calls.is_empty() { "end_turn" } else { "tool_use" }, "stop_sequence": null},
               "usage": {"output_tokens": answer.output_tokens}}),
    );
    push("message_stop", json!({"type": "message_stop"}));
    out
}

// ---------------------------------------------------------------- Gemini generateContent

fn gemini_usage(answer: &Answer) -> Value {
    json!({"promptTokenCount": answer.input_tokens, "candidatesTokenCount": answer.output_tokens,
           "totalTokenCount": answer.input_tokens + answer.output_tokens})
}

pub fn gemini_response(answer: &Answer) -> Value {
    let mut parts = Vec::new();
    if !answer.text.is_empty() {
        parts.push(json!({"text": answer.text}));
    }
    for (_, name, args) in &answer.calls {
        parts.push(json!({"functionCall": {"name": name, "args": args}}));
    }
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": gemini_usage(answer),
        "modelVersion": answer.model,
    })
}

/// SSE `data:` payloads for a streamed Gemini answer.
pub fn gemini_stream(answer: &Answer) -> Vec<String> {
    let mut out: Vec<String> = pieces(&answer.text)
        .into_iter()
        .map(|piece| json!({"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}]}).to_string())
        .collect();
    let calls: Vec<Value> = answer
        .calls
        .iter()
        .map(|(_, name, args)| json!({"functionCall": {"name": name, "args": args}}))
        .collect();
    let last_parts = if calls.is_empty() {
        vec![json!({"text": ""})]
    } else {
        calls
    };
    out.push(
        json!({"candidates": [{"content": {"role": "model", "parts": last_parts}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": gemini_usage(answer), "modelVersion": answer.model})
        .to_string(),
    );
    out
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_user_text_in_every_format() {
        let openai = json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": [{"type": "text", "text": "c"}]}]});
        assert_eq!(last_user_text(Format::Openai, &openai), "c");
        let gemini =
            json!({"contents": [{"role": "user", "parts": [{"text": "x"}, {"text": "y"}]}]});
        assert_eq!(last_user_text(Format::Gemini, &gemini), "xy");
    }

    #[test]
    fn fragments_rejoin() {
        let text = "{\"a\":1,\"b\":\"two\"}";
        assert_eq!(fragments(text).concat(), text);
        assert_eq!(pieces("one two three").concat(), "one two three");
    }
}
