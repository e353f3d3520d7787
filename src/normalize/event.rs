//! The normalized access event, borrowed from the decoder's input buffer where possible.
//!
//! Decoders fill an [`AccessEvent`] and hand it to the [`super::EventBuilder`], which appends
//! it straight into Arrow builders; nothing is allocated per field unless the input had
//! escapes or the value had to be derived (canonical paths, actor strings).
//!
//! Invariant: `raw` is already redacted when an `AccessEvent` exists. Decoders call
//! [`super::redact`] before constructing one.

use std::borrow::Cow;

/// Which audit system produced the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Kubernetes,
    Vault,
    OpenBao,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Kubernetes => "kubernetes",
            Source::Vault => "vault",
            Source::OpenBao => "openbao",
        }
    }
}

/// Outcome of the access as the audited system decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Authorization refused it (HTTP 401/403, Vault "permission denied").
    Denied,
    /// Any other error (4xx/5xx, Vault errors).
    Failure,
    /// Not known yet: a request seen without its response.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One row of the `access_events` table, before Arrow.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessEvent<'a> {
    /// Event time, microseconds since the Unix epoch, UTC.
    pub time_us: i64,
    pub source: Source,
    pub cluster: Option<Cow<'a, str>>,
    pub event_id: Cow<'a, str>,
    /// Kubernetes stage (`ResponseComplete`, …) or Vault entry kind (`request`/`response`).
    pub stage: Cow<'a, str>,
    /// Normalized action: read, list, watch, create, update, delete, connect, login, …
    pub action: Cow<'a, str>,
    /// The raw verb (Kubernetes) or operation (Vault).
    pub verb: Cow<'a, str>,
    pub actor: Cow<'a, str>,
    pub actor_type: &'static str,
    pub actor_id: Option<Cow<'a, str>>,
    pub actor_namespace: Option<Cow<'a, str>>,
    pub actor_groups: Vec<Cow<'a, str>>,
    pub impersonator: Option<Cow<'a, str>>,
    pub auth_method: Option<Cow<'a, str>>,
    pub resource_type: Option<Cow<'a, str>>,
    pub resource_path: Option<Cow<'a, str>>,
    pub resource_namespace: Option<Cow<'a, str>>,
    pub resource_name: Option<Cow<'a, str>>,
    pub subresource: Option<Cow<'a, str>>,
    pub api_group: Option<Cow<'a, str>>,
    pub secret_access: bool,
    pub outcome: Outcome,
    pub status_code: Option<i32>,
    /// Error or refusal message (never a secret value: Vault errors and k8s status messages).
    pub reason: Option<Cow<'a, str>>,
    pub src_ip: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub request_uri: Option<Cow<'a, str>>,
    pub policies: Vec<Cow<'a, str>>,
    /// The redacted original event as JSON text.
    pub raw: Cow<'a, str>,
}

impl<'a> AccessEvent<'a> {
    /// An event with every optional field empty; decoders fill in what they know.
    pub fn new(source: Source, time_us: i64, event_id: Cow<'a, str>, raw: Cow<'a, str>) -> Self {
        AccessEvent {
            time_us,
            source,
            cluster: None,
            event_id,
            stage: Cow::Borrowed(""),
            action: Cow::Borrowed("other"),
            verb: Cow::Borrowed(""),
            actor: Cow::Borrowed(""),
            actor_type: "unknown",
            actor_id: None,
            actor_namespace: None,
            actor_groups: Vec::new(),
            impersonator: None,
            auth_method: None,
            resource_type: None,
            resource_path: None,
            resource_namespace: None,
            resource_name: None,
            subresource: None,
            api_group: None,
            secret_access: false,
            outcome: Outcome::Unknown,
            status_code: None,
            reason: None,
            src_ip: None,
            user_agent: None,
            request_uri: None,
            policies: Vec::new(),
            raw,
        }
    }

    /// Stable row key: the same event read twice (replay, re-ingest) gets the same key.
    ///
    /// Built from (source, event id, stage, event time) so that placeholder or reused
    /// event ids with different times stay distinct rows.
    pub fn row_key(&self) -> u64 {
        row_key(self.source, &self.event_id, &self.stage, self.time_us)
    }
}

pub fn row_key(source: Source, event_id: &str, stage: &str, time_us: i64) -> u64 {
    use xxhash_rust::xxh3::Xxh3;
    let mut h = Xxh3::new();
    h.update(source.as_str().as_bytes());
    h.update(&[0]);
    h.update(event_id.as_bytes());
    h.update(&[0]);
    h.update(stage.as_bytes());
    h.update(&[0]);
    h.update(&time_us.to_le_bytes());
    h.digest()
}
