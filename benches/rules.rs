//! Rule evaluation (`Engine::evaluate`) over realistic 8192-row batches, with ~100 and
//! ~1000 rules, against a reference measured in the same run.
//!
//! Batches: 6144 Kubernetes events (varied actors, verbs, resources, namespaces, user
//! agents, status codes; pod creations carry request bodies) and 2048 Vault rows (reads,
//! writes, logins, sys calls by varied identities), decoded with the same decoder ingest
//! uses. Rule sets: the real pack in `rules/` plus generated variants of realistic rules —
//! different namespaces, actors, resource names, user-agent substrings, Vault paths,
//! regexes, CIDRs and raw-path conditions — so that leaves are not shared unrealistically;
//! the number of distinct leaves each set compiled to is printed.
//!
//! Reference: one plain pass over the batch's string columns — per row, the lowercased
//! verb, resource type and actor hashed together — i.e. the cheapest thing that touches
//! every row's strings once. Printed only under `--bench`:
//! `rules N: ours X ev/s, reference Y ev/s, ratio R (L leaves, A alerts/batch)`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditwatch::decode::Format;
use auditwatch::detect::fields::FieldMap;
use auditwatch::detect::sigma::{self, Document};
use auditwatch::detect::tooling::decode_to_batch;
use auditwatch::detect::{Engine, RuleSet};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 8192;
const K8S_ROWS: usize = 6144;
const VAULT_ROWS: usize = BATCH - K8S_ROWS;

// ---------------------------------------------------------------- events

const AGENTS: &[&str] = &[
    "kubectl/v1.31.1 (linux/amd64) kubernetes/948afe5",
    "kube-controller-manager/v1.31.1 (linux/amd64) kubernetes/948afe5/system:serviceaccount:kube-system:replicaset-controller",
    "kubelet/v1.31.1 (linux/amd64) kubernetes/948afe5",
    "argocd-application-controller/v0.0.0 (linux/amd64) kubernetes/$Format",
    "Helm/3.16.2",
    "kube-scheduler/v1.31.1 (linux/amd64) kubernetes/948afe5/scheduler",
    "cert-manager-controller/v1.16.1 (linux/amd64) cert-manager/4ae6dd8e",
    "Terraform/1.9.8 (+https://www.terraform.io) terraform-provider-kubernetes/2.33.0",
    "prometheus/2.54.1",
    "python-requests/2.32.3",
];

fn k8s_line(i: usize) -> String {
    let verbs = [
        "get", "list", "watch", "get", "update", "patch", "create", "get", "delete", "list",
    ];
    let resources = [
        ("secrets", None),
        ("configmaps", None),
        ("pods", None),
        ("deployments", Some("apps")),
        ("leases", Some("coordination.k8s.io")),
        ("serviceaccounts", None),
        ("events", None),
        ("rolebindings", Some("rbac.authorization.k8s.io")),
        ("endpointslices", Some("discovery.k8s.io")),
        ("nodes", None),
    ];
    let (res, group) = resources[(i / 3) % resources.len()];
    let human = i % 6 == 4;
    // people mostly read; controllers write; deleting events is rare
    let verb = match verbs[i % verbs.len()] {
        v if human && i % 97 != 4 && !matches!(v, "get" | "list" | "watch") => "get",
        "delete" if res == "events" && i % 500 != 0 => "create",
        v => v,
    };
    let ns = if i % 13 == 0 {
        "kube-system".to_string()
    } else {
        format!("team-{}", i % 30)
    };
    let user = match i % 6 {
        0 | 1 => format!("system:serviceaccount:{ns}:svc-{}", i % 40),
        2 => format!("system:node:node-{}", i % 12),
        3 => "system:kube-controller-manager".to_string(),
        4 => format!("user{}@example.com", i % 25),
        _ => format!("system:serviceaccount:kube-system:controller-{}", i % 7),
    };
    let ua = AGENTS[(i * 7 + i / 5) % AGENTS.len()];
    let code = match i % 97 {
        0..=2 => 403,
        3..=5 => 404,
        6 => 409,
        _ if verb == "create" => 201,
        _ => 200,
    };
    let name = format!("obj-{}", i % 300);
    let (sub, uri_sub) = if res == "pods" && i % 200 == 7 {
        (
            "\"subresource\":\"exec\",",
            "/exec?command=sh&container=app&stdin=true",
        )
    } else {
        ("", "")
    };
    let prefix = match group {
        Some(g) => format!("/apis/{g}/v1"),
        None => "/api/v1".to_string(),
    };
    let api_group = group.map_or(String::new(), |g| format!("\"apiGroup\":\"{g}\","));
    let level = if res == "pods" && verb == "create" {
        "Request"
    } else {
        "Metadata"
    };
    let body = if level == "Request" {
        format!(
            r#","requestObject":{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"{ns}","labels":{{"app":"svc-{a}"}}}},"spec":{{"serviceAccountName":"svc-{a}","containers":[{{"name":"app","image":"registry-{r}.example.com/team/svc-{a}:1.{b}","securityContext":{{"runAsNonRoot":true,"privileged":{p}}}}}],"hostNetwork":{hn},"volumes":[{{"name":"data","emptyDir":{{}}}}]}}}}"#,
            a = i % 40,
            r = i % 9,
            b = i % 17,
            p = i % 211 == 0,
            hn = i % 307 == 0,
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"{level}","auditID":"{id:08x}-8d2c-4b7e-9f1a-{i:012x}","stage":"ResponseComplete","requestURI":"{prefix}/namespaces/{ns}/{res}/{name}{uri_sub}","verb":"{verb}","user":{{"username":"{user}","uid":"{id:08x}-1111-2222-3333-444455556666","groups":["system:serviceaccounts","system:serviceaccounts:{ns}","system:authenticated"]}},"sourceIPs":["10.{s1}.{s2}.{s3}"],"userAgent":"{ua}","objectRef":{{"resource":"{res}","namespace":"{ns}","name":"{name}",{api_group}{sub}"apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":{code}}}{body},"requestReceivedTimestamp":"2026-11-20T{hh:02}:{mm:02}:{ss:02}.{us:06}Z","stageTimestamp":"2026-11-20T{hh:02}:{mm:02}:{ss:02}.{us2:06}Z","annotations":{{"authorization.k8s.io/decision":"{dec}","authorization.k8s.io/reason":""}}}}"#,
        id = i * 7919,
        s1 = i % 200,
        s2 = (i / 7) % 250,
        s3 = (i / 11) % 250,
        hh = (i / 3600) % 24,
        mm = (i / 60) % 60,
        ss = i % 60,
        us = (i * 37) % 1_000_000,
        us2 = (i * 37 + 900) % 1_000_000,
        dec = if code == 403 { "forbid" } else { "allow" },
    )
}

fn vault_lines(id: usize) -> [String; 2] {
    let h = |x: usize| format!("hmac-sha256:{:064x}", x.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let ns = id % 30;
    let a = id % 40;
    let (op, path, mount) = match id % 10 {
        0..=5 => ("read", format!("secret/data/team-{ns}/svc-{a}/db"), "kv"),
        6 => ("list", format!("secret/metadata/team-{ns}/"), "kv"),
        7 => ("update", "auth/kubernetes/login".to_string(), "kubernetes"),
        8 => ("read", format!("database/creds/team-{ns}-ro"), "database"),
        _ => ("update", "sys/capabilities-self".to_string(), "system"),
    };
    let err = if id % 53 == 0 {
        r#","error":"1 error occurred:\n\t* permission denied\n\n""#
    } else {
        ""
    };
    let auth = format!(
        r#""auth":{{"client_token":"{t}","accessor":"{acc}","display_name":"kubernetes-team-{ns}-svc-{a}","policies":["default","team-{ns}-read"],"token_policies":["default","team-{ns}-read"],"metadata":{{"role":"team-{ns}","service_account_name":"svc-{a}","service_account_namespace":"team-{ns}"}},"entity_id":"{id:08x}-aaaa-bbbb-cccc-ddddeeeeffff","token_type":"service","token_ttl":{ttl}}}"#,
        t = h(id),
        acc = h(id + 7),
        ttl = if id % 71 == 0 { 2_764_800 } else { 3600 },
    );
    let request = format!(
        r#""request":{{"id":"{id:08x}-1234-5678-9abc-def012345678","operation":"{op}","mount_type":"{mount}","client_token":"{t}","namespace":{{"id":"root"}},"path":"{path}","remote_address":"10.{s1}.{s2}.{s3}","remote_port":{port}}}"#,
        t = h(id),
        s1 = id % 200,
        s2 = (id / 7) % 250,
        s3 = (id / 11) % 250,
        port = 40000 + id % 20000,
    );
    let time = format!(
        "2026-11-20T{:02}:{:02}:{:02}.{:06}Z",
        (id / 3600) % 24,
        (id / 60) % 60,
        id % 60,
        (id * 37) % 1_000_000
    );
    [
        format!(r#"{{"time":"{time}","type":"request",{auth},{request}}}"#),
        format!(
            r#"{{"time":"{time}","type":"response",{auth},{request},"response":{{"mount_type":"{mount}","data":{{"password":"{}"}}}}{err}}}"#,
            h(id + 3)
        ),
    ]
}

fn batch() -> RecordBatch {
    let k8s: String = (0..K8S_ROWS).map(|i| k8s_line(i) + "\n").collect();
    let vault: String = (0..VAULT_ROWS)
        .flat_map(vault_lines)
        .map(|l| l + "\n")
        .collect();
    let (k, q1) = decode_to_batch(k8s.as_bytes(), Format::Kubernetes);
    let (v, q2) = decode_to_batch(vault.as_bytes(), Format::Vault);
    assert_eq!(q1 + q2, 0, "bench events decode");
    let (k, v) = (k.unwrap(), v.unwrap());
    let b = concat_batches(&k.schema(), &[k, v]).unwrap();
    assert_eq!(b.num_rows(), BATCH);
    b
}

// ---------------------------------------------------------------- rules

/// The `i`-th generated rule: one of several realistic shapes, with parameters drawn from
/// `i` so that values (and thus leaves) differ between rules.
fn generated_rule(i: usize) -> String {
    // `n` numbers the instances of one shape; namespaces beyond team-29 exist in larger
    // clusters, not in this batch (most rules of a big set never match a given batch)
    let n = i / 10;
    let ns = format!("team-{n}");
    let other = format!("team-{}", (n * 7 + 3) % 40);
    let (product, detection) = match i % 10 {
        0 => (
            "kubernetes",
            format!(
                "sel:\n    verb: [get, list]\n    objectRef.resource: secrets\n    objectRef.namespace: {ns}\nallowed:\n    user.username|startswith: 'system:serviceaccount:{ns}:'\ncondition: sel and not allowed"
            ),
        ),
        1 => (
            "kubernetes",
            format!(
                "sel:\n    verb: [create, update, patch]\n    userAgent|contains: 'tool-{n}/'\ncondition: sel"
            ),
        ),
        2 => (
            "vault",
            format!(
                "sel:\n    request.path|startswith: 'secret/data/{ns}/'\n    request.operation: [update, delete]\nfilter:\n    auth.display_name|startswith: 'kubernetes-{ns}-'\ncondition: sel and not filter"
            ),
        ),
        3 => (
            "kubernetes",
            format!(
                "sel:\n    requestURI|re: '^/api/v1/namespaces/{ns}/pods/[^/]+/(exec|attach)'\n    user.username|endswith: '@example.com'\n    time|hour|lt: {h}\ncondition: sel",
                h = 5 + n % 4
            ),
        ),
        4 => (
            "kubernetes",
            format!(
                "sel:\n    verb: create\n    objectRef.resource: pods\n    objectRef.namespace: {ns}\n    requestObject.spec.containers.image|startswith: 'registry-{r}.example.com/'\nnot_team:\n    requestObject.spec.serviceAccountName|startswith: 'svc-{n}'\ncondition: sel and not not_team",
                r = n % 12
            ),
        ),
        5 => (
            "kubernetes",
            format!(
                "sel:\n    secret_access: true\n    src_ip|cidr: '10.{a}.0.0/16'\nhumans:\n    actor_type: service_account\ncondition: sel and not humans",
                a = n % 250
            ),
        ),
        6 => (
            "kubernetes",
            format!(
                "sel:\n    verb: delete\n    objectRef.resource: [configmaps, secrets, deployments]\n    objectRef.name: 'obj-{o}'\ncondition: sel",
                o = (i * 13) % 300
            ),
        ),
        7 => (
            "vault",
            format!(
                "sel:\n    auth.metadata.service_account_namespace: {ns}\n    request.path|contains: '/{other}/'\ncondition: sel"
            ),
        ),
        8 => (
            "kubernetes",
            format!(
                "sel:\n    responseStatus.code: [401, 403]\n    user.username|startswith: 'system:serviceaccount:{ns}:svc-{s}'\ncondition: sel",
                s = n % 40
            ),
        ),
        _ => (
            "vault",
            format!(
                "sel:\n    auth.token_ttl|gt: {ttl}\n    auth.policies: '{ns}-read'\n    request.remote_address|cidr: '10.{a}.0.0/16'\ncondition: sel",
                ttl = 86400 * (1 + n % 30),
                a = n % 250
            ),
        ),
    };
    let det: String = detection.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "title: generated {i}\nid: gen-{i}\nlogsource:\n    product: {product}\n    service: audit\ndetection:\n{det}level: medium\n"
    )
}

/// The real pack plus generated rules up to `total` detection rules.
fn rule_set(pack: &[Document], total: usize) -> Arc<RuleSet> {
    let pack_rules = pack
        .iter()
        .filter(|d| matches!(d, Document::Rule(_)))
        .count();
    let mut docs = pack.to_vec();
    let mut diags = Vec::new();
    for i in 0..total.saturating_sub(pack_rules) {
        let text = generated_rule(i);
        docs.extend(sigma::parse_file(
            &PathBuf::from(format!("gen-{i}.yml")),
            &text,
            &mut diags,
        ));
    }
    let rs = RuleSet::compile(docs, &FieldMap::builtin(), diags);
    let errors: Vec<String> = rs.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    Arc::new(rs)
}

// ---------------------------------------------------------------- measured work

fn ours(rs: &Arc<RuleSet>, b: &RecordBatch) -> usize {
    Engine::new(rs.clone()).evaluate(b).len()
}

/// The reference: per row, the lowercased verb, resource type and actor, hashed.
fn reference(b: &RecordBatch) -> u64 {
    let col = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
    let (verb, res, actor) = (col("verb"), col("resource_type"), col("actor"));
    let mut acc = 0u64;
    let mut buf = String::with_capacity(128);
    for r in 0..b.num_rows() {
        buf.clear();
        for a in [&verb, &res, &actor] {
            if a.is_valid(r) {
                buf.extend(a.value(r).chars().flat_map(char::to_lowercase));
            }
            buf.push('\u{1f}');
        }
        acc = acc.wrapping_add(xxhash_rust::xxh3::xxh3_64(buf.as_bytes()));
    }
    acc
}

fn rate(f: impl Fn(), n: usize) -> f64 {
    f(); // warm up
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    n as f64 / best
}

fn bench(c: &mut Criterion) {
    let pack_dir = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("rules");
    let pack = RuleSet::load(&[pack_dir], &FieldMap::builtin());
    assert_eq!(pack.dropped, 0, "the rule pack loads");
    let b = batch();
    let sets: Vec<(usize, Arc<RuleSet>)> = [100, 1000]
        .into_iter()
        .map(|n| (n, rule_set(&pack.documents, n)))
        .collect();

    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(BATCH as u64))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    g.bench_function(BenchmarkId::new("reference", BATCH), |x| {
        x.iter(|| reference(&b))
    });
    for (n, rs) in &sets {
        g.bench_function(BenchmarkId::new("evaluate", n), |x| x.iter(|| ours(rs, &b)));
    }
    g.finish();

    // `cargo test --all-targets` runs benches once as tests (unoptimized): check only
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let reference_rate = rate(
        || {
            std::hint::black_box(reference(&b));
        },
        BATCH,
    );
    println!(
        "rules: batch of {BATCH} rows ({K8S_ROWS} kubernetes, {VAULT_ROWS} vault); pack: {} rules, {} correlations, {} filters",
        pack.rules.len(),
        pack.correlations.len(),
        pack.documents
            .iter()
            .filter(|d| matches!(d, Document::Filter(_)))
            .count()
    );
    // AUDITWATCH_BENCH_PER_RULE=1: each pack rule alone (with the filters), slowest first
    if std::env::var_os("AUDITWATCH_BENCH_PER_RULE").is_some() {
        let filters: Vec<Document> = pack
            .documents
            .iter()
            .filter(|d| matches!(d, Document::Filter(_)))
            .cloned()
            .collect();
        let mut costs: Vec<(f64, String)> = pack
            .documents
            .iter()
            .filter(|d| matches!(d, Document::Rule(_)))
            .map(|d| {
                let mut docs = filters.clone();
                docs.push(d.clone());
                let rs = Arc::new(RuleSet::compile(docs, &FieldMap::builtin(), vec![]));
                let r = rate(
                    || {
                        std::hint::black_box(ours(&rs, &b));
                    },
                    BATCH,
                );
                (1e3 * BATCH as f64 / r, d.meta().title.clone())
            })
            .collect();
        costs.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (ms, title) in costs.iter().take(15) {
            println!("  {ms:7.3} ms/batch  {title}");
        }
    }
    for (n, rs) in &sets {
        let alerts = ours(rs, &b);
        let got = rate(
            || {
                std::hint::black_box(ours(rs, &b));
            },
            BATCH,
        );
        println!(
            "rules {n}: ours {got:.0} ev/s, reference {reference_rate:.0} ev/s, ratio {:.3} ({} detection rules, {} correlations, {} distinct leaves, {alerts} alerts/batch)",
            got / reference_rate,
            rs.rules.len(),
            rs.correlations.len(),
            rs.leaves.len(),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
