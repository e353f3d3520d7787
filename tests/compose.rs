//! docker-compose.yml and deploy/ agree with the repository (issue 6): every service has an
//! image or a build, every bind-mounted host path exists, `depends_on` names services,
//! Prometheus scrapes the auditwatch service on the port its config listens on, Grafana's
//! provisioning points at mounted dashboards, and the mounted auditwatch config loads.
//! (No docker here: this checks the files, not a running stack.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let docs = auditwatch::detect::yaml::load_all(&text)
        .unwrap_or_else(|e| panic!("{}:{}: {}", path.display(), e.line, e.message));
    assert_eq!(docs.len(), 1, "{}", path.display());
    docs[0].to_json()
}

fn compose() -> Value {
    yaml(&repo().join("docker-compose.yml"))
}

fn services(c: &Value) -> &serde_json::Map<String, Value> {
    c["services"].as_object().expect("services")
}

/// `${VAR:-default}` → default (what compose uses when VAR is unset).
fn expand(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("closed ${") + i;
        let inner = &rest[i + 2..end];
        out.push_str(inner.split_once(":-").map(|x| x.1).unwrap_or(""));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// (host path, container path) of every bind mount of a service.
fn binds(svc: &Value) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for m in svc["volumes"].as_array().into_iter().flatten() {
        let s = expand(m.as_str().expect("short volume syntax"));
        let parts: Vec<&str> = s.split(':').collect();
        let host = parts[0].to_string();
        if host.starts_with('.') || host.starts_with('/') {
            v.push((host, parts[1].to_string()));
        }
    }
    v
}

fn command(svc: &Value) -> Vec<String> {
    svc["command"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The host file mounted at `container` in `svc`.
fn host_file_at(svc: &Value, container: &str) -> PathBuf {
    let (host, _) = binds(svc)
        .into_iter()
        .find(|(_, c)| c == container)
        .unwrap_or_else(|| panic!("nothing mounted at {container}"));
    repo().join(host)
}

#[test]
fn services_have_images_mounts_exist_and_dependencies_resolve() {
    let c = compose();
    let svcs = services(&c);
    for name in [
        "kafka",
        "kafka-init",
        "auditwatch",
        "prometheus",
        "grafana",
        "generator",
    ] {
        assert!(svcs.contains_key(name), "service {name} missing");
    }
    let named: Vec<&String> = c["volumes"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    for (name, svc) in svcs {
        let image = svc["image"].as_str();
        let build = &svc["build"];
        assert!(
            image.is_some() || !build.is_null(),
            "{name}: no image or build"
        );
        if let Some(img) = image {
            let tag = img.rsplit_once(':').map(|x| x.1).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest",
                "{name}: image {img} is not pinned"
            );
            if img.starts_with("auditwatch:") {
                // built here: some service builds this image
                assert!(
                    svcs.values()
                        .any(|s| s["image"] == img && !s["build"].is_null()),
                    "{name}: nothing builds {img}"
                );
            }
        }
        if let Some(ctx) = build.as_str().or(build["context"].as_str()) {
            assert!(
                repo().join(ctx).join("Dockerfile").is_file(),
                "{name}: no Dockerfile in {ctx}"
            );
        }
        for (host, _) in binds(svc) {
            assert!(
                repo().join(&host).exists(),
                "{name}: mounted host path {host} does not exist"
            );
        }
        for m in svc["volumes"].as_array().into_iter().flatten() {
            let full = expand(m.as_str().unwrap());
            let src = full.split(':').next().unwrap().to_string();
            if !(src.starts_with('.') || src.starts_with('/')) {
                assert!(named.contains(&&src), "{name}: volume {src} not declared");
            }
        }
        let deps: Vec<(String, Option<String>)> = match &svc["depends_on"] {
            Value::Null => vec![],
            Value::Array(a) => a
                .iter()
                .map(|d| (d.as_str().unwrap().to_string(), None))
                .collect(),
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), v["condition"].as_str().map(String::from)))
                .collect(),
            other => panic!("{name}: depends_on {other}"),
        };
        for (dep, cond) in deps {
            assert!(svcs.contains_key(&dep), "{name}: depends on unknown {dep}");
            match cond.as_deref() {
                None | Some("service_started") | Some("service_completed_successfully") => {}
                Some("service_healthy") => assert!(
                    !svcs[&dep]["healthcheck"].is_null(),
                    "{name}: waits for {dep} to be healthy but it has no healthcheck"
                ),
                Some(c) => panic!("{name}: unknown condition {c}"),
            }
        }
    }
    // the generator is optional, the stack itself is not
    assert_eq!(
        svcs["generator"]["profiles"],
        serde_json::json!(["generator"])
    );
    for name in ["kafka", "kafka-init", "auditwatch", "prometheus", "grafana"] {
        assert!(
            svcs[name]["profiles"].is_null(),
            "{name} must start by default"
        );
    }
    let generator = command(&svcs["generator"]).join(" ");
    assert!(
        generator.starts_with("generate --kafka kafka:9092 --live"),
        "{generator}"
    );
}

/// The auditwatch config the stack runs with: it loads, reads the Kafka service, its topics
/// are created by kafka-init, and its rules are where the image puts them.
#[test]
fn auditwatch_config_loads_and_matches_the_stack() {
    let c = compose();
    let svcs = services(&c);
    let aw = &svcs["auditwatch"];
    let cmd = command(aw);
    assert_eq!(cmd[0], "run");
    let at = cmd.iter().position(|a| a == "--config").expect("--config");
    let cfg_path = host_file_at(aw, &cmd[at + 1]);
    let cfg = auditwatch::config::load(Some(&cfg_path))
        .unwrap_or_else(|e| panic!("{}: {e}", cfg_path.display()));

    let (host, _) = cfg.kafka.bootstrap_servers.split_once(':').unwrap();
    assert!(svcs.contains_key(host), "bootstrap {host} is not a service");
    let init = svcs["kafka-init"]["command"].to_string();
    let mut topics: Vec<String> = cfg.kafka.topics.iter().map(|t| t.name.clone()).collect();
    topics.extend(cfg.kafka.dead_letter_topic.clone());
    topics.extend(cfg.sinks.iter().filter_map(|s| s.topic.clone()));
    for t in topics {
        assert!(
            init.contains(&format!("{t}:")),
            "topic {t} is not created by kafka-init"
        );
    }
    // the generator produces to the topics auditwatch reads
    for t in [
        auditwatch::generate::DEFAULT_TOPIC_K8S,
        auditwatch::generate::DEFAULT_TOPIC_VAULT,
    ] {
        assert!(
            cfg.kafka.topics.iter().any(|x| x.name == t),
            "{t} not consumed"
        );
    }
    // the store is on the volume, the rules in the image
    let data_mount = aw["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .find(|v| v.starts_with("store:"))
        .expect("store volume");
    assert_eq!(
        Path::new(data_mount.split(':').nth(1).unwrap()),
        cfg.data_dir
    );
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(!cfg.rules.is_empty());
    for r in &cfg.rules {
        let r = r.display().to_string();
        let copied = dockerfile
            .lines()
            .any(|l| l.trim_start().starts_with("COPY") && l.split_whitespace().last() == Some(&r));
        assert!(
            copied,
            "rules path {r} is not a COPY destination in the Dockerfile"
        );
    }
    assert!(
        cfg.api_listen.ip().is_unspecified(),
        "listen on all interfaces in a container"
    );
}

#[test]
fn prometheus_scrapes_the_auditwatch_service() {
    let c = compose();
    let svcs = services(&c);
    let prom = &svcs["prometheus"];
    let path = host_file_at(prom, "/etc/prometheus/prometheus.yml");
    let p = yaml(&path);
    let aw = &svcs["auditwatch"];
    let cmd = command(aw);
    let at = cmd.iter().position(|a| a == "--config").unwrap();
    let cfg = auditwatch::config::load(Some(&host_file_at(aw, &cmd[at + 1]))).unwrap();

    let jobs = p["scrape_configs"].as_array().expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"] == "auditwatch")
        .expect("auditwatch job");
    assert!(job["metrics_path"].is_null() || job["metrics_path"] == "/metrics");
    let targets: Vec<&str> = job["static_configs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["targets"].as_array().unwrap())
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        vec![format!("auditwatch:{}", cfg.api_listen.port())]
    );
    // and the API port is the one published
    let ports = aw["ports"].to_string();
    assert!(
        ports.contains(&format!(":{}", cfg.api_listen.port())),
        "{ports}"
    );
}

#[test]
fn grafana_provisioning_points_at_the_dashboards() {
    let c = compose();
    let svcs = services(&c);
    let g = &svcs["grafana"];
    let prov = host_file_at(g, "/etc/grafana/provisioning");
    assert!(prov.is_dir());
    let mounts: BTreeMap<String, String> = binds(g).into_iter().map(|(h, c)| (c, h)).collect();

    let mut datasources = 0;
    for e in std::fs::read_dir(prov.join("datasources")).unwrap() {
        let ds = yaml(&e.unwrap().path());
        for d in ds["datasources"].as_array().unwrap() {
            assert_eq!(d["type"], "prometheus");
            let url = d["url"].as_str().unwrap();
            let hostport = url.trim_start_matches("http://");
            let (host, port) = hostport.split_once(':').unwrap();
            assert!(svcs.contains_key(host), "datasource host {host}");
            assert_eq!(port, "9090");
            datasources += 1;
        }
    }
    assert_eq!(datasources, 1);

    let mut providers = 0;
    for e in std::fs::read_dir(prov.join("dashboards")).unwrap() {
        let dp = yaml(&e.unwrap().path());
        for p in dp["providers"].as_array().unwrap() {
            assert_eq!(p["type"], "file");
            let path = p["options"]["path"].as_str().unwrap();
            let host = mounts
                .get(path)
                .unwrap_or_else(|| panic!("provider path {path} is not mounted"));
            let dir = repo().join(host);
            let jsons = std::fs::read_dir(&dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "json")
                })
                .count();
            assert!(jsons >= 3, "{} has {jsons} dashboards", dir.display());
            providers += 1;
        }
    }
    assert_eq!(providers, 1);
    let home = g["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .unwrap();
    let (dir, file) = home.rsplit_once('/').unwrap();
    assert!(repo().join(&mounts[dir]).join(file).is_file(), "{home}");
}
