//! Defaults of a RayCluster spec (standalone, or embedded in a RayJob or RayService).

use serde_json::{Map, Value, json};

use super::ClusterOwner;
use super::derived::Ledger;
use super::json_edit::{child_object, set_if_absent, str_at};
use super::pod::{GroupContext, Role, normalize_group};
use crate::ray_version;

/// Ray's GCS listens here unless `rayStartParams.port` says otherwise.
pub const DEFAULT_GCS_PORT: i64 = 6379;

pub fn normalize(
    spec: &mut Map<String, Value>,
    owner: ClusterOwner,
    serves: bool,
    path: &str,
    ledger: &mut Ledger,
    warnings: &mut Vec<String>,
) {
    let autoscaling = spec.get("enableInTreeAutoscaling") == Some(&Value::Bool(true));
    let autoscaler_v2 = autoscaling
        && spec
            .get("autoscalerOptions")
            .and_then(|options| options.get("version"))
            .and_then(Value::as_str)
            == Some("v2");
    let ray_version = str_at(spec, "rayVersion").and_then(|text| ray_version::parse(text).ok());
    let gcs_port = spec
        .get("headGroupSpec")
        .and_then(|head| head.get("rayStartParams"))
        .and_then(|params| params.get("port"))
        .and_then(port_number)
        .unwrap_or(DEFAULT_GCS_PORT);
    let context = |role, key: String| GroupContext {
        role,
        owner,
        serves,
        autoscaling,
        autoscaler_v2,
        ray_version: ray_version.as_ref(),
        gcs_port,
        key,
    };

    if let Some(head) = spec.get_mut("headGroupSpec").and_then(Value::as_object_mut) {
        normalize_group(
            head,
            &context(Role::Head, [path, ".headGroupSpec"].concat()),
            ledger,
        );
    }
    if let Some(Value::Array(groups)) = spec.get_mut("workerGroupSpecs") {
        for (index, group) in groups.iter_mut().enumerate() {
            let Some(group) = group.as_object_mut() else {
                continue;
            };
            clamp_replicas(
                group,
                || format!("{path}.workerGroupSpecs[{index}]"),
                warnings,
            );
            let name = str_at(group, "groupName").unwrap_or_default();
            let key = [path, ".workerGroupSpecs[groupName=", name, "]"].concat();
            normalize_group(group, &context(Role::Worker, key), ledger);
        }
    }
    if autoscaling {
        autoscaler_options(spec);
    }
}

/// KubeRay runs `clamp(replicas, minReplicas, maxReplicas)` workers and treats a missing
/// `replicas` as `minReplicas`; writing that number shows users what will run.
fn clamp_replicas(
    group: &mut Map<String, Value>,
    path: impl FnOnce() -> String,
    warnings: &mut Vec<String>,
) {
    let min = group
        .get("minReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let max = group
        .get("maxReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(i64::from(i32::MAX));
    if min > max {
        return; // validation reports it; no number would be right.
    }
    match group.get("replicas") {
        None | Some(Value::Null) => {
            group.insert("replicas".into(), json!(min));
        }
        Some(Value::Number(number)) => {
            let Some(replicas) = number.as_i64() else {
                return;
            };
            let clamped = replicas.clamp(min, max);
            if clamped != replicas {
                warnings.push(format!(
                    "{}.replicas: {replicas} is outside [{min}, {max}]; set to {clamped}",
                    path()
                ));
                group.insert("replicas".into(), json!(clamped));
            }
        }
        Some(_) => {}
    }
}

/// The autoscaler sidecar's settings, as KubeRay builds the container when they are unset.
fn autoscaler_options(spec: &mut Map<String, Value>) {
    let Some(options) = child_object(spec, "autoscalerOptions") else {
        return;
    };
    set_if_absent(options, "upscalingMode", json!("Default"));
    set_if_absent(options, "idleTimeoutSeconds", json!(60));
    set_if_absent(options, "imagePullPolicy", json!("IfNotPresent"));
    set_if_absent(
        options,
        "resources",
        json!({
            "limits": {"cpu": "500m", "memory": "512Mi"},
            "requests": {"cpu": "500m", "memory": "512Mi"}
        }),
    );
}

/// A port given as a number or a numeric string (rayStartParams are strings).
pub fn port_number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
