//! `spec.networkPolicy` (C39, C40): rules only for the direction the mode restricts, and
//! per-group rules only for groups that exist, whose names fit NetworkPolicy names.
//! The `RayClusterNetworkPolicy` feature gate (C38) is always on in raygate.

use std::collections::BTreeSet;

use super::cluster_spec::ClusterScope;
use super::{k8s_names, pod_template};
use crate::field_error::Validation;
use crate::raycluster::NetworkPolicyMode;

pub(crate) fn check(v: &mut Validation, scope: &ClusterScope) {
    let Some(policy) = &scope.spec.network_policy else {
        return;
    };
    let mode = policy.mode.unwrap_or(NetworkPolicyMode::DenyAll);
    let mode_name = match mode {
        NetworkPolicyMode::DenyAll => "DenyAll",
        NetworkPolicyMode::DenyAllIngress => "DenyAllIngress",
        NetworkPolicyMode::DenyAllEgress => "DenyAllEgress",
    };
    let check_rules = |v: &mut Validation, what: &str, ingress: bool, egress: bool| {
        // C39
        if mode == NetworkPolicyMode::DenyAllEgress && ingress {
            v.error(
                scope.field(&format!("networkPolicy.{what}.ingressRules")),
                format!(
                    "networkPolicy.{what}.ingressRules cannot be set when mode is \"{mode_name}\" \
                     (ingress is not restricted)"
                ),
            );
        }
        if mode == NetworkPolicyMode::DenyAllIngress && egress {
            v.error(
                scope.field(&format!("networkPolicy.{what}.egressRules")),
                format!(
                    "networkPolicy.{what}.egressRules cannot be set when mode is \"{mode_name}\" \
                     (egress is not restricted)"
                ),
            );
        }
    };
    for (what, rules) in [("head", &policy.head), ("worker", &policy.worker)] {
        if let Some(rules) = rules {
            let ingress = rules.ingress_rules.as_ref().is_some_and(|r| !r.is_empty());
            let egress = rules.egress_rules.as_ref().is_some_and(|r| !r.is_empty());
            check_rules(v, what, ingress, egress);
        }
    }

    // C40: group names are part of NetworkPolicy names (`<cluster>-workers-<group>`).
    let mut names = BTreeSet::new();
    for (group, worker) in scope
        .workers()
        .iter()
        .zip(pod_template::worker_groups(scope.spec))
    {
        let errors = k8s_names::dns1123_label(&worker.group_name);
        if !errors.is_empty() {
            v.error(
                format!("{}.groupName", group.path),
                format!(
                    "worker group name \"{}\" must be a valid DNS1123 label when networkPolicy is \
                     enabled (it is embedded in the NetworkPolicy name): {}",
                    worker.group_name,
                    errors.join("; ")
                ),
            );
        }
        names.insert(worker.group_name.as_str());
    }
    for (index, group) in policy.worker_groups.iter().flatten().enumerate() {
        let name = &group.group_name;
        let what = format!("workerGroups[{index}]");
        let ingress = group.ingress_rules.as_ref().is_some_and(|r| !r.is_empty());
        let egress = group.egress_rules.as_ref().is_some_and(|r| !r.is_empty());
        check_rules(v, &what, ingress, egress);
        if !names.contains(name.as_str()) {
            v.error(
                scope.field(&format!("networkPolicy.{what}.groupName")),
                format!(
                    "networkPolicy.workerGroups[\"{name}\"] does not match any group name in \
                     workerGroupSpecs"
                ),
            );
        }
    }
}
