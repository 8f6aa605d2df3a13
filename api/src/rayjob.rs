//! `RayJob` (`ray.io/v1`): a batch job run on a new or existing RayCluster.

// kube's `printcolumn(...)` arguments repeat keys like `type_` by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::raycluster::{RayClusterSpec, RayClusterStatus};
use crate::schema_attrs::managed_by_rules;

/// A Ray job and the cluster it runs on.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ray.io",
    version = "v1",
    kind = "RayJob",
    plural = "rayjobs",
    singular = "rayjob",
    namespaced,
    status = "RayJobStatus",
    category = "all",
    derive = "Default",
    derive = "PartialEq",
    doc = "RayJob is the Schema for the rayjobs API",
    printcolumn(name = "job status", type_ = "string", json_path = ".status.jobStatus"),
    printcolumn(
        name = "deployment status",
        type_ = "string",
        json_path = ".status.jobDeploymentStatus"
    ),
    printcolumn(
        name = "ray cluster name",
        type_ = "string",
        json_path = ".status.rayClusterName"
    ),
    printcolumn(name = "start time", type_ = "string", json_path = ".status.startTime"),
    printcolumn(name = "end time", type_ = "string", json_path = ".status.endTime"),
    printcolumn(
        name = "age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RayJobSpec {
    /// Seconds from start after which the job is failed with DeadlineExceeded.
    pub active_deadline_seconds: Option<i32>,
    /// Retries of the whole job, each on a new RayCluster.
    #[schemars(extend("default" = 0))]
    pub backoff_limit: Option<i32>,
    /// The cluster to create for this job (exclusive with clusterSelector).
    pub ray_cluster_spec: Option<RayClusterSpec>,
    /// Pod template of the submitter Job (K8sJobMode).
    pub submitter_pod_template: Option<PodTemplateSpec>,
    /// Metadata passed to the Ray job (Ray >= 2.6).
    pub metadata: Option<BTreeMap<String, String>>,
    /// `ray.io/cluster: <name>` selects an existing RayCluster instead of creating one.
    pub cluster_selector: Option<BTreeMap<String, String>>,
    pub submitter_config: Option<SubmitterConfig>,
    #[schemars(extend("x-kubernetes-validations" = managed_by_rules()))]
    pub managed_by: Option<String>,
    pub deletion_strategy: Option<DeletionStrategy>,
    /// Shell command that starts the job.
    pub entrypoint: Option<String>,
    /// Ray runtime environment as YAML.
    #[serde(rename = "runtimeEnvYAML")]
    pub runtime_env_yaml: Option<String>,
    /// Submission id; generated when empty.
    pub job_id: Option<String>,
    /// `K8sJobMode`, `HTTPMode`, `InteractiveMode` or `SidecarMode`.
    #[schemars(extend("default" = "K8sJobMode"))]
    pub submission_mode: Option<String>,
    /// Custom entrypoint resources as JSON.
    pub entrypoint_resources: Option<String>,
    pub entrypoint_num_cpus: Option<f32>,
    pub entrypoint_num_gpus: Option<f32>,
    /// Seconds to keep the cluster after the job finished (needs shutdownAfterJobFinishes).
    #[schemars(extend("default" = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Seconds the job may take to reach Running.
    #[schemars(range(min = 1))]
    pub pre_running_deadline_seconds: Option<i32>,
    /// Delete the RayCluster when the job finishes.
    pub shutdown_after_job_finishes: Option<bool>,
    /// Suspend deletes the cluster and waits (Kueue admission).
    pub suspend: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubmitterConfig {
    /// backoffLimit of the submitter Job (default 2).
    pub backoff_limit: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicyType {
    DeleteCluster,
    DeleteWorkers,
    DeleteSelf,
    DeleteNone,
}

/// What to delete once the job finished: the legacy onSuccess/onFailure pair or deletionRules.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!((has(self.onSuccess) || has(self.onFailure)) && has(self.deletionRules))",
     "message": "legacy policies (onSuccess/onFailure) and deletionRules cannot be used together within the same deletionStrategy"},
    {"rule": "((has(self.onSuccess) && has(self.onFailure)) || has(self.deletionRules))",
     "message": "deletionStrategy requires either BOTH onSuccess and onFailure, OR the deletionRules field (cannot be empty)"}
]))]
pub struct DeletionStrategy {
    pub on_success: Option<DeletionPolicy>,
    pub on_failure: Option<DeletionPolicy>,
    #[schemars(length(min = 1), extend("x-kubernetes-list-type" = "atomic"))]
    pub deletion_rules: Option<Vec<DeletionRule>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeletionPolicy {
    pub policy: Option<DeletionPolicyType>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct DeletionRule {
    pub policy: DeletionPolicyType,
    pub condition: DeletionCondition,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionJobStatus {
    #[serde(rename = "SUCCEEDED")]
    Succeeded,
    #[serde(rename = "FAILED")]
    Failed,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionJobDeploymentStatus {
    Failed,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.jobStatus) && has(self.jobDeploymentStatus))",
     "message": "JobStatus and JobDeploymentStatus cannot be used together within the same deletion condition."},
    {"rule": "has(self.jobStatus) || has(self.jobDeploymentStatus)",
     "message": "the deletion condition requires either the JobStatus or the JobDeploymentStatus field."}
]))]
pub struct DeletionCondition {
    pub job_status: Option<DeletionJobStatus>,
    pub job_deployment_status: Option<DeletionJobDeploymentStatus>,
    #[schemars(range(min = 0), extend("default" = 0))]
    pub ttl_seconds: Option<i32>,
}

/// Observed state of a RayJob.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RayJobStatus {
    /// Start and end time as reported by the Ray dashboard.
    pub ray_job_info: Option<RayJobInfo>,
    pub job_id: Option<String>,
    pub ray_cluster_name: Option<String>,
    #[serde(rename = "dashboardURL")]
    pub dashboard_url: Option<String>,
    /// Ray's job status: PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED.
    pub job_status: Option<String>,
    /// Initializing, Waiting, Running, Complete, Failed, ValidationFailed, Suspending, Suspended, Retrying.
    pub job_deployment_status: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub start_time: Option<Time>,
    pub end_time: Option<Time>,
    #[schemars(extend("default" = 0))]
    pub succeeded: Option<i32>,
    #[schemars(extend("default" = 0))]
    pub failed: Option<i32>,
    pub ray_cluster_status: Option<RayClusterStatus>,
    pub job_status_check_failure_start_time: Option<Time>,
    pub observed_generation: Option<i64>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RayJobInfo {
    pub start_time: Option<Time>,
    pub end_time: Option<Time>,
}
