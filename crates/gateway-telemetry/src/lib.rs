//! What the gateway tells its operator: the metrics registry, the spans it exports (named
//! after OpenTelemetry's semantic conventions), W3C trace context in and out, and the
//! installation of the log and of the OTLP (or console) exporters.
//!
//! A part: it knows `gateway.yaml`'s telemetry and log keys, nothing of the core.

mod console;
pub mod context;
mod install;
pub mod metrics;
pub mod otlp_metrics;
pub mod spans;

pub use install::{Telemetry, TelemetryError, traces_on};
