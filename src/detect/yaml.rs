//! A small YAML tree with line numbers, loaded with `saphyr`, so rule diagnostics can say
//! `file:line`. Rules and detector files are converted into this tree first and read from
//! it; nothing else in the crate depends on the YAML library.

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

/// One YAML node and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys keep their own line (for "unknown field at line N").
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Loads every document of a YAML stream (`---` separated).
pub fn load_all(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| SyntaxError {
        line: e.marker().line(),
        message: e.info().to_string(),
    })?;
    Ok(docs.iter().map(convert).collect())
}

fn convert(n: &MarkedYamlOwned) -> Node {
    let line = n.span.start.line();
    let value = match &n.data {
        YamlDataOwned::Value(s) => scalar(s),
        YamlDataOwned::Representation(s, _, _) => Value::Str(s.clone()),
        YamlDataOwned::Sequence(items) => Value::Seq(items.iter().map(convert).collect()),
        YamlDataOwned::Mapping(m) => {
            Value::Map(m.iter().map(|(k, v)| (convert(k), convert(v))).collect())
        }
        YamlDataOwned::Tagged(_, inner) => return convert(inner),
        YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => Value::Null,
    };
    Node { line, value }
}

fn scalar(s: &ScalarOwned) -> Value {
    match s {
        ScalarOwned::Null => Value::Null,
        ScalarOwned::Boolean(b) => Value::Bool(*b),
        ScalarOwned::Integer(i) => Value::Int(*i),
        ScalarOwned::FloatingPoint(f) => Value::Float(f.into_inner()),
        ScalarOwned::String(s) => Value::Str(s.clone()),
    }
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(m) => m
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A scalar as text (`5m`, `10`, `true`), for places where YAML typing is incidental.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// A string or a list of strings.
    pub fn str_list(&self) -> Option<Vec<String>> {
        match &self.value {
            Value::Seq(s) => s.iter().map(|n| n.scalar_text()).collect(),
            _ => self.scalar_text().map(|s| vec![s]),
        }
    }

    /// The node as JSON (test events are written as YAML mappings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(s) => J::Array(s.iter().map(Node::to_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_types() {
        let docs = load_all("a: 1\nb:\n  - 'x'\n  - 403\n---\nc: null\n").unwrap();
        assert_eq!(docs.len(), 2);
        let b = docs[0].get("b").unwrap();
        assert_eq!(b.as_seq().unwrap()[0].value, Value::Str("x".into()));
        assert_eq!(b.as_seq().unwrap()[1].value, Value::Int(403));
        assert_eq!(b.as_seq().unwrap()[1].line, 4);
        assert_eq!(docs[1].get("c").unwrap().value, Value::Null);
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let d = &load_all("code: '403'\n").unwrap()[0];
        assert_eq!(d.get("code").unwrap().value, Value::Str("403".into()));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = load_all("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
    }
}
