//! The shipped rule pack: every file loads with no error or warning, every rule's tests
//! pass, every standalone rule has tests, and the copy embedded in the binary (for `demo`
//! and `bench`) is the same set.

use std::path::PathBuf;

use auditwatch::detect::fields::FieldMap;
use auditwatch::detect::{RuleSet, tooling};

fn pack() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("rules")
}

#[test]
fn the_pack_checks_clean_and_its_tests_pass() {
    let (rs, outcomes) = tooling::run_tests(&[pack()], &FieldMap::builtin());
    let diags: Vec<String> = rs.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        diags.is_empty(),
        "rules check findings:\n{}",
        diags.join("\n")
    );
    assert_eq!(rs.dropped, 0);
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| {
            format!(
                "{}:{} {} — {}: {}",
                o.file.display(),
                o.line,
                o.title,
                o.name,
                o.detail
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} failing rule tests:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(outcomes.len() >= 70, "only {} rule tests", outcomes.len());
    let untested: Vec<&str> = rs
        .rules
        .iter()
        .filter(|r| r.standalone && r.meta.tests.is_empty())
        .map(|r| r.meta.title.as_str())
        .collect();
    assert!(untested.is_empty(), "rules without tests: {untested:?}");
    let standalone = rs.rules.iter().filter(|r| r.standalone).count() + rs.correlations.len();
    assert!(standalone >= 35, "the pack has {standalone} alerting rules");
}

#[test]
fn the_embedded_pack_is_the_shipped_pack() {
    let embedded = auditwatch::demo::embedded_rules();
    let disk = RuleSet::load(&[pack()], &FieldMap::builtin());
    assert_eq!(embedded.dropped, 0);
    let ids = |rs: &RuleSet| {
        let mut v: Vec<String> = rs
            .rules
            .iter()
            .map(|r| r.meta.id.clone())
            .chain(rs.correlations.iter().map(|c| c.meta.id.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&embedded), ids(&disk));
}
