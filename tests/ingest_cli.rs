//! `auditwatch ingest` and `auditwatch query` as a user runs them: quarantine of malformed
//! input, idempotent re-ingest, stdin, output formats.

mod common;

use common::run_cli;

fn event(id: &str, user: &str, resource: &str, name: &str, time: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/{resource}/{name}","verb":"get","user":{{"username":"{user}","groups":["system:serviceaccounts"]}},"sourceIPs":["10.0.0.7"],"userAgent":"app/1.0","objectRef":{{"resource":"{resource}","namespace":"prod","name":"{name}","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":200}},"requestReceivedTimestamp":"{time}","stageTimestamp":"{time}"}}"#
    )
}

fn sample() -> String {
    let mut s = String::new();
    s += &event(
        "a1",
        "system:serviceaccount:prod:api",
        "secrets",
        "db",
        "2026-11-20T10:00:00Z",
    );
    s += "\n";
    s += &event(
        "a2",
        "system:serviceaccount:prod:api",
        "configmaps",
        "cfg",
        "2026-11-20T11:30:00Z",
    );
    s += "\n";
    // RequestReceived stage: valid, not a row by default
    s += &event("a3", "alice", "secrets", "db", "2026-11-20T12:00:00Z")
        .replace("ResponseComplete", "RequestReceived");
    s += "\n";
    s += &event("a4", "alice", "secrets", "db", "2026-11-21T09:00:00Z");
    s += "\n";
    s
}

fn q(data: &str, fmt: &str, sql: &str) -> String {
    let (code, out, err) = run_cli(
        &["query", "--data-dir", data, "--format", fmt, sql],
        None,
        &[],
    );
    assert_eq!(code, 0, "{sql}: {err}");
    out
}

#[test]
fn ingest_twice_adds_no_duplicate_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let data = data.to_str().unwrap();
    let file = dir.path().join("audit.log");
    std::fs::write(&file, sample()).unwrap();
    let f = file.to_str().unwrap();
    let (code, out, err) = run_cli(&["ingest", "--data-dir", data, f], None, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        r#"{"events":3,"quarantined":0,"duplicates":0,"alerts":0}"#
    );
    let (code, out, _) = run_cli(&["ingest", "--data-dir", data, f], None, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        r#"{"events":3,"quarantined":0,"duplicates":3,"alerts":0}"#
    );
    // the same events from stdin, plus one new: only the new one is added
    let more = format!(
        "{}{}\n",
        sample(),
        event("a5", "bob", "pods", "p", "2026-11-21T09:30:00Z")
    );
    let (code, out, _) = run_cli(
        &["ingest", "--data-dir", data, "-"],
        Some(more.as_bytes()),
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        r#"{"events":4,"quarantined":0,"duplicates":3,"alerts":0}"#
    );
    let out = q(
        data,
        "csv",
        "select count(*) as n, count(distinct row_key) as k from events",
    );
    assert_eq!(out.trim(), "n,k\n4,4");
    // partitioned by source and event date/hour
    assert!(
        dir.path()
            .join("d/events/source=kubernetes/date=2026-11-20/hour=10")
            .is_dir()
    );
    assert!(
        dir.path()
            .join("d/events/source=kubernetes/date=2026-11-21/hour=09")
            .is_dir()
    );
}

#[test]
fn malformed_input_is_quarantined_with_reason_and_bytes_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let data = data.to_str().unwrap();
    let good = event("g1", "alice", "secrets", "db", "2026-11-20T10:00:00Z");
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(b"{\"kind\": 0}\n");
    input.extend_from_slice(b"\x00\x01\x02\xff\xfe binary garbage\n");
    input.extend_from_slice(&good.as_bytes()[..good.len() / 2]); // truncated line
    input.push(b'\n');
    // a 10 MB line
    input.extend_from_slice(b"{\"pad\":\"");
    input.extend(std::iter::repeat_n(b'x', 10 << 20));
    input.extend_from_slice(b"\"}\n");
    input.extend_from_slice(good.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(b"[1, 2, 3]\n");
    let file = dir.path().join("bad.log");
    std::fs::write(&file, &input).unwrap();
    let (code, out, err) = run_cli(
        &["ingest", "--data-dir", data, file.to_str().unwrap()],
        None,
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(s["events"], 1, "{s}");
    assert_eq!(s["quarantined"], 7, "{s}");
    let out = q(
        data,
        "json",
        "select input_offset, reason, original_len, truncated from quarantine order by input_offset",
    );
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 7, "{out}");
    let reason = |i: usize| rows[i]["reason"].as_str().unwrap().to_string();
    assert!(
        reason(0).contains("not a recognized audit event"),
        "{}",
        reason(0)
    );
    assert!(reason(1).contains("not JSON"), "{}", reason(1));
    assert!(reason(2).contains("truncated JSON record"), "{}", reason(2));
    assert!(
        reason(3).contains("exceeds max_event_bytes"),
        "{}",
        reason(3)
    );
    assert_eq!(rows[3]["original_len"], (10 << 20) + 10);
    assert_eq!(
        rows[3]["truncated"], false,
        "original bytes are kept whole (under the 16 MiB cap)"
    );
    // a JSON array is a list of records: each number is rejected on its own
    for i in 4..7 {
        assert!(reason(i).contains("not JSON"), "{}", reason(i));
    }
    assert_eq!(rows[0]["input_offset"], 0);
    // the original bytes are stored verbatim when there was nothing to redact
    let out = q(
        data,
        "csv",
        "select arrow_cast(original, 'Utf8') as o from quarantine where input_offset = 0",
    );
    assert!(out.contains("{\"\"kind\"\": 0}"), "{out}");
}

#[test]
fn query_formats_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let data = data.to_str().unwrap();
    let (code, _, err) = run_cli(
        &["ingest", "--data-dir", data, "-"],
        Some(sample().as_bytes()),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let sql = "select actor, resource_path, action, secret_access, actor_groups from events order by time";
    let json = q(data, "json", sql);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["actor"], "system:serviceaccount:prod:api");
    assert_eq!(lines[0]["resource_path"], "namespaces/prod/secrets/db");
    assert_eq!(lines[0]["action"], "read");
    assert_eq!(lines[0]["secret_access"], true);
    assert_eq!(
        lines[0]["actor_groups"],
        serde_json::json!(["system:serviceaccounts"])
    );
    let csv = q(data, "csv", sql);
    assert!(
        csv.starts_with("actor,resource_path,action,secret_access,actor_groups\n"),
        "{csv}"
    );
    let table = q(data, "table", sql);
    assert!(table.contains("| namespaces/prod/secrets/db"), "{table}");
    // the data dir also comes from the environment
    let (code, out, _) = run_cli(
        &[
            "query",
            "--format",
            "csv",
            "select count(*) as n from events",
        ],
        None,
        &[("AUDITWATCH_DATA_DIR", data)],
    );
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "n\n3");
    // no DDL, DML or statements
    for bad in [
        "create table t as select 1",
        "insert into events select * from events",
        "drop table events",
        "copy events to '/tmp/x.parquet'",
        "create external table x stored as csv location '/etc/passwd'",
        "set datafusion.execution.batch_size = 1",
    ] {
        let (code, _, err) = run_cli(&["query", "--data-dir", data, bad], None, &[]);
        assert_ne!(code, 0, "{bad} must be refused");
        assert!(err.contains("query"), "{bad}: {err}");
    }
}

#[test]
fn a_directory_of_logs_including_rotated_gzip_files_is_ingested() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs/rotated");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        dir.path().join("logs/audit.log"),
        event("d1", "alice", "secrets", "db", "2026-11-20T10:00:00Z"),
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(sample().as_bytes()).unwrap();
    std::fs::write(logs.join("audit-2026-11-19.log.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(dir.path().join("logs/.hidden"), "not audit").unwrap();
    let data = dir.path().join("d");
    let (code, out, err) = run_cli(
        &[
            "ingest",
            "--data-dir",
            data.to_str().unwrap(),
            dir.path().join("logs").to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        r#"{"events":4,"quarantined":0,"duplicates":0,"alerts":0}"#
    );
}
