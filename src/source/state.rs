//! Baseline state in the Kafka pipeline, kept consistent with the input position.
//!
//! The snapshot file holds the Kafka offsets it reflects (per partition, the next offset
//! after every row the baselines have taken) and the detectors' state. With baselines on,
//! the writer stores offsets in librdkafka only right after a snapshot was written, so a
//! committed offset is never ahead of the saved state. After a restart, messages below a
//! partition's snapshot offset (re-delivered because the commit lagged the snapshot) are
//! stored and rule-checked as usual (both idempotent) but not fed to the baselines again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Int32Type, Int64Type};
use serde::{Deserialize, Serialize};

use crate::baseline::{Baselines, DetectorConfig};
use crate::error::Result;

type Tp = (String, i32);

#[derive(Serialize, Deserialize, Default)]
struct Header {
    offsets: Vec<(String, i32, i64)>,
    taken_at: String,
}

pub struct BaselineState {
    pub baselines: Baselines,
    path: PathBuf,
    /// Offsets the saved state reflects.
    saved: HashMap<Tp, i64>,
    /// Offsets processed since the last snapshot (not yet handed to librdkafka).
    pending: HashMap<Tp, i64>,
}

impl BaselineState {
    /// Opens the state for a consumer group: restored from its snapshot when there is one.
    pub fn open(cfg: DetectorConfig, data_dir: &Path, group: &str) -> Result<BaselineState> {
        let safe: String = group
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = data_dir
            .join("state")
            .join(format!("baselines-{safe}.snapshot"));
        let mut saved = HashMap::new();
        let baselines = match std::fs::read(&path) {
            Ok(bytes) => match split(&bytes) {
                Some((h, body)) => match Baselines::from_snapshot(cfg.clone(), body) {
                    Ok(b) => {
                        saved = h.offsets.into_iter().map(|(t, p, o)| ((t, p), o)).collect();
                        tracing::info!(path = %path.display(), identities = b.identities(), taken_at = h.taken_at, "baseline state restored");
                        b
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "baseline snapshot unusable; learning from scratch");
                        Baselines::new(cfg)
                    }
                },
                None => {
                    tracing::error!(path = %path.display(), "baseline snapshot header unreadable; learning from scratch");
                    Baselines::new(cfg)
                }
            },
            Err(_) => Baselines::new(cfg),
        };
        Ok(BaselineState {
            baselines,
            path,
            saved,
            pending: HashMap::new(),
        })
    }

    /// The rows of a topic's batch (any of its partitions) the baselines have not seen yet.
    pub fn unseen(&self, topic: &str, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        if !self.saved.keys().any(|(t, _)| t == topic) {
            return Ok(Some(batch.clone()));
        }
        let (Some(off), Some(part)) = (
            batch.column_by_name("kafka_offset"),
            batch.column_by_name("kafka_partition"),
        ) else {
            return Ok(Some(batch.clone()));
        };
        let (off, part) = (
            off.as_primitive::<Int64Type>(),
            part.as_primitive::<Int32Type>(),
        );
        let mut key = (topic.to_string(), 0);
        let keep: BooleanArray = off
            .iter()
            .zip(part.iter())
            .map(|(o, p)| {
                let (Some(o), Some(p)) = (o, p) else {
                    return Some(true);
                };
                key.1 = p;
                Some(self.saved.get(&key).is_none_or(|&until| o >= until))
            })
            .collect();
        let out = filter_record_batch(batch, &keep)?;
        Ok((out.num_rows() > 0).then_some(out))
    }

    /// Records that a partition's rows up to `next` were taken.
    pub fn processed(&mut self, tp: &Tp, next: i64) {
        self.pending.insert(tp.clone(), next);
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes the snapshot (atomically) and returns the offsets that may now be stored.
    pub fn snapshot(&mut self) -> Result<Vec<(Tp, i64)>> {
        let mut all = self.saved.clone();
        for (tp, o) in &self.pending {
            all.insert(tp.clone(), *o);
        }
        let h = Header {
            offsets: all.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect(),
            taken_at: chrono::Utc::now().to_rfc3339(),
        };
        let head = serde_json::to_vec(&h)?;
        let body = self.baselines.snapshot();
        if let Some(d) = self.path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&(head.len() as u64).to_le_bytes())?;
            f.write_all(&head)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        // the rename is a directory entry: durable only once the directory is synced
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => crate::store::durable::sync_dir(d)?,
            _ => crate::store::durable::sync_dir(Path::new("."))?,
        }
        crate::metrics::metrics()
            .baseline_snapshot_bytes
            .set(body.len() as i64);
        crate::metrics::metrics()
            .baseline_identities
            .set(self.baselines.identities() as i64);
        self.saved = all;
        Ok(self.pending.drain().collect())
    }
}

fn split(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let head = bytes.get(8..8 + n)?;
    let h: Header = serde_json::from_slice(head).ok()?;
    Some((h, bytes.get(8 + n..)?))
}
