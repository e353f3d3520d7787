//! Appends [`AccessEvent`]s and quarantine records straight into Arrow builders.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Int32Builder, Int64Builder,
    ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};

use datafusion::arrow::datatypes::DataType;

use super::event::AccessEvent;
use super::schema;
use crate::error::Result;

/// Where an event came from: a file (with byte offset) or a Kafka message.
#[derive(Debug, Clone, Default)]
pub struct Provenance<'a> {
    pub input: Option<&'a str>,
    pub input_offset: Option<i64>,
    pub kafka_topic: Option<&'a str>,
    pub kafka_partition: Option<i32>,
    pub kafka_offset: Option<i64>,
}

/// Position of `raw` in the `events` schema.
const RAW_COL: usize = 34;

fn default_bytes(rows: usize, col: usize) -> usize {
    if col == RAW_COL {
        rows * 1536
    } else {
        rows * 16
    }
}

fn ts_builder(cap: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(cap).with_timezone(schema::TZ)
}

/// Column builders for the `events` table.
pub struct EventBuilder {
    time: TimestampMicrosecondBuilder,
    ingest_time: TimestampMicrosecondBuilder,
    source: StringBuilder,
    cluster_name: StringBuilder,
    event_id: StringBuilder,
    stage: StringBuilder,
    row_key: UInt64Builder,
    action: StringBuilder,
    verb: StringBuilder,
    actor: StringBuilder,
    actor_type: StringBuilder,
    actor_id: StringBuilder,
    actor_namespace: StringBuilder,
    actor_groups: ListBuilder<StringBuilder>,
    impersonator: StringBuilder,
    auth_method: StringBuilder,
    resource_type: StringBuilder,
    resource_path: StringBuilder,
    resource_namespace: StringBuilder,
    resource_name: StringBuilder,
    subresource: StringBuilder,
    api_group: StringBuilder,
    secret_access: BooleanBuilder,
    outcome: StringBuilder,
    status_code: Int32Builder,
    reason: StringBuilder,
    src_ip: StringBuilder,
    user_agent: StringBuilder,
    request_uri: StringBuilder,
    policies: ListBuilder<StringBuilder>,
    input: StringBuilder,
    kafka_topic: StringBuilder,
    kafka_partition: Int32Builder,
    kafka_offset: Int64Builder,
    raw: StringBuilder,
    len: usize,
    raw_bytes: usize,
    capacity: usize,
}

impl Default for EventBuilder {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl EventBuilder {
    pub fn with_capacity(rows: usize) -> Self {
        Self::sized(rows, &|col| default_bytes(rows, col))
    }

    /// Builders for `rows` rows whose string column `i` (schema order) holds about
    /// `bytes(i)` bytes: one allocation per buffer instead of doubling copies (which, with
    /// fresh huge pages to zero on each growth, cost ingest a third of its time).
    fn sized(rows: usize, bytes: &dyn Fn(usize) -> usize) -> Self {
        let s = |col: usize| StringBuilder::with_capacity(rows, bytes(col));
        EventBuilder {
            time: ts_builder(rows),
            ingest_time: ts_builder(rows),
            source: s(2),
            cluster_name: s(3),
            event_id: s(4),
            stage: s(5),
            row_key: UInt64Builder::with_capacity(rows),
            action: s(7),
            verb: s(8),
            actor: s(9),
            actor_type: s(10),
            actor_id: s(11),
            actor_namespace: s(12),
            actor_groups: ListBuilder::new(s(13)),
            impersonator: s(14),
            auth_method: s(15),
            resource_type: s(16),
            resource_path: s(17),
            resource_namespace: s(18),
            resource_name: s(19),
            subresource: s(20),
            api_group: s(21),
            secret_access: BooleanBuilder::with_capacity(rows),
            outcome: s(23),
            status_code: Int32Builder::with_capacity(rows),
            reason: s(25),
            src_ip: s(26),
            user_agent: s(27),
            request_uri: s(28),
            policies: ListBuilder::new(s(29)),
            input: s(30),
            kafka_topic: s(31),
            kafka_partition: Int32Builder::with_capacity(rows),
            kafka_offset: Int64Builder::with_capacity(rows),
            raw: s(34),
            len: 0,
            raw_bytes: 0,
            capacity: rows,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate bytes buffered, dominated by the raw column.
    pub fn buffered_bytes(&self) -> usize {
        self.raw_bytes + self.len * 256
    }

    pub fn append(&mut self, e: &AccessEvent<'_>, prov: &Provenance<'_>, ingest_time_us: i64) {
        self.time.append_value(e.time_us);
        self.ingest_time.append_value(ingest_time_us);
        self.source.append_value(e.source.as_str());
        self.cluster_name.append_option(e.cluster.as_deref());
        self.event_id.append_value(&e.event_id);
        self.stage.append_value(&e.stage);
        self.row_key.append_value(e.row_key());
        self.action.append_value(&e.action);
        self.verb.append_value(&e.verb);
        self.actor.append_value(&e.actor);
        self.actor_type.append_value(e.actor_type);
        self.actor_id.append_option(e.actor_id.as_deref());
        self.actor_namespace
            .append_option(e.actor_namespace.as_deref());
        for g in &e.actor_groups {
            self.actor_groups.values().append_value(g);
        }
        self.actor_groups.append(true);
        self.impersonator.append_option(e.impersonator.as_deref());
        self.auth_method.append_option(e.auth_method.as_deref());
        self.resource_type.append_option(e.resource_type.as_deref());
        self.resource_path.append_option(e.resource_path.as_deref());
        self.resource_namespace
            .append_option(e.resource_namespace.as_deref());
        self.resource_name.append_option(e.resource_name.as_deref());
        self.subresource.append_option(e.subresource.as_deref());
        self.api_group.append_option(e.api_group.as_deref());
        self.secret_access.append_value(e.secret_access);
        self.outcome.append_value(e.outcome.as_str());
        self.status_code.append_option(e.status_code);
        self.reason.append_option(e.reason.as_deref());
        self.src_ip.append_option(e.src_ip.as_deref());
        self.user_agent.append_option(e.user_agent.as_deref());
        self.request_uri.append_option(e.request_uri.as_deref());
        for p in &e.policies {
            self.policies.values().append_value(p);
        }
        self.policies.append(true);
        self.input.append_option(prov.input);
        self.kafka_topic.append_option(prov.kafka_topic);
        self.kafka_partition.append_option(prov.kafka_partition);
        self.kafka_offset.append_option(prov.kafka_offset);
        self.raw.append_value(&e.raw);
        self.raw_bytes += e.raw.len();
        self.len += 1;
    }

    /// Finishes the current rows into a batch and leaves the builder empty for reuse.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.ingest_time.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.cluster_name.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.stage.finish()),
            Arc::new(self.row_key.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.verb.finish()),
            Arc::new(self.actor.finish()),
            Arc::new(self.actor_type.finish()),
            Arc::new(self.actor_id.finish()),
            Arc::new(self.actor_namespace.finish()),
            Arc::new(self.actor_groups.finish()),
            Arc::new(self.impersonator.finish()),
            Arc::new(self.auth_method.finish()),
            Arc::new(self.resource_type.finish()),
            Arc::new(self.resource_path.finish()),
            Arc::new(self.resource_namespace.finish()),
            Arc::new(self.resource_name.finish()),
            Arc::new(self.subresource.finish()),
            Arc::new(self.api_group.finish()),
            Arc::new(self.secret_access.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.src_ip.finish()),
            Arc::new(self.user_agent.finish()),
            Arc::new(self.request_uri.finish()),
            Arc::new(self.policies.finish()),
            Arc::new(self.input.finish()),
            Arc::new(self.kafka_topic.finish()),
            Arc::new(self.kafka_partition.finish()),
            Arc::new(self.kafka_offset.finish()),
            Arc::new(self.raw.finish()),
        ];
        // finish() hands the buffers to the arrays; the next batch is pre-sized like this one
        let rows = self.capacity.max(self.len);
        let sizes: Vec<usize> = cols
            .iter()
            .map(|c| match c.data_type() {
                DataType::Utf8 => c.as_string::<i32>().value_data().len(),
                DataType::List(_) => c
                    .as_list::<i32>()
                    .values()
                    .as_string_opt::<i32>()
                    .map_or(0, |v| v.value_data().len()),
                _ => 0,
            })
            .collect();
        *self = EventBuilder::sized(rows, &|col| {
            let b = sizes.get(col).copied().unwrap_or(0);
            (b + b / 8).max(default_bytes(rows, col))
        });
        self.capacity = rows;
        Ok(RecordBatch::try_new(schema::access_events(), cols)?)
    }
}

/// One rejected input: what it was, why, and the (redacted where parseable) bytes.
#[derive(Debug, Clone)]
pub struct QuarantineRecord {
    pub format: &'static str,
    pub reason: String,
    pub original: Vec<u8>,
    pub original_len: usize,
    pub truncated: bool,
    pub redacted: bool,
}

impl QuarantineRecord {
    /// Stable key so re-ingesting the same input does not duplicate quarantine rows.
    pub fn row_key(&self, prov: &Provenance<'_>) -> u64 {
        use xxhash_rust::xxh3::Xxh3;
        let mut h = Xxh3::new();
        h.update(prov.input.unwrap_or("").as_bytes());
        h.update(&prov.input_offset.unwrap_or(-1).to_le_bytes());
        h.update(prov.kafka_topic.unwrap_or("").as_bytes());
        h.update(&prov.kafka_partition.unwrap_or(-1).to_le_bytes());
        h.update(&prov.kafka_offset.unwrap_or(-1).to_le_bytes());
        h.update(&self.original);
        h.digest()
    }
}

/// Column builders for the `quarantine` table.
#[derive(Default)]
pub struct QuarantineBuilder {
    ingest_time: Vec<i64>,
    row_key: UInt64Builder,
    input: StringBuilder,
    input_offset: Int64Builder,
    kafka_topic: StringBuilder,
    kafka_partition: Int32Builder,
    kafka_offset: Int64Builder,
    format: StringBuilder,
    reason: StringBuilder,
    original_len: Int64Builder,
    truncated: BooleanBuilder,
    redacted: BooleanBuilder,
    original: BinaryBuilder,
}

impl QuarantineBuilder {
    pub fn len(&self) -> usize {
        self.ingest_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ingest_time.is_empty()
    }

    pub fn append(&mut self, q: &QuarantineRecord, prov: &Provenance<'_>, ingest_time_us: i64) {
        self.ingest_time.push(ingest_time_us);
        self.row_key.append_value(q.row_key(prov));
        self.input.append_option(prov.input);
        self.input_offset.append_option(prov.input_offset);
        self.kafka_topic.append_option(prov.kafka_topic);
        self.kafka_partition.append_option(prov.kafka_partition);
        self.kafka_offset.append_option(prov.kafka_offset);
        self.format.append_value(q.format);
        self.reason.append_value(&q.reason);
        self.original_len.append_value(q.original_len as i64);
        self.truncated.append_value(q.truncated);
        self.redacted.append_value(q.redacted);
        self.original.append_value(&q.original);
    }

    pub fn finish(&mut self) -> Result<RecordBatch> {
        let mut t = ts_builder(self.ingest_time.len());
        t.append_slice(&std::mem::take(&mut self.ingest_time));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(t.finish()),
            Arc::new(self.row_key.finish()),
            Arc::new(self.input.finish()),
            Arc::new(self.input_offset.finish()),
            Arc::new(self.kafka_topic.finish()),
            Arc::new(self.kafka_partition.finish()),
            Arc::new(self.kafka_offset.finish()),
            Arc::new(self.format.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.original_len.finish()),
            Arc::new(self.truncated.finish()),
            Arc::new(self.redacted.finish()),
            Arc::new(self.original.finish()),
        ];
        Ok(RecordBatch::try_new(schema::quarantine(), cols)?)
    }
}

#[cfg(test)]
mod sizing_tests {
    use super::*;

    #[test]
    fn raw_column_index_matches_the_schema() {
        assert_eq!(schema::access_events().index_of("raw").unwrap(), RAW_COL);
    }
}
