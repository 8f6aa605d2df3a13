//! Checking a RayPolicy and turning it into what evaluation uses. The webhook's admission of a
//! RayPolicy, its watch of RayPolicies, `--policy-dir` and `raygate check --policy` all go
//! through [`compile`], so a policy that is admitted is a policy that loads, and one that does
//! not load is never half-applied.

use serde_json::Value;

use super::selector;
use super::types::{Action, RayPolicy, RayPolicySpec};
use super::version_range::VersionRange;
use crate::admission::parse;
use crate::field_error::{FieldError, Validation};
use crate::quantity::{self, Quantity};

pub const POLICY_API_VERSION: &str = "raygate.io/v1alpha1";
pub const POLICY_KIND: &str = "RayPolicy";

/// A RayPolicy that passed validation, with its limits parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledPolicy {
    pub name: String,
    pub spec: RayPolicySpec,
    pub(crate) max_cpu: Option<Quantity>,
    pub(crate) max_memory: Option<Quantity>,
    pub(crate) ray_versions: Option<VersionRange>,
}

impl CompiledPolicy {
    /// The action of a rule: its own, else the policy's.
    pub(crate) fn action(&self, rule: Option<Action>) -> Action {
        rule.unwrap_or(self.spec.action)
    }
}

/// Whether a document is a RayPolicy (by apiVersion and kind).
pub fn is_policy(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some(POLICY_KIND)
        && object.get("apiVersion").and_then(Value::as_str) == Some(POLICY_API_VERSION)
}

/// Validates a RayPolicy object: errors name the field (`spec.rules.maxMemoryPerCluster.limit`).
pub fn validate_policy(object: &Value) -> Validation {
    match compile(object) {
        Ok(_) => Validation::default(),
        Err(errors) => Validation {
            errors,
            warnings: Vec::new(),
        },
    }
}

/// A checked policy, or every problem found in it.
pub fn compile(object: &Value) -> Result<CompiledPolicy, Vec<FieldError>> {
    let mut errors = Vec::new();
    match object.get("apiVersion").and_then(Value::as_str) {
        Some(POLICY_API_VERSION) => {}
        other => errors.push(FieldError::new(
            "apiVersion",
            format!("must be {POLICY_API_VERSION}, got {other:?}"),
        )),
    }
    match object.get("kind").and_then(Value::as_str) {
        Some(POLICY_KIND) => {}
        other => errors.push(FieldError::new(
            "kind",
            format!("must be {POLICY_KIND}, got {other:?}"),
        )),
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        errors.push(FieldError::new("metadata.name", "a RayPolicy needs a name"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let policy: RayPolicy = match parse(object) {
        Ok(policy) => policy,
        Err(error) => return Err(vec![error]),
    };
    let spec = policy.spec;
    let rules = &spec.rules;

    if let Some(selector) = &spec.match_.namespace_selector {
        selector::validate(selector, "spec.match.namespaceSelector", &mut errors);
    }
    for (index, namespace) in spec.match_.namespaces.iter().enumerate() {
        if namespace.is_empty() {
            errors.push(FieldError::new(
                format!("spec.match.namespaces[{index}]"),
                "must not be empty",
            ));
        }
    }
    let counts = [
        ("maxGpusPerPod", &rules.max_gpus_per_pod),
        ("maxGpusPerGroup", &rules.max_gpus_per_group),
        ("maxGpusPerCluster", &rules.max_gpus_per_cluster),
        ("maxReplicasPerGroup", &rules.max_replicas_per_group),
        ("maxWorkerGroups", &rules.max_worker_groups),
    ];
    for (rule, limit) in counts {
        if let Some(limit) = limit
            && limit.limit < 0
        {
            errors.push(FieldError::new(
                format!("spec.rules.{rule}.limit"),
                format!("must be zero or more, got {}", limit.limit),
            ));
        }
    }
    let mut quantity_limit = |rule: &str, limit: Option<&super::types::QuantityLimit>| {
        let limit = limit?;
        match quantity::parse(&limit.limit.0) {
            Some(q) if q.nanos() >= 0 => Some(q),
            Some(_) => {
                errors.push(FieldError::new(
                    format!("spec.rules.{rule}.limit"),
                    format!("must not be negative, got {:?}", limit.limit.0),
                ));
                None
            }
            None => {
                errors.push(FieldError::new(
                    format!("spec.rules.{rule}.limit"),
                    quantity::invalid_message(&limit.limit.0),
                ));
                None
            }
        }
    };
    let max_cpu = quantity_limit("maxCpuPerCluster", rules.max_cpu_per_cluster.as_ref());
    let max_memory = quantity_limit("maxMemoryPerCluster", rules.max_memory_per_cluster.as_ref());

    let ray_versions = match &rules.allowed_ray_versions {
        Some(rule) => match VersionRange::parse(&rule.range) {
            Ok(range) => Some(range),
            Err(message) => {
                errors.push(FieldError::new(
                    "spec.rules.allowedRayVersions.range",
                    message,
                ));
                None
            }
        },
        None => None,
    };
    if let Some(rule) = &rules.allowed_images {
        if rule.registries.is_empty() && rule.patterns.is_empty() {
            errors.push(FieldError::new(
                "spec.rules.allowedImages",
                "set registries or patterns (an empty list would forbid every image)",
            ));
        }
        let entries = rule
            .registries
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("spec.rules.allowedImages.registries[{i}]"), r))
            .chain(
                rule.patterns
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("spec.rules.allowedImages.patterns[{i}]"), p)),
            );
        for (path, entry) in entries {
            if entry.is_empty() || entry.chars().any(char::is_whitespace) {
                errors.push(FieldError::new(
                    path,
                    format!(
                        "{entry:?} is not an image reference: it must be non-empty, without spaces"
                    ),
                ));
            }
        }
        for (index, registry) in rule.registries.iter().enumerate() {
            if registry.contains(['*', '?', '@']) {
                errors.push(FieldError::new(
                    format!("spec.rules.allowedImages.registries[{index}]"),
                    format!("{registry:?} is a pattern; put patterns under allowedImages.patterns"),
                ));
            }
        }
    }
    if let Some(rule) = &rules.allowed_accelerator_types
        && rule.values.is_empty()
    {
        errors.push(FieldError::new(
            "spec.rules.allowedAcceleratorTypes.values",
            "list at least one accelerator type",
        ));
    }
    if let Some(rule) = &rules.required_labels {
        if rule.keys.is_empty() {
            errors.push(FieldError::new(
                "spec.rules.requiredLabels.keys",
                "list at least one label key",
            ));
        }
        for (index, key) in rule.keys.iter().enumerate() {
            if key.is_empty() || key.len() > 317 || key.chars().any(char::is_whitespace) {
                errors.push(FieldError::new(
                    format!("spec.rules.requiredLabels.keys[{index}]"),
                    format!("{key:?} is not a label key"),
                ));
            }
        }
    }
    if let Some(rule) = &rules.required_limits {
        for (index, resource) in rule.resources.iter().enumerate() {
            if resource.is_empty() {
                errors.push(FieldError::new(
                    format!("spec.rules.requiredLimits.resources[{index}]"),
                    "must not be empty",
                ));
            }
        }
    }
    if let Some(rule) = &rules.forbidden_pod_settings {
        let any = rule.privileged
            || rule.host_network
            || rule.host_pid
            || rule.host_ipc
            || rule.host_path_volumes
            || rule.added_capabilities;
        if !any {
            errors.push(FieldError::new(
                "spec.rules.forbiddenPodSettings",
                "forbids nothing: set at least one of privileged, hostNetwork, hostPID, hostIPC, \
                 hostPathVolumes, addedCapabilities to true",
            ));
        }
    }
    if let Some(inject) = &spec.inject {
        for (index, secret) in inject.image_pull_secrets.iter().enumerate() {
            if secret.name.is_empty() {
                errors.push(FieldError::new(
                    format!("spec.inject.imagePullSecrets[{index}].name"),
                    "must not be empty",
                ));
            }
        }
        if inject.priority_class_name.as_deref() == Some("") {
            errors.push(FieldError::new(
                "spec.inject.priorityClassName",
                "must not be empty",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CompiledPolicy {
        name,
        spec,
        max_cpu,
        max_memory,
        ray_versions,
    })
}
