//! Values used inside `#[schemars(...)]` attributes and serde defaults, shared by the kinds.

use serde_json::{Value, json};

/// `managedBy` is immutable and names one of the two controllers KubeRay allows.
pub(crate) fn managed_by_rules() -> Value {
    json!([
        {"rule": "self == oldSelf", "message": "the managedBy field is immutable"},
        {"rule": "self in ['ray.io/kuberay-operator', 'kueue.x-k8s.io/multikueue']",
         "message": "the managedBy field value must be either 'ray.io/kuberay-operator' or 'kueue.x-k8s.io/multikueue'"}
    ])
}

/// KubeRay's CRD default for `maxReplicas`: unbounded (Go's MaxInt32).
pub(crate) fn max_replicas_default() -> i32 {
    i32::MAX
}
