//! `auditwatch rules check` and `auditwatch rules test`.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;

use super::fields::FieldMap;
use super::sigma::{DiagSeverity, Document};
use super::{Engine, RuleSet, Sources};
use crate::batch::{BatchLimits, Batcher};
use crate::decode::framing::Framer;
use crate::decode::{DecodeOptions, Decoder, Format};
use crate::normalize::builder::Provenance;

/// Decodes audit records (JSON lines) into one `access_events` batch, as ingest would.
/// Returns the batch (if any row decoded) and the number of quarantined records.
pub fn decode_to_batch(bytes: &[u8], format: Format) -> (Option<RecordBatch>, u64) {
    let mut batcher = Batcher::new(BatchLimits::default());
    let mut decoder = Decoder::new(format, DecodeOptions::default());
    let mut framer = Framer::new(bytes, 16 << 20);
    while let Ok(Some(frame)) = framer.next_frame() {
        let prov = Provenance {
            input: Some("test"),
            input_offset: Some(frame.offset as i64),
            ..Default::default()
        };
        decoder.decode_frame(&frame, &prov, &mut batcher);
    }
    decoder.flush(&mut batcher);
    let quarantined = batcher.counts.quarantined;
    let closed = batcher.take().ok();
    (closed.and_then(|c| c.events), quarantined)
}

/// One test case's result.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub file: PathBuf,
    pub line: usize,
    pub rule_id: String,
    pub title: String,
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Runs the `tests:` every rule carries, against the whole rule set (so filters apply).
pub fn run_tests(paths: &[PathBuf], fields: &FieldMap) -> (RuleSet, Vec<TestOutcome>) {
    let rs = Arc::new(RuleSet::load(paths, fields));
    let mut out = Vec::new();
    for doc in &rs.documents {
        let meta = doc.meta();
        let (format, rule_idx, corr) = match doc {
            Document::Rule(_) => {
                let Some(i) = rs.rules.iter().position(|r| r.meta.id == meta.id) else {
                    continue;
                };
                (format_of(rs.rules[i].sources), Some(i), false)
            }
            Document::Correlation(c) => {
                let src = first_rule_sources(&rs, &c.rules).unwrap_or(Sources::Any);
                (format_of(src), None, true)
            }
            Document::Filter(_) => continue,
        };
        for t in &meta.tests {
            let mut text = String::new();
            for e in &t.events {
                text.push_str(&e.to_string());
                text.push('\n');
            }
            let (batch, quarantined) = decode_to_batch(text.as_bytes(), format);
            let mut detail = String::new();
            if quarantined > 0 {
                detail = format!("{quarantined} test event(s) did not decode (quarantined); ");
            }
            let fired = match &batch {
                None => false,
                Some(b) => {
                    let mut engine = Engine::new(rs.clone());
                    if let (Some(i), false) = (rule_idx, corr) {
                        engine.matches(b)[i].count_set_bits() > 0
                    } else {
                        engine.evaluate(b).iter().any(|a| a.rule_id == meta.id)
                    }
                }
            };
            let passed = fired == t.expect_match && quarantined == 0;
            if !passed {
                detail.push_str(if t.expect_match {
                    "expected a match, got none"
                } else {
                    "expected no match, but it matched"
                });
            }
            out.push(TestOutcome {
                file: meta.file.clone(),
                line: t.line,
                rule_id: meta.id.clone(),
                title: meta.title.clone(),
                name: t.name.clone(),
                passed,
                detail,
            });
        }
    }
    let rs = Arc::try_unwrap(rs).unwrap_or_else(|a| RuleSet {
        diagnostics: a.diagnostics.clone(),
        dropped: a.dropped,
        files: a.files.clone(),
        ..Default::default()
    });
    (rs, out)
}

fn first_rule_sources(rs: &RuleSet, names: &[String]) -> Option<Sources> {
    for n in names {
        if let Some(r) = rs
            .rules
            .iter()
            .find(|r| &r.meta.id == n || r.meta.name.as_ref() == Some(n))
        {
            return Some(r.sources);
        }
        if let Some(c) = rs
            .correlations
            .iter()
            .find(|c| &c.meta.id == n || c.meta.name.as_ref() == Some(n))
        {
            return first_rule_sources(rs, &c.input_names);
        }
    }
    None
}

fn format_of(s: Sources) -> Format {
    match s {
        Sources::Kubernetes => Format::Kubernetes,
        Sources::Vault => Format::Vault,
        _ => Format::Auto,
    }
}

/// Counts for the summary line of `rules check`.
pub fn summary(rs: &RuleSet) -> String {
    let errors = rs
        .diagnostics
        .iter()
        .filter(|d| d.severity == DiagSeverity::Error)
        .count();
    let warnings = rs.diagnostics.len() - errors;
    let filters = rs
        .documents
        .iter()
        .filter(|d| matches!(d, Document::Filter(_)))
        .count();
    format!(
        "{} files: {} detection rules, {} correlations, {} filters, {} shared predicates; {} errors, {} warnings",
        rs.files.len(),
        rs.rules.len(),
        rs.correlations.len(),
        filters,
        rs.leaves.len(),
        errors,
        warnings
    )
}
