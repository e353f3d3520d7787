//! Benign behaviour of the simulated organisation: workloads, nodes, controllers, health
//! checks, humans in office hours and the daily rollouts. Every periodic or Poisson
//! process here is scaled by the volume scale; day plans (which workloads roll out when,
//! who works when) are drawn from their own generator so they do not depend on it.

use rand::RngExt;

use super::format::{
    K8sReq, ObjRef, US_PER_DAY, US_PER_HOUR, US_PER_MIN, US_PER_SEC, VaultAuth, VaultReq,
};
use super::org::{Misconfig, VaultMethod, Workload, respawn_pods};
use super::sim::{Out, Rng, Sim, Task, activity, day_of, exp_gap, weekday};

pub(crate) const KUBECTL_UA: &str = "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350";
pub(crate) const VAULT_CLI_UA: &str = "Vault/1.17.2 (+https://www.vaultproject.io/; go1.22.5)";
const KUBELET_UA: &str = "kubelet/v1.30.2 (linux/amd64) kubernetes/3968350";

/// Field names of a KV secret, by the last path segment (values are only ever HMACs).
pub(crate) fn kv_fields(path: &str) -> &'static [&'static str] {
    match path.rsplit('/').next().unwrap_or("") {
        "db" => &["password", "username"],
        "tls" => &["tls.crt", "tls.key"],
        "oauth-client" => &["client_id", "client_secret"],
        "smtp" => &["password", "user"],
        "s3" => &["access_key", "secret_key"],
        _ => &["value"],
    }
}

fn ms(rng: &mut super::sim::Rng, lo: i64, hi: i64) -> i64 {
    rng.random_range(lo..hi) * 1_000
}

fn port(rng: &mut super::sim::Rng) -> u16 {
    rng.random_range(32_768..61_000u16)
}

impl Sim {
    /// Schedules the first action of every actor.
    pub(crate) fn bootstrap(&mut self) {
        let now = self.cfg.start_us;
        self.out.schedule(now, Task::Day(day_of(now)));
        let stagger = |s: &mut Sim, period: i64| {
            now + (s.rng.random::<f64>() * period as f64 / s.cfg.scale) as i64
        };
        for i in 0..self.org.workloads.len() {
            let t = stagger(self, 10 * US_PER_MIN);
            self.out.schedule(t, Task::VaultRead(i));
            let t = stagger(self, 30 * US_PER_MIN);
            self.out.schedule(t, Task::VaultRenew(i));
            let w = &self.org.workloads[i];
            let (leases, poll, cm, leader, mis) = (
                w.leases,
                w.secret_poll_min.is_some(),
                w.configmap_reader,
                w.leader_lease,
                w.misconfigured.is_some(),
            );
            if leases {
                let t = stagger(self, 4 * US_PER_HOUR);
                self.out.schedule(t, Task::VaultLeases(i));
            }
            if poll {
                let t = stagger(self, 10 * US_PER_MIN);
                self.out.schedule(t, Task::SecretPoll(i));
            }
            if cm {
                let t = stagger(self, 8 * US_PER_MIN);
                self.out.schedule(t, Task::ConfigMapWatch(i));
            }
            if leader {
                let t = stagger(self, 20 * US_PER_SEC);
                self.out.schedule(t, Task::LeaderLease(i));
            }
            if mis {
                let t = stagger(self, 20 * US_PER_MIN);
                self.out.schedule(t, Task::Misconfig(i));
            }
        }
        for n in 0..self.org.nodes.len() {
            let t = stagger(self, 10 * US_PER_SEC);
            self.out.schedule(t, Task::NodeLease(n));
            let t = stagger(self, 60 * US_PER_SEC);
            self.out.schedule(t, Task::NodeStatus(n));
            let t = stagger(self, 30 * US_PER_MIN);
            self.out.schedule(t, Task::NodeSecretWatch(n));
        }
        let fixed: Vec<(i64, Task)> = vec![
            (10 * US_PER_SEC, Task::ControlPlaneLease(true)),
            (10 * US_PER_SEC, Task::ControlPlaneLease(false)),
            (8 * US_PER_MIN, Task::KcmSecretWatch),
            (5 * US_PER_MIN, Task::EsoRefresh),
            (30 * US_PER_MIN, Task::EsoLogin),
            (10 * US_PER_MIN, Task::CertManager),
            (5 * US_PER_MIN, Task::ArgoWatch),
            (3 * US_PER_MIN, Task::ArgoRepoCreds),
            (30 * US_PER_SEC, Task::Prometheus),
            (15 * US_PER_SEC, Task::Health(0)),
            (30 * US_PER_SEC, Task::Health(1)),
            (60 * US_PER_SEC, Task::Health(2)),
            (30 * US_PER_SEC, Task::VaultHealth),
            (US_PER_MIN, Task::KubeletEvents),
            (10 * US_PER_MIN, Task::NotFound),
        ];
        for (period, task) in fixed {
            let t = stagger(self, period);
            self.out.schedule(t, task);
        }
        if let Some(every) = self.cfg.live_attack_every_us {
            self.out
                .schedule(now + (every / 2).min(60 * US_PER_SEC), Task::LiveAttack);
        }
    }

    // ------------------------------------------------------------ day plan

    pub(crate) fn plan_day(&mut self, day: i64, now: i64) {
        let t0 = day * US_PER_DAY;
        self.out.schedule(t0 + US_PER_DAY, Task::Day(day + 1));
        let workday = weekday(day) < 5;
        let n_w = self.org.workloads.len();
        self.deployed_today = vec![false; n_w];

        // rollouts: a few workloads per working day, inside the deploy window
        if workday {
            let (h0, h1) = self.cfg.deploy_window;
            let mean = (n_w as f64 * 0.1).max(0.5);
            let n = poisson_count(&mut self.plan_rng, mean).min(n_w);
            let mut chosen = Vec::new();
            while chosen.len() < n {
                let w = self.plan_rng.random_range(0..n_w);
                if !chosen.contains(&w) {
                    chosen.push(w);
                }
            }
            for w in chosen {
                let span = ((h1 - h0) as i64 * US_PER_HOUR - 10 * US_PER_MIN).max(US_PER_MIN);
                let t = t0
                    + h0 as i64 * US_PER_HOUR
                    + (self.plan_rng.random::<f64>() * span as f64) as i64;
                let ci = self.plan_rng.random::<f64>() < 0.3;
                self.deployed_today[w] = true;
                if t >= now {
                    self.out.schedule(t, Task::Deploy { w, ci });
                }
            }
        }

        // human sessions: office hours on weekdays, some on-call evenings and weekends
        for h in 0..self.org.humans.len() {
            let on_call = self.org.humans[h].on_call;
            let mut sessions = Vec::new();
            if workday && self.plan_rng.random::<f64>() < 0.9 {
                let start = t0
                    + 8 * US_PER_HOUR
                    + (self.plan_rng.random::<f64>() * 2.0 * US_PER_HOUR as f64) as i64;
                let end = t0
                    + 16 * US_PER_HOUR
                    + (self.plan_rng.random::<f64>() * 2.5 * US_PER_HOUR as f64) as i64;
                sessions.push((start, end));
            }
            let extra = if workday { 0.25 } else { 0.15 };
            if on_call && self.plan_rng.random::<f64>() < extra {
                let base = if workday { 19.0 } else { 11.0 };
                let start =
                    t0 + ((base + self.plan_rng.random::<f64>() * 3.0) * US_PER_HOUR as f64) as i64;
                let len = (20.0 + self.plan_rng.random::<f64>() * 40.0) as i64 * US_PER_MIN;
                sessions.push((start, start + len));
            }
            for (start, end) in sessions {
                if end > now {
                    self.out
                        .schedule(start.max(now), Task::HumanStart { h, end });
                }
            }
        }

        self.plan_attacks(day, now);
    }

    // ------------------------------------------------------------ workloads

    pub(crate) fn vault_read(&mut self, i: usize, now: i64) {
        let w = &self.org.workloads[i];
        let r = self.rng.random_range(0..w.pods.len());
        let p = self.rng.random_range(0..w.vault_paths.len());
        let path = w.vault_paths[p].clone();
        // an occasional list of the service's own folder (templating, discovery)
        let list = self.rng.random::<f64>() < 0.03;
        let mut q = if list {
            let dir = path.replacen("secret/data/", "secret/metadata/", 1);
            let dir = dir[..dir.rfind('/').unwrap_or(dir.len()) + 1].to_string();
            let mut q = VaultReq::new(now, Some(&w.tokens[r]), "list", dir, &w.pods[r].ip);
            q.list_keys = Some(
                w.vault_paths
                    .iter()
                    .map(|p| p.rsplit('/').next().unwrap_or("").to_string())
                    .collect(),
            );
            q
        } else {
            let mut q = VaultReq::new(now, Some(&w.tokens[r]), "read", path.clone(), &w.pods[r].ip);
            q.kv_keys = Some(kv_fields(&path));
            q
        };
        q.user_agent = Some(w.ua_vault);
        q.remote_port = port(&mut self.rng);
        q.latency_us = self.rng.random_range(300..2_500);
        let rate = w.vault_peak_per_hour * activity(now);
        self.out.vault(q);
        let next = self.poisson(now, rate);
        self.out.schedule(next, Task::VaultRead(i));
    }

    pub(crate) fn vault_renew(&mut self, i: usize, now: i64) {
        let w = &self.org.workloads[i];
        // each pod renews its token every ~30 min; one task walks the replicas
        let r = self.rng.random_range(0..w.pods.len());
        let mut q = VaultReq::new(
            now,
            Some(&w.tokens[r]),
            "update",
            "auth/token/renew-self".into(),
            &w.pods[r].ip,
        );
        q.user_agent = Some(w.ua_vault);
        q.remote_port = port(&mut self.rng);
        q.latency_us = self.rng.random_range(500..3_000);
        let period = 30 * US_PER_MIN / w.pods.len() as i64;
        self.out.vault(q);
        let next = self.every(now, period, 0.2);
        self.out.schedule(next, Task::VaultRenew(i));
    }

    pub(crate) fn vault_leases(&mut self, i: usize, now: i64) {
        let w = &self.org.workloads[i];
        let r = self.rng.random_range(0..w.pods.len());
        let mut q = VaultReq::new(
            now,
            Some(&w.tokens[r]),
            "update",
            "sys/leases/renew".into(),
            &w.pods[r].ip,
        );
        q.request_keys = &["lease_id"];
        q.user_agent = Some(w.ua_vault);
        q.remote_port = port(&mut self.rng);
        self.out.vault(q);
        let next = self.every(now, 4 * US_PER_HOUR, 0.25);
        self.out.schedule(next, Task::VaultLeases(i));
    }

    pub(crate) fn secret_poll(&mut self, i: usize, now: i64) {
        let w = &self.org.workloads[i];
        let r = self.rng.random_range(0..w.pods.len());
        let s = &w.secrets[0];
        let reason = w.rbac_reason();
        let req = K8sReq::new(
            "get",
            w.pod_user(r),
            &w.pods[r].ip,
            &w.ua_k8s,
            Some(ObjRef::core("secrets", Some(&w.ns), Some(s))),
            now,
        )
        .latency(self.rng.random_range(800..4_000))
        .reason(reason);
        let period = (w.secret_poll_min.unwrap_or(10.0) * US_PER_MIN as f64) as i64;
        self.out.k8s(&req);
        let next = self.every(now, period, 0.1);
        self.out.schedule(next, Task::SecretPoll(i));
    }

    pub(crate) fn configmap_watch(&mut self, i: usize, now: i64) {
        let dur = self.every(now, 8 * US_PER_MIN, 0.25) - now;
        let w = &self.org.workloads[i];
        let r = self.rng.random_range(0..w.pods.len());
        let req = K8sReq::new(
            "watch",
            w.pod_user(r),
            &w.pods[r].ip,
            &w.ua_k8s,
            Some(ObjRef::core("configmaps", Some(&w.ns), None)),
            now,
        )
        .uri(format!(
            "/api/v1/namespaces/{}/configmaps?allowWatchBookmarks=true&fieldSelector=metadata.name%3D{}-config&resourceVersion=0&timeoutSeconds={}&watch=true",
            w.ns,
            w.svc,
            dur / US_PER_SEC
        ))
        .latency(dur)
        .reason(w.rbac_reason());
        self.out.k8s(&req);
        self.out.schedule(now + dur, Task::ConfigMapWatch(i));
    }

    pub(crate) fn leader_lease(&mut self, i: usize, now: i64) {
        let w = &self.org.workloads[i];
        let req = K8sReq::new(
            "update",
            w.pod_user(0),
            &w.pods[0].ip,
            &w.ua_k8s,
            Some(ObjRef::group(
                "coordination.k8s.io",
                "leases",
                Some(&w.ns),
                Some(&format!("{}-leader", w.svc)),
            )),
            now,
        )
        .latency(self.rng.random_range(1_000..5_000))
        .reason(w.rbac_reason());
        self.out.k8s(&req);
        let next = self.every(now, 20 * US_PER_SEC, 0.05);
        self.out.schedule(next, Task::LeaderLease(i));
    }

    /// Benign denied noise: the same forbidden call at a low steady rate.
    pub(crate) fn misconfig(&mut self, i: usize, now: i64) {
        let w = &self.org.workloads[i];
        let r = self.rng.random_range(0..w.pods.len());
        match w.misconfigured {
            Some(Misconfig::K8sListPods) => {
                let req = K8sReq::new(
                    "list",
                    w.pod_user(r),
                    &w.pods[r].ip,
                    &w.ua_k8s,
                    Some(ObjRef::core("pods", Some(&w.ns), None)),
                    now,
                )
                .code(403)
                .latency(self.rng.random_range(500..2_000));
                self.out.k8s(&req);
            }
            Some(Misconfig::VaultStalePath) => {
                let path = format!("secret/data/{}/shared/legacy-config", w.ns);
                let mut q = VaultReq::new(now, Some(&w.tokens[r]), "read", path, &w.pods[r].ip);
                q.denied = true;
                q.user_agent = Some(w.ua_vault);
                q.remote_port = port(&mut self.rng);
                self.out.vault(q);
            }
            None => return,
        }
        let next = self.poisson(now, 3.0);
        self.out.schedule(next, Task::Misconfig(i));
    }

    // ------------------------------------------------------------ nodes

    pub(crate) fn node_lease(&mut self, n: usize, now: i64) {
        let node = &self.org.nodes[n];
        let req = K8sReq::new(
            "update",
            &node.user,
            &node.ip,
            KUBELET_UA,
            Some(ObjRef::group(
                "coordination.k8s.io",
                "leases",
                Some("kube-node-lease"),
                Some(&node.name),
            )),
            now,
        )
        .latency(self.rng.random_range(1_000..4_000));
        self.out.k8s(&req);
        let next = self.every(now, 10 * US_PER_SEC, 0.02);
        self.out.schedule(next, Task::NodeLease(n));
    }

    pub(crate) fn node_status(&mut self, n: usize, now: i64) {
        let node = &self.org.nodes[n];
        let req = K8sReq::new(
            "patch",
            &node.user,
            &node.ip,
            KUBELET_UA,
            Some(ObjRef::core("nodes", None, Some(&node.name)).sub("status")),
            now,
        )
        .latency(self.rng.random_range(2_000..8_000));
        self.out.k8s(&req);
        let next = self.every(now, 60 * US_PER_SEC, 0.05);
        self.out.schedule(next, Task::NodeStatus(n));
    }

    /// The kubelet re-establishes its watch on a secret mounted by a pod on the node.
    pub(crate) fn node_secret_watch(&mut self, n: usize, now: i64) {
        let mounted: Vec<(usize, usize)> = self
            .org
            .workloads
            .iter()
            .enumerate()
            .flat_map(|(wi, w)| {
                let on_node = w.pods.iter().filter(|p| p.node == n).count();
                (0..w.secrets.len() * on_node.min(1)).map(move |s| (wi, s))
            })
            .collect();
        let rate = mounted.len().max(1) as f64 / 2.0; // each mount every ~2 h
        if !mounted.is_empty() {
            let (wi, s) = mounted[self.rng.random_range(0..mounted.len())];
            let w = &self.org.workloads[wi];
            let node = &self.org.nodes[n];
            let dur = self.rng.random_range(5 * US_PER_MIN..10 * US_PER_MIN);
            let req = K8sReq::new(
                "watch",
                &node.user,
                &node.ip,
                KUBELET_UA,
                Some(ObjRef::core("secrets", Some(&w.ns), None)),
                now,
            )
            .uri(format!(
                "/api/v1/namespaces/{}/secrets?allowWatchBookmarks=true&fieldSelector=metadata.name%3D{}&resourceVersion=0&timeoutSeconds={}&watch=true",
                w.ns,
                w.secrets[s],
                dur / US_PER_SEC
            ))
            .latency(dur);
            self.out.k8s(&req);
        }
        let next = self.poisson(now, rate);
        self.out.schedule(next, Task::NodeSecretWatch(n));
    }

    // ------------------------------------------------------------ control plane, controllers

    pub(crate) fn control_plane_lease(&mut self, kcm: bool, now: i64) {
        let c = if kcm {
            &self.org.kcm
        } else {
            &self.org.scheduler
        };
        let name = if kcm {
            "kube-controller-manager"
        } else {
            "kube-scheduler"
        };
        let req = K8sReq::new(
            "update",
            &c.user,
            &c.ip,
            &c.ua,
            Some(ObjRef::group(
                "coordination.k8s.io",
                "leases",
                Some("kube-system"),
                Some(name),
            )),
            now,
        )
        .latency(self.rng.random_range(1_000..3_000))
        .reason(format!("RBAC: allowed by ClusterRoleBinding \"system:{name}\" of ClusterRole \"system:{name}\" to User \"system:{name}\""));
        self.out.k8s(&req);
        let next = self.every(now, 10 * US_PER_SEC, 0.02);
        self.out.schedule(next, Task::ControlPlaneLease(kcm));
    }

    pub(crate) fn kcm_secret_watch(&mut self, now: i64) {
        let c = &self.org.kcm;
        let dur = self.rng.random_range(5 * US_PER_MIN..10 * US_PER_MIN);
        let relist = self.rng.random::<f64>() < 0.05;
        let reason = "RBAC: allowed by ClusterRoleBinding \"system:kube-controller-manager\" of ClusterRole \"system:kube-controller-manager\" to User \"system:kube-controller-manager\"".to_string();
        if relist {
            let req = K8sReq::new(
                "list",
                &c.user,
                &c.ip,
                &c.ua,
                Some(ObjRef::core("secrets", None, None)),
                now,
            )
            .latency(self.rng.random_range(20_000..120_000))
            .reason(reason.clone());
            self.out.k8s(&req);
        }
        let req = K8sReq::new("watch", &c.user, &c.ip, &c.ua, Some(ObjRef::core("secrets", None, None)), now + 150_000)
            .uri(format!(
                "/api/v1/secrets?allowWatchBookmarks=true&resourceVersion=0&timeout={}m0s&timeoutSeconds={}&watch=true",
                dur / US_PER_MIN,
                dur / US_PER_SEC
            ))
            .latency(dur)
            .reason(reason);
        self.out.k8s(&req);
        self.out.schedule(now + dur + 150_000, Task::KcmSecretWatch);
    }

    /// external-secrets refreshes one ExternalSecret: reads the Vault path, then the
    /// Kubernetes Secret it owns (and updates it when the value changed).
    pub(crate) fn eso_refresh(&mut self, now: i64) {
        let n_w = self.org.workloads.len();
        let wi = self.rng.random_range(0..n_w);
        let w = &self.org.workloads[wi];
        let c = &self.org.external_secrets;
        let reason = "RBAC: allowed by ClusterRoleBinding \"external-secrets-controller\" of ClusterRole \"external-secrets-controller\" to ServiceAccount \"external-secrets/external-secrets\"".to_string();
        let req = K8sReq::new(
            "get",
            &c.user,
            &c.ip,
            &c.ua,
            Some(ObjRef {
                api_version: "v1beta1",
                ..ObjRef::group(
                    "external-secrets.io",
                    "externalsecrets",
                    Some(&w.ns),
                    Some(&w.secrets[0]),
                )
            }),
            now,
        )
        .latency(self.rng.random_range(800..3_000))
        .reason(reason.clone());
        self.out.k8s(&req);
        let token = eso_token(&self.out.ids, now);
        let path = w.vault_paths[0].clone();
        let mut q = VaultReq::new(now + 5_000, Some(&token), "read", path.clone(), &c.ip);
        q.kv_keys = Some(kv_fields(&path));
        q.user_agent = Some("Go-http-client/1.1");
        q.remote_port = port(&mut self.rng);
        self.out.vault(q);
        let req = K8sReq::new(
            "get",
            &c.user,
            &c.ip,
            &c.ua,
            Some(ObjRef::core("secrets", Some(&w.ns), Some(&w.secrets[0]))),
            now + 12_000,
        )
        .latency(self.rng.random_range(800..3_000))
        .reason(reason.clone());
        self.out.k8s(&req);
        if self.rng.random::<f64>() < 0.03 {
            let req = K8sReq::new(
                "update",
                &c.user,
                &c.ip,
                &c.ua,
                Some(ObjRef::core("secrets", Some(&w.ns), Some(&w.secrets[0]))),
                now + 20_000,
            )
            .latency(self.rng.random_range(2_000..6_000))
            .reason(reason);
            self.out.k8s(&req);
        }
        let next = self.poisson(now, n_w as f64);
        self.out.schedule(next, Task::EsoRefresh);
    }

    /// external-secrets logs into Vault with its service account about once an hour.
    pub(crate) fn eso_login(&mut self, now: i64) {
        let c = &self.org.external_secrets;
        let token = eso_token(&self.out.ids, now);
        let mut q = VaultReq::new(now, None, "update", "auth/kubernetes/login".into(), &c.ip);
        q.issued = Some(&token);
        q.request_keys = &["jwt", "role"];
        q.user_agent = Some("Go-http-client/1.1");
        q.remote_port = port(&mut self.rng);
        q.latency_us = self.rng.random_range(5_000..25_000);
        self.out.vault(q);
        let next = self.every(now, US_PER_HOUR, 0.1);
        self.out.schedule(next, Task::EsoLogin);
    }

    pub(crate) fn cert_manager(&mut self, now: i64) {
        let c = &self.org.cert_manager;
        let reason = "RBAC: allowed by ClusterRoleBinding \"cert-manager-controller-certificates\" of ClusterRole \"cert-manager-controller-certificates\" to ServiceAccount \"cert-manager/cert-manager\"".to_string();
        // watch reconnect plus a get of one certificate's TLS secret (renewal check)
        let dur = self.rng.random_range(5 * US_PER_MIN..10 * US_PER_MIN);
        let req = K8sReq::new("watch", &c.user, &c.ip, &c.ua, Some(ObjRef::core("secrets", None, None)), now)
            .uri(format!(
                "/api/v1/secrets?allowWatchBookmarks=true&labelSelector=controller.cert-manager.io%2Ffao%3Dtrue&resourceVersion=0&timeoutSeconds={}&watch=true",
                dur / US_PER_SEC
            ))
            .latency(dur)
            .reason(reason.clone());
        self.out.k8s(&req);
        let tls: Vec<(usize, usize)> = self
            .org
            .workloads
            .iter()
            .enumerate()
            .flat_map(|(i, w)| {
                w.secrets
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.ends_with("-tls"))
                    .map(move |(j, _)| (i, j))
            })
            .collect();
        for _ in 0..2 {
            if tls.is_empty() {
                break;
            }
            let (i, j) = tls[self.rng.random_range(0..tls.len())];
            let w = &self.org.workloads[i];
            let req = K8sReq::new(
                "get",
                &c.user,
                &c.ip,
                &c.ua,
                Some(ObjRef::core("secrets", Some(&w.ns), Some(&w.secrets[j]))),
                now + ms(&mut self.rng, 10, 2_000),
            )
            .latency(self.rng.random_range(800..3_000))
            .reason(reason.clone());
            self.out.k8s(&req);
        }
        self.out.schedule(now + dur, Task::CertManager);
    }

    pub(crate) fn argo_watch(&mut self, now: i64) {
        let c = &self.org.argocd;
        let reason = "RBAC: allowed by ClusterRoleBinding \"argocd-application-controller\" of ClusterRole \"argocd-application-controller\" to ServiceAccount \"argocd-application-controller/argocd\"".to_string();
        let k = self.rng.random_range(0..4u32);
        let obj = match k {
            0 => ObjRef::core("secrets", None, None),
            1 => ObjRef::group("apps", "deployments", None, None),
            2 => ObjRef::core("pods", None, None),
            _ => ObjRef::core("configmaps", None, None),
        };
        let dur = self.rng.random_range(5 * US_PER_MIN..10 * US_PER_MIN);
        let uri = format!(
            "{}?allowWatchBookmarks=true&resourceVersion=0&timeoutSeconds={}&watch=true",
            obj.path(),
            dur / US_PER_SEC
        );
        let req = K8sReq::new("watch", &c.user, &c.ip, &c.ua, Some(obj), now)
            .uri(uri)
            .latency(dur)
            .reason(reason);
        self.out.k8s(&req);
        let next = self.every(now, 150 * US_PER_SEC, 0.3);
        self.out.schedule(next, Task::ArgoWatch);
    }

    pub(crate) fn argo_repo_creds(&mut self, now: i64) {
        let c = &self.org.argocd;
        let reason = "RBAC: allowed by RoleBinding \"argocd-application-controller/argocd\" of Role \"argocd-application-controller\" to ServiceAccount \"argocd-application-controller/argocd\"".to_string();
        let req = K8sReq::new(
            "list",
            &c.user,
            &c.ip,
            &c.ua,
            Some(ObjRef::core("secrets", Some("argocd"), None)),
            now,
        )
        .uri("/api/v1/namespaces/argocd/secrets?labelSelector=argocd.argoproj.io%2Fsecret-type%3Drepository".into())
        .latency(self.rng.random_range(2_000..8_000))
        .reason(reason);
        self.out.k8s(&req);
        let next = self.every(now, 3 * US_PER_MIN, 0.1);
        self.out.schedule(next, Task::ArgoRepoCreds);
    }

    pub(crate) fn prometheus(&mut self, now: i64) {
        let c = &self.org.prometheus;
        let reason = "RBAC: allowed by ClusterRoleBinding \"prometheus\" of ClusterRole \"prometheus\" to ServiceAccount \"prometheus/monitoring\"".to_string();
        let req = K8sReq::new("get", &c.user, &c.ip, &c.ua, None, now)
            .uri("/metrics".into())
            .latency(self.rng.random_range(20_000..90_000))
            .reason(reason.clone());
        self.out.k8s(&req);
        if self.rng.random::<f64>() < 0.03 {
            let obj = if self.rng.random::<bool>() {
                ObjRef::core("pods", None, None)
            } else {
                ObjRef::core("endpoints", None, None)
            };
            let dur = self.rng.random_range(5 * US_PER_MIN..10 * US_PER_MIN);
            let uri = format!(
                "{}?allowWatchBookmarks=true&resourceVersion=0&timeoutSeconds={}&watch=true",
                obj.path(),
                dur / US_PER_SEC
            );
            let req = K8sReq::new("watch", &c.user, &c.ip, &c.ua, Some(obj), now + 1_000)
                .uri(uri)
                .latency(dur)
                .reason(reason);
            self.out.k8s(&req);
        }
        let next = self.every(now, 30 * US_PER_SEC, 0.01);
        self.out.schedule(next, Task::Prometheus);
    }

    pub(crate) fn health(&mut self, k: u8, now: i64) {
        let (path, period) = match k {
            0 => ("/readyz", 15 * US_PER_SEC),
            1 => ("/livez", 30 * US_PER_SEC),
            _ => ("/healthz", 60 * US_PER_SEC),
        };
        let reason = "RBAC: allowed by ClusterRoleBinding \"system:public-info-viewer\" of ClusterRole \"system:public-info-viewer\" to Group \"system:unauthenticated\"".to_string();
        let ua = if k == 0 {
            "ELB-HealthChecker/2.0"
        } else {
            "kube-probe/1.30"
        };
        let req = K8sReq::new("get", &self.org.anonymous, &self.org.lb_ip, ua, None, now)
            .uri(path.into())
            .latency(self.rng.random_range(300..1_500))
            .reason(reason);
        self.out.k8s(&req);
        let next = self.every(now, period, 0.01);
        self.out.schedule(next, Task::Health(k));
    }

    pub(crate) fn vault_health(&mut self, now: i64) {
        let mut q = VaultReq::new(now, None, "read", "sys/health".into(), &self.org.lb_ip);
        q.user_agent = Some("ELB-HealthChecker/2.0");
        q.remote_port = port(&mut self.rng);
        q.latency_us = self.rng.random_range(100..600);
        self.out.vault(q);
        let next = self.every(now, 30 * US_PER_SEC, 0.01);
        self.out.schedule(next, Task::VaultHealth);
    }

    /// Kubelets post events (probe failures, image pulls) at a low steady rate.
    pub(crate) fn kubelet_events(&mut self, now: i64) {
        let wi = self.rng.random_range(0..self.org.workloads.len());
        let w = &self.org.workloads[wi];
        let pod = &w.pods[self.rng.random_range(0..w.pods.len())];
        let node = &self.org.nodes[pod.node];
        let req = K8sReq::new(
            "create",
            &node.user,
            &node.ip,
            KUBELET_UA,
            Some(ObjRef::core("events", Some(&w.ns), None)),
            now,
        )
        .code(201)
        .latency(self.rng.random_range(1_000..5_000));
        self.out.k8s(&req);
        let next = self.poisson(now, 60.0 * activity(now).max(0.5));
        self.out.schedule(next, Task::KubeletEvents);
    }

    /// Benign 404s: optional config maps looked up by workloads.
    pub(crate) fn not_found(&mut self, now: i64) {
        let wi = self.rng.random_range(0..self.org.workloads.len());
        let w = &self.org.workloads[wi];
        let r = self.rng.random_range(0..w.pods.len());
        let req = K8sReq::new(
            "get",
            w.pod_user(r),
            &w.pods[r].ip,
            &w.ua_k8s,
            Some(ObjRef::core(
                "configmaps",
                Some(&w.ns),
                Some(&format!("{}-overrides", w.svc)),
            )),
            now,
        )
        .code(404)
        .latency(self.rng.random_range(600..2_000))
        .reason(w.rbac_reason());
        self.out.k8s(&req);
        let next = self.poisson(now, 6.0);
        self.out.schedule(next, Task::NotFound);
    }

    // ------------------------------------------------------------ humans

    pub(crate) fn human_start(&mut self, h: usize, end: i64, now: i64) {
        self.human_login(h, now, None);
        let rate = self.org.humans[h].commands_per_hour;
        let t = now + exp_gap(&mut self.rng, rate * self.cfg.scale).min(10 * US_PER_MIN);
        self.out.schedule(t, Task::HumanCmd { h, end });
        let t = now + (self.rng.random::<f64>() * (end - now) as f64 * 0.5) as i64;
        self.out
            .schedule(t.max(now + US_PER_SEC), Task::HumanVault { h, end });
    }

    /// A Vault login (userpass or OIDC); returns the request id. `ip` overrides the office.
    pub(crate) fn human_login(&mut self, h: usize, now: i64, ip: Option<&str>) -> String {
        let hu = &mut self.org.humans[h];
        hu.vault_auth.token = self
            .out
            .ids
            .uuid(&format!("human-token/{}/{now}", hu.login));
        hu.vault_auth.issue_us = now;
        let hu = &self.org.humans[h];
        let (op, path, keys): (&'static str, String, &'static [&'static str]) =
            match hu.vault_method {
                VaultMethod::Userpass => (
                    "update",
                    format!("auth/userpass/login/{}", hu.login),
                    &["password"],
                ),
                VaultMethod::Oidc => ("read", "auth/oidc/oidc/callback".into(), &["code", "state"]),
            };
        let mut q = VaultReq::new(now, None, op, path, ip.unwrap_or(&hu.ip));
        q.issued = Some(&hu.vault_auth);
        q.request_keys = keys;
        q.user_agent = Some(VAULT_CLI_UA);
        q.remote_port = port(&mut self.rng);
        q.latency_us = self.rng.random_range(20_000..200_000);
        self.out.vault(q)
    }

    pub(crate) fn human_cmd(&mut self, h: usize, end: i64, now: i64) {
        let hu = &self.org.humans[h];
        let ns = hu.team.clone();
        let team: Vec<usize> = (0..self.org.workloads.len())
            .filter(|&i| self.org.workloads[i].ns == ns)
            .collect();
        let wi = team[self.rng.random_range(0..team.len())];
        let w = &self.org.workloads[wi];
        let pod = w.pods[self.rng.random_range(0..w.pods.len())].name.clone();
        let reason = format!(
            "RBAC: allowed by RoleBinding \"{ns}-developers/{ns}\" of ClusterRole \"edit\" to Group \"oidc:{}-team\"",
            hu.user.groups[0]
                .trim_start_matches("oidc:")
                .trim_end_matches("-team")
        );
        let u = &hu.user;
        let ip = hu.ip.as_str();
        let lat = |s: &mut super::sim::Rng| s.random_range(2_000..40_000);
        let roll = self.rng.random::<f64>();
        let mut reqs: Vec<K8sReq<'_>> = Vec::new();
        if roll < 0.35 {
            reqs.push(K8sReq::new(
                "list",
                u,
                ip,
                KUBECTL_UA,
                Some(ObjRef::core("pods", Some(&ns), None)),
                now,
            ));
        } else if roll < 0.55 {
            let mut o = ObjRef::core("pods", Some(&ns), Some(&pod));
            o.subresource = Some("log");
            reqs.push(K8sReq::new("get", u, ip, KUBECTL_UA, Some(o), now));
        } else if roll < 0.70 {
            reqs.push(K8sReq::new(
                "get",
                u,
                ip,
                KUBECTL_UA,
                Some(ObjRef::core("pods", Some(&ns), Some(&pod))),
                now,
            ));
            reqs.push(K8sReq::new(
                "list",
                u,
                ip,
                KUBECTL_UA,
                Some(ObjRef::core("events", Some(&ns), None)),
                now + 60_000,
            ));
        } else if roll < 0.82 {
            reqs.push(K8sReq::new(
                "list",
                u,
                ip,
                KUBECTL_UA,
                Some(ObjRef::group("apps", "deployments", Some(&ns), None)),
                now,
            ));
        } else if roll < 0.87 {
            reqs.push(K8sReq::new(
                "get",
                u,
                ip,
                KUBECTL_UA,
                Some(ObjRef::group(
                    "apps",
                    "deployments",
                    Some(&ns),
                    Some(&w.svc),
                )),
                now,
            ));
        } else if roll < 0.91 {
            // occasionally one of the few team secrets this person usually looks at
            let (sns, s) = &hu.usual_secrets[self.rng.random_range(0..hu.usual_secrets.len())];
            reqs.push(K8sReq::new(
                "get",
                u,
                ip,
                KUBECTL_UA,
                Some(ObjRef::core("secrets", Some(sns), Some(s))),
                now,
            ));
        } else if roll < 0.92 {
            let mut o = ObjRef::core("pods", Some(&ns), Some(&pod));
            o.subresource = Some("exec");
            let dur = self.rng.random_range(20 * US_PER_SEC..5 * US_PER_MIN);
            let uri = format!(
                "{}?command=sh&container={}&stdin=true&stdout=true&tty=true",
                o.path(),
                w.svc
            );
            reqs.push(
                K8sReq::new("create", u, ip, KUBECTL_UA, Some(o), now)
                    .code(101)
                    .uri(uri)
                    .latency(dur),
            );
        } else if roll < 0.98 {
            reqs.push(K8sReq::new(
                "list",
                u,
                ip,
                KUBECTL_UA,
                Some(ObjRef::core("nodes", None, None)),
                now,
            ));
        } else {
            // a look into another team's namespace: view is allowed, exec would not be
            let other = &self.org.namespaces[self.rng.random_range(0..self.org.namespaces.len())];
            reqs.push(K8sReq::new(
                "list",
                u,
                ip,
                KUBECTL_UA,
                Some(ObjRef::core("pods", Some(other), None)),
                now,
            ));
        }
        for mut r in reqs {
            if r.latency_us == 2_000 {
                r.latency_us = lat(&mut self.rng);
            }
            r.allow_reason = Some(reason.clone());
            self.out.k8s(&r);
        }
        let rate = self.org.humans[h].commands_per_hour;
        let next = self.poisson(now, rate);
        if next < end {
            self.out.schedule(next, Task::HumanCmd { h, end });
        }
    }

    /// A few KV reads of the team's paths during a session.
    pub(crate) fn human_vault(&mut self, h: usize, end: i64, now: i64) {
        let hu = &self.org.humans[h];
        let n = self.rng.random_range(1..=3usize);
        let mut t = now;
        for _ in 0..n {
            // the few paths this person usually reads
            let path = hu.usual_paths[self.rng.random_range(0..hu.usual_paths.len())].clone();
            let mut q = VaultReq::new(t, Some(&hu.vault_auth), "read", path.clone(), &hu.ip);
            q.kv_keys = Some(kv_fields(&path));
            q.user_agent = Some(VAULT_CLI_UA);
            q.remote_port = port(&mut self.rng);
            self.out.vault(q);
            t += self.rng.random_range(5 * US_PER_SEC..60 * US_PER_SEC);
        }
        let next = self.poisson(now, 0.8);
        if next < end {
            self.out.schedule(next, Task::HumanVault { h, end });
        }
    }

    // ------------------------------------------------------------ rollouts

    /// A rollout: the CD identity patches the deployment, controllers replace the pods,
    /// kubelets fetch the pods' secrets, and each new pod reads its secrets and logs into
    /// Vault (the read burst a baseline should learn to expect after rollouts).
    pub(crate) fn deploy(&mut self, wi: usize, ci: bool, now: i64) {
        let old: Vec<(String, usize)> = self.org.workloads[wi]
            .pods
            .iter()
            .map(|p| (p.name.clone(), p.node))
            .collect();
        {
            let Sim { org, rng, out, .. } = self;
            respawn_pods(&out.ids, &mut org.workloads[wi], &mut org.nodes, rng, now);
        }
        let org = &self.org;
        let w = &org.workloads[wi];
        let cd = if ci { &org.ci } else { &org.argocd };
        let ns = w.ns.as_str();
        let image = format!(
            "registry.example.com/{ns}/{}:{}",
            w.svc,
            self.out
                .ids
                .hex(&format!("img/{}/{}", w.svc, w.generation), 12)
        );
        let patch = format!(
            "{{\"spec\":{{\"template\":{{\"spec\":{{\"containers\":[{{\"name\":\"{}\",\"image\":\"{image}\"}}]}}}}}}}}",
            w.svc
        );
        let cd_reason = if ci {
            format!(
                "RBAC: allowed by RoleBinding \"ci-deployers/{ns}\" of ClusterRole \"edit\" to Group \"ci:deployers\""
            )
        } else {
            "RBAC: allowed by ClusterRoleBinding \"argocd-application-controller\" of ClusterRole \"argocd-application-controller\" to ServiceAccount \"argocd-application-controller/argocd\"".into()
        };
        let dep = ObjRef::group("apps", "deployments", Some(ns), Some(&w.svc));
        let mut t = now;
        if ci {
            let r = K8sReq::new("get", &cd.user, &cd.ip, &cd.ua, Some(dep.clone()), t)
                .latency(self.rng.random_range(2_000..9_000))
                .reason(cd_reason.clone());
            self.out.k8s(&r);
            t += ms(&mut self.rng, 200, 900);
        }
        let field_manager = if ci {
            "kubectl-client-side-apply"
        } else {
            "argocd-controller"
        };
        let r = K8sReq::new("patch", &cd.user, &cd.ip, &cd.ua, Some(dep.clone()), t)
            .uri(format!("{}?fieldManager={field_manager}", dep.path()))
            .request_body("Request", patch)
            .latency(self.rng.random_range(5_000..20_000))
            .reason(cd_reason);
        self.out.k8s(&r);

        let dc = &org.deploy_controller;
        let dc_reason = "RBAC: allowed by ClusterRoleBinding \"system:controller:deployment-controller\" of ClusterRole \"system:controller:deployment-controller\" to ServiceAccount \"deployment-controller/kube-system\"".to_string();
        let rs_name = w.pods[0]
            .name
            .rsplit_once('-')
            .map_or(w.svc.as_str(), |(rs, _)| rs)
            .to_string();
        let r = K8sReq::new(
            "create",
            &dc.user,
            &dc.ip,
            &dc.ua,
            Some(ObjRef::group("apps", "replicasets", Some(ns), None)),
            t + 40_000,
        )
        .code(201)
        .latency(self.rng.random_range(3_000..9_000))
        .reason(dc_reason.clone());
        self.out.k8s(&r);
        let r = K8sReq::new(
            "update",
            &dc.user,
            &dc.ip,
            &dc.ua,
            Some(ObjRef::group("apps", "deployments", Some(ns), Some(&w.svc)).sub("status")),
            t + 60_000,
        )
        .latency(self.rng.random_range(3_000..9_000))
        .reason(dc_reason.clone());
        self.out.k8s(&r);

        let rc = &org.rs_controller;
        let rc_reason = "RBAC: allowed by ClusterRoleBinding \"system:controller:replicaset-controller\" of ClusterRole \"system:controller:replicaset-controller\" to ServiceAccount \"replicaset-controller/kube-system\"".to_string();
        let sched = &org.scheduler;
        let volumes: Vec<String> = w
            .secrets
            .iter()
            .map(|s| {
                format!(
                    "{{\"name\":\"{s}\",\"secret\":{{\"secretName\":\"{s}\",\"defaultMode\":420}}}}"
                )
            })
            .collect();
        let pod_spec = format!(
            "{{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{{\"generateName\":\"{rs_name}-\",\"namespace\":\"{ns}\",\"labels\":{{\"app\":\"{svc}\"}},\"ownerReferences\":[{{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":\"{rs_name}\",\"controller\":true,\"blockOwnerDeletion\":true}}]}},\"spec\":{{\"volumes\":[{vols}],\"containers\":[{{\"name\":\"{svc}\",\"image\":\"{image}\",\"resources\":{{\"limits\":{{\"memory\":\"512Mi\"}},\"requests\":{{\"cpu\":\"100m\",\"memory\":\"256Mi\"}}}},\"securityContext\":{{\"allowPrivilegeEscalation\":false,\"runAsNonRoot\":true}}}}],\"restartPolicy\":\"Always\",\"serviceAccountName\":\"{svc}\",\"securityContext\":{{\"seccompProfile\":{{\"type\":\"RuntimeDefault\"}}}}}},\"status\":{{}}}}",
            svc = w.svc,
            vols = volumes.join(",")
        );
        for (r_i, pod) in w.pods.iter().enumerate() {
            let tp = t + 200_000 + r_i as i64 * 30_000;
            let r = K8sReq::new(
                "create",
                &rc.user,
                &rc.ip,
                &rc.ua,
                Some(ObjRef::core("pods", Some(ns), None)),
                tp,
            )
            .code(201)
            .request_body("Request", pod_spec.clone())
            .latency(self.rng.random_range(5_000..15_000))
            .reason(rc_reason.clone());
            self.out.k8s(&r);
            let r = K8sReq::new(
                "create",
                &sched.user,
                &sched.ip,
                &sched.ua,
                Some(ObjRef::core("pods", Some(ns), Some(&pod.name)).sub("binding")),
                tp + 300_000,
            )
            .code(201)
            .latency(self.rng.random_range(2_000..6_000));
            self.out.k8s(&r);
            // the kubelet fetches what the pod mounts
            let node = &org.nodes[pod.node];
            let mut tn = tp + ms(&mut self.rng, 1_200, 3_000);
            for s in &w.secrets {
                let r = K8sReq::new(
                    "get",
                    &node.user,
                    &node.ip,
                    KUBELET_UA,
                    Some(ObjRef::core("secrets", Some(ns), Some(s))),
                    tn,
                )
                .latency(self.rng.random_range(1_000..4_000));
                self.out.k8s(&r);
                tn += ms(&mut self.rng, 5, 80);
            }
            let r = K8sReq::new(
                "create",
                &node.user,
                &node.ip,
                KUBELET_UA,
                Some(ObjRef::core("events", Some(ns), None)),
                tn + 500_000,
            )
            .code(201)
            .latency(self.rng.random_range(1_000..4_000));
            self.out.k8s(&r);
            // the container starts: reads its secrets, logs into Vault, reads its paths
            let start = tp + self.rng.random_range(6 * US_PER_SEC..20 * US_PER_SEC);
            let mut ts = start;
            for s in &w.secrets {
                let r = K8sReq::new(
                    "get",
                    w.pod_user(r_i),
                    &pod.ip,
                    &w.ua_k8s,
                    Some(ObjRef::core("secrets", Some(ns), Some(s))),
                    ts,
                )
                .latency(self.rng.random_range(1_000..4_000))
                .reason(w.rbac_reason());
                self.out.k8s(&r);
                ts += ms(&mut self.rng, 10, 300);
            }
            ts += ms(&mut self.rng, 200, 2_000);
            login_and_reads(w, &mut self.out, &mut self.rng, r_i, ts, None, None);
        }
        for (i, (name, _node)) in old.iter().enumerate() {
            let td = t
                + self.rng.random_range(25 * US_PER_SEC..60 * US_PER_SEC)
                + i as i64 * 2 * US_PER_SEC;
            let r = K8sReq::new(
                "delete",
                &rc.user,
                &rc.ip,
                &rc.ua,
                Some(ObjRef::core("pods", Some(ns), Some(name))),
                td,
            )
            .latency(self.rng.random_range(5_000..15_000))
            .reason(rc_reason.clone());
            self.out.k8s(&r);
        }
    }
}

/// A pod's Vault login followed by a read of each of its paths; returns the request ids.
/// `ip`/`ua` override the pod's address and client (attacks).
pub(crate) fn login_and_reads(
    w: &Workload,
    out: &mut Out,
    rng: &mut Rng,
    replica: usize,
    at: i64,
    ip: Option<&str>,
    ua: Option<&'static str>,
) -> Vec<String> {
    let replica = replica.min(w.pods.len() - 1);
    let ip = ip.unwrap_or(&w.pods[replica].ip);
    let ua = ua.unwrap_or(w.ua_vault);
    let mut token: VaultAuth = w.tokens[replica].clone();
    if ip != w.pods[replica].ip {
        token.token = out.ids.uuid(&format!("token/{}/{at}", w.svc));
    }
    token.issue_us = at;
    let mut ids = Vec::new();
    let mut q = VaultReq::new(at, None, "update", "auth/kubernetes/login".into(), ip);
    q.issued = Some(&token);
    q.request_keys = &["jwt", "role"];
    q.user_agent = Some(ua);
    q.remote_port = port(rng);
    q.latency_us = rng.random_range(5_000..40_000);
    let mut t = at + q.latency_us + ms(rng, 5, 200);
    ids.push(out.vault(q));
    for path in &w.vault_paths {
        let mut q = VaultReq::new(t, Some(&token), "read", path.clone(), ip);
        q.kv_keys = Some(kv_fields(path));
        q.user_agent = Some(ua);
        q.remote_port = port(rng);
        q.latency_us = rng.random_range(300..2_500);
        ids.push(out.vault(q));
        t += ms(rng, 5, 150);
    }
    ids
}

/// The external-secrets token of the current hour.
fn eso_token(ids: &super::format::Ids, now: i64) -> VaultAuth {
    let hour = now.div_euclid(US_PER_HOUR);
    VaultAuth {
        token: ids.uuid(&format!("eso-token/{hour}")),
        display_name: "kubernetes-external-secrets-external-secrets".into(),
        policies: vec!["default".into(), "external-secrets-reader".into()],
        metadata: vec![
            ("role", "external-secrets".into()),
            ("service_account_name", "external-secrets".into()),
            ("service_account_namespace", "external-secrets".into()),
            ("service_account_secret_name", String::new()),
            (
                "service_account_uid",
                ids.uuid("sa/external-secrets/external-secrets"),
            ),
        ],
        entity_id: Some(ids.uuid("entity/external-secrets")),
        token_type: "service",
        ttl: 3600,
        issue_us: hour * US_PER_HOUR,
        mount_type: "kubernetes",
    }
}

/// A Poisson-distributed count (Knuth; fine for small means).
pub(crate) fn poisson_count(rng: &mut super::sim::Rng, mean: f64) -> usize {
    let l = (-mean).exp();
    let mut k = 0;
    let mut p = 1.0;
    loop {
        p *= rng.random::<f64>();
        if p <= l || k > 1000 {
            return k;
        }
        k += 1;
    }
}
