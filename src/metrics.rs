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
    /// Making one written store file durable: fsync of the file and its directories.
    pub store_sync_seconds: prometheus::Histogram,
    pub queue_depth: IntGaugeVec,
    pub vault_pending_requests: IntGauge,
    pub kafka_connected: IntGauge,
    pub alerts: IntCounterVec,
    pub alerts_suppressed: IntCounter,
    pub detect_seconds: prometheus::Histogram,
    pub rules_loaded: IntGauge,
    pub rules_reloads: IntCounterVec,
    pub correlation_groups: IntGauge,
    pub end_to_end_seconds: prometheus::Histogram,
    pub sink_backlog: IntGaugeVec,
    pub sink_delivered: IntCounterVec,
    pub sink_failures: IntCounterVec,
    pub baseline_identities: IntGauge,
    pub baseline_snapshot_bytes: IntGauge,
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
        store_sync_seconds: prometheus::register_histogram_with_registry!(
            "auditwatch_store_sync_seconds",
            "Latency of making one written store file durable (fsync of the file and its directories)",
            prometheus::exponential_buckets(0.0005, 2.0, 14)?,
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
        alerts: register_int_counter_vec_with_registry!(
            "auditwatch_alerts_total",
            "Alerts raised, by rule (or detector) and severity",
            &["rule_id", "severity"],
            r
        )?,
        alerts_suppressed: register_int_counter_with_registry!(
            "auditwatch_alerts_suppressed_total",
            "Alerts dropped by a rule's suppression window",
            r
        )?,
        detect_seconds: prometheus::register_histogram_with_registry!(
            "auditwatch_detect_seconds",
            "Time to evaluate all rules on one batch",
            prometheus::exponential_buckets(0.0005, 2.0, 14)?,
            r
        )?,
        rules_loaded: register_int_gauge_with_registry!(
            "auditwatch_rules_loaded",
            "Detection and correlation rules active",
            r
        )?,
        rules_reloads: register_int_counter_vec_with_registry!(
            "auditwatch_rules_reloads_total",
            "Rule reloads, by result (ok, failed: the previous rules stay active)",
            &["result"],
            r
        )?,
        correlation_groups: register_int_gauge_with_registry!(
            "auditwatch_correlation_groups",
            "Open correlation windows held in memory",
            r
        )?,
        end_to_end_seconds: prometheus::register_histogram_with_registry!(
            "auditwatch_end_to_end_seconds",
            "From a message's Kafka timestamp to its events stored and alerted on",
            prometheus::exponential_buckets(0.01, 2.0, 14)?,
            r
        )?,
        sink_backlog: register_int_gauge_vec_with_registry!(
            "auditwatch_sink_backlog_alerts",
            "Alerts in the outbox a sink has not delivered yet",
            &["sink"],
            r
        )?,
        sink_delivered: register_int_counter_vec_with_registry!(
            "auditwatch_sink_delivered_total",
            "Alerts a sink's destination acknowledged",
            &["sink"],
            r
        )?,
        sink_failures: register_int_counter_vec_with_registry!(
            "auditwatch_sink_failures_total",
            "Failed delivery attempts (each is retried)",
            &["sink"],
            r
        )?,
        baseline_identities: register_int_gauge_with_registry!(
            "auditwatch_baseline_identities",
            "Identities whose behaviour the baseline detectors hold",
            r
        )?,
        baseline_snapshot_bytes: register_int_gauge_with_registry!(
            "auditwatch_baseline_snapshot_bytes",
            "Size of the last baseline state snapshot",
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
