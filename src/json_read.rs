//! The gate's own JSON formats read back from a [`serde_json::Value`], field by field, in place
//! of serde's derived deserializers. Each derived deserializer is serde_json's parser
//! specialized to one type; together they were about 44 KB of the Worker's wasm (16 KB
//! gzipped, measured by building without them), where one `Value` parse serves every format.
//!
//! The rules are those of the derives they replace: a missing field with a default takes it,
//! a present field must have its type (`null` only where the field is an `Option`), and
//! unknown fields are ignored unless the format refuses them ([`Fields::is_empty`]). One
//! difference: a key given twice is read as its last value, where a derive refused the text.

use serde_json::{Map, Value};

/// An object's fields, taken out one by one.
pub struct Fields(Map<String, Value>);

impl Fields {
    /// The fields of an object; `None` for any other value.
    pub fn of(value: Value) -> Option<Fields> {
        match value {
            Value::Object(map) => Some(Fields(map)),
            _ => None,
        }
    }

    /// The fields of the object `text` holds.
    pub fn parse(text: &[u8]) -> Option<Fields> {
        Fields::of(serde_json::from_slice(text).ok()?)
    }

    /// A required field of any type.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    /// A required string field.
    pub fn string(&mut self, name: &str) -> Option<String> {
        string(self.take(name)?)
    }

    /// A required field read by `read`.
    pub fn read<T>(&mut self, name: &str, read: impl FnOnce(Value) -> Option<T>) -> Option<T> {
        read(self.take(name)?)
    }

    /// An `Option` field: missing or `null` is `None`; any other value must read.
    pub fn optional<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(Value) -> Option<T>,
    ) -> Option<Option<T>> {
        match self.take(name) {
            None | Some(Value::Null) => Some(None),
            Some(value) => read(value).map(Some),
        }
    }

    /// A field with a default: missing is the default; a present value must read.
    pub fn or_default<T: Default>(
        &mut self,
        name: &str,
        read: impl FnOnce(Value) -> Option<T>,
    ) -> Option<T> {
        match self.take(name) {
            None => Some(T::default()),
            Some(value) => read(value),
        }
    }

    /// No field is left that was not taken: what a format that refuses unknown fields checks.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub fn string(value: Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// A non-negative integer that fits `usize` (not `1.0`: serde_json reads that as a float).
pub fn index(value: Value) -> Option<usize> {
    usize::try_from(value.as_u64()?).ok()
}

pub fn integer(value: Value) -> Option<i64> {
    value.as_i64()
}

pub fn boolean(value: Value) -> Option<bool> {
    value.as_bool()
}

/// An array, each element read by `item`; `None` if any does not read.
pub fn list<T>(value: Value, item: impl FnMut(Value) -> Option<T>) -> Option<Vec<T>> {
    match value {
        Value::Array(items) => items.into_iter().map(item).collect(),
        _ => None,
    }
}

pub fn strings(value: Value) -> Option<Vec<String>> {
    list(value, string)
}

/// `[name, value]` pairs, as serde writes a `Vec<(String, T)>`.
pub fn pairs<T>(
    value: Value,
    mut second: impl FnMut(Value) -> Option<T>,
) -> Option<Vec<(String, T)>> {
    list(value, |pair| {
        let Value::Array(pair) = pair else {
            return None;
        };
        let [first, other]: [Value; 2] = pair.try_into().ok()?;
        Some((string(first)?, second(other)?))
    })
}

pub fn string_pairs(value: Value) -> Option<Vec<(String, String)>> {
    pairs(value, string)
}

pub fn value_pairs(value: Value) -> Option<Vec<(String, Value)>> {
    pairs(value, Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_read_as_the_derives_did() {
        let mut f = Fields::of(json!({"a": "x", "n": 3, "o": null, "d": [["k", "v"]], "extra": 1}))
            .unwrap();
        assert_eq!(f.string("a").as_deref(), Some("x"));
        assert_eq!(f.read("n", index), Some(3));
        assert_eq!(f.optional("o", integer), Some(None));
        assert_eq!(f.optional("missing", integer), Some(None));
        assert_eq!(
            f.or_default("d", string_pairs),
            Some(vec![("k".into(), "v".into())])
        );
        assert_eq!(f.or_default("absent", string_pairs), Some(Vec::new()));
        assert!(
            !f.is_empty(),
            "an unknown field is left for a format that refuses them"
        );
        assert!(f.string("a").is_none(), "a field is taken once");
    }

    #[test]
    fn a_present_field_of_the_wrong_type_does_not_read() {
        assert!(Fields::of(json!({"d": null}))
            .unwrap()
            .or_default("d", string_pairs)
            .is_none());
        assert!(Fields::of(json!({"o": "1"}))
            .unwrap()
            .optional("o", integer)
            .is_none());
        assert!(index(json!(1.0)).is_none());
        assert!(index(json!(-1)).is_none());
        assert!(integer(json!(u64::MAX)).is_none());
        assert!(string_pairs(json!([["k"]])).is_none());
        assert!(string_pairs(json!([["k", "v", "w"]])).is_none());
        assert!(string_pairs(json!([["k", 1]])).is_none());
        assert!(strings(json!(["a", 1])).is_none());
        assert!(Fields::of(json!([])).is_none());
        assert!(Fields::parse(b"{").is_none());
    }
}
