//! `telemetry:` in operation: `serve` exports its spans and its metrics over OTLP
//! (HTTP/protobuf, to a receiver decoding the real payloads) with the configured headers,
//! pushes the metrics once more when it stops, and writes the trace id on its JSON log lines;
//! the console exporter prints the spans of a CLI run.

use std::process::Stdio;
use std::time::Duration;

use mock_llm::{MockLlm, Reply};
use serde_json::{Value, json};
use test_services::otlp::Receiver;

use super::{bin, free_port, serve_command, text, wait_healthy, write};

/// The names of the metrics in every export so far.
fn exported_metric(
    receiver: &Receiver,
    name: &str,
) -> Vec<opentelemetry_proto::tonic::metrics::v1::Metric> {
    receiver
        .metric_exports()
        .into_iter()
        .flat_map(|e| e.resource_metrics)
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics)
        .filter(|m| m.name == name)
        .collect()
}

/// The value of the counter data point of `metric` whose attributes include `label`.
fn counter_value(
    metric: &opentelemetry_proto::tonic::metrics::v1::Metric,
    label: (&str, &str),
) -> Option<f64> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
    let Some(Data::Sum(sum)) = &metric.data else {
        return None;
    };
    assert!(sum.is_monotonic, "a counter is a monotonic sum");
    sum.data_points
        .iter()
        .find(|p| {
            p.attributes.iter().any(|kv| {
                kv.key == label.0
                    && matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()), Some(Any::StringValue(s)) if s == label.1)
            })
        })
        .and_then(|p| match p.value {
            Some(Number::AsDouble(v)) => Some(v),
            Some(Number::AsInt(v)) => Some(v as f64),
            None => None,
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_exports_spans_and_metrics_over_http_and_logs_the_trace_id() {
    let receiver = Receiver::http().await;
    let mock = MockLlm::start().await.unwrap();
    mock.push(Reply::text("traced"));
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    write(
        &ws,
        "gateway.yaml",
        &format!(
            "model:\n  default: openai/gpt-test\nlog:\n  format: json\ntelemetry:\n  exporter: otlp\n  protocol: http\n  endpoint: {}\n  service_name: cli-test\n  metrics_interval_s: 1\n  headers:\n    authorization: Bearer collector-token\npersistence:\n  url: sqlite:///state/gateway.db\n",
            receiver.endpoint
        ),
    );
    write(&ws, "agents/greeter/AGENT.md", "Greet.\n");
    let log_path = dir.path().join("server.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve_command(&ws, port)
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_API_BASE", mock.openai_base())
        .env("RUST_LOG", "info")
        // Spans leave every 100 ms rather than every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    wait_healthy(&base).await;

    let trace = "5b8efff798038103d269b633813fc60c";
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/v1/agents/greeter/invoke"))
        .header("traceparent", format!("00-{trace}-eee19b7ec3c1b174-01"))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["result"]["raw_text"], "traced", "{answer}");
    let execution_id = answer["execution_id"].as_str().unwrap().to_string();

    let spans = receiver
        .wait_for(|spans| {
            [
                "POST /v1/agents/{agent_id}/invoke",
                "invoke_agent greeter",
                "chat gpt-test",
            ]
            .iter()
            .all(|name| spans.iter().any(|s| s.trace_id == trace && s.name == *name))
        })
        .await;
    let run = spans
        .iter()
        .find(|s| s.trace_id == trace && s.name == "invoke_agent greeter")
        .unwrap_or_else(|| panic!("no run span in {spans:#?}"));
    assert_eq!(run.service_name, "cli-test");
    let chat = spans
        .iter()
        .find(|s| s.trace_id == trace && s.name == "chat gpt-test")
        .unwrap();
    assert_eq!(chat.parent_span_id, run.span_id);
    assert!(
        chat.attr("gen_ai.input.messages").is_none(),
        "no content unless asked for"
    );
    assert!(
        receiver
            .export_headers()
            .iter()
            .all(|h| h.get("authorization").map(String::as_str) == Some("Bearer collector-token")),
        "every export carries the configured headers"
    );

    // Metrics: pushed every second, with the request just made.
    let mut invokes = None;
    for _ in 0..100 {
        invokes = exported_metric(&receiver, "agw_http_requests_total")
            .iter()
            .filter_map(|m| counter_value(m, ("route", "/v1/agents/{agent_id}/invoke")))
            .reduce(f64::max);
        if invokes.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(invokes, Some(1.0));
    assert!(!exported_metric(&receiver, "agw_model_call_duration_seconds").is_empty());

    // The JSON log line of the run's end carries the trace id.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let ended: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["message"] == "execution ended" && l["span"]["execution_id"] == execution_id.as_str()
        })
        .unwrap_or_else(|| panic!("no end line in {log}"));
    assert_eq!(ended["span"]["trace_id"], trace, "{ended}");

    // Stopping: the last push counts everything, the spans still buffered leave.
    let exports_before = receiver.metric_exports().len();
    let pid = server.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        receiver.metric_exports().len() > exports_before,
        "a last push at shutdown"
    );
}

#[test]
fn the_console_exporter_prints_the_spans_of_a_cli_run() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockLlm::start()).unwrap();
    mock.push(Reply::text("printed"));
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "gateway.yaml",
        "model:\n  default: openai/gpt-test\ntelemetry:\n  exporter: console\npersistence:\n  enabled: false\n",
    );
    write(dir.path(), "agents/greeter/AGENT.md", "Greet.\n");
    let output = bin()
        .args(["invoke", "-w"])
        .arg(dir.path())
        .args(["greeter", "hi"])
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_API_BASE", mock.openai_base())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("printed"), "{stdout}");
    let run = stderr
        .lines()
        .find(|l| l.starts_with("span invoke_agent greeter "))
        .unwrap_or_else(|| panic!("no run span in {stderr}"));
    let trace_id = run
        .split_whitespace()
        .find_map(|w| w.strip_prefix("trace_id="))
        .unwrap();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("span chat gpt-test ")
                && l.contains(&format!("trace_id={trace_id}"))),
        "{stderr}"
    );
    assert!(run.contains("gen_ai.agent.id=\"greeter\""), "{run}");
}

#[test]
fn sample_rate_zero_exports_no_span() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockLlm::start()).unwrap();
    mock.push(Reply::text("unsampled"));
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "gateway.yaml",
        "model:\n  default: openai/gpt-test\ntelemetry:\n  exporter: console\n  sample_rate: 0\npersistence:\n  enabled: false\n",
    );
    write(dir.path(), "agents/greeter/AGENT.md", "Greet.\n");
    let output = bin()
        .args(["invoke", "-w"])
        .arg(dir.path())
        .args(["greeter", "hi"])
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_API_BASE", mock.openai_base())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("unsampled"), "{stdout}");
    assert!(
        !stderr.contains("span "),
        "nothing sampled, nothing exported: {stderr}"
    );
    // The mock got no trace context either: an unsampled trace is not continued downstream.
    let sent = mock.requests();
    assert!(
        sent.iter().all(|r| r
            .headers
            .get("traceparent")
            .is_none_or(|t| t.ends_with("-00"))),
        "{sent:?}"
    );
}
