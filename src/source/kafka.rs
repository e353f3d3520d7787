//! Kafka source: one member of a consumer group feeding decode → batch → store.
//!
//! # Delivery contract (at-least-once from Kafka, effectively-once in the store)
//! - `enable.auto.offset.store=false`, `enable.auto.commit=true`: librdkafka commits in the
//!   background only offsets that *we stored*, and we store a partition's offset only after
//!   every message before it is durable: its rows and quarantine records are written to the
//!   store and its dead letters were acknowledged by the broker.
//! - The offset we store is the *next* offset to read: last durable offset + 1, or the
//!   offset of the oldest Vault request still waiting for its response on that partition
//!   (so a restart reads it again and pairs it properly).
//! - Partition revoked: the writer is drained, stored offsets are committed synchronously,
//!   and rows of the revoked partitions that were not yet handed to the writer are dropped
//!   from the open batch (their offsets were never stored, so the next owner reads them
//!   again; we never write them after that owner may have).
//! - Shutdown: every open batch is written, offsets stored, then committed synchronously.
//! - Replays after a crash are dropped by the store's row keys.
//!
//! Malformed messages never block a partition: they become quarantine rows and, when a
//! dead-letter topic is configured, are produced there (scrubbed like quarantined bytes)
//! with the reason and their origin in headers.
//!
//! Batches are per topic (one format), across its partitions: a job stores the offsets of
//! every partition it holds rows of, so many partitions do not mean many small files.
//!
//! Memory is bounded: one open batch per topic (closed on rows, bytes or linger), a
//! bounded queue to the writer, and librdkafka's own `queued.max.messages.kbytes`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::batch::{BatchLimits, Batcher, Closed};
use crate::config::{Config, KafkaConfig};
use crate::decode::{DecodeOptions, Decoder, Format, Output, Rejected};
use crate::error::{Error, Result};
use crate::metrics::metrics;
use crate::normalize::redact::scrub_lenient;
use crate::normalize::{AccessEvent, Outcome, Provenance, Source as EventSource};
use crate::store::Store;

type Tp = (String, i32);

/// Messages taken in one go between the receive loop's checks of shutdown and linger.
const BURST: usize = 512;

/// Looks a partition up by `(&str, i32)` without allocating the topic name per message.
trait TpKey {
    fn key(&self) -> (&str, i32);
}

impl TpKey for Tp {
    fn key(&self) -> (&str, i32) {
        (&self.0, self.1)
    }
}

impl TpKey for (&str, i32) {
    fn key(&self) -> (&str, i32) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn TpKey + 'a> for Tp {
    fn borrow(&self) -> &(dyn TpKey + 'a) {
        self
    }
}

// hashed and compared as the `(str, i32)` it names, as `Tp` itself is
impl std::hash::Hash for dyn TpKey + '_ {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.key().hash(h)
    }
}

impl PartialEq for dyn TpKey + '_ {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}

impl Eq for dyn TpKey + '_ {}

/// Shared between the consumer callbacks and the pipeline.
pub struct Shared {
    revoked: Mutex<Vec<Tp>>,
    /// Set with `revoked` (checked per message without taking the lock).
    any_revoked: AtomicBool,
    assigned: AtomicBool,
    new_assignment: AtomicBool,
    /// Jobs handed to the writer and not finished yet.
    in_flight: AtomicUsize,
    ready: AtomicBool,
    /// The active rules (swapped by a reload); the writer picks a new set up between batches.
    pub rules: crate::app::LiveRules,
    /// Every stored alert, for live consumers (the demo's console, sinks). Lagging
    /// receivers skip; the `alerts` table has everything.
    pub alerts: tokio::sync::broadcast::Sender<crate::detect::Alert>,
    /// When set (by the load tool), every message's produce→stored latency in seconds.
    pub latency_probe: Mutex<Option<Vec<f64>>>,
    /// The sinks' outbox (when sinks are configured): new alerts are appended before the
    /// batch's offsets are stored.
    pub outbox: Mutex<Option<crate::sink::Outbox>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            revoked: Mutex::default(),
            any_revoked: AtomicBool::default(),
            assigned: AtomicBool::default(),
            new_assignment: AtomicBool::default(),
            in_flight: AtomicUsize::default(),
            ready: AtomicBool::default(),
            rules: crate::app::LiveRules::default(),
            alerts: tokio::sync::broadcast::channel(4096).0,
            latency_probe: Mutex::new(None),
            outbox: Mutex::new(None),
        }
    }
}

impl Shared {
    /// True once the consumer has an assignment and the broker answers.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

pub struct Ctx {
    shared: Arc<Shared>,
}

/// The parts of librdkafka's statistics we use; the rest of the JSON is skipped.
/// rust-rdkafka's own `Statistics` decodes all of it — every broker's, topic's and
/// partition's counters into maps of owned strings — each interval, on the receive loop's
/// thread (bench kafka, 2 × 128 partitions, 6 interleaved pairs each: a 5 s interval
/// instead of 1 s took 0.18 µs per message off the loop; decoding only this, 0.08 µs —
/// within the noise, but work the loop no longer does).
#[derive(serde::Deserialize)]
struct StatsView {
    #[serde(default)]
    brokers: HashMap<String, BrokerView>,
    #[serde(default)]
    topics: HashMap<String, TopicView>,
}

#[derive(serde::Deserialize)]
struct BrokerView {
    #[serde(default)]
    state: String,
}

#[derive(serde::Deserialize)]
struct TopicView {
    #[serde(default)]
    partitions: HashMap<i32, PartitionView>,
}

#[derive(serde::Deserialize)]
struct PartitionView {
    #[serde(default = "unknown_lag")]
    consumer_lag: i64,
}

fn unknown_lag() -> i64 {
    -1
}

impl ClientContext for Ctx {
    fn stats_raw(&self, raw: &[u8]) {
        match serde_json::from_slice::<StatsView>(raw) {
            Ok(s) => self.apply_stats(&s),
            Err(e) => tracing::warn!(error = %e, "librdkafka statistics unreadable"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
        ) {
            metrics().kafka_connected.set(0);
            self.shared.ready.store(false, Ordering::Relaxed);
        }
    }
}

impl Ctx {
    /// Per-partition lag gauges, the broker connection gauge and readiness.
    fn apply_stats(&self, stats: &StatsView) {
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    metrics()
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &p.to_string()])
                        .set(part.consumer_lag);
                }
            }
        }
        let up = stats.brokers.values().any(|b| b.state == "UP");
        metrics().kafka_connected.set(up as i64);
        self.shared.ready.store(
            up && self.shared.assigned.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Let the writer finish what it was handed (it never waits on this consumer),
            // so everything we stored is durable, then commit it before letting go.
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.shared.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                if !matches!(
                    e,
                    KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)
                ) {
                    metrics().commit_failures.inc();
                    tracing::warn!(error = %e, "commit on revoke failed");
                }
            }
            let mut r = self.shared.revoked.lock().expect("lock");
            for e in tpl.elements() {
                r.push((e.topic().to_string(), e.partition()));
            }
            self.shared.any_revoked.store(true, Ordering::Release);
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.shared
                .assigned
                .store(tpl.count() > 0, Ordering::Relaxed);
            self.shared.new_assignment.store(true, Ordering::Release);
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            if !matches!(
                e,
                KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)
            ) {
                metrics().commit_failures.inc();
                tracing::warn!(error = %e, "offset commit failed");
            }
        }
    }
}

pub type AuditConsumer = StreamConsumer<Ctx>;

/// Where the pipeline's messages come from and where the offsets it may commit go: the
/// Kafka consumer group, or pre-loaded messages in memory ([`MemorySource`], which the
/// load tool uses to measure this consumer-side path without a broker in the way).
pub trait Source: Send + Sync + 'static {
    type Msg<'a>: Message + Send
    where
        Self: 'a;
    /// The next message (waits until there is one).
    fn recv(&self) -> impl std::future::Future<Output = KafkaResult<Self::Msg<'_>>> + Send;
    /// The next message if one is ready now (the loop takes bursts of these between its
    /// checks for shutdown and linger).
    fn try_recv(&self) -> Option<KafkaResult<Self::Msg<'_>>> {
        use futures::FutureExt;
        self.recv().now_or_never()
    }
    /// Hands offsets (each the next one to read) over to be committed.
    fn store_offsets(&self, tpl: &TopicPartitionList) -> KafkaResult<()>;
    /// Commits what was stored, synchronously.
    fn commit_sync(&self) -> KafkaResult<()>;
    /// Leaves the group (a no-op for sources without one).
    fn close(&self) {}
}

impl Source for AuditConsumer {
    type Msg<'a> = rdkafka::message::BorrowedMessage<'a>;
    fn recv(&self) -> impl std::future::Future<Output = KafkaResult<Self::Msg<'_>>> + Send {
        StreamConsumer::recv(self)
    }
    fn store_offsets(&self, tpl: &TopicPartitionList) -> KafkaResult<()> {
        Consumer::store_offsets(self, tpl)
    }
    fn commit_sync(&self) -> KafkaResult<()> {
        self.commit_consumer_state(CommitMode::Sync)
    }
    fn close(&self) {
        self.unsubscribe();
    }
}

/// Pre-loaded messages handed out in order, as one consumer of every partition would
/// receive them; the offsets the pipeline stores are recorded. When the messages run out,
/// `recv` waits (like a consumer at the end of its partitions).
#[derive(Default)]
pub struct MemorySource {
    queue: Mutex<std::collections::VecDeque<rdkafka::message::OwnedMessage>>,
    stored: Mutex<HashMap<Tp, i64>>,
    more: tokio::sync::Notify,
}

impl MemorySource {
    /// Appends a message (offsets are the caller's: per partition, increasing).
    pub fn push(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: &[u8],
    ) {
        let now = chrono::Utc::now().timestamp_millis();
        let m = rdkafka::message::OwnedMessage::new(
            Some(payload.to_vec()),
            key.map(<[u8]>::to_vec),
            topic.to_string(),
            rdkafka::Timestamp::CreateTime(now),
            partition,
            offset,
            None,
        );
        self.queue.lock().expect("lock").push_back(m);
        self.more.notify_one();
    }

    /// The offsets stored so far (the next offset to read, per partition).
    pub fn stored(&self) -> HashMap<Tp, i64> {
        self.stored.lock().expect("lock").clone()
    }
}

impl Source for MemorySource {
    type Msg<'a> = rdkafka::message::OwnedMessage;
    fn recv(&self) -> impl std::future::Future<Output = KafkaResult<Self::Msg<'_>>> + Send {
        async move {
            loop {
                let notified = self.more.notified();
                if let Some(m) = self.queue.lock().expect("lock").pop_front() {
                    return Ok(m);
                }
                notified.await;
            }
        }
    }
    fn try_recv(&self) -> Option<KafkaResult<Self::Msg<'_>>> {
        self.queue.lock().expect("lock").pop_front().map(Ok)
    }
    fn store_offsets(&self, tpl: &TopicPartitionList) -> KafkaResult<()> {
        record_offsets(&self.stored, tpl);
        Ok(())
    }
    fn commit_sync(&self) -> KafkaResult<()> {
        Ok(())
    }
}

/// Records the offsets a pipeline stores (for sources without a broker to take them).
fn record_offsets(stored: &Mutex<HashMap<Tp, i64>>, tpl: &TopicPartitionList) {
    let mut s = stored.lock().expect("lock");
    for e in tpl.elements() {
        if let Offset::Offset(o) = e.offset() {
            s.insert((e.topic().to_string(), e.partition()), o);
        }
    }
}

/// librdkafka settings from our configuration (passing the operator's properties through).
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.bootstrap_servers);
    for (key, v) in &k.properties {
        c.set(key, v);
    }
    if let Some(pw) = &k.sasl_password {
        c.set("sasl.password", pw.expose());
    }
    c
}

/// Our consumer's fetch settings unless the operator sets them (the load tool's reference
/// consumer uses them too).
pub const FETCH_DEFAULTS: &[(&str, &str)] = &[
    // the prefetch queue: the bound on what librdkafka holds for us
    ("queued.max.messages.kbytes", "65536"),
    // when that queue is full, librdkafka postpones the partitions' next fetch by this
    // (default 1 s): a consumer that keeps up only barely then sat idle for most of a
    // second each time (bench kafka, 300k messages: 78-98k -> 123-136k msg/s)
    ("fetch.queue.backoff.ms", "20"),
];

/// The pipeline's consumer: group member with `shared`'s rebalance callbacks, offsets stored
/// only by the pipeline.
pub fn consumer(k: &KafkaConfig, shared: Arc<Shared>) -> Result<AuditConsumer> {
    let mut c = client_config(k);
    c.set("group.id", &k.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // the delivery contract: we decide which offsets may be committed
        .set("enable.auto.offset.store", "false")
        .set_if_absent("auto.offset.reset", "earliest")
        .set_if_absent("session.timeout.ms", "10000");
    for (key, v) in FETCH_DEFAULTS {
        c.set_if_absent(key, v);
    }
    c.set_if_absent("statistics.interval.ms", "1000")
        .set_if_absent("partition.assignment.strategy", "cooperative-sticky");
    let consumer: AuditConsumer = c.create_with_context(Ctx { shared }).map_err(kafka_err)?;
    let topics: Vec<&str> = k.topics.iter().map(|t| t.name.as_str()).collect();
    if topics.is_empty() {
        return Err(Error::Config(
            "kafka.topics is empty: nothing to consume".into(),
        ));
    }
    consumer.subscribe(&topics).map_err(kafka_err)?;
    Ok(consumer)
}

trait SetIfAbsent {
    fn set_if_absent(&mut self, key: &str, value: &str) -> &mut Self;
}

impl SetIfAbsent for ClientConfig {
    fn set_if_absent(&mut self, key: &str, value: &str) -> &mut Self {
        if self.get(key).is_none() {
            self.set(key, value);
        }
        self
    }
}

pub(crate) fn kafka_err(e: KafkaError) -> Error {
    Error::Kafka(e.to_string())
}

/// A malformed message on its way to the dead-letter topic.
struct DeadLetter {
    partition: i32,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    reason: String,
    format: &'static str,
    offset: i64,
}

/// One partition's decoder and position.
struct PartState {
    decoder: Decoder,
    /// Next offset to read (last seen + 1).
    next_offset: i64,
    /// The offset the last job will store.
    sent_to: i64,
}

/// One topic's open batch (rows of any of its partitions).
struct TopicBatch {
    batcher: Batcher,
    dead: Vec<DeadLetter>,
    /// Kafka timestamps (ms) of the messages in the open batch, for produce→stored latency.
    msg_times: Vec<i64>,
    /// This topic's consumed messages and bytes counters (looked up once, not per message).
    consumed: (prometheus::IntCounter, prometheus::IntCounter),
    /// `events` counters by (source, outcome), looked up on first use.
    events: EventCounters,
}

/// `auditwatch_events_total` children by (source, outcome): a label lookup hashes both
/// strings, too much to do for every event.
#[derive(Default)]
struct EventCounters(Vec<(EventSource, Outcome, prometheus::IntCounter)>);

impl EventCounters {
    fn inc(&mut self, source: EventSource, outcome: Outcome) {
        if let Some((_, _, c)) = self
            .0
            .iter()
            .find(|(s, o, _)| *s == source && *o == outcome)
        {
            c.inc();
            return;
        }
        let c = metrics()
            .events
            .with_label_values(&[source.as_str(), outcome.as_str()]);
        c.inc();
        self.0.push((source, outcome, c));
    }
}

impl TopicBatch {
    fn new(topic: &str, limits: BatchLimits) -> TopicBatch {
        TopicBatch {
            batcher: Batcher::new(limits),
            dead: Vec::new(),
            msg_times: Vec::new(),
            consumed: (
                metrics().consumed_messages.with_label_values(&[topic]),
                metrics().consumed_bytes.with_label_values(&[topic]),
            ),
            events: EventCounters::default(),
        }
    }

    /// The decoder output into this batch; `dlq` also keeps rejected messages (with `key`)
    /// for the dead-letter topic.
    fn out<'a>(&'a mut self, key: Option<&'a [u8]>, dlq: bool) -> KafkaOut<'a> {
        KafkaOut {
            batcher: &mut self.batcher,
            dead: &mut self.dead,
            events: &mut self.events,
            key,
            dlq,
        }
    }
}

/// Collects rows into the batcher and dead letters aside.
struct KafkaOut<'a> {
    batcher: &'a mut Batcher,
    dead: &'a mut Vec<DeadLetter>,
    events: &'a mut EventCounters,
    key: Option<&'a [u8]>,
    dlq: bool,
}

impl Output for KafkaOut<'_> {
    fn event(&mut self, e: AccessEvent<'_>, prov: &Provenance<'_>) {
        self.events.inc(e.source, e.outcome);
        self.batcher.event(e, prov)
    }
    fn reject(&mut self, bytes: &[u8], r: Rejected, prov: &Provenance<'_>) {
        metrics().quarantined.with_label_values(&[r.format]).inc();
        if self.dlq {
            self.dead.push(DeadLetter {
                partition: prov.kafka_partition.unwrap_or(-1),
                key: self.key.map(<[u8]>::to_vec),
                payload: scrub_lenient(bytes).0,
                reason: r.reason.clone(),
                format: r.format,
                offset: prov.kafka_offset.unwrap_or(-1),
            });
        }
        self.batcher.reject(bytes, r, prov)
    }
    fn skipped(&mut self) {
        self.batcher.skipped()
    }
}

/// Work for the writer task.
enum Job {
    Write {
        topic: String,
        closed: Closed,
        dead: Vec<DeadLetter>,
        /// Per partition, the offset to store once the job is durable.
        commits: Vec<(i32, i64)>,
        msg_times: Vec<i64>,
    },
    /// Partitions were assigned: other instances may have written, reload dedup keys.
    Invalidate,
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunStats {
    pub messages: u64,
    pub written: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    pub alerts: u64,
    /// Event files written to the store.
    pub files: u64,
}

/// Consumes the configured topics until `shutdown` is cancelled, then drains and commits.
pub async fn run(
    cfg: &Config,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Result<RunStats> {
    let consumer = Arc::new(consumer(&cfg.kafka, shared.clone())?);
    run_source(cfg, shared, shutdown, consumer).await
}

/// The consumer-side pipeline over any [`Source`]: decode → batch → detect → store → ack.
pub async fn run_source<S: Source>(
    cfg: &Config,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    consumer: Arc<S>,
) -> Result<RunStats> {
    let store = Store::open_local(&cfg.data_dir)?;
    let formats: HashMap<String, Format> = cfg
        .kafka
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.format))
        .collect();
    let dlq = match &cfg.kafka.dead_letter_topic {
        Some(t) => {
            let mut c = client_config(&cfg.kafka);
            c.set("enable.idempotence", "true")
                .set_if_absent("message.timeout.ms", "30000");
            Some((t.clone(), c.create::<FutureProducer>().map_err(kafka_err)?))
        }
        None => None,
    };
    let decode_opts = DecodeOptions {
        max_event_bytes: cfg.max_event_bytes,
        k8s_keep_all_stages: cfg.k8s_all_stages,
        vault_pair_wait_us: cfg.vault_pair_wait.as_micros() as i64,
        cluster: cfg.cluster.clone(),
        ..Default::default()
    };
    let limits = BatchLimits {
        max_rows: cfg.batch_rows,
        linger: cfg.linger,
        ..Default::default()
    };

    let (tx, rx) = mpsc::channel::<Job>(4);
    let baselines = match &cfg.baselines {
        Some(d) => Some(super::state::BaselineState::open(
            d.clone(),
            &cfg.data_dir,
            &cfg.kafka.group_id,
        )?),
        None => None,
    };
    // The writer gets a thread of its own: its work (Parquet encoding, detection) is long
    // stretches of CPU. As a task on the shared runtime, a receive loop it woke (a slot
    // freed in the queue) waited in that worker's LIFO slot, which no other worker may
    // steal, until the whole batch was written.
    let writer = {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let task = writer(
            store,
            rx,
            consumer.clone(),
            dlq,
            shared.clone(),
            baselines,
            cfg.snapshot_interval,
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let _ = done_tx.send(rt.block_on(task));
            })?;
        done_rx
    };
    let mut parts: HashMap<Tp, PartState> = HashMap::new();
    let mut batches: HashMap<String, TopicBatch> = cfg
        .kafka
        .topics
        .iter()
        .map(|t| (t.name.clone(), TopicBatch::new(&t.name, limits)))
        .collect();
    let mut stats = RunStats::default();
    // a batch closes between `linger` and `linger + tick` after its first row
    let mut tick = tokio::time::interval(
        (cfg.linger / 4).clamp(Duration::from_millis(10), Duration::from_millis(250)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let send = |job: Job| {
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        metrics()
            .queue_depth
            .with_label_values(&["store_writer"])
            .inc();
        tx.send(job)
    };
    'outer: loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let mut stop = false;
                for job in apply_revocations(&shared, &mut parts, &mut batches)? {
                    if send(job).await.is_err() { stop = true; break; }
                }
                if stop { break; }
                let now_us = chrono::Utc::now().timestamp_micros();
                let mut pending = 0;
                for (tp, st) in parts.iter_mut() {
                    let Some(tb) = batches.get_mut(&tp.0) else { continue };
                    let mut out = tb.out(None, false);
                    st.decoder.expire(now_us, &mut out);
                    pending += st.decoder.pending();
                }
                metrics().vault_pending_requests.set(pending as i64);
                // close lingering batches; also move offsets past messages that produced
                // no row (skipped stages) so lag does not stick
                for (topic, tb) in batches.iter_mut() {
                    let advanced = || parts.iter().any(|(tp, st)| tp.0 == *topic && commit_target(st) > st.sent_to);
                    if tb.batcher.is_due() || (tb.batcher.rows() == 0 && advanced()) {
                        let job = close(topic, tb, &mut parts, &[])?;
                        if send(job).await.is_err() { stop = true; break; }
                    }
                }
                if stop { break; }
            }
            msg = consumer.recv() => {
                // then whatever else is ready, up to a burst, before looking at shutdown
                // and linger again (a select per message costs more than decoding some)
                let mut next = Some(msg);
                let mut burst = 0;
                while let Some(msg) = next.take() {
                    // callbacks ran inside recv(): apply what they recorded
                    for job in apply_revocations(&shared, &mut parts, &mut batches)? {
                        if send(job).await.is_err() { break 'outer; }
                    }
                    if shared.new_assignment.swap(false, Ordering::AcqRel)
                        && send(Job::Invalidate).await.is_err()
                    {
                        break 'outer;
                    }
                    let msg = match msg {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = %e, "kafka receive failed; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue 'outer;
                        }
                    };
                    let topic = msg.topic();
                    let partition = msg.partition();
                    let payload = msg.payload().unwrap_or(&[]);
                    stats.messages += 1;
                    let key = (topic, partition);
                    let st = match parts.get_mut(&key as &dyn TpKey) {
                        Some(st) => st,
                        None => parts.entry((topic.to_string(), partition)).or_insert_with(|| PartState {
                            decoder: Decoder::new(formats.get(topic).copied().unwrap_or_default(), decode_opts.clone()),
                            next_offset: msg.offset(),
                            sent_to: msg.offset(),
                        }),
                    };
                    let tb = match batches.get_mut(topic) {
                        Some(tb) => tb,
                        None => batches.entry(topic.to_string()).or_insert_with(|| TopicBatch::new(topic, limits)),
                    };
                    tb.consumed.0.inc();
                    tb.consumed.1.inc_by(payload.len() as u64);
                    if let Some(ts) = msg.timestamp().to_millis() {
                        tb.msg_times.push(ts);
                    }
                    let prov = Provenance {
                        kafka_topic: Some(topic),
                        kafka_partition: Some(partition),
                        kafka_offset: Some(msg.offset()),
                        ..Default::default()
                    };
                    let mut out = tb.out(msg.key(), true);
                    if payload.is_empty() {
                        out.reject(payload, Rejected::new("kafka", "empty message payload"), &prov);
                    } else {
                        st.decoder.decode_record(payload, &prov, &mut out);
                    }
                    st.next_offset = msg.offset() + 1;
                    if tb.batcher.is_full() {
                        let job = close(topic, tb, &mut parts, &[])?;
                        if send(job).await.is_err() { break 'outer; }
                    }
                    burst += 1;
                    if burst < BURST {
                        next = consumer.try_recv();
                    }
                }
            }
        }
    }
    // drain: write every open batch, then commit synchronously
    for (topic, tb) in batches.iter_mut() {
        let job = close(topic, tb, &mut parts, &[])?;
        if send(job).await.is_err() {
            break;
        }
    }
    drop(tx);
    let wstats = writer
        .await
        .map_err(|_| Error::Config("the store writer thread ended without a result".into()))??;
    stats.written = wstats.written;
    stats.duplicates = wstats.duplicates;
    stats.quarantined = wstats.quarantined;
    stats.alerts = wstats.alerts;
    stats.files = wstats.files;
    match consumer.commit_sync() {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            metrics().commit_failures.inc();
            tracing::warn!(error = %e, "final commit failed");
        }
    }
    consumer.close();
    Ok(stats)
}

/// Partitions the consumer callbacks reported revoked: forgotten, and the open batches of
/// their topics closed at once without their rows (before any message of a later
/// assignment can join those batches).
fn apply_revocations(
    shared: &Shared,
    parts: &mut HashMap<Tp, PartState>,
    batches: &mut HashMap<String, TopicBatch>,
) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    if !shared.any_revoked.swap(false, Ordering::AcqRel) {
        return Ok(jobs);
    }
    let revoked: Vec<Tp> = std::mem::take(&mut *shared.revoked.lock().expect("lock"));
    if revoked.is_empty() {
        return Ok(jobs);
    }
    for tp in &revoked {
        parts.remove(tp);
    }
    let mut topics: Vec<&String> = revoked.iter().map(|(t, _)| t).collect();
    topics.sort();
    topics.dedup();
    for topic in topics {
        let gone: Vec<i32> = revoked
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| *p)
            .collect();
        if let Some(tb) = batches.get_mut(topic) {
            jobs.push(close(topic, tb, parts, &gone)?);
        }
    }
    Ok(jobs)
}

/// Closes a topic's batch into a job that stores, for every partition of the topic we
/// hold, the offset up to which its messages are in this or an earlier job. That offset
/// stops before the oldest Vault request still waiting for its response. Rows of the
/// partitions in `gone` (just revoked) are dropped.
fn close(
    topic: &str,
    tb: &mut TopicBatch,
    parts: &mut HashMap<Tp, PartState>,
    gone: &[i32],
) -> Result<Job> {
    let mut closed = tb.batcher.take()?;
    tracing::debug!(
        topic,
        rows = closed.events.as_ref().map_or(0, |b| b.num_rows()),
        "batch closed"
    );
    let mut dead = std::mem::take(&mut tb.dead);
    if !gone.is_empty() {
        closed.events = without_partitions(closed.events, gone)?;
        closed.quarantine = without_partitions(closed.quarantine, gone)?;
        dead.retain(|d| !gone.contains(&d.partition));
    }
    let mut commits = Vec::new();
    for (tp, st) in parts.iter_mut().filter(|(tp, _)| tp.0 == topic) {
        let c = commit_target(st);
        if c > st.sent_to {
            st.sent_to = c;
            commits.push((tp.1, c));
        }
    }
    Ok(Job::Write {
        topic: topic.to_string(),
        closed,
        dead,
        commits,
        msg_times: std::mem::take(&mut tb.msg_times),
    })
}

/// The rows of `batch` whose `kafka_partition` is not in `gone`.
fn without_partitions(
    batch: Option<datafusion::arrow::array::RecordBatch>,
    gone: &[i32],
) -> Result<Option<datafusion::arrow::array::RecordBatch>> {
    use datafusion::arrow::array::{AsArray, BooleanArray};
    use datafusion::arrow::datatypes::Int32Type;
    let Some(b) = batch else { return Ok(None) };
    let Some(col) = b.column_by_name("kafka_partition") else {
        return Ok(Some(b));
    };
    let keep: BooleanArray = col
        .as_primitive::<Int32Type>()
        .iter()
        .map(|p| Some(p.is_none_or(|p| !gone.contains(&p))))
        .collect();
    let out = datafusion::arrow::compute::filter_record_batch(&b, &keep)?;
    Ok((out.num_rows() > 0).then_some(out))
}

fn commit_target(st: &PartState) -> i64 {
    let held = st.decoder.oldest_pending().and_then(|p| p.kafka_offset);
    held.map_or(st.next_offset, |h| h.min(st.next_offset))
}

async fn writer<S: Source>(
    mut store: Store,
    mut rx: mpsc::Receiver<Job>,
    consumer: Arc<S>,
    dlq: Option<(String, FutureProducer)>,
    shared: Arc<Shared>,
    mut baselines: Option<super::state::BaselineState>,
    snapshot_every: Duration,
) -> Result<RunStats> {
    let mut stats = RunStats::default();
    let mut rules_version = 0;
    let mut engine: Option<crate::detect::Engine> = None;
    let mut snap_tick = tokio::time::interval(snapshot_every.max(Duration::from_millis(100)));
    snap_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let job = tokio::select! {
            j = rx.recv() => match j {
                Some(j) => j,
                None => break,
            },
            _ = snap_tick.tick() => {
                if let Some(b) = baselines.as_mut().filter(|b| b.has_pending()) {
                    snapshot_and_store(b, &*consumer)?;
                }
                continue;
            }
        };
        metrics()
            .queue_depth
            .with_label_values(&["store_writer"])
            .dec();
        if let Some(rs) = shared.rules.changed(&mut rules_version) {
            match &mut engine {
                Some(e) => e.set_rules(rs),
                None => engine = Some(crate::detect::Engine::new(rs)),
            }
        }
        let r = handle(
            &mut store,
            job,
            &*consumer,
            &dlq,
            &mut stats,
            engine.as_mut(),
            baselines.as_mut(),
            &shared,
        )
        .await;
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        r?;
    }
    // drained: save the state with everything it took, then let those offsets commit
    if let Some(b) = baselines.as_mut() {
        snapshot_and_store(b, &*consumer)?;
    }
    Ok(stats)
}

/// Saves baseline state, then hands the offsets it reflects to librdkafka.
fn snapshot_and_store<S: Source>(b: &mut super::state::BaselineState, consumer: &S) -> Result<()> {
    let offsets = b.snapshot()?;
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in offsets {
        tpl.add_partition_offset(&t, p, Offset::Offset(o))
            .map_err(kafka_err)?;
    }
    if tpl.count() > 0
        && let Err(e) = consumer.store_offsets(&tpl)
    {
        metrics().commit_failures.inc();
        tracing::debug!(error = %e, "offset store after snapshot refused");
    }
    Ok(())
}

async fn handle<S: Source>(
    store: &mut Store,
    job: Job,
    consumer: &S,
    dlq: &Option<(String, FutureProducer)>,
    stats: &mut RunStats,
    engine: Option<&mut crate::detect::Engine>,
    baselines: Option<&mut super::state::BaselineState>,
    shared: &Shared,
) -> Result<()> {
    let (topic, closed, dead, commits, msg_times) = match job {
        Job::Invalidate => {
            store.invalidate_keys();
            return Ok(());
        }
        Job::Write {
            topic,
            closed,
            dead,
            commits,
            msg_times,
        } => (topic, closed, dead, commits, msg_times),
    };
    // 1. dead letters acknowledged by the broker (retried until they are)
    if let Some((dlq_topic, producer)) = dlq {
        for d in &dead {
            let part = d.partition.to_string();
            let offset = d.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "auditwatch.reason",
                    value: Some(d.reason.as_bytes()),
                })
                .insert(Header {
                    key: "auditwatch.format",
                    value: Some(d.format.as_bytes()),
                })
                .insert(Header {
                    key: "auditwatch.source.topic",
                    value: Some(topic.as_bytes()),
                })
                .insert(Header {
                    key: "auditwatch.source.partition",
                    value: Some(part.as_bytes()),
                })
                .insert(Header {
                    key: "auditwatch.source.offset",
                    value: Some(offset.as_bytes()),
                });
            let mut backoff = Duration::from_millis(100);
            loop {
                let mut rec = FutureRecord::to(dlq_topic)
                    .payload(&d.payload)
                    .headers(headers.clone());
                if let Some(k) = &d.key {
                    rec = rec.key(k);
                }
                match producer.send(rec, Duration::from_secs(5)).await {
                    Ok(_) => break,
                    Err((e, _)) => {
                        tracing::warn!(error = %e, "dead-letter produce failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            metrics().dead_letters.inc();
        }
    }
    // 2. rows durable in the store (retried with backoff: the store may be briefly away)
    let job_started = Instant::now();
    for (table, batch) in [
        ("quarantine", &closed.quarantine),
        ("events", &closed.events),
    ] {
        let Some(b) = batch else { continue };
        metrics()
            .batch_rows
            .with_label_values(&[table])
            .observe(b.num_rows() as f64);
        let mut backoff = Duration::from_millis(100);
        loop {
            let t = Instant::now();
            let r = if table == "events" {
                store.append_events(b).await
            } else {
                store.append_quarantine(b).await
            };
            match r {
                Ok(s) => {
                    metrics()
                        .store_write_seconds
                        .with_label_values(&[table])
                        .observe(t.elapsed().as_secs_f64());
                    if table == "events" {
                        stats.written += s.written as u64;
                        stats.duplicates += s.duplicates as u64;
                        stats.files += s.files as u64;
                        metrics().duplicates.inc_by(s.duplicates as u64);
                    } else {
                        stats.quarantined += b.num_rows() as u64;
                    }
                    break;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, table, "store write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e),
            }
        }
    }
    // 3. detection, and its alerts durable in the `alerts` table (the first sink)
    let mut raised = Vec::new();
    let t = Instant::now();
    if let (Some(engine), Some(b)) = (engine, &closed.events) {
        raised = engine.evaluate(b);
        metrics()
            .correlation_groups
            .set(engine.open_groups() as i64);
        metrics()
            .alerts_suppressed
            .inc_by(std::mem::take(&mut engine.suppressed));
    }
    let baselines_on = baselines.is_some();
    if let Some(bs) = baselines {
        if let Some(b) = &closed.events
            && let Some(fresh) = bs.unseen(&topic, b)?
        {
            raised.extend(bs.baselines.evaluate(&fresh));
        }
        for &(p, next) in &commits {
            bs.processed(&(topic.clone(), p), next);
        }
    }
    metrics().detect_seconds.observe(t.elapsed().as_secs_f64());
    tracing::debug!(
        topic,
        rows = closed.events.as_ref().map_or(0, |b| b.num_rows()),
        write_ms = (t - job_started).as_secs_f64() * 1e3,
        detect_ms = t.elapsed().as_secs_f64() * 1e3,
        alerts = raised.len(),
        "batch stored"
    );
    {
        if !raised.is_empty() {
            let mut backoff = Duration::from_millis(100);
            let fresh = loop {
                match store.append_new_alerts(&raised).await {
                    Ok((s, fresh)) => {
                        stats.alerts += s.written as u64;
                        break fresh;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(error = %e, "alert write failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                    Err(e) => return Err(e),
                }
            };
            // the sinks' acceptance: durable in the outbox (a replay's alerts are not new)
            loop {
                let r = match shared
                    .outbox
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    Some(o) => o.append(&fresh),
                    None => Ok(()),
                };
                match r {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "outbox append failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
            for a in fresh {
                metrics()
                    .alerts
                    .with_label_values(&[a.rule_id.as_str(), a.severity.as_str()])
                    .inc();
                let _ = shared.alerts.send(a);
            }
        }
    }
    // every event of these messages is stored and alerted on: produce→stored latency
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut probe = shared
        .latency_probe
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for t in msg_times {
        let secs = (now_ms - t).max(0) as f64 / 1000.0;
        metrics().end_to_end_seconds.observe(secs);
        if let Some(p) = probe.as_mut() {
            p.push(secs);
        }
    }
    drop(probe);
    // 4. only now may the offset be committed. `commit_to` is already the *next* offset to
    //    read (last durable message + 1), which is what rd_kafka_offsets_store expects.
    //    With baselines on, offsets are stored after the next state snapshot instead.
    if baselines_on || commits.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for &(p, next) in &commits {
        tpl.add_partition_offset(&topic, p, Offset::Offset(next))
            .map_err(kafka_err)?;
    }
    if let Err(e) = consumer.store_offsets(&tpl) {
        // librdkafka stores the assigned ones and fails only when none could be stored,
        // e.g. all were revoked meanwhile: the next owner re-reads, the store dedups
        metrics().commit_failures.inc();
        tracing::debug!(error = %e, topic, "offset store refused");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;

    fn msg(i: usize) -> String {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"m-{i}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns/secrets/s","verb":"get","user":{{"username":"u"}},"objectRef":{{"resource":"secrets","namespace":"ns","name":"s","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2026-11-20T10:00:00.{i:06}Z"}}"#
        )
    }

    /// A pipeline over one Kubernetes topic `t` fed by a source of the test's own.
    fn source_config(data: &std::path::Path, group: &str, batch_rows: usize) -> Config {
        let mut raw = crate::config::RawConfig::default();
        raw.store.data_dir = data.to_path_buf();
        raw.kafka.bootstrap_servers = "unused:9092".into();
        raw.kafka.group_id = group.into();
        raw.kafka.topics = vec![crate::config::RawTopic {
            name: "t".into(),
            format: "k8s".into(),
        }];
        raw.pipeline.linger = "20ms".into();
        raw.pipeline.batch_rows = batch_rows;
        Config::try_from(raw).unwrap()
    }

    /// Readiness and lag come from librdkafka's statistics, of which only the parts we use
    /// are decoded: a real consumer's statistics (against the mock cluster) make it ready
    /// once it has partitions and a broker, and give a partition's lag behind what it
    /// committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statistics_of_a_real_consumer_set_readiness_and_lag() {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        let topic = "stats-lag-topic";
        cluster.create_topic(topic, 2, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        for i in 0..20 {
            let m = msg(i);
            producer
                .send(BaseRecord::<(), _>::to(topic).payload(&m).partition(0))
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let mut cfg = source_config(dir.path(), "stats-group", 100);
        cfg.kafka.bootstrap_servers = cluster.bootstrap_servers();
        cfg.kafka.topics[0].name = topic.into();
        cfg.kafka
            .properties
            .insert("statistics.interval.ms".into(), "100".into());
        let shared = Arc::new(Shared::default());
        let c = consumer(&cfg.kafka, shared.clone()).unwrap();
        assert!(!shared.is_ready(), "not ready before joining the group");
        // callbacks (rebalance, statistics) run inside the consumer's receive
        let mut received = 0;
        while received < 5 {
            let m = tokio::time::timeout(Duration::from_secs(30), c.recv())
                .await
                .expect("a message within 30 s")
                .unwrap();
            assert_eq!((m.partition(), m.offset()), (0, received));
            received += 1;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(5))
            .unwrap();
        Consumer::store_offsets(&c, &tpl).unwrap();
        c.commit_consumer_state(CommitMode::Sync).unwrap();
        let lag = || {
            metrics()
                .consumer_lag
                .with_label_values(&[topic, "0"])
                .get()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(shared.is_ready() && lag() == 15) {
            assert!(
                Instant::now() < deadline,
                "ready {}, lag {}",
                shared.is_ready(),
                lag()
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), c.recv()).await;
        }
    }

    /// Partitions are found by a borrowed `(&str, i32)` (no allocation per message).
    #[test]
    fn partition_lookup_by_borrowed_key() {
        let mut m: HashMap<Tp, u32> = HashMap::new();
        for (i, t) in ["a", "bb", "a-long-topic-name"].iter().enumerate() {
            for p in 0..50 {
                m.insert((t.to_string(), p), i as u32 * 100 + p as u32);
            }
        }
        for (i, t) in ["a", "bb", "a-long-topic-name"].iter().enumerate() {
            for p in 0..50 {
                let k = (*t, p);
                assert_eq!(m.get(&k as &dyn TpKey), Some(&(i as u32 * 100 + p as u32)));
            }
        }
        assert!(m.get(&("a", 50) as &dyn TpKey).is_none());
        assert!(m.get(&("b", 0) as &dyn TpKey).is_none());
    }

    /// The consumer-side path over pre-loaded messages: every row stored once, a
    /// malformed message quarantined without holding its partition back, and every
    /// partition's offset stored up to its end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_source_stores_every_message_and_every_offset() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = source_config(dir.path(), "memory", 64);
        let source = Arc::new(MemorySource::default());
        let mut next = [0i64; 3];
        for i in 0..1000 {
            let p = (i % 3) as i32;
            let payload = if i == 500 {
                "{not json".to_string()
            } else {
                msg(i)
            };
            source.push("t", p, next[p as usize], None, payload.as_bytes());
            next[p as usize] += 1;
        }
        let token = CancellationToken::new();
        let run = tokio::spawn({
            let (cfg, token, source) = (cfg.clone(), token.clone(), source.clone());
            async move { run_source(&cfg, Arc::new(Shared::default()), token, source).await }
        });
        let done = |s: &HashMap<Tp, i64>| {
            (0..3).all(|p| s.get(&("t".to_string(), p)) == Some(&next[p as usize]))
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&source.stored()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(done(&source.stored()), "stored {:?}", source.stored());
        token.cancel();
        let stats = run.await.unwrap().unwrap();
        assert_eq!(stats.messages, 1000);
        assert_eq!(stats.written, 999);
        assert_eq!(stats.quarantined, 1);
        assert_eq!(stats.duplicates, 0);
    }

    /// A source that always has the next message ready (a broker far ahead of us), and
    /// records the offsets stored.
    #[derive(Default)]
    struct EndlessSource {
        handed: std::sync::atomic::AtomicU64,
        stored: Mutex<HashMap<Tp, i64>>,
    }

    impl EndlessSource {
        const PARTITIONS: u64 = 3;
        fn next(&self) -> rdkafka::message::OwnedMessage {
            let i = self.handed.fetch_add(1, Ordering::AcqRel);
            rdkafka::message::OwnedMessage::new(
                Some(msg(i as usize).into_bytes()),
                None,
                "t".into(),
                rdkafka::Timestamp::CreateTime(0),
                (i % Self::PARTITIONS) as i32,
                (i / Self::PARTITIONS) as i64,
                None,
            )
        }
        /// Messages handed out whose offset is not stored yet (handed read first: a
        /// message taken between the two reads is not counted, never counted twice).
        fn in_flight(&self) -> u64 {
            let handed = self.handed.load(Ordering::Acquire);
            let stored: i64 = self.stored.lock().unwrap().values().sum();
            handed.saturating_sub(stored as u64)
        }
    }

    impl Source for EndlessSource {
        type Msg<'a> = rdkafka::message::OwnedMessage;
        fn recv(&self) -> impl std::future::Future<Output = KafkaResult<Self::Msg<'_>>> + Send {
            // taken when polled: a select that picks another branch drops it unpolled
            async move { Ok(self.next()) }
        }
        fn try_recv(&self) -> Option<KafkaResult<Self::Msg<'_>>> {
            Some(Ok(self.next()))
        }
        fn store_offsets(&self, tpl: &TopicPartitionList) -> KafkaResult<()> {
            record_offsets(&self.stored, tpl);
            Ok(())
        }
        fn commit_sync(&self) -> KafkaResult<()> {
            Ok(())
        }
    }

    /// A source that delivers faster than the store writes: the receive loop waits on the
    /// writer's bounded queue, so what it has taken but not yet made durable stays within
    /// the open batch, the queued jobs and the one being written; on shutdown every
    /// message taken is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_faster_than_the_store_keeps_what_is_in_flight_bounded() {
        const ROWS: u64 = 200;
        let dir = tempfile::tempdir().unwrap();
        let cfg = source_config(dir.path(), "endless", ROWS as usize);
        let source = Arc::new(EndlessSource::default());
        let token = CancellationToken::new();
        let run = tokio::spawn({
            let (cfg, token, source) = (cfg.clone(), token.clone(), source.clone());
            async move { run_source(&cfg, Arc::new(Shared::default()), token, source).await }
        });
        let mut peak = 0;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            peak = peak.max(source.in_flight());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        token.cancel();
        let stats = run.await.unwrap().unwrap();
        // a closed batch waiting for a queue slot, 4 queued jobs and the one being
        // written (the next message is taken only once a slot is free)
        let bound = 6 * ROWS;
        let handed = source.handed.load(Ordering::Acquire);
        eprintln!("{handed} messages in 3 s; in flight at most {peak} (bound {bound})");
        assert!(
            peak <= bound,
            "in flight peaked at {peak} messages (bound {bound})"
        );
        assert!(
            handed > 10 * bound,
            "only {handed} messages went through in 3 s: the test shows nothing"
        );
        // drained on shutdown: everything taken is durable and its offset stored
        assert_eq!(source.in_flight(), 0);
        assert_eq!(stats.messages, handed);
        assert_eq!(stats.written, handed);
    }

    /// A topic batch holds rows of several partitions; closing it stores each partition's
    /// next offset, and closing after a revocation drops the revoked partition's rows and
    /// does not store its offset.
    #[test]
    fn topic_batches_commit_every_partition_and_drop_revoked_rows() {
        let limits = BatchLimits::default();
        let mut tb = TopicBatch::new("t", limits);
        let mut parts: HashMap<Tp, PartState> = HashMap::new();
        for (i, p) in [(0usize, 0i32), (1, 1), (2, 0), (3, 2), (4, 1), (5, 2)] {
            let tp = ("t".to_string(), p);
            let offset = i as i64 * 10;
            let st = parts.entry(tp).or_insert_with(|| PartState {
                decoder: Decoder::new(Format::Kubernetes, DecodeOptions::default()),
                next_offset: offset,
                sent_to: offset,
            });
            let prov = Provenance {
                kafka_topic: Some("t"),
                kafka_partition: Some(p),
                kafka_offset: Some(offset),
                ..Default::default()
            };
            let mut out = tb.out(None, true);
            st.decoder.decode_record(msg(i).as_bytes(), &prov, &mut out);
            st.next_offset = offset + 1;
        }
        // partition 1 revoked: its rows go, the others' offsets are stored
        parts.remove(&("t".to_string(), 1));
        let Job::Write {
            closed, commits, ..
        } = close("t", &mut tb, &mut parts, &[1]).unwrap()
        else {
            panic!("a write job")
        };
        let b = closed.events.unwrap();
        let kp = b
            .column_by_name("kafka_partition")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
            .clone();
        let mut got: Vec<i32> = kp.values().to_vec();
        got.sort();
        assert_eq!(got, vec![0, 0, 2, 2]);
        let mut commits = commits;
        commits.sort();
        assert_eq!(commits, vec![(0, 21), (2, 51)]);
        // nothing new: the next close stores nothing
        let Job::Write { commits, .. } = close("t", &mut tb, &mut parts, &[]).unwrap() else {
            panic!("a write job")
        };
        assert!(commits.is_empty());
    }
}
