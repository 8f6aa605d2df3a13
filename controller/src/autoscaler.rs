//! The Ray autoscaler sidecar of the head pod (`enableInTreeAutoscaling`) and the RBAC it
//! needs: it reads pods and patches the RayCluster's `replicas` and `workersToDelete`, which
//! this controller then carries out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
    ResourceRequirements, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use raygate_api::labels::{K8S_APP_NAME, K8S_CREATED_BY, RAY_CLUSTER};
use raygate_api::raycluster::AutoscalerVersion;
use raygate_api::{RayCluster, RayClusterSpec};

use crate::names::{self, APP_NAME, CREATED_BY};

pub const CONTAINER: &str = "autoscaler";
/// Ray writes its logs under /tmp/ray; the autoscaler reads the head's from a shared volume.
const LOGS_VOLUME: &str = "ray-logs";
const LOGS_PATH: &str = "/tmp/ray";

pub fn enabled(cluster: &RayCluster) -> bool {
    cluster.spec.enable_in_tree_autoscaling == Some(true)
}

fn version(cluster: &RayCluster) -> Option<AutoscalerVersion> {
    cluster
        .spec
        .autoscaler_options
        .as_ref()
        .and_then(|o| o.version)
}

/// The head's service account: the template's, else one named after the cluster.
pub fn service_account_name(cluster: &RayCluster) -> String {
    cluster
        .spec
        .head_group_spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| names::check_name(&cluster.name_any()))
}

/// Whether the user named the head's service account (then it is theirs to create).
pub fn user_service_account(cluster: &RayCluster) -> bool {
    cluster
        .spec
        .head_group_spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn mount_logs(container: &mut Container) {
    let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
    if !mounts.iter().any(|m| m.mount_path == LOGS_PATH) {
        mounts.push(VolumeMount {
            name: LOGS_VOLUME.to_string(),
            mount_path: LOGS_PATH.to_string(),
            ..VolumeMount::default()
        });
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

/// Adds the sidecar, the shared log volume and the service account to the head pod.
pub fn add_to_head(cluster: &RayCluster, spec: &mut PodSpec) {
    if !enabled(cluster) {
        return;
    }
    never_restart_under_v2(cluster, spec);
    spec.service_account_name = Some(service_account_name(cluster));
    let options = cluster.spec.autoscaler_options.clone().unwrap_or_default();
    let Some(ray) = spec.containers.first_mut() else {
        return;
    };
    mount_logs(ray);
    if let Some(version) = version(cluster) {
        let ray_env = ray.env.get_or_insert_with(Vec::new);
        if !ray_env.iter().any(|e| e.name == "RAY_enable_autoscaler_v2") {
            ray_env.push(env(
                "RAY_enable_autoscaler_v2",
                if version == AutoscalerVersion::V2 {
                    "true"
                } else {
                    "false"
                },
            ));
        }
    }
    let image = options.image.clone().or_else(|| ray.image.clone());
    if spec.containers.iter().any(|c| c.name == CONTAINER) {
        return;
    }
    let start = "ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) \
                 --cluster-namespace $(RAY_CLUSTER_NAMESPACE)";
    let mut container_env = vec![
        field_env("RAY_CLUSTER_NAME", "metadata.labels['ray.io/cluster']"),
        field_env("RAY_CLUSTER_NAMESPACE", "metadata.namespace"),
        field_env("RAY_HEAD_POD_NAME", "metadata.name"),
        env("KUBERAY_CRD_VER", "v1"),
        env("KUBERAY_GEN_AUTOSCALER_START_CMD", start),
    ];
    container_env.extend(options.env.clone().unwrap_or_default());
    let default_resources = BTreeMap::from([
        ("cpu".to_string(), Quantity("500m".into())),
        ("memory".to_string(), Quantity("512Mi".into())),
    ]);
    let mut container = Container {
        name: CONTAINER.to_string(),
        image,
        image_pull_policy: Some(
            options
                .image_pull_policy
                .clone()
                .unwrap_or_else(|| "IfNotPresent".to_string()),
        ),
        env: Some(container_env),
        env_from: options.env_from.clone(),
        command: Some(
            options
                .command
                .clone()
                .unwrap_or_else(|| vec!["/bin/bash".into(), "-lc".into(), "--".into()]),
        ),
        args: Some(
            options
                .args
                .clone()
                .unwrap_or_else(|| vec![start.to_string()]),
        ),
        resources: Some(options.resources.clone().unwrap_or(ResourceRequirements {
            limits: Some(default_resources.clone()),
            requests: Some(default_resources),
            ..ResourceRequirements::default()
        })),
        security_context: options.security_context.clone(),
        volume_mounts: options.volume_mounts.clone(),
        ..Container::default()
    };
    mount_logs(&mut container);
    spec.containers.push(container);
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if !volumes.iter().any(|v| v.name == LOGS_VOLUME) {
        volumes.push(Volume {
            name: LOGS_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
}

pub fn add_to_worker(cluster: &RayCluster, spec: &mut PodSpec) {
    never_restart_under_v2(cluster, spec);
}

/// Admission writes `restartPolicy: Never` into autoscaler v2 templates; objects admitted by
/// raygate before it did (their stamp is still current) get it here. Validation allows
/// nothing else under v2, so only a missing policy is filled in.
fn never_restart_under_v2(cluster: &RayCluster, spec: &mut PodSpec) {
    if is_v2(&cluster.spec) && spec.restart_policy.is_none() {
        spec.restart_policy = Some("Never".to_string());
    }
}

/// In-tree autoscaling with autoscaler v2.
pub fn is_v2(spec: &RayClusterSpec) -> bool {
    spec.enable_in_tree_autoscaling == Some(true)
        && spec.autoscaler_options.as_ref().and_then(|o| o.version) == Some(AutoscalerVersion::V2)
}

fn meta(cluster: &RayCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: cluster.namespace(),
        labels: Some(BTreeMap::from([
            (RAY_CLUSTER.to_string(), cluster.name_any()),
            (K8S_APP_NAME.to_string(), APP_NAME.to_string()),
            (K8S_CREATED_BY.to_string(), CREATED_BY.to_string()),
        ])),
        owner_references: crate::pods::controller_reference(cluster),
        ..ObjectMeta::default()
    }
}

pub fn service_account(cluster: &RayCluster) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(cluster, service_account_name(cluster)),
        ..ServiceAccount::default()
    }
}

pub fn role(cluster: &RayCluster) -> Role {
    let rule = |groups: &str, resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![groups.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    };
    Role {
        metadata: meta(cluster, names::check_name(&cluster.name_any())),
        rules: Some(vec![
            rule("", &["pods"], &["get", "list", "watch", "patch"]),
            rule("", &["pods/resize"], &["patch"]),
            rule("ray.io", &["rayclusters"], &["get", "patch"]),
        ]),
    }
}

pub fn role_binding(cluster: &RayCluster) -> RoleBinding {
    let name = names::check_name(&cluster.name_any());
    RoleBinding {
        metadata: meta(cluster, name.clone()),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "Role".to_string(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: service_account_name(cluster),
            namespace: cluster.namespace(),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(version: &str) -> RayCluster {
        let yaml = format!(
            r#"
apiVersion: ray.io/v1
kind: RayCluster
metadata: {{name: demo, namespace: ns}}
spec:
  enableInTreeAutoscaling: true
  autoscalerOptions: {{version: {version}}}
  headGroupSpec:
    template:
      spec:
        containers: [{{name: ray-head, image: rayproject/ray:2.52.0}}]
"#
        );
        let value = raygate_api::manifest::parse_documents(&yaml).expect("yaml")[0].clone();
        serde_json::from_value(value).expect("RayCluster")
    }

    #[test]
    fn the_head_gets_the_sidecar_logs_volume_and_account() {
        let c = cluster("v2");
        let mut spec = c.spec.head_group_spec.template.spec.clone().expect("spec");
        add_to_head(&c, &mut spec);
        add_to_head(&c, &mut spec);
        assert_eq!(spec.containers.len(), 2, "added once");
        let sidecar = &spec.containers[1];
        assert_eq!(sidecar.name, CONTAINER);
        assert_eq!(sidecar.image.as_deref(), Some("rayproject/ray:2.52.0"));
        assert!(sidecar.args.as_ref().expect("args")[0].contains("ray kuberay-autoscaler"));
        assert_eq!(spec.service_account_name.as_deref(), Some("demo"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.volumes.as_ref().expect("volumes").len(), 1);
        let ray_env = spec.containers[0].env.as_ref().expect("env");
        assert!(ray_env.iter().any(|e| e.name == "RAY_enable_autoscaler_v2"));
        let binding = role_binding(&c);
        assert_eq!(binding.subjects.expect("subjects")[0].name, "demo");
    }
}
