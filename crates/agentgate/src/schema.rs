//! JSON Schemas derived from Rust types, shaped as the manifest wants them: no `$schema` or
//! root `title`, `$defs` at the root so every `$ref` resolves from the schema itself.

use schemars::JsonSchema;
use serde_json::{Map, Value};

/// Schema of a handler's input type: an object of its named arguments.
pub fn input_schema<T: JsonSchema>() -> Value {
    let mut schema = tidy(serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null));
    if let Value::Object(map) = &mut schema {
        map.entry("type")
            .or_insert_with(|| Value::String("object".into()));
        map.entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if !map.contains_key("required") {
            map.insert("required".into(), Value::Array(Vec::new()));
        }
    }
    schema
}

/// Schema of a handler's result type (`{}` for untyped JSON).
pub fn output_schema<T: JsonSchema>() -> Value {
    let schema = tidy(serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null));
    match schema {
        Value::Bool(true) => Value::Object(Map::new()),
        other => other,
    }
}

fn tidy(mut schema: Value) -> Value {
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Item {
        item_id: String,
        quantity: u32,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Checkout {
        items: Vec<Item>,
        delivery_address: String,
        #[serde(default)]
        note: String,
    }

    #[test]
    fn nested_types_resolve_from_the_root() {
        let schema = input_schema::<Checkout>();
        assert_eq!(schema["type"], "object");
        assert!(schema.get("$schema").is_none() && schema.get("title").is_none());
        assert_eq!(schema["required"], json!(["items", "delivery_address"]));
        let reference = schema["properties"]["items"]["items"]["$ref"]
            .as_str()
            .unwrap();
        assert_eq!(reference, "#/$defs/Item");
        assert_eq!(
            schema["$defs"]["Item"]["properties"]["quantity"]["type"],
            "integer"
        );
        let keys: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            vec!["items", "delivery_address", "note"],
            "definition order"
        );
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(validator.is_valid(
            &json!({"items": [{"item_id": "m1", "quantity": 2}], "delivery_address": "x"})
        ));
        assert!(
            !validator.is_valid(&json!({"items": [{"item_id": "m1"}], "delivery_address": "x"}))
        );
    }

    #[test]
    fn untyped_outputs_are_empty_schemas() {
        assert_eq!(output_schema::<Value>(), json!({}));
        assert_eq!(output_schema::<Vec<String>>()["type"], "array");
    }
}
