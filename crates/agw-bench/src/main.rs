//! `agw-load`: a closed-loop HTTP load generator. N workers each send a request, wait for the
//! answer, and send the next, for a duration; latencies are recorded and summarised.
//!
//! ```text
//! agw-load --url http://127.0.0.1:8000/v1/agents/a/invoke --body '{"message":"hi"}' \
//!          --concurrency 10 --duration 10 [--warmup 2] [--header 'X-Api-Key: k'] [--label sqlite-c10]
//!          [--sessions 10000] [--report-every 60]
//! ```
//! The last line printed is the summary as JSON.
//!
//! `--rate R` switches to an open loop: requests start at R per second whatever the answers
//! (latency counts from the scheduled start, so a slow server cannot hide its queue), at most
//! `--concurrency` in flight (beyond that a request counts as an error). `--requests N` stops
//! after N requests instead of after the duration. `--stream` also measures, for streamed
//! answers, the time to the first chunk of generated text and the gaps between such chunks.
//!
//! Flow mode measures whole agentgate server flows: `--url` is the site, `--flow-start PATH`
//! starts a session, and each `--flow-step 'PATH JSON'` runs a step with its `X-Session-ID`;
//! one iteration (start + every step) is one measured "request".
//!
//! Chat mode (`--sessions N`): `--url` is an agent's chat URL and the load keeps N chat
//! sessions alive. Each request takes the next of N slots in turn: a slot without a session
//! sends the body as it is and keeps the `session_id` answered; a slot with one adds
//! `"session_id"` to the body, so every session gets turns in turn. A turn answered with
//! another session id or a `turn_count` other than the slot's next counts as an error (also
//! counted in `session_errors`).
//!
//! `--report-every SECS` also prints, before the summary, one JSON line per interval of the
//! measured time (label suffixed `-m1`, `-m2`, ...) with that interval's requests, errors, rate
//! and latency percentiles (by completion time), so a long run shows whether latency drifts.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    url: String,
    method: reqwest::Method,
    body: Option<String>,
    headers: Vec<(String, String)>,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    label: String,
    expect_status: u16,
    flow_start: Option<String>,
    flow_steps: Vec<(String, String)>,
    rate: Option<f64>,
    requests: Option<u64>,
    stream: bool,
    chat: Option<ChatSessions>,
    report_every: Option<Duration>,
}

/// Chat mode: the sessions the load keeps, one per slot, taken round-robin.
struct ChatSessions {
    /// The request body, to which `session_id` is added.
    body: serde_json::Map<String, serde_json::Value>,
    /// Each slot's session and its completed turns; a turn holds its slot's lock.
    slots: Vec<tokio::sync::Mutex<Option<(String, u64)>>>,
    next: AtomicUsize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        method: reqwest::Method::POST,
        body: None,
        headers: Vec::new(),
        concurrency: 1,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
        label: String::new(),
        expect_status: 200,
        flow_start: None,
        flow_steps: Vec::new(),
        rate: None,
        requests: None,
        stream: false,
        chat: None,
        report_every: None,
    };
    let mut sessions = None;
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--method" => {
                args.method = value()?
                    .parse()
                    .map_err(|_| "invalid --method".to_string())?;
            }
            "--body" => args.body = Some(value()?),
            "--header" => {
                let header = value()?;
                let (name, v) = header
                    .split_once(':')
                    .ok_or("--header expects 'Name: value'")?;
                args.headers
                    .push((name.trim().to_string(), v.trim().to_string()));
            }
            "--concurrency" | "-c" => {
                args.concurrency = value()?.parse().map_err(|_| "invalid --concurrency")?
            }
            "--duration" | "-d" => {
                args.duration =
                    Duration::from_secs_f64(value()?.parse().map_err(|_| "invalid --duration")?)
            }
            "--warmup" => {
                args.warmup =
                    Duration::from_secs_f64(value()?.parse().map_err(|_| "invalid --warmup")?)
            }
            "--label" => args.label = value()?,
            "--expect-status" => {
                args.expect_status = value()?.parse().map_err(|_| "invalid --expect-status")?
            }
            "--rate" => {
                args.rate = Some(value()?.parse().map_err(|_| "invalid --rate")?);
            }
            "--requests" => {
                args.requests = Some(value()?.parse().map_err(|_| "invalid --requests")?);
            }
            "--stream" => args.stream = true,
            "--sessions" => {
                sessions = Some(
                    value()?
                        .parse::<usize>()
                        .map_err(|_| "invalid --sessions")?,
                );
            }
            "--report-every" => {
                let secs: f64 = value()?.parse().map_err(|_| "invalid --report-every")?;
                match Duration::try_from_secs_f64(secs) {
                    Ok(every) if !every.is_zero() => args.report_every = Some(every),
                    _ => return Err("--report-every must be positive".into()),
                }
            }
            "--flow-start" => args.flow_start = Some(value()?),
            "--flow-step" => {
                let step = value()?;
                let (path, body) = step
                    .split_once(' ')
                    .ok_or("--flow-step expects 'PATH JSON'")?;
                args.flow_steps.push((path.to_string(), body.to_string()));
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if args.url.is_empty() {
        return Err("--url is required".into());
    }
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if args.body.is_none() && args.method == reqwest::Method::POST {
        args.body = Some("{}".into());
    }
    if let Some(n) = sessions {
        if n == 0 {
            return Err("--sessions must be at least 1".into());
        }
        if args.stream || args.flow_start.is_some() {
            return Err("--sessions cannot go with --stream or --flow-start".into());
        }
        let body = match serde_json::from_str(args.body.as_deref().unwrap_or("{}")) {
            Ok(serde_json::Value::Object(body)) => body,
            _ => return Err("--sessions needs a JSON object --body".into()),
        };
        args.chat = Some(ChatSessions {
            body,
            slots: (0..n).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        });
    }
    Ok(args)
}

fn request(
    client: &reqwest::Client,
    args: &Args,
    method: reqwest::Method,
    url: &str,
    body: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut request = client.request(method, url);
    for (name, value) in &args.headers {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request
}

/// One whole flow: start, then every step in order. True when every call succeeded.
async fn flow(client: &reqwest::Client, args: &Args, start: &str) -> bool {
    let base = args.url.trim_end_matches('/');
    let Ok(response) = request(
        client,
        args,
        reqwest::Method::POST,
        &format!("{base}{start}"),
        Some("{}"),
    )
    .send()
    .await
    else {
        return false;
    };
    let Ok(started) = response.json::<serde_json::Value>().await else {
        return false;
    };
    let Some(session) = started["session_id"].as_str() else {
        return false;
    };
    for (path, body) in &args.flow_steps {
        let sent = request(
            client,
            args,
            reqwest::Method::POST,
            &format!("{base}{path}"),
            Some(body),
        )
        .header("x-session-id", session)
        .send()
        .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                if response.bytes().await.is_err() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// One chat turn on the next session slot.
async fn chat_turn(client: &reqwest::Client, args: &Args, chat: &ChatSessions) -> Sample {
    let index = chat.next.fetch_add(1, Ordering::Relaxed) % chat.slots.len();
    let mut slot = chat.slots[index].lock().await;
    let mut body = chat.body.clone();
    if let Some((id, _)) = slot.as_ref() {
        body.insert("session_id".into(), serde_json::Value::from(id.as_str()));
    }
    let body = serde_json::Value::Object(body).to_string();
    let sent = request(client, args, args.method.clone(), &args.url, Some(&body))
        .send()
        .await;
    let Ok(response) = sent else {
        return Sample::default();
    };
    if response.status().as_u16() != args.expect_status {
        let _ = response.bytes().await;
        return Sample::default();
    }
    let Ok(answer) = response.json::<serde_json::Value>().await else {
        return Sample::default();
    };
    let (Some(id), Some(turns)) = (answer["session_id"].as_str(), answer["turn_count"].as_u64())
    else {
        return Sample {
            session_error: true,
            ..Sample::default()
        };
    };
    let consistent = match slot.as_ref() {
        Some((sent, done)) => sent == id && turns == done + 1,
        None => turns == 1,
    };
    *slot = Some((id.to_string(), turns));
    Sample {
        ok: consistent,
        session_error: !consistent,
        ..Sample::default()
    }
}

fn micros(duration: Duration) -> u32 {
    duration.as_micros().min(u128::from(u32::MAX)) as u32
}

/// What one request measured.
#[derive(Default)]
struct Sample {
    ok: bool,
    /// Time to the first body chunk (streaming).
    first_chunk: Option<u32>,
    /// Gaps between body chunks (streaming).
    gaps: Vec<u32>,
    /// Chat mode: answered, but with another session or turn count than expected.
    session_error: bool,
}

/// Whether a streamed chunk carries generated text: `"content":"<something>"` (OpenAI deltas
/// and the gateway's `token` events alike).
fn carries_text(bytes: &[u8]) -> bool {
    let needle = b"\"content\":\"";
    bytes
        .windows(needle.len() + 1)
        .any(|w| w.starts_with(needle) && w[needle.len()] != b'"')
}

/// One request (or flow), from `started`.
async fn once(client: &reqwest::Client, args: &Args, started: Instant) -> Sample {
    if let Some(chat) = &args.chat {
        return chat_turn(client, args, chat).await;
    }
    if let Some(start) = &args.flow_start {
        return Sample {
            ok: flow(client, args, start).await,
            ..Sample::default()
        };
    }
    let sent = request(
        client,
        args,
        args.method.clone(),
        &args.url,
        args.body.as_deref(),
    )
    .send()
    .await;
    let Ok(mut response) = sent else {
        return Sample::default();
    };
    let status_ok = response.status().as_u16() == args.expect_status;
    if !args.stream {
        // Read the whole body: a request is done when its answer is.
        return Sample {
            ok: response.bytes().await.is_ok() && status_ok,
            ..Sample::default()
        };
    }
    let mut sample = Sample::default();
    let mut last = None;
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                // Only chunks that carry generated text count (not roles, ids or usage).
                if !carries_text(&bytes) {
                    continue;
                }
                let now = Instant::now();
                match last {
                    None => sample.first_chunk = Some(micros(now - started)),
                    Some(previous) => sample.gaps.push(micros(now - previous)),
                }
                last = Some(now);
            }
            Ok(None) => break,
            Err(_) => return Sample::default(),
        }
    }
    sample.ok = status_ok;
    sample
}

/// Everything measured.
#[derive(Default)]
struct Totals {
    latencies: Vec<u32>,
    first_chunks: Vec<u32>,
    gaps: Vec<u32>,
    errors: u64,
    session_errors: u64,
}

impl Totals {
    fn add(&mut self, sample: Sample, latency: u32) {
        if sample.ok {
            self.latencies.push(latency);
            self.first_chunks.extend(sample.first_chunk);
            self.gaps.extend(sample.gaps);
        } else {
            self.errors += 1;
            self.session_errors += u64::from(sample.session_error);
        }
    }

    fn merge(&mut self, other: Totals) {
        self.latencies.extend(other.latencies);
        self.first_chunks.extend(other.first_chunks);
        self.gaps.extend(other.gaps);
        self.errors += other.errors;
        self.session_errors += other.session_errors;
    }
}

/// What the current reporting interval measured (`--report-every`), shared by the workers.
#[derive(Default)]
struct Window {
    latencies: Vec<u32>,
    errors: u64,
}

type SharedWindow = Option<Arc<Mutex<Window>>>;

fn record(window: &SharedWindow, ok: bool, latency: u32) {
    if let Some(window) = window {
        // A poisoned lock only means another task panicked mid-push of plain data.
        let mut window = window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if ok {
            window.latencies.push(latency);
        } else {
            window.errors += 1;
        }
    }
}

/// One interval's line: its requests, errors, rate and latency percentiles.
fn print_interval(args: &Args, n: u32, seconds: f64, window: Window) {
    let Window {
        mut latencies,
        errors,
    } = window;
    latencies.sort_unstable();
    let line = serde_json::json!({
        "label": format!("{}-m{n}", args.label),
        "interval": n,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "concurrency": args.concurrency,
        "requests": latencies.len(),
        "errors": errors,
        "rps": (latencies.len() as f64 / seconds.max(0.001)).round(),
        "p50_ms": percentile(&latencies, 50.0),
        "p90_ms": percentile(&latencies, 90.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": percentile(&latencies, 100.0),
    });
    println!("{line}");
}

/// Prints one line per `every` from `from`: the interval's figures, label suffixed `-mN`.
/// The last interval ends at `until` (or at `done` for a request budget) and also takes the
/// requests still in flight then.
async fn report(
    args: Arc<Args>,
    window: Arc<Mutex<Window>>,
    every: Duration,
    from: Instant,
    until: Option<Instant>,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    let take = || {
        std::mem::take(
            &mut *window
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    };
    let mut n = 1;
    let mut start = from;
    let mut finished = false;
    loop {
        let end = start + every;
        if until.is_some_and(|until| end >= until) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(end.into()) => {}
            _ = &mut done => {
                finished = true;
                break;
            }
        }
        print_interval(&args, n, every.as_secs_f64(), take());
        n += 1;
        start = end;
    }
    if !finished {
        let _ = done.await;
    }
    let end = until.unwrap_or_else(Instant::now).max(start);
    let last = take();
    if !last.latencies.is_empty() || last.errors > 0 {
        print_interval(&args, n, (end - start).as_secs_f64(), last);
    }
}

/// Closed loop: sends requests one after the other until `stop` (or the request budget).
async fn worker(
    client: reqwest::Client,
    args: Arc<Args>,
    stop: Arc<AtomicBool>,
    record_after: Instant,
    budget: Arc<std::sync::atomic::AtomicU64>,
    window: SharedWindow,
) -> Totals {
    let mut totals = Totals::default();
    while !stop.load(Ordering::Relaxed) {
        if args.requests.is_some()
            && budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
        {
            break;
        }
        let started = Instant::now();
        let sample = once(&client, &args, started).await;
        if started >= record_after {
            let latency = micros(started.elapsed());
            record(&window, sample.ok, latency);
            totals.add(sample, latency);
        }
    }
    totals
}

/// Open loop: starts requests at `rate` per second until the duration ends.
async fn open_loop(
    client: reqwest::Client,
    args: Arc<Args>,
    rate: f64,
    record_after: Instant,
    until: Instant,
    window: SharedWindow,
) -> Totals {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<(Sample, u32, bool)>();
    let mut next = Instant::now();
    let mut overloaded = 0u64;
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        let scheduled = next;
        next += interval;
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            if scheduled >= record_after {
                overloaded += 1;
                record(&window, false, 0);
            }
            continue;
        };
        let (client, args, sender) = (client.clone(), Arc::clone(&args), sender.clone());
        let window = window.clone();
        tokio::spawn(async move {
            let sample = once(&client, &args, scheduled).await;
            let latency = micros(scheduled.elapsed());
            let counted = scheduled >= record_after;
            if counted {
                record(&window, sample.ok, latency);
            }
            let _ = sender.send((sample, latency, counted));
            drop(permit);
        });
    }
    drop(sender);
    let mut totals = Totals::default();
    while let Some((sample, latency, counted)) = receiver.recv().await {
        if counted {
            totals.add(sample, latency);
        }
    }
    totals.errors += overloaded;
    totals
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => Arc::new(args),
        Err(message) => {
            eprintln!("Error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let client = match reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            eprintln!("Error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let record_after = started + args.warmup;
    let mut totals = Totals::default();
    let window: SharedWindow = args.report_every.map(|_| Arc::default());
    let (done, finished) = tokio::sync::oneshot::channel();
    let reporter = args
        .report_every
        .zip(window.clone())
        .map(|(every, window)| {
            let until = args
                .requests
                .is_none()
                .then_some(record_after + args.duration);
            tokio::spawn(report(
                Arc::clone(&args),
                window,
                every,
                record_after,
                until,
                finished,
            ))
        });
    if let Some(rate) = args.rate {
        let until = record_after + args.duration;
        totals = open_loop(
            client,
            Arc::clone(&args),
            rate,
            record_after,
            until,
            window.clone(),
        )
        .await;
    } else {
        let budget = Arc::new(std::sync::atomic::AtomicU64::new(
            args.requests.unwrap_or(0),
        ));
        let workers: Vec<_> = (0..args.concurrency)
            .map(|_| {
                tokio::spawn(worker(
                    client.clone(),
                    Arc::clone(&args),
                    Arc::clone(&stop),
                    record_after,
                    Arc::clone(&budget),
                    window.clone(),
                ))
            })
            .collect();
        if args.requests.is_none() {
            tokio::time::sleep(args.warmup + args.duration).await;
            stop.store(true, Ordering::Relaxed);
        }
        for worker in workers {
            if let Ok(part) = worker.await {
                totals.merge(part);
            }
        }
    }
    let measured = started.elapsed().saturating_sub(args.warmup).as_secs_f64();
    let _ = done.send(());
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    let Totals {
        mut latencies,
        mut first_chunks,
        mut gaps,
        errors,
        session_errors,
    } = totals;
    latencies.sort_unstable();
    first_chunks.sort_unstable();
    gaps.sort_unstable();
    let mut summary = serde_json::json!({
        "label": args.label,
        "concurrency": args.concurrency,
        "requests": latencies.len(),
        "errors": errors,
        "rps": (latencies.len() as f64 / measured.max(0.001)).round(),
        "p50_ms": percentile(&latencies, 50.0),
        "p90_ms": percentile(&latencies, 90.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": percentile(&latencies, 100.0),
    });
    if let Some(rate) = args.rate {
        summary["target_rps"] = serde_json::json!(rate);
    }
    if let Some(chat) = &args.chat {
        let open = chat
            .slots
            .iter()
            .filter(|slot| slot.try_lock().is_ok_and(|slot| slot.is_some()))
            .count();
        summary["sessions"] = serde_json::json!(chat.slots.len());
        summary["sessions_open"] = serde_json::json!(open);
        summary["session_errors"] = serde_json::json!(session_errors);
    }
    if args.stream {
        summary["first_chunk_p50_ms"] = serde_json::json!(percentile(&first_chunks, 50.0));
        summary["first_chunk_p99_ms"] = serde_json::json!(percentile(&first_chunks, 99.0));
        summary["chunk_gap_p50_ms"] = serde_json::json!(percentile(&gaps, 50.0));
        summary["chunk_gap_p99_ms"] = serde_json::json!(percentile(&gaps, 99.0));
    }
    println!("{summary}");
    if latencies.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
