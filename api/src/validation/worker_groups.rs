//! Worker group rules: unique names (C3), a Ray container (C5), replica bounds (C7, C8),
//! autoscaler-v2-only settings (C12–C14).
//!
//! C6 (min and max both set when autoscaling is off) cannot fail here: the typed
//! `WorkerGroupSpec` always carries both, with the CRD defaults 0 and 2147483647.

use std::collections::BTreeMap;

use super::autoscaling;
use super::cluster_spec::ClusterScope;
use super::pod_template::{self, worker_groups};
use crate::field_error::Validation;
use crate::ray_version::{self, MIN_GROUP_PRIORITY};

pub(crate) fn check(v: &mut Validation, scope: &ClusterScope) {
    let workers = scope.workers();
    let mut first_index_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, (group, spec)) in workers.iter().zip(worker_groups(scope.spec)).enumerate() {
        let name = spec.group_name.as_str();
        let at = |field: &str| format!("{}.{field}", group.path);

        // C3: names must be unique — pods, the autoscaler and `ray.io/group` key on them.
        if name.is_empty() {
            v.error(
                at("groupName"),
                "worker group name must not be empty: it names the group's pods and the \
                 autoscaler's node type",
            );
        } else if let Some(first) = first_index_of.get(name) {
            v.error(
                at("groupName"),
                format!(
                    "worker group names must be unique: \"{name}\" is already used by \
                     {}.workerGroupSpecs[{first}]",
                    scope.path
                ),
            );
        } else {
            first_index_of.insert(name, index);
        }

        // C5
        if pod_template::containers(group.template).is_empty() {
            v.error(
                group.containers_path(),
                format!(
                    "workerGroupSpec should have at least one container: worker group {name} \
                     needs the Ray container as containers[0]"
                ),
            );
        }

        // C7
        if spec.min_replicas < 0 {
            v.error(
                at("minReplicas"),
                format!(
                    "worker group {name} has negative minReplicas {}; it must be 0 or more",
                    spec.min_replicas
                ),
            );
        }
        if spec.max_replicas < 0 {
            v.error(
                at("maxReplicas"),
                format!(
                    "worker group {name} has negative maxReplicas {}; it must be 0 or more",
                    spec.max_replicas
                ),
            );
        }
        // C8
        if spec.min_replicas > spec.max_replicas {
            v.error(
                at("maxReplicas"),
                format!(
                    "worker group {name} has minReplicas {min} greater than maxReplicas {max}: \
                     minReplicas ({min}) must not exceed maxReplicas ({max})",
                    min = spec.min_replicas,
                    max = spec.max_replicas
                ),
            );
        }

        if let Some(seconds) = spec.idle_timeout_seconds {
            // C12
            if seconds < 0 {
                v.error(
                    at("idleTimeoutSeconds"),
                    format!(
                        "worker group {name}: idleTimeoutSeconds must be non-negative, got {seconds}"
                    ),
                );
            } else if !autoscaling::v2_enabled_by_version_or_env(scope) {
                // C13
                v.error(
                    at("idleTimeoutSeconds"),
                    format!(
                        "worker group {name}: idleTimeoutSeconds is set, but autoscaler v2 is not \
                         enabled. Please set .spec.autoscalerOptions.version to 'v2' (or set \
                         RAY_enable_autoscaler_v2 environment variable to 'true' in the head pod \
                         if using KubeRay < 1.4.0)"
                    ),
                );
            }
        }

        // C14
        if let Some(priority) = spec.priority.filter(|p| *p != 0) {
            check_priority(v, scope, name, priority, &at("priority"));
        }
    }
}

/// C14: worker group priority is an autoscaler v2 feature of Ray 2.56.0.
fn check_priority(v: &mut Validation, scope: &ClusterScope, name: &str, priority: i32, path: &str) {
    let version = scope.spec.ray_version.as_deref().unwrap_or_default();
    let version_path = || scope.field("rayVersion");
    if version.is_empty() {
        v.error(
            version_path(),
            format!(
                "worker group {name}: priority is set, but RayVersion was not specified. \
                 Ray version {MIN_GROUP_PRIORITY} or later is required"
            ),
        );
        return;
    }
    match ray_version::parse(version) {
        Err(error) => {
            v.error(
                version_path(),
                format!(
                    "worker group {name}: priority is set, but RayVersion format is invalid: \
                     {version}, {error}"
                ),
            );
            return;
        }
        Ok(parsed) if parsed.less_than(MIN_GROUP_PRIORITY) => {
            v.error(
                version_path(),
                format!(
                    "worker group {name}: priority is set, but minimum Ray version is \
                     {MIN_GROUP_PRIORITY}, got {version}"
                ),
            );
            return;
        }
        Ok(_) => {}
    }
    if !autoscaling::v2_enabled_by_version_or_env(scope) {
        v.error(
            path,
            format!(
                "worker group {name}: priority is set to {priority}, but autoscaler v2 is not \
                 enabled. Priority is only supported with autoscaler v2 enabled"
            ),
        );
    }
}
