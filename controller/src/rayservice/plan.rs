//! The pure half of the RayService controller: which RayCluster should exist (zero-downtime
//! upgrades prepare a new one when the cluster spec changes), what it looks like, and how Ray
//! Serve's answer becomes status.
//!
//! What must survive a controller restart lives on the objects, not in memory (KubeRay keeps it
//! in memory and re-applies configs after every restart): the serve config applied to a cluster
//! is a hash annotation on that cluster, and a dangling cluster's deletion time an annotation
//! on it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use raygate_api::labels::{
    RAY_HASH_WITHOUT_REPLICAS, RAY_NUM_WORKER_GROUPS, RAY_ORIGINATED_FROM_CR_NAME,
    RAY_ORIGINATED_FROM_CRD,
};
use raygate_api::rayservice::{AppStatus, ServeDeploymentStatus};
use raygate_api::{RayCluster, RayService};

use crate::dashboard::ServeDetails;
use crate::names;
use crate::spec_hash::{self, fnv1a_hex, pod_template_hash};

/// On a RayService's cluster: the hash of the serve config last applied to it.
pub const SERVE_CONFIG_HASH: &str = "raygate.io/serve-config-hash";
/// On a cluster the RayService no longer uses: when it will be deleted (RFC 3339).
pub const DELETE_AFTER: &str = "raygate.io/delete-after";
/// `rayClusterDeletionDelaySeconds` when unset.
pub const DEFAULT_DELETION_DELAY_SECONDS: i64 = 60;
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The hash a cluster must carry to match the RayService's `rayClusterConfig`. Scaling fields
/// are left out: the autoscaler moves them, and that is no reason for a new cluster.
pub fn goal_hash(service: &RayService) -> String {
    pod_template_hash(&service.spec.ray_cluster_config)
}

/// The goal hashes over the head and only the first `groups` worker groups: what a cluster
/// created before more groups were appended carries. With no groups the spec may have had no
/// list or an empty one.
fn goal_hashes_of_first(service: &RayService, groups: usize) -> Vec<String> {
    let mut spec = service.spec.ray_cluster_config.clone();
    if let Some(workers) = spec.worker_group_specs.as_mut() {
        workers.truncate(groups);
    }
    let mut hashes = vec![pod_template_hash(&spec)];
    if groups == 0 {
        spec.worker_group_specs = None;
        hashes.push(pod_template_hash(&spec));
    }
    hashes
}

/// The spec differs from the cluster only by worker groups appended at the end: KubeRay then
/// updates the cluster in place (its pods stay; the new groups' pods are added).
pub fn only_groups_appended(service: &RayService, cluster: &RayCluster) -> bool {
    let Some(groups) = cluster
        .annotations()
        .get(RAY_NUM_WORKER_GROUPS)
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return false;
    };
    let wanted = service
        .spec
        .ray_cluster_config
        .worker_group_specs
        .as_ref()
        .map_or(0, Vec::len);
    wanted > groups
        && cluster_hash(cluster).is_some_and(|hash| {
            goal_hashes_of_first(service, groups)
                .iter()
                .any(|goal| goal == hash)
        })
}

/// The cluster updated in place to the current spec: spec, labels and annotations as a new
/// cluster would have them, its own name and `suspend` kept.
pub fn updated_in_place(service: &RayService, cluster: &RayCluster) -> RayCluster {
    let name = cluster.name_any();
    let mut updated = cluster_for_service(service, &name);
    updated.spec.suspend = cluster.spec.suspend;
    updated.metadata.resource_version = cluster.metadata.resource_version.clone();
    let mut annotations = cluster.annotations().clone();
    annotations.extend(updated.metadata.annotations.take().unwrap_or_default());
    updated.metadata.annotations = Some(annotations);
    let mut labels = cluster.labels().clone();
    labels.extend(updated.metadata.labels.take().unwrap_or_default());
    updated.metadata.labels = Some(labels);
    updated
}

pub fn cluster_hash(cluster: &RayCluster) -> Option<&str> {
    cluster
        .annotations()
        .get(RAY_HASH_WITHOUT_REPLICAS)
        .map(String::as_str)
}

/// Whether the cluster was made for the RayService's current `rayClusterConfig` (by this
/// raygate, or by an earlier one that hashed the same spec differently).
pub fn matches_goal(service: &RayService, cluster: &RayCluster) -> bool {
    spec_hash::is_current(
        cluster_hash(cluster),
        &service.spec.ray_cluster_config,
        &goal_hash(service),
    )
}

/// Zero-downtime upgrades are on unless `upgradeStrategy.type` is `None`.
pub fn zero_downtime(service: &RayService) -> bool {
    service
        .spec
        .upgrade_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("None")
}

/// Whether a new pending cluster must be created for the current spec.
///
/// An incremental upgrade never replaces its pending cluster while an active one exists: a
/// spec that leaves it rolls back to the active cluster first, and the next upgrade starts
/// from there.
pub fn needs_new_cluster(
    service: &RayService,
    active: Option<&RayCluster>,
    pending: Option<&RayCluster>,
    incremental: bool,
) -> bool {
    match (active, pending) {
        (active, Some(pending)) => {
            let keep_pending = (incremental && active.is_some())
                || matches_goal(service, pending)
                || only_groups_appended(service, pending);
            !keep_pending
        }
        (None, None) => true,
        (Some(active), None) => {
            !matches_goal(service, active)
                && !only_groups_appended(service, active)
                && zero_downtime(service)
        }
    }
}

/// `<rayservice>-<5 random characters>`.
pub fn new_cluster_name(service: &RayService) -> String {
    let base: String = service.name_any().chars().take(50).collect();
    format!("{base}-{}", names::random_suffix())
}

pub fn originated_from(service: &RayService) -> BTreeMap<String, String> {
    BTreeMap::from([
        (RAY_ORIGINATED_FROM_CR_NAME.to_string(), service.name_any()),
        (
            RAY_ORIGINATED_FROM_CRD.to_string(),
            "RayService".to_string(),
        ),
    ])
}

pub fn cluster_for_service(service: &RayService, name: &str) -> RayCluster {
    let spec = service.spec.ray_cluster_config.clone();
    let mut labels = service.labels().clone();
    labels.extend(originated_from(service));
    let mut annotations = service.annotations().clone();
    annotations.remove(LAST_APPLIED);
    annotations.insert(RAY_HASH_WITHOUT_REPLICAS.to_string(), goal_hash(service));
    annotations.insert(
        RAY_NUM_WORKER_GROUPS.to_string(),
        spec.worker_group_specs
            .as_ref()
            .map_or(0, Vec::len)
            .to_string(),
    );
    RayCluster {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: service.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: service.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

/// `serveConfigV2` (YAML) as the JSON the Serve API takes; `None` when unset.
pub fn serve_config(service: &RayService) -> Result<Option<serde_json::Value>, String> {
    let Some(yaml) = service
        .spec
        .serve_config_v2
        .as_deref()
        .filter(|y| !y.trim().is_empty())
    else {
        return Ok(None);
    };
    serde_saphyr::from_str::<serde_json::Value>(yaml)
        .map(Some)
        .map_err(|e| format!("spec.serveConfigV2 is not valid YAML: {e}"))
}

pub fn config_hash(config: &serde_json::Value) -> String {
    fnv1a_hex(config.to_string().as_bytes())
}

/// Serve is ready when it runs at least one application and every one is RUNNING.
pub fn apps_running(details: &ServeDetails) -> bool {
    !details.applications.is_empty()
        && details
            .applications
            .values()
            .all(|app| app.status == "RUNNING")
}

/// Serve's applications as `applicationStatuses` (the unnamed application is `default`).
pub fn app_statuses(details: &ServeDetails) -> BTreeMap<String, AppStatus> {
    details
        .applications
        .iter()
        .map(|(name, app)| {
            let name = if name.is_empty() { "default" } else { name };
            let deployments = app
                .deployments
                .iter()
                .map(|(name, d)| {
                    let status = ServeDeploymentStatus {
                        status: Some(d.status.clone()),
                        message: d.message.clone().filter(|m| !m.is_empty()),
                    };
                    (name.clone(), status)
                })
                .collect();
            let status = AppStatus {
                status: Some(app.status.clone()),
                message: app.message.clone().filter(|m| !m.is_empty()),
                serve_deployment_statuses: Some(deployments),
            };
            (name.to_string(), status)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(image: &str, strategy: Option<&str>) -> RayService {
        let mut spec = json!({
            "serveConfigV2": "applications:\n  - name: hello\n    import_path: m:app\n",
            "rayClusterConfig": {"headGroupSpec": {"template": {"spec": {"containers": [
                {"name": "ray-head", "image": image}
            ]}}}},
        });
        if let Some(kind) = strategy {
            spec["upgradeStrategy"] = json!({"type": kind});
        }
        serde_json::from_value(json!({
            "apiVersion": "ray.io/v1", "kind": "RayService",
            "metadata": {"name": "svc", "namespace": "ns", "uid": "u-1", "labels": {"team": "a"}},
            "spec": spec,
        }))
        .expect("a RayService")
    }

    #[test]
    fn a_cluster_spec_change_prepares_a_new_cluster_unless_upgrades_are_off() {
        let v1 = service("rayproject/ray:2.46.0", None);
        let active = cluster_for_service(&v1, "svc-aaaaa");
        assert!(needs_new_cluster(&v1, None, None, false));
        assert!(!needs_new_cluster(&v1, Some(&active), None, false));
        let v2 = service("rayproject/ray:2.47.0", None);
        assert!(needs_new_cluster(&v2, Some(&active), None, false));
        let pending = cluster_for_service(&v2, "svc-bbbbb");
        assert!(!needs_new_cluster(
            &v2,
            Some(&active),
            Some(&pending),
            false
        ));
        // A newer spec while a pending cluster exists replaces the pending one.
        let v3 = service("rayproject/ray:2.48.0", None);
        assert!(needs_new_cluster(&v3, Some(&active), Some(&pending), false));
        // An incremental upgrade rolls back instead, but a first cluster that never took
        // over is replaced as with blue/green.
        assert!(!needs_new_cluster(&v3, Some(&active), Some(&pending), true));
        assert!(needs_new_cluster(&v3, None, Some(&pending), true));
        let off = service("rayproject/ray:2.47.0", Some("None"));
        assert!(!needs_new_cluster(&off, Some(&active), None, false));
    }

    fn with_groups(mut service: RayService, images: &[&str]) -> RayService {
        let groups = images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                serde_json::from_value(json!({
                    "groupName": format!("g{i}"), "minReplicas": 1, "maxReplicas": 2,
                    "template": {"spec": {"containers": [{"name": "ray-worker", "image": image}]}},
                }))
                .unwrap_or_else(|e| panic!("a group: {e}"))
            })
            .collect();
        service.spec.ray_cluster_config.worker_group_specs = Some(groups);
        service
    }

    #[test]
    fn appended_worker_groups_update_the_cluster_in_place() {
        let v1 = with_groups(service("rayproject/ray:2.46.0", None), &["w:1"]);
        let mut active = cluster_for_service(&v1, "svc-aaaaa");
        active.spec.suspend = Some(true);
        active.metadata.resource_version = Some("42".into());
        let v2 = with_groups(service("rayproject/ray:2.46.0", None), &["w:1", "w:2"]);
        assert!(only_groups_appended(&v2, &active));
        assert!(!needs_new_cluster(&v2, Some(&active), None, false));
        let updated = updated_in_place(&v2, &active);
        assert_eq!(updated.name_any(), "svc-aaaaa");
        assert_eq!(
            updated.spec.worker_group_specs.as_ref().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            updated.spec.suspend,
            Some(true),
            "the cluster's suspend is kept"
        );
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(updated.annotations()[RAY_NUM_WORKER_GROUPS], "2");
        assert_eq!(cluster_hash(&updated), Some(goal_hash(&v2).as_str()));
        assert!(
            !only_groups_appended(&v2, &updated),
            "nothing left to append"
        );

        // A changed existing group, or a removed one, still needs a new cluster.
        let changed = with_groups(service("rayproject/ray:2.46.0", None), &["w:9", "w:2"]);
        assert!(!only_groups_appended(&changed, &active));
        assert!(needs_new_cluster(&changed, Some(&active), None, false));
        let fewer = with_groups(service("rayproject/ray:2.46.0", None), &[]);
        assert!(needs_new_cluster(&fewer, Some(&active), None, false));
        // A cluster created without any worker group gets its first one in place too.
        let bare = cluster_for_service(&service("rayproject/ray:2.46.0", None), "svc-ccccc");
        let first = with_groups(service("rayproject/ray:2.46.0", None), &["w:1"]);
        assert!(only_groups_appended(&first, &bare));
        // The same holds for a pending cluster.
        let pending = cluster_for_service(&v1, "svc-bbbbb");
        assert!(!needs_new_cluster(&v2, None, Some(&pending), false));
    }

    #[test]
    fn a_cluster_hashed_by_an_earlier_raygate_is_still_the_goal() {
        let mut svc = service("rayproject/ray:2.46.0", None);
        let config = &mut svc.spec.ray_cluster_config;
        config.enable_in_tree_autoscaling = Some(true);
        config.autoscaler_options = Some(raygate_api::raycluster::AutoscalerOptions {
            version: Some(raygate_api::raycluster::AutoscalerVersion::V2),
            ..Default::default()
        });
        if let Some(pod_spec) = config.head_group_spec.template.spec.as_mut() {
            pod_spec.restart_policy = Some("Never".into());
        }
        let mut active = cluster_for_service(&svc, "svc-aaaaa");
        assert!(matches_goal(&svc, &active));
        let earlier = spec_hash::earlier_pod_template_hash(&svc.spec.ray_cluster_config)
            .expect("a v2 template states Never");
        active
            .annotations_mut()
            .insert(RAY_HASH_WITHOUT_REPLICAS.to_string(), earlier);
        assert!(
            matches_goal(&svc, &active),
            "no new cluster for a raygate upgrade"
        );
        assert!(!needs_new_cluster(&svc, Some(&active), None, false));
        active
            .annotations_mut()
            .insert(RAY_HASH_WITHOUT_REPLICAS.to_string(), "0000".into());
        assert!(needs_new_cluster(&svc, Some(&active), None, false));
    }

    #[test]
    fn the_cluster_is_labelled_hashed_and_owned() {
        let cluster = cluster_for_service(&service("rayproject/ray:2.46.0", None), "svc-aaaaa");
        assert_eq!(cluster.labels()["team"], "a");
        assert_eq!(cluster.labels()[RAY_ORIGINATED_FROM_CRD], "RayService");
        assert_eq!(cluster.labels()[RAY_ORIGINATED_FROM_CR_NAME], "svc");
        assert_eq!(cluster.annotations()[RAY_NUM_WORKER_GROUPS], "0");
        assert!(cluster_hash(&cluster).is_some());
        assert_eq!(cluster.owner_references()[0].kind, "RayService");
    }

    #[test]
    fn serve_answers_become_status() {
        let details: ServeDetails = serde_json::from_value(json!({"applications": {
            "hello": {"status": "RUNNING", "message": "", "deployments": {
                "Hello": {"status": "HEALTHY", "message": ""}}},
            "": {"status": "DEPLOYING", "deployments": {}},
        }}))
        .expect("details");
        assert!(!apps_running(&details));
        let statuses = app_statuses(&details);
        assert_eq!(statuses["hello"].status.as_deref(), Some("RUNNING"));
        assert_eq!(statuses["hello"].message, None);
        let deployments = statuses["hello"]
            .serve_deployment_statuses
            .as_ref()
            .expect("deployments");
        assert_eq!(deployments["Hello"].status.as_deref(), Some("HEALTHY"));
        assert_eq!(statuses["default"].status.as_deref(), Some("DEPLOYING"));
        assert!(!apps_running(&ServeDetails::default()));
    }

    #[test]
    fn serve_config_yaml_becomes_json_with_a_stable_hash() {
        let svc = service("rayproject/ray:2.46.0", None);
        let config = serve_config(&svc).expect("valid").expect("set");
        assert_eq!(config["applications"][0]["import_path"], "m:app");
        assert_eq!(config_hash(&config), config_hash(&config.clone()));
    }
}
