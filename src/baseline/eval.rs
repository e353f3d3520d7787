//! `auditwatch eval`: runs the baseline detectors (and, optionally, the Sigma rules) over
//! the generator's labeled traffic and measures them: per scenario type detected or
//! missed, and false alerts per simulated day.
//!
//! An alert detects a scenario when it cites one of the scenario's event ids, or names
//! the scenario's actor with a time inside the scenario's [start, end]. Every other alert
//! is false. False alerts are counted over the days after the warm-up (learning) days;
//! the warm-up's own alerts are reported separately.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use serde::Serialize;

use super::{Baselines, DetectorConfig};
use crate::batch::{BatchLimits, Batcher};
use crate::decode::{DecodeOptions, Decoder, Format};
use crate::detect::{Alert, Engine, RuleSet};
use crate::error::{Error, Result};
use crate::generate::{GenSource, GenerateOptions, Generator, Label, read_labels};
use crate::normalize::{Provenance, parse_time_us};

/// Where the labeled traffic comes from.
pub enum Input {
    /// Generated in memory (the labels come from the generator).
    Generate(GenerateOptions),
    /// Files written by `auditwatch generate --out DIR` and their labels.
    Dir { data: PathBuf, labels: PathBuf },
}

pub struct EvalOptions {
    pub input: Input,
    pub detectors: DetectorConfig,
    /// Sigma rules to run next to the baselines.
    pub rules: Option<Arc<RuleSet>>,
    /// Days at the start that are learning only (no false-alert budget).
    pub warmup_days: u32,
    pub batch_rows: usize,
    /// Generated traffic: write its labels here.
    pub labels_out: Option<PathBuf>,
    /// Write every alert here (JSON lines, baseline then rules).
    pub alerts_out: Option<PathBuf>,
}

/// Per scenario type.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeResult {
    pub injected: u32,
    pub baseline: u32,
    pub rules: u32,
    pub combined: u32,
    /// Baseline detectors that fired on these scenarios.
    pub detectors: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario_id: String,
    pub kind: String,
    pub actor: String,
    pub baseline: Vec<String>,
    pub rules: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FalseAlert {
    /// Raised during the warm-up (learning) days.
    pub warmup: bool,
    pub time: String,
    pub detector: String,
    pub rule_id: String,
    pub actor: Option<String>,
    pub title: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalReport {
    pub events: u64,
    pub simulated_days: f64,
    pub warmup_days: u32,
    pub evaluated_days: f64,
    pub scenarios: Vec<ScenarioResult>,
    pub by_type: BTreeMap<String, TypeResult>,
    pub baseline_alerts: u64,
    pub rule_alerts: u64,
    pub false_baseline: u64,
    pub false_rules: u64,
    pub false_baseline_per_day: f64,
    pub false_rules_per_day: f64,
    pub false_combined_per_day: f64,
    pub warmup_false_baseline: u64,
    pub false_by_detector: BTreeMap<String, u64>,
    pub false_examples: Vec<FalseAlert>,
    pub identities: usize,
    pub state_bytes: usize,
    /// (class, identities, mean bytes per identity).
    pub bytes_per_identity: Vec<(String, usize, usize)>,
    pub elapsed_s: f64,
}

/// Feeds audit records into per-source decoders and closes fixed-size batches.
struct Feeder {
    k8s: Decoder,
    vault: Decoder,
    batcher: Batcher,
    rows: usize,
}

impl Feeder {
    fn new(rows: usize) -> Feeder {
        Feeder {
            k8s: Decoder::new(Format::Kubernetes, DecodeOptions::default()),
            vault: Decoder::new(Format::Vault, DecodeOptions::default()),
            batcher: Batcher::new(BatchLimits {
                max_rows: rows,
                ..Default::default()
            }),
            rows,
        }
    }

    fn push(&mut self, src: GenSource, bytes: &[u8]) -> Option<RecordBatch> {
        let prov = Provenance {
            input: Some(src.as_str()),
            ..Default::default()
        };
        match src {
            GenSource::Kubernetes => self.k8s.decode_record(bytes, &prov, &mut self.batcher),
            GenSource::Vault => self.vault.decode_record(bytes, &prov, &mut self.batcher),
        }
        (self.batcher.rows() >= self.rows)
            .then(|| self.batcher.take().ok().and_then(|c| c.events))
            .flatten()
    }

    fn finish(&mut self) -> Option<RecordBatch> {
        self.k8s.flush(&mut self.batcher);
        self.vault.flush(&mut self.batcher);
        self.batcher.take().ok().and_then(|c| c.events)
    }
}

/// Merges `DIR/kubernetes/*.jsonl.gz` and `DIR/vault/*.jsonl.gz` by event time.
struct DirStream {
    readers: Vec<(GenSource, Vec<PathBuf>, Option<Box<dyn BufRead>>)>,
    heads: Vec<Option<(i64, Vec<u8>)>>,
}

fn open_lines(p: &Path) -> Result<Box<dyn BufRead>> {
    let f = std::fs::File::open(p).map_err(|e| Error::Input {
        path: p.display().to_string(),
        source: e,
    })?;
    Ok(if p.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    })
}

/// The event time of a record, for merging (Kubernetes `stageTimestamp`, Vault `time`).
fn line_time(src: GenSource, line: &[u8]) -> i64 {
    let key: &[u8] = match src {
        GenSource::Kubernetes => b"\"stageTimestamp\":\"",
        GenSource::Vault => b"\"time\":\"",
    };
    memchr::memmem::find(line, key)
        .and_then(|i| {
            let rest = &line[i + key.len()..];
            let end = memchr::memchr(b'"', rest)?;
            parse_time_us(std::str::from_utf8(&rest[..end]).ok()?)
        })
        .unwrap_or(i64::MIN)
}

impl DirStream {
    fn open(dir: &Path) -> Result<DirStream> {
        let mut readers = Vec::new();
        for src in [GenSource::Kubernetes, GenSource::Vault] {
            let d = dir.join(src.as_str());
            let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
                .map_err(|e| Error::Input {
                    path: d.display().to_string(),
                    source: e,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    n.ends_with(".jsonl") || n.ends_with(".jsonl.gz")
                })
                .collect();
            files.sort();
            files.reverse();
            readers.push((src, files, None));
        }
        let heads = vec![None, None];
        let mut s = DirStream { readers, heads };
        for i in 0..2 {
            s.heads[i] = s.read(i)?;
        }
        Ok(s)
    }

    fn read(&mut self, i: usize) -> Result<Option<(i64, Vec<u8>)>> {
        loop {
            let (src, files, cur) = &mut self.readers[i];
            if cur.is_none() {
                match files.pop() {
                    Some(p) => *cur = Some(open_lines(&p)?),
                    None => return Ok(None),
                }
            }
            let mut line = Vec::new();
            let n = cur.as_mut().expect("open").read_until(b'\n', &mut line)?;
            if n == 0 {
                *cur = None;
                continue;
            }
            while line.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            return Ok(Some((line_time(*src, &line), line)));
        }
    }

    fn next(&mut self) -> Result<Option<(GenSource, Vec<u8>)>> {
        let i = match (&self.heads[0], &self.heads[1]) {
            (Some(a), Some(b)) => usize::from(b.0 < a.0),
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (None, None) => return Ok(None),
        };
        let (_, line) = self.heads[i].take().expect("head");
        self.heads[i] = self.read(i)?;
        Ok(Some((self.readers[i].0, line)))
    }
}

/// The generator's traffic decoded into `access_events` batches of `rows` rows, in
/// arrival order, with its labels (tests, benches).
pub fn generated_batches(
    opts: GenerateOptions,
    rows: usize,
) -> Result<(Vec<RecordBatch>, Vec<Label>)> {
    let mut feeder = Feeder::new(rows.max(1));
    let mut generator = Generator::new(opts)?;
    let mut out = Vec::new();
    while let Some(ev) = generator.next_event() {
        out.extend(feeder.push(ev.source, &ev.bytes));
    }
    out.extend(feeder.finish());
    Ok((out, generator.labels().to_vec()))
}

struct Run {
    baselines: Baselines,
    engine: Option<Engine>,
    baseline_alerts: Vec<Alert>,
    rule_alerts: Vec<Alert>,
    events: u64,
    first: i64,
    last: i64,
}

impl Run {
    fn batch(&mut self, b: &RecordBatch) {
        self.events += b.num_rows() as u64;
        self.baseline_alerts.extend(self.baselines.evaluate(b));
        if let Some(e) = &mut self.engine {
            self.rule_alerts.extend(e.evaluate(b));
        }
    }
}

/// Runs the evaluation.
pub fn run(opts: EvalOptions) -> Result<EvalReport> {
    let started = std::time::Instant::now();
    let mut run = Run {
        baselines: Baselines::new(opts.detectors.clone()),
        engine: opts.rules.clone().map(Engine::new),
        baseline_alerts: vec![],
        rule_alerts: vec![],
        events: 0,
        first: i64::MAX,
        last: i64::MIN,
    };
    let mut feeder = Feeder::new(opts.batch_rows.max(1));
    let labels: Vec<Label> = match &opts.input {
        Input::Generate(g) => {
            let mut generator = Generator::new(g.clone())?;
            while let Some(ev) = generator.next_event() {
                run.first = run.first.min(ev.time_us);
                run.last = run.last.max(ev.time_us);
                if let Some(b) = feeder.push(ev.source, &ev.bytes) {
                    run.batch(&b);
                }
            }
            if let Some(p) = &opts.labels_out {
                crate::generate::write_labels(generator.labels(), p)?;
            }
            generator.labels().to_vec()
        }
        Input::Dir { data, labels } => {
            let mut s = DirStream::open(data)?;
            while let Some((src, line)) = s.next()? {
                let t = line_time(src, &line);
                if t != i64::MIN {
                    run.first = run.first.min(t);
                    run.last = run.last.max(t);
                }
                if let Some(b) = feeder.push(src, &line) {
                    run.batch(&b);
                }
            }
            read_labels(labels)?
        }
    };
    if let Some(b) = feeder.finish() {
        run.batch(&b);
    }
    run.baseline_alerts.extend(run.baselines.flush());
    if let Some(p) = &opts.alerts_out {
        let mut w = std::io::BufWriter::new(std::fs::File::create(p)?);
        for a in run.baseline_alerts.iter().chain(&run.rule_alerts) {
            serde_json::to_writer(&mut w, a).map_err(|e| Error::Io(e.into()))?;
            std::io::Write::write_all(&mut w, b"\n")?;
        }
        std::io::Write::flush(&mut w)?;
    }
    let mut report = score(&opts, &run, &labels);
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn score(opts: &EvalOptions, run: &Run, labels: &[Label]) -> EvalReport {
    let day_us = super::stats::US_PER_DAY;
    let start_day = if run.first == i64::MAX {
        0
    } else {
        run.first.div_euclid(day_us)
    };
    let warm_end = (start_day + opts.warmup_days as i64) * day_us;
    let span_days = if run.last >= run.first {
        ((run.last.div_euclid(day_us) - start_day) + 1) as f64
    } else {
        0.0
    };
    let evaluated_days = (span_days - opts.warmup_days as f64).max(0.0);
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, l) in labels.iter().enumerate() {
        for e in &l.event_ids {
            by_id.insert(e.as_str(), i);
        }
    }
    let ranges: Vec<(i64, i64)> = labels
        .iter()
        .map(|l| {
            (
                parse_time_us(&l.start).unwrap_or(i64::MIN),
                parse_time_us(&l.end).unwrap_or(i64::MAX),
            )
        })
        .collect();
    let matches = |a: &Alert| -> Vec<usize> {
        let mut m: BTreeSet<usize> = a
            .event_ids
            .iter()
            .filter_map(|e| by_id.get(e.as_str()).copied())
            .collect();
        if let Some(actor) = &a.actor {
            for (i, l) in labels.iter().enumerate() {
                if &l.actor == actor && a.time >= ranges[i].0 && a.time <= ranges[i].1 {
                    m.insert(i);
                }
            }
        }
        m.into_iter().collect()
    };
    let mut report = EvalReport {
        events: run.events,
        simulated_days: span_days,
        warmup_days: opts.warmup_days,
        evaluated_days,
        baseline_alerts: run.baseline_alerts.len() as u64,
        rule_alerts: run.rule_alerts.len() as u64,
        identities: run.baselines.identities(),
        state_bytes: run.baselines.approx_bytes(),
        bytes_per_identity: run
            .baselines
            .bytes_by_class()
            .into_iter()
            .map(|(c, n, b)| (c.as_str().to_string(), n, b))
            .collect(),
        ..Default::default()
    };
    let mut hit_b: Vec<BTreeSet<String>> = vec![BTreeSet::new(); labels.len()];
    let mut hit_r: Vec<BTreeSet<String>> = vec![BTreeSet::new(); labels.len()];
    for (alerts, hits, is_rules) in [
        (&run.baseline_alerts, &mut hit_b, false),
        (&run.rule_alerts, &mut hit_r, true),
    ] {
        for a in alerts {
            let m = matches(a);
            if m.is_empty() {
                let warmup = a.time < warm_end;
                if warmup && is_rules {
                    continue;
                }
                if report.false_examples.len() < 60 {
                    report.false_examples.push(FalseAlert {
                        warmup,
                        time: crate::normalize::format_time_us(a.time),
                        detector: a.detector.clone(),
                        rule_id: a.rule_id.clone(),
                        actor: a.actor.clone(),
                        title: a.title.clone(),
                    });
                }
                if warmup {
                    report.warmup_false_baseline += 1;
                    continue;
                }
                if is_rules {
                    report.false_rules += 1;
                } else {
                    report.false_baseline += 1;
                }
                *report
                    .false_by_detector
                    .entry(if is_rules {
                        format!("rule:{}", a.rule_id)
                    } else {
                        a.detector.clone()
                    })
                    .or_default() += 1;
            }
            for i in m {
                hits[i].insert(if is_rules {
                    a.rule_id.clone()
                } else {
                    a.detector.trim_start_matches("baseline:").to_string()
                });
            }
        }
    }
    for (i, l) in labels.iter().enumerate() {
        let t = report
            .by_type
            .entry(l.kind.as_str().to_string())
            .or_default();
        t.injected += 1;
        let (b, r) = (!hit_b[i].is_empty(), !hit_r[i].is_empty());
        t.baseline += b as u32;
        t.rules += r as u32;
        t.combined += (b || r) as u32;
        t.detectors.extend(hit_b[i].iter().cloned());
        report.scenarios.push(ScenarioResult {
            scenario_id: l.scenario_id.clone(),
            kind: l.kind.as_str().to_string(),
            actor: l.actor.clone(),
            baseline: hit_b[i].iter().cloned().collect(),
            rules: hit_r[i].iter().cloned().collect(),
        });
    }
    if evaluated_days > 0.0 {
        report.false_baseline_per_day = report.false_baseline as f64 / evaluated_days;
        report.false_rules_per_day = report.false_rules as f64 / evaluated_days;
        report.false_combined_per_day =
            (report.false_baseline + report.false_rules) as f64 / evaluated_days;
    }
    report
}

impl EvalReport {
    /// Every injected scenario was caught by a baseline detector.
    pub fn all_detected_by_baselines(&self) -> bool {
        self.by_type.values().all(|t| t.baseline == t.injected)
    }

    /// The table printed by `auditwatch eval`.
    pub fn table(&self, with_rules: bool) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{} events, {:.0} simulated days ({} warm-up), {:.1} s\n\n",
            self.events, self.simulated_days, self.warmup_days, self.elapsed_s
        ));
        s.push_str(&format!(
            "{:<28} {:>8} {:>9}{} detectors\n",
            "scenario type",
            "injected",
            "baseline",
            if with_rules { "  +rules" } else { "" }
        ));
        for (k, t) in &self.by_type {
            let mark = |n: u32| {
                if n == t.injected {
                    format!("{n}/{} ok", t.injected)
                } else {
                    format!("{n}/{} MISS", t.injected)
                }
            };
            s.push_str(&format!(
                "{:<28} {:>8} {:>9}{} {}\n",
                k,
                t.injected,
                mark(t.baseline),
                if with_rules {
                    format!(" {:>8}", mark(t.combined))
                } else {
                    String::new()
                },
                t.detectors.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        s.push_str(&format!(
            "\nfalse alerts per simulated day (over {:.0} days after warm-up): baseline {:.2}",
            self.evaluated_days, self.false_baseline_per_day
        ));
        if with_rules {
            s.push_str(&format!(
                ", rules {:.2}, baseline+rules {:.2}",
                self.false_rules_per_day, self.false_combined_per_day
            ));
        }
        s.push_str(&format!(
            "\nbaseline alerts during warm-up: {}\n",
            self.warmup_false_baseline
        ));
        if !self.false_by_detector.is_empty() {
            s.push_str("false alerts by source:");
            for (k, n) in &self.false_by_detector {
                s.push_str(&format!(" {k}={n}"));
            }
            s.push('\n');
        }
        s.push_str(&format!(
            "state: {} identities, {} bytes;",
            self.identities, self.state_bytes
        ));
        for (c, n, b) in &self.bytes_per_identity {
            s.push_str(&format!(" {c} {n}×{b} B"));
        }
        s.push('\n');
        s
    }
}
