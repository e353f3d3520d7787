//! Baselines: learned per-identity behaviour, scored on event time, explained in every
//! alert.
//!
//! [`Baselines`] takes `access_events` batches in arrival order ([`Baselines::evaluate`])
//! and returns [`Alert`]s of five detectors (configured in a detectors file, see
//! `detectors/default.yml` and [`DetectorConfig`]):
//!
//! - `first_seen`: a secret path, a secret's namespace/team prefix, a source network, a
//!   user-agent family or an auth method new for this identity after its learning
//!   period (and a new identity of a sensitive class);
//! - `volume`: secret reads per window against a seasonal (hour of day × day type)
//!   baseline, tail probability from a Poisson or negative binomial fit; spikes and
//!   silences;
//! - `breadth`: distinct secrets per window (exact, then HyperLogLog) against the
//!   identity's usual breadth — enumeration;
//! - `denied`: denied requests per window against the identity's usual rate;
//! - `off_hours`: start-up-like activity (logins, secret reads) at an hour the identity
//!   is never active, outside deployment windows (learned from rollouts in the stream, or
//!   configured) and not right after a rollout of its own namespace.
//!
//! Invariants:
//! - **Event time.** Rows are held in a reorder buffer and processed in (time, row key)
//!   order once the watermark (the newest time seen) is `allowed_lateness` past them, so
//!   the same rows give the same alerts whatever their arrival order within the lateness,
//!   whatever the batch boundaries, live or replayed. Later rows are processed on arrival
//!   and counted in [`Stats::late`]; windows already closed ignore them.
//! - **Deterministic ids**: `alert_id(detector, actor, window start, key)`, one alert per
//!   identity, detector, window and key.
//! - **State** (baselines, open windows, rollouts, the rows still in the reorder buffer)
//!   is one [`Baselines::snapshot`], restored with [`Baselines::restore`]; a restored
//!   instance continues exactly as an uninterrupted one.
//! - **Bounded memory**: identities idle for `idle_eviction` are dropped, and beyond
//!   `max_identities` the longest-idle ones; every per-identity structure has a cap.
//! - **No secret values**: detectors read names, paths, addresses and ids, never `raw`.

pub mod cli;
pub mod config;
mod detectors;
pub mod eval;
pub mod identity;
pub mod row;
mod snapshot;
pub use snapshot::SnapshotError;
pub mod stats;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;

pub use crate::detect::Alert;
pub use config::DetectorConfig;
pub use identity::Class;

use identity::{EvId, Identity};
use row::{Cols, Ev};

/// Maps keyed by 64-bit hashes (xxh3 of actors, entity ids, namespaces): the key is
/// already uniformly distributed, so it is its own hash.
pub type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ *b as u64;
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

pub(crate) fn hash_str(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

/// Counters since start (or restore).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub rows: u64,
    /// Rows older than the processed frontier when they arrived.
    pub late: u64,
    pub alerts: u64,
    pub evicted: u64,
}

/// One row waiting in the reorder buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    time: i64,
    key: u64,
    batch: u64,
    row: u32,
}

struct Held {
    cols: Arc<Cols>,
    remaining: usize,
}

/// The baseline detectors and their state.
pub struct Baselines {
    cfg: Arc<DetectorConfig>,
    slots: Vec<Option<Identity>>,
    free: Vec<u32>,
    by_key: KeyMap<u32>,
    /// Vault entity id hash → identity key of the service account seen with it.
    entities: KeyMap<u64>,
    /// Text of event ids that are neither UUIDs nor `h:` ids.
    side_ids: KeyMap<Box<str>>,
    /// Newest event time seen.
    watermark: i64,
    /// Time of the newest processed row.
    processed: i64,
    /// Time of the first processed row (the detectors' own learning period).
    start: i64,
    /// Volume window index of the last scan.
    clock_win: i64,
    /// Day of the last daily maintenance.
    clock_day: i64,
    /// Namespace hash → (time, event) of its last rollout or pod restart.
    rollouts: KeyMap<(i64, EvId)>,
    /// Decayed rollout counts per seasonal bucket (learned deployment windows).
    deploy_hist: [f32; 48],
    pending: VecDeque<Pending>,
    held: VecDeque<Held>,
    first_held: u64,
    pub stats: Stats,
}

impl Baselines {
    pub fn new(cfg: DetectorConfig) -> Baselines {
        Baselines {
            cfg: Arc::new(cfg),
            slots: Vec::new(),
            free: Vec::new(),
            by_key: KeyMap::default(),
            entities: KeyMap::default(),
            side_ids: KeyMap::default(),
            watermark: i64::MIN,
            processed: i64::MIN,
            start: i64::MIN,
            clock_win: i64::MIN,
            clock_day: i64::MIN,
            rollouts: KeyMap::default(),
            deploy_hist: [0.0; 48],
            pending: VecDeque::new(),
            held: VecDeque::new(),
            first_held: 0,
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Takes one batch of `access_events` rows (in arrival order) and returns the alerts
    /// of every row that became processable: those at least `allowed_lateness` older
    /// than the newest time seen so far.
    pub fn evaluate(&mut self, batch: &RecordBatch) -> Vec<Alert> {
        let mut out = Vec::new();
        if batch.num_rows() == 0 {
            return out;
        }
        let cols = Cols::new(batch);
        let id = self.first_held + self.held.len() as u64;
        let mut new: Vec<Pending> = (0..cols.len)
            .map(|r| Pending {
                time: cols.time(r),
                key: cols.row_key(r),
                batch: id,
                row: r as u32,
            })
            .collect();
        if let Some(max) = new.iter().map(|p| p.time).max() {
            self.watermark = self.watermark.max(max);
        }
        new.sort_unstable();
        self.held.push_back(Held {
            cols: Arc::new(cols),
            remaining: new.len(),
        });
        self.merge_pending(new);
        let frontier = self.watermark.saturating_sub(self.cfg.allowed_lateness_us);
        self.drain(frontier, &mut out);
        out
    }

    /// Idle tick of a live stream: moves the watermark to `t` (an event time the input
    /// is known to have reached, e.g. wall clock minus the source's delay) and returns the
    /// alerts of the rows that became processable. A `t` behind the watermark does
    /// nothing.
    pub fn advance_watermark(&mut self, t: i64) -> Vec<Alert> {
        let mut out = Vec::new();
        if t > self.watermark {
            self.watermark = t;
            let frontier = t.saturating_sub(self.cfg.allowed_lateness_us);
            self.drain(frontier, &mut out);
        }
        out
    }

    /// Processes every row still held (end of input).
    pub fn flush(&mut self) -> Vec<Alert> {
        let mut out = Vec::new();
        self.drain(i64::MAX, &mut out);
        out
    }

    /// Identities held.
    pub fn identities(&self) -> usize {
        self.by_key.len()
    }

    /// Rows waiting in the reorder buffer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Approximate memory held by the state, in bytes.
    pub fn approx_bytes(&self) -> usize {
        let ids: usize = self
            .slots
            .iter()
            .flatten()
            .map(Identity::approx_bytes)
            .sum();
        let empty_slots =
            (self.slots.capacity() - self.by_key.len()) * std::mem::size_of::<Option<Identity>>();
        let maps = (self.by_key.capacity() + self.entities.capacity()) * 24
            + self.free.capacity() * 4
            + self.rollouts.capacity() * 48
            + self.side_ids.values().map(|s| s.len() + 40).sum::<usize>();
        let pending = self.pending.capacity() * std::mem::size_of::<Pending>()
            + self.held.iter().map(|h| h.cols.bytes).sum::<usize>();
        ids + empty_slots + maps + pending
    }

    /// The class of an identity, if held.
    pub fn class_of(&self, actor: &str) -> Option<Class> {
        let i = *self.by_key.get(&hash_str(actor))?;
        self.slots[i as usize].as_ref().map(|x| x.class)
    }

    /// Bytes held per identity, by class (count, mean bytes): for sizing.
    pub fn bytes_by_class(&self) -> Vec<(Class, usize, usize)> {
        let mut acc = [(0usize, 0usize); Class::COUNT];
        for i in self.slots.iter().flatten() {
            acc[i.class as usize].0 += 1;
            acc[i.class as usize].1 += i.approx_bytes();
        }
        Class::ALL
            .iter()
            .filter(|c| acc[**c as usize].0 > 0)
            .map(|c| {
                let (n, b) = acc[*c as usize];
                (*c, n, b / n)
            })
            .collect()
    }

    fn merge_pending(&mut self, new: Vec<Pending>) {
        let in_order = match (self.pending.back(), new.first()) {
            (Some(b), Some(f)) => b <= f,
            _ => true,
        };
        if in_order {
            self.pending.extend(new);
            return;
        }
        // merge only the tail that overlaps
        let first = new[0];
        let split = self.pending.partition_point(|p| *p <= first);
        let tail: Vec<Pending> = self.pending.drain(split..).collect();
        let (mut a, mut b) = (tail.into_iter().peekable(), new.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => {
                    if x <= y {
                        a.next()
                    } else {
                        b.next()
                    }
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            self.pending.extend(next);
        }
    }

    fn drain(&mut self, frontier: i64, out: &mut Vec<Alert>) {
        let mut current: Option<(u64, Arc<Cols>)> = None;
        while let Some(p) = self.pending.front().copied() {
            if p.time > frontier {
                break;
            }
            self.pending.pop_front();
            let cols = match &current {
                Some((b, c)) if *b == p.batch => c.clone(),
                _ => {
                    let c = self.held[(p.batch - self.first_held) as usize].cols.clone();
                    current = Some((p.batch, c.clone()));
                    c
                }
            };
            let ev = cols.ev(p.row as usize);
            self.process(&ev, out);
            self.held[(p.batch - self.first_held) as usize].remaining -= 1;
        }
        while self.held.front().is_some_and(|h| h.remaining == 0) {
            self.held.pop_front();
            self.first_held += 1;
        }
    }

    /// The identity key of a row: its actor, or the service account its Vault entity is
    /// linked to.
    fn key_for(&mut self, ev: &Ev<'_>) -> u64 {
        let key = hash_str(ev.actor);
        if !self.cfg.identities.link_vault_entities || !ev.source.is_vault() {
            return key;
        }
        let Some(eid) = ev.actor_id else { return key };
        let eh = hash_str(eid);
        if ev.actor_type == "service_account" {
            if self.entities.get(&eh) != Some(&key) {
                self.entities.insert(eh, key);
                if let Some(&i) = self.by_key.get(&key) {
                    if let Some(id) = self.slots[i as usize].as_mut() {
                        id.entity = eh;
                    }
                }
            }
            return key;
        }
        match self.entities.get(&eh) {
            Some(&k) if self.by_key.contains_key(&k) => k,
            _ => key,
        }
    }

    fn process(&mut self, ev: &Ev<'_>, out: &mut Vec<Alert>) {
        self.stats.rows += 1;
        if ev.time < self.processed {
            self.stats.late += 1;
        } else {
            self.advance(ev.time, out);
            self.processed = ev.time;
        }
        if self.start == i64::MIN {
            self.start = ev.time;
        }
        if ev.actor.is_empty() {
            return;
        }
        let key = self.key_for(ev);
        let idx = match self.by_key.get(&key) {
            Some(&i) => i as usize,
            None => self.create(ev, key, out),
        };
        let before = out.len();
        self.observe(idx, ev, out);
        self.stats.alerts += (out.len() - before) as u64;
    }

    fn create(&mut self, ev: &Ev<'_>, key: u64, out: &mut Vec<Alert>) -> usize {
        if self.by_key.len() >= self.cfg.max_identities {
            let n = (self.cfg.max_identities / 10).max(1);
            self.evict_oldest(n);
        }
        let (class, reason) = identity::classify(&self.cfg.identities, ev);
        let mut id = Identity::new(ev.actor, key, ev.time, class, reason);
        if ev.source.is_vault() && ev.actor_type == "service_account" {
            id.entity = ev.actor_id.map_or(0, hash_str);
        }
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(id);
                i as usize
            }
            None => {
                self.slots.push(Some(id));
                self.slots.len() - 1
            }
        };
        self.by_key.insert(key, idx as u32);
        let before = out.len();
        self.new_identity(idx, ev, out);
        self.stats.alerts += (out.len() - before) as u64;
        idx
    }

    fn remove(&mut self, idx: usize) {
        if let Some(id) = self.slots[idx].take() {
            self.by_key.remove(&id.key);
            if id.entity != 0 && self.entities.get(&id.entity) == Some(&id.key) {
                self.entities.remove(&id.entity);
            }
            self.free.push(idx as u32);
            self.stats.evicted += 1;
        }
    }

    /// Drops the `n` longest-idle identities (ties: by key, so eviction is deterministic).
    fn evict_oldest(&mut self, n: usize) {
        let mut v: Vec<(i64, u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|x| (x.last_seen, x.key, i)))
            .collect();
        let n = n.min(v.len());
        if n == 0 {
            return;
        }
        v.select_nth_unstable(n - 1);
        for &(_, _, i) in &v[..n] {
            self.remove(i);
        }
    }

    /// Event-time maintenance when the processed time moves on: closes volume windows
    /// (learning and silences), daily decay and eviction.
    fn advance(&mut self, t: i64, out: &mut Vec<Alert>) {
        let w = t.div_euclid(self.cfg.volume.window_us);
        if self.clock_win == i64::MIN {
            self.clock_win = w;
            self.clock_day = t.div_euclid(stats::US_PER_DAY);
            return;
        }
        if w > self.clock_win {
            self.clock_win = w;
            let before = out.len();
            self.scan_windows(w, out);
            self.stats.alerts += (out.len() - before) as u64;
        }
        let day = t.div_euclid(stats::US_PER_DAY);
        if day > self.clock_day {
            let k = (day - self.clock_day).min(365) as i32;
            for h in &mut self.deploy_hist {
                *h *= 0.97f32.powi(k);
            }
            self.clock_day = day;
            let idle = t.saturating_sub(self.cfg.idle_eviction_us);
            let stale: Vec<usize> = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().filter(|x| x.last_seen < idle).map(|_| i))
                .collect();
            for i in stale {
                self.remove(i);
            }
            let grace = self.cfg.off_hours.rollout_grace_us;
            self.rollouts
                .retain(|_, (rt, _)| *rt >= t - grace - stats::US_PER_HOUR);
            if self.side_ids.len() > 1_000_000 {
                self.side_ids.clear();
            }
            self.prune_novelty(day);
        }
    }

    fn side_id(&mut self, id: &str) -> EvId {
        let (e, inline) = EvId::encode(id);
        if !inline {
            self.side_ids
                .entry(e.hash_key())
                .or_insert_with(|| id.into());
        }
        e
    }

    fn id_text(&self, e: &EvId) -> String {
        e.decode(&self.side_ids)
    }
}
