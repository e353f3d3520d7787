//! The event-time engine: one priority queue holds both the next action of every
//! simulated actor ("tasks") and events already built but not yet due. Popping the
//! earliest item either yields an event or runs a task, which emits events at or after
//! its own time and reschedules itself. Events therefore come out in time order while
//! memory stays proportional to the number of actors plus the few events in flight (open
//! watches, the rest of a burst), not to the length of the run.
//!
//! Ties are broken by insertion order, and every random choice comes from seeded
//! generators, so a run is a pure function of the options.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::format::{
    Ids, K8sReq, US_PER_DAY, US_PER_HOUR, VaultAuth, VaultReq, k8s_event, vault_pair,
};
use super::org::Org;
use super::{GenSource, GeneratedEvent, Label, ScenarioType};

pub(crate) type Rng = Xoshiro256PlusPlus;

pub(crate) fn rng_for(seed: u64, stream: &str) -> Rng {
    Rng::seed_from_u64(seed ^ xxhash_rust::xxh3::xxh3_64(stream.as_bytes()))
}

/// What an actor does next.
#[derive(Debug, Clone)]
pub(crate) enum Task {
    /// Midnight: plan the day's rollouts, human sessions and attacks.
    Day(i64),
    VaultRead(usize),
    VaultRenew(usize),
    VaultLeases(usize),
    SecretPoll(usize),
    ConfigMapWatch(usize),
    LeaderLease(usize),
    Misconfig(usize),
    NodeLease(usize),
    NodeStatus(usize),
    NodeSecretWatch(usize),
    ControlPlaneLease(bool),
    KcmSecretWatch,
    EsoRefresh,
    EsoLogin,
    CertManager,
    ArgoWatch,
    ArgoRepoCreds,
    Prometheus,
    Health(u8),
    VaultHealth,
    KubeletEvents,
    NotFound,
    HumanStart {
        h: usize,
        end: i64,
    },
    HumanCmd {
        h: usize,
        end: i64,
    },
    HumanVault {
        h: usize,
        end: i64,
    },
    Deploy {
        w: usize,
        ci: bool,
    },
    Attack(ScenarioType),
    LiveAttack,
}

enum What {
    Emit(GeneratedEvent),
    Run(Task),
}

struct Item {
    time: i64,
    seq: u64,
    what: What,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(o.time, o.seq))
    }
}

/// The queue and the id counter.
pub(crate) struct Out {
    pub ids: Ids,
    heap: BinaryHeap<Reverse<Item>>,
    seq: u64,
    next_id: u64,
}

/// The actor string the repository's Vault decoder derives from a token.
pub(crate) fn vault_actor(a: Option<&VaultAuth>) -> String {
    let Some(a) = a else {
        return "unauthenticated".into();
    };
    let meta = |k: &str| {
        a.metadata
            .iter()
            .find(|(m, v)| *m == k && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    match (
        meta("service_account_name"),
        meta("service_account_namespace"),
    ) {
        (Some(sa), Some(ns)) => format!("system:serviceaccount:{ns}:{sa}"),
        _ => a.display_name.clone(),
    }
}

fn is_long_running(req: &K8sReq<'_>) -> bool {
    req.verb == "watch"
        || req
            .object
            .as_ref()
            .and_then(|o| o.subresource)
            .is_some_and(|s| matches!(s, "exec" | "attach" | "portforward"))
}

impl Out {
    pub fn new(ids: Ids) -> Self {
        Out {
            ids,
            heap: BinaryHeap::with_capacity(1024),
            seq: 0,
            next_id: 0,
        }
    }

    fn push(&mut self, time: i64, what: What) {
        self.seq += 1;
        self.heap.push(Reverse(Item {
            time,
            seq: self.seq,
            what,
        }));
    }

    pub fn schedule(&mut self, time: i64, task: Task) {
        self.push(time, What::Run(task));
    }

    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.ids.event_uuid(self.next_id)
    }

    /// Emits one Kubernetes request (plus its `ResponseStarted` stage when it is
    /// long-running); returns its auditID.
    pub fn k8s(&mut self, req: &K8sReq<'_>) -> String {
        let id = self.new_id();
        let key = req.impersonated.unwrap_or(req.user).username.clone();
        if is_long_running(req) {
            let t = req.received_us + req.latency_us.min(3_000);
            let bytes = k8s_event(req, &id, "ResponseStarted");
            self.push(t, emit(t, GenSource::Kubernetes, &key, &id, bytes));
        }
        let t = req.received_us + req.latency_us;
        let bytes = k8s_event(req, &id, "ResponseComplete");
        self.push(t, emit(t, GenSource::Kubernetes, &key, &id, bytes));
        id
    }

    /// Emits one Vault request and its response; returns the request id.
    pub fn vault(&mut self, mut req: VaultReq<'_>) -> String {
        req.id = self.new_id();
        let key = vault_actor(req.issued.filter(|_| !req.denied).or(req.auth));
        let (q, p) = vault_pair(&req, &self.ids);
        let t = req.time_us;
        self.push(t, emit(t, GenSource::Vault, &key, &req.id, q));
        let t = req.time_us + req.latency_us;
        self.push(t, emit(t, GenSource::Vault, &key, &req.id, p));
        req.id
    }

    pub fn pending(&self) -> usize {
        self.heap.len()
    }
}

fn emit(t: i64, source: GenSource, key: &str, id: &str, bytes: Vec<u8>) -> What {
    What::Emit(GeneratedEvent {
        time_us: t,
        source,
        key: key.to_string(),
        event_id: id.to_string(),
        bytes,
    })
}

/// Settings the engine needs (derived from the public options).
pub(crate) struct SimCfg {
    pub start_us: i64,
    pub end_us: Option<i64>,
    pub scale: f64,
    pub attacks_per_day: usize,
    pub warmup_days: u32,
    pub deploy_window: (u32, u32),
    /// Live mode: inject an attack this often (simulated time); day plans inject none.
    pub live_attack_every_us: Option<i64>,
}

pub(crate) struct Sim {
    pub org: Org,
    pub out: Out,
    /// Benign traffic.
    pub rng: Rng,
    /// Day plans (rollouts, sessions): independent of the volume scale.
    pub plan_rng: Rng,
    /// Attack schedule and attack content.
    pub atk_rng: Rng,
    pub cfg: SimCfg,
    pub labels: Vec<Label>,
    /// Seed-shuffled order in which scenario types are injected.
    pub attack_order: Vec<ScenarioType>,
    pub attacks_done: u64,
    /// Workloads rolled out on the day being simulated.
    pub deployed_today: Vec<bool>,
    pub now: i64,
}

impl Sim {
    /// Runs queued tasks until an event is due; `None` at the end of the run.
    pub fn next(&mut self) -> Option<GeneratedEvent> {
        loop {
            let Reverse(item) = self.out.heap.pop()?;
            if self.cfg.end_us.is_some_and(|end| item.time >= end) {
                self.out.heap.clear();
                return None;
            }
            self.now = item.time;
            match item.what {
                What::Emit(ev) => return Some(ev),
                What::Run(task) => self.run(task, item.time),
            }
        }
    }

    fn run(&mut self, task: Task, now: i64) {
        match task {
            Task::Day(d) => self.plan_day(d, now),
            Task::VaultRead(i) => self.vault_read(i, now),
            Task::VaultRenew(i) => self.vault_renew(i, now),
            Task::VaultLeases(i) => self.vault_leases(i, now),
            Task::SecretPoll(i) => self.secret_poll(i, now),
            Task::ConfigMapWatch(i) => self.configmap_watch(i, now),
            Task::LeaderLease(i) => self.leader_lease(i, now),
            Task::Misconfig(i) => self.misconfig(i, now),
            Task::NodeLease(n) => self.node_lease(n, now),
            Task::NodeStatus(n) => self.node_status(n, now),
            Task::NodeSecretWatch(n) => self.node_secret_watch(n, now),
            Task::ControlPlaneLease(kcm) => self.control_plane_lease(kcm, now),
            Task::KcmSecretWatch => self.kcm_secret_watch(now),
            Task::EsoRefresh => self.eso_refresh(now),
            Task::EsoLogin => self.eso_login(now),
            Task::CertManager => self.cert_manager(now),
            Task::ArgoWatch => self.argo_watch(now),
            Task::ArgoRepoCreds => self.argo_repo_creds(now),
            Task::Prometheus => self.prometheus(now),
            Task::Health(k) => self.health(k, now),
            Task::VaultHealth => self.vault_health(now),
            Task::KubeletEvents => self.kubelet_events(now),
            Task::NotFound => self.not_found(now),
            Task::HumanStart { h, end } => self.human_start(h, end, now),
            Task::HumanCmd { h, end } => self.human_cmd(h, end, now),
            Task::HumanVault { h, end } => self.human_vault(h, end, now),
            Task::Deploy { w, ci } => self.deploy(w, ci, now),
            Task::Attack(kind) => self.inject(kind, now),
            Task::LiveAttack => {
                let kind = self.attack_order[(self.attacks_done % 12) as usize];
                self.inject(kind, now);
                if let Some(every) = self.cfg.live_attack_every_us {
                    self.out.schedule(now + every, Task::LiveAttack);
                }
            }
        }
    }

    /// Next time of a periodic action: `period` shrunk by the volume scale, with jitter.
    pub fn every(&mut self, now: i64, period_us: i64, jitter: f64) -> i64 {
        let p = period_us as f64 / self.cfg.scale;
        let j = 1.0 + jitter * (self.rng.random::<f64>() * 2.0 - 1.0);
        now + ((p * j) as i64).max(1_000)
    }

    /// Next arrival of a Poisson process with `per_hour` events (scaled).
    pub fn poisson(&mut self, now: i64, per_hour: f64) -> i64 {
        now + exp_gap(&mut self.rng, per_hour * self.cfg.scale)
    }
}

/// Exponential gap (µs) for a rate per hour; a very low rate waits at most a day.
pub(crate) fn exp_gap(rng: &mut Rng, per_hour: f64) -> i64 {
    let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    if per_hour <= 0.0 {
        return US_PER_DAY;
    }
    let g = -u.ln() / per_hour * US_PER_HOUR as f64;
    (g as i64).clamp(1_000, US_PER_DAY)
}

/// Day number (since 1970-01-01) of a time.
pub(crate) fn day_of(t: i64) -> i64 {
    t.div_euclid(US_PER_DAY)
}

/// 0 = Monday … 6 = Sunday.
pub(crate) fn weekday(day: i64) -> i64 {
    (day + 3).rem_euclid(7)
}

/// Hour of day (fractional) of a time.
pub(crate) fn hour_of(t: i64) -> f64 {
    t.rem_euclid(US_PER_DAY) as f64 / US_PER_HOUR as f64
}

/// Relative activity of user-driven traffic at `t` (1.0 at the weekday peak, 14:00 UTC):
/// a floor of background load plus a daytime bump, lower on weekends.
pub(crate) fn activity(t: i64) -> f64 {
    let h = hour_of(t);
    let bump = (-(h - 14.0).powi(2) / (2.0 * 3.5 * 3.5)).exp();
    let bump = if weekday(day_of(t)) >= 5 {
        bump * 0.4
    } else {
        bump
    };
    0.2 + 0.8 * bump
}
