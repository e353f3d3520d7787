//! Managed-cluster envelopes around Kubernetes audit events:
//! - AKS diagnostic logs: `properties.log` holds the Event as a JSON string or object;
//!   the cluster name is the last segment of `resourceId`.
//! - GKE Cloud Audit Logs: a `protoPayload` (`google.cloud.audit.AuditLog`) describes the
//!   request; mapped field by field (no `auditID`: `insertId` is the event id).
//! - EKS via CloudWatch Logs subscriptions: `logEvents[].message` holds Events; the cluster
//!   comes from the log group `/aws/eks/<cluster>/cluster`.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{DecodeOptions, EventSink, Rejected, borrow, k8s};
use crate::normalize::{AccessEvent, Outcome, Source, parse_time_us};

type S<'a> = Cow<'a, str>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow, default)]
    proto_payload: Option<&'a RawValue>,
    #[serde(borrow, default)]
    properties: Option<Properties<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    resource_id: Option<S<'a>>,
    #[serde(borrow, default)]
    log_events: Option<Vec<LogEvent<'a>>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    log_group: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    insert_id: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    timestamp: Option<S<'a>>,
    #[serde(borrow, default)]
    resource: Option<GkeResource<'a>>,
    #[serde(borrow, default)]
    labels: Option<HashMap<S<'a>, S<'a>>>,
}

#[derive(Deserialize)]
struct Properties<'a> {
    #[serde(borrow, default)]
    log: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct LogEvent<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    message: Option<S<'a>>,
}

#[derive(Deserialize)]
struct GkeResource<'a> {
    #[serde(borrow, default)]
    labels: Option<HashMap<S<'a>, S<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProtoPayload<'a> {
    #[serde(borrow, default)]
    authentication_info: Option<AuthnInfo<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    method_name: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    resource_name: Option<S<'a>>,
    #[serde(borrow, default)]
    request_metadata: Option<RequestMetadata<'a>>,
    #[serde(borrow, default)]
    status: Option<GStatus<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthnInfo<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    principal_email: Option<S<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestMetadata<'a> {
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    caller_ip: Option<S<'a>>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    caller_supplied_user_agent: Option<S<'a>>,
}

#[derive(Deserialize)]
struct GStatus<'a> {
    #[serde(default)]
    code: Option<i32>,
    #[serde(borrow, default, deserialize_with = "borrow::opt")]
    message: Option<S<'a>>,
}

/// Decodes a wrapped record. `Ok(false)` when the record is not one of these envelopes.
pub fn decode(
    text: &str,
    opts: &DecodeOptions,
    sink: &mut dyn EventSink,
) -> Result<bool, Rejected> {
    let env: Envelope = serde_json::from_str(text).map_err(|e| Rejected::json("kubernetes", &e))?;
    if let Some(pp) = env.proto_payload {
        gke(text, pp, &env, opts, sink)?;
        return Ok(true);
    }
    if let Some(log) = env.properties.as_ref().and_then(|p| p.log) {
        let cluster = env
            .resource_id
            .as_deref()
            .and_then(|r| r.rsplit('/').next())
            .map(str::to_string);
        let inner: Cow<str> = match serde_json::from_str::<String>(log.get()) {
            Ok(s) => Cow::Owned(s),
            Err(_) => Cow::Borrowed(log.get()),
        };
        let o = with_cluster(opts, cluster);
        k8s::decode(&inner, &o, sink)?;
        return Ok(true);
    }
    if let Some(events) = env.log_events {
        let cluster = env
            .log_group
            .as_deref()
            .and_then(|g| g.strip_prefix("/aws/eks/"))
            .and_then(|g| g.split('/').next())
            .map(str::to_string);
        let o = with_cluster(opts, cluster);
        for ev in events {
            let Some(m) = ev.message else { continue };
            if let Err(r) = k8s::decode(&m, &o, sink) {
                sink.reject(m.as_bytes(), r);
            }
        }
        return Ok(true);
    }
    Ok(false)
}

fn with_cluster(opts: &DecodeOptions, cluster: Option<String>) -> DecodeOptions {
    let mut o = opts.clone();
    if o.cluster.is_none() {
        o.cluster = cluster;
    }
    o
}

/// GKE resource names look like `core/v1/namespaces/ns/secrets/name[/sub]` or `readyz`.
fn gke(
    text: &str,
    pp: &RawValue,
    env: &Envelope<'_>,
    opts: &DecodeOptions,
    sink: &mut dyn EventSink,
) -> Result<(), Rejected> {
    let p: ProtoPayload =
        serde_json::from_str(pp.get()).map_err(|e| Rejected::json("kubernetes", &e))?;
    let time_us = env
        .timestamp
        .as_deref()
        .and_then(parse_time_us)
        .ok_or_else(|| Rejected::new("kubernetes", "GKE audit entry has no parseable timestamp"))?;
    let id = env.insert_id.clone().unwrap_or_else(|| {
        Cow::Owned(format!(
            "h:{:016x}",
            xxhash_rust::xxh3::xxh3_64(text.as_bytes())
        ))
    });
    // GKE RequestResponse bodies live in protoPayload.request/response: redact like k8s bodies
    let mut v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Rejected::json("kubernetes", &e))?;
    let resource_name = p.resource_name.as_deref().unwrap_or("");
    let secret_ctx = resource_name.contains("/secrets");
    let mut changed = false;
    if let Some(pp) = v.get_mut("protoPayload").and_then(|x| x.as_object_mut()) {
        for k in ["request", "response"] {
            if let Some(b) = pp.get_mut(k) {
                changed |= crate::normalize::redact::redact_k8s_body(b, secret_ctx);
            }
        }
    }
    let raw: Cow<str> = if changed {
        Cow::Owned(v.to_string())
    } else {
        Cow::Borrowed(text)
    };
    let mut e = AccessEvent::new(Source::Kubernetes, time_us, id, raw);
    e.cluster = opts.cluster.clone().map(Cow::Owned).or_else(|| {
        env.resource
            .as_ref()
            .and_then(|r| r.labels.as_ref())
            .and_then(|l| l.get("cluster_name"))
            .cloned()
    });
    e.stage = Cow::Borrowed("ResponseComplete");
    let method = p.method_name.as_deref().unwrap_or("");
    let verb = method.rsplit('.').next().unwrap_or("").to_string();
    let user = p
        .authentication_info
        .as_ref()
        .and_then(|a| a.principal_email.clone())
        .unwrap_or(Cow::Borrowed(""));
    let (actor_type, ns) = k8s::classify_user(&user);
    e.actor_type = actor_type;
    e.actor_namespace = ns.map(|s| Cow::Owned(s.to_string()));
    e.actor = user;
    let parts: Vec<&str> = resource_name.split('/').collect();
    let (namespace, resource, name, sub) = match parts.as_slice() {
        [_, _, "namespaces", ns, res, rest @ ..] => (
            Some(*ns),
            Some(*res),
            rest.first().copied(),
            rest.get(1).copied(),
        ),
        [_, _, "namespaces", ns] => (None, Some("namespaces"), Some(*ns), None),
        [_, _, res, rest @ ..] => (
            None,
            Some(*res),
            rest.first().copied(),
            rest.get(1).copied(),
        ),
        _ => (None, None, None, None),
    };
    match resource {
        Some(res) => {
            let mut path = String::new();
            if let Some(ns) = namespace {
                path.push_str(&format!("namespaces/{ns}/"));
            }
            path.push_str(res);
            for s in [name, sub].into_iter().flatten() {
                path.push('/');
                path.push_str(s);
            }
            e.resource_type = Some(Cow::Owned(res.to_string()));
            e.resource_namespace = namespace.map(|s| Cow::Owned(s.to_string()));
            e.resource_name = name.map(|s| Cow::Owned(s.to_string()));
            e.subresource = sub.map(|s| Cow::Owned(s.to_string()));
            e.resource_path = Some(Cow::Owned(path));
            e.secret_access =
                res == "secrets" || (res == "serviceaccounts" && sub == Some("token"));
        }
        None => {
            e.resource_type = Some(Cow::Borrowed("nonresource"));
            e.resource_name = Some(Cow::Owned(resource_name.to_string()));
            e.resource_path = Some(Cow::Owned(format!("/{resource_name}")));
        }
    }
    e.action = Cow::Borrowed(k8s::k8s_action(&verb, sub));
    e.verb = Cow::Owned(verb);
    e.src_ip = p
        .request_metadata
        .as_ref()
        .and_then(|m| m.caller_ip.clone());
    e.user_agent = p
        .request_metadata
        .as_ref()
        .and_then(|m| m.caller_supplied_user_agent.clone());
    let code = p.status.as_ref().and_then(|s| s.code).unwrap_or(0);
    let decision = env
        .labels
        .as_ref()
        .and_then(|l| l.get("authorization.k8s.io/decision"))
        .map(|d| d.as_ref());
    // google.rpc.Code: 0 OK, 7 PERMISSION_DENIED, 16 UNAUTHENTICATED
    e.outcome = match (code, decision) {
        (_, Some("forbid")) | (7 | 16, _) => Outcome::Denied,
        (0, _) => Outcome::Success,
        _ => Outcome::Failure,
    };
    e.reason = p
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .filter(|m| !m.is_empty());
    sink.event(e);
    Ok(())
}
