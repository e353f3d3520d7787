//! Decode + normalize to Arrow, against a parse-only reference measured in the same run.
//!
//! Reference: `serde_json` into a borrowed struct with the same fields our decoder reads
//! (bodies and annotations as raw spans, as ours; strings borrowed through
//! `decode::borrow`, as ours — serde's own `Cow` copies every `Option<Cow<str>>`), and
//! nothing else: no UTF-8 pass, no
//! normalization, no redaction checks, no Arrow. Ours: `Decoder::decode_record` into
//! the `Batcher`, finishing a `RecordBatch` every 8192 rows. Inputs are realistic ~1.5 KB
//! Kubernetes events (RequestResponse level with bodies, secrets among them) and Vault
//! request/response entries with HMAC'd values.
//!
//! Besides criterion's report, prints one summary line per source:
//! `decode k8s: ours N ev/s, parse-only M ev/s, ratio R`.

use std::borrow::Cow;

use auditwatch::decode::borrow;
use std::time::{Duration, Instant};

use auditwatch::batch::{BatchLimits, Batcher};
use auditwatch::decode::{DecodeOptions, Decoder, Format};
use auditwatch::normalize::Provenance;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;

const BATCH: usize = 8192;

// mimalloc: the decode path allocates many small strings and large Arrow buffers per batch.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn k8s_events(n: usize) -> Vec<Vec<u8>> {
    let verbs = [
        "get", "list", "watch", "update", "patch", "create", "get", "get",
    ];
    let resources = [
        "secrets",
        "configmaps",
        "pods",
        "deployments",
        "leases",
        "secrets",
        "serviceaccounts",
        "events",
    ];
    (0..n)
        .map(|i| {
            let verb = verbs[i % verbs.len()];
            let res = resources[(i / 3) % resources.len()];
            let ns = format!("team-{}", i % 17);
            let user = match i % 5 {
                0 => format!("system:serviceaccount:{ns}:svc-{}", i % 40),
                1 => format!("system:node:node-{}", i % 12),
                2 => "system:kube-controller-manager".to_string(),
                3 => format!("user{}@example.com", i % 9),
                _ => format!("system:serviceaccount:kube-system:controller-{}", i % 7),
            };
            let body = if verb == "update" || verb == "patch" || verb == "create" {
                format!(
                    r#","requestObject":{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"name":"obj-{i}","namespace":"{ns}","labels":{{"app":"svc-{a}","tier":"backend","release":"r{b}"}},"resourceVersion":"{rv}"}},"data":{{"config.yaml":"server:\n  port: 8080\n  replicas: 3\nlogging:\n  level: info\nfeatures:\n  a: true\n  b: false"}}}}"#,
                    a = i % 40,
                    b = i % 3,
                    rv = 100000 + i
                )
            } else {
                String::new()
            };
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"{id:08x}-8d2c-4b7e-9f1a-{i:012x}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/{ns}/{res}/obj-{o}?timeout=10s","verb":"{verb}","user":{{"username":"{user}","uid":"{id:08x}-1111-2222-3333-444455556666","groups":["system:serviceaccounts","system:serviceaccounts:{ns}","system:authenticated"],"extra":{{"authentication.kubernetes.io/pod-name":["svc-{a}-7d9f8c6b5-x2k4q"],"authentication.kubernetes.io/pod-uid":["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"]}}}},"sourceIPs":["10.{s1}.{s2}.{s3}"],"userAgent":"svc-{a}/v1.{b} (linux/amd64) kubernetes/abcdef0","objectRef":{{"resource":"{res}","namespace":"{ns}","name":"obj-{o}","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":200}}{body},"requestReceivedTimestamp":"2026-11-20T10:{mm:02}:{ss:02}.{us:06}Z","stageTimestamp":"2026-11-20T10:{mm:02}:{ss:02}.{us2:06}Z","annotations":{{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"svc-{a}/{ns}\" of Role \"svc-{a}\" to ServiceAccount \"svc-{a}/{ns}\""}}}}"#,
                id = i * 7919,
                o = i % 300,
                a = i % 40,
                b = i % 9,
                s1 = i % 200,
                s2 = (i / 7) % 250,
                s3 = (i / 11) % 250,
                mm = (i / 60) % 60,
                ss = i % 60,
                us = (i * 37) % 1_000_000,
                us2 = (i * 37 + 900) % 1_000_000,
            )
            .into_bytes()
        })
        .collect()
}

fn vault_entries(n: usize) -> Vec<Vec<u8>> {
    let h = |x: usize| format!("hmac-sha256:{:064x}", x.wrapping_mul(0x9E3779B97F4A7C15));
    (0..n)
        .map(|i| {
            let kind = if i % 2 == 0 { "request" } else { "response" };
            let id = i / 2;
            let resp = if kind == "response" {
                format!(r#","response":{{"mount_type":"kv","data":{{"data":{{"password":"{}","username":"{}"}},"metadata":{{"created_time":"{}","version":3}}}}}}"#, h(i), h(i + 1), h(i + 2))
            } else {
                String::new()
            };
            format!(
                r#"{{"time":"2026-11-20T10:{mm:02}:{ss:02}.{us:06}Z","type":"{kind}","auth":{{"client_token":"{t}","accessor":"{acc}","display_name":"kubernetes-team-{ns}-svc-{a}","policies":["default","svc-{a}"],"token_policies":["default","svc-{a}"],"metadata":{{"role":"svc-{a}","service_account_name":"svc-{a}","service_account_namespace":"team-{ns}","service_account_secret_name":"","service_account_uid":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}},"entity_id":"{id:08x}-aaaa-bbbb-cccc-ddddeeeeffff","token_type":"service","token_ttl":3600,"token_issue_time":"2026-11-20T09:00:00Z"}},"request":{{"id":"{id:08x}-1234-5678-9abc-def012345678","operation":"read","mount_type":"kv","mount_accessor":"kv_1234abcd","client_token":"{t}","client_token_accessor":"{acc}","namespace":{{"id":"root"}},"path":"secret/data/team-{ns}/svc-{a}/db","remote_address":"10.{s1}.{s2}.{s3}","remote_port":{port}}}{resp}}}"#,
                mm = (id / 60) % 60,
                ss = id % 60,
                us = (i * 37) % 1_000_000,
                t = h(id),
                acc = h(id + 7),
                ns = id % 17,
                a = id % 40,
                s1 = id % 200,
                s2 = (id / 7) % 250,
                s3 = (id / 11) % 250,
                port = 40000 + id % 20000,
            )
            .into_bytes()
        })
        .collect()
}

// ---- the parse-only reference: the fields a decoder has to read, borrowed
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefK8s<'a> {
    #[serde(rename = "auditID", borrow, deserialize_with = "borrow::cow")]
    audit_id: Cow<'a, str>,
    #[serde(borrow, deserialize_with = "borrow::cow")]
    stage: Cow<'a, str>,
    #[serde(borrow, deserialize_with = "borrow::cow")]
    verb: Cow<'a, str>,
    #[serde(
        borrow,
        rename = "requestURI",
        default,
        deserialize_with = "borrow::opt"
    )]
    request_uri: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: RefUser<'a>,
    #[serde(
        borrow,
        rename = "sourceIPs",
        default,
        deserialize_with = "borrow::opt_vec"
    )]
    source_ips: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    object_ref: Option<RefObj<'a>>,
    #[serde(borrow)]
    impersonated_user: Option<RefUser<'a>>,
    #[serde(borrow)]
    response_status: Option<RefStatus<'a>>,
    #[serde(borrow)]
    request_object: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    response_object: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    request_received_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    stage_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    annotations: Option<&'a serde_json::value::RawValue>,
}
#[allow(dead_code)]
#[derive(Deserialize)]
struct RefStatus<'a> {
    code: Option<i32>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    message: Option<Cow<'a, str>>,
}
#[allow(dead_code)]
#[derive(Deserialize)]
struct RefUser<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    username: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt_vec")]
    groups: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    extra: Option<&'a serde_json::value::RawValue>,
}
#[allow(dead_code)]
#[derive(Deserialize)]
struct RefObj<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    resource: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "apiGroup", default, deserialize_with = "borrow::opt")]
    api_group: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    subresource: Option<Cow<'a, str>>,
}
#[allow(dead_code)]
#[derive(Deserialize)]
struct RefVault<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    time: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type", deserialize_with = "borrow::cow")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    auth: Option<RefVaultAuth<'a>>,
    #[serde(borrow)]
    request: Option<RefVaultReq<'a>>,
    #[serde(borrow)]
    response: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    error: Option<Cow<'a, str>>,
}
#[allow(dead_code)]
#[derive(Deserialize)]
struct RefVaultAuth<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    client_token: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    display_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    entity_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt_vec")]
    policies: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    metadata: Option<RefVaultMeta<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    mount_type: Option<Cow<'a, str>>,
}
#[allow(dead_code)]
#[derive(Deserialize)]
struct RefVaultMeta<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    service_account_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    service_account_namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    role_name: Option<Cow<'a, str>>,
}
#[allow(dead_code)]
#[derive(Deserialize)]
struct RefVaultReq<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    operation: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    path: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    remote_address: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    mount_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    client_token: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    headers: Option<&'a serde_json::value::RawValue>,
}

fn parse_only(msgs: &[Vec<u8>], vault: bool) -> usize {
    let mut n = 0;
    for m in msgs {
        if vault {
            let v: RefVault = serde_json::from_slice(m).unwrap();
            n += v.kind.len();
        } else {
            let v: RefK8s = serde_json::from_slice(m).unwrap();
            n += v.verb.len();
        }
    }
    n
}

fn ours(msgs: &[Vec<u8>], format: Format) -> usize {
    let mut decoder = Decoder::new(format, DecodeOptions::default());
    let mut batcher = Batcher::new(BatchLimits {
        max_rows: BATCH,
        ..Default::default()
    });
    let mut rows = 0;
    let prov = Provenance::default();
    for m in msgs {
        decoder.decode_record(m, &prov, &mut batcher);
        if batcher.is_full() {
            rows += batcher
                .take()
                .unwrap()
                .events
                .map(|b| b.num_rows())
                .unwrap_or(0);
        }
    }
    decoder.flush(&mut batcher);
    rows + batcher
        .take()
        .unwrap()
        .events
        .map(|b| b.num_rows())
        .unwrap_or(0)
}

fn rate(f: impl Fn() -> usize, n: usize) -> f64 {
    f(); // warm up
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    n as f64 / best
}

fn bench(c: &mut Criterion) {
    let n = 4 * BATCH;
    let k8s = k8s_events(n);
    let vault = vault_entries(n);
    let avg = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() / v.len();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(n as u64))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    g.bench_function(BenchmarkId::new("parse_only", "k8s"), |b| {
        b.iter(|| parse_only(&k8s, false))
    });
    g.bench_function(BenchmarkId::new("ours", "k8s"), |b| {
        b.iter(|| ours(&k8s, Format::Kubernetes))
    });
    g.bench_function(BenchmarkId::new("ours_auto", "k8s"), |b| {
        b.iter(|| ours(&k8s, Format::Auto))
    });
    g.bench_function(BenchmarkId::new("parse_only", "vault"), |b| {
        b.iter(|| parse_only(&vault, true))
    });
    g.bench_function(BenchmarkId::new("ours", "vault"), |b| {
        b.iter(|| ours(&vault, Format::Vault))
    });
    g.finish();

    assert_eq!(ours(&k8s, Format::Auto), n, "every k8s event becomes a row");
    assert_eq!(
        ours(&vault, Format::Vault),
        n / 2,
        "request/response pairs become one row each"
    );
    // `cargo test --all-targets` runs benches once as tests (unoptimized): check only
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    for (name, msgs, fmt, vault) in [
        ("k8s", &k8s, Format::Kubernetes, false),
        ("vault", &vault, Format::Vault, true),
    ] {
        let reference = rate(|| parse_only(msgs, vault), n);
        let got = rate(|| ours(msgs, fmt), n);
        println!(
            "decode {name} (avg {} B/event): ours {:.0} ev/s, parse-only {:.0} ev/s, ratio {:.2}",
            avg(msgs),
            got,
            reference,
            got / reference
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
