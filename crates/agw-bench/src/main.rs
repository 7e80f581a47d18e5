//! `agw-load`: a closed-loop HTTP load generator. N workers each send a request, wait for the
//! answer, and send the next, for a duration; latencies are recorded and summarised.
//!
//! ```text
//! agw-load --url http://127.0.0.1:8000/v1/agents/a/invoke --body '{"message":"hi"}' \
//!          --concurrency 10 --duration 10 [--warmup 2] [--header 'X-Api-Key: k'] [--label sqlite-c10]
//! ```
//! The last line printed is the summary as JSON.
//!
//! Flow mode measures whole agentgate server flows: `--url` is the site, `--flow-start PATH`
//! starts a session, and each `--flow-step 'PATH JSON'` runs a step with its `X-Session-ID`;
//! one iteration (start + every step) is one measured "request".

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    };
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

/// Sends requests until `stop`, returning (latencies in microseconds, errors).
async fn worker(
    client: reqwest::Client,
    args: Arc<Args>,
    stop: Arc<AtomicBool>,
    record_after: Instant,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let ok = match &args.flow_start {
            Some(start) => flow(&client, &args, start).await,
            None => match request(
                &client,
                &args,
                args.method.clone(),
                &args.url,
                args.body.as_deref(),
            )
            .send()
            .await
            {
                Ok(response) => {
                    let status = response.status().as_u16();
                    // Read the whole body: a request is done when its answer is.
                    response.bytes().await.is_ok() && status == args.expect_status
                }
                Err(_) => false,
            },
        };
        if started < record_after {
            continue;
        }
        if ok {
            latencies.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        } else {
            errors += 1;
        }
    }
    (latencies, errors)
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
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            tokio::spawn(worker(
                client.clone(),
                Arc::clone(&args),
                Arc::clone(&stop),
                record_after,
            ))
        })
        .collect();
    tokio::time::sleep(args.warmup + args.duration).await;
    stop.store(true, Ordering::Relaxed);
    let measured = started.elapsed().saturating_sub(args.warmup).as_secs_f64();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        if let Ok((l, e)) = worker.await {
            latencies.extend(l);
            errors += e;
        }
    }
    latencies.sort_unstable();
    let summary = serde_json::json!({
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
    println!("{summary}");
    if latencies.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
