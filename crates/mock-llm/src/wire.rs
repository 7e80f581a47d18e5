//! The three providers' wire formats: reading what a request asks, and writing answers
//! (whole or as server-sent events).

use model_script::{LastMessage, OfferedTool, Request, ScriptedCall, pieces};
use serde::Serialize;
use serde_json::{Value, json};

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

/// What the script sees of a request in any format: the last user message, the last message,
/// the tools offered.
pub fn script_request(format: Format, model: &str, body: &Value) -> Request {
    Request {
        model: model.to_string(),
        last_user: last_user_text(format, body),
        last: last_message(format, body),
        tools: offered_tools(format, body),
        output_schema: None,
    }
}

/// The text of a message's content (a string, or text parts).
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The name of the tool an earlier assistant message called with id `call_id`.
fn called_tool(messages: &[Value], call_id: &str, format: Format) -> String {
    messages
        .iter()
        .rev()
        .find_map(|m| match format {
            Format::Openai => m["tool_calls"].as_array()?.iter().find_map(|call| {
                (call["id"] == call_id).then(|| call["function"]["name"].as_str())?
            }),
            _ => m["content"].as_array()?.iter().find_map(|block| {
                (block["type"] == "tool_use" && block["id"] == call_id)
                    .then(|| block["name"].as_str())?
            }),
        })
        .unwrap_or_default()
        .to_string()
}

fn last_message(format: Format, body: &Value) -> LastMessage {
    match format {
        Format::Openai | Format::Anthropic => {
            let messages = body["messages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let Some(last) = messages.last() else {
                return LastMessage::Other;
            };
            if format == Format::Openai && last["role"] == "tool" {
                let id = last["tool_call_id"].as_str().unwrap_or_default();
                return LastMessage::ToolResult {
                    tool: called_tool(messages, id, format),
                    content: text_of(&last["content"]),
                };
            }
            let result = last["content"]
                .as_array()
                .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_result"));
            match (last["role"].as_str(), result) {
                (Some("user"), Some(block)) => LastMessage::ToolResult {
                    tool: called_tool(
                        messages,
                        block["tool_use_id"].as_str().unwrap_or_default(),
                        format,
                    ),
                    content: text_of(&block["content"]),
                },
                (Some("user"), None) => LastMessage::User(text_of(&last["content"])),
                _ => LastMessage::Other,
            }
        }
        Format::Gemini => {
            let Some(last) = body["contents"].as_array().and_then(|c| c.last()) else {
                return LastMessage::Other;
            };
            let response = last["parts"]
                .as_array()
                .and_then(|parts| parts.iter().find_map(|p| p.get("functionResponse")));
            match (last.get("role").and_then(Value::as_str), response) {
                (_, Some(response)) => LastMessage::ToolResult {
                    tool: response["name"].as_str().unwrap_or_default().to_string(),
                    content: match &response["response"]["result"] {
                        Value::String(text) => text.clone(),
                        Value::Null => response["response"].to_string(),
                        other => other.to_string(),
                    },
                },
                (None | Some("user"), None) => LastMessage::User(text_of(&last["parts"])),
                _ => LastMessage::Other,
            }
        }
    }
}

fn offered_tools(format: Format, body: &Value) -> Vec<OfferedTool> {
    let tools = body["tools"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let tool = |name: &Value, parameters: &Value| {
        Some(OfferedTool {
            name: name.as_str()?.to_string(),
            parameters: parameters.clone(),
        })
    };
    match format {
        Format::Openai => tools
            .iter()
            .filter_map(|t| tool(&t["function"]["name"], &t["function"]["parameters"]))
            .collect(),
        Format::Anthropic => tools
            .iter()
            .filter_map(|t| tool(&t["name"], &t["input_schema"]))
            .collect(),
        Format::Gemini => tools
            .iter()
            .filter_map(|t| t["functionDeclarations"].as_array())
            .flatten()
            .filter_map(|f| tool(&f["name"], &f["parameters"]))
            .collect(),
    }
}

/// Text of the last user message of a request, in any format.
fn last_user_text(format: Format, body: &Value) -> String {
    match format {
        // Tool results travel as user messages in Anthropic and Gemini: skip those (no text).
        Format::Openai | Format::Anthropic => body["messages"]
            .as_array()
            .and_then(|m| {
                m.iter()
                    .rev()
                    .filter(|m| m["role"] == "user")
                    .map(|m| text_of(&m["content"]))
                    .find(|text| !text.is_empty())
            })
            .unwrap_or_default(),
        Format::Gemini => body["contents"]
            .as_array()
            .and_then(|c| {
                c.iter()
                    .rev()
                    .filter(|c| c["role"] == "user" || c.get("role").is_none())
                    .map(|c| text_of(&c["parts"]))
                    .find(|text| !text.is_empty())
            })
            .unwrap_or_default(),
    }
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
    fn the_script_sees_tools_and_tool_results_in_every_format() {
        let openai = json!({"messages": [
            {"role": "user", "content": "time?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "clock", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "noon"}],
            "tools": [{"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}}]});
        let anthropic = json!({"messages": [
            {"role": "user", "content": "time?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "clock", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "noon"}]}],
            "tools": [{"name": "clock", "input_schema": {"type": "object"}}]});
        let gemini = json!({"contents": [
            {"role": "user", "parts": [{"text": "time?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "clock", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "clock", "response": {"result": "noon"}}}]}],
            "tools": [{"functionDeclarations": [{"name": "clock", "parameters": {"type": "object"}}]}]});
        for (format, body) in [
            (Format::Openai, openai),
            (Format::Anthropic, anthropic),
            (Format::Gemini, gemini),
        ] {
            let request = script_request(format, "m", &body);
            assert_eq!(request.last_user, "time?", "{format:?}");
            assert_eq!(
                request.last,
                LastMessage::ToolResult {
                    tool: "clock".into(),
                    content: "noon".into()
                },
                "{format:?}"
            );
            assert_eq!(request.tools[0].name, "clock", "{format:?}");
        }
    }

    #[test]
    fn fragments_rejoin() {
        let text = "{\"a\":1,\"b\":\"two\"}";
        assert_eq!(fragments(text).concat(), text);
        assert_eq!(pieces("one two three").concat(), "one two three");
    }
}
