//! The AdmissionReview envelope (`admission.k8s.io/v1`) as it travels on the wire: decoding the
//! API server's request into a [`ReviewRequest`], encoding our [`ReviewResponse`].
//!
//! The object is kept as the JSON text received and read into a `serde_json::Value` only when
//! something needs one: patches are computed against exactly what the API server sent (so
//! fields our types don't know survive admission), while validation reads its typed view
//! straight from the text.

use kube::core::admission::Operation;
use kube::core::response::Status;
use kube::core::{GroupVersionKind, GroupVersionResource};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::OnceLock;

/// The only AdmissionReview version raygate speaks; the webhook configurations ask for it.
pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// What the API server asks about one object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewRequest {
    /// Copied into the response: the API server matches answers to questions by it.
    pub uid: String,
    /// The fully-qualified kind of the object being admitted.
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub resource: Option<GroupVersionResource>,
    /// `status` for status updates, empty for the main resource.
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: Operation,
    /// The object as it will be stored (CREATE, UPDATE); null for DELETE.
    #[serde(default)]
    pub object: Option<ObjectJson>,
    /// The stored object (UPDATE, DELETE).
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: bool,
}

impl ReviewRequest {
    /// `operation` as Kubernetes spells it, for logs and metric labels.
    pub fn operation_name(&self) -> &'static str {
        operation_name(&self.operation)
    }

    /// The object's name: the request's, or (for `generateName` creates) the object's own.
    pub fn object_name(&self) -> &str {
        if !self.name.is_empty() {
            return &self.name;
        }
        self.object
            .as_ref()
            .and_then(|o| o.value().pointer("/metadata/name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// An object of a review as the API server sent it: its JSON text, and the `Value` read from
/// that text the first time it is asked for. A create that passes validation without policies
/// never needs the `Value`: its typed view is read straight from the text.
pub struct ObjectJson {
    text: Box<RawValue>,
    value: OnceLock<Value>,
}

impl ObjectJson {
    pub fn from_value(value: Value) -> Self {
        let text =
            serde_json::value::to_raw_value(&value).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self {
            text,
            value: OnceLock::from(value),
        }
    }

    /// The JSON text as received.
    pub fn text(&self) -> &str {
        self.text.get()
    }

    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            // The text was checked as JSON while the review was decoded, nesting limit
            // included, so reading it again can't fail.
            serde_json::from_str(self.text.get()).unwrap_or(Value::Null)
        })
    }

    pub fn is_object(&self) -> bool {
        self.text.get().starts_with('{')
    }
}

impl<'de> Deserialize<'de> for ObjectJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self {
            text: Box::<RawValue>::deserialize(deserializer)?,
            value: OnceLock::new(),
        })
    }
}

impl Clone for ObjectJson {
    fn clone(&self) -> Self {
        Self {
            text: self.text.clone(),
            value: self.value.clone(),
        }
    }
}

impl PartialEq for ObjectJson {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl std::fmt::Debug for ObjectJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text.get())
    }
}

pub fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// Why a body is not an AdmissionReview we can answer. Each becomes an HTTP 400 whose JSON
/// body carries the message: without a usable `uid` there is no AdmissionResponse to send.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("request body is empty; expected an AdmissionReview ({API_VERSION})")]
    EmptyBody,
    #[error("request body is not valid JSON: {0}")]
    NotJson(String),
    #[error("request body is not an AdmissionReview: expected a JSON object with kind {KIND:?}")]
    NotAnObject,
    #[error("request body is not an AdmissionReview: kind is {0}")]
    WrongKind(String),
    #[error(
        "unsupported AdmissionReview apiVersion {0}: raygate speaks {API_VERSION} only \
         (set admissionReviewVersions: [v1] in the webhook configuration)"
    )]
    WrongApiVersion(String),
    #[error("AdmissionReview has no request")]
    MissingRequest,
    #[error("AdmissionReview request has no uid")]
    MissingUid,
    #[error("AdmissionReview request is malformed at {path}: {message}")]
    MalformedRequest { path: String, message: String },
    #[error("AdmissionReview request for {operation} has no object")]
    MissingObject { operation: &'static str },
}

/// An AdmissionReview read straight into its request: the common, well-formed case.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    kind: String,
    api_version: String,
    request: ReviewRequest,
}

/// Reads an AdmissionReview body into the request it carries.
pub fn decode(body: &[u8]) -> Result<ReviewRequest, DecodeError> {
    // One pass from bytes to the typed request. Going through a `Value` first (to name what
    // is wrong) rebuilds the whole object a second time, which was a third of the webhook's
    // CPU under load; only a body the fast pass refuses takes that path.
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(body)
        && envelope.kind == KIND
        && envelope.api_version == API_VERSION
        && !envelope.request.uid.is_empty()
        && has_needed_object(&envelope.request)
        && envelope
            .request
            .object
            .as_ref()
            .is_none_or(|o| nesting_depth(o.text()) <= MAX_FAST_NESTING)
    {
        return Ok(envelope.request);
    }
    decode_explained(body)
}

/// Deeper objects take the step-by-step path, whose `Value` parse enforces serde_json's
/// nesting limit (128 levels for the whole review); the fast pass keeps the object as text,
/// which is checked for syntax but not for depth.
const MAX_FAST_NESTING: usize = 100;

/// How deeply arrays and objects nest in a JSON text (brackets inside strings don't count).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in text.as_bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// CREATE and UPDATE carry the object to check; DELETE and CONNECT may not.
fn has_needed_object(request: &ReviewRequest) -> bool {
    let needs_object = matches!(request.operation, Operation::Create | Operation::Update);
    !needs_object || request.object.as_ref().is_some_and(ObjectJson::is_object)
}

/// [`decode`] step by step, so that a body which is not a usable review gets an error naming
/// what is wrong.
fn decode_explained(body: &[u8]) -> Result<ReviewRequest, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::EmptyBody);
    }
    // serde_json bounds nesting at 128 levels, so a hostile, deeply nested body is an
    // error here, not a stack overflow.
    let review: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Value::Object(mut review) = review else {
        return Err(DecodeError::NotAnObject);
    };
    match review.get("kind") {
        Some(Value::String(kind)) if kind == KIND => {}
        Some(other) => return Err(DecodeError::WrongKind(other.to_string())),
        None => return Err(DecodeError::WrongKind("missing".to_owned())),
    }
    match review.get("apiVersion") {
        Some(Value::String(version)) if version == API_VERSION => {}
        Some(other) => return Err(DecodeError::WrongApiVersion(other.to_string())),
        None => return Err(DecodeError::WrongApiVersion("(missing)".to_owned())),
    }
    let request = match review.remove("request") {
        Some(request @ Value::Object(_)) => request,
        _ => return Err(DecodeError::MissingRequest),
    };
    match request.get("uid") {
        Some(Value::String(uid)) if !uid.is_empty() => {}
        _ => return Err(DecodeError::MissingUid),
    }
    // The object is kept as text, which a `Value` can't hand to serde; it is moved over as is.
    let mut request = request;
    let object = request
        .as_object_mut()
        .and_then(|r| r.remove("object"))
        .filter(|o| !o.is_null());
    let mut request: ReviewRequest = serde_path_to_error::deserialize(request).map_err(|e| {
        let path = match e.path().to_string() {
            root if root == "." => "request".to_owned(),
            path => format!("request.{path}"),
        };
        DecodeError::MalformedRequest {
            path,
            message: e.into_inner().to_string(),
        }
    })?;
    request.object = object.map(ObjectJson::from_value);
    if !has_needed_object(&request) {
        return Err(DecodeError::MissingObject {
            operation: request.operation_name(),
        });
    }
    Ok(request)
}

/// Bytes in base64, kept as the quoted JSON string the answer carries and written into it
/// verbatim. base64's alphabet holds nothing JSON escapes, and serde_json's string writer
/// looks up every byte to escape: for a mutation's patch (~7 KB encoded) that scan cost about
/// as much as the encoding itself (callgrind, ~64k instructions a review).
#[derive(Debug, Clone, PartialEq)]
pub struct Base64Literal {
    quoted: String,
}

impl Base64Literal {
    pub fn encode(bytes: &[u8]) -> Self {
        let mut quoted = String::with_capacity(bytes.len().div_ceil(3) * 4 + 2);
        quoted.push('"');
        base64_simd::STANDARD.encode_append(bytes, &mut quoted);
        quoted.push('"');
        Base64Literal { quoted }
    }

    /// The base64 text, without the quotes.
    pub fn as_str(&self) -> &str {
        self.quoted
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or_default()
    }
}

impl Serialize for Base64Literal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Borrowing it as a raw value checks it is one JSON string (a fast scan), so the
        // verbatim write cannot break the document.
        match serde_json::from_str::<&RawValue>(&self.quoted) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => serializer.serialize_str(self.as_str()),
        }
    }
}

/// Our answer, as the `response` of an AdmissionReview.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// A JSON Patch (RFC 6902), base64-encoded as Go's `[]byte` expects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<Base64Literal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Recorded in the API server's audit log, each key prefixed with the webhook's name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub audit_annotations: std::collections::BTreeMap<String, String>,
}

impl ReviewResponse {
    /// Attaches a JSON patch (already serialized) in the encoding the API server reads.
    pub fn with_patch_json(mut self, patch_json: &[u8]) -> Self {
        self.patch = Some(Base64Literal::encode(patch_json));
        self.patch_type = Some("JSONPatch");
        self
    }

    /// The whole AdmissionReview document carrying this response.
    pub fn into_review(self) -> AnsweredReview {
        AnsweredReview {
            api_version: API_VERSION,
            kind: KIND,
            response: self,
        }
    }
}

/// The AdmissionReview sent back, serialized straight from our types.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnsweredReview {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: ReviewResponse,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap_or_default()
    }

    fn review(request: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": KIND, "request": request})
    }

    fn request() -> Value {
        json!({
            "uid": "u-1",
            "kind": {"group": "ray.io", "version": "v1", "kind": "RayCluster"},
            "resource": {"group": "ray.io", "version": "v1", "resource": "rayclusters"},
            "name": "x",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "x"}},
            "oldObject": null,
            "dryRun": false,
        })
    }

    #[test]
    fn decodes_a_v1_review() {
        let decoded = decode(&body(review(request()))).expect("valid review");
        assert_eq!(decoded.uid, "u-1");
        assert_eq!(decoded.kind.kind, "RayCluster");
        assert_eq!(decoded.operation_name(), "CREATE");
        assert_eq!(decoded.object_name(), "x");
        assert!(decoded.old_object.is_none());
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(decode(b" \n"), Err(DecodeError::EmptyBody));
        assert!(matches!(decode(b"{"), Err(DecodeError::NotJson(_))));
        assert_eq!(decode(b"[1]"), Err(DecodeError::NotAnObject));
        let mut v1beta1 = review(request());
        v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
        assert!(matches!(
            decode(&body(v1beta1)),
            Err(DecodeError::WrongApiVersion(v)) if v.contains("v1beta1")
        ));
        let mut no_uid = request();
        no_uid["uid"] = json!("");
        assert_eq!(decode(&body(review(no_uid))), Err(DecodeError::MissingUid));
        let mut bad_op = request();
        bad_op["operation"] = json!("PATCH");
        assert!(matches!(
            decode(&body(review(bad_op))),
            Err(DecodeError::MalformedRequest { path, .. }) if path == "request.operation"
        ));
        let mut no_object = request();
        no_object["object"] = Value::Null;
        assert_eq!(
            decode(&body(review(no_object))),
            Err(DecodeError::MissingObject {
                operation: "CREATE"
            })
        );
    }

    #[test]
    fn the_one_pass_decode_agrees_with_the_step_by_step_one() {
        let mut update = request();
        update["operation"] = json!("UPDATE");
        update["oldObject"] = json!({"kind": "RayCluster", "spec": {"x": [1, 2.5, null]}});
        let mut delete = request();
        delete["operation"] = json!("DELETE");
        delete["object"] = Value::Null;
        let mut wrong_kind = review(request());
        wrong_kind["kind"] = json!("AdmissionReviewList");
        let mut no_uid = request();
        no_uid["uid"] = json!("");
        let mut number_uid = request();
        number_uid["uid"] = json!(7);
        let mut string_object = request();
        string_object["object"] = json!("not an object");
        let mut bodies: Vec<Vec<u8>> = [
            review(request()),
            review(update),
            review(delete),
            wrong_kind,
            review(no_uid),
            review(number_uid),
            review(string_object),
            json!({"apiVersion": API_VERSION, "kind": KIND}),
        ]
        .into_iter()
        .map(body)
        .collect();
        // A key given twice: JSON parsers keep the last; a typed read refuses it.
        bodies.push(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","kind":"AdmissionReview",
                "request":{"uid":"a","uid":"b","kind":{"group":"ray.io","version":"v1","kind":"RayCluster"},
                "operation":"CREATE","object":{"kind":"RayCluster","kind":"RayJob"}}}"#
                .to_vec(),
        );
        bodies.push(b"{\"kind\": \"AdmissionReview\"".to_vec());
        for body in &bodies {
            assert_eq!(
                decode(body),
                decode_explained(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let last_wins = decode(&bodies[8]).expect("a review with repeated keys");
        assert_eq!(last_wins.uid, "b");
        assert_eq!(
            last_wins.object,
            Some(ObjectJson::from_value(json!({"kind": "RayJob"})))
        );
    }

    #[test]
    fn nesting_depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth("1"), 0);
        assert_eq!(nesting_depth(r#"{"a":[{"b":[]}],"c":{}}"#), 4);
        assert_eq!(nesting_depth(r#"{"a":"[[[{{{","b":"\\\"[["}"#), 1);
    }

    /// The fast pass keeps the object as text without a depth check: a deeply nested object
    /// goes the step-by-step way, which reads it as before (or names the nesting limit).
    #[test]
    fn deep_objects_are_decoded_as_before() {
        for depth in [MAX_FAST_NESTING - 1, MAX_FAST_NESTING + 10, 130] {
            let mut object = request();
            let mut deep = json!(1);
            for _ in 0..depth {
                deep = json!([deep]);
            }
            object["object"]["spec"] = deep;
            let body = body(review(object));
            let decoded = decode(&body);
            assert_eq!(decoded, decode_explained(&body), "depth {depth}");
            match decoded {
                Ok(request) => {
                    let object = request.object.expect("an object");
                    assert!(depth < 120, "depth {depth} decoded");
                    assert_eq!(
                        serde_json::from_str::<Value>(object.text()).ok().as_ref(),
                        Some(object.value())
                    );
                }
                Err(DecodeError::NotJson(message)) => {
                    assert!(depth >= 120, "depth {depth}: {message}");
                    assert!(message.contains("recursion limit"), "{message}");
                }
                Err(other) => panic!("depth {depth}: {other}"),
            }
        }
    }

    #[test]
    fn delete_needs_no_object() {
        let mut delete = request();
        delete["operation"] = json!("DELETE");
        delete["object"] = Value::Null;
        assert!(decode(&body(review(delete))).is_ok());
    }

    #[test]
    fn patch_is_base64() {
        let response = ReviewResponse::default().with_patch_json(br#"[]"#);
        assert_eq!(
            response.patch.as_ref().map(Base64Literal::as_str),
            Some("W10=")
        );
        let text = serde_json::to_string(&response.clone().into_review()).unwrap_or_default();
        assert!(
            text.contains(r#""patch":"W10=","patchType":"JSONPatch""#),
            "{text}"
        );
        let review = serde_json::to_value(response.into_review()).unwrap_or_default();
        assert_eq!(review["response"]["patch"], "W10=");
        assert_eq!(review["response"]["patchType"], "JSONPatch");
        assert_eq!(review["kind"], KIND);
        assert_eq!(review["apiVersion"], API_VERSION);
    }
}
