//! RayJob and RayService defaults that KubeRay applies in its controllers.

use serde_json::{Map, Value, json};

use super::derived::Ledger;
use super::json_edit::{child_object, set_if_absent, str_at};
use super::{ClusterOwner, cluster};

/// `path` is where the RayJob spec sits: `spec`, or `spec.jobTemplate` in a RayCronJob.
pub fn normalize_rayjob(
    spec: &mut Map<String, Value>,
    path: &str,
    ledger: &mut Ledger,
    warnings: &mut Vec<String>,
) {
    set_if_absent(spec, "submissionMode", json!("K8sJobMode"));
    set_if_absent(spec, "backoffLimit", json!(0));
    set_if_absent(spec, "ttlSecondsAfterFinished", json!(0));
    if str_at(spec, "submissionMode") == Some("K8sJobMode")
        && let Some(config) = child_object(spec, "submitterConfig")
    {
        // The submitter Job's own retries (`ray job submit` is idempotent per job id).
        set_if_absent(config, "backoffLimit", json!(2));
    }
    if let Some(cluster_spec) = spec
        .get_mut("rayClusterSpec")
        .and_then(Value::as_object_mut)
    {
        cluster::normalize(
            cluster_spec,
            ClusterOwner::RayJob,
            false,
            &[path, ".rayClusterSpec"].concat(),
            ledger,
            warnings,
        );
    }
}

pub fn normalize_rayservice(
    spec: &mut Map<String, Value>,
    ledger: &mut Ledger,
    warnings: &mut Vec<String>,
) {
    // Seconds the old cluster keeps serving after traffic moved, so in-flight requests finish.
    set_if_absent(spec, "rayClusterDeletionDelaySeconds", json!(60));
    if let Some(strategy) = child_object(spec, "upgradeStrategy") {
        set_if_absent(strategy, "type", json!("NewCluster"));
    }
    if let Some(cluster_spec) = spec
        .get_mut("rayClusterConfig")
        .and_then(Value::as_object_mut)
    {
        cluster::normalize(
            cluster_spec,
            ClusterOwner::RayService,
            true,
            "spec.rayClusterConfig",
            ledger,
            warnings,
        );
    }
}
