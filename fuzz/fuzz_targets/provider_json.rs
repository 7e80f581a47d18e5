//! Whole (non-streamed) answers and embedding answers of every provider: each input is read
//! as each provider's answer.
#![no_main]

#[path = "../common/llm.rs"]
mod llm;

use gateway_llm::decode::{self, Wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let endpoint = llm::endpoint();
    for wire in [Wire::OpenAi, Wire::Anthropic, Wire::Gemini] {
        let _ = decode::response(wire, endpoint, "m", data);
        let _ = decode::embeddings(wire, endpoint, data, 2);
    }
});
