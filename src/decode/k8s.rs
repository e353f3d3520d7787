//! Kubernetes audit decoder: `audit.k8s.io/v1` and `v1beta1` `Event`s (also without
//! `apiVersion`), `EventList` batches. Managed-cluster wrappers (AKS, GKE, EKS via
//! CloudWatch) are unwrapped in [`super::wrappers`] and end up here or in [`gke`].
//!
//! Mapping highlights:
//! - `actor` is the effective identity: the impersonated user when `impersonatedUser` is
//!   set (the real caller goes to `impersonator`).
//! - `time` is `requestReceivedTimestamp` (when the access happened), falling back to
//!   `stageTimestamp`, then the v1beta1 `timestamp`.
//! - `resource_path` is `namespaces/<ns>/<resource>/<name>[/<subresource>]`, or
//!   `<resource>/<name>` for cluster-scoped objects, or the URL path for non-resource
//!   requests (`/healthz`).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{DecodeOptions, EventSink, Rejected, borrow};
use crate::normalize::redact;
use crate::normalize::{AccessEvent, Outcome, Source, parse_time_us};

type S<'a> = Cow<'a, str>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserInfo<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    username: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    uid: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt_vec")]
    groups: Option<Vec<S<'a>>>,
    /// Parsed only when it names a credential id (rare, and only needed for `auth_method`).
    #[serde(borrow, default)]
    extra: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    resource: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    namespace: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    name: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    api_group: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    subresource: Option<S<'a>>,
}

#[derive(Deserialize)]
struct Status<'a> {
    #[serde(default)]
    code: Option<i32>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    reason: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    message: Option<S<'a>>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(
        borrow,
        default,
        rename = "creationTimestamp",
        deserialize_with = "borrow::opt"
    )]
    creation_timestamp: Option<S<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(rename = "auditID", borrow, deserialize_with = "borrow::cow")]
    audit_id: S<'a>,
    #[serde(borrow, deserialize_with = "borrow::cow")]
    stage: S<'a>,
    #[serde(borrow, deserialize_with = "borrow::cow")]
    verb: S<'a>,
    user: UserInfo<'a>,
    #[serde(borrow, default)]
    impersonated_user: Option<UserInfo<'a>>,
    #[serde(
        borrow,
        default,
        rename = "requestURI",
        deserialize_with = "borrow::opt"
    )]
    request_uri: Option<S<'a>>,
    #[serde(
        borrow,
        default,
        rename = "sourceIPs",
        deserialize_with = "borrow::opt_vec"
    )]
    source_ips: Option<Vec<S<'a>>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    user_agent: Option<S<'a>>,
    #[serde(borrow, default)]
    object_ref: Option<ObjectRef<'a>>,
    #[serde(borrow, default)]
    response_status: Option<Status<'a>>,
    #[serde(borrow, default)]
    request_object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response_object: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    request_received_timestamp: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    stage_timestamp: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    timestamp: Option<S<'a>>,
    #[serde(borrow, default)]
    metadata: Option<Metadata<'a>>,
    /// Parsed only when it may hold a `forbid` decision.
    #[serde(borrow, default)]
    annotations: Option<&'a RawValue>,
}

/// The one key of `user.extra` we read (the others are skipped, not collected).
#[derive(Deserialize)]
struct Extra<'a> {
    #[serde(
        borrow,
        default,
        rename = "authentication.kubernetes.io/credential-id",
        deserialize_with = "borrow::opt_vec"
    )]
    credential_id: Option<Vec<S<'a>>>,
}

/// The one annotation we read.
#[derive(Deserialize)]
struct Annotations<'a> {
    #[serde(
        borrow,
        default,
        rename = "authorization.k8s.io/decision",
        deserialize_with = "borrow::opt"
    )]
    decision: Option<S<'a>>,
}

#[derive(Deserialize)]
struct EventList<'a> {
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct KindOnly<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    kind: Option<S<'a>>,
}

/// Decodes one JSON value that holds a Kubernetes `Event` or `EventList`.
pub fn decode(text: &str, opts: &DecodeOptions, sink: &mut dyn EventSink) -> Result<(), Rejected> {
    let err = match decode_event(text, opts, sink) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    // not an Event: maybe an EventList (the audit webhook's batches)
    if text.contains("\"items\"") {
        if let Ok(KindOnly { kind: Some(k) }) = serde_json::from_str::<KindOnly>(text) {
            if k == "EventList" {
                let list: EventList =
                    serde_json::from_str(text).map_err(|e| Rejected::json("kubernetes", &e))?;
                for item in list.items {
                    if let Err(r) = decode_event(item.get(), opts, sink) {
                        sink.reject(item.get().as_bytes(), r);
                    }
                }
                return Ok(());
            }
        }
    }
    Err(err)
}

/// Decides whether a stage becomes a row (see DESIGN.md: complete, panic, the start of
/// long-running requests that may never complete, and failed authentications, which
/// only have a start).
fn keep_stage(
    stage: &str,
    verb: &str,
    code: Option<i32>,
    subresource: Option<&str>,
    opts: &DecodeOptions,
) -> bool {
    match stage {
        "ResponseComplete" | "Panic" => true,
        "ResponseStarted" => {
            opts.k8s_keep_all_stages
                || code == Some(101)
                // failed authentication: the API server answers 401 and records only
                // this stage (the request never completes)
                || code == Some(401)
                || verb == "watch"
                || matches!(
                    subresource,
                    Some("exec" | "attach" | "portforward" | "proxy")
                )
        }
        _ => opts.k8s_keep_all_stages,
    }
}

pub(crate) fn decode_event(
    text: &str,
    opts: &DecodeOptions,
    sink: &mut dyn EventSink,
) -> Result<(), Rejected> {
    let mut ev: Event = serde_json::from_str(text).map_err(|e| Rejected::json("kubernetes", &e))?;
    let code = ev.response_status.as_ref().and_then(|s| s.code);
    let oref = ev.object_ref.as_ref();
    let subresource = oref
        .and_then(|o| o.subresource.as_deref())
        .filter(|s| !s.is_empty());
    if !keep_stage(&ev.stage, &ev.verb, code, subresource, opts) {
        sink.skipped();
        return Ok(());
    }
    let time_us = [
        &ev.request_received_timestamp,
        &ev.stage_timestamp,
        &ev.timestamp,
    ]
    .into_iter()
    .chain(std::iter::once(
        &ev.metadata
            .as_ref()
            .and_then(|m| m.creation_timestamp.clone()),
    ))
    .flatten()
    .find_map(|t| parse_time_us(t))
    .ok_or_else(|| Rejected::new("kubernetes", "event has no parseable timestamp"))?;
    if ev.audit_id.is_empty() {
        return Err(Rejected::new("kubernetes", "event has an empty auditID"));
    }

    // ---- redaction of the raw text
    let resource = oref.and_then(|o| o.resource.as_deref()).unwrap_or("");
    let secret_ctx = resource == "secrets";
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut slow = false;
    for body in [ev.request_object, ev.response_object]
        .into_iter()
        .flatten()
    {
        let b = body.get();
        if redact::k8s_body_needs_redaction(b, secret_ctx) {
            match serde_json::from_str::<serde_json::Value>(b) {
                Ok(mut v) => {
                    if redact::redact_k8s_body(&mut v, secret_ctx) {
                        match redact::span_of(text, b) {
                            Some(r) => edits.push((r, v.to_string())),
                            None => slow = true,
                        }
                    }
                }
                Err(_) => slow = true,
            }
        }
    }
    let mut request_uri = ev.request_uri.clone();
    if let Some(uri) = ev.request_uri.as_deref() {
        if let Some(clean) = redact::redact_uri(uri) {
            match (&ev.request_uri, redact::span_of(text, uri)) {
                (Some(Cow::Borrowed(_)), Some(r)) => edits.push((r, clean.clone())),
                _ => slow = true,
            }
            request_uri = Some(Cow::Owned(clean));
        }
    }
    let raw: Cow<str> = if slow {
        Cow::Owned(redact_event_slow(text, secret_ctx))
    } else if edits.is_empty() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(redact::splice(text, &mut edits))
    };

    let mut e = AccessEvent::new(Source::Kubernetes, time_us, ev.audit_id.clone(), raw);
    e.cluster = opts.cluster.as_deref().map(|c| Cow::Owned(c.to_string()));
    e.stage = ev.stage.clone();
    e.verb = ev.verb.clone();

    // ---- identity
    let impersonated = ev
        .impersonated_user
        .as_ref()
        .is_some_and(|u| u.username.as_deref().is_some_and(|u| !u.is_empty()));
    let impersonator = if impersonated {
        ev.user.username.take()
    } else {
        None
    };
    let who: &mut UserInfo = match ev.impersonated_user.as_mut() {
        Some(imp) if impersonated => imp,
        _ => &mut ev.user,
    };
    let username = who.username.take().unwrap_or(Cow::Borrowed(""));
    let (actor_type, actor_ns) = classify_user(&username);
    e.actor_type = actor_type;
    e.actor_namespace = actor_ns.map(|s| Cow::Owned(s.to_string()));
    e.auth_method = auth_method(who, actor_type).map(Cow::Borrowed);
    e.actor = username;
    e.actor_id = who.uid.take();
    e.actor_groups = who.groups.take().unwrap_or_default();
    e.impersonator = impersonator;

    // ---- resource
    e.request_uri = request_uri;
    e.src_ip = ev.source_ips.as_ref().and_then(|v| v.first().cloned());
    e.user_agent = ev.user_agent.clone();
    if let Some(o) = oref.filter(|o| o.resource.is_some()) {
        let ns = o.namespace.as_deref().filter(|s| !s.is_empty());
        let name = o.name.as_deref().filter(|s| !s.is_empty());
        let mut path = String::with_capacity(64);
        if let Some(ns) = ns {
            if resource != "namespaces" {
                path.push_str("namespaces/");
                path.push_str(ns);
                path.push('/');
            }
        }
        path.push_str(resource);
        if let Some(n) = name {
            path.push('/');
            path.push_str(n);
        }
        if let Some(s) = subresource {
            path.push('/');
            path.push_str(s);
        }
        e.resource_path = Some(Cow::Owned(path));
        e.resource_type = o.resource.clone();
        e.resource_namespace = o.namespace.clone().filter(|s| !s.is_empty());
        e.resource_name = o.name.clone().filter(|s| !s.is_empty());
        e.subresource = o.subresource.clone().filter(|s| !s.is_empty());
        e.api_group = o.api_group.clone().filter(|s| !s.is_empty());
        e.secret_access =
            secret_ctx || (resource == "serviceaccounts" && subresource == Some("token"));
    } else if let Some(uri) = e.request_uri.as_deref() {
        let path = uri.split('?').next().unwrap_or(uri);
        e.resource_type = Some(Cow::Borrowed("nonresource"));
        e.resource_name = Some(Cow::Owned(path.trim_start_matches('/').to_string()));
        e.resource_path = Some(Cow::Owned(path.to_string()));
    }
    e.action = Cow::Borrowed(k8s_action(&ev.verb, subresource));

    // ---- outcome
    let decision = ev
        .annotations
        .filter(|a| a.get().contains("forbid"))
        .and_then(|a| serde_json::from_str::<Annotations>(a.get()).ok()?.decision);
    let decision = decision.as_deref();
    e.status_code = code;
    e.outcome = match (code, decision) {
        (_, Some("forbid")) => Outcome::Denied,
        (Some(401 | 403), _) => Outcome::Denied,
        (Some(c), _) if c < 400 => Outcome::Success,
        (Some(_), _) => Outcome::Failure,
        (None, _) if ev.stage == "Panic" => Outcome::Failure,
        (None, _) => Outcome::Unknown,
    };
    e.reason = ev
        .response_status
        .as_ref()
        .filter(|_| e.outcome != Outcome::Success)
        .and_then(|s| s.message.clone().or_else(|| s.reason.clone()))
        .filter(|s| !s.is_empty());
    sink.event(e);
    Ok(())
}

/// Full-value redaction, used when in-place splicing is not possible (escaped URI).
fn redact_event_slow(text: &str, secret_ctx: bool) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut v) => {
            if let Some(m) = v.as_object_mut() {
                for k in ["requestObject", "responseObject"] {
                    if let Some(b) = m.get_mut(k) {
                        redact::redact_k8s_body(b, secret_ctx);
                    }
                }
                if let Some(serde_json::Value::String(u)) = m.get_mut("requestURI") {
                    if let Some(clean) = redact::redact_uri(u) {
                        *u = clean;
                    }
                }
            }
            v.to_string()
        }
        Err(_) => String::from_utf8_lossy(&redact::scrub_lenient(text.as_bytes()).0).into_owned(),
    }
}

/// Actor type and the actor's own namespace, from the username's shape.
pub fn classify_user(username: &str) -> (&'static str, Option<&str>) {
    if let Some(rest) = username.strip_prefix("system:serviceaccount:") {
        let ns = rest.split(':').next().filter(|s| !s.is_empty());
        return ("service_account", ns);
    }
    if username.starts_with("system:node:") {
        return ("node", None);
    }
    match username {
        "system:anonymous" | "" => ("anonymous", None),
        "system:kube-controller-manager"
        | "system:kube-scheduler"
        | "system:apiserver"
        | "system:kube-proxy"
        | "system:volume-scheduler" => ("control_plane", None),
        u if u.starts_with("system:") => ("system", None),
        _ => ("user", None),
    }
}

fn auth_method(user: &UserInfo<'_>, actor_type: &str) -> Option<&'static str> {
    let cred = user
        .extra
        .filter(|x| x.get().contains("credential-id"))
        .and_then(|x| {
            serde_json::from_str::<Extra>(x.get())
                .ok()?
                .credential_id?
                .into_iter()
                .next()
        });
    match cred.as_deref() {
        Some(c) if c.starts_with("X509") => return Some("x509"),
        Some(c) if c.starts_with("JTI") => return Some("serviceaccount_token"),
        _ => {}
    }
    match actor_type {
        "service_account" => Some("serviceaccount_token"),
        "anonymous" => Some("none"),
        "node" | "control_plane" => Some("x509"),
        _ => None,
    }
}

/// Normalized action for a Kubernetes verb.
pub fn k8s_action(verb: &str, subresource: Option<&str>) -> &'static str {
    if matches!(
        subresource,
        Some("exec" | "attach" | "portforward" | "proxy")
    ) {
        return "connect";
    }
    match verb {
        "get" | "head" => "read",
        "list" => "list",
        "watch" => "watch",
        "create" | "post" => "create",
        "update" | "put" | "patch" | "apply" => "update",
        "delete" | "deletecollection" => "delete",
        "impersonate" => "impersonate",
        "escalate" | "bind" => "escalate",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_that_become_rows() {
        let o = DecodeOptions::default();
        assert!(keep_stage("ResponseComplete", "get", Some(200), None, &o));
        // a failed authentication only ever has a ResponseStarted stage
        assert!(keep_stage("ResponseStarted", "list", Some(401), None, &o));
        // an ordinary request's start is dropped: its ResponseComplete is the row
        assert!(!keep_stage("ResponseStarted", "get", Some(403), None, &o));
        assert!(!keep_stage("RequestReceived", "get", None, None, &o));
        assert!(keep_stage(
            "ResponseStarted",
            "create",
            Some(101),
            Some("exec"),
            &o
        ));
    }

    /// (auth_method, outcome) of each decoded event.
    struct Seen(Vec<(Option<String>, Outcome)>);
    impl EventSink for Seen {
        fn event(&mut self, e: AccessEvent<'_>) {
            self.0
                .push((e.auth_method.as_deref().map(str::to_string), e.outcome));
        }
        fn reject(&mut self, _: &[u8], r: Rejected) {
            panic!("rejected: {r:?}");
        }
    }

    fn decoded(user: &str, annotations: &str) -> (Option<String>, Outcome) {
        let text = format!(
            r#"{{"kind":"Event","auditID":"a1","stage":"ResponseComplete","verb":"get","user":{user},"objectRef":{{"resource":"secrets","namespace":"ns","name":"db"}},"responseStatus":{{"code":200}},"stageTimestamp":"2026-11-26T10:00:00.000000Z","annotations":{annotations}}}"#
        );
        let mut seen = Seen(vec![]);
        decode(&text, &DecodeOptions::default(), &mut seen).unwrap();
        seen.0.pop().unwrap()
    }

    #[test]
    fn credential_id_names_the_auth_method() {
        let extra = |cred: &str| {
            format!(
                r#"{{"username":"alice","extra":{{"authentication.kubernetes.io/pod-name":["p"],"authentication.kubernetes.io/credential-id":["{cred}"]}}}}"#
            )
        };
        let auth = |user: &str| decoded(user, "{}").0;
        assert_eq!(auth(&extra("X509SHA256=ab12")).as_deref(), Some("x509"));
        assert_eq!(
            auth(&extra("JTI=0f3c")).as_deref(),
            Some("serviceaccount_token")
        );
        // no or unknown credential id: from the kind of user
        assert_eq!(auth(&extra("OTHER=1")), None);
        assert_eq!(auth(r#"{"username":"alice","extra":{"k":["v"]}}"#), None);
        assert_eq!(
            auth(r#"{"username":"system:serviceaccount:ns:app"}"#).as_deref(),
            Some("serviceaccount_token")
        );
    }

    #[test]
    fn a_forbid_decision_is_a_denial() {
        let user = r#"{"username":"alice"}"#;
        let forbid =
            r#"{"authorization.k8s.io/decision":"forbid","authorization.k8s.io/reason":"no"}"#;
        assert_eq!(decoded(user, forbid).1, Outcome::Denied);
        let allow = r#"{"authorization.k8s.io/decision":"allow","note":"forbid"}"#;
        assert_eq!(decoded(user, allow).1, Outcome::Success);
    }
}
