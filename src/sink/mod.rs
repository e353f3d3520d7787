//! Alert sinks: a Kafka topic, a webhook, a JSON-lines file, stdout — any combination.
//!
//! Delivery: the pipeline appends each batch's new alerts to a durable **outbox**
//! (`<data-dir>/outbox/`, JSON-lines segments, fsync'd) before it stores the batch's
//! offsets; that append is the sinks' "accepted". Each sink runs its own worker that reads
//! the outbox from its persisted cursor, delivers in batches with retries (exponential
//! backoff with jitter), and advances the cursor only after the destination acknowledged.
//! A sink outage therefore never loses an alert (they wait in the outbox, also across
//! restarts) and never blocks ingestion (the pipeline only waits for the local append).
//! Alerts waiting per sink are the `auditwatch_sink_backlog_alerts` metric. Delivery is
//! at-least-once; alert ids are deterministic, so receivers deduplicate by id (the Kafka
//! sink uses the id as the message key).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::detect::Alert;
use crate::error::{Error, Result};
use crate::siem::{AlertFormat, render};

/// Segments roll over at this size.
const SEGMENT_BYTES: u64 = 64 << 20;

/// The durable queue between the pipeline and the sinks.
pub struct Outbox {
    dir: PathBuf,
    seq: u64,
    file: File,
    len: u64,
}

fn segment_name(seq: u64) -> String {
    format!("alerts-{seq:012}.jsonl")
}

fn segments(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_prefix("alerts-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()
        })
        .collect();
    v.sort_unstable();
    v
}

impl Outbox {
    pub fn open(dir: &Path) -> Result<Outbox> {
        std::fs::create_dir_all(dir.join("cursors"))?;
        let seq = segments(dir).last().copied().unwrap_or(1);
        let path = dir.join(segment_name(seq));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        crate::store::durable::sync_dir(dir)?;
        let len = file.metadata()?.len();
        Ok(Outbox {
            dir: dir.to_path_buf(),
            seq,
            file,
            len,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends alerts and syncs them to disk.
    pub fn append(&mut self, alerts: &[Alert]) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        if self.len >= SEGMENT_BYTES {
            self.seq += 1;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(segment_name(self.seq)))?;
            // the new segment's name must survive a crash along with its contents
            crate::store::durable::sync_dir(&self.dir)?;
            self.len = 0;
        }
        let mut buf = Vec::new();
        for a in alerts {
            serde_json::to_writer(&mut buf, &Stored::from(a))?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.len += buf.len() as u64;
        Ok(())
    }
}

/// An alert as the outbox keeps it (times as integers, every field round-trips).
#[derive(Serialize, Deserialize)]
struct Stored {
    id: String,
    time: i64,
    rule_id: String,
    title: String,
    severity: String,
    detector: String,
    actor: Option<String>,
    source: Option<String>,
    resources: Vec<String>,
    window_start: i64,
    window_end: i64,
    event_ids: Vec<String>,
    tags: Vec<String>,
    explanation: serde_json::Value,
}

impl From<&Alert> for Stored {
    fn from(a: &Alert) -> Stored {
        Stored {
            id: a.id.clone(),
            time: a.time,
            rule_id: a.rule_id.clone(),
            title: a.title.clone(),
            severity: a.severity.as_str().to_string(),
            detector: a.detector.clone(),
            actor: a.actor.clone(),
            source: a.source.clone(),
            resources: a.resources.clone(),
            window_start: a.window_start,
            window_end: a.window_end,
            event_ids: a.event_ids.clone(),
            tags: a.tags.clone(),
            explanation: a.explanation.clone(),
        }
    }
}

impl From<Stored> for Alert {
    fn from(s: Stored) -> Alert {
        Alert {
            id: s.id,
            time: s.time,
            rule_id: s.rule_id,
            title: s.title,
            severity: crate::detect::sigma::Level::parse(&s.severity)
                .unwrap_or(crate::detect::sigma::Level::Medium),
            detector: s.detector,
            actor: s.actor,
            source: s.source,
            resources: s.resources,
            window_start: s.window_start,
            window_end: s.window_end,
            event_ids: s.event_ids,
            tags: s.tags,
            explanation: s.explanation,
        }
    }
}

/// Where one sink is in the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub segment: u64,
    pub offset: u64,
}

fn cursor_path(dir: &Path, sink: &str) -> PathBuf {
    dir.join("cursors").join(format!("{sink}.json"))
}

pub fn load_cursor(dir: &Path, sink: &str) -> Cursor {
    std::fs::read(cursor_path(dir, sink))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Cursor {
            segment: segments(dir).first().copied().unwrap_or(1),
            offset: 0,
        })
}

fn save_cursor(dir: &Path, sink: &str, c: Cursor) -> Result<()> {
    let p = cursor_path(dir, sink);
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&c)?)?;
    File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &p)?;
    crate::store::durable::sync_dir(&dir.join("cursors"))?;
    Ok(())
}

/// Reads up to `max` complete alert lines from a cursor; returns them and the cursor after.
pub fn read_batch(dir: &Path, mut c: Cursor, max: usize) -> Result<(Vec<Alert>, Cursor)> {
    let mut out = Vec::new();
    loop {
        let path = dir.join(segment_name(c.segment));
        let Ok(mut f) = File::open(&path) else {
            // a gap (segment removed or not yet created): move to the next existing one
            match segments(dir).into_iter().find(|s| *s > c.segment) {
                Some(s) => {
                    c = Cursor {
                        segment: s,
                        offset: 0,
                    };
                    continue;
                }
                None => return Ok((out, c)),
            }
        };
        f.seek(SeekFrom::Start(c.offset))?;
        let mut r = BufReader::new(f);
        let mut line = Vec::new();
        while out.len() < max {
            line.clear();
            let n = r.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break; // end, or a line still being written
            }
            c.offset += n as u64;
            match serde_json::from_slice::<Stored>(&line) {
                Ok(a) => out.push(a.into()),
                Err(e) => {
                    tracing::error!(error = %e, segment = c.segment, "unreadable outbox line skipped")
                }
            }
        }
        if out.len() >= max {
            return Ok((out, c));
        }
        // this segment is exhausted; continue in the next if there is one
        match segments(dir).into_iter().find(|s| *s > c.segment) {
            Some(s) => {
                c = Cursor {
                    segment: s,
                    offset: 0,
                }
            }
            None => return Ok((out, c)),
        }
    }
}

/// Alerts between a cursor and the end of the outbox.
pub fn backlog(dir: &Path, c: Cursor) -> u64 {
    let mut n = 0;
    for s in segments(dir).into_iter().filter(|s| *s >= c.segment) {
        let Ok(mut f) = File::open(dir.join(segment_name(s))) else {
            continue;
        };
        if s == c.segment && f.seek(SeekFrom::Start(c.offset)).is_err() {
            continue;
        }
        n += BufReader::new(f).split(b'\n').count() as u64;
    }
    n
}

/// Removes segments every sink has passed (never the one being written).
pub fn collect_garbage(dir: &Path, sinks: &[String]) {
    let segs = segments(dir);
    let Some(&last) = segs.last() else { return };
    let min = sinks
        .iter()
        .map(|s| load_cursor(dir, s).segment)
        .min()
        .unwrap_or(0);
    for s in segs.into_iter().filter(|s| *s < min && *s < last) {
        let _ = std::fs::remove_file(dir.join(segment_name(s)));
    }
}

// ---------------------------------------------------------------- sinks

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Stdout,
    File,
    Kafka,
    Webhook,
}

/// One configured sink (`[[sinks]]` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Unique name (the cursor file and metric label).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SinkKind,
    /// native | ocsf | ecs
    #[serde(default = "native")]
    pub format: String,
    /// file: the JSON-lines file to append to.
    pub path: Option<PathBuf>,
    /// kafka: topic and brokers (default: the pipeline's).
    pub topic: Option<String>,
    pub bootstrap_servers: Option<String>,
    /// webhook: URL and the HMAC key, from a file or from the named environment variable
    /// (never from the config file itself).
    pub url: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    #[serde(default = "batch")]
    pub batch: usize,
    /// Per-attempt timeout.
    #[serde(default = "timeout")]
    pub timeout: String,
}

fn native() -> String {
    "native".into()
}
fn batch() -> usize {
    100
}
fn timeout() -> String {
    "10s".into()
}

impl SinkConfig {
    pub fn format(&self) -> Result<AlertFormat> {
        match self.format.as_str() {
            "native" => Ok(AlertFormat::Native),
            "ocsf" => Ok(AlertFormat::Ocsf),
            "ecs" => Ok(AlertFormat::Ecs),
            o => Err(Error::Config(format!(
                "sink {}: unknown format {o:?}",
                self.name
            ))),
        }
    }

    /// Checks the settings each kind needs.
    pub fn validate(&self) -> Result<()> {
        let need = |what: bool, field: &str| {
            if what {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "sink {}: `{field}` is required",
                    self.name
                )))
            }
        };
        self.format()?;
        if self.name.is_empty() || self.name.contains(['/', '\\', '.']) {
            return Err(Error::Config(format!(
                "sink name {:?} must be a plain word",
                self.name
            )));
        }
        match self.kind {
            SinkKind::Stdout => Ok(()),
            SinkKind::File => need(self.path.is_some(), "path"),
            SinkKind::Kafka => need(self.topic.is_some(), "topic"),
            SinkKind::Webhook => {
                need(self.url.is_some(), "url")?;
                need(
                    self.secret_file.is_some() || self.secret_env.is_some(),
                    "secret_file or secret_env",
                )
            }
        }?;
        crate::config::parse_duration(&self.timeout)?;
        Ok(())
    }
}

enum Target {
    Stdout,
    File(File),
    Kafka {
        producer: FutureProducer,
        topic: String,
    },
    Webhook {
        client: reqwest::Client,
        url: String,
        key: Secret,
    },
}

/// A sink ready to deliver.
pub struct Sink {
    pub name: String,
    format: AlertFormat,
    batch: usize,
    timeout: Duration,
    target: Target,
}

impl Sink {
    pub fn open(cfg: &SinkConfig, default_bootstrap: &str) -> Result<Sink> {
        cfg.validate()?;
        let timeout = crate::config::parse_duration(&cfg.timeout)?;
        let target = match cfg.kind {
            SinkKind::Stdout => Target::Stdout,
            SinkKind::File => {
                let p = cfg.path.as_ref().expect("validated");
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d)?;
                }
                Target::File(OpenOptions::new().create(true).append(true).open(p)?)
            }
            SinkKind::Kafka => Target::Kafka {
                producer: ClientConfig::new()
                    .set(
                        "bootstrap.servers",
                        cfg.bootstrap_servers
                            .as_deref()
                            .unwrap_or(default_bootstrap),
                    )
                    .set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set(
                        "message.timeout.ms",
                        &timeout.as_millis().max(1000).to_string(),
                    )
                    .create()
                    .map_err(|e| Error::Kafka(e.to_string()))?,
                topic: cfg.topic.clone().expect("validated"),
            },
            SinkKind::Webhook => {
                let key = match (&cfg.secret_file, &cfg.secret_env) {
                    (Some(f), _) => std::fs::read_to_string(f)
                        .map_err(|e| Error::Config(format!("sink {} secret_file: {e}", cfg.name)))?
                        .trim_end()
                        .to_string(),
                    (None, Some(v)) => std::env::var(v).map_err(|_| {
                        Error::Config(format!(
                            "sink {}: environment variable {v} is not set",
                            cfg.name
                        ))
                    })?,
                    _ => unreachable!("validated"),
                };
                if key.is_empty() {
                    return Err(Error::Config(format!(
                        "sink {}: empty webhook secret",
                        cfg.name
                    )));
                }
                Target::Webhook {
                    client: reqwest::Client::builder()
                        .timeout(timeout)
                        .build()
                        .map_err(|e| Error::Config(format!("sink {}: {e}", cfg.name)))?,
                    url: cfg.url.clone().expect("validated"),
                    key: Secret::new(key),
                }
            }
        };
        Ok(Sink {
            name: cfg.name.clone(),
            format: cfg.format()?,
            batch: cfg.batch.max(1),
            timeout,
            target,
        })
    }

    /// Delivers one batch; Ok only when the destination acknowledged all of it.
    pub async fn deliver(&mut self, alerts: &[Alert]) -> std::result::Result<(), String> {
        let docs: Vec<serde_json::Value> = alerts.iter().map(|a| render(a, self.format)).collect();
        match &mut self.target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                for d in &docs {
                    writeln!(out, "{d}").map_err(|e| e.to_string())?;
                }
                out.flush().map_err(|e| e.to_string())
            }
            Target::File(f) => {
                let mut buf = Vec::new();
                for d in &docs {
                    serde_json::to_writer(&mut buf, d).map_err(|e| e.to_string())?;
                    buf.push(b'\n');
                }
                f.write_all(&buf).map_err(|e| e.to_string())?;
                f.sync_data().map_err(|e| e.to_string())
            }
            Target::Kafka { producer, topic } => {
                let sends = alerts.iter().zip(&docs).map(|(a, d)| {
                    let payload = d.to_string();
                    let producer = producer.clone();
                    let topic = topic.clone();
                    let key = a.id.clone();
                    let timeout = self.timeout;
                    async move {
                        producer
                            .send(
                                FutureRecord::to(&topic).key(&key).payload(&payload),
                                timeout,
                            )
                            .await
                            .map(|_| ())
                            .map_err(|(e, _)| e.to_string())
                    }
                });
                for r in futures::future::join_all(sends).await {
                    r?;
                }
                Ok(())
            }
            Target::Webhook { client, url, key } => {
                let body = serde_json::to_vec(&docs).map_err(|e| e.to_string())?;
                let ts = chrono::Utc::now().timestamp().to_string();
                let sig = sign(key.expose().as_bytes(), &ts, &body);
                let resp = client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .header("x-auditwatch-timestamp", &ts)
                    .header("x-auditwatch-signature", format!("sha256={sig}"))
                    .header("x-auditwatch-batch-size", alerts.len().to_string())
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("webhook request failed: {e}"))?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("webhook answered {}", resp.status()))
                }
            }
        }
    }
}

/// HMAC-SHA256 over `timestamp.body`, hex (what receivers verify; the timestamp bounds replays).
pub fn sign(key: &[u8], ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Delivers a sink's backlog until cancelled, then makes one last pass.
pub async fn run(mut sink: Sink, dir: PathBuf, all_sinks: Vec<String>, token: CancellationToken) {
    let m = crate::metrics::metrics();
    let mut cursor = load_cursor(&dir, &sink.name);
    let mut backoff = Duration::from_millis(200);
    let mut last_gc = std::time::Instant::now();
    loop {
        let (batch, next) = match read_batch(&dir, cursor, sink.batch) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(sink = sink.name, error = %e, "outbox read failed");
                (vec![], cursor)
            }
        };
        m.sink_backlog
            .with_label_values(&[sink.name.as_str()])
            .set(backlog(&dir, cursor) as i64);
        if batch.is_empty() {
            if cursor != next {
                cursor = next;
                let _ = save_cursor(&dir, &sink.name, cursor);
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            continue;
        }
        match sink.deliver(&batch).await {
            Ok(()) => {
                m.sink_delivered
                    .with_label_values(&[sink.name.as_str()])
                    .inc_by(batch.len() as u64);
                cursor = next;
                if let Err(e) = save_cursor(&dir, &sink.name, cursor) {
                    tracing::error!(sink = sink.name, error = %e, "cursor save failed");
                }
                backoff = Duration::from_millis(200);
                if last_gc.elapsed() > Duration::from_secs(30) {
                    collect_garbage(&dir, &all_sinks);
                    last_gc = std::time::Instant::now();
                }
            }
            Err(e) => {
                m.sink_failures
                    .with_label_values(&[sink.name.as_str()])
                    .inc();
                // full jitter: a random wait up to the current backoff
                let wait = backoff.mul_f64(rand::random::<f64>().max(0.1));
                tracing::warn!(sink = sink.name, error = %e, retry_in = ?wait, "alert delivery failed; will retry");
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}
