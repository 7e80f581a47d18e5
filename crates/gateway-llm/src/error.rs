//! The one error type of this crate.

/// Why a model call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The provider's base URL (configuration or environment) is not a URL.
    #[error("provider '{provider}' has an invalid api_base '{base}': {message}")]
    InvalidBase {
        provider: String,
        base: String,
        message: String,
    },
    /// The provider needs a key and none is configured. `env_var` names the variable to set.
    #[error("no API key for provider '{provider}': set {env_var} (needed by model '{model}')")]
    MissingCredential {
        provider: String,
        env_var: String,
        model: String,
    },
    /// A model name whose provider is not known.
    #[error("unknown model provider in '{model}': {hint}")]
    UnknownProvider { model: String, hint: String },
    /// The provider answered with a non-success status (after any retries).
    #[error("{provider} returned HTTP {status}: {body}")]
    Http {
        provider: String,
        status: u16,
        body: String,
        /// The provider's `Retry-After`, honoured by the retry loop.
        retry_after: Option<std::time::Duration>,
    },
    /// No answer within the configured timeout.
    #[error("{provider} did not answer within {timeout_ms} ms")]
    Timeout { provider: String, timeout_ms: u64 },
    /// The connection failed (refused, reset, DNS...).
    #[error("could not reach {provider}: {message}")]
    Connection { provider: String, message: String },
    /// The provider's wire format has no such endpoint (Anthropic has no embeddings).
    #[error("this provider offers no {what}")]
    Unsupported { what: String },
    /// The provider answered 2xx with a body we cannot read.
    #[error("{provider} sent a malformed response: {message}")]
    InvalidResponse { provider: String, message: String },
}

impl LlmError {
    /// Whether trying the same call again may succeed (429, 5xx, timeouts, connection errors).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => *status == 429 || (500..=599).contains(status),
            Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::MissingCredential { .. }
            | Self::UnknownProvider { .. }
            | Self::InvalidBase { .. }
            | Self::Unsupported { .. }
            | Self::InvalidResponse { .. } => false,
        }
    }

    /// Whether this is a configuration problem of the gateway (no key, unknown provider, a
    /// base that is not a URL) rather than a failure of the provider: the API maps these to
    /// 503.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::MissingCredential { .. }
                | Self::UnknownProvider { .. }
                | Self::InvalidBase { .. }
                | Self::Unsupported { .. }
        )
    }
}
