//! Batch: collects decoded rows and quarantine records into Arrow batches that close on a
//! row count, a byte budget, or a linger time, whichever comes first.

use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;

use crate::decode::{Output, Rejected};
use crate::error::Result;
use crate::normalize::redact::scrub_lenient;
use crate::normalize::{
    AccessEvent, EventBuilder, Provenance, QuarantineBuilder, QuarantineRecord,
};

/// When a batch closes.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub linger: Duration,
    /// Quarantined originals longer than this are cut (and marked `truncated`).
    pub quarantine_max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_rows: 65_536,
            max_bytes: 64 << 20,
            linger: Duration::from_millis(500),
            quarantine_max_bytes: 16 << 20,
        }
    }
}

/// Counters of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    pub quarantined: u64,
    pub skipped: u64,
}

/// Closed batches ready for the store.
#[derive(Debug, Default)]
pub struct Closed {
    pub events: Option<RecordBatch>,
    pub quarantine: Option<RecordBatch>,
}

pub struct Batcher {
    limits: BatchLimits,
    events: EventBuilder,
    quarantine: QuarantineBuilder,
    opened: Option<Instant>,
    ingest_time_us: i64,
    pub counts: Counts,
}

impl Batcher {
    pub fn new(limits: BatchLimits) -> Self {
        Batcher {
            limits,
            events: EventBuilder::with_capacity(limits.max_rows.min(8192)),
            quarantine: QuarantineBuilder::default(),
            opened: None,
            ingest_time_us: chrono::Utc::now().timestamp_micros(),
            counts: Counts::default(),
        }
    }

    fn touch(&mut self) {
        if self.opened.is_none() {
            self.opened = Some(Instant::now());
            self.ingest_time_us = chrono::Utc::now().timestamp_micros();
        }
    }

    pub fn rows(&self) -> usize {
        self.events.len() + self.quarantine.len()
    }

    /// Whether the open batch should be closed now.
    pub fn is_full(&self) -> bool {
        self.events.len() >= self.limits.max_rows
            || self.events.buffered_bytes() >= self.limits.max_bytes
            || self.quarantine.len() >= self.limits.max_rows
    }

    /// Whether the open batch has lingered long enough.
    pub fn is_due(&self) -> bool {
        self.opened
            .is_some_and(|t| t.elapsed() >= self.limits.linger)
    }

    pub fn take(&mut self) -> Result<Closed> {
        self.opened = None;
        Ok(Closed {
            events: (!self.events.is_empty())
                .then(|| self.events.finish())
                .transpose()?,
            quarantine: (!self.quarantine.is_empty())
                .then(|| self.quarantine.finish())
                .transpose()?,
        })
    }
}

impl Output for Batcher {
    fn event(&mut self, e: AccessEvent<'_>, prov: &Provenance<'_>) {
        self.touch();
        self.counts.events += 1;
        self.events.append(&e, prov, self.ingest_time_us);
    }

    fn reject(&mut self, bytes: &[u8], r: Rejected, prov: &Provenance<'_>) {
        self.touch();
        self.counts.quarantined += 1;
        tracing::debug!(input = prov.input, offset = prov.input_offset, reason = %r.reason, "record quarantined");
        let cut = &bytes[..bytes.len().min(self.limits.quarantine_max_bytes)];
        let original_len = r
            .original_len
            .map_or(bytes.len(), |n| (n as usize).max(bytes.len()));
        let (original, redacted) = scrub_lenient(cut);
        let q = QuarantineRecord {
            format: r.format,
            reason: r.reason,
            original,
            original_len,
            truncated: cut.len() < original_len,
            redacted,
        };
        self.quarantine.append(&q, prov, self.ingest_time_us);
    }

    fn skipped(&mut self) {
        self.counts.skipped += 1;
    }
}
