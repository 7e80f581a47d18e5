//! Installs the process's log and trace pipeline: the log (text or JSON lines on standard
//! error, filtered by `RUST_LOG` or `log.level`) and, when `telemetry:` asks for it, an
//! OpenTelemetry layer exporting the spans of [`crate::spans`] over OTLP (gRPC or
//! HTTP/protobuf) or to the console.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gateway_workspace::config::{
    LogConfig, LogFormat, OtlpProtocol, TelemetryConfig, TelemetryExporter,
};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanExporter};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::console::ConsoleExporter;
use crate::spans::TARGET;

/// Whether the installed pipeline records traces: read on every span-context lookup, so
/// that nothing is computed for a trace nobody records.
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Whether traces are recorded (a [`Telemetry`] exporting them is installed).
pub fn traces_on() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the trace exporter for {endpoint} cannot be built: {source}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("telemetry.headers: {0}")]
    Headers(String),
    #[error("a log and trace pipeline is already installed in this process")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// The installed pipeline; [`Telemetry::shutdown`] exports the spans still buffered.
#[must_use = "dropping it loses the spans still buffered; call shutdown"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the log and, when `telemetry` says so, the trace exporter, for the whole
    /// process. Needs a Tokio runtime when traces are exported (the exporter runs on it).
    pub fn install(telemetry: &TelemetryConfig, log: &LogConfig) -> Result<Self, TelemetryError> {
        let filter = EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&log.level))
            .unwrap_or_else(|_| EnvFilter::new("info"));
        // The exported spans never reach the log: their fields are for the trace.
        let filter = match format!("{TARGET}=off").parse() {
            Ok(directive) => filter.add_directive(directive),
            Err(_) => filter,
        };
        let provider = if telemetry.traces_on() {
            Some(tracer_provider(telemetry)?)
        } else {
            None
        };
        let otel = provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("agent-gateway"))
                .with_threads(false)
                .with_location(false)
                .with_tracked_inactivity(false)
                .with_filter(filter_fn(|meta| meta.target() == TARGET))
        });
        // Without traces the filter is global: cheaper than a per-layer one on every span.
        let registry = tracing_subscriber::registry();
        match otel {
            None => registry.with(filter).with(log_layer(log)).try_init(),
            Some(otel) => registry
                .with(log_layer(log).with_filter(filter))
                .with(otel)
                .try_init(),
        }
        .map_err(TelemetryError::AlreadyInstalled)?;
        TRACES_ON.store(provider.is_some(), Ordering::Relaxed);
        Ok(Self { provider })
    }

    /// Exports the spans ended so far (waits for the export).
    pub async fn flush(&self) {
        let Some(provider) = self.provider.clone() else {
            return;
        };
        if let Ok(Err(err)) = tokio::task::spawn_blocking(move || provider.force_flush()).await {
            tracing::warn!(error = %err, "spans could not be exported");
        }
    }

    /// Exports what is buffered and stops the exporter (at most a few seconds).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        TRACES_ON.store(false, Ordering::Relaxed);
        let stopped = tokio::task::spawn_blocking(move || {
            provider.shutdown_with_timeout(Duration::from_secs(5))
        })
        .await;
        if let Ok(Err(err)) = stopped {
            tracing::warn!(error = %err, "the last spans could not be exported");
        }
    }
}

/// The log: text or one JSON object per line (with the spans' ids), on standard error.
fn log_layer<S>(log: &LogConfig) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match log.format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    }
}

fn tracer_provider(telemetry: &TelemetryConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(telemetry.sample_rate)));
    let builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler);
    let builder = match telemetry.exporter {
        TelemetryExporter::Console => builder.with_span_processor(batch(ConsoleExporter)),
        _ => builder.with_span_processor(batch(otlp_exporter(telemetry)?)),
    };
    Ok(builder.build())
}

fn batch(exporter: impl SpanExporter + 'static) -> BatchSpanProcessor<Tokio> {
    BatchSpanProcessor::builder(exporter, Tokio).build()
}

fn otlp_exporter(
    telemetry: &TelemetryConfig,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let endpoint = telemetry.endpoint();
    let built = match telemetry.protocol {
        OtlpProtocol::Grpc => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            for (name, value) in &telemetry.headers {
                let key =
                    tonic::metadata::MetadataKey::from_bytes(name.as_bytes()).map_err(|_| {
                        TelemetryError::Headers(format!("'{name}' is not a header name"))
                    })?;
                let value = value.parse().map_err(|_| {
                    TelemetryError::Headers(format!("'{name}' has an invalid value"))
                })?;
                metadata.insert(key, value);
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_metadata(metadata)
                .build()
        }
        OtlpProtocol::Http => {
            let headers: HashMap<String, String> = telemetry.headers.clone().into_iter().collect();
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(signal_url(endpoint, "traces"))
                .with_headers(headers)
                .build()
        }
    };
    built.map_err(|source| TelemetryError::Exporter {
        endpoint: endpoint.to_string(),
        source,
    })
}

/// The HTTP URL of a signal: the base URL with `/v1/<signal>` added, unless it is there.
pub(crate) fn signal_url(base: &str, signal: &str) -> String {
    let path = format!("/v1/{signal}");
    let base = base.trim_end_matches('/');
    if base.ends_with(&path) {
        base.to_string()
    } else {
        format!("{base}{path}")
    }
}
