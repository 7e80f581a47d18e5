//! Providers' answers decoded from bytes, without a connection: the same code the adapters
//! run on what a provider sends, for fuzzing and for tests of captured answers.
//!
//! Everything here is what a provider (or whatever answers at its URL) controls, so none of
//! it may panic or allocate without bound whatever the bytes: every problem is an
//! [`LlmError::InvalidResponse`].

use crate::http::{Endpoint, StreamDecoder, StreamReader};
use crate::{Completion, LlmError, StreamEvent, anthropic, gemini, openai};

/// A provider's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI chat completions (and every compatible server).
    OpenAi,
    /// Anthropic messages.
    Anthropic,
    /// Gemini `generateContent`.
    Gemini,
}

/// Reads a whole (non-streamed) answer, as [`crate::ModelProvider::complete`] does.
pub fn response(
    wire: Wire,
    endpoint: &Endpoint,
    model: &str,
    body: &[u8],
) -> Result<Completion, LlmError> {
    match wire {
        Wire::OpenAi => openai::parse_response(endpoint, model, body),
        Wire::Anthropic => anthropic::parse_response(endpoint, model, &endpoint.decode(body)?),
        Wire::Gemini => gemini::parse_response(endpoint, model, &endpoint.decode(body)?),
    }
}

/// Reads an embeddings answer for `count` texts, as [`crate::ModelProvider::embed`] does.
/// Anthropic has no embedding endpoint: [`LlmError::Unsupported`].
pub fn embeddings(
    wire: Wire,
    endpoint: &Endpoint,
    body: &[u8],
    count: usize,
) -> Result<Vec<Vec<f32>>, LlmError> {
    match wire {
        Wire::OpenAi => openai::parse_embeddings(endpoint, body, count),
        Wire::Gemini => gemini::parse_embeddings(endpoint, body, count),
        Wire::Anthropic => Err(LlmError::Unsupported {
            what: "embeddings".into(),
        }),
    }
}

/// Decodes a streamed (SSE) answer arriving in `chunks` (split anywhere), as
/// [`crate::ModelProvider::stream`] does: the events in order, ending with `Finished` or with
/// the first error.
pub fn stream<'a>(
    wire: Wire,
    endpoint: &Endpoint,
    model: &str,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Result<StreamEvent, LlmError>> {
    match wire {
        Wire::OpenAi => read(endpoint, openai::Decoder::new(endpoint, model), chunks),
        Wire::Anthropic => read(endpoint, anthropic::Decoder::new(endpoint, model), chunks),
        Wire::Gemini => read(endpoint, gemini::Decoder::new(endpoint, model), chunks),
    }
}

fn read<'a>(
    endpoint: &Endpoint,
    decoder: impl StreamDecoder,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Result<StreamEvent, LlmError>> {
    let mut reader = StreamReader::new(endpoint, decoder);
    let mut out = Vec::new();
    let mut events = Vec::new();
    for chunk in chunks {
        if reader.is_done() {
            break;
        }
        let pushed = reader.push(chunk, &mut out);
        events.extend(out.drain(..).map(Ok));
        if let Err(err) = pushed {
            events.push(Err(err));
            return events;
        }
    }
    let finished = reader.finish(&mut out);
    events.extend(out.drain(..).map(Ok));
    if let Err(err) = finished {
        events.push(Err(err));
    }
    events
}
