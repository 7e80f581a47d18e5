//! What an agentgate site answers, read by the client: the manifest (then used as the gateway
//! uses it: intents and flows looked up, their schemas made tool parameters), flow answers,
//! intent results and error bodies.
#![no_main]

use agentgate::client::decode;
use agentgate::protocol::{SessionState, StartResponse, StepResponse};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(manifest) = decode::manifest("http://site.test", &text) {
        for intent in &manifest.intents {
            let _ = manifest.intent(&intent.name);
            let _ = gateway_llm::gemini::sanitize_schema(&intent.input_schema);
        }
        for flow in &manifest.flows {
            let _ = manifest.flow(&flow.name);
            let _ = flow.entry();
            for step in &flow.steps {
                let _ = flow.step(&step.name);
                let _ = gateway_llm::gemini::sanitize_schema(&step.input_schema);
            }
        }
    }
    let _ = decode::answer::<StartResponse>(&text);
    let _ = decode::answer::<StepResponse>(&text);
    let _ = decode::answer::<SessionState>(&text);
    let _ = decode::answer::<Value>(&text);
    let status = 400 + (data.len() % 200) as u16;
    let body = decode::error_body(&text);
    let _ = decode::intent_error("i", status, body.clone()).to_string();
    for status in [status, 401, 404, 422] {
        let _ = decode::step_error("f", "s", Some("id"), status, body.clone()).to_string();
    }
});
