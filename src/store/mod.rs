//! Store: append-only Parquet files written through `object_store` (a local directory by
//! default), partitioned by source and event date/hour:
//!
//! ```text
//! <root>/events/source=<source>/date=<YYYY-MM-DD>/hour=<HH>/part-<ms>-<uuid>.parquet
//! <root>/events/source=<source>/date=<YYYY-MM-DD>/compact-….parquet   (a rolled-up day)
//! <root>/quarantine/date=<YYYY-MM-DD>/part-<ms>-<uuid>.parquet
//! ```
//!
//! Effectively-once: every row carries a stable `row_key`. Replays of an event have the
//! same source and event time, so they land in the same partition; before writing, the
//! rows whose key is already in that partition (read from the files' `row_key` column,
//! then cached) are dropped and counted as duplicates. Files are written whole with a
//! single `put` (atomic on every object store), so readers never see partial files; in a
//! local directory the `put` returns only once the file and its directories are fsync'd
//! ([`durable::SyncedLocal`]), so a stored Kafka offset never outlives its rows.
//!
//! Files are sorted by (actor, time) and carry page-level statistics and bloom filters on
//! `actor` and `resource_path` so identity and path queries prune most row groups.

pub mod compact;
pub mod durable;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringViewArray, UInt32Array,
};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{
    DataType, Schema, SchemaRef, TimestampMicrosecondType, UInt64Type,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Error, Result};

pub const EVENTS_DIR: &str = "events";
pub const QUARANTINE_DIR: &str = "quarantine";
pub const ALERTS_DIR: &str = "alerts";

/// What one append did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendStats {
    pub written: usize,
    pub duplicates: usize,
    pub files: usize,
}

impl std::ops::AddAssign for AppendStats {
    fn add_assign(&mut self, o: Self) {
        self.written += o.written;
        self.duplicates += o.duplicates;
        self.files += o.files;
    }
}

/// How many partitions' key sets stay in memory.
const KEY_CACHE_PARTITIONS: usize = 64;

/// Row keys held in memory across those partitions (~10-18 bytes each in a hash set:
/// 32M is ~350-550 MB). Checked as each partition is about to be written (so it may be
/// passed by one batch): past it the oldest partitions' sets are dropped — never the one
/// being written — and reloaded from their files if their hour is written again.
const KEY_CACHE_MAX_KEYS: usize = 32_000_000;

/// Keys per generation of one partition's set (see [`Keys`]): the partition being written
/// holds at most two, a quarter of [`KEY_CACHE_MAX_KEYS`] each.
const KEY_GENERATION: usize = KEY_CACHE_MAX_KEYS / 4;

pub struct Store {
    store: Arc<dyn ObjectStore>,
    root: PathBuf,
    keys: HashMap<String, Keys>,
    lru: VecDeque<String>,
    max_keys: usize,
    generation: usize,
}

/// One partition's row keys in memory: the newest of them, in two generations. When the
/// newer generation is full it becomes the older one and the oldest keys are forgotten,
/// so a partition never holds more than two generations — an hour at 250k events/s would
/// otherwise collect 900M keys. Replays of a restart or a rebalance are of the last
/// uncommitted seconds, well inside the window (8M keys: half a minute at 250k events/s,
/// half an hour at 5k/s); a duplicate of an older row is stored again and dropped by
/// `compact` when it merges the partition.
struct Keys {
    newer: KeySet,
    older: KeySet,
    generation: usize,
}

impl Keys {
    /// False when `key` is already known; otherwise remembers it.
    fn insert(&mut self, key: u64) -> bool {
        if self.older.contains(&key) || !self.newer.insert(key) {
            return false;
        }
        if self.newer.len() >= self.generation {
            self.older = std::mem::take(&mut self.newer);
        }
        true
    }

    fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }
}

/// A partition's row keys. They are xxh3 hashes already; foldhash (seeded per process, so
/// crafted event ids cannot aim at one bucket) mixes them in about a nanosecond; the
/// standard SipHash showed as ~1.5% of the store writer's samples (one lookup per row).
type KeySet = HashSet<u64, foldhash::fast::RandomState>;

/// Event columns written without compression by `append_events` (few distinct values:
/// dictionary-encoded, compression gains little); `compact` compresses everything.
const UNCOMPRESSED_ON_INGEST: &[&str] = &[
    "source",
    "cluster_name",
    "stage",
    "action",
    "verb",
    "actor_type",
    "actor_namespace",
    "impersonator",
    "auth_method",
    "resource_type",
    "resource_namespace",
    "subresource",
    "api_group",
    "secret_access",
    "outcome",
    "status_code",
    "policies",
    "kafka_topic",
    "kafka_partition",
];

/// The column written without min/max statistics: `raw`, the whole event, is never
/// filtered by range, and comparing ~1 KB strings that share their first ~50 bytes for
/// every value's page statistics was ~2% of the store writer's samples.
pub(crate) const NO_STATISTICS: &str = "raw";

/// Columns written without a dictionary: (nearly) every row has its own value.
const UNIQUE_PER_ROW: &[&str] = &["time", "event_id", "row_key", "kafka_offset", "raw"];

impl Store {
    /// Opens (creating if needed) a store in a local directory.
    pub fn open_local(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("cannot create data dir {}: {e}", dir.display())))?;
        let root = dir
            .canonicalize()
            .map_err(|e| Error::Config(format!("cannot open data dir {}: {e}", dir.display())))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&root)?;
        Ok(Store {
            store: Arc::new(durable::SyncedLocal::new(fs, root.clone())),
            root,
            keys: HashMap::new(),
            lru: VecDeque::new(),
            max_keys: KEY_CACHE_MAX_KEYS,
            generation: KEY_GENERATION,
        })
    }

    /// Forgets cached row keys; they are reloaded from the files on the next write. Call
    /// when another writer may have written (e.g. after a consumer-group rebalance).
    pub fn invalidate_keys(&mut self) {
        self.keys.clear();
        self.lru.clear();
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Appends `access_events` rows, dropping rows already stored. Returns what was written.
    pub async fn append_events(&mut self, batch: &RecordBatch) -> Result<AppendStats> {
        if batch.num_rows() == 0 {
            return Ok(AppendStats::default());
        }
        let idx = |n: &str| batch.schema().index_of(n).map_err(Error::from);
        let source = batch.column(idx("source")?).as_string::<i32>().clone();
        let time = batch
            .column(idx("time")?)
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let keys = batch
            .column(idx("row_key")?)
            .as_primitive::<UInt64Type>()
            .clone();
        let actor = batch.column(idx("actor")?).as_string::<i32>().clone();
        // group row indices by partition: (source, hour since the epoch), the path is
        // formatted once per group
        let mut groups: HashMap<(&str, i64), Vec<u32>> = HashMap::new();
        for i in 0..batch.num_rows() {
            let hour = time.value(i).div_euclid(3_600_000_000);
            groups
                .entry((source.value(i), hour))
                .or_default()
                .push(i as u32);
        }
        let mut stats = AppendStats::default();
        // each file's rows are taken (reordered) out of the batch; `raw`, most of its
        // bytes, is taken as views into the batch's buffer instead of being copied
        let viewed = unique_strings_as_views(batch)?;
        let mut parts: Vec<(String, Vec<u32>)> = groups
            .into_iter()
            .map(|((src, hour), rows)| (partition_path(src, hour * 3_600_000_000), rows))
            .collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        for (part, rows) in parts {
            let known = self.partition_keys(&part).await?;
            let mut keep = Vec::with_capacity(rows.len());
            for r in rows {
                if known.insert(keys.value(r as usize)) {
                    keep.push(r);
                } else {
                    stats.duplicates += 1;
                }
            }
            if keep.is_empty() {
                continue;
            }
            // files are sorted by (actor, time): order the row indices, then one `take`
            keep.sort_by(|&a, &b| {
                let (a, b) = (a as usize, b as usize);
                let key = |r: usize| (actor.is_valid(r).then(|| actor.value(r)), time.value(r));
                key(a).cmp(&key(b)).then(a.cmp(&b))
            });
            let sub = take_record_batch(&viewed, &UInt32Array::from(keep))?;
            let path = ObjPath::from(format!("{part}/{}", file_name()));
            if let Err(e) = self
                .put_parquet(&path, &sub, batch.schema(), &["actor", "resource_path"])
                .await
            {
                // nothing was written: forget the keys we just claimed
                self.keys.remove(&part);
                return Err(e);
            }
            stats.written += sub.num_rows();
            stats.files += 1;
        }
        Ok(stats)
    }

    /// Appends quarantine rows (deduplicated on their `row_key` across the whole table).
    pub async fn append_quarantine(&mut self, batch: &RecordBatch) -> Result<AppendStats> {
        if batch.num_rows() == 0 {
            return Ok(AppendStats::default());
        }
        let part = QUARANTINE_DIR.to_string();
        let keys = batch
            .column(batch.schema().index_of("row_key")?)
            .as_primitive::<UInt64Type>()
            .clone();
        let known = self.partition_keys(&part).await?;
        let mut keep = Vec::new();
        let mut stats = AppendStats::default();
        for i in 0..batch.num_rows() {
            if known.insert(keys.value(i)) {
                keep.push(i as u32);
            } else {
                stats.duplicates += 1;
            }
        }
        if keep.is_empty() {
            return Ok(stats);
        }
        let sub = take_record_batch(batch, &UInt32Array::from(keep))?;
        let date = chrono::Utc::now().format("%Y-%m-%d");
        let path = ObjPath::from(format!("{part}/date={date}/{}", file_name()));
        if let Err(e) = self.put_parquet(&path, &sub, sub.schema(), &[]).await {
            self.keys.remove(&part);
            return Err(e);
        }
        stats.written = sub.num_rows();
        stats.files = 1;
        Ok(stats)
    }

    /// Appends alerts to `alerts/date=<YYYY-MM-DD>/`, dropping ids already stored (a replay
    /// raises the same alert ids).
    pub async fn append_alerts(&mut self, alerts: &[crate::detect::Alert]) -> Result<AppendStats> {
        Ok(self.append_new_alerts(alerts).await?.0)
    }

    /// Like [`append_alerts`](Self::append_alerts), also returning the alerts that were new.
    pub async fn append_new_alerts(
        &mut self,
        alerts: &[crate::detect::Alert],
    ) -> Result<(AppendStats, Vec<crate::detect::Alert>)> {
        let mut fresh_all = Vec::new();
        let mut stats = AppendStats::default();
        let mut by_date: std::collections::BTreeMap<String, Vec<&crate::detect::Alert>> =
            Default::default();
        for a in alerts {
            let t = chrono::DateTime::from_timestamp_micros(a.time).unwrap_or_default();
            by_date
                .entry(format!("{ALERTS_DIR}/date={}", t.format("%Y-%m-%d")))
                .or_default()
                .push(a);
        }
        for (part, list) in by_date {
            let known = self.partition_keys(&part).await?;
            let keep: Vec<&crate::detect::Alert> = list
                .into_iter()
                .filter(|a| {
                    let fresh = known.insert(alert_key(&a.id));
                    if !fresh {
                        stats.duplicates += 1;
                    }
                    fresh
                })
                .collect();
            if keep.is_empty() {
                continue;
            }
            let batch = alerts_batch(&keep)?;
            let path = ObjPath::from(format!("{part}/{}", file_name()));
            if let Err(e) = self
                .put_parquet(&path, &batch, batch.schema(), &["actor"])
                .await
            {
                self.keys.remove(&part);
                return Err(e);
            }
            stats.written += batch.num_rows();
            stats.files += 1;
            fresh_all.extend(keep.into_iter().cloned());
        }
        Ok((stats, fresh_all))
    }

    /// Writes `batch` as a Parquet file of `schema`: the batch's own, or the same with
    /// some `Utf8` columns given as `Utf8View` (see [`unique_strings_as_views`]). The
    /// file is the same either way: the writer encodes each column from its array, Parquet
    /// stores both kinds as UTF-8 byte arrays, and the Arrow schema embedded in the file
    /// is `schema` (the store tests read it back).
    async fn put_parquet(
        &self,
        path: &ObjPath,
        batch: &RecordBatch,
        schema: SchemaRef,
        bloom: &[&str],
    ) -> Result<()> {
        let mut props = WriterProperties::builder()
            // LZ4 on the ingest path: ingest files live until `compact` rewrites them
            // at zstd 3. zstd 1 was about a third of the writer's time (mostly on `raw`);
            // with LZ4 the consumer path runs ~10% faster (bench pipeline, 500k records:
            // 257k → 283k records/s, mean of 5) for files 1.6× the size (41 → 67 MB).
            .set_compression(Compression::LZ4_RAW)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(128 * 1024));
        // Columns of a few distinct values are dictionary pages of small indexes that
        // compression barely shrinks (under zstd, a compression and a decompression context
        // per column chunk took a fifth of the writer's time on ~10k-row files).
        for f in batch.schema().fields() {
            if UNCOMPRESSED_ON_INGEST.contains(&f.name().as_str()) {
                let col = match f.data_type() {
                    datafusion::arrow::datatypes::DataType::List(_) => {
                        ColumnPath::new(vec![f.name().clone(), "list".into(), "item".into()])
                    }
                    _ => ColumnPath::from(f.name().as_str()),
                };
                props = props.set_column_compression(col, Compression::UNCOMPRESSED);
            }
        }
        // Columns of (nearly) one value per row: a dictionary only costs there. Under
        // ~1 MB a column chunk stays dictionary-encoded, so on the small files a batch
        // spread over many hours makes, every `raw` value was hashed, interned and copied
        // into a dictionary page as long as the data itself.
        for c in UNIQUE_PER_ROW {
            if batch.schema().column_with_name(c).is_some() {
                props = props.set_column_dictionary_enabled(ColumnPath::from(*c), false);
            }
        }
        if batch.schema().column_with_name(NO_STATISTICS).is_some() {
            props = props
                .set_column_statistics_enabled(
                    ColumnPath::from(NO_STATISTICS),
                    EnabledStatistics::None,
                )
                // `raw` in 256 KB pages instead of the default 1 MB: each page's encode
                // and compress buffers grow from empty by doubling, and smaller ones stay
                // in cache and are reused by the allocator instead of faulting in fresh
                // pages (bench pipeline, 300k records, 3 interleaved runs: writer 2.81 →
                // 2.62 µs/record, files +2%; 128 KB pages +4%, 32 KB +23%, as LZ4's 64 KB
                // window loses matches across page boundaries)
                .set_column_data_page_size_limit(ColumnPath::from(NO_STATISTICS), 256 * 1024);
        }
        for c in bloom {
            // sized for this file's rows (the default is sized for a million distinct
            // values: a 1 MB filter allocated, cleared and folded down per file)
            props = props
                .set_column_bloom_filter_enabled(ColumnPath::from(*c), true)
                .set_column_bloom_filter_max_ndv(
                    ColumnPath::from(*c),
                    batch.num_rows().max(1) as u64,
                );
        }
        let mut buf = Vec::with_capacity(values_size(batch) / 4);
        let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props.build()))?;
        w.write(batch)?;
        w.close()?;
        self.store.put(path, PutPayload::from(buf)).await?;
        Ok(())
    }

    /// The row keys of one partition directory (its newest, loaded once, then cached).
    async fn partition_keys(&mut self, part: &str) -> Result<&mut Keys> {
        if !self.keys.contains_key(part) {
            let older = self.load_keys(part).await?;
            let keys = Keys {
                newer: KeySet::default(),
                older,
                generation: self.generation.max(1),
            };
            self.keys.insert(part.to_string(), keys);
            self.lru.push_back(part.to_string());
            while self.lru.len() > KEY_CACHE_PARTITIONS {
                if let Some(old) = self.lru.pop_front() {
                    self.keys.remove(&old);
                }
            }
        }
        let mut held: usize = self.keys.values().map(Keys::len).sum();
        while held > self.max_keys {
            let Some(i) = self.lru.iter().position(|p| p != part) else {
                break;
            };
            if let Some(old) = self.lru.remove(i)
                && let Some(set) = self.keys.remove(&old)
            {
                held -= set.len();
            }
        }
        Ok(self.keys.get_mut(part).expect("inserted above"))
    }

    /// The row keys of a partition's newest files, about a generation of them (whole
    /// files, newest first).
    async fn load_keys(&self, part: &str) -> Result<KeySet> {
        let prefix = ObjPath::from(part);
        let mut files: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_filter(|m| futures::future::ready(m.location.as_ref().ends_with(".parquet")))
            .try_collect()
            .await?;
        // an hour's rows may also be in its day's rolled-up files (`compact --daily-after`)
        if let Some((date_dir, _)) = part.rsplit_once("/hour=") {
            let listed = self
                .store
                .list_with_delimiter(Some(&ObjPath::from(date_dir)))
                .await?;
            files.extend(
                listed
                    .objects
                    .into_iter()
                    .filter(|m| m.location.as_ref().ends_with(".parquet")),
            );
        }
        files.sort_by(|a, b| (b.last_modified, &b.location).cmp(&(a.last_modified, &a.location)));
        let mut set = KeySet::default();
        for f in files {
            if set.len() >= self.generation {
                break;
            }
            let bytes = self.store.get(&f.location).await?.bytes().await?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
            let mask = datafusion::parquet::arrow::ProjectionMask::columns(
                builder.parquet_schema(),
                ["row_key"],
            );
            for b in builder.with_projection(mask).build()? {
                let b = b?;
                let col = b.column(0).as_primitive::<UInt64Type>();
                set.extend(col.values().iter().copied());
            }
        }
        Ok(set)
    }
}

fn alert_key(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// Alerts as a batch of the `alerts` table.
pub fn alerts_batch(alerts: &[&crate::detect::Alert]) -> Result<RecordBatch> {
    use datafusion::arrow::array::{
        ListBuilder, StringBuilder, TimestampMicrosecondArray, UInt64Array,
    };
    let strs = |f: &dyn Fn(&crate::detect::Alert) -> Option<String>| -> Arc<dyn datafusion::arrow::array::Array> {
        let mut b = StringBuilder::new();
        for a in alerts {
            b.append_option(f(a));
        }
        Arc::new(b.finish())
    };
    let lists = |f: &dyn Fn(&crate::detect::Alert) -> &Vec<String>| -> Arc<dyn datafusion::arrow::array::Array> {
        let mut b = ListBuilder::new(StringBuilder::new());
        for a in alerts {
            for v in f(a) {
                b.values().append_value(v);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let ts =
        |f: &dyn Fn(&crate::detect::Alert) -> i64| -> Arc<dyn datafusion::arrow::array::Array> {
            Arc::new(
                TimestampMicrosecondArray::from(alerts.iter().map(|a| f(a)).collect::<Vec<_>>())
                    .with_timezone(crate::normalize::schema::TZ),
            )
        };
    let cols: Vec<Arc<dyn datafusion::arrow::array::Array>> = vec![
        strs(&|a| Some(a.id.clone())),
        ts(&|a| a.time),
        strs(&|a| Some(a.rule_id.clone())),
        strs(&|a| Some(a.title.clone())),
        strs(&|a| Some(a.severity.as_str().to_string())),
        strs(&|a| Some(a.detector.clone())),
        strs(&|a| a.actor.clone()),
        strs(&|a| a.source.clone()),
        lists(&|a| &a.resources),
        ts(&|a| a.window_start),
        ts(&|a| a.window_end),
        lists(&|a| &a.event_ids),
        lists(&|a| &a.tags),
        strs(&|a| Some(a.explanation.to_string())),
        Arc::new(UInt64Array::from(
            alerts.iter().map(|a| alert_key(&a.id)).collect::<Vec<_>>(),
        )),
    ];
    Ok(RecordBatch::try_new(
        crate::normalize::schema::alerts(),
        cols,
    )?)
}

fn file_name() -> String {
    let ms = chrono::Utc::now().timestamp_millis();
    format!(
        "part-{ms}-{}.parquet",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Partition directory of an event: `events/source=…/date=…/hour=…`.
pub fn partition_path(source: &str, time_us: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(time_us).unwrap_or_default();
    format!(
        "{EVENTS_DIR}/source={source}/date={}/hour={}",
        t.format("%Y-%m-%d"),
        t.format("%H")
    )
}

/// About the memory `batch`'s values take: a view column counts the values its rows point
/// at, not the whole buffer it shares with the batch it was taken from.
fn values_size(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| match c.as_string_view_opt() {
            Some(v) => v.len() * 16 + v.total_buffer_bytes_used(),
            None => c.get_array_memory_size(),
        })
        .sum()
}

/// `batch` with its one-value-per-row string columns ([`UNIQUE_PER_ROW`]: `event_id`,
/// `raw`) as `Utf8View` arrays over the same buffers. Taking rows out of a view array copies
/// 16 bytes a row, not the values: `raw` is most of an event's bytes, and copying it into
/// each file's reordered rows was a sixth of the writer's time (with the fresh pages to
/// fault in for the copy).
fn unique_strings_as_views(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if UNIQUE_PER_ROW.contains(&f.name().as_str()) && *f.data_type() == DataType::Utf8 {
            fields.push(Arc::new(
                f.as_ref().clone().with_data_type(DataType::Utf8View),
            ));
            columns.push(Arc::new(StringViewArray::from(c.as_string::<i32>())));
        } else {
            fields.push(f.clone());
            columns.push(c.clone());
        }
    }
    let viewed = Schema::new_with_metadata(fields, schema.metadata().clone());
    Ok(RecordBatch::try_new(Arc::new(viewed), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Format;
    use std::time::Duration;

    fn event(i: usize, user: &str, hour: u32, sec: u32) -> String {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a-{i}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns/secrets/s{i}","verb":"get","user":{{"username":"{user}"}},"objectRef":{{"resource":"secrets","namespace":"ns","name":"s{i}","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2026-11-20T{hour:02}:00:{sec:02}.000000Z"}}"#
        )
    }

    /// Past the key budget the oldest partitions' key sets leave memory, and a replay into
    /// such an hour is still dropped (its keys reloaded from the files).
    #[tokio::test]
    async fn a_partition_whose_keys_left_memory_still_drops_replays() {
        let lines = |hour: u32, from: usize, n: usize| {
            (from..from + n)
                .map(|i| event(i, "amy", hour, (i % 60) as u32) + "\n")
                .collect::<String>()
        };
        let batch = |text: String| {
            crate::detect::tooling::decode_to_batch(text.as_bytes(), Format::Kubernetes)
                .0
                .unwrap()
        };
        let (h10, h11, h12) = (
            batch(lines(10, 0, 6)),
            batch(lines(11, 100, 8)),
            batch(lines(12, 200, 2)),
        );
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_local(dir.path()).unwrap();
        store.max_keys = 10;
        let held = |s: &Store| s.keys.values().map(Keys::len).sum::<usize>();
        assert_eq!(store.append_events(&h10).await.unwrap().written, 6);
        assert_eq!(store.append_events(&h11).await.unwrap().written, 8);
        assert_eq!(held(&store), 14);
        // opening hour 12 finds 14 > 10 keys: the oldest set (hour 10) leaves memory
        assert_eq!(store.append_events(&h12).await.unwrap().written, 2);
        assert_eq!((store.keys.len(), held(&store)), (2, 10));
        // a replay of hour 10: its keys come back from the files, and hour 11 leaves
        let again = store.append_events(&h10).await.unwrap();
        assert_eq!((again.written, again.duplicates), (0, 6));
        assert_eq!((store.keys.len(), held(&store)), (2, 8));
    }

    /// Each file an append writes is made durable (fsync'd, file and directories) before
    /// the append returns: the pipeline stores Kafka offsets right after.
    #[tokio::test]
    async fn every_file_an_append_writes_is_synced_before_it_returns() {
        let text: String = [10, 11, 12]
            .iter()
            .flat_map(|&h| {
                (0..3).map(move |i| event(h as usize * 10 + i, "amy", h, i as u32) + "\n")
            })
            .collect();
        let batch = crate::detect::tooling::decode_to_batch(text.as_bytes(), Format::Kubernetes)
            .0
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_local(dir.path()).unwrap();
        let synced = || {
            crate::metrics::metrics()
                .store_sync_seconds
                .get_sample_count()
        };
        let before = synced();
        let stats = store.append_events(&batch).await.unwrap();
        assert_eq!((stats.written, stats.files), (9, 3));
        // other tests in this binary may sync meanwhile: at least one per file of ours
        assert!(
            synced() >= before + 3,
            "{} syncs for 3 files",
            synced() - before
        );
    }

    /// The hour being written keeps only two generations of its newest keys: memory stays
    /// bounded, replays of the last rows are still dropped (after a restart too, from the
    /// newest files), and an older duplicate that gets stored again is dropped by `compact`.
    #[tokio::test]
    async fn the_hour_being_written_keeps_a_bounded_window_of_keys() {
        let batch = |from: usize| {
            let text: String = (from..from + 6)
                .map(|i| event(i, "amy", 10, (i % 60) as u32) + "\n")
                .collect();
            crate::detect::tooling::decode_to_batch(text.as_bytes(), Format::Kubernetes)
                .0
                .unwrap()
        };
        let held = |s: &Store| s.keys.values().map(Keys::len).sum::<usize>();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_local(dir.path()).unwrap();
        store.generation = 10;
        for b in 0..10 {
            assert_eq!(store.append_events(&batch(b * 6)).await.unwrap().written, 6);
            assert!(held(&store) <= 20, "{}", held(&store));
            // files apart in time: a restart loads the newest first (coarse file clocks)
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        let last = store.append_events(&batch(54)).await.unwrap();
        assert_eq!((last.written, last.duplicates), (0, 6));

        let mut restarted = Store::open_local(dir.path()).unwrap();
        restarted.generation = 10;
        let last = restarted.append_events(&batch(54)).await.unwrap();
        assert_eq!((last.written, last.duplicates), (0, 6));
        assert!(held(&restarted) <= 12, "{}", held(&restarted));
        // the first rows left the window: stored again, until compaction merges the hour
        let first = restarted.append_events(&batch(0)).await.unwrap();
        assert_eq!((first.written, first.duplicates), (6, 0));
        let opts = compact::CompactOptions {
            min_age: Duration::ZERO,
            ..Default::default()
        };
        let summary = compact::compact(restarted.object_store(), &opts)
            .await
            .unwrap();
        assert_eq!(summary.duplicates_dropped, 6, "{summary:?}");
    }

    /// A file's output buffer is sized for its own rows, not for the whole batch that its
    /// `raw` views point into.
    #[test]
    fn a_file_taken_from_views_is_sized_by_its_own_rows() {
        let text: String = (0..64)
            .map(|i| event(i, "amy", 10, (i % 60) as u32) + "\n")
            .collect();
        let batch = crate::detect::tooling::decode_to_batch(text.as_bytes(), Format::Kubernetes)
            .0
            .unwrap();
        let viewed = unique_strings_as_views(&batch).unwrap();
        assert_eq!(
            viewed.column_by_name("raw").unwrap().data_type(),
            &DataType::Utf8View
        );
        let one = take_record_batch(&viewed, &UInt32Array::from(vec![3])).unwrap();
        let raw = batch.column_by_name("raw").unwrap().as_string::<i32>();
        assert_eq!(
            one.column_by_name("raw").unwrap().as_string_view().value(0),
            raw.value(3)
        );
        assert!(values_size(&one) >= raw.value(3).len());
        assert!(
            values_size(&one) * 8 < values_size(&viewed),
            "{} vs {}",
            values_size(&one),
            values_size(&viewed)
        );
    }

    /// Rows land in their hour's partition, each file sorted by (actor, time), and a
    /// replay adds nothing.
    #[tokio::test]
    async fn files_are_partitioned_by_hour_and_sorted_by_actor_then_time() {
        let users = ["zed", "amy", "bob", "amy", "zed", "bob", "amy", "carl"];
        let mut lines = String::new();
        for i in 0..64 {
            let (u, h, s) = (
                users[i % users.len()],
                10 + (i % 3) as u32,
                (59 - i % 60) as u32,
            );
            lines.push_str(&event(i, u, h, s));
            lines.push('\n');
        }
        let (batch, _) =
            crate::detect::tooling::decode_to_batch(lines.as_bytes(), Format::Kubernetes);
        let batch = batch.unwrap();
        let sent_raw: HashMap<String, String> = {
            let raw = batch.column_by_name("raw").unwrap().as_string::<i32>();
            (0..64)
                .map(|i| (i.to_string(), raw.value(i).to_string()))
                .collect()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_local(dir.path()).unwrap();
        let s = store.append_events(&batch).await.unwrap();
        assert_eq!((s.written, s.files, s.duplicates), (64, 3, 0));
        let mut seen = 0;
        for hour in ["10", "11", "12"] {
            let d = dir.path().join(format!(
                "events/source=kubernetes/date=2026-11-20/hour={hour}"
            ));
            let files: Vec<_> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(files.len(), 1, "{hour}");
            let f = std::fs::File::open(&files[0]).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
            // the file's Arrow schema is the events schema (`raw` was written from views)
            assert_eq!(reader.schema().fields(), batch.schema().fields());
            // low-cardinality columns are left uncompressed on ingest, the rest LZ4
            let rg = reader.metadata().row_group(0);
            for c in rg.columns() {
                let name = c.column_path().parts()[0].clone();
                let want = if UNCOMPRESSED_ON_INGEST.contains(&name.as_str()) {
                    "UNCOMPRESSED"
                } else {
                    "LZ4_RAW"
                };
                assert!(c.compression().to_string().starts_with(want), "{name}");
                // no dictionary for columns of one value per row; the rest keep theirs
                let dict = c.dictionary_page_offset().is_some();
                if UNIQUE_PER_ROW.contains(&name.as_str()) {
                    assert!(!dict, "{name}");
                } else if batch.schema().field_with_name(&name).unwrap().data_type()
                    == &datafusion::arrow::datatypes::DataType::Utf8
                {
                    assert!(dict, "{name}");
                }
                // min/max for pruning, except on the whole event
                assert_eq!(
                    c.statistics().is_some(),
                    name != NO_STATISTICS,
                    "{name} statistics"
                );
                // bloom filters sized for the file's ~21 rows, not a million values
                if ["actor", "resource_path"].contains(&name.as_str()) {
                    let len = c.bloom_filter_length().expect("bloom filter") as usize;
                    assert!(len <= 1024, "{name}: {len} byte bloom filter");
                } else {
                    assert!(c.bloom_filter_offset().is_none(), "{name}");
                }
            }
            let rows: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
            let mut keys = Vec::new();
            for b in &rows {
                assert_eq!(b.schema().fields(), batch.schema().fields());
                // every row's whole event came along with it
                let (ids, raw) = (
                    b.column_by_name("event_id").unwrap().as_string::<i32>(),
                    b.column_by_name("raw").unwrap().as_string::<i32>(),
                );
                for r in 0..b.num_rows() {
                    let i = &ids.value(r)[2..];
                    assert_eq!(raw.value(r), sent_raw[i], "row of event {i}");
                }
                let a = b.column_by_name("actor").unwrap().as_string::<i32>();
                let t = b
                    .column_by_name("time")
                    .unwrap()
                    .as_primitive::<TimestampMicrosecondType>();
                for r in 0..b.num_rows() {
                    let h = chrono::DateTime::from_timestamp_micros(t.value(r)).unwrap();
                    assert_eq!(h.format("%H").to_string(), hour);
                    keys.push((a.value(r).to_string(), t.value(r)));
                }
            }
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted, "hour {hour} sorted by (actor, time)");
            seen += keys.len();
        }
        assert_eq!(seen, 64);
        let again = store.append_events(&batch).await.unwrap();
        assert_eq!((again.written, again.duplicates), (0, 64));
    }
}
