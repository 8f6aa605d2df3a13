//! The JSON patch from the object as received to the normalized object.
//!
//! Same operations as `json_patch::diff` (add/replace/remove, arrays compared by index), but
//! the pointer of a location is only rendered when an operation is emitted there. Normalization
//! leaves most of an object untouched, so most of the walk is comparison without allocation.
//!
//! Two outputs from one walk: a [`Patch`] for callers that look at the operations, and the
//! patch's JSON text for the webhook, written straight from the normalized object (no copy of
//! the added values, no pointer objects).

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value};

/// One step from the root to the location being compared.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where the walk's operations go.
trait Sink<'a> {
    fn add(&mut self, path: &[Step<'a>], value: &'a Value);
    fn replace(&mut self, path: &[Step<'a>], value: &'a Value);
    fn remove(&mut self, path: &[Step<'a>]);
}

/// Operations that turn `before` into `after`.
pub fn diff(before: &Value, after: &Value) -> Patch {
    let mut ops = Vec::new();
    Walk::run(before, after, &mut ops);
    Patch(ops)
}

/// The same operations as [`diff`], as the JSON text of the patch; `None` when there are none.
pub fn diff_json(before: &Value, after: &Value) -> Option<Vec<u8>> {
    let mut sink = JsonSink {
        out: Vec::new(),
        pointer: String::new(),
    };
    Walk::run(before, after, &mut sink);
    if sink.out.is_empty() {
        return None;
    }
    sink.out.push(b']');
    Some(sink.out)
}

struct Walk<'a, S> {
    path: Vec<Step<'a>>,
    sink: &'a mut S,
}

impl<'a, S: Sink<'a>> Walk<'a, S> {
    fn run(before: &'a Value, after: &'a Value, sink: &'a mut S) {
        let mut walk = Walk {
            path: Vec::with_capacity(16),
            sink,
        };
        walk.value(before, after);
    }

    fn value(&mut self, before: &'a Value, after: &'a Value) {
        match (before, after) {
            (Value::Object(before), Value::Object(after)) => self.object(before, after),
            (Value::Array(before), Value::Array(after)) => self.array(before, after),
            _ if before == after => {}
            _ => self.sink.replace(&self.path, after),
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
                None => self.sink.add(&self.path, after_value),
            }
            self.path.pop();
        }
        if kept < before.len() {
            for key in before.keys().filter(|key| !after.contains_key(*key)) {
                self.path.push(Step::Key(key));
                self.sink.remove(&self.path);
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
            self.sink.remove(&self.path);
            self.path.pop();
        }
        for (index, value) in after.iter().enumerate().skip(common) {
            self.path.push(Step::Index(index));
            self.sink.add(&self.path, value);
            self.path.pop();
        }
    }
}

impl<'a> Sink<'a> for Vec<PatchOperation> {
    fn add(&mut self, path: &[Step<'a>], value: &'a Value) {
        self.push(PatchOperation::Add(AddOperation {
            path: pointer(path),
            value: value.clone(),
        }));
    }

    fn replace(&mut self, path: &[Step<'a>], value: &'a Value) {
        self.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer(path),
            value: value.clone(),
        }));
    }

    fn remove(&mut self, path: &[Step<'a>]) {
        self.push(PatchOperation::Remove(RemoveOperation {
            path: pointer(path),
        }));
    }
}

/// Writes `[{"op":"add","path":"/a","value":1},...` (the caller closes the array).
struct JsonSink {
    out: Vec<u8>,
    /// The pointer being written, reused from one operation to the next.
    pointer: String,
}

impl JsonSink {
    fn op(&mut self, op: &str, path: &[Step<'_>]) {
        self.out.push(if self.out.is_empty() { b'[' } else { b',' });
        self.out.extend_from_slice(br#"{"op":""#);
        self.out.extend_from_slice(op.as_bytes());
        self.out.extend_from_slice(br#"","path":"#);
        self.pointer.clear();
        write_pointer(&mut self.pointer, path);
        write_str(&mut self.out, &self.pointer);
    }

    fn value(&mut self, value: &Value) {
        self.out.extend_from_slice(br#","value":"#);
        write_value(&mut self.out, value);
        self.out.push(b'}');
    }
}

/// `value` as compact JSON, byte for byte what `serde_json::to_writer` writes. Strings, most
/// of a Kubernetes object, need no escaping in practice; checking that first is several times
/// cheaper than serde_json's byte-by-byte escaping.
fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_json(out, number),
        Value::String(text) => write_str(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        write_json(out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether a JSON string needs an escape: a control character, `"` or `\`. Eight bytes at a
/// time; a false alarm only sends the string the slow, always-correct way.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGH != 0;
    let special = |word: u64| {
        word.wrapping_sub(ONES * 0x20) & !word & HIGH != 0
            || has_zero(word ^ (ONES * u64::from(b'"')))
            || has_zero(word ^ (ONES * u64::from(b'\\')))
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        if special(u64::from_ne_bytes(word)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Serializing a `Value` or `&str` into a `Vec` can't fail.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    if let Err(error) = serde_json::to_writer(&mut *out, value) {
        debug_assert!(false, "serializing to memory failed: {error}");
    }
}

impl<'a> Sink<'a> for JsonSink {
    fn add(&mut self, path: &[Step<'a>], value: &'a Value) {
        self.op("add", path);
        self.value(value);
    }

    fn replace(&mut self, path: &[Step<'a>], value: &'a Value) {
        self.op("replace", path);
        self.value(value);
    }

    fn remove(&mut self, path: &[Step<'a>]) {
        self.op("remove", path);
        self.out.push(b'}');
    }
}

/// The RFC 6901 pointer of a location: `~` and `/` in keys escaped as `~0`, `~1`.
fn write_pointer(text: &mut String, path: &[Step<'_>]) {
    for step in path {
        text.push('/');
        match *step {
            Step::Key(key) => escape_into(text, key),
            Step::Index(index) => push_index(text, index),
        }
    }
}

/// The pointer as jsonptr's type, written into one string (jsonptr's token-by-token
/// `push_back` costs several times more); `PointerBuf::parse` only checks the escapes, so it
/// cannot fail on what is built here.
fn pointer(path: &[Step<'_>]) -> PointerBuf {
    let len = path
        .iter()
        .map(|step| match step {
            Step::Key(key) => key.len() + 3,
            Step::Index(_) => 4,
        })
        .sum();
    let mut text = String::with_capacity(len);
    write_pointer(&mut text, path);
    PointerBuf::parse(text).unwrap_or_else(|_| pointer_by_tokens(path))
}

/// The same pointer built by jsonptr itself; only reached if the fast path were wrong.
#[cold]
fn pointer_by_tokens(path: &[Step<'_>]) -> PointerBuf {
    PointerBuf::from_tokens(path.iter().map(|step| match *step {
        Step::Key(key) => Token::new(key),
        Step::Index(index) => Token::from(index),
    }))
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
        assert_same_text(&before, &after, &patch);
        patch
    }

    /// The JSON text of the patch is exactly what serializing the `Patch` gives.
    fn assert_same_text(before: &Value, after: &Value, patch: &Patch) {
        let text = diff_json(before, after);
        if patch.0.is_empty() {
            assert_eq!(text, None);
        } else {
            let expected = serde_json::to_vec(patch).expect("serializes");
            assert_eq!(
                String::from_utf8_lossy(&text.unwrap_or_default()),
                String::from_utf8_lossy(&expected)
            );
        }
    }

    #[test]
    fn equal_documents_give_an_empty_patch() {
        let doc = json!({"a": [1, {"b": "c"}], "d": null});
        assert!(diff(&doc, &doc.clone()).0.is_empty());
        assert_eq!(diff_json(&doc, &doc), None);
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
            assert_same_text(&before, &after, &patch);
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
    fn keys_with_quotes_and_control_characters_are_valid_json() {
        roundtrip(json!({}), json!({"a\"b": {"\n": "x\u{1}"}}));
        // Around the eight-byte blocks of the fast check.
        for text in [
            "abcdefg\"",
            "abcdefgh\\",
            "abcdefghi\u{1f}",
            "\u{7f}ü 12345678",
            "",
            "~/",
        ] {
            roundtrip(
                json!({"k": 1}),
                json!({"k": 1, text: [text, 1.5, -3, null, true]}),
            );
        }
    }

    #[test]
    fn type_changes_replace_the_value() {
        roundtrip(json!({"a": {"b": 1}}), json!({"a": [1]}));
        roundtrip(json!(1), json!("x"));
    }
}
