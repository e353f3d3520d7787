//! Wiring of the stages: source → decode → batch → store (→ detect and alert sinks, as
//! they land). `ingest` runs the pipeline over files; `query` runs read-only SQL.
//!
//! Decoding is CPU work and runs on a blocking thread; it hands closed batches to the
//! async store writer over a bounded channel, so a slow store slows decoding down instead
//! of growing memory.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::batch::{BatchLimits, Batcher, Closed, Counts};
use crate::decode::framing::Framer;
use crate::decode::{DecodeOptions, Decoder, Format};
use crate::detect::{Engine, RuleSet};
use crate::error::{Error, Result};
use crate::normalize::Provenance;
use crate::query::{OutputFormat, QueryEngine, write_batches};
use crate::source::file;
use crate::store::{AppendStats, Store};

/// Settings of one `ingest` run.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub inputs: Vec<String>,
    pub format: Format,
    pub data_dir: PathBuf,
    pub decode: DecodeOptions,
    pub limits: BatchLimits,
    /// Show a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Rules evaluated on every batch; alerts go to the `alerts` table.
    pub rules: Option<Arc<RuleSet>>,
    /// Baseline detectors run over the input in event time (flushed at the end).
    pub baselines: Option<crate::baseline::DetectorConfig>,
}

/// The line `ingest` prints at the end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IngestSummary {
    /// Rows decoded from the input (including rows that were already stored).
    pub events: u64,
    /// Records rejected and written to the quarantine table.
    pub quarantined: u64,
    /// Decoded rows dropped because the store already had them.
    pub duplicates: u64,
    /// Alerts raised.
    pub alerts: u64,
}

/// Runs decode → batch → store over files (or stdin).
pub async fn ingest(cfg: IngestConfig) -> Result<IngestSummary> {
    let mut store = Store::open_local(&cfg.data_dir)?;
    let (tx, mut rx) = mpsc::channel::<Closed>(2);
    let decode_cfg = cfg.clone();
    let decoder = tokio::task::spawn_blocking(move || decode_inputs(&decode_cfg, tx));
    let mut stored = AppendStats::default();
    let mut write_err = None;
    let mut engine = cfg.rules.clone().map(Engine::new);
    let mut baselines = cfg.baselines.clone().map(crate::baseline::Baselines::new);
    let mut alerts = AppendStats::default();
    while let Some(closed) = rx.recv().await {
        if write_err.is_some() {
            continue; // drain so the decoder finishes; the error is reported below
        }
        let mut raised = match (&mut engine, &closed.events) {
            (Some(e), Some(b)) => e.evaluate(b),
            _ => vec![],
        };
        if let (Some(bl), Some(b)) = (&mut baselines, &closed.events) {
            raised.extend(bl.evaluate(b));
        }
        // events first, then their alerts: an alert never points at an unstored event
        let res = match write_closed(&mut store, &closed, &mut stored).await {
            Ok(()) => store.append_alerts(&raised).await.map(|s| alerts += s),
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            write_err = Some(e);
        }
    }
    if let Some(bl) = &mut baselines
        && write_err.is_none()
    {
        // end of input: the rows still held for lateness are processed now
        match store.append_alerts(&bl.flush()).await {
            Ok(s) => alerts += s,
            Err(e) => write_err = Some(e),
        }
    }
    let counts = decoder
        .await
        .map_err(|e| Error::Config(format!("decoder thread failed: {e}")))??;
    if let Some(e) = write_err {
        return Err(e);
    }
    tracing::info!(
        events = counts.events,
        quarantined = counts.quarantined,
        skipped = counts.skipped,
        written = stored.written,
        files = stored.files,
        "ingest finished"
    );
    Ok(IngestSummary {
        events: counts.events,
        quarantined: counts.quarantined,
        duplicates: stored.duplicates as u64,
        alerts: (alerts.written + alerts.duplicates) as u64,
    })
}

async fn write_closed(store: &mut Store, closed: &Closed, stored: &mut AppendStats) -> Result<()> {
    if let Some(b) = &closed.events {
        *stored += store.append_events(b).await?;
    }
    if let Some(b) = &closed.quarantine {
        store.append_quarantine(b).await?;
    }
    Ok(())
}

fn decode_inputs(cfg: &IngestConfig, tx: mpsc::Sender<Closed>) -> Result<Counts> {
    let mut batcher = Batcher::new(cfg.limits);
    let inputs = file::expand(&cfg.inputs)?;
    let total: Option<u64> = inputs
        .iter()
        .map(|p| {
            if p == "-" {
                None
            } else {
                std::fs::metadata(p).ok().map(|m| m.len())
            }
        })
        .sum();
    let bar = progress_bar(cfg.progress, total);
    let mut done: u64 = 0;
    let send = |b: &mut Batcher| -> Result<()> {
        let closed = b.take()?;
        tx.blocking_send(closed)
            .map_err(|_| Error::Config("store writer stopped".into()))
    };
    for path in &inputs {
        let input = file::open(path)?;
        let mut decoder = Decoder::new(cfg.format, cfg.decode.clone());
        let mut framer = Framer::new(input.reader, cfg.limits.quarantine_max_bytes);
        let name = input.name.clone();
        loop {
            let frame = match framer.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    return Err(Error::Input {
                        path: name,
                        source: e,
                    });
                }
            };
            let prov = Provenance {
                input: Some(&name),
                input_offset: Some(frame.offset as i64),
                ..Default::default()
            };
            decoder.decode_frame(&frame, &prov, &mut batcher);
            if batcher.is_full() {
                send(&mut batcher)?;
            }
            if let Some(bar) = &bar {
                bar.set_position(done + framer.position());
            }
        }
        decoder.flush(&mut batcher);
        done += framer.position();
    }
    if batcher.rows() > 0 {
        send(&mut batcher)?;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(batcher.counts)
}

fn progress_bar(enabled: bool, total: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// Runs one read-only SQL statement over the store and writes the result.
pub async fn query(
    data_dir: &std::path::Path,
    sql: &str,
    fmt: OutputFormat,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    Store::open_local(data_dir)?;
    let engine = QueryEngine::open(data_dir)?;
    let batches = engine.sql(sql).await?;
    write_batches(&batches, fmt, out)
}

/// `auditwatch run`: the Kafka pipeline plus the operational HTTP endpoints, until
/// `shutdown` completes; then drains, commits and returns.
pub async fn run(
    cfg: crate::config::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<crate::source::kafka::RunStats> {
    use std::sync::Arc;
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: draining");
        t.cancel();
    });
    let shared = Arc::new(crate::source::kafka::Shared::default());
    // sinks stop after the pipeline: they keep delivering while it drains
    let sink_stop = tokio_util::sync::CancellationToken::new();
    if !cfg.rules.is_empty() {
        let rs = load_rules(&cfg.rules, cfg.fields.as_deref())?;
        tracing::info!(
            rules = rs.rules.len(),
            correlations = rs.correlations.len(),
            "rules loaded"
        );
        shared.rules.set(Arc::new(rs));
        tokio::spawn(watch_rules(
            shared.clone(),
            cfg.rules.clone(),
            cfg.fields.clone(),
            std::time::Duration::from_secs(2),
            token.clone(),
        ));
    }
    let mut sink_tasks = Vec::new();
    if !cfg.sinks.is_empty() {
        let dir = cfg.data_dir.join("outbox");
        *shared.outbox.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(crate::sink::Outbox::open(&dir)?);
        let names: Vec<String> = cfg.sinks.iter().map(|s| s.name.clone()).collect();
        for sc in &cfg.sinks {
            let sink = crate::sink::Sink::open(sc, &cfg.kafka.bootstrap_servers)?;
            tracing::info!(sink = sc.name, kind = ?sc.kind, "alert sink started");
            sink_tasks.push(tokio::spawn(crate::sink::run(
                sink,
                dir.clone(),
                names.clone(),
                sink_stop.clone(),
            )));
        }
    }
    let api = crate::api::ApiState::from_config(&cfg, shared.clone())?;
    let http = tokio::spawn(crate::api::serve_with(
        cfg.api_listen,
        api,
        token.clone(),
        None,
    ));
    let stats = crate::source::kafka::run(&cfg, shared, token.clone()).await;
    token.cancel();
    // give the sinks a moment to deliver what the drain produced; the rest waits in the
    // outbox for the next start
    if !sink_tasks.is_empty() {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    sink_stop.cancel();
    for t in sink_tasks {
        let _ = t.await;
    }
    match http.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "http server failed"),
        Err(e) => tracing::warn!(error = %e, "http server task failed"),
        Ok(Ok(())) => {}
    }
    stats
}

/// The active rule set, swapped at runtime by a reload; readers pick it up between
/// batches, so a reload never loses or double-evaluates events.
#[derive(Default)]
pub struct LiveRules {
    inner: std::sync::RwLock<(u64, Option<Arc<RuleSet>>)>,
}

impl LiveRules {
    pub fn set(&self, rs: Arc<RuleSet>) {
        crate::metrics::metrics()
            .rules_loaded
            .set((rs.rules.iter().filter(|r| r.standalone).count() + rs.correlations.len()) as i64);
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        g.1 = Some(rs);
    }

    /// The current set if it changed since `seen` (which is updated).
    pub fn changed(&self, seen: &mut u64) -> Option<Arc<RuleSet>> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if g.0 == *seen {
            return None;
        }
        *seen = g.0;
        g.1.clone()
    }

    pub fn current(&self) -> Option<Arc<RuleSet>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }
}

/// Loads rules for a pipeline. Any document that fails to parse or compile is an error:
/// a typo must never leave a rule silently inactive.
pub fn load_rules(paths: &[PathBuf], fields: Option<&std::path::Path>) -> Result<RuleSet> {
    let map = match fields {
        Some(f) => crate::detect::fields::FieldMap::load(f).map_err(Error::Config)?,
        None => crate::detect::fields::FieldMap::builtin(),
    };
    for p in paths {
        if !p.exists() {
            return Err(Error::Config(format!(
                "rules path {} does not exist",
                p.display()
            )));
        }
    }
    let rs = RuleSet::load(paths, &map);
    for d in &rs.diagnostics {
        tracing::warn!("{d}");
    }
    if rs.dropped > 0 {
        let errors: Vec<String> = rs.errors().map(|d| d.to_string()).collect();
        return Err(Error::Config(format!(
            "{} rule document(s) failed to load:\n{}",
            rs.dropped,
            errors.join("\n")
        )));
    }
    Ok(rs)
}

/// A cheap fingerprint of the rule files (names, sizes, modification times).
fn rules_fingerprint(paths: &[PathBuf]) -> u64 {
    fn walk(p: &std::path::Path, acc: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                walk(&e.path(), acc);
            }
        } else if let Ok(m) = std::fs::metadata(p) {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            acc.push(format!("{}:{}:{mtime}", p.display(), m.len()));
        }
    }
    let mut acc = Vec::new();
    for p in paths {
        walk(p, &mut acc);
    }
    acc.sort();
    xxhash_rust::xxh3::xxh3_64(acc.join("\n").as_bytes())
}

/// Reloads the rules on SIGHUP and when a rule file changes (checked every `poll`). A
/// set with errors is reported and counted; the previous rules stay active.
pub async fn watch_rules(
    live: Arc<crate::source::kafka::Shared>,
    paths: Vec<PathBuf>,
    fields: Option<PathBuf>,
    poll: std::time::Duration,
    token: tokio_util::sync::CancellationToken,
) {
    let mut last = rules_fingerprint(&paths);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hup_fut = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup_fut = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = token.cancelled() => return,
            _ = hup_fut => true,
            _ = tick.tick() => false,
        };
        let fp = rules_fingerprint(&paths);
        if !forced && fp == last {
            continue;
        }
        last = fp;
        let (p, f) = (paths.clone(), fields.clone());
        let loaded = tokio::task::spawn_blocking(move || load_rules(&p, f.as_deref())).await;
        let m = crate::metrics::metrics();
        match loaded {
            Ok(Ok(rs)) => {
                tracing::info!(
                    rules = rs.rules.len(),
                    correlations = rs.correlations.len(),
                    "rules reloaded"
                );
                m.rules_reloads.with_label_values(&["ok"]).inc();
                live.rules.set(Arc::new(rs));
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "rule reload failed; the previous rules stay active");
                m.rules_reloads.with_label_values(&["failed"]).inc();
            }
            Err(e) => {
                tracing::error!(error = %e, "rule reload task failed");
                m.rules_reloads.with_label_values(&["failed"]).inc();
            }
        }
    }
}
