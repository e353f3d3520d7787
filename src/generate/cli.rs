//! The `auditwatch generate` command line: flags → [`GenerateOptions`] → files or Kafka.

use std::future::Future;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::{GenerateOptions, LiveOptions, Topics, parse_start, produce_kafka, write_dir};
use crate::error::{Error, Result};

/// Flags of `auditwatch generate` (exactly one of `--out` / `--kafka`).
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("dest").required(true).args(["out", "kafka"])))]
pub struct GenerateArgs {
    /// Write OUT/kubernetes/audit-DATE.jsonl.gz, OUT/vault/audit-DATE.jsonl.gz and
    /// OUT/labels.jsonl (ingest OUT/kubernetes and OUT/vault).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Produce to this Kafka bootstrap address instead.
    #[arg(long)]
    pub kafka: Option<String>,
    /// Simulated days (ignored with --live).
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First simulated instant: RFC 3339 or YYYY-MM-DD (default 2026-11-02, a Monday).
    #[arg(long)]
    pub start: Option<String>,
    #[arg(long, default_value_t = 40)]
    pub workloads: usize,
    /// Multiplies benign traffic volume (1.0 ≈ 165k Kubernetes + 46k Vault lines per weekday, 160 + 68 MB).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Attack scenarios per simulated day.
    #[arg(long, default_value_t = 6)]
    pub attacks_per_day: usize,
    /// Days without attacks at the start (for baselines to learn).
    #[arg(long, default_value_t = 0)]
    pub warmup_days: u32,
    /// Live mode (with --kafka): simulated time follows the wall clock from now.
    #[arg(long, conflicts_with = "out")]
    pub live: bool,
    /// Live mode: simulated seconds per wall-clock second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Live mode: simulated time between injected attacks.
    #[arg(long, default_value = "150s")]
    pub attack_every: String,
    /// Messages per second: a cap (token bucket); in live mode also the benign volume
    /// the generator aims for.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Stop after this many messages (Kafka).
    #[arg(long)]
    pub limit: Option<u64>,
    #[arg(long, default_value = super::DEFAULT_TOPIC_K8S)]
    pub topic_k8s: String,
    #[arg(long, default_value = super::DEFAULT_TOPIC_VAULT)]
    pub topic_vault: String,
    /// Kafka mode: write the labels of the delivered scenarios here.
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

impl GenerateArgs {
    pub fn options(&self) -> Result<GenerateOptions> {
        let mut o = GenerateOptions {
            seed: self.seed,
            days: self.days,
            workloads: self.workloads,
            scale: self.scale,
            attacks_per_day: self.attacks_per_day,
            warmup_days: self.warmup_days,
            ..Default::default()
        };
        if let Some(s) = &self.start {
            o.start = parse_start(s)?;
        }
        if self.live {
            let every = humantime::parse_duration(&self.attack_every).map_err(|e| {
                Error::Config(format!(
                    "invalid --attack-every {:?}: {e}",
                    self.attack_every
                ))
            })?;
            o.live = Some(LiveOptions {
                speed: self.speed,
                attack_every: every,
                target_rate: self.rate.map(|r| r as f64),
            });
        }
        Ok(o)
    }
}

/// Runs the command until done or `shutdown` completes; returns the summary as one JSON
/// line for stdout.
pub async fn run_cli(
    args: GenerateArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<String> {
    let opts = args.options()?;
    if let Some(out) = args.out.clone() {
        let summary = tokio::task::spawn_blocking(move || write_dir(&opts, &out))
            .await
            .map_err(|e| Error::Config(format!("generator thread failed: {e}")))??;
        return serde_json::to_string(&summary).map_err(|e| Error::Io(e.into()));
    }
    let bootstrap = args.kafka.clone().unwrap_or_default();
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        t.cancel();
    });
    let topics = Topics {
        kubernetes: args.topic_k8s.clone(),
        vault: args.topic_vault.clone(),
    };
    let summary = produce_kafka(opts, &bootstrap, &topics, args.rate, args.limit, token).await?;
    if let Some(path) = &args.labels {
        super::write_labels(&summary.labels, path)?;
    }
    let mut v = serde_json::to_value(&summary).map_err(|e| Error::Io(e.into()))?;
    if let Some(m) = v.as_object_mut() {
        // the labels go to --labels; the summary line keeps their count
        m.insert("labels".into(), serde_json::json!(summary.labels.len()));
    }
    Ok(v.to_string())
}
