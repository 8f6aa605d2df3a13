//! The in-tree autoscaler (C28–C34): the v1/v2 switch, restart policies, and settings KubeRay
//! manages itself.

use super::cluster_spec::ClusterScope;
use super::pod_template::{self, env_var};
use crate::field_error::Validation;
use crate::raycluster::{AutoscalerVersion, RayClusterSpec};

/// Head env var that turned autoscaler v2 on before `autoscalerOptions.version` existed.
pub(crate) const RAY_ENABLE_AUTOSCALER_V2: &str = "RAY_enable_autoscaler_v2";
/// KubeRay generates this env var for the autoscaler container.
const KUBERAY_GEN_AUTOSCALER_START_CMD: &str = "KUBERAY_GEN_AUTOSCALER_START_CMD";

pub(crate) fn enabled(spec: &RayClusterSpec) -> bool {
    spec.enable_in_tree_autoscaling == Some(true)
}

fn version(spec: &RayClusterSpec) -> Option<AutoscalerVersion> {
    spec.autoscaler_options.as_ref()?.version
}

fn env_turns_v2_on(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "true"))
}

/// Autoscaler v2 as C13 and C14 see it: `autoscalerOptions.version: v2`, or the legacy head
/// env var set to "1"/"true".
pub(crate) fn v2_enabled_by_version_or_env(scope: &ClusterScope) -> bool {
    version(scope.spec) == Some(AutoscalerVersion::V2)
        || scope
            .head_env(RAY_ENABLE_AUTOSCALER_V2)
            .is_some_and(|(_, var)| env_turns_v2_on(var.value.as_deref()))
}

pub(crate) fn check(v: &mut Validation, scope: &ClusterScope) {
    let spec = scope.spec;
    let v2_env = scope.head_env(RAY_ENABLE_AUTOSCALER_V2);
    let options = spec.autoscaler_options.as_ref();

    if !enabled(spec) {
        // C28
        if let Some((path, var)) = &v2_env
            && env_turns_v2_on(var.value.as_deref())
        {
            v.error(
                path.clone(),
                format!(
                    "environment variable {RAY_ENABLE_AUTOSCALER_V2} cannot be set to '{}' when \
                     enableInTreeAutoscaling is false. Please set enableInTreeAutoscaling: true \
                     to use autoscaler v2",
                    var.value.as_deref().unwrap_or_default()
                ),
            );
        }
        if options.is_some() {
            v.warn(format!(
                "{}.autoscalerOptions has no effect: enableInTreeAutoscaling is not true",
                scope.path
            ));
        }
    } else {
        for (group, worker) in scope
            .workers()
            .iter()
            .zip(pod_template::worker_groups(spec))
        {
            // C29
            if worker.suspend == Some(true) {
                v.error(
                    format!("{}.suspend", group.path),
                    format!(
                        "worker group {} cannot be suspended with Autoscaler enabled",
                        group.name
                    ),
                );
            }
        }
        // C30
        if let Some(version) = version(spec)
            && v2_env.is_some()
        {
            v.error(
                scope.field("autoscalerOptions.version"),
                format!(
                    "both .spec.autoscalerOptions.version ({}) and head Pod env var \
                     {RAY_ENABLE_AUTOSCALER_V2} are set, please only use the former",
                    version_name(version)
                ),
            );
        }
        match version(spec) {
            // C31: autoscaler v2 replaces failed pods itself; the kubelet must not restart them.
            Some(AutoscalerVersion::V2) => {
                for group in scope.groups() {
                    let policy = pod_template::restart_policy(group.template);
                    if !policy.is_empty() && policy != "Never" {
                        let who = if group.is_head {
                            "head Pod".to_string()
                        } else {
                            format!("worker group {}", group.name)
                        };
                        v.error(
                            format!("{}.template.spec.restartPolicy", group.path),
                            format!(
                                "restartPolicy for {who} should be Never or unset when using \
                                 autoscaler V2 (got {policy})"
                            ),
                        );
                    }
                }
            }
            // C32: only a warning in KubeRay.
            Some(AutoscalerVersion::V1) => {
                let names: Vec<&str> = scope
                    .workers()
                    .iter()
                    .filter(|group| {
                        let policy = pod_template::restart_policy(group.template);
                        !policy.is_empty() && policy != "Never"
                    })
                    .map(|group| group.name)
                    .collect();
                if !names.is_empty() {
                    v.warn(format!(
                        "restartPolicy for worker groups [{}] should be Never or unset when using \
                         autoscaler V1",
                        names.join(", ")
                    ));
                }
            }
            None => {}
        }
    }

    let Some(options) = options else {
        return;
    };
    // C33
    if let Some(seconds) = options.idle_timeout_seconds
        && seconds < 0
    {
        v.error(
            scope.field("autoscalerOptions.idleTimeoutSeconds"),
            format!("autoscalerOptions.idleTimeoutSeconds must be non-negative, got {seconds}"),
        );
    }
    // C34
    if let Some((index, _)) = env_var(options.env.as_ref(), KUBERAY_GEN_AUTOSCALER_START_CMD) {
        v.error(
            scope.field(&format!("autoscalerOptions.env[{index}]")),
            format!(
                "autoscalerOptions.env must not contain {KUBERAY_GEN_AUTOSCALER_START_CMD}: it is \
                 managed by KubeRay and injected automatically into the autoscaler container"
            ),
        );
    }
}

fn version_name(version: AutoscalerVersion) -> &'static str {
    match version {
        AutoscalerVersion::V1 => "v1",
        AutoscalerVersion::V2 => "v2",
    }
}
