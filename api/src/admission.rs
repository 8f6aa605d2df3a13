//! The admission pipeline as one pure function: normalize (mutate), then validate the
//! normalized object. The webhook, the controller's safety net and `raygate check` call it.

use json_patch::Patch;
use serde::de::DeserializeOwned;
use serde_json::Value;

use std::collections::BTreeMap;

use crate::defaults::normalize;
use crate::field_error::{FieldError, Validation};
use crate::policy::{PolicySet, Violation};
use crate::validation::{
    validate_raycluster, validate_raycronjob, validate_rayjob, validate_rayservice,
};
use crate::{RayCluster, RayCronJob, RayJob, RayService};

/// The kinds raygate admits.
pub const RAY_KINDS: [&str; 4] = ["RayCluster", "RayJob", "RayService", "RayCronJob"];

/// What admission decides for one object.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionVerdict {
    /// Operations turning the object as received into the normalized one.
    pub patch: Patch,
    /// The object after normalization.
    pub normalized: Value,
    /// Validation errors, then one per `Deny` policy violation.
    pub errors: Vec<FieldError>,
    /// Defaulting and validation warnings, then one per `Warn` policy violation.
    pub warnings: Vec<String>,
    /// Every policy violation, whatever its action (`Audit` ones appear only here).
    pub violations: Vec<Violation>,
}

impl AdmissionVerdict {
    pub fn allowed(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Audit` violations as AdmissionResponse `auditAnnotations`.
    pub fn audit_annotations(&self) -> BTreeMap<String, String> {
        crate::policy::PolicyEvaluation {
            matched: Vec::new(),
            violations: self.violations.clone(),
        }
        .audit_annotations()
    }
}

/// Mutation: the normalized object, the JSON patch to it, and warnings about changed values.
/// The patch is computed on the JSON as received, so fields our types don't know survive.
pub fn mutate(object: &Value) -> (Value, Patch, Vec<String>) {
    let (normalized, warnings) = normalized_with_policies(object, None);
    let patch = crate::json_diff::diff(object, &normalized);
    (normalized, patch, warnings)
}

/// Validation of an object (already normalized by the mutating step), against the stored
/// object on UPDATE. An object that doesn't fit the types is one error at the offending path.
pub fn validate(object: &Value, old: Option<&Value>) -> Validation {
    match object.get("kind").and_then(Value::as_str) {
        Some("RayCluster") => validate_typed::<RayCluster>(object, old, validate_raycluster),
        Some("RayJob") => validate_typed::<RayJob>(object, old, validate_rayjob),
        Some("RayService") => validate_typed::<RayService>(object, old, validate_rayservice),
        Some("RayCronJob") => validate_typed::<RayCronJob>(object, old, validate_raycronjob),
        Some(other) => {
            let mut v = Validation::default();
            v.error(
                "kind",
                format!("raygate does not admit kind {other:?}; expected one of {RAY_KINDS:?}"),
            );
            v
        }
        None => {
            let mut v = Validation::default();
            v.error("kind", "the object has no kind");
            v
        }
    }
}

/// [`validate`] of an object given as JSON text, for a caller that knows its kind (the
/// webhook: the API server names it in the review). The typed view is read straight from the
/// text, without building a `Value` first. `None` when the text doesn't read as that kind
/// (or the kind isn't ours): only [`validate`] on the `Value` can name the offending field.
pub fn validate_json(kind: &str, object: &str, old: Option<&Value>) -> Option<Validation> {
    fn typed<K: DeserializeOwned>(
        object: &str,
        old: Option<&Value>,
        rules: fn(&K, Option<&K>) -> Validation,
    ) -> Option<Validation> {
        let typed: K = serde_json::from_str(object).ok()?;
        let old: Option<K> = old.and_then(|old| parse(old).ok());
        Some(rules(&typed, old.as_ref()))
    }
    match kind {
        "RayCluster" => typed::<RayCluster>(object, old, validate_raycluster),
        "RayJob" => typed::<RayJob>(object, old, validate_rayjob),
        "RayService" => typed::<RayService>(object, old, validate_rayservice),
        "RayCronJob" => typed::<RayCronJob>(object, old, validate_raycronjob),
        _ => None,
    }
}

/// The full pipeline: mutate, then validate what mutation produced.
pub fn admit(object: &Value, old: Option<&Value>) -> AdmissionVerdict {
    let (normalized, patch, mut warnings) = mutate(object);
    let validation = validate(&normalized, old);
    warnings.extend(validation.warnings);
    AdmissionVerdict {
        patch,
        normalized,
        errors: validation.errors,
        warnings,
        violations: Vec::new(),
    }
}

/// Mutation with policies: what matching policies inject is added to the object as received,
/// then defaults fill the rest (an injected value is the user's as far as defaults go). The
/// patch goes from the object as received to the result.
pub fn mutate_with_policies(
    object: &Value,
    policies: &PolicySet,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> (Value, Patch, Vec<String>) {
    let (normalized, warnings) =
        normalized_with_policies(object, Some((policies, namespace, namespace_labels)));
    let patch = crate::json_diff::diff(object, &normalized);
    (normalized, patch, warnings)
}

/// The normalized copy of the object and the warnings, with what matching policies inject
/// (policies, namespace, namespace labels) added first. The webhook turns it into the patch's
/// text with [`crate::json_diff::diff_json`].
pub fn normalized_with_policies(
    object: &Value,
    policies: Option<(&PolicySet, &str, &BTreeMap<String, String>)>,
) -> (Value, Vec<String>) {
    let mut normalized = object.clone();
    if let Some((policies, namespace, namespace_labels)) = policies {
        policies.inject(&mut normalized, namespace, namespace_labels);
    }
    let warnings = normalize(&mut normalized);
    (normalized, warnings)
}

/// The full pipeline with policies, as the webhook's two calls give it: inject and normalize,
/// then validate and evaluate the policies on what mutation produced. Any `Deny` violation
/// denies; `Warn` ones become warnings prefixed with the policy's name; `Audit` ones are only
/// recorded (see [`AdmissionVerdict::audit_annotations`]).
pub fn admit_with_policies(
    object: &Value,
    old: Option<&Value>,
    policies: &PolicySet,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> AdmissionVerdict {
    let (normalized, patch, mut warnings) =
        mutate_with_policies(object, policies, namespace, namespace_labels);
    let validation = validate(&normalized, old);
    warnings.extend(validation.warnings);
    let mut errors = validation.errors;
    let evaluation = policies.evaluate(&normalized, namespace, namespace_labels);
    errors.extend(evaluation.errors());
    warnings.extend(evaluation.warnings());
    AdmissionVerdict {
        patch,
        normalized,
        errors,
        warnings,
        violations: evaluation.violations,
    }
}

fn validate_typed<K: DeserializeOwned>(
    object: &Value,
    old: Option<&Value>,
    rules: fn(&K, Option<&K>) -> Validation,
) -> Validation {
    let typed: K = match parse(object) {
        Ok(typed) => typed,
        Err(error) => {
            let mut v = Validation::default();
            v.errors.push(error);
            return v;
        }
    };
    // An old object that no longer parses can't be compared; the new one still gets checked.
    let old: Option<K> = old.and_then(|old| parse(old).ok());
    rules(&typed, old.as_ref())
}

/// Typed view of an object; a mismatch names the field as the user wrote it.
pub fn parse<K: DeserializeOwned>(object: &Value) -> Result<K, FieldError> {
    // Tracking the path costs time on every field; only a failed parse needs it.
    if let Ok(typed) = K::deserialize(object) {
        return Ok(typed);
    }
    serde_path_to_error::deserialize(object).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        FieldError::new(path, error.into_inner().to_string())
    })
}
