//! Wire formats of the generator: a small JSON writer (fixed key order, so output is
//! byte-stable), RFC 3339 timestamps, deterministic ids and HMAC look-alikes, and the
//! builders of Kubernetes audit `Event`s and Vault audit-device entries.
//!
//! Invariant: nothing here emits a secret value. Vault values are `hmac-sha256:` strings
//! derived from a hash of a label, Kubernetes Secret bodies are never written (Metadata
//! level), and tokens appear only as HMACs.

use xxhash_rust::xxh3::{xxh3_64_with_seed, xxh3_128_with_seed};

/// Appends JSON with commas handled by a stack of "first element" flags.
pub(crate) struct Json {
    pub buf: String,
    first: Vec<bool>,
}

impl Json {
    pub fn with_capacity(n: usize) -> Self {
        Json {
            buf: String::with_capacity(n),
            first: Vec::with_capacity(8),
        }
    }

    fn sep(&mut self) {
        if let Some(f) = self.first.last_mut() {
            if *f {
                *f = false;
            } else {
                self.buf.push(',');
            }
        }
    }

    fn key(&mut self, k: &str) {
        self.sep();
        self.buf.push('"');
        self.buf.push_str(k);
        self.buf.push_str("\":");
    }

    pub fn obj(&mut self) -> &mut Self {
        self.sep();
        self.buf.push('{');
        self.first.push(true);
        self
    }

    pub fn obj_at(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.buf.push('{');
        self.first.push(true);
        self
    }

    pub fn arr_at(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.buf.push('[');
        self.first.push(true);
        self
    }

    pub fn end_obj(&mut self) -> &mut Self {
        self.first.pop();
        self.buf.push('}');
        self
    }

    pub fn end_arr(&mut self) -> &mut Self {
        self.first.pop();
        self.buf.push(']');
        self
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        escape_into(&mut self.buf, v);
        self
    }

    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.str(k, v);
        }
        self
    }

    pub fn num(&mut self, k: &str, v: i64) -> &mut Self {
        self.key(k);
        push_int(&mut self.buf, v);
        self
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    /// A value that is already JSON text.
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str(json);
        self
    }

    /// An array element.
    pub fn item(&mut self, v: &str) -> &mut Self {
        self.sep();
        escape_into(&mut self.buf, v);
        self
    }

    pub fn str_arr(&mut self, k: &str, vs: &[&str]) -> &mut Self {
        self.arr_at(k);
        for v in vs {
            self.item(v);
        }
        self.end_arr()
    }

    pub fn string_arr(&mut self, k: &str, vs: &[String]) -> &mut Self {
        self.arr_at(k);
        for v in vs {
            self.item(v);
        }
        self.end_arr()
    }
}

pub(crate) fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_int(out: &mut String, v: i64) {
    use std::fmt::Write;
    let _ = write!(out, "{v}");
}

// ---------------------------------------------------------------- time

pub(crate) const US_PER_SEC: i64 = 1_000_000;
pub(crate) const US_PER_MIN: i64 = 60 * US_PER_SEC;
pub(crate) const US_PER_HOUR: i64 = 60 * US_PER_MIN;
pub(crate) const US_PER_DAY: i64 = 24 * US_PER_HOUR;

/// (year, month, day) of a count of days since 1970-01-01 (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` of a day number.
pub(crate) fn date_string(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 UTC with `frac` fractional digits taken from `sub` (a value below 10^frac).
fn rfc3339(out: &mut String, time_us: i64, frac: usize, sub: i64) {
    use std::fmt::Write;
    let day = time_us.div_euclid(US_PER_DAY);
    let rem = time_us.rem_euclid(US_PER_DAY);
    let (y, mo, d) = civil_from_days(day);
    let secs = rem / US_PER_SEC;
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if frac > 0 {
        let _ = write!(out, ".{:0width$}", sub, width = frac);
    }
    out.push('Z');
}

/// `2026-11-02T10:00:00.123456Z` (Kubernetes audit timestamps have microseconds).
pub(crate) fn ts_micros(time_us: i64) -> String {
    let mut s = String::with_capacity(27);
    rfc3339(&mut s, time_us, 6, time_us.rem_euclid(US_PER_SEC));
    s
}

/// `2026-11-02T10:00:00.123456789Z` (Vault writes nanoseconds; the last three digits are
/// filler derived from `salt`).
pub(crate) fn ts_nanos(time_us: i64, salt: u64) -> String {
    let mut s = String::with_capacity(30);
    let nanos = time_us.rem_euclid(US_PER_SEC) * 1000 + (salt % 1000) as i64;
    rfc3339(&mut s, time_us, 9, nanos);
    s
}

/// `2026-11-02T10:00:00Z`.
pub(crate) fn ts_secs(time_us: i64) -> String {
    let mut s = String::with_capacity(20);
    rfc3339(&mut s, time_us, 0, 0);
    s
}

// ---------------------------------------------------------------- ids

/// Deterministic identifiers and HMAC look-alikes for one seed.
#[derive(Clone, Copy)]
pub(crate) struct Ids {
    seed: u64,
}

impl Ids {
    pub fn new(seed: u64) -> Self {
        Ids { seed }
    }

    pub fn hash(&self, tag: &str) -> u64 {
        xxh3_64_with_seed(tag.as_bytes(), self.seed)
    }

    /// A UUID (version 4 layout) that depends only on the seed and `tag`.
    pub fn uuid(&self, tag: &str) -> String {
        uuid_of(xxh3_128_with_seed(tag.as_bytes(), self.seed))
    }

    /// The `n`-th event id of the run.
    pub fn event_uuid(&self, n: u64) -> String {
        uuid_of(xxh3_128_with_seed(
            &n.to_le_bytes(),
            self.seed ^ 0x5eed_ad17,
        ))
    }

    /// `hmac-sha256:<64 hex>`: what Vault writes for a value with the default audit HMAC.
    /// The same input always gives the same string, as with a real audit device.
    pub fn hmac(&self, value: &str) -> String {
        let a = xxh3_128_with_seed(value.as_bytes(), self.seed ^ 0x4d41_4331);
        let b = xxh3_128_with_seed(value.as_bytes(), self.seed ^ 0x4d41_4332);
        format!("hmac-sha256:{a:032x}{b:032x}")
    }

    /// Lowercase alphanumeric suffix like the ones Kubernetes appends to pod names.
    pub fn suffix(&self, tag: &str, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut h = self.hash(tag);
        let mut s = String::with_capacity(len);
        for _ in 0..len {
            s.push(ALPHABET[(h % ALPHABET.len() as u64) as usize] as char);
            h /= ALPHABET.len() as u64;
            if h == 0 {
                h = self.hash(&format!("{tag}/{}", s.len()));
            }
        }
        s
    }

    pub fn hex(&self, tag: &str, len: usize) -> String {
        let v = xxh3_128_with_seed(tag.as_bytes(), self.seed);
        let s = format!("{v:032x}");
        s[..len.min(32)].to_string()
    }
}

fn uuid_of(v: u128) -> String {
    let v = (v & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

// ---------------------------------------------------------------- Kubernetes

/// The authenticated user of a Kubernetes request.
#[derive(Clone, Debug)]
pub(crate) struct K8sUser {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    /// `user.extra` as JSON text (bound service-account token claims), if any.
    pub extra: Option<String>,
}

/// The `objectRef` of a resource request.
#[derive(Clone, Debug, Default)]
pub(crate) struct ObjRef {
    pub resource: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub api_group: &'static str,
    pub api_version: &'static str,
    pub subresource: Option<&'static str>,
}

impl ObjRef {
    pub fn core(resource: &'static str, ns: Option<&str>, name: Option<&str>) -> Self {
        ObjRef {
            resource,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            api_group: "",
            api_version: "v1",
            subresource: None,
        }
    }

    pub fn group(
        group: &'static str,
        resource: &'static str,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Self {
        ObjRef {
            resource,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            api_group: group,
            api_version: "v1",
            subresource: None,
        }
    }

    pub fn sub(mut self, s: &'static str) -> Self {
        self.subresource = Some(s);
        self
    }

    /// The request path (without query).
    pub fn path(&self) -> String {
        let mut p = if self.api_group.is_empty() {
            format!("/api/{}", self.api_version)
        } else {
            format!("/apis/{}/{}", self.api_group, self.api_version)
        };
        if let Some(ns) = &self.namespace
            && self.resource != "namespaces"
        {
            p.push_str("/namespaces/");
            p.push_str(ns);
        }
        p.push('/');
        p.push_str(self.resource);
        if let Some(n) = &self.name {
            p.push('/');
            p.push_str(n);
        }
        if let Some(s) = self.subresource {
            p.push('/');
            p.push_str(s);
        }
        p
    }
}

/// One Kubernetes API request as the audit log sees it.
#[derive(Clone, Debug)]
pub(crate) struct K8sReq<'a> {
    pub verb: &'static str,
    pub user: &'a K8sUser,
    pub impersonated: Option<&'a K8sUser>,
    pub src_ip: &'a str,
    pub user_agent: &'a str,
    pub object: Option<ObjRef>,
    /// Full request URI; derived from `object` (and `verb`) when `None`.
    pub uri: Option<String>,
    pub code: u16,
    /// `Metadata`, `Request` or `RequestResponse`.
    pub level: &'static str,
    pub request_object: Option<String>,
    pub response_object: Option<String>,
    /// The RBAC reason annotation of an allowed request.
    pub allow_reason: Option<String>,
    pub received_us: i64,
    pub latency_us: i64,
}

impl<'a> K8sReq<'a> {
    pub fn new(
        verb: &'static str,
        user: &'a K8sUser,
        src_ip: &'a str,
        ua: &'a str,
        object: Option<ObjRef>,
        at: i64,
    ) -> Self {
        K8sReq {
            verb,
            user,
            impersonated: None,
            src_ip,
            user_agent: ua,
            object,
            uri: None,
            code: 200,
            level: "Metadata",
            request_object: None,
            response_object: None,
            allow_reason: None,
            received_us: at,
            latency_us: 2_000,
        }
    }

    pub fn code(mut self, c: u16) -> Self {
        self.code = c;
        self
    }

    pub fn latency(mut self, us: i64) -> Self {
        self.latency_us = us.max(50);
        self
    }

    pub fn uri(mut self, u: String) -> Self {
        self.uri = Some(u);
        self
    }

    pub fn reason(mut self, r: String) -> Self {
        self.allow_reason = Some(r);
        self
    }

    pub fn request_body(mut self, level: &'static str, body: String) -> Self {
        self.level = level;
        self.request_object = Some(body);
        self
    }

    pub fn response_body(mut self, body: String) -> Self {
        self.level = "RequestResponse";
        self.response_object = Some(body);
        self
    }

    pub fn request_uri(&self) -> String {
        if let Some(u) = &self.uri {
            return u.clone();
        }
        let Some(o) = &self.object else {
            return "/".into();
        };
        let mut p = o.path();
        match self.verb {
            "list" => p.push_str("?limit=500"),
            "watch" => p.push_str("?allowWatchBookmarks=true&watch=true"),
            "patch" if o.api_group == "apps" => {
                p.push_str("?fieldManager=argocd-controller");
            }
            _ => {}
        }
        p
    }
}

fn status_json(req: &K8sReq<'_>) -> String {
    let mut j = Json::with_capacity(256);
    j.obj().obj_at("metadata").end_obj();
    let (reason, kind_name) = match req.code {
        403 => ("Forbidden", true),
        404 => ("NotFound", true),
        409 => ("AlreadyExists", true),
        401 => ("Unauthorized", false),
        _ => ("", false),
    };
    if req.code >= 400 {
        j.str("status", "Failure");
        let who = req.impersonated.unwrap_or(req.user).username.as_str();
        let msg = match (&req.object, req.code) {
            (Some(o), 403) => {
                let what = match &o.name {
                    Some(n) => format!("{} \"{n}\" is forbidden", o.resource),
                    None => format!("{} is forbidden", o.resource),
                };
                let scope = match &o.namespace {
                    Some(ns) => format!(" in the namespace \"{ns}\""),
                    None => " at the cluster scope".to_string(),
                };
                format!(
                    "{what}: User \"{who}\" cannot {} resource \"{}{}\" in API group \"{}\"{scope}",
                    req.verb,
                    o.resource,
                    o.subresource.map(|s| format!("/{s}")).unwrap_or_default(),
                    o.api_group
                )
            }
            (Some(o), 404) => format!(
                "{} \"{}\" not found",
                o.resource,
                o.name.as_deref().unwrap_or("")
            ),
            (Some(o), 409) => format!(
                "{} \"{}\" already exists",
                o.resource,
                o.name.as_deref().unwrap_or("")
            ),
            (None, 403) => format!(
                "forbidden: User \"{who}\" cannot get path \"{}\"",
                req.request_uri()
            ),
            _ => "Unauthorized".to_string(),
        };
        j.str("message", &msg).str("reason", reason);
        if kind_name && let Some(o) = &req.object {
            j.obj_at("details");
            j.opt_str("name", o.name.as_deref());
            if !o.api_group.is_empty() {
                j.str("group", o.api_group);
            }
            j.str("kind", o.resource);
            j.end_obj();
        }
    }
    j.num("code", req.code as i64);
    j.end_obj();
    j.buf
}

fn user_json(j: &mut Json, key: &str, u: &K8sUser) {
    j.obj_at(key);
    j.str("username", &u.username);
    j.opt_str("uid", u.uid.as_deref());
    j.string_arr("groups", &u.groups);
    if let Some(x) = &u.extra {
        j.raw("extra", x);
    }
    j.end_obj();
}

/// One audit `Event` line for `stage` (`ResponseStarted` or `ResponseComplete`).
pub(crate) fn k8s_event(req: &K8sReq<'_>, audit_id: &str, stage: &str) -> Vec<u8> {
    let mut j = Json::with_capacity(1024);
    j.obj();
    j.str("kind", "Event")
        .str("apiVersion", "audit.k8s.io/v1")
        .str("level", req.level)
        .str("auditID", audit_id)
        .str("stage", stage)
        .str("requestURI", &req.request_uri())
        .str("verb", req.verb);
    user_json(&mut j, "user", req.user);
    if let Some(imp) = req.impersonated {
        user_json(&mut j, "impersonatedUser", imp);
    }
    j.str_arr("sourceIPs", &[req.src_ip]);
    j.str("userAgent", req.user_agent);
    if let Some(o) = &req.object {
        j.obj_at("objectRef");
        j.str("resource", o.resource);
        j.opt_str("namespace", o.namespace.as_deref());
        j.opt_str("name", o.name.as_deref());
        if !o.api_group.is_empty() {
            j.str("apiGroup", o.api_group);
        }
        j.str("apiVersion", o.api_version);
        j.opt_str("subresource", o.subresource);
        j.end_obj();
    }
    let started = stage == "ResponseStarted";
    if started {
        // a long-running request: the status is known, the stream is still open
        let code = if req.verb == "watch" { 200 } else { 101 };
        j.raw(
            "responseStatus",
            &format!("{{\"metadata\":{{}},\"code\":{code}}}"),
        );
    } else {
        j.raw("responseStatus", &status_json(req));
    }
    if req.level != "Metadata"
        && let Some(b) = &req.request_object
    {
        j.raw("requestObject", b);
    }
    if req.level == "RequestResponse"
        && !started
        && let Some(b) = &req.response_object
    {
        j.raw("responseObject", b);
    }
    let stage_us = if started {
        req.received_us + req.latency_us.min(3_000)
    } else {
        req.received_us + req.latency_us
    };
    j.str("requestReceivedTimestamp", &ts_micros(req.received_us));
    j.str("stageTimestamp", &ts_micros(stage_us));
    j.obj_at("annotations");
    if req.code == 403 {
        j.str("authorization.k8s.io/decision", "forbid");
        j.str("authorization.k8s.io/reason", "");
    } else {
        j.str("authorization.k8s.io/decision", "allow");
        j.str(
            "authorization.k8s.io/reason",
            req.allow_reason.as_deref().unwrap_or(""),
        );
    }
    j.end_obj();
    j.end_obj();
    j.buf.into_bytes()
}

// ---------------------------------------------------------------- Vault

/// The token a Vault request was made with (as the audit device shows it).
#[derive(Clone, Debug)]
pub(crate) struct VaultAuth {
    /// Plain token id: only its HMAC is ever written.
    pub token: String,
    pub display_name: String,
    pub policies: Vec<String>,
    /// Token metadata as `(key, value)` pairs (not HMAC'd by Vault).
    pub metadata: Vec<(&'static str, String)>,
    pub entity_id: Option<String>,
    pub token_type: &'static str,
    pub ttl: i64,
    pub issue_us: i64,
    /// Method mount that issued it (for logins: `kubernetes`, `userpass`, `oidc`).
    pub mount_type: &'static str,
}

/// One Vault request (and its response).
#[derive(Clone, Debug)]
pub(crate) struct VaultReq<'a> {
    pub id: String,
    pub time_us: i64,
    pub latency_us: i64,
    /// The caller's token (`None` for unauthenticated paths and logins).
    pub auth: Option<&'a VaultAuth>,
    /// For logins: the token issued by the response.
    pub issued: Option<&'a VaultAuth>,
    pub operation: &'static str,
    pub path: String,
    pub mount_type: &'static str,
    pub mount_point: &'static str,
    pub remote_ip: &'a str,
    pub remote_port: u16,
    pub user_agent: Option<&'a str>,
    /// Request data keys (values are HMAC'd from `label/key`).
    pub request_keys: &'a [&'a str],
    /// Response data keys of a KV v2 read (values HMAC'd), or `None`.
    pub kv_keys: Option<&'a [&'a str]>,
    /// List responses: the keys (HMAC'd).
    pub list_keys: Option<Vec<String>>,
    /// Denied with "permission denied".
    pub denied: bool,
}

impl<'a> VaultReq<'a> {
    /// A request; its id is assigned when it is emitted.
    pub fn new(
        time_us: i64,
        auth: Option<&'a VaultAuth>,
        operation: &'static str,
        path: String,
        remote_ip: &'a str,
    ) -> Self {
        let (mount_type, mount_point) = mount_of(&path);
        VaultReq {
            id: String::new(),
            time_us,
            latency_us: 900,
            auth,
            issued: None,
            operation,
            path,
            mount_type,
            mount_point,
            remote_ip,
            remote_port: 40_000,
            user_agent: None,
            request_keys: &[],
            kv_keys: None,
            list_keys: None,
            denied: false,
        }
    }
}

/// Mount type and mount point of a path in the simulated Vault.
pub(crate) fn mount_of(path: &str) -> (&'static str, &'static str) {
    if path.starts_with("secret/") {
        ("kv", "secret/")
    } else if path.starts_with("auth/kubernetes/") {
        ("kubernetes", "auth/kubernetes/")
    } else if path.starts_with("auth/userpass/") {
        ("userpass", "auth/userpass/")
    } else if path.starts_with("auth/oidc/") {
        ("oidc", "auth/oidc/")
    } else if path.starts_with("auth/token/") {
        ("token", "auth/token/")
    } else if path.starts_with("database/") {
        ("database", "database/")
    } else {
        ("system", "sys/")
    }
}

fn mount_accessor(ids: &Ids, mount_point: &str) -> String {
    let kind = match mount_point {
        "secret/" => "kv",
        "auth/kubernetes/" => "auth_kubernetes",
        "auth/userpass/" => "auth_userpass",
        "auth/oidc/" => "auth_oidc",
        "auth/token/" => "auth_token",
        "database/" => "database",
        _ => "system",
    };
    format!("{kind}_{}", ids.hex(mount_point, 8))
}

fn auth_json(j: &mut Json, key: &str, a: &VaultAuth, ids: &Ids, with_mount: bool) {
    j.obj_at(key);
    j.str("client_token", &ids.hmac(&a.token));
    j.str("accessor", &ids.hmac(&format!("accessor/{}", a.token)));
    j.str("display_name", &a.display_name);
    j.string_arr("policies", &a.policies);
    j.string_arr("token_policies", &a.policies);
    if !a.metadata.is_empty() {
        j.obj_at("metadata");
        for (k, v) in &a.metadata {
            j.str(k, v);
        }
        j.end_obj();
    }
    j.opt_str("entity_id", a.entity_id.as_deref());
    j.str("token_type", a.token_type);
    if a.ttl > 0 {
        j.num("token_ttl", a.ttl);
    }
    if with_mount {
        j.str("mount_type", a.mount_type);
    } else {
        j.str("token_issue_time", &ts_secs(a.issue_us));
    }
    j.end_obj();
}

fn request_json(j: &mut Json, r: &VaultReq<'_>, ids: &Ids) {
    j.obj_at("request");
    j.str("id", &r.id);
    j.str("operation", r.operation);
    j.str("mount_point", r.mount_point);
    j.str("mount_type", r.mount_type);
    j.str("mount_accessor", &mount_accessor(ids, r.mount_point));
    if r.mount_type == "kv" {
        j.str("mount_running_version", "v0.19.0+builtin");
        j.str("mount_class", "secret");
    }
    if let Some(a) = r.auth {
        j.opt_str("client_id", a.entity_id.as_deref());
        j.str("client_token", &ids.hmac(&a.token));
        j.str(
            "client_token_accessor",
            &ids.hmac(&format!("accessor/{}", a.token)),
        );
    }
    j.obj_at("namespace").str("id", "root").end_obj();
    j.str("path", &r.path);
    if !r.request_keys.is_empty() {
        j.obj_at("data");
        for k in r.request_keys {
            j.str(k, &ids.hmac(&format!("{}/{k}/{}", r.path, r.id)));
        }
        j.end_obj();
    }
    j.str("remote_address", r.remote_ip);
    j.num("remote_port", r.remote_port as i64);
    if let Some(ua) = r.user_agent {
        j.obj_at("headers").str_arr("user-agent", &[ua]).end_obj();
    }
    j.end_obj();
}

const DENIED_REQ: &str = "permission denied";
const DENIED_RESP: &str = "1 error occurred:\n\t* permission denied\n\n";

/// The `request` entry and the `response` entry of one Vault request.
pub(crate) fn vault_pair(r: &VaultReq<'_>, ids: &Ids) -> (Vec<u8>, Vec<u8>) {
    let salt = ids.hash(&r.id);
    let mut q = Json::with_capacity(1024);
    q.obj();
    q.str("time", &ts_nanos(r.time_us, salt));
    q.str("type", "request");
    match r.auth {
        Some(a) => auth_json(&mut q, "auth", a, ids, false),
        None => {
            q.obj_at("auth").str("token_type", "default").end_obj();
        }
    }
    request_json(&mut q, r, ids);
    if r.denied {
        q.str("error", DENIED_REQ);
    }
    q.end_obj();

    let mut p = Json::with_capacity(1536);
    p.obj();
    p.str("time", &ts_nanos(r.time_us + r.latency_us, salt >> 10));
    p.str("type", "response");
    match (r.auth, r.issued) {
        (_, Some(a)) if !r.denied => auth_json(&mut p, "auth", a, ids, false),
        (Some(a), _) => auth_json(&mut p, "auth", a, ids, false),
        (None, _) => {
            p.obj_at("auth").str("token_type", "default").end_obj();
        }
    }
    request_json(&mut p, r, ids);
    p.obj_at("response");
    p.str("mount_point", r.mount_point);
    p.str("mount_type", r.mount_type);
    p.str("mount_accessor", &mount_accessor(ids, r.mount_point));
    if r.mount_type == "kv" {
        p.str("mount_running_plugin_version", "v0.19.0+builtin");
        p.str("mount_class", "secret");
    }
    if r.denied {
        p.obj_at("data")
            .str("error", &ids.hmac(DENIED_REQ))
            .end_obj();
    } else if let Some(a) = r.issued {
        auth_json(&mut p, "auth", a, ids, true);
    } else if let Some(keys) = r.kv_keys {
        p.obj_at("data");
        p.obj_at("data");
        for k in keys {
            p.str(k, &ids.hmac(&format!("{}#{k}", r.path)));
        }
        p.end_obj();
        p.obj_at("metadata");
        p.str("created_time", &ids.hmac(&format!("{}#created", r.path)));
        p.raw("custom_metadata", "null");
        p.str("deletion_time", &ids.hmac(""));
        p.bool("destroyed", false);
        p.num("version", 1 + (ids.hash(&r.path) % 7) as i64);
        p.end_obj();
        p.end_obj();
    } else if let Some(keys) = &r.list_keys {
        p.obj_at("data");
        p.arr_at("keys");
        for k in keys {
            p.item(&ids.hmac(k));
        }
        p.end_arr();
        p.end_obj();
    } else if r.path == "auth/token/renew-self" || r.path == "sys/leases/renew" {
        if r.path == "sys/leases/renew" {
            p.obj_at("secret")
                .str("lease_id", &ids.hmac(&format!("lease/{}", r.id)))
                .end_obj();
        }
        p.num("lease_duration", 3600);
        p.bool("renewable", true);
    } else if r.path == "sys/health" {
        p.obj_at("data");
        p.str("cluster_id", &ids.hmac("cluster_id"));
        p.str("cluster_name", &ids.hmac("cluster_name"));
        p.bool("initialized", true);
        p.bool("sealed", false);
        p.bool("standby", false);
        p.str("version", &ids.hmac("1.17.2"));
        p.end_obj();
    }
    p.end_obj();
    if r.denied {
        p.str("error", DENIED_RESP);
    }
    p.end_obj();
    (q.buf.into_bytes(), p.buf.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_chrono() {
        for t in [0i64, 1_793_577_600_123_456, 1_700_000_000_000_001] {
            let c = chrono::DateTime::from_timestamp_micros(t).unwrap();
            assert_eq!(ts_micros(t), c.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
            assert_eq!(ts_secs(t), c.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
    }

    #[test]
    fn uuids_look_like_v4() {
        let u = Ids::new(7).event_uuid(1);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn json_escapes_and_separates() {
        let mut j = Json::with_capacity(16);
        j.obj().str("a", "x\"\n").num("b", 1).arr_at("c").item("d");
        j.end_arr().end_obj();
        assert_eq!(j.buf, r#"{"a":"x\"\n","b":1,"c":["d"]}"#);
    }
}
