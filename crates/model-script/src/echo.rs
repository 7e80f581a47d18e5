//! The echo: what a scripted model answers when its script has nothing to say. Deterministic,
//! and it still exercises an agent's tools and output schema.

use serde_json::{Map, Value, json};

use crate::{LastMessage, OfferedTool, Reply, Request, ScriptedCall};

/// The echo's reply to `request`:
/// - after a tool result: `"<tool> returned: <result>"`;
/// - a user message that names an offered tool (`current-time` also as "current time"), or
///   asks for "a tool" when some are offered: a call of that tool (of the first one), with
///   the `key=value` pairs the message holds as arguments and a minimal value for each other
///   required one;
/// - otherwise `"echo: <message>"`.
///
/// When the request asks for structured output, a final answer is a minimal instance of its
/// schema instead.
pub fn echo(request: &Request) -> Reply {
    let text = match &request.last {
        LastMessage::ToolResult { tool, content } => format!("{tool} returned: {content}"),
        LastMessage::User(message) => {
            if let Some(tool) = wanted_tool(message, &request.tools) {
                return Reply {
                    tool_calls: vec![ScriptedCall {
                        name: tool.name.clone(),
                        arguments: arguments_for(&tool.parameters, message),
                        id: None,
                    }],
                    ..Reply::default()
                };
            }
            format!("echo: {message}")
        }
        LastMessage::Other => format!("echo: {}", request.last_user),
    };
    match &request.output_schema {
        Some(schema) => Reply::output(instance_of(schema)),
        None => Reply::text(text),
    }
}

/// The offered tool a message asks for: one it names, else the first when it says "tool".
fn wanted_tool<'a>(message: &str, tools: &'a [OfferedTool]) -> Option<&'a OfferedTool> {
    let message = message.to_lowercase();
    tools
        .iter()
        .find(|tool| {
            let name = tool.name.to_lowercase();
            let spaced = name.replace(['-', '_'], " ");
            contains_word(&message, &name) || contains_word(&message, &spaced)
        })
        .or_else(|| {
            (contains_word(&message, "tool") || contains_word(&message, "tools"))
                .then(|| tools.first())
                .flatten()
        })
}

/// Whether `needle` occurs in `haystack` between non-alphanumeric characters.
fn contains_word(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Arguments for a tool: `key=value` pairs of the message for its properties (typed by the
/// schema), then a minimal value for each required property still missing.
fn arguments_for(parameters: &Value, message: &str) -> Value {
    let properties = parameters.get("properties").and_then(Value::as_object);
    let mut arguments = Map::new();
    for word in message.split_whitespace() {
        let Some((key, raw)) = word.split_once('=') else {
            continue;
        };
        let Some(schema) = properties.and_then(|p| p.get(key)) else {
            continue;
        };
        let raw = raw.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | '.' | '?' | '!'));
        arguments.insert(key.to_string(), typed(raw, schema));
    }
    for name in required(parameters) {
        if !arguments.contains_key(&name) {
            let schema = properties
                .and_then(|p| p.get(&name))
                .unwrap_or(&Value::Null);
            arguments.insert(name, instance_of(schema));
        }
    }
    Value::Object(arguments)
}

/// `raw` as the type the schema asks for, or as text.
fn typed(raw: &str, schema: &Value) -> Value {
    let parsed = match first_type(schema) {
        Some("integer") => raw.parse::<i64>().ok().map(Value::from),
        Some("number") => raw.parse::<f64>().ok().map(Value::from),
        Some("boolean") => raw.parse::<bool>().ok().map(Value::from),
        Some("object" | "array") => serde_json::from_str(raw).ok(),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(raw.to_string()))
}

fn first_type(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(kind)) => Some(kind),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null"),
        _ => None,
    }
}

/// The properties an object schema requires (all of them when it lists none).
fn required(schema: &Value) -> Vec<String> {
    match schema.get("required").and_then(Value::as_array) {
        Some(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        None => Vec::new(),
    }
}

/// Nesting beyond which [`instance_of`] answers `null` (schemas that refer to themselves).
const MAX_DEPTH: usize = 16;

/// A small value valid for common schemas: `const`, the first `enum` value, `default`, the
/// first example, else by type (required properties of an object, `minItems` items of an
/// array, `"echo"` or a string of `minLength`, the minimum of a number, `false`).
pub fn instance_of(schema: &Value) -> Value {
    instance_at(schema, 0)
}

fn instance_at(schema: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    if let Some(value) = schema.get("const").or_else(|| schema.get("default")) {
        return value.clone();
    }
    let first_of = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|items| items.first())
    };
    if let Some(value) = first_of("enum").or_else(|| first_of("examples")) {
        return value.clone();
    }
    if let Some(branch) = first_of("anyOf")
        .or_else(|| first_of("oneOf"))
        .or_else(|| first_of("allOf"))
    {
        return instance_at(branch, depth + 1);
    }
    let object_like = schema.get("properties").is_some();
    match first_type(schema).or(object_like.then_some("object")) {
        Some("object") => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let mut object = Map::new();
            for name in required(schema) {
                let property = properties
                    .and_then(|p| p.get(&name))
                    .unwrap_or(&Value::Null);
                object.insert(name, instance_at(property, depth + 1));
            }
            Value::Object(object)
        }
        Some("array") => {
            let count = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let item = instance_at(schema.get("items").unwrap_or(&Value::Null), depth + 1);
            Value::Array((0..count.min(64)).map(|_| item.clone()).collect())
        }
        Some("string") => {
            let length = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0);
            let text = "echo".to_string();
            if (text.len() as u64) < length {
                Value::String("e".repeat(length.min(4096) as usize))
            } else {
                Value::String(text)
            }
        }
        Some("integer") => schema
            .get("minimum")
            .and_then(Value::as_f64)
            .map_or(json!(0), |min| json!(min.ceil() as i64)),
        Some("number") => schema.get("minimum").cloned().unwrap_or(json!(0)),
        Some("boolean") => Value::Bool(false),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, parameters: Value) -> OfferedTool {
        OfferedTool {
            name: name.into(),
            parameters,
        }
    }

    fn user(text: &str, tools: Vec<OfferedTool>) -> Request {
        Request {
            model: "m".into(),
            last_user: text.into(),
            last: LastMessage::User(text.into()),
            tools,
            output_schema: None,
        }
    }

    #[test]
    fn repeats_a_message_that_asks_for_no_tool() {
        let reply = echo(&user("hello there", vec![tool("current-time", json!({}))]));
        assert_eq!(reply.text.as_deref(), Some("echo: hello there"));
        assert!(reply.tool_calls.is_empty());
    }

    #[test]
    fn calls_the_tool_a_message_names_with_its_arguments() {
        let add = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "note": {"type": "string"}}, "required": ["a", "b"]});
        let tools = vec![tool("current-time", json!({})), tool("add", add)];
        let reply = echo(&user("Please add a=2 b=3.", tools.clone()));
        assert_eq!(reply.tool_calls[0].name, "add");
        assert_eq!(reply.tool_calls[0].arguments, json!({"a": 2, "b": 3}));
        let reply = echo(&user("What is the current time?", tools.clone()));
        assert_eq!(reply.tool_calls[0].name, "current-time");
        // Required arguments the message does not give get a minimal value.
        let reply = echo(&user("add please", tools.clone()));
        assert_eq!(reply.tool_calls[0].arguments, json!({"a": 0, "b": 0}));
        // "a tool" picks the first one; a word that only contains a name does not count.
        let reply = echo(&user("use a tool", tools.clone()));
        assert_eq!(reply.tool_calls[0].name, "current-time");
        let reply = echo(&user("additional thoughts", tools));
        assert!(reply.tool_calls.is_empty());
    }

    #[test]
    fn reports_a_tool_result() {
        let request = Request {
            last: LastMessage::ToolResult {
                tool: "add".into(),
                content: "5".into(),
            },
            ..user("add a=2 b=3", Vec::new())
        };
        assert_eq!(echo(&request).text.as_deref(), Some("add returned: 5"));
    }

    #[test]
    fn answers_an_instance_of_the_output_schema() {
        let schema = json!({"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1},
            "kind": {"enum": ["sunny", "rainy"]}, "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "ok": {"type": "boolean"}, "extra": {"type": "string"}},
            "required": ["city", "days", "kind", "tags", "ok"]});
        let request = Request {
            output_schema: Some(schema),
            ..user("weather?", Vec::new())
        };
        assert_eq!(
            echo(&request).output,
            Some(
                json!({"city": "echo", "days": 1, "kind": "sunny", "tags": ["echo"], "ok": false})
            )
        );
    }
}
