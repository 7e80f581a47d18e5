//! Typed deserialization from `serde_json::Value` that forgives scalar spelling.
//!
//! Values reach the typed config from YAML, `${VAR}` substitution and environment variables;
//! the last two only produce text. Like the Python implementation's schema coercion, a string
//! `"9000"` is accepted where a number is expected, `"true"` where a bool is, and a number or
//! bool where a string is. Everything else is as strict as serde.
//!
//! [`from_value`] also reports unknown keys (through `serde_ignored`) and the key path of the
//! first type error (through `serde_path_to_error`), which callers map to file and line.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde_json::{Map, Value};

type Error = serde_json::Error;

/// A typed-deserialization failure: the dotted key path and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    pub path: String,
    pub message: String,
}

/// Deserializes `value` into `T`, returning the unknown keys met on the way.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<(T, Vec<String>), TypeError> {
    let mut unknown = Vec::new();
    let result = {
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let ignored = serde_ignored::Deserializer::new(Lenient(value), &mut record);
        serde_path_to_error::deserialize::<_, T>(ignored)
    };
    match result {
        Ok(typed) => Ok((typed, unknown)),
        Err(err) => Err(TypeError {
            path: err.path().to_string(),
            message: err.inner().to_string(),
        }),
    }
}

/// A deserializer over a borrowed JSON value with lenient scalars.
#[derive(Clone, Copy)]
pub struct Lenient<'de>(pub &'de Value);

impl<'de> Lenient<'de> {
    fn any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Items(items.iter())),
            Value::Object(map) => visitor.visit_map(Entries {
                iter: map.iter(),
                pending: None,
            }),
        }
    }

    fn integer<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if let Value::String(s) = self.0 {
            let s = s.trim();
            if let Ok(u) = s.parse::<u64>() {
                return visitor.visit_u64(u);
            }
            if let Ok(i) = s.parse::<i64>() {
                return visitor.visit_i64(i);
            }
        }
        self.any(visitor)
    }

    fn float<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) => visitor.visit_f64(f),
                Err(_) => self.any(visitor),
            },
            Value::Number(n) => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            _ => self.any(visitor),
        }
    }
}

macro_rules! integer_methods {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.integer(visitor)
        })*
    };
}

impl<'de> Deserializer<'de> for Lenient<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if let Value::String(s) = self.0 {
            match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => return visitor.visit_bool(true),
                "false" | "no" | "off" | "0" => return visitor.visit_bool(false),
                _ => {}
            }
        }
        self.any(visitor)
    }

    integer_methods!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.float(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.float(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Number(n) => visitor.visit_string(n.to_string()),
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            _ => self.any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            other => other.deserialize_enum(name, variants, visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct Items<'de>(std::slice::Iter<'de, Value>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.0.next() {
            Some(value) => seed.deserialize(Lenient(value)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'de> {
    iter: serde_json::map::Iter<'de>,
    pending: Option<&'de Value>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((key, value)) => {
                self.pending = Some(value);
                let key: de::value::BorrowedStrDeserializer<'de, Error> =
                    de::value::BorrowedStrDeserializer::new(key.as_str());
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.pending.take() {
            Some(value) => seed.deserialize(Lenient(value)),
            None => Err(de::Error::custom("value requested before key")),
        }
    }
}

/// An empty JSON object, the value of a missing document.
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        port: u16,
        ratio: f64,
        on: bool,
        name: String,
        #[serde(default)]
        maybe: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        inner: Inner,
        #[serde(default)]
        list: Vec<u8>,
        mode: Mode,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        ApiKey,
        None,
    }

    #[test]
    fn coerces_scalars_from_text_and_back() {
        let value = json!({
            "inner": {"port": "9000", "ratio": "0.5", "on": "true", "name": 42, "maybe": "7"},
            "list": ["1", 2],
            "mode": "api_key"
        });
        let (outer, unknown): (Outer, _) = from_value(&value).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(outer.inner.port, 9000);
        assert_eq!(outer.inner.ratio, 0.5);
        assert!(outer.inner.on);
        assert_eq!(outer.inner.name, "42");
        assert_eq!(outer.inner.maybe, Some(7));
        assert_eq!(outer.list, vec![1, 2]);
        assert_eq!(outer.mode, Mode::ApiKey);
    }

    #[test]
    fn reports_path_of_type_errors() {
        let value = json!({
            "inner": {"port": "lots", "ratio": 1, "on": true, "name": "x"},
            "mode": "none"
        });
        let err = from_value::<Outer>(&value).unwrap_err();
        assert_eq!(err.path, "inner.port");
        assert!(err.message.contains("lots"), "{}", err.message);
    }

    #[test]
    fn reports_unknown_keys() {
        #[derive(Debug, Deserialize)]
        struct Loose {
            #[allow(dead_code)]
            a: u8,
        }
        let (_, unknown): (Loose, _) = from_value(&json!({"a": 1, "b": {"c": 2}})).unwrap();
        assert_eq!(unknown, vec!["b".to_string()]);
    }
}
