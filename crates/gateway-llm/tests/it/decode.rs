//! Providers' answers decoded from bytes (`gateway_llm::decode`, the code the adapters run on
//! what arrives): the regressions of what fuzzing found (fuzz/, `.ci/fuzz.sh`).

use std::time::Duration;

use gateway_llm::decode::{self, Wire};
use gateway_llm::{Endpoint, LlmError, StreamEvent};

fn endpoint() -> Endpoint {
    Endpoint {
        provider: "test".into(),
        http: reqwest::Client::new(),
        base: "http://127.0.0.1:1".into(),
        api_key: None,
        headers: Default::default(),
        timeout: Duration::from_secs(1),
    }
}

/// The events of `body` delivered in one chunk, and delivered one byte at a time.
fn both_ways(wire: Wire, body: &str) -> (String, String) {
    let endpoint = endpoint();
    let whole = decode::stream(wire, &endpoint, "m", [body.as_bytes()]);
    let bytes = decode::stream(wire, &endpoint, "m", body.as_bytes().chunks(1));
    (format!("{whole:?}"), format!("{bytes:?}"))
}

fn finished_text(events: &[Result<StreamEvent, LlmError>]) -> Option<&str> {
    events.iter().find_map(|event| match event {
        Ok(StreamEvent::Finished(completion)) => Some(completion.text.as_str()),
        _ => None,
    })
}

/// Found by `openai_stream`: what followed the end mark in the same chunk was decoded (here
/// appended to the answer; a bad event there failed the run), while the same bytes split
/// after the mark were ignored. Now nothing after the mark counts, however the body is split.
#[test]
fn nothing_after_the_end_of_a_stream_counts_however_the_body_is_split() {
    let openai = "data: {\"choices\":[{\"delta\":{\"content\":\"cut\"},\"finish_reason\":\"length\"}]}\n\n\
                  data: [DONE]\n\n\
                  data: {\"choices\":[{\"delta\":{\"content\":\" after done\"}}]}\n\n\
                  data: not json\n\n";
    let anthropic = "event: content_block_delta\n\
                     data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
                     event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n\
                     event: content_block_delta\ndata: {\"broken\n\n";
    for (wire, body) in [(Wire::OpenAi, openai), (Wire::Anthropic, anthropic)] {
        let events = decode::stream(wire, &endpoint(), "m", [body.as_bytes()]);
        assert!(events.iter().all(Result::is_ok), "{wire:?}: {events:?}");
        assert!(
            matches!(finished_text(&events), Some("cut" | "Hi")),
            "{wire:?}: {events:?}"
        );
        let (whole, bytes) = both_ways(wire, body);
        assert_eq!(whole, bytes, "{wire:?}");
    }
}

/// Found by `anthropic_stream`: text decoded from a chunk before a bad event in the same
/// chunk was dropped (only the error came out), while the same text split into its own chunk
/// was delivered before the error. Now the events before the error always come first.
#[test]
fn events_before_a_bad_one_are_delivered_however_the_body_is_split() {
    let body = "event: content_block_delta\n\
                data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
                event: content_block_delta\ndata: {\"type\": \"con\u{1}tent\"}\n\n";
    let events = decode::stream(Wire::Anthropic, &endpoint(), "m", [body.as_bytes()]);
    assert!(
        matches!(events.as_slice(), [Ok(StreamEvent::Text(text)), Err(LlmError::InvalidResponse { .. })] if text == "Hello"),
        "{events:?}"
    );
    let (whole, bytes) = both_ways(Wire::Anthropic, body);
    assert_eq!(whole, bytes);
}

/// Found reading the Anthropic decoder while writing `anthropic_stream`, and confirmed with
/// it (out of memory): a `content_block_start` with a huge index made the decoder allocate a
/// block for every index below it. An index far beyond the blocks seen is now an error, as
/// a far tool-call index already was for OpenAI.
#[test]
fn a_content_block_index_far_out_of_order_is_refused() {
    let start = |index: u64| {
        format!(
            "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{index},\
             \"content_block\":{{\"type\":\"tool_use\",\"id\":\"t{index}\",\"name\":\"x\"}}}}\n\n\
             event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":{index}}}\n\n"
        )
    };
    for index in [4_294_967_295, u64::MAX] {
        let body = start(index);
        let events = decode::stream(Wire::Anthropic, &endpoint(), "m", [body.as_bytes()]);
        assert!(
            matches!(events.as_slice(), [Err(LlmError::InvalidResponse { message, .. })] if message.contains("out of order")),
            "{events:?}"
        );
    }
    // Indexes a little ahead (a block the provider did not send) are still read.
    let body = format!("{}{}", start(0), start(3));
    let events = decode::stream(Wire::Anthropic, &endpoint(), "m", [body.as_bytes()]);
    let calls = events
        .iter()
        .filter(|e| matches!(e, Ok(StreamEvent::ToolCall(_))))
        .count();
    assert_eq!(calls, 2, "{events:?}");
}

/// Found reading the stream reader while writing the stream targets (libFuzzer's inputs are
/// too short to show it): a body that never ends a line was held whole, and each chunk
/// searched all of it again (20 MiB in 16 KiB chunks took 8.6 s, growing with the square of
/// the length). Now an event past `MAX_EVENT_BYTES` (16 MiB) is an error, however the body is
/// split, and reading is linear.
#[test]
fn an_event_that_never_ends_is_refused_past_the_limit() {
    let chunk = vec![b'a'; 64 * 1024];
    let mut body = b"data: {\"choices\":[{\"delta\":{\"content\":\"before\"}}]}\n\ndata: ".to_vec();
    body.extend(std::iter::repeat_n(chunk.as_slice(), 17 * 16).flatten());
    for size in [body.len(), 64 * 1024, 1000] {
        let events = decode::stream(Wire::OpenAi, &endpoint(), "m", body.chunks(size));
        assert!(
            matches!(events.as_slice(),
                [Ok(StreamEvent::Text(text)), Err(LlmError::InvalidResponse { message, .. })]
                if text == "before" && message.contains("longer than")),
            "chunks of {size}: {events:?}"
        );
    }
}

/// Found with the same reading: a body that yields no event (comments, here) was read to its
/// end by the stream's task even after the caller dropped the stream (it only noticed when
/// an event could not be sent). Now the task stops reading once nobody listens.
#[tokio::test]
async fn a_dropped_stream_stops_reading_the_body() {
    use futures::StreamExt;
    use gateway_llm::ModelProvider;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A provider that answers with comments only, for as long as the connection is read.
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        let comments = ": keep-alive\n\n".repeat(1024);
        let chunk = format!("{:x}\r\n{comments}\r\n", comments.len());
        let mut written = 0usize;
        while socket.write_all(chunk.as_bytes()).await.is_ok() {
            written += comments.len();
            if written > 1024 * 1024 * 1024 {
                break;
            }
        }
        written
    });
    let mut endpoint = endpoint();
    endpoint.base = format!("http://{addr}/v1");
    endpoint.timeout = Duration::from_secs(5);
    let provider = gateway_llm::openai::OpenAi::new(endpoint);
    let request = gateway_llm::CompletionRequest {
        messages: vec![gateway_llm::Message::user("Hi")],
        tools: Vec::new(),
        temperature: None,
        max_tokens: None,
        output_schema: None,
    };
    let mut stream = provider.stream("m", &request).await.unwrap();
    let first = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(first.is_err(), "no event: {first:?}");
    drop(stream);
    let written = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the connection is closed soon after the stream is dropped")
        .unwrap();
    assert!(written < 1024 * 1024 * 1024, "{written} bytes read");
}
