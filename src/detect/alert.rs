//! The alert every detector emits: deterministic id, severity, what was observed and the
//! events behind it.

use serde::Serialize;

use super::sigma::Level;
use crate::normalize::format_time_us;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    /// Deterministic: the same events and rule give the same id on a replay.
    pub id: String,
    #[serde(serialize_with = "ser_time")]
    pub time: i64,
    pub rule_id: String,
    pub title: String,
    pub severity: Level,
    /// `sigma`, `sigma_correlation`, or a baseline detector name.
    pub detector: String,
    pub actor: Option<String>,
    pub source: Option<String>,
    pub resources: Vec<String>,
    #[serde(serialize_with = "ser_time")]
    pub window_start: i64,
    #[serde(serialize_with = "ser_time")]
    pub window_end: i64,
    pub event_ids: Vec<String>,
    pub tags: Vec<String>,
    /// What was observed, the threshold or baseline, and why it fired.
    pub explanation: serde_json::Value,
}

impl Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn ser_time<S: serde::Serializer>(us: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time_us(*us))
}

/// A UUID-shaped id from a 128-bit hash of the parts.
pub fn alert_id(parts: &[&str]) -> String {
    let mut buf = Vec::new();
    for p in parts {
        buf.extend_from_slice(&(p.len() as u64).to_le_bytes());
        buf.extend_from_slice(p.as_bytes());
    }
    uuid::Uuid::from_u128(xxhash_rust::xxh3::xxh3_128(&buf)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_unambiguous() {
        assert_eq!(alert_id(&["a", "b"]), alert_id(&["a", "b"]));
        assert_ne!(alert_id(&["ab", ""]), alert_id(&["a", "b"]));
    }
}
