//! The `auditwatch` binary: parse the command line, set up logging, run the command.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use auditwatch::app::{self, IngestConfig};
use auditwatch::batch::BatchLimits;
use auditwatch::decode::{DecodeOptions, Format};
use auditwatch::query::OutputFormat;

// mimalloc: the decode path allocates many small strings and large Arrow buffers per batch.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3; the bindings name
/// only some options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS after 10 s unused instead of mimalloc's 10 ms (100 ms
/// for large buffers). Every batch hands its Arrow buffers (~15 MB per 10k rows) to the
/// writer thread, which frees them as the next batch allocates: returned at once, each
/// batch's buffers were fresh pages the kernel had to zero on first touch — a quarter of
/// the receive loop's time (pipeline bench 190k → ~245k records/s). `MIMALLOC_PURGE_DELAY`
/// still overrides.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an option value; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) }
    }
}

/// `KEY=VALUE` of a repeatable property option.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[derive(Parser)]
#[command(
    name = "auditwatch",
    version,
    about = "Kubernetes and Vault/OpenBao audit events: normalize, store, detect, investigate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct DataDir {
    /// Store directory (Parquet tables live under it).
    #[arg(long, env = "AUDITWATCH_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Decode, normalize, redact and store audit log files (`-` reads stdin).
    Ingest {
        /// Input format: auto (sniff each record), k8s, vault or openbao.
        #[arg(long, default_value = "auto")]
        format: Format,
        #[command(flatten)]
        data: DataDir,
        /// Cluster or environment name written on every row.
        #[arg(long)]
        cluster: Option<String>,
        /// Records larger than this many bytes are quarantined.
        #[arg(long, default_value_t = 4 << 20)]
        max_event_bytes: usize,
        /// Keep every Kubernetes stage, not only complete/panic and long-running starts.
        #[arg(long)]
        all_stages: bool,
        /// Do not show a progress bar on a terminal.
        #[arg(long)]
        no_progress: bool,
        /// Rows per batch (each batch becomes one file per hour partition it touches).
        #[arg(long, default_value_t = BatchLimits::default().max_rows)]
        batch_rows: usize,
        /// Sigma rule files or directories to run on every batch (repeatable); alerts go
        /// to the `alerts` table.
        #[arg(long = "rules")]
        rules: Vec<PathBuf>,
        /// Run the per-identity baseline detectors too (settings: --detectors).
        #[arg(long)]
        baselines: bool,
        /// Detectors file merged over the built-in detectors/default.yml.
        #[arg(long)]
        detectors: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Consume the configured Kafka topics into the store (SIGTERM/SIGINT drain and commit).
    Run {
        /// TOML configuration; every setting can also come from AUDITWATCH__SECTION__KEY.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Generate labeled audit traffic of a simulated organisation (files or Kafka).
    Generate(auditwatch::generate::GenerateArgs),
    /// Run read-only SQL over the tables `events` and `quarantine`.
    Query {
        #[command(flatten)]
        data: DataDir,
        /// Output: json (one object per line), csv or table.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        sql: String,
    },
    /// Serve the HTTP API (/api/v1, OpenAPI at /api/v1/openapi.json) over an existing store.
    Serve {
        /// Store directory (default: store.data_dir of the configuration, "data").
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Listen address (default: api.listen of the configuration, 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// TOML configuration ([api] tokens and limits); AUDITWATCH__API__… overrides it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve without authentication (every caller is an admin), on loopback only.
        #[arg(long)]
        insecure_no_auth: bool,
        /// Read a token on stdin, print its SHA-256 for [[api.tokens]] or api.tokens_file, exit.
        #[arg(long, conflicts_with_all = ["data_dir", "listen", "config", "insecure_no_auth"])]
        hash_token: bool,
    },
    /// Everything in one process: in-process Kafka, live generated traffic with attacks,
    /// the pipeline with the rule pack, HTTP on 127.0.0.1; prints alerts as they fire.
    Demo {
        /// Benign events per second.
        #[arg(long, default_value_t = 300.0)]
        rate: f64,
        /// Seconds between injected attacks.
        #[arg(long, default_value_t = 60)]
        attack_every: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// HTTP listen address (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Store directory (default: a new directory under the system temp dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Rule files or directories (default: the rule pack built into the binary).
        #[arg(long = "rules")]
        rules: Vec<PathBuf>,
        /// Stop after this long, e.g. 10m (default: until Ctrl-C).
        #[arg(long)]
        duration: Option<humantime::Duration>,
        /// Seconds between status lines.
        #[arg(long, default_value_t = 10)]
        status_every: u64,
    },
    /// Print stored alerts, one JSON object per line (native, OCSF 2004 or ECS).
    Alerts {
        #[command(flatten)]
        data: DataDir,
        #[arg(long, value_enum, default_value = "native")]
        format: auditwatch::siem::AlertFormat,
        /// Only alerts of the last DURATION of event time, e.g. 24h.
        #[arg(long)]
        since: Option<humantime::Duration>,
        /// Only this severity and above.
        #[arg(long)]
        min_severity: Option<String>,
    },
    /// Load tool: pipeline throughput, Kafka-layer overhead, produce→stored latency.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
        /// Rule files or directories (default: the rule pack built into the binary).
        #[arg(long = "rules", global = true)]
        rules: Vec<PathBuf>,
        /// Run without rules.
        #[arg(long, global = true)]
        no_rules: bool,
        /// Scratch directory (default: under the system temp dir; removed afterwards).
        #[arg(long, global = true)]
        work_dir: Option<PathBuf>,
    },
    /// Merge small Parquet files per partition (sorted, bloom filters, page index) and
    /// apply retention; finishes or undoes a merge an earlier run left half done.
    Compact {
        #[command(flatten)]
        data: DataDir,
        /// Leave partitions with a file younger than this alone (still being written).
        #[arg(long, default_value = "1h")]
        min_age: humantime::Duration,
        /// Rows per output file at most.
        #[arg(long, default_value_t = 1_000_000)]
        target_rows: usize,
        /// Rows per row group in the outputs.
        #[arg(long, default_value_t = 128 * 1024)]
        row_group_rows: usize,
        /// Retention per source and table, e.g. kubernetes=90d,vault=365d,alerts=2y,quarantine=30d.
        #[arg(long)]
        retain: Option<String>,
        /// Roll the events of days that ended this long ago up from hour directories into
        /// daily files (fewer files for week- and month-long investigations); `off` keeps
        /// hour directories.
        #[arg(long, default_value = "2d")]
        daily_after: String,
        /// The clock ages and retention are measured against (RFC 3339; default now), e.g.
        /// for a store of replayed or generated data that lies in the future.
        #[arg(long)]
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Baseline detectors: rebuild their state from the store.
    Baseline(auditwatch::baseline::cli::BaselineArgs),
    /// Measure the detectors on labeled generated traffic: per scenario type detected or
    /// missed, false alerts per simulated day.
    Eval(auditwatch::baseline::cli::EvalArgs),
    /// Sigma rules: check them, run their tests, or run them over audit files.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Parse rules and check every field against its logsource's schema; exit 1 on errors.
    Check {
        #[command(flatten)]
        rules: RulePaths,
    },
    /// Run the tests each rule carries (events that must and must not match).
    Test {
        #[command(flatten)]
        rules: RulePaths,
        /// Print passing tests too.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Evaluate rules over audit log files and print alerts, one JSON object per line.
    Run {
        #[command(flatten)]
        rules: RulePaths,
        /// Input format: auto, k8s, vault or openbao.
        #[arg(long, default_value = "auto")]
        format: Format,
        #[arg(long = "input", required = true)]
        inputs: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Decode → batch → detect → store over generated records, next to parse-only JSON.
    Pipeline {
        #[arg(long, default_value_t = 500_000)]
        records: usize,
        #[command(flatten)]
        traffic: BenchTraffic,
    },
    /// The whole Kafka pipeline against a do-nothing librdkafka consumer, same broker.
    Kafka {
        /// Broker (default: an in-process mock cluster).
        #[arg(long)]
        bootstrap: Option<String>,
        /// Messages per round.
        #[arg(long, default_value_t = 300_000)]
        messages: usize,
        /// Rounds through the same running pipeline: each is produced while the consumer
        /// is paused, then timed from its first message received to its last stored. The
        /// first is a cold start; the rest give the rate of a running pipeline (the mock
        /// keeps only ~5 MB per partition, too little for one long run).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
        rounds: u32,
        /// Partitions per topic of the mock cluster (it keeps ~5 MB per partition); with
        /// --bootstrap, of the bench topics when they do not exist yet (they are created).
        #[arg(long, default_value_t = 128)]
        partitions: i32,
        /// The pipeline's batch linger (`pipeline.linger`) for the run. The last batch
        /// waits this long before it is written, and the run ends when it is.
        #[arg(long, default_value = "100ms")]
        linger: humantime::Duration,
        /// A librdkafka property for both consumers, the pipeline's and the bare reference
        /// (e.g. `fetch.max.bytes=16777216`); repeatable.
        #[arg(long = "consumer-property", value_name = "KEY=VALUE", value_parser = key_value)]
        consumer_properties: Vec<(String, String)>,
        #[command(flatten)]
        traffic: BenchTraffic,
    },
    /// Produce at a fixed rate; p50/p99 from Kafka timestamp to stored with alerts, next to
    /// a bare consumer and to the pipeline with the broker taken out.
    Latency {
        #[arg(long)]
        bootstrap: Option<String>,
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        #[arg(long, default_value = "20s")]
        duration: humantime::Duration,
        /// Partitions per topic of the mock cluster. It keeps ~5 MB per partition, enough
        /// here as long as the consumer keeps up; its own delivery slows with partitions
        /// (at 50k msg/s a do-nothing consumer's p99 is ~25 ms with 32, 80 ms with 64 and
        /// 1-3 s with 128). With --bootstrap: of the bench topics when they do not exist
        /// yet (they are created).
        #[arg(long, default_value_t = 32)]
        partitions: i32,
        /// The pipeline's batch linger (`pipeline.linger`) for the run.
        #[arg(long, default_value = "200ms")]
        linger: humantime::Duration,
        /// Replay simulated days from their start instead of live traffic at --rate.
        #[arg(long)]
        replay: bool,
        /// A librdkafka property for both consumers, the pipeline's and the bare reference
        /// (e.g. `fetch.wait.max.ms=10` against a broker that waits it out on every
        /// fetch, as tansu does); repeatable.
        #[arg(long = "consumer-property", value_name = "KEY=VALUE", value_parser = key_value)]
        consumer_properties: Vec<(String, String)>,
    },
}

#[derive(clap::Args)]
struct BenchTraffic {
    /// The generated records are live traffic of an organisation sending this many
    /// events per second, stamped from now (each batch falls into one or two hourly
    /// store partitions).
    #[arg(long, default_value_t = 250_000.0)]
    traffic_rate: f64,
    /// Replay simulated days from their start instead (a backlog: each batch spans many
    /// hours and is cut into many small files).
    #[arg(long, conflicts_with = "traffic_rate")]
    replay: bool,
}

impl BenchTraffic {
    fn traffic(&self) -> auditwatch::loadtest::Traffic {
        if self.replay {
            auditwatch::loadtest::Traffic::Replay
        } else {
            auditwatch::loadtest::Traffic::Live {
                rate: self.traffic_rate,
            }
        }
    }
}

#[derive(clap::Args)]
struct RulePaths {
    /// Rule files or directories (default: ./rules).
    paths: Vec<PathBuf>,
    /// Field mapping (default: the built-in copy of rules/fields.yml).
    #[arg(long)]
    fields: Option<PathBuf>,
}

impl RulePaths {
    fn resolve(&self) -> anyhow::Result<(Vec<PathBuf>, auditwatch::detect::fields::FieldMap)> {
        let paths = if self.paths.is_empty() {
            vec![PathBuf::from("rules")]
        } else {
            self.paths.clone()
        };
        let fields = match &self.fields {
            Some(f) => auditwatch::detect::fields::FieldMap::load(f).map_err(anyhow::Error::msg)?,
            None => auditwatch::detect::fields::FieldMap::builtin(),
        };
        Ok((paths, fields))
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUDITWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auditwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Ingest {
            format,
            data,
            cluster,
            max_event_bytes,
            all_stages,
            no_progress,
            batch_rows,
            rules,
            baselines,
            detectors,
            files,
        } => {
            let baselines = match (baselines, detectors) {
                (_, Some(p)) => Some(auditwatch::baseline::DetectorConfig::load(&p)?),
                (true, None) => Some(auditwatch::baseline::DetectorConfig::default()),
                (false, None) => None,
            };
            let rules = if rules.is_empty() {
                None
            } else {
                Some(std::sync::Arc::new(load_rules(&rules)?))
            };
            let decode = DecodeOptions {
                max_event_bytes,
                k8s_keep_all_stages: all_stages,
                cluster,
                ..Default::default()
            };
            let cfg = IngestConfig {
                inputs: files,
                format,
                data_dir: data.data_dir,
                decode,
                limits: BatchLimits {
                    max_rows: batch_rows.max(1),
                    ..Default::default()
                },
                progress: !no_progress,
                rules,
                baselines,
            };
            let summary = rt.block_on(app::ingest(cfg)).context("ingest failed")?;
            println!("{}", serde_json::to_string(&summary)?);
        }
        Command::Run { config } => {
            let cfg =
                auditwatch::config::load(config.as_deref()).context("invalid configuration")?;
            tracing::info!(topics = cfg.kafka.topics.len(), data_dir = %cfg.data_dir.display(), "starting");
            let stats = rt
                .block_on(app::run(cfg, shutdown_signal()))
                .context("run failed")?;
            eprintln!(
                "auditwatch: stopped after {} messages ({} rows written, {} duplicates, {} quarantined)",
                stats.messages, stats.written, stats.duplicates, stats.quarantined
            );
        }
        Command::Generate(args) => {
            let line = rt
                .block_on(auditwatch::generate::run_cli(args, shutdown_signal()))
                .context("generate failed")?;
            println!("{line}");
        }
        Command::Query { data, format, sql } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            rt.block_on(app::query(&data.data_dir, &sql, format, &mut out))
                .context("query failed")?;
            out.flush()?;
        }
        Command::Serve {
            data_dir,
            listen,
            config,
            insecure_no_auth,
            hash_token,
        } => {
            if hash_token {
                println!(
                    "{}",
                    auditwatch::api::auth::hash_token_from(std::io::stdin())?
                );
                return Ok(());
            }
            let cfg =
                auditwatch::config::load(config.as_deref()).context("invalid configuration")?;
            let opts = auditwatch::api::ServeOptions {
                data_dir,
                listen,
                insecure_no_auth,
            };
            rt.block_on(auditwatch::api::serve_store(cfg, opts, shutdown_signal()))
                .context("serve failed")?;
        }
        Command::Rules { cmd } => rules_cmd(cmd)?,
        Command::Baseline(args) => {
            let out = rt
                .block_on(auditwatch::baseline::cli::run_baseline(args))
                .context("baseline failed")?;
            println!("{out}");
        }
        Command::Eval(args) => {
            let out = auditwatch::baseline::cli::run_eval(args).context("eval failed")?;
            println!("{out}");
        }
        Command::Compact {
            data,
            min_age,
            target_rows,
            row_group_rows,
            retain,
            daily_after,
            now,
        } => {
            use auditwatch::store::compact;
            let daily_after = match daily_after.as_str() {
                "off" | "never" => None,
                d => Some(
                    humantime::parse_duration(d)
                        .with_context(|| format!("--daily-after {d:?}: a duration or off"))?,
                ),
            };
            let opts = compact::CompactOptions {
                min_age: min_age.into(),
                target_rows,
                row_group_rows,
                retain: compact::parse_retention(retain.as_deref().unwrap_or(""))?,
                daily_after,
                now: now.unwrap_or_else(chrono::Utc::now),
                ..Default::default()
            };
            let store = auditwatch::store::Store::open_local(&data.data_dir)?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(store.root())?
                .with_automatic_cleanup(true);
            let fs = auditwatch::store::durable::SyncedLocal::new(fs, store.root().to_path_buf());
            let summary = rt
                .block_on(compact::compact(std::sync::Arc::new(fs), &opts))
                .context("compact failed")?;
            println!("{}", serde_json::to_string(&summary)?);
        }
        Command::Alerts {
            data,
            format,
            since,
            min_severity,
        } => {
            let min = match min_severity.as_deref() {
                Some(s) => Some(
                    auditwatch::detect::sigma::Level::parse(s)
                        .ok_or_else(|| anyhow::anyhow!("unknown severity {s:?}"))?,
                ),
                None => None,
            };
            let mut sql = "select * from alerts".to_string();
            if let Some(d) = since {
                let from = chrono::Utc::now()
                    - chrono::Duration::from_std(d.into()).context("--since out of range")?;
                sql.push_str(&format!(" where time >= '{}'", from.to_rfc3339()));
            }
            sql.push_str(" order by time, id");
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            rt.block_on(async {
                auditwatch::store::Store::open_local(&data.data_dir)?;
                let q = auditwatch::query::QueryEngine::open(&data.data_dir)?;
                for b in q.sql(&sql).await? {
                    for a in auditwatch::siem::alerts_from_batch(&b) {
                        if min.is_some_and(|m| a.severity < m) {
                            continue;
                        }
                        writeln!(out, "{}", auditwatch::siem::render(&a, format))?;
                    }
                }
                Ok::<_, anyhow::Error>(())
            })?;
            out.flush()?;
        }
        Command::Bench {
            cmd,
            rules,
            no_rules,
            work_dir,
        } => {
            use auditwatch::loadtest;
            let rules = if no_rules {
                None
            } else if rules.is_empty() {
                Some(std::sync::Arc::new(auditwatch::demo::embedded_rules()))
            } else {
                Some(std::sync::Arc::new(load_rules(&rules)?))
            };
            let scratch = work_dir.is_none();
            let work = loadtest::work_dir(work_dir);
            let report = rt.block_on(async {
                Ok::<_, anyhow::Error>(match cmd {
                    BenchCmd::Pipeline { records, traffic } => serde_json::to_string_pretty(
                        &loadtest::bench_pipeline(records, traffic.traffic(), rules, &work).await?,
                    )?,
                    BenchCmd::Kafka {
                        bootstrap,
                        messages,
                        rounds,
                        partitions,
                        linger,
                        consumer_properties,
                        traffic,
                    } => serde_json::to_string_pretty(
                        &loadtest::bench_kafka(
                            bootstrap.as_deref(),
                            loadtest::KafkaRun {
                                messages,
                                rounds: rounds as usize,
                                partitions,
                                linger: linger.into(),
                                traffic: traffic.traffic(),
                                consumer_properties,
                            },
                            rules,
                            &work,
                        )
                        .await?,
                    )?,
                    BenchCmd::Latency {
                        bootstrap,
                        rate,
                        duration,
                        partitions,
                        linger,
                        replay,
                        consumer_properties,
                    } => serde_json::to_string_pretty(
                        &loadtest::bench_latency(
                            bootstrap.as_deref(),
                            loadtest::LatencyRun {
                                rate,
                                duration: duration.into(),
                                partitions,
                                linger: linger.into(),
                                replay,
                                consumer_properties,
                            },
                            rules,
                            &work,
                        )
                        .await?,
                    )?,
                })
            });
            if scratch {
                let _ = std::fs::remove_dir_all(&work);
            }
            println!("{}", report.context("bench failed")?);
        }
        Command::Demo {
            rate,
            attack_every,
            seed,
            listen,
            data_dir,
            rules,
            duration,
            status_every,
        } => {
            let opts = auditwatch::demo::DemoOptions {
                rate,
                attack_every: std::time::Duration::from_secs(attack_every.max(1)),
                seed,
                listen,
                data_dir,
                rules,
                duration: duration.map(Into::into),
                status_every: std::time::Duration::from_secs(status_every.max(1)),
            };
            rt.block_on(auditwatch::demo::demo(opts, shutdown_signal()))
                .context("demo failed")?;
        }
    }
    Ok(())
}

fn load_rules(paths: &[PathBuf]) -> anyhow::Result<auditwatch::detect::RuleSet> {
    Ok(app::load_rules(paths, None)?)
}

fn rules_cmd(cmd: RulesCmd) -> anyhow::Result<()> {
    use auditwatch::detect::{Engine, RuleSet, tooling};
    match cmd {
        RulesCmd::Check { rules } => {
            let (paths, fields) = rules.resolve()?;
            let rs = RuleSet::load(&paths, &fields);
            let mut diags = rs.diagnostics.clone();
            diags.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            for d in &diags {
                println!("{d}");
            }
            println!("{}", tooling::summary(&rs));
            let errors = rs.errors().count();
            if errors > 0 {
                anyhow::bail!("{errors} error(s) in rules");
            }
        }
        RulesCmd::Test { rules, verbose } => {
            let (paths, fields) = rules.resolve()?;
            let (rs, outcomes) = tooling::run_tests(&paths, &fields);
            for d in rs.errors() {
                println!("{d}");
            }
            let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed).collect();
            for o in &outcomes {
                if !o.passed || verbose {
                    println!(
                        "{} {}:{}: {} — {}{}",
                        if o.passed { "ok  " } else { "FAIL" },
                        o.file.display(),
                        o.line,
                        o.title,
                        o.name,
                        if o.detail.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", o.detail)
                        }
                    );
                }
            }
            let untested = rs
                .rules
                .iter()
                .filter(|r| r.standalone && r.meta.tests.is_empty())
                .count();
            println!(
                "{} tests, {} passed, {} failed; {} standalone rules without tests",
                outcomes.len(),
                outcomes.len() - failed.len(),
                failed.len(),
                untested
            );
            if !failed.is_empty() || rs.errors().count() > 0 {
                anyhow::bail!("rule tests failed");
            }
        }
        RulesCmd::Run {
            rules,
            format,
            inputs,
        } => {
            let (paths, fields) = rules.resolve()?;
            let rs = std::sync::Arc::new(RuleSet::load(&paths, &fields));
            for d in rs.errors() {
                eprintln!("{d}");
            }
            let mut engine = Engine::new(rs);
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for input in inputs {
                let bytes = std::fs::read(&input)
                    .with_context(|| format!("reading {}", input.display()))?;
                let (batch, _) = tooling::decode_to_batch(&bytes, format);
                if let Some(b) = batch {
                    for a in engine.evaluate(&b) {
                        writeln!(out, "{}", serde_json::to_string(&a)?)?;
                    }
                }
            }
            out.flush()?;
        }
    }
    Ok(())
}
