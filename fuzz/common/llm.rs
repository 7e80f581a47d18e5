//! What the model-provider targets share: one endpoint (its HTTP client is never used: the
//! bytes are given) and the check that a stream decodes the same however it is split.

use std::sync::OnceLock;
use std::time::Duration;

use gateway_llm::Endpoint;
use gateway_llm::decode::{self, Wire};

pub fn endpoint() -> &'static Endpoint {
    static ENDPOINT: OnceLock<Endpoint> = OnceLock::new();
    ENDPOINT.get_or_init(|| Endpoint {
        provider: "fuzz".into(),
        http: reqwest::Client::new(),
        base: "http://127.0.0.1:1".into(),
        api_key: None,
        headers: Default::default(),
        timeout: Duration::from_secs(1),
    })
}

/// Decodes `data` as one chunk and as small chunks (their size taken from the data): a
/// connection may split a body anywhere, so both must give the same events.
#[allow(dead_code)] // the stream targets use it, `provider_json` does not
pub fn stream(wire: Wire, data: &[u8]) {
    let whole = decode::stream(wire, endpoint(), "m", [data]);
    let size = data.first().map_or(1, |b| usize::from(b % 7) + 1);
    let split = decode::stream(wire, endpoint(), "m", data.chunks(size));
    let (whole, split) = (format!("{whole:?}"), format!("{split:?}"));
    assert_eq!(whole, split, "chunks of {size} bytes decode differently");
}
