//! Our OCSF Detection Findings against the OCSF 1.8.0 schema in the conformance data:
//! every required attribute of the class (with its parents) and of every object we emit
//! is present, `at_least_one` constraints hold, every attribute we emit exists in the
//! class, and enum ids are defined.

mod common;

use std::path::Path;

use auditwatch::detect::Alert;
use auditwatch::detect::sigma::Level;
use auditwatch::siem::{AlertFormat, render};
use serde_json::{Value, json};

fn load(root: &Path, rel: &str) -> Value {
    let p = root.join(rel);
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// attribute name → requirement, following `extends`.
fn class_attrs(root: &Path, rel: &str) -> serde_json::Map<String, Value> {
    let d = load(root, rel);
    let mut attrs = match d.get("extends").and_then(Value::as_str) {
        Some("base_event") => class_attrs(root, "events/base_event.json"),
        Some(parent) => class_attrs(root, &format!("events/findings/{parent}.json")),
        None => serde_json::Map::new(),
    };
    for (k, v) in d["attributes"].as_object().unwrap() {
        let req = v.get("requirement").cloned().unwrap_or(Value::Null);
        let entry = attrs.entry(k.clone()).or_insert(Value::Null);
        if !req.is_null() {
            *entry = req;
        }
    }
    attrs
}

fn check_object(root: &Path, name: &str, v: &Value, path: &str, errors: &mut Vec<String>) {
    let d = load(root, &format!("objects/{name}.json"));
    let attrs = d["attributes"].as_object().unwrap();
    for (k, a) in attrs {
        if a.get("requirement").and_then(Value::as_str) == Some("required") && v.get(k).is_none() {
            errors.push(format!("{path}: required `{k}` of object {name} missing"));
        }
    }
    if let Some(c) = d
        .pointer("/constraints/at_least_one")
        .and_then(Value::as_array)
    {
        if !c.iter().any(|k| v.get(k.as_str().unwrap()).is_some()) {
            errors.push(format!("{path}: object {name} needs at least one of {c:?}"));
        }
    }
}

fn alert(detector: &str) -> Alert {
    Alert {
        id: "6f1c2a8e-0000-4000-8000-000000000001".into(),
        time: 1_764_000_000_000_000,
        rule_id: "rule-1".into(),
        title: "Secrets listed cluster-wide".into(),
        severity: Level::High,
        detector: detector.into(),
        actor: Some("system:serviceaccount:payments:api".into()),
        source: Some("kubernetes".into()),
        resources: vec!["secrets".into()],
        window_start: 1_764_000_000_000_000,
        window_end: 1_764_000_060_000_000,
        event_ids: vec!["a1".into(), "a2".into()],
        tags: vec!["attack.credential-access".into(), "attack.t1552.007".into()],
        explanation: json!({"rule": {"description": "d"}, "observed": 42, "baseline": {"mean": 3.1}, "metric": "secret_reads_per_hour", "reason": "p=1e-9"}),
    }
}

#[test]
fn detection_findings_satisfy_the_ocsf_class() {
    let Some(data) = common::conformance_dir("detection_findings_satisfy_the_ocsf_class") else {
        return;
    };
    let root = data.join("ocsf-schema-1.8.0");
    let class = load(&root, "events/findings/detection_finding.json");
    assert_eq!(class["uid"], 4);
    let attrs = class_attrs(&root, "events/findings/detection_finding.json");
    let dict = load(&root, "dictionary.json");
    for detector in ["sigma", "baseline:volume"] {
        let v = render(&alert(detector), AlertFormat::Ocsf);
        let mut errors = Vec::new();
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["category_uid"], 2);
        assert_eq!(v["type_uid"], 200401);
        for (k, req) in &attrs {
            if req == "required" && v.get(k).is_none() {
                errors.push(format!("required class attribute `{k}` missing"));
            }
        }
        for k in v.as_object().unwrap().keys() {
            if !attrs.contains_key(k) {
                errors.push(format!("`{k}` is not an attribute of Detection Finding"));
            }
        }
        let sev = v["severity_id"].to_string();
        assert!(
            dict.pointer(&format!("/attributes/severity_id/enum/{sev}"))
                .is_some()
        );
        check_object(&root, "metadata", &v["metadata"], "metadata", &mut errors);
        check_object(
            &root,
            "finding_info",
            &v["finding_info"],
            "finding_info",
            &mut errors,
        );
        check_object(
            &root,
            "analytic",
            &v["finding_info"]["analytic"],
            "analytic",
            &mut errors,
        );
        for e in v["finding_info"]["related_events"].as_array().unwrap() {
            check_object(&root, "related_event", e, "related_events[]", &mut errors);
        }
        for a in v["finding_info"]["attacks"].as_array().unwrap() {
            check_object(&root, "attack", a, "attacks[]", &mut errors);
        }
        for e in v["evidences"].as_array().unwrap() {
            check_object(&root, "evidences", e, "evidences[]", &mut errors);
            check_object(
                &root,
                "actor",
                &e["actor"],
                "evidences[].actor",
                &mut errors,
            );
            check_object(
                &root,
                "user",
                &e["actor"]["user"],
                "evidences[].actor.user",
                &mut errors,
            );
        }
        if detector.starts_with("baseline") {
            let aa = &v["anomaly_analyses"][0];
            check_object(
                &root,
                "anomaly_analysis",
                aa,
                "anomaly_analyses[]",
                &mut errors,
            );
            check_object(
                &root,
                "anomaly",
                &aa["anomalies"][0],
                "anomalies[]",
                &mut errors,
            );
            check_object(
                &root,
                "analysis_target",
                &aa["analysis_targets"][0],
                "analysis_targets[]",
                &mut errors,
            );
            check_object(
                &root,
                "observation",
                &aa["anomalies"][0]["observations"][0],
                "observations[]",
                &mut errors,
            );
        } else {
            assert!(v.get("anomaly_analyses").is_none());
        }
        assert!(errors.is_empty(), "{detector}: {errors:#?}");
    }
}

#[test]
fn ecs_alerts_carry_rule_user_and_kind() {
    let v = render(&alert("sigma"), AlertFormat::Ecs);
    assert_eq!(v["event"]["kind"], "alert");
    assert_eq!(v["rule"]["id"], "rule-1");
    assert_eq!(v["user"]["name"], "system:serviceaccount:payments:api");
    assert_eq!(v["threat"][1]["technique"]["id"], "T1552");
}
