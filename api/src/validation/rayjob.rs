//! RayJob rules (J1–J25), plus the CRD rules a webhook can see, a known `submissionMode`,
//! parseable `entrypointResources`, and resource checks on the submitter pod template.
//! `spec.rayClusterSpec` gets every RayCluster spec rule under its own path (J21).

use super::cluster_spec::{self, ClusterScope, Owner};
use super::yaml_text::{YamlMappingProblem, yaml_mapping_problem};
use super::{deletion_strategy, metadata, pod_template, resources};
use crate::field_error::Validation;
use crate::labels::RAY_CLUSTER;
use crate::ray_version::{self, MIN_JOB_METADATA};
use crate::rayjob::RayJob;

const K8S_JOB_MODE: &str = "K8sJobMode";
const HTTP_MODE: &str = "HTTPMode";
const INTERACTIVE_MODE: &str = "InteractiveMode";
const SIDECAR_MODE: &str = "SidecarMode";
const SUBMISSION_MODES: [&str; 4] = [K8S_JOB_MODE, HTTP_MODE, INTERACTIVE_MODE, SIDECAR_MODE];

pub(crate) fn check(v: &mut Validation, job: &RayJob) {
    let spec = &job.spec;
    // J1, J2
    metadata::check_name(v, &job.metadata, "RayJob", metadata::MAX_RAYJOB_NAME);
    cluster_spec::check_managed_by_value(v, spec.managed_by.as_deref(), "spec.managedBy".into());

    let mode = spec.submission_mode.as_deref().unwrap_or(K8S_JOB_MODE);
    if !SUBMISSION_MODES.contains(&mode) {
        v.error(
            "spec.submissionMode",
            format!(
                "submissionMode \"{mode}\" is not supported: use one of {}",
                SUBMISSION_MODES.join(", ")
            ),
        );
    }
    let shutdown = spec.shutdown_after_job_finishes == Some(true);
    let suspend = spec.suspend == Some(true);
    let ttl = spec.ttl_seconds_after_finished.unwrap_or(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(0);
    let selector = spec.cluster_selector.as_ref().filter(|s| !s.is_empty());

    // J3: suspending deletes the cluster, which only a job that owns its cluster's lifetime may do.
    if suspend && !shutdown {
        v.error(
            "spec.suspend",
            "a RayJob with shutdownAfterJobFinishes set to false is not allowed to be suspended",
        );
    }
    // J4, J5
    if ttl < 0 {
        v.error(
            "spec.ttlSecondsAfterFinished",
            format!("TTLSecondsAfterFinished must be a non-negative integer, got {ttl}"),
        );
    } else if ttl > 0 && !shutdown {
        v.error(
            "spec.ttlSecondsAfterFinished",
            format!(
                "a RayJob with shutdownAfterJobFinishes set to false cannot have \
                 TTLSecondsAfterFinished ({ttl}); set shutdownAfterJobFinishes: true"
            ),
        );
    }
    // J6–J14
    deletion_strategy::check(v, job);

    // J15, J16, J17
    if suspend && selector.is_some() {
        v.error(
            "spec.suspend",
            "the ClusterSelector mode doesn't support the suspend operation",
        );
    }
    match (selector, &spec.ray_cluster_spec) {
        (None, None) => v.error(
            "spec.rayClusterSpec",
            "one of RayClusterSpec or ClusterSelector must be set",
        ),
        (Some(_), Some(_)) => v.warn(
            "spec.rayClusterSpec is ignored: spec.clusterSelector runs the job on an existing \
             RayCluster",
        ),
        _ => {}
    }
    if let Some(selector) = selector {
        if selector.get(RAY_CLUSTER).is_none_or(String::is_empty) {
            let path = if selector.contains_key(RAY_CLUSTER) {
                format!("spec.clusterSelector[{RAY_CLUSTER}]")
            } else {
                "spec.clusterSelector".to_string()
            };
            v.error(
                path,
                format!(
                    "cluster name in ClusterSelector should not be empty: set \
                     clusterSelector[{RAY_CLUSTER}] to the RayCluster's name"
                ),
            );
        }
        if mode == SIDECAR_MODE {
            v.error(
                "spec.submissionMode",
                "ClusterSelector is not supported in SidecarMode",
            );
        }
        if backoff_limit > 0 {
            v.error(
                "spec.backoffLimit",
                format!(
                    "BackoffLimit is incompatible with ClusterSelector mode (got {backoff_limit}): \
                     retries create new clusters"
                ),
            );
        }
    }
    // J18
    if mode == INTERACTIVE_MODE && backoff_limit > 0 {
        v.error(
            "spec.backoffLimit",
            format!("BackoffLimit is incompatible with InteractiveMode (got {backoff_limit})"),
        );
    }
    // J19: the submitter runs inside the head pod, configured by KubeRay.
    if mode == SIDECAR_MODE {
        if spec.submitter_pod_template.is_some() {
            v.error(
                "spec.submitterPodTemplate",
                "Currently, SidecarMode doesn't support SubmitterPodTemplate",
            );
        }
        if spec.submitter_config.is_some() {
            v.error(
                "spec.submitterConfig",
                "Currently, SidecarMode doesn't support SubmitterConfig",
            );
        }
        if let Some(cluster) = &spec.ray_cluster_spec {
            let policy = pod_template::restart_policy(&cluster.head_group_spec.template);
            if !policy.is_empty() && policy != "Never" {
                v.error(
                    "spec.rayClusterSpec.headGroupSpec.template.spec.restartPolicy",
                    format!(
                        "restartPolicy for head Pod should be Never or unset when using \
                         SidecarMode (got {policy})"
                    ),
                );
            }
        }
    }

    if let Some(cluster) = &spec.ray_cluster_spec {
        // J20
        if cluster
            .auth_options
            .as_ref()
            .and_then(|a| a.enable_k8s_token_auth)
            == Some(true)
        {
            v.error(
                "spec.rayClusterSpec.authOptions.enableK8sTokenAuth",
                "K8s token auth mode is currently not supported for RayJob",
            );
        }
        // J21
        let scope = ClusterScope::new(cluster, "spec.rayClusterSpec", Owner::RayJob, &job.metadata);
        cluster_spec::check(v, &scope);
        // J25
        if spec.metadata.as_ref().is_some_and(|m| !m.is_empty()) {
            check_metadata_version(v, cluster.ray_version.as_deref().unwrap_or_default());
        }
    }

    // J22
    if let Some(text) = spec.runtime_env_yaml.as_deref() {
        check_runtime_env(v, text);
    }
    // J23
    if let Some(seconds) = spec.active_deadline_seconds
        && seconds <= 0
    {
        v.error(
            "spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds must be a positive integer, got {seconds}"),
        );
    }
    if let Some(seconds) = spec.pre_running_deadline_seconds
        && seconds <= 0
    {
        v.error(
            "spec.preRunningDeadlineSeconds",
            format!("preRunningDeadlineSeconds must be a positive integer, got {seconds}"),
        );
    }
    if backoff_limit < 0 {
        v.error(
            "spec.backoffLimit",
            format!("backoffLimit must be a positive integer, got {backoff_limit}"),
        );
    }
    // J24: only an InteractiveMode job waits for the user to submit.
    let deployment_status = job
        .status
        .as_ref()
        .and_then(|s| s.job_deployment_status.as_deref());
    if deployment_status == Some("Waiting") && mode != INTERACTIVE_MODE {
        v.error(
            "spec.submissionMode",
            format!(
                "JobDeploymentStatus cannot be `Waiting` when SubmissionMode is not \
                 InteractiveMode (got {mode})"
            ),
        );
    }

    if let Some(text) = spec.entrypoint_resources.as_deref() {
        check_entrypoint_resources(v, text);
    }
    if let Some(template) = &spec.submitter_pod_template {
        resources::check_template(v, template, || "spec.submitterPodTemplate".to_string());
    }
}

/// J25: `ray job submit --metadata-json` exists since Ray 2.6.0.
fn check_metadata_version(v: &mut Validation, version: &str) {
    if version.is_empty() {
        return;
    }
    match ray_version::parse(version) {
        Err(error) => v.error(
            "spec.rayClusterSpec.rayVersion",
            format!("failed to parse Ray version: {version}: {error} (needed for spec.metadata)"),
        ),
        Ok(parsed) if parsed.less_than(MIN_JOB_METADATA) => v.error(
            "spec.rayClusterSpec.rayVersion",
            format!(
                "the Ray version must be at least {MIN_JOB_METADATA} to use the metadata field \
                 (rayVersion is {version})"
            ),
        ),
        Ok(_) => {}
    }
}

/// J22: KubeRay reads `runtimeEnvYAML` into a map before submitting.
fn check_runtime_env(v: &mut Validation, text: &str) {
    match yaml_mapping_problem(text) {
        None => {}
        Some(YamlMappingProblem::Unparsable(error)) => v.error(
            "spec.runtimeEnvYAML",
            format!("failed to unmarshal RuntimeEnvYAML: {error}"),
        ),
        Some(YamlMappingProblem::NotAMapping) => v.error(
            "spec.runtimeEnvYAML",
            "failed to unmarshal RuntimeEnvYAML: it must be a YAML mapping of runtime \
                 environment fields (e.g. `pip: [requests]`)",
        ),
    }
}

/// `entrypointResources` is JSON mapping custom resource names to amounts
/// (`{"resource1": 2}`), passed to `ray job submit --entrypoint-resources`.
fn check_entrypoint_resources(v: &mut Validation, text: &str) {
    if text.trim().is_empty() {
        return;
    }
    let valid = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map.values().all(serde_json::Value::is_number),
        _ => false,
    };
    if !valid {
        v.error(
            "spec.entrypointResources",
            format!(
                "entrypointResources must be a JSON object of resource names to numbers (e.g. \
                 {{\"custom_resource\": 1}}), got {text:?}"
            ),
        );
    }
}
