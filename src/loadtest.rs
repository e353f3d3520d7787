//! `auditwatch bench`: the load tool. No fast Kafka-protocol broker runs on small test
//! machines, so "end to end" is measured in parts, each as a ratio taken in one run:
//!
//! * `pipeline`: generated audit records pre-loaded in memory go through the Kafka
//!   consumer-side path (`run` over a [`kafka::MemorySource`]: decode → normalize → batch
//!   → detect → store → offsets stored), next to a parse-only pass over the same bytes;
//!   the same records through `ingest` from local files are reported alongside;
//! * `kafka`: our consumer loop (the whole `run` pipeline) against a bare librdkafka
//!   consumer that does nothing, on the same broker and topics — the ratio shows whether
//!   the broker or we are the limit;
//! * `latency`: produce → stored-and-alerted latency (p50/p99), from each message's Kafka
//!   timestamp to the moment its batch is durable, next to a bare consumer's latency under
//!   the same paced production and to ours with the broker taken out (the same messages
//!   handed to the consumer-side path in process at the same rate).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::app::{IngestConfig, ingest};
use crate::batch::BatchLimits;
use crate::config::{Config, RawConfig, RawTopic};
use crate::decode::{DecodeOptions, Format};
use crate::detect::RuleSet;
use crate::error::{Error, Result};
use crate::generate::{GenSource, GenerateOptions, Generator, LiveOptions};
use crate::source::kafka::{self, Shared};

pub const TOPIC_K8S: &str = "bench-k8s";
pub const TOPIC_VAULT: &str = "bench-vault";

/// Generated records, split by source.
pub struct Corpus {
    pub k8s: Vec<Vec<u8>>,
    pub vault: Vec<Vec<u8>>,
    pub keys_k8s: Vec<String>,
    pub keys_vault: Vec<String>,
    pub bytes: u64,
    /// Event times of the first and last record, µs.
    pub span_us: (i64, i64),
}

impl Corpus {
    pub fn len(&self) -> usize {
        self.k8s.len() + self.vault.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes_per_record(&self) -> f64 {
        self.bytes as f64 / self.len().max(1) as f64
    }
    /// Simulated time from the first record to the last, seconds.
    pub fn span_seconds(&self) -> f64 {
        (self.span_us.1 - self.span_us.0).max(0) as f64 / 1e6
    }
}

/// What the generated records look like in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Traffic {
    /// Live traffic of an organisation sending about this many events per second,
    /// stamped from now on: what a consumer keeping up with a busy cluster sees (each
    /// batch falls into one or two hourly store partitions).
    Live { rate: f64 },
    /// The default organisation's simulated days replayed from their start (about 211k
    /// records per weekday, attacks included): a backlog, where each batch spans many
    /// hours and so is cut into many small files.
    Replay,
}

impl Traffic {
    pub fn label(&self) -> String {
        match self {
            Traffic::Live { rate } => format!("live, an organisation sending {rate:.0} events/s"),
            Traffic::Replay => "replay of simulated days (batches span many hours)".into(),
        }
    }
}

/// `n` records of the default simulated organisation (with its attacks when replayed),
/// keyed by event id (both entries of a Vault request share it, so they still meet on one
/// partition): keyed by actor, as `generate --kafka` does, a few busy controllers fill
/// single partitions past what the mock cluster keeps.
pub fn corpus(n: usize, seed: u64, traffic: Traffic) -> Result<Corpus> {
    let mut g = match traffic {
        Traffic::Replay => Generator::new(GenerateOptions {
            seed,
            days: 60,
            ..Default::default()
        })?,
        Traffic::Live { rate } => Generator::live(
            GenerateOptions {
                seed,
                live: Some(LiveOptions {
                    target_rate: Some(rate),
                    ..Default::default()
                }),
                ..Default::default()
            },
            std::time::SystemTime::now(),
        )?,
    };
    let mut c = Corpus {
        k8s: Vec::new(),
        vault: Vec::new(),
        keys_k8s: Vec::new(),
        keys_vault: Vec::new(),
        bytes: 0,
        span_us: (i64::MAX, i64::MIN),
    };
    // Vault requests still waiting for their response entry: the pipeline holds each
    // until its response arrives or `vault_pair_wait` (30 s) has passed since its event
    // time — immediately for replayed days, 30 s of waiting for live traffic
    let mut open = std::collections::HashSet::new();
    let mut past_n = 0usize;
    while c.len() < n || !open.is_empty() {
        let Some(ev) = g.next_event() else { break };
        let vault = ev.source == GenSource::Vault;
        if c.len() >= n {
            // past `n`: only the responses of requests already taken
            past_n += 1;
            if past_n > 1_000_000 {
                break;
            }
            if !(vault && open.contains(&ev.event_id)) {
                continue;
            }
        }
        if vault && !open.remove(&ev.event_id) {
            open.insert(ev.event_id.clone());
        }
        c.bytes += ev.bytes.len() as u64;
        c.span_us = (c.span_us.0.min(ev.time_us), c.span_us.1.max(ev.time_us));
        match ev.source {
            GenSource::Kubernetes => {
                c.k8s.push(ev.bytes);
                c.keys_k8s.push(ev.event_id);
            }
            GenSource::Vault => {
                c.vault.push(ev.bytes);
                c.keys_vault.push(ev.event_id);
            }
        }
    }
    Ok(c)
}

#[derive(Debug, Serialize)]
pub struct PipelineReport {
    pub traffic: String,
    /// Event time from the first generated record to the last.
    pub simulated_seconds: f64,
    pub records: usize,
    pub bytes: u64,
    pub bytes_per_record: f64,
    pub rules: usize,
    pub parse_only_records_per_s: f64,
    /// The Kafka consumer-side path (`run` over pre-loaded messages): decode → batch →
    /// detect → store → offsets stored.
    pub pipeline_records_per_s: f64,
    pub ratio: f64,
    pub rows_stored: u64,
    /// Event files the consumer path wrote (one per source and hour per batch).
    pub event_files: u64,
    pub alerts: u64,
    pub seconds: f64,
    /// The same records through `ingest` (one file per source, read from local disk).
    pub ingest_files_records_per_s: f64,
    pub ingest_files_ratio: f64,
    /// CPU µs per record on the consumer path, by thread: where the time goes.
    pub cpu_us_per_record: PerThread,
    /// Minor page faults per 1,000 records on the consumer path, by thread.
    pub faults_per_1k_records: PerThread,
}

/// Decode → batch → detect → store over pre-generated records, next to parse-only JSON.
pub async fn bench_pipeline(
    records: usize,
    traffic: Traffic,
    rules: Option<Arc<RuleSet>>,
    work: &Path,
) -> Result<PipelineReport> {
    let c = corpus(records, 7, traffic)?;
    std::fs::create_dir_all(work)?;
    let files = [
        (work.join("k8s.jsonl"), &c.k8s, Format::Kubernetes),
        (work.join("vault.jsonl"), &c.vault, Format::Vault),
    ];
    for (p, lines, _) in &files {
        let mut buf = Vec::with_capacity(c.bytes as usize / 2);
        for l in lines.iter() {
            buf.extend_from_slice(l);
            buf.push(b'\n');
        }
        std::fs::write(p, buf)?;
    }
    // reference: parse every record and throw it away (best of 3)
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0usize;
        for l in c.k8s.iter().chain(c.vault.iter()) {
            if serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok() {
                n += 1;
            }
        }
        std::hint::black_box(n);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let parse_rate = c.len() as f64 / best;
    // the pipeline, one input per source format, into a fresh store
    let store = work.join("store");
    let _ = std::fs::remove_dir_all(&store);
    let n_rules = rule_count(rules.as_ref());
    let t = Instant::now();
    for (p, _, fmt) in &files {
        ingest(IngestConfig {
            inputs: vec![p.display().to_string()],
            format: *fmt,
            data_dir: store.clone(),
            decode: DecodeOptions::default(),
            limits: BatchLimits::default(),
            progress: false,
            rules: rules.clone(),
            baselines: None,
        })
        .await?;
    }
    let files_rate = c.len() as f64 / t.elapsed().as_secs_f64();
    // the consumer-side path of `run`, fed from memory instead of a broker
    let through = consumer_path(&c, rules, &work.join("consumer-path")).await?;
    let rate = c.len() as f64 / through.seconds;
    Ok(PipelineReport {
        traffic: traffic.label(),
        simulated_seconds: c.span_seconds(),
        records: c.len(),
        bytes: c.bytes,
        bytes_per_record: c.bytes_per_record(),
        rules: n_rules,
        parse_only_records_per_s: parse_rate,
        pipeline_records_per_s: rate,
        ratio: rate / parse_rate,
        rows_stored: through.written,
        event_files: through.files,
        alerts: through.alerts,
        seconds: through.seconds,
        ingest_files_records_per_s: files_rate,
        ingest_files_ratio: files_rate / parse_rate,
        cpu_us_per_record: through.cpu_us_per_event,
        faults_per_1k_records: through.faults_per_1k_events,
    })
}

/// A figure by thread kind (the name with digits and a trailing `-`/`:` index removed:
/// `tokio-rt-worker`, `store-writer`, `rdk:broker`, ...).
pub type PerThread = std::collections::BTreeMap<String, f64>;

/// A reading of `/proc/self/task/*/stat`: one value per live thread, keyed by (kind, tid).
/// Kept per thread so that a thread of the same kind ending between two readings (another
/// pipeline's writer, a blocking-pool thread) does not subtract from the others.
type Reading = std::collections::BTreeMap<(String, u64), f64>;

/// `read` gets a thread's fields after its name (state is 0). Linux only; empty elsewhere.
fn per_thread(read: impl Fn(&[&str]) -> f64) -> Reading {
    let mut out = Reading::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ppid ...": comm may hold spaces, so split at the last ')'
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let Ok(tid) = stat[..open].trim().parse::<u64>() else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let kind = comm
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches(['-', ':', '#'])
            .to_string();
        out.insert((kind, tid), read(&f));
    }
    out
}

fn stat_field(f: &[&str], i: usize) -> f64 {
    f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
}

/// CPU time this process's threads have used, in seconds.
fn thread_cpu() -> Reading {
    // utime(11) and stime(12), in clock ticks; Linux reports them in USER_HZ = 100
    per_thread(|f| (stat_field(f, 11) + stat_field(f, 12)) / 100.0)
}

/// Minor page faults of this process's threads by thread kind: touching memory the
/// kernel must first map and zero (fresh allocations).
fn thread_faults() -> Reading {
    per_thread(|f| stat_field(f, 7))
}

/// Both readings, taken together.
fn thread_usage() -> (Reading, Reading) {
    (thread_cpu(), thread_faults())
}

/// The change between two readings per event, times `scale`, summed by thread kind
/// (kinds under `min` left out). Threads started in between count from zero; threads
/// ended in between are not in `after` and count nothing.
fn per_event(before: &Reading, after: &Reading, events: usize, scale: f64, min: f64) -> PerThread {
    let mut out = PerThread::new();
    for (key, a) in after {
        let d = a - before.get(key).copied().unwrap_or(0.0);
        *out.entry(key.0.clone()).or_insert(0.0) += d * scale / events.max(1) as f64;
    }
    out.retain(|_, v| *v >= min);
    out
}

/// CPU microseconds per event by thread kind between two [`thread_cpu`] readings.
fn cpu_per_event(before: &Reading, after: &Reading, events: usize) -> PerThread {
    per_event(before, after, events, 1e6, 0.05)
}

/// Minor page faults per 1,000 events by thread kind between two [`thread_faults`]
/// readings.
fn faults_per_1k_events(before: &Reading, after: &Reading, events: usize) -> PerThread {
    per_event(before, after, events, 1e3, 0.5)
}

/// Partitions per topic of the in-memory source (keys spread records over them as a
/// producer's partitioner would).
const MEMORY_PARTITIONS: i32 = 16;

/// The in-memory source's partition for a message key (a fixed hash, like a producer's
/// partitioner).
fn memory_partition(key: &str) -> i32 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let hasher = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    (hasher.hash_one(key) % MEMORY_PARTITIONS as u64) as i32
}

struct Through {
    seconds: f64,
    written: u64,
    alerts: u64,
    files: u64,
    cpu_us_per_event: PerThread,
    faults_per_1k_events: PerThread,
}

/// Runs `kafka::run_source` over the corpus pre-loaded into a [`kafka::MemorySource`]
/// until every partition's last offset is stored (each message durable with its alerts).
async fn consumer_path(c: &Corpus, rules: Option<Arc<RuleSet>>, data: &Path) -> Result<Through> {
    let _ = std::fs::remove_dir_all(data);
    let source = Arc::new(kafka::MemorySource::default());
    let mut end: std::collections::HashMap<(String, i32), i64> = Default::default();
    for (topic, msgs, keys) in [
        (TOPIC_K8S, &c.k8s, &c.keys_k8s),
        (TOPIC_VAULT, &c.vault, &c.keys_vault),
    ] {
        for (m, k) in msgs.iter().zip(keys) {
            let p = memory_partition(k);
            let next = end.entry((topic.to_string(), p)).or_insert(0);
            source.push(topic, p, *next, Some(k.as_bytes()), m);
            *next += 1;
        }
    }
    let cfg = pipeline_config("unused:9092", data, "memory")?;
    let shared = pipeline_shared(rules);
    let token = CancellationToken::new();
    let before = thread_usage();
    let t = Instant::now();
    let run = {
        let (cfg, shared, token, source) =
            (cfg.clone(), shared.clone(), token.clone(), source.clone());
        tokio::spawn(async move { kafka::run_source(&cfg, shared, token, source).await })
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let stored = source.stored();
        let done = end
            .iter()
            .filter(|(tp, n)| stored.get(*tp).is_some_and(|s| s >= *n))
            .count();
        if done == end.len() {
            break;
        }
        if run.is_finished() || Instant::now() > deadline {
            token.cancel();
            run.await.map_err(|e| Error::Config(e.to_string()))??;
            return Err(Error::Config(format!(
                "the pipeline stopped before storing every offset ({done} of {} partitions done)",
                end.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seconds = t.elapsed().as_secs_f64();
    // before the pipeline's threads end
    let after = thread_usage();
    let cpu_us_per_event = cpu_per_event(&before.0, &after.0, c.len());
    let faults = faults_per_1k_events(&before.1, &after.1, c.len());
    token.cancel();
    let stats = run.await.map_err(|e| Error::Config(e.to_string()))??;
    Ok(Through {
        seconds,
        written: stats.written,
        alerts: stats.alerts,
        files: stats.files,
        cpu_us_per_event,
        faults_per_1k_events: faults,
    })
}

/// A broker for a run: the given bootstrap servers or an in-process mock cluster.
pub struct Broker {
    pub bootstrap: String,
    _mock: Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
}

impl Broker {
    /// `partitions` per topic when the mock cluster is used.
    pub fn open(bootstrap: Option<&str>, partitions: i32) -> Result<Broker> {
        match bootstrap {
            Some(b) => Ok(Broker {
                bootstrap: b.to_string(),
                _mock: None,
            }),
            None => {
                let m = MockCluster::new(1).map_err(|e| Error::Kafka(e.to_string()))?;
                for t in [TOPIC_K8S, TOPIC_VAULT] {
                    m.create_topic(t, partitions.max(1), 1)
                        .map_err(|e| Error::Kafka(e.to_string()))?;
                }
                Ok(Broker {
                    bootstrap: m.bootstrap_servers(),
                    _mock: Some(m),
                })
            }
        }
    }

    pub fn is_mock(&self) -> bool {
        self._mock.is_some()
    }

    /// On a given broker, creates the bench topics with `partitions` each (topics that
    /// exist are left as they are). A broker that does not create topics on first use
    /// would otherwise refuse every message, and the run would wait for none to arrive.
    pub async fn ensure_topics(&self, partitions: i32) -> Result<()> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        use rdkafka::types::RDKafkaErrorCode;
        if self.is_mock() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .map_err(|e| Error::Kafka(e.to_string()))?;
        let topics: Vec<NewTopic> = [TOPIC_K8S, TOPIC_VAULT]
            .iter()
            .map(|t| NewTopic::new(t, partitions.max(1), TopicReplication::Fixed(1)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics(topics.iter(), &opts)
            .await
            .map_err(|e| Error::Kafka(format!("creating the bench topics: {e}")))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => {
                    return Err(Error::Kafka(format!("cannot create topic {t}: {e}")));
                }
            }
        }
        Ok(())
    }

    /// On a given broker, starts each of `groups` (new consumer groups of this run) at
    /// this run's first messages: each partition's committed offset is the first offset
    /// the run's delivery reports gave it (`first`), or, for a partition the run has not
    /// written to yet, its end offset read now. Messages left in the topics by earlier runs
    /// are then neither received nor counted as this run's (a new group with
    /// `auto.offset.reset=earliest` would read them all first). Delivery reports, not
    /// end offsets, because tansu 0.6.0 reports a partition's end as its last record
    /// batch's first offset + 1. The mock starts empty: nothing to do.
    pub async fn start_groups_at(&self, groups: &[String], first: &FirstOffsets) -> Result<()> {
        if self.is_mock() {
            return Ok(());
        }
        let (bootstrap, groups, first) = (self.bootstrap.clone(), groups.to_vec(), first.clone());
        tokio::task::spawn_blocking(move || start_groups_at(&bootstrap, &groups, &first))
            .await
            .map_err(|e| Error::Config(e.to_string()))?
    }

    /// What the reports call it.
    pub fn label(&self) -> String {
        if self.is_mock() {
            "librdkafka mock cluster".into()
        } else {
            self.bootstrap.clone()
        }
    }
}

/// The first offset each (topic, partition) was given by a producer's delivery reports.
pub type FirstOffsets = std::collections::HashMap<(String, i32), i64>;

fn start_groups_at(bootstrap: &str, groups: &[String], first: &FirstOffsets) -> Result<()> {
    use rdkafka::consumer::CommitMode;
    use rdkafka::{Offset, TopicPartitionList};
    let timeout = Duration::from_secs(30);
    let kerr = |what: &str, e: rdkafka::error::KafkaError| Error::Kafka(format!("{what}: {e}"));
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| kerr("creating a client", e))?;
    let mut start = TopicPartitionList::new();
    for topic in [TOPIC_K8S, TOPIC_VAULT] {
        let md = probe
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| kerr("reading the bench topics' metadata", e))?;
        for p in md.topics().iter().flat_map(|t| t.partitions()) {
            let offset = match first.get(&(topic.to_string(), p.id())) {
                Some(&o) => o,
                None => {
                    probe
                        .fetch_watermarks(topic, p.id(), timeout)
                        .map_err(|e| kerr(&format!("reading the end of {topic}/{}", p.id()), e))?
                        .1
                }
            };
            start
                .add_partition_offset(topic, p.id(), Offset::Offset(offset))
                .map_err(|e| kerr("listing offsets", e))?;
        }
    }
    for group in groups {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| kerr("creating a client", e))?;
        c.commit(&start, CommitMode::Sync)
            .map_err(|e| kerr(&format!("starting group {group} at this run's messages"), e))?;
    }
    Ok(())
}

/// A bench producer's delivery reports: the first offset each partition got, and how many
/// messages the broker did not take.
#[derive(Default)]
struct Deliveries {
    first: std::sync::Mutex<FirstOffsets>,
    failed: std::sync::atomic::AtomicU64,
}

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, r: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        use rdkafka::Message;
        match r {
            Ok(m) => {
                let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
                match first.get_mut(&(m.topic().to_string(), m.partition())) {
                    Some(o) => *o = (*o).min(m.offset()),
                    None => {
                        first.insert((m.topic().to_string(), m.partition()), m.offset());
                    }
                }
            }
            Err(_) => {
                self.failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

fn producer(bootstrap: &str) -> Result<BaseProducer> {
    producer_with(bootstrap, rdkafka::producer::DefaultProducerContext)
}

fn producer_with<C: rdkafka::producer::ProducerContext>(
    bootstrap: &str,
    context: C,
) -> Result<BaseProducer<C>> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "10")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(context)
        .map_err(|e| Error::Kafka(e.to_string()))
}

fn send<C: rdkafka::producer::ProducerContext<DeliveryOpaque = ()>>(
    p: &BaseProducer<C>,
    topic: &str,
    key: &str,
    payload: &[u8],
) {
    let mut rec = BaseRecord::to(topic).key(key).payload(payload);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, r)) => {
                rec = r;
                p.poll(Duration::from_millis(20));
            }
        }
    }
}

/// Produces a corpus to the bench topics (as fast as the broker takes it).
pub fn produce_all(bootstrap: &str, c: &Corpus) -> Result<()> {
    produce_round(bootstrap, c, 0, 1).map(|_| ())
}

/// The `round`-th of `rounds` equal slices of each source of `c` (its messages in
/// order), produced and flushed; returns how many messages that was, and the first offset
/// each partition got. Fails if the broker did not take every one.
fn produce_round(
    bootstrap: &str,
    c: &Corpus,
    round: usize,
    rounds: usize,
) -> Result<(usize, FirstOffsets)> {
    let slice = |len: usize| len * round / rounds..len * (round + 1) / rounds;
    let (k, v) = (slice(c.k8s.len()), slice(c.vault.len()));
    let p = producer_with(bootstrap, Deliveries::default())?;
    for (m, key) in c.k8s[k.clone()].iter().zip(&c.keys_k8s[k.clone()]) {
        send(&p, TOPIC_K8S, key, m);
        p.poll(Duration::ZERO);
    }
    for (m, key) in c.vault[v.clone()].iter().zip(&c.keys_vault[v.clone()]) {
        send(&p, TOPIC_VAULT, key, m);
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(120))
        .map_err(|e| Error::Kafka(e.to_string()))?;
    let d = p.context();
    let failed = d.failed.load(std::sync::atomic::Ordering::Relaxed);
    if failed > 0 {
        return Err(Error::Kafka(format!(
            "the broker did not take {failed} of {} messages",
            k.len() + v.len()
        )));
    }
    let first = std::mem::take(&mut *d.first.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((k.len() + v.len(), first))
}

/// The state a bench run shares with its pipeline, with `rules` loaded.
fn pipeline_shared(rules: Option<Arc<RuleSet>>) -> Arc<Shared> {
    let shared = Arc::new(Shared::default());
    if let Some(r) = rules {
        shared.rules.set(r);
    }
    shared
}

/// From now on the pipeline records each stored message's produce→stored latency.
fn start_probe(shared: &Shared) {
    *shared
        .latency_probe
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
}

/// How many stored messages the probe has recorded so far.
fn probed_count(shared: &Shared) -> usize {
    shared
        .latency_probe
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(0, Vec::len)
}

fn pipeline_config(bootstrap: &str, data: &Path, group: &str) -> Result<Config> {
    let mut raw = RawConfig::default();
    raw.store.data_dir = data.to_path_buf();
    raw.kafka.bootstrap_servers = bootstrap.to_string();
    raw.kafka.group_id = group.to_string();
    raw.kafka.topics = vec![
        RawTopic {
            name: TOPIC_K8S.into(),
            format: "k8s".into(),
        },
        RawTopic {
            name: TOPIC_VAULT.into(),
            format: "vault".into(),
        },
    ];
    raw.kafka
        .properties
        .insert("auto.offset.reset".into(), "earliest".into());
    raw.pipeline.linger = "100ms".into();
    raw.api.listen = "127.0.0.1:0".into();
    Config::try_from(raw)
}

#[derive(Debug, Serialize)]
pub struct KafkaReport {
    pub broker: String,
    pub traffic: String,
    /// Simulated time the generated traffic of all rounds covers.
    pub simulated_seconds: f64,
    /// Messages per round.
    pub messages: usize,
    pub rounds: usize,
    pub bytes_per_msg: f64,
    /// A do-nothing librdkafka consumer reading the first round.
    pub bare_consumer_msgs_per_s: f64,
    /// The first round, from our first message received (after the group join) to the
    /// last stored with its alerts: a pipeline that just started, touching its memory for
    /// the first time.
    pub first_round_msgs_per_s: f64,
    pub first_round_ratio: f64,
    /// The later rounds together (their messages over the sum of their times): the rate
    /// of a pipeline that has been running. None with one round.
    pub warm_msgs_per_s: Option<f64>,
    pub warm_ratio: Option<f64>,
    /// Each round's rate, from its first message received to its last stored.
    pub round_msgs_per_s: Vec<f64>,
    /// Each round's CPU microseconds per message, all threads together: a slow round
    /// with the usual CPU per message spent longer waiting (its start, its drain, the
    /// broker), one with more was slowed down doing its work.
    pub round_cpu_us_per_msg: Vec<f64>,
    /// Each round's drain: from its last message received to its last stored (the open
    /// batches' linger and the writer finishing what is queued); 0 when the bench saw
    /// both in one 5 ms poll.
    pub round_drain_ms: Vec<f64>,
    pub rules: usize,
    pub linger_ms: u64,
    /// librdkafka properties given for both consumers (`--consumer-property`).
    pub consumer_properties: std::collections::BTreeMap<String, String>,
    /// Messages the pipeline received over all rounds, rows it stored, and rows it found
    /// already stored (none unless a message was received twice).
    pub messages_received: u64,
    pub rows_stored: u64,
    pub duplicates: u64,
    /// Event files the pipeline wrote (one per source and hour per batch).
    pub event_files: u64,
    /// CPU µs per message over the warm rounds (the first when there is only one), by
    /// thread (the mock broker's included).
    pub cpu_us_per_msg: PerThread,
    /// Minor page faults per 1,000 messages over the warm rounds, by thread.
    pub faults_per_1k_msgs: PerThread,
    /// The same two over the first round.
    pub cpu_us_per_msg_first_round: PerThread,
    pub faults_per_1k_msgs_first_round: PerThread,
}

/// What `bench kafka` produces and how the pipeline batches it.
#[derive(Debug, Clone)]
pub struct KafkaRun {
    /// Messages per round.
    pub messages: usize,
    /// Rounds of `messages` each, one after another through the same running pipeline:
    /// each round is produced while its consumer is paused, then measured from its first
    /// message received to its last stored. The first round is a cold start; the others
    /// show the rate of a pipeline that has been running (the broker keeps only the
    /// last ~5 MB per partition, so one long run is not possible on the mock).
    pub rounds: usize,
    /// Partitions per topic of the mock cluster.
    pub partitions: i32,
    /// The pipeline's batch linger.
    pub linger: Duration,
    pub traffic: Traffic,
    /// librdkafka properties for both consumers, the pipeline's and the bare reference
    /// (fetch sizes, say), over our defaults.
    pub consumer_properties: Vec<(String, String)>,
}

/// One round of [`bench_kafka`]: messages, seconds, and the per-thread readings
/// (CPU, faults) at its start and end.
struct Round {
    messages: usize,
    secs: f64,
    /// From the round's last message received to its last stored.
    drain_secs: f64,
    usage: [(Reading, Reading); 2],
}

/// Our whole Kafka pipeline against a do-nothing consumer on the same broker and topics.
pub async fn bench_kafka(
    bootstrap: Option<&str>,
    run: KafkaRun,
    rules: Option<Arc<RuleSet>>,
    work: &Path,
) -> Result<KafkaReport> {
    let rounds = run.rounds.max(1);
    let broker = Broker::open(bootstrap, run.partitions)?;
    broker.ensure_topics(run.partitions).await?;
    let c = Arc::new(corpus(run.messages * rounds, 11, run.traffic)?);
    // the mock keeps about the last 5 MB per partition: a round must stay well under it
    // (keys spread messages unevenly)
    let per_part = |v: &[Vec<u8>]| {
        v.iter().map(Vec::len).sum::<usize>() / rounds / run.partitions.max(1) as usize
    };
    if broker.is_mock() && per_part(&c.k8s).max(per_part(&c.vault)) > 3_000_000 {
        return Err(Error::Config(format!(
            "{} messages per round are {} MB: the mock cluster keeps only ~5 MB per partition; use fewer messages, more --partitions, or --bootstrap",
            c.len() / rounds,
            c.bytes / rounds as u64 / 1_000_000
        )));
    }
    let produce = |round: usize| {
        let (bs, c) = (broker.bootstrap.clone(), c.clone());
        async move {
            tokio::task::spawn_blocking(move || produce_round(&bs, &c, round, rounds))
                .await
                .map_err(|e| Error::Config(e.to_string()))?
        }
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let (bare_group, group) = (format!("bare-{run_id}"), format!("aw-{run_id}"));
    let (first_n, first_offsets) = produce(0).await?;
    broker
        .start_groups_at(&[bare_group.clone(), group.clone()], &first_offsets)
        .await?;

    // 1. bare librdkafka consumer of the first round: receive and drop
    let (bs, props) = (broker.bootstrap.clone(), run.consumer_properties.clone());
    let bare = tokio::task::spawn_blocking(move || -> Result<f64> {
        let props: Vec<(&str, &str)> = props
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let cons = bare_consumer(&bs, &bare_group, "earliest", &props)?;
        let mut got = 0usize;
        let mut start = None;
        let mut last = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(600);
        while got < first_n && Instant::now() < deadline {
            if let Some(Ok(_m)) = cons.poll(Duration::from_millis(100)) {
                start.get_or_insert_with(Instant::now);
                last = Instant::now();
                got += 1;
            } else if start.is_some() && last.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        if got < first_n {
            return Err(Error::Config(format!(
                "the broker returned {got} of {first_n} messages (the mock cluster keeps only ~5 MB per partition): use fewer messages, more --partitions, or --bootstrap"
            )));
        }
        let secs = start.map_or(1.0, |s| s.elapsed().as_secs_f64());
        Ok(got as f64 / secs)
    })
    .await
    .map_err(|e| Error::Config(e.to_string()))??;

    // 2. our pipeline, round after round, each until every message of it is stored
    let data = work.join(format!("kafka-{run_id}"));
    let mut cfg = pipeline_config(&broker.bootstrap, &data, &group)?;
    cfg.linger = run.linger;
    cfg.kafka
        .properties
        .extend(run.consumer_properties.iter().cloned());
    let n_rules = rule_count(rules.as_ref());
    let shared = pipeline_shared(rules);
    start_probe(&shared);
    let token = CancellationToken::new();
    let consumer = Arc::new(kafka::consumer(&cfg.kafka, shared.clone())?);
    let pipeline = {
        let (cfg, shared, token, consumer) =
            (cfg.clone(), shared.clone(), token.clone(), consumer.clone());
        tokio::spawn(async move { kafka::run_source(&cfg, shared, token, consumer).await })
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    let consumed = || {
        [TOPIC_K8S, TOPIC_VAULT]
            .iter()
            .map(|t| {
                crate::metrics::metrics()
                    .consumed_messages
                    .with_label_values(&[t])
                    .get()
            })
            .sum::<u64>()
    };
    let stored = || probed_count(&shared);
    let mut measured: Vec<Round> = Vec::with_capacity(rounds);
    let mut target = 0;
    for round in 0..rounds {
        // nothing more to fetch until a later round is produced: pause meanwhile, so that
        // the round is measured from a full broker, not while it is being produced
        let paused = match round {
            0 => None,
            _ => {
                let assigned = consumer.assignment().map_err(kafka::kafka_err)?;
                consumer.pause(&assigned).map_err(kafka::kafka_err)?;
                Some(assigned)
            }
        };
        let messages = match round {
            0 => first_n,
            _ => produce(round).await?.0,
        };
        let usage = thread_usage();
        if let Some(assigned) = &paused {
            consumer.resume(assigned).map_err(kafka::kafka_err)?;
        }
        measured.push(Round {
            messages,
            secs: 0.0,
            drain_secs: 0.0,
            usage: [usage.clone(), usage],
        });
        target += messages;
        let before = consumed();
        let mut first: Option<Instant> = None;
        let mut last: Option<Instant> = None;
        while stored() < target && Instant::now() < deadline {
            let got = consumed() - before;
            if first.is_none() && got > 0 {
                first = Some(Instant::now());
            }
            if last.is_none() && got >= messages as u64 {
                last = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if stored() < target {
            token.cancel();
            return Err(Error::Config(format!(
                "round {round}: {} of {target} messages stored in 15 minutes",
                stored()
            )));
        }
        let r = measured.last_mut().expect("pushed above");
        r.secs = first.map_or(1.0, |f| f.elapsed().as_secs_f64());
        r.drain_secs = last.map_or(0.0, |l| l.elapsed().as_secs_f64());
        r.usage[1] = thread_usage();
    }
    token.cancel();
    let stats = pipeline.await.map_err(|e| Error::Config(e.to_string()))??;
    let rate = |rs: &[Round]| {
        rs.iter().map(|r| r.messages).sum::<usize>() as f64 / rs.iter().map(|r| r.secs).sum::<f64>()
    };
    // CPU and faults per message over rounds: the sum of each round's own (producing the
    // next round in between is not the pipeline's work)
    let per_msg = |rs: &[Round]| {
        let n = rs.iter().map(|r| r.messages).sum();
        let total = |at: usize, cpu: bool| {
            let mut sum = Reading::new();
            for r in rs {
                let u = &r.usage[at];
                for (k, v) in if cpu { &u.0 } else { &u.1 } {
                    *sum.entry(k.clone()).or_default() += v;
                }
            }
            sum
        };
        (
            cpu_per_event(&total(0, true), &total(1, true), n),
            faults_per_1k_events(&total(0, false), &total(1, false), n),
        )
    };
    let first_round = rate(&measured[..1]);
    let warm = (rounds > 1).then(|| rate(&measured[1..]));
    let (cpu_first, faults_first) = per_msg(&measured[..1]);
    let (cpu_us_per_msg, faults_per_1k_msgs) = if rounds > 1 {
        per_msg(&measured[1..])
    } else {
        (cpu_first.clone(), faults_first.clone())
    };
    Ok(KafkaReport {
        broker: broker.label(),
        traffic: run.traffic.label(),
        simulated_seconds: c.span_seconds(),
        messages: first_n,
        rounds,
        bytes_per_msg: c.bytes_per_record(),
        bare_consumer_msgs_per_s: bare,
        first_round_msgs_per_s: first_round,
        first_round_ratio: first_round / bare,
        warm_msgs_per_s: warm,
        warm_ratio: warm.map(|w| w / bare),
        round_msgs_per_s: measured
            .iter()
            .map(|r| r.messages as f64 / r.secs)
            .collect(),
        round_drain_ms: measured.iter().map(|r| r.drain_secs * 1e3).collect(),
        round_cpu_us_per_msg: measured
            .iter()
            .map(|r| per_msg(std::slice::from_ref(r)).0.values().sum())
            .collect(),
        rules: n_rules,
        linger_ms: run.linger.as_millis() as u64,
        consumer_properties: run.consumer_properties.iter().cloned().collect(),
        messages_received: stats.messages,
        rows_stored: stats.written,
        duplicates: stats.duplicates,
        event_files: stats.files,
        cpu_us_per_msg,
        faults_per_1k_msgs,
        cpu_us_per_msg_first_round: cpu_first,
        faults_per_1k_msgs_first_round: faults_first,
    })
}

#[derive(Debug, Serialize)]
pub struct LatencyReport {
    pub broker: String,
    pub traffic: String,
    pub target_rate: u64,
    pub achieved_rate: f64,
    pub messages: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Batches close on rows or this, whichever first.
    pub linger_ms: u64,
    pub rules: usize,
    /// librdkafka properties given for the run (both consumers).
    pub consumer_properties: std::collections::BTreeMap<String, String>,
    /// The same production measured by a bare librdkafka consumer (Kafka timestamp to
    /// the message in its hands): what the broker and client alone add.
    pub bare_consumer: PacedLatency,
    /// Our pipeline at the same rate with the broker taken out: the same messages handed
    /// to the consumer-side path in process, latency from hand-over to stored.
    pub in_process: PacedLatency,
}

#[derive(Debug, Serialize)]
pub struct PacedLatency {
    pub achieved_rate: f64,
    pub messages: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl PacedLatency {
    /// Quantiles of the latencies (seconds) of a run that produced at `achieved_rate`.
    fn of(achieved_rate: f64, mut lat: Vec<f64>) -> PacedLatency {
        lat.sort_by(f64::total_cmp);
        PacedLatency {
            achieved_rate,
            messages: lat.len(),
            p50_ms: quantile_ms(&lat, 0.5),
            p99_ms: quantile_ms(&lat, 0.99),
            max_ms: quantile_ms(&lat, 1.0),
        }
    }
}

/// A do-nothing librdkafka consumer of the bench topics (the reference for ours), with our
/// consumer's fetch settings and `props`.
fn bare_consumer(
    bootstrap: &str,
    group: &str,
    reset: &str,
    props: &[(&str, &str)],
) -> Result<BaseConsumer> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", reset)
        .set("enable.auto.commit", "false");
    for (k, v) in kafka::FETCH_DEFAULTS.iter().chain(props) {
        cfg.set(*k, *v);
    }
    let cons: BaseConsumer = cfg.create().map_err(|e| Error::Kafka(e.to_string()))?;
    cons.subscribe(&[TOPIC_K8S, TOPIC_VAULT])
        .map_err(|e| Error::Kafka(e.to_string()))?;
    Ok(cons)
}

/// p-quantile of sorted seconds, in ms.
fn quantile_ms(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] * 1000.0
}

/// The corpus in generated proportion of the two sources (topic, key, payload), in the
/// order a paced run sends them.
fn interleaved(c: &Corpus) -> Vec<(&'static str, &str, &[u8])> {
    let mut msgs = Vec::with_capacity(c.len());
    let (mut i, mut j) = (0, 0);
    while i < c.k8s.len() || j < c.vault.len() {
        if i < c.k8s.len() && (j >= c.vault.len() || i * c.vault.len() <= j * c.k8s.len()) {
            msgs.push((TOPIC_K8S, c.keys_k8s[i].as_str(), c.k8s[i].as_slice()));
            i += 1;
        } else {
            msgs.push((TOPIC_VAULT, c.keys_vault[j].as_str(), c.vault[j].as_slice()));
            j += 1;
        }
    }
    msgs
}

/// Calls `send` for each message at `rate` per second (sleeping until each is due).
/// Returns how many were sent and the rate achieved.
fn paced<'a>(
    msgs: &[(&'static str, &'a str, &'a [u8])],
    rate: u64,
    mut send: impl FnMut(&'static str, &'a str, &'a [u8]),
    mut idle: impl FnMut(),
) -> (usize, f64) {
    let t0 = Instant::now();
    for (k, (topic, key, m)) in msgs.iter().enumerate() {
        let due = t0 + Duration::from_secs_f64(k as f64 / rate as f64);
        let now = Instant::now();
        if due > now {
            idle();
            std::thread::sleep(due - now);
        }
        send(topic, key, m);
    }
    (msgs.len(), msgs.len() as f64 / t0.elapsed().as_secs_f64())
}

/// The corpus produced at `rate` per second. Returns how many were sent and the rate
/// achieved.
fn produce_paced(bootstrap: &str, c: &Corpus, rate: u64) -> Result<(usize, f64)> {
    let p = producer(bootstrap)?;
    let r = paced(
        &interleaved(c),
        rate,
        |topic, key, m| {
            send(&p, topic, key, m);
            p.poll(Duration::ZERO);
        },
        || {
            p.poll(Duration::ZERO);
        },
    );
    let _ = p.flush(Duration::from_secs(60));
    Ok(r)
}

/// A do-nothing consumer's latency under the same paced production: subscribed and
/// assigned first, then each message's Kafka timestamp to its arrival.
async fn bare_latency(
    bootstrap: &str,
    c: Arc<Corpus>,
    rate: u64,
    props: &[(&str, &str)],
) -> Result<PacedLatency> {
    let bs = bootstrap.to_string();
    let group = format!("bare-lat-{}", uuid::Uuid::new_v4().simple());
    let cons = Arc::new(bare_consumer(&bs, &group, "latest", props)?);
    let assigned_by = Instant::now() + Duration::from_secs(30);
    while cons.assignment().map_or(0, |a| a.count()) == 0 && Instant::now() < assigned_by {
        let _ = cons.poll(Duration::from_millis(50));
    }
    // positions resolved before anything is produced
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        let _ = cons.poll(Duration::from_millis(50));
    }
    let n = c.len();
    let reader = {
        let cons = cons.clone();
        tokio::task::spawn_blocking(move || {
            let mut lat = Vec::with_capacity(n);
            let mut last = Instant::now();
            while lat.len() < n && last.elapsed() < Duration::from_secs(30) {
                if let Some(Ok(m)) = cons.poll(Duration::from_millis(100)) {
                    use rdkafka::message::Message;
                    if let Some(ts) = m.timestamp().to_millis() {
                        let now = chrono::Utc::now().timestamp_millis();
                        lat.push((now - ts).max(0) as f64 / 1000.0);
                    }
                    last = Instant::now();
                }
            }
            lat
        })
    };
    let (_, achieved) = tokio::task::spawn_blocking(move || produce_paced(&bs, &c, rate))
        .await
        .map_err(|e| Error::Config(e.to_string()))??;
    let lat = reader.await.map_err(|e| Error::Config(e.to_string()))?;
    Ok(PacedLatency::of(achieved, lat))
}

/// What `bench latency` produces and how the pipeline batches it.
#[derive(Debug, Clone)]
pub struct LatencyRun {
    /// Messages per second.
    pub rate: u64,
    pub duration: Duration,
    /// Partitions per topic of the mock cluster.
    pub partitions: i32,
    /// The pipeline's batch linger.
    pub linger: Duration,
    /// Replayed simulated days instead of live traffic at `rate`.
    pub replay: bool,
    /// librdkafka properties for both consumers, the pipeline's and the bare reference,
    /// over our defaults (e.g. `fetch.wait.max.ms`, which a broker like tansu waits out on
    /// every fetch).
    pub consumer_properties: Vec<(String, String)>,
}

/// Produce at `rate` for `duration` while the pipeline runs; latency from each message's
/// Kafka timestamp to its batch being stored with its alerts.
pub async fn bench_latency(
    bootstrap: Option<&str>,
    run: LatencyRun,
    rules: Option<Arc<RuleSet>>,
    work: &Path,
) -> Result<LatencyReport> {
    let LatencyRun {
        rate,
        duration,
        partitions,
        linger,
        replay,
        consumer_properties,
    } = run;
    let traffic = if replay {
        Traffic::Replay
    } else {
        Traffic::Live { rate: rate as f64 }
    };
    let broker = Broker::open(bootstrap, partitions)?;
    broker.ensure_topics(partitions).await?;
    let want = (rate as f64 * duration.as_secs_f64()) as usize;
    let c = Arc::new(corpus(want, 13, traffic)?);
    // the reference first: the same production read by a do-nothing consumer (on a mock
    // cluster of its own, so the pipeline's run starts from the same empty broker)
    // The mock answers a fetch that finds no data only after the full `fetch.wait.max.ms`
    // (librdkafka's default 500 ms), even when messages arrive meanwhile; a real broker
    // answers as soon as they do. Both consumers ask the mock for short waits instead.
    // Properties given for the run come after (and so override) that.
    let mut props: Vec<(&str, &str)> = Vec::new();
    if broker.is_mock() {
        props.push(("fetch.wait.max.ms", "10"));
    }
    props.extend(
        consumer_properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let bare_consumer = if broker.is_mock() {
        let own = Broker::open(None, partitions)?;
        bare_latency(&own.bootstrap, c.clone(), rate, &props).await?
    } else {
        bare_latency(&broker.bootstrap, c.clone(), rate, &props).await?
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let in_process = in_process_latency(
        c.clone(),
        rate,
        linger,
        rules.clone(),
        &work.join(format!("in-process-{run_id}")),
    )
    .await?;
    let data = work.join(format!("latency-{run_id}"));
    let mut cfg = pipeline_config(&broker.bootstrap, &data, &format!("lat-{run_id}"))?;
    cfg.linger = linger;
    cfg.kafka
        .properties
        .insert("auto.offset.reset".into(), "latest".into());
    for (k, v) in &props {
        cfg.kafka.properties.insert(k.to_string(), v.to_string());
    }
    let n_rules = rule_count(rules.as_ref());
    let shared = pipeline_shared(rules);
    let token = CancellationToken::new();
    let run = {
        let (cfg, shared, token) = (cfg.clone(), shared.clone(), token.clone());
        tokio::spawn(async move { kafka::run(&cfg, shared, token).await })
    };
    // wait for the assignment before producing (lag would count as latency otherwise)
    let ready_by = Instant::now() + Duration::from_secs(30);
    while !shared.is_ready() && Instant::now() < ready_by {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    start_probe(&shared);
    let bs = broker.bootstrap.clone();
    let pc = c.clone();
    let produced = tokio::task::spawn_blocking(move || produce_paced(&bs, &pc, rate))
        .await
        .map_err(|e| Error::Config(e.to_string()))??;
    let (n, achieved) = produced;
    let lat = probed(&shared, n).await;
    token.cancel();
    run.await.map_err(|e| Error::Config(e.to_string()))??;
    if lat.len() < n {
        return Err(Error::Config(format!(
            "{} of {n} produced messages reached the store within 60 s: percentiles over the rest would hide them (a mock cluster keeps only ~5 MB per partition; try more --partitions or a lower --rate)",
            lat.len()
        )));
    }
    let ours = PacedLatency::of(achieved, lat);
    Ok(LatencyReport {
        broker: broker.label(),
        traffic: traffic.label(),
        target_rate: rate,
        achieved_rate: ours.achieved_rate,
        messages: ours.messages,
        p50_ms: ours.p50_ms,
        p99_ms: ours.p99_ms,
        max_ms: ours.max_ms,
        linger_ms: linger.as_millis() as u64,
        rules: n_rules,
        consumer_properties: consumer_properties.into_iter().collect(),
        bare_consumer,
        in_process,
    })
}

/// Waits until `n` latencies were probed (or a minute passed) and takes them.
async fn probed(shared: &Shared, n: usize) -> Vec<f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if probed_count(shared) >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared
        .latency_probe
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
}

/// Our pipeline's own latency at `rate`: the same paced messages handed to `run_source`
/// through a [`kafka::MemorySource`] (each stamped as it is handed over) instead of a
/// broker, from that stamp to its batch being stored with its alerts.
async fn in_process_latency(
    c: Arc<Corpus>,
    rate: u64,
    linger: Duration,
    rules: Option<Arc<RuleSet>>,
    data: &Path,
) -> Result<PacedLatency> {
    let _ = std::fs::remove_dir_all(data);
    let source = Arc::new(kafka::MemorySource::default());
    let mut cfg = pipeline_config("unused:9092", data, "in-process-latency")?;
    cfg.linger = linger;
    let shared = pipeline_shared(rules);
    start_probe(&shared);
    let token = CancellationToken::new();
    let run = {
        let (cfg, shared, token, source) =
            (cfg.clone(), shared.clone(), token.clone(), source.clone());
        tokio::spawn(async move { kafka::run_source(&cfg, shared, token, source).await })
    };
    let (n, achieved) = tokio::task::spawn_blocking(move || {
        let mut next: std::collections::HashMap<(&str, i32), i64> = Default::default();
        paced(
            &interleaved(&c),
            rate,
            |topic, key, m| {
                let p = memory_partition(key);
                let o = next.entry((topic, p)).or_insert(0);
                source.push(topic, p, *o, Some(key.as_bytes()), m);
                *o += 1;
            },
            || {},
        )
    })
    .await
    .map_err(|e| Error::Config(e.to_string()))?;
    let lat = probed(&shared, n).await;
    token.cancel();
    run.await.map_err(|e| Error::Config(e.to_string()))??;
    Ok(PacedLatency::of(achieved, lat))
}

/// Rules that raise alerts on their own (standalone detections and correlations).
fn rule_count(rules: Option<&Arc<RuleSet>>) -> usize {
    rules.map_or(0, |r| {
        r.rules.iter().filter(|x| x.standalone).count() + r.correlations.len()
    })
}

/// A scratch directory for a bench run.
pub fn work_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("auditwatch-bench-{}", std::process::id()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `work` on a thread named `name` and takes `read()` before it starts and once
    /// it is done but still alive (an ended thread leaves /proc/self/task).
    #[cfg(target_os = "linux")]
    fn around_named_thread<T: Send + 'static>(
        name: &str,
        work: impl FnOnce() -> T + Send + 'static,
        read: impl Fn() -> Reading,
    ) -> (Reading, Reading, T) {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let before = read();
        let t = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let out = work();
                done_tx.send(()).unwrap();
                hold_rx.recv().unwrap();
                out
            })
            .unwrap();
        done_rx.recv().unwrap();
        let after = read();
        hold_tx.send(()).unwrap();
        (before, after, t.join().unwrap())
    }

    /// The per-thread CPU reading finds a busy named thread and groups it by kind.
    #[cfg(target_os = "linux")]
    #[test]
    fn thread_cpu_counts_a_busy_named_thread_under_its_kind() {
        let spin = || {
            let start = Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(300) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            x
        };
        let (before, after, _) = around_named_thread("burner-7", spin, thread_cpu);
        let per_event = cpu_per_event(&before, &after, 1);
        let burned = per_event.get("burner").copied().unwrap_or(0.0);
        // 300 ms of spinning: at least 150 ms of CPU even on a busy machine
        assert!(burned >= 150_000.0, "{per_event:?}");
        assert!(!per_event.contains_key("burner-7"), "{per_event:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn thread_faults_count_fresh_memory_a_named_thread_touches() {
        let touch = || {
            // 64 MB written page by page: at least one fault per 4 KB page (fewer only if
            // the kernel maps huge pages)
            let mut v = vec![0u8; 0];
            v.resize(64 << 20, 1);
            v.iter().step_by(4096).map(|&b| b as u64).sum::<u64>()
        };
        let (before, after, pages) = around_named_thread("toucher-3", touch, thread_faults);
        assert_eq!(pages, (64 << 20) / 4096);
        let per_1k = faults_per_1k_events(&before, &after, 1_000);
        // 16,384 pages of 4 KB, or 32 huge pages
        let faults = per_1k.get("toucher").copied().unwrap_or(0.0);
        assert!(faults >= 32.0, "{per_1k:?}");
    }

    #[test]
    fn quantiles_of_a_paced_run() {
        let lat: Vec<f64> = (1..=100).rev().map(|i| i as f64 / 1000.0).collect();
        let q = PacedLatency::of(100.0, lat);
        assert_eq!(q.messages, 100);
        assert!(q.p50_ms <= q.p99_ms && q.p99_ms <= q.max_ms, "{q:?}");
        assert_eq!(q.max_ms, 100.0);
        assert!((49.0..=51.0).contains(&q.p50_ms), "{q:?}");
    }

    /// `bench kafka` on a small corpus: every message produced to the mock is stored, the
    /// reference consumer read them all, and the CPU breakdown names the writer thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bench_kafka_stores_every_message_of_a_small_run() {
        let work = tempfile::tempdir().unwrap();
        let r = bench_kafka(
            None,
            KafkaRun {
                messages: 3_000,
                rounds: 2,
                partitions: 8,
                linger: Duration::from_millis(100),
                traffic: Traffic::Live { rate: 250_000.0 },
                // applied to both consumers (librdkafka refuses to create one with an
                // unknown or invalid property), and echoed in the report
                consumer_properties: vec![("fetch.max.bytes".into(), "1048576".into())],
            },
            None,
            work.path(),
        )
        .await
        .unwrap();
        // half of 6,000 and the responses of the last Vault requests taken
        assert!((2_950..3_100).contains(&r.messages), "{r:?}");
        assert_eq!(r.round_msgs_per_s.len(), 2, "{r:?}");
        assert_eq!(r.round_cpu_us_per_msg.len(), 2, "{r:?}");
        assert!(r.round_cpu_us_per_msg.iter().all(|&c| c > 0.0), "{r:?}");
        // each round's drain (last received → last stored) is a part of its time; 0 when
        // both happened within one 5 ms poll of the bench
        assert_eq!(r.round_drain_ms.len(), 2, "{r:?}");
        for (drain, rate) in r.round_drain_ms.iter().zip(&r.round_msgs_per_s) {
            let round_ms = r.messages as f64 / rate * 1e3;
            assert!(*drain >= 0.0 && *drain < round_ms * 1.1, "{r:?}");
        }
        assert!(
            r.first_round_msgs_per_s > 0.0
                && r.warm_msgs_per_s.is_some_and(|w| w > 0.0)
                && r.bare_consumer_msgs_per_s > 0.0,
            "{r:?}"
        );
        // both rounds received once each (the pause and resume re-read nothing), and
        // nothing stored twice
        assert!((6_000..6_100).contains(&r.messages_received), "{r:?}");
        assert_eq!(r.duplicates, 0, "{r:?}");
        assert_eq!(
            r.consumer_properties
                .get("fetch.max.bytes")
                .map(String::as_str),
            Some("1048576")
        );
        #[cfg(target_os = "linux")]
        assert!(r.cpu_us_per_msg.contains_key("store-writer"), "{r:?}");
        // live traffic: 3,000 records are a fraction of a second of event time, so each
        // batch writes one file per source (two at an hour's turn), a round or two batches
        assert!(r.simulated_seconds < 5.0, "{r:?}");
        assert!(r.event_files <= 16, "{r:?}");
    }

    /// Live traffic is stamped from now at about the asked rate; a replay spans the
    /// simulated days from their start.
    #[test]
    fn live_and_replayed_corpora_differ_in_time_not_in_kind() {
        let now = chrono::Utc::now().timestamp_micros();
        let live = corpus(20_000, 3, Traffic::Live { rate: 10_000.0 }).unwrap();
        assert!(
            (live.span_us.0 - now).abs() < 60_000_000,
            "{:?}",
            live.span_us
        );
        // 20,000 records at ~10,000/s (the rate follows the time of day)
        assert!(
            (0.5..20.0).contains(&live.span_seconds()),
            "{}",
            live.span_seconds()
        );
        let replay = corpus(20_000, 3, Traffic::Replay).unwrap();
        assert!(replay.span_seconds() > 3_600.0, "{}", replay.span_seconds());
        for c in [&live, &replay] {
            // a few more than asked: the responses of the last requests taken
            assert!((20_000..20_100).contains(&c.len()), "{}", c.len());
            // every Vault request has its response (the pipeline would hold it 30 s)
            let mut seen = std::collections::HashMap::<&str, usize>::new();
            for k in &c.keys_vault {
                *seen.entry(k).or_default() += 1;
            }
            let unpaired: Vec<_> = seen.iter().filter(|(_, n)| **n != 2).collect();
            assert!(unpaired.is_empty(), "{unpaired:?}");
            assert!(!c.k8s.is_empty() && !c.vault.is_empty());
            assert!(
                (300.0..3_000.0).contains(&c.bytes_per_record()),
                "{}",
                c.bytes_per_record()
            );
        }
    }

    /// `bench latency` at a low rate: each of the three measurements saw every message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bench_latency_measures_every_produced_message() {
        let work = tempfile::tempdir().unwrap();
        let r = bench_latency(
            None,
            LatencyRun {
                rate: 400,
                duration: Duration::from_secs(1),
                partitions: 4,
                linger: Duration::from_millis(50),
                replay: false,
                // over the mock's 10 ms default, for both consumers, and echoed
                consumer_properties: vec![("fetch.wait.max.ms".into(), "20".into())],
            },
            None,
            work.path(),
        )
        .await
        .unwrap();
        assert!((400..500).contains(&r.messages), "{r:?}");
        assert_eq!(
            r.consumer_properties
                .get("fetch.wait.max.ms")
                .map(String::as_str),
            Some("20")
        );
        assert_eq!(r.bare_consumer.messages, r.messages, "{r:?}");
        assert_eq!(r.in_process.messages, r.messages, "{r:?}");
        for q in [
            (r.p50_ms, r.p99_ms, r.max_ms),
            (
                r.in_process.p50_ms,
                r.in_process.p99_ms,
                r.in_process.max_ms,
            ),
        ] {
            assert!(q.0 <= q.1 && q.1 <= q.2, "{r:?}");
        }
    }
}
