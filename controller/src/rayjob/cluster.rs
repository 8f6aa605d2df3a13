//! The RayCluster a RayJob runs on: a copy of `spec.rayClusterSpec`, labelled and owned the way
//! KubeRay does it, so tools that find a job's cluster by `ray.io/originated-from-*` keep working.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use raygate_api::labels::{
    ANNOTATION_DISABLE_PROVISIONED_HEAD_RESTART, RAY_CLUSTER, RAY_IDENTIFIER,
    RAY_JOB_SUBMISSION_MODE, RAY_NODE_TYPE, RAY_ORIGINATED_FROM_CR_NAME, RAY_ORIGINATED_FROM_CRD,
};
use raygate_api::{RayCluster, RayJob};

use super::state::SubmissionMode;
use super::submitter;
use crate::names;

/// kubectl's record of the RayJob's own manifest; copied onto the cluster it would make
/// `kubectl apply` there act on the wrong object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `<rayjob>-<5 random characters>`; with `clusterSelector`, the selected cluster's name.
pub fn cluster_name(job: &RayJob) -> String {
    if let Some(selected) = job
        .spec
        .cluster_selector
        .as_ref()
        .and_then(|s| s.get(RAY_CLUSTER))
    {
        return selected.clone();
    }
    let base: String = job.name_any().chars().take(50).collect();
    format!("{base}-{}", names::random_suffix())
}

/// The Ray job's submission id: `spec.jobId`, else `<rayjob>-<5 random characters>`.
pub fn job_id(job: &RayJob) -> String {
    match job.spec.job_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => id.to_string(),
        None => format!("{}-{}", job.name_any(), names::random_suffix()),
    }
}

/// Labels that tie a cluster (and the submitter Job) to its RayJob.
pub fn originated_from(job: &RayJob) -> BTreeMap<String, String> {
    BTreeMap::from([
        (RAY_ORIGINATED_FROM_CR_NAME.to_string(), job.name_any()),
        (RAY_ORIGINATED_FROM_CRD.to_string(), "RayJob".to_string()),
    ])
}

/// `<rayjob>-head-svc`: the job's cluster's head under a name that survives retries (each
/// attempt has a new cluster), owned by the RayJob.
pub fn head_service(job: &RayJob, cluster: &RayCluster) -> Service {
    let mut labels = originated_from(job);
    labels.insert(RAY_NODE_TYPE.to_string(), "head".to_string());
    labels.insert(
        RAY_IDENTIFIER.to_string(),
        format!("{}-head", job.name_any()),
    );
    crate::services::owner_head_service(
        cluster,
        names::head_service_name(&job.name_any()),
        labels,
        job.controller_owner_ref(&()),
    )
}

/// The cluster to create, or `None` when the job names no `rayClusterSpec`.
pub fn cluster_for_job(job: &RayJob, name: &str, job_id: &str) -> Option<RayCluster> {
    let mut spec = job.spec.ray_cluster_spec.clone()?;
    let mode = SubmissionMode::of(job);
    let mut labels = job.labels().clone();
    labels.extend(originated_from(job));
    labels.insert(
        RAY_JOB_SUBMISSION_MODE.to_string(),
        mode.as_str().to_string(),
    );
    let mut annotations = job.annotations().clone();
    annotations.remove(LAST_APPLIED);
    if mode == SubmissionMode::Sidecar {
        annotations.insert(
            ANNOTATION_DISABLE_PROVISIONED_HEAD_RESTART.to_string(),
            "true".to_string(),
        );
        let port = submitter::dashboard_port(&spec);
        let address = format!("127.0.0.1:{port}");
        let image = submitter::head_image(&spec);
        let head = &mut spec.head_group_spec.template;
        let pod = head.spec.get_or_insert_with(Default::default);
        pod.containers
            .push(submitter::sidecar_container(job, &address, job_id, image));
        // The head must not come back after the job ends: its sidecar would submit again.
        pod.restart_policy = Some("Never".to_string());
    }
    Some(RayCluster {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: job.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(mode: &str) -> RayJob {
        serde_json::from_value(json!({
            "apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {
                "name": "nightly", "namespace": "team-a", "uid": "u-1",
                "labels": {"team": "a"},
                "annotations": {"note": "x", LAST_APPLIED: "{}"},
            },
            "spec": {
                "entrypoint": "python train.py",
                "submissionMode": mode,
                "rayClusterSpec": {
                    "headGroupSpec": {"template": {"spec": {"containers": [{
                        "name": "ray-head", "image": "rayproject/ray:2.46.0",
                        "ports": [{"name": "dashboard", "containerPort": 8266}],
                    }]}}},
                },
            },
        }))
        .expect("a RayJob")
    }

    #[test]
    fn the_cluster_carries_the_jobs_labels_and_is_owned_by_it() {
        let cluster = cluster_for_job(&job("HTTPMode"), "nightly-abcde", "id-1").expect("a spec");
        let labels = cluster.labels();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels[RAY_ORIGINATED_FROM_CR_NAME], "nightly");
        assert_eq!(labels[RAY_ORIGINATED_FROM_CRD], "RayJob");
        assert_eq!(labels[RAY_JOB_SUBMISSION_MODE], "HTTPMode");
        assert_eq!(cluster.annotations()["note"], "x");
        assert!(!cluster.annotations().contains_key(LAST_APPLIED));
        let owner = &cluster.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("RayJob", "u-1"));
        assert_eq!(owner.controller, Some(true));
        assert_eq!(cluster.namespace().as_deref(), Some("team-a"));
    }

    #[test]
    fn sidecar_mode_adds_the_submitter_to_the_head_and_stops_head_restarts() {
        let cluster =
            cluster_for_job(&job("SidecarMode"), "nightly-abcde", "id-1").expect("a spec");
        let pod = cluster
            .spec
            .head_group_spec
            .template
            .spec
            .clone()
            .expect("pod spec");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let sidecar = pod.containers.last().expect("a sidecar");
        assert_eq!(sidecar.name, submitter::SUBMITTER_CONTAINER);
        let script = sidecar.args.as_ref().expect("args").join(" ");
        assert!(script.contains("http://127.0.0.1:8266"), "{script}");
        assert!(script.contains("--submission-id id-1"), "{script}");
        assert_eq!(
            cluster.annotations()[ANNOTATION_DISABLE_PROVISIONED_HEAD_RESTART],
            "true"
        );
    }

    #[test]
    fn names_come_from_the_selector_or_the_job() {
        let mut selected = job("HTTPMode");
        selected.spec.cluster_selector = Some(BTreeMap::from([(
            RAY_CLUSTER.to_string(),
            "shared".to_string(),
        )]));
        assert_eq!(cluster_name(&selected), "shared");
        let generated = cluster_name(&job("HTTPMode"));
        assert!(generated.starts_with("nightly-") && generated.len() == "nightly-".len() + 5);
        assert_ne!(job_id(&job("HTTPMode")), job_id(&job("HTTPMode")));
        let mut fixed = job("HTTPMode");
        fixed.spec.job_id = Some("mine".to_string());
        assert_eq!(job_id(&fixed), "mine");
    }
}
