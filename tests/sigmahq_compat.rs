//! The 16 SigmaHQ Kubernetes audit rules, unmodified, load and fire.
//!
//! For every rule that can match, a realistic audit event of the activity it is meant to
//! catch fires it, and a benign look-alike (same resource or same verb, different intent)
//! does not. The rule that cannot match as written (`responseStatus.code: 'ALLOW'`, a
//! string compared with the integer status code and ANDed with everything else) must load
//! with an error diagnostic, not crash, and stay silent. Prints a table: rule → loads /
//! fires / note.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use auditwatch::decode::Format;
use auditwatch::detect::fields::FieldMap;
use auditwatch::detect::sigma::{self, DiagSeverity};
use auditwatch::detect::tooling::decode_to_batch;
use auditwatch::detect::{Engine, RuleSet};
use common::conformance_dir;
use serde_json::{Value, json};

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else if let Some(existing) = b.get_mut(&k) {
                    merge(existing, v);
                } else {
                    b.insert(k, v);
                }
            }
        }
        (b, p) => *b = p,
    }
}

/// An `audit.k8s.io/v1` event; the patch sets what the activity changes.
fn k8s(patch: Value) -> Value {
    let mut e = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "5f0c1a7e-2b4d-4c8e-9a1f-3d2e1c0b9a87",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods",
        "verb": "get",
        "user": {"username": "alice@example.com", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["10.1.2.3"],
        "userAgent": "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
        "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-01-10T12:00:00.000000Z",
        "stageTimestamp": "2026-01-10T12:00:00.012000Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    });
    merge(&mut e, patch);
    e
}

/// `verb` on `resource` (in `group`, namespace `ns`, object `name`).
fn req(
    verb: &str,
    group: Option<&str>,
    resource: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> Value {
    let base = match group {
        Some(g) => format!("/apis/{g}/v1"),
        None => "/api/v1".to_string(),
    };
    let mut uri = base;
    if let Some(ns) = ns {
        uri.push_str(&format!("/namespaces/{ns}"));
    }
    uri.push_str(&format!("/{resource}"));
    if let Some(n) = name {
        uri.push_str(&format!("/{n}"));
    }
    let code = match verb {
        "create" => 201,
        _ => 200,
    };
    k8s(json!({
        "verb": verb,
        "requestURI": uri,
        "objectRef": {"resource": resource, "namespace": ns, "name": name,
                      "apiGroup": group, "apiVersion": "v1"},
        "responseStatus": {"code": code}
    }))
}

fn pod_create(ns: &str, spec: Value) -> Value {
    k8s(json!({
        "level": "RequestResponse",
        "verb": "create",
        "requestURI": format!("/api/v1/namespaces/{ns}/pods"),
        "objectRef": {"resource": "pods", "namespace": ns},
        "responseStatus": {"code": 201},
        "requestObject": {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "debug", "namespace": ns},
            "spec": spec}
    }))
}

struct Case {
    file: &'static str,
    /// The activity the rule is meant to catch (None: the rule cannot fire as written).
    positive: Option<Value>,
    /// A benign look-alike that must stay quiet.
    benign: Value,
}

fn cases() -> Vec<Case> {
    let write = |verb: &str, group: &str, res: &str, ns: Option<&str>| {
        req(verb, Some(group), res, ns, Some("x"))
    };
    vec![
        Case {
            file: "kubernetes_audit_change_admission_controller.yml",
            positive: Some(write(
                "create",
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                None,
            )),
            benign: req(
                "list",
                Some("admissionregistration.k8s.io"),
                "mutatingwebhookconfigurations",
                None,
                None,
            ),
        },
        Case {
            file: "kubernetes_audit_cronjob_modification.yml",
            positive: Some(write("patch", "batch", "cronjobs", Some("etl"))),
            benign: req("get", Some("batch"), "cronjobs", Some("etl"), Some("x")),
        },
        Case {
            file: "kubernetes_audit_deployment_deleted.yml",
            positive: Some(write("delete", "apps", "deployments", Some("shop"))),
            // the ReplicaSet controller deleting pods of a rollout
            benign: req(
                "delete",
                None,
                "pods",
                Some("shop"),
                Some("web-7d9f8c6b5-x2k4q"),
            ),
        },
        Case {
            file: "kubernetes_audit_events_deleted.yml",
            positive: Some(req(
                "delete",
                None,
                "events",
                Some("default"),
                Some("web.17a2b"),
            )),
            // the kubelet recording an event
            benign: req("create", None, "events", Some("default"), None),
        },
        Case {
            file: "kubernetes_audit_exec_into_container.yml",
            positive: Some(k8s(json!({
                "verb": "create", "stage": "ResponseStarted",
                "requestURI": "/api/v1/namespaces/shop/pods/web-0/exec?command=sh&container=web&stdin=true&stdout=true&tty=true",
                "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-0", "subresource": "exec"},
                "responseStatus": {"code": 101}
            }))),
            benign: k8s(json!({
                "requestURI": "/api/v1/namespaces/shop/pods/web-0/log?container=web&follow=true",
                "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-0", "subresource": "log"}
            })),
        },
        Case {
            file: "kubernetes_audit_hostpath_mount.yml",
            positive: Some(pod_create(
                "default",
                json!({"containers": [{"name": "sh", "image": "alpine:3.19",
                         "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
                       "volumes": [{"name": "host", "hostPath": {"path": "/", "type": "Directory"}}]}),
            )),
            benign: pod_create(
                "default",
                json!({"containers": [{"name": "sh", "image": "alpine:3.19",
                         "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}]}],
                       "volumes": [{"name": "scratch", "emptyDir": {}}]}),
            ),
        },
        Case {
            file: "kubernetes_audit_pod_in_system_namespace.yml",
            positive: Some(pod_create(
                "kube-system",
                json!({"containers": [{"name": "x", "image": "alpine:3.19"}]}),
            )),
            benign: pod_create(
                "default",
                json!({"containers": [{"name": "x", "image": "alpine:3.19"}]}),
            ),
        },
        Case {
            file: "kubernetes_audit_potential_enumeration_activity.yml",
            positive: None,
            // what the rule is after: a shell exec'd by a secret scanner
            benign: k8s(json!({
                "verb": "create", "stage": "ResponseStarted",
                "requestURI": "/api/v1/namespaces/shop/pods/web-0/exec?command=%2Fbin%2Fbash&container=web&stdin=true&stdout=true",
                "userAgent": "trufflehog/3.63.2",
                "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-0", "subresource": "exec"},
                "responseStatus": {"code": 101}
            })),
        },
        Case {
            file: "kubernetes_audit_privileged_pod_creation.yml",
            positive: Some(pod_create(
                "default",
                json!({"containers": [{"name": "x", "image": "alpine:3.19",
                    "securityContext": {"capabilities": {"add": ["SYS_ADMIN", "NET_ADMIN"]}}}]}),
            )),
            benign: pod_create(
                "default",
                json!({"containers": [{"name": "x", "image": "alpine:3.19",
                    "securityContext": {"runAsNonRoot": true, "readOnlyRootFilesystem": true}}]}),
            ),
        },
        Case {
            file: "kubernetes_audit_rbac_permisions_listing.yml",
            // kubectl auth can-i --list
            positive: Some(req(
                "create",
                Some("authorization.k8s.io"),
                "selfsubjectrulesreviews",
                None,
                None,
            )),
            // kubectl auth can-i get pods
            benign: req(
                "create",
                Some("authorization.k8s.io"),
                "selfsubjectaccessreviews",
                None,
                None,
            ),
        },
        Case {
            file: "kubernetes_audit_rolebinding_modification.yml",
            positive: Some(write(
                "create",
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                None,
            )),
            benign: req(
                "get",
                Some("rbac.authorization.k8s.io"),
                "rolebindings",
                Some("shop"),
                Some("x"),
            ),
        },
        Case {
            file: "kubernetes_audit_secrets_enumeration.yml",
            positive: Some(req("list", None, "secrets", Some("shop"), None)),
            benign: req("get", None, "secrets", Some("shop"), Some("db")),
        },
        Case {
            file: "kubernetes_audit_secrets_modified_or_deleted.yml",
            positive: Some(req("delete", None, "secrets", Some("shop"), Some("db"))),
            benign: req("watch", None, "secrets", Some("shop"), None),
        },
        Case {
            file: "kubernetes_audit_serviceaccount_creation.yml",
            positive: Some(req("create", None, "serviceaccounts", Some("shop"), None)),
            benign: req(
                "patch",
                None,
                "serviceaccounts",
                Some("shop"),
                Some("default"),
            ),
        },
        Case {
            file: "kubernetes_audit_sidecar_injection.yml",
            positive: Some(write("patch", "apps", "deployments", Some("shop"))),
            benign: write("patch", "apps", "statefulsets", Some("shop")),
        },
        Case {
            file: "kubernetes_audit_unauthorized_unauthenticated_actions.yml",
            positive: Some(k8s(json!({
                "verb": "list", "requestURI": "/api/v1/namespaces/kube-system/secrets",
                "user": {"username": "system:anonymous", "groups": ["system:unauthenticated"]},
                "objectRef": {"resource": "secrets", "namespace": "kube-system"},
                "responseStatus": {"code": 403, "status": "Failure", "reason": "Forbidden"},
                "annotations": {"authorization.k8s.io/decision": "forbid"}
            }))),
            benign: k8s(json!({
                "requestURI": "/api/v1/namespaces/shop/pods/gone",
                "objectRef": {"name": "gone"},
                "responseStatus": {"code": 404, "status": "Failure", "reason": "NotFound"}
            })),
        },
    ]
}

fn fires(rs: &Arc<RuleSet>, rule: usize, event: &Value) -> bool {
    let (batch, quarantined) = decode_to_batch(format!("{event}\n").as_bytes(), Format::Kubernetes);
    assert_eq!(quarantined, 0);
    let batch = batch.expect("one row");
    Engine::new(rs.clone()).matches(&batch)[rule].count_set_bits() > 0
}

#[test]
fn sigmahq_kubernetes_rules_load_and_fire() {
    let Some(data) = conformance_dir("sigmahq compat") else {
        return;
    };
    let dir = data.join("sigmahq-sigma/rules/application/kubernetes/audit");
    let rs = Arc::new(RuleSet::load(&[dir.clone()], &FieldMap::builtin()));
    let cases = cases();
    assert_eq!(rs.files.len(), 16, "{:?}", rs.files);
    assert_eq!(cases.len(), rs.files.len());
    assert_eq!(rs.dropped, 0, "{:#?}", rs.diagnostics);
    assert_eq!(rs.rules.len(), 16);

    let mut table = vec![format!("{:<58} {:<6} {:<6} note", "rule", "loads", "fires")];
    let mut failures = Vec::new();
    for case in &cases {
        let path: PathBuf = dir.join(case.file);
        let idx = rs
            .rules
            .iter()
            .position(|r| r.meta.file == path)
            .unwrap_or_else(|| panic!("{} did not load", case.file));
        let diags: Vec<String> = rs
            .diagnostics
            .iter()
            .filter(|d| d.file == path)
            .map(|d| d.to_string())
            .collect();
        let benign = fires(&rs, idx, &case.benign);
        if benign {
            failures.push(format!("{}: the benign look-alike fired", case.file));
        }
        let (fired, note) = match &case.positive {
            Some(ev) => {
                let f = fires(&rs, idx, ev);
                if !f {
                    failures.push(format!("{}: the intended activity did not fire", case.file));
                }
                if !diags.is_empty() {
                    failures.push(format!("{}: unexpected diagnostics {diags:?}", case.file));
                }
                (if f { "yes" } else { "NO" }, String::new())
            }
            None => (
                "no",
                format!(
                    "cannot fire as written ({})",
                    rs.diagnostics
                        .iter()
                        .filter(|d| d.file == path)
                        .map(|d| format!("line {}: {}", d.line, d.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ),
        };
        table.push(format!(
            "{:<58} {:<6} {:<6} {}",
            case.file
                .trim_start_matches("kubernetes_audit_")
                .trim_end_matches(".yml"),
            "yes",
            fired,
            if note.is_empty() {
                diags.join("; ")
            } else {
                note
            }
        ));
    }
    println!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}");

    // The enumeration rule: `responseStatus.code: 'ALLOW'` is an error diagnostic with its
    // line, the rule loads, and it never fires (its status selection is ANDed with the rest).
    let enumeration = dir.join("kubernetes_audit_potential_enumeration_activity.yml");
    let d = rs
        .diagnostics
        .iter()
        .find(|d| d.file == enumeration)
        .expect("a diagnostic for the 'ALLOW' status");
    assert_eq!(d.severity, DiagSeverity::Error);
    assert!(
        d.message.contains("ALLOW") && d.message.contains("integer"),
        "{d}"
    );
    let text = std::fs::read_to_string(&enumeration).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("responseStatus.code: 'ALLOW'"))
        .unwrap()
        + 1;
    assert_eq!(d.line, line, "{d}");
    // only the status makes it silent: without that selection the same event fires
    let fixed = text.replace(
        "condition: selection_status and 1 of selection_request_*",
        "condition: 1 of selection_request_*",
    );
    assert_ne!(fixed, text);
    let mut diags = Vec::new();
    let docs = sigma::parse_file(&enumeration, &fixed, &mut diags);
    let fixed_rs = Arc::new(RuleSet::compile(docs, &FieldMap::builtin(), diags));
    let benign = &cases
        .iter()
        .find(|c| c.positive.is_none())
        .expect("the enumeration case")
        .benign;
    assert!(fires(&fixed_rs, 0, benign));
    println!(
        "potential_enumeration_activity without its impossible status selection: fires on a trufflehog exec of /bin/bash"
    );

    // No other rule has diagnostics.
    let others: Vec<String> = rs
        .diagnostics
        .iter()
        .filter(|d| d.file != enumeration)
        .map(|d| d.to_string())
        .collect();
    assert!(others.is_empty(), "{others:#?}");
}
