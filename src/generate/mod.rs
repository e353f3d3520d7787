//! `auditwatch generate`: realistic, labeled audit traffic of a simulated organisation —
//! Kubernetes API-server audit events and Vault audit-device entries — for the demo, load
//! tests, detector evaluation (`labels.jsonl`) and tests.
//!
//! What is simulated (see [`org`], [`traffic`], [`attacks`]):
//! - workloads in team namespaces: service accounts reading their Kubernetes secrets at
//!   pod start and (some) periodically, Vault kubernetes-auth logins, KV v2 reads with an
//!   hour-of-day/weekday rhythm, token and lease renewals, leader-election leases,
//!   config-map watches, a little benign 403/404/permission-denied noise;
//! - nodes (leases, status, kubelet secret fetches and watches), the control plane,
//!   controllers (kube-controller-manager, external-secrets, cert-manager, argocd,
//!   prometheus), health checks;
//! - rollouts on weekdays inside the deploy window, with the read burst of new pods;
//! - humans in office hours (kubectl, Vault userpass/OIDC logins and a few reads);
//! - 12 attack scenario types ([`ScenarioType`]), each written to the labels.
//!
//! Invariants:
//! - the output is a pure function of [`GenerateOptions`] (file mode): same options, same
//!   bytes; the gzip files carry no timestamps;
//! - events come out in event-time order (Vault responses right after their request);
//! - ids are unique: Kubernetes `auditID`, Vault `request.id` (shared by the request and
//!   response entry, which become one row);
//! - no secret values: Secret bodies are never logged (Metadata level), Vault values and
//!   tokens are `hmac-sha256:` look-alikes.
//!
//! Memory stays bounded over many days: the engine ([`sim`]) keeps one pending action per
//! simulated actor plus the events in flight.

mod attacks;
mod cli;
mod format;
mod kafka;
mod org;
mod sim;
mod traffic;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use cli::{GenerateArgs, run_cli};
pub use kafka::{DEFAULT_TOPIC_K8S, DEFAULT_TOPIC_VAULT, ProduceSummary, Topics, produce_kafka};

use format::{US_PER_DAY, date_string};
use sim::{Out, Sim, SimCfg, rng_for};

/// Which audit stream an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenSource {
    Kubernetes,
    Vault,
}

impl GenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            GenSource::Kubernetes => "kubernetes",
            GenSource::Vault => "vault",
        }
    }
}

/// One generated audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedEvent {
    /// When the record is written (Kubernetes: `stageTimestamp`; Vault: `time`), µs.
    pub time_us: i64,
    pub source: GenSource,
    /// The actor as the normalized `actor` column will show it (the Kafka key, so both
    /// entries of a Vault request land on one partition).
    pub key: String,
    /// Kubernetes `auditID` or Vault `request.id` (the `event_id` column).
    pub event_id: String,
    /// One JSON object, no trailing newline.
    pub bytes: Vec<u8>,
}

/// The injected attack scenario types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioType {
    K8sSecretEnumeration,
    K8sHumanSecretSweep,
    VaultPathEnumeration,
    DeniedBurst,
    OffHoursSecretRead,
    PrivilegedPodExec,
    RbacEscalation,
    VaultRootAndAuditTamper,
    VaultNewNetworkLogin,
    TokenRequestByHuman,
    FirstSeenSecret,
    AnonymousAccess,
}

impl ScenarioType {
    pub const ALL: [ScenarioType; 12] = [
        ScenarioType::K8sSecretEnumeration,
        ScenarioType::K8sHumanSecretSweep,
        ScenarioType::VaultPathEnumeration,
        ScenarioType::DeniedBurst,
        ScenarioType::OffHoursSecretRead,
        ScenarioType::PrivilegedPodExec,
        ScenarioType::RbacEscalation,
        ScenarioType::VaultRootAndAuditTamper,
        ScenarioType::VaultNewNetworkLogin,
        ScenarioType::TokenRequestByHuman,
        ScenarioType::FirstSeenSecret,
        ScenarioType::AnonymousAccess,
    ];

    pub fn as_str(self) -> &'static str {
        use ScenarioType::*;
        match self {
            K8sSecretEnumeration => "k8s_secret_enumeration",
            K8sHumanSecretSweep => "k8s_human_secret_sweep",
            VaultPathEnumeration => "vault_path_enumeration",
            DeniedBurst => "denied_burst",
            OffHoursSecretRead => "off_hours_secret_read",
            PrivilegedPodExec => "privileged_pod_exec",
            RbacEscalation => "rbac_escalation",
            VaultRootAndAuditTamper => "vault_root_and_audit_tamper",
            VaultNewNetworkLogin => "vault_new_network_login",
            TokenRequestByHuman => "token_request_by_human",
            FirstSeenSecret => "first_seen_secret",
            AnonymousAccess => "anonymous_access",
        }
    }
}

/// One line of `labels.jsonl`: an injected scenario and the events that make it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub scenario_id: String,
    #[serde(rename = "type")]
    pub kind: ScenarioType,
    pub description: String,
    /// The `actor` column value of every event of the scenario.
    pub actor: String,
    /// `kubernetes`, `vault`, or `mixed` (both).
    pub source: String,
    /// First and last event time (RFC 3339, µs).
    pub start: String,
    pub end: String,
    /// `event_id` column values (auditIDs, Vault request ids).
    pub event_ids: Vec<String>,
}

/// Live mode: simulated time follows the wall clock.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveOptions {
    /// Simulated seconds per wall-clock second (1.0 = real time).
    pub speed: f64,
    /// Simulated time between injected attacks (the first comes after half of it, at
    /// most a minute).
    pub attack_every: Duration,
    /// Steady benign events per wall-clock second to aim for; overrides `scale`
    /// (approximate: the rate still follows the time of day).
    pub target_rate: Option<f64>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            speed: 1.0,
            attack_every: Duration::from_secs(150),
            target_rate: None,
        }
    }
}

/// What to generate. The defaults describe the standard org (40 workloads, 8 team
/// namespaces, 8 nodes, 7 humans) starting Monday 2026-11-02 00:00 UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub seed: u64,
    /// Simulated days (file/replay mode; live mode runs until stopped).
    pub days: u32,
    pub start: DateTime<Utc>,
    pub workloads: usize,
    /// Multiplies the rate of every benign periodic/Poisson process (1.0 ≈ 165k
    /// Kubernetes events and 46k Vault entries per weekday, 36k on weekends). Rollouts,
    /// human sessions and attacks are not scaled.
    pub scale: f64,
    /// Attack scenarios per simulated day (file mode).
    pub attacks_per_day: usize,
    /// Days at the start without attacks (baseline learning).
    pub warmup_days: u32,
    /// Rollouts happen on weekdays between these UTC hours.
    pub deploy_window_utc: (u32, u32),
    pub live: Option<LiveOptions>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            days: 1,
            start: default_start(),
            workloads: 40,
            scale: 1.0,
            attacks_per_day: 6,
            warmup_days: 0,
            deploy_window_utc: (10, 16),
            live: None,
        }
    }
}

/// Monday 2026-11-02T00:00:00Z.
pub fn default_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0)
        .single()
        .expect("valid date")
}

/// Parses `--start`: RFC 3339 or a date (`YYYY-MM-DD`, midnight UTC).
pub fn parse_start(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
        .ok_or_else(|| {
            Error::Config(format!(
                "invalid --start {s:?}: expected RFC 3339 or YYYY-MM-DD"
            ))
        })
}

impl GenerateOptions {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.workloads == 0 || self.workloads > 5_000 {
            return bad(format!(
                "workloads must be 1..=5000, got {}",
                self.workloads
            ));
        }
        if self.days == 0 && self.live.is_none() {
            return bad("days must be at least 1".into());
        }
        if !(self.scale > 0.0 && self.scale <= 100_000.0) {
            return bad(format!("scale must be in (0, 100000], got {}", self.scale));
        }
        let (h0, h1) = self.deploy_window_utc;
        if h0 >= h1 || h1 > 24 {
            return bad(format!("invalid deploy window {h0}..{h1}"));
        }
        if let Some(l) = &self.live {
            if !(l.speed > 0.0 && l.speed.is_finite()) {
                return bad(format!("live speed must be positive, got {}", l.speed));
            }
            if l.attack_every.is_zero() {
                return bad("live attack interval must be positive".into());
            }
            if l.target_rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                return bad("live target rate must be positive".into());
            }
        }
        Ok(())
    }
}

/// Yields the audit events of the simulated organisation in event-time order.
pub struct Generator {
    sim: Sim,
    /// Live mode: (wall-clock start, simulated start µs, speed).
    live: Option<(SystemTime, i64, f64)>,
    labels_taken: usize,
}

impl Generator {
    /// A generator over `opts.days` simulated days from `opts.start` (or, when
    /// `opts.live` is set, an unbounded live run starting at `opts.start`).
    pub fn new(opts: GenerateOptions) -> Result<Generator> {
        opts.validate()?;
        let mut scale = opts.scale;
        if let Some(l) = &opts.live
            && let Some(rate) = l.target_rate
        {
            // events per wall-clock second; simulated time runs `speed` times faster
            scale = rate / (base_rate(&opts)? * l.speed);
        }
        let start_us = opts.start.timestamp_micros();
        let ids = format::Ids::new(opts.seed);
        let mut org_rng = rng_for(opts.seed, "org");
        let org = org::Org::build(&ids, &mut org_rng, opts.workloads, start_us);
        let mut atk_rng = rng_for(opts.seed, "attacks");
        let attack_order = attacks::attack_order(&mut atk_rng);
        let cfg = SimCfg {
            start_us,
            end_us: match &opts.live {
                Some(_) => None,
                None => Some(start_us + opts.days as i64 * US_PER_DAY),
            },
            scale,
            attacks_per_day: opts.attacks_per_day,
            warmup_days: opts.warmup_days,
            deploy_window: opts.deploy_window_utc,
            live_attack_every_us: opts
                .live
                .as_ref()
                .map(|l| (l.attack_every.as_micros() as i64).max(1)),
        };
        let n_w = org.workloads.len();
        let mut sim = Sim {
            org,
            out: Out::new(ids),
            rng: rng_for(opts.seed, "traffic"),
            plan_rng: rng_for(opts.seed, "plan"),
            atk_rng,
            cfg,
            labels: Vec::new(),
            attack_order,
            attacks_done: 0,
            deployed_today: vec![false; n_w],
            now: start_us,
        };
        sim.bootstrap();
        Ok(Generator {
            sim,
            live: None,
            labels_taken: 0,
        })
    }

    /// Live mode: simulated time starts at `start_at` and runs at `opts.live`'s speed
    /// (default: real time, an attack every 150 s); the run is unbounded.
    pub fn live(mut opts: GenerateOptions, start_at: SystemTime) -> Result<Generator> {
        let live = opts.live.clone().unwrap_or_default();
        let us = start_at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::Config("live start before 1970".into()))?
            .as_micros() as i64;
        opts.start = DateTime::from_timestamp_micros(us)
            .ok_or_else(|| Error::Config("live start out of range".into()))?;
        let speed = live.speed;
        opts.live = Some(live);
        let mut g = Generator::new(opts)?;
        g.live = Some((start_at, us, speed));
        Ok(g)
    }

    /// The next event, or `None` after the last simulated day. Never blocks.
    pub fn next_event(&mut self) -> Option<GeneratedEvent> {
        self.sim.next()
    }

    /// Live mode: the wall-clock time at which an event of simulated time `time_us` is due.
    pub fn due_at(&self, time_us: i64) -> Option<SystemTime> {
        let (wall, sim0, speed) = self.live?;
        let off = ((time_us - sim0) as f64 / speed).max(0.0);
        Some(wall + Duration::from_micros(off as u64))
    }

    /// Like [`next_event`](Self::next_event), but in live mode sleeps until the event is
    /// due on the wall clock.
    pub fn next_event_paced(&mut self) -> Option<GeneratedEvent> {
        let ev = self.next_event()?;
        if let Some(due) = self.due_at(ev.time_us)
            && let Ok(wait) = due.duration_since(SystemTime::now())
        {
            std::thread::sleep(wait);
        }
        Some(ev)
    }

    /// Scenarios injected so far. A scenario is recorded when it starts; its events are
    /// yielded over the following minutes.
    pub fn labels(&self) -> &[Label] {
        &self.sim.labels
    }

    /// Scenarios recorded since the previous call.
    pub fn take_new_labels(&mut self) -> Vec<Label> {
        let new = self.sim.labels[self.labels_taken..].to_vec();
        self.labels_taken = self.sim.labels.len();
        new
    }

    /// The volume scale in effect (after a live target rate was applied).
    pub fn scale(&self) -> f64 {
        self.sim.cfg.scale
    }

    /// End of the simulated run (exclusive), µs; `None` in live mode.
    pub fn end_us(&self) -> Option<i64> {
        self.sim.cfg.end_us
    }

    /// Actions and in-flight events held (a measure of memory use).
    pub fn pending(&self) -> usize {
        self.sim.out.pending()
    }
}

impl Iterator for Generator {
    type Item = GeneratedEvent;
    fn next(&mut self) -> Option<GeneratedEvent> {
        self.next_event()
    }
}

/// Benign events per second at scale 1.0, measured by simulating one weekday of the same
/// org at a small scale (no attacks).
fn base_rate(opts: &GenerateOptions) -> Result<f64> {
    const PROBE_SCALE: f64 = 0.02;
    let probe = GenerateOptions {
        days: 1,
        start: default_start(),
        scale: PROBE_SCALE,
        attacks_per_day: 0,
        live: None,
        ..opts.clone()
    };
    let n = Generator::new(probe)?.count() as f64;
    Ok((n / (86_400.0 * PROBE_SCALE)).max(0.01))
}

/// Counts of one simulated day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DaySummary {
    pub date: String,
    /// Kubernetes audit lines (each one row after ingest).
    pub kubernetes_events: u64,
    pub kubernetes_bytes: u64,
    /// Vault audit lines (request and response entries).
    pub vault_entries: u64,
    /// Vault requests (one row each after ingest).
    pub vault_requests: u64,
    pub vault_bytes: u64,
}

/// What [`write_dir`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GenerateSummary {
    pub out: PathBuf,
    pub days: Vec<DaySummary>,
    pub kubernetes_events: u64,
    pub vault_entries: u64,
    pub vault_requests: u64,
    /// Uncompressed bytes (JSON lines with newlines).
    pub bytes: u64,
    /// Scenarios per type.
    pub scenarios: BTreeMap<String, u64>,
    pub labels: u64,
}

impl GenerateSummary {
    /// Rows the store holds after ingesting the output: one per Kubernetes line, one per
    /// Vault request.
    pub fn expected_rows(&self, source: GenSource) -> u64 {
        match source {
            GenSource::Kubernetes => self.kubernetes_events,
            GenSource::Vault => self.vault_requests,
        }
    }
}

type GzFile = flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>;

/// Writes `OUT/kubernetes/audit-YYYY-MM-DD.jsonl.gz`, `OUT/vault/audit-YYYY-MM-DD.jsonl.gz`
/// and `OUT/labels.jsonl`. Ingest the two sub-directories (`labels.jsonl` is not audit
/// data). Vault responses go to the file of their request, even across midnight, so each
/// file pairs on its own.
pub fn write_dir(opts: &GenerateOptions, out: &Path) -> Result<GenerateSummary> {
    if opts.live.is_some() {
        return Err(Error::Config(
            "live mode is unbounded: write_dir needs a fixed number of days".into(),
        ));
    }
    let mut g = Generator::new(opts.clone())?;
    for s in [GenSource::Kubernetes, GenSource::Vault] {
        std::fs::create_dir_all(out.join(s.as_str()))?;
    }
    let mut files: BTreeMap<(GenSource, i64), GzFile> = BTreeMap::new();
    let mut days: BTreeMap<i64, DaySummary> = BTreeMap::new();
    let mut open_requests: HashMap<String, i64> = HashMap::new();
    let mut summary = GenerateSummary {
        out: out.to_path_buf(),
        ..Default::default()
    };
    let mut last_closed_day = i64::MIN;
    while let Some(ev) = g.next_event() {
        let mut day = ev.time_us.div_euclid(US_PER_DAY);
        let mut is_request = false;
        if ev.source == GenSource::Vault {
            match open_requests.remove(&ev.event_id) {
                Some(d) => day = d,
                None => {
                    open_requests.insert(ev.event_id.clone(), day);
                    is_request = true;
                }
            }
        }
        // files two days back are complete (responses follow requests within seconds)
        if day - 2 > last_closed_day {
            let done: Vec<_> = files
                .keys()
                .filter(|(_, d)| *d <= day - 2)
                .copied()
                .collect();
            for k in done {
                if let Some(f) = files.remove(&k) {
                    finish(f)?;
                }
            }
            last_closed_day = day - 2;
        }
        let f = match files.entry((ev.source, day)) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let path = out
                    .join(ev.source.as_str())
                    .join(format!("audit-{}.jsonl.gz", date_string(day)));
                let file = std::fs::File::create(&path)?;
                e.insert(flate2::write::GzEncoder::new(
                    std::io::BufWriter::with_capacity(1 << 20, file),
                    flate2::Compression::fast(),
                ))
            }
        };
        f.write_all(&ev.bytes)?;
        f.write_all(b"\n")?;
        let n = ev.bytes.len() as u64 + 1;
        let d = days.entry(day).or_insert_with(|| DaySummary {
            date: date_string(day),
            ..Default::default()
        });
        summary.bytes += n;
        match ev.source {
            GenSource::Kubernetes => {
                d.kubernetes_events += 1;
                d.kubernetes_bytes += n;
                summary.kubernetes_events += 1;
            }
            GenSource::Vault => {
                d.vault_entries += 1;
                d.vault_bytes += n;
                summary.vault_entries += 1;
                if is_request {
                    d.vault_requests += 1;
                    summary.vault_requests += 1;
                }
            }
        }
    }
    for (_, f) in files {
        finish(f)?;
    }
    summary.days = days.into_values().collect();
    let labels = g.labels();
    write_labels(labels, &out.join("labels.jsonl"))?;
    for l in labels {
        *summary
            .scenarios
            .entry(l.kind.as_str().to_string())
            .or_default() += 1;
    }
    summary.labels = labels.len() as u64;
    Ok(summary)
}

fn finish(f: GzFile) -> Result<()> {
    let mut w = f.finish()?;
    w.flush()?;
    Ok(())
}

/// Writes labels as JSON lines.
pub fn write_labels(labels: &[Label], path: &Path) -> Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for l in labels {
        serde_json::to_writer(&mut w, l).map_err(|e| Error::Io(e.into()))?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

/// Reads a `labels.jsonl` file.
pub fn read_labels(path: &Path) -> Result<Vec<Label>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| Error::Config(format!("{}: bad label: {e}", path.display())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_match_serde() {
        for k in ScenarioType::ALL {
            let s = serde_json::to_string(&k).unwrap();
            assert_eq!(s, format!("\"{}\"", k.as_str()));
        }
    }

    #[test]
    fn start_parses_dates_and_rfc3339() {
        assert_eq!(parse_start("2026-11-02").unwrap(), default_start());
        assert_eq!(
            parse_start("2026-11-02T00:00:00Z").unwrap(),
            default_start()
        );
        assert!(parse_start("yesterday").is_err());
    }

    #[test]
    fn events_are_in_time_order_and_ids_unique() {
        let opts = GenerateOptions {
            workloads: 6,
            scale: 0.05,
            ..Default::default()
        };
        let mut last = i64::MIN;
        let mut k8s_ids = std::collections::HashSet::new();
        let mut n = 0;
        let mut g = Generator::new(opts).unwrap();
        let mut max_pending = 0;
        while let Some(ev) = g.next_event() {
            max_pending = max_pending.max(g.pending());
            assert!(ev.time_us >= last);
            last = ev.time_us;
            if ev.source == GenSource::Kubernetes
                && !ev.bytes.windows(15).any(|w| w == b"ResponseStarted")
            {
                assert!(k8s_ids.insert(ev.event_id.clone()), "dup {}", ev.event_id);
            }
            n += 1;
        }
        assert!(n > 1000, "{n}");
        // one action per actor plus events in flight, not a day's worth
        assert!(max_pending < 1000, "{max_pending}");
    }
}
