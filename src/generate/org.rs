//! The simulated organisation: team namespaces, workloads (service account, pods, secrets,
//! Vault role and KV paths), nodes, humans, controllers. Built once from the seed and the
//! options; only pod names and IPs change afterwards (at rollouts).

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;

use super::format::{Ids, K8sUser, VaultAuth};

pub(crate) const TEAMS: &[&str] = &[
    "payments",
    "checkout",
    "identity",
    "search",
    "data",
    "notifications",
    "billing",
    "catalog",
    "risk",
    "growth",
    "shipping",
    "support",
];

const SERVICES: &[&str] = &[
    "api",
    "worker",
    "gateway",
    "ledger",
    "scheduler",
    "indexer",
    "exporter",
    "web",
    "cron",
    "sync",
    "notifier",
    "reporter",
    "router",
    "consumer",
    "auth",
    "session",
    "cache-warmer",
    "fraud-scorer",
    "invoicer",
    "mailer",
    "pricing",
    "tax",
    "recommender",
    "ingest",
    "etl",
    "feature-store",
    "webhook",
    "tracker",
    "refunds",
    "settlement",
    "profile",
    "tokenizer",
    "crawler",
    "ranker",
    "sms",
    "push",
    "inventory",
    "media",
    "audit-log",
    "reconciler",
    "labeler",
    "geo",
    "quota",
    "ratelimiter",
    "archiver",
    "importer",
    "ml-serving",
    "backfill",
];

const SECRET_SUFFIXES: &[&str] = &["db", "tls", "api-key", "config", "oauth", "smtp", "s3"];
const VAULT_KEYS: &[&str] = &[
    "db",
    "api-key",
    "tls",
    "config",
    "oauth-client",
    "smtp",
    "s3",
    "stripe",
    "signing-key",
];

pub(crate) struct Pod {
    pub name: String,
    pub uid: String,
    pub ip: String,
    pub node: usize,
}

pub(crate) struct Workload {
    pub ns: String,
    pub svc: String,
    pub user: K8sUser,
    /// Bound-token claims (`user.extra`) are per pod; rebuilt at rollouts.
    pub users_by_pod: Vec<K8sUser>,
    pub pods: Vec<Pod>,
    pub replicas: usize,
    pub generation: u32,
    pub secrets: Vec<String>,
    pub vault_paths: Vec<String>,
    pub entity_id: String,
    /// Per replica token (reissued at login).
    pub tokens: Vec<VaultAuth>,
    pub ua_k8s: String,
    pub ua_vault: &'static str,
    /// Mean KV reads per hour at the daily peak.
    pub vault_peak_per_hour: f64,
    /// Some workloads re-read one of their secrets periodically (config reloaders).
    pub secret_poll_min: Option<f64>,
    /// Leader election lease in the workload's namespace.
    pub leader_lease: bool,
    /// Dynamic database credentials renewed with `sys/leases/renew`.
    pub leases: bool,
    /// Misconfigured: a low steady rate of denied calls (benign noise).
    pub misconfigured: Option<Misconfig>,
    /// Watches/gets configmaps (most apps read a config map at runtime).
    pub configmap_reader: bool,
}

#[derive(Clone, Copy)]
pub(crate) enum Misconfig {
    /// `list pods` without RBAC (a sidecar that wants peer discovery).
    K8sListPods,
    /// Reads a Vault path its policy does not grant (a stale template).
    VaultStalePath,
}

impl Workload {
    pub fn sa(&self) -> &str {
        &self.user.username
    }
    pub fn display_name(&self) -> String {
        format!("kubernetes-{}-{}", self.ns, self.svc)
    }
    pub fn rbac_reason(&self) -> String {
        format!(
            "RBAC: allowed by RoleBinding \"{svc}/{ns}\" of Role \"{svc}\" to ServiceAccount \"{svc}/{ns}\"",
            svc = self.svc,
            ns = self.ns
        )
    }
    pub fn pod_user(&self, replica: usize) -> &K8sUser {
        &self.users_by_pod[replica.min(self.users_by_pod.len() - 1)]
    }
}

pub(crate) struct Node {
    pub name: String,
    pub ip: String,
    pub user: K8sUser,
    pub next_pod_ip: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum VaultMethod {
    Userpass,
    Oidc,
}

pub(crate) struct Human {
    pub login: String,
    pub email: String,
    pub team: String,
    pub user: K8sUser,
    pub ip: String,
    pub vault_method: VaultMethod,
    pub vault_auth: VaultAuth,
    /// Platform/SRE people sometimes work in the evening (on-call).
    pub on_call: bool,
    /// How much of a day this person spends in kubectl (commands per hour).
    pub commands_per_hour: f64,
    /// The few team secrets (namespace, name) this person looks at now and then.
    pub usual_secrets: Vec<(String, String)>,
    /// The few KV paths this person reads.
    pub usual_paths: Vec<String>,
}

impl Human {
    /// The actor the Vault decoder derives from this person's token.
    pub fn vault_actor(&self) -> String {
        self.vault_auth.display_name.clone()
    }
}

/// A controller identity with its client address and user agent.
pub(crate) struct Controller {
    pub user: K8sUser,
    pub ip: String,
    pub ua: String,
}

pub(crate) struct Org {
    pub namespaces: Vec<String>,
    pub workloads: Vec<Workload>,
    pub nodes: Vec<Node>,
    pub humans: Vec<Human>,
    pub kcm: Controller,
    pub scheduler: Controller,
    pub external_secrets: Controller,
    pub cert_manager: Controller,
    pub argocd: Controller,
    pub ci: Controller,
    pub rs_controller: Controller,
    pub deploy_controller: Controller,
    pub prometheus: Controller,
    pub anonymous: K8sUser,
    pub lb_ip: String,
}

fn sa_user(ids: &Ids, ns: &str, name: &str) -> K8sUser {
    K8sUser {
        username: format!("system:serviceaccount:{ns}:{name}"),
        uid: Some(ids.uuid(&format!("sa/{ns}/{name}"))),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
        extra: None,
    }
}

/// `user.extra` of a bound service-account token used from a pod.
pub(crate) fn pod_extra(ids: &Ids, pod: &Pod, node: &Node) -> String {
    format!(
        "{{\"authentication.kubernetes.io/credential-id\":[\"JTI={}\"],\"authentication.kubernetes.io/node-name\":[\"{}\"],\"authentication.kubernetes.io/node-uid\":[\"{}\"],\"authentication.kubernetes.io/pod-name\":[\"{}\"],\"authentication.kubernetes.io/pod-uid\":[\"{}\"]}}",
        ids.uuid(&format!("jti/{}", pod.uid)),
        node.name,
        ids.uuid(&format!("node/{}", node.name)),
        pod.name,
        pod.uid
    )
}

fn controller(user: K8sUser, ip: &str, ua: &str) -> Controller {
    Controller {
        user,
        ip: ip.into(),
        ua: ua.into(),
    }
}

impl Org {
    pub fn build(
        ids: &Ids,
        rng: &mut Xoshiro256PlusPlus,
        n_workloads: usize,
        start_us: i64,
    ) -> Org {
        let n_workloads = n_workloads.max(1);
        let n_teams = (n_workloads / 5).clamp(1, 8).min(TEAMS.len());
        let namespaces: Vec<String> = TEAMS[..n_teams].iter().map(|s| s.to_string()).collect();
        let n_nodes = (n_workloads / 5).clamp(3, 24);
        let mut nodes: Vec<Node> = (0..n_nodes)
            .map(|i| {
                let name = format!("worker-{:02}", i + 1);
                Node {
                    user: K8sUser {
                        username: format!("system:node:{name}"),
                        uid: None,
                        groups: vec!["system:nodes".into(), "system:authenticated".into()],
                        extra: None,
                    },
                    ip: format!("10.0.1.{}", 11 + i),
                    name,
                    next_pod_ip: 10,
                }
            })
            .collect();

        // service names are unique across the org, so Vault role = service name
        let mut pool: Vec<&str> = SERVICES.to_vec();
        let mut workloads = Vec::with_capacity(n_workloads);
        for i in 0..n_workloads {
            let ns = namespaces[i % n_teams].clone();
            let svc = if pool.is_empty() {
                format!("svc-{i}")
            } else {
                let k = rng.random_range(0..pool.len());
                pool.swap_remove(k).to_string()
            };
            let n_secrets = rng.random_range(1..=4usize);
            let mut suf = SECRET_SUFFIXES.to_vec();
            let secrets: Vec<String> = (0..n_secrets)
                .map(|_| {
                    let k = rng.random_range(0..suf.len());
                    format!("{svc}-{}", suf.swap_remove(k))
                })
                .collect();
            let n_keys = rng.random_range(1..=5usize);
            let mut keys = VAULT_KEYS.to_vec();
            let vault_paths: Vec<String> = (0..n_keys)
                .map(|_| {
                    let k = rng.random_range(0..keys.len());
                    format!("secret/data/{ns}/{svc}/{}", keys.swap_remove(k))
                })
                .collect();
            let replicas = *[1usize, 2, 2, 3, 3, 4]
                .get(rng.random_range(0..6usize))
                .unwrap_or(&2);
            let ua_k8s = match rng.random_range(0..4u32) {
                0 => "kubernetes-client/java/19.0.0".to_string(),
                1 => "OpenAPI-Generator/29.0.0/python".to_string(),
                _ => format!("{svc}/v0.0.0 (linux/amd64) kubernetes/$Format"),
            };
            let ua_vault = match rng.random_range(0..3u32) {
                0 => "Vault Agent/1.17.2 (+https://www.vaultproject.io/; go1.22.5)",
                1 => "Go-http-client/1.1",
                _ => "vault-java-driver/5.1.0",
            };
            // log-normal spread of read volume: a few chatty services, most quiet
            let peak = (2.5f64 + rng.random::<f64>() * 1.5).exp().min(60.0);
            let misconfigured = match i {
                3 => Some(Misconfig::K8sListPods),
                7 => Some(Misconfig::VaultStalePath),
                _ => None,
            };
            let user = sa_user(ids, &ns, &svc);
            let entity_id = ids.uuid(&format!("entity/{ns}/{svc}"));
            let mut w = Workload {
                ns,
                svc,
                user,
                users_by_pod: vec![],
                pods: vec![],
                replicas,
                generation: 0,
                secrets,
                vault_paths,
                entity_id,
                tokens: vec![],
                ua_k8s,
                ua_vault,
                vault_peak_per_hour: peak,
                secret_poll_min: (rng.random::<f64>() < 0.3)
                    .then(|| 5.0 + rng.random::<f64>() * 10.0),
                leader_lease: rng.random::<f64>() < 0.2,
                leases: rng.random::<f64>() < 0.3,
                misconfigured,
                configmap_reader: rng.random::<f64>() < 0.5,
            };
            respawn_pods(ids, &mut w, &mut nodes, rng, start_us - 3 * 86_400_000_000);
            workloads.push(w);
        }

        let people: &[(&str, &str)] = &[
            ("alice", "platform"),
            ("bob", "payments"),
            ("carol", "identity"),
            ("dave", "data"),
            ("erin", "platform"),
            ("frank", "search"),
            ("grace", "checkout"),
            ("heidi", "notifications"),
        ];
        let n_humans = (5 + n_workloads / 20).min(people.len());
        let humans = people[..n_humans]
            .iter()
            .enumerate()
            .map(|(i, (login, team))| {
                // a person's team namespace, or a real namespace when the org is small
                let team_ns = if namespaces.iter().any(|n| n == team) {
                    team.to_string()
                } else {
                    namespaces[i % namespaces.len()].clone()
                };
                let email = format!("{login}@example.com");
                let method = if i % 3 == 1 {
                    VaultMethod::Userpass
                } else {
                    VaultMethod::Oidc
                };
                let (display, mount, metadata): (
                    String,
                    &'static str,
                    Vec<(&'static str, String)>,
                ) = match method {
                    VaultMethod::Userpass => (
                        format!("userpass-{login}"),
                        "userpass",
                        vec![("username", login.to_string())],
                    ),
                    VaultMethod::Oidc => (
                        format!("oidc-{email}"),
                        "oidc",
                        vec![("email", email.clone()), ("role", "default".into())],
                    ),
                };
                let group = format!("oidc:{team}-team");
                let mut secrets: Vec<(String, String)> = workloads
                    .iter()
                    .filter(|w| w.ns == team_ns)
                    .flat_map(|w| w.secrets.iter().map(|s| (w.ns.clone(), s.clone())))
                    .collect();
                let mut paths: Vec<String> = workloads
                    .iter()
                    .filter(|w| w.ns == team_ns)
                    .flat_map(|w| w.vault_paths.iter().cloned())
                    .collect();
                let usual_secrets: Vec<(String, String)> = (0..2.min(secrets.len()))
                    .map(|_| secrets.swap_remove(rng.random_range(0..secrets.len())))
                    .collect();
                let usual_paths: Vec<String> = (0..3.min(paths.len()))
                    .map(|_| paths.swap_remove(rng.random_range(0..paths.len())))
                    .collect();
                Human {
                    login: login.to_string(),
                    user: K8sUser {
                        username: email.clone(),
                        uid: None,
                        groups: vec![group, "system:authenticated".into()],
                        extra: None,
                    },
                    email,
                    team: team_ns,
                    ip: format!("192.0.2.{}", 20 + i),
                    vault_method: method,
                    vault_auth: VaultAuth {
                        token: format!("hvs.human.{login}"),
                        display_name: display,
                        policies: vec!["default".into(), format!("{team}-developer")],
                        metadata,
                        entity_id: Some(ids.uuid(&format!("entity/human/{login}"))),
                        token_type: "service",
                        ttl: 28_800,
                        issue_us: start_us,
                        mount_type: mount,
                    },
                    on_call: *team == "platform",
                    commands_per_hour: 4.0 + rng.random::<f64>() * 8.0,
                    usual_secrets,
                    usual_paths,
                }
            })
            .collect();

        let cp = "10.0.1.5";
        Org {
            kcm: controller(
                K8sUser {
                    username: "system:kube-controller-manager".into(),
                    uid: None,
                    groups: vec!["system:authenticated".into()],
                    extra: None,
                },
                cp,
                "kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/3968350/leader-election",
            ),
            scheduler: controller(
                K8sUser {
                    username: "system:kube-scheduler".into(),
                    uid: None,
                    groups: vec!["system:authenticated".into()],
                    extra: None,
                },
                cp,
                "kube-scheduler/v1.30.2 (linux/amd64) kubernetes/3968350/leader-election",
            ),
            external_secrets: controller(
                sa_user(ids, "external-secrets", "external-secrets"),
                "10.244.250.11",
                "external-secrets/v0.0.0 (linux/amd64) kubernetes/$Format",
            ),
            cert_manager: controller(
                sa_user(ids, "cert-manager", "cert-manager"),
                "10.244.250.12",
                "cert-manager-controller/v1.15.1 (linux/amd64) cert-manager/8b5b3a4e4ac8ab8ba6b7f0f8c1e2d3a4b5c6d7e8",
            ),
            argocd: controller(
                sa_user(ids, "argocd", "argocd-application-controller"),
                "10.244.250.13",
                "argocd-application-controller/v2.11.3+3f344d5 (linux/amd64) kubernetes/$Format",
            ),
            ci: controller(
                K8sUser {
                    username: "github-actions".into(),
                    uid: None,
                    groups: vec!["ci:deployers".into(), "system:authenticated".into()],
                    extra: None,
                },
                "10.0.2.40",
                "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
            ),
            rs_controller: controller(
                sa_user(ids, "kube-system", "replicaset-controller"),
                cp,
                "kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/3968350/system:serviceaccount:kube-system:replicaset-controller",
            ),
            deploy_controller: controller(
                sa_user(ids, "kube-system", "deployment-controller"),
                cp,
                "kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/3968350/system:serviceaccount:kube-system:deployment-controller",
            ),
            prometheus: controller(
                sa_user(ids, "monitoring", "prometheus"),
                "10.244.250.20",
                "Prometheus/2.53.0",
            ),
            anonymous: K8sUser {
                username: "system:anonymous".into(),
                uid: None,
                groups: vec!["system:unauthenticated".into()],
                extra: None,
            },
            lb_ip: "10.0.1.2".into(),
            namespaces,
            workloads,
            nodes,
            humans,
        }
    }
}

/// New pods (names, IPs, nodes, tokens) for a workload: at start and at every rollout.
pub(crate) fn respawn_pods(
    ids: &Ids,
    w: &mut Workload,
    nodes: &mut [Node],
    rng: &mut Xoshiro256PlusPlus,
    now_us: i64,
) {
    w.generation += 1;
    let rs = ids.hex(&format!("rs/{}/{}/{}", w.ns, w.svc, w.generation), 10);
    let rs = rs
        .chars()
        .map(|c| {
            if c.is_ascii_digit() && c < '4' {
                'b'
            } else {
                c
            }
        })
        .collect::<String>();
    w.pods = (0..w.replicas)
        .map(|r| {
            let node = rng.random_range(0..nodes.len());
            let n = &mut nodes[node];
            n.next_pod_ip = if n.next_pod_ip >= 250 {
                10
            } else {
                n.next_pod_ip + 1
            };
            let tag = format!("pod/{}/{}/{}/{r}", w.ns, w.svc, w.generation);
            Pod {
                name: format!("{}-{rs}-{}", w.svc, ids.suffix(&tag, 5)),
                uid: ids.uuid(&tag),
                ip: format!("10.244.{}.{}", node + 1, n.next_pod_ip),
                node,
            }
        })
        .collect();
    w.users_by_pod = w
        .pods
        .iter()
        .map(|p| {
            let mut u = w.user.clone();
            u.extra = Some(pod_extra(ids, p, &nodes[p.node]));
            u
        })
        .collect();
    w.tokens = w
        .pods
        .iter()
        .map(|p| VaultAuth {
            token: format!("hvs.{}", p.uid),
            display_name: w.display_name(),
            policies: vec!["default".into(), format!("{}-{}", w.ns, w.svc)],
            metadata: vec![
                ("role", w.svc.clone()),
                ("service_account_name", w.svc.clone()),
                ("service_account_namespace", w.ns.clone()),
                ("service_account_secret_name", String::new()),
                (
                    "service_account_uid",
                    w.user.uid.clone().unwrap_or_default(),
                ),
            ],
            entity_id: Some(w.entity_id.clone()),
            token_type: "service",
            ttl: 3600,
            issue_us: now_us,
            mount_type: "kubernetes",
        })
        .collect();
}
