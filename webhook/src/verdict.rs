//! The deciding function: one AdmissionReview request in, one [`Verdict`] out. Nothing here
//! knows about HTTP, so each rule is a plain unit test.
//!
//! The rules that decide *what* is valid live in `raygate-api`; this module decides *when*
//! they run (which operations, which kinds, status-only updates, deletions) and turns their
//! findings into the response shape `kubectl` prints for built-in types.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use kube::core::admission::Operation;
use kube::core::response::{Status, StatusCause, StatusDetails};
use raygate_api::FieldError;
use raygate_api::admission::{RAY_KINDS, normalized_with_policies, validate, validate_json};
use raygate_api::json_diff::diff_json;
use raygate_api::policy::{POLICY_KIND, PolicySet, Violation, validate_policy};
use serde_json::Value;

use crate::review::{ObjectJson, ReviewRequest, ReviewResponse};

/// The API group raygate serves.
pub const RAY_GROUP: &str = "ray.io";
/// The version raygate serves; with `matchPolicy: Equivalent` the API server converts others.
pub const RAY_VERSION: &str = "v1";
/// The group and version of raygate's own RayPolicy.
pub const POLICY_GROUP: &str = "raygate.io";
pub const POLICY_VERSION: &str = "v1alpha1";

/// Which webhook is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Mutate,
    Validate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// How a review ended, as the `result` metric label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Allowed,
    Denied,
    /// We could not decide (a bug in raygate): the request is refused, never waved through.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// What raygate answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    /// Why the request was let through without running any rule, when it was.
    pub skipped: Option<&'static str>,
    /// Set when the request is refused.
    pub status: Option<Status>,
    /// The JSON patch (serialized) to apply; `None` when there is nothing to change.
    pub patch_json: Option<Vec<u8>>,
    pub warnings: Vec<String>,
    /// The RayPolicies that applied to the object (validation only).
    pub matched_policies: Vec<String>,
    /// RayPolicy findings (validation only), whatever their action.
    pub violations: Vec<Violation>,
    /// `Audit` findings, for the API server's audit log.
    pub audit_annotations: BTreeMap<String, String>,
}

impl Verdict {
    fn allow() -> Self {
        Self {
            outcome: Outcome::Allowed,
            skipped: None,
            status: None,
            patch_json: None,
            warnings: Vec::new(),
            matched_policies: Vec::new(),
            violations: Vec::new(),
            audit_annotations: BTreeMap::new(),
        }
    }

    fn skip(reason: &'static str) -> Self {
        Self {
            skipped: Some(reason),
            ..Self::allow()
        }
    }

    fn refuse(outcome: Outcome, status: Status) -> Self {
        Self {
            outcome,
            status: Some(status),
            ..Self::allow()
        }
    }

    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }

    /// The AdmissionReview response for the request with this `uid`.
    pub fn into_response(self, uid: &str) -> ReviewResponse {
        let response = ReviewResponse {
            uid: uid.to_owned(),
            allowed: self.allowed(),
            status: self.status,
            warnings: self.warnings,
            audit_annotations: self.audit_annotations,
            ..ReviewResponse::default()
        };
        match &self.patch_json {
            Some(patch) => response.with_patch_json(patch),
            None => response,
        }
    }
}

/// Decides one review with no RayPolicies in force.
pub fn decide(endpoint: Endpoint, request: &ReviewRequest) -> Verdict {
    decide_with_policies(endpoint, request, &PolicySet::default(), &BTreeMap::new())
}

/// Decides one review. `namespace_labels` are the labels of the request's namespace, for the
/// policies' namespaceSelectors.
pub fn decide_with_policies(
    endpoint: Endpoint,
    request: &ReviewRequest,
    policies: &PolicySet,
    namespace_labels: &BTreeMap<String, String>,
) -> Verdict {
    // Deletions are never checked, so finalizers can always be removed and a broken rule can
    // never make an object undeletable. CONNECT carries no object to check.
    match request.operation {
        Operation::Delete => return Verdict::skip("DELETE is not checked"),
        Operation::Connect => return Verdict::skip("CONNECT is not checked"),
        Operation::Create | Operation::Update => {}
    }
    if !serves(request) {
        let kind = &request.kind;
        let group = if kind.group.is_empty() {
            "core"
        } else {
            &kind.group
        };
        let message = format!(
            "raygate does not serve kind {} ({group}/{}); it admits {RAY_GROUP}/{RAY_VERSION} {} \
             and {POLICY_GROUP}/{POLICY_VERSION} {POLICY_KIND}: check the rules of the webhook \
             configuration",
            kind.kind,
            kind.version,
            RAY_KINDS.join(", "),
        );
        return Verdict::refuse(
            Outcome::Denied,
            Status::failure(&message, "BadRequest").with_code(400),
        );
    }
    if request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        // The controller writes status through the subresource; the spec can't change there.
        return Verdict::skip("subresource updates are not checked");
    }
    let Some(object) = request.object.as_ref() else {
        // `review::decode` refuses CREATE and UPDATE without an object; stay total anyway.
        return Verdict::skip("no object to check");
    };
    if request.operation == Operation::Update {
        if object
            .value()
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            // An object being deleted only ever loses finalizers; blocking that would leave
            // it stuck in Terminating.
            return Verdict::skip("the object is being deleted");
        }
        if let Some(old) = request.old_object.as_ref()
            && same_desired_state(object.value(), old)
        {
            return Verdict::skip("the update changes only status or bookkeeping metadata");
        }
    }
    if is_policy(request) {
        return match endpoint {
            // A RayPolicy has no defaults to write.
            Endpoint::Mutate => Verdict::allow(),
            Endpoint::Validate => decide_policy(request, object.value()),
        };
    }
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let policies = Policies {
        set: policies,
        namespace,
        labels: namespace_labels,
    };
    match endpoint {
        Endpoint::Mutate => decide_mutation(request, object.value(), &policies),
        Endpoint::Validate => decide_validation(request, object, &policies),
    }
}

/// The policies in force and where the request's object lives.
struct Policies<'a> {
    set: &'a PolicySet,
    namespace: &'a str,
    labels: &'a BTreeMap<String, String>,
}

fn serves(request: &ReviewRequest) -> bool {
    let kind = &request.kind;
    (kind.group == RAY_GROUP
        && kind.version == RAY_VERSION
        && RAY_KINDS.contains(&kind.kind.as_str()))
        || is_policy(request)
}

fn is_policy(request: &ReviewRequest) -> bool {
    let kind = &request.kind;
    kind.group == POLICY_GROUP && kind.version == POLICY_VERSION && kind.kind == POLICY_KIND
}

/// A RayPolicy is checked exactly as the webhook's watch will load it, so an admitted policy
/// is always enforced whole.
fn decide_policy(request: &ReviewRequest, object: &Value) -> Verdict {
    let validation = match catch_unwind(AssertUnwindSafe(|| validate_policy(object))) {
        Ok(validation) => validation,
        Err(panic) => return internal_error(request, "policy validation", &panic_message(&panic)),
    };
    if validation.errors.is_empty() {
        return Verdict::allow();
    }
    let status = invalid_status_in(
        POLICY_GROUP,
        &request.kind.kind,
        request.object_name(),
        &validation.errors,
        object,
    );
    Verdict::refuse(Outcome::Denied, status)
}

fn decide_mutation(request: &ReviewRequest, object: &Value, policies: &Policies<'_>) -> Verdict {
    let mutated = catch_unwind(AssertUnwindSafe(|| {
        let in_force = Some((policies.set, policies.namespace, policies.labels));
        let (normalized, warnings) = normalized_with_policies(object, in_force);
        (diff_json(object, &normalized), warnings)
    }));
    let (patch_json, warnings) = match mutated {
        Ok(mutated) => mutated,
        Err(panic) => return internal_error(request, "defaulting", &panic_message(&panic)),
    };
    Verdict {
        patch_json,
        warnings,
        ..Verdict::allow()
    }
}

fn decide_validation(
    request: &ReviewRequest,
    object: &ObjectJson,
    policies: &Policies<'_>,
) -> Verdict {
    let old = match request.operation {
        Operation::Update => request.old_object.as_ref().filter(|o| o.is_object()),
        _ => None,
    };
    let decided = catch_unwind(AssertUnwindSafe(|| {
        // The common case (rules pass, no policy applies) reads the typed view from the text
        // and never builds the object's `Value`.
        let mut validation = validate_json(&request.kind.kind, object.text(), old)
            .unwrap_or_else(|| validate(object.value(), old));
        let kind = &request.kind.kind;
        let evaluation = if policies
            .set
            .matching(kind, policies.namespace, policies.labels)
            .next()
            .is_some()
        {
            policies
                .set
                .evaluate(object.value(), policies.namespace, policies.labels)
        } else {
            Default::default()
        };
        validation.errors.extend(evaluation.errors());
        validation.warnings.extend(evaluation.warnings());
        (validation, evaluation)
    }));
    let (validation, evaluation) = match decided {
        Ok(decided) => decided,
        Err(panic) => return internal_error(request, "validation", &panic_message(&panic)),
    };
    let audit_annotations = evaluation.audit_annotations();
    let matched_policies = evaluation.matched;
    let violations = evaluation.violations;
    let mut warnings = validation.warnings;
    if request.operation == Operation::Update && old.is_none() {
        warnings.push(
            "the UPDATE review carried no oldObject, so rules on immutable fields were not checked"
                .to_owned(),
        );
    }
    if validation.errors.is_empty() {
        return Verdict {
            warnings,
            matched_policies,
            violations,
            audit_annotations,
            ..Verdict::allow()
        };
    }
    let status = invalid_status(
        &request.kind.kind,
        request.object_name(),
        &validation.errors,
        object.value(),
    );
    Verdict {
        warnings,
        matched_policies,
        violations,
        audit_annotations,
        ..Verdict::refuse(Outcome::Denied, status)
    }
}

/// The `422 Invalid` status the API server builds for built-in types, so `kubectl` prints
/// `RayCluster.ray.io "x" is invalid: spec.workerGroupSpecs[0].minReplicas: Invalid value: 3: ...`.
/// kubectl hides `details.causes` unless run with `-v4`, so the message names every field.
pub fn invalid_status(kind: &str, name: &str, errors: &[FieldError], object: &Value) -> Status {
    invalid_status_in(RAY_GROUP, kind, name, errors, object)
}

/// [`invalid_status`] for a kind of another API group (raygate.io's RayPolicy).
pub fn invalid_status_in(
    group: &str,
    kind: &str,
    name: &str,
    errors: &[FieldError],
    object: &Value,
) -> Status {
    let described: Vec<String> = errors.iter().map(|e| describe(e, object)).collect();
    let list = match described.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let message = format!("{kind}.{group} {name:?} is invalid: {list}");
    let causes = errors
        .iter()
        .map(|e| StatusCause {
            reason: "FieldValueInvalid".to_owned(),
            message: e.message.clone(),
            field: e.path.clone(),
        })
        .collect();
    Status::failure(&message, "Invalid")
        .with_code(422)
        .with_details(StatusDetails {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: kind.to_owned(),
            uid: String::new(),
            causes,
            retry_after_seconds: 0,
        })
}

/// One error as Kubernetes' `field.Error` prints it: `path: Invalid value: <value>: message`,
/// the value left out when it isn't a short scalar.
fn describe(error: &FieldError, object: &Value) -> String {
    let value = value_at(object, &error.path).and_then(short_scalar);
    let body = match value {
        Some(value) => format!("Invalid value: {value}: {}", error.message),
        None => format!("Invalid value: {}", error.message),
    };
    if error.path.is_empty() {
        body
    } else {
        format!("{}: {body}", error.path)
    }
}

fn short_scalar(value: &Value) -> Option<String> {
    let text = match value {
        Value::Object(_) | Value::Array(_) => return None,
        scalar => scalar.to_string(),
    };
    (text.chars().count() <= 64).then_some(text)
}

/// The value at a user-facing path such as `spec.workerGroupSpecs[0].rayStartParams[num-gpus]`:
/// dots separate keys, brackets hold an index or a key that itself has dots or slashes.
pub fn value_at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = object;
    let mut rest = path;
    while !rest.is_empty() {
        let (segment, bracketed, tail) = if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            (&inner[..end], true, &inner[end + 1..])
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            (&rest[..end], false, &rest[end..])
        };
        current = match current {
            Value::Array(items) if bracketed => items.get(segment.parse::<usize>().ok()?)?,
            Value::Object(map) => map.get(segment)?,
            _ => return None,
        };
        rest = tail.strip_prefix('.').unwrap_or(tail);
    }
    Some(current)
}

/// True when `object` differs from `old` only in status and in metadata the API server keeps
/// (managedFields, resourceVersion, generation): such an update changes nothing we check.
fn same_desired_state(object: &Value, old: &Value) -> bool {
    fn desired(value: &Value) -> Value {
        let mut value = value.clone();
        if let Some(map) = value.as_object_mut() {
            map.remove("status");
        }
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            for volatile in ["managedFields", "resourceVersion", "generation"] {
                meta.remove(volatile);
            }
        }
        value
    }
    desired(object) == desired(old)
}

fn internal_error(request: &ReviewRequest, stage: &str, detail: &str) -> Verdict {
    tracing::error!(uid = %request.uid, stage, detail, "admission failed internally");
    let message = format!(
        "raygate could not evaluate {} {:?}: internal error in {stage} (this is a bug; the \
         webhook log has the details)",
        request.kind.kind,
        request.object_name(),
    );
    Verdict::refuse(
        Outcome::Error,
        Status::failure(&message, "InternalError").with_code(500),
    )
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::GroupVersionKind;
    use serde_json::json;

    fn request(operation: Operation, object: Option<Value>, old: Option<Value>) -> ReviewRequest {
        ReviewRequest {
            uid: "u".to_owned(),
            kind: GroupVersionKind::gvk("ray.io", "v1", "RayCluster"),
            resource: None,
            sub_resource: None,
            name: "x".to_owned(),
            namespace: Some("default".to_owned()),
            operation,
            object: object.map(ObjectJson::from_value),
            old_object: old,
            dry_run: false,
        }
    }

    fn cluster() -> Value {
        json!({
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {"name": "x", "namespace": "default"},
            "spec": {
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.46.0"}]}}
                },
                "workerGroupSpecs": [{
                    "groupName": "w",
                    "replicas": 1, "minReplicas": 3, "maxReplicas": 2,
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.46.0"}]}}
                }]
            }
        })
    }

    #[test]
    fn value_at_follows_keys_indexes_and_bracketed_keys() {
        let object = json!({"spec": {"groups": [{"n": 3}], "labels": {"ray.io/x": "y"}}});
        assert_eq!(value_at(&object, "spec.groups[0].n"), Some(&json!(3)));
        assert_eq!(
            value_at(&object, "spec.labels[ray.io/x]"),
            Some(&json!("y"))
        );
        assert_eq!(value_at(&object, "spec.groups[1]"), None);
        assert_eq!(value_at(&object, "spec.groups[a]"), None);
        assert_eq!(value_at(&object, ""), Some(&object));
    }

    #[test]
    fn denial_names_every_field_like_kubectl() {
        let errors = [
            FieldError::new(
                "spec.workerGroupSpecs[0].minReplicas",
                "minReplicas (3) must not exceed maxReplicas (2)",
            ),
            FieldError::new("metadata.name", "must be no more than 47 characters"),
        ];
        let status = invalid_status("RayCluster", "x", &errors, &cluster());
        assert_eq!(
            status.message,
            "RayCluster.ray.io \"x\" is invalid: [spec.workerGroupSpecs[0].minReplicas: Invalid \
             value: 3: minReplicas (3) must not exceed maxReplicas (2), metadata.name: Invalid \
             value: \"x\": must be no more than 47 characters]"
        );
        assert_eq!(status.code, 422);
        assert_eq!(status.reason, "Invalid");
        let details = status.details.expect("details");
        assert_eq!(details.causes.len(), 2);
        assert_eq!(
            details.causes[0].field,
            "spec.workerGroupSpecs[0].minReplicas"
        );
        assert_eq!(details.causes[0].reason, "FieldValueInvalid");
        assert_eq!(details.group, "ray.io");
    }

    #[test]
    fn a_single_error_has_no_brackets() {
        let errors = [FieldError::new("spec", "is required")];
        let status = invalid_status("RayJob", "j", &errors, &json!({}));
        assert_eq!(
            status.message,
            "RayJob.ray.io \"j\" is invalid: spec: Invalid value: is required"
        );
    }

    #[test]
    fn validation_denies_bad_topology() {
        let verdict = decide(
            Endpoint::Validate,
            &request(Operation::Create, Some(cluster()), None),
        );
        assert_eq!(verdict.outcome, Outcome::Denied);
        let status = verdict.status.expect("status");
        assert!(
            status.message.contains("spec.workerGroupSpecs[0]"),
            "{}",
            status.message
        );
    }

    #[test]
    fn deletes_connects_and_status_updates_are_not_checked() {
        for operation in [Operation::Delete, Operation::Connect] {
            let verdict = decide(
                Endpoint::Validate,
                &request(operation, None, Some(cluster())),
            );
            assert!(verdict.allowed() && verdict.skipped.is_some());
        }
        let mut status_update = request(Operation::Update, Some(cluster()), Some(cluster()));
        status_update.sub_resource = Some("status".to_owned());
        assert!(decide(Endpoint::Validate, &status_update).skipped.is_some());
    }

    #[test]
    fn an_update_that_changes_only_status_is_not_checked() {
        let old = cluster();
        let mut new = cluster();
        new["status"] = json!({"state": "ready"});
        new["metadata"]["resourceVersion"] = json!("42");
        let verdict = decide(
            Endpoint::Validate,
            &request(Operation::Update, Some(new), Some(old)),
        );
        assert!(verdict.allowed());
        assert!(verdict.skipped.is_some());
    }

    #[test]
    fn finalizers_can_always_be_removed() {
        let mut new = cluster();
        new["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let verdict = decide(
            Endpoint::Validate,
            &request(Operation::Update, Some(new), Some(cluster())),
        );
        assert!(verdict.allowed());
    }

    #[test]
    fn update_without_old_object_warns() {
        let mut fixed = cluster();
        fixed["spec"]["workerGroupSpecs"][0]["minReplicas"] = json!(1);
        let verdict = decide(
            Endpoint::Validate,
            &request(Operation::Update, Some(fixed), None),
        );
        assert!(verdict.allowed(), "{verdict:?}");
        assert!(verdict.warnings.iter().any(|w| w.contains("oldObject")));
    }

    #[test]
    fn other_kinds_are_refused_by_name() {
        let mut pod = request(Operation::Create, Some(json!({"kind": "Pod"})), None);
        pod.kind = GroupVersionKind::gvk("", "v1", "Pod");
        let verdict = decide(Endpoint::Mutate, &pod);
        assert_eq!(verdict.outcome, Outcome::Denied);
        assert!(verdict.status.expect("status").message.contains("kind Pod"));
    }

    #[test]
    fn mutation_patches_once_then_not_again() {
        let verdict = decide(
            Endpoint::Mutate,
            &request(Operation::Create, Some(cluster()), None),
        );
        let patch: json_patch::Patch =
            serde_json::from_slice(&verdict.patch_json.expect("a patch")).expect("patch JSON");
        let mut normalized = cluster();
        json_patch::patch(&mut normalized, &patch).expect("patch applies");
        let again = decide(
            Endpoint::Mutate,
            &request(Operation::Create, Some(normalized), None),
        );
        assert_eq!(again.patch_json, None);
    }
}
