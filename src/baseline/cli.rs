//! `auditwatch baseline rebuild` (learn from the store, write the snapshot) and
//! `auditwatch eval` (measure the detectors on labeled generated traffic).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use futures::StreamExt;
use serde_json::json;

use super::eval::{EvalOptions, Input};
use super::stats::US_PER_DAY;
use super::{Baselines, DetectorConfig};
use crate::error::{Error, Result};
use crate::generate::{GenerateOptions, parse_start};
use crate::normalize::format_time_us;
use crate::query::QueryEngine;

/// Where `baseline rebuild` writes, under the data directory.
pub const SNAPSHOT_PATH: &str = "state/baselines.snapshot";

#[derive(clap::Args, Debug, Clone)]
pub struct BaselineArgs {
    #[command(subcommand)]
    pub cmd: BaselineCmd,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum BaselineCmd {
    /// Learn the baselines from the stored events (in time order) and write
    /// DATA_DIR/state/baselines.snapshot, so a fresh deployment is useful immediately.
    Rebuild {
        /// How far back: a duration before now (14d) or a date/RFC 3339 instant.
        #[arg(long, default_value = "14d")]
        since: String,
        /// Store directory.
        #[arg(long, env = "AUDITWATCH_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Detectors file (default: the built-in detectors/default.yml).
        #[arg(long)]
        detectors: Option<PathBuf>,
        /// Write the snapshot here instead.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// labels.jsonl of `--data` (required with it); with generated traffic, the labels
    /// are written here.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Directory written by `auditwatch generate --out` (kubernetes/, vault/).
    #[arg(long, requires = "labels")]
    pub data: Option<PathBuf>,
    /// Generate this many days in memory instead (default org).
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Learning days at the start: no attacks, no false-alert budget.
    #[arg(long, default_value_t = 7)]
    pub warmup_days: u32,
    #[arg(long, default_value_t = 40)]
    pub workloads: usize,
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    #[arg(long, default_value_t = 6)]
    pub attacks_per_day: usize,
    /// First simulated day (default 2026-11-02, a Monday).
    #[arg(long)]
    pub start: Option<String>,
    /// Detectors file (default: the built-in detectors/default.yml).
    #[arg(long)]
    pub detectors: Option<PathBuf>,
    /// Sigma rule files or directories to run too (default: the built-in rule pack).
    #[arg(long = "rules")]
    pub rules: Vec<PathBuf>,
    /// Baselines only.
    #[arg(long)]
    pub no_rules: bool,
    /// Print the full report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write every alert to this file (JSON lines).
    #[arg(long)]
    pub alerts: Option<PathBuf>,
}

fn detectors(path: &Option<PathBuf>) -> Result<DetectorConfig> {
    match path {
        Some(p) => DetectorConfig::load(p),
        None => Ok(DetectorConfig::default()),
    }
}

/// `auditwatch eval`; returns what to print.
pub fn run_eval(args: EvalArgs) -> Result<String> {
    let cfg = detectors(&args.detectors)?;
    let rules = if args.no_rules {
        None
    } else if args.rules.is_empty() {
        Some(Arc::new(crate::demo::embedded_rules()))
    } else {
        Some(Arc::new(crate::app::load_rules(&args.rules, None)?))
    };
    let input = match (&args.data, &args.labels) {
        (Some(d), Some(l)) => Input::Dir {
            data: d.clone(),
            labels: l.clone(),
        },
        _ => Input::Generate(GenerateOptions {
            seed: args.seed,
            days: args.days,
            start: match &args.start {
                Some(s) => parse_start(s)?,
                None => crate::generate::default_start(),
            },
            workloads: args.workloads,
            scale: args.scale,
            attacks_per_day: args.attacks_per_day,
            warmup_days: args.warmup_days,
            ..Default::default()
        }),
    };
    let labels_out = match &input {
        Input::Generate(_) => args.labels.clone(),
        Input::Dir { .. } => None,
    };
    let with_rules = rules.is_some();
    let report = super::eval::run(EvalOptions {
        input,
        detectors: cfg,
        rules,
        warmup_days: args.warmup_days,
        batch_rows: 8192,
        labels_out,
        alerts_out: args.alerts.clone(),
    })?;
    Ok(if args.json {
        serde_json::to_string_pretty(&report).map_err(|e| Error::Io(e.into()))?
    } else {
        report.table(with_rules)
    })
}

/// `auditwatch baseline …`; returns what to print.
pub async fn run_baseline(args: BaselineArgs) -> Result<String> {
    match args.cmd {
        BaselineCmd::Rebuild {
            since,
            data_dir,
            detectors: dpath,
            out,
        } => {
            let cfg = detectors(&dpath)?;
            let since_us = parse_since(&since, chrono::Utc::now().timestamp_micros())?;
            let out = out.unwrap_or_else(|| data_dir.join(SNAPSHOT_PATH));
            let summary = rebuild(&data_dir, cfg, since_us, &out).await?;
            Ok(summary.to_string())
        }
    }
}

/// `14d` (before `now_us`), `2026-11-02` or an RFC 3339 instant.
pub fn parse_since(s: &str, now_us: i64) -> Result<i64> {
    if let Ok(d) = humantime::parse_duration(s.trim()) {
        return Ok(now_us - d.as_micros() as i64);
    }
    parse_start(s).map(|t| t.timestamp_micros()).map_err(|_| {
        Error::Config(format!(
            "--since {s:?}: expected a duration (14d), a date or RFC 3339"
        ))
    })
}

/// The columns the detectors read.
const COLUMNS: &str = "time, source, event_id, row_key, action, verb, actor, actor_type, actor_id, actor_groups, auth_method, resource_type, resource_path, resource_namespace, resource_name, subresource, secret_access, outcome, src_ip, user_agent";

/// Learns from the `events` table from `since_us` on, one day at a time in time order,
/// and writes the snapshot to `out`. Returns a JSON summary.
pub async fn rebuild(
    data_dir: &Path,
    cfg: DetectorConfig,
    since_us: i64,
    out: &Path,
) -> Result<serde_json::Value> {
    let q = QueryEngine::open(data_dir)?;
    let ts = |us: i64| format!("TIMESTAMP '{}'", format_time_us(us));
    let bounds = q
        .sql(&format!(
            "select min(time) as lo, max(time) as hi from events where time >= {}",
            ts(since_us)
        ))
        .await?;
    let (lo, hi) = bounds
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| {
            let get = |i: usize| {
                let a = b.column(i).as_primitive::<TimestampMicrosecondType>();
                a.is_valid(0).then(|| a.value(0))
            };
            (get(0), get(1))
        })
        .unwrap_or((None, None));
    let mut b = Baselines::new(cfg);
    let mut alerts = 0u64;
    if let (Some(lo), Some(hi)) = (lo, hi) {
        let mut day = lo.div_euclid(US_PER_DAY);
        while day * US_PER_DAY <= hi {
            let (a, z) = (day * US_PER_DAY, (day + 1) * US_PER_DAY);
            let sql = format!(
                "select {COLUMNS} from events where time >= {} and time < {} order by time, row_key",
                ts(a.max(since_us)),
                ts(z)
            );
            let df = q.context().sql(&sql).await?;
            let mut stream = df.execute_stream().await?;
            while let Some(batch) = stream.next().await {
                let batch: RecordBatch = batch?;
                alerts += b.evaluate(&batch).len() as u64;
            }
            day += 1;
        }
    }
    alerts += b.flush().len() as u64;
    let snap = b.snapshot();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = out.with_extension("snapshot.tmp");
    std::fs::write(&tmp, &snap)?;
    std::fs::rename(&tmp, out)?;
    let n = b.identities();
    Ok(json!({
        "rows": b.stats.rows,
        "from": lo.map(format_time_us),
        "to": hi.map(format_time_us),
        "identities": n,
        "state_bytes": b.approx_bytes(),
        "bytes_per_identity": b.approx_bytes().checked_div(n).unwrap_or(0),
        "alerts_while_learning": alerts,
        "snapshot": out.display().to_string(),
        "snapshot_bytes": snap.len(),
    }))
}
