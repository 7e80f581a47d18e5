//! `telemetry.exporter: console`: each finished span as one line on standard error (name,
//! trace, span and parent ids, duration, status, attributes).

use std::fmt::Write as _;
use std::io::Write as _;

use opentelemetry::trace::Status;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

#[derive(Debug)]
pub(crate) struct ConsoleExporter;

impl SpanExporter for ConsoleExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = String::new();
        for span in &batch {
            let duration = span
                .end_time
                .duration_since(span.start_time)
                .unwrap_or_default();
            let _ = write!(
                out,
                "span {} trace_id={} span_id={} parent_id={} duration_ms={:.3}",
                span.name,
                span.span_context.trace_id(),
                span.span_context.span_id(),
                span.parent_span_id,
                duration.as_secs_f64() * 1000.0,
            );
            if let Status::Error { description } = &span.status {
                let _ = write!(out, " status=error description={description:?}");
            }
            for attribute in &span.attributes {
                let _ = write!(out, " {}={:?}", attribute.key, attribute.value.as_str());
            }
            out.push('\n');
        }
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
        Ok(())
    }
}
