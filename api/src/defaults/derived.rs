//! Values raygate derives from other fields (`num-cpus` from the CPU limit, the `/dev/shm` size
//! from the memory limit) must follow those fields. After `kubectl apply` changes a limit, the
//! stored object still holds the old derived value, which the user never wrote; left alone,
//! Ray would run with the old figure.
//!
//! The ledger, kept in the `raygate.io/derived` annotation, records each value raygate wrote.
//! A field whose value still equals the record was not touched by the user and is re-derived;
//! a field that differs is the user's and is kept.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Annotation holding the ledger: JSON object of field key → value raygate derived.
pub const ANNOTATION_DERIVED: &str = "raygate.io/derived";

#[derive(Debug, Default)]
pub struct Ledger {
    previous: BTreeMap<String, Value>,
    current: BTreeMap<String, Value>,
}

impl Ledger {
    pub fn read(annotations: Option<&Map<String, Value>>) -> Self {
        let previous = annotations
            .and_then(|a| a.get(ANNOTATION_DERIVED))
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        Self {
            previous,
            current: BTreeMap::new(),
        }
    }

    /// Whether `map[field]` holds a value the user wrote: set, and not what raygate recorded
    /// deriving under `key`.
    pub fn is_users(&self, map: &Map<String, Value>, field: &str, key: &str) -> bool {
        match map.get(field) {
            None | Some(Value::Null) => false,
            Some(existing) => self.previous.get(key) != Some(existing),
        }
    }

    /// Sets `map[field]` (recorded under `key`) to `derived`, unless the user owns the field.
    /// `None` means nothing can be derived any more: a value raygate wrote is removed.
    pub fn derive(
        &mut self,
        map: &mut Map<String, Value>,
        field: &str,
        key: String,
        derived: Option<Value>,
    ) {
        if self.is_users(map, field, &key) {
            return;
        }
        match derived {
            Some(value) => {
                // Already there when the object was normalized before: nothing to write.
                if map.get(field) != Some(&value) {
                    map.insert(field.to_string(), value.clone());
                }
                self.current.insert(key, value);
            }
            None => {
                if self.previous.contains_key(&key) {
                    map.remove(field);
                }
            }
        }
    }

    pub fn write(&self, annotations: &mut Map<String, Value>) {
        if self.current.is_empty() {
            annotations.remove(ANNOTATION_DERIVED);
            return;
        }
        if let Ok(text) = serde_json::to_string(&self.current)
            && annotations.get(ANNOTATION_DERIVED).and_then(Value::as_str) != Some(text.as_str())
        {
            annotations.insert(ANNOTATION_DERIVED.to_string(), Value::String(text));
        }
    }
}

/// The ledger key of a group's field: `prefix.middle.field`, e.g.
/// `spec.headGroupSpec.rayStartParams.num-cpus` (without `format!`, several times cheaper).
pub fn key(prefix: &str, middle: &str, field: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + middle.len() + field.len() + 2);
    key.push_str(prefix);
    key.push('.');
    key.push_str(middle);
    key.push('.');
    key.push_str(field);
    key
}
