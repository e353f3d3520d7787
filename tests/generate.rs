//! `auditwatch generate`: determinism, decodability of everything it writes (zero
//! quarantine, row counts as reported, labels pointing at stored rows with the labeled
//! actor), scenario coverage, benign rhythms, live pacing and Kafka production.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use auditwatch::app::{self, IngestConfig};
use auditwatch::batch::BatchLimits;
use auditwatch::decode::{DecodeOptions, Format};
use auditwatch::generate::{
    GenSource, GenerateOptions, Generator, LiveOptions, ScenarioType, Topics, produce_kafka,
    read_labels, write_dir,
};

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

fn small(seed: u64, days: u32) -> GenerateOptions {
    GenerateOptions {
        seed,
        days,
        workloads: 10,
        scale: 0.05,
        ..Default::default()
    }
}

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["kubernetes", "vault"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            out.insert(
                format!("{sub}/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read(&p).unwrap(),
            );
        }
    }
    out.insert(
        "labels.jsonl".into(),
        std::fs::read(dir.join("labels.jsonl")).unwrap(),
    );
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        workloads: 5,
        scale: 0.02,
        ..small(7, 1)
    };
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    let sa = write_dir(&opts, &a).unwrap();
    let sb = write_dir(&opts, &b).unwrap();
    write_dir(
        &GenerateOptions {
            seed: 8,
            ..opts.clone()
        },
        &c,
    )
    .unwrap();
    assert_eq!(sa.kubernetes_events, sb.kubernetes_events);
    let (fa, fb, fc) = (files_of(&a), files_of(&b), files_of(&c));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (k, v) in &fa {
        assert!(
            v == &fb[k],
            "{k} differs between two runs with the same seed"
        );
    }
    for k in [
        "kubernetes/audit-2026-11-02.jsonl.gz",
        "vault/audit-2026-11-02.jsonl.gz",
        "labels.jsonl",
    ] {
        assert!(fa[k] != fc[k], "{k} is the same for seeds 7 and 8");
    }
}

fn query_rows(data: &Path, sql: &str) -> Vec<serde_json::Value> {
    let engine = auditwatch::query::QueryEngine::open(data).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let batches = rt.block_on(engine.sql(sql)).unwrap();
    batches.iter().flat_map(common::batch_rows).collect()
}

#[test]
fn output_ingests_without_quarantine_and_labels_point_at_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("gen");
    let summary = write_dir(&small(1, 1), &out).unwrap();
    assert!(
        summary.kubernetes_events > 1000 && summary.vault_requests > 100,
        "{summary:?}"
    );

    let data = tmp.path().join("store");
    let cfg = IngestConfig {
        inputs: vec![
            out.join("kubernetes").display().to_string(),
            out.join("vault").display().to_string(),
        ],
        format: Format::Auto,
        data_dir: data.clone(),
        decode: DecodeOptions::default(),
        limits: BatchLimits::default(),
        progress: false,
        rules: None,
        baselines: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ing = rt.block_on(app::ingest(cfg)).unwrap();
    drop(rt);
    assert_eq!(ing.quarantined, 0);
    assert_eq!(ing.duplicates, 0);

    let counts: HashMap<String, i64> = query_rows(
        &data,
        "SELECT source, count(*) AS n FROM events GROUP BY source",
    )
    .into_iter()
    .map(|r| {
        (
            r["source"].as_str().unwrap().to_string(),
            r["n"].as_i64().unwrap(),
        )
    })
    .collect();
    assert_eq!(
        counts["kubernetes"] as u64,
        summary.expected_rows(GenSource::Kubernetes)
    );
    assert_eq!(
        counts["vault"] as u64,
        summary.expected_rows(GenSource::Vault)
    );

    let labels = read_labels(&out.join("labels.jsonl")).unwrap();
    assert_eq!(labels.len() as u64, summary.labels);
    assert!(!labels.is_empty());
    let ids: Vec<String> = labels
        .iter()
        .flat_map(|l| l.event_ids.iter().map(|i| format!("'{i}'")))
        .collect();
    let stored: HashMap<String, BTreeSet<String>> = query_rows(
        &data,
        &format!(
            "SELECT event_id, actor FROM events WHERE event_id IN ({})",
            ids.join(",")
        ),
    )
    .into_iter()
    .fold(HashMap::new(), |mut m, r| {
        m.entry(r["event_id"].as_str().unwrap().to_string())
            .or_default()
            .insert(r["actor"].as_str().unwrap().to_string());
        m
    });
    for l in &labels {
        assert!(!l.event_ids.is_empty(), "{}", l.scenario_id);
        for id in &l.event_ids {
            let actors = stored
                .get(id)
                .unwrap_or_else(|| panic!("{}: event {id} not stored", l.scenario_id));
            assert_eq!(
                actors,
                &BTreeSet::from([l.actor.clone()]),
                "{} {id}",
                l.scenario_id
            );
        }
    }
    // no real-looking secret material: every Vault data value is an HMAC
    let leaked = query_rows(
        &data,
        "SELECT count(*) AS n FROM events WHERE source = 'vault' AND raw LIKE '%[REDACTED]%'",
    );
    assert_eq!(
        leaked[0]["n"].as_i64(),
        Some(0),
        "the decoder had to redact generated values"
    );
}

#[test]
fn two_days_hold_every_scenario_type_and_one_day_a_subset() {
    let mut g = Generator::new(GenerateOptions {
        scale: 0.01,
        ..small(3, 2)
    })
    .unwrap();
    for _ in g.by_ref() {}
    let labels = g.labels();
    let kinds: BTreeSet<ScenarioType> = labels.iter().map(|l| l.kind).collect();
    assert_eq!(kinds, ScenarioType::ALL.into_iter().collect());
    let day1: BTreeSet<ScenarioType> = labels
        .iter()
        .filter(|l| l.start.as_str() < "2026-11-03")
        .map(|l| l.kind)
        .collect();
    assert_eq!(day1.len(), 6, "{day1:?}");
    for l in labels
        .iter()
        .filter(|l| l.kind == ScenarioType::OffHoursSecretRead)
    {
        let hour: u32 = l.start[11..13].parse().unwrap();
        assert!((2..4).contains(&hour), "{}", l.start);
        assert_eq!(l.source, "mixed");
    }
}

fn hour(t: i64) -> i64 {
    t.rem_euclid(DAY_US) / HOUR_US
}

fn weekday(t: i64) -> i64 {
    (t.div_euclid(DAY_US) + 3).rem_euclid(7)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn benign_rhythms_follow_office_hours_seasonality_and_deploy_window() {
    // a week: Monday to Sunday
    let opts = GenerateOptions {
        workloads: 20,
        scale: 0.1,
        attacks_per_day: 0,
        ..small(5, 7)
    };
    let (mut human_office, mut human_night) = (0u64, 0u64);
    let (mut reads_day, mut reads_night) = (0u64, 0u64);
    let mut deploys = Vec::new();
    for ev in Generator::new(opts).unwrap() {
        let (h, wd) = (hour(ev.time_us), weekday(ev.time_us));
        match ev.source {
            GenSource::Kubernetes if ev.key.ends_with("@example.com") => {
                if wd < 5 && (9..17).contains(&h) {
                    human_office += 1;
                } else if !(7..23).contains(&h) {
                    human_night += 1;
                }
            }
            GenSource::Kubernetes => {
                if contains(&ev.bytes, "\"verb\":\"patch\"")
                    && contains(&ev.bytes, "\"resource\":\"deployments\"")
                {
                    deploys.push((ev.key.clone(), ev.time_us));
                }
            }
            GenSource::Vault => {
                if ev.key.starts_with("system:serviceaccount:")
                    && contains(&ev.bytes, "\"type\":\"request\"")
                    && contains(&ev.bytes, "\"operation\":\"read\"")
                    && wd < 5
                {
                    if (12..16).contains(&h) {
                        reads_day += 1;
                    } else if (0..4).contains(&h) {
                        reads_night += 1;
                    }
                }
            }
        }
    }
    assert!(human_office > 200, "{human_office}");
    assert!(
        human_office > 20 * human_night.max(1),
        "{human_office} vs {human_night}"
    );
    assert!(
        reads_day as f64 > 1.8 * reads_night as f64,
        "{reads_day} vs {reads_night}"
    );
    assert!(deploys.len() >= 3, "{deploys:?}");
    for (who, t) in &deploys {
        assert!(
            weekday(*t) < 5 && (10..16).contains(&hour(*t)),
            "{who} at {t}"
        );
        assert!(
            who == "system:serviceaccount:argocd:argocd-application-controller"
                || who == "github-actions",
            "{who}"
        );
    }
}

#[test]
fn live_mode_tracks_the_wall_clock() {
    let speed = 600.0; // ten simulated minutes per second
    let opts = GenerateOptions {
        workloads: 5,
        scale: 0.5,
        live: Some(LiveOptions {
            speed,
            attack_every: Duration::from_secs(120),
            target_rate: None,
        }),
        ..Default::default()
    };
    let t0 = SystemTime::now();
    let sim0 = t0
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let mut g = Generator::live(opts, t0).unwrap();
    assert_eq!(g.end_us(), None);
    let mut n = 0;
    let mut worst = 0f64;
    while t0.elapsed().unwrap() < Duration::from_millis(1200) {
        let ev = g.next_event_paced().unwrap();
        let wall = t0.elapsed().unwrap().as_secs_f64();
        let sim = (ev.time_us - sim0) as f64 / 1e6 / speed;
        assert!(sim >= -0.001, "event before the start");
        worst = worst.max(wall - sim);
        assert!(
            sim <= wall + 0.05,
            "event ahead of the wall clock: {sim} > {wall}"
        );
        n += 1;
    }
    assert!(n > 100, "{n}");
    assert!(worst < 0.5, "events lag the wall clock by {worst}s");
    // the first attack comes after a minute of simulated time, then every two minutes
    assert!(!g.labels().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produces_to_kafka_with_actor_keys_and_a_limit() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message};
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("k8s-audit", 2, 1).unwrap();
    cluster.create_topic("vault-audit", 2, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let token = tokio_util::sync::CancellationToken::new();
    let s = produce_kafka(
        small(2, 1),
        &bootstrap,
        &Topics::default(),
        None,
        Some(3000),
        token,
    )
    .await
    .unwrap();
    assert_eq!(s.delivered, 3000);
    assert_eq!(s.failed, 0);
    assert!(s.kubernetes > 0 && s.vault > 0);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "gen-test")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&["vault-audit"]).unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let mut got = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got < 10 && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                assert!(m.key().is_some_and(|k| !k.is_empty()));
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                assert!(v["request"]["id"].is_string());
                got += 1;
            }
        }
        got
    })
    .await
    .unwrap();
    assert_eq!(got, 10);

    // live: paced by the wall clock (sped up), benign volume aimed at a target rate
    let live = GenerateOptions {
        live: Some(LiveOptions {
            speed: 100.0,
            attack_every: Duration::from_secs(20),
            target_rate: Some(400.0),
        }),
        ..small(2, 1)
    };
    let token = tokio_util::sync::CancellationToken::new();
    let started = std::time::Instant::now();
    let s = produce_kafka(live, &bootstrap, &Topics::default(), None, Some(600), token)
        .await
        .unwrap();
    assert_eq!(s.delivered, 600);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(!s.labels.is_empty(), "an attack every 0.2 s of wall time");
}
