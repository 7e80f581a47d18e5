//! The script of a scripted model, shared by `mock-llm` (over HTTP, in the providers' wire
//! formats) and the gateway's in-process `scripted/<name>` models, so both answer by the same
//! rules.
//!
//! A [`Script`] is a list of [`Reply`]s used up in order: a request takes the first reply
//! whose `match` fits it, which then answers `times` requests (default one). When none fits,
//! the script's `default` answers, and without one the [`echo`]: it repeats the last user
//! message, calls a tool the message names, reports a tool's result after a call, and answers
//! a minimal instance of the requested output schema. A [`Player`] plays a script against
//! [`Request`]s, each caller translating its own request type into that neutral view.

mod echo;
mod player;
mod reply;

pub use echo::{echo, instance_of};
pub use player::{Player, Script};
pub use reply::{Match, Reply, ScriptedCall, ScriptedUsage};

use serde_json::Value;

/// The last message of a request, as far as a script looks at it.
#[derive(Debug, Clone, PartialEq)]
pub enum LastMessage {
    /// A user message (its text).
    User(String),
    /// The result of a tool call.
    ToolResult { tool: String, content: String },
    /// Anything else (an assistant or system message, or none).
    Other,
}

/// A tool the request offers the model.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferedTool {
    pub name: String,
    /// JSON Schema of its arguments.
    pub parameters: Value,
}

/// What a script sees of one model request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The model asked for, without its provider prefix.
    pub model: String,
    /// Text of the last user message (empty when there is none).
    pub last_user: String,
    pub last: LastMessage,
    pub tools: Vec<OfferedTool>,
    /// JSON Schema the final answer must satisfy, when the caller says so.
    pub output_schema: Option<Value>,
}

/// A rough token count (4 characters a token) for answers without scripted usage.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// Text cut into word-sized pieces (spaces kept), as a streamed answer sends it.
pub fn pieces(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(String::from).collect()
}

/// Dimensions of [`embedding`].
pub const EMBEDDING_DIMENSIONS: usize = 64;

/// A deterministic embedding of `text` (what scripted models and `mock-llm` answer): its
/// lowercase words hashed into [`EMBEDDING_DIMENSIONS`] buckets and normalised, so texts that
/// share words point the same way (cosine similarity works on it) with no model at all.
pub fn embedding(text: &str) -> Vec<f32> {
    let mut vector = vec![0f32; EMBEDDING_DIMENSIONS];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
    {
        // FNV-1a: stable across builds and platforms (std's hasher is not).
        let hash = word
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        vector[(hash % EMBEDDING_DIMENSIONS as u64) as usize] += 1.0;
    }
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
    vector
}
