//! Defaults raygate writes into Ray objects at admission, so `kubectl get -o yaml` and GitOps
//! diffs show what will run: ports, `rayStartParams`, GPU settings, `/dev/shm`, probes, env,
//! autoscaler settings, and the RayJob and RayService defaults KubeRay applies in code.
//!
//! Rules: only add what is missing, never overwrite a user's value (values raygate derived
//! itself earlier are kept up to date, see [`derived`]), and be idempotent: normalizing a
//! normalized object changes nothing.

mod cluster;
mod derived;
pub(crate) mod json_edit;
mod kinds;
mod pod;

use serde_json::{Map, Value};

use crate::labels::ANNOTATION_NORMALIZED;

/// Version of the defaults written by this build; stamped on every normalized object. The
/// controller re-normalizes objects whose stamp is missing or older.
pub const NORMALIZED_VERSION: &str = "1";

/// Which kind of Ray object a cluster spec belongs to; some defaults differ (RayService
/// clusters serve on port 8000 and get Serve's timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterOwner {
    RayCluster,
    RayJob,
    RayService,
}

/// Adds every missing default to a RayCluster, RayJob, RayService or RayCronJob, in place, and returns
/// warnings about values it had to change (replicas outside [min, max]).
/// Objects of other kinds, and objects whose `spec` is not an object, are left unchanged.
pub fn normalize(object: &mut Value) -> Vec<String> {
    let owner = match object.get("kind").and_then(Value::as_str) {
        Some("RayCluster") => ClusterOwner::RayCluster,
        Some("RayJob") => ClusterOwner::RayJob,
        Some("RayService") => ClusterOwner::RayService,
        // A RayCronJob's template is a RayJob spec: the RayJobs it creates get the same
        // defaults at their own admission, and the stored template shows them already.
        Some("RayCronJob") => ClusterOwner::RayJob,
        _ => return Vec::new(),
    };
    let cron = object.get("kind").and_then(Value::as_str) == Some("RayCronJob");
    let mut ledger = derived::Ledger::read(annotations(object));
    // A RayCluster can ask for a serve Service too; its head must then expose Serve's port.
    let serve_service = annotations(object)
        .and_then(|a| a.get(crate::labels::ANNOTATION_ENABLE_SERVE_SERVICE))
        .and_then(Value::as_str)
        == Some("true");
    let mut warnings = Vec::new();
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return warnings;
    };
    match owner {
        ClusterOwner::RayCluster => {
            let serves = serve_service;
            cluster::normalize(spec, owner, serves, "spec", &mut ledger, &mut warnings)
        }
        ClusterOwner::RayJob if cron => {
            if let Some(template) = spec.get_mut("jobTemplate").and_then(Value::as_object_mut) {
                kinds::normalize_rayjob(template, "spec.jobTemplate", &mut ledger, &mut warnings);
            }
        }
        ClusterOwner::RayJob => kinds::normalize_rayjob(spec, "spec", &mut ledger, &mut warnings),
        ClusterOwner::RayService => kinds::normalize_rayservice(spec, &mut ledger, &mut warnings),
    }
    stamp(object, &ledger);
    warnings
}

/// Whether the object carries the stamp of this build's defaults.
pub fn is_normalized(object: &Value) -> bool {
    annotations(object)
        .and_then(|annotations| annotations.get(ANNOTATION_NORMALIZED))
        .and_then(Value::as_str)
        == Some(NORMALIZED_VERSION)
}

fn annotations(object: &Value) -> Option<&Map<String, Value>> {
    object
        .get("metadata")
        .and_then(|metadata| metadata.get("annotations"))
        .and_then(Value::as_object)
}

fn stamp(object: &mut Value, ledger: &derived::Ledger) {
    let Some(root) = object.as_object_mut() else {
        return;
    };
    let Some(metadata) = json_edit::child_object(root, "metadata") else {
        return;
    };
    let Some(annotations) = json_edit::child_object(metadata, "annotations") else {
        return;
    };
    if annotations
        .get(ANNOTATION_NORMALIZED)
        .and_then(Value::as_str)
        != Some(NORMALIZED_VERSION)
    {
        annotations.insert(ANNOTATION_NORMALIZED.into(), NORMALIZED_VERSION.into());
    }
    ledger.write(annotations);
}
