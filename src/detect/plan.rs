//! Sigma detections compiled into columnar predicates.
//!
//! Every field condition becomes a *leaf* (a field and one matcher). Leaves are shared
//! across all rules: the same `verb = list` is computed once per batch whatever number of
//! rules use it. A leaf on a column is evaluated over the whole Arrow column (an equality
//! is a lookup in a per-batch value index; wildcards use Arrow's `like`/`ilike` kernels;
//! numbers Arrow's comparison kernels) and cached as a bitmap. A leaf on the raw event is
//! evaluated only for the rows that are still candidates when the condition reaches it
//! (the parsed raw JSON is cached per row), so cheap column tests act as prefilters.
//! Conditions are evaluated as bitmap algebra with short-circuits on empty bitmaps.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{Datelike, TimeZone, Timelike};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Float64Array, RecordBatch,
    StringArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use datafusion::arrow::compute::kernels::{cmp, comparison};
use datafusion::arrow::compute::{cast, is_not_null, is_null};
use datafusion::arrow::datatypes::{DataType, TimeUnit};

use super::fields::{FieldMap, FieldRef, Resolution, column_types};
use super::sigma::{CmpOp, Cond, Diags, FieldCond, Scalar, Selection, glob_name};

/// A compiled condition tree over leaf ids.
#[derive(Debug, Clone)]
pub enum Expr {
    Leaf(usize),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Const(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// One value test.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Exact string (lowercased unless `cased`).
    StrEq {
        value: String,
        cased: bool,
    },
    /// Sigma wildcard pattern (already including contains/startswith/endswith stars).
    Like {
        pattern: Wildcard,
        cased: bool,
    },
    Regex(Arc<regex::Regex>),
    Cidr(ipnet::IpNet),
    Num {
        op: CmpOp,
        value: f64,
    },
    Bool(bool),
    /// The field is missing or null.
    Null,
    /// The field is present (`true`) or absent (`false`).
    Exists(bool),
    /// The field equals (or contains, starts/ends with) another field of the same event.
    FieldRef {
        other: FieldRef,
        mode: RefMode,
        cased: bool,
    },
    Time {
        part: TimePart,
        op: CmpOp,
        value: i64,
    },
    /// Can never match (a type clash reported by `rules check`).
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefMode {
    Eq,
    Contains,
    StartsWith,
    EndsWith,
}

impl Matcher {
    /// A canonical text used to share identical leaves.
    fn key(&self) -> String {
        match self {
            Matcher::StrEq { value, cased } => format!("eq:{cased}:{value}"),
            Matcher::Like { pattern, cased } => format!("like:{cased}:{}", pattern.like),
            Matcher::Regex(r) => format!("re:{}", r.as_str()),
            Matcher::Cidr(n) => format!("cidr:{n}"),
            Matcher::Num { op, value } => format!("num:{}:{value}", op.as_str()),
            Matcher::Bool(b) => format!("bool:{b}"),
            Matcher::Null => "null".into(),
            Matcher::Exists(b) => format!("exists:{b}"),
            Matcher::FieldRef { other, mode, cased } => format!("ref:{other:?}:{mode:?}:{cased}"),
            Matcher::Time { part, op, value } => format!("time:{part:?}:{}:{value}", op.as_str()),
            Matcher::Never => "never".into(),
        }
    }

    /// Relative cost, to order the children of `and`/`or`: cheap prefilters first.
    fn cost(&self, field: &FieldRef) -> u32 {
        let base = match field {
            FieldRef::Raw(_) => 100,
            FieldRef::Coalesce(_) => 3,
            FieldRef::Column(_) => 1,
        };
        base * match self {
            Matcher::StrEq { .. } | Matcher::Bool(_) | Matcher::Null | Matcher::Exists(_) => 1,
            Matcher::Num { .. } | Matcher::Time { .. } => 2,
            Matcher::Like { .. } => 4,
            Matcher::Cidr(_) | Matcher::FieldRef { .. } => 8,
            Matcher::Regex(_) => 16,
            Matcher::Never => 0,
        }
    }
}

/// A Sigma wildcard value: `*` any run, `?` one character, `\` escapes.
#[derive(Debug, Clone)]
pub struct Wildcard {
    tokens: Vec<WTok>,
    /// The same pattern in SQL LIKE syntax with `\` escapes, for Arrow's kernels.
    like: String,
    /// The pattern is only stars: any non-null value.
    any: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum WTok {
    Lit(String),
    Star,
    One,
}

impl Wildcard {
    /// Parses a Sigma value; returns `None` when it has no wildcard (an exact match).
    pub fn parse(value: &str, prefix_star: bool, suffix_star: bool) -> (Option<Wildcard>, String) {
        let mut tokens = Vec::new();
        let mut lit = String::new();
        let mut plain = String::new();
        let mut wild = false;
        if prefix_star {
            tokens.push(WTok::Star);
            wild = true;
        }
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&n @ ('*' | '?' | '\\')) => {
                        chars.next();
                        lit.push(n);
                        plain.push(n);
                    }
                    _ => {
                        lit.push('\\');
                        plain.push('\\');
                    }
                },
                '*' | '?' => {
                    if !lit.is_empty() {
                        tokens.push(WTok::Lit(std::mem::take(&mut lit)));
                    }
                    tokens.push(if c == '*' { WTok::Star } else { WTok::One });
                    wild = true;
                }
                _ => {
                    lit.push(c);
                    plain.push(c);
                }
            }
        }
        if !lit.is_empty() {
            tokens.push(WTok::Lit(lit));
        }
        if suffix_star {
            tokens.push(WTok::Star);
            wild = true;
        }
        if !wild {
            return (None, plain);
        }
        let mut like = String::new();
        for t in &tokens {
            match t {
                WTok::Star => like.push('%'),
                WTok::One => like.push('_'),
                WTok::Lit(s) => {
                    for c in s.chars() {
                        if matches!(c, '%' | '_' | '\\') {
                            like.push('\\');
                        }
                        like.push(c);
                    }
                }
            }
        }
        let any = tokens.iter().all(|t| *t == WTok::Star);
        (Some(Wildcard { tokens, like, any }), plain)
    }

    /// The same pattern as a regular expression over the whole text (for [`Groups`]).
    fn regex(&self, cased: bool) -> String {
        let mut toks = &self.tokens[..];
        let mut p = String::from(if cased { "(?s)" } else { "(?si)" });
        let start = !matches!(toks.first(), Some(WTok::Star));
        let end = !matches!(toks.last(), Some(WTok::Star));
        while let [WTok::Star, rest @ ..] = toks {
            toks = rest;
        }
        while let [rest @ .., WTok::Star] = toks {
            toks = rest;
        }
        if start {
            p.push('^');
        }
        for t in toks {
            match t {
                WTok::Lit(l) => p.push_str(&regex::escape(l)),
                WTok::Star => p.push_str(".*"),
                WTok::One => p.push('.'),
            }
        }
        if end {
            p.push('$');
        }
        p
    }

    fn lowercase(mut self) -> Wildcard {
        for t in &mut self.tokens {
            if let WTok::Lit(s) = t {
                *s = s.to_lowercase();
            }
        }
        self
    }

    /// Glob match of already case-folded text (iterative, with star backtracking).
    pub fn matches(&self, text: &str) -> bool {
        fn go(toks: &[WTok], text: &str) -> bool {
            match toks.split_first() {
                None => text.is_empty(),
                Some((WTok::Lit(l), rest)) => {
                    text.strip_prefix(l.as_str()).is_some_and(|t| go(rest, t))
                }
                Some((WTok::One, rest)) => {
                    let mut c = text.chars();
                    c.next().is_some() && go(rest, c.as_str())
                }
                Some((WTok::Star, rest)) => {
                    if rest.is_empty() {
                        return true;
                    }
                    // next literal: jump between its occurrences
                    if let Some(WTok::Lit(l)) = rest.first() {
                        let mut start = 0;
                        while let Some(i) = text[start..].find(l.as_str()) {
                            if go(rest, &text[start + i..]) {
                                return true;
                            }
                            start += i + l.chars().next().map_or(1, char::len_utf8);
                        }
                        return false;
                    }
                    let mut t = text;
                    loop {
                        if go(rest, t) {
                            return true;
                        }
                        let mut c = t.chars();
                        if c.next().is_none() {
                            return false;
                        }
                        t = c.as_str();
                    }
                }
            }
        }
        go(&self.tokens, text)
    }
}

#[derive(Debug, Clone)]
pub struct Leaf {
    pub field: FieldRef,
    pub matcher: Matcher,
}

/// All leaves of a rule set, deduplicated.
#[derive(Debug, Default)]
pub struct Leaves {
    pub leaves: Vec<Leaf>,
    ids: HashMap<(FieldRef, String), usize>,
}

impl Leaves {
    fn intern(&mut self, field: FieldRef, matcher: Matcher) -> usize {
        let key = (field.clone(), matcher.key());
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        self.leaves.push(Leaf { field, matcher });
        self.ids.insert(key, self.leaves.len() - 1);
        self.leaves.len() - 1
    }

    fn cost(&self, e: &Expr) -> u32 {
        match e {
            Expr::Leaf(i) => {
                let l = &self.leaves[*i];
                l.matcher.cost(&l.field)
            }
            Expr::And(v) | Expr::Or(v) => v.iter().map(|c| self.cost(c)).sum(),
            Expr::Not(c) => self.cost(c),
            Expr::Const(_) => 0,
        }
    }
}

/// Wildcard and regex leaves on one text column, matched together: one pass of a
/// `RegexSet` over a row answers every member for that row. With hundreds of rules that
/// each look for their own user agent, path prefix or URI pattern in the same column, this
/// replaces one scan per leaf with one scan per row.
#[derive(Debug)]
pub struct LeafGroup {
    pub field: FieldRef,
    /// Leaf ids, in the order of the set's patterns.
    pub members: Vec<usize>,
    set: regex::RegexSet,
}

#[derive(Debug, Default)]
pub struct Groups {
    pub groups: Vec<LeafGroup>,
    /// Per leaf: (group, position in it).
    of_leaf: Vec<Option<(usize, usize)>>,
}

/// Smallest number of wildcard/regex leaves on one column that is matched as a group.
const GROUP_MIN_LEAVES: usize = 8;

impl Groups {
    pub fn build(leaves: &[Leaf]) -> Groups {
        let columns = column_types();
        let mut by_field: HashMap<&FieldRef, Vec<(usize, String)>> = HashMap::new();
        for (i, l) in leaves.iter().enumerate() {
            let text = match &l.field {
                FieldRef::Column(c) => columns.get(c) == Some(&DataType::Utf8),
                FieldRef::Coalesce(_) => true,
                FieldRef::Raw(_) => false,
            };
            let pattern = match &l.matcher {
                Matcher::Like { pattern, cased } if !pattern.any => Some(pattern.regex(*cased)),
                Matcher::Regex(r) => Some(r.as_str().to_string()),
                _ => None,
            };
            if let (true, Some(p)) = (text, pattern) {
                by_field.entry(&l.field).or_default().push((i, p));
            }
        }
        let mut fields: Vec<(&FieldRef, Vec<(usize, String)>)> = by_field
            .into_iter()
            .filter(|(_, m)| m.len() >= GROUP_MIN_LEAVES)
            .collect();
        fields.sort_by_key(|(_, m)| m[0].0);
        let mut out = Groups {
            groups: Vec::new(),
            of_leaf: vec![None; leaves.len()],
        };
        for (field, members) in fields {
            let Ok(set) = regex::RegexSetBuilder::new(members.iter().map(|(_, p)| p))
                .size_limit(64 << 20)
                .dfa_size_limit(64 << 20)
                .build()
            else {
                continue; // too large: its leaves run one by one
            };
            let g = out.groups.len();
            for (pos, (i, _)) in members.iter().enumerate() {
                out.of_leaf[*i] = Some((g, pos));
            }
            out.groups.push(LeafGroup {
                field: field.clone(),
                members: members.into_iter().map(|(i, _)| i).collect(),
                set,
            });
        }
        out
    }
}

/// Compiles a detection (selections + condition) for one logsource product.
pub struct Compiler<'a> {
    pub leaves: &'a mut Leaves,
    pub fields: &'a FieldMap,
    pub product: Option<&'a str>,
    pub columns: HashMap<String, DataType>,
}

impl<'a> Compiler<'a> {
    pub fn new(leaves: &'a mut Leaves, fields: &'a FieldMap, product: Option<&'a str>) -> Self {
        Compiler {
            leaves,
            fields,
            product,
            columns: column_types(),
        }
    }

    /// The condition as an expression; `None` when a selection could not compile (errors
    /// already reported).
    pub fn detection(
        &mut self,
        selections: &[(String, Selection)],
        cond: &Cond,
        d: &mut Diags,
    ) -> Option<Expr> {
        let mut compiled = HashMap::new();
        let mut ok = true;
        for (name, sel) in selections {
            match self.selection(sel, d) {
                Some(e) => {
                    compiled.insert(name.clone(), e);
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let names: Vec<&String> = selections.iter().map(|(n, _)| n).collect();
        let e = self.cond(cond, &compiled, &names);
        Some(self.order(e))
    }

    fn cond(&self, c: &Cond, sels: &HashMap<String, Expr>, names: &[&String]) -> Expr {
        let pick = |p: &str| -> Vec<Expr> {
            names
                .iter()
                // `them` covers every identifier except those starting with `_` (spec)
                .filter(|n| {
                    if p == "them" {
                        !n.starts_with('_')
                    } else {
                        glob_name(p, n)
                    }
                })
                .filter_map(|n| sels.get(n.as_str()).cloned())
                .collect()
        };
        match c {
            Cond::Sel(s) => sels.get(s).cloned().unwrap_or(Expr::Const(false)),
            Cond::And(v) => Expr::And(v.iter().map(|c| self.cond(c, sels, names)).collect()),
            Cond::Or(v) => Expr::Or(v.iter().map(|c| self.cond(c, sels, names)).collect()),
            Cond::Not(c) => Expr::Not(Box::new(self.cond(c, sels, names))),
            Cond::OneOf(p) => Expr::Or(pick(p)),
            Cond::AllOf(p) => Expr::And(pick(p)),
        }
    }

    /// Flattens nested and/or and puts cheap children first.
    pub fn order(&self, e: Expr) -> Expr {
        match e {
            Expr::And(v) | Expr::Or(v) if v.len() == 1 => {
                self.order(v.into_iter().next().unwrap_or(Expr::Const(true)))
            }
            Expr::And(v) => {
                let mut out = Vec::new();
                for c in v {
                    match self.order(c) {
                        Expr::And(inner) => out.extend(inner),
                        other => out.push(other),
                    }
                }
                out.sort_by_key(|c| self.leaves.cost(c));
                Expr::And(out)
            }
            Expr::Or(v) => {
                let mut out = Vec::new();
                for c in v {
                    match self.order(c) {
                        Expr::Or(inner) => out.extend(inner),
                        other => out.push(other),
                    }
                }
                out.sort_by_key(|c| self.leaves.cost(c));
                Expr::Or(out)
            }
            Expr::Not(c) => Expr::Not(Box::new(self.order(*c))),
            other => other,
        }
    }

    fn selection(&mut self, sel: &Selection, d: &mut Diags) -> Option<Expr> {
        match sel {
            Selection::AllOf(conds) => {
                let mut v = Vec::new();
                for c in conds {
                    v.push(self.field_cond(c, d)?);
                }
                Some(Expr::And(v))
            }
            Selection::AnyOf(alts) => {
                let mut v = Vec::new();
                for a in alts {
                    v.push(self.selection(a, d)?);
                }
                Some(Expr::Or(v))
            }
            Selection::Keywords(words, _) => {
                // full-text search of the (redacted) raw event
                let v = words
                    .iter()
                    .map(|w| {
                        let (p, _) = Wildcard::parse(&w.text(), true, true);
                        let p = p.expect("stars were added").lowercase();
                        let m = Matcher::Like {
                            pattern: p,
                            cased: false,
                        };
                        Expr::Leaf(self.leaves.intern(FieldRef::Column("raw".into()), m))
                    })
                    .collect();
                Some(Expr::Or(v))
            }
        }
    }

    /// One `field|modifiers: values` entry.
    pub fn field_cond(&mut self, c: &FieldCond, d: &mut Diags) -> Option<Expr> {
        let (field, res) = self.fields.resolve(self.product, &c.field);
        if c.field.is_empty() {
            d.error(c.line, "empty field name");
            return None;
        }
        let col_type = match &field {
            FieldRef::Column(col) => self.columns.get(col).cloned(),
            FieldRef::Coalesce(_) => Some(DataType::Utf8),
            FieldRef::Raw(_) => None,
        };
        if res == Resolution::UnknownRaw {
            d.warn(
                c.line,
                format!(
                    "field `{}` is not a column, not in rules/fields.yml and not part of {} audit events: it is read from the raw event and may never exist",
                    c.field,
                    self.product.unwrap_or("these")
                ),
            );
        }
        let mut m = Mods::default();
        for md in &c.modifiers {
            match md.as_str() {
                "contains" => m.contains = true,
                "startswith" => m.startswith = true,
                "endswith" => m.endswith = true,
                "all" => m.all = true,
                "re" => m.re = true,
                "i" => m.re_i = true,
                "m" => m.re_m = true,
                "s" => m.re_s = true,
                "cidr" => m.cidr = true,
                "base64" => m.base64 = true,
                "base64offset" => m.base64offset = true,
                "exists" => m.exists = true,
                "cased" => m.cased = true,
                "neq" => m.neq = true,
                "fieldref" => m.fieldref = true,
                "lt" => m.cmp = Some(CmpOp::Lt),
                "lte" => m.cmp = Some(CmpOp::Lte),
                "gt" => m.cmp = Some(CmpOp::Gt),
                "gte" => m.cmp = Some(CmpOp::Gte),
                "minute" => m.time = Some(TimePart::Minute),
                "hour" => m.time = Some(TimePart::Hour),
                "day" => m.time = Some(TimePart::Day),
                "week" => m.time = Some(TimePart::Week),
                "month" => m.time = Some(TimePart::Month),
                "year" => m.time = Some(TimePart::Year),
                other => {
                    d.error(
                        c.line,
                        format!("modifier `{other}` is not supported (audit events are JSON, not Windows command lines)"),
                    );
                    return None;
                }
            }
        }
        if c.values.is_empty() {
            d.error(c.line, format!("`{}` has no values", c.field));
            return None;
        }
        if m.all && c.values.len() == 1 {
            d.warn(c.line, "`all` with a single value has no effect");
        }
        if (m.re_i || m.re_m || m.re_s) && !m.re {
            d.error(c.line, "`i`, `m`, `s` are sub-modifiers of `re`");
            return None;
        }
        let mut leaves = Vec::new();
        for v in &c.values {
            let ms = self.matchers(&c.field, &field, col_type.as_ref(), &m, v, c.line, d)?;
            let ids: Vec<Expr> = ms
                .into_iter()
                .map(|mt| Expr::Leaf(self.leaves.intern(field.clone(), mt)))
                .collect();
            // base64offset yields three encodings: any of them
            leaves.push(if ids.len() == 1 {
                ids.into_iter().next()?
            } else {
                Expr::Or(ids)
            });
        }
        let e = if m.all {
            Expr::And(leaves)
        } else {
            Expr::Or(leaves)
        };
        Some(if m.neq { Expr::Not(Box::new(e)) } else { e })
    }

    #[allow(clippy::too_many_arguments)]
    fn matchers(
        &self,
        name: &str,
        field: &FieldRef,
        col_type: Option<&DataType>,
        m: &Mods,
        v: &Scalar,
        line: usize,
        d: &mut Diags,
    ) -> Option<Vec<Matcher>> {
        if m.exists {
            return match v {
                Scalar::Bool(b) => Some(vec![Matcher::Exists(*b)]),
                _ => {
                    d.error(line, "`exists` takes true or false");
                    None
                }
            };
        }
        if *v == Scalar::Null {
            return Some(vec![Matcher::Null]);
        }
        if let Some(part) = m.time {
            if !matches!(col_type, Some(DataType::Timestamp(..))) {
                d.error(
                    line,
                    format!("time modifiers need a timestamp field; `{name}` is not one"),
                );
                return None;
            }
            let Some(value) = v.text().parse::<i64>().ok() else {
                d.error(line, "time modifiers compare with an integer");
                return None;
            };
            let op = if m.neq {
                CmpOp::Eq
            } else {
                m.cmp.unwrap_or(CmpOp::Eq)
            };
            return Some(vec![Matcher::Time { part, op, value }]);
        }
        if let Some(op) = m.cmp {
            let Some(value) = v.text().parse::<f64>().ok() else {
                d.error(
                    line,
                    format!(
                        "`{}` compares numbers; `{}` is not one",
                        op.as_str(),
                        v.text()
                    ),
                );
                return None;
            };
            if let Some(t) = col_type
                && !t.is_numeric()
            {
                d.warn(
                    line,
                    format!("`{name}` is a {t} column; numeric comparison parses its text"),
                );
            }
            return Some(vec![Matcher::Num { op, value }]);
        }
        if m.fieldref {
            let (other, _) = self.fields.resolve(self.product, &v.text());
            let mode = if m.contains {
                RefMode::Contains
            } else if m.startswith {
                RefMode::StartsWith
            } else if m.endswith {
                RefMode::EndsWith
            } else {
                RefMode::Eq
            };
            return Some(vec![Matcher::FieldRef {
                other,
                mode,
                cased: m.cased,
            }]);
        }
        if m.cidr {
            return match v.text().parse::<ipnet::IpNet>() {
                Ok(n) => Some(vec![Matcher::Cidr(n)]),
                Err(_) => {
                    d.error(line, format!("`{}` is not a CIDR range", v.text()));
                    None
                }
            };
        }
        if m.re {
            let mut p = String::new();
            if m.re_i {
                p.push_str("(?i)");
            }
            if m.re_m {
                p.push_str("(?m)");
            }
            if m.re_s {
                p.push_str("(?s)");
            }
            p.push_str(&v.text());
            return match regex::RegexBuilder::new(&p).size_limit(1 << 20).build() {
                Ok(r) => Some(vec![Matcher::Regex(Arc::new(r))]),
                Err(e) => {
                    d.error(line, format!("invalid regular expression: {e}"));
                    None
                }
            };
        }
        if let Scalar::Bool(b) = v {
            return Some(vec![match col_type {
                Some(DataType::Boolean) | None => Matcher::Bool(*b),
                Some(_) => Matcher::StrEq {
                    value: b.to_string(),
                    cased: false,
                },
            }]);
        }
        // strings (and numbers written as values)
        let text = v.text();
        let encoded: Vec<String> = if m.base64offset {
            base64_offsets(&text)
        } else if m.base64 {
            vec![base64::engine::general_purpose::STANDARD.encode(text.as_bytes())]
        } else {
            vec![text]
        };
        let mut out = Vec::new();
        for t in encoded {
            let pre = m.contains || m.endswith || m.base64offset;
            let post = m.contains || m.startswith || m.base64offset;
            // base64 output contains no wildcards; escape nothing else
            let (wild, plain) = if m.base64 || m.base64offset {
                Wildcard::parse(&t.replace('\\', "\\\\"), pre, post)
            } else {
                Wildcard::parse(&t, pre, post)
            };
            let cased = m.cased || m.base64 || m.base64offset;
            match col_type {
                Some(t) if t.is_integer() || t.is_floating() => {
                    match (wild, plain.parse::<f64>()) {
                        (None, Ok(n)) => out.push(Matcher::Num {
                            op: CmpOp::Eq,
                            value: n,
                        }),
                        (Some(p), _) => out.push(Matcher::Like {
                            pattern: p,
                            cased: true,
                        }),
                        (None, Err(_)) => {
                            d.error(
                            line,
                            format!(
                                "`{name}: '{plain}'` can never match: `{name}` is an integer field ({})",
                                col_name(field)
                            ),
                        );
                            out.push(Matcher::Never);
                        }
                    }
                }
                Some(DataType::Boolean) => match plain.to_lowercase().as_str() {
                    "true" => out.push(Matcher::Bool(true)),
                    "false" => out.push(Matcher::Bool(false)),
                    _ => {
                        d.error(
                            line,
                            format!("`{name}` is a boolean field; `{plain}` can never match"),
                        );
                        out.push(Matcher::Never);
                    }
                },
                Some(DataType::Timestamp(..)) => {
                    d.error(
                        line,
                        format!(
                            "`{name}` is a timestamp: compare it with the hour/day/… modifiers"
                        ),
                    );
                    out.push(Matcher::Never);
                }
                _ => out.push(match wild {
                    Some(p) => Matcher::Like {
                        pattern: if cased { p } else { p.lowercase() },
                        cased,
                    },
                    None => Matcher::StrEq {
                        value: if cased { plain } else { plain.to_lowercase() },
                        cased,
                    },
                }),
            }
        }
        Some(out)
    }
}

fn col_name(f: &FieldRef) -> String {
    match f {
        FieldRef::Column(c) => format!("column {c}"),
        FieldRef::Coalesce(c) => c.join(","),
        FieldRef::Raw(p) => p.clone(),
    }
}

/// The three base64 renderings of a value at byte offsets 0, 1, 2 of the encoded stream,
/// with the characters that depend on unknown neighbours cut off.
fn base64_offsets(v: &str) -> Vec<String> {
    let e = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    for shift in 0..3usize {
        let mut padded = vec![0u8; shift];
        padded.extend_from_slice(bytes);
        let enc = e(&padded);
        let start = [0, 2, 3][shift];
        let end_cut = [0, 3, 2][(bytes.len() + shift) % 3];
        let enc = enc.trim_end_matches('=');
        let end = enc.len().saturating_sub(end_cut);
        if start < end {
            out.push(enc[start..end].to_string());
        }
    }
    out
}

#[derive(Default)]
struct Mods {
    contains: bool,
    startswith: bool,
    endswith: bool,
    all: bool,
    re: bool,
    re_i: bool,
    re_m: bool,
    re_s: bool,
    cidr: bool,
    base64: bool,
    base64offset: bool,
    exists: bool,
    cased: bool,
    neq: bool,
    fieldref: bool,
    cmp: Option<CmpOp>,
    time: Option<TimePart>,
}

// ---------------------------------------------------------------- evaluation

/// How a leaf is computed in a batch: over the whole column once, row by row for the
/// candidates, or over the column when most rows are candidates.
#[derive(Clone, Copy)]
enum LeafKind {
    Column,
    Rows,
    ColumnIfDense,
}

/// Per-batch evaluation state: cached leaf bitmaps, value indexes, parsed raw events.
pub struct BatchEval<'b> {
    pub batch: &'b RecordBatch,
    pub rows: usize,
    leaves: &'b [Leaf],
    full: Vec<Option<BooleanBuffer>>,
    /// Leaves evaluated row by row on candidates only: what is known so far.
    partial: Vec<Option<Partial>>,
    groups: Option<&'b Groups>,
    /// Per group: rows matched so far, and per member the rows that hit.
    group_state: Vec<Option<(Vec<u64>, Vec<Vec<u64>>)>>,
    /// Per (column, part): the time part of every row.
    time_parts: HashMap<(String, TimePart), Vec<i64>>,
    /// The raw event column.
    raw_col: Option<StringArray>,
    /// Every raw path the rules read (leaves, alert fields, group-by): raw events are
    /// parsed keeping only these parts. `None` parses them whole.
    raw_paths: Option<Vec<&'b str>>,
    /// Per raw path: key needles, and which rows may contain the path; shared by the
    /// leaves on one path (`probe_ids`), found once per leaf (`probe_of_leaf`).
    probes: Vec<(Vec<memchr::memmem::Finder<'static>>, Partial)>,
    probe_ids: HashMap<String, usize>,
    probe_of_leaf: Vec<Option<usize>>,
    /// Parsed IP addresses of a text column's rows (CIDR leaves), filled lazily.
    ips: Vec<Vec<Option<Option<IpAddr>>>>,
    ip_slots: HashMap<FieldRef, usize>,
    ip_of_leaf: Vec<Option<usize>>,
    indexes: HashMap<(String, bool), ValueIndex>,
    kinds: Vec<Option<LeafKind>>,
    eq_counts: HashMap<(String, bool), usize>,
    coalesced: HashMap<Vec<String>, ArrayRef>,
    raw_json: Vec<Option<Option<serde_json::Value>>>,
}

/// Equality leaves of `leaves` on the column (or `coalesce:a,b` key) with this case.
fn count_eq_leaves(leaves: &[Leaf], key: &str, cased: bool) -> usize {
    leaves
        .iter()
        .filter(|l| {
            matches!(l.matcher, Matcher::StrEq { cased: c, .. } if c == cased)
                && match &l.field {
                    FieldRef::Column(c) => c == key,
                    FieldRef::Coalesce(cols) => {
                        key.strip_prefix("coalesce:") == Some(cols.join(",").as_str())
                    }
                    FieldRef::Raw(_) => false,
                }
        })
        .count()
}

/// Equality leaves on one column from which a per-batch value index is built.
const INDEX_MIN_LEAVES: usize = 8;

/// A leaf's result for the rows computed so far (two bitsets over the batch's rows).
struct Partial {
    done: Vec<u64>,
    hit: Vec<u64>,
}

impl Partial {
    fn new(rows: usize) -> Partial {
        let words = rows.div_ceil(64);
        Partial {
            done: vec![0; words],
            hit: vec![0; words],
        }
    }
}

fn bitset_buffer(words: &[u64], rows: usize) -> BooleanBuffer {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    BooleanBuffer::new(Buffer::from_vec(bytes), 0, rows)
}

/// A value of a field in one row, as `rules` and correlations see it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Str(String),
    Num(f64),
    Bool(bool),
    /// JSON object/array text.
    Other(String),
}

impl FieldValue {
    pub fn text(&self) -> String {
        match self {
            FieldValue::Str(s) | FieldValue::Other(s) => s.clone(),
            FieldValue::Num(n) => {
                if n.fract() == 0.0 && n.abs() < 1e15 {
                    format!("{}", *n as i64)
                } else {
                    n.to_string()
                }
            }
            FieldValue::Bool(b) => b.to_string(),
        }
    }
}

impl<'b> BatchEval<'b> {
    pub fn new(batch: &'b RecordBatch, leaves: &'b [Leaf]) -> Self {
        BatchEval {
            batch,
            rows: batch.num_rows(),
            leaves,
            full: vec![None; leaves.len()],
            partial: (0..leaves.len()).map(|_| None).collect(),
            groups: None,
            group_state: Vec::new(),
            ips: Vec::new(),
            ip_slots: HashMap::new(),
            ip_of_leaf: vec![None; leaves.len()],
            raw_paths: None,
            raw_col: batch
                .column_by_name("raw")
                .and_then(|c| c.as_string_opt::<i32>())
                .cloned(),
            probes: Vec::new(),
            probe_ids: HashMap::new(),
            probe_of_leaf: vec![None; leaves.len()],
            time_parts: HashMap::new(),
            indexes: HashMap::new(),
            kinds: vec![None; leaves.len()],
            eq_counts: HashMap::new(),
            coalesced: HashMap::new(),
            raw_json: vec![None; batch.num_rows()],
        }
    }

    /// Parse raw events keeping only the parts on `paths` (which must hold every raw
    /// path that will be read through this evaluation).
    pub fn with_raw_paths(mut self, paths: &'b [String]) -> Self {
        if !paths.iter().any(|p| p.is_empty()) {
            self.raw_paths = Some(paths.iter().map(String::as_str).collect());
        }
        self
    }

    /// Evaluates the grouped leaves of `groups` (built from the same leaves) together.
    pub fn with_groups(mut self, groups: &'b Groups) -> Self {
        self.group_state = (0..groups.groups.len()).map(|_| None).collect();
        self.groups = Some(groups);
        self
    }

    pub fn all(&self) -> BooleanBuffer {
        BooleanBuffer::new_set(self.rows)
    }

    pub fn none(&self) -> BooleanBuffer {
        BooleanBuffer::new_unset(self.rows)
    }

    /// Rows of `cand` for which `e` holds.
    pub fn eval(&mut self, e: &Expr, cand: &BooleanBuffer) -> BooleanBuffer {
        match e {
            Expr::Const(true) => cand.clone(),
            Expr::Const(false) => self.none(),
            Expr::And(v) => {
                let mut r = cand.clone();
                for c in v {
                    if r.count_set_bits() == 0 {
                        break;
                    }
                    r = self.eval(c, &r);
                }
                r
            }
            Expr::Or(v) => {
                let mut acc = self.none();
                let mut rest = cand.clone();
                for c in v {
                    if rest.count_set_bits() == 0 {
                        break;
                    }
                    let hit = self.eval(c, &rest);
                    acc = &acc | &hit;
                    rest = &rest & &!&hit;
                }
                acc
            }
            Expr::Not(c) => {
                let hit = self.eval(c, cand);
                cand & &!&hit
            }
            Expr::Leaf(i) => self.leaf(*i, cand),
        }
    }

    /// A leaf over the candidates. Cheap vectorizable tests (equality through the value
    /// index, null/exists, booleans, numeric comparisons; wildcards when most rows are
    /// candidates) run over the whole column once and are cached as a bitmap. Everything
    /// else (raw paths, field references, regexes, CIDRs, time parts, sparse wildcards) is
    /// computed row by row for the candidates only, remembering the rows already done, so
    /// cheap conditions before it in an `and` act as prefilters.
    fn leaf(&mut self, i: usize, cand: &BooleanBuffer) -> BooleanBuffer {
        if let Some(r) = &self.full[i] {
            return r & cand;
        }
        if let Some((g, pos)) = self
            .groups
            .and_then(|gs| gs.of_leaf.get(i).copied().flatten())
        {
            return self.group_leaf(g, pos, cand);
        }
        if self.vectorized(i, cand) {
            let r = self.column_leaf(i);
            let out = &r & cand;
            self.full[i] = Some(r);
            return out;
        }
        self.partial_leaf(i, cand)
    }

    fn vectorized(&mut self, i: usize, cand: &BooleanBuffer) -> bool {
        let kind = match self.kinds[i] {
            Some(k) => k,
            None => {
                let k = self.kind(i);
                self.kinds[i] = Some(k);
                k
            }
        };
        match kind {
            LeafKind::Column => true,
            LeafKind::Rows => false,
            LeafKind::ColumnIfDense => cand.count_set_bits() * 2 >= self.rows,
        }
    }

    /// How leaf `i` is evaluated in this batch (decided once per batch).
    fn kind(&self, i: usize) -> LeafKind {
        let yes = |b: bool| if b { LeafKind::Column } else { LeafKind::Rows };
        let leaf = &self.leaves[i];
        let ty = match &leaf.field {
            FieldRef::Raw(_) => return LeafKind::Rows,
            FieldRef::Coalesce(_) => DataType::Utf8,
            FieldRef::Column(c) => match self.batch.column_by_name(c) {
                Some(a) => a.data_type().clone(),
                None => return LeafKind::Column,
            },
        };
        let column = match &leaf.matcher {
            Matcher::Null | Matcher::Exists(_) | Matcher::Never | Matcher::Bool(_) => true,
            Matcher::StrEq { cased, .. } => match &ty {
                DataType::Utf8 => true,
                // lists: through a value index when many leaves look values up
                DataType::List(_) => match &leaf.field {
                    FieldRef::Column(c) => {
                        count_eq_leaves(self.leaves, c, *cased) >= INDEX_MIN_LEAVES
                    }
                    _ => false,
                },
                _ => false,
            },
            Matcher::Time { .. } => matches!(ty, DataType::Timestamp(..)),
            Matcher::Num { .. } => ty.is_numeric(),
            Matcher::Like { .. } if ty == DataType::Utf8 => return LeafKind::ColumnIfDense,
            Matcher::Like { .. } => false,
            Matcher::Regex(_) | Matcher::Cidr(_) | Matcher::FieldRef { .. } => false,
        };
        yes(column)
    }

    /// Member `pos` of group `g` over the candidates: rows not seen by the group yet are
    /// matched against every member at once.
    fn group_leaf(&mut self, g: usize, pos: usize, cand: &BooleanBuffer) -> BooleanBuffer {
        let Some(groups) = self.groups else {
            return self.none();
        };
        let group = &groups.groups[g];
        let words = self.rows.div_ceil(64);
        let (mut done, mut hits) = self.group_state[g]
            .take()
            .unwrap_or_else(|| (vec![0; words], vec![vec![0; words]; group.members.len()]));
        let arr = self.column_array(&group.field);
        if let Some(a) = arr.as_ref().and_then(|a| a.as_string_opt::<i32>()) {
            for r in cand.set_indices() {
                let (w, b) = (r / 64, 1u64 << (r % 64));
                if done[w] & b != 0 {
                    continue;
                }
                done[w] |= b;
                if a.is_null(r) {
                    continue;
                }
                for p in group.set.matches(a.value(r)).iter() {
                    hits[p][w] |= b;
                }
            }
        }
        let out = &bitset_buffer(&hits[pos], self.rows) & cand;
        self.group_state[g] = Some((done, hits));
        out
    }

    /// Row-by-row evaluation of leaf `i` on the candidates not computed yet.
    fn partial_leaf(&mut self, i: usize, cand: &BooleanBuffer) -> BooleanBuffer {
        let mut p = self.partial[i]
            .take()
            .unwrap_or_else(|| Partial::new(self.rows));
        let leaf = &self.leaves[i];
        let arr = match &leaf.field {
            FieldRef::Raw(_) => None,
            f => self.column_array(f),
        };
        for r in cand.set_indices() {
            let (w, b) = (r / 64, 1u64 << (r % 64));
            if p.done[w] & b != 0 {
                continue;
            }
            p.done[w] |= b;
            if self.row_matches(i, arr.as_ref(), r) {
                p.hit[w] |= b;
            }
        }
        let out = &bitset_buffer(&p.hit, self.rows) & cand;
        self.partial[i] = Some(p);
        out
    }

    /// False when the raw text of `row` cannot hold `path`, so the JSON need not be
    /// parsed: every segment of the path must appear, in order, as (part of) an object key
    /// (see [`find_key_segment`]; audit writers do not escape key names). Cached per path
    /// and row.
    fn path_may_exist(&mut self, leaf: usize, path: &str, row: usize) -> bool {
        let slot = match self.probe_of_leaf[leaf] {
            Some(slot) => slot,
            None => {
                let slot = match self.probe_ids.get(path) {
                    Some(&slot) => slot,
                    None => {
                        // an empty segment (`a..b`) disables the probe
                        let needles = if path.split('.').any(str::is_empty) {
                            vec![]
                        } else {
                            path.split('.')
                                .map(|seg| memchr::memmem::Finder::new(seg.as_bytes()).into_owned())
                                .collect()
                        };
                        self.probes.push((needles, Partial::new(self.rows)));
                        self.probe_ids
                            .insert(path.to_string(), self.probes.len() - 1);
                        self.probes.len() - 1
                    }
                };
                self.probe_of_leaf[leaf] = Some(slot);
                slot
            }
        };
        let (w, b) = (row / 64, 1u64 << (row % 64));
        let (needles, p) = &mut self.probes[slot];
        if p.done[w] & b == 0 {
            p.done[w] |= b;
            let Some(text) = self
                .raw_col
                .as_ref()
                .filter(|a| a.is_valid(row))
                .map(|a| a.value(row).as_bytes())
            else {
                return false;
            };
            if keys_in_order(text, needles) {
                p.hit[w] |= b;
            }
        }
        p.hit[w] & b != 0
    }

    fn row_matches(&mut self, i: usize, arr: Option<&ArrayRef>, r: usize) -> bool {
        let leaf = &self.leaves[i];
        if let Matcher::FieldRef { other, .. } = &leaf.matcher {
            let theirs = self.values(other, r);
            let mine: Vec<serde_json::Value> = match &leaf.field {
                FieldRef::Raw(path) => {
                    if !self.path_may_exist(i, path, r) {
                        return false;
                    }
                    let Some(j) = self.raw(r) else { return false };
                    let mut found = Vec::new();
                    resolve_path(j, path, &mut found);
                    found.into_iter().cloned().collect()
                }
                f => self
                    .values(f, r)
                    .iter()
                    .map(|v| serde_json::Value::String(v.text()))
                    .collect(),
            };
            let refs: Vec<&serde_json::Value> = mine.iter().collect();
            return match_json(&leaf.matcher, &refs, Some(&theirs));
        }
        match &leaf.field {
            FieldRef::Raw(path) => {
                let m = &leaf.matcher;
                if !self.path_may_exist(i, path, r) {
                    return matches!(m, Matcher::Null | Matcher::Exists(false));
                }
                match self.raw(r) {
                    Some(j) => {
                        let mut found = Vec::new();
                        resolve_path(j, path, &mut found);
                        match_json(m, &found, None)
                    }
                    None => matches!(m, Matcher::Null | Matcher::Exists(false)),
                }
            }
            f => match arr {
                Some(a)
                    if matches!(leaf.matcher, Matcher::Cidr(_))
                        && a.data_type() == &DataType::Utf8 =>
                {
                    let Matcher::Cidr(net) = &leaf.matcher else {
                        return false;
                    };
                    let slot = match self.ip_of_leaf[i] {
                        Some(slot) => slot,
                        None => {
                            let n = self.ip_slots.len();
                            let slot = *self.ip_slots.entry(f.clone()).or_insert(n);
                            if slot == self.ips.len() {
                                self.ips.push(vec![None; self.rows]);
                            }
                            self.ip_of_leaf[i] = Some(slot);
                            slot
                        }
                    };
                    let cache = &mut self.ips[slot];
                    let ip = *cache[r].get_or_insert_with(|| {
                        let s = a.as_string::<i32>();
                        s.is_valid(r).then(|| parse_ip(s.value(r))).flatten()
                    });
                    ip.is_some_and(|ip| net.contains(&ip))
                }
                Some(a) => array_row_matches(a, r, &leaf.matcher),
                None => matches!(leaf.matcher, Matcher::Null | Matcher::Exists(false)),
            },
        }
    }

    fn column_array(&mut self, f: &FieldRef) -> Option<ArrayRef> {
        match f {
            FieldRef::Column(c) => self.batch.column_by_name(c).cloned(),
            FieldRef::Coalesce(cols) => {
                if let Some(a) = self.coalesced.get(cols) {
                    return Some(a.clone());
                }
                let arrays: Vec<ArrayRef> = cols
                    .iter()
                    .filter_map(|c| self.batch.column_by_name(c).cloned())
                    .collect();
                let strs: Vec<&StringArray> = arrays
                    .iter()
                    .filter_map(|a| a.as_string_opt::<i32>())
                    .collect();
                let out: StringArray = (0..self.rows)
                    .map(|r| strs.iter().find(|a| a.is_valid(r)).map(|a| a.value(r)))
                    .collect();
                let out: ArrayRef = Arc::new(out);
                self.coalesced.insert(cols.clone(), out.clone());
                Some(out)
            }
            FieldRef::Raw(_) => None,
        }
    }

    fn column_leaf(&mut self, i: usize) -> BooleanBuffer {
        let leaf = self.leaves[i].clone();
        let Some(arr) = self.column_array(&leaf.field) else {
            // a column this batch does not have: only "missing" tests hold
            return match leaf.matcher {
                Matcher::Null | Matcher::Exists(false) => self.all(),
                _ => self.none(),
            };
        };
        let key = match &leaf.field {
            FieldRef::Column(c) => Some(c.clone()),
            FieldRef::Coalesce(cols) => Some(format!("coalesce:{}", cols.join(","))),
            FieldRef::Raw(_) => None,
        };
        self.array_leaf(&arr, &leaf.matcher, key)
    }

    fn array_leaf(
        &mut self,
        arr: &ArrayRef,
        m: &Matcher,
        index_key: Option<String>,
    ) -> BooleanBuffer {
        match m {
            Matcher::Never => return self.none(),
            Matcher::Null | Matcher::Exists(false) => return mask(&is_null(arr).expect("is_null")),
            Matcher::Exists(true) => return mask(&is_not_null(arr).expect("is_not_null")),
            _ => {}
        }
        match arr.data_type() {
            DataType::Utf8 => self.utf8_leaf(arr.as_string::<i32>(), m, index_key),
            DataType::List(_) => {
                let list = arr.as_list::<i32>();
                if let (Matcher::StrEq { value, cased }, Some(col)) = (m, &index_key)
                    && let Some(strs) = list.values().as_string_opt::<i32>()
                {
                    let idx = self
                        .indexes
                        .entry((col.clone(), *cased))
                        .or_insert_with(|| build_list_index(list.value_offsets(), strs, *cased));
                    return rows_bitmap(list.len(), idx.get(value.as_str()));
                }
                let values = list.values().clone();
                let inner = self.array_leaf(&values, m, None);
                let mut b = BooleanBufferBuilder::new(list.len());
                let offs = list.value_offsets();
                for r in 0..list.len() {
                    let (s, e) = (offs[r] as usize, offs[r + 1] as usize);
                    b.append(list.is_valid(r) && (s..e).any(|k| inner.value(k)));
                }
                b.finish()
            }
            DataType::Boolean => match m {
                Matcher::Bool(v) => {
                    let a = arr.as_boolean();
                    let r = cmp::eq(a, &BooleanArray::new_scalar(*v)).expect("bool eq");
                    mask(&r)
                }
                _ => self.none(),
            },
            DataType::Timestamp(TimeUnit::Microsecond, _) => match m {
                Matcher::Time { part, op, value } => {
                    let a = arr
                        .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
                    // the part of every row, computed once per column and part
                    let parts = self
                        .time_parts
                        .entry((index_key.clone().unwrap_or_default(), *part))
                        .or_insert_with(|| {
                            (0..a.len()).map(|r| time_part(a.value(r), *part)).collect()
                        });
                    let mut b = BooleanBufferBuilder::new(a.len());
                    for (r, p) in parts.iter().enumerate() {
                        b.append(a.is_valid(r) && op.holds(*p as f64, *value as f64));
                    }
                    b.finish()
                }
                _ => self.none(),
            },
            t if t.is_numeric() => match m {
                Matcher::Num { op, value } => {
                    let f = cast(arr, &DataType::Float64).expect("numeric cast");
                    let s = Float64Array::new_scalar(*value);
                    let r = match op {
                        CmpOp::Eq => cmp::eq(&f, &s),
                        CmpOp::Neq => cmp::neq(&f, &s),
                        CmpOp::Lt => cmp::lt(&f, &s),
                        CmpOp::Lte => cmp::lt_eq(&f, &s),
                        CmpOp::Gt => cmp::gt(&f, &s),
                        CmpOp::Gte => cmp::gt_eq(&f, &s),
                    };
                    mask(&r.expect("numeric compare"))
                }
                Matcher::Like { .. } | Matcher::StrEq { .. } | Matcher::Regex(_) => {
                    let s = cast(arr, &DataType::Utf8).expect("cast to text");
                    self.utf8_leaf(s.as_string::<i32>(), m, None)
                }
                _ => self.none(),
            },
            _ => self.none(),
        }
    }

    /// How many equality leaves of the rule set read this column (index key) and case.
    fn eq_leaves(&mut self, key: &str, cased: bool) -> usize {
        if let Some(&n) = self.eq_counts.get(&(key.to_string(), cased)) {
            return n;
        }
        let n = count_eq_leaves(self.leaves, key, cased);
        self.eq_counts.insert((key.to_string(), cased), n);
        n
    }

    fn utf8_leaf(
        &mut self,
        a: &StringArray,
        m: &Matcher,
        index_key: Option<String>,
    ) -> BooleanBuffer {
        match m {
            Matcher::StrEq { value, cased } => {
                // a value index pays off when many leaves look values up in one column;
                // a few equalities are cheaper as scans
                if let Some(col) = index_key
                    && self.eq_leaves(&col, *cased) >= INDEX_MIN_LEAVES
                {
                    let idx = self
                        .indexes
                        .entry((col, *cased))
                        .or_insert_with(|| build_index(a, *cased));
                    return rows_bitmap(a.len(), idx.get(value.as_str()));
                }
                let s = StringArray::new_scalar(escape_like(value));
                let r = if *cased {
                    comparison::like(a, &s)
                } else {
                    comparison::ilike(a, &s)
                };
                mask(&r.expect("like"))
            }
            Matcher::Like { pattern, cased } => {
                if pattern.any {
                    return mask(&is_not_null(a).expect("is_not_null"));
                }
                let s = StringArray::new_scalar(pattern.like.as_str());
                let r = if *cased {
                    comparison::like(a, &s)
                } else {
                    comparison::ilike(a, &s)
                };
                mask(&r.expect("like"))
            }
            _ => {
                let mut b = BooleanBufferBuilder::new(a.len());
                for r in 0..a.len() {
                    b.append(a.is_valid(r) && match_str(m, a.value(r)));
                }
                b.finish()
            }
        }
    }

    /// Parsed raw event of a row (cached; `None` when it is not JSON).
    fn raw(&mut self, row: usize) -> Option<&serde_json::Value> {
        if self.raw_json[row].is_none() {
            let text = self
                .raw_col
                .as_ref()
                .filter(|a| a.is_valid(row))
                .map(|a| a.value(row));
            let v = text.and_then(|t| match &self.raw_paths {
                Some(paths) => {
                    use serde::de::DeserializeSeed;
                    let mut de = serde_json::Deserializer::from_str(t);
                    Pruned { paths }
                        .deserialize(&mut de)
                        .ok()
                        .filter(|_| de.end().is_ok())
                }
                None => serde_json::from_str(t).ok(),
            });
            self.raw_json[row] = Some(v);
        }
        self.raw_json[row].as_ref().and_then(|v| v.as_ref())
    }

    /// Values of a field in one row (a raw path may yield several).
    pub fn values(&mut self, f: &FieldRef, row: usize) -> Vec<FieldValue> {
        match f {
            FieldRef::Raw(path) => {
                let Some(j) = self.raw(row) else {
                    return vec![];
                };
                let mut found = Vec::new();
                resolve_path(j, path, &mut found);
                found.into_iter().filter_map(json_value).collect()
            }
            _ => {
                let Some(arr) = self.column_array(f) else {
                    return vec![];
                };
                array_values(&arr, row)
            }
        }
    }

    /// The first value of a field as text (group-by keys, explanations).
    pub fn text(&mut self, f: &FieldRef, row: usize) -> Option<String> {
        let v = self.values(f, row);
        match v.len() {
            0 => None,
            1 => Some(v[0].text()),
            _ => Some(v.iter().map(FieldValue::text).collect::<Vec<_>>().join(",")),
        }
    }
}

fn array_values(arr: &ArrayRef, row: usize) -> Vec<FieldValue> {
    if arr.is_null(row) {
        return vec![];
    }
    match arr.data_type() {
        DataType::Utf8 => vec![FieldValue::Str(
            arr.as_string::<i32>().value(row).to_string(),
        )],
        DataType::Boolean => vec![FieldValue::Bool(arr.as_boolean().value(row))],
        DataType::List(_) => {
            let l = arr.as_list::<i32>().value(row);
            (0..l.len()).flat_map(|i| array_values(&l, i)).collect()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let a = arr.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            vec![FieldValue::Str(crate::normalize::format_time_us(
                a.value(row),
            ))]
        }
        t if t.is_numeric() => {
            let f = cast(&arr.slice(row, 1), &DataType::Float64).expect("numeric cast");
            vec![FieldValue::Num(
                f.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                    .value(0),
            )]
        }
        _ => vec![],
    }
}

/// A matcher over one row of a column (what `array_leaf` computes for the whole column).
fn array_row_matches(arr: &ArrayRef, row: usize, m: &Matcher) -> bool {
    if arr.is_null(row) {
        return matches!(m, Matcher::Null | Matcher::Exists(false));
    }
    match m {
        Matcher::Null | Matcher::Exists(false) | Matcher::Never => return false,
        Matcher::Exists(true) => return true,
        _ => {}
    }
    match arr.data_type() {
        DataType::Utf8 => match_str(m, arr.as_string::<i32>().value(row)),
        DataType::List(_) => {
            let list = arr.as_list::<i32>();
            let (s, e) = (
                list.value_offsets()[row] as usize,
                list.value_offsets()[row + 1] as usize,
            );
            (s..e).any(|k| array_row_matches(list.values(), k, m))
        }
        DataType::Boolean => matches!(m, Matcher::Bool(b) if arr.as_boolean().value(row) == *b),
        DataType::Timestamp(TimeUnit::Microsecond, _) => match m {
            Matcher::Time { part, op, value } => {
                let us = arr
                    .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                    .value(row);
                op.holds(time_part(us, *part) as f64, *value as f64)
            }
            _ => false,
        },
        t if t.is_numeric() => {
            let Some(FieldValue::Num(x)) = array_values(arr, row).into_iter().next() else {
                return false;
            };
            match m {
                Matcher::Num { op, value } => op.holds(x, *value),
                Matcher::Like { .. } | Matcher::StrEq { .. } | Matcher::Regex(_) => {
                    match_str(m, &FieldValue::Num(x).text())
                }
                _ => false,
            }
        }
        _ => false,
    }
}

fn json_value(v: &serde_json::Value) -> Option<FieldValue> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::String(s) => FieldValue::Str(s.clone()),
        J::Number(n) => FieldValue::Num(n.as_f64()?),
        J::Bool(b) => FieldValue::Bool(*b),
        other => FieldValue::Other(other.to_string()),
    })
}

fn time_part(us: i64, part: TimePart) -> i64 {
    match part {
        TimePart::Minute => return (us.div_euclid(60_000_000)).rem_euclid(60),
        TimePart::Hour => return (us.div_euclid(3_600_000_000)).rem_euclid(24),
        _ => {}
    }
    let t = chrono::Utc
        .timestamp_micros(us)
        .single()
        .unwrap_or_default();
    match part {
        TimePart::Minute => t.minute() as i64,
        TimePart::Hour => t.hour() as i64,
        TimePart::Day => t.day() as i64,
        TimePart::Week => t.iso_week().week() as i64,
        TimePart::Month => t.month() as i64,
        TimePart::Year => t.year() as i64,
    }
}

fn escape_like(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// A boolean result with nulls as false.
fn mask(a: &BooleanArray) -> BooleanBuffer {
    match a.nulls() {
        Some(n) => a.values() & n.inner(),
        None => a.values().clone(),
    }
}

/// A bitmap of `len` rows with the given rows set (a value index lookup's result).
fn rows_bitmap(len: usize, rows: Option<&Vec<u32>>) -> BooleanBuffer {
    let mut b = BooleanBufferBuilder::new(len);
    b.append_n(len, false);
    for &r in rows.into_iter().flatten() {
        b.set_bit(r as usize, true);
    }
    b.finish()
}

/// Value → rows of a column in one batch (hashed with foldhash: built over every row).
type ValueIndex = HashMap<Box<str>, Vec<u32>, foldhash::fast::RandomState>;

fn build_index(a: &StringArray, cased: bool) -> ValueIndex {
    let mut idx: ValueIndex = HashMap::default();
    for r in 0..a.len() {
        if a.is_null(r) {
            continue;
        }
        let v = a.value(r);
        let lowered;
        let key: &str = if cased || !v.chars().any(char::is_uppercase) {
            v
        } else {
            lowered = v.to_lowercase();
            &lowered
        };
        match idx.get_mut(key) {
            Some(rows) => rows.push(r as u32),
            None => {
                idx.insert(key.into(), vec![r as u32]);
            }
        }
    }
    idx
}

/// Whether the segments of a path can all be found, in order, as object keys of `text`:
/// a key's children come after it, and the leftmost match of each segment after the
/// previous one finds such a chain whenever one exists.
fn keys_in_order(text: &[u8], segments: &[memchr::memmem::Finder<'_>]) -> bool {
    let mut at = 0;
    segments
        .iter()
        .enumerate()
        .all(|(k, n)| match find_key_segment(text, at, n, k == 0) {
            Some(end) => {
                at = end;
                true
            }
            None => false,
        })
}

/// Where the first occurrence, at or after `from`, of `seg` as (part of) an object key
/// ends: preceded by `"` (or by `.` inside a dotted key such as
/// `authorization.k8s.io/decision`, except for the path's first segment, which starts a
/// top-level key), and followed by `.` (more of a dotted key) or by `"` and, after optional
/// whitespace, `:`. A string value is never followed by `:`, and quotes inside strings are
/// escaped, so every key segment on a resolvable path is found.
fn find_key_segment(
    text: &[u8],
    from: usize,
    seg: &memchr::memmem::Finder<'_>,
    first: bool,
) -> Option<usize> {
    let len = seg.needle().len();
    let mut at = from;
    while let Some(k) = seg.find(&text[at..]) {
        let start = at + k;
        let end = start + len;
        at = start + 1;
        let before = start.checked_sub(1).map(|i| text[i]);
        if !(before == Some(b'"') || (!first && before == Some(b'.'))) {
            continue;
        }
        match text.get(end) {
            Some(b'.') => return Some(end),
            Some(b'"') => {
                let rest = &text[end + 1..];
                let colon = rest.iter().find(|b| !b.is_ascii_whitespace());
                if colon == Some(&b':') {
                    return Some(end);
                }
            }
            _ => {}
        }
    }
    None
}

/// Value → rows of a list column (a row once per value).
fn build_list_index(offsets: &[i32], values: &StringArray, cased: bool) -> ValueIndex {
    let mut idx: ValueIndex = HashMap::default();
    for r in 0..offsets.len().saturating_sub(1) {
        for k in offsets[r] as usize..offsets[r + 1] as usize {
            if values.is_null(k) {
                continue;
            }
            let v = values.value(k);
            let key = if cased {
                v.to_string()
            } else {
                v.to_lowercase()
            };
            let rows = idx.entry(key.into()).or_default();
            if rows.last() != Some(&(r as u32)) {
                rows.push(r as u32);
            }
        }
    }
    idx
}

/// Deserializes a JSON value keeping only what [`resolve_path`] can reach along `paths`:
/// an object keeps a key `K` when a path is `K` (the whole value is kept) or starts with
/// `K.` (the value is kept pruned to the rest of those paths); arrays keep their elements,
/// pruned alike. Everything else is skipped without being built, which is most of an
/// audit event for the few paths rules read.
struct Pruned<'a> {
    paths: &'a [&'a str],
}

impl<'de> serde::de::DeserializeSeed<'de> for Pruned<'_> {
    type Value = serde_json::Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::de::Visitor<'de> for Pruned<'_> {
    type Value = serde_json::Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v)
            .map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(serde_json::Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(serde_json::Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Pruned { paths: self.paths })? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        let mut rest: Vec<&str> = Vec::new();
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            rest.clear();
            let mut whole = false;
            for p in self.paths {
                if *p == k {
                    whole = true;
                    break;
                }
                if p.len() > k.len() && p.starts_with(k.as_ref()) && p.as_bytes()[k.len()] == b'.' {
                    rest.push(&p[k.len() + 1..]);
                }
            }
            if whole {
                let v: serde_json::Value = map.next_value()?;
                out.insert(k.into_owned(), v);
            } else if !rest.is_empty() {
                let v = map.next_value_seed(Pruned { paths: &rest })?;
                out.insert(k.into_owned(), v);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(serde_json::Value::Object(out))
    }
}

/// Dotted path lookup; arrays on the way are searched, and a key that contains dots is
/// found by longest match (`annotations.authorization.k8s.io/decision`).
pub fn resolve_path<'v>(
    v: &'v serde_json::Value,
    path: &str,
    out: &mut Vec<&'v serde_json::Value>,
) {
    use serde_json::Value as J;
    if path.is_empty() {
        match v {
            J::Array(items) => out.extend(items.iter()),
            other => out.push(other),
        }
        return;
    }
    match v {
        J::Array(items) => items.iter().for_each(|i| resolve_path(i, path, out)),
        J::Object(map) => {
            let mut end = path.len();
            loop {
                if let Some(child) = map.get(&path[..end]) {
                    let rest = if end == path.len() {
                        ""
                    } else {
                        &path[end + 1..]
                    };
                    resolve_path(child, rest, out);
                    return;
                }
                match path[..end].rfind('.') {
                    Some(i) => end = i,
                    None => return,
                }
            }
        }
        _ => {}
    }
}

/// A matcher over the values a raw path yielded.
fn match_json(m: &Matcher, found: &[&serde_json::Value], other: Option<&[FieldValue]>) -> bool {
    use serde_json::Value as J;
    match m {
        Matcher::Null => found.is_empty() || found.iter().any(|v| v.is_null()),
        Matcher::Exists(b) => found.is_empty() != *b,
        Matcher::Never => false,
        Matcher::FieldRef { mode, cased, .. } => {
            let Some(other) = other else { return false };
            found.iter().filter_map(|v| json_value(v)).any(|mine| {
                other.iter().any(|o| {
                    let (a, b) = if *cased {
                        (mine.text(), o.text())
                    } else {
                        (mine.text().to_lowercase(), o.text().to_lowercase())
                    };
                    match mode {
                        RefMode::Eq => a == b,
                        RefMode::Contains => a.contains(&b),
                        RefMode::StartsWith => a.starts_with(&b),
                        RefMode::EndsWith => a.ends_with(&b),
                    }
                })
            })
        }
        _ => found.iter().any(|v| match v {
            J::String(s) => match_str(m, s),
            J::Number(n) => match m {
                Matcher::Num { op, value } => n.as_f64().is_some_and(|x| op.holds(x, *value)),
                _ => match_str(m, &n.to_string()),
            },
            J::Bool(b) => match m {
                Matcher::Bool(x) => b == x,
                _ => match_str(m, if *b { "true" } else { "false" }),
            },
            J::Null => false,
            // `field: '*'` on an object or list: any value
            J::Object(_) | J::Array(_) => matches!(m, Matcher::Like { pattern, .. } if pattern.any),
        }),
    }
}

/// An address with or without a port (`10.0.0.1:8200`, `[2001:db8::1]:443`).
fn parse_ip(s: &str) -> Option<IpAddr> {
    crate::normalize::strip_port(s)
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .ok()
}

/// A matcher over one string value.
fn match_str(m: &Matcher, s: &str) -> bool {
    match m {
        Matcher::StrEq { value, cased } => {
            if *cased {
                s == value
            } else if s.is_ascii() {
                s.eq_ignore_ascii_case(value)
            } else {
                s.to_lowercase() == *value
            }
        }
        Matcher::Like { pattern, cased } => {
            // lowercase only when it changes something (most audit values are lowercase)
            let folded = if s.is_ascii() {
                s.bytes().any(|b| b.is_ascii_uppercase())
            } else {
                true
            };
            if *cased || !folded {
                pattern.matches(s)
            } else {
                pattern.matches(&s.to_lowercase())
            }
        }
        Matcher::Regex(r) => r.is_match(s),
        Matcher::Cidr(n) => parse_ip(s).is_some_and(|ip| n.contains(&ip)),
        Matcher::Num { op, value } => s.trim().parse::<f64>().is_ok_and(|x| op.holds(x, *value)),
        Matcher::Bool(b) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let (w, _) = Wildcard::parse("/bin/*sh", false, false);
        let w = w.unwrap();
        assert!(w.matches("/bin/bash"));
        assert!(!w.matches("/usr/bin/bash"));
        assert_eq!(w.like, "/bin/%sh");
        let (w, plain) = Wildcard::parse(r"a\*b", false, false);
        assert!(w.is_none());
        assert_eq!(plain, "a*b");
        let (w, _) = Wildcard::parse("50%_?", true, false);
        let w = w.unwrap();
        assert_eq!(w.like, r"%50\%\__");
        assert!(w.matches("x50%_z"));
        let (w, _) = Wildcard::parse("*", false, false);
        assert!(w.unwrap().any);
        let (w, _) = Wildcard::parse("a*b*c", false, false);
        assert!(w.unwrap().matches("axxbyybc"));
    }

    #[test]
    fn base64_offsets_find_the_value() {
        let v = "kubectl";
        for prefix in ["", "x", "xy", "xyz"] {
            let enc = base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{v} run"));
            assert!(
                base64_offsets(v).iter().any(|o| enc.contains(o.as_str())),
                "{prefix}: {enc} {:?}",
                base64_offsets(v)
            );
        }
    }

    /// A raw event parsed keeping only the rules' paths resolves those paths exactly as
    /// the whole event does (arrays on the way, dotted keys, escaped keys, scalars).
    #[test]
    fn pruned_parse_resolves_its_paths_like_the_whole_event() {
        use serde::de::DeserializeSeed;
        let text = r#"{"kind":"Event","user":{"username":"a\u0062c","groups":["g1","g2"],"extra":{"x":[1,2]}},
            "annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"r"},
            "requestObject":{"spec":{"containers":[{"name":"c1","securityContext":{"privileged":true}},
            {"name":"c2","securityContext":{"privileged":false},"ports":[{"hostPort":80}]}],"hostNetwork":true}},
            "responseStatus":{"code":403,"ratio":0.5,"none":null},"a\"b":{"c":1}}"#;
        let full: serde_json::Value = serde_json::from_str(text).unwrap();
        let paths = [
            "user.username",
            "user.groups",
            "annotations.authorization.k8s.io/decision",
            "requestObject.spec.containers.securityContext.privileged",
            "requestObject.spec.containers.ports.hostPort",
            "requestObject.spec.hostNetwork",
            "responseStatus",
            "responseStatus.none",
            "a\"b.c",
            "missing.path",
        ];
        let refs: Vec<&str> = paths.to_vec();
        let mut de = serde_json::Deserializer::from_str(text);
        let pruned = Pruned { paths: &refs }.deserialize(&mut de).unwrap();
        de.end().unwrap();
        for p in paths {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            resolve_path(&full, p, &mut a);
            resolve_path(&pruned, p, &mut b);
            assert_eq!(a, b, "{p}");
        }
        // and it is smaller: unrelated parts were not built
        assert!(pruned.get("kind").is_none() && pruned["user"].get("extra").is_none());
    }

    #[test]
    fn paths_search_arrays_and_dotted_keys() {
        let v: serde_json::Value = serde_json::json!({
            "annotations": {"authorization.k8s.io/decision": "allow"},
            "requestObject": {"spec": {"containers": [
                {"securityContext": {"privileged": false}},
                {"securityContext": {"privileged": true}}]}}
        });
        let mut out = vec![];
        resolve_path(&v, "annotations.authorization.k8s.io/decision", &mut out);
        assert_eq!(out, vec![&serde_json::json!("allow")]);
        out.clear();
        resolve_path(
            &v,
            "requestObject.spec.containers.securityContext.privileged",
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(match_json(&Matcher::Bool(true), &out, None));
    }

    #[test]
    fn the_key_probe_never_misses_a_resolvable_path() {
        let docs = [
            r#"{"type":"response","auth":{"token_ttl":3600},"response":{"mount_type":"kv"}}"#,
            r#"{"type":"response","response":{"auth":{"token_ttl":2764801,"policies":["root"]}}}"#,
            r#"{ "annotations" : { "authorization.k8s.io/decision" : "forbid" } }"#,
            r#"{"responseStatus":{"code":403},"response.auth":{"token_ttl":1}}"#,
            r#"{"requestObject":{"spec":{"containers":[{"name":"a"},{"securityContext":{"privileged":true}}]}}}"#,
            r#"{"msg":"\"response\": {\"auth\": 1}","x":{"response":{"auth":{"token_ttl":5}}}}"#,
            r#"{"a.b":{"c":1},"a":{"b.c":2}}"#,
        ];
        let paths = [
            "response.auth.token_ttl",
            "response.auth.policies",
            "auth.token_ttl",
            "annotations.authorization.k8s.io/decision",
            "responseStatus.code",
            "requestObject.spec.containers.securityContext.privileged",
            "requestObject.spec.containers.name",
            "a.b.c",
            "x.response.auth.token_ttl",
        ];
        let mut skipped = 0;
        for d in docs {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            for p in paths {
                let mut found = vec![];
                resolve_path(&v, p, &mut found);
                let needles: Vec<_> = p
                    .split('.')
                    .map(|s| memchr::memmem::Finder::new(s.as_bytes()))
                    .collect();
                let probe = keys_in_order(d.as_bytes(), &needles);
                assert!(probe || found.is_empty(), "{p} in {d}");
                skipped += usize::from(!probe);
            }
        }
        // and it does skip: `response.auth.*` where only `auth` and the value "response" exist
        let first = docs[0].as_bytes();
        let n: Vec<_> = ["response", "auth", "token_ttl"]
            .iter()
            .map(|s| memchr::memmem::Finder::new(s.as_bytes()))
            .collect();
        assert!(!keys_in_order(first, &n));
        assert!(skipped > 30, "{skipped}");
    }

    #[test]
    fn cidr_and_numbers_on_text() {
        let n: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(match_str(&Matcher::Cidr(n), "10.1.2.3:8200"));
        assert!(!match_str(&Matcher::Cidr(n), "192.168.0.1"));
        assert!(match_str(
            &Matcher::Num {
                op: CmpOp::Gt,
                value: 100.0
            },
            "3600"
        ));
    }
}
