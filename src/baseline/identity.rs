//! Identities: who an event belongs to across sources, what kind of actor it is, and the
//! per-identity state every detector keeps.
//!
//! Linking: the Vault decoder already names kubernetes-auth tokens
//! `system:serviceaccount:<ns>:<sa>`, the same string the Kubernetes decoder uses, so
//! both sources share one identity by its `actor`. A Vault row whose actor is another
//! name (a child token without the service-account metadata) is linked through its entity
//! id (`actor_id`) to the service account seen logging in with it.
//!
//! Classes come from the actor type, groups and user agent first, then from behaviour
//! while the identity is still learning (cluster-wide list/watch loops make a controller,
//! rolling out deployments makes CI/CD), and are fixed once learning ends so an attacker
//! cannot talk an identity into a less sensitive class.

use super::config::{Dimension, IdentityCfg, Kind};
use super::row::Ev;
use super::stats::{Ew, Seasonal};

/// The kind of actor, each with its own sensitivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    Workload = 0,
    Controller = 1,
    Node = 2,
    Human = 3,
    Ci = 4,
    Anonymous = 5,
}

impl Class {
    pub const COUNT: usize = 6;
    pub const ALL: [Class; 6] = [
        Class::Workload,
        Class::Controller,
        Class::Node,
        Class::Human,
        Class::Ci,
        Class::Anonymous,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Workload => "workload",
            Class::Controller => "controller",
            Class::Node => "node",
            Class::Human => "human",
            Class::Ci => "ci",
            Class::Anonymous => "anonymous",
        }
    }
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }
    pub fn from_u8(x: u8) -> Option<Class> {
        Class::ALL.get(x as usize).copied()
    }
}

/// Why an identity has its class (for explanations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassReason {
    ActorType = 0,
    Group = 1,
    ActorName = 2,
    Namespace = 3,
    UserAgent = 4,
    ClusterWideLoops = 5,
    Rollouts = 6,
}

impl ClassReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ClassReason::ActorType => "actor type",
            ClassReason::Group => "group membership",
            ClassReason::ActorName => "actor name pattern",
            ClassReason::Namespace => "service account in a controller namespace",
            ClassReason::UserAgent => "controller user agent",
            ClassReason::ClusterWideLoops => "cluster-wide list/watch loops while learning",
            ClassReason::Rollouts => "rolls out deployments",
        }
    }
    pub fn from_u8(x: u8) -> ClassReason {
        use ClassReason::*;
        [
            ActorType,
            Group,
            ActorName,
            Namespace,
            UserAgent,
            ClusterWideLoops,
            Rollouts,
        ]
        .get(x as usize)
        .copied()
        .unwrap_or(ActorType)
    }
}

/// The namespace of a `system:serviceaccount:<ns>:<sa>` actor.
pub fn sa_namespace(actor: &str) -> Option<&str> {
    let rest = actor.strip_prefix("system:serviceaccount:")?;
    rest.split_once(':').map(|(ns, _)| ns)
}

fn ci_actor(cfg: &IdentityCfg, actor: &str) -> bool {
    cfg.ci_actors.iter().any(|(p, prefix)| {
        if *prefix {
            actor.starts_with(p.as_str())
        } else {
            actor == p
        }
    })
}

/// The class an identity starts with, from its first row.
pub fn classify(cfg: &IdentityCfg, ev: &Ev<'_>) -> (Class, ClassReason) {
    let actor = ev.actor;
    if ci_actor(cfg, actor) {
        return (Class::Ci, ClassReason::ActorName);
    }
    let groups = ev.groups();
    if groups.iter().any(|g| cfg.ci_groups.iter().any(|c| c == g)) {
        return (Class::Ci, ClassReason::Group);
    }
    match ev.actor_type {
        "anonymous" => return (Class::Anonymous, ClassReason::ActorType),
        "node" => return (Class::Node, ClassReason::ActorType),
        "control_plane" | "system" => return (Class::Controller, ClassReason::ActorType),
        "user" | "root" | "token" => return (Class::Human, ClassReason::ActorType),
        _ => {}
    }
    if let Some(ns) = sa_namespace(actor) {
        if cfg.controller_namespaces.iter().any(|c| c == ns) {
            return (Class::Controller, ClassReason::Namespace);
        }
    }
    if let Some(ua) = ev.user_agent {
        let ua = ua.to_ascii_lowercase();
        if cfg
            .controller_user_agents
            .iter()
            .any(|p| ua.contains(p.as_str()))
        {
            return (Class::Controller, ClassReason::UserAgent);
        }
    }
    (Class::Workload, ClassReason::ActorType)
}

/// An event id in 17 bytes: UUIDs and `h:<16 hex>` ids inline, anything else by hash
/// (its text kept in [`super::Baselines`]'s side table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EvId(pub [u8; 17]);

impl EvId {
    pub const TAG_UUID: u8 = 1;
    pub const TAG_H: u8 = 2;
    pub const TAG_HASH: u8 = 3;

    /// Encodes an id; `None` means "keep the text elsewhere, under this hash".
    pub fn encode(id: &str) -> (EvId, bool) {
        let mut b = [0u8; 17];
        if let Some(u) = parse_uuid(id) {
            b[0] = Self::TAG_UUID;
            b[1..].copy_from_slice(&u);
            return (EvId(b), true);
        }
        if let Some(h) = id.strip_prefix("h:") {
            if h.len() == 16
                && h.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            {
                if let Ok(v) = u64::from_str_radix(h, 16) {
                    b[0] = Self::TAG_H;
                    b[1..9].copy_from_slice(&v.to_le_bytes());
                    return (EvId(b), true);
                }
            }
        }
        b[0] = Self::TAG_HASH;
        b[1..9].copy_from_slice(&xxhash_rust::xxh3::xxh3_64(id.as_bytes()).to_le_bytes());
        (EvId(b), false)
    }

    pub fn hash_key(&self) -> u64 {
        u64::from_le_bytes(self.0[1..9].try_into().expect("8 bytes"))
    }

    pub fn decode(&self, side: &super::KeyMap<Box<str>>) -> String {
        match self.0[0] {
            Self::TAG_UUID => {
                let u = u128::from_be_bytes(self.0[1..].try_into().expect("16 bytes"));
                uuid::Uuid::from_u128(u).to_string()
            }
            Self::TAG_H => format!("h:{:016x}", self.hash_key()),
            Self::TAG_HASH => side
                .get(&self.hash_key())
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("unknown:{:016x}", self.hash_key())),
            _ => String::new(),
        }
    }
}

/// Lowercase hyphenated UUID → bytes (uppercase or other forms are kept as text).
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let mut out = [0u8; 16];
    let mut k = 0;
    let mut i = 0;
    while i < 36 {
        if matches!(i, 8 | 13 | 18 | 23) {
            i += 1;
            continue;
        }
        let hi = hexval(b[i])?;
        let lo = hexval(b[i + 1])?;
        out[k] = hi << 4 | lo;
        k += 1;
        i += 2;
    }
    Some(out)
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Flags of an evidence entry: which detectors it can back.
pub mod ev_flag {
    pub const SECRET_READ: u8 = 1;
    pub const SECRET: u8 = 2;
    pub const DENIED: u8 = 4;
    pub const LOGIN: u8 = 8;
}

/// The identity's most recent notable events (secret access, denials, logins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub ids: [EvId; Evidence::CAP],
    pub flags: [u8; Evidence::CAP],
    pub len: u8,
    pub next: u8,
}

impl Evidence {
    pub const CAP: usize = 6;

    pub fn push(&mut self, id: EvId, flags: u8) {
        let i = self.next as usize;
        self.ids[i] = id;
        self.flags[i] = flags;
        self.next = ((i + 1) % Self::CAP) as u8;
        self.len = (self.len + 1).min(Self::CAP as u8);
    }

    /// Newest first, those with any of `mask`.
    pub fn matching(&self, mask: u8) -> Vec<EvId> {
        let mut out = Vec::new();
        for k in 0..self.len as usize {
            let i = (self.next as usize + Self::CAP - 1 - k) % Self::CAP;
            if self.flags[i] & mask != 0 {
                out.push(self.ids[i]);
            }
        }
        out
    }
}

/// First-seen items: one sorted vector of 64-bit words, the upper 48 bits a hash of
/// (dimension, value), the lower 16 the day (since 1970, mod 2¹⁶) it was last seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Novelty {
    pub items: Vec<u64>,
    pub counts: [u16; 6],
    /// Bit per dimension: too many items, no longer alerting.
    pub saturated: u8,
    /// Per dimension, the raw-value hash seen last today (skips the lookup on repeats).
    pub last_raw: [u32; 6],
    pub last_raw_day: u16,
    /// Per dimension, the alert window index of its last alert.
    pub alerted: [u32; 6],
}

pub const DAY_MASK: u64 = 0xffff;

impl Novelty {
    /// Looks `h` up; returns `Some(last_seen_day)` when known. Does not insert.
    pub fn find(&self, h: u64) -> Result<(usize, u16), usize> {
        let k = h >> 16;
        self.items
            .binary_search_by(|x| (x >> 16).cmp(&k))
            .map(|i| (i, (self.items[i] & DAY_MASK) as u16))
    }

    pub fn touch(&mut self, i: usize, day: u16) {
        self.items[i] = (self.items[i] & !DAY_MASK) | day as u64;
    }

    pub fn insert(&mut self, pos: usize, h: u64, day: u16) {
        self.items.insert(pos, (h & !DAY_MASK) | day as u64);
    }
}

/// A first-seen value that raised an alert and is not part of the baseline yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspect {
    pub h: u64,
    pub first_day: u16,
    pub last_day: u16,
    /// Distinct days it was used on.
    pub days: u8,
}

/// Suspects kept per identity.
pub const MAX_SUSPECTS: usize = 32;

/// Volume state: the seasonal table plus the open window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Volume {
    /// Touched only when a window closes or a gate is computed: boxed, while the
    /// counters every read updates stay inline in the identity.
    pub seasonal: Box<Seasonal>,
    /// Open window index (window start / length), or `i64::MIN` before the first read.
    pub win: i64,
    pub count: u32,
    /// Every read of the window, expected ones (right after a rollout) included.
    pub all: u32,
    /// Count from which the tail probability is worth computing (0 = not yet computed).
    pub gate: u32,
    /// Alert threshold of the open window (0 = not yet computed).
    pub thr: u32,
    pub fired: bool,
    /// A silence was reported and no read has happened since.
    pub silent: bool,
}

/// Distinct items of the open window: exact up to 32, then a 64-register HyperLogLog.
#[derive(Debug, Clone, PartialEq)]
pub enum Distinct {
    Exact(Vec<u32>),
    Hll(Box<[u8; 64]>),
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact(Vec::new())
    }
}

impl Distinct {
    /// Adds an item; true when the estimate grew.
    pub fn insert(&mut self, h: u64) -> bool {
        match self {
            Distinct::Exact(v) => {
                let x = h as u32;
                if v.contains(&x) {
                    return false;
                }
                if v.len() < 32 {
                    v.push(x);
                    return true;
                }
                let mut regs = Box::new([0u8; 64]);
                for &y in v.iter() {
                    hll_add(&mut regs, xxhash_rust::xxh3::xxh3_64(&y.to_le_bytes()));
                }
                let before = hll_count(&regs);
                hll_add(&mut regs, xxhash_rust::xxh3::xxh3_64(&x.to_le_bytes()));
                *self = Distinct::Hll(regs);
                self.count() > before.max(32)
            }
            Distinct::Hll(regs) => {
                let before = hll_count(regs);
                hll_add(regs, xxhash_rust::xxh3::xxh3_64(&(h as u32).to_le_bytes()));
                hll_count(regs) > before
            }
        }
    }

    pub fn count(&self) -> u32 {
        match self {
            Distinct::Exact(v) => v.len() as u32,
            Distinct::Hll(r) => hll_count(r).max(32),
        }
    }
}

fn hll_add(regs: &mut [u8; 64], h: u64) {
    let idx = (h >> 58) as usize;
    let rank = ((h << 6) | (1 << 5)).leading_zeros() as u8 + 1;
    if rank > regs[idx] {
        regs[idx] = rank;
    }
}

fn hll_count(regs: &[u8; 64]) -> u32 {
    let m = 64.0f64;
    let sum: f64 = regs.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
    let est = 0.709 * m * m / sum;
    let zeros = regs.iter().filter(|&&r| r == 0).count();
    let est = if est <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        est
    };
    est.round() as u32
}

/// A tumbling-window counter scored against an exponentially weighted baseline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counter {
    pub base: Ew,
    pub win: i64,
    pub count: u32,
    /// The previous window's count (for the sliding estimate), if it was the one before.
    pub prev: u32,
    pub thr: u32,
    pub fired: bool,
    pub distinct: Option<Distinct>,
}

/// Everything known about one identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub actor: Box<str>,
    pub key: u64,
    /// Hash of the linked Vault entity id (0 = none).
    pub entity: u64,
    /// Hash of the namespace whose rollouts make this identity's reads expected
    /// (its service-account namespace; 0 = none).
    pub ns_key: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Days (UTC) with at least one event.
    pub active_days: u16,
    pub class: Class,
    pub class_reason: ClassReason,
    /// Appeared after the stream's learning period in a class whose new identities
    /// alert: its novelties alert from the start.
    pub probation: bool,
    /// Cluster-wide list/watch calls and rollouts seen while learning.
    pub cluster_loops: u16,
    pub rollouts: u16,
    pub novelty: Novelty,
    // the per-read state is inline (one identity, few cache lines); rarer state is boxed
    pub volume: Option<Volume>,
    pub breadth: Option<Counter>,
    pub denied: Option<Box<Counter>>,
    /// Off-hours: per kind, per hour of day, distinct hours with that activity.
    pub hours: Option<[[u8; 24]; Kind::COUNT]>,
    /// Per kind, the absolute hour last counted; and the hour of the last off-hours alert.
    pub hours_last: [u32; Kind::COUNT],
    pub off_alerted: u32,
    pub evidence: Option<Box<Evidence>>,
    pub suspects: Option<Box<Vec<Suspect>>>,
}

impl Identity {
    pub fn new(actor: &str, key: u64, t: i64, class: Class, reason: ClassReason) -> Identity {
        let ns_key = sa_namespace(actor).map_or(0, |ns| super::hash_str(ns));
        Identity {
            actor: actor.into(),
            key,
            entity: 0,
            ns_key,
            first_seen: t,
            last_seen: t,
            active_days: 1,
            class,
            class_reason: reason,
            probation: false,
            cluster_loops: 0,
            rollouts: 0,
            novelty: Novelty::default(),
            volume: None,
            breadth: None,
            denied: None,
            hours: None,
            hours_last: [u32::MAX; Kind::COUNT],
            off_alerted: u32::MAX,
            evidence: None,
            suspects: None,
        }
    }

    /// Past its learning period: `learning_us` since first seen, on at least `min_days`
    /// active days.
    pub fn learned(&self, t: i64, learning_us: i64, min_days: u16) -> bool {
        t - self.first_seen >= learning_us && self.active_days >= min_days
    }

    /// Approximate heap + inline bytes held.
    pub fn approx_bytes(&self) -> usize {
        let mut n = std::mem::size_of::<Identity>() + self.actor.len();
        n += self.novelty.items.capacity() * 8;
        if self.volume.is_some() {
            n += std::mem::size_of::<Seasonal>();
        }
        if self.denied.is_some() {
            n += std::mem::size_of::<Counter>();
        }
        for c in [self.breadth.as_ref(), self.denied.as_deref()]
            .into_iter()
            .flatten()
        {
            n += match &c.distinct {
                Some(Distinct::Exact(v)) => v.capacity() * 4,
                Some(Distinct::Hll(_)) => 64,
                None => 0,
            };
        }
        if self.evidence.is_some() {
            n += std::mem::size_of::<Evidence>();
        }
        if let Some(s) = &self.suspects {
            n += 24 + s.capacity() * std::mem::size_of::<Suspect>();
        }
        n
    }

    pub fn novelty_dim_index(d: Dimension) -> usize {
        d as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let side = super::super::KeyMap::default();
        for id in ["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "h:00ff00ff00ff00ff"] {
            let (e, inline) = EvId::encode(id);
            assert!(inline);
            assert_eq!(e.decode(&side), id);
        }
        let (e, inline) = EvId::encode("custom-id-1");
        assert!(!inline);
        let mut side = super::super::KeyMap::default();
        side.insert(e.hash_key(), "custom-id-1".into());
        assert_eq!(e.decode(&side), "custom-id-1");
    }

    #[test]
    fn distinct_switches_to_hll() {
        let mut d = Distinct::default();
        for i in 0..1000u64 {
            d.insert(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()));
        }
        let n = d.count();
        assert!((700..1300).contains(&n), "{n}");
        let mut e = Distinct::default();
        assert!(e.insert(5));
        assert!(!e.insert(5));
        assert_eq!(e.count(), 1);
    }

    #[test]
    fn evidence_is_newest_first() {
        let mut e = Evidence::default();
        for i in 0..10u8 {
            let mut id = EvId::default();
            id.0[1] = i;
            e.push(id, if i % 2 == 0 { 1 } else { 2 });
        }
        let m = e.matching(1);
        assert_eq!(m.iter().map(|x| x.0[1]).collect::<Vec<_>>(), vec![8, 6, 4]);
    }
}
