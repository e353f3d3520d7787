//! Sigma documents (specification v2): detection rules, correlation rules and filters,
//! parsed from YAML into an AST with line numbers. Nothing here evaluates; `plan` compiles
//! the AST into columnar predicates.
//!
//! Our own custom attributes (the spec allows them): `suppression: {by: [...], window: 10m}`
//! and `tests: [{name, expect: match|no_match, events: [...]}]`.

use std::path::{Path, PathBuf};

use super::yaml::{self, Node, Value};

/// One finding of `rules check` (or of a load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub severity: DiagSeverity,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DiagSeverity {
    Warning,
    Error,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            DiagSeverity::Warning => "warning",
            DiagSeverity::Error => "error",
        };
        write!(
            f,
            "{}:{}: {sev}: {}",
            self.file.display(),
            self.line,
            self.message
        )
    }
}

/// Collects diagnostics for one file.
pub struct Diags<'a> {
    pub file: &'a Path,
    pub out: &'a mut Vec<Diagnostic>,
}

impl Diags<'_> {
    pub fn error(&mut self, line: usize, msg: impl Into<String>) {
        self.push(line, DiagSeverity::Error, msg.into());
    }
    pub fn warn(&mut self, line: usize, msg: impl Into<String>) {
        self.push(line, DiagSeverity::Warning, msg.into());
    }
    fn push(&mut self, line: usize, severity: DiagSeverity, message: String) {
        self.out.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            severity,
            message,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

/// Attributes every document kind shares.
#[derive(Debug, Clone)]
pub struct Meta {
    pub id: String,
    pub name: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub level: Option<Level>,
    pub tags: Vec<String>,
    pub falsepositives: Vec<String>,
    pub file: PathBuf,
    pub line: usize,
    pub suppression: Option<Suppression>,
    pub tests: Vec<TestCase>,
}

#[derive(Debug, Clone)]
pub struct Suppression {
    pub by: Vec<String>,
    pub window_us: i64,
}

#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub expect_match: bool,
    pub events: Vec<serde_json::Value>,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct LogSource {
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub meta: Meta,
    pub logsource: LogSource,
    pub detection: Detection,
}

#[derive(Debug, Clone)]
pub struct Detection {
    /// Named search identifiers in file order.
    pub selections: Vec<(String, Selection)>,
    pub condition: Cond,
    pub condition_line: usize,
}

#[derive(Debug, Clone)]
pub enum Selection {
    /// A map: every field condition holds.
    AllOf(Vec<FieldCond>),
    /// A list of maps: any of them holds.
    AnyOf(Vec<Selection>),
    /// A list of plain values: full-text search of the event.
    Keywords(Vec<Scalar>, usize),
}

#[derive(Debug, Clone)]
pub struct FieldCond {
    pub field: String,
    pub modifiers: Vec<String>,
    pub values: Vec<Scalar>,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
}

/// A parsed `condition`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Sel(String),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// `1 of pattern` / `all of pattern`; the pattern is `them` or a name with `*`.
    OneOf(String),
    AllOf(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrelationType {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
}

#[derive(Debug, Clone)]
pub struct Correlation {
    pub meta: Meta,
    pub kind: CorrelationType,
    /// Referenced rules, by id or name.
    pub rules: Vec<String>,
    pub group_by: Vec<String>,
    pub timespan_us: i64,
    /// `(op, threshold)` pairs, all of which must hold (`gt: 100, lte: 200`).
    pub condition: Vec<(CmpOp, f64)>,
    /// value_count: the field whose distinct values are counted.
    pub field: Option<String>,
    /// alias → (rule name → field)
    pub aliases: Vec<(String, Vec<(String, String)>)>,
    pub generate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

impl CmpOp {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
            CmpOp::Eq => a == b,
            CmpOp::Neq => a != b,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Gt => "gt",
            CmpOp::Gte => "gte",
            CmpOp::Lt => "lt",
            CmpOp::Lte => "lte",
            CmpOp::Eq => "eq",
            CmpOp::Neq => "neq",
        }
    }
}

/// A global filter: `rules` get `and not (filter condition)`.
#[derive(Debug, Clone)]
pub struct Filter {
    pub meta: Meta,
    pub logsource: LogSource,
    pub rules: Vec<String>,
    pub detection: Detection,
}

#[derive(Debug, Clone)]
pub enum Document {
    Rule(Rule),
    Correlation(Correlation),
    Filter(Filter),
}

impl Document {
    pub fn meta(&self) -> &Meta {
        match self {
            Document::Rule(r) => &r.meta,
            Document::Correlation(c) => &c.meta,
            Document::Filter(f) => &f.meta,
        }
    }
}

/// Parses one rule file (one or more YAML documents). Errors and warnings go to `diags`;
/// documents with errors are left out.
pub fn parse_file(path: &Path, text: &str, diags: &mut Vec<Diagnostic>) -> Vec<Document> {
    parse_file_counted(path, text, diags).0
}

/// [`parse_file`], also returning how many documents were left out (a file with a YAML
/// syntax error counts as one), so a load can refuse to run without them.
pub fn parse_file_counted(
    path: &Path,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<Document>, usize) {
    let mut d = Diags {
        file: path,
        out: diags,
    };
    let docs = match yaml::load_all(text) {
        Ok(docs) => docs,
        Err(e) => {
            d.error(e.line, format!("YAML syntax error: {}", e.message));
            return (vec![], 1);
        }
    };
    let mut dropped = 0;
    let mut out = Vec::new();
    for doc in &docs {
        if matches!(doc.value, Value::Null) {
            continue;
        }
        let before = d
            .out
            .iter()
            .filter(|x| x.severity == DiagSeverity::Error)
            .count();
        let parsed = parse_document(doc, &mut d);
        let after = d
            .out
            .iter()
            .filter(|x| x.severity == DiagSeverity::Error)
            .count();
        match parsed {
            Some(p) if after == before => out.push(p),
            _ => dropped += 1,
        }
    }
    (out, dropped)
}

fn parse_document(doc: &Node, d: &mut Diags) -> Option<Document> {
    if doc.as_map().is_none() {
        d.error(doc.line, "a Sigma document must be a mapping");
        return None;
    }
    let meta = parse_meta(doc, d)?;
    if let Some(c) = doc.get("correlation") {
        return parse_correlation(meta, c, d).map(Document::Correlation);
    }
    if let Some(f) = doc.get("filter") {
        let logsource = parse_logsource(doc, d);
        let rules = f.get("rules").and_then(Node::str_list).unwrap_or_default();
        if rules.is_empty() {
            d.error(f.line, "filter: `rules` must name at least one rule");
        }
        let detection = parse_detection(f, &["rules"], d)?;
        return Some(Document::Filter(Filter {
            meta,
            logsource,
            rules,
            detection,
        }));
    }
    let Some(det) = doc.get("detection") else {
        d.error(
            doc.line,
            "document has none of `detection`, `correlation`, `filter`",
        );
        return None;
    };
    if doc.get("logsource").is_none() {
        d.error(doc.line, "detection rule without `logsource`");
    }
    let logsource = parse_logsource(doc, d);
    let detection = parse_detection(det, &[], d)?;
    Some(Document::Rule(Rule {
        meta,
        logsource,
        detection,
    }))
}

fn parse_meta(doc: &Node, d: &mut Diags) -> Option<Meta> {
    let title = doc.get("title").and_then(Node::scalar_text);
    if title.is_none() {
        d.error(doc.line, "missing `title`");
    }
    let name = doc.get("name").and_then(Node::scalar_text);
    let id = match doc.get("id").and_then(Node::scalar_text) {
        Some(id) => id,
        None => match &name {
            Some(n) => n.clone(),
            None => {
                d.warn(doc.line, "no `id`: the rule is identified by its title");
                title.clone().unwrap_or_default()
            }
        },
    };
    let level = match doc.get("level") {
        Some(l) => match l.as_str().and_then(Level::parse) {
            Some(v) => Some(v),
            None => {
                d.error(
                    l.line,
                    "`level` must be informational, low, medium, high or critical",
                );
                None
            }
        },
        None => None,
    };
    let suppression = doc.get("suppression").and_then(|s| {
        let by = s.get("by").and_then(Node::str_list).unwrap_or_default();
        let window = s.get("window").and_then(Node::scalar_text);
        match window.as_deref().map(parse_timespan) {
            Some(Some(window_us)) => Some(Suppression { by, window_us }),
            _ => {
                d.error(s.line, "suppression needs `window` like 10m, 1h, 30s, 1d");
                None
            }
        }
    });
    let tests = doc
        .get("tests")
        .map(|t| parse_tests(t, d))
        .unwrap_or_default();
    Some(Meta {
        id,
        name,
        title: title?,
        description: doc.get("description").and_then(Node::scalar_text),
        level,
        tags: doc.get("tags").and_then(Node::str_list).unwrap_or_default(),
        falsepositives: doc
            .get("falsepositives")
            .and_then(Node::str_list)
            .unwrap_or_default(),
        file: d.file.to_path_buf(),
        line: doc.line,
        suppression,
        tests,
    })
}

fn parse_tests(t: &Node, d: &mut Diags) -> Vec<TestCase> {
    let Some(items) = t.as_seq() else {
        d.error(t.line, "`tests` must be a list");
        return vec![];
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = item
            .get("name")
            .and_then(Node::scalar_text)
            .unwrap_or_else(|| format!("test {}", i + 1));
        let expect = item.get("expect").and_then(Node::as_str);
        let expect_match = match expect {
            Some("match") => true,
            Some("no_match") => false,
            _ => {
                d.error(item.line, "test `expect` must be `match` or `no_match`");
                continue;
            }
        };
        let events = item
            .get("events")
            .and_then(Node::as_seq)
            .map(|s| s.iter().map(Node::to_json).collect::<Vec<_>>())
            .unwrap_or_default();
        if events.is_empty() {
            d.error(item.line, "test has no `events`");
            continue;
        }
        out.push(TestCase {
            name,
            expect_match,
            events,
            line: item.line,
        });
    }
    out
}

fn parse_logsource(doc: &Node, _d: &mut Diags) -> LogSource {
    let Some(ls) = doc.get("logsource") else {
        return LogSource::default();
    };
    let f = |k: &str| {
        ls.get(k)
            .and_then(Node::scalar_text)
            .map(|s| s.to_lowercase())
    };
    LogSource {
        product: f("product"),
        service: f("service"),
        category: f("category"),
    }
}

/// `reserved`: keys of the mapping that are not search identifiers (a filter's `rules`).
fn parse_detection(det: &Node, reserved: &[&str], d: &mut Diags) -> Option<Detection> {
    let Some(map) = det.as_map() else {
        d.error(det.line, "`detection` must be a mapping");
        return None;
    };
    let mut selections = Vec::new();
    let mut condition = None;
    for (k, v) in map {
        let Some(key) = k.scalar_text() else { continue };
        match key.as_str() {
            "condition" => condition = Some(v),
            "timeframe" => d.error(
                k.line,
                "`timeframe` is Sigma v1 aggregation syntax; use a correlation rule",
            ),
            k if reserved.contains(&k) => {}
            _ => {
                if let Some(sel) = parse_selection(v, d) {
                    selections.push((key, sel));
                }
            }
        }
    }
    let Some(cond_node) = condition else {
        d.error(det.line, "`detection` has no `condition`");
        return None;
    };
    let cond = match &cond_node.value {
        Value::Str(s) => parse_condition(s)
            .map_err(|e| d.error(cond_node.line, e))
            .ok()?,
        // a list of conditions is their disjunction (Sigma v1 style)
        Value::Seq(items) => {
            let mut alts = Vec::new();
            for i in items {
                let s = i.as_str().unwrap_or_default();
                alts.push(parse_condition(s).map_err(|e| d.error(i.line, e)).ok()?);
            }
            Cond::Or(alts)
        }
        _ => {
            d.error(cond_node.line, "`condition` must be a string");
            return None;
        }
    };
    // every referenced identifier exists
    let names: Vec<&str> = selections.iter().map(|(n, _)| n.as_str()).collect();
    let mut ok = true;
    check_refs(&cond, &names, &mut |msg| {
        d.error(cond_node.line, msg);
        ok = false;
    });
    ok.then_some(Detection {
        selections,
        condition: cond,
        condition_line: cond_node.line,
    })
}

fn check_refs(c: &Cond, names: &[&str], err: &mut dyn FnMut(String)) {
    match c {
        Cond::Sel(s) => {
            if !names.contains(&s.as_str()) {
                err(format!(
                    "condition names `{s}`, which the detection does not define"
                ));
            }
        }
        Cond::And(v) | Cond::Or(v) => v.iter().for_each(|c| check_refs(c, names, err)),
        Cond::Not(c) => check_refs(c, names, err),
        Cond::OneOf(p) | Cond::AllOf(p) => {
            if p != "them" && !names.iter().any(|n| glob_name(p, n)) {
                err(format!("`of {p}` matches no search identifier"));
            }
        }
    }
}

/// `selection_*` style patterns over search-identifier names (`*` only).
pub fn glob_name(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn parse_selection(v: &Node, d: &mut Diags) -> Option<Selection> {
    match &v.value {
        Value::Map(m) => {
            let mut conds = Vec::new();
            for (k, val) in m {
                let Some(key) = k.scalar_text() else {
                    d.error(k.line, "field names must be strings");
                    return None;
                };
                let mut parts = key.split('|');
                let field = parts.next().unwrap_or_default().to_string();
                let modifiers: Vec<String> = parts.map(str::to_string).collect();
                let values = match &val.value {
                    Value::Seq(items) => items.iter().filter_map(|i| scalar(i, d)).collect(),
                    _ => scalar(val, d).into_iter().collect(),
                };
                conds.push(FieldCond {
                    field,
                    modifiers,
                    values,
                    line: k.line,
                });
            }
            Some(Selection::AllOf(conds))
        }
        Value::Seq(items) => {
            if items.iter().all(|i| i.as_map().is_some()) {
                let alts = items.iter().filter_map(|i| parse_selection(i, d)).collect();
                Some(Selection::AnyOf(alts))
            } else {
                let vals = items.iter().filter_map(|i| scalar(i, d)).collect();
                Some(Selection::Keywords(vals, v.line))
            }
        }
        Value::Str(_) | Value::Int(_) => Some(Selection::Keywords(
            scalar(v, d).into_iter().collect(),
            v.line,
        )),
        _ => {
            d.error(
                v.line,
                "a search identifier must be a map, a list of maps or keywords",
            );
            None
        }
    }
}

fn scalar(n: &Node, d: &mut Diags) -> Option<Scalar> {
    Some(match &n.value {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Int(i) => Scalar::Int(*i),
        Value::Float(f) => Scalar::Float(*f),
        Value::Str(s) => Scalar::Str(s.clone()),
        _ => {
            d.error(
                n.line,
                "values must be scalars (string, number, boolean or null)",
            );
            return None;
        }
    })
}

fn parse_correlation(meta: Meta, c: &Node, d: &mut Diags) -> Option<Correlation> {
    let kind = match c.get("type").and_then(Node::as_str) {
        Some("event_count") => CorrelationType::EventCount,
        Some("value_count") => CorrelationType::ValueCount,
        Some("temporal") => CorrelationType::Temporal,
        Some("temporal_ordered") => CorrelationType::TemporalOrdered,
        Some(other @ ("value_sum" | "value_avg" | "value_percentile")) => {
            d.error(
                c.line,
                format!("correlation type `{other}` is not supported"),
            );
            return None;
        }
        _ => {
            d.error(
                c.line,
                "correlation `type` must be event_count, value_count, temporal or temporal_ordered",
            );
            return None;
        }
    };
    let rules = c.get("rules").and_then(Node::str_list).unwrap_or_default();
    if rules.is_empty() {
        d.error(c.line, "correlation `rules` is empty");
    }
    let group_by = c
        .get("group-by")
        .and_then(Node::str_list)
        .unwrap_or_default();
    let timespan_us = match c.get("timespan").and_then(Node::scalar_text) {
        Some(t) => match parse_timespan(&t) {
            Some(v) => v,
            None => {
                d.error(c.line, format!("bad timespan `{t}` (use 30s, 10m, 1h, 1d)"));
                return None;
            }
        },
        None => {
            d.error(c.line, "correlation needs `timespan`");
            return None;
        }
    };
    let mut condition = Vec::new();
    let mut field = None;
    if let Some(cond) = c.get("condition") {
        for (k, v) in cond.as_map().unwrap_or_default() {
            let key = k.scalar_text().unwrap_or_default();
            let op = match key.as_str() {
                "gt" => CmpOp::Gt,
                "gte" => CmpOp::Gte,
                "lt" => CmpOp::Lt,
                "lte" => CmpOp::Lte,
                "eq" => CmpOp::Eq,
                "neq" => CmpOp::Neq,
                "field" => {
                    field = v.scalar_text();
                    continue;
                }
                other => {
                    d.error(k.line, format!("unknown correlation condition `{other}`"));
                    continue;
                }
            };
            match v.scalar_text().and_then(|s| s.parse::<f64>().ok()) {
                Some(n) => condition.push((op, n)),
                None => d.error(v.line, "correlation threshold must be a number"),
            }
        }
    }
    match kind {
        CorrelationType::EventCount | CorrelationType::ValueCount if condition.is_empty() => {
            d.error(
                c.line,
                "event_count/value_count correlations need a `condition`",
            );
        }
        CorrelationType::ValueCount if field.is_none() => {
            d.error(c.line, "value_count needs `condition.field`");
        }
        CorrelationType::Temporal | CorrelationType::TemporalOrdered if rules.len() < 2 => {
            d.warn(
                c.line,
                "a temporal correlation over one rule is an event_count",
            );
        }
        _ => {}
    }
    let aliases = c
        .get("aliases")
        .and_then(Node::as_map)
        .map(|m| {
            m.iter()
                .map(|(alias, per_rule)| {
                    let per = per_rule
                        .as_map()
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|(r, f)| Some((r.scalar_text()?, f.scalar_text()?)))
                        .collect();
                    (alias.scalar_text().unwrap_or_default(), per)
                })
                .collect()
        })
        .unwrap_or_default();
    let generate = c
        .get("generate")
        .is_some_and(|g| matches!(g.value, Value::Bool(true)));
    Some(Correlation {
        meta,
        kind,
        rules,
        group_by,
        timespan_us,
        condition,
        field,
        aliases,
        generate,
    })
}

/// `30s`, `10m`, `1h`, `2d` → microseconds.
pub fn parse_timespan(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return None,
    };
    (n > 0).then_some(n * mult * 1_000_000)
}

// ---------------------------------------------------------------- condition parser

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    And,
    Or,
    Not,
    Open,
    Close,
    OneOf,
    AllOf,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let words: Vec<String> = s
        .replace('(', " ( ")
        .replace(')', " ) ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let lw = w.to_lowercase();
        match lw.as_str() {
            "and" => out.push(Tok::And),
            "or" => out.push(Tok::Or),
            "not" => out.push(Tok::Not),
            "(" => out.push(Tok::Open),
            ")" => out.push(Tok::Close),
            "1" | "any" | "all" if words.get(i + 1).is_some_and(|n| n == "of") => {
                out.push(if lw == "all" { Tok::AllOf } else { Tok::OneOf });
                i += 1;
            }
            "|" => {
                return Err(
                    "aggregations after `|` are Sigma v1 syntax; use a correlation rule".into(),
                );
            }
            _ if w.contains('|') => {
                return Err(
                    "aggregations after `|` are Sigma v1 syntax; use a correlation rule".into(),
                );
            }
            _ => out.push(Tok::Ident(w.clone())),
        }
        i += 1;
    }
    Ok(out)
}

/// Parses a condition string: `not` binds tighter than `and`, which binds tighter than `or`.
pub fn parse_condition(s: &str) -> Result<Cond, String> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err("empty condition".into());
    }
    let mut p = CondParser { toks, pos: 0 };
    let c = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!(
            "unexpected `{:?}` in condition `{s}`",
            p.toks[p.pos]
        ));
    }
    Ok(c)
}

struct CondParser {
    toks: Vec<Tok>,
    pos: usize,
}

impl CondParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn or(&mut self) -> Result<Cond, String> {
        let mut v = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap_or(Cond::Or(vec![]))
        } else {
            Cond::Or(v)
        })
    }
    fn and(&mut self) -> Result<Cond, String> {
        let mut v = vec![self.unary()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap_or(Cond::And(vec![]))
        } else {
            Cond::And(v)
        })
    }
    fn unary(&mut self) -> Result<Cond, String> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        match t {
            Some(Tok::Not) => Ok(Cond::Not(Box::new(self.unary()?))),
            Some(Tok::Open) => {
                let c = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err("missing `)` in condition".into());
                }
                self.pos += 1;
                Ok(c)
            }
            Some(Tok::OneOf) | Some(Tok::AllOf) => {
                let all = t == Some(Tok::AllOf);
                match self.toks.get(self.pos).cloned() {
                    Some(Tok::Ident(p)) => {
                        self.pos += 1;
                        Ok(if all { Cond::AllOf(p) } else { Cond::OneOf(p) })
                    }
                    _ => Err("`of` must be followed by `them` or a name pattern".into()),
                }
            }
            Some(Tok::Ident(s)) => Ok(Cond::Sel(s)),
            Some(other) => Err(format!("unexpected `{other:?}` in condition")),
            None => Err("condition ends too early".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let c = parse_condition("a or not b and (c or d)").unwrap();
        assert_eq!(
            c,
            Cond::Or(vec![
                Cond::Sel("a".into()),
                Cond::And(vec![
                    Cond::Not(Box::new(Cond::Sel("b".into()))),
                    Cond::Or(vec![Cond::Sel("c".into()), Cond::Sel("d".into())]),
                ]),
            ])
        );
        assert_eq!(
            parse_condition("selection_status and 1 of selection_request_*").unwrap(),
            Cond::And(vec![
                Cond::Sel("selection_status".into()),
                Cond::OneOf("selection_request_*".into())
            ])
        );
        assert_eq!(
            parse_condition("all of them").unwrap(),
            Cond::AllOf("them".into())
        );
        assert!(parse_condition("a and").is_err());
        assert!(parse_condition("(a or b").is_err());
        assert!(parse_condition("sel | count() > 5").is_err());
    }

    #[test]
    fn name_globs() {
        assert!(glob_name("selection_*", "selection_a"));
        assert!(!glob_name("selection_*", "filter_a"));
        assert!(glob_name("*_main", "sel_main"));
        assert!(glob_name("sel", "sel"));
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("10m"), Some(600_000_000));
        assert_eq!(parse_timespan("1d"), Some(86_400_000_000));
        assert_eq!(parse_timespan("m"), None);
        assert_eq!(parse_timespan("0s"), None);
    }

    #[test]
    fn a_rule_with_everything() {
        let text = r#"
title: t
id: 1
logsource: {product: kubernetes, service: audit}
level: high
detection:
    sel:
        verb: [get, list]
        objectRef.resource|contains: secret
    filter:
        - user.username|startswith: 'system:'
        - userAgent: kube*
    condition: sel and not filter
suppression: {by: [actor], window: 10m}
tests:
  - name: hit
    expect: match
    events:
      - {verb: get}
"#;
        let mut diags = vec![];
        let docs = parse_file(Path::new("x.yml"), text, &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        let Document::Rule(r) = &docs[0] else {
            panic!()
        };
        assert_eq!(r.meta.level, Some(Level::High));
        assert_eq!(r.meta.tests.len(), 1);
        assert_eq!(r.detection.selections.len(), 2);
        let Selection::AllOf(c) = &r.detection.selections[0].1 else {
            panic!()
        };
        assert_eq!(c[1].modifiers, vec!["contains"]);
        assert_eq!(c[0].line, 8);
    }

    #[test]
    fn undefined_selection_is_an_error_with_its_line() {
        let text = "title: t\nlogsource: {product: vault}\ndetection:\n  sel: {a: 1}\n  condition: sel and other\n";
        let mut diags = vec![];
        let docs = parse_file(Path::new("x.yml"), text, &mut diags);
        assert!(docs.is_empty());
        assert!(
            diags
                .iter()
                .any(|d| d.line == 5 && d.message.contains("other")),
            "{diags:?}"
        );
    }
}
