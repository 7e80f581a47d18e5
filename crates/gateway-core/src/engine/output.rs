//! Structured output: the model's final text parsed as JSON and validated against a schema.

use jsonschema::Validator;
use serde_json::Value;

/// Parses `text` (optionally wrapped in a ```json fence) and validates it.
/// Returns the value, or the list of problems.
pub fn parse_and_validate(text: &str, validator: &Validator) -> Result<Value, Vec<String>> {
    let json = strip_fences(text);
    let value: Value =
        serde_json::from_str(json).map_err(|err| vec![format!("Invalid JSON: {err}")])?;
    let problems = gateway_workspace::schema::violations(validator, &value);
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(gateway_workspace::schema::lines(&problems))
    }
}

fn strip_fences(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    // Drop the info string (`json`) on the opening line.
    let rest = rest.split_once('\n').map_or("", |(_, body)| body);
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}

/// The follow-up message asking the model to fix its answer.
pub fn correction_message(errors: &[String], schema: &Value) -> String {
    let pretty = serde_json::to_string_pretty(schema).unwrap_or_else(|_| schema.to_string());
    format!(
        "Your response did not match the required JSON schema.\nErrors: {}\n\nPlease respond again with valid JSON matching this schema:\n```json\n{pretty}\n```",
        errors.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator() -> Validator {
        gateway_workspace::schema::compile(&json!({
            "type": "object",
            "required": ["value"],
            "properties": {"value": {"type": "number"}}
        }))
        .unwrap()
    }

    #[test]
    fn accepts_plain_and_fenced_json() {
        assert_eq!(
            parse_and_validate("{\"value\": 4}", &validator()).unwrap(),
            json!({"value": 4})
        );
        assert_eq!(
            parse_and_validate("```json\n{\"value\": 4}\n```", &validator()).unwrap(),
            json!({"value": 4})
        );
        assert_eq!(
            parse_and_validate("```\n{\"value\": 1.5}\n```\n", &validator()).unwrap(),
            json!({"value": 1.5})
        );
    }

    #[test]
    fn reports_invalid_json_and_schema_violations() {
        let err = parse_and_validate("four", &validator()).unwrap_err();
        assert!(err[0].starts_with("Invalid JSON"));
        let err = parse_and_validate("{\"value\": \"four\"}", &validator()).unwrap_err();
        assert!(err[0].contains("/value"), "{err:?}");
    }
}
