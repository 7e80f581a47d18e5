//! LLM providers behind one trait.
//!
//! [`LlmClient`] routes a `provider/model` name to an adapter ([`openai`], [`anthropic`],
//! [`gemini`], and the in-process [`scripted`] models), applies timeouts, retries with backoff on 429/5xx, and falls back to a second
//! model when the first fails. The adapters speak each provider's real wire format, streaming
//! included; tests drive them against `mock-llm` over HTTP.

pub mod anthropic;
mod client;
pub mod decode;
mod error;
pub mod gemini;
mod http;
pub mod openai;
pub mod pricing;
pub mod scripted;
pub mod sse;
mod types;

use async_trait::async_trait;

pub use client::{LlmClient, LlmSettings, ModelTarget, ProviderKind, ProviderSettings};
pub use error::LlmError;
pub use http::Endpoint;
pub use types::{
    Completion, CompletionRequest, CompletionStream, FinishReason, Message, Role, StreamEvent,
    TokenUsage, ToolCall, ToolSpec,
};

/// One provider's wire format. `model` is the provider's own model name (no prefix).
#[async_trait]
pub trait ModelProvider: Send + Sync {
    async fn complete(
        &self,
        model: &str,
        request: &CompletionRequest,
    ) -> Result<Completion, LlmError>;
    /// Streams the answer: text deltas and tool calls as they complete, then `Finished`.
    async fn stream(
        &self,
        model: &str,
        request: &CompletionRequest,
    ) -> Result<CompletionStream, LlmError>;
    /// One embedding per text, through the provider's embedding endpoint.
    async fn embed(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let _ = (model, texts);
        Err(LlmError::Unsupported {
            what: "embeddings".into(),
        })
    }
}
