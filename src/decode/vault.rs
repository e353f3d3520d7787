//! Vault and OpenBao audit-device decoder (`request`, `response`, `kmip-request`,
//! `kmip-response` entries). HMAC'd values are kept as they are; anything that is not
//! HMAC'd where Vault would normally HMAC it is redacted.
//!
//! A request and its response share `request.id`; [`Pairer`] holds requests until their
//! response arrives (the response carries the outcome and is the row) or until a bounded
//! wait in event time passes, after which the request becomes a row of its own with
//! outcome `unknown` (or `denied` when Vault already logged an error on the request).
//!
//! Identity: a token from the Kubernetes auth method carries
//! `service_account_name`/`service_account_namespace` metadata; such actors are written
//! as `system:serviceaccount:<ns>:<name>`, the same string the Kubernetes decoder uses,
//! so the two sources name one workload the same way.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, de};
use serde_json::value::RawValue;

use super::{DecodeOptions, EventSink, Rejected, borrow};
use crate::normalize::redact;
use crate::normalize::{AccessEvent, Outcome, Source, parse_time_us, strip_port};

type S<'a> = Cow<'a, str>;

#[derive(Deserialize, Default)]
struct Auth<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    client_token: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    display_name: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    entity_id: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt_vec")]
    policies: Option<Vec<S<'a>>>,
    #[serde(borrow, default)]
    metadata: Option<Metadata<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    mount_type: Option<S<'a>>,
}

/// The token metadata fields that identify a workload (others are ignored).
#[derive(Deserialize, Default)]
struct Metadata<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    service_account_name: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    service_account_namespace: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    role_name: Option<S<'a>>,
}

#[derive(Deserialize)]
struct Namespace<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    path: Option<S<'a>>,
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    id: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    operation: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    mount_type: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    client_token: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    path: Option<S<'a>>,
    #[serde(borrow, default)]
    namespace: Option<Namespace<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    remote_address: Option<S<'a>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    headers: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    client_certificate_serial_number: Option<S<'a>>,
}

#[derive(Deserialize)]
struct WrapInfo<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    token: Option<S<'a>>,
}

#[derive(Deserialize)]
struct Response<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    auth: Option<Auth<'a>>,
    #[serde(borrow, default)]
    wrap_info: Option<WrapInfo<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    time: Option<S<'a>>,
    #[serde(borrow, rename = "type", deserialize_with = "borrow::cow")]
    kind: S<'a>,
    #[serde(borrow, default)]
    auth: Option<Auth<'a>>,
    #[serde(borrow, default)]
    request: Option<Request<'a>>,
    #[serde(borrow, default)]
    response: Option<Response<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    error: Option<S<'a>>,
}

fn is_request(kind: &str) -> bool {
    kind == "request" || kind == "kmip-request"
}

fn check_kind(kind: &str) -> Result<(), Rejected> {
    match kind {
        "request" | "response" | "kmip-request" | "kmip-response" => Ok(()),
        other => Err(Rejected::new(
            "vault",
            format!("unknown audit entry type {other:?}"),
        )),
    }
}

fn parse_entry(text: &str) -> Result<Entry<'_>, Rejected> {
    let e: Entry = serde_json::from_str(text).map_err(|e| Rejected::json("vault", &e))?;
    check_kind(&e.kind)?;
    Ok(e)
}

fn headers_sensitive(h: &RawValue) -> bool {
    let h = h.get().as_bytes();
    let has = |needle: &[u8]| {
        h.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    has(b"\"authorization\"") || has(b"\"x-vault-token\"") || has(b"\"cookie\"")
}

fn needs_redaction(e: &Entry<'_>) -> bool {
    let tok_bad = |t: &Option<S<'_>>| t.as_deref().is_some_and(|t| !redact::vault_token_ok(t));
    let data_bad =
        |d: &Option<&RawValue>| d.is_some_and(|d| !redact::vault_strings_hmaced(d.get()));
    if e.auth.as_ref().is_some_and(|a| tok_bad(&a.client_token)) {
        return true;
    }
    if let Some(r) = &e.request {
        if tok_bad(&r.client_token) || data_bad(&r.data) || r.headers.is_some_and(headers_sensitive)
        {
            return true;
        }
    }
    if let Some(r) = &e.response {
        if data_bad(&r.data)
            || r.auth.as_ref().is_some_and(|a| tok_bad(&a.client_token))
            || r.wrap_info.as_ref().is_some_and(|w| tok_bad(&w.token))
        {
            return true;
        }
    }
    false
}

/// Decodes one entry into one row, without pairing.
pub fn decode_entry(
    text: &str,
    source: Source,
    opts: &DecodeOptions,
    sink: &mut dyn EventSink,
) -> Result<(), Rejected> {
    normalize_entry(parse_entry(text)?, text, source, opts, sink)
}

/// Builds the row of one parsed entry.
fn normalize_entry<'a>(
    ev: Entry<'a>,
    text: &'a str,
    source: Source,
    opts: &DecodeOptions,
    sink: &mut dyn EventSink,
) -> Result<(), Rejected> {
    let time_us = ev
        .time
        .as_deref()
        .and_then(parse_time_us)
        .ok_or_else(|| Rejected::new("vault", "entry has no parseable `time`"))?;
    let raw: Cow<str> = if needs_redaction(&ev) {
        let mut v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Rejected::json("vault", &e))?;
        redact::redact_vault_entry(&mut v);
        Cow::Owned(v.to_string())
    } else {
        Cow::Borrowed(text)
    };
    let req = ev.request.as_ref();
    let event_id: S = match req.and_then(|r| r.id.clone()).filter(|s| !s.is_empty()) {
        Some(id) => id,
        // no request id (e.g. `help`): a content hash keeps replays idempotent
        None => Cow::Owned(format!(
            "h:{:016x}",
            xxhash_rust::xxh3::xxh3_64(text.as_bytes())
        )),
    };
    let mut e = AccessEvent::new(source, time_us, event_id, raw);
    e.cluster = opts.cluster.as_deref().map(|c| Cow::Owned(c.to_string()));
    e.stage = ev.kind.clone();
    let path = req
        .and_then(|r| r.path.clone())
        .unwrap_or(Cow::Borrowed(""));
    let op = req
        .and_then(|r| r.operation.clone())
        .unwrap_or(Cow::Borrowed(""));
    let mount_type = req
        .and_then(|r| r.mount_type.clone())
        .filter(|s| !s.is_empty());

    // ---- identity: the caller's token, or for logins the identity the response issued
    let top = ev
        .auth
        .as_ref()
        .filter(|a| a.display_name.as_deref().is_some_and(|d| !d.is_empty()));
    let issued = ev.response.as_ref().and_then(|r| r.auth.as_ref());
    // `auth/<mount>/login…`, and OIDC's browser flow ending in `auth/<mount>/oidc/callback`
    let login =
        path.starts_with("auth/") && (path.contains("/login") || path.ends_with("/oidc/callback"));
    let auth = top.or(issued);
    let kmip = ev.kind.starts_with("kmip-");
    match req.and_then(|r| r.client_certificate_serial_number.as_deref()) {
        // KMIP clients authenticate with a TLS client certificate, not a token
        Some(serial) if kmip && auth.is_none() => {
            e.actor = Cow::Owned(format!("kmip-client:{serial}"));
            e.actor_type = "certificate";
            e.auth_method = Some(Cow::Borrowed("cert"));
        }
        _ => set_identity(
            &mut e,
            auth,
            login.then_some(mount_type.as_deref()).flatten(),
        ),
    }

    // ---- resource
    let ns = req
        .and_then(|r| r.namespace.as_ref())
        .and_then(|n| n.path.clone())
        .filter(|p| !p.is_empty() && p != "root");
    e.resource_path = Some(match &ns {
        Some(n) => Cow::Owned(format!("{}/{}", n.trim_end_matches('/'), path)),
        None => path.clone(),
    });
    e.resource_namespace = ns;
    e.resource_type = mount_type.clone().or_else(|| {
        let first = path.split('/').next().unwrap_or("");
        match first {
            "sys" => Some(Cow::Borrowed("system")),
            "auth" => Some(Cow::Borrowed("auth")),
            "identity" => Some(Cow::Borrowed("identity")),
            "cubbyhole" => Some(Cow::Borrowed("cubbyhole")),
            _ => None,
        }
    });
    e.resource_name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(|s| Cow::Owned(s.to_string()));
    if kmip && e.resource_type.is_none() {
        e.resource_type = Some(Cow::Borrowed("kmip"));
    }
    // KMIP serves key material; `help` only describes a path
    e.secret_access = kmip || (op != "help" && is_secret_path(&path, mount_type.as_deref()));
    e.action = Cow::Borrowed(if login { "login" } else { vault_action(&op) });
    e.verb = op;
    e.src_ip = req
        .and_then(|r| r.remote_address.as_deref())
        .filter(|s| !s.is_empty())
        .map(|a| Cow::Owned(strip_port(a).to_string()));
    e.user_agent = req.and_then(|r| r.headers).and_then(user_agent);

    // ---- outcome
    let err = ev.error.as_deref().filter(|s| !s.trim().is_empty());
    e.outcome = match err {
        Some(m) if m.contains("permission denied") || m.contains("invalid token") => {
            Outcome::Denied
        }
        Some(_) => Outcome::Failure,
        None if is_request(&ev.kind) => Outcome::Unknown,
        None => Outcome::Success,
    };
    e.reason = err.map(|m| Cow::Owned(m.trim().to_string()));
    sink.event(e);
    Ok(())
}

/// The first `user-agent` value (any case) of the request's headers (`{"name": ["v", ..]}`,
/// or a plain string per name), unless Vault HMAC'd it.
fn user_agent(headers: &RawValue) -> Option<S<'static>> {
    let mut de = serde_json::Deserializer::from_str(headers.get());
    let ua = de::Deserializer::deserialize_map(&mut de, UserAgent).ok()??;
    (!ua.starts_with("hmac-sha256:")).then_some(Cow::Owned(ua))
}

/// Walks a headers object, reading only the `user-agent` value (the others are skipped,
/// not built).
struct UserAgent;

impl<'de> de::Visitor<'de> for UserAgent {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map of request headers")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(borrow::Str(name)) = map.next_key()? {
            if found.is_none() && name.eq_ignore_ascii_case("user-agent") {
                found = map.next_value::<HeaderValue>()?.0;
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A header's value: one string, or the first of a list of strings. Anything else is a
/// type error, which leaves the whole lookup without a user agent.
struct HeaderValue(Option<String>);

impl<'de> Deserialize<'de> for HeaderValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeaderValueVisitor).map(HeaderValue)
    }
}

struct HeaderValueVisitor;

impl<'de> de::Visitor<'de> for HeaderValueVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string or a list of strings")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let first = seq.next_element::<String>()?;
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(first)
    }
}

fn set_identity<'a>(e: &mut AccessEvent<'a>, auth: Option<&Auth<'a>>, login_mount: Option<&str>) {
    let Some(a) = auth else {
        e.actor = Cow::Borrowed("unauthenticated");
        e.actor_type = "anonymous";
        e.auth_method = login_mount.map(|m| Cow::Owned(m.to_string()));
        return;
    };
    let display = a.display_name.clone().unwrap_or(Cow::Borrowed(""));
    let meta = |k: &str| {
        let m = a.metadata.as_ref()?;
        let v = match k {
            "service_account_name" => &m.service_account_name,
            "service_account_namespace" => &m.service_account_namespace,
            _ => &m.role_name,
        };
        v.clone().filter(|v| !v.is_empty())
    };
    e.actor_id = a.entity_id.clone().filter(|s| !s.is_empty());
    e.policies = a.policies.clone().unwrap_or_default();
    let method_from_name = display.split('-').next().unwrap_or("").to_string();
    let method = a
        .mount_type
        .clone()
        .filter(|s| !s.is_empty())
        .map(|s| s.into_owned())
        .or_else(|| login_mount.map(str::to_string));
    if let (Some(sa), Some(ns)) = (
        meta("service_account_name"),
        meta("service_account_namespace"),
    ) {
        e.actor = Cow::Owned(format!("system:serviceaccount:{ns}:{sa}"));
        e.actor_type = "service_account";
        e.actor_namespace = Some(ns);
        e.auth_method = Some(Cow::Owned(method.unwrap_or_else(|| "kubernetes".into())));
        return;
    }
    let is_root = display == "root" || e.policies.iter().any(|p| p == "root");
    if let Some(role) = meta("role_name")
        .filter(|_| method_from_name == "approle" || method.as_deref() == Some("approle"))
    {
        e.actor = Cow::Owned(format!("approle:{role}"));
        e.actor_type = "approle";
        e.auth_method = Some(Cow::Borrowed("approle"));
        return;
    }
    e.actor_type = if is_root {
        "root"
    } else {
        match method.as_deref().unwrap_or(method_from_name.as_str()) {
            "oidc" | "jwt" | "userpass" | "ldap" | "okta" | "github" | "radius" | "saml" => "user",
            "approle" => "approle",
            "cert" => "certificate",
            "aws" | "gcp" | "azure" | "kubernetes" | "alicloud" | "oci" => "workload",
            _ => "token",
        }
    };
    e.auth_method = Some(Cow::Owned(method.unwrap_or_else(|| {
        if is_root || display.starts_with("token") || method_from_name.is_empty() {
            "token".into()
        } else {
            method_from_name
        }
    })));
    e.actor = if display.is_empty() {
        Cow::Borrowed("unknown")
    } else {
        display
    };
}

/// Whether a path reads or writes secret material (a secrets engine, not `sys/`, `auth/`…).
pub fn is_secret_path(path: &str, mount_type: Option<&str>) -> bool {
    if path.starts_with("sys/wrapping/unwrap") || path.starts_with("cubbyhole/") {
        return true;
    }
    if path.starts_with("sys/")
        || path.starts_with("auth/")
        || path.starts_with("identity/")
        || path.is_empty()
    {
        return false;
    }
    !matches!(
        mount_type,
        Some("system" | "token" | "identity" | "ns_system" | "ns_token" | "ns_identity")
    )
}

/// Normalized action for a Vault operation.
pub fn vault_action(op: &str) -> &'static str {
    match op {
        "read" => "read",
        "list" => "list",
        "create" => "create",
        "update" | "patch" => "update",
        "delete" => "delete",
        "revoke" => "revoke",
        "renew" => "renew",
        "rollback" => "rollback",
        "help" => "help",
        _ => "other",
    }
}

/// A request waiting for its response.
struct Pending {
    text: String,
    time_us: i64,
    seq: u64,
    source: Source,
    prov: crate::decode::OwnedProvenance,
}

/// Joins requests with their responses (see the module docs).
///
/// A request expires when an entry arrives whose event time is more than the wait past
/// the request's (input order, not the maximum time seen, so out-of-order archives still
/// pair), when more than `max_pending` wait, or on [`Pairer::flush`].
pub struct Pairer {
    pending: HashMap<String, Pending>,
    /// (time, arrival seq) → request id, to find the oldest waiting requests quickly.
    by_time: std::collections::BTreeMap<(i64, u64), String>,
    seq: u64,
    wait_us: i64,
    max_pending: usize,
}

impl Pairer {
    pub fn new(wait_us: i64, max_pending: usize) -> Self {
        Pairer {
            pending: HashMap::new(),
            by_time: Default::default(),
            seq: 0,
            wait_us,
            max_pending: max_pending.max(1),
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Smallest input position still held back (so offsets are not committed past it).
    pub fn oldest_pending(&self) -> Option<&crate::decode::OwnedProvenance> {
        self.pending
            .values()
            .min_by_key(|p| p.prov.order_key())
            .map(|p| &p.prov)
    }

    fn take(&mut self, id: &str) -> Option<Pending> {
        let p = self.pending.remove(id)?;
        self.by_time.remove(&(p.time_us, p.seq));
        Some(p)
    }

    /// Takes one entry: holds a request until its response, emits anything else. An entry
    /// that is not a Vault audit entry is returned as an error for the caller to route.
    pub(crate) fn offer(
        &mut self,
        text: &str,
        source: Source,
        prov: &crate::normalize::Provenance<'_>,
        opts: &DecodeOptions,
        out: &mut dyn crate::decode::Output,
    ) -> Result<(), Rejected> {
        let ev = parse_entry(text)?;
        let time_us = ev.time.as_deref().and_then(parse_time_us);
        let id = ev
            .request
            .as_ref()
            .and_then(|r| r.id.as_deref())
            .filter(|s| !s.is_empty());
        match (id, time_us) {
            (Some(id), Some(t)) if is_request(&ev.kind) => {
                let id = id.to_string();
                if let Some(p) = self.take(&id) {
                    self.emit(p, opts, out); // duplicate request id: keep both rows
                }
                self.seq += 1;
                self.by_time.insert((t, self.seq), id.clone());
                let p = Pending {
                    text: text.to_string(),
                    time_us: t,
                    seq: self.seq,
                    source,
                    prov: prov.into(),
                };
                self.pending.insert(id, p);
            }
            (id, _) => {
                if let Some(id) = id {
                    self.take(id);
                }
                let mut s = crate::decode::WithProv { out, prov };
                if let Err(r) = normalize_entry(ev, text, source, opts, &mut s) {
                    out.reject(text.as_bytes(), r, prov);
                }
            }
        }
        if let Some(t) = time_us {
            self.expire_before(t.saturating_sub(self.wait_us), opts, out);
        }
        Ok(())
    }

    fn emit(&self, p: Pending, opts: &DecodeOptions, out: &mut dyn crate::decode::Output) {
        let prov = p.prov.as_ref();
        let mut s = crate::decode::WithProv { out, prov: &prov };
        if let Err(r) = decode_entry(&p.text, p.source, opts, &mut s) {
            out.reject(p.text.as_bytes(), r, &prov);
        }
    }

    /// Emits requests older than `cutoff`, and the oldest beyond `max_pending`.
    pub(crate) fn expire_before(
        &mut self,
        cutoff: i64,
        opts: &DecodeOptions,
        out: &mut dyn crate::decode::Output,
    ) {
        while let Some((&(t, _), _)) = self.by_time.first_key_value() {
            if t >= cutoff && self.pending.len() <= self.max_pending {
                break;
            }
            let (_, id) = self.by_time.pop_first().expect("non-empty");
            if let Some(p) = self.pending.remove(&id) {
                self.emit(p, opts, out);
            }
        }
    }

    /// Emits every waiting request (end of input, shutdown).
    pub(crate) fn flush(&mut self, opts: &DecodeOptions, out: &mut dyn crate::decode::Output) {
        self.expire_before(i64::MAX, opts, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn user_agent_is_the_first_value_of_its_header_in_any_case() {
        let ua = |h: &str| user_agent(&raw(h)).map(Cow::into_owned);
        assert_eq!(
            ua(r#"{"accept":["*/*"],"User-Agent":["curl/8.5","x"],"x":{"y":[1]}}"#).as_deref(),
            Some("curl/8.5")
        );
        assert_eq!(
            ua(r#"{"user-agent":"vault-agent/1.15"}"#).as_deref(),
            Some("vault-agent/1.15")
        );
        assert_eq!(
            ua(r#"{"user-agent":["esc\"aped\u00e9"]}"#).as_deref(),
            Some("esc\"apedé")
        );
        // HMAC'd by Vault, absent, empty, or not a string: none
        assert_eq!(ua(r#"{"user-agent":["hmac-sha256:abcd"]}"#), None);
        assert_eq!(ua(r#"{"accept":["*/*"]}"#), None);
        assert_eq!(ua(r#"{"user-agent":[]}"#), None);
        assert_eq!(ua(r#"{"user-agent":[1,"curl"]}"#), None);
        assert_eq!(ua(r#"{"user-agent":{"a":"b"}}"#), None);
        assert_eq!(ua(r#"["user-agent","curl"]"#), None);
    }

    #[test]
    fn credential_headers_are_found_in_any_case() {
        for h in [
            r#"{"Authorization":["Bearer x"]}"#,
            r#"{"x-vault-token":["s.x"]}"#,
            r#"{"accept":["*/*"],"COOKIE":["a=b"]}"#,
        ] {
            assert!(headers_sensitive(&raw(h)), "{h}");
        }
        for h in [
            r#"{"user-agent":["curl"]}"#,
            r#"{"x-authorization-note":["no"]}"#,
            r#"{}"#,
        ] {
            assert!(!headers_sensitive(&raw(h)), "{h}");
        }
    }
}
