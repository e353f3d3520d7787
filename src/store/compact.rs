//! Compaction and retention of the store (`auditwatch compact`).
//!
//! **What it does.** The writer appends one small file per partition per batch, so a
//! partition directory (`events/source=…/date=…/hour=…`, `alerts/date=…`,
//! `quarantine/date=…`) collects hundreds of small files an hour. Compaction merges the
//! small files of a partition into one file (or a few of at most `target_rows` rows),
//! sorted — events by (actor, time), alerts by (time, id), quarantine by ingest time —
//! ZSTD-compressed, with page-level statistics and the page index, bloom filters on
//! `actor` and `resource_path` sized for the rows they cover, and row groups of
//! `row_group_rows` rows, so identity and path queries prune row groups and pages.
//!
//! **Why per hour, not per day.** A partition directory is the unit of the writer's
//! dedup: the row keys of a partition are read from the files in that directory. Rows
//! never leave their directory, so the key set of every partition (and the writer's cached
//! key sets) stay exactly what they were. An hour of 100M events a month is ~140k rows,
//! one file of a row group or two: big enough for pruning, and the hour directories still
//! let a time filter skip whole files by their statistics.
//!
//! **Crash story.** Each merge of a partition is a small transaction recorded in a
//! manifest `_compaction-<id>.json` in the partition itself (not a `.parquet` file:
//! readers and the writer's key loader ignore it):
//! 1. put the manifest (inputs, outputs to be written);
//! 2. put the outputs (each `put` is atomic: a file exists whole or not at all);
//! 3. delete the inputs;
//! 4. delete the manifest.
//!
//! Every run first finishes what an earlier run left: a manifest whose outputs all exist
//! is rolled forward (its inputs deleted, then the manifest); one with a missing output
//! is rolled back (the outputs that exist are deleted — the inputs are all still there,
//! since step 3 starts only after step 2). So a crash leaves duplicates visible (between
//! steps 2 and 4) only until the next run, never for good. While a merge is in flight a
//! reader that lists the directory between steps 2 and 3 may briefly count rows twice; a
//! reader that listed before step 3 and opens an input after it fails and can retry.
//! One compactor per store at a time (no lock is taken: object stores have none).
//!
//! **Dedup.** A merge keeps the first row of each `row_key` — the writer's dedup already
//! guarantees that, so rows and unique keys are unchanged; a duplicate left by two racing
//! writers is cleaned up and counted.
//!
//! **Daily roll-up** (`daily_after`). Investigations read weeks: a month of hour
//! directories is ~700 files per source to open and plan even when compacted. A day that
//! ended long enough ago (no late writes expected) is merged as one partition — its hour
//! directories' files and any files already in the date directory — into files in the
//! date directory, sorted by (actor, time). The manifest lives in the date directory and
//! names inputs by their path relative to it (`hour=07/part-….parquet`), so recovery is
//! unchanged. The writer's dedup still holds: the key set of an hour partition is read
//! from its own files *and* the files directly in its date directory.
//!
//! **Retention** deletes whole partitions whose time range ended more than the source's
//! retention ago (`kubernetes=90d,vault=365d`; also `alerts=` and `quarantine=`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{AsArray, UInt32Array};
use datafusion::arrow::compute::{
    SortColumn, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::{ParquetMetaDataReader, SortingColumn};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::reader::ChunkReader;
use datafusion::parquet::schema::types::ColumnPath;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::{ALERTS_DIR, EVENTS_DIR, QUARANTINE_DIR};
use crate::error::{Error, Result};

/// Names a retention may be given for: the event sources and the two other tables.
pub const RETENTION_KEYS: &[&str] = &["kubernetes", "vault", "openbao", "alerts", "quarantine"];

const MANIFEST_PREFIX: &str = "_compaction-";
const OUTPUT_PREFIX: &str = "compact-";

/// Settings of one compaction run.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Partitions with a file younger than this are left alone (still being written).
    pub min_age: Duration,
    /// Rows per output file at most; files of at least half this are not merged again.
    pub target_rows: usize,
    /// Rows per row group in the outputs.
    pub row_group_rows: usize,
    /// Retention per source (and `alerts`, `quarantine`); absent keys keep forever.
    pub retain: BTreeMap<String, Duration>,
    /// Events of a day that ended at least this long ago are rolled up from its hour
    /// directories into files in the date directory (see *Daily roll-up*); `None` keeps
    /// hour directories.
    pub daily_after: Option<Duration>,
    /// The clock (tests inject one).
    pub now: DateTime<Utc>,
    /// Stops the run after the given step, as a crash would (tests only).
    #[doc(hidden)]
    pub crash_after: Option<CrashPoint>,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            min_age: Duration::from_secs(3600),
            target_rows: 1_000_000,
            row_group_rows: 128 * 1024,
            retain: BTreeMap::new(),
            daily_after: None,
            now: Utc::now(),
            crash_after: None,
        }
    }
}

/// Where a simulated crash stops a merge (tests of the recovery).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Manifest written, no output yet.
    Manifest,
    /// The first output written (of several, or of one).
    FirstOutput,
    /// All outputs written, no input deleted.
    Outputs,
    /// One input deleted.
    FirstDelete,
    /// All inputs deleted, the manifest still there.
    Deletes,
}

/// What a run did (printed as one JSON line by `auditwatch compact`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CompactSummary {
    /// Partitions whose small files were merged.
    pub partitions_compacted: usize,
    pub files_in: usize,
    pub files_out: usize,
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Rows dropped because their `row_key` was already in the partition.
    pub duplicates_dropped: u64,
    /// Partitions skipped because a file was younger than `min_age`.
    pub partitions_too_young: usize,
    /// Interrupted merges finished (outputs complete: inputs deleted).
    pub rolled_forward: usize,
    /// Interrupted merges undone (outputs incomplete: outputs deleted).
    pub rolled_back: usize,
    /// Partitions left as they were because their merge failed (see the log); the others
    /// are compacted all the same.
    pub partitions_failed: usize,
    /// Partitions (and their files) deleted by retention.
    pub partitions_expired: usize,
    pub files_expired: usize,
}

/// Parses `kubernetes=90d,vault=365d`.
pub fn parse_retention(s: &str) -> Result<BTreeMap<String, Duration>> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("retention {item:?}: expected NAME=DURATION")))?;
        let k = k.trim();
        if !RETENTION_KEYS.contains(&k) {
            return Err(Error::Config(format!(
                "retention {item:?}: unknown name {k:?} (one of {})",
                RETENTION_KEYS.join(", ")
            )));
        }
        let d = crate::config::parse_duration(v.trim())?;
        out.insert(k.to_string(), d);
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Events,
    Alerts,
    Quarantine,
}

impl Table {
    /// Sort columns of the table's compacted files.
    fn sort_columns(self) -> &'static [&'static str] {
        match self {
            Table::Events => &["actor", "time"],
            Table::Alerts => &["time", "id"],
            Table::Quarantine => &["ingest_time"],
        }
    }

    fn bloom_columns(self) -> &'static [&'static str] {
        match self {
            Table::Events => &["actor", "resource_path"],
            Table::Alerts => &["actor"],
            Table::Quarantine => &[],
        }
    }
}

/// One partition directory and what is in it.
struct Partition {
    dir: String,
    table: Table,
    files: Vec<ObjectMeta>,
    manifests: Vec<ObjectMeta>,
}

impl Partition {
    /// The retention key and the end of the time range the partition covers.
    fn retention(&self) -> Option<(String, DateTime<Utc>)> {
        let mut key = match self.table {
            Table::Events => None,
            Table::Alerts => Some("alerts".to_string()),
            Table::Quarantine => Some("quarantine".to_string()),
        };
        let (mut date, mut hour) = (None, None);
        for seg in self.dir.split('/') {
            if let Some(s) = seg.strip_prefix("source=") {
                key = Some(s.to_string());
            } else if let Some(d) = seg.strip_prefix("date=") {
                date = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
            } else if let Some(h) = seg.strip_prefix("hour=") {
                hour = h.parse::<u32>().ok();
            }
        }
        let start = date?.and_hms_opt(0, 0, 0)?.and_utc();
        let end = match hour {
            Some(h) => start + chrono::Duration::hours(h as i64 + 1),
            None => start + chrono::Duration::days(1),
        };
        Some((key?, end))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// File names (in the partition directory) the outputs replace.
    inputs: Vec<String>,
    /// File names written by the merge.
    outputs: Vec<String>,
}

/// Runs retention, then recovery and compaction of every partition of the store.
pub async fn compact(store: Arc<dyn ObjectStore>, opts: &CompactOptions) -> Result<CompactSummary> {
    if opts.target_rows == 0 || opts.row_group_rows == 0 {
        return Err(Error::Config(
            "target rows and row group rows must be at least 1".into(),
        ));
    }
    let mut summary = CompactSummary::default();
    let mut parts = list_partitions(store.as_ref()).await?;
    if let Some(after) = opts.daily_after {
        parts = roll_up_days(parts, opts.now, after);
    }
    for part in parts {
        if expire(store.as_ref(), &part, opts, &mut summary).await? {
            continue;
        }
        let mut part = part;
        recover(store.as_ref(), &mut part, &mut summary).await?;
        if let Err(e) = compact_partition(store.as_ref(), &part, opts, &mut summary).await {
            if opts.crash_after.is_some() {
                return Err(e);
            }
            // one bad partition (an unreadable file, a schema it cannot merge) must not
            // stop the others: undo what its merge wrote, as the next run would
            tracing::warn!(partition = %part.dir, error = %e, "partition not compacted");
            summary.partitions_failed += 1;
            let mut again = list_partition(store.as_ref(), &part.dir, part.table).await?;
            recover(store.as_ref(), &mut again, &mut CompactSummary::default()).await?;
        }
    }
    Ok(summary)
}

/// A file's path relative to its partition directory (its name, or `hour=HH/name` inside a
/// rolled-up day).
fn rel<'a>(dir: &str, f: &'a ObjectMeta) -> &'a str {
    let loc = f.location.as_ref();
    loc.strip_prefix(dir)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(loc)
}

/// Merges the events partitions of every day that ended at least `after` ago (its hour
/// directories and the date directory itself) into one partition per date directory.
fn roll_up_days(parts: Vec<Partition>, now: DateTime<Utc>, after: Duration) -> Vec<Partition> {
    let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
    let mut out = Vec::new();
    let mut days: BTreeMap<String, Partition> = BTreeMap::new();
    for p in parts {
        let date_dir = match p.dir.rsplit_once('/') {
            Some((d, last)) if last.starts_with("hour=") => d.to_string(),
            _ => p.dir.clone(),
        };
        let day_over = date_dir
            .rsplit_once("/date=")
            .and_then(|(_, d)| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .and_then(|d| d.succ_opt()?.and_hms_opt(0, 0, 0))
            .is_some_and(|end| now.signed_duration_since(end.and_utc()) >= after);
        if p.table != Table::Events || !day_over {
            out.push(p);
            continue;
        }
        let day = days.entry(date_dir.clone()).or_insert_with(|| Partition {
            dir: date_dir,
            table: Table::Events,
            files: vec![],
            manifests: vec![],
        });
        day.files.extend(p.files);
        day.manifests.extend(p.manifests);
    }
    for mut d in days.into_values() {
        d.files.sort_by(|a, b| a.location.cmp(&b.location));
        d.manifests.sort_by(|a, b| a.location.cmp(&b.location));
        out.push(d);
    }
    out
}

/// One partition directory as it is now.
async fn list_partition(store: &dyn ObjectStore, dir: &str, table: Table) -> Result<Partition> {
    let mut part = Partition {
        dir: dir.to_string(),
        table,
        files: vec![],
        manifests: vec![],
    };
    let prefix = ObjPath::from(dir);
    let objects: Vec<ObjectMeta> = store.list(Some(&prefix)).try_collect().await?;
    for o in objects {
        match o.location.as_ref().rsplit_once('/') {
            Some((d, name)) if d == dir => {
                if name.starts_with(MANIFEST_PREFIX) && name.ends_with(".json") {
                    part.manifests.push(o);
                } else if name.ends_with(".parquet") {
                    part.files.push(o);
                }
            }
            _ => {}
        }
    }
    Ok(part)
}

async fn list_partitions(store: &dyn ObjectStore) -> Result<Vec<Partition>> {
    let mut out = Vec::new();
    for (top, table) in [
        (EVENTS_DIR, Table::Events),
        (ALERTS_DIR, Table::Alerts),
        (QUARANTINE_DIR, Table::Quarantine),
    ] {
        let mut parts: BTreeMap<String, Partition> = BTreeMap::new();
        let prefix = ObjPath::from(top);
        let objects: Vec<ObjectMeta> = store.list(Some(&prefix)).try_collect().await?;
        for o in objects {
            let loc = o.location.as_ref();
            let Some((dir, name)) = loc.rsplit_once('/') else {
                continue;
            };
            let p = parts.entry(dir.to_string()).or_insert_with(|| Partition {
                dir: dir.to_string(),
                table,
                files: vec![],
                manifests: vec![],
            });
            if name.starts_with(MANIFEST_PREFIX) && name.ends_with(".json") {
                p.manifests.push(o);
            } else if name.ends_with(".parquet") {
                p.files.push(o);
            }
        }
        for mut p in parts.into_values() {
            p.files.sort_by(|a, b| a.location.cmp(&b.location));
            p.manifests.sort_by(|a, b| a.location.cmp(&b.location));
            out.push(p);
        }
    }
    Ok(out)
}

/// Deletes the partition if its retention has passed. Returns whether it did.
async fn expire(
    store: &dyn ObjectStore,
    part: &Partition,
    opts: &CompactOptions,
    summary: &mut CompactSummary,
) -> Result<bool> {
    let Some((key, end)) = part.retention() else {
        return Ok(false);
    };
    let Some(keep) = opts.retain.get(&key) else {
        return Ok(false);
    };
    let keep = chrono::Duration::from_std(*keep).unwrap_or(chrono::Duration::MAX);
    if opts
        .now
        .checked_sub_signed(keep)
        .is_none_or(|cut| end > cut)
    {
        return Ok(false);
    }
    // manifests last: an interrupted expiry is simply expired again
    for f in part.files.iter().chain(&part.manifests) {
        delete_if_exists(store, &f.location).await?;
    }
    summary.partitions_expired += 1;
    summary.files_expired += part.files.len();
    tracing::info!(partition = %part.dir, "partition expired");
    Ok(true)
}

/// Finishes or undoes merges that an earlier run left in the partition.
async fn recover(
    store: &dyn ObjectStore,
    part: &mut Partition,
    summary: &mut CompactSummary,
) -> Result<()> {
    for m in std::mem::take(&mut part.manifests) {
        let bytes = store.get(&m.location).await?.bytes().await?;
        let manifest: Manifest = match serde_json::from_slice(&bytes) {
            Ok(x) => x,
            Err(e) => {
                // a manifest is written whole; an unreadable one is not ours to act on
                tracing::warn!(manifest = %m.location, error = %e, "unreadable compaction manifest left alone");
                continue;
            }
        };
        let present: HashSet<&str> = part.files.iter().map(|f| rel(&part.dir, f)).collect();
        let complete = manifest
            .outputs
            .iter()
            .all(|o| present.contains(o.as_str()));
        let doomed: HashSet<String> = if complete {
            manifest.inputs.iter().cloned().collect()
        } else {
            manifest.outputs.iter().cloned().collect()
        };
        for name in &doomed {
            delete_if_exists(store, &ObjPath::from(format!("{}/{name}", part.dir))).await?;
        }
        delete_if_exists(store, &m.location).await?;
        let dir = part.dir.clone();
        part.files.retain(|f| !doomed.contains(rel(&dir, f)));
        if complete {
            summary.rolled_forward += 1;
        } else {
            summary.rolled_back += 1;
        }
        tracing::info!(partition = %part.dir, complete, "interrupted compaction recovered");
    }
    Ok(())
}

async fn compact_partition(
    store: &dyn ObjectStore,
    part: &Partition,
    opts: &CompactOptions,
    summary: &mut CompactSummary,
) -> Result<()> {
    if part.files.len() < 2 {
        return Ok(());
    }
    let young = chrono::Duration::from_std(opts.min_age).unwrap_or(chrono::Duration::MAX);
    if part
        .files
        .iter()
        .any(|f| opts.now.signed_duration_since(f.last_modified) < young)
    {
        summary.partitions_too_young += 1;
        return Ok(());
    }
    // row counts from the footers: files already large stay as they are
    let rows: Vec<u64> = futures::stream::iter(part.files.iter())
        .map(|f| row_count(store, f))
        .buffered(16)
        .try_collect()
        .await?;
    let big = (opts.target_rows as u64).div_ceil(2);
    let small: Vec<(&ObjectMeta, u64)> = part
        .files
        .iter()
        .zip(rows)
        .filter(|(_, r)| *r < big)
        .collect();
    if small.len() < 2 {
        return Ok(());
    }
    // bins of at most target_rows (a bin is merged in memory)
    let mut bins: Vec<Vec<&ObjectMeta>> = vec![vec![]];
    let mut in_bin = 0u64;
    for (f, r) in &small {
        if in_bin + r > opts.target_rows as u64 && !bins.last().expect("non-empty").is_empty() {
            bins.push(vec![]);
            in_bin = 0;
        }
        bins.last_mut().expect("non-empty").push(f);
        in_bin += r;
    }
    let stamp = format!(
        "{}-{}",
        opts.now.timestamp_millis(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let outputs: Vec<String> = (0..bins.len())
        .map(|i| format!("{OUTPUT_PREFIX}{stamp}-{i}.parquet"))
        .collect();
    let manifest = Manifest {
        inputs: small
            .iter()
            .map(|(f, _)| rel(&part.dir, f).to_string())
            .collect(),
        outputs: outputs.clone(),
    };
    let manifest_path = ObjPath::from(format!("{}/{MANIFEST_PREFIX}{stamp}.json", part.dir));
    let json = serde_json::to_vec(&manifest).map_err(|e| Error::Io(e.into()))?;
    store.put(&manifest_path, PutPayload::from(json)).await?;
    crash_point(opts, CrashPoint::Manifest)?;

    let mut seen: HashSet<u64> = HashSet::new();
    for (i, bin) in bins.iter().enumerate() {
        let mut inputs = Vec::with_capacity(bin.len());
        for f in bin {
            inputs.push(store.get(&f.location).await?.bytes().await?);
            summary.bytes_in += f.size;
        }
        let (table, target) = (part.table, opts.row_group_rows);
        let prior = std::mem::take(&mut seen);
        let merged = tokio::task::spawn_blocking(move || merge(table, inputs, target, prior))
            .await
            .map_err(|e| Error::Config(format!("compaction thread failed: {e}")))??;
        seen = merged.seen;
        let path = ObjPath::from(format!("{}/{}", part.dir, outputs[i]));
        summary.bytes_out += merged.file.len() as u64;
        summary.rows += merged.rows;
        summary.duplicates_dropped += merged.duplicates;
        store.put(&path, PutPayload::from(merged.file)).await?;
        if i == 0 {
            crash_point(opts, CrashPoint::FirstOutput)?;
        }
    }
    crash_point(opts, CrashPoint::Outputs)?;
    for (i, (f, _)) in small.iter().enumerate() {
        delete_if_exists(store, &f.location).await?;
        if i == 0 {
            crash_point(opts, CrashPoint::FirstDelete)?;
        }
    }
    crash_point(opts, CrashPoint::Deletes)?;
    delete_if_exists(store, &manifest_path).await?;
    summary.partitions_compacted += 1;
    summary.files_in += small.len();
    summary.files_out += outputs.len();
    tracing::debug!(partition = %part.dir, files_in = small.len(), files_out = outputs.len(), "partition compacted");
    Ok(())
}

fn crash_point(opts: &CompactOptions, at: CrashPoint) -> Result<()> {
    if opts.crash_after == Some(at) {
        return Err(Error::Io(std::io::Error::other(format!(
            "simulated crash after {at:?}"
        ))));
    }
    Ok(())
}

async fn delete_if_exists(store: &dyn ObjectStore, path: &ObjPath) -> Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Rows of a Parquet file, from its footer (two range reads).
async fn row_count(store: &dyn ObjectStore, f: &ObjectMeta) -> Result<u64> {
    if f.size < 12 {
        return Err(Error::Parquet(
            datafusion::parquet::errors::ParquetError::General(format!(
                "{} is too small to be Parquet",
                f.location
            )),
        ));
    }
    let tail = store.get_range(&f.location, f.size - 8..f.size).await?;
    let len = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as u64;
    if &tail[4..] != b"PAR1" || len + 8 > f.size {
        return Err(Error::Parquet(
            datafusion::parquet::errors::ParquetError::General(format!(
                "{} has no Parquet footer",
                f.location
            )),
        ));
    }
    let meta = store
        .get_range(&f.location, f.size - 8 - len..f.size - 8)
        .await?;
    let md = ParquetMetaDataReader::decode_metadata(&meta)?;
    Ok(md.file_metadata().num_rows().max(0) as u64)
}

struct Merged {
    file: Vec<u8>,
    rows: u64,
    duplicates: u64,
    seen: HashSet<u64>,
}

/// Reads the inputs, sorts, drops repeated row keys and encodes one output file.
fn merge<R: ChunkReader + 'static>(
    table: Table,
    inputs: Vec<R>,
    row_group_rows: usize,
    mut seen: HashSet<u64>,
) -> Result<Merged> {
    let mut batches = Vec::new();
    for bytes in inputs {
        for b in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
            batches.push(b?);
        }
    }
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| Error::Config("nothing to merge".into()))?;
    let all = concat_batches(&schema, &batches)?;
    drop(batches);
    let sort: Vec<SortColumn> = table
        .sort_columns()
        .iter()
        .map(|c| {
            Ok(SortColumn {
                values: all.column(schema.index_of(c)?).clone(),
                options: None,
            })
        })
        .collect::<Result<_>>()?;
    let order = lexsort_to_indices(&sort, None)?;
    // keep the first row of each key, in sorted order
    let keys = all
        .column(schema.index_of("row_key")?)
        .as_primitive::<UInt64Type>();
    let mut keep = Vec::with_capacity(order.len());
    for &i in order.values() {
        if seen.insert(keys.value(i as usize)) {
            keep.push(i);
        }
    }
    let duplicates = (order.len() - keep.len()) as u64;
    let keep = UInt32Array::from(keep);

    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows))
        // pages of at most 8k rows: the page index can skip inside a row group
        .set_data_page_row_count_limit(8 * 1024)
        .set_sorting_columns(Some(
            table
                .sort_columns()
                .iter()
                .map(|c| {
                    Ok(SortingColumn {
                        column_idx: schema.index_of(c)? as i32,
                        descending: false,
                        nulls_first: true,
                    })
                })
                .collect::<Result<_>>()?,
        ));
    if schema.column_with_name(super::NO_STATISTICS).is_some() {
        props = props.set_column_statistics_enabled(
            ColumnPath::from(super::NO_STATISTICS),
            EnabledStatistics::None,
        );
    }
    for c in table.bloom_columns() {
        // sized for a row group's rows; the writer folds each filter down to the distinct
        // values it actually saw
        props = props
            .set_column_bloom_filter_enabled(ColumnPath::from(*c), true)
            .set_column_bloom_filter_fpp(ColumnPath::from(*c), 0.01)
            .set_column_bloom_filter_max_ndv(ColumnPath::from(*c), row_group_rows as u64);
    }
    let mut file = Vec::new();
    let mut w = ArrowWriter::try_new(&mut file, schema.clone(), Some(props.build()))?;
    let chunk = row_group_rows.min(64 * 1024).max(1);
    let mut at = 0;
    while at < keep.len() {
        let n = chunk.min(keep.len() - at);
        w.write(&take_record_batch(&all, &keep.slice(at, n))?)?;
        at += n;
    }
    w.close()?;
    Ok(Merged {
        file,
        rows: keep.len() as u64,
        duplicates,
        seen,
    })
}
