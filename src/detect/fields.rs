//! Field resolution for Sigma rules: a rule's field name becomes an `access_events` column,
//! a coalesce of columns, or a path into the redacted raw event. The mapping lives in
//! `rules/fields.yml` (compiled in as the default, overridable with a file).

use std::collections::HashMap;
use std::path::Path;

use datafusion::arrow::datatypes::DataType;

use super::yaml::{self, Node};
use crate::normalize::schema;

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldRef {
    Column(String),
    /// First non-null of these columns.
    Coalesce(Vec<String>),
    /// A dotted path into the redacted raw event.
    Raw(String),
}

/// How a field name was resolved (for `rules check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Named a column directly.
    Column,
    /// Found in the mapping file.
    Mapped,
    /// A path of the product's audit format that is read from the raw event.
    KnownRaw,
    /// Neither mapped nor a known path: read from the raw event, may never exist.
    UnknownRaw,
}

pub const DEFAULT_MAPPING: &str = include_str!("../../rules/fields.yml");

#[derive(Debug, Clone, Default)]
pub struct FieldMap {
    products: HashMap<String, HashMap<String, FieldRef>>,
}

/// Top-level keys of each product's audit records (for `rules check`).
const K8S_TOP: &[&str] = &[
    "kind",
    "apiVersion",
    "level",
    "auditID",
    "stage",
    "requestURI",
    "verb",
    "user",
    "impersonatedUser",
    "sourceIPs",
    "userAgent",
    "objectRef",
    "responseStatus",
    "requestObject",
    "responseObject",
    "requestReceivedTimestamp",
    "stageTimestamp",
    "annotations",
    "metadata",
    "timestamp",
];
const VAULT_TOP: &[&str] = &[
    "type",
    "time",
    "auth",
    "request",
    "response",
    "error",
    "forwarded",
    "forwarded_from",
];

impl FieldMap {
    pub fn builtin() -> FieldMap {
        Self::parse(DEFAULT_MAPPING).expect("rules/fields.yml is valid")
    }

    pub fn load(path: &Path) -> Result<FieldMap, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<FieldMap, String> {
        let docs = yaml::load_all(text).map_err(|e| format!("line {}: {}", e.line, e.message))?;
        let Some(root) = docs.first() else {
            return Ok(FieldMap::default());
        };
        let columns = column_types();
        let mut products: HashMap<String, HashMap<String, FieldRef>> = HashMap::new();
        let mut aliases = Vec::new();
        for (k, v) in root.as_map().unwrap_or_default() {
            let product = k.scalar_text().unwrap_or_default();
            if let Some(target) = v.as_str() {
                aliases.push((product, target.to_string()));
                continue;
            }
            let mut m = HashMap::new();
            for (f, target) in v.as_map().unwrap_or_default() {
                let field = f.scalar_text().unwrap_or_default();
                let target = target.as_str().ok_or_else(|| {
                    format!("line {}: mapping of `{field}` must be a string", f.line)
                })?;
                m.insert(field.clone(), parse_target(target, &columns, f)?);
            }
            products.insert(product, m);
        }
        for (alias, target) in aliases {
            let m = products
                .get(&target)
                .cloned()
                .ok_or_else(|| format!("`{alias}: {target}` names an unknown product"))?;
            products.insert(alias, m);
        }
        Ok(FieldMap { products })
    }

    /// Resolves a rule's field for a logsource product.
    pub fn resolve(&self, product: Option<&str>, field: &str) -> (FieldRef, Resolution) {
        if let Some(m) = product.and_then(|p| self.products.get(p))
            && let Some(r) = m.get(field)
        {
            return (r.clone(), Resolution::Mapped);
        }
        if schema::access_events().field_with_name(field).is_ok() {
            return (FieldRef::Column(field.to_string()), Resolution::Column);
        }
        let top = field.split('.').next().unwrap_or_default();
        let known = match product {
            Some("kubernetes") => K8S_TOP.contains(&top),
            Some("vault" | "openbao") => VAULT_TOP.contains(&top),
            _ => false,
        };
        let res = if known {
            Resolution::KnownRaw
        } else {
            Resolution::UnknownRaw
        };
        (FieldRef::Raw(field.to_string()), res)
    }
}

fn parse_target(
    target: &str,
    columns: &HashMap<String, DataType>,
    at: &Node,
) -> Result<FieldRef, String> {
    let col = |c: &str| {
        if columns.contains_key(c) {
            Ok(c.to_string())
        } else {
            Err(format!(
                "line {}: `{c}` is not an access_events column",
                at.line
            ))
        }
    };
    if let Some(p) = target.strip_prefix("raw:") {
        return Ok(FieldRef::Raw(p.to_string()));
    }
    if let Some(list) = target.strip_prefix("coalesce:") {
        return Ok(FieldRef::Coalesce(
            list.split(',')
                .map(|c| col(c.trim()))
                .collect::<Result<_, _>>()?,
        ));
    }
    Ok(FieldRef::Column(col(target)?))
}

/// Column name → Arrow type of the `access_events` table.
pub fn column_types() -> HashMap<String, DataType> {
    schema::access_events()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_mapping_resolves() {
        let m = FieldMap::builtin();
        assert_eq!(
            m.resolve(Some("kubernetes"), "objectRef.resource").0,
            FieldRef::Column("resource_type".into())
        );
        assert_eq!(
            m.resolve(Some("openbao"), "request.path").0,
            FieldRef::Column("resource_path".into())
        );
        assert_eq!(
            m.resolve(Some("kubernetes"), "user.username").0,
            FieldRef::Coalesce(vec!["impersonator".into(), "actor".into()])
        );
        assert_eq!(m.resolve(None, "actor").1, Resolution::Column);
        assert_eq!(
            m.resolve(Some("kubernetes"), "requestObject.spec.hostNetwork")
                .1,
            Resolution::KnownRaw
        );
        assert_eq!(
            m.resolve(Some("kubernetes"), "CommandLine").1,
            Resolution::UnknownRaw
        );
    }

    #[test]
    fn bad_column_is_reported() {
        let e = FieldMap::parse("kubernetes:\n  verb: no_such_column\n").unwrap_err();
        assert!(e.contains("no_such_column"), "{e}");
    }
}
