//! `agw-proxy`: the smallest HTTP hop built from the gateway's own parts (axum with
//! `TCP_NODELAY` in, a pooled reqwest client out). Every request's body is POSTed to one
//! upstream URL and the answer's status, content type and body are sent back; nothing is
//! parsed, checked or recorded.
//!
//! ```text
//! agw-proxy --port 9200 --upstream http://127.0.0.1:9100/v1/chat/completions
//! ```
//! The overhead benchmark measures it beside the gateway: what a hop on this stack costs by
//! itself on the machine, so that the gateway's own work is the difference.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
}

fn parse() -> Result<(u16, reqwest::Url), String> {
    let mut port = None;
    let mut upstream = None;
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = Some(value.parse().map_err(|_| "invalid --port")?),
            "--upstream" => {
                let url =
                    reqwest::Url::parse(&value).map_err(|e| format!("invalid --upstream: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err("--upstream must be an http(s) URL".into());
                }
                upstream = Some(url);
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok((
        port.ok_or("--port is required")?,
        upstream.ok_or("--upstream is required")?,
    ))
}

async fn forward(State(upstream): State<Upstream>, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = upstream.client.post(upstream.url.clone()).body(body);
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    match answer.bytes().await {
        Ok(body) => {
            let mut response = (status, body).into_response();
            if let Some(content_type) = content_type {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type);
            } else {
                response.headers_mut().remove(header::CONTENT_TYPE);
            }
            response
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

fn no_delay(stream: &mut tokio::net::TcpStream) {
    // Same as the gateway: answers are small single writes, send them at once. Without it
    // the hop's figures would not be comparable, so say so.
    if let Err(err) = stream.set_nodelay(true) {
        eprintln!("agw-proxy: cannot set TCP_NODELAY on a connection: {err}");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let (port, url) = match parse() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("agw-proxy: {message}");
            return ExitCode::from(2);
        }
    };
    let client = match reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            eprintln!("agw-proxy: cannot build the HTTP client: {err}");
            return ExitCode::FAILURE;
        }
    };
    let app = axum::Router::new()
        .route("/_proxy/health", axum::routing::get(|| async { "ok" }))
        .fallback(forward)
        .with_state(Upstream { client, url });
    let listener =
        match tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("agw-proxy: cannot listen on 127.0.0.1:{port}: {err}");
                return ExitCode::FAILURE;
            }
        };
    use axum::serve::ListenerExt;
    match axum::serve(listener.tap_io(no_delay), app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("agw-proxy: {err}");
            ExitCode::FAILURE
        }
    }
}
