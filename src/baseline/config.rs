//! The detectors file: one serde tree, the default embedded from `detectors/default.yml`,
//! a site file merged over it key by key, validated into a [`DetectorConfig`] that cannot
//! hold an invalid value.

use std::collections::BTreeMap;
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::identity::Class;
use crate::error::{Error, Result};

/// The built-in detectors file.
pub const DEFAULT_YAML: &str = include_str!("../../detectors/default.yml");

/// Which `source` values a detector looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceSet {
    pub kubernetes: bool,
    pub vault: bool,
    pub openbao: bool,
}

impl SourceSet {
    fn parse(list: &[String], what: &str) -> Result<SourceSet> {
        let mut s = SourceSet::default();
        for x in list {
            match x.as_str() {
                "kubernetes" => s.kubernetes = true,
                "vault" => s.vault = true,
                "openbao" => s.openbao = true,
                _ => return bad(format!("{what}.sources: unknown source `{x}`")),
            }
        }
        Ok(s)
    }

    pub fn contains(&self, src: super::row::Src) -> bool {
        use super::row::Src;
        match src {
            Src::Kubernetes => self.kubernetes,
            Src::Vault => self.vault,
            Src::OpenBao => self.openbao,
            Src::Other => false,
        }
    }
}

/// A set of identity classes (bit per class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassSet(pub u8);

impl ClassSet {
    pub fn contains(self, c: Class) -> bool {
        self.0 & (1 << c as u8) != 0
    }
    fn parse(list: &[String], what: &str) -> Result<ClassSet> {
        let mut s = 0u8;
        for x in list {
            s |= 1 << parse_class(x, what)? as u8;
        }
        Ok(ClassSet(s))
    }
}

fn parse_class(s: &str, what: &str) -> Result<Class> {
    Class::parse(s).ok_or_else(|| {
        Error::Config(format!(
            "{what}: unknown identity class `{s}` (workload, controller, node, human, ci, anonymous)"
        ))
    })
}

/// Per-class values; a class without an entry is not scored.
#[derive(Debug, Clone, PartialEq)]
pub struct PerClass<T>(pub [Option<T>; Class::COUNT]);

impl<T> PerClass<T> {
    pub fn get(&self, c: Class) -> Option<&T> {
        self.0[c as usize].as_ref()
    }
}

fn per_class<R, T>(
    raw: BTreeMap<String, Option<R>>,
    what: &str,
    f: impl Fn(R) -> Result<T>,
) -> Result<PerClass<T>> {
    let mut out: [Option<T>; Class::COUNT] = Default::default();
    for (k, v) in raw {
        let c = parse_class(&k, what)?;
        if let Some(v) = v {
            out[c as usize] = Some(f(v)?);
        }
    }
    Ok(PerClass(out))
}

/// A first-seen dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dimension {
    SecretPath = 0,
    SecretPrefix = 1,
    Network = 2,
    UserAgent = 3,
    AuthMethod = 4,
    Operation = 5,
    Identity = 6,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::SecretPath,
        Dimension::SecretPrefix,
        Dimension::Network,
        Dimension::UserAgent,
        Dimension::AuthMethod,
        Dimension::Operation,
        Dimension::Identity,
    ];
    /// The dimensions whose values are remembered per identity.
    pub const VALUES: usize = 6;
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::SecretPath => "secret_path",
            Dimension::SecretPrefix => "secret_prefix",
            Dimension::Network => "network",
            Dimension::UserAgent => "user_agent",
            Dimension::AuthMethod => "auth_method",
            Dimension::Operation => "operation",
            Dimension::Identity => "identity",
        }
    }
    fn parse(s: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// One first-seen dimension's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DimensionCfg {
    pub classes: ClassSet,
    pub score: f64,
}

/// Start-up-like activity kinds of the off-hours detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Login = 0,
    K8sSecretRead = 1,
    VaultSecretRead = 2,
}

impl Kind {
    pub const COUNT: usize = 3;
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::K8sSecretRead => "k8s_secret_read",
            Kind::VaultSecretRead => "vault_secret_read",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdentityCfg {
    pub link_vault_entities: bool,
    pub controller_namespaces: Vec<String>,
    pub controller_user_agents: Vec<String>,
    pub ci_groups: Vec<String>,
    /// Exact names, or prefixes (pattern ended by `*`).
    pub ci_actors: Vec<(String, bool)>,
    pub reclassify_while_learning: bool,
    pub class_weight: [f64; Class::COUNT],
    /// Every detector's learning period also needs this many days with activity.
    pub min_active_days: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeverityCfg {
    pub medium: f64,
    pub high: f64,
    pub critical: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkCfg {
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub collapse: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FirstSeenCfg {
    pub enabled: bool,
    pub sources: SourceSet,
    pub learning_us: i64,
    pub forget_us: i64,
    pub max_items: u16,
    pub vault_prefix_depth: usize,
    pub alert_window_us: i64,
    pub confirm_days: u8,
    pub never_confirm: ClassSet,
    pub dimensions: [Option<DimensionCfg>; 7],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeClass {
    pub p_value: f64,
    pub min_excess: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SilenceCfg {
    pub enabled: bool,
    pub min_expected: f64,
    pub p_value: f64,
    pub dispersion: f64,
    pub classes: ClassSet,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VolumeCfg {
    pub enabled: bool,
    pub sources: SourceSet,
    pub actions: Vec<String>,
    pub window_us: i64,
    pub learning_us: i64,
    pub min_samples: u16,
    pub dispersion: f64,
    pub classes: PerClass<VolumeClass>,
    pub silence: SilenceCfg,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountClass {
    pub p_value: f64,
    /// `min_distinct` (breadth) or `min_count` (denied).
    pub min: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreadthCfg {
    pub enabled: bool,
    pub sources: SourceSet,
    pub window_us: i64,
    pub learning_us: i64,
    pub dispersion: f64,
    pub classes: PerClass<CountClass>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeniedCfg {
    pub enabled: bool,
    pub sources: SourceSet,
    pub outcomes: Vec<String>,
    pub window_us: i64,
    pub learning_us: i64,
    pub dispersion: f64,
    pub classes: PerClass<CountClass>,
}

/// A configured deployment window: days of the week (bit 0 = Monday) and UTC hours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeployWindow {
    pub days: u8,
    /// Minutes of the day, [start, end).
    pub start_min: u32,
    pub end_min: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OffHoursCfg {
    pub enabled: bool,
    pub sources: SourceSet,
    pub classes: ClassSet,
    pub learning_us: i64,
    pub kinds: [bool; Kind::COUNT],
    pub rollout_grace_us: i64,
    pub learn_windows: bool,
    pub min_rollouts: f64,
    pub windows: Vec<DeployWindow>,
    pub min_count: u32,
}

/// The validated detectors configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    pub allowed_lateness_us: i64,
    pub idle_eviction_us: i64,
    pub max_identities: usize,
    pub identities: IdentityCfg,
    pub severity: SeverityCfg,
    pub networks: NetworkCfg,
    pub first_seen: FirstSeenCfg,
    pub volume: VolumeCfg,
    pub breadth: BreadthCfg,
    pub denied: DeniedCfg,
    pub off_hours: OffHoursCfg,
    /// xxh3 of the merged tree: a snapshot taken under another configuration is refused.
    pub fingerprint: u64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig::from_yaml("").expect("the built-in detectors/default.yml is valid")
    }
}

impl DetectorConfig {
    /// Reads a detectors file (merged over the built-in defaults).
    pub fn load(path: &Path) -> Result<DetectorConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Input {
            path: path.display().to_string(),
            source: e,
        })?;
        DetectorConfig::from_yaml(&text)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), strip(e))))
    }

    /// Parses detector settings from YAML text, merged over the built-in defaults (an
    /// empty text gives the defaults).
    pub fn from_yaml(text: &str) -> Result<DetectorConfig> {
        let mut tree = yaml_json(DEFAULT_YAML)?;
        if !text.trim().is_empty() {
            let site = yaml_json(text)?;
            if !site.is_null() {
                merge(&mut tree, site);
            }
        }
        let fingerprint = xxhash_rust::xxh3::xxh3_64(tree.to_string().as_bytes());
        let raw: RawConfig = serde_json::from_value(tree)
            .map_err(|e| Error::Config(format!("detectors file: {e}")))?;
        let mut cfg = DetectorConfig::try_from(raw)?;
        cfg.fingerprint = fingerprint;
        Ok(cfg)
    }

    /// Lateness and windows shortened, for tests and the bench (everything else default).
    pub fn with_learning(mut self, learning_us: i64) -> DetectorConfig {
        self.first_seen.learning_us = learning_us;
        self.volume.learning_us = learning_us;
        self.breadth.learning_us = learning_us;
        self.denied.learning_us = learning_us;
        self.off_hours.learning_us = learning_us;
        self
    }
}

fn strip(e: Error) -> String {
    match e {
        Error::Config(m) => m,
        e => e.to_string(),
    }
}

fn bad<T>(m: String) -> Result<T> {
    Err(Error::Config(m))
}

fn yaml_json(text: &str) -> Result<Value> {
    let docs = crate::detect::yaml::load_all(text).map_err(|e| {
        Error::Config(format!(
            "YAML syntax error at line {}: {}",
            e.line, e.message
        ))
    })?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs[0].to_json()),
        n => bad(format!(
            "a detectors file holds one YAML document, found {n}"
        )),
    }
}

/// Merges `over` into `base`: maps key by key, `null` removes a key, anything else
/// replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(&k);
                } else if let Some(slot) = b.get_mut(&k) {
                    merge(slot, v);
                } else {
                    b.insert(k, v);
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Parses `30s`, `10m`, `3d` (humantime) into microseconds.
pub fn duration_us(s: &str, what: &str) -> Result<i64> {
    humantime::parse_duration(s.trim())
        .map(|d| d.as_micros() as i64)
        .map_err(|e| Error::Config(format!("{what}: invalid duration `{s}`: {e}")))
}

fn positive_duration(s: &str, what: &str) -> Result<i64> {
    let us = duration_us(s, what)?;
    if us <= 0 {
        return bad(format!("{what}: must be positive, got `{s}`"));
    }
    Ok(us)
}

fn p_value(p: f64, what: &str) -> Result<f64> {
    if !(p > 0.0 && p < 1.0) {
        return bad(format!("{what}: p_value must be in (0, 1), got {p}"));
    }
    Ok(p)
}

// ---------------------------------------------------------------- raw serde tree

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    event_time: RawEventTime,
    state: RawState,
    identities: RawIdentities,
    severity: RawSeverity,
    networks: RawNetworks,
    first_seen: RawFirstSeen,
    volume: RawVolume,
    breadth: RawBreadth,
    denied: RawDenied,
    off_hours: RawOffHours,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEventTime {
    allowed_lateness: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    idle_eviction: String,
    max_identities: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentities {
    link_vault_entities: bool,
    controller_namespaces: Vec<String>,
    controller_user_agents: Vec<String>,
    ci_groups: Vec<String>,
    ci_actors: Vec<String>,
    reclassify_while_learning: bool,
    class_weight: BTreeMap<String, f64>,
    min_active_days: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeverity {
    medium: f64,
    high: f64,
    critical: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetworks {
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    collapse: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDimension {
    classes: Vec<String>,
    score: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFirstSeen {
    enabled: bool,
    sources: Vec<String>,
    learning: String,
    forget: String,
    max_items: u16,
    vault_prefix_depth: usize,
    alert_window: String,
    confirm_days: u8,
    never_confirm: Vec<String>,
    dimensions: BTreeMap<String, Option<RawDimension>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolumeClass {
    p_value: f64,
    min_excess: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSilence {
    enabled: bool,
    min_expected: f64,
    p_value: f64,
    dispersion: f64,
    classes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    enabled: bool,
    sources: Vec<String>,
    actions: Vec<String>,
    window: String,
    learning: String,
    min_samples: u16,
    dispersion: f64,
    classes: BTreeMap<String, Option<RawVolumeClass>>,
    silence: RawSilence,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreadthClass {
    p_value: f64,
    min_distinct: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreadth {
    enabled: bool,
    sources: Vec<String>,
    window: String,
    learning: String,
    dispersion: f64,
    classes: BTreeMap<String, Option<RawBreadthClass>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeniedClass {
    p_value: f64,
    min_count: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDenied {
    enabled: bool,
    sources: Vec<String>,
    outcomes: Vec<String>,
    window: String,
    learning: String,
    dispersion: f64,
    classes: BTreeMap<String, Option<RawDeniedClass>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    days: Vec<String>,
    hours: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffHours {
    enabled: bool,
    sources: Vec<String>,
    classes: Vec<String>,
    learning: String,
    kinds: Vec<String>,
    rollout_grace: String,
    learn_windows: bool,
    min_rollouts: f64,
    windows: Vec<RawWindow>,
    min_count: u32,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn hhmm(s: &str, what: &str) -> Result<u32> {
    let (h, m) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| Error::Config(format!("{what}: expected HH:MM, got `{s}`")))?;
    let (h, m): (u32, u32) = match (h.parse(), m.parse()) {
        (Ok(h), Ok(m)) if h <= 24 && m < 60 && h * 60 + m <= 1440 => (h, m),
        _ => return bad(format!("{what}: expected HH:MM, got `{s}`")),
    };
    Ok(h * 60 + m)
}

impl TryFrom<RawConfig> for DetectorConfig {
    type Error = Error;

    fn try_from(r: RawConfig) -> Result<DetectorConfig> {
        let allowed_lateness_us = duration_us(&r.event_time.allowed_lateness, "allowed_lateness")?;
        if !(0..=3_600_000_000).contains(&allowed_lateness_us) {
            return bad("event_time.allowed_lateness must be between 0 and 1h".into());
        }
        if r.state.max_identities == 0 {
            return bad("state.max_identities must be positive".into());
        }
        let mut class_weight = [1.0; Class::COUNT];
        for (k, v) in &r.identities.class_weight {
            let c = parse_class(k, "identities.class_weight")?;
            if !(*v > 0.0 && v.is_finite()) {
                return bad(format!("identities.class_weight.{k} must be positive"));
            }
            class_weight[c as usize] = *v;
        }
        let identities = IdentityCfg {
            link_vault_entities: r.identities.link_vault_entities,
            controller_namespaces: r.identities.controller_namespaces,
            controller_user_agents: r
                .identities
                .controller_user_agents
                .into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            ci_groups: r.identities.ci_groups,
            ci_actors: r
                .identities
                .ci_actors
                .into_iter()
                .map(|p| match p.strip_suffix('*') {
                    Some(pre) => (pre.to_string(), true),
                    None => (p, false),
                })
                .collect(),
            reclassify_while_learning: r.identities.reclassify_while_learning,
            class_weight,
            min_active_days: r.identities.min_active_days,
        };
        let s = r.severity;
        if !(s.medium > 0.0 && s.medium <= s.high && s.high <= s.critical) {
            return bad("severity: need 0 < medium ≤ high ≤ critical".into());
        }
        let severity = SeverityCfg {
            medium: s.medium,
            high: s.high,
            critical: s.critical,
        };
        let n = r.networks;
        if n.ipv4_prefix > 32 || n.ipv6_prefix > 128 {
            return bad("networks: ipv4_prefix ≤ 32 and ipv6_prefix ≤ 128".into());
        }
        let collapse = n
            .collapse
            .iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .map(|n| n.trunc())
                    .map_err(|e| Error::Config(format!("networks.collapse: `{c}`: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let networks = NetworkCfg {
            ipv4_prefix: n.ipv4_prefix,
            ipv6_prefix: n.ipv6_prefix,
            collapse,
        };

        let f = r.first_seen;
        let mut dimensions: [Option<DimensionCfg>; 7] = [None; 7];
        for (k, v) in f.dimensions {
            let d = Dimension::parse(&k).ok_or_else(|| {
                Error::Config(format!("first_seen.dimensions: unknown dimension `{k}`"))
            })?;
            if let Some(v) = v {
                dimensions[d as usize] = Some(DimensionCfg {
                    classes: ClassSet::parse(&v.classes, "first_seen.dimensions")?,
                    score: v.score,
                });
            }
        }
        if f.max_items == 0 {
            return bad("first_seen.max_items must be positive".into());
        }
        let first_seen = FirstSeenCfg {
            enabled: f.enabled,
            sources: SourceSet::parse(&f.sources, "first_seen")?,
            learning_us: duration_us(&f.learning, "first_seen.learning")?,
            forget_us: positive_duration(&f.forget, "first_seen.forget")?,
            max_items: f.max_items,
            vault_prefix_depth: f.vault_prefix_depth.max(1),
            alert_window_us: positive_duration(&f.alert_window, "first_seen.alert_window")?,
            confirm_days: f.confirm_days,
            never_confirm: ClassSet::parse(&f.never_confirm, "first_seen.never_confirm")?,
            dimensions,
        };

        let v = r.volume;
        let volume = VolumeCfg {
            enabled: v.enabled,
            sources: SourceSet::parse(&v.sources, "volume")?,
            actions: v.actions,
            window_us: positive_duration(&v.window, "volume.window")?,
            learning_us: duration_us(&v.learning, "volume.learning")?,
            min_samples: v.min_samples.max(1),
            dispersion: v.dispersion.max(0.0),
            classes: per_class(v.classes, "volume.classes", |c| {
                Ok(VolumeClass {
                    p_value: p_value(c.p_value, "volume.classes")?,
                    min_excess: c.min_excess.max(0.0),
                })
            })?,
            silence: SilenceCfg {
                enabled: v.silence.enabled,
                min_expected: v.silence.min_expected.max(1.0),
                p_value: p_value(v.silence.p_value, "volume.silence")?,
                dispersion: v.silence.dispersion.max(0.0),
                classes: ClassSet::parse(&v.silence.classes, "volume.silence.classes")?,
            },
        };
        if volume.window_us > 86_400_000_000 || 86_400_000_000 % volume.window_us != 0 {
            return bad("volume.window must divide a day (e.g. 15m, 30m, 1h, 2h)".into());
        }

        let b = r.breadth;
        let breadth = BreadthCfg {
            enabled: b.enabled,
            sources: SourceSet::parse(&b.sources, "breadth")?,
            window_us: positive_duration(&b.window, "breadth.window")?,
            learning_us: duration_us(&b.learning, "breadth.learning")?,
            dispersion: b.dispersion.max(0.0),
            classes: per_class(b.classes, "breadth.classes", |c| {
                Ok(CountClass {
                    p_value: p_value(c.p_value, "breadth.classes")?,
                    min: c.min_distinct.max(1),
                })
            })?,
        };

        let d = r.denied;
        for o in &d.outcomes {
            if !["denied", "failure", "unknown", "success"].contains(&o.as_str()) {
                return bad(format!("denied.outcomes: unknown outcome `{o}`"));
            }
        }
        let denied = DeniedCfg {
            enabled: d.enabled,
            sources: SourceSet::parse(&d.sources, "denied")?,
            outcomes: d.outcomes,
            window_us: positive_duration(&d.window, "denied.window")?,
            learning_us: duration_us(&d.learning, "denied.learning")?,
            dispersion: d.dispersion.max(0.0),
            classes: per_class(d.classes, "denied.classes", |c| {
                Ok(CountClass {
                    p_value: p_value(c.p_value, "denied.classes")?,
                    min: c.min_count.max(1),
                })
            })?,
        };

        let o = r.off_hours;
        let mut kinds = [false; Kind::COUNT];
        for k in &o.kinds {
            let kind = match k.as_str() {
                "login" => Kind::Login,
                "k8s_secret_read" => Kind::K8sSecretRead,
                "vault_secret_read" => Kind::VaultSecretRead,
                _ => return bad(format!("off_hours.kinds: unknown kind `{k}`")),
            };
            kinds[kind as usize] = true;
        }
        let mut windows = Vec::new();
        for w in &o.windows {
            let mut days = 0u8;
            for d in &w.days {
                let d = d.to_ascii_lowercase();
                let i = DAYS.iter().position(|x| d.starts_with(x)).ok_or_else(|| {
                    Error::Config(format!("off_hours.windows: unknown day `{d}`"))
                })?;
                days |= 1 << i;
            }
            let (a, z) = w.hours.split_once('-').ok_or_else(|| {
                Error::Config(format!(
                    "off_hours.windows.hours: expected HH:MM-HH:MM, got `{}`",
                    w.hours
                ))
            })?;
            let (start_min, end_min) = (
                hhmm(a, "off_hours.windows.hours")?,
                hhmm(z, "off_hours.windows.hours")?,
            );
            if start_min >= end_min {
                return bad(format!(
                    "off_hours.windows.hours: empty window `{}`",
                    w.hours
                ));
            }
            windows.push(DeployWindow {
                days,
                start_min,
                end_min,
            });
        }
        let off_hours = OffHoursCfg {
            enabled: o.enabled,
            sources: SourceSet::parse(&o.sources, "off_hours")?,
            classes: ClassSet::parse(&o.classes, "off_hours.classes")?,
            learning_us: duration_us(&o.learning, "off_hours.learning")?,
            kinds,
            rollout_grace_us: duration_us(&o.rollout_grace, "off_hours.rollout_grace")?,
            learn_windows: o.learn_windows,
            min_rollouts: o.min_rollouts.max(0.0),
            windows,
            min_count: o.min_count,
        };

        Ok(DetectorConfig {
            allowed_lateness_us,
            idle_eviction_us: positive_duration(&r.state.idle_eviction, "state.idle_eviction")?,
            max_identities: r.state.max_identities,
            identities,
            severity,
            networks,
            first_seen,
            volume,
            breadth,
            denied,
            off_hours,
            fingerprint: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_parses() {
        let c = DetectorConfig::default();
        assert_eq!(c.allowed_lateness_us, 30_000_000);
        assert_eq!(c.volume.window_us, 3_600_000_000);
        assert!(c.volume.classes.get(Class::Workload).is_some());
        assert!(c.volume.classes.get(Class::Node).is_none());
        assert!(c.first_seen.dimensions[Dimension::Identity as usize].is_some());
    }

    #[test]
    fn site_file_merges_and_null_removes() {
        let c = DetectorConfig::from_yaml(
            "volume:\n  window: 30m\n  classes:\n    controller: null\noff_hours:\n  windows:\n    - {days: [mon, fri], hours: \"09:00-17:30\"}\n",
        )
        .unwrap();
        assert_eq!(c.volume.window_us, 1_800_000_000);
        assert!(c.volume.classes.get(Class::Controller).is_none());
        assert!(c.volume.classes.get(Class::Workload).is_some());
        assert_eq!(c.off_hours.windows[0].days, 0b1_0001);
        assert_eq!(c.off_hours.windows[0].end_min, 17 * 60 + 30);
        assert_ne!(c.fingerprint, DetectorConfig::default().fingerprint);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let e = DetectorConfig::from_yaml("volume:\n  windw: 1h\n").unwrap_err();
        assert!(e.to_string().contains("windw"), "{e}");
        assert!(DetectorConfig::from_yaml("volume:\n  window: 7m\n").is_err());
        assert!(
            DetectorConfig::from_yaml(
                "breadth:\n  classes: {robot: {p_value: 0.1, min_distinct: 3}}\n"
            )
            .is_err()
        );
        assert!(
            DetectorConfig::from_yaml("denied:\n  classes: {human: {p_value: 2, min_count: 3}}\n")
                .is_err()
        );
    }
}
