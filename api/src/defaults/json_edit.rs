//! Small edits on JSON objects that only ever add what is missing.
//!
//! Normalization works on the object as received so that fields raygate's types don't know
//! survive untouched; these helpers keep that code short. They look a key up before inserting
//! it: the key's `String` is only allocated when something is added, so an object normalized
//! before passes through without allocating.

use serde_json::{Map, Value};

/// The object under `key`, created when absent or null. `None` when something else (a string,
/// a list) is there: that is the user's mistake for validation to report, not ours to replace.
pub fn child_object<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    set_if_absent_with(parent, key, || Value::Object(Map::new()));
    parent.get_mut(key).and_then(Value::as_object_mut)
}

/// The list under `key`, created when absent or null; `None` when something else is there.
pub fn child_array<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Vec<Value>> {
    set_if_absent_with(parent, key, || Value::Array(Vec::new()));
    parent.get_mut(key).and_then(Value::as_array_mut)
}

/// Sets `key` when it is absent or null; the user's value always wins.
pub fn set_if_absent(map: &mut Map<String, Value>, key: &str, value: Value) {
    set_if_absent_with(map, key, || value);
}

/// [`set_if_absent`] with the value built only when it is needed.
pub fn set_if_absent_with(map: &mut Map<String, Value>, key: &str, value: impl FnOnce() -> Value) {
    match map.get_mut(key) {
        Some(slot) if slot.is_null() => *slot = value(),
        Some(_) => {}
        None => {
            map.insert(key.to_string(), value());
        }
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

/// `value.pointer(path)` for unescaped tokens, without building the pointer string and
/// unescaping each token (which allocates twice per token in `serde_json`). A token indexes
/// an array the way a JSON pointer does: decimal, no sign, no leading zero.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, token| match value {
        Value::Object(map) => map.get(*token),
        Value::Array(list) => array_index(token).and_then(|index| list.get(index)),
        _ => None,
    })
}

fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn at_reads_like_a_json_pointer() {
        let doc = json!({"a": [{"b": 1}, {"0": 2}], "0": {"c": 3}, "x/y": 4, "": {"": 5}});
        for path in [
            &["a", "0", "b"][..],
            &["a", "1", "0"],
            &["0", "c"],
            &["a", "01"],
            &["a", "+1"],
            &["a", "2"],
            &["a", "b"],
            &["a", "0", "b", "c"],
            &[""],
            &["", ""],
            &[],
        ] {
            let pointer: String = path
                .iter()
                .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
                .collect();
            assert_eq!(at(&doc, path), doc.pointer(&pointer), "{path:?}");
        }
        assert_eq!(at(&doc, &["x/y"]), Some(&json!(4)));
    }

    #[test]
    fn absent_and_null_keys_are_filled_others_kept() {
        let mut map = json!({"null": null, "set": 1, "list": "x"});
        let map = map.as_object_mut().unwrap();
        set_if_absent(map, "null", json!(2));
        set_if_absent(map, "set", json!(2));
        set_if_absent_with(map, "new", || json!(3));
        assert!(child_array(map, "list").is_none());
        assert_eq!(child_object(map, "object"), Some(&mut Map::new()));
        assert_eq!(
            Value::Object(map.clone()),
            json!({"null": 2, "set": 1, "list": "x", "new": 3, "object": {}})
        );
    }
}
