//! The hash behind `upgradeStrategy: Recreate`: pods are recreated when the part of the spec
//! that shapes a pod changes, not when the autoscaler moves `replicas` or names
//! `workersToDelete` (that would restart the cluster on every scaling step).

use raygate_api::RayClusterSpec;

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
pub fn pod_template_hash(spec: &RayClusterSpec) -> String {
    let mut spec = spec.clone();
    spec.upgrade_strategy = None;
    spec.suspend = None;
    if let Some(head_spec) = spec.head_group_spec.template.spec.as_mut() {
        head_spec.tolerations = None;
        head_spec.scheduling_gates = None;
    }
    for group in spec.worker_group_specs.iter_mut().flatten() {
        group.replicas = None;
        group.min_replicas = 0;
        group.max_replicas = 0;
        group.scale_strategy = None;
        group.suspend = None;
        group.idle_timeout_seconds = None;
        if let Some(pod_spec) = group.template.spec.as_mut() {
            pod_spec.tolerations = None;
            pod_spec.scheduling_gates = None;
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
}
