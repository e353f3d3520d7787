//! Conformance against public peers' test data in `../shared/data` (see its SOURCES.md):
//! Falco's k8s audit traces, Elastic's Kubernetes and Vault pipeline tests (expected ECS
//! documents), and audit2rbac's impersonation log. Skips with a notice when the data
//! folder is absent; `.ci/run` always provides it.

mod common;

use auditwatch::decode::{DecodeOptions, Format};
use common::{conformance_dir, decode_bytes, decode_file, str_of};
use serde_json::Value;

#[test]
fn every_falco_trace_decodes_and_the_malformed_one_is_quarantined() {
    let Some(dir) = conformance_dir("falco traces") else {
        return;
    };
    let traces = dir.join("falcosecurity-falco/test/trace_files/k8s_audit");
    let mut files: Vec<_> = std::fs::read_dir(&traces)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 47);
    let mut rows = 0;
    for f in &files {
        let d = decode_file(f, Format::Auto, DecodeOptions::default());
        let name = f.file_name().unwrap().to_str().unwrap();
        let lines = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        if name == "fal_01_003.json" {
            assert!(d.rows.is_empty(), "{name} must not produce a row");
            assert_eq!(d.quarantine.len(), 1);
            let reason = str_of(&d.quarantine[0], "reason").unwrap();
            assert!(reason.contains("not a recognized audit event"), "{reason}");
        } else {
            assert!(d.quarantine.is_empty(), "{name}: {:?}", d.quarantine);
            assert_eq!(
                d.rows.len() + d.skipped as usize,
                lines,
                "{name}: every event accounted for"
            );
            for r in &d.rows {
                assert!(
                    str_of(r, "actor").is_some_and(|a| !a.is_empty()),
                    "{name}: actor"
                );
                assert!(
                    str_of(r, "verb").is_some_and(|a| !a.is_empty()),
                    "{name}: verb"
                );
            }
        }
        rows += d.rows.len();
    }
    assert_eq!(
        rows, 51,
        "52 events in 47 files, one of which is the malformed {{\"kind\": 0}}"
    );
}

#[test]
fn falco_exec_and_attach_are_kept_at_response_started() {
    let Some(dir) = conformance_dir("falco exec") else {
        return;
    };
    for name in ["exec_pod.json", "attach_pod.json"] {
        let d = decode_file(
            &dir.join("falcosecurity-falco/test/trace_files/k8s_audit")
                .join(name),
            Format::Kubernetes,
            DecodeOptions::default(),
        );
        assert_eq!(d.rows.len(), 1, "{name}");
        let r = &d.rows[0];
        assert_eq!(str_of(r, "stage"), Some("ResponseStarted"));
        assert_eq!(str_of(r, "action"), Some("connect"));
        assert_eq!(r["status_code"], 101);
    }
}

/// Decodes each line on its own (no Vault pairing) so rows line up with expected docs.
fn per_line(text: &str, format: Format) -> Vec<Value> {
    let opts = DecodeOptions {
        vault_pairing: false,
        ..Default::default()
    };
    text.lines()
        .map(|l| {
            let d = decode_bytes(l.as_bytes(), format, opts.clone());
            assert!(
                d.quarantine.is_empty(),
                "line quarantined: {:?}",
                d.quarantine
            );
            assert_eq!(d.rows.len(), 1);
            d.rows.into_iter().next().unwrap()
        })
        .collect()
}

fn expected_docs(path: &std::path::Path) -> Vec<Value> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["expected"].as_array().unwrap().clone()
}

fn get<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

fn first_str(v: Option<&Value>) -> Option<&str> {
    match v? {
        Value::String(s) => Some(s),
        Value::Array(a) => a.first()?.as_str(),
        _ => None,
    }
}

#[test]
fn elastic_kubernetes_pipeline_expectations_agree() {
    let Some(dir) = conformance_dir("elastic kubernetes") else {
        return;
    };
    let base = dir
        .join("elastic-integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline");
    let mut compared = 0;
    for log in ["test-audit.log", "test-kube-audit.log"] {
        let rows = per_line(
            &std::fs::read_to_string(base.join(log)).unwrap(),
            Format::Auto,
        );
        let expected = expected_docs(&base.join(format!("{log}-expected.json")));
        assert_eq!(rows.len(), expected.len(), "{log}");
        for (row, exp) in rows.iter().zip(&expected) {
            let pairs = [
                ("user.name", "actor"),
                ("user.id", "actor_id"),
                ("source.ip", "src_ip"),
                ("event.action", "verb"),
                ("event.outcome", "outcome"),
                ("orchestrator.resource.name", "resource_name"),
                ("orchestrator.namespace", "resource_namespace"),
                ("user_agent.original", "user_agent"),
                ("orchestrator.cluster.name", "cluster_name"),
            ];
            for (ecs, col) in pairs {
                if let Some(want) = first_str(get(exp, ecs)) {
                    assert_eq!(str_of(row, col), Some(want), "{log}: {ecs} vs {col}");
                    compared += 1;
                }
            }
            // resource type: Elastic names the GKE monitored-resource type (k8s_cluster) for
            // non-resource URLs; we say `nonresource`. Everything else is the k8s resource.
            if let Some(want) = first_str(get(exp, "orchestrator.resource.type")) {
                let got = str_of(row, "resource_type").unwrap();
                assert!(
                    got == want || (want == "k8s_cluster" && got == "nonresource"),
                    "{log}: {want} vs {got}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 35, "compared only {compared} fields");
}

#[test]
fn elastic_vault_pipeline_expectations_agree() {
    let Some(dir) = conformance_dir("elastic vault") else {
        return;
    };
    let base = dir
        .join("elastic-integrations/packages/hashicorp_vault/data_stream/audit/_dev/test/pipeline");
    let mut compared = 0;
    for log in ["test-audit.log", "test-faked-all-fields.log"] {
        let text = std::fs::read_to_string(base.join(log)).unwrap();
        let rows = per_line(&text, Format::Vault);
        let expected = expected_docs(&base.join(format!("{log}-expected.json")));
        assert_eq!(rows.len(), expected.len(), "{log}");
        for (row, exp) in rows.iter().zip(&expected) {
            let audit = &exp["hashicorp_vault"]["audit"];
            let checks = [
                (first_str(get(exp, "event.action")), "verb"),
                (first_str(get(exp, "event.id")), "event_id"),
                (first_str(get(exp, "source.ip")), "src_ip"),
                (first_str(get(audit, "request.path")), "resource_path"),
                (
                    first_str(get(audit, "auth.entity_id")).filter(|s| !s.is_empty()),
                    "actor_id",
                ),
                (first_str(get(audit, "type")), "stage"),
            ];
            for (want, col) in checks {
                if let Some(want) = want {
                    assert_eq!(str_of(row, col), Some(want), "{log}: {col}");
                    compared += 1;
                }
            }
            // Outcome. Elastic says failure whenever an `error` key exists, even when it is
            // empty; we say failure/denied only for a non-empty error. A request entry on its
            // own has no outcome yet: we say `unknown` where Elastic says success.
            let err = audit.get("error").and_then(Value::as_str);
            let is_request = str_of(row, "stage") == Some("request");
            let got = str_of(row, "outcome").unwrap();
            let want_ours = match err {
                Some(e) if e.contains("permission denied") => "denied",
                Some(e) if !e.is_empty() => "failure",
                _ if is_request => "unknown",
                _ => "success",
            };
            assert_eq!(
                got,
                want_ours,
                "{log}: outcome (elastic: {:?})",
                get(exp, "event.outcome")
            );
            if err.is_none_or(|e| !e.is_empty()) && !is_request {
                assert_eq!(
                    Some(if got == "success" {
                        "success"
                    } else {
                        "failure"
                    }),
                    first_str(get(exp, "event.outcome"))
                );
            }
            compared += 1;
            // message = error text
            if let Some(m) = first_str(exp.get("message")).filter(|m| !m.is_empty()) {
                assert_eq!(str_of(row, "reason"), Some(m.trim()), "{log}: reason");
            }
        }
    }
    assert!(compared >= 60, "compared only {compared} fields");
}

#[test]
fn vault_requests_pair_with_responses() {
    let Some(dir) = conformance_dir("vault pairing") else {
        return;
    };
    let f = dir.join("elastic-integrations/packages/hashicorp_vault/data_stream/audit/_dev/test/pipeline/test-audit.log");
    let d = decode_file(&f, Format::Vault, DecodeOptions::default());
    // 9 lines: 4 request/response pairs and one request-only `help`
    assert_eq!(
        d.rows.len(),
        5,
        "{:#?}",
        d.rows
            .iter()
            .map(|r| (&r["event_id"], &r["stage"]))
            .collect::<Vec<_>>()
    );
    let responses = d
        .rows
        .iter()
        .filter(|r| str_of(r, "stage") == Some("response"))
        .count();
    assert_eq!(responses, 4);
    let help = d
        .rows
        .iter()
        .find(|r| str_of(r, "verb") == Some("help"))
        .unwrap();
    assert_eq!(str_of(help, "outcome"), Some("unknown"));
    let reads: Vec<_> = d
        .rows
        .iter()
        .filter(|r| r["secret_access"] == true)
        .collect();
    assert!(reads.iter().any(
        |r| str_of(r, "resource_path") == Some("secret/data/apps/home-assistant/secrets_yaml")
    ));
}

#[test]
fn multi_line_and_pretty_printed_vault_entries_decode() {
    let Some(dir) = conformance_dir("vault framing") else {
        return;
    };
    let f = dir.join(
        "google-ops-agent/transformation_test/testdata/logging_processor-vault-audit/input.log",
    );
    let d = decode_file(&f, Format::Auto, DecodeOptions::default());
    assert!(d.quarantine.is_empty(), "{:?}", d.quarantine);
    assert_eq!(d.rows.len(), 8, "8 hand-written entries");
    // Datadog's sample: one pretty-printed root-token policy write
    let yaml = std::fs::read_to_string(
        dir.join("datadog-integrations-core/vault/assets/logs/vault_tests.yaml"),
    )
    .unwrap();
    let start = yaml.find("sample: |-").unwrap();
    let block: String = yaml[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    let d = decode_bytes(block.as_bytes(), Format::Auto, DecodeOptions::default());
    assert!(d.quarantine.is_empty(), "{:?}", d.quarantine);
    assert_eq!(d.rows.len(), 1);
    assert_eq!(
        str_of(&d.rows[0], "resource_path"),
        Some("sys/policies/acl/admin")
    );
    assert_eq!(str_of(&d.rows[0], "src_ip"), Some("127.0.0.1"));
}

#[test]
fn kmip_entries_decode_with_ipv6_remote_address() {
    let Some(dir) = conformance_dir("vault kmip") else {
        return;
    };
    let f = dir.join("elastic-integrations-newer-unpaired/packages/hashicorp_vault/data_stream/audit/_dev/test/pipeline/test-audit.log");
    let d = decode_file(&f, Format::Auto, DecodeOptions::default());
    assert!(d.quarantine.is_empty(), "{:?}", d.quarantine);
    let kmip: Vec<_> = d
        .rows
        .iter()
        .filter(|r| str_of(r, "stage").is_some_and(|s| s.starts_with("kmip-")))
        .collect();
    assert_eq!(kmip.len(), 4);
    assert!(
        kmip.iter()
            .any(|r| str_of(r, "src_ip") == Some("2001:db8::10"))
    );
}

#[test]
fn aks_wrappers_string_and_object_and_gke_protopayload() {
    let Some(dir) = conformance_dir("managed wrappers") else {
        return;
    };
    let f = dir.join("elastic-integrations-newer-unpaired/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline/test-audit.log");
    let d = decode_file(&f, Format::Auto, DecodeOptions::default());
    assert!(d.quarantine.is_empty(), "{:?}", d.quarantine);
    assert_eq!(d.rows.len(), 5);
    let gke = d
        .rows
        .iter()
        .find(|r| str_of(r, "actor") == Some("system:gke-master-healthcheck"))
        .unwrap();
    assert_eq!(str_of(gke, "cluster_name"), Some("test-cluster"));
    assert_eq!(str_of(gke, "src_ip"), Some("67.43.156.1"));
    let aks = d
        .rows
        .iter()
        .find(|r| str_of(r, "actor") == Some("aksService"))
        .unwrap();
    assert!(str_of(aks, "cluster_name").is_some());
}

#[test]
fn audit2rbac_impersonation_is_captured() {
    let Some(dir) = conformance_dir("audit2rbac") else {
        return;
    };
    let d = decode_file(
        &dir.join("liggitt-audit2rbac/testdata/demo.log"),
        Format::Auto,
        DecodeOptions::default(),
    );
    assert!(d.quarantine.is_empty());
    assert_eq!(d.rows.len(), 37);
    // every request is system:admin impersonating bob (29), alice (3) or ns1:sa1 (5)
    let mut by_actor = std::collections::BTreeMap::new();
    for r in &d.rows {
        assert_eq!(str_of(r, "impersonator"), Some("system:admin"));
        assert_eq!(str_of(r, "src_ip"), Some("::1"));
        *by_actor
            .entry(str_of(r, "actor").unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(by_actor["bob"], 29);
    assert_eq!(by_actor["alice"], 3);
    assert_eq!(by_actor["system:serviceaccount:ns1:sa1"], 5);
    let sa = d
        .rows
        .iter()
        .find(|r| str_of(r, "actor") == Some("system:serviceaccount:ns1:sa1"))
        .unwrap();
    assert_eq!(str_of(sa, "actor_type"), Some("service_account"));
    assert_eq!(str_of(sa, "actor_namespace"), Some("ns1"));
    let denied = d
        .rows
        .iter()
        .filter(|r| str_of(r, "outcome") == Some("denied"))
        .count();
    assert_eq!(denied, 11, "forbidden responses are `denied`");
    assert!(
        d.rows
            .iter()
            .filter(|r| str_of(r, "outcome") == Some("denied"))
            .all(|r| r["status_code"] == 403)
    );
}
