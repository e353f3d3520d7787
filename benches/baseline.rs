//! Baseline updates and scoring on 8192-row batches with 100k distinct identities,
//! against a reference measured in the same run: one pass over the actor column hashing
//! each value (the least any per-identity detector has to do).
//!
//! The state is warmed first (two days of traffic in which every identity shows up, so
//! all are past their learning period); then each measured batch continues the stream in
//! event time (time column shifted, outside the timing): 100k identities, 80 % workloads
//! reading their Vault/Kubernetes secrets, humans, controllers, some denials and logins,
//! at 10k events per second of event time, so windows close and the reorder buffer
//! holds 30 s of rows as in production.
//!
//! Besides criterion's report, prints one summary line:
//! `baseline: ours N ev/s, hash-actor M ev/s, ratio R; S bytes/identity`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditwatch::baseline::{Baselines, DetectorConfig};
use auditwatch::normalize::{AccessEvent, EventBuilder, Outcome, Provenance, Source};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{Array, AsArray, RecordBatch, TimestampMicrosecondArray};
use std::borrow::Cow;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 8192;
/// Distinct identities: 100k, or `AUDITWATCH_BENCH_IDENTITIES` (e.g. 1000000 to size the
/// state of a million identities).
fn identities() -> u64 {
    static N: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("AUDITWATCH_BENCH_IDENTITIES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000)
    })
}
/// Event-time spacing of rows in the measured stream (10k events/s).
const STEP_US: i64 = 100;
/// Monday 2026-11-02 00:00 UTC.
const T0: i64 = 1_793_577_600_000_000;
const DAY: i64 = 86_400_000_000;

fn mix(x: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&x.to_le_bytes())
}

/// Row `i` of the stream at time `t`: identity, action and target from a hash of `i`,
/// identities skewed (a few chatty, most quiet).
fn row(i: u64, t: i64, b: &mut EventBuilder) {
    let h = mix(i);
    // skew: half the rows from the first 5 % of identities
    let who = if h & 1 == 0 {
        (h >> 8) % (identities() / 20)
    } else {
        (h >> 8) % identities()
    };
    let kind = (h >> 40) % 100;
    let ns = format!("team-{}", who % 97);
    let (actor, actor_type, ua) = match who % 50 {
        0 => (
            format!("user{who}@example.com"),
            "user",
            "kubectl/v1.30.2 (linux/amd64)",
        ),
        1 => (
            format!("system:serviceaccount:kube-system:ctrl-{who}"),
            "service_account",
            "kube-controller-manager/v1.30.2",
        ),
        _ => (
            format!("system:serviceaccount:{ns}:svc-{who}"),
            "service_account",
            "Vault Agent/1.17.2",
        ),
    };
    let id = format!("00000000-0000-4000-8000-{i:012x}");
    let vault = kind < 60;
    let mut e = AccessEvent::new(
        if vault {
            Source::Vault
        } else {
            Source::Kubernetes
        },
        t,
        Cow::Owned(id),
        Cow::Borrowed("{}"),
    );
    e.stage = Cow::Borrowed(if vault {
        "response"
    } else {
        "ResponseComplete"
    });
    e.actor = Cow::Owned(actor);
    e.actor_type = actor_type;
    e.user_agent = Some(Cow::Borrowed(ua));
    e.src_ip = Some(Cow::Owned(format!("10.244.{}.{}", who % 200, who % 250)));
    e.outcome = if kind % 50 == 7 {
        Outcome::Denied
    } else {
        Outcome::Success
    };
    let secret = (h >> 20) % 4;
    if vault {
        e.auth_method = Some(Cow::Borrowed("kubernetes"));
        e.resource_type = Some(Cow::Borrowed("kv"));
        if kind < 3 {
            e.action = Cow::Borrowed("login");
            e.resource_path = Some(Cow::Borrowed("auth/kubernetes/login"));
        } else {
            e.action = Cow::Borrowed("read");
            e.secret_access = true;
            e.resource_path = Some(Cow::Owned(format!("secret/data/{ns}/svc-{who}/k{secret}")));
        }
    } else if kind < 80 {
        e.action = Cow::Borrowed("read");
        e.secret_access = true;
        e.resource_type = Some(Cow::Borrowed("secrets"));
        e.resource_namespace = Some(Cow::Owned(ns.clone()));
        e.resource_path = Some(Cow::Owned(format!(
            "namespaces/{ns}/secrets/svc-{who}-{secret}"
        )));
    } else {
        e.action = Cow::Borrowed(if kind < 90 { "watch" } else { "update" });
        e.resource_type = Some(Cow::Borrowed("configmaps"));
        e.resource_namespace = Some(Cow::Owned(ns.clone()));
        e.resource_path = Some(Cow::Owned(format!("namespaces/{ns}/configmaps/cfg")));
    }
    b.append(&e, &Provenance::default(), 0);
}

fn batches(first: u64, n: usize, time: impl Fn(u64) -> i64) -> Vec<RecordBatch> {
    batch_iter(first, n, time).collect()
}

/// The same batches made one at a time (the warm-up: its rows are not all held at once,
/// so the process's memory after it is the state's).
fn batch_iter(
    first: u64,
    n: usize,
    time: impl Fn(u64) -> i64,
) -> impl Iterator<Item = RecordBatch> {
    (0..n).map(move |k| {
        let mut b = EventBuilder::with_capacity(BATCH);
        for r in 0..BATCH as u64 {
            let i = first + k as u64 * BATCH as u64 + r;
            row(i, time(i), &mut b);
        }
        b.finish().unwrap()
    })
}

fn config() -> DetectorConfig {
    DetectorConfig::from_yaml(
        "identities: {min_active_days: 1}
volume: {classes: {workload: {p_value: 1.0e-7, min_excess: 1.0e9}, human: {p_value: 1.0e-6, min_excess: 1.0e9}, controller: {p_value: 1.0e-10, min_excess: 1.0e9}}}
off_hours: {windows: [{days: [mon, tue, wed, thu, fri, sat, sun], hours: '00:00-24:00'}]}
",
    )
    .unwrap()
    .with_learning(DAY)
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

/// A warmed state plus the template batches that continue its stream.
struct Stream {
    baselines: Baselines,
    templates: Vec<RecordBatch>,
    /// Added to the template times on the next pass.
    offset: i64,
    next: usize,
    span: i64,
}

impl Stream {
    fn new() -> Stream {
        // The warm-up is sparse (every identity on a few hours of two days) and the
        // measured stream dense, so per-window volumes and hours of activity differ by
        // orders of magnitude: volume spikes and off-hours are set so that they still
        // score every row (windows, gates, hour tables) but do not alert on that artefact.
        let cfg = config();
        let mut baselines = Baselines::new(cfg);
        // warm-up: 1.6M rows (per 100k identities) spread over two days, every identity
        // several times
        let n = (200 * identities() / 100_000).max(200) as usize;
        let spread = 2 * DAY / (n as i64 * BATCH as i64);
        for b in batch_iter(0, n, |i| T0 + i as i64 * spread) {
            baselines.evaluate(&b);
        }
        let start = T0 + 2 * DAY;
        let first = (n * BATCH) as u64;
        let templates = batches(first, 64, |i| start + (i - first) as i64 * STEP_US);
        let span = 64 * BATCH as i64 * STEP_US;
        Stream {
            baselines,
            templates,
            offset: 0,
            next: 0,
            span,
        }
    }

    /// The next batch of the stream (its time column shifted).
    fn batch(&mut self) -> RecordBatch {
        let t = &self.templates[self.next];
        let off = self.offset;
        self.next += 1;
        if self.next == self.templates.len() {
            self.next = 0;
            self.offset += self.span;
        }
        if off == 0 {
            return t.clone();
        }
        let i = t.schema().index_of("time").unwrap();
        let old = t
            .column(i)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        let new = TimestampMicrosecondArray::from(
            old.values().iter().map(|v| v + off).collect::<Vec<_>>(),
        )
        .with_timezone_opt(old.timezone().map(Arc::<str>::from));
        let mut cols = t.columns().to_vec();
        cols[i] = Arc::new(new);
        RecordBatch::try_new(t.schema(), cols).unwrap()
    }
}

fn hash_actor(b: &RecordBatch) -> u64 {
    let a = b.column_by_name("actor").unwrap().as_string::<i32>();
    let mut acc = 0u64;
    for i in 0..a.len() {
        acc = acc.wrapping_add(xxhash_rust::xxh3::xxh3_64(a.value(i).as_bytes()));
    }
    acc
}

fn bench(c: &mut Criterion) {
    if let Ok(path) = std::env::var("AUDITWATCH_BENCH_RESTORE") {
        // RSS with the snapshot bytes loaded, then after restoring (bytes still held):
        // the growth is the state plus whatever the restore's temporaries left resident
        let bytes = std::fs::read(&path).unwrap();
        let before = rss_kb();
        let b = Baselines::from_snapshot(config(), &bytes).unwrap();
        let after = rss_kb();
        drop(bytes);
        println!(
            "baseline state restored in a fresh process: {} identities, RSS {} MiB over the {} MiB before it ({} bytes/identity)",
            b.identities(),
            after.saturating_sub(before) / 1024,
            before / 1024,
            after.saturating_sub(before) * 1024 / b.identities().max(1) as u64
        );
        std::process::exit(0);
    }
    let mut s = Stream::new();
    let ids = s.baselines.identities();
    assert!(ids as u64 >= identities() * 95 / 100, "{ids} identities");
    println!(
        "baseline state: {ids} identities, {} bytes by the state's own accounting, process RSS {} MiB",
        s.baselines.approx_bytes(),
        rss_kb() / 1024
    );
    // the state alone: restored from its snapshot in a fresh process (this bench binary
    // with AUDITWATCH_BENCH_RESTORE), whose RSS before and after the restore is printed
    if std::env::args().any(|a| a == "--bench") {
        let snap = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(snap.path(), s.baselines.snapshot()).unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env("AUDITWATCH_BENCH_RESTORE", snap.path())
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    let mut g = c.benchmark_group("baseline");
    g.throughput(Throughput::Elements(BATCH as u64))
        .measurement_time(Duration::from_secs(5))
        .sample_size(20);
    g.bench_function(BenchmarkId::new("hash_actor", "8192"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let x = s.batch();
                let t = Instant::now();
                std::hint::black_box(hash_actor(&x));
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function(BenchmarkId::new("evaluate", "8192"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let x = s.batch();
                let t = Instant::now();
                std::hint::black_box(s.baselines.evaluate(&x));
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let measure = |s: &mut Stream, f: &mut dyn FnMut(&mut Stream, &RecordBatch)| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let xs: Vec<RecordBatch> = (0..32).map(|_| s.batch()).collect();
            let t = Instant::now();
            for x in &xs {
                f(s, x);
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        (32 * BATCH) as f64 / best
    };
    let reference = measure(&mut s, &mut |_, x| {
        std::hint::black_box(hash_actor(x));
    });
    let mut alerts = 0;
    let ours = measure(&mut s, &mut |s, x| alerts += s.baselines.evaluate(x).len());
    let n = s.baselines.identities();
    println!(
        "baseline (8192-row batches, {n} identities): ours {ours:.0} ev/s, hash-actor {reference:.0} ev/s, ratio {:.3}; {} bytes/identity ({:?}); {alerts} alerts",
        ours / reference,
        s.baselines.approx_bytes() / n.max(1),
        s.baselines
            .bytes_by_class()
            .iter()
            .map(|(c, n, b)| format!("{} {n}×{b}", c.as_str()))
            .collect::<Vec<_>>()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
