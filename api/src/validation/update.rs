//! Rules that compare an UPDATE with the stored object:
//!
//! * U-managedBy: `managedBy` can't change (CRD `self == oldSelf`). An unset value means
//!   `ray.io/kuberay-operator`, so writing that default out is not a change; handing a live
//!   object to MultiKueue (or back) is.
//! * U-gcsBackend: `gcsFaultToleranceOptions.backend` can't change (CRD); unset means redis.
//! * U-numOfHosts: a worker group's `numOfHosts` can't change while the cluster runs: its
//!   multi-host replicas exist as sets of that many pods. A suspended cluster has no pods, so
//!   anything goes.
//! * U-groupName: a worker group can't be renamed while the cluster runs (the group at the
//!   same position gets a name neither object had, and its old name is gone): its pods carry
//!   the name, and the Ray autoscaler knows the group by it. Adding and removing groups, or
//!   reordering them, stays possible.
//! * U-clusterSelector, U-entrypoint, U-rayClusterSpec: once a RayJob has started
//!   (`status.jobDeploymentStatus` set and not `New`), KubeRay silently ignores changes to
//!   them; raygate says so. `rayClusterSpec` may change while the job is suspended — when the
//!   old or the new object has `spec.suspend: true`, since Kueue unsuspends and injects node
//!   selectors (and suspends and restores them) in one update.

use std::collections::BTreeMap;

use super::pod_template::worker_groups;
use crate::field_error::Validation;
use crate::labels::MANAGED_BY_KUBERAY;
use crate::raycluster::{GcsFaultToleranceBackend, RayClusterSpec};
use crate::{RayCluster, RayJob, RayService};

pub(crate) fn check_raycluster(v: &mut Validation, new: &RayCluster, old: &RayCluster) {
    check_cluster_spec(v, &new.spec, &old.spec, "spec");
    let suspended = new.spec.suspend == Some(true) || old.spec.suspend == Some(true);
    if !suspended {
        check_num_of_hosts(v, &new.spec, &old.spec, "spec");
        check_group_names(v, &new.spec, &old.spec, "spec");
    }
}

pub(crate) fn check_rayjob(v: &mut Validation, new: &RayJob, old: &RayJob) {
    check_managed_by(
        v,
        new.spec.managed_by.as_deref(),
        old.spec.managed_by.as_deref(),
        "spec.managedBy",
    );
    if let (Some(new_cluster), Some(old_cluster)) =
        (&new.spec.ray_cluster_spec, &old.spec.ray_cluster_spec)
    {
        check_cluster_spec(v, new_cluster, old_cluster, "spec.rayClusterSpec");
    }

    let status = old
        .status
        .as_ref()
        .and_then(|s| s.job_deployment_status.as_deref())
        .unwrap_or_default();
    if status.is_empty() || status == "New" {
        return;
    }
    let started = format!("after the RayJob has started (jobDeploymentStatus {status})");
    if new.spec.cluster_selector != old.spec.cluster_selector {
        v.error(
            "spec.clusterSelector",
            format!("clusterSelector cannot be changed {started}; create a new RayJob instead"),
        );
    }
    if new.spec.entrypoint != old.spec.entrypoint {
        v.error(
            "spec.entrypoint",
            format!(
                "entrypoint cannot be changed {started}: the job was already submitted; create a \
                 new RayJob instead"
            ),
        );
    }
    let suspended = new.spec.suspend == Some(true) || old.spec.suspend == Some(true);
    if !suspended
        && new.spec.ray_cluster_spec != old.spec.ray_cluster_spec
        && new.spec.ray_cluster_spec
            != with_current_defaults(old).and_then(|o| o.spec.ray_cluster_spec)
    {
        v.error(
            "spec.rayClusterSpec",
            format!(
                "rayClusterSpec cannot be changed {started}: KubeRay would ignore the change. \
                 Suspend the job (spec.suspend: true) to change it, or create a new RayJob"
            ),
        );
    }
}

pub(crate) fn check_rayservice(v: &mut Validation, new: &RayService, old: &RayService) {
    check_managed_by(
        v,
        new.spec.managed_by.as_deref(),
        old.spec.managed_by.as_deref(),
        "spec.managedBy",
    );
    check_cluster_spec(
        v,
        &new.spec.ray_cluster_config,
        &old.spec.ray_cluster_config,
        "spec.rayClusterConfig",
    );
}

fn check_cluster_spec(
    v: &mut Validation,
    new: &RayClusterSpec,
    old: &RayClusterSpec,
    prefix: &str,
) {
    check_managed_by(
        v,
        new.managed_by.as_deref(),
        old.managed_by.as_deref(),
        &format!("{prefix}.managedBy"),
    );
    if let (Some(new_ft), Some(old_ft)) = (
        &new.gcs_fault_tolerance_options,
        &old.gcs_fault_tolerance_options,
    ) {
        let backend = |b: Option<GcsFaultToleranceBackend>| match b {
            Some(GcsFaultToleranceBackend::Rocksdb) => "rocksdb",
            _ => "redis",
        };
        let (new_backend, old_backend) = (backend(new_ft.backend), backend(old_ft.backend));
        if new_backend != old_backend {
            v.error(
                format!("{prefix}.gcsFaultToleranceOptions.backend"),
                format!(
                    "gcsFaultToleranceOptions.backend is immutable: it was {old_backend}, the \
                     update sets {new_backend}; the GCS data lives in the old backend"
                ),
            );
        }
    }
}

fn check_managed_by(v: &mut Validation, new: Option<&str>, old: Option<&str>, path: &str) {
    let effective = |value: Option<&str>| value.unwrap_or(MANAGED_BY_KUBERAY).to_string();
    let (new, old) = (effective(new), effective(old));
    if new != old {
        v.error(
            path,
            format!("the managedBy field is immutable: it is {old}, the update sets {new}"),
        );
    }
}

fn check_group_names(v: &mut Validation, new: &RayClusterSpec, old: &RayClusterSpec, prefix: &str) {
    let (new_groups, old_groups) = (worker_groups(new), worker_groups(old));
    let named = |groups: &[crate::WorkerGroupSpec], name: &str| {
        groups.iter().any(|group| group.group_name == name)
    };
    for (index, (group, before)) in new_groups.iter().zip(old_groups).enumerate() {
        let (after, before) = (group.group_name.as_str(), before.group_name.as_str());
        if after != before && !named(new_groups, before) && !named(old_groups, after) {
            v.error(
                format!("{prefix}.workerGroupSpecs[{index}].groupName"),
                format!(
                    "worker group {before} cannot be renamed to {after} while the cluster runs: \
                     its pods carry the name; suspend the cluster first, or add {after} as a new \
                     group and remove {before}"
                ),
            );
        }
    }
}

fn check_num_of_hosts(
    v: &mut Validation,
    new: &RayClusterSpec,
    old: &RayClusterSpec,
    prefix: &str,
) {
    let hosts = |group: &crate::WorkerGroupSpec| group.num_of_hosts.unwrap_or(1).max(1);
    let old_hosts: BTreeMap<&str, i32> = worker_groups(old)
        .iter()
        .map(|group| (group.group_name.as_str(), hosts(group)))
        .collect();
    for (index, group) in worker_groups(new).iter().enumerate() {
        let Some(&before) = old_hosts.get(group.group_name.as_str()) else {
            continue;
        };
        let after = hosts(group);
        if before != after {
            v.error(
                format!("{prefix}.workerGroupSpecs[{index}].numOfHosts"),
                format!(
                    "numOfHosts of worker group {} cannot change from {before} to {after} while the \
                     cluster runs: suspend it first, or add a group with a new name",
                    group.group_name
                ),
            );
        }
    }
}

/// The stored RayJob with this build's defaults. One stored by an older raygate lacks the
/// defaults added since, and mutation writes them into every update of it: that is no change
/// of the user's, and must not lock a running job against a label change. Only computed when
/// the specs differ as stored.
fn with_current_defaults(old: &RayJob) -> Option<RayJob> {
    let mut value = serde_json::to_value(old).ok()?;
    crate::defaults::normalize(&mut value);
    serde_json::from_value(value).ok()
}
