//! The Arrow schemas of the stored tables: `access_events` (table `events`) and
//! `quarantine`. `schemas/access_events.json` is the machine-readable copy; a test keeps
//! the two identical. Column names are a public contract: add columns, never rename.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const TZ: &str = "UTC";

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(TZ.into()))
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn utf8_list(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        false,
    )
}

static ACCESS_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("time", ts(), false),
        Field::new("ingest_time", ts(), false),
        utf8("source", false),
        utf8("cluster_name", true),
        utf8("event_id", false),
        utf8("stage", false),
        Field::new("row_key", DataType::UInt64, false),
        utf8("action", false),
        utf8("verb", false),
        utf8("actor", false),
        utf8("actor_type", false),
        utf8("actor_id", true),
        utf8("actor_namespace", true),
        utf8_list("actor_groups"),
        utf8("impersonator", true),
        utf8("auth_method", true),
        utf8("resource_type", true),
        utf8("resource_path", true),
        utf8("resource_namespace", true),
        utf8("resource_name", true),
        utf8("subresource", true),
        utf8("api_group", true),
        Field::new("secret_access", DataType::Boolean, false),
        utf8("outcome", false),
        Field::new("status_code", DataType::Int32, true),
        utf8("reason", true),
        utf8("src_ip", true),
        utf8("user_agent", true),
        utf8("request_uri", true),
        utf8_list("policies"),
        utf8("input", true),
        utf8("kafka_topic", true),
        Field::new("kafka_partition", DataType::Int32, true),
        Field::new("kafka_offset", DataType::Int64, true),
        utf8("raw", false),
    ]))
});

static QUARANTINE: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("ingest_time", ts(), false),
        Field::new("row_key", DataType::UInt64, false),
        utf8("input", true),
        Field::new("input_offset", DataType::Int64, true),
        utf8("kafka_topic", true),
        Field::new("kafka_partition", DataType::Int32, true),
        Field::new("kafka_offset", DataType::Int64, true),
        utf8("format", false),
        utf8("reason", false),
        Field::new("original_len", DataType::Int64, false),
        Field::new("truncated", DataType::Boolean, false),
        Field::new("redacted", DataType::Boolean, false),
        Field::new("original", DataType::Binary, false),
    ]))
});

static ALERTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let list = || DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("time", ts(), false),
        Field::new("rule_id", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("detector", DataType::Utf8, false),
        Field::new("actor", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("resources", list(), false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("event_ids", list(), false),
        Field::new("tags", list(), false),
        Field::new("explanation", DataType::Utf8, false),
        Field::new("row_key", DataType::UInt64, false),
    ]))
});

/// Schema of the `alerts` table.
pub fn alerts() -> SchemaRef {
    ALERTS.clone()
}

/// Schema of the `events` table (`access_events`).
pub fn access_events() -> SchemaRef {
    ACCESS_EVENTS.clone()
}

/// Schema of the `quarantine` table.
pub fn quarantine() -> SchemaRef {
    QUARANTINE.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `schemas/access_events.json` is what other tools read; it must match the code.
    #[test]
    fn machine_readable_schema_matches_code() {
        let text = include_str!("../../schemas/access_events.json");
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        let cols = doc["columns"].as_array().unwrap();
        let schema = access_events();
        assert_eq!(cols.len(), schema.fields().len(), "column count differs");
        for (c, f) in cols.iter().zip(schema.fields()) {
            assert_eq!(c["name"].as_str().unwrap(), f.name());
            assert_eq!(
                c["nullable"].as_bool().unwrap(),
                f.is_nullable(),
                "{}",
                f.name()
            );
            assert_eq!(
                c["arrow_type"].as_str().unwrap(),
                format!("{}", f.data_type()),
                "{}",
                f.name()
            );
        }
    }

    #[test]
    fn contract_columns_exist() {
        let s = access_events();
        for name in [
            "time",
            "ingest_time",
            "source",
            "event_id",
            "action",
            "verb",
            "actor",
            "actor_type",
            "actor_namespace",
            "actor_groups",
            "impersonator",
            "auth_method",
            "resource_type",
            "resource_path",
            "resource_namespace",
            "resource_name",
            "subresource",
            "secret_access",
            "outcome",
            "status_code",
            "src_ip",
            "user_agent",
            "request_uri",
            "raw",
        ] {
            assert!(
                s.field_with_name(name).is_ok(),
                "missing contract column {name}"
            );
        }
    }
}
