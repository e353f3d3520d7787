//! Investigators are audited too: every request under `/api/` becomes one JSON line —
//! who (token name), what (method, path, query string, the SQL of `/query`), when,
//! status, rows returned, duration — emitted through `tracing` (target
//! `auditwatch::access`) and appended to `<data-dir>/access-log/date=YYYY-MM-DD/access.jsonl`.
//! Headers are never logged, so neither is a token.
//!
//! If the line cannot be written to the file, the answer is replaced by a 500: data is
//! not handed out unaudited.
//!
//! The same middleware counts every request (API and operational endpoints) in
//! `auditwatch_api_requests_total{route,status}` and `auditwatch_api_request_seconds{route}`;
//! `route` is the matched route template (`/api/v1/alerts/{id}`), never the path.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{HistogramVec, IntCounterVec};
use serde_json::json;

use super::auth::Caller;
use super::error::{ApiError, ErrorCode};

/// The route template that answered (response extension set per route, since axum's
/// `MatchedPath` needs a feature this crate does not enable).
#[derive(Debug, Clone, Copy)]
pub struct Route(pub &'static str);

/// Rows a handler returned (response extension, for the access log).
#[derive(Debug, Clone, Copy)]
pub struct RowCount(pub usize);

/// The SQL text of a `/query` request (response extension, for the access log).
#[derive(Debug, Clone)]
pub struct SqlText(pub String);

pub struct ApiMetrics {
    pub requests: IntCounterVec,
    pub seconds: HistogramVec,
}

/// The API's metrics, registered into the process registry on first use.
pub fn metrics() -> &'static ApiMetrics {
    static M: LazyLock<ApiMetrics> = LazyLock::new(|| {
        let requests = IntCounterVec::new(
            prometheus::Opts::new(
                "auditwatch_api_requests_total",
                "HTTP requests answered, by route template and status code",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let seconds = HistogramVec::new(
            prometheus::HistogramOpts::new(
                "auditwatch_api_request_seconds",
                "Time to answer an HTTP request, by route template",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let reg = &crate::metrics::metrics().registry;
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(seconds.clone()),
        ] {
            if let Err(e) = reg.register(c) {
                tracing::warn!(error = %e, "api metrics not registered");
            }
        }
        ApiMetrics { requests, seconds }
    });
    &M
}

/// Where access lines go besides `tracing`.
pub struct AccessLog {
    dir: Option<PathBuf>,
    open: Mutex<Option<(String, std::fs::File)>>,
}

impl AccessLog {
    /// Lines go to `<data_dir>/access-log/date=…/access.jsonl`.
    pub fn new(data_dir: &std::path::Path) -> AccessLog {
        AccessLog {
            dir: Some(data_dir.join("access-log")),
            open: Mutex::new(None),
        }
    }

    /// Only `tracing` (no file).
    pub fn tracing_only() -> AccessLog {
        AccessLog {
            dir: None,
            open: Mutex::new(None),
        }
    }

    fn append(&self, date: &str, line: &str) -> std::io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let mut g = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if g.as_ref().is_none_or(|(d, _)| d != date) {
            let part = dir.join(format!("date={date}"));
            std::fs::create_dir_all(&part)?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(part.join("access.jsonl"))?;
            *g = Some((date.to_string(), f));
        }
        let (_, f) = g.as_mut().expect("opened above");
        // one write of a whole line: O_APPEND keeps concurrent writers' lines whole
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        f.write_all(&buf)
    }
}

/// Query-string parameters whose values are not logged (a token pasted into a URL).
fn redact_query(q: &str) -> String {
    q.split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.to_ascii_lowercase().contains("token") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Middleware over the whole router: metrics for every request, the access log for `/api/`.
pub async fn observe(
    State(log): State<std::sync::Arc<AccessLog>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let now = chrono::Utc::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(redact_query);
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let mut resp = next.run(req).await;
    let elapsed = started.elapsed();
    let route = match resp.extensions_mut().remove::<Route>() {
        Some(r) => r.0,
        None if matches!(path.as_str(), "/metrics" | "/healthz" | "/readyz") => {
            if path == "/metrics" {
                "/metrics"
            } else if path == "/healthz" {
                "/healthz"
            } else {
                "/readyz"
            }
        }
        None => "unmatched",
    };
    let status = resp.status().as_u16();
    let m = metrics();
    m.requests
        .with_label_values(&[route, &status.to_string()])
        .inc();
    m.seconds
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
    if !path.starts_with("/api/") {
        return resp;
    }
    let caller = resp.extensions_mut().remove::<Caller>();
    let rows = resp.extensions_mut().remove::<RowCount>();
    let sql = resp.extensions_mut().remove::<SqlText>();
    let code = resp.extensions().get::<ErrorCode>().map(|c| c.0);
    let record = json!({
        "time": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "who": caller.as_ref().map(|c| c.name.as_str()),
        "role": caller.as_ref().map(|c| c.role.as_str()),
        "method": method,
        "path": path,
        "query": query,
        "route": route,
        "sql": sql.map(|s| s.0),
        "status": status,
        "error": code,
        "rows": rows.map(|r| r.0),
        "duration_ms": (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        "remote": remote,
        "user_agent": user_agent,
    });
    let line = record.to_string();
    tracing::info!(target: "auditwatch::access", "{line}");
    let date = now.format("%Y-%m-%d").to_string();
    if let Err(e) = log.append(&date, &line) {
        tracing::error!(error = %e, "cannot write the API access log; refusing the answer");
        return ApiError::internal("the access log cannot be written; the answer is withheld")
            .into_response();
    }
    resp
}
