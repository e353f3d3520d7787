//! The Grafana dashboards in dashboards/ only name metrics the binary exports (issue 6).
//!
//! Runs the real `auditwatch demo` (in-process Kafka, generated traffic with an attack every
//! 2 s, the rule pack), makes a request to the HTTP API, scrapes `/metrics` and checks
//! every metric name in every dashboard expression against it. Histogram series
//! (`_bucket`, `_sum`, `_count`) map to their histogram. Labelled metrics appear only once a
//! label value was used; the few the demo cannot exercise are listed in `MAY_BE_ABSENT`
//! with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Metrics a dashboard may show that a demo run does not produce, and why.
const MAY_BE_ABSENT: &[(&str, &str)] = &[
    (
        "auditwatch_rules_reloads_total",
        "counted per result only when rules are reloaded (SIGHUP or a file change)",
    ),
    (
        "auditwatch_quarantined_total",
        "counted per format only when a malformed record arrives; demo traffic is well-formed",
    ),
    (
        "auditwatch_sink_backlog_alerts",
        "per configured [[sinks]] entry; the demo prints alerts and configures no sink",
    ),
    (
        "auditwatch_sink_delivered_total",
        "per configured [[sinks]] entry; the demo configures no sink",
    ),
    (
        "auditwatch_sink_failures_total",
        "per configured [[sinks]] entry; the demo configures no sink",
    ),
];

fn dashboards() -> BTreeMap<String, Value> {
    let dir = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("dashboards");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.insert(p.file_name().unwrap().to_string_lossy().into_owned(), v);
        }
    }
    out
}

/// Every PromQL expression of a dashboard: panel targets and templating queries.
fn expressions(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push(e.clone());
                }
                for (k, x) in m {
                    if k == "definition" {
                        if let Value::String(s) = x {
                            out.push(s.clone());
                        }
                    }
                    walk(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&d["panels"], &mut out);
    walk(&d["templating"], &mut out);
    out
}

/// Skips from an opening bracket to just after its matching close, stepping over strings.
fn skip_group(s: &[char], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    while i < s.len() {
        match s[i] {
            '"' | '\'' | '`' => i = skip_string(s, i) - 1,
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced {open}{close}");
}

fn skip_string(s: &[char], i: usize) -> usize {
    let q = s[i];
    let mut j = i + 1;
    while j < s.len() && s[j] != q {
        if s[j] == '\\' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

/// Metric names in a PromQL expression (or a `label_values(metric, label)` query): the
/// identifiers that are not functions, keywords, labels, durations or numbers.
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let s: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    // label_values(metric, label): the second argument is a label
    let mut label_values_arg = false;
    while i < s.len() {
        let c = s[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&s, i);
        } else if c == '{' {
            i = skip_group(&s, i, '{', '}');
        } else if c == '[' {
            i = skip_group(&s, i, '[', ']');
        } else if c == '$' {
            i += 1;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit() || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '.') {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_' || s[i] == ':') {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let mut j = i;
            while j < s.len() && s[j].is_whitespace() {
                j += 1;
            }
            // `sum by (le) (…)`: an aggregation with its grouping before the parenthesis
            let rest: String = s[j..].iter().take(8).collect();
            let grouped = ["by", "without"].iter().any(|k| {
                rest.strip_prefix(k)
                    .is_some_and(|r| r.starts_with([' ', '(']))
            });
            let call = s.get(j) == Some(&'(') || grouped;
            let lower = word.to_ascii_lowercase();
            if LABEL_LISTS.contains(&lower.as_str()) && call {
                i = skip_group(&s, j, '(', ')');
            } else if call {
                label_values_arg = word == "label_values";
            } else if KEYWORDS.contains(&lower.as_str()) {
            } else if label_values_arg
                && s[..start].iter().rev().find(|c| !c.is_whitespace()) == Some(&',')
            {
                label_values_arg = false;
            } else {
                out.push(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn the_tokenizer_finds_metrics_and_nothing_else() {
    let e = r#"histogram_quantile(0.99, sum by (le, route) (rate(auditwatch_api_request_seconds_bucket{instance=~"$instance", route!="/x{y}"}[$__rate_interval]))) / on (route) group_left sum without (le) (x_total offset 5m) > bool 1e3"#;
    assert_eq!(
        metric_names(e),
        vec!["auditwatch_api_request_seconds_bucket", "x_total"]
    );
    assert_eq!(
        metric_names("label_values(auditwatch_kafka_connected, instance)"),
        vec!["auditwatch_kafka_connected"]
    );
    assert_eq!(
        metric_names("sum(a) / sum(rate(b[5m])) or vector(0)"),
        vec!["a", "b"]
    );
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Metric name → type, from the exposition text.
fn exported(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_dashboard_metric_is_exported() {
    let boards = dashboards();
    for name in ["pipeline.json", "detections.json", "investigations.json"] {
        assert!(boards.contains_key(name), "dashboards/{name} missing");
    }
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, d) in &boards {
        assert!(
            d["uid"]
                .as_str()
                .is_some_and(|u| u.starts_with("auditwatch-")),
            "{file}"
        );
        let exprs = expressions(d);
        assert!(exprs.len() >= 8, "{file}: {} expressions", exprs.len());
        for e in exprs {
            let names = metric_names(&e);
            assert!(!names.is_empty(), "{file}: no metric in {e}");
            for n in names {
                assert!(n.starts_with("auditwatch_"), "{file}: {n} in {e}");
                wanted.entry(n).or_default().insert(file.clone());
            }
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditwatch"))
        .args(["demo", "--duration", "60s", "--listen", "127.0.0.1:0"])
        .args([
            "--rate",
            "200",
            "--attack-every",
            "2",
            "--status-every",
            "5",
        ])
        .arg("--data-dir")
        .arg(tmp.path().join("store"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let mut lines = BufReader::new(stdout).lines();
    let addr: SocketAddr = loop {
        let line = lines
            .next()
            .expect("demo exited before printing its address")
            .unwrap();
        if let Some(rest) = line.trim_start().strip_prefix("http") {
            let url = rest.split_whitespace().next().unwrap();
            let hostport = url.trim_start_matches("http://").split('/').next().unwrap();
            break hostport.parse().unwrap();
        }
    };
    // keep draining stdout so the demo never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});

    // wait until the pipeline has stored rows and raised alerts
    let deadline = Instant::now() + Duration::from_secs(50);
    let metrics = loop {
        // a request to the API so the request metrics have a route
        http_get(addr, "/healthz");
        let (code, body) = http_get(addr, "/metrics");
        assert_eq!(code, 200);
        let have = exported(&body);
        let missing: Vec<&String> = wanted
            .keys()
            .filter(|n| !satisfied(n, &have))
            .filter(|n| !MAY_BE_ABSENT.iter().any(|(a, _)| a == n))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    drop(demo);
    let have = exported(&metrics);
    let mut problems = Vec::new();
    for (n, files) in &wanted {
        if satisfied(n, &have) {
            continue;
        }
        match MAY_BE_ABSENT.iter().find(|(a, _)| a == n) {
            Some((_, why)) => println!("absent (allowed): {n}: {why}"),
            None => problems.push(format!("{n} (used in {files:?})")),
        }
    }
    assert!(
        problems.is_empty(),
        "dashboards use metrics /metrics does not export:\n{}\n\nexported: {:?}",
        problems.join("\n"),
        have.keys().collect::<Vec<_>>()
    );
    // an allowance for a metric no dashboard uses is stale
    for (n, _) in MAY_BE_ABSENT {
        assert!(wanted.contains_key(*n), "MAY_BE_ABSENT lists unused {n}");
    }
}

fn satisfied(name: &str, have: &BTreeMap<String, String>) -> bool {
    if have.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suf| {
        name.strip_suffix(suf)
            .and_then(|base| have.get(base))
            .is_some_and(|t| t == "histogram" || (t == "summary" && *suf != "_bucket"))
    })
}
