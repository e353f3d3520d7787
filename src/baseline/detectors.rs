//! The five detectors, run on each row in event-time order, and the alerts they write.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::config::{Dimension, Kind};
use super::identity::{
    Class, ClassReason, Counter, Distinct, MAX_SUSPECTS, Suspect, Volume, ev_flag,
};
use super::row::{Ev, Src};
use super::stats::{self, Model, US_PER_DAY, US_PER_HOUR, bucket, bucket_name, score_of};
use super::{Alert, Baselines, hash_str};
use crate::detect::alert::alert_id;
use crate::normalize::format_time_us;

const MAX_EVIDENCE: usize = 8;

/// What a detector found; [`Baselines::emit`] turns it into an [`Alert`].
struct Draft {
    detector: &'static str,
    title: String,
    time: i64,
    window: (i64, i64),
    key: String,
    score: f64,
    resources: Vec<String>,
    evidence_mask: u8,
    current: Option<String>,
    source: Option<String>,
    observed: Value,
    baseline: Value,
    probability: Option<f64>,
    reason: String,
}

fn dur(us: i64) -> String {
    humantime::format_duration(Duration::from_micros(us.max(0) as u64)).to_string()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The Vault path with its namespace and kv-v2 `data/`/`metadata/` segment removed, as
/// (namespace prefix, mount, rest).
fn vault_parts<'a>(ev: &Ev<'a>, path: &'a str) -> (&'a str, &'a str, &'a str) {
    let (ns, p) = match ev.resource_namespace {
        Some(ns) if !ns.is_empty() && path.starts_with(ns) => path.split_at(ns.len()),
        _ => ("", path),
    };
    let (mount, rest) = p.split_once('/').unwrap_or((p, ""));
    let rest = rest
        .strip_prefix("data/")
        .or_else(|| rest.strip_prefix("metadata/"))
        .or_else(|| (rest == "data" || rest == "metadata").then_some(""))
        .unwrap_or(rest);
    (ns, mount, rest)
}

/// Lowercased user-agent family: the product name before the first `/` or ` (`.
fn ua_family(ua: &str) -> &str {
    let end = ua.find(['/', '(']).unwrap_or(ua.len());
    let f = ua[..end].trim();
    if f.is_empty() { ua.trim() } else { f }
}

/// Hashes a value given in parts: each part's one-shot xxh3 seeds the next (a streaming
/// `Xxh3` costs more to set up than these short values take to hash).
struct Chain(u64);

impl Chain {
    fn update(&mut self, b: &[u8]) {
        self.0 = xxh3_64_with_seed(b, self.0);
    }
    fn digest(&self) -> u64 {
        self.0
    }
}

fn hash_lower(h: &mut Chain, s: &str) {
    let mut buf = [0u8; 64];
    for chunk in s.as_bytes().chunks(64) {
        for (i, c) in chunk.iter().enumerate() {
            buf[i] = c.to_ascii_lowercase();
        }
        h.update(&buf[..chunk.len()]);
    }
}

/// The network of an address: a configured collapse range, or the address masked to
/// the configured prefix.
enum Net {
    Collapsed(usize),
    V4(u32, u8),
    V6(u128, u8),
}

impl Baselines {
    fn network(&self, ip: &str) -> Option<Net> {
        let addr: IpAddr = ip.parse().ok()?;
        let n = &self.cfg.networks;
        if let Some(i) = n.collapse.iter().position(|c| c.contains(&addr)) {
            return Some(Net::Collapsed(i));
        }
        Some(match addr {
            IpAddr::V4(a) => {
                let p = n.ipv4_prefix;
                let m = if p == 0 {
                    0
                } else {
                    u32::MAX << (32 - p as u32)
                };
                Net::V4(u32::from(a) & m, p)
            }
            IpAddr::V6(a) => {
                let p = n.ipv6_prefix;
                let m = if p == 0 {
                    0
                } else {
                    u128::MAX << (128 - p as u32)
                };
                Net::V6(u128::from(a) & m, p)
            }
        })
    }

    fn net_text(&self, n: &Net) -> String {
        match n {
            Net::Collapsed(i) => self.cfg.networks.collapse[*i].to_string(),
            Net::V4(a, p) => format!("{}/{p}", std::net::Ipv4Addr::from(*a)),
            Net::V6(a, p) => format!("{}/{p}", std::net::Ipv6Addr::from(*a)),
        }
    }

    /// (hash, value text when `text`) of a first-seen dimension's value for a row.
    fn dim_value(&self, d: Dimension, ev: &Ev<'_>, text: bool) -> Option<(u64, String)> {
        let mut h = Chain(d as u64 + 1);
        let mut out = String::new();
        match d {
            Dimension::SecretPath => {
                if !ev.secret_access {
                    return None;
                }
                let path = ev.resource_path?;
                if ev.source.is_vault() {
                    let (ns, mount, rest) = vault_parts(ev, path);
                    for p in [ns, mount, "/", rest] {
                        h.update(p.as_bytes());
                    }
                    if text {
                        out = format!("{ns}{mount}/{rest}");
                    }
                } else {
                    h.update(path.as_bytes());
                    if text {
                        out = path.to_string();
                    }
                }
            }
            Dimension::SecretPrefix => {
                if !ev.secret_access {
                    return None;
                }
                if ev.source.is_vault() {
                    let (ns, mount, rest) = vault_parts(ev, ev.resource_path?);
                    let depth = self.cfg.first_seen.vault_prefix_depth;
                    let cut = rest
                        .match_indices('/')
                        .nth(depth - 1)
                        .map_or(rest.len(), |(i, _)| i);
                    let pre = &rest[..cut];
                    for p in [ns, mount, "/", pre] {
                        h.update(p.as_bytes());
                    }
                    if text {
                        out = format!("{ns}{mount}/{pre}");
                    }
                } else {
                    let ns = ev.resource_namespace.unwrap_or("");
                    h.update(b"ns:");
                    h.update(ns.as_bytes());
                    if text {
                        out = if ns.is_empty() {
                            "(cluster-scoped)".into()
                        } else {
                            format!("namespace {ns}")
                        };
                    }
                }
            }
            Dimension::Network => {
                let n = self.network(ev.src_ip?)?;
                match &n {
                    Net::Collapsed(i) => h.update(&(*i as u64).to_le_bytes()),
                    Net::V4(a, _) => h.update(&a.to_le_bytes()),
                    Net::V6(a, _) => h.update(&a.to_le_bytes()),
                }
                if text {
                    out = self.net_text(&n);
                }
            }
            Dimension::UserAgent => {
                let f = ua_family(ev.user_agent?);
                hash_lower(&mut h, f);
                if text {
                    out = f.to_ascii_lowercase();
                }
            }
            Dimension::AuthMethod => {
                let a = ev.auth_method?;
                h.update(a.as_bytes());
                if text {
                    out = a.to_string();
                }
            }
            Dimension::Operation => {
                // action on a resource kind: `create pods`, `connect pods/exec`,
                // `update sys/audit`, `read kv`
                let target = if ev.source.is_vault() {
                    match ev.resource_path.unwrap_or("") {
                        p if p.starts_with("sys/") || p.starts_with("auth/") => {
                            let mut it = p.splitn(3, '/');
                            let (a, b) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
                            h.update(a.as_bytes());
                            h.update(b"/");
                            h.update(b.as_bytes());
                            if text {
                                out = format!("{} {a}/{b}", ev.action);
                            }
                            ""
                        }
                        p => ev
                            .resource_type
                            .unwrap_or_else(|| p.split('/').next().unwrap_or("")),
                    }
                } else {
                    ev.resource_type.unwrap_or("")
                };
                h.update(ev.action.as_bytes());
                h.update(b" ");
                h.update(target.as_bytes());
                if let Some(sub) = ev.subresource {
                    h.update(b"/");
                    h.update(sub.as_bytes());
                }
                if text && out.is_empty() {
                    out = match ev.subresource {
                        Some(sub) => format!("{} {target}/{sub}", ev.action),
                        None => format!("{} {target}", ev.action),
                    };
                }
            }
            Dimension::Identity => return None,
        }
        let v = h.digest();
        // top 3 bits: the dimension (items sort by dimension; pruning can count them)
        Some((((d as u64) << 61) | (v >> 3), out))
    }

    // ------------------------------------------------------------ per row

    pub(super) fn observe(&mut self, idx: usize, ev: &Ev<'_>, out: &mut Vec<Alert>) {
        let min_days = self.cfg.identities.min_active_days;
        self.observe_rollout(idx, ev);
        let expected = self.expected(idx, ev);
        let is_denied = self.cfg.denied.outcomes.iter().any(|o| o == ev.outcome);
        let mut flags = 0u8;
        if ev.secret_access {
            flags |= ev_flag::SECRET;
            if matches!(ev.action, "read" | "list" | "watch") {
                flags |= ev_flag::SECRET_READ;
            }
        }
        if is_denied {
            flags |= ev_flag::DENIED;
        }
        if ev.action == "login" {
            flags |= ev_flag::LOGIN;
        }
        let e = if flags != 0 {
            Some(self.side_id(ev.event_id))
        } else {
            None
        };
        let learning_us = self.cfg.first_seen.learning_us;
        let reclass = self.cfg.identities.reclassify_while_learning;
        {
            let id = self.slots[idx].as_mut().expect("live identity");
            if ev.time.div_euclid(US_PER_DAY) > id.last_seen.div_euclid(US_PER_DAY) {
                id.active_days = id.active_days.saturating_add(1);
            }
            id.last_seen = id.last_seen.max(ev.time);
            if let Some(e) = e {
                id.evidence.get_or_insert_default().push(e, flags);
            }
            // cluster-wide list/watch loops while learning: a controller
            if reclass
                && id.class == Class::Workload
                && !id.learned(ev.time, learning_us, min_days)
                && ev.source == Src::Kubernetes
                && matches!(ev.action, "list" | "watch")
                && ev.resource_namespace.is_none()
                && ev.outcome == "success"
            {
                id.cluster_loops = id.cluster_loops.saturating_add(1);
                if id.cluster_loops >= 20 {
                    id.class = Class::Controller;
                    id.class_reason = ClassReason::ClusterWideLoops;
                }
            }
        }
        // the secret path's hash serves first-seen and breadth
        let secret_path = self
            .dim_value(Dimension::SecretPath, ev, false)
            .map(|x| x.0);
        // right after its own rollout a workload may start using a new secret of its own
        // namespace or a new client: learned without an alert
        let quiet = if expected {
            let id = self.slots[idx].as_ref().expect("live identity");
            matches!(id.class, Class::Workload | Class::Ci)
        } else {
            false
        };
        let own_secret = quiet && self.own_secret(idx, ev);
        self.first_seen(idx, ev, secret_path, (quiet, own_secret), out);
        self.volume(idx, ev, expected, out);
        self.breadth(idx, ev, expected, secret_path, out);
        if is_denied {
            self.denied(idx, ev, out);
        }
        self.off_hours(idx, ev, expected, out);
    }

    /// Rollouts (spec changes of deployments/statefulsets/daemonsets by CI, controllers
    /// or people) and pod restarts (pods created by controllers), per namespace.
    fn observe_rollout(&mut self, idx: usize, ev: &Ev<'_>) {
        let min_days = self.cfg.identities.min_active_days;
        if ev.source != Src::Kubernetes || ev.outcome != "success" || ev.subresource.is_some() {
            return;
        }
        let Some(ns) = ev.resource_namespace else {
            return;
        };
        let rt = ev.resource_type.unwrap_or("");
        let spec = matches!(rt, "deployments" | "statefulsets" | "daemonsets")
            && matches!(ev.action, "update" | "create");
        let pods = rt == "pods" && ev.action == "create";
        if !spec && !pods {
            return;
        }
        let learning_us = self.cfg.first_seen.learning_us;
        let reclass = self.cfg.identities.reclassify_while_learning;
        let id = self.slots[idx].as_mut().expect("live identity");
        if spec
            && id.class == Class::Workload
            && reclass
            && !id.learned(ev.time, learning_us, min_days)
        {
            id.rollouts = id.rollouts.saturating_add(1);
            if id.rollouts >= 2 {
                id.class = Class::Ci;
                id.class_reason = ClassReason::Rollouts;
            }
        }
        let class = id.class;
        let rollout = spec && matches!(class, Class::Ci | Class::Controller | Class::Human);
        let restart = pods && class == Class::Controller;
        if rollout || restart {
            let e = self.side_id(ev.event_id);
            self.rollouts.insert(hash_str(ns), (ev.time, e));
        }
        if rollout {
            self.deploy_hist[bucket(ev.time)] += 1.0;
        }
    }

    /// The rollout that makes this row expected, if any: one in the identity's own
    /// namespace (workloads, CI) or in the namespace read (nodes, controllers) within
    /// the grace period.
    fn expected_by(&self, idx: usize, ev: &Ev<'_>) -> Option<(i64, String)> {
        let grace = self.cfg.off_hours.rollout_grace_us;
        if grace <= 0 || self.rollouts.is_empty() {
            return None;
        }
        let id = self.slots[idx].as_ref()?;
        let nsk = match id.class {
            Class::Workload | Class::Ci => id.ns_key,
            Class::Node | Class::Controller => ev.resource_namespace.map_or(0, hash_str),
            _ => 0,
        };
        if nsk == 0 {
            return None;
        }
        let (rt, e) = self.rollouts.get(&nsk)?;
        (ev.time >= rt - 60_000_000 && ev.time <= rt + grace).then(|| (*rt, self.id_text(e)))
    }

    /// The secret belongs to the identity's own namespace: a Kubernetes secret in its
    /// service-account namespace, or a Vault path whose team prefix is that namespace.
    fn own_secret(&self, idx: usize, ev: &Ev<'_>) -> bool {
        let Some(id) = self.slots[idx].as_ref() else {
            return false;
        };
        let Some(own) = super::identity::sa_namespace(&id.actor) else {
            return false;
        };
        if !ev.secret_access {
            return false;
        }
        if ev.source.is_vault() {
            let Some(path) = ev.resource_path else {
                return false;
            };
            let (_, _, rest) = vault_parts(ev, path);
            rest.split('/').next() == Some(own)
        } else {
            ev.resource_namespace == Some(own)
        }
    }

    fn expected(&self, idx: usize, ev: &Ev<'_>) -> bool {
        self.expected_by(idx, ev).is_some()
    }

    /// Inside a configured or learned deployment window.
    fn in_deploy_window(&self, t: i64) -> bool {
        let oh = &self.cfg.off_hours;
        let day = t.div_euclid(US_PER_DAY);
        let minute = (t.rem_euclid(US_PER_DAY) / 60_000_000) as u32;
        let wd = stats::weekday(day);
        if oh
            .windows
            .iter()
            .any(|w| w.days & (1 << wd) != 0 && minute >= w.start_min && minute < w.end_min)
        {
            return true;
        }
        oh.learn_windows && self.deploy_hist[bucket(t)] as f64 >= oh.min_rollouts.max(0.5)
    }

    fn learned_windows(&self) -> Vec<String> {
        let oh = &self.cfg.off_hours;
        let mut v: Vec<String> = oh
            .windows
            .iter()
            .map(|w| {
                let days: Vec<&str> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| w.days & (1 << i) != 0)
                    .map(|(_, d)| *d)
                    .collect();
                format!(
                    "configured {} {:02}:{:02}-{:02}:{:02}",
                    days.join(","),
                    w.start_min / 60,
                    w.start_min % 60,
                    w.end_min / 60,
                    w.end_min % 60
                )
            })
            .collect();
        if oh.learn_windows {
            for b in 0..48 {
                if self.deploy_hist[b] as f64 >= oh.min_rollouts.max(0.5) {
                    v.push(format!("learned {}", bucket_name(b)));
                }
            }
        }
        v
    }

    // ------------------------------------------------------------ first seen

    pub(super) fn new_identity(&mut self, idx: usize, ev: &Ev<'_>, out: &mut Vec<Alert>) {
        let fs = &self.cfg.first_seen;
        if !fs.enabled || !fs.sources.contains(ev.source) || self.start == i64::MIN {
            return;
        }
        let Some(dc) = fs.dimensions[Dimension::Identity as usize] else {
            return;
        };
        let class = self.slots[idx].as_ref().expect("live identity").class;
        if !dc.classes.contains(class) || ev.time - self.start < fs.learning_us {
            return;
        }
        self.slots[idx].as_mut().expect("live identity").probation = true;
        let w = ev.time.div_euclid(fs.alert_window_us) * fs.alert_window_us;
        let d = Draft {
            detector: "first_seen",
            title: format!("New {} identity {}", class.as_str(), ev.actor),
            time: ev.time,
            window: (w, w + fs.alert_window_us),
            key: "identity".into(),
            score: dc.score,
            resources: ev.resource_path.map(str::to_string).into_iter().collect(),
            evidence_mask: 0,
            current: Some(ev.event_id.to_string()),
            source: Some(ev.source_str.to_string()),
            observed: json!({
                "dimension": "identity",
                "value": ev.actor,
                "actor_type": ev.actor_type,
                "action": ev.action,
                "resource_path": ev.resource_path,
                "source": ev.source_str,
            }),
            baseline: json!({
                "known_identities": self.by_key.len().saturating_sub(1),
                "stream_since": format_time_us(self.start),
                "learning_period": dur(fs.learning_us),
            }),
            probability: None,
            reason: format!(
                "first activity of this {} identity, after {} of stream history",
                class.as_str(),
                dur(ev.time - self.start)
            ),
        };
        out.push(self.emit(idx, d));
    }

    fn first_seen(
        &mut self,
        idx: usize,
        ev: &Ev<'_>,
        secret_path: Option<u64>,
        (after_rollout, own_secret): (bool, bool),
        out: &mut Vec<Alert>,
    ) {
        let min_days = self.cfg.identities.min_active_days;
        let fs = &self.cfg.first_seen;
        if !fs.enabled || !fs.sources.contains(ev.source) {
            return;
        }
        let day = ev.time.div_euclid(US_PER_DAY) as u16;
        let forget_days = (fs.forget_us / US_PER_DAY).clamp(1, 30_000) as u16;
        let max_items = fs.max_items;
        let learning_us = fs.learning_us;
        let (confirm_days, never_confirm) = (fs.confirm_days, fs.never_confirm);
        let win = ev.time.div_euclid(fs.alert_window_us) as u32;
        let class = self.slots[idx].as_ref().expect("live identity").class;
        for d in &Dimension::ALL[..Dimension::VALUES] {
            let d = *d;
            let di = d as usize;
            // only what can alert for this class is learned (memory)
            let Some(dc) = self.cfg.first_seen.dimensions[di] else {
                continue;
            };
            if !dc.classes.contains(class) {
                continue;
            }
            let h = if d == Dimension::SecretPath {
                secret_path
            } else {
                self.dim_value(d, ev, false).map(|x| x.0)
            };
            let Some(h) = h else {
                continue;
            };
            let id = self.slots[idx].as_mut().expect("live identity");
            // on probation (a sensitive identity that appeared after the stream's own
            // learning period) there is no quiet learning
            let learned = id.probation || id.learned(ev.time, learning_us, min_days);
            let id_class = id.class;
            let nv = &mut id.novelty;
            if nv.last_raw_day != day {
                nv.last_raw_day = day;
                nv.last_raw = [0; Dimension::VALUES];
            }
            if nv.last_raw[di] == h as u32 && h as u32 != 0 {
                continue;
            }
            let mut novel = false;
            let mut forgotten_age = None;
            let mut repeat = None;
            match nv.find(h) {
                Ok((i, last)) => {
                    // a late row may be from the day before the item was last seen
                    let age = day.wrapping_sub(last) as i16;
                    if age > forget_days as i16 {
                        novel = true;
                        forgotten_age = Some(age);
                    }
                    if age > 0 {
                        nv.touch(i, day);
                        // a suspect value used on another day alerts again
                        if let Some(sus) = id.suspects.as_mut() {
                            if let Some(k) = sus.iter().position(|x| x.h == h) {
                                let x = &mut sus[k];
                                x.days = x.days.saturating_add(1);
                                x.last_day = day;
                                if never_confirm.contains(id_class) || x.days <= confirm_days {
                                    novel = true;
                                    repeat = Some(*x);
                                } else {
                                    sus.remove(k);
                                }
                            }
                        }
                    }
                }
                Err(pos) => {
                    if nv.saturated & (1 << di) != 0 {
                        continue;
                    }
                    if nv.counts[di] >= max_items {
                        nv.saturated |= 1 << di;
                        continue;
                    }
                    nv.items.reserve_exact(1);
                    nv.insert(pos, h, day);
                    nv.counts[di] += 1;
                    novel = true;
                }
            }
            nv.last_raw[di] = h as u32;
            if !novel {
                continue;
            }
            let expected = match d {
                Dimension::SecretPath | Dimension::SecretPrefix => own_secret,
                Dimension::UserAgent => after_rollout,
                _ => false,
            };
            if !dc.classes.contains(id_class)
                || expected
                || !learned
                || nv.saturated & (1 << di) != 0
                || nv.alerted[di] == win.wrapping_add(1)
            {
                continue;
            }
            nv.alerted[di] = win.wrapping_add(1);
            let known = nv.counts[di];
            if repeat.is_none() && forgotten_age.is_none() {
                let sus = id.suspects.get_or_insert_default();
                if sus.len() < MAX_SUSPECTS {
                    sus.push(Suspect {
                        h,
                        first_day: day,
                        last_day: day,
                        days: 1,
                    });
                }
            }
            let first_seen = id.first_seen;
            let class = id.class;
            let value = self.dim_value(d, ev, true).map(|x| x.1).unwrap_or_default();
            let aw = self.cfg.first_seen.alert_window_us;
            let ws = ev.time.div_euclid(aw) * aw;
            let reason = match (repeat, forgotten_age) {
                (Some(x), _) => format!(
                    "{} `{value}` first seen {} days ago and used on {} day(s) since; not part of this identity's baseline yet{}",
                    d.as_str(),
                    day.wrapping_sub(x.first_day),
                    x.days,
                    if never_confirm.contains(class) {
                        format!(" (never, for class {})", class.as_str())
                    } else {
                        format!(" (after {confirm_days} days of use)")
                    }
                ),
                (None, Some(a)) => format!(
                    "{} `{value}` not used by this identity for {a} days (forget period {})",
                    d.as_str(),
                    dur(self.cfg.first_seen.forget_us)
                ),
                (None, None) => format!(
                    "{} `{value}` never seen for this identity since {} ({} known)",
                    d.as_str(),
                    format_time_us(first_seen),
                    known.saturating_sub(1)
                ),
            };
            let draft = Draft {
                detector: "first_seen",
                title: format!(
                    "{} {} for {} {}: {value}",
                    if repeat.is_some() {
                        "Unconfirmed"
                    } else {
                        "New"
                    },
                    d.as_str().replace('_', " "),
                    class.as_str(),
                    ev.actor
                ),
                time: ev.time,
                window: (ws, ws + aw),
                key: d.as_str().to_string(),
                score: dc.score,
                resources: ev.resource_path.map(str::to_string).into_iter().collect(),
                evidence_mask: 0,
                current: Some(ev.event_id.to_string()),
                source: Some(ev.source_str.to_string()),
                observed: json!({
                    "dimension": d.as_str(),
                    "value": value,
                    "action": ev.action,
                    "resource_path": ev.resource_path,
                    "src_ip": ev.src_ip,
                    "user_agent": ev.user_agent,
                    "source": ev.source_str,
                }),
                baseline: json!({
                    "known_values": known.saturating_sub(1),
                    "suspect_days": repeat.map(|x| x.days),
                    "identity_first_seen": format_time_us(first_seen),
                    "learning_period": dur(learning_us),
                    "forget_period": dur(self.cfg.first_seen.forget_us),
                }),
                probability: None,
                reason,
            };
            out.push(self.emit(idx, draft));
        }
    }

    /// Daily: forgets first-seen items unused for the forget period.
    pub(super) fn prune_novelty(&mut self, day: i64) {
        let forget_days = (self.cfg.first_seen.forget_us / US_PER_DAY).clamp(1, 30_000) as u16;
        let today = day as u16;
        for id in self.slots.iter_mut().flatten() {
            if let Some(s) = id.suspects.as_mut() {
                s.retain(|x| today.wrapping_sub(x.last_day) <= forget_days);
                if s.is_empty() {
                    id.suspects = None;
                }
            }
            let nv = &mut id.novelty;
            let before = nv.items.len();
            nv.items
                .retain(|x| today.wrapping_sub((x & 0xffff) as u16) <= forget_days);
            if nv.items.len() != before {
                nv.counts = [0; Dimension::VALUES];
                for x in &nv.items {
                    let d = (x >> 61) as usize;
                    if d < Dimension::VALUES {
                        nv.counts[d] += 1;
                    }
                }
                nv.items.shrink_to_fit();
            }
        }
    }

    // ------------------------------------------------------------ volume

    fn volume(&mut self, idx: usize, ev: &Ev<'_>, expected: bool, out: &mut Vec<Alert>) {
        let min_days = self.cfg.identities.min_active_days;
        let vc = &self.cfg.volume;
        if !vc.enabled
            || !ev.secret_access
            || !vc.sources.contains(ev.source)
            || !vc.actions.iter().any(|a| a == ev.action)
        {
            return;
        }
        let id = self.slots[idx].as_mut().expect("live identity");
        let Some(cc) = vc.classes.get(id.class).copied() else {
            return;
        };
        let w = ev.time.div_euclid(vc.window_us);
        let learned = id.learned(ev.time, vc.learning_us, min_days);
        let vol = id.volume.get_or_insert_with(|| Volume {
            win: w,
            ..Default::default()
        });
        if w < vol.win {
            return; // late: that window is closed
        }
        if w > vol.win {
            close_volume(vol, vc.window_us, w);
        }
        // reads right after a rollout count against silence, not towards a spike
        vol.all += 1;
        if expected {
            return;
        }
        vol.count += 1;
        if vol.fired || !learned {
            return;
        }
        let b = bucket(w * vc.window_us);
        if vol.gate == 0 {
            vol.gate = match vol.seasonal.predict(b, vc.min_samples) {
                Some(p) => (p.mean + cc.min_excess).ceil().max(1.0) as u32,
                None => u32::MAX,
            };
        }
        if vol.count < vol.gate {
            return;
        }
        let Some(pred) = vol.seasonal.predict(b, vc.min_samples) else {
            return;
        };
        let model = Model::new(pred.mean, pred.var, vc.dispersion);
        if vol.thr == 0 {
            vol.thr = model
                .threshold(cc.p_value)
                .min(u32::MAX as u64)
                .max(vol.gate as u64) as u32;
        }
        if vol.count < vol.thr {
            return;
        }
        vol.fired = true;
        let count = vol.count;
        let p = model.sf_ge(count as u64);
        let class = id.class;
        let first_seen = id.first_seen;
        let ws = w * vc.window_us;
        let draft = Draft {
            detector: "volume",
            title: format!(
                "Unusual secret read volume for {} {}: {count} in {}",
                class.as_str(),
                ev.actor,
                dur(vc.window_us)
            ),
            time: ev.time,
            window: (ws, ws + vc.window_us),
            key: "spike".into(),
            score: score_of(p),
            resources: ev.resource_path.map(str::to_string).into_iter().collect(),
            evidence_mask: ev_flag::SECRET_READ,
            current: Some(ev.event_id.to_string()),
            source: Some(ev.source_str.to_string()),
            observed: json!({"secret_reads": count, "so_far": true}),
            baseline: volume_baseline(&pred, &model, b, vc, first_seen, vol.thr),
            probability: Some(p),
            reason: format!(
                "{count} secret reads so far in this {} window; {} usually {:.1} (p99 {}), P(X ≥ {count}) = {p:.2e} under {}",
                dur(vc.window_us),
                bucket_name(pred.fallback.unwrap_or(b)),
                pred.mean,
                model.quantile(0.99),
                model.name()
            ),
        };
        out.push(self.emit(idx, draft));
    }

    /// At each volume window boundary: closes every identity's open window, learning its
    /// count, and reports silences.
    pub(super) fn scan_windows(&mut self, w: i64, out: &mut Vec<Alert>) {
        let min_days = self.cfg.identities.min_active_days;
        let cfg = self.cfg.clone();
        let vc = &cfg.volume;
        let sil = &vc.silence;
        let mut silent: Vec<(usize, i64, u32, stats::Prediction)> = Vec::new();
        let now = w * vc.window_us;
        let bw = cfg.breadth.window_us;
        // evidence backs alerts of open windows only
        let keep_evidence = bw.max(cfg.denied.window_us).max(vc.window_us);
        for (idx, slot) in self.slots.iter_mut().enumerate() {
            let Some(id) = slot.as_mut() else { continue };
            // memory: the distinct set of a closed breadth window, stale evidence
            if let Some(c) = id.breadth.as_mut() {
                if (c.win + 1) * bw <= now {
                    c.distinct = None;
                }
            }
            if id.last_seen < now - keep_evidence {
                id.evidence = None;
            }
            let learned = id.learned(
                id.volume.as_ref().map_or(0, |v| v.win * vc.window_us),
                vc.learning_us,
                min_days,
            );
            let Some(vol) = id.volume.as_mut() else {
                continue;
            };
            if vol.win >= w {
                continue;
            }
            let closed = vol.win;
            let ws = closed * vc.window_us;
            if sil.enabled
                && sil.classes.contains(id.class)
                && vc.classes.get(id.class).is_some()
                && learned
            {
                let b = bucket(ws);
                match vol.seasonal.predict(b, vc.min_samples) {
                    Some(p) if p.fallback.is_none() && p.mean >= sil.min_expected => {
                        let m = Model::new(p.mean, p.var, sil.dispersion);
                        if m.cdf_le(vol.all as u64) < sil.p_value {
                            if !vol.silent {
                                vol.silent = true;
                                silent.push((idx, closed, vol.all, p));
                            }
                        } else {
                            vol.silent = false;
                        }
                    }
                    _ => {}
                }
            }
            close_volume(vol, vc.window_us, w);
        }
        for (idx, closed, count, p) in silent {
            let id = self.slots[idx].as_ref().expect("live identity");
            let ws = closed * vc.window_us;
            let b = bucket(ws);
            let model = Model::new(p.mean, p.var, vc.silence.dispersion);
            let prob = model.cdf_le(count as u64);
            let draft = Draft {
                detector: "volume",
                title: format!(
                    "Secret reads of {} {} went silent: {count} in {}",
                    id.class.as_str(),
                    id.actor,
                    dur(vc.window_us)
                ),
                time: ws + vc.window_us,
                window: (ws, ws + vc.window_us),
                key: "silence".into(),
                score: score_of(prob),
                resources: vec![],
                evidence_mask: ev_flag::SECRET_READ,
                current: None,
                source: None,
                observed: json!({"secret_reads": count}),
                baseline: volume_baseline(&p, &model, b, vc, id.first_seen, 0),
                probability: Some(prob),
                reason: format!(
                    "{count} secret reads in a {} window where {} usually has {:.1}; P(X ≤ {count}) = {prob:.2e} under {}",
                    dur(vc.window_us),
                    bucket_name(b),
                    p.mean,
                    model.name()
                ),
            };
            out.push(self.emit(idx, draft));
        }
    }

    // ------------------------------------------------------------ breadth

    fn breadth(
        &mut self,
        idx: usize,
        ev: &Ev<'_>,
        expected: bool,
        secret_path: Option<u64>,
        out: &mut Vec<Alert>,
    ) {
        let min_days = self.cfg.identities.min_active_days;
        let bc = &self.cfg.breadth;
        if !bc.enabled || !ev.secret_access || !bc.sources.contains(ev.source) || expected {
            return;
        }
        let class = self.slots[idx].as_ref().expect("live identity").class;
        let Some(cc) = bc.classes.get(class).copied() else {
            return;
        };
        let Some(h) = secret_path else {
            return;
        };
        let (window_us, learning_us, disp) = (bc.window_us, bc.learning_us, bc.dispersion);
        let id = self.slots[idx].as_mut().expect("live identity");
        let w = ev.time.div_euclid(window_us);
        let learned = id.learned(ev.time, learning_us, min_days);
        let c = id.breadth.get_or_insert_with(|| Counter {
            win: w,
            ..Default::default()
        });
        if w < c.win {
            return;
        }
        if w > c.win {
            if c.count > 0 {
                c.base.add(c.count as f64);
            }
            c.prev = if w == c.win + 1 { c.count } else { 0 };
            c.win = w;
            c.count = 0;
            c.thr = 0;
            c.fired = false;
            c.distinct = None;
        }
        if !c.distinct.get_or_insert_with(Distinct::default).insert(h) {
            return;
        }
        c.count = c.distinct.as_ref().map_or(0, Distinct::count);
        if c.fired || !learned {
            return;
        }
        let est = sliding(c, ev.time, window_us);
        if est < cc.min as f64 {
            return;
        }
        let model = c.base.model(disp);
        if c.thr == 0 {
            c.thr = model
                .threshold(cc.p_value)
                .max(cc.min as u64)
                .min(u32::MAX as u64) as u32;
        }
        if est < c.thr as f64 {
            return;
        }
        c.fired = true;
        let (count, prev, base, thr) = (c.count, c.prev, c.base, c.thr);
        let first_seen = id.first_seen;
        let estimate = est.round() as u64;
        let p = model.sf_ge(estimate);
        let ws = w * window_us;
        let draft = Draft {
            detector: "breadth",
            title: format!(
                "{} {} accessed {estimate} distinct secrets within {}",
                cap(class.as_str()),
                ev.actor,
                dur(window_us)
            ),
            time: ev.time,
            window: (ws, ws + window_us),
            key: "distinct_secrets".into(),
            score: score_of(p),
            resources: ev.resource_path.map(str::to_string).into_iter().collect(),
            evidence_mask: ev_flag::SECRET,
            current: Some(ev.event_id.to_string()),
            source: Some(ev.source_str.to_string()),
            observed: json!({
                "distinct_secrets": count,
                "previous_window": prev,
                "sliding_estimate": round3(est),
                "exact": count <= 32,
            }),
            baseline: json!({
                "mean_distinct_per_active_window": round3(base.mean as f64),
                "variance": round3(base.var as f64),
                "windows_learned": base.n,
                "quantile_99": model.quantile(0.99),
                "threshold": thr,
                "window": dur(window_us),
                "learning_period": dur(learning_us),
                "identity_first_seen": format_time_us(first_seen),
                "distribution": model.name(),
            }),
            probability: Some(p),
            reason: format!(
                "{estimate} distinct secrets in the last {} (usually {:.1} per active window, p99 {}); P(X ≥ {estimate}) = {p:.2e}",
                dur(window_us),
                base.mean,
                model.quantile(0.99)
            ),
        };
        out.push(self.emit(idx, draft));
    }

    // ------------------------------------------------------------ denied

    fn denied(&mut self, idx: usize, ev: &Ev<'_>, out: &mut Vec<Alert>) {
        let min_days = self.cfg.identities.min_active_days;
        let dc = &self.cfg.denied;
        if !dc.enabled || !dc.sources.contains(ev.source) {
            return;
        }
        let class = self.slots[idx].as_ref().expect("live identity").class;
        let Some(cc) = dc.classes.get(class).copied() else {
            return;
        };
        let (window_us, learning_us, disp) = (dc.window_us, dc.learning_us, dc.dispersion);
        let id = self.slots[idx].as_mut().expect("live identity");
        let w = ev.time.div_euclid(window_us);
        let learned = id.learned(ev.time, learning_us, min_days);
        let c = id.denied.get_or_insert_with(|| {
            Box::new(Counter {
                win: w,
                ..Default::default()
            })
        });
        if w < c.win {
            return;
        }
        if w > c.win {
            c.base.add(c.count as f64);
            c.base.add_zeros((w - c.win - 1) as u64);
            c.prev = if w == c.win + 1 { c.count } else { 0 };
            c.win = w;
            c.count = 0;
            c.thr = 0;
            c.fired = false;
        }
        c.count += 1;
        if c.fired || !learned {
            return;
        }
        let est = sliding(c, ev.time, window_us);
        if est < cc.min as f64 {
            return;
        }
        let model = c.base.model(disp);
        if c.thr == 0 {
            c.thr = model
                .threshold(cc.p_value)
                .max(cc.min as u64)
                .min(u32::MAX as u64) as u32;
        }
        if est < c.thr as f64 {
            return;
        }
        c.fired = true;
        let (count, prev, base, thr) = (c.count, c.prev, c.base, c.thr);
        let first_seen = id.first_seen;
        let estimate = est.round() as u64;
        let p = model.sf_ge(estimate);
        let ws = w * window_us;
        let draft = Draft {
            detector: "denied",
            title: format!(
                "Burst of denied requests by {} {}: {estimate} within {}",
                class.as_str(),
                ev.actor,
                dur(window_us)
            ),
            time: ev.time,
            window: (ws, ws + window_us),
            key: "denied".into(),
            score: score_of(p),
            resources: ev.resource_path.map(str::to_string).into_iter().collect(),
            evidence_mask: ev_flag::DENIED,
            current: Some(ev.event_id.to_string()),
            source: Some(ev.source_str.to_string()),
            observed: json!({
                "denied": count,
                "previous_window": prev,
                "sliding_estimate": round3(est),
                "outcome": ev.outcome,
            }),
            baseline: json!({
                "mean_per_window": round3(base.mean as f64),
                "variance": round3(base.var as f64),
                "windows_learned": base.n,
                "quantile_99": model.quantile(0.99),
                "threshold": thr,
                "window": dur(window_us),
                "learning_period": dur(learning_us),
                "identity_first_seen": format_time_us(first_seen),
                "distribution": model.name(),
            }),
            probability: Some(p),
            reason: format!(
                "{estimate} denied requests in the last {} (usually {:.2} per window, p99 {}); P(X ≥ {estimate}) = {p:.2e}",
                dur(window_us),
                base.mean,
                model.quantile(0.99)
            ),
        };
        out.push(self.emit(idx, draft));
    }

    // ------------------------------------------------------------ off hours

    fn off_hours(&mut self, idx: usize, ev: &Ev<'_>, expected: bool, out: &mut Vec<Alert>) {
        let min_days = self.cfg.identities.min_active_days;
        let oc = &self.cfg.off_hours;
        if !oc.enabled || !oc.sources.contains(ev.source) || expected {
            return;
        }
        let kind = if ev.action == "login" {
            Kind::Login
        } else if ev.secret_access && matches!(ev.action, "read" | "list") {
            if ev.source.is_vault() {
                Kind::VaultSecretRead
            } else {
                Kind::K8sSecretRead
            }
        } else {
            return;
        };
        if !oc.kinds[kind as usize] {
            return;
        }
        let (learning_us, min_count) = (oc.learning_us, oc.min_count);
        let hour_abs = ev.time.div_euclid(US_PER_HOUR) as u32;
        let h = (ev.time.rem_euclid(US_PER_DAY) / US_PER_HOUR) as usize;
        if !oc
            .classes
            .contains(self.slots[idx].as_ref().expect("live identity").class)
        {
            return;
        }
        let in_window = self.in_deploy_window(ev.time);
        let id = self.slots[idx].as_mut().expect("live identity");
        let learned = id.learned(ev.time, learning_us, min_days);
        let hours = id.hours.get_or_insert_with(Default::default);
        let row = &mut hours[kind as usize];
        let near = row[(h + 23) % 24] as u32 + row[h] as u32 + row[(h + 1) % 24] as u32;
        let fire = near < min_count && !in_window && learned && id.off_alerted != hour_abs;
        if id.hours_last[kind as usize] != hour_abs {
            row[h] = row[h].saturating_add(1);
            id.hours_last[kind as usize] = hour_abs;
        }
        if !fire {
            return;
        }
        id.off_alerted = hour_abs;
        let first_seen = id.first_seen;
        let class = id.class;
        let usual: Vec<String> = (0..24)
            .filter(|&x| hours[kind as usize][x] as u32 >= 1)
            .map(|x| format!("{x:02}"))
            .collect();
        let (ns_rollout, windows) = (self.last_rollout_text(idx), self.learned_windows());
        let ws = hour_abs as i64 * US_PER_HOUR;
        let draft = Draft {
            detector: "off_hours",
            title: format!(
                "{} by {} {} at {:02}:{:02} UTC, outside deployment windows and not after a rollout",
                kind.as_str().replace('_', " "),
                class.as_str(),
                ev.actor,
                h,
                (ev.time.rem_euclid(US_PER_HOUR) / 60_000_000)
            ),
            time: ev.time,
            window: (ws, ws + US_PER_HOUR),
            key: format!("off_hours:{}", kind.as_str()),
            score: self.cfg.first_seen.dimensions[Dimension::SecretPrefix as usize]
                .map_or(9.0, |d| d.score),
            resources: ev.resource_path.map(str::to_string).into_iter().collect(),
            evidence_mask: ev_flag::SECRET_READ | ev_flag::LOGIN,
            current: Some(ev.event_id.to_string()),
            source: Some(ev.source_str.to_string()),
            observed: json!({
                "kind": kind.as_str(),
                "hour_utc": h,
                "action": ev.action,
                "resource_path": ev.resource_path,
                "source": ev.source_str,
            }),
            baseline: json!({
                "hours_with_this_activity_near": near,
                "min_count": min_count,
                "usual_hours_utc": usual,
                "deployment_windows": windows,
                "last_rollout_of_namespace": ns_rollout,
                "rollout_grace": dur(self.cfg.off_hours.rollout_grace_us),
                "learning_period": dur(learning_us),
                "identity_first_seen": format_time_us(first_seen),
            }),
            probability: None,
            reason: format!(
                "{} at {:02}h UTC: this identity did it outside rollouts in that hour (±1 h) on {near} occasion(s) since {}, the hour is outside the deployment windows, and its namespace had no rollout in the last {}",
                kind.as_str(),
                h,
                format_time_us(first_seen),
                dur(self.cfg.off_hours.rollout_grace_us)
            ),
        };
        out.push(self.emit(idx, draft));
    }

    fn last_rollout_text(&self, idx: usize) -> Value {
        let Some(id) = self.slots[idx].as_ref() else {
            return Value::Null;
        };
        match self.rollouts.get(&id.ns_key) {
            Some((t, e)) if id.ns_key != 0 => {
                json!({"time": format_time_us(*t), "event_id": self.id_text(e)})
            }
            _ => Value::Null,
        }
    }

    // ------------------------------------------------------------ alerts

    fn emit(&self, idx: usize, d: Draft) -> Alert {
        let id = self.slots[idx].as_ref().expect("live identity");
        let detector = format!("baseline:{}", d.detector);
        let mut ids: Vec<String> = d.current.into_iter().collect();
        if d.evidence_mask != 0 {
            if let Some(e) = &id.evidence {
                for x in e.matching(d.evidence_mask) {
                    let s = self.id_text(&x);
                    if !ids.contains(&s) && ids.len() < MAX_EVIDENCE {
                        ids.push(s);
                    }
                }
            }
        }
        let weight = self.cfg.identities.class_weight[id.class as usize];
        let score = d.score * weight;
        let severity = stats::severity(score, &self.cfg.severity);
        let explanation = json!({
            "kind": "baseline",
            "detector": d.detector,
            "identity": {
                "actor": &*id.actor,
                "class": id.class.as_str(),
                "class_reason": id.class_reason.as_str(),
                "first_seen": format_time_us(id.first_seen),
                "linked_vault_entity": id.entity != 0,
            },
            "window": {
                "start": format_time_us(d.window.0),
                "end": format_time_us(d.window.1),
                "length": dur(d.window.1 - d.window.0),
            },
            "observed": d.observed,
            "baseline": d.baseline,
            "probability": d.probability,
            "score": round3(score),
            "reason": d.reason,
            "event_ids": ids,
        });
        Alert {
            id: alert_id(&[&detector, &id.actor, &d.window.0.to_string(), &d.key]),
            time: d.time,
            rule_id: format!("baseline.{}", d.detector),
            title: d.title,
            severity,
            detector,
            actor: Some(id.actor.to_string()),
            source: d.source,
            resources: d.resources,
            window_start: d.window.0,
            window_end: d.window.1,
            event_ids: ids,
            tags: vec![
                "baseline".into(),
                format!("class:{}", id.class.as_str()),
                format!("detector:{}", d.detector),
            ],
            explanation,
        }
    }
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The open window's count plus the previous window's, weighted by how much of it the
/// sliding window still covers.
fn sliding(c: &Counter, t: i64, window_us: i64) -> f64 {
    let frac = (t - c.win * window_us) as f64 / window_us as f64;
    c.count as f64 + c.prev as f64 * (1.0 - frac).clamp(0.0, 1.0)
}

fn close_volume(vol: &mut Volume, window_us: i64, w: i64) {
    vol.seasonal
        .learn(bucket(vol.win * window_us), vol.count as f64);
    vol.win = w;
    vol.count = 0;
    vol.all = 0;
    vol.gate = 0;
    vol.thr = 0;
    vol.fired = false;
}

fn volume_baseline(
    p: &stats::Prediction,
    model: &Model,
    b: usize,
    vc: &super::config::VolumeCfg,
    first_seen: i64,
    thr: u32,
) -> Value {
    json!({
        "bucket": bucket_name(b),
        "used_bucket": bucket_name(p.fallback.unwrap_or(b)),
        "mean": round3(p.mean),
        "variance": round3(p.var),
        "windows_learned": p.samples,
        "quantile_99": model.quantile(0.99),
        "threshold": (thr > 0).then_some(thr),
        "window": dur(vc.window_us),
        "learning_period": dur(vc.learning_us),
        "identity_first_seen": format_time_us(first_seen),
        "distribution": model.name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ua_families() {
        assert_eq!(
            ua_family("kubectl/v1.30.2 (linux/amd64) kubernetes/3968350"),
            "kubectl"
        );
        assert_eq!(
            ua_family("Vault Agent/1.17.2 (+https://x; go1.22.5)"),
            "Vault Agent"
        );
        assert_eq!(ua_family("curl/8.5.0"), "curl");
        assert_eq!(ua_family("Prometheus/2.53.0"), "Prometheus");
        assert_eq!(ua_family("/weird"), "/weird");
    }
}
