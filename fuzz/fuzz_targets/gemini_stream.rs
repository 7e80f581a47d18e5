//! A streamed Gemini answer (server-sent events) through the adapter's decoder, whole and
//! split into small chunks.
#![no_main]

#[path = "../common/llm.rs"]
mod llm;

use gateway_llm::decode::Wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| llm::stream(Wire::Gemini, data));
