//! Detection: Sigma rules (detections, filters, correlations) compiled into columnar
//! predicates over each Arrow batch, with correlation windows on event time.
//!
//! [`RuleSet::load`] reads rule files and compiles them once; an [`Engine`] holds a rule
//! set plus the correlation and suppression state, and turns each batch of
//! `access_events` rows into [`Alert`]s. Replacing the rule set ([`Engine::set_rules`])
//! keeps the state of correlations whose id did not change.

pub mod alert;
pub mod fields;
pub mod plan;
pub mod sigma;
pub mod tooling;
pub mod yaml;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::buffer::BooleanBuffer;
use serde_json::json;

pub use alert::Alert;
use fields::{FieldMap, FieldRef};
use plan::{BatchEval, Compiler, Expr, Leaf, Leaves};
use sigma::{
    CmpOp, CorrelationType, DiagSeverity, Diagnostic, Diags, Document, Level, Meta, Selection,
};

/// Which rows (by `source`) a rule sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    Kubernetes,
    /// `vault` and `openbao` (the same audit format).
    Vault,
    Any,
    /// A logsource we do not ingest: the rule never runs.
    Nothing,
}

#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub meta: Meta,
    pub sources: Sources,
    pub product: Option<String>,
    pub expr: Expr,
    /// Alerts on its own (false for a correlation input without `generate`).
    pub standalone: bool,
    /// Fields the rule names (for explanations).
    pub fields: Vec<(String, FieldRef)>,
    /// (correlation index, input position) of the correlations it feeds.
    pub feeds: Vec<(usize, usize)>,
    /// `suppression.by`, resolved.
    pub suppress_fields: Vec<FieldRef>,
}

#[derive(Debug, Clone)]
pub struct CompiledCorrelation {
    pub meta: Meta,
    pub kind: CorrelationType,
    pub input_names: Vec<String>,
    /// Per input: how to read each group-by field (aliases applied).
    pub group_fields: Vec<Vec<FieldRef>>,
    pub group_names: Vec<String>,
    /// value_count: per input, the counted field.
    pub value_fields: Vec<Option<FieldRef>>,
    pub timespan_us: i64,
    pub condition: Vec<(CmpOp, f64)>,
    pub standalone: bool,
    pub feeds: Vec<(usize, usize)>,
}

/// A compiled, immutable set of rules.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub leaves: Vec<Leaf>,
    /// Wildcard/regex leaves matched together per column.
    pub groups: plan::Groups,
    pub rules: Vec<CompiledRule>,
    /// In dependency order: a correlation comes after those it consumes.
    pub correlations: Vec<CompiledCorrelation>,
    pub diagnostics: Vec<Diagnostic>,
    /// Documents that failed to load (parse or compile errors).
    pub dropped: usize,
    pub files: Vec<PathBuf>,
    /// Every parsed document, for `rules test`.
    pub documents: Vec<Document>,
}

impl RuleSet {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == DiagSeverity::Error)
    }

    /// Loads every `.yml`/`.yaml` file under `paths` (files or directories; `fields.yml` is
    /// the mapping, not a rule).
    pub fn load(paths: &[PathBuf], fields: &FieldMap) -> RuleSet {
        let mut files = Vec::new();
        for p in paths {
            collect_files(p, &mut files);
        }
        files.sort();
        let mut diagnostics = Vec::new();
        let mut docs = Vec::new();
        let mut unparsed = 0;
        for f in &files {
            match std::fs::read_to_string(f) {
                Ok(text) => {
                    let (d, n) = sigma::parse_file_counted(f, &text, &mut diagnostics);
                    docs.extend(d);
                    unparsed += n;
                }
                Err(e) => {
                    unparsed += 1;
                    diagnostics.push(Diagnostic {
                        file: f.clone(),
                        line: 0,
                        severity: DiagSeverity::Error,
                        message: format!("cannot read: {e}"),
                    })
                }
            }
        }
        let mut rs = Self::compile(docs, fields, diagnostics);
        // documents that did not even parse failed to load too (a pipeline refuses to run
        // without them rather than silently losing a rule)
        rs.dropped += unparsed;
        rs.files = files;
        rs
    }

    /// Compiles parsed documents (also used by tests with in-memory rules).
    pub fn compile(
        docs: Vec<Document>,
        fields: &FieldMap,
        mut diagnostics: Vec<Diagnostic>,
    ) -> RuleSet {
        let mut leaves = Leaves::default();
        let mut rules: Vec<CompiledRule> = Vec::new();
        let mut dropped = 0;
        // duplicate ids
        let mut seen: HashMap<&str, &Meta> = HashMap::new();
        for d in &docs {
            let m = d.meta();
            if let Some(prev) = seen.insert(&m.id, m) {
                diagnostics.push(Diagnostic {
                    file: m.file.clone(),
                    line: m.line,
                    severity: DiagSeverity::Error,
                    message: format!(
                        "duplicate id `{}` (also {}:{})",
                        m.id,
                        prev.file.display(),
                        prev.line
                    ),
                });
            }
        }
        let filters: Vec<&sigma::Filter> = docs
            .iter()
            .filter_map(|d| match d {
                Document::Filter(f) => Some(f),
                _ => None,
            })
            .collect();
        for d in &docs {
            let Document::Rule(r) = d else { continue };
            let mut diags = Diags {
                file: &r.meta.file,
                out: &mut diagnostics,
            };
            let (sources, product) = sources_of(&r.logsource, r.meta.line, &mut diags);
            let mut c = Compiler::new(&mut leaves, fields, product.as_deref());
            let Some(mut expr) =
                c.detection(&r.detection.selections, &r.detection.condition, &mut diags)
            else {
                dropped += 1;
                continue;
            };
            // global filters naming this rule: `and not filter`
            for f in &filters {
                let names = [Some(&r.meta.id), r.meta.name.as_ref()];
                if !f.rules.iter().any(|x| names.contains(&Some(x))) {
                    continue;
                }
                let mut fd = Diags {
                    file: &f.meta.file,
                    out: diags.out,
                };
                let mut fc = Compiler::new(c.leaves, fields, product.as_deref());
                match fc.detection(&f.detection.selections, &f.detection.condition, &mut fd) {
                    Some(fe) => expr = fc.order(Expr::And(vec![expr, Expr::Not(Box::new(fe))])),
                    None => dropped += 1,
                }
                c = Compiler::new(fc.leaves, fields, product.as_deref());
            }
            let mut fields_used = Vec::new();
            for (_, sel) in &r.detection.selections {
                collect_fields(sel, &mut |name| {
                    if !fields_used.iter().any(|(n, _)| n == name) {
                        fields_used
                            .push((name.to_string(), fields.resolve(product.as_deref(), name).0));
                    }
                });
            }
            let suppress_fields = r
                .meta
                .suppression
                .iter()
                .flat_map(|s| &s.by)
                .map(|f| fields.resolve(product.as_deref(), f).0)
                .collect();
            rules.push(CompiledRule {
                meta: r.meta.clone(),
                sources,
                product,
                expr,
                standalone: true,
                fields: fields_used,
                feeds: vec![],
                suppress_fields,
            });
        }
        for f in &filters {
            for target in &f.rules {
                if !rules
                    .iter()
                    .any(|r| &r.meta.id == target || r.meta.name.as_ref() == Some(target))
                {
                    diagnostics.push(Diagnostic {
                        file: f.meta.file.clone(),
                        line: f.meta.line,
                        severity: DiagSeverity::Warning,
                        message: format!("filter names rule `{target}`, which is not loaded"),
                    });
                }
            }
        }
        let correlations =
            compile_correlations(&docs, &mut rules, fields, &mut diagnostics, &mut dropped);
        RuleSet {
            groups: plan::Groups::build(&leaves.leaves),
            leaves: leaves.leaves,
            rules,
            correlations,
            diagnostics,
            dropped,
            files: vec![],
            documents: docs,
        }
    }
}

fn collect_files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                collect_files(&e.path(), out);
            }
        }
    } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
        && p.file_name().and_then(|n| n.to_str()) != Some("fields.yml")
    {
        out.push(p.to_path_buf());
    }
}

fn collect_fields(sel: &Selection, f: &mut dyn FnMut(&str)) {
    match sel {
        Selection::AllOf(conds) => conds.iter().for_each(|c| f(&c.field)),
        Selection::AnyOf(alts) => alts.iter().for_each(|a| collect_fields(a, f)),
        Selection::Keywords(..) => {}
    }
}

fn sources_of(ls: &sigma::LogSource, line: usize, d: &mut Diags) -> (Sources, Option<String>) {
    if let Some(s) = &ls.service
        && s != "audit"
    {
        d.warn(
            line,
            format!("logsource service `{s}` is not `audit`: the rule never runs"),
        );
        return (Sources::Nothing, ls.product.clone());
    }
    match ls.product.as_deref() {
        Some("kubernetes") => (Sources::Kubernetes, ls.product.clone()),
        Some("vault" | "openbao") => (Sources::Vault, ls.product.clone()),
        None => (Sources::Any, None),
        Some(p) => {
            d.warn(
                line,
                format!("logsource product `{p}` is not kubernetes, vault or openbao: the rule never runs"),
            );
            (Sources::Nothing, ls.product.clone())
        }
    }
}

fn compile_correlations(
    docs: &[Document],
    rules: &mut [CompiledRule],
    fields: &FieldMap,
    diagnostics: &mut Vec<Diagnostic>,
    dropped: &mut usize,
) -> Vec<CompiledCorrelation> {
    let corrs: Vec<&sigma::Correlation> = docs
        .iter()
        .filter_map(|d| match d {
            Document::Correlation(c) => Some(c),
            _ => None,
        })
        .collect();
    // dependency order: repeatedly take correlations whose inputs are rules or already placed
    let mut placed: Vec<&sigma::Correlation> = Vec::new();
    let mut pending = corrs.clone();
    let is_rule = |n: &str| {
        rules
            .iter()
            .any(|r| r.meta.id == n || r.meta.name.as_deref() == Some(n))
    };
    loop {
        let before = pending.len();
        pending.retain(|c| {
            let ready = c.rules.iter().all(|n| {
                is_rule(n)
                    || placed
                        .iter()
                        .any(|p| p.meta.id == *n || p.meta.name.as_deref() == Some(n))
            });
            if ready {
                placed.push(c);
            }
            !ready
        });
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    for c in pending {
        diagnostics.push(Diagnostic {
            file: c.meta.file.clone(),
            line: c.meta.line,
            severity: DiagSeverity::Error,
            message: format!(
                "correlation references unknown rules (or a cycle): {}",
                c.rules.join(", ")
            ),
        });
        *dropped += 1;
    }
    let mut out: Vec<CompiledCorrelation> = Vec::new();
    for c in placed {
        let ci = out.len();
        let mut group_fields = Vec::new();
        let mut value_fields = Vec::new();
        for (pos, name) in c.rules.iter().enumerate() {
            let rule_idx = rules
                .iter()
                .position(|r| r.meta.id == *name || r.meta.name.as_deref() == Some(name));
            let (product, rule_names) = match rule_idx {
                Some(i) => {
                    let r = &mut rules[i];
                    r.feeds.push((ci, pos));
                    if !c.generate {
                        r.standalone = false;
                    }
                    (
                        r.product.clone(),
                        [Some(r.meta.id.clone()), r.meta.name.clone()],
                    )
                }
                None => {
                    let j = out
                        .iter()
                        .position(|o| o.meta.id == *name || o.meta.name.as_deref() == Some(name))
                        .expect("placed in dependency order");
                    // a chained correlation receives only the group values its input has
                    let missing: Vec<&String> = c
                        .group_by
                        .iter()
                        .filter(|g| !out[j].group_names.contains(g))
                        .collect();
                    if !missing.is_empty() {
                        diagnostics.push(Diagnostic {
                            file: c.meta.file.clone(),
                            line: c.meta.line,
                            severity: DiagSeverity::Error,
                            message: format!(
                                "group-by {missing:?} is not among the group-by fields of the input correlation `{name}`: it can never fire"
                            ),
                        });
                    }
                    out[j].feeds.push((ci, pos));
                    if !c.generate {
                        out[j].standalone = false;
                    }
                    (
                        None,
                        [Some(out[j].meta.id.clone()), out[j].meta.name.clone()],
                    )
                }
            };
            // an alias entry may name the rule by the reference used in `rules`, its id or
            // its name
            let names_rule = |r: &String| r == name || rule_names.iter().flatten().any(|n| n == r);
            let alias_of = |g: &str| -> String {
                c.aliases
                    .iter()
                    .find(|(a, _)| a == g)
                    .and_then(|(_, per)| per.iter().find(|(r, _)| names_rule(r)))
                    .map_or_else(|| g.to_string(), |(_, f)| f.clone())
            };
            if rule_idx.is_some() {
                for (alias, per) in &c.aliases {
                    let used = c.group_by.contains(alias) || c.field.as_ref() == Some(alias);
                    if used && !per.iter().any(|(r, _)| names_rule(r)) {
                        diagnostics.push(Diagnostic {
                            file: c.meta.file.clone(),
                            line: c.meta.line,
                            severity: DiagSeverity::Error,
                            message: format!(
                                "alias `{alias}` has no field for rule `{name}`: its events would never correlate"
                            ),
                        });
                    }
                }
                for g in c.group_by.iter().chain(&c.field) {
                    let f = alias_of(g);
                    if fields.resolve(product.as_deref(), &f).1 == fields::Resolution::UnknownRaw {
                        diagnostics.push(Diagnostic {
                            file: c.meta.file.clone(),
                            line: c.meta.line,
                            severity: DiagSeverity::Warning,
                            message: format!(
                                "`{f}` (for rule `{name}`) is not a column, not in rules/fields.yml and not part of {} audit events: events without it do not correlate",
                                product.as_deref().unwrap_or("these")
                            ),
                        });
                    }
                }
            }
            group_fields.push(
                c.group_by
                    .iter()
                    .map(|g| {
                        if rule_idx.is_none() {
                            // a chained correlation hands over its own group values by name
                            FieldRef::Column(g.clone())
                        } else {
                            fields.resolve(product.as_deref(), &alias_of(g)).0
                        }
                    })
                    .collect(),
            );
            value_fields.push(
                c.field
                    .as_ref()
                    .map(|f| fields.resolve(product.as_deref(), &alias_of(f)).0),
            );
        }
        out.push(CompiledCorrelation {
            meta: c.meta.clone(),
            kind: c.kind,
            input_names: c.rules.clone(),
            group_fields,
            group_names: c.group_by.clone(),
            value_fields,
            timespan_us: c.timespan_us,
            condition: c.condition.clone(),
            standalone: true,
            feeds: vec![],
        });
    }
    out
}

// ---------------------------------------------------------------- engine

/// Limits on correlation state.
#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    pub max_groups_per_correlation: usize,
    pub max_events_per_group: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            max_groups_per_correlation: 100_000,
            max_events_per_group: 10_000,
        }
    }
}

/// One matching event or correlation firing, fed into a correlation.
#[derive(Debug, Clone)]
struct Signal {
    time: i64,
    group: Vec<String>,
    value: Option<String>,
    event_ids: Vec<String>,
    actor: Option<String>,
    resources: Vec<String>,
}

#[derive(Debug, Default)]
struct Group {
    last_time: i64,
    /// event_count / value_count: (time, value, event id) in the window.
    window: VecDeque<(i64, Option<String>, String)>,
    /// value_count: how many events in the window carry each value.
    values: HashMap<String, u32>,
    /// temporal: per input, its last signal in the window.
    per_input: Vec<Option<(i64, Vec<String>)>>,
    /// temporal_ordered: per input position, the start time, the time of this step and the
    /// events of the chain so far.
    chain: Vec<Option<(i64, i64, Vec<String>)>>,
    actor: Option<String>,
    resources: Vec<String>,
}

#[derive(Debug, Default)]
struct CorrState {
    groups: HashMap<Vec<String>, Group>,
}

/// Evaluates a rule set over batches, holding correlation and suppression state.
pub struct Engine {
    rules: Arc<RuleSet>,
    /// Every raw-event path the rules read (see [`raw_paths`]).
    raw_paths: Arc<[String]>,
    corr: HashMap<String, CorrState>,
    suppressed_until: HashMap<(String, Vec<String>), i64>,
    limits: StateLimits,
    watermark: i64,
    /// Alerts dropped by suppression since start.
    pub suppressed: u64,
}

/// Every raw-event path a rule set reads: its leaves (and the fields they compare with),
/// alert fields, suppression keys, correlation group-by and value fields.
fn raw_paths(rs: &RuleSet) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |f: &FieldRef| {
        if let FieldRef::Raw(p) = f {
            out.push(p.clone());
        }
    };
    for l in &rs.leaves {
        add(&l.field);
        if let plan::Matcher::FieldRef { other, .. } = &l.matcher {
            add(other);
        }
    }
    for r in &rs.rules {
        r.fields.iter().for_each(|(_, f)| add(f));
        r.suppress_fields.iter().for_each(&mut add);
    }
    for c in &rs.correlations {
        c.group_fields.iter().flatten().for_each(&mut add);
        c.value_fields.iter().flatten().for_each(&mut add);
    }
    out.sort();
    out.dedup();
    out
}

impl Engine {
    pub fn new(rules: Arc<RuleSet>) -> Engine {
        Engine {
            raw_paths: raw_paths(&rules).into(),
            rules,
            corr: HashMap::new(),
            suppressed_until: HashMap::new(),
            limits: StateLimits::default(),
            watermark: i64::MIN,
            suppressed: 0,
        }
    }

    pub fn with_limits(mut self, limits: StateLimits) -> Engine {
        self.limits = limits;
        self
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Swaps the rule set between batches; correlation windows of unchanged ids survive.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        let keep: Vec<String> = rules
            .correlations
            .iter()
            .map(|c| c.meta.id.clone())
            .collect();
        self.corr.retain(|id, _| keep.contains(id));
        self.raw_paths = raw_paths(&rules).into();
        self.rules = rules;
    }

    /// Groups held in correlation windows (for metrics).
    pub fn open_groups(&self) -> usize {
        self.corr.values().map(|c| c.groups.len()).sum()
    }

    /// Matches of every rule in a batch, as row bitmaps (tests and `rules test`).
    pub fn matches(&self, batch: &RecordBatch) -> Vec<BooleanBuffer> {
        let rs = self.rules.clone();
        let mut ev = BatchEval::new(batch, &rs.leaves)
            .with_groups(&rs.groups)
            .with_raw_paths(&self.raw_paths);
        let masks = source_masks(batch, &mut ev);
        rs.rules
            .iter()
            .map(|r| {
                let cand = masks.get(r.sources);
                ev.eval(&r.expr, &cand)
            })
            .collect()
    }

    /// Evaluates one batch of `access_events` rows.
    pub fn evaluate(&mut self, batch: &RecordBatch) -> Vec<Alert> {
        let rs = self.rules.clone();
        if batch.num_rows() == 0 {
            return vec![];
        }
        let raw_paths = Arc::clone(&self.raw_paths);
        let mut ev = BatchEval::new(batch, &rs.leaves)
            .with_groups(&rs.groups)
            .with_raw_paths(&raw_paths);
        let masks = source_masks(batch, &mut ev);
        let times = batch.column_by_name("time").map(|c| {
            c.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                .clone()
        });
        let time_at = |r: usize| times.as_ref().map_or(0, |t| t.value(r));
        let text_col = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .cloned()
        };
        let (ids_col, actor_col, path_col, source_col) = (
            text_col("event_id"),
            text_col("actor"),
            text_col("resource_path"),
            text_col("source"),
        );
        let row_keys = batch.column_by_name("row_key").map(|c| {
            c.as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                .clone()
        });
        let col_text = |a: &Option<datafusion::arrow::array::StringArray>, r: usize| {
            a.as_ref()
                .filter(|a| a.is_valid(r))
                .map(|a| a.value(r).to_string())
        };
        let mut alerts = Vec::new();
        // per correlation: (time, row, input, signal)
        let mut signals: Vec<Vec<(i64, usize, usize, Signal)>> =
            (0..rs.correlations.len()).map(|_| Vec::new()).collect();
        for r in rs.rules.iter() {
            let cand = masks.get(r.sources);
            if cand.count_set_bits() == 0 {
                continue;
            }
            let hits = ev.eval(&r.expr, &cand);
            for row in hits.set_indices() {
                let time = time_at(row);
                self.watermark = self.watermark.max(time);
                let event_id = col_text(&ids_col, row).unwrap_or_default();
                let actor = col_text(&actor_col, row).filter(|a| !a.is_empty());
                let resource = col_text(&path_col, row);
                // suppression holds back the alert only; the match still feeds correlations
                let suppressed = r.standalone && {
                    let key: Vec<String> = r
                        .suppress_fields
                        .iter()
                        .map(|f| ev.text(f, row).unwrap_or_default())
                        .collect();
                    self.suppress(&r.meta, key, time)
                };
                if r.standalone && !suppressed {
                    let mut observed = serde_json::Map::new();
                    for (name, fr) in &r.fields {
                        let v = ev.values(fr, row);
                        let v: Vec<String> = v.iter().map(|x| x.text()).collect();
                        observed.insert(
                            name.clone(),
                            match v.len() {
                                0 => serde_json::Value::Null,
                                1 => json!(v[0]),
                                _ => json!(v),
                            },
                        );
                    }
                    let row_key = row_keys
                        .as_ref()
                        .map(|k| k.value(row).to_string())
                        .unwrap_or_else(|| event_id.clone());
                    alerts.push(Alert {
                        id: alert::alert_id(&[&r.meta.id, &row_key]),
                        time,
                        rule_id: r.meta.id.clone(),
                        title: r.meta.title.clone(),
                        severity: r.meta.level.unwrap_or(Level::Medium),
                        detector: "sigma".into(),
                        actor: actor.clone(),
                        source: col_text(&source_col, row),
                        resources: resource.clone().into_iter().collect(),
                        window_start: time,
                        window_end: time,
                        event_ids: vec![event_id.clone()],
                        tags: r.meta.tags.clone(),
                        explanation: json!({
                            "kind": "rule_match",
                            "rule": rule_json(&r.meta),
                            "observed": observed,
                        }),
                    });
                }
                for &(ci, pos) in &r.feeds {
                    let c = &rs.correlations[ci];
                    let group: Option<Vec<String>> = c.group_fields[pos]
                        .iter()
                        .map(|f| ev.text(f, row).filter(|s| !s.is_empty()))
                        .collect();
                    // events without the group-by fields do not correlate
                    let Some(group) = group else { continue };
                    let value = c.value_fields[pos].as_ref().and_then(|f| ev.text(f, row));
                    signals[ci].push((
                        time,
                        row,
                        pos,
                        Signal {
                            time,
                            group,
                            value,
                            event_ids: vec![event_id.clone()],
                            actor: actor.clone(),
                            resources: resource.clone().into_iter().collect(),
                        },
                    ));
                }
            }
        }
        // correlations, in dependency order; within one, in event-time order (rows of a
        // batch need not be time-ordered, and a chained correlation's firing must interleave
        // with the rule matches it is ordered against), ties in row order
        let mut chained: Vec<Vec<(usize, Signal)>> =
            (0..rs.correlations.len()).map(|_| Vec::new()).collect();
        for ci in 0..rs.correlations.len() {
            let c = &rs.correlations[ci];
            let mut own = std::mem::take(&mut signals[ci]);
            own.sort_by_key(|(t, row, _, _)| (*t, *row));
            let mut inputs: Vec<(usize, Signal)> =
                own.into_iter().map(|(_, _, p, s)| (p, s)).collect();
            inputs.append(&mut chained[ci]);
            // stable: rule matches before a chained firing of the same instant
            inputs.sort_by_key(|(_, s)| s.time);
            for (pos, s) in inputs {
                if let Some(fired) = self.feed(c, pos, s) {
                    for &(next, npos) in &c.feeds {
                        let nc = &rs.correlations[next];
                        // hand over the group values the next correlation groups by
                        let group: Option<Vec<String>> = nc
                            .group_names
                            .iter()
                            .map(|g| {
                                c.group_names
                                    .iter()
                                    .position(|x| x == g)
                                    .map(|i| fired.group[i].clone())
                            })
                            .collect();
                        if let Some(group) = group {
                            chained[next].push((
                                npos,
                                Signal {
                                    group,
                                    ..fired.signal.clone()
                                },
                            ));
                        }
                    }
                    if c.standalone {
                        let key = fired.group.clone();
                        if !self.suppress(&c.meta, key, fired.signal.time) {
                            alerts.push(fired.alert);
                        }
                    }
                }
            }
        }
        self.sweep();
        alerts
    }

    /// True when an alert for this rule and key is inside its suppression window.
    fn suppress(&mut self, meta: &Meta, key: Vec<String>, time: i64) -> bool {
        let Some(s) = &meta.suppression else {
            return false;
        };
        let k = (meta.id.clone(), key);
        if let Some(&until) = self.suppressed_until.get(&k)
            && time < until
        {
            self.suppressed += 1;
            return true;
        }
        self.suppressed_until.insert(k, time + s.window_us);
        false
    }

    fn feed(&mut self, c: &CompiledCorrelation, pos: usize, s: Signal) -> Option<Fired> {
        let limits = self.limits;
        if !self.corr.contains_key(&c.meta.id) {
            self.corr.insert(c.meta.id.clone(), CorrState::default());
        }
        let state = self.corr.get_mut(&c.meta.id)?;
        if !state.groups.contains_key(&s.group) {
            if state.groups.len() >= limits.max_groups_per_correlation {
                // evict the group idle longest
                if let Some(k) = state
                    .groups
                    .iter()
                    .min_by_key(|(_, g)| g.last_time)
                    .map(|(k, _)| k.clone())
                {
                    state.groups.remove(&k);
                }
            }
            state.groups.insert(s.group.clone(), Group::default());
        }
        let g = state.groups.get_mut(&s.group)?;
        g.last_time = g.last_time.max(s.time);
        if s.actor.is_some() && g.actor != s.actor {
            g.actor = s.actor.clone();
        }
        for r in &s.resources {
            if g.resources.len() < 50 && !g.resources.contains(r) {
                g.resources.push(r.clone());
            }
        }
        let horizon = s.time - c.timespan_us;
        let n_inputs = c.input_names.len();
        let (count, events, start, extra): (f64, Vec<String>, i64, serde_json::Value) = match c.kind
        {
            CorrelationType::EventCount | CorrelationType::ValueCount => {
                // counts are kept up to date as the window moves; the evidence (event ids,
                // distinct values) is only gathered when the correlation fires
                for id in &s.event_ids {
                    g.window.push_back((s.time, s.value.clone(), id.clone()));
                    if let Some(v) = &s.value {
                        match g.values.get_mut(v) {
                            Some(n) => *n += 1,
                            None => {
                                g.values.insert(v.clone(), 1);
                            }
                        }
                    }
                }
                while g.window.front().is_some_and(|(t, _, _)| *t < horizon)
                    || g.window.len() > limits.max_events_per_group
                {
                    if let Some((_, Some(v), _)) = g.window.pop_front()
                        && let Some(n) = g.values.get_mut(&v)
                    {
                        *n -= 1;
                        if *n == 0 {
                            g.values.remove(&v);
                        }
                    }
                }
                let start = g.window.front().map_or(s.time, |(t, _, _)| *t);
                if c.kind == CorrelationType::EventCount {
                    (g.window.len() as f64, vec![], start, json!({}))
                } else {
                    (g.values.len() as f64, vec![], start, json!({}))
                }
            }
            CorrelationType::Temporal => {
                g.per_input.resize(n_inputs, None);
                g.per_input[pos] = Some((s.time, s.event_ids.clone()));
                let mut live: Vec<&(i64, Vec<String>)> = g
                    .per_input
                    .iter()
                    .flatten()
                    .filter(|(t, _)| *t >= horizon)
                    .collect();
                // evidence in the order it happened
                live.sort_by_key(|(t, _)| *t);
                let start = live.iter().map(|(t, _)| *t).min().unwrap_or(s.time);
                let ids = live.iter().flat_map(|(_, ids)| ids.clone()).collect();
                (live.len() as f64, ids, start, json!({}))
            }
            CorrelationType::TemporalOrdered => {
                g.chain.resize(n_inputs, None);
                if pos == 0 {
                    g.chain[0] = Some((s.time, s.time, s.event_ids.clone()));
                } else if let Some((start, last, ids)) = g.chain[pos - 1].clone()
                    && start >= horizon
                    // the step must not happen before the previous one (event time, not
                    // arrival: a late row carrying an earlier event does not extend a chain)
                    && s.time >= last
                {
                    let mut ids = ids;
                    ids.extend(s.event_ids.clone());
                    g.chain[pos] = Some((start, s.time, ids));
                }
                let done = g
                    .chain
                    .iter()
                    .rposition(Option::is_some)
                    .map_or(0, |i| i + 1);
                let (start, ids) = g.chain[done.saturating_sub(1)]
                    .clone()
                    .map_or((s.time, vec![]), |(start, _, ids)| (start, ids));
                (
                    (if start >= horizon { done } else { 0 }) as f64,
                    ids,
                    start,
                    json!({}),
                )
            }
        };
        let holds = match c.kind {
            CorrelationType::Temporal | CorrelationType::TemporalOrdered
                if c.condition.is_empty() =>
            {
                count >= n_inputs as f64
            }
            _ => !c.condition.is_empty() && c.condition.iter().all(|(op, v)| op.holds(count, *v)),
        };
        if !holds {
            return None;
        }
        let (events, extra) = match c.kind {
            CorrelationType::EventCount => (
                g.window.iter().map(|(_, _, id)| id.clone()).collect(),
                extra,
            ),
            CorrelationType::ValueCount => {
                let mut distinct: Vec<&String> = g.values.keys().collect();
                distinct.sort();
                let sample: Vec<&String> = distinct.into_iter().take(20).collect();
                (
                    g.window.iter().map(|(_, _, id)| id.clone()).collect(),
                    json!({"field": c.value_fields[pos].as_ref().map(|f| format!("{f:?}")), "distinct_values_sample": sample}),
                )
            }
            _ => (events, extra),
        };
        // a firing consumes the window: the next alert needs a fresh one
        g.window.clear();
        g.values.clear();
        g.per_input.clear();
        g.chain.clear();
        let actor = g.actor.clone();
        let resources = g.resources.clone();
        let cond: serde_json::Map<String, serde_json::Value> = c
            .condition
            .iter()
            .map(|(op, v)| (op.as_str().to_string(), json!(v)))
            .collect();
        let group: serde_json::Map<String, serde_json::Value> = c
            .group_names
            .iter()
            .zip(&s.group)
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect();
        let kind = match c.kind {
            CorrelationType::EventCount => "event_count",
            CorrelationType::ValueCount => "value_count",
            CorrelationType::Temporal => "temporal",
            CorrelationType::TemporalOrdered => "temporal_ordered",
        };
        let first = events.first().cloned().unwrap_or_default();
        let last = events.last().cloned().unwrap_or_default();
        let mut explanation = json!({
            "kind": "correlation",
            "rule": rule_json(&c.meta),
            "correlation": kind,
            "rules": c.input_names,
            "group": group,
            "observed": count,
            "condition": cond,
            "timespan_seconds": c.timespan_us / 1_000_000,
        });
        if let (Some(e), serde_json::Value::Object(x)) = (explanation.as_object_mut(), extra) {
            e.extend(x);
        }
        let alert = Alert {
            id: alert::alert_id(&[&c.meta.id, &s.group.join("\u{1f}"), &first, &last]),
            time: s.time,
            rule_id: c.meta.id.clone(),
            title: c.meta.title.clone(),
            severity: c.meta.level.unwrap_or(Level::Medium),
            detector: "sigma_correlation".into(),
            actor,
            source: None,
            resources: resources.clone(),
            window_start: start,
            window_end: s.time,
            event_ids: events.clone(),
            tags: c.meta.tags.clone(),
            explanation,
        };
        Some(Fired {
            group: s.group.clone(),
            signal: Signal {
                time: s.time,
                group: s.group,
                value: None,
                event_ids: events,
                actor: alert.actor.clone(),
                resources,
            },
            alert,
        })
    }

    /// Drops correlation groups whose window has passed the watermark.
    fn sweep(&mut self) {
        let wm = self.watermark;
        let spans: HashMap<&str, i64> = self
            .rules
            .correlations
            .iter()
            .map(|c| (c.meta.id.as_str(), c.timespan_us))
            .collect();
        for (id, st) in self.corr.iter_mut() {
            let span = spans.get(id.as_str()).copied().unwrap_or(0);
            st.groups.retain(|_, g| g.last_time >= wm - span);
        }
        self.suppressed_until.retain(|_, until| *until > wm);
    }
}

struct Fired {
    group: Vec<String>,
    signal: Signal,
    alert: Alert,
}

fn rule_json(m: &Meta) -> serde_json::Value {
    json!({
        "id": m.id,
        "title": m.title,
        "level": m.level.map(Level::as_str),
        "description": m.description,
        "falsepositives": m.falsepositives,
        "file": m.file.file_name().map(|f| f.to_string_lossy().to_string()),
    })
}

struct SourceMasks {
    k8s: BooleanBuffer,
    vault: BooleanBuffer,
    all: BooleanBuffer,
}

impl SourceMasks {
    fn get(&self, s: Sources) -> BooleanBuffer {
        match s {
            Sources::Kubernetes => self.k8s.clone(),
            Sources::Vault => self.vault.clone(),
            Sources::Any => self.all.clone(),
            Sources::Nothing => BooleanBuffer::new_unset(self.all.len()),
        }
    }
}

fn source_masks(batch: &RecordBatch, ev: &mut BatchEval) -> SourceMasks {
    let n = batch.num_rows();
    let all = ev.all();
    let Some(src) = batch
        .column_by_name("source")
        .and_then(|c| c.as_string_opt::<i32>().cloned())
    else {
        return SourceMasks {
            k8s: all.clone(),
            vault: all.clone(),
            all,
        };
    };
    let mut k8s = datafusion::arrow::array::BooleanBufferBuilder::new(n);
    let mut vault = datafusion::arrow::array::BooleanBufferBuilder::new(n);
    for r in 0..n {
        let s = if src.is_valid(r) { src.value(r) } else { "" };
        k8s.append(s == "kubernetes");
        vault.append(s == "vault" || s == "openbao");
    }
    SourceMasks {
        k8s: k8s.finish(),
        vault: vault.finish(),
        all,
    }
}
