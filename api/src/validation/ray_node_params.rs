//! What a group tells Ray about its nodes: resources in `rayStartParams` or the group's
//! `resources` map, never both (C9); node labels only through the group's `labels` (C10),
//! which must be valid Kubernetes labels because KubeRay also puts them on the pods (C11).

use super::pod_template::Group;
use super::{field_path, k8s_names};
use crate::field_error::Validation;

/// The `rayStartParams` keys the group `resources` map overrides.
const RESOURCE_PARAMS: [&str; 4] = ["num-cpus", "num-gpus", "memory", "resources"];

pub(crate) fn check(v: &mut Validation, group: &Group) {
    let name = group.name;

    // C9 (the params are only listed when the group has a resources map at all)
    let in_params: Vec<&str> = if group.resources.is_some_and(|r| !r.is_empty()) {
        RESOURCE_PARAMS
            .into_iter()
            .filter(|key| {
                group
                    .ray_start_param(key)
                    .is_some_and(|value| !value.is_empty())
            })
            .collect()
    } else {
        Vec::new()
    };
    if !in_params.is_empty() {
        v.error(
            format!("{}.resources", group.path),
            format!(
                "resource fields should not be set in both rayStartParams and Resources for \
                 {name} group; please use only one (rayStartParams sets {})",
                in_params.join(", ")
            ),
        );
    }

    // C10
    if group.ray_start_param("labels").is_some() {
        v.error(
            group.ray_start_param_path("labels"),
            format!(
                "rayStartParams['labels'] is not supported for {name} group; please use the \
                 top-level Labels field instead"
            ),
        );
    }

    // C11
    for (key, value) in group.labels.into_iter().flatten() {
        let path = || field_path::key(&format!("{}.labels", group.path), key);
        for error in k8s_names::qualified_name(key) {
            v.error(
                path(),
                format!("invalid label key for {name} group: '{key}', error: {error}"),
            );
        }
        for error in k8s_names::label_value(value) {
            v.error(
                path(),
                format!(
                    "invalid label value for key '{key}' in {name} group: '{value}', error: {error}"
                ),
            );
        }
    }
}
