//! Mutual TLS between Ray processes (C42): with `tlsOptions.enabled`, KubeRay sets the TLS env
//! vars and mounts the certificates itself, so users must not. The `RayClusterMTLS` feature
//! gate (C41) is always on in raygate; cert-manager's presence (C43) is a runtime matter.

use super::cluster_spec::ClusterScope;
use super::pod_template::{self, env_var};
use crate::field_error::Validation;

const MANAGED_ENV: [&str; 4] = [
    "RAY_USE_TLS",
    "RAY_TLS_SERVER_CERT",
    "RAY_TLS_SERVER_KEY",
    "RAY_TLS_CA_CERT",
];
const TLS_VOLUME: &str = "ray-tls";
const TLS_MOUNT_PATH: &str = "/etc/ray/tls";

pub(crate) fn check(v: &mut Validation, scope: &ClusterScope) {
    if scope.spec.tls_options.as_ref().and_then(|t| t.enabled) != Some(true) {
        return;
    }
    for group in scope.groups() {
        let Some(container) = group.ray_container() else {
            continue;
        };
        let location = if group.is_head {
            "head Pod".to_string()
        } else {
            format!("worker group \"{}\"", group.name)
        };
        for name in MANAGED_ENV {
            if let Some((index, _)) = env_var(container.env.as_ref(), name) {
                v.error(
                    group.ray_container_env_path(index),
                    format!(
                        "cannot set {name} environment variable in {location} when tlsOptions is \
                         set - the operator manages TLS configuration automatically"
                    ),
                );
            }
        }
        let mounts_path = format!(
            "{}.volumeMounts",
            group.container_path(pod_template::RAY_CONTAINER_INDEX)
        );
        check_mounts(
            v,
            container.volume_mounts.as_deref(),
            &mounts_path,
            &location,
        );
    }
    if let Some(options) = &scope.spec.autoscaler_options {
        for name in MANAGED_ENV {
            if let Some((index, _)) = env_var(options.env.as_ref(), name) {
                v.error(
                    scope.field(&format!("autoscalerOptions.env[{index}]")),
                    format!(
                        "cannot set {name} environment variable in autoscalerOptions.env when \
                         tlsOptions is set - the operator manages TLS configuration for the \
                         autoscaler automatically"
                    ),
                );
            }
        }
        check_mounts(
            v,
            options.volume_mounts.as_deref(),
            &scope.field("autoscalerOptions.volumeMounts"),
            "autoscalerOptions.volumeMounts",
        );
    }
}

fn check_mounts(
    v: &mut Validation,
    mounts: Option<&[k8s_openapi::api::core::v1::VolumeMount]>,
    path: &str,
    location: &str,
) {
    for (index, mount) in mounts.unwrap_or_default().iter().enumerate() {
        let problem = if mount.name == TLS_VOLUME {
            format!("cannot use volume mount named \"{TLS_VOLUME}\" in {location}")
        } else if mount.mount_path == TLS_MOUNT_PATH {
            format!("cannot use volume mount at path \"{TLS_MOUNT_PATH}\" in {location}")
        } else {
            continue;
        };
        v.error(
            format!("{path}[{index}]"),
            format!(
                "{problem} when tlsOptions is set - the operator manages TLS configuration \
                 automatically"
            ),
        );
    }
}
