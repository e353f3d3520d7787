//! Alert sinks: the outbox keeps alerts across outages and restarts; the webhook retries
//! with backoff and signs its batches; the file and Kafka sinks deliver every alert; the
//! Kafka pipeline puts new alerts in the outbox before it stores offsets.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auditwatch::detect::Alert;
use auditwatch::detect::sigma::Level;
use auditwatch::sink::{self, Outbox, Sink, SinkConfig, SinkKind};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use tokio_util::sync::CancellationToken;

fn alert(i: usize) -> Alert {
    Alert {
        id: format!("id-{i:04}"),
        time: 1_764_000_000_000_000 + i as i64,
        rule_id: "r".into(),
        title: "t".into(),
        severity: Level::High,
        detector: "sigma".into(),
        actor: Some(format!("user{i}")),
        source: Some("kubernetes".into()),
        resources: vec!["namespaces/a/secrets/b".into()],
        window_start: 1,
        window_end: 2,
        event_ids: vec![format!("ev-{i}")],
        tags: vec![],
        explanation: serde_json::json!({"kind": "rule_match"}),
    }
}

fn cfg(name: &str, kind: SinkKind) -> SinkConfig {
    SinkConfig {
        name: name.into(),
        kind,
        format: "native".into(),
        path: None,
        topic: None,
        bootstrap_servers: None,
        url: None,
        secret_file: None,
        secret_env: None,
        batch: 7,
        timeout: "2s".into(),
    }
}

#[test]
fn outbox_reads_back_in_order_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Outbox::open(dir.path()).unwrap();
    o.append(&(0..5).map(alert).collect::<Vec<_>>()).unwrap();
    drop(o);
    let mut o = Outbox::open(dir.path()).unwrap();
    o.append(&(5..12).map(alert).collect::<Vec<_>>()).unwrap();
    let c = sink::load_cursor(dir.path(), "s");
    assert_eq!(sink::backlog(dir.path(), c), 12);
    let (a, c) = sink::read_batch(dir.path(), c, 10).unwrap();
    assert_eq!(a.len(), 10);
    assert_eq!(a[0], alert(0));
    assert_eq!(a[9].id, "id-0009");
    let (b, c) = sink::read_batch(dir.path(), c, 10).unwrap();
    assert_eq!(
        b.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ["id-0010", "id-0011"]
    );
    assert_eq!(sink::backlog(dir.path(), c), 0);
}

/// A webhook that refuses the first requests, then verifies signatures and records ids.
async fn webhook(
    fail_first: usize,
    key: &'static str,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (got.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (g, c) = (g.clone(), c.clone());
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst);
                if n < fail_first {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let ts = headers["x-auditwatch-timestamp"].to_str().unwrap();
                let sig = headers["x-auditwatch-signature"].to_str().unwrap();
                if sig != format!("sha256={}", sink::sign(key.as_bytes(), ts, &body)) {
                    return StatusCode::UNAUTHORIZED;
                }
                let docs: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
                g.lock()
                    .unwrap()
                    .extend(docs.iter().map(|d| d["id"].as_str().unwrap().to_string()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/hook"), got, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_outage_delays_but_loses_nothing_and_restarts_resume() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "s3cr3t-hmac-key\n").unwrap();
    let (url, got, calls) = webhook(3, "s3cr3t-hmac-key").await;
    let outbox_dir = dir.path().join("outbox");
    let mut o = Outbox::open(&outbox_dir).unwrap();
    o.append(&(0..20).map(alert).collect::<Vec<_>>()).unwrap();
    let mut c = cfg("hook", SinkKind::Webhook);
    c.url = Some(url);
    c.secret_file = Some(key_file);
    let run = |c: SinkConfig| {
        let token = CancellationToken::new();
        let t = token.clone();
        let d = outbox_dir.clone();
        let h = tokio::spawn(async move {
            sink::run(
                Sink::open(&c, "unused:9092").unwrap(),
                d,
                vec!["hook".into()],
                t,
            )
            .await
        });
        (token, h)
    };
    let (token, h) = run(c.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    h.await.unwrap();
    assert!(calls.load(Ordering::SeqCst) > 3, "the outage was retried");
    let ids = got.lock().unwrap().clone();
    assert_eq!(
        ids,
        (0..20).map(|i| format!("id-{i:04}")).collect::<Vec<_>>()
    );
    // more alerts while the sink is down; a new process picks them up, nothing twice
    o.append(&(20..25).map(alert).collect::<Vec<_>>()).unwrap();
    let (token, h) = run(c);
    while got.lock().unwrap().len() < 25 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    h.await.unwrap();
    let ids = got.lock().unwrap().clone();
    assert_eq!(ids.len(), 25, "{ids:?}");
    assert_eq!(ids[20], "id-0020");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_kafka_sinks_deliver_everything() {
    let dir = tempfile::tempdir().unwrap();
    let outbox_dir = dir.path().join("outbox");
    let mut o = Outbox::open(&outbox_dir).unwrap();
    o.append(&(0..30).map(alert).collect::<Vec<_>>()).unwrap();

    let mut f = cfg("file", SinkKind::File);
    f.path = Some(dir.path().join("alerts.ocsf.jsonl"));
    f.format = "ocsf".into();
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("alerts", 1, 1).unwrap();
    let mut k = cfg("kafka", SinkKind::Kafka);
    k.topic = Some("alerts".into());
    k.bootstrap_servers = Some(cluster.bootstrap_servers());
    let names = vec!["file".to_string(), "kafka".to_string()];
    let token = CancellationToken::new();
    let mut hs = Vec::new();
    for c in [f, k] {
        let (d, n, t) = (outbox_dir.clone(), names.clone(), token.clone());
        let s = Sink::open(&c, "unused:9092").unwrap();
        hs.push(tokio::spawn(async move { sink::run(s, d, n, t).await }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done = names
            .iter()
            .all(|n| sink::backlog(&outbox_dir, sink::load_cursor(&outbox_dir, n)) == 0);
        if done || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    for h in hs {
        h.await.unwrap();
    }
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("alerts.ocsf.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(lines.len(), 30);
    assert!(lines.iter().all(|l| l["class_uid"] == 2004));

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let cons: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    cons.subscribe(&["alerts"]).unwrap();
    let mut keys = Vec::new();
    while keys.len() < 30 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = cons.poll(Duration::from_millis(200)) {
            keys.push(String::from_utf8(m.key().unwrap().to_vec()).unwrap());
        }
    }
    keys.sort();
    assert_eq!(
        keys,
        (0..30).map(|i| format!("id-{i:04}")).collect::<Vec<_>>(),
        "alert id is the key"
    );
}

#[test]
fn sink_settings_are_validated() {
    let mut w = cfg("hook", SinkKind::Webhook);
    w.url = Some("https://siem.example/hook".into());
    assert!(w.validate().is_err(), "a webhook needs a secret");
    w.secret_env = Some("HOOK_KEY".into());
    assert!(w.validate().is_ok());
    let mut bad = cfg("../x", SinkKind::Stdout);
    assert!(bad.validate().is_err());
    bad.name = "ok".into();
    bad.format = "cef".into();
    assert!(bad.validate().is_err());
}
