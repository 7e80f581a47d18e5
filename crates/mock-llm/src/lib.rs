//! A scripted fake LLM server speaking the OpenAI chat completions, Anthropic messages and
//! Gemini generateContent wire formats, streaming and not, with tool calls.
//!
//! Tests queue [`Reply`]s (text, structured output, tool calls, delays, HTTP errors,
//! malformed bodies); each request takes the first queued reply that matches it, or the
//! default reply, or the echo: the rules of [`model_script`], which the gateway's in-process
//! `scripted/<name>` models play too. Every request is recorded for assertions.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mock_llm::{MockLlm, Reply};
//! let mock = MockLlm::start().await?;
//! mock.push(Reply::tool_call("add", serde_json::json!({"a": 1, "b": 2})));
//! mock.push(Reply::text("The sum is 3."));
//! // point an OpenAI client at mock.openai_base() ...
//! # Ok(()) }
//! ```

mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use model_script::{Match, Reply, Script, ScriptedCall, ScriptedUsage};
pub use wire::Format;

use model_script::Player;

use wire::Answer;

/// Requests kept for inspection (older ones are dropped, so long benchmarks stay bounded).
const MAX_RECORDED: usize = 10_000;

/// A request the mock received.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub format: Format,
    pub path: String,
    /// Model named by the request (from the body, or the Gemini path).
    pub model: String,
    pub stream: bool,
    /// `authorization`, `x-api-key`, `x-goog-api-key`, `anthropic-version` and `traceparent`,
    /// when sent.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

struct State_ {
    script: Player,
    requests: Mutex<VecDeque<RecordedRequest>>,
}

type Shared = Arc<State_>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running mock server. It stops when dropped.
pub struct MockLlm {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
}

impl MockLlm {
    /// Starts on 127.0.0.1 with a random port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().map_err(std::io::Error::other)?).await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::serve(listener).await
    }

    /// Serves on an already bound listener.
    pub async fn serve(listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(State_ {
            script: Player::default(),
            requests: Mutex::new(VecDeque::new()),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(Arc::clone(&state));
        tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            // Paced chunks are small writes: send each at once (no Nagle delay).
            let listener = listener.tap_io(|stream| {
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(error = %err, "cannot set TCP_NODELAY");
                }
            });
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %err, "mock-llm server stopped");
            }
        });
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL for OpenAI clients (`.../v1`).
    pub fn openai_base(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// Base URL for Anthropic clients.
    pub fn anthropic_base(&self) -> String {
        self.url()
    }

    /// Base URL for Gemini clients.
    pub fn gemini_base(&self) -> String {
        self.url()
    }

    /// Queues a reply.
    pub fn push(&self, reply: Reply) {
        self.state.script.push(reply);
    }

    /// Queues a script's replies and sets its default (when it has one).
    pub fn load(&self, script: Script) {
        script.replies.into_iter().for_each(|r| self.push(r));
        if let Some(default) = script.default {
            self.set_default(default);
        }
    }

    /// Drops every queued reply.
    pub fn clear(&self) {
        self.state.script.clear();
    }

    /// Replies still queued.
    pub fn pending(&self) -> usize {
        self.state.script.pending()
    }

    /// Sets the reply used when nothing queued matches.
    pub fn set_default(&self, reply: Reply) {
        self.state.script.set_default(Some(reply));
    }

    /// Requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The mock's routes, for embedding in another axum app.
fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/chat/completions", post(openai))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/embeddings", post(openai_embeddings))
        .route("/v1/messages", post(anthropic))
        .route("/v1beta/models/{model_action}", post(gemini))
        .route("/v1/models/{model_action}", post(gemini))
        .route("/_mock/health", get(|| async { "ok" }))
        .route("/_mock/replies", post(push_replies).delete(clear_replies))
        .route("/_mock/default", axum::routing::put(set_default))
        .route("/_mock/requests", get(list_requests).delete(clear_requests))
        .with_state(state)
}

/// Queues a script's replies (a list, `{replies, default}` or one reply).
async fn push_replies(
    State(state): State<Shared>,
    axum::Json(script): axum::Json<Value>,
) -> Response {
    match Script::from_json(script) {
        Ok(script) => {
            script
                .replies
                .into_iter()
                .for_each(|r| state.script.push(r));
            if let Some(default) = script.default {
                state.script.set_default(Some(default));
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => bad_request(&format!("not a script: {err}")),
    }
}

async fn clear_replies(State(state): State<Shared>) -> StatusCode {
    state.script.clear();
    StatusCode::NO_CONTENT
}

async fn set_default(
    State(state): State<Shared>,
    axum::Json(reply): axum::Json<Reply>,
) -> StatusCode {
    state.script.set_default(Some(reply));
    StatusCode::NO_CONTENT
}

async fn list_requests(State(state): State<Shared>) -> axum::Json<Vec<RecordedRequest>> {
    axum::Json(lock(&state.requests).iter().cloned().collect())
}

async fn clear_requests(State(state): State<Shared>) -> StatusCode {
    lock(&state.requests).clear();
    StatusCode::NO_CONTENT
}

fn recorded_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    [
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "anthropic-version",
        "traceparent",
    ]
    .iter()
    .filter_map(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .map(|v| (name.to_string(), v.to_string()))
    })
    .collect()
}

/// Records the request and takes the reply that answers it.
fn take_reply(state: &State_, request: RecordedRequest) -> Reply {
    let reply = state.script.answer(&wire::script_request(
        request.format,
        &request.model,
        &request.body,
    ));
    keep(state, request);
    reply
}

fn keep(state: &State_, request: RecordedRequest) {
    let mut requests = lock(&state.requests);
    if requests.len() >= MAX_RECORDED {
        requests.pop_front();
    }
    requests.push_back(request);
}

/// Records an embedding request (no reply is taken for it).
fn record(
    state: &State_,
    format: Format,
    path: &str,
    model: &str,
    headers: &HeaderMap,
    body: Value,
) {
    keep(
        state,
        RecordedRequest {
            format,
            path: path.to_string(),
            model: model.to_string(),
            stream: false,
            headers: recorded_headers(headers),
            body,
        },
    );
}

/// OpenAI's embeddings: [`model_script::embedding`] of each input, the same every time.
async fn openai_embeddings(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("request body is not JSON");
    };
    let texts: Vec<String> = match &body["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default().to_string())
            .collect(),
        _ => return bad_request("input must be a string or a list of strings"),
    };
    let model = body["model"].as_str().unwrap_or_default().to_string();
    record(
        &state,
        Format::Openai,
        "/v1/embeddings",
        &model,
        &headers,
        body,
    );
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| serde_json::json!({"object": "embedding", "index": index, "embedding": model_script::embedding(text)}))
        .collect();
    axum::Json(
        serde_json::json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0}}),
    )
    .into_response()
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({"error": {"message": message}})),
    )
        .into_response()
}

async fn openai(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("request body is not JSON");
    };
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let path = "/v1/chat/completions";
    respond(&state, Format::Openai, path, model, stream, &headers, body).await
}

async fn anthropic(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("request body is not JSON");
    };
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    respond(
        &state,
        Format::Anthropic,
        "/v1/messages",
        model,
        stream,
        &headers,
        body,
    )
    .await
}

async fn gemini(
    State(state): State<Shared>,
    Path(model_action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, action)) = model_action.split_once(':') else {
        return bad_request("expected models/<model>:generateContent");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("request body is not JSON");
    };
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        "batchEmbedContents" | "embedContent" => {
            let texts: Vec<String> = match action {
                "embedContent" => vec![wire::text_of(&body["content"]["parts"])],
                _ => body["requests"]
                    .as_array()
                    .map(|requests| {
                        requests
                            .iter()
                            .map(|r| wire::text_of(&r["content"]["parts"]))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            let path = format!("/v1beta/models/{model_action}");
            record(&state, Format::Gemini, &path, model, &headers, body);
            let embeddings: Vec<Value> = texts
                .iter()
                .map(|t| serde_json::json!({"values": model_script::embedding(t)}))
                .collect();
            let answer = match action {
                "embedContent" => serde_json::json!({"embedding": embeddings.first()}),
                _ => serde_json::json!({"embeddings": embeddings}),
            };
            return axum::Json(answer).into_response();
        }
        _ => return bad_request("unknown action"),
    };
    let path = format!("/v1beta/models/{model_action}");
    respond(
        &state,
        Format::Gemini,
        &path,
        model.to_string(),
        stream,
        &headers,
        body,
    )
    .await
}

async fn respond(
    state: &State_,
    format: Format,
    path: &str,
    model: String,
    stream: bool,
    headers: &HeaderMap,
    body: Value,
) -> Response {
    let input_tokens = model_script::estimate_tokens(&body.to_string());
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let request = RecordedRequest {
        format,
        path: path.to_string(),
        model: model.clone(),
        stream,
        headers: recorded_headers(headers),
        body,
    };
    let reply = take_reply(state, request);
    if reply.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
    }
    if let Some(status) = reply.status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = reply
            .body
            .clone()
            .unwrap_or_else(|| wire::error_body(format, status.as_u16()).to_string());
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    if let Some(raw) = reply.raw_body {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            raw,
        )
            .into_response();
    }
    let text = reply.text.clone().unwrap_or_default();
    let output_tokens = model_script::estimate_tokens(&text) + reply.tool_calls.len() as u64 * 8;
    let (input_tokens, output_tokens) = reply
        .usage
        .map(|u| (u.input_tokens, u.output_tokens))
        .unwrap_or((input_tokens, output_tokens));
    let answer = Answer::new(&model, text, &reply.tool_calls, input_tokens, output_tokens);
    let (content_type, body) = if stream {
        let frames: Vec<(Option<String>, String)> = match format {
            Format::Openai => wire::openai_stream(&answer, include_usage)
                .into_iter()
                .map(|d| (None, d))
                .collect(),
            Format::Anthropic => wire::anthropic_stream(&answer)
                .into_iter()
                .map(|(e, d)| (Some(e), d))
                .collect(),
            Format::Gemini => wire::gemini_stream(&answer)
                .into_iter()
                .map(|d| (None, d))
                .collect(),
        };
        let body = match reply.cut_after {
            Some(n) => Body::from_stream(cut(sse(frames, reply.chunk_delay_ms), n as usize)),
            None => Body::from_stream(sse(frames, reply.chunk_delay_ms)),
        };
        ("text/event-stream", body)
    } else {
        let whole = match format {
            Format::Openai => wire::openai_response(&answer),
            Format::Anthropic => wire::anthropic_response(&answer),
            Format::Gemini => wire::gemini_response(&answer),
        }
        .to_string();
        let body = match reply.cut_after {
            Some(n) => {
                let head: Vec<u8> = whole.bytes().take(n as usize).collect();
                let chunk = futures::stream::iter([Ok::<Bytes, Infallible>(Bytes::from(head))]);
                Body::from_stream(cut(chunk, 1))
            }
            None => Body::from(whole),
        };
        ("application/json", body)
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The first `n` items of `stream`, then an error: the server drops the connection mid-body.
fn cut(
    stream: impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
    n: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    use futures::StreamExt;
    stream
        .take(n)
        .map(|item| item.map_err(|never| match never {}))
        .chain(futures::stream::once(async {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "the mock cut the answer",
            ))
        }))
}

/// Frames as SSE text, optionally paced.
fn sse(
    frames: Vec<(Option<String>, String)>,
    delay_ms: u64,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::unfold(
        (frames.into_iter(), true),
        move |(mut frames, first)| async move {
            let (event, data) = frames.next()?;
            if delay_ms > 0 && !first {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            let text = match event {
                Some(event) => format!("event: {event}\ndata: {data}\n\n"),
                None => format!("data: {data}\n\n"),
            };
            Some((Ok(Bytes::from(text)), (frames, false)))
        },
    )
}
