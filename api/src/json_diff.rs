//! The JSON patch from the object as received to the normalized object.
//!
//! Same operations as `json_patch::diff` (add/replace/remove, arrays compared by index), but
//! the pointer of a location is only rendered when an operation is emitted there. Normalization
//! leaves most of an object untouched, so most of the walk is comparison without allocation.

use json_patch::jsonptr::PointerBuf;
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
        for (key, after_value) in after {
            self.path.push(Step::Key(key));
            match before.get(key) {
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

    fn pointer(&self) -> PointerBuf {
        let mut pointer = PointerBuf::new();
        for step in &self.path {
            match *step {
                Step::Key(key) => pointer.push_back(key),
                Step::Index(index) => pointer.push_back(index),
            }
        }
        pointer
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
