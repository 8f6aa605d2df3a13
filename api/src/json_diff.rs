//! The JSON patch from the object as received to the normalized object.
//!
//! Same operations as `json_patch::diff` (add/replace/remove, arrays compared by index), but
//! the pointer of a location is only rendered when an operation is emitted there. Normalization
//! leaves most of an object untouched, so most of the walk is comparison without allocation.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value};

/// One step from the root to the location being compared.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Operations that turn `before` into `after`.
pub fn diff(before: &Value, after: &Value) -> Patch {
    let mut walk = Walk {
        path: Vec::with_capacity(16),
        ops: Vec::new(),
    };
    walk.value(before, after);
    Patch(walk.ops)
}

struct Walk<'a> {
    path: Vec<Step<'a>>,
    ops: Vec<PatchOperation>,
}

impl<'a> Walk<'a> {
    fn value(&mut self, before: &'a Value, after: &'a Value) {
        match (before, after) {
            (Value::Object(before), Value::Object(after)) => self.object(before, after),
            (Value::Array(before), Value::Array(after)) => self.array(before, after),
            _ if before == after => {}
            _ => {
                let path = self.pointer();
                self.ops.push(PatchOperation::Replace(ReplaceOperation {
                    path,
                    value: after.clone(),
                }));
            }
        }
    }

    fn object(&mut self, before: &'a Map<String, Value>, after: &'a Map<String, Value>) {
        let mut kept = 0;
        // Both maps iterate in the same (sorted) order and normalization mostly adds keys, so
        // the next unmatched key of `before` is usually the one to compare with: no lookup.
        let mut unmatched = before.iter().peekable();
        for (key, after_value) in after {
            self.path.push(Step::Key(key));
            let before_value = match unmatched.peek() {
                Some((next, value)) if *next == key => {
                    let value = *value;
                    unmatched.next();
                    Some(value)
                }
                _ => before.get(key),
            };
            match before_value {
                Some(before_value) => {
                    kept += 1;
                    self.value(before_value, after_value);
                }
                None => {
                    let path = self.pointer();
                    self.ops.push(PatchOperation::Add(AddOperation {
                        path,
                        value: after_value.clone(),
                    }));
                }
            }
            self.path.pop();
        }
        if kept < before.len() {
            for key in before.keys().filter(|key| !after.contains_key(*key)) {
                self.path.push(Step::Key(key));
                let path = self.pointer();
                self.ops
                    .push(PatchOperation::Remove(RemoveOperation { path }));
                self.path.pop();
            }
        }
    }

    fn array(&mut self, before: &'a [Value], after: &'a [Value]) {
        let common = before.len().min(after.len());
        for (index, (b, a)) in before.iter().zip(after).enumerate() {
            self.path.push(Step::Index(index));
            self.value(b, a);
            self.path.pop();
        }
        // Removing from the end keeps every earlier index valid while the patch applies.
        for index in (common..before.len()).rev() {
            self.path.push(Step::Index(index));
            let path = self.pointer();
            self.ops
                .push(PatchOperation::Remove(RemoveOperation { path }));
            self.path.pop();
        }
        for (index, value) in after.iter().enumerate().skip(common) {
            self.path.push(Step::Index(index));
            let path = self.pointer();
            self.ops.push(PatchOperation::Add(AddOperation {
                path,
                value: value.clone(),
            }));
            self.path.pop();
        }
    }

    /// The RFC 6901 pointer of the current location: `~` and `/` in keys escaped as `~0`, `~1`.
    /// Written into one string (jsonptr's token-by-token `push_back` costs several times more);
    /// `PointerBuf::parse` only checks the escapes, so it cannot fail on what is built here.
    fn pointer(&self) -> PointerBuf {
        let mut text = String::with_capacity(self.pointer_len());
        for step in &self.path {
            text.push('/');
            match *step {
                Step::Key(key) => escape_into(&mut text, key),
                Step::Index(index) => push_index(&mut text, index),
            }
        }
        PointerBuf::parse(text).unwrap_or_else(|_| self.pointer_by_tokens())
    }

    fn pointer_len(&self) -> usize {
        self.path
            .iter()
            .map(|step| match step {
                Step::Key(key) => key.len() + 3,
                Step::Index(_) => 4,
            })
            .sum()
    }

    /// The same pointer built by jsonptr itself; only reached if the fast path were wrong.
    #[cold]
    fn pointer_by_tokens(&self) -> PointerBuf {
        PointerBuf::from_tokens(self.path.iter().map(|step| match *step {
            Step::Key(key) => Token::new(key),
            Step::Index(index) => Token::from(index),
        }))
    }
}

/// `index` in decimal, without `fmt` (which costs more than the rest of a pointer).
fn push_index(text: &mut String, index: usize) {
    if index >= 10 {
        push_index(text, index / 10);
    }
    text.push(char::from(b'0' + (index % 10) as u8));
}

fn escape_into(text: &mut String, key: &str) {
    // A byte loop: `contains(['~', '/'])` decodes chars and costs several times more.
    if !key.bytes().any(|b| b == b'~' || b == b'/') {
        text.push_str(key);
        return;
    }
    for c in key.chars() {
        match c {
            '~' => text.push_str("~0"),
            '/' => text.push_str("~1"),
            c => text.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(before: Value, after: Value) -> Patch {
        let patch = diff(&before, &after);
        let mut applied = before.clone();
        json_patch::patch(&mut applied, &patch).expect("patch applies");
        assert_eq!(applied, after);
        patch
    }

    #[test]
    fn equal_documents_give_an_empty_patch() {
        let doc = json!({"a": [1, {"b": "c"}], "d": null});
        assert!(diff(&doc, &doc.clone()).0.is_empty());
    }

    #[test]
    fn keys_are_added_replaced_and_removed_with_escaped_pointers() {
        let patch = roundtrip(
            json!({"metadata": {"annotations": {"ray.io/x": "1", "gone": true}}, "n": 1}),
            json!({"metadata": {"annotations": {"ray.io/x": "2", "a~b": "new"}}, "n": 1}),
        );
        let rendered = serde_json::to_value(&patch).expect("serializes");
        assert_eq!(
            rendered,
            json!([
                {"op": "add", "path": "/metadata/annotations/a~0b", "value": "new"},
                {"op": "replace", "path": "/metadata/annotations/ray.io~1x", "value": "2"},
                {"op": "remove", "path": "/metadata/annotations/gone"},
            ])
        );
    }

    #[test]
    fn pointers_match_jsonptr_for_keys_that_need_escaping() {
        for key in ["", "~", "/", "a~1b", "ray.io/x~y", "~0/~1", "ü/ß"] {
            let mut before = json!({"k": []});
            let mut after = json!({"k": []});
            for _ in 0..1234 {
                before["k"].as_array_mut().unwrap().push(json!({}));
                after["k"].as_array_mut().unwrap().push(json!({}));
            }
            after["k"][1203][key] = json!(1);
            let patch = diff(&before, &after);
            let [PatchOperation::Add(add)] = patch.0.as_slice() else {
                panic!("one add for {key:?}: {patch:?}");
            };
            let expected = PointerBuf::from_tokens(["k", "1203", key]);
            assert_eq!(add.path, expected, "{key:?}");
        }
    }

    #[test]
    fn arrays_grow_and_shrink_at_the_end() {
        roundtrip(json!({"a": [1, 2, 3, 4]}), json!({"a": [1, 5]}));
        roundtrip(json!({"a": [1]}), json!({"a": [0, {"x": 1}, [2]]}));
        roundtrip(json!([{"k": 1}]), json!([{"k": 1, "v": 2}]));
    }

    #[test]
    fn type_changes_replace_the_value() {
        roundtrip(json!({"a": {"b": 1}}), json!({"a": [1]}));
        roundtrip(json!(1), json!("x"));
    }
}
