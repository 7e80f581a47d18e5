//! Asynchronous execution through each queue backend: 202 with a poll URL, then the
//! worker's result; the jobs waiting in RabbitMQ on `/metrics`.

use std::time::Duration;

use mock_llm::Reply;
use serde_json::{Value, json};

use crate::support::*;

async fn run_async_through(queue_yaml: &str) -> Value {
    run_async_through_keeping(queue_yaml).await.0
}

/// Also returns the server, for more requests against the same gateway.
async fn run_async_through_keeping(
    queue_yaml: &str,
) -> (Value, TestServer, mock_llm::MockLlm, TestWorkspace) {
    let ws = TestWorkspace::new();
    ws.config(&format!("model:\n  default: {MODEL}\nqueue:\n{queue_yaml}"));
    ws.agent("worker", "execution_mode: async", "Work.");
    let (mock, server) = start(&ws).await;
    mock.set_default(Reply::text("worked"));
    let (status, queued) = server
        .post("/v1/agents/worker/invoke", json!({"message": "go"}))
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["status"], "queued");
    let poll = queued["poll_url"].as_str().unwrap().to_string();
    for _ in 0..200 {
        let (_, record) = server.get(&poll).await;
        if record["status"] == "completed" {
            return (record, server, mock, ws);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the queued execution did not complete");
}

#[tokio::test(flavor = "multi_thread")]
async fn async_runs_go_through_the_in_process_queues() {
    for backend in ["none", "memory"] {
        let record = run_async_through(&format!("  backend: {backend}\n  workers: 2\n")).await;
        assert_eq!(record["result"]["raw_text"], "worked", "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn async_runs_go_through_redis_streams() {
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let stream = format!("agw-test-{}", uuid::Uuid::new_v4().simple());
    let (record, server, _mock, _ws) = run_async_through_keeping(&format!(
        "  backend: redis\n  redis_url: {url}\n  stream_key: {stream}\n  workers: 2\n"
    ))
    .await;
    assert_eq!(record["result"]["raw_text"], "worked");
    assert_eq!(record["options"]["queue"], "durable");
    // A programmatic async run is run by its caller, not the queue: the reaper may fail it
    // if its process dies, so it carries no queue marker.
    let kind = agent_gateway::RunKind::Invoke {
        output_schema: None,
        run_async: true,
    };
    let request = agent_gateway::RunRequest::new("worker", "go", kind);
    let result = server
        .gateway
        .run(&agent_gateway::Actor::system(), request)
        .await
        .unwrap();
    let (_, direct) = server
        .get(&format!("/v1/executions/{}", result.execution_id))
        .await;
    assert_eq!(direct["status"], "completed");
    assert!(direct["options"].get("queue").is_none(), "{direct}");
}

#[tokio::test(flavor = "multi_thread")]
async fn async_runs_go_through_rabbitmq() {
    let Some(url) = test_services::service_url("TEST_RABBITMQ_URL", "RabbitMQ") else {
        return;
    };
    let queue = format!("agw.test.{}", uuid::Uuid::new_v4().simple());
    let record = run_async_through(&format!(
        "  backend: rabbitmq\n  rabbitmq_url: \"{url}\"\n  queue_name: {queue}\n  workers: 2\n"
    ))
    .await;
    assert_eq!(record["result"]["raw_text"], "worked");
}

/// Deletes the RabbitMQ queue `name` and its dead-letter queue (whatever they hold).
pub(crate) async fn delete_rabbitmq_queues(url: &str, name: &str) {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for queue in [name.to_string(), format!("{name}.dead")] {
        channel
            .queue_delete(
                queue.as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_the_jobs_waiting_in_rabbitmq() {
    let Some(url) = test_services::service_url("TEST_RABBITMQ_URL", "RabbitMQ") else {
        return;
    };
    let queue = format!("agw.test.depth.{}", uuid::Uuid::new_v4().simple());
    let ws = TestWorkspace::new();
    // No workers: the jobs stay in the queue.
    ws.config(&format!(
        "model:\n  default: {MODEL}\nqueue:\n  backend: rabbitmq\n  rabbitmq_url: \"{url}\"\n  queue_name: {queue}\n  workers: 0\n"
    ));
    ws.agent("worker", "execution_mode: async", "Work.");
    let (_mock, server) = start(&ws).await;
    let scrape = || async {
        let response = server
            .client
            .get(format!("{}/metrics", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    assert!(
        scrape()
            .await
            .contains("agw_queue_depth{backend=\"rabbitmq\"} 0\n"),
        "an empty queue"
    );
    for _ in 0..3 {
        let (status, queued) = server
            .post("/v1/agents/worker/invoke", json!({"message": "go"}))
            .await;
        assert_eq!(status, 202, "{queued}");
    }
    let waiting = "agw_queue_depth{backend=\"rabbitmq\"} 3\n";
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape().await;
        if text.contains(waiting) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains(waiting), "{text}");
    // RabbitMQ does not tell the age of its oldest message.
    assert!(!text.contains("agw_queue_oldest_age_seconds{"), "{text}");
    server.gateway.shutdown().await;
    delete_rabbitmq_queues(&url, &queue).await;
}

#[tokio::test]
async fn an_unreachable_queue_stops_the_start() {
    let ws = TestWorkspace::new();
    ws.config(&format!(
        "model:\n  default: {MODEL}\nqueue:\n  backend: redis\n  redis_url: redis://127.0.0.1:1\n"
    ));
    let err = agent_gateway::Gateway::builder(ws.path())
        .build()
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn rabbitmq_dead_letters_a_job_after_max_retries() {
    use agent_gateway::queue::{JobQueue, RabbitQueue};
    let Some(url) = test_services::service_url("TEST_RABBITMQ_URL", "RabbitMQ") else {
        return;
    };
    let config = gateway_workspace::config::QueueConfig {
        rabbitmq_url: url.clone(),
        queue_name: format!("agw.test.dlq.{}", uuid::Uuid::new_v4().simple()),
        max_retries: 2,
        ..Default::default()
    };
    let queue = RabbitQueue::connect(&config).await.unwrap();
    queue.push("exec-1").await.unwrap();
    // Given back every time: after the delivery limit it leaves the queue.
    let mut handed_out = 0;
    for _ in 0..10 {
        match queue.next("w").await.unwrap() {
            Some(delivery) => {
                handed_out += 1;
                queue.release(delivery).await.unwrap();
            }
            None => break,
        }
    }
    assert_eq!(
        handed_out, 3,
        "first delivery plus max_retries redeliveries"
    );
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let dead = channel
        .basic_get(
            format!("{}.dead", config.queue_name).as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the job is in the dead-letter queue");
    assert_eq!(String::from_utf8_lossy(&dead.data), "exec-1");
}

#[tokio::test]
async fn redis_reclaims_stalled_jobs_then_dead_letters_them() {
    use agent_gateway::queue::{JobQueue, RedisQueue};
    let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let config = gateway_workspace::config::QueueConfig {
        redis_url: url.clone(),
        stream_key: format!("agw-test-dlq-{}", uuid::Uuid::new_v4().simple()),
        visibility_timeout_s: 1,
        max_retries: 1,
        ..Default::default()
    };
    let queue = RedisQueue::connect(&config).await.unwrap();
    queue.push("exec-2").await.unwrap();
    let first = queue.next("dead-worker").await.unwrap().unwrap();
    assert_eq!(
        (first.execution_id.as_str(), first.deliveries),
        ("exec-2", 1)
    );
    // Never acknowledged: after the visibility timeout another worker gets it.
    let mut reclaimed = None;
    for _ in 0..40 {
        if let Some(delivery) = queue.next("live-worker").await.unwrap() {
            reclaimed = Some(delivery);
            break;
        }
    }
    let reclaimed = reclaimed.expect("reclaimed");
    assert_eq!(reclaimed.execution_id, "exec-2");
    assert_eq!(reclaimed.deliveries, 2);
    // Stalled again: past max_retries it goes to the dead-letter stream.
    let mut again = false;
    for _ in 0..15 {
        if queue.next("third").await.unwrap().is_some() {
            again = true;
        }
    }
    assert!(!again, "not handed out a third time");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let dead: i64 = redis::cmd("XLEN")
        .arg(format!("{}:dead", config.stream_key))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(dead, 1);
}
