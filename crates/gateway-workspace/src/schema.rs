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

/// Validates `instance`, returning one readable line per violation (`<path>: <message>`).
pub fn violations(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|err| {
            let path = err.instance_path().to_string();
            if path.is_empty() {
                err.to_string()
            } else {
                format!("{path}: {err}")
            }
        })
        .collect()
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
        assert!(errors.iter().any(|e| e.starts_with("/b: ")), "{errors:?}");
    }
}
