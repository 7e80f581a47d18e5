//! What an MCP server answers, read from its JSON as the connection hands it over: the tools
//! it lists and the results of its calls, through the same steps the manager takes with
//! them. Pure, so the fuzz targets drive exactly this; whatever a server sends may fail
//! here, never panic.

use std::sync::Weak;

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ListToolsResult, ServerJsonRpcMessage};
use serde_json::Value;

use super::tool::{McpTool, McpToolInfo, ToolCalls, call_value, listing};
use crate::tools::{Tool, ToolError};

/// A server's JSON-RPC message (a response, a request or a notification), as the transport
/// reads each one.
pub fn message(body: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<ServerJsonRpcMessage>(body)
        .map(drop)
        .map_err(|err| format!("not an MCP message: {err}"))
}

/// A `tools/list` result: the tools agents would get (their argument schemas prepared as
/// for a call), and a warning for each tool left out.
pub fn tool_listing(server: &str, body: &[u8]) -> Result<(Vec<McpToolInfo>, Vec<String>), String> {
    let listed: ListToolsResult =
        serde_json::from_slice(body).map_err(|err| format!("not a tools/list result: {err}"))?;
    let (infos, skipped) = listing(server, &listed.tools);
    for info in &infos {
        let tool = McpTool::new(info.clone(), Weak::<Unconnected>::new());
        // What a run does with the schema: offer it to the model, validate arguments by it.
        let _ = tool.parameters().to_string();
        if let Some(validator) = tool.argument_validator() {
            let _ = validator.is_valid(&Value::Object(Default::default()));
        }
    }
    Ok((infos, skipped))
}

/// A `tools/call` result, as the model is given it (an error result is the tool's failure).
pub fn call_result(body: &[u8]) -> Result<Result<Value, String>, String> {
    let result: CallToolResult =
        serde_json::from_slice(body).map_err(|err| format!("not a tools/call result: {err}"))?;
    Ok(call_value(&result).map_err(|err| err.to_string()))
}

/// Calls of a tool that was only decoded go nowhere.
struct Unconnected;

#[async_trait]
impl ToolCalls for Unconnected {
    async fn call(&self, _: &str, _: &str, _: Value) -> Result<Value, ToolError> {
        Err(ToolError::failed("not connected"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listed_tools_are_named_for_the_providers_or_left_out() {
        let body = json!({"tools": [
            {"name": "search", "description": "Search", "inputSchema": {"type": "object"}},
            {"name": "search", "inputSchema": {"type": "object"}},
            {"name": "has space", "inputSchema": {"type": "object"}},
            {"name": "x".repeat(80), "inputSchema": {"type": "object"}},
            {"name": "odd_schema", "inputSchema": {"type": "object", "properties": {"a": {"type": 7}}}}
        ]})
        .to_string();
        let (tools, skipped) = tool_listing("web", body.as_bytes()).unwrap_or_default();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["web__search", "web__odd_schema"]);
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped.iter().any(|w| w.contains("listed twice")));
        assert!(tool_listing("web", b"{\"tools\": 3}").is_err());
    }

    #[test]
    fn call_results_become_the_model_s_text_or_the_tool_s_failure() {
        let text =
            json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]});
        assert_eq!(
            call_result(text.to_string().as_bytes()),
            Ok(Ok(json!("a\nb")))
        );
        let failed = json!({"content": [{"type": "text", "text": "no"}], "isError": true});
        assert_eq!(
            call_result(failed.to_string().as_bytes()),
            Ok(Err("no".to_string()))
        );
        let structured = json!({"content": [], "structuredContent": {"n": 1}});
        assert_eq!(
            call_result(structured.to_string().as_bytes()),
            Ok(Ok(json!({"n": 1})))
        );
        assert!(call_result(b"[]").is_err());
        assert!(message(b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"result\": {}}").is_ok());
        assert!(message(b"nonsense").is_err());
    }
}
