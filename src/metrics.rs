//! Every Prometheus metric auditwatch exports, in one place. Names follow
//! `auditwatch_<what>_<unit>[_total]`; labels are low-cardinality (source, outcome, topic,
//! partition, stage) — never an identity, a path or an event id.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry, TextEncoder,
    register_histogram_vec_with_registry, register_int_counter_vec_with_registry,
    register_int_counter_with_registry, register_int_gauge_vec_with_registry,
    register_int_gauge_with_registry,
};

pub struct Metrics {
    pub registry: Registry,
    pub consumed_messages: IntCounterVec,
    pub consumed_bytes: IntCounterVec,
    pub consumer_lag: IntGaugeVec,
    pub events: IntCounterVec,
    pub quarantined: IntCounterVec,
    pub duplicates: IntCounter,
    pub dead_letters: IntCounter,
    pub commit_failures: IntCounter,
    pub batch_rows: HistogramVec,
    pub store_write_seconds: HistogramVec,
    pub queue_depth: IntGaugeVec,
    pub vault_pending_requests: IntGauge,
    pub kafka_connected: IntGauge,
}

fn build() -> prometheus::Result<Metrics> {
    let r = Registry::new();
    Ok(Metrics {
        consumed_messages: register_int_counter_vec_with_registry!(
            "auditwatch_consumed_messages_total",
            "Kafka messages consumed",
            &["topic"],
            r
        )?,
        consumed_bytes: register_int_counter_vec_with_registry!(
            "auditwatch_consumed_bytes_total",
            "Bytes of Kafka message payloads consumed",
            &["topic"],
            r
        )?,
        consumer_lag: register_int_gauge_vec_with_registry!(
            "auditwatch_consumer_lag_messages",
            "Messages between the committed offset and the end of each partition",
            &["topic", "partition"],
            r
        )?,
        events: register_int_counter_vec_with_registry!(
            "auditwatch_events_total",
            "Normalized events decoded, by source and outcome",
            &["source", "outcome"],
            r
        )?,
        quarantined: register_int_counter_vec_with_registry!(
            "auditwatch_quarantined_total",
            "Records rejected into the quarantine table, by the format that was tried",
            &["format"],
            r
        )?,
        duplicates: register_int_counter_with_registry!(
            "auditwatch_duplicates_total",
            "Rows dropped because the store already had them (replays)",
            r
        )?,
        dead_letters: register_int_counter_with_registry!(
            "auditwatch_dead_letters_total",
            "Malformed messages sent to the dead-letter topic",
            r
        )?,
        commit_failures: register_int_counter_with_registry!(
            "auditwatch_commit_failures_total",
            "Failed offset stores or commits",
            r
        )?,
        batch_rows: register_histogram_vec_with_registry!(
            "auditwatch_batch_rows",
            "Rows per closed batch",
            &["table"],
            prometheus::exponential_buckets(16.0, 4.0, 8)?,
            r
        )?,
        store_write_seconds: register_histogram_vec_with_registry!(
            "auditwatch_store_write_seconds",
            "Latency of writing one batch to the store",
            &["table"],
            prometheus::exponential_buckets(0.001, 2.0, 14)?,
            r
        )?,
        queue_depth: register_int_gauge_vec_with_registry!(
            "auditwatch_queue_depth",
            "Items waiting in a bounded pipeline queue",
            &["queue"],
            r
        )?,
        vault_pending_requests: register_int_gauge_with_registry!(
            "auditwatch_vault_pending_requests",
            "Vault requests waiting for their response",
            r
        )?,
        kafka_connected: register_int_gauge_with_registry!(
            "auditwatch_kafka_connected",
            "1 when the Kafka consumer has a working broker connection",
            r
        )?,
        registry: r,
    })
}

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| build().expect("metric definitions are valid"));

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The text exposition format served on `/metrics`.
pub fn render() -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&metrics().registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
