//! The Ray history server's event collector sidecar (C35): an image, a storage backend with
//! the settings that backend needs, and none of the env vars KubeRay injects itself. The
//! `RayClusterHistoryServer` feature gate is always on in raygate.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;

use super::cluster_spec::ClusterScope;
use super::pod_template;
use crate::field_error::Validation;
use crate::raycluster::CollectorOptions;

const COLLECTOR_CONTAINER_NAME: &str = "ray-history-collector";
/// Env vars KubeRay sets on the collector container.
const MANAGED_ENV: [&str; 8] = [
    "POD_IP",
    "FQ_RAY_IP",
    "RAY_CLUSTER_NAME",
    "RAY_CLUSTER_NAMESPACE",
    "RAY_ROLE",
    "OWNER_KIND",
    "OWNER_NAME",
    "EVENTS_PORT",
];
const STORAGE_BACKEND: &str = "STORAGE_BACKEND";
const AZURE_STORAGE_AUTH_MODE: &str = "AZURE_STORAGE_AUTH_MODE";
const AZURE_STORAGE_CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";
const AZURE_STORAGE_ACCOUNT_URL: &str = "AZURE_STORAGE_ACCOUNT_URL";

pub(crate) fn check(v: &mut Validation, scope: &ClusterScope) {
    let Some(options) = &scope.spec.history_server_options else {
        return;
    };
    let Some(collector) = &options.collector_options else {
        v.error(
            scope.field("historyServerOptions.collectorOptions"),
            "historyServerOptions.collectorOptions must be set",
        );
        return;
    };
    check_collector(v, scope, collector);

    for group in scope.groups() {
        for (index, container) in pod_template::containers(group.template).iter().enumerate() {
            if container.name == COLLECTOR_CONTAINER_NAME {
                let owner = if group.is_head {
                    "head pod template".to_string()
                } else {
                    format!("worker group {} pod template", group.name)
                };
                v.error(
                    format!("{}.name", group.container_path(index)),
                    format!(
                        "{owner} must not define a container with name \
                         '{COLLECTOR_CONTAINER_NAME}' when history server collector options are \
                         enabled"
                    ),
                );
            }
        }
    }
}

fn check_collector(v: &mut Validation, scope: &ClusterScope, collector: &CollectorOptions) {
    let at = |field: &str| scope.field(&format!("historyServerOptions.collectorOptions.{field}"));
    if collector.image.as_deref().is_none_or(str::is_empty) {
        v.error(
            at("image"),
            "historyServerOptions.collectorOptions.image must be set",
        );
    }

    let env: &[EnvVar] = collector.env.as_deref().unwrap_or_default();
    let by_name: BTreeMap<&str, (usize, &EnvVar)> = env
        .iter()
        .enumerate()
        .map(|(index, var)| (var.name.as_str(), (index, var)))
        .collect();
    let has_value = |name: &str| {
        by_name.get(name).is_some_and(|(_, var)| {
            var.value.as_deref().is_some_and(|s| !s.is_empty()) || var.value_from.is_some()
        })
    };
    let literal = |name: &str| {
        by_name
            .get(name)
            .and_then(|(_, var)| var.value.as_deref())
            .unwrap_or_default()
    };

    for name in MANAGED_ENV {
        if let Some((index, _)) = by_name.get(name) {
            v.error(
                at(&format!("env[{index}]")),
                format!(
                    "historyServerOptions.collectorOptions.env must not contain {name}: it is \
                     managed by KubeRay and injected automatically into the collector container"
                ),
            );
        }
    }

    let backend = literal(STORAGE_BACKEND);
    if backend.is_empty() {
        v.error(
            at("env"),
            format!(
                "{STORAGE_BACKEND} environment variable must be set with a literal string value \
                 in historyServerOptions.collectorOptions.env (GCS, S3, AZUREBLOB or ALIYUNOSS)"
            ),
        );
        return;
    }
    let mut require = |name: &str, condition: &str| {
        if !has_value(name) {
            v.error(
                at("env"),
                format!("{name} environment variable must be set when {condition}"),
            );
        }
    };
    match backend.to_ascii_uppercase().as_str() {
        "GCS" => require("GCS_BUCKET", "STORAGE_BACKEND is GCS"),
        "S3" => require("S3_REGION", "STORAGE_BACKEND is S3"),
        "ALIYUNOSS" => {
            for name in ["OSS_BUCKET", "OSS_ENDPOINT", "OSS_REGION"] {
                require(name, "STORAGE_BACKEND is ALIYUNOSS");
            }
        }
        "AZUREBLOB" => {
            let mode = literal(AZURE_STORAGE_AUTH_MODE).trim().to_ascii_lowercase();
            match mode.as_str() {
                "connection_string" => require(
                    AZURE_STORAGE_CONNECTION_STRING,
                    "STORAGE_BACKEND is AZUREBLOB and AZURE_STORAGE_AUTH_MODE is connection_string",
                ),
                "workload_identity" | "default" => require(
                    AZURE_STORAGE_ACCOUNT_URL,
                    &format!("STORAGE_BACKEND is AZUREBLOB and AZURE_STORAGE_AUTH_MODE is {mode}"),
                ),
                _ => {
                    if !has_value(AZURE_STORAGE_CONNECTION_STRING)
                        && !has_value(AZURE_STORAGE_ACCOUNT_URL)
                    {
                        v.error(
                            at("env"),
                            format!(
                                "either {AZURE_STORAGE_CONNECTION_STRING} or \
                                 {AZURE_STORAGE_ACCOUNT_URL} environment variable must be set \
                                 when {STORAGE_BACKEND} is AZUREBLOB"
                            ),
                        );
                    }
                }
            }
        }
        _ => {}
    }
}
