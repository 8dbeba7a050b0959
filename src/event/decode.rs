//! Metadata read back from JSON, the inverse of the encoder's `metadata` object: where entries
//! arrive as JSON lines (an aggregator's ingest) and where a stored sample entry is read again
//! (an incident's).
//!
//! A JSON string becomes text, an integer that fits `i64` an `Int`, any other number a
//! `Float`, an object a `Map` with its keys in the order the deserializer gives them.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Metadata, Value};

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, flag: bool) -> Result<Value, E> {
        Ok(Value::Bool(flag))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Value, E> {
        Ok(Value::Int(number))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Value, E> {
        Ok(i64::try_from(number).map_or(Value::Float(number as f64), Value::Int))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Value, E> {
        Ok(Value::Float(number))
    }

    fn visit_str<E>(self, text: &str) -> Result<Value, E> {
        Ok(Value::from(text.to_string()))
    }

    fn visit_string<E>(self, text: String) -> Result<Value, E> {
        Ok(Value::from(text))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        MetadataVisitor.visit_map(map).map(Value::Map)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct MetadataVisitor;

impl<'de> Visitor<'de> for MetadataVisitor {
    type Value = Metadata;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
        let mut metadata = Metadata::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            metadata.push(key, value);
        }
        Ok(metadata)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MetadataVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_value_has_its_metadata_value() {
        let json = serde_json::json!({
            "text": "web-1",
            "int": -3,
            "big": u64::MAX,
            "float": 0.5,
            "flag": true,
            "none": null,
            "list": [1, "a"],
            "map": {"z": 1, "a": 2}
        });
        let metadata = Metadata::deserialize(&json).unwrap();
        let get = |key: &str| metadata.get(key).cloned();
        assert_eq!(get("text"), Some(Value::from("web-1")));
        assert_eq!(get("int"), Some(Value::Int(-3)));
        assert_eq!(get("big"), Some(Value::Float(u64::MAX as f64)));
        assert_eq!(get("float"), Some(Value::Float(0.5)));
        assert_eq!(get("flag"), Some(Value::Bool(true)));
        assert_eq!(get("none"), Some(Value::Null));
        assert_eq!(
            get("list"),
            Some(Value::Array(vec![Value::Int(1), Value::from("a")]))
        );
        let Some(Value::Map(map)) = get("map") else {
            panic!("an object is a map");
        };
        assert_eq!(map.len(), 2);
        assert!(Metadata::deserialize(&serde_json::json!([1])).is_err());
    }
}
