//! What an MCP server answers, read by the gateway's client: any JSON-RPC message, a
//! `tools/list` result (names checked, schemas prepared as for a run) and a `tools/call`
//! result (made the model's text or the tool's failure).
#![no_main]

use agent_gateway::mcp::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode::message(data);
    if let Ok((tools, _)) = decode::tool_listing("fuzz", data) {
        for tool in &tools {
            assert!(tool.name.starts_with("fuzz__") && tool.name.len() <= 64);
        }
    }
    let _ = decode::call_result(data);
});
