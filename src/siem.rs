//! Alerts as SIEM records: OCSF 1.8 Detection Finding (class 2004) and Elastic Common
//! Schema, plus reading them back from the `alerts` table.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use serde_json::{Value, json};

use crate::detect::Alert;
use crate::detect::sigma::Level;
use crate::normalize::format_time_us;

/// Output format of `auditwatch alerts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlertFormat {
    /// auditwatch's own alert object.
    Native,
    /// OCSF 1.8 Detection Finding (class_uid 2004).
    Ocsf,
    /// Elastic Common Schema (`event.kind: alert`).
    Ecs,
}

pub fn render(a: &Alert, f: AlertFormat) -> Value {
    match f {
        AlertFormat::Native => serde_json::to_value(a).unwrap_or(Value::Null),
        AlertFormat::Ocsf => to_ocsf(a),
        AlertFormat::Ecs => to_ecs(a),
    }
}

fn severity_id(l: Level) -> u8 {
    match l {
        Level::Informational => 1,
        Level::Low => 2,
        Level::Medium => 3,
        Level::High => 4,
        Level::Critical => 5,
    }
}

fn ms(us: i64) -> i64 {
    us / 1000
}

/// MITRE ATT&CK ids from Sigma tags (`attack.t1552.007`, `attack.credential-access`).
fn attacks(tags: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for t in tags {
        let Some(rest) = t.strip_prefix("attack.") else {
            continue;
        };
        if let Some(id) = rest
            .strip_prefix('t')
            .filter(|s| s.starts_with(|c: char| c.is_ascii_digit()))
        {
            let id = format!("T{}", id.to_uppercase());
            if id.contains('.') {
                let parent = id.split('.').next().unwrap_or_default().to_string();
                out.push(json!({"technique": {"uid": parent}, "sub_technique": {"uid": id}}));
            } else {
                out.push(json!({"technique": {"uid": id}}));
            }
        } else if !rest.starts_with('g') && !rest.starts_with('s') {
            out.push(json!({"tactic": {"name": rest.replace('-', " ")}}));
        }
    }
    out
}

fn is_baseline(a: &Alert) -> bool {
    a.detector.starts_with("baseline")
}

/// OCSF 1.8 Detection Finding.
pub fn to_ocsf(a: &Alert) -> Value {
    let analytic_type = if is_baseline(a) { 3 } else { 1 };
    let mut v = json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "time": ms(a.time),
        "start_time": ms(a.window_start),
        "end_time": ms(a.window_end),
        "severity_id": severity_id(a.severity),
        "severity": a.severity.as_str(),
        "status_id": 1,
        "status": "New",
        "is_alert": true,
        "count": a.event_ids.len(),
        "message": format!("{}{}", a.title, a.actor.as_deref().map(|x| format!(" by {x}")).unwrap_or_default()),
        "metadata": {
            "version": "1.8.0",
            "uid": a.id,
            "product": {"name": "auditwatch", "vendor_name": "auditwatch", "version": env!("CARGO_PKG_VERSION")},
            "log_name": "alerts",
        },
        "finding_info": {
            "uid": a.id,
            "title": a.title,
            "desc": a.explanation.pointer("/rule/description").cloned().unwrap_or(Value::Null),
            "analytic": {"uid": a.rule_id, "name": a.title, "type_id": analytic_type, "type": if analytic_type == 3 { "Statistical" } else { "Rule" }, "category": a.detector},
            "first_seen_time": ms(a.window_start),
            "last_seen_time": ms(a.window_end),
            "related_events": a.event_ids.iter().map(|e| json!({"uid": e})).collect::<Vec<_>>(),
            "related_events_count": a.event_ids.len(),
            "attacks": attacks(&a.tags),
            "tags": a.tags.iter().map(|t| json!({"name": "sigma", "value": t})).collect::<Vec<_>>(),
            "types": [a.detector],
        },
        "resources": a.resources.iter().map(|r| json!({"name": r, "uid": r, "type": resource_type(r)})).collect::<Vec<_>>(),
        "unmapped": {"explanation": a.explanation, "source": a.source},
    });
    let mut evidence = serde_json::Map::new();
    if let Some(actor) = &a.actor {
        evidence.insert(
            "actor".into(),
            json!({"user": {"name": actor, "uid": actor}}),
        );
    }
    if !a.resources.is_empty() {
        evidence.insert(
            "resources".into(),
            json!(
                a.resources
                    .iter()
                    .map(|r| json!({"name": r, "uid": r}))
                    .collect::<Vec<_>>()
            ),
        );
    }
    if let Some(o) = a.explanation.get("observed") {
        evidence.insert("data".into(), json!({"observed": o}));
    }
    if !evidence.is_empty() {
        v["evidences"] = json!([Value::Object(evidence)]);
    }
    if is_baseline(a) {
        let observed = a
            .explanation
            .get("observed")
            .cloned()
            .unwrap_or(Value::Null);
        let baseline = a
            .explanation
            .get("baseline")
            .cloned()
            .unwrap_or(Value::Null);
        let param = a
            .explanation
            .get("metric")
            .and_then(Value::as_str)
            .unwrap_or(a.detector.as_str())
            .to_string();
        v["anomaly_analyses"] = json!([{
            "analysis_targets": [{"name": a.actor.clone().unwrap_or_default(), "type": "identity"}],
            "anomalies": [{
                "observation_parameter": param,
                "observation_type": a.detector,
                "observations": [{"value": text(&observed), "count": a.event_ids.len(),
                                   "timespan": {"start_time": ms(a.window_start), "end_time": ms(a.window_end)}}],
                "observed_pattern": a.explanation.get("reason").cloned().unwrap_or(Value::Null),
            }],
            "baselines": [{"observation_parameter": param, "observations": [{"value": text(&baseline)}]}],
        }]);
    }
    v
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn resource_type(path: &str) -> &'static str {
    if path.contains("/secrets/") || path.starts_with("secret/") {
        "secret"
    } else if path.starts_with("namespaces/") || !path.contains('/') {
        "kubernetes"
    } else {
        "vault"
    }
}

/// Elastic Common Schema alert document.
pub fn to_ecs(a: &Alert) -> Value {
    let score = match a.severity {
        Level::Informational => 21,
        Level::Low => 21,
        Level::Medium => 47,
        Level::High => 73,
        Level::Critical => 99,
    };
    let ip = a
        .explanation
        .pointer("/observed/src_ip")
        .or_else(|| a.explanation.pointer("/observed/sourceIPs"))
        .cloned();
    let mut v = json!({
        "@timestamp": format_time_us(a.time),
        "ecs": {"version": "8.11.0"},
        "message": a.title,
        "event": {
            "kind": "alert",
            "id": a.id,
            "category": ["iam"],
            "type": ["info"],
            "severity": score,
            "risk_score": score,
            "start": format_time_us(a.window_start),
            "end": format_time_us(a.window_end),
            "dataset": format!("auditwatch.{}", a.source.as_deref().unwrap_or("alerts")),
            "module": "auditwatch",
        },
        "rule": {
            "id": a.rule_id,
            "uuid": a.rule_id,
            "name": a.title,
            "category": a.detector,
            "description": a.explanation.pointer("/rule/description").cloned().unwrap_or(Value::Null),
            "ruleset": if is_baseline(a) { "auditwatch-baselines" } else { "auditwatch-sigma" },
        },
        "threat": attacks(&a.tags).into_iter().map(|t| json!({"framework": "MITRE ATT&CK", "technique": t.get("technique").or(t.get("sub_technique")).map(|x| json!({"id": x["uid"]})), "tactic": t.get("tactic").map(|x| json!({"name": x["name"]}))})).collect::<Vec<_>>(),
        "labels": {"severity": a.severity.as_str()},
        "tags": a.tags,
        "auditwatch": {"event_ids": a.event_ids, "resources": a.resources, "explanation": a.explanation},
    });
    if let Some(actor) = &a.actor {
        v["user"] = json!({"name": actor, "id": actor});
    }
    if let Some(Value::String(ip)) = ip {
        v["source"] = json!({"ip": ip});
    }
    v
}

/// Alerts back from `alerts` table rows.
pub fn alerts_from_batch(b: &RecordBatch) -> Vec<Alert> {
    let s = |name: &str, r: usize| -> Option<String> {
        let a = b.column_by_name(name)?.as_string_opt::<i32>()?;
        a.is_valid(r).then(|| a.value(r).to_string())
    };
    let t = |name: &str, r: usize| -> i64 {
        b.column_by_name(name)
            .map(|c| c.as_primitive::<TimestampMicrosecondType>().value(r))
            .unwrap_or_default()
    };
    let l = |name: &str, r: usize| -> Vec<String> {
        let Some(c) = b.column_by_name(name) else {
            return vec![];
        };
        let list = c.as_list::<i32>();
        if list.is_null(r) {
            return vec![];
        }
        let v = list.value(r);
        let strs = v.as_string::<i32>();
        (0..strs.len()).map(|i| strs.value(i).to_string()).collect()
    };
    (0..b.num_rows())
        .map(|r| Alert {
            id: s("id", r).unwrap_or_default(),
            time: t("time", r),
            rule_id: s("rule_id", r).unwrap_or_default(),
            title: s("title", r).unwrap_or_default(),
            severity: s("severity", r)
                .as_deref()
                .and_then(Level::parse)
                .unwrap_or(Level::Medium),
            detector: s("detector", r).unwrap_or_default(),
            actor: s("actor", r),
            source: s("source", r),
            resources: l("resources", r),
            window_start: t("window_start", r),
            window_end: t("window_end", r),
            event_ids: l("event_ids", r),
            tags: l("tags", r),
            explanation: s("explanation", r)
                .and_then(|e| serde_json::from_str(&e).ok())
                .unwrap_or(Value::Null),
        })
        .collect()
}
