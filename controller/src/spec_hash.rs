//! The hash behind `upgradeStrategy: Recreate`: pods are recreated when the part of the spec
//! that shapes a pod changes, not when the autoscaler moves `replicas` or names
//! `workersToDelete` (that would restart the cluster on every scaling step).

use k8s_openapi::api::core::v1::PodSpec;
use raygate_api::RayClusterSpec;
use raygate_api::raycluster::AutoscalerVersion;

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
    let mut spec = spec.clone();
    let v2 = spec.enable_in_tree_autoscaling == Some(true)
        && spec.autoscaler_options.as_ref().and_then(|o| o.version) == Some(AutoscalerVersion::V2);
    let unhashed = |pod_spec: &mut PodSpec| {
        pod_spec.tolerations = None;
        pod_spec.scheduling_gates = None;
        if v2 && pod_spec.restart_policy.as_deref() == Some("Never") {
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
    }
}
