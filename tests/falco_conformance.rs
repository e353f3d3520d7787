//! The Falco k8s_audit regression suite (falcosecurity/falco 2023, rules at
//! falcosecurity/plugins cced306) run against OUR rule pack in `rules/`, through
//! `rules/falco-mapping.tsv` (Falco rule → our rule id, `-` when not covered).
//!
//! - Positive cases (`detect: True`) whose Falco rule is mapped: our rule alerts on the
//!   trace, as many times as Falco's `detect_counts` says.
//! - Negative cases (`detect: False`): the mapped rules of the Falco rules defined in that
//!   case's rule files stay quiet. A case whose override files (files that define only
//!   macros and lists, e.g. `trust_nginx_container.yaml`, `disallow_kactivity.yaml`)
//!   change a macro or list a Falco rule's condition depends on tests that configuration,
//!   not the trace; its rules are reported as configuration-dependent and not asserted.
//!
//! Prints the coverage figure (mapped positive cases / all positive cases) and a per-case
//! table; fails on any mismatch.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auditwatch::decode::Format;
use auditwatch::detect::fields::FieldMap;
use auditwatch::detect::tooling::decode_to_batch;
use auditwatch::detect::yaml::{self, Node};
use auditwatch::detect::{Engine, RuleSet};
use common::conformance_dir;

struct Case {
    name: String,
    trace: PathBuf,
    rule_files: Vec<PathBuf>,
    detect: bool,
    /// Falco rule → expected count.
    counts: Vec<(String, usize)>,
}

fn cases(data: &Path) -> Vec<Case> {
    let falco = data.join("falcosecurity-falco");
    let resolve = |p: &str| {
        if p.starts_with("test/") {
            falco.join(p)
        } else {
            data.join(p)
        }
    };
    let tsv =
        std::fs::read_to_string(falco.join("_derived/expectations_falco_tests_yaml_2023.tsv"))
            .unwrap();
    tsv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Case {
                name: c[0].to_string(),
                trace: resolve(c[1]),
                rule_files: c[2].split(',').map(resolve).collect(),
                detect: c[3] == "True",
                counts: c
                    .get(5)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.split(';')
                            .map(|rc| {
                                let (r, n) = rc.rsplit_once('=').expect("rule=count");
                                (r.to_string(), n.parse().unwrap())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The spec's case names and `detect` flags, read from the original YAML, to check the
/// flattened TSV against it.
fn spec_flags(data: &Path) -> BTreeMap<String, bool> {
    let text =
        std::fs::read_to_string(data.join("falcosecurity-falco/test/falco_k8s_audit_tests.yaml"))
            .unwrap();
    let docs = yaml::load_all(&text).unwrap();
    let root = docs[0].get("trace_files").expect("trace_files");
    root.as_map()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let detect = matches!(
                v.get("detect").map(|d| &d.value),
                Some(yaml::Value::Bool(true))
            ) || v.get("detect").and_then(Node::scalar_text).as_deref()
                == Some("True");
            (k.scalar_text().unwrap(), detect)
        })
        .collect()
}

/// What a Falco rules file defines: rules (name → condition), macros, lists.
#[derive(Default)]
struct FalcoFile {
    rules: Vec<(String, String)>,
    macros: Vec<(String, String)>,
    lists: Vec<(String, Vec<String>)>,
}

fn falco_file(path: &Path) -> FalcoFile {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs = yaml::load_all(&text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let mut f = FalcoFile::default();
    for item in docs.iter().filter_map(Node::as_seq).flatten() {
        let cond = || {
            item.get("condition")
                .and_then(Node::scalar_text)
                .unwrap_or_default()
        };
        if let Some(r) = item.get("rule").and_then(Node::scalar_text) {
            f.rules.push((r, cond()));
        } else if let Some(m) = item.get("macro").and_then(Node::scalar_text) {
            f.macros.push((m, cond()));
        } else if let Some(l) = item.get("list").and_then(Node::scalar_text) {
            let items = item
                .get("items")
                .and_then(Node::str_list)
                .unwrap_or_default();
            f.lists.push((l, items));
        }
    }
    f
}

fn words(cond: &str) -> impl Iterator<Item = &str> {
    cond.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// Falco rules defined by the case's files (later definitions win), each with whether
/// its condition depends, through macros, on a macro or list that an override file of
/// the case redefines or appends to.
fn case_rules(files: &[&FalcoFile]) -> BTreeMap<String, bool> {
    let mut macros: HashMap<&str, &str> = HashMap::new();
    let mut overridden: BTreeSet<&str> = BTreeSet::new();
    let mut rules: BTreeMap<String, &str> = BTreeMap::new();
    for f in files {
        let is_override = f.rules.is_empty();
        for (m, c) in &f.macros {
            macros.insert(m, c);
            if is_override {
                overridden.insert(m);
            }
        }
        for (l, _) in &f.lists {
            if is_override {
                overridden.insert(l);
            }
        }
        for (r, c) in &f.rules {
            rules.insert(r.clone(), c);
        }
    }
    let depends = |cond: &str| {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = words(cond).collect();
        while let Some(w) = stack.pop() {
            if !seen.insert(w) {
                continue;
            }
            if overridden.contains(w) {
                return true;
            }
            if let Some(c) = macros.get(w) {
                stack.extend(words(c));
            }
        }
        false
    };
    rules.into_iter().map(|(r, c)| (r, depends(c))).collect()
}

/// `falco_rule → Some(our id)` (None for `-`).
fn mapping(path: &Path) -> BTreeMap<String, Option<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(
        &header[..3],
        &["falco_rule", "our_rule_id", "our_rule_title"],
        "{}",
        path.display()
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let id = c
                .get(1)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty() && *s != "-");
            (c[0].to_string(), id.map(str::to_string))
        })
        .collect()
}

/// Alerts per rule id when our pack runs over a trace.
fn run(rs: &Arc<RuleSet>, trace: &Path) -> BTreeMap<String, usize> {
    let bytes = std::fs::read(trace).unwrap();
    let (batch, _quarantined) = decode_to_batch(&bytes, Format::Kubernetes);
    let mut out = BTreeMap::new();
    if let Some(b) = batch {
        for a in Engine::new(rs.clone()).evaluate(&b) {
            *out.entry(a.rule_id).or_default() += 1;
        }
    }
    out
}

#[test]
fn falco_k8s_audit_suite_against_our_rule_pack() {
    let Some(data) = conformance_dir("falco conformance") else {
        return;
    };
    let root = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    );
    let map_path = root.join("rules/falco-mapping.tsv");
    if !map_path.exists() || !root.join("rules/kubernetes").is_dir() {
        println!(
            "SKIPPED falco conformance: rules/falco-mapping.tsv or rules/kubernetes/ not present yet"
        );
        return;
    }
    let map = mapping(&map_path);
    let rs = Arc::new(RuleSet::load(&[root.join("rules")], &FieldMap::builtin()));
    assert_eq!(rs.dropped, 0, "the rule pack loads: {:#?}", rs.diagnostics);
    let known: BTreeSet<&str> = rs
        .rules
        .iter()
        .map(|r| r.meta.id.as_str())
        .chain(rs.correlations.iter().map(|c| c.meta.id.as_str()))
        .collect();
    let mut failures = Vec::new();
    for (falco, ours) in &map {
        if let Some(id) = ours
            && !known.contains(id.as_str())
        {
            failures.push(format!(
                "mapping: `{falco}` → `{id}`, which is not a rule in rules/"
            ));
        }
    }

    let cases = cases(&data);
    let spec = spec_flags(&data);
    assert_eq!(cases.len(), 66);
    assert_eq!(
        cases
            .iter()
            .map(|c| (c.name.clone(), c.detect))
            .collect::<BTreeMap<_, _>>(),
        spec,
        "the flattened TSV agrees with falco_k8s_audit_tests.yaml"
    );

    let mut files: HashMap<PathBuf, FalcoFile> = HashMap::new();
    let (mut positive, mut positive_mapped, mut negative_checked, mut config_dependent) =
        (0, 0, 0, 0);
    let mut table = vec![format!(
        "{:<58} {:<6} {:<48} {:<9} result",
        "case", "expect", "falco rule → our rule", "our alerts"
    )];
    for case in &cases {
        let fired = run(&rs, &case.trace);
        let fired_text = |ids: &BTreeSet<String>| {
            ids.iter()
                .map(|id| fired.get(id).copied().unwrap_or(0).to_string())
                .collect::<Vec<_>>()
                .join("+")
        };
        if case.detect {
            positive += 1;
            let mut ids = BTreeSet::new();
            let mut all_mapped = true;
            let mut result = Vec::new();
            for (falco_rule, want) in &case.counts {
                match map.get(falco_rule) {
                    Some(Some(id)) => {
                        ids.insert(id.clone());
                        let got = fired.get(id).copied().unwrap_or(0);
                        if got != *want {
                            failures.push(format!(
                                "{}: `{falco_rule}` → {id} alerted {got} times, Falco {want}",
                                case.name
                            ));
                            result.push(format!("MISMATCH ({got} vs Falco {want})"));
                        } else {
                            result.push("ok".to_string());
                        }
                    }
                    Some(None) => {
                        all_mapped = false;
                        result.push("not covered (mapped `-`)".to_string());
                    }
                    None => {
                        all_mapped = false;
                        failures.push(format!(
                            "{}: Falco rule `{falco_rule}` is missing from falco-mapping.tsv",
                            case.name
                        ));
                        result.push("MISSING from mapping".to_string());
                    }
                }
            }
            if all_mapped {
                positive_mapped += 1;
            }
            let rules = case
                .counts
                .iter()
                .map(|(r, n)| format!("{r}={n}"))
                .collect::<Vec<_>>()
                .join(", ");
            table.push(format!(
                "{:<58} {:<6} {:<48} {:<9} {}",
                case.name,
                "fire",
                truncate(&rules, 48),
                fired_text(&ids),
                result.join("; ")
            ));
        } else {
            for p in &case.rule_files {
                files.entry(p.clone()).or_insert_with(|| falco_file(p));
            }
            let defs: Vec<&FalcoFile> = case.rule_files.iter().map(|p| &files[p]).collect();
            let rules = case_rules(&defs);
            let mut asserted = BTreeSet::new();
            let mut depends = BTreeSet::new();
            for (falco_rule, dep) in &rules {
                if let Some(Some(id)) = map.get(falco_rule) {
                    if *dep {
                        depends.insert(id.clone());
                    } else {
                        asserted.insert(id.clone());
                    }
                }
            }
            let depends: BTreeSet<String> = depends.difference(&asserted).cloned().collect();
            let loud: Vec<&String> = asserted
                .iter()
                .filter(|id| fired.contains_key(*id))
                .collect();
            let config_loud: Vec<&String> = depends
                .iter()
                .filter(|id| fired.contains_key(*id))
                .collect();
            negative_checked += 1;
            if !depends.is_empty() {
                config_dependent += 1;
            }
            let result = if loud.is_empty() {
                let mut r = "ok".to_string();
                if !config_loud.is_empty() {
                    r.push_str(&format!(
                        "; config-dependent, fired: {}",
                        config_loud
                            .iter()
                            .map(|id| title_of(&rs, id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                r
            } else {
                for id in &loud {
                    failures.push(format!(
                        "{}: negative case, but {} ({id}) alerted {} times",
                        case.name,
                        title_of(&rs, id),
                        fired[*id]
                    ));
                }
                format!(
                    "MISMATCH: {} fired",
                    loud.iter()
                        .map(|id| title_of(&rs, id))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let total: usize = asserted.iter().filter_map(|id| fired.get(id)).sum();
            table.push(format!(
                "{:<58} {:<6} {:<48} {:<9} {}",
                case.name,
                "quiet",
                format!("{} of our rules asserted quiet", asserted.len()),
                total,
                result
            ));
        }
    }
    println!("{}", table.join("\n"));
    println!(
        "falco k8s_audit coverage: {positive_mapped}/{positive} positive cases mapped ({:.1}%); {negative_checked} negative cases checked, {config_dependent} of them configuration-dependent",
        100.0 * positive_mapped as f64 / positive as f64
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

fn title_of(rs: &RuleSet, id: &str) -> String {
    rs.rules
        .iter()
        .map(|r| &r.meta)
        .chain(rs.correlations.iter().map(|c| &c.meta))
        .find(|m| m.id == id)
        .map_or_else(|| id.to_string(), |m| m.title.clone())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
