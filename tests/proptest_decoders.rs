//! Property tests for the decoders: arbitrary or damaged bytes never panic and every
//! record is accounted for; planted secret values never survive redaction; framing finds
//! every record however records are separated or printed.

mod common;

use auditwatch::decode::{DecodeOptions, Format};
use common::decode_bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

fn k8s_event(id: &str, resource: &str, body: Value) -> Value {
    json!({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":id,
        "stage":"ResponseComplete","requestURI":format!("/api/v1/namespaces/ns/{resource}/x"),"verb":"create",
        "user":{"username":"system:serviceaccount:ns:app","groups":["system:authenticated"]},
        "sourceIPs":["10.0.0.1"],"objectRef":{"resource":resource,"namespace":"ns","name":"x","apiVersion":"v1"},
        "responseStatus":{"metadata":{},"code":201},"requestObject":body,"responseObject":body,
        "requestReceivedTimestamp":"2026-11-20T10:00:00.000001Z","stageTimestamp":"2026-11-20T10:00:00.000002Z"})
}

fn vault_entry(id: &str, kind: &str, data: Value) -> Value {
    json!({"time":"2026-11-20T10:00:00Z","type":kind,"auth":{"client_token":"hmac-sha256:aa","display_name":"approle","policies":["default"]},
        "request":{"id":id,"operation":"read","path":"secret/data/x","mount_type":"kv","remote_address":"10.0.0.2"},
        "response":{"data":data}})
}

/// Every string value anywhere in a JSON document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

fn formats() -> impl Strategy<Value = Format> {
    prop_oneof![
        Just(Format::Auto),
        Just(Format::Kubernetes),
        Just(Format::Vault),
        Just(Format::OpenBao)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), format in formats()) {
        let d = decode_bytes(&bytes, format, DecodeOptions::default());
        for q in &d.quarantine {
            prop_assert!(q["reason"].as_str().is_some_and(|r| !r.is_empty()));
        }
    }

    #[test]
    fn damaged_events_never_panic_and_are_accounted_for(
        cut in 0usize..2000, flip in 0usize..2000, byte in any::<u8>(), format in formats(), vault in any::<bool>()
    ) {
        let ev = if vault {
            vault_entry("r1", "response", json!({"k":"hmac-sha256:1"})).to_string()
        } else {
            k8s_event("a1", "pods", json!({"kind":"Pod","spec":{"containers":[{"name":"c","image":"i"}]}})).to_string()
        };
        let mut b = ev.into_bytes();
        let flip = flip % b.len();
        b[flip] = byte;
        b.truncate(cut.min(b.len()));
        let d = decode_bytes(&b, format, DecodeOptions::default());
        let nonblank = b.iter().any(|c| !c.is_ascii_whitespace() && *c != b',');
        if nonblank {
            prop_assert!(d.rows.len() + d.quarantine.len() + d.skipped as usize >= 1, "record vanished: {:?}", String::from_utf8_lossy(&b));
        }
    }

    #[test]
    fn secret_values_never_survive(secret in "\\PC{1,40}", key in "[a-zA-Z_.-]{1,12}", list in any::<bool>()) {
        prop_assume!(secret.trim().len() > 3 && !"[REDACTED]".contains(secret.as_str()));
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &secret);
        let secret_obj = json!({"kind":"Secret","metadata":{"name":"x"},"data":{key.clone(): b64},"stringData":{key.clone(): secret}});
        let body = if list { json!({"kind":"SecretList","items":[{"metadata":{"name":"x"},"data":{key.clone(): b64},"stringData":{key.clone(): secret}}]}) } else { secret_obj };
        let text = k8s_event("s1", "secrets", body).to_string();
        let d = decode_bytes(text.as_bytes(), Format::Auto, DecodeOptions::default());
        prop_assert_eq!(d.rows.len(), 1);
        let raw: Value = serde_json::from_str(d.rows[0]["raw"].as_str().unwrap()).unwrap();
        let mut all = vec![];
        strings(&raw, &mut all);
        prop_assert!(!all.iter().any(|s| s == &secret || s == &b64), "secret survived in {raw}");
        // same for a Vault response whose data is not HMAC'd
        let v = vault_entry("v1", "response", json!({key.clone(): secret, "n": 1})).to_string();
        let d = decode_bytes(v.as_bytes(), Format::Auto, DecodeOptions::default());
        prop_assert_eq!(d.rows.len(), 1);
        let raw: Value = serde_json::from_str(d.rows[0]["raw"].as_str().unwrap()).unwrap();
        let mut all = vec![];
        strings(&raw, &mut all);
        prop_assert!(!all.iter().any(|s| s == &secret), "vault secret survived in {raw}");
    }

    #[test]
    fn framing_finds_every_record(
        seps in proptest::collection::vec(prop_oneof![Just("\n"), Just(""), Just(" "), Just("\r\n"), Just("\n\n\t")], 1..20),
        pretty in proptest::collection::vec(any::<bool>(), 20)
    ) {
        let mut text = String::new();
        for (i, sep) in seps.iter().enumerate() {
            let ev = k8s_event(&format!("id-{i}"), "configmaps", json!({"kind":"ConfigMap","data":{"a":"}{\"]["}}));
            text.push_str(&if pretty[i] { serde_json::to_string_pretty(&ev).unwrap() } else { ev.to_string() });
            text.push_str(sep);
        }
        let d = decode_bytes(text.as_bytes(), Format::Auto, DecodeOptions::default());
        prop_assert!(d.quarantine.is_empty(), "{:?}", d.quarantine);
        let ids: Vec<_> = d.rows.iter().map(|r| r["event_id"].as_str().unwrap().to_string()).collect();
        let want: Vec<_> = (0..seps.len()).map(|i| format!("id-{i}")).collect();
        prop_assert_eq!(ids, want);
    }
}
