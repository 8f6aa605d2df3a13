//! Small edits on JSON objects that only ever add what is missing.
//!
//! Normalization works on the object as received so that fields raygate's types don't know
//! survive untouched; these helpers keep that code short.

use serde_json::{Map, Value};

/// The object under `key`, created when absent or null. `None` when something else (a string,
/// a list) is there: that is the user's mistake for validation to report, not ours to replace.
pub fn child_object<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let slot = parent.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// The list under `key`, created when absent or null; `None` when something else is there.
pub fn child_array<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Vec<Value>> {
    let slot = parent.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut()
}

/// Sets `key` when it is absent or null; the user's value always wins.
pub fn set_if_absent(map: &mut Map<String, Value>, key: &str, value: Value) {
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = value;
    }
}

/// The string at `key`, if it is one.
pub fn str_at<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// Whether a list of objects has one whose `field` equals `value` (a port name, an env name).
pub fn has_named(list: &[Value], field: &str, value: &str) -> bool {
    list.iter()
        .any(|item| item.get(field).and_then(Value::as_str) == Some(value))
}
