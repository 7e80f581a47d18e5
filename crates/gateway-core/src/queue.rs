//! Where asynchronous executions wait for a worker: in this process (`none`, `memory`:
//! bounded), in Redis Streams (a consumer group; stalled jobs are reclaimed after the
//! visibility timeout) or in RabbitMQ (a quorum queue; unacked jobs come back when their
//! worker's connection drops; past `max_retries` deliveries they go to a dead-letter queue).
//!
//! A job is only an execution id: the execution row holds everything needed to run it. A job
//! is acknowledged after its run ends, so a worker killed mid-run loses nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use gateway_workspace::config::{QueueBackend, QueueConfig};
use redis::AsyncCommands;
use tokio::sync::Mutex;

pub use crate::metrics::QueueDepth;

/// Why the queue refused an operation; the broker's own error stays the source.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("queue: Redis: {0}")]
    Redis(#[source] Arc<redis::RedisError>),
    #[error("queue: RabbitMQ: {0}")]
    RabbitMq(#[source] Arc<lapin::Error>),
    /// Not reachable, full, or closed (the message says which).
    #[error("queue: {0}")]
    Unavailable(String),
}

impl From<redis::RedisError> for QueueError {
    fn from(err: redis::RedisError) -> Self {
        Self::Redis(Arc::new(err))
    }
}

impl From<lapin::Error> for QueueError {
    fn from(err: lapin::Error) -> Self {
        Self::RabbitMq(Arc::new(err))
    }
}

/// A job handed to a worker.
pub struct Delivery {
    pub execution_id: String,
    /// How many times it has been handed out (1 = first time).
    pub deliveries: u64,
    tag: Tag,
}

enum Tag {
    Local,
    Redis(String),
    Rabbit(Box<lapin::message::Delivery>),
}

/// A queue of execution ids.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// `none`, `memory`, `redis` or `rabbitmq`.
    fn backend(&self) -> &'static str;
    /// Whether jobs outlive this process (the orphan reaper leaves them to the queue).
    fn durable(&self) -> bool;
    async fn push(&self, execution_id: &str) -> Result<(), QueueError>;
    /// The next job for `worker`, waiting up to about a second.
    async fn next(&self, worker: &str) -> Result<Option<Delivery>, QueueError>;
    /// The job is done (whatever its execution's outcome).
    async fn ack(&self, delivery: Delivery) -> Result<(), QueueError>;
    /// Gives a job back without running it (it runs elsewhere for now).
    async fn release(&self, delivery: Delivery) -> Result<(), QueueError>;
    /// Whether the broker answers now, within [`PING_TIMEOUT`] (an in-process queue always
    /// does).
    async fn ping(&self) -> Result<(), QueueError> {
        Ok(())
    }
    /// The jobs waiting for a worker now and the age of the oldest (`None`: the broker does
    /// not tell cheaply). Read when metrics are scraped.
    async fn depth(&self) -> Result<Option<QueueDepth>, QueueError> {
        Ok(None)
    }
}

/// How long [`JobQueue::ping`] waits for the broker.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `PING` on a Redis connection, failing after [`PING_TIMEOUT`].
pub(crate) async fn ping_redis(
    connection: &redis::aio::ConnectionManager,
) -> Result<(), QueueError> {
    let mut connection = connection.clone();
    let answer = tokio::time::timeout(
        PING_TIMEOUT,
        redis::cmd("PING").query_async::<String>(&mut connection),
    )
    .await;
    match answer {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Err(QueueError::Unavailable(format!(
            "Redis did not answer PING within {} ms",
            PING_TIMEOUT.as_millis()
        ))),
    }
}

pub type SharedQueue = Arc<dyn JobQueue>;

/// In-process: a bounded channel.
pub struct LocalQueue {
    name: &'static str,
    sender: tokio::sync::mpsc::Sender<String>,
    receiver: Mutex<tokio::sync::mpsc::Receiver<String>>,
    /// When each waiting job was pushed, oldest first (for [`JobQueue::depth`]).
    pushed: std::sync::Mutex<std::collections::VecDeque<std::time::Instant>>,
}

impl LocalQueue {
    pub fn new(name: &'static str, capacity: usize) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity.max(1));
        Self {
            name,
            sender,
            receiver: Mutex::new(receiver),
            pushed: std::sync::Mutex::default(),
        }
    }
}

#[async_trait]
impl JobQueue for LocalQueue {
    fn backend(&self) -> &'static str {
        self.name
    }

    fn durable(&self) -> bool {
        false
    }

    async fn push(&self, execution_id: &str) -> Result<(), QueueError> {
        self.pushed_times().push_back(std::time::Instant::now());
        self.sender
            .try_send(execution_id.to_string())
            .inspect_err(|_| {
                self.pushed_times().pop_back();
            })
            .map_err(|e| match e {
                tokio::sync::mpsc::error::TrySendError::Full(_) => {
                    QueueError::Unavailable("the in-process queue is full; retry later".into())
                }
                tokio::sync::mpsc::error::TrySendError::Closed(_) => {
                    QueueError::Unavailable("the in-process queue is closed".into())
                }
            })
    }

    async fn next(&self, _worker: &str) -> Result<Option<Delivery>, QueueError> {
        let mut receiver = self.receiver.lock().await;
        match tokio::time::timeout(Duration::from_secs(1), receiver.recv()).await {
            Ok(Some(execution_id)) => {
                self.pushed_times().pop_front();
                Ok(Some(Delivery {
                    execution_id,
                    deliveries: 1,
                    tag: Tag::Local,
                }))
            }
            _ => Ok(None),
        }
    }

    async fn ack(&self, _delivery: Delivery) -> Result<(), QueueError> {
        Ok(())
    }

    async fn release(&self, delivery: Delivery) -> Result<(), QueueError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.push(&delivery.execution_id).await
    }

    async fn depth(&self) -> Result<Option<QueueDepth>, QueueError> {
        let pushed = self.pushed_times();
        Ok(Some(QueueDepth {
            jobs: pushed.len() as u64,
            oldest_age: pushed.front().map(std::time::Instant::elapsed),
        }))
    }
}

impl LocalQueue {
    fn pushed_times(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::VecDeque<std::time::Instant>> {
        self.pushed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A Redis connection that reconnects by itself, after one plain connection attempt that
/// fails fast (the connection manager alone would retry for many seconds at startup).
pub(crate) async fn connect_redis(url: &str) -> Result<redis::aio::ConnectionManager, String> {
    let shown = gateway_workspace::config::redact_url(url);
    let client = redis::Client::open(url).map_err(|e| format!("{shown}: {e}"))?;
    match tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("cannot reach {shown}: {e}")),
        Err(_) => return Err(format!("cannot reach {shown}: no answer within 5 s")),
    }
    redis::aio::ConnectionManager::new(client)
        .await
        .map_err(|e| format!("cannot reach {shown}: {e}"))
}

/// Redis Streams with a consumer group.
pub struct RedisQueue {
    connection: redis::aio::ConnectionManager,
    stream: String,
    group: String,
    visibility: Duration,
    max_retries: u64,
}

impl RedisQueue {
    pub async fn connect(config: &QueueConfig) -> Result<Self, QueueError> {
        let mut connection = connect_redis(&config.redis_url)
            .await
            .map_err(QueueError::Unavailable)?;
        let created: Result<(), redis::RedisError> = connection
            .xgroup_create_mkstream(&config.stream_key, &config.consumer_group, "0")
            .await;
        if let Err(err) = created
            && !err.to_string().contains("BUSYGROUP")
        {
            return Err(err.into());
        }
        Ok(Self {
            connection,
            stream: config.stream_key.clone(),
            group: config.consumer_group.clone(),
            visibility: Duration::from_secs(config.visibility_timeout_s.max(1)),
            max_retries: u64::from(config.max_retries.max(1)),
        })
    }

    fn delivery(entry: &redis::streams::StreamId, deliveries: u64) -> Option<Delivery> {
        let execution_id = match entry.map.get("execution_id") {
            Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(redis::Value::SimpleString(text)) => text.clone(),
            _ => return None,
        };
        Some(Delivery {
            execution_id,
            deliveries,
            tag: Tag::Redis(entry.id.clone()),
        })
    }

    /// A job whose worker went silent longer than the visibility timeout.
    async fn reclaim(&self, worker: &str) -> Result<Option<Delivery>, QueueError> {
        let mut connection = self.connection.clone();
        let reply: redis::streams::StreamAutoClaimReply = connection
            .xautoclaim_options(
                &self.stream,
                &self.group,
                worker,
                self.visibility.as_millis() as u64,
                "0-0",
                redis::streams::StreamAutoClaimOptions::default().count(1),
            )
            .await?;
        let Some(entry) = reply.claimed.first() else {
            return Ok(None);
        };
        let pending: redis::streams::StreamPendingCountReply = connection
            .xpending_count(&self.stream, &self.group, &entry.id, &entry.id, 1)
            .await?;
        let deliveries = pending.ids.first().map_or(1, |p| p.times_delivered as u64);
        if deliveries > self.max_retries + 1 {
            // Tried too often: park it in the dead-letter stream.
            let execution_id = Self::delivery(entry, deliveries).map(|d| d.execution_id);
            let _: String = connection
                .xadd(
                    format!("{}:dead", self.stream),
                    "*",
                    &[("execution_id", execution_id.unwrap_or_default())],
                )
                .await?;
            let _: i64 = connection
                .xack(&self.stream, &self.group, &[&entry.id])
                .await?;
            tracing::error!(entry = %entry.id, deliveries, "job dead-lettered after too many deliveries");
            return Ok(None);
        }
        Ok(Self::delivery(entry, deliveries))
    }
}

#[async_trait]
impl JobQueue for RedisQueue {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), QueueError> {
        ping_redis(&self.connection).await
    }

    fn durable(&self) -> bool {
        true
    }

    async fn push(&self, execution_id: &str) -> Result<(), QueueError> {
        let mut connection = self.connection.clone();
        let _: String = connection
            .xadd(&self.stream, "*", &[("execution_id", execution_id)])
            .await?;
        Ok(())
    }

    async fn next(&self, worker: &str) -> Result<Option<Delivery>, QueueError> {
        if let Some(reclaimed) = self.reclaim(worker).await? {
            return Ok(Some(reclaimed));
        }
        let mut connection = self.connection.clone();
        // Not BLOCK: the connection is shared; an empty read waits here instead.
        let reply: redis::streams::StreamReadReply = connection
            .xread_options(
                &[&self.stream],
                &[">"],
                &redis::streams::StreamReadOptions::default()
                    .group(&self.group, worker)
                    .count(1),
            )
            .await?;
        let entry = reply.keys.first().and_then(|k| k.ids.first());
        match entry.and_then(|e| Self::delivery(e, 1)) {
            Some(delivery) => Ok(Some(delivery)),
            None => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(None)
            }
        }
    }

    async fn ack(&self, delivery: Delivery) -> Result<(), QueueError> {
        if let Tag::Redis(id) = delivery.tag {
            let mut connection = self.connection.clone();
            let _: i64 = connection.xack(&self.stream, &self.group, &[&id]).await?;
            let _: i64 = connection.xdel(&self.stream, &[&id]).await?;
        }
        Ok(())
    }

    async fn release(&self, _delivery: Delivery) -> Result<(), QueueError> {
        // Left pending: it is reclaimed after the visibility timeout if still unfinished.
        Ok(())
    }

    /// Entries not yet delivered to the group (acknowledged ones are deleted, so the stream
    /// holds the waiting and the pending); the oldest is the first after the group's last
    /// delivered id, whose id is its time in milliseconds.
    async fn depth(&self) -> Result<Option<QueueDepth>, QueueError> {
        let mut connection = self.connection.clone();
        let length: u64 = connection.xlen(&self.stream).await?;
        let groups: redis::streams::StreamInfoGroupsReply =
            connection.xinfo_groups(&self.stream).await?;
        let Some(group) = groups.groups.iter().find(|g| g.name == self.group) else {
            return Ok(None);
        };
        let jobs = group
            .lag
            .map(|lag| lag as u64)
            .unwrap_or_else(|| length.saturating_sub(group.pending as u64));
        let next: redis::streams::StreamRangeReply = connection
            .xrange_count(
                &self.stream,
                format!("({}", group.last_delivered_id),
                "+",
                1,
            )
            .await?;
        let oldest_age = next
            .ids
            .first()
            .and_then(|entry| entry.id.split('-').next()?.parse::<i64>().ok())
            .map(|ms| {
                let age = chrono::Utc::now().timestamp_millis() - ms;
                Duration::from_millis(u64::try_from(age).unwrap_or(0))
            });
        Ok(Some(QueueDepth { jobs, oldest_age }))
    }
}

/// RabbitMQ: a durable quorum queue with a delivery limit and a dead-letter queue.
pub struct RabbitQueue {
    connection: lapin::Connection,
    publisher: lapin::Channel,
    queue: String,
    /// One consumer per worker, created on first use.
    consumers: Mutex<std::collections::HashMap<String, Arc<Mutex<lapin::Consumer>>>>,
    /// The channel [`JobQueue::depth`] asks on, opened on first use and again once closed: a
    /// passive declare that fails closes its channel, which must be neither the publisher's
    /// nor a consumer's.
    inspector: Mutex<Option<lapin::Channel>>,
}

impl RabbitQueue {
    pub async fn connect(config: &QueueConfig) -> Result<Self, QueueError> {
        use lapin::options::QueueDeclareOptions;
        use lapin::types::{AMQPValue, FieldTable};
        let connection = lapin::Connection::connect(
            &config.rabbitmq_url,
            lapin::ConnectionProperties::default(),
        )
        .await
        .map_err(|e| {
            QueueError::Unavailable(format!(
                "cannot reach {}: {e}",
                gateway_workspace::config::redact_url(&config.rabbitmq_url)
            ))
        })?;
        let publisher = connection.create_channel().await?;
        let dead = format!("{}.dead", config.queue_name);
        publisher
            .queue_declare(
                dead.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(config.max_retries.max(1) as i32),
        );
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(dead.as_str().into()),
        );
        publisher
            .queue_declare(
                config.queue_name.as_str().into(),
                QueueDeclareOptions::durable(),
                arguments,
            )
            .await?;
        Ok(Self {
            connection,
            publisher,
            queue: config.queue_name.clone(),
            consumers: Mutex::new(std::collections::HashMap::new()),
            inspector: Mutex::new(None),
        })
    }

    async fn consumer(&self, worker: &str) -> Result<Arc<Mutex<lapin::Consumer>>, QueueError> {
        use lapin::options::{BasicConsumeOptions, BasicQosOptions};
        let mut consumers = self.consumers.lock().await;
        if let Some(consumer) = consumers.get(worker) {
            return Ok(Arc::clone(consumer));
        }
        let channel = self.connection.create_channel().await?;
        // One unacknowledged job per worker: the rest wait for other workers.
        channel.basic_qos(1, BasicQosOptions::default()).await?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                worker.into(),
                BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await?;
        let consumer = Arc::new(Mutex::new(consumer));
        consumers.insert(worker.to_string(), Arc::clone(&consumer));
        Ok(consumer)
    }

    /// The messages ready for a consumer, by a passive declare on the inspector channel.
    async fn ready_messages(&self) -> Result<u64, QueueError> {
        use lapin::options::QueueDeclareOptions;
        let mut inspector = self.inspector.lock().await;
        let channel = match inspector.as_ref() {
            Some(channel) if channel.status().connected() => channel.clone(),
            _ => {
                let channel = self.connection.create_channel().await?;
                *inspector = Some(channel.clone());
                channel
            }
        };
        let declared = channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .inspect_err(|_| {
                // The broker closes a channel whose declare it refused: open another next time.
                *inspector = None;
            })?;
        Ok(u64::from(declared.message_count()))
    }
}

#[async_trait]
impl JobQueue for RabbitQueue {
    fn backend(&self) -> &'static str {
        "rabbitmq"
    }

    async fn ping(&self) -> Result<(), QueueError> {
        if self.connection.status().connected() && self.publisher.status().connected() {
            Ok(())
        } else {
            Err(QueueError::Unavailable(
                "the RabbitMQ connection is closed".into(),
            ))
        }
    }

    fn durable(&self) -> bool {
        true
    }

    async fn push(&self, execution_id: &str) -> Result<(), QueueError> {
        self.publisher
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                execution_id.as_bytes(),
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await?;
        Ok(())
    }

    async fn next(&self, worker: &str) -> Result<Option<Delivery>, QueueError> {
        let consumer = self.consumer(worker).await?;
        let mut consumer = consumer.lock().await;
        match tokio::time::timeout(Duration::from_secs(1), consumer.next()).await {
            Ok(Some(Ok(delivery))) => {
                let execution_id = String::from_utf8_lossy(&delivery.data).into_owned();
                let deliveries = if delivery.redelivered { 2 } else { 1 };
                Ok(Some(Delivery {
                    execution_id,
                    deliveries,
                    tag: Tag::Rabbit(Box::new(delivery)),
                }))
            }
            Ok(Some(Err(err))) => Err(err.into()),
            _ => Ok(None),
        }
    }

    async fn ack(&self, delivery: Delivery) -> Result<(), QueueError> {
        if let Tag::Rabbit(delivery) = delivery.tag {
            delivery
                .ack(lapin::options::BasicAckOptions::default())
                .await?;
        }
        Ok(())
    }

    async fn release(&self, delivery: Delivery) -> Result<(), QueueError> {
        if let Tag::Rabbit(delivery) = delivery.tag {
            tokio::time::sleep(Duration::from_millis(200)).await;
            delivery
                .nack(lapin::options::BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await?;
        }
        Ok(())
    }

    /// The queue's ready messages (those handed to a worker and not yet acknowledged are not
    /// waiting). The age of the oldest stays unknown: AMQP tells it only by taking the message
    /// off the queue, and the management API is another port and another credential.
    async fn depth(&self) -> Result<Option<QueueDepth>, QueueError> {
        let jobs = tokio::time::timeout(PING_TIMEOUT, self.ready_messages())
            .await
            .map_err(|_| {
                QueueError::Unavailable(format!(
                    "RabbitMQ did not answer a passive declare within {} ms",
                    PING_TIMEOUT.as_millis()
                ))
            })??;
        Ok(Some(QueueDepth {
            jobs,
            oldest_age: None,
        }))
    }
}

/// The queue `config` asks for.
pub async fn open(config: &QueueConfig) -> Result<SharedQueue, QueueError> {
    // Bounded: beyond this many waiting jobs, async requests are refused (503).
    let capacity = 10_000;
    Ok(match config.backend {
        QueueBackend::None => Arc::new(LocalQueue::new("none", capacity)),
        QueueBackend::Memory => Arc::new(LocalQueue::new("memory", capacity)),
        QueueBackend::Redis => Arc::new(RedisQueue::connect(config).await?),
        QueueBackend::Rabbitmq => Arc::new(RabbitQueue::connect(config).await?),
    })
}
