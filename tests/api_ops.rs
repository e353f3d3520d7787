//! Operational endpoints: `/healthz`, `/readyz` (follows readiness), `/metrics` (text
//! format, `auditwatch_*` names with help texts).

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use auditwatch::api::Readiness;

#[derive(Default)]
struct Flag(AtomicBool);

impl Readiness for Flag {
    fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let flag = Arc::new(Flag::default());
    let token = tokio_util::sync::CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(auditwatch::api::serve(
        "127.0.0.1:0".parse().unwrap(),
        flag.clone(),
        token.clone(),
        Some(tx),
    ));
    let addr = rx.await.unwrap();
    // touch a metric so the registry has samples
    auditwatch::metrics::metrics().dead_letters.inc_by(0);
    auditwatch::metrics::metrics()
        .events
        .with_label_values(&["kubernetes", "success"])
        .inc();
    let (h, r1, m) = tokio::task::spawn_blocking(move || {
        (
            get(addr, "/healthz"),
            get(addr, "/readyz"),
            get(addr, "/metrics"),
        )
    })
    .await
    .unwrap();
    assert_eq!(h.0, 200);
    assert_eq!(r1.0, 503, "not ready before the pipeline is");
    assert_eq!(m.0, 200);
    assert!(m.1.contains("# HELP auditwatch_events_total"), "{}", m.1);
    assert!(
        m.1.contains("auditwatch_events_total{outcome=\"success\",source=\"kubernetes\"}"),
        "{}",
        m.1
    );
    for line in m.1.lines().filter(|l| l.starts_with("# HELP ")) {
        assert!(
            line["# HELP ".len()..].starts_with("auditwatch_"),
            "metric outside the namespace: {line}"
        );
    }
    flag.0.store(true, Ordering::Relaxed);
    let r2 = tokio::task::spawn_blocking(move || get(addr, "/readyz"))
        .await
        .unwrap();
    assert_eq!(r2.0, 200);
    token.cancel();
    server.await.unwrap().unwrap();
}
