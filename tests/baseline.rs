//! Baseline detectors (issue 5): each detector fires on its scenario and stays quiet on
//! the benign look-alike; event-time determinism; snapshot/restore; eviction;
//! explanations. Synthetic rows are built with the normalizer's own builder; the
//! generated-traffic tests use a small org so they stay fast in debug builds.

use std::borrow::Cow;
use std::collections::BTreeSet;

use auditwatch::baseline::eval::generated_batches;
use auditwatch::baseline::{Alert, Baselines, Class, DetectorConfig};
use auditwatch::generate::{GenerateOptions, ScenarioType};
use auditwatch::normalize::{AccessEvent, EventBuilder, Outcome, Provenance, Source};
use datafusion::arrow::array::RecordBatch;

const S: i64 = 1_000_000;
const MIN: i64 = 60 * S;
const H: i64 = 60 * MIN;
const D: i64 = 24 * H;
/// Monday 2026-11-02 00:00 UTC.
const MON: i64 = 1_793_577_600 * S;

/// One synthetic row.
#[derive(Clone)]
struct R {
    t: i64,
    source: Source,
    actor: String,
    actor_type: &'static str,
    actor_id: Option<String>,
    groups: Vec<String>,
    action: &'static str,
    resource_type: Option<String>,
    path: Option<String>,
    ns: Option<String>,
    subresource: Option<String>,
    secret: bool,
    outcome: Outcome,
    ip: Option<String>,
    ua: Option<String>,
    auth: Option<String>,
    id: String,
    raw: String,
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn uid() -> String {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn sa(ns: &str, name: &str) -> String {
    format!("system:serviceaccount:{ns}:{name}")
}

impl R {
    fn new(t: i64, actor: &str, actor_type: &'static str) -> R {
        R {
            t,
            source: Source::Kubernetes,
            actor: actor.into(),
            actor_type,
            actor_id: None,
            groups: vec![],
            action: "read",
            resource_type: None,
            path: None,
            ns: None,
            subresource: None,
            secret: false,
            outcome: Outcome::Success,
            ip: Some("10.244.3.7".into()),
            ua: Some("payments-api/v1.2.0 (linux/amd64) kubernetes/abc".into()),
            auth: None,
            id: uid(),
            raw: "{}".into(),
        }
    }
    /// A Kubernetes secret get.
    fn k8s_secret(t: i64, actor: &str, ns: &str, name: &str) -> R {
        R {
            resource_type: Some("secrets".into()),
            path: Some(format!("namespaces/{ns}/secrets/{name}")),
            ns: Some(ns.into()),
            secret: true,
            ..R::new(t, actor, "service_account")
        }
    }
    /// A Vault KV read.
    fn vault_read(t: i64, actor: &str, path: &str) -> R {
        R {
            source: Source::Vault,
            resource_type: Some("kv".into()),
            path: Some(path.into()),
            secret: true,
            ua: Some("Vault Agent/1.17.2".into()),
            auth: Some("kubernetes".into()),
            ..R::new(t, actor, "service_account")
        }
    }
    fn vault_login(t: i64, actor: &str) -> R {
        R {
            source: Source::Vault,
            action: "login",
            resource_type: Some("kubernetes".into()),
            path: Some("auth/kubernetes/login".into()),
            ua: Some("Vault Agent/1.17.2".into()),
            auth: Some("kubernetes".into()),
            ..R::new(t, actor, "service_account")
        }
    }
    fn with(mut self, f: impl FnOnce(&mut R)) -> R {
        f(&mut self);
        self
    }
}

fn batch(rows: &[R]) -> RecordBatch {
    let mut b = EventBuilder::with_capacity(rows.len());
    for r in rows {
        let mut e = AccessEvent::new(r.source, r.t, Cow::Borrowed(&r.id), Cow::Borrowed(&r.raw));
        e.stage = Cow::Borrowed(if r.source == Source::Kubernetes {
            "ResponseComplete"
        } else {
            "response"
        });
        e.action = Cow::Borrowed(r.action);
        e.verb = Cow::Borrowed(r.action);
        e.actor = Cow::Borrowed(&r.actor);
        e.actor_type = r.actor_type;
        e.actor_id = r.actor_id.as_deref().map(Cow::Borrowed);
        e.actor_groups = r.groups.iter().map(|g| Cow::Borrowed(g.as_str())).collect();
        e.resource_type = r.resource_type.as_deref().map(Cow::Borrowed);
        e.resource_path = r.path.as_deref().map(Cow::Borrowed);
        e.resource_namespace = r.ns.as_deref().map(Cow::Borrowed);
        e.subresource = r.subresource.as_deref().map(Cow::Borrowed);
        e.secret_access = r.secret;
        e.outcome = r.outcome;
        e.src_ip = r.ip.as_deref().map(Cow::Borrowed);
        e.user_agent = r.ua.as_deref().map(Cow::Borrowed);
        e.auth_method = r.auth.as_deref().map(Cow::Borrowed);
        b.append(&e, &Provenance::default(), 0);
    }
    b.finish().unwrap()
}

/// Feeds rows (sorted by time) in batches of 500 and flushes.
fn run(b: &mut Baselines, mut rows: Vec<R>) -> Vec<Alert> {
    rows.sort_by_key(|r| r.t);
    let mut out = Vec::new();
    for chunk in rows.chunks(500) {
        out.extend(b.evaluate(&batch(chunk)));
    }
    out.extend(b.flush());
    out
}

fn by(alerts: &[Alert], detector: &str) -> Vec<Alert> {
    alerts
        .iter()
        .filter(|a| a.detector == format!("baseline:{detector}"))
        .cloned()
        .collect()
}

fn titles(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| format!("{} {}", a.detector, a.title))
        .collect()
}

/// A workload's routine: Vault reads of its two paths a few times an hour around the
/// clock, and a rollout by CI at 11:00 on `rollout_days` followed by the pod start-up
/// burst (Kubernetes secret reads, Vault login, reads).
fn workload_days(days: std::ops::Range<i64>, rollout_days: &[i64]) -> Vec<R> {
    let me = sa("payments", "api");
    let mut v = Vec::new();
    for d in days {
        for h in 0..24 {
            for k in 0..3 {
                let t = MON + d * D + h * H + k * 17 * MIN + 5 * MIN;
                let p = if k % 2 == 0 { "db" } else { "stripe" };
                v.push(R::vault_read(
                    t,
                    &me,
                    &format!("secret/data/payments/api/{p}"),
                ));
            }
        }
        if rollout_days.contains(&d) {
            v.extend(rollout(MON + d * D + 11 * H));
            v.extend(startup_burst(MON + d * D + 11 * H + 20 * S));
        }
    }
    v
}

fn rollout(t: i64) -> Vec<R> {
    vec![R::new(t, "github-actions", "user").with(|r| {
        r.action = "update";
        r.groups = vec!["ci:deployers".into(), "system:authenticated".into()];
        r.resource_type = Some("deployments".into());
        r.path = Some("namespaces/payments/deployments/api".into());
        r.ns = Some("payments".into());
        r.ip = Some("10.0.2.40".into());
        r.ua = Some("kubectl/v1.30.2 (linux/amd64)".into());
    })]
}

fn startup_burst(t: i64) -> Vec<R> {
    let me = sa("payments", "api");
    vec![
        R::k8s_secret(t, &me, "payments", "api-db"),
        R::k8s_secret(t + S, &me, "payments", "api-tls"),
        R::vault_login(t + 2 * S, &me),
        R::vault_read(t + 3 * S, &me, "secret/data/payments/api/db"),
        R::vault_read(t + 4 * S, &me, "secret/data/payments/api/stripe"),
    ]
}

#[test]
fn post_rollout_burst_is_expected_but_the_same_burst_at_3am_is_not() {
    let mut b = Baselines::new(DetectorConfig::default());
    // four learning days with rollouts, then a fifth day with a rollout at 11:00
    let mut rows = workload_days(0..5, &[0, 1, 2, 3, 4]);
    let quiet = run(&mut b, rows.split_off(0));
    assert!(quiet.is_empty(), "{:#?}", titles(&quiet));
    // day 6 (Saturday): the same burst at 03:00, no rollout
    let mut rows = workload_days(5..6, &[]);
    rows.extend(startup_burst(MON + 5 * D + 3 * H));
    let alerts = run(&mut b, rows);
    let off = by(&alerts, "off_hours");
    assert!(!off.is_empty(), "{:#?}", titles(&alerts));
    let a = &off[0];
    assert_eq!(a.actor.as_deref(), Some(sa("payments", "api").as_str()));
    let e = &a.explanation;
    assert_eq!(e["identity"]["class"], "workload");
    assert!(
        e["baseline"]["deployment_windows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("weekday 11:00")),
        "{e}"
    );
    assert!(!a.event_ids.is_empty());
    assert_eq!(b.class_of("github-actions"), Some(Class::Ci));
}

#[test]
fn controller_reconciliation_loops_stay_quiet() {
    let mut b = Baselines::new(DetectorConfig::default());
    let eso = sa("external-secrets", "external-secrets");
    let rec = sa("payments", "reconciler");
    let mut rows = Vec::new();
    for d in 0..7 {
        for h in 0..24 {
            // an external-secrets style sync of 40 secrets across 8 namespaces each hour
            for i in 0..40 {
                let t = MON + d * D + h * H + i * 30 * S;
                rows.push(
                    R::k8s_secret(t, &eso, &format!("team-{}", i % 8), &format!("s{i}"))
                        .with(|r| r.ua = Some("external-secrets/v0.9 (linux/amd64)".into())),
                );
            }
            // a workload-namespace operator that lists and watches cluster-wide
            for k in 0..4 {
                let t = MON + d * D + h * H + k * 13 * MIN;
                rows.push(R::new(t, &rec, "service_account").with(|r| {
                    r.action = if k % 2 == 0 { "list" } else { "watch" };
                    r.resource_type = Some("configmaps".into());
                    r.path = Some("configmaps".into());
                }));
            }
        }
    }
    let alerts = run(&mut b, rows);
    assert!(alerts.is_empty(), "{:#?}", titles(&alerts));
    assert_eq!(b.class_of(&eso), Some(Class::Controller));
    assert_eq!(b.class_of(&rec), Some(Class::Controller));
}

fn human(t: i64, ns: &str, name: &str) -> R {
    R::k8s_secret(t, "bob@example.com", ns, name).with(|r| {
        r.actor_type = "user";
        r.groups = vec!["oidc:payments-team".into(), "system:authenticated".into()];
        r.ip = Some("192.0.2.21".into());
        r.ua = Some("kubectl/v1.30.2 (linux/amd64) kubernetes/3968350".into());
    })
}

#[test]
fn a_humans_usual_reads_stay_quiet_and_a_sweep_fires() {
    let mut b = Baselines::new(DetectorConfig::default());
    let mut rows = Vec::new();
    for d in 0..9 {
        if d % 7 >= 5 {
            continue;
        }
        for k in 0..3 {
            let t = MON + d * D + (9 + 3 * k) * H;
            rows.push(human(
                t,
                "payments",
                if k == 1 { "api-db" } else { "api-tls" },
            ));
        }
    }
    let quiet = run(&mut b, rows);
    assert!(quiet.is_empty(), "{:#?}", titles(&quiet));
    // Wednesday of week 2: 14 secrets across 5 namespaces in a few minutes
    let t0 = MON + 9 * D + 14 * H;
    let rows: Vec<R> = (0..14)
        .map(|i| {
            human(
                t0 + i * 20 * S,
                &format!("team-{}", i % 5),
                &format!("x{i}"),
            )
        })
        .collect();
    let alerts = run(&mut b, rows);
    let br = by(&alerts, "breadth");
    assert_eq!(br.len(), 1, "{:#?}", titles(&alerts));
    assert!(br[0].explanation["probability"].as_f64().unwrap() < 1e-5);
    let fs = by(&alerts, "first_seen");
    let dims: BTreeSet<&str> = fs
        .iter()
        .map(|a| a.explanation["observed"]["dimension"].as_str().unwrap())
        .collect();
    assert!(
        dims.contains("secret_prefix") && dims.contains("secret_path"),
        "{dims:?}"
    );
    // one alert per dimension and window, not one per secret
    assert!(fs.len() <= 3, "{:#?}", titles(&fs));
}

#[test]
fn first_seen_network_user_agent_and_path() {
    let mut b = Baselines::new(DetectorConfig::default());
    let me = sa("payments", "api");
    run(&mut b, workload_days(0..4, &[0, 2]));
    let t = MON + 4 * D + 14 * H;
    let rows = vec![
        R::vault_login(t, &me).with(|r| {
            r.ip = Some("198.51.100.7".into());
            r.ua = Some("curl/8.5.0".into());
        }),
        R::vault_read(t + S, &me, "secret/data/checkout/web/db").with(|r| {
            r.ip = Some("198.51.100.7".into());
            r.ua = Some("curl/8.5.0".into());
        }),
    ];
    let alerts = run(&mut b, rows);
    let dims: BTreeSet<String> = by(&alerts, "first_seen")
        .iter()
        .map(|a| {
            a.explanation["observed"]["dimension"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for d in ["network", "user_agent", "secret_path", "secret_prefix"] {
        assert!(dims.contains(d), "{d} missing: {dims:?}");
    }
    let net = by(&alerts, "first_seen")
        .into_iter()
        .find(|a| a.explanation["observed"]["dimension"] == "network")
        .unwrap();
    assert_eq!(net.explanation["observed"]["value"], "198.51.100.0/24");
    // pod addresses move between nodes: the pod network counts as one network
    let quiet = run(
        &mut b,
        vec![
            R::vault_read(t + H, &me, "secret/data/payments/api/db")
                .with(|r| r.ip = Some("10.244.9.99".into())),
        ],
    );
    assert!(quiet.is_empty(), "{:#?}", titles(&quiet));
}

/// A node renewing its lease every 5 minutes: the rest of the org.
fn heartbeat(days: std::ops::Range<i64>) -> Vec<R> {
    let mut v = Vec::new();
    for m in (days.start * 24 * 12)..(days.end * 24 * 12) {
        v.push(
            R::new(MON + m * 5 * MIN, "system:node:worker-01", "node").with(|r| {
                r.action = "update";
                r.resource_type = Some("leases".into());
                r.path = Some("namespaces/kube-node-lease/leases/worker-01".into());
                r.ns = Some("kube-node-lease".into());
                r.ip = Some("10.0.1.11".into());
                r.ua = Some("kubelet/v1.30.2 (linux/amd64)".into());
            }),
        );
    }
    v
}

#[test]
fn volume_spike_and_silence() {
    let mut b = Baselines::new(DetectorConfig::default());
    let me = sa("risk", "scorer");
    let mut rows = Vec::new();
    // 40 reads an hour, every hour, for 8 days
    for d in 0..8 {
        for h in 0..24 {
            for k in 0..40 {
                let t = MON + d * D + h * H + k * 90 * S;
                rows.push(R::vault_read(t, &me, "secret/data/risk/scorer/model"));
            }
        }
    }
    rows.extend(heartbeat(0..8));
    let quiet = run(&mut b, rows);
    assert!(quiet.is_empty(), "{:#?}", titles(&quiet));
    // Tuesday of week 2, 10:00: 400 reads; 13:00: nothing at all (the rest of the org
    // goes on: a stream-wide gap is a collection outage, not a silence)
    let mut rows = Vec::new();
    for h in 0..24 {
        let n = match h {
            10 => 400,
            13 => 0,
            _ => 40,
        };
        for k in 0..n {
            let t = MON + 8 * D + h * H + k * (3600 / n) * S;
            rows.push(R::vault_read(t, &me, "secret/data/risk/scorer/model"));
        }
    }
    rows.extend(heartbeat(8..9));
    let alerts = run(&mut b, rows);
    let vol = by(&alerts, "volume");
    assert_eq!(vol.len(), 2, "{:#?}", titles(&alerts));
    let spike = vol
        .iter()
        .find(|a| a.explanation["observed"]["so_far"] == true)
        .unwrap();
    let e = &spike.explanation;
    assert!(e["probability"].as_f64().unwrap() < 1e-7, "{e}");
    assert!(
        (e["baseline"]["mean"].as_f64().unwrap() - 40.0).abs() < 1.0,
        "{e}"
    );
    assert_eq!(e["baseline"]["bucket"], "weekday 10:00-11:00");
    let silence = vol.iter().find(|a| a.title.contains("silent")).unwrap();
    assert_eq!(silence.window_start, MON + 8 * D + 13 * H);
}

#[test]
fn denied_burst_fires_and_steady_denials_do_not() {
    let mut b = Baselines::new(DetectorConfig::default());
    let me = sa("data", "etl");
    let mut rows = Vec::new();
    for d in 0..6 {
        for h in 0..24 {
            // a stale template: one denied read every 20 minutes, all week
            for k in 0..3 {
                let t = MON + d * D + h * H + k * 20 * MIN;
                rows.push(
                    R::vault_read(t, &me, "secret/data/data/etl/old")
                        .with(|r| r.outcome = Outcome::Denied),
                );
                rows.push(R::vault_read(t + MIN, &me, "secret/data/data/etl/db"));
            }
        }
    }
    let quiet = run(&mut b, rows);
    assert!(quiet.is_empty(), "{:#?}", titles(&quiet));
    let t0 = MON + 6 * D + 15 * H + 2 * MIN;
    let rows: Vec<R> = (0..25)
        .map(|i| {
            R::vault_read(t0 + i * 2 * S, &me, "sys/mounts").with(|r| {
                r.outcome = Outcome::Denied;
                r.secret = false;
                r.resource_type = Some("system".into());
            })
        })
        .collect();
    let alerts = run(&mut b, rows);
    let den = by(&alerts, "denied");
    assert_eq!(den.len(), 1, "{:#?}", titles(&alerts));
    assert!(den[0].event_ids.len() >= 5);
}

#[test]
fn vault_entity_links_to_the_service_account() {
    let mut b = Baselines::new(DetectorConfig::default());
    let me = sa("payments", "api");
    let login = R::vault_login(MON, &me).with(|r| r.actor_id = Some("entity-1".into()));
    // a child token without the service-account metadata, same entity
    let child = R::vault_read(
        MON + S,
        "kubernetes-payments-api",
        "secret/data/payments/api/db",
    )
    .with(|r| {
        r.actor_id = Some("entity-1".into());
        r.actor_type = "token";
    });
    run(&mut b, vec![login, child]);
    assert_eq!(b.identities(), 1);
    assert_eq!(b.class_of(&me), Some(Class::Workload));
}

fn small_org(days: u32, warmup: u32) -> GenerateOptions {
    GenerateOptions {
        days,
        warmup_days: warmup,
        workloads: 10,
        scale: 0.1,
        attacks_per_day: 6,
        ..Default::default()
    }
}

#[test]
fn generated_scenarios_are_detected_with_few_false_alerts() {
    let (batches, labels) = generated_batches(small_org(6, 4), 4096).unwrap();
    let mut b = Baselines::new(DetectorConfig::default());
    let mut alerts = Vec::new();
    for x in &batches {
        alerts.extend(b.evaluate(x));
    }
    alerts.extend(b.flush());
    let mut missed = Vec::new();
    let kinds: BTreeSet<ScenarioType> = labels.iter().map(|l| l.kind).collect();
    assert_eq!(kinds.len(), ScenarioType::ALL.len());
    let mut matched = vec![false; alerts.len()];
    for l in &labels {
        let hit: Vec<usize> = alerts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.event_ids.iter().any(|e| l.event_ids.contains(e)))
            .map(|(i, _)| i)
            .collect();
        if hit.is_empty() {
            missed.push(l.scenario_id.clone());
        }
        for i in hit {
            matched[i] = true;
        }
    }
    assert!(missed.is_empty(), "missed {missed:?}");
    let warm_end = MON + 4 * D;
    let false_alerts: Vec<&Alert> = alerts
        .iter()
        .zip(&matched)
        .filter(|(a, m)| !**m && a.time >= warm_end)
        .map(|(a, _)| a)
        .collect();
    assert!(
        false_alerts.len() <= 4,
        "{} false alerts in 2 days: {:#?}",
        false_alerts.len(),
        false_alerts.iter().map(|a| &a.title).collect::<Vec<_>>()
    );
}

fn run_batches(b: &mut Baselines, batches: &[RecordBatch]) -> Vec<Alert> {
    let mut out = Vec::new();
    for x in batches {
        out.extend(b.evaluate(x));
    }
    out.extend(b.flush());
    out
}

#[test]
fn event_time_determinism_replay_shuffle_and_snapshot() {
    use datafusion::arrow::array::{AsArray, UInt32Array};
    use datafusion::arrow::compute::{concat_batches, take_record_batch};
    use datafusion::arrow::datatypes::TimestampMicrosecondType;
    let (batches, _) = generated_batches(small_org(5, 3), 4096).unwrap();
    let cfg = DetectorConfig::default();
    let a = run_batches(&mut Baselines::new(cfg.clone()), &batches);
    assert!(a.len() >= 12, "{}", a.len());
    // replay: identical alerts, ids included
    let again = run_batches(&mut Baselines::new(cfg.clone()), &batches);
    assert_eq!(a, again);

    // shuffled within the allowed lateness, cut into other batch sizes
    let all = concat_batches(&batches[0].schema(), &batches).unwrap();
    let times = all
        .column_by_name("time")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let half = cfg.allowed_lateness_us / 2;
    let mut order: Vec<(i64, u32)> = (0..all.num_rows())
        .map(|i| {
            let jitter =
                (xxhash_rust::xxh3::xxh3_64(&(i as u64).to_le_bytes()) % half as u64) as i64;
            (times.value(i) + jitter, i as u32)
        })
        .collect();
    order.sort();
    let idx = UInt32Array::from(order.iter().map(|x| x.1).collect::<Vec<_>>());
    let shuffled = take_record_batch(&all, &idx).unwrap();
    let mut cut = Vec::new();
    let (mut off, mut k) = (0, 0usize);
    while off < shuffled.num_rows() {
        let n = [1usize, 777, 3000, 50][k % 4].min(shuffled.num_rows() - off);
        cut.push(shuffled.slice(off, n));
        off += n;
        k += 1;
    }
    let s = run_batches(&mut Baselines::new(cfg.clone()), &cut);
    assert_eq!(a, s);

    // snapshot after half the batches, restore into a new instance, continue
    let mid = batches.len() / 2;
    let mut first = Baselines::new(cfg.clone());
    let mut got = Vec::new();
    for x in &batches[..mid] {
        got.extend(first.evaluate(x));
    }
    assert!(first.pending() > 0);
    let snap = first.snapshot();
    drop(first);
    let mut second = Baselines::from_snapshot(cfg.clone(), &snap).unwrap();
    assert_eq!(second.snapshot(), snap);
    got.extend(run_batches(&mut second, &batches[mid..]));
    assert_eq!(a, got);

    // thresholds may change across a restore, window layout may not
    let tuned = DetectorConfig::from_yaml(
        "volume: {classes: {workload: {p_value: 1.0e-9, min_excess: 50}}}",
    )
    .unwrap();
    assert!(Baselines::from_snapshot(tuned, &snap).is_ok());
    let other = DetectorConfig::from_yaml("denied: {window: 5m}").unwrap();
    assert!(Baselines::from_snapshot(other, &snap).is_err());
    assert!(Baselines::from_snapshot(cfg.clone(), &snap[..snap.len() / 2]).is_err());
    assert!(Baselines::from_snapshot(cfg, b"nope").is_err());
}

#[test]
fn eviction_bounds_memory() {
    let cfg = DetectorConfig::from_yaml("state: {max_identities: 100}").unwrap();
    let mut b = Baselines::new(cfg);
    let rows: Vec<R> = (0..2000)
        .map(|i| {
            R::vault_read(
                MON + i * S,
                &sa("ns", &format!("w{i}")),
                &format!("secret/data/ns/w{i}/db"),
            )
        })
        .collect();
    run(&mut b, rows);
    assert!(b.identities() <= 100, "{}", b.identities());
    assert!(b.stats.evicted >= 1900);
    let per = b.approx_bytes() / b.identities();
    assert!(per < 2048, "{per} bytes per identity");
    // idle identities are forgotten after idle_eviction (30 days)
    run(
        &mut b,
        vec![R::vault_read(
            MON + 40 * D,
            &sa("ns", "late"),
            "secret/data/ns/late/db",
        )],
    );
    assert_eq!(b.identities(), 1);
}

#[test]
fn explanations_say_what_and_why_and_never_carry_secret_values() {
    let mut b = Baselines::new(DetectorConfig::default());
    let secret = "s3cr3t-VALUE-do-not-leak";
    let mut rows = workload_days(0..4, &[0, 2]);
    for r in &mut rows {
        r.raw = format!("{{\"data\":{{\"password\":\"{secret}\"}}}}");
    }
    run(&mut b, rows);
    let me = sa("payments", "api");
    let t = MON + 4 * D + 3 * H;
    let mut rows = startup_burst(t);
    rows.push(
        R::vault_read(t + 9 * S, &me, "secret/data/identity/auth/signing-key").with(|r| {
            r.ip = Some("203.0.113.9".into());
        }),
    );
    for r in &mut rows {
        r.raw = format!("{{\"data\":{{\"password\":\"{secret}\"}}}}");
    }
    let alerts = run(&mut b, rows);
    assert!(alerts.len() >= 3, "{:#?}", titles(&alerts));
    for a in &alerts {
        let text = serde_json::to_string(a).unwrap();
        assert!(!text.contains(secret), "{text}");
        let e = &a.explanation;
        for k in [
            "observed",
            "baseline",
            "reason",
            "event_ids",
            "window",
            "identity",
        ] {
            assert!(!e[k].is_null(), "{k} missing in {e}");
        }
        assert_eq!(e["identity"]["class"], "workload");
        assert!(e["baseline"]["learning_period"].is_string(), "{e}");
        assert!(e.get("probability").is_some());
        assert!(a.rule_id.starts_with("baseline."));
        assert!(a.detector.starts_with("baseline:"));
        assert!(!a.event_ids.is_empty());
        assert_eq!(e["event_ids"].as_array().unwrap().len(), a.event_ids.len());
    }
}

#[test]
fn the_detectors_file_on_disk_is_the_default() {
    let path = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("detectors/default.yml");
    assert_eq!(
        DetectorConfig::load(&path).unwrap(),
        DetectorConfig::default()
    );
}

#[test]
fn rows_wait_for_the_watermark_and_an_idle_tick_releases_them() {
    let mut b = Baselines::new(DetectorConfig::default());
    let me = sa("payments", "api");
    let rows: Vec<R> = (0..10)
        .map(|i| R::vault_read(MON + i * S, &me, "secret/data/payments/api/db"))
        .collect();
    assert!(b.evaluate(&batch(&rows)).is_empty());
    // the newest row is 9 s old: everything waits for the 30 s lateness
    assert_eq!(b.pending(), 10);
    // an older watermark does nothing; one past the lateness releases them
    b.advance_watermark(MON);
    assert_eq!(b.pending(), 10);
    b.advance_watermark(MON + 35 * S);
    assert_eq!(b.pending(), 4);
    b.advance_watermark(MON + 40 * S);
    assert_eq!(b.pending(), 0);
    assert_eq!(b.stats.rows, 10);
}

/// Regression (issue 5 eval): a long-running request that started before midnight and
/// completed after it arrives late with yesterday's time; it is not "new".
#[test]
fn a_late_row_from_yesterday_is_not_new() {
    let mut b = Baselines::new(DetectorConfig::default());
    let me = sa("payments", "api");
    run(&mut b, workload_days(0..4, &[0, 2]));
    let t = MON + 4 * D;
    let mut alerts = b.evaluate(&batch(&[
        R::vault_read(t + 10 * MIN, &me, "secret/data/payments/api/db"),
        R::vault_read(t + 11 * MIN, &me, "secret/data/payments/api/db"),
    ]));
    alerts.extend(b.evaluate(&batch(&[R::vault_read(
        t - 2 * MIN,
        &me,
        "secret/data/payments/api/db",
    )])));
    alerts.extend(b.flush());
    assert!(alerts.is_empty(), "{:#?}", titles(&alerts));
    assert_eq!(b.stats.late, 1);
}

fn anonymous(t: i64, ip: &str, what: &str) -> R {
    R::new(t, "system:anonymous", "anonymous").with(|r| {
        r.action = if what == "healthz" { "read" } else { "list" };
        r.resource_type = Some(if what == "healthz" {
            "nonresource".into()
        } else {
            what.into()
        });
        r.path = Some(what.into());
        r.ip = Some(ip.into());
        r.ua = Some(
            if what == "healthz" {
                "kube-probe/1.30"
            } else {
                "curl/8.5.0"
            }
            .into(),
        );
    })
}

/// A value that raised an alert is not learned from its own first use: a repeated attack
/// alerts again; a benign new value stops alerting after `confirm_days` days of use.
#[test]
fn suspect_values_alert_again_until_confirmed() {
    let mut b = Baselines::new(DetectorConfig::default());
    let mut rows = Vec::new();
    for m in 0..(5 * 24 * 4) {
        rows.push(anonymous(MON + m * 15 * MIN, "10.0.1.2", "healthz"));
    }
    for d in 0..5 {
        rows.push(human(MON + d * D + 10 * H, "payments", "api-db"));
    }
    assert!(run(&mut b, rows).is_empty());
    let mut per_day = Vec::new();
    for d in 5..10 {
        let t = MON + d * D + 11 * H;
        let alerts = run(
            &mut b,
            vec![
                anonymous(t, "203.0.113.50", "namespaces"),
                human(t, "payments", "api-new"),
            ],
        );
        let anon = alerts
            .iter()
            .filter(|a| a.actor.as_deref() == Some("system:anonymous"))
            .count();
        let hum = alerts
            .iter()
            .filter(|a| a.actor.as_deref() == Some("bob@example.com"))
            .count();
        per_day.push((anon > 0, hum > 0));
    }
    // anonymous: never confirmed; the person's new secret: alerts on 2 days, then normal
    assert_eq!(
        per_day,
        vec![
            (true, true),
            (true, true),
            (true, false),
            (true, false),
            (true, false)
        ]
    );
}
