//! raygate's own rules about how a cluster fits together, beyond KubeRay's:
//!
//! * T-imageTag: every node of a Ray cluster must run the same Ray version; head and worker
//!   images naming different Ray releases is a warning.
//! * T-rayVersion: `spec.rayVersion` gates version-dependent behaviour (probes, auth); when it
//!   disagrees with the image's Ray release, that behaviour is chosen for the wrong Ray
//!   (warning). An unparseable `rayVersion` is a warning here, an error where a rule needs it.
//! * T-gpu: `rayStartParams.num-gpus` different from the Ray container's GPU limit makes Ray
//!   schedule onto GPUs the pod doesn't have, or leave paid-for GPUs idle (error).
//! * T-tpu: a multi-host TPU group (numOfHosts > 1) whose Ray container has no
//!   `google.com/tpu` limit gets no TPU resource in Ray (warning).
//! * T-memory: below [`MIN_WORKER_MEMORY`] a worker has little room left: Ray sizes the object
//!   store at 30% of the container's memory and the raylet, dashboard agent and runtime-env
//!   agent take a few hundred MiB before any task runs (warning).
//! * T-labels: the controller's own pod labels (`ray.io/cluster`, `ray.io/node-type`,
//!   `ray.io/group`, `ray.io/identifier`, `ray.io/is-ray-node`) set by the user would mislead
//!   the autoscaler and the Services that select Ray pods by them (error).

use super::cluster_spec::ClusterScope;
use super::field_path;
use super::pod_template::{self, Group};
use crate::field_error::Validation;
use crate::labels::{RAY_CLUSTER, RAY_GROUP, RAY_IDENTIFIER, RAY_IS_RAY_NODE, RAY_NODE_TYPE};
use crate::quantity::{self, ONE_GIB};
use crate::ray_version::{self, RayVersion};

/// Labels the controller sets on every Ray pod.
const CONTROLLER_LABELS: [&str; 5] = [
    RAY_CLUSTER,
    RAY_NODE_TYPE,
    RAY_GROUP,
    RAY_IDENTIFIER,
    RAY_IS_RAY_NODE,
];
/// Container limits that are GPUs to Ray (`num-gpus`).
const GPU_RESOURCES: [&str; 2] = ["nvidia.com/gpu", "amd.com/gpu"];
const TPU_RESOURCE: &str = "google.com/tpu";
/// GKE's TPU node selector keys (`cloud.google.com/gke-tpu-topology`, `...-accelerator`).
const GKE_TPU_SELECTOR_PREFIX: &str = "cloud.google.com/gke-tpu";
/// See the module comment.
const MIN_WORKER_MEMORY: quantity::Quantity = ONE_GIB;

pub(crate) fn check(v: &mut Validation, scope: &ClusterScope) {
    let groups = scope.groups();
    check_versions(v, scope, groups);
    for group in groups {
        check_gpus(v, group);
        check_controller_labels(v, group);
        if !group.is_head {
            check_tpus(v, group);
            check_memory(v, group);
        }
    }
}

fn image_version(group: &Group) -> Option<RayVersion> {
    ray_version::from_image(group.ray_container()?.image.as_deref()?)
}

fn check_versions(v: &mut Validation, scope: &ClusterScope, groups: &[Group]) {
    let head_image = groups.first().and_then(image_version);
    let declared = scope.spec.ray_version.as_deref().unwrap_or_default();
    if !declared.is_empty() {
        match ray_version::parse(declared) {
            Err(_) => v.warn(format!(
                "{}: \"{declared}\" is not a Ray version (e.g. 2.46.0); version-dependent \
                 defaults assume an old Ray",
                scope.field("rayVersion")
            )),
            Ok(declared_version) => {
                if let Some(image_version) = &head_image
                    && !declared_version.same_release(image_version)
                {
                    v.warn(format!(
                        "{} {declared} does not match the head image's Ray {image_version}; set it \
                         to the image's version",
                        scope.field("rayVersion")
                    ));
                }
            }
        }
    }
    let Some(head_version) = &head_image else {
        return;
    };
    for group in groups.iter().skip(1) {
        if let Some(worker_version) = image_version(group)
            && !worker_version.same_release(head_version)
        {
            v.warn(format!(
                "{} runs Ray {worker_version} but the head runs Ray {head_version}; all Ray nodes \
                 need the same version",
                group.display()
            ));
        }
    }
}

/// T-gpu
fn check_gpus(v: &mut Validation, group: &Group) {
    let Some(declared) = group.ray_start_param("num-gpus") else {
        return;
    };
    let Some(limits) = group
        .ray_container()
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.limits.as_ref())
    else {
        return;
    };
    let Some((resource, limit)) = GPU_RESOURCES
        .iter()
        .find_map(|name| limits.get(*name).map(|q| (*name, q)))
    else {
        return;
    };
    // An unparseable limit is reported by the resources rules.
    let Some(limit_value) = quantity::parse(&limit.0) else {
        return;
    };
    let path = || group.ray_start_param_path("num-gpus");
    match declared.trim().parse::<f64>() {
        Err(_) => v.error(
            path(),
            format!("rayStartParams num-gpus \"{declared}\" is not a number"),
        ),
        Ok(gpus) if gpus != limit_value.as_f64() => v.error(
            path(),
            format!(
                "rayStartParams num-gpus ({declared}) differs from the Ray container's {resource} \
                 limit ({}): Ray would schedule {declared} GPUs on a pod that has {}; remove \
                 num-gpus (it is derived from the limit) or make them equal",
                limit.0, limit.0
            ),
        ),
        Ok(_) => {}
    }
}

/// T-tpu
fn check_tpus(v: &mut Validation, group: &Group) {
    if group.num_of_hosts <= 1 {
        return;
    }
    let pod_spec = pod_template::pod_spec(group.template);
    let selects_tpu_nodes =
        pod_spec
            .and_then(|s| s.node_selector.as_ref())
            .is_some_and(|selector| {
                selector
                    .keys()
                    .any(|k| k.starts_with(GKE_TPU_SELECTOR_PREFIX))
            });
    let any_container_has_tpus = pod_template::containers(group.template).iter().any(|c| {
        c.resources.as_ref().is_some_and(|r| {
            [&r.limits, &r.requests]
                .into_iter()
                .flatten()
                .any(|list| list.contains_key(TPU_RESOURCE))
        })
    });
    if !(selects_tpu_nodes || any_container_has_tpus) {
        return;
    }
    let ray_container_has_limit = group
        .ray_container()
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.limits.as_ref())
        .is_some_and(|limits| limits.contains_key(TPU_RESOURCE));
    if !ray_container_has_limit {
        v.warn(format!(
            "{}: multi-host TPU group whose Ray container has no {TPU_RESOURCE} limit; Ray won't \
             see TPUs",
            group.display()
        ));
    }
}

/// T-memory
fn check_memory(v: &mut Validation, group: &Group) {
    let Some(resources) = group.ray_container().and_then(|c| c.resources.as_ref()) else {
        return;
    };
    let memory = resources
        .limits
        .as_ref()
        .and_then(|l| l.get("memory"))
        .or_else(|| resources.requests.as_ref().and_then(|r| r.get("memory")));
    let Some(memory) = memory else {
        return;
    };
    if quantity::parse(&memory.0).is_some_and(|m| m < MIN_WORKER_MEMORY) {
        v.warn(format!(
            "{} memory {} is below 1Gi; Ray's object store and system processes leave little \
             room",
            group.display(),
            memory.0
        ));
    }
}

/// T-labels: in the pod template and in the group's Ray node labels (which KubeRay also puts
/// on the pod).
fn check_controller_labels(v: &mut Validation, group: &Group) {
    let template_labels = group
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    let sources = [
        (template_labels, ".template.metadata.labels"),
        (group.labels, ".labels"),
    ];
    for (labels, base) in sources {
        for key in labels.into_iter().flat_map(|l| l.keys()) {
            if CONTROLLER_LABELS.contains(&key.as_str()) {
                v.error(
                    field_path::key(&format!("{}{base}", group.path), key),
                    format!(
                        "label {key} is set by the controller on every Ray pod; a user value \
                         would break the autoscaler and the Services that select Ray pods: \
                         remove it"
                    ),
                );
            }
        }
    }
}
