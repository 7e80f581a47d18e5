//! Metrics: a registry of labelled counters, gauges and histograms (fixed buckets, in
//! seconds), recorded with atomics, read whole with [`Registry::snapshot`] (what the
//! Prometheus endpoint renders with [`Snapshot::to_prometheus`], and what an OTLP exporter
//! would read), and [`Metrics`], the gateway's own series (`agw_*`).
//!
//! Recording is cheap: a series is found by hashing its label values under a read lock (no
//! allocation once the series exists), or held as a handle ([`CounterVec::with`]) and bumped
//! with one atomic operation. A leaf module: it imports nothing of the crate.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds (seconds) of the duration histograms: 5 ms to 5 minutes.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// How many label sets one family keeps; later ones are counted under `_overflow` (a label
/// fed by mistake with unbounded values cannot grow the registry without end).
pub const MAX_SERIES_PER_FAMILY: usize = 10_000;

/// The label value of the series that collects label sets past [`MAX_SERIES_PER_FAMILY`].
pub const OVERFLOW: &str = "_overflow";

/// An `f64` updated atomically.
#[derive(Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn add(&self, value: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// The cell of a histogram series: a count per bucket (the last one past every bound), the
/// sum of the observations.
struct HistogramCell {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    sum: AtomicF64,
}

impl HistogramCell {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
        }
    }

    fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        // The first bucket whose bound is at least the value (`le`: less or equal).
        let at = self.bounds.partition_point(|bound| *bound < value);
        if let Some(count) = self.counts.get(at) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(value);
    }

    fn read(&self) -> HistogramValue {
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        let past = self.counts.last().map_or(0, |c| c.load(Ordering::Relaxed));
        HistogramValue {
            buckets,
            sum: self.sum.get(),
            // From the buckets, so `_count` always equals the `+Inf` bucket.
            count: cumulative + past,
        }
    }
}

/// What a registry family keeps per series.
trait Cell: Send + Sync + 'static {
    fn make(bounds: &'static [f64]) -> Self;
    fn value(&self, kind: Kind) -> SampleValue;
}

impl Cell for AtomicF64 {
    fn make(_: &'static [f64]) -> Self {
        Self::default()
    }

    fn value(&self, kind: Kind) -> SampleValue {
        match kind {
            Kind::Gauge => SampleValue::Gauge(self.get()),
            _ => SampleValue::Counter(self.get()),
        }
    }
}

impl Cell for HistogramCell {
    fn make(bounds: &'static [f64]) -> Self {
        Self::new(bounds)
    }

    fn value(&self, _: Kind) -> SampleValue {
        SampleValue::Histogram(self.read())
    }
}

/// One series: its label values and its cell.
struct Series<C> {
    values: Box<[String]>,
    cell: C,
}

/// A metric and its series, found by the hash of their label values.
struct Family<C> {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    series: RwLock<HashMap<u64, Vec<Arc<Series<C>>>>>,
}

fn hash_values(values: &[&str]) -> u64 {
    // FNV-1a over the values, each ended by a byte no UTF-8 text holds: no allocation, and a
    // fraction of SipHash's cost (label values come from the gateway, not from attackers who
    // could aim collisions; a collision only makes a bucket hold two series).
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for value in values {
        for byte in value.bytes().chain(std::iter::once(0xff)) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn same(series: &[String], values: &[&str]) -> bool {
    series.len() == values.len() && series.iter().zip(values).all(|(a, b)| a == b)
}

impl<C: Cell> Family<C> {
    fn new(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Self {
            name,
            help,
            kind,
            labels,
            bounds,
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Runs `apply` on the series of `values` (created on first use). A label count other
    /// than the family's is padded with empty values or cut.
    fn on(&self, values: &[&str], apply: impl FnOnce(&C)) {
        if values.len() != self.labels.len() {
            let fixed = self.fit(values);
            let fixed: Vec<&str> = fixed.iter().map(String::as_str).collect();
            return self.on(&fixed, apply);
        }
        let hash = hash_values(values);
        {
            let map = self.series.read().unwrap_or_else(|p| p.into_inner());
            if let Some(series) = map
                .get(&hash)
                .and_then(|bucket| bucket.iter().find(|s| same(&s.values, values)))
            {
                apply(&series.cell);
                return;
            }
        }
        apply(&self.series(values).cell);
    }

    fn fit(&self, values: &[&str]) -> Vec<String> {
        (0..self.labels.len())
            .map(|i| values.get(i).copied().unwrap_or_default().to_string())
            .collect()
    }

    /// The series of `values`, created if new (under the write lock).
    fn series(&self, values: &[&str]) -> Arc<Series<C>> {
        if values.len() != self.labels.len() {
            let fixed = self.fit(values);
            let fixed: Vec<&str> = fixed.iter().map(String::as_str).collect();
            return self.series(&fixed);
        }
        let hash = hash_values(values);
        let mut map = self.series.write().unwrap_or_else(|p| p.into_inner());
        if let Some(series) = map
            .get(&hash)
            .and_then(|bucket| bucket.iter().find(|s| same(&s.values, values)))
        {
            return Arc::clone(series);
        }
        // Label sets by their hash (two sets sharing one are rare enough to count as one).
        let (hash, values): (u64, Vec<&str>) = if map.len() >= MAX_SERIES_PER_FAMILY {
            let overflow = vec![OVERFLOW; values.len()];
            (hash_values(&overflow), overflow)
        } else {
            (hash, values.to_vec())
        };
        let bucket = map.entry(hash).or_default();
        if let Some(series) = bucket.iter().find(|s| same(&s.values, &values)) {
            return Arc::clone(series);
        }
        let series = Arc::new(Series {
            values: values.iter().map(|v| v.to_string()).collect(),
            cell: C::make(self.bounds),
        });
        bucket.push(Arc::clone(&series));
        series
    }

    /// Replaces every series by `values` (a gauge read at scrape time: series absent from
    /// `values` are gone).
    fn replace(&self, values: &[(&[&str], f64)], set: impl Fn(&C, f64)) {
        let mut map = self.series.write().unwrap_or_else(|p| p.into_inner());
        map.clear();
        drop(map);
        for (labels, value) in values {
            set(&self.series(labels).cell, *value);
        }
    }
}

/// Series handles that one record bumps together (a request's count and latency), found by
/// one lookup of their label values rather than one per family. Bounded like a family: past
/// [`MAX_SERIES_PER_FAMILY`] label sets, handles are made for each record and not kept.
struct HandleCache<H> {
    map: RwLock<HashMap<u64, Vec<Labelled<H>>>>,
}

/// A value kept with the label values it is for.
type Labelled<H> = (Box<[String]>, H);

impl<H> HandleCache<H> {
    fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }

    /// Runs `apply` on the handles of `values`, made by `make` the first time.
    fn on(&self, values: &[&str], make: impl FnOnce() -> H, apply: impl FnOnce(&H)) {
        let hash = hash_values(values);
        {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            if let Some((_, handles)) = map
                .get(&hash)
                .and_then(|bucket| bucket.iter().find(|(kept, _)| same(kept, values)))
            {
                apply(handles);
                return;
            }
        }
        let handles = make();
        apply(&handles);
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() < MAX_SERIES_PER_FAMILY {
            let bucket = map.entry(hash).or_default();
            if !bucket.iter().any(|(kept, _)| same(kept, values)) {
                bucket.push((values.iter().map(|v| v.to_string()).collect(), handles));
            }
        }
    }
}

/// What a family collects into a snapshot.
trait Collect: Send + Sync {
    fn collect(&self) -> FamilySnapshot;
}

impl<C: Cell> Collect for Family<C> {
    fn collect(&self) -> FamilySnapshot {
        let map = self.series.read().unwrap_or_else(|p| p.into_inner());
        let mut series: Vec<Sample> = map
            .values()
            .flatten()
            .map(|s| Sample {
                labels: self
                    .labels
                    .iter()
                    .zip(s.values.iter())
                    .map(|(name, value)| (name.to_string(), value.clone()))
                    .collect(),
                value: s.cell.value(self.kind),
            })
            .collect();
        drop(map);
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        FamilySnapshot {
            name: self.name.to_string(),
            help: self.help.to_string(),
            kind: self.kind,
            series,
        }
    }
}

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Only goes up (a total).
    Counter,
    /// A value now.
    Gauge,
    /// Observations counted in buckets, with their sum.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// Every metric of a registry, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub families: Vec<FamilySnapshot>,
}

/// One metric and its series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilySnapshot {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    /// Sorted by labels.
    pub series: Vec<Sample>,
}

/// One series: its labels (name, value) in the family's order, and its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: SampleValue,
}

/// The value of a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleValue {
    Counter(f64),
    Gauge(f64),
    Histogram(HistogramValue),
}

/// A histogram series: cumulative counts per upper bound (`+Inf` is `count`), the sum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramValue {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Snapshot {
    /// The family called `name`.
    pub fn family(&self, name: &str) -> Option<&FamilySnapshot> {
        self.families.iter().find(|f| f.name == name)
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        for family in &self.families {
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
            for sample in &family.series {
                match &sample.value {
                    SampleValue::Counter(value) | SampleValue::Gauge(value) => {
                        line(&mut out, &family.name, "", &sample.labels, None, *value);
                    }
                    SampleValue::Histogram(histogram) => {
                        for (bound, count) in &histogram.buckets {
                            line(
                                &mut out,
                                &family.name,
                                "_bucket",
                                &sample.labels,
                                Some(*bound),
                                *count as f64,
                            );
                        }
                        line(
                            &mut out,
                            &family.name,
                            "_bucket",
                            &sample.labels,
                            Some(f64::INFINITY),
                            histogram.count as f64,
                        );
                        let labels = &sample.labels;
                        line(&mut out, &family.name, "_sum", labels, None, histogram.sum);
                        let count = histogram.count as f64;
                        line(&mut out, &family.name, "_count", labels, None, count);
                    }
                }
            }
        }
        out
    }
}

/// One sample line: `name{labels,le="bound"} value`.
fn line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(String, String)],
    le: Option<f64>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (label, value) in labels {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{label}=\"{}\"", escape_label(value));
        }
        if let Some(bound) = le {
            if !first {
                out.push(',');
            }
            let _ = write!(out, "le=\"{}\"", number(bound));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// A number as the exposition format writes it (`+Inf`, `-Inf`, `NaN`).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        value.to_string()
    }
}

/// A label value escaped: backslash, double quote and line feed.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text escaped: backslash and line feed.
fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Metric families, in the order they were registered.
#[derive(Default)]
pub struct Registry {
    families: Mutex<Vec<Arc<dyn Collect>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn add<C: Cell>(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Arc<Family<C>> {
        let family = Arc::new(Family::new(name, help, kind, labels, bounds));
        self.families
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&family) as Arc<dyn Collect>);
        family
    }

    /// A counter with these label names.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> CounterVec {
        CounterVec(self.add(name, help, Kind::Counter, labels, &[]))
    }

    /// A gauge with these label names.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> GaugeVec {
        GaugeVec(self.add(name, help, Kind::Gauge, labels, &[]))
    }

    /// A histogram with these label names and bucket bounds (ascending).
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> HistogramVec {
        HistogramVec(self.add(name, help, Kind::Histogram, labels, bounds))
    }

    /// Every family and series now.
    pub fn snapshot(&self) -> Snapshot {
        let families: Vec<Arc<dyn Collect>> = self
            .families
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Snapshot {
            families: families.iter().map(|f| f.collect()).collect(),
        }
    }
}

/// A counter family.
#[derive(Clone)]
pub struct CounterVec(Arc<Family<AtomicF64>>);

impl CounterVec {
    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1.0);
    }

    /// Adds `by` (ignored unless positive: a counter never goes down).
    pub fn add(&self, values: &[&str], by: f64) {
        if by > 0.0 {
            self.0.on(values, |cell| cell.add(by));
        }
    }

    /// The series of `values`, to bump without looking it up again.
    pub fn with(&self, values: &[&str]) -> Counter {
        Counter(self.0.series(values))
    }
}

/// One counter series.
#[derive(Clone)]
pub struct Counter(Arc<Series<AtomicF64>>);

impl Counter {
    pub fn inc(&self) {
        self.0.cell.add(1.0);
    }

    pub fn add(&self, by: f64) {
        if by > 0.0 {
            self.0.cell.add(by);
        }
    }

    pub fn get(&self) -> f64 {
        self.0.cell.get()
    }
}

/// A gauge family.
#[derive(Clone)]
pub struct GaugeVec(Arc<Family<AtomicF64>>);

impl GaugeVec {
    pub fn set(&self, values: &[&str], value: f64) {
        self.0.on(values, |cell| cell.set(value));
    }

    pub fn add(&self, values: &[&str], by: f64) {
        self.0.on(values, |cell| cell.add(by));
    }

    /// Makes these the only series (values read at scrape time).
    pub fn replace(&self, values: &[(&[&str], f64)]) {
        self.0.replace(values, |cell, value| cell.set(value));
    }

    pub fn with(&self, values: &[&str]) -> Gauge {
        Gauge(self.0.series(values))
    }
}

/// One gauge series.
#[derive(Clone)]
pub struct Gauge(Arc<Series<AtomicF64>>);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.cell.set(value);
    }

    pub fn add(&self, by: f64) {
        self.0.cell.add(by);
    }

    pub fn get(&self) -> f64 {
        self.0.cell.get()
    }
}

/// A histogram family.
#[derive(Clone)]
pub struct HistogramVec(Arc<Family<HistogramCell>>);

impl HistogramVec {
    pub fn observe(&self, values: &[&str], value: f64) {
        self.0.on(values, |cell| cell.observe(value));
    }

    pub fn observe_duration(&self, values: &[&str], duration: Duration) {
        self.observe(values, duration.as_secs_f64());
    }

    pub fn with(&self, values: &[&str]) -> Histogram {
        Histogram(self.0.series(values))
    }
}

/// One histogram series.
#[derive(Clone)]
pub struct Histogram(Arc<Series<HistogramCell>>);

impl Histogram {
    pub fn observe(&self, value: f64) {
        self.0.cell.observe(value);
    }

    pub fn value(&self) -> HistogramValue {
        self.0.cell.read()
    }
}

/// How a model call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    Error,
    Timeout,
    Cancelled,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a queue holds now: jobs waiting for a worker and the age of the oldest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueDepth {
    pub jobs: u64,
    /// `None` when the broker does not tell.
    pub oldest_age: Option<Duration>,
}

/// The series a model call bumps: by model and outcome, and its token and cost totals.
struct ModelCallHandles {
    calls: Counter,
    duration: Histogram,
    input_tokens: Counter,
    output_tokens: Counter,
    cost: Counter,
}

/// The gateway's metrics (`agw_*`) in their registry.
pub struct Metrics {
    registry: Registry,
    /// Off with `metrics.enabled: false`: nothing is recorded.
    recording: std::sync::atomic::AtomicBool,
    http_handles: HandleCache<(Counter, Histogram)>,
    execution_handles: HandleCache<(Counter, Histogram)>,
    model_handles: HandleCache<ModelCallHandles>,
    http_requests: CounterVec,
    http_duration: HistogramVec,
    executions: CounterVec,
    execution_duration: HistogramVec,
    model_calls: CounterVec,
    model_duration: HistogramVec,
    model_tokens: CounterVec,
    model_cost: CounterVec,
    tool_calls: CounterVec,
    tool_duration: HistogramVec,
    queue_depth: GaugeVec,
    queue_oldest: GaugeVec,
    sessions_active: Gauge,
    schedule_fires: CounterVec,
    schedule_misfires: CounterVec,
    notifications: CounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let sessions = r.gauge(
            "agw_chat_sessions_active",
            "Chat sessions held in this instance's cache.",
            &[],
        );
        Self {
            http_requests: r.counter(
                "agw_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: r.histogram(
                "agw_http_request_duration_seconds",
                "Time to answer an HTTP request (to its response head), by route template, method and status.",
                &["route", "method", "status"],
                DURATION_BUCKETS,
            ),
            executions: r.counter(
                "agw_executions_total",
                "Executions ended in this instance, by agent and status.",
                &["agent", "status"],
            ),
            execution_duration: r.histogram(
                "agw_execution_duration_seconds",
                "How long executions ran, by agent and status.",
                &["agent", "status"],
                DURATION_BUCKETS,
            ),
            model_calls: r.counter(
                "agw_model_calls_total",
                "Model calls, by model and outcome (ok, error, timeout, cancelled).",
                &["model", "outcome"],
            ),
            model_duration: r.histogram(
                "agw_model_call_duration_seconds",
                "How long model calls took, by model and outcome.",
                &["model", "outcome"],
                DURATION_BUCKETS,
            ),
            model_tokens: r.counter(
                "agw_model_tokens_total",
                "Tokens of model calls, by model and type (input, output).",
                &["model", "type"],
            ),
            model_cost: r.counter(
                "agw_model_cost_usd_total",
                "Estimated cost of model calls in US dollars, by model.",
                &["model"],
            ),
            tool_calls: r.counter(
                "agw_tool_calls_total",
                "Tool calls, by tool and success (true, false).",
                &["tool", "success"],
            ),
            tool_duration: r.histogram(
                "agw_tool_call_duration_seconds",
                "How long tool calls took, by tool.",
                &["tool"],
                DURATION_BUCKETS,
            ),
            queue_depth: r.gauge(
                "agw_queue_depth",
                "Jobs waiting in the queue for a worker, by backend.",
                &["backend"],
            ),
            queue_oldest: r.gauge(
                "agw_queue_oldest_age_seconds",
                "Age of the oldest job waiting in the queue, by backend.",
                &["backend"],
            ),
            sessions_active: sessions.with(&[]),
            schedule_fires: r.counter(
                "agw_schedule_fires_total",
                "Schedule fires this instance started, by schedule.",
                &["schedule"],
            ),
            schedule_misfires: r.counter(
                "agw_schedule_misfires_total",
                "Schedule fires that never ran (missed past the misfire grace, or coalesced), by schedule.",
                &["schedule"],
            ),
            notifications: r.counter(
                "agw_notification_deliveries_total",
                "Notification deliveries ended, by channel and outcome (delivered, failed).",
                &["channel", "outcome"],
            ),
            registry,
            recording: std::sync::atomic::AtomicBool::new(true),
            http_handles: HandleCache::new(),
            execution_handles: HandleCache::new(),
            model_handles: HandleCache::new(),
        }
    }

    /// Turns recording on or off (`metrics.enabled`); what was recorded stays.
    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    fn recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// The registry: every family, for a snapshot or to add series of one's own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every series now (gauges read at scrape time are set by the gateway first: see
    /// `Gateway::metrics_snapshot`).
    pub fn snapshot(&self) -> Snapshot {
        self.registry.snapshot()
    }

    /// An HTTP request answered: `route` is the route template (`/v1/agents/{agent_id}`),
    /// never the path.
    pub fn http_request(&self, route: &str, method: &str, status: &str, elapsed: Duration) {
        if !self.recording() {
            return;
        }
        let labels = [route, method, status];
        self.http_handles.on(
            &labels,
            || {
                (
                    self.http_requests.with(&labels),
                    self.http_duration.with(&labels),
                )
            },
            |(count, latency)| {
                count.inc();
                latency.observe(elapsed.as_secs_f64());
            },
        );
    }

    /// An execution ended with `status`.
    pub fn execution(&self, agent: &str, status: &str, elapsed: Duration) {
        if !self.recording() {
            return;
        }
        let labels = [agent, status];
        self.execution_handles.on(
            &labels,
            || {
                (
                    self.executions.with(&labels),
                    self.execution_duration.with(&labels),
                )
            },
            |(count, latency)| {
                count.inc();
                latency.observe(elapsed.as_secs_f64());
            },
        );
    }

    /// An execution ended with `status` without having run (its queue refused it, or its
    /// worker's checks did): counted, but kept out of the duration histogram, whose
    /// observations would otherwise say runs took no time.
    pub fn execution_not_run(&self, agent: &str, status: &str) {
        if !self.recording() {
            return;
        }
        self.executions.inc(&[agent, status]);
    }

    /// A model call ended; `usage` (input tokens, output tokens, cost in USD) when it
    /// answered.
    pub fn model_call(
        &self,
        model: &str,
        outcome: CallOutcome,
        elapsed: Duration,
        usage: Option<(u64, u64, f64)>,
    ) {
        if !self.recording() {
            return;
        }
        let labels = [model, outcome.as_str()];
        let make = || ModelCallHandles {
            calls: self.model_calls.with(&labels),
            duration: self.model_duration.with(&labels),
            input_tokens: self.model_tokens.with(&[model, "input"]),
            output_tokens: self.model_tokens.with(&[model, "output"]),
            cost: self.model_cost.with(&[model]),
        };
        self.model_handles.on(&labels, make, |handles| {
            handles.calls.inc();
            handles.duration.observe(elapsed.as_secs_f64());
            if let Some((input, output, cost)) = usage {
                handles.input_tokens.add(input as f64);
                handles.output_tokens.add(output as f64);
                handles.cost.add(cost);
            }
        });
    }

    /// A tool call ended.
    pub fn tool_call(&self, tool: &str, success: bool, elapsed: Duration) {
        if !self.recording() {
            return;
        }
        let success = if success { "true" } else { "false" };
        self.tool_calls.inc(&[tool, success]);
        self.tool_duration.observe_duration(&[tool], elapsed);
    }

    /// A schedule fire started here, after `missed` fires of it that never ran.
    pub fn schedule_fire(&self, schedule: &str, missed: u64) {
        if !self.recording() {
            return;
        }
        self.schedule_fires.inc(&[schedule]);
        self.schedule_misfires.add(&[schedule], missed as f64);
    }

    /// A notification delivery ended (`delivered` or `failed`).
    pub fn notification(&self, channel: &str, delivered: bool) {
        if !self.recording() {
            return;
        }
        let outcome = if delivered { "delivered" } else { "failed" };
        self.notifications.inc(&[channel, outcome]);
    }

    /// The queue as read at scrape time (`None`: its broker does not tell).
    pub fn set_queue(&self, backend: &str, depth: Option<QueueDepth>) {
        let Some(depth) = depth else {
            self.queue_depth.replace(&[]);
            self.queue_oldest.replace(&[]);
            return;
        };
        self.queue_depth
            .replace(&[(&[backend][..], depth.jobs as f64)]);
        match depth.oldest_age {
            Some(age) => self
                .queue_oldest
                .replace(&[(&[backend][..], age.as_secs_f64())]),
            None => self.queue_oldest.replace(&[]),
        }
    }

    /// The chat sessions cached now.
    pub fn set_active_sessions(&self, count: usize) {
        self.sessions_active.set(count as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_recorded_while_recording_is_off() {
        let metrics = Metrics::new();
        metrics.set_recording(false);
        metrics.http_request("/v1/health", "GET", "200", Duration::from_millis(3));
        metrics.execution("a", "completed", Duration::from_millis(3));
        metrics.model_call(
            "m",
            CallOutcome::Ok,
            Duration::from_millis(3),
            Some((1, 2, 0.5)),
        );
        let snapshot = metrics.snapshot();
        assert!(
            snapshot
                .families
                .iter()
                .all(|f| f.series.is_empty() || f.name == "agw_chat_sessions_active"),
            "{snapshot:?}"
        );
        metrics.set_recording(true);
        metrics.model_call(
            "m",
            CallOutcome::Ok,
            Duration::from_millis(3),
            Some((1, 2, 0.5)),
        );
        metrics.model_call(
            "m",
            CallOutcome::Ok,
            Duration::from_millis(3),
            Some((4, 5, 0.25)),
        );
        let text = metrics.snapshot().to_prometheus();
        assert!(
            text.contains("agw_model_calls_total{model=\"m\",outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("agw_model_tokens_total{model=\"m\",type=\"input\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("agw_model_tokens_total{model=\"m\",type=\"output\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("agw_model_cost_usd_total{model=\"m\"} 0.75"),
            "{text}"
        );
        assert!(
            text.contains("agw_model_call_duration_seconds_count{model=\"m\",outcome=\"ok\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn counters_gauges_and_histograms_render_in_the_text_format() {
        let registry = Registry::new();
        let requests = registry.counter("t_requests_total", "Requests.", &["route", "status"]);
        requests.inc(&["/a/{id}", "200"]);
        requests.add(&["/a/{id}", "200"], 2.0);
        requests.inc(&["/b", "500"]);
        requests.add(&["/b", "500"], -4.0);
        let gauge = registry.gauge("t_depth", "Depth.", &[]);
        gauge.set(&[], 7.0);
        let latency = registry.histogram("t_seconds", "Latency.", &["route"], &[0.25, 1.0]);
        latency.observe(&["/a"], 0.125);
        latency.observe(&["/a"], 0.25);
        latency.observe(&["/a"], 0.5);
        latency.observe(&["/a"], 3.0);
        let text = registry.snapshot().to_prometheus();
        let expected = "\
# HELP t_requests_total Requests.
# TYPE t_requests_total counter
t_requests_total{route=\"/a/{id}\",status=\"200\"} 3
t_requests_total{route=\"/b\",status=\"500\"} 1
# HELP t_depth Depth.
# TYPE t_depth gauge
t_depth 7
# HELP t_seconds Latency.
# TYPE t_seconds histogram
t_seconds_bucket{route=\"/a\",le=\"0.25\"} 2
t_seconds_bucket{route=\"/a\",le=\"1\"} 3
t_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4
t_seconds_sum{route=\"/a\"} 3.875
t_seconds_count{route=\"/a\"} 4
";
        assert_eq!(text, expected);
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        let registry = Registry::new();
        let counter = registry.counter("t_total", "Help with \\ and\nnewline.", &["v"]);
        counter.inc(&["say \"hi\"\\\n"]);
        let text = registry.snapshot().to_prometheus();
        assert!(
            text.contains("# HELP t_total Help with \\\\ and\\nnewline.\n"),
            "{text}"
        );
        assert!(
            text.contains("t_total{v=\"say \\\"hi\\\"\\\\\\n\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn handles_and_lookups_share_a_series() {
        let registry = Registry::new();
        let counter = registry.counter("t_total", "T.", &["a"]);
        let held = counter.with(&["x"]);
        held.inc();
        counter.inc(&["x"]);
        assert_eq!(held.get(), 2.0);
        // A wrong number of values is fitted to the label names, never a panic.
        counter.inc(&[]);
        counter.inc(&["y", "extra"]);
        let snapshot = registry.snapshot();
        let family = snapshot.family("t_total").unwrap();
        let labels: Vec<&str> = family
            .series
            .iter()
            .map(|s| s.labels[0].1.as_str())
            .collect();
        assert_eq!(labels, ["", "x", "y"]);
    }

    #[test]
    fn histogram_count_always_matches_the_infinite_bucket() {
        let registry = Registry::new();
        let h = registry.histogram("t_seconds", "T.", &[], DURATION_BUCKETS);
        let series = h.with(&[]);
        for ms in [1, 7, 30, 2000, 900_000] {
            h.observe_duration(&[], Duration::from_millis(ms));
        }
        series.observe(f64::NAN);
        let value = series.value();
        assert_eq!(value.count, 5);
        assert_eq!(value.buckets.first(), Some(&(0.005, 1)));
        assert_eq!(value.buckets.last(), Some(&(300.0, 4)));
        assert!(value.buckets.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn gauges_read_at_scrape_time_replace_their_series() {
        let metrics = Metrics::new();
        let depth = QueueDepth {
            jobs: 3,
            oldest_age: Some(Duration::from_millis(1500)),
        };
        metrics.set_queue("memory", Some(depth));
        metrics.set_active_sessions(2);
        let text = metrics.snapshot().to_prometheus();
        assert!(
            text.contains("agw_queue_depth{backend=\"memory\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("agw_queue_oldest_age_seconds{backend=\"memory\"} 1.5\n"));
        assert!(text.contains("agw_chat_sessions_active 2\n"));
        metrics.set_queue("memory", None);
        let text = metrics.snapshot().to_prometheus();
        assert!(!text.contains("agw_queue_depth{"), "{text}");
        assert!(text.contains("# TYPE agw_queue_depth gauge\n"));
    }

    #[test]
    fn families_stop_growing_at_their_cap() {
        let registry = Registry::new();
        let counter = registry.counter("t_total", "T.", &["id"]);
        for i in 0..MAX_SERIES_PER_FAMILY + 5 {
            counter.inc(&[&i.to_string()]);
        }
        let snapshot = registry.snapshot();
        let family = snapshot.family("t_total").unwrap();
        assert_eq!(family.series.len(), MAX_SERIES_PER_FAMILY + 1);
        let overflow = family
            .series
            .iter()
            .find(|s| s.labels[0].1 == OVERFLOW)
            .unwrap();
        assert_eq!(overflow.value, SampleValue::Counter(5.0));
    }

    #[test]
    fn model_calls_count_tokens_and_cost() {
        let metrics = Metrics::new();
        let elapsed = Duration::from_millis(20);
        metrics.model_call("m", CallOutcome::Ok, elapsed, Some((10, 5, 0.25)));
        metrics.model_call("m", CallOutcome::Error, elapsed, None);
        let text = metrics.snapshot().to_prometheus();
        for line in [
            "agw_model_calls_total{model=\"m\",outcome=\"ok\"} 1\n",
            "agw_model_calls_total{model=\"m\",outcome=\"error\"} 1\n",
            "agw_model_tokens_total{model=\"m\",type=\"input\"} 10\n",
            "agw_model_tokens_total{model=\"m\",type=\"output\"} 5\n",
            "agw_model_cost_usd_total{model=\"m\"} 0.25\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
