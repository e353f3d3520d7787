//! Injected attack scenarios and their labels.
//!
//! Schedule (file mode): from day `warmup_days` on, each simulated day gets
//! `attacks_per_day` scenarios (default 6). The scenario types are taken in turn from a
//! seed-shuffled order of all 12 types, so day 1 holds 6 distinct types, days 1–2 hold all
//! 12, and over longer runs every type recurs every other day. Each scenario gets a time
//! in its own window (`off_hours_secret_read` 02:00–04:00, human-driven ones 08:00–20:00,
//! the rest 00:30–22:00), at least 45 minutes from the others of the day; all end well
//! before midnight. Live mode injects one every `attack_every`, in the same order.
//!
//! Every event of a scenario has the scenario's actor, so a label names one identity (for
//! Vault, the identity the repository's decoder derives from the token).

use rand::RngExt;
use rand::seq::SliceRandom;

use super::format::{
    K8sReq, K8sUser, ObjRef, US_PER_DAY, US_PER_HOUR, US_PER_MIN, US_PER_SEC, VaultAuth, VaultReq,
    ts_micros,
};
use super::org::VaultMethod;
use super::sim::{Sim, Task, vault_actor};
use super::traffic::{KUBECTL_UA, VAULT_CLI_UA, kv_fields, login_and_reads};
use super::{Label, ScenarioType};

/// A seed-shuffled order of all scenario types.
pub(crate) fn attack_order(rng: &mut super::sim::Rng) -> Vec<ScenarioType> {
    let mut v = ScenarioType::ALL.to_vec();
    v.shuffle(rng);
    v
}

/// (earliest, latest) start hour of a scenario type.
fn window(kind: ScenarioType) -> (f64, f64) {
    use ScenarioType::*;
    match kind {
        OffHoursSecretRead => (2.0, 4.0),
        K8sHumanSecretSweep | PrivilegedPodExec | RbacEscalation | TokenRequestByHuman => {
            (8.0, 20.0)
        }
        _ => (0.5, 22.0),
    }
}

/// Collects the events of one scenario.
struct Rec {
    ids: Vec<String>,
    start: i64,
    end: i64,
}

impl Rec {
    fn new() -> Self {
        Rec {
            ids: vec![],
            start: i64::MAX,
            end: i64::MIN,
        }
    }
    fn add(&mut self, id: String, t: i64) {
        self.ids.push(id);
        self.start = self.start.min(t);
        self.end = self.end.max(t);
    }
}

fn gap(rng: &mut super::sim::Rng, lo_ms: i64, hi_ms: i64) -> i64 {
    rng.random_range(lo_ms..hi_ms) * 1_000
}

fn ext_ip(rng: &mut super::sim::Rng, net: &str) -> String {
    format!("{net}.{}", rng.random_range(2..250u32))
}

impl Sim {
    pub(crate) fn plan_attacks(&mut self, day: i64, now: i64) {
        if self.cfg.live_attack_every_us.is_some() {
            return;
        }
        let start_day = self.cfg.start_us.div_euclid(US_PER_DAY);
        let k = day - start_day;
        if k < self.cfg.warmup_days as i64 || self.cfg.attacks_per_day == 0 {
            return;
        }
        let n = self.cfg.attacks_per_day;
        let base = (k - self.cfg.warmup_days as i64) as usize * n;
        let mut times: Vec<i64> = Vec::new();
        for i in 0..n {
            let kind = self.attack_order[(base + i) % self.attack_order.len()];
            let (h0, h1) = window(kind);
            let mut t = 0;
            for _ in 0..64 {
                let h = h0 + self.atk_rng.random::<f64>() * (h1 - h0);
                t = day * US_PER_DAY + (h * US_PER_HOUR as f64) as i64;
                if times.iter().all(|&o| (o - t).abs() >= 45 * US_PER_MIN) {
                    break;
                }
            }
            times.push(t);
            if t >= now {
                self.out.schedule(t, Task::Attack(kind));
            }
        }
    }

    /// Emits one scenario starting at `t` and records its label.
    pub(crate) fn inject(&mut self, kind: ScenarioType, t: i64) {
        use ScenarioType::*;
        self.attacks_done += 1;
        let (actor, source, description, rec) = match kind {
            K8sSecretEnumeration => self.k8s_secret_enumeration(t),
            K8sHumanSecretSweep => self.human_secret_sweep(t),
            VaultPathEnumeration => self.vault_path_enumeration(t),
            DeniedBurst => self.denied_burst(t),
            OffHoursSecretRead => self.off_hours_secret_read(t),
            PrivilegedPodExec => self.privileged_pod_exec(t),
            RbacEscalation => self.rbac_escalation(t),
            VaultRootAndAuditTamper => self.vault_root(t),
            VaultNewNetworkLogin => self.vault_new_network_login(t),
            TokenRequestByHuman => self.token_request_by_human(t),
            FirstSeenSecret => self.first_seen_secret(t),
            AnonymousAccess => self.anonymous_access(t),
        };
        self.labels.push(Label {
            scenario_id: format!("atk-{:04}-{}", self.attacks_done, kind.as_str()),
            kind,
            description,
            actor,
            source: source.to_string(),
            start: ts_micros(rec.start),
            end: ts_micros(rec.end),
            event_ids: rec.ids,
        });
    }

    fn pick_workload(&mut self) -> usize {
        self.atk_rng.random_range(0..self.org.workloads.len())
    }

    fn pick_human(&mut self) -> usize {
        self.atk_rng.random_range(0..self.org.humans.len())
    }

    // 1
    fn k8s_secret_enumeration(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let wi = self.pick_workload();
        let ip = ext_ip(&mut self.atk_rng, "203.0.113");
        let ua = if self.atk_rng.random::<bool>() {
            "curl/8.5.0"
        } else {
            "python-requests/2.31.0"
        };
        let w = &self.org.workloads[wi];
        let user = w.pod_user(0).clone();
        let reason = format!(
            "RBAC: allowed by ClusterRoleBinding \"{svc}-secrets-reader\" of ClusterRole \"secrets-reader\" to ServiceAccount \"{svc}/{ns}\"",
            svc = w.svc,
            ns = w.ns
        );
        let mut rec = Rec::new();
        let mut t = t0;
        let mut emit = |s: &mut Sim, verb: &'static str, o: ObjRef, code: u16, t: i64| {
            let lat = s.atk_rng.random_range(2_000..30_000);
            let r = K8sReq::new(verb, &user, &ip, ua, Some(o), t)
                .code(code)
                .latency(lat)
                .reason(reason.clone());
            let id = s.out.k8s(&r);
            rec.add(id, t);
        };
        emit(self, "list", ObjRef::core("namespaces", None, None), 200, t);
        t += gap(&mut self.atk_rng, 500, 4_000);
        emit(self, "list", ObjRef::core("secrets", None, None), 200, t);
        let mut nss = self.org.namespaces.clone();
        nss.push("kube-system".into());
        for ns in &nss {
            t += gap(&mut self.atk_rng, 300, 3_000);
            emit(
                self,
                "list",
                ObjRef::core("secrets", Some(ns), None),
                200,
                t,
            );
        }
        let mut all: Vec<(String, String)> = self
            .org
            .workloads
            .iter()
            .flat_map(|w| w.secrets.iter().map(move |s| (w.ns.clone(), s.clone())))
            .collect();
        all.shuffle(&mut self.atk_rng);
        let n = self.atk_rng.random_range(15..=30usize).min(all.len());
        let mut got = 0;
        for (ns, s) in all.into_iter().take(n) {
            t += gap(&mut self.atk_rng, 800, 6_000);
            emit(
                self,
                "get",
                ObjRef::core("secrets", Some(&ns), Some(&s)),
                200,
                t,
            );
            got += 1;
        }
        for guess in ["db-credentials", "aws-credentials"] {
            t += gap(&mut self.atk_rng, 800, 6_000);
            let ns = nss[self.atk_rng.random_range(0..nss.len())].clone();
            emit(
                self,
                "get",
                ObjRef::core("secrets", Some(&ns), Some(guess)),
                404,
                t,
            );
        }
        let w = &self.org.workloads[wi];
        let d = format!(
            "stolen token of {} used from {ip} ({ua}): listed secrets in all namespaces and read {got} distinct secrets",
            w.sa()
        );
        (w.sa().to_string(), "kubernetes", d, rec)
    }

    // 2
    fn human_secret_sweep(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let h = self.pick_human();
        let hu = &self.org.humans[h];
        let user = hu.user.clone();
        let ip = hu.ip.clone();
        let reason = format!(
            "RBAC: allowed by ClusterRoleBinding \"break-glass-admins\" of ClusterRole \"admin\" to User \"{}\"",
            hu.email
        );
        let mut nss = self.org.namespaces.clone();
        nss.shuffle(&mut self.atk_rng);
        let k = self.atk_rng.random_range(4..=7usize).min(nss.len());
        let mut rec = Rec::new();
        let mut t = t0;
        let mut distinct = 0;
        for ns in nss.into_iter().take(k) {
            let r = K8sReq::new(
                "list",
                &user,
                &ip,
                KUBECTL_UA,
                Some(ObjRef::core("secrets", Some(&ns), None)),
                t,
            )
            .latency(self.atk_rng.random_range(5_000..40_000))
            .reason(reason.clone());
            rec.add(self.out.k8s(&r), t);
            let mut secrets: Vec<String> = self
                .org
                .workloads
                .iter()
                .filter(|w| w.ns == ns)
                .flat_map(|w| w.secrets.iter().cloned())
                .collect();
            secrets.shuffle(&mut self.atk_rng);
            let m = self.atk_rng.random_range(2..=5usize).min(secrets.len());
            for s in secrets.into_iter().take(m) {
                t += gap(&mut self.atk_rng, 3_000, 15_000);
                let r = K8sReq::new(
                    "get",
                    &user,
                    &ip,
                    KUBECTL_UA,
                    Some(ObjRef::core("secrets", Some(&ns), Some(&s))),
                    t,
                )
                .latency(self.atk_rng.random_range(5_000..30_000))
                .reason(reason.clone());
                rec.add(self.out.k8s(&r), t);
                distinct += 1;
            }
            t += gap(&mut self.atk_rng, 5_000, 30_000);
        }
        let d = format!(
            "{} read {distinct} distinct secrets across {k} namespaces with kubectl in a few minutes",
            user.username
        );
        (user.username, "kubernetes", d, rec)
    }

    // 3
    fn vault_path_enumeration(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let wi = self.pick_workload();
        let w = &self.org.workloads[wi];
        let token = w.tokens[0].clone();
        let ip = w.pods[0].ip.clone();
        let ua = w.ua_vault;
        let own = w.ns.clone();
        let mut rec = Rec::new();
        let mut t = t0;
        let mut targets: Vec<(&'static str, String, bool)> = vec![
            ("list", "secret/metadata/".into(), true),
            ("list", format!("secret/metadata/{own}/"), true),
        ];
        for ns in &self.org.namespaces {
            if *ns != own {
                targets.push(("list", format!("secret/metadata/{ns}/"), true));
            }
        }
        let mut foreign: Vec<String> = self
            .org
            .workloads
            .iter()
            .filter(|o| o.svc != w.svc)
            .flat_map(|o| o.vault_paths.iter().cloned())
            .collect();
        foreign.shuffle(&mut self.atk_rng);
        let n = self.atk_rng.random_range(25..=45usize).min(foreign.len());
        for p in foreign.into_iter().take(n) {
            // a few paths are readable through an over-broad shared policy
            let denied = self.atk_rng.random::<f64>() > 0.1;
            targets.push(("read", p, denied));
        }
        let (mut denied_n, total) = (0, targets.len());
        for (op, path, denied) in targets {
            let mut q = VaultReq::new(t, Some(&token), op, path.clone(), &ip);
            q.denied = denied;
            q.user_agent = Some(ua);
            q.remote_port = self.atk_rng.random_range(32_768..61_000);
            if !denied && op == "read" {
                q.kv_keys = Some(kv_fields(&path));
            }
            denied_n += denied as usize;
            rec.add(self.out.vault(q), t);
            t += gap(&mut self.atk_rng, 400, 6_000);
        }
        let actor = vault_actor(Some(&token));
        let d = format!(
            "{actor} listed and read {total} Vault KV paths outside its own prefix secret/data/{own}/{}/ ({denied_n} denied)",
            self.org.workloads[wi].svc
        );
        (actor, "vault", d, rec)
    }

    // 4
    fn denied_burst(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let wi = self.pick_workload();
        let vault = self.atk_rng.random::<bool>();
        let w = &self.org.workloads[wi];
        let n = self.atk_rng.random_range(20..=40usize);
        let mut rec = Rec::new();
        let mut t = t0;
        if vault {
            let token = w.tokens[0].clone();
            let ip = w.pods[0].ip.clone();
            let paths = [
                "sys/mounts",
                "sys/policies/acl",
                "sys/auth",
                "auth/token/create",
                "secret/data/platform/admin",
                "database/creds/admin",
            ];
            for i in 0..n {
                let path = paths[i % paths.len()];
                let op = if path.starts_with("sys/") {
                    "read"
                } else {
                    "update"
                };
                let mut q = VaultReq::new(t, Some(&token), op, path.into(), &ip);
                q.denied = true;
                q.user_agent = Some(w.ua_vault);
                q.remote_port = self.atk_rng.random_range(32_768..61_000);
                rec.add(self.out.vault(q), t);
                t += gap(&mut self.atk_rng, 200, 4_000);
            }
            let d = format!(
                "{} got {n} permission-denied Vault responses within minutes",
                w.sa()
            );
            return (w.sa().to_string(), "vault", d, rec);
        }
        let user = w.pod_user(0).clone();
        let ip = w.pods[0].ip.clone();
        let ua = w.ua_k8s.clone();
        let objs: Vec<(&'static str, ObjRef)> = vec![
            (
                "get",
                ObjRef::core(
                    "secrets",
                    Some("kube-system"),
                    Some("bootstrap-token-abcdef"),
                ),
            ),
            ("list", ObjRef::core("secrets", None, None)),
            ("list", ObjRef::core("secrets", Some("kube-system"), None)),
            ("create", ObjRef::core("pods", Some("kube-system"), None)),
            (
                "list",
                ObjRef::group("rbac.authorization.k8s.io", "clusterroles", None, None),
            ),
            (
                "create",
                ObjRef::group(
                    "rbac.authorization.k8s.io",
                    "rolebindings",
                    Some(&w.ns),
                    None,
                ),
            ),
        ];
        for i in 0..n {
            let (verb, o) = objs[i % objs.len()].clone();
            let r = K8sReq::new(verb, &user, &ip, &ua, Some(o), t)
                .code(403)
                .latency(self.atk_rng.random_range(500..3_000));
            rec.add(self.out.k8s(&r), t);
            t += gap(&mut self.atk_rng, 200, 4_000);
        }
        let d = format!(
            "{} got {n} forbidden (403) Kubernetes responses within minutes",
            w.sa()
        );
        (w.sa().to_string(), "kubernetes", d, rec)
    }

    // 5
    fn off_hours_secret_read(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let idle: Vec<usize> = (0..self.org.workloads.len())
            .filter(|&i| !self.deployed_today.get(i).copied().unwrap_or(false))
            .collect();
        let wi = if idle.is_empty() {
            self.pick_workload()
        } else {
            idle[self.atk_rng.random_range(0..idle.len())]
        };
        let w = &self.org.workloads[wi];
        let mut rec = Rec::new();
        let mut t = t0;
        for s in &w.secrets {
            let r = K8sReq::new(
                "get",
                w.pod_user(0),
                &w.pods[0].ip,
                &w.ua_k8s,
                Some(ObjRef::core("secrets", Some(&w.ns), Some(s))),
                t,
            )
            .latency(self.atk_rng.random_range(1_000..4_000))
            .reason(w.rbac_reason());
            rec.add(self.out.k8s(&r), t);
            t += self.atk_rng.random_range(10_000..300_000);
        }
        t += self.atk_rng.random_range(200_000..2_000_000);
        let start = t;
        let ids = login_and_reads(w, &mut self.out, &mut self.atk_rng, 0, t, None, None);
        for id in ids {
            rec.add(id, start);
        }
        rec.end = rec.end.max(start + US_PER_SEC);
        let d = format!(
            "{} re-read its {} Kubernetes secrets and logged into Vault and read its {} KV paths at night, on a day without a rollout of it",
            w.sa(),
            w.secrets.len(),
            w.vault_paths.len()
        );
        (w.sa().to_string(), "mixed", d, rec)
    }

    // 6
    fn privileged_pod_exec(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let h = self.pick_human();
        let hu = &self.org.humans[h];
        let user = hu.user.clone();
        let ip = hu.ip.clone();
        let ns = hu.team.clone();
        let name = format!("debug-{}", self.out.ids.suffix(&format!("debug/{t0}"), 5));
        let reason = format!(
            "RBAC: allowed by RoleBinding \"{ns}-developers/{ns}\" of ClusterRole \"edit\" to Group \"{}\"",
            user.groups[0]
        );
        let body = format!(
            "{{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{ns}\",\"creationTimestamp\":null}},\"spec\":{{\"volumes\":[{{\"name\":\"host\",\"hostPath\":{{\"path\":\"/\",\"type\":\"\"}}}}],\"containers\":[{{\"name\":\"shell\",\"image\":\"alpine:3.20\",\"command\":[\"sleep\",\"infinity\"],\"resources\":{{}},\"volumeMounts\":[{{\"name\":\"host\",\"mountPath\":\"/host\"}}],\"securityContext\":{{\"privileged\":true}}}}],\"restartPolicy\":\"Never\",\"hostNetwork\":true,\"hostPID\":true}},\"status\":{{}}}}"
        );
        let mut rec = Rec::new();
        let mut t = t0;
        let r = K8sReq::new(
            "create",
            &user,
            &ip,
            KUBECTL_UA,
            Some(ObjRef::core("pods", Some(&ns), None)),
            t,
        )
        .code(201)
        .request_body("Request", body)
        .latency(self.atk_rng.random_range(10_000..40_000))
        .reason(reason.clone());
        rec.add(self.out.k8s(&r), t);
        for _ in 0..2 {
            t += gap(&mut self.atk_rng, 1_000, 4_000);
            let r = K8sReq::new(
                "get",
                &user,
                &ip,
                KUBECTL_UA,
                Some(ObjRef::core("pods", Some(&ns), Some(&name))),
                t,
            )
            .latency(self.atk_rng.random_range(3_000..15_000))
            .reason(reason.clone());
            rec.add(self.out.k8s(&r), t);
        }
        t += gap(&mut self.atk_rng, 2_000, 10_000);
        let o = ObjRef::core("pods", Some(&ns), Some(&name)).sub("exec");
        let uri = format!(
            "{}?command=chroot&command=%2Fhost&command=bash&container=shell&stdin=true&stdout=true&tty=true",
            o.path()
        );
        let dur = self.atk_rng.random_range(3 * US_PER_MIN..10 * US_PER_MIN);
        let r = K8sReq::new("create", &user, &ip, KUBECTL_UA, Some(o), t)
            .code(101)
            .uri(uri)
            .latency(dur)
            .reason(reason);
        rec.add(self.out.k8s(&r), t);
        rec.end = rec.end.max(t + dur);
        let d = format!(
            "{} created pod {ns}/{name} (privileged, hostPath /, hostNetwork, hostPID) and exec'd into it with chroot /host",
            user.username
        );
        (user.username, "kubernetes", d, rec)
    }

    // 7
    fn rbac_escalation(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let h = self.pick_human();
        let hu = &self.org.humans[h];
        let user = hu.user.clone();
        let ip = hu.ip.clone();
        let ns = hu.team.clone();
        let login = hu.login.clone();
        let reason = format!(
            "RBAC: allowed by ClusterRoleBinding \"break-glass-admins\" of ClusterRole \"admin\" to User \"{}\"",
            user.username
        );
        let mut rec = Rec::new();
        let mut t = t0;
        let secret = "ci-deployer-kubeconfig";
        let r = K8sReq::new(
            "get",
            &user,
            &ip,
            KUBECTL_UA,
            Some(ObjRef::core("secrets", Some("kube-system"), Some(secret))),
            t,
        )
        .latency(self.atk_rng.random_range(5_000..20_000))
        .reason(reason.clone());
        rec.add(self.out.k8s(&r), t);
        t += gap(&mut self.atk_rng, 90_000, 300_000);
        let crb = format!("{login}-cluster-admin");
        let body = format!(
            "{{\"kind\":\"ClusterRoleBinding\",\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"metadata\":{{\"name\":\"{crb}\",\"creationTimestamp\":null}},\"subjects\":[{{\"kind\":\"User\",\"apiGroup\":\"rbac.authorization.k8s.io\",\"name\":\"{}\"}}],\"roleRef\":{{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":\"cluster-admin\"}}}}",
            user.username
        );
        let r = K8sReq::new(
            "create",
            &user,
            &ip,
            KUBECTL_UA,
            Some(ObjRef::group(
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                None,
                None,
            )),
            t,
        )
        .code(201)
        .request_body("RequestResponse", body.clone())
        .response_body(body)
        .latency(self.atk_rng.random_range(5_000..20_000))
        .reason(reason.clone());
        rec.add(self.out.k8s(&r), t);
        t += gap(&mut self.atk_rng, 20_000, 120_000);
        let role = "pod-manager";
        let body = format!(
            "{{\"kind\":\"Role\",\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"metadata\":{{\"name\":\"{role}\",\"namespace\":\"{ns}\",\"creationTimestamp\":null}},\"rules\":[{{\"verbs\":[\"escalate\",\"bind\"],\"apiGroups\":[\"rbac.authorization.k8s.io\"],\"resources\":[\"roles\",\"rolebindings\"]}},{{\"verbs\":[\"impersonate\"],\"apiGroups\":[\"\"],\"resources\":[\"users\",\"groups\",\"serviceaccounts\"]}}]}}"
        );
        let r = K8sReq::new(
            "create",
            &user,
            &ip,
            KUBECTL_UA,
            Some(ObjRef::group(
                "rbac.authorization.k8s.io",
                "roles",
                Some(&ns),
                None,
            )),
            t,
        )
        .code(201)
        .request_body("RequestResponse", body.clone())
        .response_body(body)
        .latency(self.atk_rng.random_range(5_000..20_000))
        .reason(reason);
        rec.add(self.out.k8s(&r), t);
        let d = format!(
            "{} read secret kube-system/{secret}, then bound itself to cluster-admin (ClusterRoleBinding {crb}) and created Role {ns}/{role} with escalate/bind/impersonate",
            user.username
        );
        (user.username, "kubernetes", d, rec)
    }

    // 8
    fn vault_root(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let root = VaultAuth {
            token: self.out.ids.uuid(&format!("root-token/{t0}")),
            display_name: "root".into(),
            policies: vec!["root".into()],
            metadata: vec![],
            entity_id: None,
            token_type: "service",
            ttl: 0,
            issue_us: t0 - 5 * US_PER_MIN,
            mount_type: "token",
        };
        let ip = if self.atk_rng.random::<bool>() {
            ext_ip(&mut self.atk_rng, "203.0.113")
        } else {
            ext_ip(&mut self.atk_rng, "10.0.3")
        };
        let mut rec = Rec::new();
        let mut t = t0;
        let policy = "break-glass";
        let mut steps: Vec<(&'static str, String, &'static [&'static str])> = vec![
            ("update", "sys/generate-root/attempt".into(), &["pgp_key"]),
            ("read", "sys/audit".into(), &[]),
            ("delete", "sys/audit/file".into(), &[]),
            ("update", format!("sys/policies/acl/{policy}"), &["policy"]),
            ("list", "secret/metadata/".into(), &[]),
        ];
        let mut paths: Vec<String> = self
            .org
            .workloads
            .iter()
            .flat_map(|w| w.vault_paths.iter().cloned())
            .collect();
        paths.shuffle(&mut self.atk_rng);
        for p in paths.into_iter().take(4) {
            steps.push(("read", p, &[]));
        }
        for (op, path, keys) in steps {
            let mut q = VaultReq::new(t, Some(&root), op, path.clone(), &ip);
            q.request_keys = keys;
            q.user_agent = Some(VAULT_CLI_UA);
            q.remote_port = self.atk_rng.random_range(32_768..61_000);
            if op == "read" && path.starts_with("secret/") {
                q.kv_keys = Some(kv_fields(&path));
            }
            if op == "list" {
                q.list_keys = Some(
                    self.org
                        .namespaces
                        .iter()
                        .map(|n| format!("{n}/"))
                        .collect(),
                );
            }
            rec.add(self.out.vault(q), t);
            t += gap(&mut self.atk_rng, 3_000, 40_000);
        }
        let d = format!(
            "root token used from {ip}: sys/generate-root/attempt, audit device `file` disabled (sys/audit/file delete), policy {policy} written, KV reads across teams"
        );
        ("root".into(), "vault", d, rec)
    }

    // 9
    fn vault_new_network_login(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let ip = ext_ip(&mut self.atk_rng, "198.51.100");
        let userpass: Vec<usize> = (0..self.org.humans.len())
            .filter(|&h| self.org.humans[h].vault_method == VaultMethod::Userpass)
            .collect();
        let mut rec = Rec::new();
        if !userpass.is_empty() && self.atk_rng.random::<bool>() {
            let h = userpass[self.atk_rng.random_range(0..userpass.len())];
            // the attacker's session gets its own token; the person keeps theirs
            let saved = self.org.humans[h].vault_auth.clone();
            let id = self.human_login(h, t0, Some(&ip));
            rec.add(id, t0);
            let hu = &self.org.humans[h];
            let team: Vec<String> = self
                .org
                .workloads
                .iter()
                .filter(|w| w.ns == hu.team)
                .flat_map(|w| w.vault_paths.iter().cloned())
                .collect();
            let mut t = t0 + gap(&mut self.atk_rng, 2_000, 20_000);
            let n = self.atk_rng.random_range(2..=6usize);
            for _ in 0..n {
                let path = team[self.atk_rng.random_range(0..team.len())].clone();
                let mut q = VaultReq::new(t, Some(&hu.vault_auth), "read", path.clone(), &ip);
                q.kv_keys = Some(kv_fields(&path));
                q.user_agent = Some(VAULT_CLI_UA);
                q.remote_port = self.atk_rng.random_range(32_768..61_000);
                rec.add(self.out.vault(q), t);
                t += gap(&mut self.atk_rng, 2_000, 30_000);
            }
            let actor = hu.vault_actor();
            self.org.humans[h].vault_auth = saved;
            let d = format!(
                "{actor} logged into Vault from never-seen network {ip} and read {n} KV paths"
            );
            return (actor, "vault", d, rec);
        }
        let wi = self.pick_workload();
        let w = &self.org.workloads[wi];
        let ids = login_and_reads(
            w,
            &mut self.out,
            &mut self.atk_rng,
            0,
            t0,
            Some(&ip),
            Some("curl/8.5.0"),
        );
        for id in ids {
            rec.add(id, t0);
        }
        rec.end = t0 + US_PER_SEC;
        let d = format!(
            "{} logged into Vault (kubernetes auth, role {}) from never-seen network {ip} with curl and read its KV paths",
            w.sa(),
            w.svc
        );
        (w.sa().to_string(), "vault", d, rec)
    }

    // 10
    fn token_request_by_human(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let h = self.pick_human();
        let hu = &self.org.humans[h];
        let user: K8sUser = hu.user.clone();
        let ip = hu.ip.clone();
        let targets = [
            ("kube-system", "clusterrole-aggregation-controller"),
            ("argocd", "argocd-application-controller"),
            ("external-secrets", "external-secrets"),
            ("kube-system", "replicaset-controller"),
        ];
        let (ns, sa) = targets[self.atk_rng.random_range(0..targets.len())];
        let reason = format!(
            "RBAC: allowed by ClusterRoleBinding \"break-glass-admins\" of ClusterRole \"admin\" to User \"{}\"",
            user.username
        );
        let mut rec = Rec::new();
        let r = K8sReq::new(
            "get",
            &user,
            &ip,
            KUBECTL_UA,
            Some(ObjRef::core("serviceaccounts", Some(ns), Some(sa))),
            t0,
        )
        .latency(self.atk_rng.random_range(3_000..15_000))
        .reason(reason.clone());
        rec.add(self.out.k8s(&r), t0);
        let t = t0 + gap(&mut self.atk_rng, 200, 2_000);
        let body = "{\"kind\":\"TokenRequest\",\"apiVersion\":\"authentication.k8s.io/v1\",\"metadata\":{\"creationTimestamp\":null},\"spec\":{\"audiences\":null,\"expirationSeconds\":86400,\"boundObjectRef\":null}}".to_string();
        let r = K8sReq::new(
            "create",
            &user,
            &ip,
            KUBECTL_UA,
            Some(ObjRef::core("serviceaccounts", Some(ns), Some(sa)).sub("token")),
            t,
        )
        .code(201)
        .request_body("Request", body)
        .latency(self.atk_rng.random_range(5_000..20_000))
        .reason(reason);
        rec.add(self.out.k8s(&r), t);
        let d = format!(
            "{} requested a 24h token (TokenRequest) for the privileged service account {ns}/{sa}",
            user.username
        );
        (user.username, "kubernetes", d, rec)
    }

    // 11
    fn first_seen_secret(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let wi = self.pick_workload();
        let w = &self.org.workloads[wi];
        let others: Vec<(String, String)> = self
            .org
            .workloads
            .iter()
            .filter(|o| o.ns != w.ns)
            .flat_map(|o| o.secrets.iter().map(move |s| (o.ns.clone(), s.clone())))
            .collect();
        let (ns, s) = if others.is_empty() {
            ("kube-system".to_string(), "cluster-ca".to_string())
        } else {
            others[self.atk_rng.random_range(0..others.len())].clone()
        };
        let r = K8sReq::new("get", w.pod_user(0), &w.pods[0].ip, &w.ua_k8s, Some(ObjRef::core("secrets", Some(&ns), Some(&s))), t0)
            .latency(self.atk_rng.random_range(1_000..4_000))
            .reason(format!(
                "RBAC: allowed by RoleBinding \"legacy-shared-read/{ns}\" of Role \"legacy-shared-read\" to ServiceAccount \"{}/{}\"",
                w.svc, w.ns
            ));
        let mut rec = Rec::new();
        rec.add(self.out.k8s(&r), t0);
        let d = format!(
            "{} read secret {ns}/{s} of another team's namespace for the first time",
            w.sa()
        );
        (w.sa().to_string(), "kubernetes", d, rec)
    }

    // 12
    fn anonymous_access(&mut self, t0: i64) -> (String, &'static str, String, Rec) {
        let ip = ext_ip(&mut self.atk_rng, "203.0.113");
        let user = self.org.anonymous.clone();
        let reason = "RBAC: allowed by ClusterRoleBinding \"anonymous-debug\" of ClusterRole \"view\" to User \"system:anonymous\"".to_string();
        let ns =
            self.org.namespaces[self.atk_rng.random_range(0..self.org.namespaces.len())].clone();
        let objs = vec![
            ObjRef::core("namespaces", None, None),
            ObjRef::core("pods", None, None),
            ObjRef::core("configmaps", Some("kube-system"), None),
            ObjRef::core("serviceaccounts", Some(&ns), None),
        ];
        let mut rec = Rec::new();
        let mut t = t0;
        for o in objs {
            let r = K8sReq::new("list", &user, &ip, "curl/8.5.0", Some(o), t)
                .latency(self.atk_rng.random_range(5_000..60_000))
                .reason(reason.clone());
            rec.add(self.out.k8s(&r), t);
            t += gap(&mut self.atk_rng, 1_000, 20_000);
        }
        let d = format!(
            "system:anonymous from {ip} successfully listed namespaces, all pods, kube-system configmaps and {ns} service accounts"
        );
        (user.username, "kubernetes", d, rec)
    }
}
