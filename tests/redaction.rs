//! Canary test: secret values planted in every place the design names must not appear in
//! any output — the stored Parquet (files and every queried column), stdout and stderr of
//! `ingest` (with debug logging on) and of `query` in every format.

mod common;

use base64::Engine;
use common::run_cli;
use serde_json::json;

const CANARY: &str = "CANARYc4n4ry5ecretV4lue";
/// A value in a non-secret field of an invalid record: it stays in the quarantined original
/// bytes, but must not be echoed into the quarantine reason or the logs.
const ERRVAL: &str = "ERRVALq7q7q7";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn k8s(stage: &str, verb: &str, resource: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut e = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": format!("id-{verb}-{resource}-{}", extra.to_string().len()), "stage": stage,
        "requestURI": format!("/api/v1/namespaces/prod/{resource}"), "verb": verb,
        "user": {"username": "alice", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.1.2.3"], "userAgent": "kubectl/v1.30.0",
        "objectRef": {"resource": resource, "namespace": "prod", "name": "db", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-11-20T10:00:00.000000Z",
        "stageTimestamp": "2026-11-20T10:00:00.010000Z"
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

/// Events that carry the canary in every place redaction must cover.
fn canary_input() -> String {
    let secret = json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "db", "namespace": "prod",
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{{\"data\":{{\"p\":\"{}\"}}}}", b64(CANARY))}},
        "type": "Opaque", "data": {"password": b64(CANARY)}, "stringData": {"plain": CANARY}});
    let lines = vec![
        // Secret created with data + stringData, echoed in the response
        k8s(
            "ResponseComplete",
            "create",
            "secrets",
            json!({"requestObject": secret, "responseObject": secret}),
        ),
        // Secret read
        k8s(
            "ResponseComplete",
            "get",
            "secrets",
            json!({"auditID": "get-1", "responseObject": secret}),
        ),
        // SecretList (items carry no kind)
        k8s(
            "ResponseComplete",
            "list",
            "secrets",
            json!({"auditID": "list-1", "responseObject":
            {"kind": "SecretList", "items": [{"metadata": {"name": "x"}, "data": {"k": b64(CANARY)}}]}}),
        ),
        // JSON patch to a secret
        k8s(
            "ResponseComplete",
            "patch",
            "secrets",
            json!({"auditID": "patch-1", "requestObject":
            [{"op": "replace", "path": "/data/password", "value": b64(CANARY)}]}),
        ),
        // TokenRequest response carries a service-account token
        k8s(
            "ResponseComplete",
            "create",
            "serviceaccounts",
            json!({"auditID": "tok-1",
            "objectRef": {"resource": "serviceaccounts", "namespace": "prod", "name": "app", "subresource": "token"},
            "responseObject": {"kind": "TokenRequest", "status": {"token": format!("eyJ{CANARY}"), "expirationTimestamp": "2026-11-20T11:00:00Z"}}}),
        ),
        // TokenReview request carries a bearer token
        k8s(
            "ResponseComplete",
            "create",
            "tokenreviews",
            json!({"auditID": "tr-1",
            "requestObject": {"kind": "TokenReview", "spec": {"token": CANARY}}}),
        ),
        // last-applied-configuration on a Deployment
        k8s(
            "ResponseComplete",
            "patch",
            "deployments",
            json!({"auditID": "dep-1", "requestObject":
            {"kind": "Deployment", "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{{\"env\":\"{CANARY}\"}}")}}}}),
        ),
        // token in the request URI (plain and escaped forms)
        k8s(
            "ResponseComplete",
            "watch",
            "pods",
            json!({"auditID": "uri-1", "requestURI": format!("/api/v1/pods?watch=1&access_token={CANARY}")}),
        ),
        k8s(
            "ResponseComplete",
            "watch",
            "pods",
            json!({"auditID": "uri-2", "requestURI": format!("/api/v1/pods?x=\u{e9}&token={CANARY}")}),
        ),
        // Vault without HMAC: request data, response data, tokens, wrapping token, headers
        json!({"time": "2026-11-20T10:00:01Z", "type": "request", "auth": {"client_token": format!("hvs.{CANARY}"), "display_name": "approle", "policies": ["app"]},
               "request": {"id": "v-1", "operation": "update", "path": "secret/data/app", "mount_type": "kv", "client_token": format!("hvs.{CANARY}"),
                           "data": {"data": {"password": CANARY}}, "headers": {"authorization": [format!("Bearer {CANARY}")]}, "remote_address": "10.0.0.9"}}),
        json!({"time": "2026-11-20T10:00:01.1Z", "type": "response", "auth": {"client_token": format!("hvs.{CANARY}"), "display_name": "approle", "policies": ["app"]},
               "request": {"id": "v-1", "operation": "update", "path": "secret/data/app", "mount_type": "kv", "client_token": format!("hvs.{CANARY}"), "remote_address": "10.0.0.9"},
               "response": {"data": {"version": 3, "password": CANARY}, "auth": {"client_token": format!("s.{CANARY}")}, "wrap_info": {"token": format!("hvs.{CANARY}")}}}),
        // GKE RequestResponse body of a secret
        json!({"protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog", "authenticationInfo": {"principalEmail": "bob@example.com"},
               "methodName": "io.k8s.core.v1.secrets.create", "resourceName": "core/v1/namespaces/prod/secrets/db",
               "request": {"@type": "core.k8s.io/v1.Secret", "data": {"password": b64(CANARY)}}, "status": {"code": 0}},
               "insertId": "gke-1", "timestamp": "2026-11-20T10:00:02Z", "resource": {"labels": {"cluster_name": "c1"}}}),
    ];
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    // a truncated Secret line (quarantined) and a malformed record carrying the canary
    let full = k8s(
        "ResponseComplete",
        "create",
        "secrets",
        json!({"auditID": "trunc-1", "requestObject": secret}),
    )
    .to_string();
    let cut = full.find(&b64(CANARY)).unwrap() + 8;
    text.push_str(&full[..cut]);
    text.push('\n');
    text.push_str(&format!("{{\"kind\":0,\"token\":\"{CANARY}\"}}\n"));
    // valid JSON, invalid event: serde quotes the offending value in its error message
    text.push_str(&format!(
        "{{\"auditID\":\"bad\",\"stage\":\"ResponseComplete\",\"verb\":\"get\",\"user\":{{\"username\":\"x\"}},\"responseStatus\":{{\"code\":\"{ERRVAL}\"}},\"requestObject\":{{\"kind\":\"Secret\",\"data\":{{\"p\":\"{CANARY}\"}}}}}}\n"
    ));
    text
}

fn assert_clean(what: &str, text: &str) {
    let needles = [
        CANARY.to_string(),
        b64(CANARY),
        b64(CANARY)[..16].to_string(),
        CANARY[..12].to_string(),
    ];
    for n in needles {
        assert!(
            !text.contains(&n),
            "{what} contains a secret value ({n}):\n{}",
            &text[..text.len().min(3000)]
        );
    }
}

#[test]
fn planted_canaries_never_reach_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let data = data.to_str().unwrap();
    let input = canary_input();
    assert!(input.contains(CANARY), "the test plants the canary");
    let env = [("AUDITWATCH_LOG", "debug")];
    let (code, out, err) = run_cli(
        &["ingest", "--data-dir", data, "-"],
        Some(input.as_bytes()),
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert_clean("ingest stdout", &out);
    assert_clean("ingest stderr", &err);
    assert!(!err.contains(ERRVAL), "{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["events"], 11, "{summary}");
    assert_eq!(summary["quarantined"], 3, "{summary}");

    // every stored file, byte for byte (Parquet pages are compressed, so also query below)
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert_clean(
            &entry.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
    }
    // every column of every row, in every output format
    for table in ["events", "quarantine"] {
        for fmt in ["json", "csv", "table"] {
            let sql = if table == "quarantine" {
                "select *, arrow_cast(original, 'Utf8') as original_text from quarantine"
                    .to_string()
            } else {
                format!("select * from {table}")
            };
            let (code, out, err) = run_cli(
                &["query", "--data-dir", data, "--format", fmt, &sql],
                None,
                &env,
            );
            assert_eq!(code, 0, "{err}");
            assert!(out.len() > 100, "{table} {fmt}: {out}");
            assert_clean(&format!("query {table} {fmt} stdout"), &out);
            assert_clean(&format!("query {table} {fmt} stderr"), &err);
        }
    }
    let (_, out, _) = run_cli(
        &[
            "query",
            "--data-dir",
            data,
            "--format",
            "json",
            "select reason from quarantine",
        ],
        None,
        &env,
    );
    assert!(
        out.contains("invalid type: string") && !out.contains(ERRVAL),
        "{out}"
    );
    // redaction keeps key names so investigators see what moved
    let (_, out, _) = run_cli(
        &[
            "query",
            "--data-dir",
            data,
            "--format",
            "json",
            "select raw from events where event_id='get-1'",
        ],
        None,
        &env,
    );
    assert!(
        out.contains("password") && out.contains("[REDACTED]"),
        "{out}"
    );
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(p).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
