//! HTTP plumbing shared by the adapters: sending, mapping failures to [`LlmError`], and
//! turning an SSE body into a [`CompletionStream`].

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::sse::{SseEvent, SseParser};
use crate::{CompletionStream, LlmError, StreamEvent};

/// Error bodies longer than this are cut in messages.
const MAX_ERROR_BODY: usize = 1000;

/// Where and how one adapter talks to its provider.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Provider name used in error messages (`openai`, `anthropic`, `local`...).
    pub provider: String,
    pub http: reqwest::Client,
    /// Base URL without a trailing slash.
    pub base: String,
    pub api_key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub timeout: Duration,
}

impl Endpoint {
    /// `path` under the base URL, parsed (adapters with a fixed path parse it once). Only
    /// `http` and `https` URLs are accepted.
    pub(crate) fn parse_url(&self, path: &str) -> Result<reqwest::Url, LlmError> {
        let url = format!("{}{}", self.base.trim_end_matches('/'), path);
        let problem = match reqwest::Url::parse(&url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => return Ok(url),
            Ok(_) => "it must start with http:// or https://".to_string(),
            Err(err) => err.to_string(),
        };
        Err(LlmError::InvalidBase {
            provider: self.provider.clone(),
            base: self.base.clone(),
            message: problem,
        })
    }

    fn request_error(&self, err: &reqwest::Error) -> LlmError {
        if err.is_timeout() {
            self.timed_out()
        } else {
            let mut message = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(inner) = source {
                message = format!("{message}: {inner}");
                source = inner.source();
            }
            LlmError::Connection {
                provider: self.provider.clone(),
                message,
            }
        }
    }

    fn timed_out(&self) -> LlmError {
        LlmError::Timeout {
            provider: self.provider.clone(),
            timeout_ms: self.timeout.as_millis() as u64,
        }
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> LlmError {
        LlmError::InvalidResponse {
            provider: self.provider.clone(),
            message: message.into(),
        }
    }

    /// POSTs `body`; a non-2xx answer becomes `LlmError::Http`. Only the wait for the
    /// response head is bounded here: bodies are bounded by their readers.
    pub(crate) async fn post(
        &self,
        url: reqwest::Url,
        auth: &[(&str, &str)],
        body: &impl Serialize,
    ) -> Result<reqwest::Response, LlmError> {
        let mut request = self.http.post(url).json(body);
        for (name, value) in auth {
            request = request.header(*name, *value);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        // The model call's span continues at the provider (or the proxy before it).
        request = request.headers(gateway_telemetry::context::outbound_headers());
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => return Err(self.timed_out()),
            Ok(Err(err)) => return Err(self.request_error(&err)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = tokio::time::timeout(self.timeout, response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let mut body: String = text.chars().take(MAX_ERROR_BODY).collect();
        if text.chars().count() > MAX_ERROR_BODY {
            body.push_str("...");
        }
        Err(LlmError::Http {
            provider: self.provider.clone(),
            status: status.as_u16(),
            body,
            retry_after,
        })
    }

    /// Reads a whole body within the timeout.
    pub(crate) async fn bytes(&self, response: reqwest::Response) -> Result<Bytes, LlmError> {
        match tokio::time::timeout(self.timeout, response.bytes()).await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(err)) => Err(self.request_error(&err)),
            Ok(Ok(bytes)) => Ok(bytes),
        }
    }

    /// Reads a whole JSON body within the timeout.
    pub(crate) async fn json(&self, response: reqwest::Response) -> Result<Value, LlmError> {
        let bytes = self.bytes(response).await?;
        self.decode(&bytes)
    }

    /// Decodes a provider's JSON into `T`: text that is not JSON and JSON of another shape
    /// are told apart in the error.
    pub(crate) fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, LlmError> {
        serde_json::from_slice(bytes).map_err(|err| {
            if err.is_data() {
                self.invalid(format!("unexpected answer: {err}"))
            } else {
                self.invalid(format!("body is not JSON: {err}"))
            }
        })
    }
}

/// Decodes one provider's stream events into [`StreamEvent`]s.
pub(crate) trait StreamDecoder: Send + 'static {
    /// Handles one SSE event; returns `true` when the provider said the stream is over.
    fn on_event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, LlmError>;
    /// Emits what is still pending (assembled tool calls) and the final `Finished`.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError>;
}

/// Streams `response` through `decoder`. Each chunk must arrive within the endpoint's
/// timeout; dropping the returned stream stops reading.
pub(crate) fn decode_stream(
    endpoint: &Endpoint,
    response: reqwest::Response,
    mut decoder: impl StreamDecoder,
) -> CompletionStream {
    let (tx, rx) = mpsc::channel::<Result<StreamEvent, LlmError>>(64);
    let endpoint = endpoint.clone();
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        let mut done = false;
        while !done {
            let chunk = match tokio::time::timeout(endpoint.timeout, body.next()).await {
                Err(_) => {
                    let _ = tx.send(Err(endpoint.timed_out())).await;
                    return;
                }
                Ok(None) => break,
                Ok(Some(Err(err))) => {
                    let _ = tx.send(Err(endpoint.request_error(&err))).await;
                    return;
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            for event in parser.push(&chunk) {
                match decoder.on_event(event, &mut out) {
                    Ok(finished) => done |= finished,
                    Err(err) => {
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                }
            }
            for event in out.drain(..) {
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        }
        if !done
            && let Some(event) = parser.finish()
            && let Err(err) = decoder.on_event(event, &mut out)
        {
            let _ = tx.send(Err(err)).await;
            return;
        }
        match decoder.finish(&mut out) {
            Ok(()) => {
                for event in out.drain(..) {
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
            Err(err) => {
                let _ = tx.send(Err(err)).await;
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Parses streamed or returned tool arguments; text that is not a JSON object is kept as
/// `{"_raw": text}` for the engine to report.
pub(crate) fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Object(Default::default());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => value,
        _ => serde_json::json!({"_raw": text}),
    }
}
