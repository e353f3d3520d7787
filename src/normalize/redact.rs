//! Redaction of secret values before anything is stored, printed or alerted on.
//!
//! What is removed (values only; key names stay so investigators see *which* keys moved):
//! - Kubernetes: `data`/`stringData` of Secret objects (also lists, watch events and
//!   patches sent to the `secrets` resource), `kubectl.kubernetes.io/last-applied-configuration`
//!   annotations anywhere, `token` fields (TokenRequest `status.token`, TokenReview
//!   `spec.token`), credentials in request-URI query strings.
//! - Vault/OpenBao: every string in `request.data`/`response.data` that is not HMAC'd,
//!   plain client tokens, wrapping tokens, `authorization`/`x-vault-token` headers.
//! - Quarantined bytes that do not parse: [`scrub_lenient`] masks string values under
//!   sensitive keys with a tokenizer that tolerates truncation.
//!
//! Fast path: decoders check a body with [`k8s_body_needs_redaction`] or
//! [`vault_strings_hmaced`] and only parse and rewrite bodies that need it; the rewritten
//! text is spliced into the original with [`splice`].

use std::ops::Range;
use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde_json::Value;

/// What every redacted value becomes.
pub const REDACTED: &str = "[REDACTED]";
const HMAC_PREFIX: &str = "hmac-sha256:";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Keys whose values are masked in unparseable input and in token-bearing Vault fields.
const SENSITIVE_KEYS: &[&str] = &[
    "data",
    "stringData",
    "token",
    "client_token",
    "password",
    "passwd",
    "secret",
    "secret_id",
    "private_key",
    "client-key-data",
    "authorization",
    "x-vault-token",
    "cookie",
    "access_token",
    "refresh_token",
    "id_token",
    LAST_APPLIED,
];

/// Query-string parameters whose values are credentials.
const SENSITIVE_QUERY: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// Byte range of `inner` inside `outer`, when `inner` is a sub-slice of it.
pub fn span_of(outer: &str, inner: &str) -> Option<Range<usize>> {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    if i >= o && i + inner.len() <= o + outer.len() {
        Some(i - o..i - o + inner.len())
    } else {
        None
    }
}

/// Replaces non-overlapping ranges of `orig` with new text.
pub fn splice(orig: &str, edits: &mut [(Range<usize>, String)]) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(orig.len());
    let mut at = 0;
    for (r, text) in edits.iter() {
        if r.start < at {
            continue; // overlapping edit: the outer one already covered it
        }
        out.push_str(&orig[at..r.start]);
        out.push_str(text);
        at = r.end;
    }
    out.push_str(&orig[at..]);
    out
}

// ---------------------------------------------------------------- Kubernetes

/// Cheap check whether a request/response body may hold something to redact.
/// `secret_ctx` is true when the event's resource is `secrets`.
pub fn k8s_body_needs_redaction(body: &str, secret_ctx: bool) -> bool {
    if secret_ctx {
        return true;
    }
    static FINDERS: LazyLock<[Finder<'static>; 4]> = LazyLock::new(|| {
        [
            Finder::new(b"last-applied-configuration"),
            Finder::new(b"\"Secret"),
            Finder::new(b"stringData"),
            Finder::new(b"\"token\""),
        ]
    });
    let b = body.as_bytes();
    FINDERS.iter().any(|f| f.find(b).is_some())
}

/// Redacts a Kubernetes request/response body in place. Returns whether anything changed.
pub fn redact_k8s_body(v: &mut Value, secret_ctx: bool) -> bool {
    let mut changed = false;
    walk_k8s(v, secret_ctx, &mut changed);
    changed
}

fn mask(v: &mut Value, changed: &mut bool) {
    match v {
        Value::String(s) if s == REDACTED => {}
        Value::Null => {}
        Value::Object(m) => {
            for (_, x) in m.iter_mut() {
                mask(x, changed);
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                mask(x, changed);
            }
        }
        _ => {
            *v = Value::String(REDACTED.to_string());
            *changed = true;
        }
    }
}

fn walk_k8s(v: &mut Value, secret_ctx: bool, changed: &mut bool) {
    match v {
        Value::Object(m) => {
            let kind = m.get("kind").and_then(Value::as_str).unwrap_or("");
            let is_secret = secret_ctx || kind == "Secret" || kind == "SecretList";
            // JSON-patch op against a secret: {"op":"add","path":"/data/x","value":"…"}
            if is_secret && m.contains_key("op") && m.contains_key("path") {
                if let Some(val) = m.get_mut("value") {
                    mask(val, changed);
                }
            }
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "data" | "stringData" if is_secret => mask(x, changed),
                    "token" => mask(x, changed),
                    LAST_APPLIED => mask(x, changed),
                    _ => walk_k8s(x, is_secret, changed),
                }
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                walk_k8s(x, secret_ctx, changed);
            }
        }
        _ => {}
    }
}

/// Masks credential query parameters of a request URI. `None` when nothing changed.
pub fn redact_uri(uri: &str) -> Option<String> {
    let q = uri.find('?')?;
    let (path, query) = uri.split_at(q + 1);
    let sensitive = |kv: &str| match kv.split_once('=') {
        Some((k, v)) => !v.is_empty() && SENSITIVE_QUERY.iter().any(|s| k.eq_ignore_ascii_case(s)),
        None => false,
    };
    if !query.split('&').any(sensitive) {
        return None;
    }
    let mut changed = false;
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v))
                if !v.is_empty() && SENSITIVE_QUERY.iter().any(|s| k.eq_ignore_ascii_case(s)) =>
            {
                changed = true;
                format!("{k}={REDACTED}")
            }
            _ => kv.to_string(),
        })
        .collect();
    changed.then(|| format!("{path}{}", parts.join("&")))
}

// ---------------------------------------------------------------- Vault / OpenBao

/// True when a token-like field can be kept as it is: empty or HMAC'd.
pub fn vault_token_ok(s: &str) -> bool {
    s.is_empty() || s.starts_with(HMAC_PREFIX)
}

/// True when every string *value* in this JSON text is HMAC'd (or empty), so the text can be
/// kept as it is. Keys are not checked: Vault does not HMAC keys.
pub fn vault_strings_hmaced(json: &str) -> bool {
    let b = json.as_bytes();
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'"', &b[i..]) {
        let start = i + p + 1;
        // find the closing quote, honouring escapes
        let mut j = start;
        loop {
            match memchr::memchr2(b'"', b'\\', &b[j..]) {
                None => return false, // malformed: let the slow path decide
                Some(q) if b[j + q] == b'\\' => j += q + 2,
                Some(q) => {
                    j += q;
                    break;
                }
            }
            if j >= b.len() {
                return false;
            }
        }
        let s = &b[start..j];
        // a key is followed by ':' (after optional whitespace)
        let mut k = j + 1;
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        let is_key = k < b.len() && b[k] == b':';
        if !is_key && !s.is_empty() && !s.starts_with(HMAC_PREFIX.as_bytes()) {
            return false;
        }
        i = j + 1;
    }
    true
}

fn mask_unhmaced(v: &mut Value, changed: &mut bool) {
    match v {
        Value::String(s) => {
            if !vault_token_ok(s) && s != REDACTED {
                *s = REDACTED.to_string();
                *changed = true;
            }
        }
        Value::Object(m) => m.values_mut().for_each(|x| mask_unhmaced(x, changed)),
        Value::Array(a) => a.iter_mut().for_each(|x| mask_unhmaced(x, changed)),
        _ => {}
    }
}

/// Redacts a whole Vault/OpenBao audit entry in place. Returns whether anything changed.
pub fn redact_vault_entry(v: &mut Value) -> bool {
    let mut changed = false;
    let Value::Object(top) = v else { return false };
    if let Some(Value::Object(auth)) = top.get_mut("auth") {
        if let Some(t) = auth.get_mut("client_token") {
            mask_unhmaced(t, &mut changed);
        }
    }
    if let Some(Value::Object(req)) = top.get_mut("request") {
        for key in ["data", "client_token", "wrap_info"] {
            if let Some(x) = req.get_mut(key) {
                mask_unhmaced(x, &mut changed);
            }
        }
        if let Some(Value::Object(h)) = req.get_mut("headers") {
            for (k, x) in h.iter_mut() {
                let k = k.to_ascii_lowercase();
                if k == "authorization" || k == "x-vault-token" || k == "cookie" {
                    mask_unhmaced(x, &mut changed);
                }
            }
        }
    }
    if let Some(Value::Object(resp)) = top.get_mut("response") {
        if let Some(x) = resp.get_mut("data") {
            mask_unhmaced(x, &mut changed);
        }
        if let Some(Value::Object(auth)) = resp.get_mut("auth") {
            if let Some(t) = auth.get_mut("client_token") {
                mask_unhmaced(t, &mut changed);
            }
        }
        if let Some(Value::Object(w)) = resp.get_mut("wrap_info") {
            if let Some(t) = w.get_mut("token") {
                mask_unhmaced(t, &mut changed);
            }
        }
    }
    changed
}

// ---------------------------------------------------------------- unparseable input

/// Masks string values under sensitive keys (see `SENSITIVE_KEYS`) in bytes that may be
/// truncated or otherwise invalid JSON. Everything else is kept byte for byte.
/// Returns the scrubbed bytes and whether anything was masked.
pub fn scrub_lenient(input: &[u8]) -> (Vec<u8>, bool) {
    #[derive(Clone, Copy)]
    struct Frame {
        object: bool,
        expect_key: bool,
        sensitive: bool,
        key_sensitive: bool,
    }
    let mut out = Vec::with_capacity(input.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        match c {
            b'{' | b'[' => {
                let parent_sens = stack
                    .last()
                    .map(|f| f.sensitive || f.key_sensitive)
                    .unwrap_or(false);
                stack.push(Frame {
                    object: c == b'{',
                    expect_key: c == b'{',
                    sensitive: parent_sens,
                    key_sensitive: false,
                });
                out.push(c);
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                out.push(c);
                i += 1;
            }
            b',' => {
                if let Some(f) = stack.last_mut() {
                    if f.object {
                        f.expect_key = true;
                        f.key_sensitive = false;
                    }
                }
                out.push(c);
                i += 1;
            }
            b'"' => {
                // scan the string
                let start = i + 1;
                let mut j = start;
                while j < input.len() && input[j] != b'"' {
                    if input[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                let end = j.min(input.len());
                let content = &input[start..end];
                let top = stack.last().copied();
                match top {
                    Some(f) if f.object && f.expect_key => {
                        let key_sens = SENSITIVE_KEYS.iter().any(|k| k.as_bytes() == content);
                        let f = stack.last_mut().unwrap();
                        f.expect_key = false;
                        f.key_sensitive = key_sens;
                        out.extend_from_slice(&input[i..(end + 1).min(input.len())]);
                    }
                    Some(f) if f.sensitive || f.key_sensitive => {
                        out.push(b'"');
                        if !content.is_empty() {
                            out.extend_from_slice(REDACTED.as_bytes());
                            changed = true;
                        }
                        if end < input.len() {
                            out.push(b'"');
                        }
                    }
                    _ => out.extend_from_slice(&input[i..(end + 1).min(input.len())]),
                }
                i = end + 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_data_is_masked_keys_kept() {
        let mut v = json!({"kind":"Secret","metadata":{"name":"db"},"data":{"password":"Q0FOQVJZ"},"stringData":{"x":"CANARY"}});
        assert!(redact_k8s_body(&mut v, false));
        assert_eq!(v["data"]["password"], REDACTED);
        assert_eq!(v["stringData"]["x"], REDACTED);
        assert_eq!(v["metadata"]["name"], "db");
    }

    #[test]
    fn secret_list_items_and_patches_are_masked() {
        let mut v =
            json!({"kind":"SecretList","items":[{"metadata":{"name":"a"},"data":{"k":"CANARY"}}]});
        assert!(redact_k8s_body(&mut v, false));
        assert_eq!(v["items"][0]["data"]["k"], REDACTED);
        let mut p = json!([{"op":"replace","path":"/data/k","value":"CANARY"}]);
        assert!(redact_k8s_body(&mut p, true));
        assert_eq!(p[0]["value"], REDACTED);
    }

    #[test]
    fn configmap_data_is_kept_but_last_applied_is_not() {
        let mut v = json!({"kind":"ConfigMap","data":{"aws":"AKIA"},"metadata":{"annotations":{LAST_APPLIED:"{\"data\":{\"p\":\"CANARY\"}}"}}});
        assert!(redact_k8s_body(&mut v, false));
        assert_eq!(v["data"]["aws"], "AKIA");
        assert_eq!(v["metadata"]["annotations"][LAST_APPLIED], REDACTED);
    }

    #[test]
    fn token_review_and_request_tokens_are_masked() {
        let mut v = json!({"kind":"TokenReview","spec":{"token":"eyJCANARY"}});
        assert!(redact_k8s_body(&mut v, false));
        assert_eq!(v["spec"]["token"], REDACTED);
        let mut v =
            json!({"kind":"TokenRequest","status":{"token":"eyJCANARY","expirationTimestamp":"x"}});
        assert!(redact_k8s_body(&mut v, false));
        assert_eq!(v["status"]["token"], REDACTED);
    }

    #[test]
    fn uri_tokens_are_masked() {
        assert_eq!(
            redact_uri("/api/v1/pods?watch=true&access_token=CANARY").as_deref(),
            Some("/api/v1/pods?watch=true&access_token=[REDACTED]")
        );
        assert_eq!(redact_uri("/api/v1/pods?watch=true"), None);
        assert_eq!(redact_uri("/api/v1/pods"), None);
    }

    #[test]
    fn vault_hmac_check() {
        assert!(vault_strings_hmaced(
            r#"{"a":"hmac-sha256:ab","b":["hmac-sha256:cd"],"n":3,"e":""}"#
        ));
        assert!(!vault_strings_hmaced(r#"{"password":"CANARY"}"#));
        assert!(!vault_strings_hmaced(r#"{"a":"x\"y"}"#));
    }

    #[test]
    fn vault_entry_plain_values_masked_hmac_kept() {
        let mut v = json!({"type":"response","auth":{"client_token":"hvs.CANARY","display_name":"root"},
            "request":{"data":{"password":"CANARY","h":"hmac-sha256:1"},"headers":{"Authorization":["Bearer CANARY"]}},
            "response":{"data":{"v":"CANARY","n":1},"auth":{"client_token":"s.CANARY","accessor":"acc"},"wrap_info":{"token":"CANARY"}}});
        assert!(redact_vault_entry(&mut v));
        let s = v.to_string();
        assert!(!s.contains("CANARY"), "{s}");
        assert!(s.contains("hmac-sha256:1") && s.contains("\"root\"") && s.contains("\"acc\""));
    }

    #[test]
    fn lenient_scrub_handles_truncation() {
        let (out, ch) = scrub_lenient(br#"{"kind":"Secret","data":{"password":"CANARY","b":"CANA"#);
        let s = String::from_utf8(out).unwrap();
        assert!(ch);
        assert!(!s.contains("CANA"), "{s}");
        assert!(s.contains("\"kind\":\"Secret\""));
        let (out, ch) = scrub_lenient(b"\x00\x01garbage");
        assert!(!ch);
        assert_eq!(out, b"\x00\x01garbage");
    }

    #[test]
    fn splice_replaces_ranges() {
        let s = "abcdef";
        assert_eq!(
            splice(s, &mut [(4..5, "X".into()), (1..2, "YY".into())]),
            "aYYcdXf"
        );
    }
}
