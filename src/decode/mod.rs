//! Decode: bytes → [`AccessEvent`]s, never panicking. Bad input becomes a [`Rejected`]
//! with a reason, which the caller quarantines.
//!
//! Layers:
//! - [`framing`] splits a byte stream into JSON records (lines, pretty-printed, concatenated);
//! - [`Decoder`] sniffs the format of each record (`auto`) or uses the configured one,
//!   unwraps managed-cluster envelopes ([`wrappers`]), and calls the format decoder
//!   ([`k8s`], [`vault`]);
//! - format decoders borrow from the record's bytes and redact before building a row.

pub mod borrow;
pub mod framing;
pub mod k8s;
pub mod vault;
pub mod wrappers;

use std::fmt;
use std::str::FromStr;

use crate::normalize::{AccessEvent, Provenance, Source};

/// Input format of a file or topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Sniff each record.
    #[default]
    Auto,
    Kubernetes,
    Vault,
    OpenBao,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Format::Auto),
            "k8s" | "kubernetes" => Ok(Format::Kubernetes),
            "vault" => Ok(Format::Vault),
            "openbao" | "bao" => Ok(Format::OpenBao),
            o => Err(format!(
                "unknown format {o:?} (expected auto, k8s, vault or openbao)"
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Auto => "auto",
            Format::Kubernetes => "k8s",
            Format::Vault => "vault",
            Format::OpenBao => "openbao",
        })
    }
}

/// Decoder settings.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Records larger than this are quarantined unparsed.
    pub max_event_bytes: usize,
    /// Keep every Kubernetes stage (default: complete, panic, and long-running starts).
    pub k8s_keep_all_stages: bool,
    /// Pair Vault requests with responses (default on).
    pub vault_pairing: bool,
    /// How long (event time) a Vault request waits for its response.
    pub vault_pair_wait_us: i64,
    /// At most this many Vault requests wait at once; the oldest are emitted beyond it.
    pub vault_max_pending: usize,
    /// Cluster / environment name written on every row (wrappers may supply their own).
    pub cluster: Option<String>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_event_bytes: 4 << 20,
            k8s_keep_all_stages: false,
            vault_pairing: true,
            vault_pair_wait_us: 30_000_000,
            vault_max_pending: 100_000,
            cluster: None,
        }
    }
}

/// Why a record was not turned into an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The format that was tried (`kubernetes`, `vault`, `auto`, …).
    pub format: &'static str,
    pub reason: String,
    /// Length of the whole record when the bytes handed over were cut at the framing cap.
    pub original_len: Option<u64>,
}

impl Rejected {
    pub fn new(format: &'static str, reason: impl Into<String>) -> Self {
        Rejected {
            format,
            reason: reason.into(),
            original_len: None,
        }
    }
    /// A JSON error as a reason. serde quotes offending string *values* in its messages
    /// (`invalid type: string "…"`); those are blanked so no input value reaches a reason.
    pub fn json(format: &'static str, e: &serde_json::Error) -> Self {
        Rejected::new(
            format,
            format!("{format}: {}", blank_quoted(&e.to_string())),
        )
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Receives what format decoders produce for one record.
pub trait EventSink {
    fn event(&mut self, e: AccessEvent<'_>);
    /// A part of the record (e.g. one item of an `EventList`) was rejected.
    fn reject(&mut self, bytes: &[u8], r: Rejected);
    /// A valid event that is not kept as a row (e.g. `RequestReceived` stage).
    fn skipped(&mut self) {}
}

/// Receives decoded rows and rejects together with where they came from.
pub trait Output {
    fn event(&mut self, e: AccessEvent<'_>, prov: &Provenance<'_>);
    fn reject(&mut self, bytes: &[u8], r: Rejected, prov: &Provenance<'_>);
    fn skipped(&mut self) {}
}

/// Adapts an [`Output`] to an [`EventSink`] for one record's provenance.
pub(crate) struct WithProv<'o, 'p> {
    pub out: &'o mut dyn Output,
    pub prov: &'o Provenance<'p>,
}

impl EventSink for WithProv<'_, '_> {
    fn event(&mut self, e: AccessEvent<'_>) {
        self.out.event(e, self.prov)
    }
    fn reject(&mut self, bytes: &[u8], r: Rejected) {
        self.out.reject(bytes, r, self.prov)
    }
    fn skipped(&mut self) {
        self.out.skipped()
    }
}

/// [`Provenance`] that owns its strings, for records held across calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnedProvenance {
    pub input: Option<String>,
    pub input_offset: Option<i64>,
    pub kafka_topic: Option<String>,
    pub kafka_partition: Option<i32>,
    pub kafka_offset: Option<i64>,
}

impl OwnedProvenance {
    pub fn as_ref(&self) -> Provenance<'_> {
        Provenance {
            input: self.input.as_deref(),
            input_offset: self.input_offset,
            kafka_topic: self.kafka_topic.as_deref(),
            kafka_partition: self.kafka_partition,
            kafka_offset: self.kafka_offset,
        }
    }
    /// Ordering within one input: byte offset or Kafka offset.
    pub fn order_key(&self) -> i64 {
        self.kafka_offset.or(self.input_offset).unwrap_or(i64::MAX)
    }
}

impl From<&Provenance<'_>> for OwnedProvenance {
    fn from(p: &Provenance<'_>) -> Self {
        OwnedProvenance {
            input: p.input.map(str::to_string),
            input_offset: p.input_offset,
            kafka_topic: p.kafka_topic.map(str::to_string),
            kafka_partition: p.kafka_partition,
            kafka_offset: p.kafka_offset,
        }
    }
}

/// Which decoder a record most likely needs, from markers near its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guess {
    Kubernetes,
    Vault,
    Gke,
    Aks,
    CloudWatch,
}

fn sniff(text: &str) -> Guess {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    static VAULT: LazyLock<[Finder<'static>; 3]> = LazyLock::new(|| {
        [
            Finder::new(b"\"type\":\"request\""),
            Finder::new(b"\"type\":\"response\""),
            Finder::new(b"\"type\":\"kmip-"),
        ]
    });
    static AUDIT_ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"auditID\""));
    static WRAPPERS: LazyLock<[Finder<'static>; 2]> = LazyLock::new(|| {
        [
            Finder::new(b"\"properties\""),
            Finder::new(b"\"logEvents\""),
        ]
    });
    let b = text.as_bytes();
    let head = &b[..b.len().min(512)];
    let has = |h: &[u8], pat: &[u8]| memchr::memmem::find(h, pat).is_some();
    if VAULT.iter().any(|f| f.find(head).is_some()) {
        return Guess::Vault;
    }
    // Events put auditID near the start; wrappers nest it deeper
    if AUDIT_ID.find(head).is_some() && !WRAPPERS.iter().any(|f| f.find(head).is_some()) {
        return Guess::Kubernetes;
    }
    if has(b, b"\"protoPayload\"") {
        return Guess::Gke;
    }
    if has(head, b"\"logEvents\"") {
        return Guess::CloudWatch;
    }
    if has(b, b"\"properties\"") {
        return Guess::Aks;
    }
    if has(b, b"\"auditID\"") {
        return Guess::Kubernetes;
    }
    if has(b, b"\"request\"") {
        return Guess::Vault;
    }
    Guess::Kubernetes
}

/// Decodes records of one input (file, stdin, or topic-partition) into an [`Output`].
///
/// Holds the Vault pairing state, so use one `Decoder` per input stream.
pub struct Decoder {
    pub format: Format,
    pub opts: DecodeOptions,
    pairer: vault::Pairer,
}

impl Decoder {
    pub fn new(format: Format, opts: DecodeOptions) -> Self {
        let pairer = vault::Pairer::new(opts.vault_pair_wait_us, opts.vault_max_pending);
        Decoder {
            format,
            opts,
            pairer,
        }
    }

    /// Vault requests still waiting for their response.
    pub fn pending(&self) -> usize {
        self.pairer.pending()
    }

    /// The earliest input position whose row has not been emitted yet.
    pub fn oldest_pending(&self) -> Option<&OwnedProvenance> {
        self.pairer.oldest_pending()
    }

    /// Decodes one framed record.
    pub fn decode_frame(
        &mut self,
        frame: &framing::Frame<'_>,
        prov: &Provenance<'_>,
        out: &mut dyn Output,
    ) {
        use framing::FrameIssue;
        let fmt_name = self.format_name();
        if frame.truncated_at_cap() || frame.bytes.len() > self.opts.max_event_bytes {
            let r = Rejected::new(
                fmt_name,
                format!(
                    "record of {} bytes exceeds max_event_bytes ({})",
                    frame.len, self.opts.max_event_bytes
                ),
            );
            return out.reject(frame.bytes, r, prov);
        }
        match frame.issue {
            FrameIssue::None => self.decode_record(frame.bytes, prov, out),
            FrameIssue::NotJson => {
                let first = frame.bytes.first().copied().unwrap_or(0);
                out.reject(
                    frame.bytes,
                    Rejected::new(
                        fmt_name,
                        format!("not JSON: record starts with byte 0x{first:02x}"),
                    ),
                    prov,
                )
            }
            FrameIssue::Truncated => {
                let detail = match serde_json::from_slice::<serde::de::IgnoredAny>(frame.bytes) {
                    Err(e) => format!(": {e}"),
                    Ok(_) => String::new(),
                };
                out.reject(
                    frame.bytes,
                    Rejected::new(fmt_name, format!("truncated JSON record{detail}")),
                    prov,
                )
            }
        }
    }

    fn format_name(&self) -> &'static str {
        match self.format {
            Format::Auto => "auto",
            Format::Kubernetes => "kubernetes",
            Format::Vault => "vault",
            Format::OpenBao => "openbao",
        }
    }

    /// Decodes one complete record (a Kafka message or a framed JSON value).
    pub fn decode_record(&mut self, bytes: &[u8], prov: &Provenance<'_>, out: &mut dyn Output) {
        if bytes.len() > self.opts.max_event_bytes {
            let r = Rejected::new(
                self.format_name(),
                format!(
                    "record of {} bytes exceeds max_event_bytes ({})",
                    bytes.len(),
                    self.opts.max_event_bytes
                ),
            );
            return out.reject(bytes, r, prov);
        }
        let text = match simdutf8::compat::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                return out.reject(
                    bytes,
                    Rejected::new(self.format_name(), format!("invalid UTF-8: {e}")),
                    prov,
                );
            }
        };
        let trimmed = text.trim();
        if !trimmed.starts_with('{') && !trimmed.starts_with('[') {
            let first = bytes.first().copied().unwrap_or(0);
            return out.reject(
                bytes,
                Rejected::new(
                    self.format_name(),
                    format!("not JSON: record starts with byte 0x{first:02x}"),
                ),
                prov,
            );
        }
        if trimmed.starts_with('[') {
            return self.decode_array(trimmed, prov, out);
        }
        match self.format {
            Format::Kubernetes => self.k8s(trimmed, prov, out),
            Format::Vault => self.vault(trimmed, Source::Vault, prov, out),
            Format::OpenBao => self.vault(trimmed, Source::OpenBao, prov, out),
            Format::Auto => self.auto(trimmed, prov, out),
        }
    }

    fn decode_array(&mut self, text: &str, prov: &Provenance<'_>, out: &mut dyn Output) {
        match serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text) {
            Ok(items) => {
                for item in items {
                    self.decode_record(item.get().as_bytes(), prov, out);
                }
            }
            Err(e) => out.reject(
                text.as_bytes(),
                Rejected::json(self.format_name(), &e),
                prov,
            ),
        }
    }

    fn k8s(&mut self, text: &str, prov: &Provenance<'_>, out: &mut dyn Output) {
        let mut s = WithProv { out, prov };
        if let Err(r) = k8s::decode(text, &self.opts, &mut s) {
            out.reject(text.as_bytes(), r, prov);
        }
    }

    fn vault(&mut self, text: &str, source: Source, prov: &Provenance<'_>, out: &mut dyn Output) {
        if let Err(r) = self.try_vault(text, source, prov, out) {
            out.reject(text.as_bytes(), r, prov);
        }
    }

    fn try_vault(
        &mut self,
        text: &str,
        source: Source,
        prov: &Provenance<'_>,
        out: &mut dyn Output,
    ) -> Result<(), Rejected> {
        if self.opts.vault_pairing {
            self.pairer.offer(text, source, prov, &self.opts, out)
        } else {
            let mut s = WithProv { out, prov };
            vault::decode_entry(text, source, &self.opts, &mut s)
        }
    }

    fn auto(&mut self, text: &str, prov: &Provenance<'_>, out: &mut dyn Output) {
        let guess = sniff(text);
        let r = match guess {
            Guess::Vault => match self.try_vault(text, Source::Vault, prov, out) {
                Ok(()) => return,
                Err(r) => Some(r),
            },
            Guess::Gke | Guess::Aks | Guess::CloudWatch => {
                let mut s = WithProv { out, prov };
                match wrappers::decode(text, &self.opts, &mut s) {
                    Ok(true) => return,
                    Ok(false) => None,
                    Err(r) => Some(r),
                }
            }
            Guess::Kubernetes => {
                let mut s = WithProv { out, prov };
                match k8s::decode(text, &self.opts, &mut s) {
                    Ok(()) => return,
                    Err(r) => Some(r),
                }
            }
        };
        // the guess failed: try the other shapes before giving up
        if guess != Guess::Kubernetes && has_key(text, "auditID") {
            return self.k8s(text, prov, out);
        }
        if guess != Guess::Vault && self.try_vault(text, Source::Vault, prov, out).is_ok() {
            return;
        }
        let reason = match r {
            Some(r) => format!("not a recognized audit event ({})", r.reason),
            None => "not a recognized audit event: neither a Kubernetes audit Event nor a Vault/OpenBao audit entry".to_string(),
        };
        out.reject(text.as_bytes(), Rejected::new("auto", reason), prov);
    }

    /// Emits Vault requests older than `now_us` minus the configured wait (call on idle
    /// ticks of a live stream, with the current event-time watermark).
    pub fn expire(&mut self, now_us: i64, out: &mut dyn Output) {
        self.pairer.expire_before(
            now_us.saturating_sub(self.opts.vault_pair_wait_us),
            &self.opts,
            out,
        );
    }

    /// Emits everything still held (end of input or shutdown).
    pub fn flush(&mut self, out: &mut dyn Output) {
        self.pairer.flush(&self.opts, out);
    }
}

/// Replaces the contents of every double-quoted span with `…`.
pub(crate) fn blank_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for c in msg.chars() {
        if c == '"' {
            if inside {
                out.push('…');
            }
            inside = !inside;
            out.push(c);
        } else if !inside {
            out.push(c);
        }
    }
    out
}

fn has_key(text: &str, key: &str) -> bool {
    memchr::memmem::find(text.as_bytes(), format!("\"{key}\"").as_bytes()).is_some()
}
