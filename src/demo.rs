//! `auditwatch demo`: everything in one process with no setup — an in-process Kafka
//! broker (librdkafka's mock cluster), the generator producing live traffic with attacks,
//! the Kafka pipeline with the rule pack, the HTTP endpoints on 127.0.0.1 and a local
//! store. It prints injected scenarios and alerts as they happen, a status line every
//! few seconds, and at the end which scenarios raised alerts.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, RawConfig, RawTopic};
use crate::detect::fields::FieldMap;
use crate::detect::{Alert, RuleSet, sigma};
use crate::error::{Error, Result};
use crate::generate::{GenSource, GenerateOptions, Generator, Label, LiveOptions};
use crate::metrics::metrics;
use crate::source::kafka::{self, Shared};

include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));

const TOPIC_K8S: &str = "k8s-audit";
const TOPIC_VAULT: &str = "vault-audit";
const TOPIC_DLQ: &str = "audit-dead-letter";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Benign events per second the generator aims for.
    pub rate: f64,
    /// Simulated time between injected attacks.
    pub attack_every: Duration,
    pub seed: u64,
    pub listen: SocketAddr,
    /// Store directory (default: a new directory under the system temp dir).
    pub data_dir: Option<PathBuf>,
    /// Rule paths (default: the rule pack built into the binary).
    pub rules: Vec<PathBuf>,
    /// Stop after this long (default: until Ctrl-C).
    pub duration: Option<Duration>,
    /// Seconds between status lines.
    pub status_every: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            rate: 300.0,
            attack_every: Duration::from_secs(60),
            seed: 1,
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            data_dir: None,
            rules: vec![],
            duration: None,
            status_every: Duration::from_secs(10),
        }
    }
}

/// What a demo run did (also printed).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DemoSummary {
    pub produced: u64,
    pub consumed: u64,
    pub rows_written: u64,
    pub quarantined: u64,
    pub alerts: u64,
    pub scenarios: Vec<(String, String, bool)>,
    pub data_dir: PathBuf,
}

/// The rule pack compiled into the binary.
pub fn embedded_rules() -> RuleSet {
    let fields = FieldMap::builtin();
    let mut diags = Vec::new();
    let mut docs = Vec::new();
    for (path, text) in EMBEDDED_RULES {
        docs.extend(sigma::parse_file(
            std::path::Path::new(path),
            text,
            &mut diags,
        ));
    }
    RuleSet::compile(docs, &fields, diags)
}

/// Runs the demo until `shutdown` completes or the duration passes.
pub async fn demo(
    opts: DemoOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<DemoSummary> {
    let data_dir = opts.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "auditwatch-demo-{}",
            chrono::Utc::now().format("%Y%m%d-%H%M%S")
        ))
    });
    let cluster = MockCluster::new(1).map_err(|e| Error::Kafka(e.to_string()))?;
    for (t, parts) in [(TOPIC_K8S, 4), (TOPIC_VAULT, 2), (TOPIC_DLQ, 1)] {
        cluster
            .create_topic(t, parts, 1)
            .map_err(|e| Error::Kafka(e.to_string()))?;
    }
    let bootstrap = cluster.bootstrap_servers();

    let rules = if opts.rules.is_empty() {
        embedded_rules()
    } else {
        crate::app::load_rules(&opts.rules, None)?
    };
    let n_rules = rules.rules.iter().filter(|r| r.standalone).count() + rules.correlations.len();

    let mut raw = RawConfig::default();
    raw.store.data_dir = data_dir.clone();
    raw.kafka.bootstrap_servers = bootstrap.clone();
    raw.kafka.group_id = "auditwatch-demo".into();
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
    raw.kafka.dead_letter_topic = TOPIC_DLQ.into();
    raw.pipeline.linger = "250ms".into();
    raw.pipeline.batch_rows = 8192;
    raw.api.listen = opts.listen.to_string();
    let cfg = Config::try_from(raw)?;

    let token = CancellationToken::new();
    let shared = Arc::new(Shared::default());
    shared.rules.set(Arc::new(rules));
    let mut alerts_rx = shared.alerts.subscribe();

    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let api = crate::api::ApiState::for_demo(&cfg, shared.clone())?;
    let http = tokio::spawn(crate::api::serve_with(
        cfg.api_listen,
        api,
        token.clone(),
        Some(bound_tx),
    ));
    let addr = bound_rx
        .await
        .map_err(|_| Error::Config(format!("cannot listen on {}", cfg.api_listen)))?;
    println!("auditwatch demo");
    println!(
        "  broker    in-process mock Kafka at {bootstrap} (topics {TOPIC_K8S}, {TOPIC_VAULT}, {TOPIC_DLQ})"
    );
    println!(
        "  traffic   simulated org: 40 workloads, controllers, nodes, humans; ~{} events/s; an attack every {}s",
        opts.rate,
        opts.attack_every.as_secs()
    );
    println!("  rules     {n_rules} active");
    println!("  store     {}", data_dir.display());
    println!(
        "  http      http://{addr}/metrics  http://{addr}/readyz  http://{addr}/api/v1/openapi.json"
    );
    println!(
        "  api       curl 'http://{addr}/api/v1/alerts?limit=5'   (no token needed: loopback demo)"
    );
    println!(
        "  query     auditwatch query --data-dir {} \"select title, actor, count(*) from alerts group by 1, 2\"",
        data_dir.display()
    );
    println!("Ctrl-C stops; the summary follows.\n");

    let pipeline = {
        let (cfg, shared, token) = (cfg.clone(), shared.clone(), token.clone());
        tokio::spawn(async move { kafka::run(&cfg, shared, token).await })
    };

    // generator → mock broker, on its own thread (it paces itself on the wall clock)
    let produced = Arc::new(AtomicU64::new(0));
    let gen_stop = CancellationToken::new();
    let (label_tx, mut label_rx) = tokio::sync::mpsc::unbounded_channel::<Label>();
    let gen_opts = GenerateOptions {
        seed: opts.seed,
        live: Some(LiveOptions {
            speed: 1.0,
            attack_every: opts.attack_every,
            target_rate: Some(opts.rate),
        }),
        ..Default::default()
    };
    let gen_thread = {
        let (produced, stop, bootstrap) = (produced.clone(), gen_stop.clone(), bootstrap.clone());
        std::thread::spawn(move || produce_live(gen_opts, &bootstrap, &produced, &stop, &label_tx))
    };

    let started = Instant::now();
    let stop_at = opts.duration.map(|d| started + d);
    let mut status = tokio::time::interval(opts.status_every);
    status.tick().await;
    let mut shutdown = Box::pin(shutdown);
    let mut labels: Vec<Label> = Vec::new();
    let mut fired: Vec<Alert> = Vec::new();
    loop {
        let deadline = async {
            match stop_at {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = deadline => break,
            a = alerts_rx.recv() => match a {
                Ok(a) => {
                    println!("{}", alert_line(&a));
                    fired.push(a);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    println!("  ({n} alerts not shown; all are in the alerts table)");
                }
                Err(_) => break,
            },
            l = label_rx.recv() => if let Some(l) = l {
                println!(
                    "{}  >> injected scenario {} by {}: {}",
                    chrono::Utc::now().format("%H:%M:%S"),
                    l.kind.as_str(),
                    l.actor,
                    l.description
                );
                labels.push(l);
            },
            _ = status.tick() => println!("{}", status_line(started, produced.load(Ordering::Relaxed))),
        }
    }

    println!("\nstopping: generator first, then the pipeline drains and commits");
    gen_stop.cancel();
    let _ = tokio::task::spawn_blocking(move || gen_thread.join()).await;
    // let the pipeline catch up with what was produced (bounded wait)
    let produced_n = produced.load(Ordering::Relaxed);
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    while consumed_total() < produced_n && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok(a) = alerts_rx.try_recv() {
            println!("{}", alert_line(&a));
            fired.push(a);
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    while let Ok(a) = alerts_rx.try_recv() {
        println!("{}", alert_line(&a));
        fired.push(a);
    }
    token.cancel();
    let stats = pipeline
        .await
        .map_err(|e| Error::Config(format!("pipeline task failed: {e}")))??;
    let _ = http.await;
    drop(cluster);

    let alert_events: HashSet<&str> = fired
        .iter()
        .flat_map(|a| a.event_ids.iter().map(String::as_str))
        .collect();
    let scenarios: Vec<(String, String, bool)> = labels
        .iter()
        .map(|l| {
            let hit = l
                .event_ids
                .iter()
                .any(|e| alert_events.contains(e.as_str()));
            (l.kind.as_str().to_string(), l.actor.clone(), hit)
        })
        .collect();
    let summary = DemoSummary {
        produced: produced_n,
        consumed: consumed_total(),
        rows_written: stats.written,
        quarantined: stats.quarantined,
        alerts: fired.len() as u64,
        scenarios,
        data_dir: data_dir.clone(),
    };
    print_summary(&summary, &fired, started.elapsed());
    Ok(summary)
}

fn produce_live(
    opts: GenerateOptions,
    bootstrap: &str,
    produced: &AtomicU64,
    stop: &CancellationToken,
    labels: &tokio::sync::mpsc::UnboundedSender<Label>,
) -> Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "100000")
        .create()
        .map_err(|e| Error::Kafka(e.to_string()))?;
    let mut g = Generator::live(opts, SystemTime::now())?;
    while !stop.is_cancelled() {
        let Some(ev) = g.next_event() else { break };
        if let Some(due) = g.due_at(ev.time_us)
            && let Ok(wait) = due.duration_since(SystemTime::now())
        {
            // sleep in short steps so a stop is prompt
            let until = Instant::now() + wait;
            while Instant::now() < until && !stop.is_cancelled() {
                producer.poll(Duration::ZERO);
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
            }
        }
        for l in g.take_new_labels() {
            let _ = labels.send(l);
        }
        let topic = match ev.source {
            GenSource::Kubernetes => TOPIC_K8S,
            GenSource::Vault => TOPIC_VAULT,
        };
        let mut rec = BaseRecord::to(topic).key(&ev.key).payload(&ev.bytes);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    // queue full: let deliveries complete
                    rec = r;
                    producer.poll(Duration::from_millis(50));
                    if stop.is_cancelled() {
                        return Ok(());
                    }
                }
            }
        }
        produced.fetch_add(1, Ordering::Relaxed);
        producer.poll(Duration::ZERO);
    }
    let _ = producer.flush(Duration::from_secs(10));
    Ok(())
}

fn consumed_total() -> u64 {
    let m = &metrics().consumed_messages;
    [TOPIC_K8S, TOPIC_VAULT]
        .iter()
        .map(|t| m.with_label_values(&[*t]).get())
        .sum()
}

fn status_line(started: Instant, produced: u64) -> String {
    let m = metrics();
    let events: u64 = ["kubernetes", "vault"]
        .iter()
        .flat_map(|s| {
            ["success", "denied", "failure", "unknown"]
                .iter()
                .map(move |o| m.events.with_label_values(&[*s, *o]).get())
        })
        .sum();
    let mut lag = 0;
    for (t, parts) in [(TOPIC_K8S, 4), (TOPIC_VAULT, 2)] {
        for p in 0..parts {
            lag += m
                .consumer_lag
                .with_label_values(&[t, &p.to_string()])
                .get()
                .max(0);
        }
    }
    format!(
        "{}  [{:>4}s] produced {produced}  consumed {}  rows {events}  lag {lag}  alerts {}",
        chrono::Utc::now().format("%H:%M:%S"),
        started.elapsed().as_secs(),
        consumed_total(),
        prometheus::core::Collector::collect(&m.alerts)
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|x| x.get_counter().get_value() as u64)
            .sum::<u64>(),
    )
}

fn alert_line(a: &Alert) -> String {
    format!(
        "{}  !! {:<8} {}  actor={}  {}{}",
        crate::normalize::format_time_us(a.time)
            .get(11..19)
            .unwrap_or(""),
        a.severity.as_str().to_uppercase(),
        a.title,
        a.actor.as_deref().unwrap_or("-"),
        a.resources.first().map(String::as_str).unwrap_or(""),
        if a.event_ids.len() > 1 {
            format!("  ({} events)", a.event_ids.len())
        } else {
            String::new()
        }
    )
}

fn print_summary(s: &DemoSummary, fired: &[Alert], elapsed: Duration) {
    println!("\n== summary after {}s", elapsed.as_secs());
    println!(
        "messages produced {}  consumed {}  rows stored {}  quarantined {}  alerts {}",
        s.produced, s.consumed, s.rows_written, s.quarantined, s.alerts
    );
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for a in fired {
        *by_rule.entry(a.title.as_str()).or_default() += 1;
    }
    for (t, n) in by_rule {
        println!("  {n:>5}  {t}");
    }
    if !s.scenarios.is_empty() {
        println!("scenarios injected (detected = an alert cites one of its events):");
        for (kind, actor, hit) in &s.scenarios {
            println!(
                "  {:<28} {:<60} {}",
                kind,
                actor,
                if *hit { "detected" } else { "no rule alert" }
            );
        }
    }
    println!("store: {}", s.data_dir.display());
}
