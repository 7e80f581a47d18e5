//! JSON Schemas written in workspace files: checked once at load time, compiled for use.

use jsonschema::{Draft, Validator};
use serde_json::Value;

/// Checks that `schema` is a valid Draft 2020-12 JSON Schema that can be compiled
/// (every `$ref` resolvable without network access).
pub fn check_schema(schema: &Value) -> Result<(), String> {
    compile(schema).map(|_| ())
}

/// Compiles `schema` for validation (Draft 2020-12 unless it declares its own `$schema`).
pub fn compile(schema: &Value) -> Result<Validator, String> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err("a JSON Schema must be an object".to_string());
    }
    if let Err(err) = jsonschema::draft202012::meta::validate(schema) {
        let at = err.instance_path().to_string();
        return Err(if at.is_empty() {
            format!("invalid JSON Schema: {err}")
        } else {
            format!("invalid JSON Schema at '{at}': {err}")
        });
    }
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(schema)
        .map_err(|err| format!("invalid JSON Schema: {err}"))
}

/// One step of a path into a JSON value: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for PathSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(key) => f.write_str(key),
            Self::Index(index) => write!(f, "{index}"),
        }
    }
}

/// Where a value breaks its schema, what is wrong, and which schema keyword said so. Kept
/// typed from the validator to the answer a caller gets (an HTTP body lists each one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The path to the offending value (empty: the value itself).
    pub path: Vec<PathSegment>,
    pub message: String,
    /// The schema keyword that failed (`required`, `type`, `maxLength`, ...).
    pub keyword: String,
}

impl Violation {
    /// A violation found outside a schema check (the same shape, another `keyword`).
    pub fn new(
        path: Vec<PathSegment>,
        message: impl Into<String>,
        keyword: impl Into<String>,
    ) -> Self {
        Self {
            path,
            message: message.into(),
            keyword: keyword.into(),
        }
    }
}

/// `/a/0/b: message`, or the message alone for the value itself.
impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for segment in &self.path {
            write!(f, "/{segment}")?;
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, ": {}", self.message)
        }
    }
}

/// Validates `instance`: every violation, with its path, message and keyword.
pub fn violations(validator: &Validator, instance: &Value) -> Vec<Violation> {
    validator
        .iter_errors(instance)
        .map(|err| Violation {
            path: err
                .instance_path()
                .iter()
                .map(|segment| match segment {
                    jsonschema::paths::LocationSegment::Property(key) => {
                        PathSegment::Key(key.into_owned())
                    }
                    jsonschema::paths::LocationSegment::Index(index) => PathSegment::Index(index),
                })
                .collect(),
            message: err.to_string(),
            keyword: err.kind().keyword().to_string(),
        })
        .collect()
}

/// The violations as one line each (for logs and messages a model reads).
pub fn lines(violations: &[Violation]) -> Vec<String> {
    violations.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_valid_and_rejects_invalid_schemas() {
        assert!(
            check_schema(&json!({"type": "object", "properties": {"a": {"type": "string"}}}))
                .is_ok()
        );
        assert!(check_schema(&json!({"type": "objekt"})).is_err());
        assert!(check_schema(&json!({"properties": {"a": {"$ref": "#/$defs/missing"}}})).is_err());
        assert!(check_schema(&json!("string")).is_err());
    }

    #[test]
    fn reports_violations_with_paths() {
        let v = compile(
            &json!({"type": "object", "required": ["a"], "properties": {"b": {"type": "integer"}}}),
        )
        .unwrap();
        let errors = violations(&v, &json!({"b": "x"}));
        assert_eq!(errors.len(), 2, "{errors:?}");
        let typed = errors
            .iter()
            .find(|e| e.keyword == "type")
            .expect("a type violation");
        assert_eq!(typed.path, vec![PathSegment::Key("b".into())]);
        assert!(typed.to_string().starts_with("/b: "), "{typed}");
        let required = errors
            .iter()
            .find(|e| e.keyword == "required")
            .expect("a required violation");
        assert!(required.path.is_empty());
        let nested = compile(&json!({"type": "array", "items": {"type": "string"}})).unwrap();
        let items = violations(&nested, &json!(["a", 2]));
        assert_eq!(items[0].path, vec![PathSegment::Index(1)]);
    }
}
