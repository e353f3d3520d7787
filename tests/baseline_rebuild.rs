//! `auditwatch baseline rebuild` (issue 5): learns from the store in time order and writes
//! a snapshot a fresh deployment restores; `auditwatch eval` over generated files.

use std::path::Path;
use std::process::Command;

use auditwatch::baseline::{Baselines, DetectorConfig};
use auditwatch::generate::{GenerateOptions, write_dir};

fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_auditwatch"))
        .args(args)
        .env_remove("AUDITWATCH_DATA_DIR")
        .output()
        .expect("run auditwatch");
    assert!(
        out.status.success(),
        "auditwatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn rebuild_learns_from_the_store_and_writes_a_restorable_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let gen_dir = tmp.path().join("gen");
    let data = tmp.path().join("data");
    let opts = GenerateOptions {
        days: 2,
        warmup_days: 1,
        workloads: 6,
        scale: 0.05,
        attacks_per_day: 3,
        ..Default::default()
    };
    write_dir(&opts, &gen_dir).unwrap();
    let mut args = vec![
        "ingest".to_string(),
        "--no-progress".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    args.extend(files(&gen_dir.join("kubernetes")));
    args.extend(files(&gen_dir.join("vault")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ingested: serde_json::Value =
        serde_json::from_str(cli(&args).lines().last().unwrap()).unwrap();
    let events = ingested["events"].as_u64().unwrap();
    assert!(events > 1000, "{ingested}");

    let out = cli(&[
        "baseline",
        "rebuild",
        "--since",
        "2026-11-01",
        "--data-dir",
        &data.display().to_string(),
    ]);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["rows"].as_u64(), Some(events), "{summary}");
    assert!(summary["identities"].as_u64().unwrap() > 10, "{summary}");
    let snap = std::fs::read(data.join("state/baselines.snapshot")).unwrap();
    let b = Baselines::from_snapshot(DetectorConfig::default(), &snap).unwrap();
    assert_eq!(
        b.identities() as u64,
        summary["identities"].as_u64().unwrap()
    );
    assert_eq!(b.pending(), 0);

    // nothing stored after --since: an empty but valid snapshot
    let out = cli(&[
        "baseline",
        "rebuild",
        "--since",
        "2030-01-01",
        "--data-dir",
        &data.display().to_string(),
        "--out",
        &tmp.path().join("empty.snapshot").display().to_string(),
    ]);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["rows"].as_u64(), Some(0));

    // eval over the generated files and their labels
    let out = cli(&[
        "eval",
        "--no-rules",
        "--json",
        "--warmup-days",
        "1",
        "--data",
        &gen_dir.display().to_string(),
        "--labels",
        &gen_dir.join("labels.jsonl").display().to_string(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["events"].as_u64(), Some(events));
    assert_eq!(report["scenarios"].as_array().unwrap().len(), 3);
}
