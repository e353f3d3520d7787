//! Producing generated traffic to Kafka (`auditwatch generate --kafka`, the demo).
//!
//! The generator runs on a blocking thread and hands events over a bounded channel to
//! the async producer loop, which paces them (live mode: by the wall clock; otherwise as
//! fast as allowed by the optional token bucket), keys each message by actor so both
//! entries of a Vault request share a partition, and awaits deliveries with a bounded
//! number in flight. Cancellation stops generation, then waits for what was enqueued.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{GenSource, GenerateOptions, GeneratedEvent, Generator, Label};
use crate::error::{Error, Result};

pub const DEFAULT_TOPIC_K8S: &str = "k8s-audit";
pub const DEFAULT_TOPIC_VAULT: &str = "vault-audit";

/// Destination topics per source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub kubernetes: String,
    pub vault: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            kubernetes: DEFAULT_TOPIC_K8S.into(),
            vault: DEFAULT_TOPIC_VAULT.into(),
        }
    }
}

/// What [`produce_kafka`] delivered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProduceSummary {
    /// Messages acknowledged by the broker.
    pub delivered: u64,
    pub failed: u64,
    pub kubernetes: u64,
    pub vault: u64,
    pub elapsed_secs: f64,
    /// Scenarios all of whose events were delivered.
    pub labels: Vec<Label>,
    /// Scenarios cut short by the limit or cancellation.
    pub partial_labels: u64,
}

enum Msg {
    Event(GeneratedEvent, Option<SystemTime>),
    Labels(Vec<Label>),
}

const IN_FLIGHT: usize = 50_000;

/// Generates traffic for `opts` (live when `opts.live` is set: times follow the wall
/// clock from now) and produces it to `bootstrap`. `rate` caps messages per second
/// (token bucket), `limit` stops after that many messages; `token` stops early.
pub async fn produce_kafka(
    opts: GenerateOptions,
    bootstrap: &str,
    topics: &Topics,
    rate: Option<u64>,
    limit: Option<u64>,
    token: CancellationToken,
) -> Result<ProduceSummary> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("compression.type", "gzip")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", "60000")
        .create()
        .map_err(|e| Error::Kafka(e.to_string()))?;

    let live = opts.live.is_some();
    let mut gen_ = if live {
        Generator::live(opts, SystemTime::now())?
    } else {
        Generator::new(opts)?
    };
    let (tx, mut rx) = mpsc::channel::<Msg>(4096);
    let stop = token.clone();
    let max = limit.unwrap_or(u64::MAX);
    let producer_thread = tokio::task::spawn_blocking(move || {
        let mut n = 0u64;
        while n < max && !stop.is_cancelled() {
            let Some(ev) = gen_.next_event() else { break };
            let labels = gen_.take_new_labels();
            if !labels.is_empty() && tx.blocking_send(Msg::Labels(labels)).is_err() {
                break;
            }
            let due = gen_.due_at(ev.time_us);
            if tx.blocking_send(Msg::Event(ev, due)).is_err() {
                break;
            }
            n += 1;
        }
    });

    let started = Instant::now();
    let mut summary = ProduceSummary::default();
    let mut inflight = FuturesUnordered::new();
    // label index → events not yet delivered; event id → label index
    let mut labels: Vec<(Label, usize)> = Vec::new();
    let mut waiting: HashMap<String, usize> = HashMap::new();
    let mut bucket = rate.map(|r| TokenBucket::new(r as f64));
    let mut last_report = Instant::now();
    let mut sent = 0u64;
    let mut last_time = 0i64;

    'outer: loop {
        let msg = tokio::select! {
            _ = token.cancelled() => break,
            m = rx.recv() => match m { Some(m) => m, None => break },
        };
        let (ev, due) = match msg {
            Msg::Labels(ls) => {
                for l in ls {
                    let i = labels.len();
                    for id in &l.event_ids {
                        waiting.insert(id.clone(), i);
                    }
                    let n = l.event_ids.len();
                    labels.push((l, n));
                }
                continue;
            }
            Msg::Event(ev, due) => (ev, due),
        };
        if let Some(due) = due
            && let Ok(wait) = due.duration_since(SystemTime::now())
        {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if let Some(b) = bucket.as_mut() {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = b.take() => {}
            }
        }
        let topic = match ev.source {
            GenSource::Kubernetes => &topics.kubernetes,
            GenSource::Vault => &topics.vault,
        };
        let mut record = FutureRecord::to(topic)
            .key(ev.key.as_bytes())
            // no event-time message timestamp: replayed days would fall behind the
            // broker's time-based retention and be deleted right away
            .payload(&ev.bytes);
        loop {
            match producer.send_result(record) {
                Ok(fut) => {
                    inflight.push(async move { (fut.await, ev.source, ev.event_id) });
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::select! {
                        _ = token.cancelled() => break 'outer,
                        _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                    }
                }
                Err((e, _)) => return Err(Error::Kafka(e.to_string())),
            }
        }
        sent += 1;
        last_time = last_time.max(ev.time_us);
        while inflight.len() >= IN_FLIGHT {
            if let Some(r) = inflight.next().await {
                settle(r, &mut summary, &mut labels, &mut waiting);
            }
        }
        // collect finished deliveries without waiting
        while let Some(Some(r)) = futures::FutureExt::now_or_never(inflight.next()) {
            settle(r, &mut summary, &mut labels, &mut waiting);
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-6);
            eprintln!(
                "generate: {sent} sent, {} delivered ({} k8s, {} vault), {:.0} msg/s, simulated time {}",
                summary.delivered,
                summary.kubernetes,
                summary.vault,
                sent as f64 / secs,
                super::format::ts_secs(last_time)
            );
        }
    }
    drop(rx);
    let _ = producer_thread.await;
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    while !inflight.is_empty() {
        tokio::select! {
            _ = &mut deadline => break,
            r = inflight.next() => if let Some(r) = r {
                settle(r, &mut summary, &mut labels, &mut waiting);
            },
        }
    }
    summary.failed += inflight.len() as u64;
    let p = producer.clone();
    let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(5))).await;
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    for (l, missing) in labels {
        if missing == 0 {
            summary.labels.push(l);
        } else {
            summary.partial_labels += 1;
        }
    }
    Ok(summary)
}

type Delivered = (
    std::result::Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
    GenSource,
    String,
);

fn settle(
    r: Delivered,
    s: &mut ProduceSummary,
    labels: &mut [(Label, usize)],
    waiting: &mut HashMap<String, usize>,
) {
    let (res, source, id) = r;
    match res {
        Ok(Ok(_)) => {
            s.delivered += 1;
            match source {
                GenSource::Kubernetes => s.kubernetes += 1,
                GenSource::Vault => s.vault += 1,
            }
            // a Vault request id is delivered twice (request, response); count it once
            if let Some(i) = waiting.remove(&id) {
                labels[i].1 = labels[i].1.saturating_sub(1);
            }
        }
        _ => s.failed += 1,
    }
}

/// Refills `rate / 100` tokens every 10 ms, holding at most a tenth of a second's worth.
struct TokenBucket {
    tokens: f64,
    per_tick: f64,
    cap: f64,
    tick: tokio::time::Interval,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        TokenBucket {
            tokens: 0.0,
            per_tick: rate.max(0.001) / 100.0,
            cap: (rate / 10.0).max(1.0),
            tick,
        }
    }

    async fn take(&mut self) {
        while self.tokens < 1.0 {
            self.tick.tick().await;
            self.tokens = (self.tokens + self.per_tick).min(self.cap);
        }
        self.tokens -= 1.0;
    }
}
