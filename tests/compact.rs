//! `auditwatch compact` (issue 6): merging keeps every row and row key in its partition,
//! sorts, shrinks the file count, writes bloom filters and the page index, is idempotent,
//! recovers from a crash between any two steps, and retention drops whole partitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use auditwatch::app::{self, IngestConfig};
use auditwatch::batch::BatchLimits;
use auditwatch::decode::{DecodeOptions, Format};
use auditwatch::generate::{GenerateOptions, write_dir};
use auditwatch::store::compact::{self, CompactOptions, CompactSummary, CrashPoint};
use chrono::{TimeZone, Utc};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{TimestampMicrosecondType, UInt64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

/// A store with many small files in every table: one simulated day ingested in batches of
/// 15 rows with the rule pack (alerts), plus two junk files (quarantine).
fn template() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let gen_dir = tmp.path().join("gen");
        let opts = GenerateOptions {
            days: 1,
            workloads: 10,
            scale: 0.03,
            ..Default::default()
        };
        write_dir(&opts, &gen_dir).unwrap();
        let data = tmp.path().join("store");
        let rules = Arc::new(auditwatch::demo::embedded_rules());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut inputs = vec![vec![
            gen_dir.join("kubernetes").display().to_string(),
            gen_dir.join("vault").display().to_string(),
        ]];
        for i in 0..2 {
            let junk = tmp.path().join(format!("junk{i}.log"));
            std::fs::write(
                &junk,
                format!("{{\"kind\":\"Event\",\"broken{i}\n not json {i}\n"),
            )
            .unwrap();
            inputs.push(vec![junk.display().to_string()]);
        }
        for inputs in inputs {
            let cfg = IngestConfig {
                inputs,
                format: Format::Auto,
                data_dir: data.clone(),
                decode: DecodeOptions::default(),
                limits: BatchLimits {
                    max_rows: 15,
                    ..Default::default()
                },
                progress: false,
                rules: Some(rules.clone()),
                baselines: None,
            };
            rt.block_on(app::ingest(cfg)).unwrap();
        }
        tmp
    })
    .path()
    .join("store")
    .leak()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A fresh copy of the template store.
fn store() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    copy_dir(template(), &data);
    (tmp, data)
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

fn parquet_files(data: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    files(data, "parquet", &mut v);
    v.sort();
    v
}

/// Row keys per partition directory (sorted, with repeats), straight from the files.
fn keys_by_partition(data: &Path) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for f in parquet_files(data) {
        let part = f
            .parent()
            .unwrap()
            .strip_prefix(data)
            .unwrap()
            .display()
            .to_string();
        let keys = out.entry(part).or_default();
        let file = std::fs::File::open(&f).unwrap();
        for b in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            let b = b.unwrap();
            let col = b.column(b.schema().index_of("row_key").unwrap());
            keys.extend(col.as_primitive::<UInt64Type>().values().iter());
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

fn manifests(data: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    files(data, "json", &mut v);
    v
}

fn run(data: &Path, opts: &CompactOptions) -> auditwatch::error::Result<CompactSummary> {
    let fs = object_store::local::LocalFileSystem::new_with_prefix(data)
        .unwrap()
        .with_automatic_cleanup(true);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(compact::compact(Arc::new(fs), opts))
}

fn now_opts() -> CompactOptions {
    CompactOptions {
        min_age: Duration::ZERO,
        ..Default::default()
    }
}

fn count_sql(data: &Path, sql: &str) -> i64 {
    let engine = auditwatch::query::QueryEngine::open(data).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let b = rt.block_on(engine.sql(sql)).unwrap();
    b[0].column(0)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .value(0)
}

#[test]
fn merge_keeps_rows_and_keys_per_partition_sorts_and_writes_indexes() {
    let (_tmp, data) = store();
    let before = keys_by_partition(&data);
    let files_before = parquet_files(&data).len();
    for table in ["events", "alerts", "quarantine"] {
        assert!(
            before.keys().any(|p| p.starts_with(table)),
            "fixture has no {table} files"
        );
    }
    let events_before = count_sql(&data, "select count(*) from events");

    let s = run(&data, &now_opts()).unwrap();
    let after = keys_by_partition(&data);
    assert_eq!(before, after, "row keys per partition changed");
    for (p, keys) in &after {
        let mut u = keys.clone();
        u.dedup();
        assert_eq!(u.len(), keys.len(), "duplicate row keys in {p}");
    }
    let files_after = parquet_files(&data);
    assert!(
        files_after.len() * 3 < files_before,
        "{files_before} files before, {} after",
        files_after.len()
    );
    assert_eq!(s.files_in - s.files_out, files_before - files_after.len());
    assert_eq!(s.duplicates_dropped, 0);
    assert!(s.partitions_compacted > 10, "{s:?}");
    assert!(manifests(&data).is_empty());
    assert_eq!(
        count_sql(&data, "select count(*) from events"),
        events_before
    );

    let mut checked_blooms = 0;
    for f in &files_after {
        let rel = f.strip_prefix(&data).unwrap().display().to_string();
        let per_dir = files_after
            .iter()
            .filter(|g| g.parent() == f.parent())
            .count();
        assert_eq!(per_dir, 1, "{rel}: one file per partition after compaction");
        // a partition that held a single file keeps the writer's file as it was
        let name = f.file_name().unwrap().to_string_lossy();
        if !rel.starts_with("events/") || !name.starts_with("compact-") {
            continue;
        }
        // sorted by (actor, time)
        let file = std::fs::File::open(f).unwrap();
        let mut prev: Option<(String, i64)> = None;
        for b in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            let b = b.unwrap();
            let actor = b
                .column(b.schema().index_of("actor").unwrap())
                .as_string::<i32>();
            let time = b
                .column(b.schema().index_of("time").unwrap())
                .as_primitive::<TimestampMicrosecondType>();
            for i in 0..b.num_rows() {
                let cur = (actor.value(i).to_string(), time.value(i));
                if let Some(p) = &prev {
                    assert!(*p <= cur, "{rel}: {p:?} before {cur:?}");
                }
                prev = Some(cur);
            }
        }
        // metadata: ZSTD, page index, bloom filters on actor and resource_path, sort order
        let reader = SerializedFileReader::new(std::fs::File::open(f).unwrap()).unwrap();
        let md = reader.metadata();
        for rg in md.row_groups() {
            assert!(rg.sorting_columns().is_some_and(|s| s.len() == 2), "{rel}");
            for col in rg.columns() {
                let name = col.column_path().string();
                assert!(
                    matches!(col.compression(), Compression::ZSTD(_)),
                    "{rel} {name}"
                );
                // min/max per page on every column but the whole event (`raw`)
                assert_eq!(
                    col.column_index_offset().is_some(),
                    name != "raw",
                    "{rel} {name}: column index"
                );
                assert!(
                    col.offset_index_offset().is_some(),
                    "{rel} {name}: no offset index"
                );
                let bloom = col.bloom_filter_offset().is_some();
                let want = name == "actor" || name == "resource_path";
                assert_eq!(bloom, want, "{rel} {name}: bloom filter");
            }
        }
        // the filter answers: a stored actor is there, an unknown one is not
        let file = std::fs::File::open(f).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let actor_idx = builder
            .parquet_schema()
            .columns()
            .iter()
            .position(|c| c.name() == "actor")
            .unwrap();
        let sbbf = builder
            .get_row_group_column_bloom_filter(0, actor_idx)
            .unwrap()
            .expect("bloom filter on actor");
        let (first_actor, _) = prev_first_actor(f);
        assert!(sbbf.check(&first_actor.as_str()));
        assert!(!sbbf.check(&"system:serviceaccount:nowhere:nobody-at-all"));
        checked_blooms += 1;
    }
    assert!(checked_blooms > 10);
}

fn prev_first_actor(f: &Path) -> (String, i64) {
    let file = std::fs::File::open(f).unwrap();
    let b = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let actor = b
        .column(b.schema().index_of("actor").unwrap())
        .as_string::<i32>();
    let time = b
        .column(b.schema().index_of("time").unwrap())
        .as_primitive::<TimestampMicrosecondType>();
    (actor.value(0).to_string(), time.value(0))
}

#[test]
fn second_run_changes_nothing() {
    let (_tmp, data) = store();
    let opts = CompactOptions {
        target_rows: 150, // several outputs per partition, some of them under half full
        ..now_opts()
    };
    let first = run(&data, &opts).unwrap();
    assert!(first.files_out > first.partitions_compacted, "{first:?}");
    let files = parquet_files(&data);
    let keys = keys_by_partition(&data);
    let second = run(&data, &opts).unwrap();
    assert_eq!(second.partitions_compacted, 0, "{second:?}");
    assert_eq!(parquet_files(&data), files);
    assert_eq!(keys_by_partition(&data), keys);
    // a bigger target merges the half-empty files, still keeping every key
    let third = run(&data, &now_opts()).unwrap();
    assert!(third.partitions_compacted > 0);
    assert_eq!(keys_by_partition(&data), keys);
}

#[test]
fn young_partitions_wait() {
    let (_tmp, data) = store();
    let files = parquet_files(&data);
    let s = run(&data, &CompactOptions::default()).unwrap();
    assert_eq!(s.partitions_compacted, 0);
    assert!(s.partitions_too_young > 10);
    assert_eq!(parquet_files(&data), files);
}

/// A crash after any step leaves no row lost; the next run finishes or undoes the merge
/// and the store ends exactly as an uninterrupted run leaves it.
#[test]
fn crash_between_steps_is_recovered_by_the_next_run() {
    for (crash, forward) in [
        (CrashPoint::Manifest, false),
        (CrashPoint::FirstOutput, false),
        (CrashPoint::Outputs, true),
        (CrashPoint::FirstDelete, true),
        (CrashPoint::Deletes, true),
    ] {
        let (_tmp, data) = store();
        let before = keys_by_partition(&data);
        // the first partition merged becomes two outputs (its files are all small)
        let first = before
            .iter()
            .find(|(p, _)| p.starts_with("events/"))
            .unwrap();
        assert!(first.1.len() >= 60, "{}: {} rows", first.0, first.1.len());
        let opts = CompactOptions {
            target_rows: first.1.len() * 2 / 3,
            ..now_opts()
        };
        let err = run(
            &data,
            &CompactOptions {
                crash_after: Some(crash),
                ..opts.clone()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("simulated crash"), "{err}");
        let m = manifests(&data);
        assert_eq!(m.len(), 1, "{crash:?}");
        let outputs = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&m[0]).unwrap())
            .unwrap()["outputs"]
            .as_array()
            .unwrap()
            .len();
        assert!(outputs >= 2, "{crash:?}: {outputs} outputs");
        // nothing lost while the merge is half done (rows may be there twice)
        let mid = keys_by_partition(&data);
        for (p, keys) in &before {
            let mut m = mid[p].clone();
            m.dedup();
            assert_eq!(&m, keys, "{crash:?}: {p}");
        }
        let s = run(&data, &opts).unwrap();
        assert_eq!(
            (s.rolled_forward, s.rolled_back),
            if forward { (1, 0) } else { (0, 1) },
            "{crash:?}: {s:?}"
        );
        assert!(manifests(&data).is_empty(), "{crash:?}");
        assert_eq!(keys_by_partition(&data), before, "{crash:?}");
        // and the recovered store is fully compacted
        let again = run(&data, &opts).unwrap();
        assert_eq!(again.partitions_compacted, 0, "{crash:?}: {again:?}");
    }
}

#[test]
fn retention_drops_whole_partitions_of_that_source_only() {
    let (_tmp, data) = store();
    let before = keys_by_partition(&data);
    let old_k8s: Vec<&String> = before
        .keys()
        .filter(|p| {
            p.starts_with("events/source=kubernetes/date=2026-11-02/hour=")
                && p[p.len() - 2..].parse::<u32>().unwrap() < 12
        })
        .collect();
    assert!(old_k8s.len() >= 6, "{old_k8s:?}");
    let opts = CompactOptions {
        min_age: Duration::from_secs(3600),
        now: Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0).unwrap(),
        retain: compact::parse_retention("kubernetes=24h, quarantine=1000d").unwrap(),
        ..Default::default()
    };
    let s = run(&data, &opts).unwrap();
    assert_eq!(s.partitions_expired, old_k8s.len(), "{s:?}");
    let after = keys_by_partition(&data);
    for (p, keys) in &before {
        if old_k8s.contains(&p) {
            assert!(!after.contains_key(p), "{p} kept");
            assert!(!data.join(p).exists(), "{p}: empty directory left");
        } else {
            assert_eq!(after.get(p), Some(keys), "{p}");
        }
    }
}

#[test]
fn retention_names_are_checked() {
    let r = compact::parse_retention("kubernetes=90d,vault=365d").unwrap();
    assert_eq!(r["vault"], Duration::from_secs(365 * 86400));
    assert!(compact::parse_retention("k8s=90d").is_err());
    assert!(compact::parse_retention("vault=forever").is_err());
    assert!(compact::parse_retention("vault").is_err());
    assert!(compact::parse_retention("").unwrap().is_empty());
}

/// An unreadable file fails its partition only; the others are compacted.
#[test]
fn a_bad_partition_does_not_stop_the_others() {
    let (_tmp, data) = store();
    let before = keys_by_partition(&data);
    let bad_dir = data.join(before.keys().find(|p| p.starts_with("events/")).unwrap());
    let bad = bad_dir.join("part-0-garbage.parquet");
    std::fs::write(&bad, b"not parquet at all").unwrap();
    let files_in_bad = std::fs::read_dir(&bad_dir).unwrap().count();
    let s = run(&data, &now_opts()).unwrap();
    assert_eq!(s.partitions_failed, 1, "{s:?}");
    assert!(s.partitions_compacted > 10, "{s:?}");
    assert_eq!(std::fs::read_dir(&bad_dir).unwrap().count(), files_in_bad);
    assert!(manifests(&data).is_empty());
}

/// Days that ended long enough ago are rolled up from hour directories into daily files:
/// rows and keys unchanged, a crash mid roll-up recovered, and the writer still drops a
/// re-ingest of the same events (its dedup reads the day's files too).
#[test]
fn old_days_roll_up_into_daily_files_and_replays_stay_deduplicated() {
    let (_tmp, data) = store();
    let count = |sql: &str| count_sql(&data, sql);
    let (rows, unique) = (
        count("select count(*) from events"),
        count("select count(distinct row_key) from events"),
    );
    let opts = CompactOptions {
        daily_after: Some(Duration::ZERO),
        ..now_opts()
    };
    let err = run(
        &data,
        &CompactOptions {
            crash_after: Some(CrashPoint::Outputs),
            ..opts.clone()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("simulated crash"), "{err}");
    let s = run(&data, &opts).unwrap();
    assert_eq!(s.rolled_forward, 1, "{s:?}");
    assert!(s.partitions_compacted >= 1, "{s:?}");
    assert!(manifests(&data).is_empty());
    let events: Vec<PathBuf> = parquet_files(&data)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/events/"))
        .collect();
    assert!(!events.is_empty());
    for f in &events {
        let dir = f.parent().unwrap().file_name().unwrap().to_string_lossy();
        assert!(
            dir.starts_with("date="),
            "{} is not in a date directory",
            f.display()
        );
    }
    assert_eq!(count("select count(*) from events"), rows);
    assert_eq!(count("select count(distinct row_key) from events"), unique);
    assert_eq!(unique, rows);
    // a second run leaves the rolled-up days alone
    let again = run(&data, &opts).unwrap();
    assert_eq!(again.partitions_compacted, 0, "{again:?}");

    // re-ingesting the generated inputs writes nothing new
    let gen_dir = template().parent().unwrap().join("gen");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt
        .block_on(app::ingest(IngestConfig {
            inputs: vec![
                gen_dir.join("kubernetes").display().to_string(),
                gen_dir.join("vault").display().to_string(),
            ],
            format: Format::Auto,
            data_dir: data.clone(),
            decode: DecodeOptions::default(),
            limits: BatchLimits::default(),
            progress: false,
            rules: None,
            baselines: None,
        }))
        .unwrap();
    assert_eq!(s.duplicates, s.events, "{s:?}");
    assert_eq!(count("select count(*) from events"), rows);
}
