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

/// The most bytes a whole (non-streamed) answer may take: far above any completion or
/// embeddings batch the gateway asks for; it bounds what an endpoint that never stops
/// sending makes us hold.
pub(crate) const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;

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
        let text = tokio::time::timeout(self.timeout, head_of(response))
            .await
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
        self.bytes_within(response, MAX_BODY_BYTES).await
    }

    /// Reads a whole body of at most `limit` bytes within the timeout: a declared length
    /// past it is refused before reading, a body that grows past it as soon as it does.
    async fn bytes_within(
        &self,
        mut response: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes, LlmError> {
        let too_long = || self.invalid(format!("the answer is longer than {limit} bytes"));
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_long());
        }
        let read = async {
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|err| self.request_error(&err))?
            {
                if body.len() + chunk.len() > limit {
                    return Err(too_long());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .unwrap_or_else(|_| Err(self.timed_out()))
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

/// The start of an error body, as text: enough for the message (which keeps
/// [`MAX_ERROR_BODY`] characters), never the whole of a body that does not end.
async fn head_of(mut response: reqwest::Response) -> String {
    let enough = MAX_ERROR_BODY * 4 + 4;
    let mut body = Vec::new();
    while body.len() < enough {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Decodes one provider's stream events into [`StreamEvent`]s.
pub(crate) trait StreamDecoder: Send + 'static {
    /// Handles one SSE event; returns `true` when the provider said the stream is over.
    fn on_event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, LlmError>;
    /// Emits what is still pending (assembled tool calls) and the final `Finished`.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError>;
}

/// An SSE body's bytes through a [`StreamDecoder`]: the one reading loop of every adapter,
/// shared by [`decode_stream`] (bytes from the connection) and [`crate::decode::stream`]
/// (bytes given), so what is tested without a connection is what runs with one.
pub(crate) struct StreamReader<D> {
    endpoint: Endpoint,
    parser: SseParser,
    decoder: D,
    /// The provider said the stream is over: later bytes are not read.
    done: bool,
}

/// The most bytes one stream event may take (its data lines and a line not yet ended). Far
/// above any provider's event (a chunk of text or one tool call's arguments); it bounds what
/// a body that never ends a line or an event makes us hold.
pub(crate) const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

impl<D: StreamDecoder> StreamReader<D> {
    pub(crate) fn new(endpoint: &Endpoint, decoder: D) -> Self {
        Self {
            endpoint: endpoint.clone(),
            parser: SseParser::with_limit(MAX_EVENT_BYTES),
            decoder,
            done: false,
        }
    }

    /// Whether the provider ended the stream.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds one chunk (split anywhere); the events it completed go to `out`, also those
    /// decoded before an error. Nothing after the provider's end mark is decoded: a
    /// connection may deliver what follows it in the same chunk or never, and the answer
    /// must not depend on where the body was split.
    pub(crate) fn push(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), LlmError> {
        for event in self.parser.push(chunk) {
            if self.done {
                break;
            }
            self.done = self.decoder.on_event(event, out)?;
        }
        if !self.done && self.parser.exceeded() {
            return Err(self
                .endpoint
                .invalid(format!("stream event longer than {MAX_EVENT_BYTES} bytes")));
        }
        Ok(())
    }

    /// Ends the body: an event not closed by a blank line still counts (unless the provider
    /// already ended the stream), then the decoder emits what is pending and `Finished`.
    pub(crate) fn finish(mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if !self.done
            && let Some(event) = self.parser.finish()
        {
            self.decoder.on_event(event, out)?;
        }
        self.decoder.finish(out)
    }
}

/// Streams `response` through `decoder`. Each chunk must arrive within the endpoint's
/// timeout; dropping the returned stream stops reading.
pub(crate) fn decode_stream(
    endpoint: &Endpoint,
    response: reqwest::Response,
    decoder: impl StreamDecoder,
) -> CompletionStream {
    let (tx, rx) = mpsc::channel::<Result<StreamEvent, LlmError>>(64);
    let endpoint = endpoint.clone();
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut reader = StreamReader::new(&endpoint, decoder);
        let mut out = Vec::new();
        // Reading stops when the provider ends the stream, or when nobody reads the events any
        // more (the run ended): a body that yields no event would otherwise be read to its end.
        while !reader.is_done() && !tx.is_closed() {
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
            let pushed = reader.push(&chunk, &mut out);
            // What the chunk held before a bad event is delivered first: the same events
            // whether the bad one came in the same chunk or a later one.
            for event in out.drain(..) {
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            if let Err(err) = pushed {
                let _ = tx.send(Err(err)).await;
                return;
            }
        }
        let finished = reader.finish(&mut out);
        for event in out.drain(..) {
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        if let Err(err) = finished {
            let _ = tx.send(Err(err)).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering every connection with `head` then `chunks` (raw HTTP/1.1).
    async fn raw_server(head: &'static str, chunks: Vec<Vec<u8>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let chunks = chunks.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let _ = socket.write_all(head.as_bytes()).await;
                    for chunk in chunks {
                        if socket.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }

    fn endpoint(base: &str) -> Endpoint {
        Endpoint {
            provider: "local".into(),
            http: reqwest::Client::new(),
            base: base.into(),
            api_key: None,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(5),
        }
    }

    async fn read(endpoint: &Endpoint, limit: usize) -> Result<Bytes, LlmError> {
        let response = endpoint
            .http
            .get(&endpoint.base)
            .send()
            .await
            .map_err(|err| endpoint.request_error(&err))?;
        endpoint.bytes_within(response, limit).await
    }

    #[tokio::test]
    async fn a_whole_answer_is_read_up_to_the_limit_and_no_further() {
        // Chunked, no declared length: 3 chunks of 400 bytes.
        let chunk = |n: usize| format!("{n:x}\r\n{}\r\n", "x".repeat(n)).into_bytes();
        let chunked = raw_server(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            vec![chunk(400), chunk(400), chunk(400), b"0\r\n\r\n".to_vec()],
        )
        .await;
        let local = endpoint(&chunked);
        assert_eq!(read(&local, 1200).await.map(|b| b.len()).ok(), Some(1200));
        let err = read(&local, 1000).await.err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("longer than 1000 bytes")),
            "{err:?}"
        );
        // A declared length past the limit is refused before any of the body is read.
        let declared = raw_server(
            "HTTP/1.1 200 OK\r\ncontent-length: 1000000000\r\n\r\n",
            vec![b"{}".to_vec()],
        )
        .await;
        let err = read(&endpoint(&declared), 1000)
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("longer than 1000 bytes")),
            "{err:?}"
        );
    }
}
