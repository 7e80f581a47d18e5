//! The metrics of a [`Registry`](crate::metrics::Registry) pushed over OTLP (gRPC or
//! HTTP/protobuf) every `telemetry.metrics_interval_s`: the same series `GET /metrics`
//! shows, as cumulative sums, gauges and explicit-bucket histograms.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_workspace::config::{OtlpProtocol, TelemetryConfig, TelemetryExporter};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use crate::install::signal_url;
use crate::metrics::{SampleValue, Snapshot};

/// Whether `telemetry` asks for metrics over OTLP.
pub fn wanted(telemetry: &TelemetryConfig) -> bool {
    telemetry.enabled
        && telemetry.exporter == TelemetryExporter::Otlp
        && telemetry.metrics_interval_s > 0
}

/// Pushes `snapshot()` every interval until `stop` resolves, then once more (so a process
/// that stops loses nothing it counted). A failed push is logged and retried at the next.
pub async fn push_until<S, F>(
    telemetry: TelemetryConfig,
    snapshot: S,
    stop: impl Future<Output = ()>,
) where
    S: Fn() -> F,
    F: Future<Output = Snapshot>,
{
    let pusher = match Pusher::new(&telemetry) {
        Ok(pusher) => pusher,
        Err(err) => {
            tracing::error!(error = %err, "metrics are not exported over OTLP");
            return;
        }
    };
    let mut ticks = tokio::time::interval(Duration::from_secs(telemetry.metrics_interval_s));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    tokio::pin!(stop);
    let mut failing = false;
    loop {
        let last = tokio::select! {
            _ = ticks.tick() => false,
            () = &mut stop => true,
        };
        match pusher.push(&snapshot().await).await {
            Ok(()) => failing = false,
            // Once per failure streak: a collector that is down is not a line a minute.
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %err, endpoint = %pusher.endpoint, "metrics could not be exported over OTLP");
            }
            Err(_) => {}
        }
        if last {
            return;
        }
    }
}

enum Transport {
    Http {
        client: reqwest::Client,
        headers: reqwest::header::HeaderMap,
    },
    Grpc {
        client: MetricsServiceClient<tonic::transport::Channel>,
        metadata: tonic::metadata::MetadataMap,
    },
}

struct Pusher {
    transport: Transport,
    endpoint: String,
    service_name: String,
    started_ns: u64,
}

impl Pusher {
    fn new(telemetry: &TelemetryConfig) -> Result<Self, String> {
        let base = telemetry.endpoint();
        let (transport, endpoint) = match telemetry.protocol {
            OtlpProtocol::Http => {
                let mut headers = reqwest::header::HeaderMap::new();
                for (name, value) in &telemetry.headers {
                    let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|e| format!("header '{name}': {e}"))?;
                    let value = reqwest::header::HeaderValue::from_str(value)
                        .map_err(|e| format!("header '{name}': {e}"))?;
                    headers.insert(name, value);
                }
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| e.to_string())?;
                (
                    Transport::Http { client, headers },
                    signal_url(base, "metrics"),
                )
            }
            OtlpProtocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (name, value) in &telemetry.headers {
                    let key = tonic::metadata::MetadataKey::from_bytes(name.as_bytes())
                        .map_err(|e| format!("header '{name}': {e}"))?;
                    let value = value
                        .parse()
                        .map_err(|_| format!("header '{name}': invalid value"))?;
                    metadata.insert(key, value);
                }
                let channel = tonic::transport::Endpoint::from_shared(base.to_string())
                    .map_err(|e| format!("'{base}': {e}"))?
                    .timeout(Duration::from_secs(10))
                    .connect_lazy();
                let client = MetricsServiceClient::new(channel);
                (Transport::Grpc { client, metadata }, base.to_string())
            }
        };
        Ok(Self {
            transport,
            endpoint,
            service_name: telemetry.service_name.clone(),
            started_ns: unix_nanos(),
        })
    }

    async fn push(&self, snapshot: &Snapshot) -> Result<(), String> {
        let request = export_request(snapshot, &self.service_name, self.started_ns, unix_nanos());
        match &self.transport {
            Transport::Http { client, headers } => {
                let response = client
                    .post(&self.endpoint)
                    .headers(headers.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(request.encode_to_vec())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("the collector answered {}", response.status()))
                }
            }
            Transport::Grpc { client, metadata } => {
                let mut call = tonic::Request::new(request);
                *call.metadata_mut() = metadata.clone();
                client
                    .clone()
                    .export(call)
                    .await
                    .map(|_| ())
                    .map_err(|status| format!("{}: {}", status.code(), status.message()))
            }
        }
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// `snapshot` as one OTLP export: cumulative since `start_ns`, read at `now_ns`.
pub fn export_request(
    snapshot: &Snapshot,
    service_name: &str,
    start_ns: u64,
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    let metrics = snapshot
        .families
        .iter()
        .map(|family| {
            let points = family.series.iter().map(|sample| {
                let attributes: Vec<KeyValue> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| string_attribute(k, v))
                    .collect();
                (attributes, &sample.value)
            });
            let number = |attributes, value: f64| NumberDataPoint {
                attributes,
                start_time_unix_nano: start_ns,
                time_unix_nano: now_ns,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            };
            let data = match family.kind {
                crate::metrics::Kind::Counter => metric::Data::Sum(Sum {
                    data_points: points
                        .filter_map(|(a, v)| match v {
                            SampleValue::Counter(x) => Some(number(a, *x)),
                            _ => None,
                        })
                        .collect(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
                crate::metrics::Kind::Gauge => metric::Data::Gauge(Gauge {
                    data_points: points
                        .filter_map(|(a, v)| match v {
                            SampleValue::Gauge(x) => Some(number(a, *x)),
                            _ => None,
                        })
                        .collect(),
                }),
                crate::metrics::Kind::Histogram => metric::Data::Histogram(Histogram {
                    data_points: points
                        .filter_map(|(attributes, v)| match v {
                            SampleValue::Histogram(h) => {
                                // OTLP counts per bucket; the snapshot's are cumulative.
                                let mut counts = Vec::with_capacity(h.buckets.len() + 1);
                                let mut below = 0;
                                for (_, cumulative) in &h.buckets {
                                    counts.push(cumulative.saturating_sub(below));
                                    below = *cumulative;
                                }
                                counts.push(h.count.saturating_sub(below));
                                Some(HistogramDataPoint {
                                    attributes,
                                    start_time_unix_nano: start_ns,
                                    time_unix_nano: now_ns,
                                    count: h.count,
                                    sum: Some(h.sum),
                                    bucket_counts: counts,
                                    explicit_bounds: h.buckets.iter().map(|(b, _)| *b).collect(),
                                    ..Default::default()
                                })
                            }
                            _ => None,
                        })
                        .collect(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            };
            Metric {
                name: family.name.clone(),
                description: family.help.clone(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", service_name)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "agent-gateway".to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
