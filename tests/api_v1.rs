//! The investigation API (`/api/v1`) over a small realistic store: one simulated day of
//! generated Kubernetes and Vault traffic with attacks, ingested with the built-in rule
//! pack (so there are alerts), plus hand-written events around a Secret whose body
//! carries a canary value.
//!
//! Covered: each endpoint's filters; cursor walks that return every row exactly once;
//! accessors of a secret; the timeline of a service account; an alert with its evidence;
//! SQL allowed and refused; time limit, row cap; 401/403/413 bodies; the access log (token
//! names, never tokens); the OpenAPI document; metrics; and no canary in any answer.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use auditwatch::api::auth::{ApiToken, Auth, Role};
use auditwatch::api::{ApiOptions, ApiState, StoreReady};
use auditwatch::generate::{GenerateOptions, write_dir};
use auditwatch::query::QueryLimits;
use base64::Engine;
use serde_json::{Value, json};

const READER: &str = "rdr-7f3c9a1e5b2d4c6f8a0b1c2d3e4f5a6b";
const ADMIN: &str = "adm-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d";
const CANARY: &str = "CANARYapiV1s3cretV4lue";
const SA: &str = "system:serviceaccount:prod:api";

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
}

fn k8s(id: &str, user: &str, verb: &str, name: &str, at: &str, extra: Value) -> Value {
    let mut e = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": id, "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/prod/secrets/{name}"), "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.1.2.3"], "userAgent": "kubectl/v1.30.0",
        "objectRef": {"resource": "secrets", "namespace": "prod", "name": name, "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": at, "stageTimestamp": at
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

/// Events around `namespaces/prod/secrets/db`, whose body carries the canary.
fn canary_events() -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(CANARY);
    let secret = json!({"kind": "Secret", "apiVersion": "v1",
        "metadata": {"name": "db", "namespace": "prod"}, "type": "Opaque",
        "data": {"password": b64}, "stringData": {"plain": CANARY}});
    let lines = [
        k8s(
            "canary-create",
            "alice",
            "create",
            "db",
            "2026-11-02T09:00:00.000000Z",
            json!({"requestObject": secret, "responseObject": secret}),
        ),
        k8s(
            "canary-get-1",
            "alice",
            "get",
            "db",
            "2026-11-02T10:00:00.000000Z",
            json!({"responseObject": secret}),
        ),
        k8s(
            "canary-get-2",
            SA,
            "get",
            "db",
            "2026-11-02T11:00:00.000000Z",
            json!({"responseObject": secret, "sourceIPs": ["10.9.9.9"], "userAgent": "api/1.0"}),
        ),
        k8s(
            "canary-denied",
            "mallory",
            "get",
            "db",
            "2026-11-02T12:00:00.000000Z",
            json!({"responseStatus": {"metadata": {}, "code": 403, "status": "Failure"},
                   "annotations": {"authorization.k8s.io/decision": "forbid"}, "sourceIPs": ["203.0.113.7"]}),
        ),
        // `_` in a name must not act as a wildcard in a glob
        k8s(
            "underscore-1",
            "bob",
            "get",
            "db_backup",
            "2026-11-02T12:30:00.000000Z",
            json!({}),
        ),
        k8s(
            "underscore-2",
            "bob",
            "get",
            "dbXbackup",
            "2026-11-02T12:31:00.000000Z",
            json!({}),
        ),
    ];
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let gen_dir = tmp.path().join("gen");
        let opts = GenerateOptions {
            seed: 11,
            days: 1,
            workloads: 10,
            scale: 0.05,
            ..Default::default()
        };
        write_dir(&opts, &gen_dir).unwrap();
        let canary = tmp.path().join("canary.jsonl");
        std::fs::write(&canary, canary_events()).unwrap();
        let data = tmp.path().join("store");
        let rules = &format!(
            "{}/rules",
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
        );
        let (k8s, vault) = (gen_dir.join("kubernetes"), gen_dir.join("vault"));
        let data_s = data.display().to_string();
        let args = [
            "ingest",
            "--no-progress",
            "--data-dir",
            &data_s,
            "--rules",
            rules,
            k8s.to_str().unwrap(),
            vault.to_str().unwrap(),
            canary.to_str().unwrap(),
        ];
        let (code, out, err) = common::run_cli(&args, None, &[]);
        assert_eq!(code, 0, "{err}");
        let s: Value = serde_json::from_str(out.trim()).unwrap();
        assert!(
            s["events"].as_u64() > Some(1000) && s["alerts"].as_u64() > Some(0),
            "{s}"
        );
        Fixture { _tmp: tmp, data }
    })
}

fn tokens() -> Auth {
    Auth::tokens(vec![
        ApiToken::from_token("soc", Role::Reader, READER),
        ApiToken::from_token("ops", Role::Admin, ADMIN),
    ])
}

/// A server over the fixture store, on its own thread and runtime, for the whole run.
fn start(opts: ApiOptions) -> SocketAddr {
    let data = fixture().data.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let state = ApiState::new(&data, opts, Arc::new(StoreReady(data.clone()))).unwrap();
            let (btx, brx) = tokio::sync::oneshot::channel();
            let server = tokio::spawn(auditwatch::api::serve_with(
                "127.0.0.1:0".parse().unwrap(),
                state,
                tokio_util::sync::CancellationToken::new(),
                Some(btx),
            ));
            tx.send(brx.await.unwrap()).unwrap();
            server.await.unwrap().unwrap();
        });
    });
    rx.recv().unwrap()
}

fn main_server() -> SocketAddr {
    static S: OnceLock<SocketAddr> = OnceLock::new();
    *S.get_or_init(|| {
        start(ApiOptions {
            auth: tokens(),
            ..Default::default()
        })
    })
}

struct Resp {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        // the server may answer (413) before reading everything
        let _ = s.write_all(b);
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        body = dechunk(&body);
    }
    Resp {
        status: status.parse().unwrap(),
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

fn get(path: &str, token: Option<&str>) -> Resp {
    request(main_server(), "GET", path, token, &[], None)
}

fn sql_on(addr: SocketAddr, sql: &str, token: &str) -> Resp {
    let body = json!({"sql": sql}).to_string();
    request(
        addr,
        "POST",
        "/api/v1/query",
        Some(token),
        &[],
        Some(body.as_bytes()),
    )
}

/// Rows of an admin SQL query on the main server.
fn sql(q: &str) -> Vec<Value> {
    let r = sql_on(main_server(), q, ADMIN);
    assert_eq!(r.status, 200, "{q}: {}", r.text());
    r.json()["rows"].as_array().unwrap().clone()
}

fn count(q: &str) -> u64 {
    sql(q)[0]["n"].as_u64().unwrap()
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Follows `next_cursor` from `first` (a path with its query, without `cursor`).
fn walk(first: &str, key: &str) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{first}&cursor={c}"),
            None => first.to_string(),
        };
        let r = get(&path, Some(READER));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let v = r.json();
        rows.extend(v[key].as_array().unwrap().iter().cloned());
        pages += 1;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (rows, pages),
        }
        assert!(pages < 1_000, "runaway pagination");
    }
}

fn key_of(r: &Value) -> (String, u64) {
    (
        r["time"].as_str().unwrap().to_string(),
        r["row_key"].as_u64().unwrap(),
    )
}

#[test]
fn cursor_walk_returns_every_event_once_in_order() {
    let total = count("select count(*) as n from events");
    let (rows, pages) = walk("/api/v1/events?limit=700", "events");
    assert_eq!(rows.len() as u64, total);
    assert!(pages > 2, "{pages} pages");
    let keys: Vec<(String, u64)> = rows.iter().map(key_of).collect();
    let unique: HashSet<&(String, u64)> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a row came twice");
    assert!(
        keys.windows(2).all(|w| w[0] <= w[1]),
        "not in (time, row_key) order"
    );
    assert!(
        rows.iter().all(|r| r.get("raw").is_none()),
        "raw without include_raw"
    );

    // descending, filtered, in NDJSON with the cursor in a header
    let vault = count("select count(*) as n from events where source = 'vault'");
    let mut seen = 0u64;
    let mut last: Option<(String, u64)> = None;
    let mut cursor = String::new();
    loop {
        let r = request(
            main_server(),
            "GET",
            &format!("/api/v1/events?source=vault&order=desc&limit=400{cursor}"),
            Some(READER),
            &[("Accept", "application/x-ndjson")],
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        for line in r.text().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["source"], "vault");
            let k = key_of(&v);
            assert!(last.as_ref().is_none_or(|l| *l > k), "not descending");
            last = Some(k);
            seen += 1;
        }
        match r.header("x-next-cursor") {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, vault);
}

#[test]
fn event_filters_match_sql() {
    let top = sql(
        "select actor, count(*) as n from events group by actor order by n desc, actor limit 1",
    );
    let actor = top[0]["actor"].as_str().unwrap();
    let (rows, _) = walk(
        &format!("/api/v1/events?actor={}&limit=10000", enc(actor)),
        "events",
    );
    assert_eq!(rows.len() as u64, top[0]["n"].as_u64().unwrap());
    assert!(rows.iter().all(|r| r["actor"] == actor));

    // exact path, prefix and a glob whose `_` is literal
    let exact = get(
        "/api/v1/events?resource=namespaces/prod/secrets/db&format=json",
        Some(READER),
    )
    .json();
    let ids: BTreeSet<&str> = exact["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([
            "canary-create",
            "canary-get-1",
            "canary-get-2",
            "canary-denied"
        ])
    );
    let glob = get(
        &format!(
            "/api/v1/events?resource={}",
            enc("namespaces/prod/secrets/db_*")
        ),
        Some(READER),
    )
    .json();
    let ids: Vec<&str> = glob["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["underscore-1"]);
    let q = get(
        &format!(
            "/api/v1/events?resource={}",
            enc("namespaces/prod/secrets/db?backup")
        ),
        Some(READER),
    )
    .json();
    assert_eq!(q["events"].as_array().unwrap().len(), 2);
    let prefix_n = count(
        "select count(*) as n from events where resource_path like 'namespaces/prod/secrets/%'",
    );
    let (prefix, _) = walk(
        &format!(
            "/api/v1/events?resource={}&limit=10000",
            enc("namespaces/prod/secrets/*")
        ),
        "events",
    );
    assert_eq!(prefix.len() as u64, prefix_n);

    // namespace, action list, outcome, source, secret_access and a time window
    let from = "2026-11-02T06:00:00Z";
    let to = "2026-11-02T18:00:00Z";
    let n = count(&format!(
        "select count(*) as n from events where resource_namespace = 'prod' and action in ('read','list') \
         and outcome = 'success' and source = 'kubernetes' and secret_access \
         and time >= '{from}' and time < '{to}'"
    ));
    let (rows, _) = walk(
        &format!(
            "/api/v1/events?namespace=prod&action=read,list&outcome=success&source=kubernetes&secret_access=true&from={from}&to={to}&limit=10000"
        ),
        "events",
    );
    assert_eq!(rows.len() as u64, n);
    assert!(n > 0);
    for r in &rows {
        assert_eq!(r["resource_namespace"], "prod");
        assert!(r["action"] == "read" || r["action"] == "list");
        let t = r["time"].as_str().unwrap();
        assert!(t >= from && t < to, "{t}");
    }
    let denied = get("/api/v1/events?outcome=denied&limit=10000", Some(READER)).json();
    assert!(
        denied["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["event_id"] == "canary-denied")
    );
    // relative times parse; the fixture is in November 2026
    let rel = get("/api/v1/events?from=-24h&to=now&limit=1", Some(READER));
    assert_eq!(rel.status, 200);

    // raw only on request (redacted)
    let raw = get(
        "/api/v1/events?resource=namespaces/prod/secrets/db&include_raw=true",
        Some(READER),
    )
    .json();
    assert!(
        raw["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["raw"].is_string())
    );

    for (bad, code) in [
        ("/api/v1/events?limit=0", "bad_request"),
        ("/api/v1/events?limit=10001", "bad_request"),
        ("/api/v1/events?cursor=bm90LWEtY3Vyc29y", "invalid_cursor"),
        ("/api/v1/events?from=yesterday", "bad_request"),
        ("/api/v1/events?colour=red", "bad_request"),
        ("/api/v1/events?format=xml", "bad_request"),
    ] {
        let r = get(bad, Some(READER));
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, code),
            "{bad}: {}",
            r.text()
        );
    }
}

#[test]
fn timeline_of_a_service_account() {
    let top = sql(
        "select actor, count(*) as n from events where actor like 'system:serviceaccount:%' \
         group by actor order by n desc, actor limit 1",
    );
    let sa = top[0]["actor"].as_str().unwrap();
    let (rows, pages) = walk(&format!("/api/v1/actors/{sa}/timeline?limit=50"), "events");
    assert_eq!(rows.len() as u64, top[0]["n"].as_u64().unwrap());
    assert!(pages > 1);
    assert!(rows.iter().all(|r| r["actor"] == sa));
    let times: Vec<&str> = rows.iter().map(|r| r["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));

    // percent-encoded path segment, with a filter
    let r = get(
        &format!(
            "/api/v1/actors/{}/timeline?resource=namespaces/prod/secrets/db",
            enc(SA)
        ),
        Some(READER),
    )
    .json();
    let ev = r["events"].as_array().unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["event_id"], "canary-get-2");
    let r = get(
        &format!("/api/v1/actors/{}/timeline?actor=x", enc(SA)),
        Some(READER),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn accessors_of_a_secret() {
    let r = get(
        "/api/v1/resources/accessors?path=namespaces/prod/secrets/db",
        Some(READER),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let acc = v["accessors"].as_array().unwrap();
    let by: BTreeMap<&str, &Value> = acc
        .iter()
        .map(|a| (a["actor"].as_str().unwrap(), a))
        .collect();
    assert_eq!(
        by.keys().copied().collect::<Vec<_>>(),
        ["alice", "mallory", SA]
    );
    let alice = by["alice"];
    assert_eq!(alice["count"], 2);
    assert_eq!(alice["denied"], 0);
    assert_eq!(alice["actions"], json!(["create", "read"]));
    assert_eq!(alice["src_ips"], json!(["10.1.2.3"]));
    assert_eq!(alice["first_seen"], "2026-11-02T09:00:00.000000Z");
    assert_eq!(alice["last_seen"], "2026-11-02T10:00:00.000000Z");
    assert_eq!(by["mallory"]["denied"], 1);
    assert_eq!(by["mallory"]["outcomes"], json!(["denied"]));
    assert_eq!(by[SA]["src_ips"], json!(["10.9.9.9"]));
    assert_eq!(acc[0]["actor"], "alice", "most active first");

    // a generated Vault secret: per-actor counts agree with SQL
    let top = sql(
        "select resource_path as p, count(distinct actor) as a from events where source = 'vault' \
         and secret_access and resource_path is not null group by 1 order by 2 desc, 1 limit 1",
    );
    let path = top[0]["p"].as_str().unwrap();
    let expect: BTreeMap<String, u64> = sql(&format!(
        "select actor, count(*) as n from events where resource_path = '{}' group by actor",
        path.replace('\'', "''")
    ))
    .iter()
    .map(|r| {
        (
            r["actor"].as_str().unwrap().to_string(),
            r["n"].as_u64().unwrap(),
        )
    })
    .collect();
    let v = get(
        &format!("/api/v1/resources/accessors?path={}", enc(path)),
        Some(READER),
    )
    .json();
    let got: BTreeMap<String, u64> = v["accessors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["actor"].as_str().unwrap().to_string(),
                a["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expect);
    assert_eq!(
        get("/api/v1/resources/accessors", Some(READER)).status,
        400,
        "path is required"
    );
}

#[test]
fn alerts_pages_filters_and_evidence() {
    let total = count("select count(*) as n from alerts");
    assert!(total > 0);
    let (alerts, _) = walk("/api/v1/alerts?limit=3", "alerts");
    assert_eq!(alerts.len() as u64, total);
    let ids: HashSet<&str> = alerts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), alerts.len());

    let sev = alerts[0]["severity"].as_str().unwrap();
    let n = count(&format!(
        "select count(*) as n from alerts where severity = '{sev}'"
    ));
    let (f, _) = walk(
        &format!("/api/v1/alerts?severity={sev}&limit=10000"),
        "alerts",
    );
    assert_eq!(f.len() as u64, n);
    let rule = alerts[0]["rule_id"].as_str().unwrap();
    let (f, _) = walk(
        &format!(
            "/api/v1/alerts?rule_id={}&min_severity=informational",
            enc(rule)
        ),
        "alerts",
    );
    assert!(!f.is_empty() && f.iter().all(|a| a["rule_id"] == rule));
    let r = get("/api/v1/alerts?severity=urgent", Some(READER));
    assert_eq!(r.status, 400);

    // an alert with evidence: every evidence row is one of its events
    let a = alerts
        .iter()
        .find(|a| !a["event_ids"].as_array().unwrap().is_empty())
        .expect("an alert with events");
    let id = a["id"].as_str().unwrap();
    let d = get(&format!("/api/v1/alerts/{id}"), Some(READER));
    assert_eq!(d.status, 200, "{}", d.text());
    let d = d.json();
    assert_eq!(d["alert"]["id"], id);
    let want: HashSet<&str> = a["event_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let ev = d["evidence"].as_array().unwrap();
    assert!(!ev.is_empty());
    for e in ev {
        assert!(want.contains(e["event_id"].as_str().unwrap()));
        assert!(e.get("raw").is_none());
    }
    assert_eq!(d["missing_event_ids"], json!([]), "{d}");
    let r = get(
        "/api/v1/alerts/00000000-0000-0000-0000-000000000000",
        Some(READER),
    );
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
}

#[test]
fn sql_allowed_and_refused() {
    let addr = main_server();
    for ok in [
        "select count(*) from events",
        "select a.title, count(*) from alerts a join events e on array_has(a.event_ids, e.event_id) group by 1",
        "select table_name from information_schema.tables",
        "select * from quarantine limit 1",
        "with x as (select actor from events) select count(*) from x",
        "explain select * from events where actor = 'alice'",
    ] {
        let r = sql_on(addr, ok, ADMIN);
        assert_eq!(r.status, 200, "{ok}: {}", r.text());
    }
    for (bad, code) in [
        ("create table t as select 1", "query_refused"),
        (
            "create external table t stored as parquet location '/etc/'",
            "query_refused",
        ),
        ("drop table events", "query_refused"),
        ("insert into events select * from events", "query_refused"),
        (
            "copy (select 1) to '/tmp/auditwatch-api-copy.csv'",
            "query_refused",
        ),
        ("set datafusion.execution.batch_size = 1", "query_refused"),
        ("select * from generate_series(1, 3)", "query_refused"),
        ("select * from read_parquet('/etc/passwd')", ""),
        ("select * from '/etc/passwd'", ""),
        ("select * from secrets", ""),
        ("select * from events; drop table events", ""),
    ] {
        let r = sql_on(addr, bad, ADMIN);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        if !code.is_empty() {
            assert_eq!(r.error_code(), code, "{bad}: {}", r.text());
        }
        assert!(r.json()["error"]["message"].is_string());
    }
    assert!(!std::path::Path::new("/tmp/auditwatch-api-copy.csv").exists());
    let r = request(
        addr,
        "POST",
        "/api/v1/query",
        Some(ADMIN),
        &[],
        Some(b"select 1"),
    );
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"));
    let r = sql_on(addr, "select actor from events", READER);
    assert_eq!((r.status, r.error_code().as_str()), (403, "forbidden"));
}

#[test]
fn sql_row_cap_and_time_limit() {
    let addr = start(ApiOptions {
        auth: tokens(),
        limits: QueryLimits {
            max_rows: 10,
            timeout: Duration::from_secs(1),
            ..Default::default()
        },
        access_log_file: false,
        ..Default::default()
    });
    let r = sql_on(addr, "select event_id from events", ADMIN).json();
    assert_eq!(
        (r["row_count"].as_u64(), r["truncated"].as_bool()),
        (Some(10), Some(true))
    );
    let body = json!({"sql": "select event_id from events", "limit": 4}).to_string();
    let r = request(
        addr,
        "POST",
        "/api/v1/query",
        Some(ADMIN),
        &[],
        Some(body.as_bytes()),
    )
    .json();
    assert_eq!(r["rows"].as_array().unwrap().len(), 4);
    assert_eq!(r["truncated"], true);
    let r = sql_on(addr, "select count(*) as n from events", ADMIN).json();
    assert_eq!(r["truncated"], false);
    assert_eq!(r["columns"][0]["name"], "n");

    let r = sql_on(
        addr,
        "select count(*) from events a, events b, events c, events d where a.row_key + b.row_key > c.row_key + d.row_key",
        ADMIN,
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (504, "query_timeout"),
        "{}",
        r.text()
    );
    // the cancelled query gives its threads back (at its next batch): the server answers
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sql_on(addr, "select 1", ADMIN).status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the timed-out query still holds the query runtime"
        );
    }

    let small = start(ApiOptions {
        auth: tokens(),
        limits: QueryLimits {
            memory_bytes: 4 << 20,
            ..Default::default()
        },
        access_log_file: false,
        ..Default::default()
    });
    let r = sql_on(
        small,
        "select actor, array_agg(repeat(raw, 20)) from events group by actor",
        ADMIN,
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "resources_exhausted"),
        "{}",
        r.text()
    );
    assert_eq!(
        sql_on(small, "select count(*) from events", ADMIN).status,
        200
    );
}

#[test]
fn auth_errors_and_body_limit() {
    let r = get("/api/v1/events", None);
    assert_eq!((r.status, r.error_code().as_str()), (401, "unauthorized"));
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let r = get("/api/v1/events", Some("not-a-token"));
    assert_eq!(r.status, 401);
    assert!(!r.text().contains("not-a-token"));
    let r = request(
        main_server(),
        "GET",
        "/api/v1/alerts",
        None,
        &[("Authorization", &format!("Basic {READER}"))],
        None,
    );
    assert_eq!(r.status, 401);
    let big = json!({"sql": format!("select '{}'", "x".repeat(70 * 1024))}).to_string();
    let r = request(
        main_server(),
        "POST",
        "/api/v1/query",
        Some(ADMIN),
        &[],
        Some(big.as_bytes()),
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "payload_too_large"),
        "{}",
        r.text()
    );
    let r = get("/api/v1/nothing-here", Some(READER));
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    for open in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"] {
        assert_eq!(get(open, None).status, 200, "{open}");
    }
}

#[test]
fn access_log_names_callers_and_never_holds_tokens() {
    let marker = format!("marker-{}", std::process::id());
    let _ = get(&format!("/api/v1/events?actor={marker}"), Some(READER));
    let _ = get(&format!("/api/v1/events?actor={marker}-anon"), None);
    let _ = sql_on(main_server(), &format!("select '{marker}' as m"), ADMIN);
    let _ = sql_on(
        main_server(),
        &format!("drop table events -- {marker}"),
        ADMIN,
    );
    let dir = fixture().data.join("access-log");
    let mut text = String::new();
    for d in std::fs::read_dir(&dir).unwrap() {
        let d = d.unwrap().path();
        assert!(
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("date=")
        );
        text.push_str(&std::fs::read_to_string(d.join("access.jsonl")).unwrap());
    }
    assert!(
        !text.contains(READER) && !text.contains(ADMIN),
        "a token in the access log"
    );
    let mine: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.to_string().contains(&marker))
        .collect();
    assert_eq!(mine.len(), 4, "{mine:?}");
    let events = mine
        .iter()
        .find(|v| v["query"] == format!("actor={marker}"))
        .unwrap();
    assert_eq!(events["who"], "soc");
    assert_eq!(events["role"], "reader");
    assert_eq!(events["method"], "GET");
    assert_eq!(events["path"], "/api/v1/events");
    assert_eq!(events["route"], "/api/v1/events");
    assert_eq!(events["status"], 200);
    assert_eq!(events["rows"], 0);
    assert!(events["duration_ms"].is_number() && events["time"].is_string());
    let anon = mine
        .iter()
        .find(|v| v["query"] == format!("actor={marker}-anon"))
        .unwrap();
    assert_eq!(
        (anon["who"].clone(), anon["status"].clone()),
        (Value::Null, json!(401))
    );
    let q = mine
        .iter()
        .find(|v| v["sql"] == format!("select '{marker}' as m"))
        .unwrap();
    assert_eq!(
        (q["who"].as_str(), q["rows"].as_u64()),
        (Some("ops"), Some(1))
    );
    let refused = mine.iter().find(|v| v["status"] == 400).unwrap();
    assert_eq!(refused["error"], "query_refused");
    assert!(refused["sql"].as_str().unwrap().starts_with("drop table"));
}

#[test]
fn openapi_describes_every_route_and_metrics_count_routes() {
    let doc = get("/api/v1/openapi.json", None).json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/api/v1/events",
        "/api/v1/actors/{actor}/timeline",
        "/api/v1/resources/accessors",
        "/api/v1/alerts",
        "/api/v1/alerts/{id}",
        "/api/v1/query",
        "/api/v1/openapi.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains(p), "{p} not described");
    }
    assert!(doc["paths"]["/api/v1/query"]["post"]["requestBody"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let _ = get("/api/v1/alerts/some-id", Some(READER));
    let m = get("/metrics", None).text();
    assert!(
        m.contains(r#"auditwatch_api_requests_total{route="/api/v1/alerts/{id}",status="404"}"#),
        "{m}"
    );
    assert!(m.contains(r#"auditwatch_api_request_seconds_bucket{route="/api/v1/openapi.json""#));
    assert!(!m.contains("some-id"), "a path in a label");
}

#[test]
fn no_canary_in_any_answer() {
    let b64 = base64::engine::general_purpose::STANDARD.encode(CANARY);
    let answers = [
        get(
            "/api/v1/events?resource=namespaces/prod/secrets/db&include_raw=true",
            Some(READER),
        ),
        get(
            &format!("/api/v1/actors/alice/timeline?include_raw=true"),
            Some(READER),
        ),
        get(
            "/api/v1/resources/accessors?path=namespaces/prod/secrets/*",
            Some(READER),
        ),
        get("/api/v1/alerts?limit=10000", Some(READER)),
        sql_on(
            main_server(),
            "select * from events where resource_path like '%secrets/db'",
            ADMIN,
        ),
        sql_on(main_server(), "select * from quarantine", ADMIN),
        sql_on(main_server(), "select * from alerts", ADMIN),
    ];
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.text());
        let t = a.text();
        assert!(
            !t.contains(CANARY) && !t.contains(&b64),
            "canary leaked: {t}"
        );
    }
    assert!(
        answers[0].text().contains("canary-get-1"),
        "the rows are there"
    );
}

#[test]
fn serve_refuses_to_start_without_tokens_and_hashes_tokens() {
    let data = fixture().data.display().to_string();
    let (code, _, err) = common::run_cli(
        &["serve", "--data-dir", &data, "--listen", "127.0.0.1:0"],
        None,
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("no API tokens configured") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    let (code, out, _) = common::run_cli(&["serve", "--hash-token"], Some(b"abc\n"), &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let (code, _, err) = common::run_cli(
        &[
            "serve",
            "--data-dir",
            "/nonexistent/store",
            "--insecure-no-auth",
        ],
        None,
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
}
