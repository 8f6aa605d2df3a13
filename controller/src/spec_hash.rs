//! The hash behind `upgradeStrategy: Recreate`: pods are recreated when the part of the spec
//! that shapes a pod changes, not when the autoscaler moves `replicas` or names
//! `workersToDelete` (that would restart the cluster on every scaling step).

use k8s_openapi::api::core::v1::PodSpec;
use raygate_api::RayClusterSpec;

use crate::autoscaler;

/// FNV-1a: stable across Rust releases and builds, unlike `DefaultHasher`, because the value
/// is stored on pods and compared by later controller versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// 16 hex digits of FNV-1a.
pub fn fnv1a_hex(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a(bytes))
}

/// Hash of the spec without scaling fields, tolerations, scheduling gates and the strategy.
///
/// Under autoscaler v2 a `restartPolicy: Never` is left out too: admission writes it into
/// templates stored since it began to, and those stored before lack it; either way the pods
/// run with `Never`, so re-applying an older object must not look like a template change.
pub fn pod_template_hash(spec: &RayClusterSpec) -> String {
    hash_without_scaling(spec, true)
}

/// The hash raygate computed before it left autoscaler v2's `restartPolicy: Never` out, when
/// that differs (a v2 template stating `Never`): pods and clusters made by an older raygate
/// carry it, and a raygate upgrade alone must not recreate them.
pub fn earlier_pod_template_hash(spec: &RayClusterSpec) -> Option<String> {
    let states_never = |pod_spec: Option<&PodSpec>| {
        pod_spec.is_some_and(|p| p.restart_policy.as_deref() == Some("Never"))
    };
    let any_never = states_never(spec.head_group_spec.template.spec.as_ref())
        || spec
            .worker_group_specs
            .iter()
            .flatten()
            .any(|group| states_never(group.template.spec.as_ref()));
    (autoscaler::is_v2(spec) && any_never).then(|| hash_without_scaling(spec, false))
}

/// Whether a stored hash is the spec's, as this raygate or an earlier one computed it.
pub fn is_current(stored: Option<&str>, spec: &RayClusterSpec, hash: &str) -> bool {
    match stored {
        None => false,
        Some(stored) if stored == hash => true,
        Some(stored) => earlier_pod_template_hash(spec).as_deref() == Some(stored),
    }
}

fn hash_without_scaling(spec: &RayClusterSpec, leave_out_never: bool) -> String {
    let mut spec = spec.clone();
    let leave_out_never = leave_out_never && autoscaler::is_v2(&spec);
    let unhashed = |pod_spec: &mut PodSpec| {
        pod_spec.tolerations = None;
        pod_spec.scheduling_gates = None;
        if leave_out_never && pod_spec.restart_policy.as_deref() == Some("Never") {
            pod_spec.restart_policy = None;
        }
    };
    spec.upgrade_strategy = None;
    spec.suspend = None;
    if let Some(head_spec) = spec.head_group_spec.template.spec.as_mut() {
        unhashed(head_spec);
    }
    for group in spec.worker_group_specs.iter_mut().flatten() {
        group.replicas = None;
        group.min_replicas = 0;
        group.max_replicas = 0;
        group.scale_strategy = None;
        group.suspend = None;
        group.idle_timeout_seconds = None;
        if let Some(pod_spec) = group.template.spec.as_mut() {
            unhashed(pod_spec);
        }
    }
    let bytes = serde_json::to_vec(&spec).unwrap_or_default();
    fnv1a_hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raygate_api::WorkerGroupSpec;

    #[test]
    fn scaling_does_not_change_the_hash_but_the_image_does() {
        let mut spec = RayClusterSpec {
            worker_group_specs: Some(vec![WorkerGroupSpec {
                group_name: "g".into(),
                replicas: Some(1),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let before = pod_template_hash(&spec);
        if let Some(groups) = spec.worker_group_specs.as_mut() {
            groups[0].replicas = Some(7);
            groups[0].max_replicas = 9;
        }
        assert_eq!(pod_template_hash(&spec), before);
        spec.ray_version = Some("2.60.0".into());
        assert_ne!(pod_template_hash(&spec), before);
    }

    #[test]
    fn the_never_restart_policy_admission_adds_under_autoscaler_v2_is_not_a_change() {
        let cluster: raygate_api::RayCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "ray.io/v1", "kind": "RayCluster",
            "metadata": {"name": "demo", "namespace": "ns"},
            "spec": {
                "enableInTreeAutoscaling": true,
                "autoscalerOptions": {"version": "v2"},
                "headGroupSpec": {"template": {"spec": {"containers": [
                    {"name": "ray-head", "image": "rayproject/ray:2.52.0"}]}}},
                "workerGroupSpecs": [{"groupName": "g", "minReplicas": 0, "maxReplicas": 2,
                    "template": {"spec": {"containers": [
                        {"name": "ray-worker", "image": "rayproject/ray:2.52.0"}]}}}]
            }
        }))
        .expect("RayCluster");
        let stored_before = pod_template_hash(&cluster.spec);
        let mut value = serde_json::to_value(&cluster).expect("json");
        raygate_api::defaults::normalize(&mut value);
        let admitted: raygate_api::RayCluster = serde_json::from_value(value).expect("RayCluster");
        let policy =
            |spec: &RayClusterSpec| spec.head_group_spec.template.spec.clone()?.restart_policy;
        assert_eq!(policy(&admitted.spec).as_deref(), Some("Never"));
        let mut normalized_before = admitted.spec.clone();
        normalized_before
            .head_group_spec
            .template
            .spec
            .as_mut()
            .expect("spec")
            .restart_policy = None;
        for group in normalized_before.worker_group_specs.iter_mut().flatten() {
            group.template.spec.as_mut().expect("spec").restart_policy = None;
        }
        assert_eq!(
            pod_template_hash(&admitted.spec),
            pod_template_hash(&normalized_before)
        );
        assert_ne!(
            pod_template_hash(&admitted.spec),
            stored_before,
            "other defaults still count"
        );
        // Pods an earlier raygate made from a template stating `Never` carry the hash with it.
        let hash = pod_template_hash(&admitted.spec);
        let earlier = earlier_pod_template_hash(&admitted.spec).expect("v2 templates state Never");
        assert_ne!(earlier, hash);
        assert!(is_current(Some(&earlier), &admitted.spec, &hash));
        assert!(is_current(Some(&hash), &admitted.spec, &hash));
        assert!(!is_current(Some("0000"), &admitted.spec, &hash));
        assert!(!is_current(None, &admitted.spec, &hash));
        assert_eq!(earlier_pod_template_hash(&normalized_before), None);
    }
}
