//! `RayCluster` (`ray.io/v1`): a head group and worker groups of Ray pods.

// kube's `printcolumn(...)` arguments repeat keys like `type_` by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, EnvVarSource, PodTemplateSpec, ResourceRequirements, SecurityContext,
    Service, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    IngressTLS, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::schema_attrs::{managed_by_rules, max_replicas_default};

/// Desired state of a Ray cluster: one head group and any number of worker groups.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ray.io",
    version = "v1",
    kind = "RayCluster",
    plural = "rayclusters",
    singular = "raycluster",
    namespaced,
    status = "RayClusterStatus",
    category = "all",
    derive = "Default",
    derive = "PartialEq",
    doc = "RayCluster is the Schema for the RayClusters API",
    printcolumn(
        name = "desired workers",
        type_ = "integer",
        json_path = ".status.desiredWorkerReplicas"
    ),
    printcolumn(
        name = "available workers",
        type_ = "integer",
        json_path = ".status.availableWorkerReplicas"
    ),
    printcolumn(name = "cpus", type_ = "string", json_path = ".status.desiredCPU"),
    printcolumn(name = "memory", type_ = "string", json_path = ".status.desiredMemory"),
    printcolumn(name = "gpus", type_ = "string", json_path = ".status.desiredGPU"),
    printcolumn(
        name = "tpus",
        type_ = "string",
        json_path = ".status.desiredTPU",
        priority = "1"
    ),
    printcolumn(name = "status", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "head pod IP",
        type_ = "string",
        json_path = ".status.head.podIP",
        priority = "1"
    ),
    printcolumn(
        name = "head service IP",
        type_ = "string",
        json_path = ".status.head.serviceIP",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RayClusterSpec {
    /// Recreate deletes all pods when the pod-relevant part of the spec changes.
    pub upgrade_strategy: Option<RayClusterUpgradeStrategy>,
    /// Ray token authentication.
    pub auth_options: Option<AuthOptions>,
    /// Suspend deletes every pod of the cluster; clearing it recreates them.
    pub suspend: Option<bool>,
    /// Which controller manages the cluster: `ray.io/kuberay-operator` or `kueue.x-k8s.io/multikueue`.
    #[schemars(extend("x-kubernetes-validations" = managed_by_rules()))]
    pub managed_by: Option<String>,
    /// Settings of the Ray autoscaler sidecar.
    pub autoscaler_options: Option<AutoscalerOptions>,
    /// Annotations copied onto the head Service.
    pub head_service_annotations: Option<BTreeMap<String, String>>,
    /// Runs the Ray autoscaler as a sidecar of the head pod.
    pub enable_in_tree_autoscaling: Option<bool>,
    /// GCS fault tolerance (external Redis or embedded RocksDB).
    pub gcs_fault_tolerance_options: Option<GcsFaultToleranceOptions>,
    /// Ray history server event collector.
    pub history_server_options: Option<HistoryServerOptions>,
    /// NetworkPolicies isolating the cluster's pods.
    pub network_policy: Option<NetworkPolicyOptions>,
    /// Mutual TLS between Ray processes.
    pub tls_options: Option<TlsOptions>,
    /// The head group.
    pub head_group_spec: HeadGroupSpec,
    /// Ray version of the image; gates version-dependent behaviour.
    pub ray_version: Option<String>,
    /// Worker groups. A map keyed by `groupName` for server-side apply, so the autoscaler's
    /// writes to one group's `replicas` don't take ownership of every group.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["groupName"]))]
    pub worker_group_specs: Option<Vec<WorkerGroupSpec>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RayClusterUpgradeType {
    /// Delete and recreate all pods when the pod template changes.
    Recreate,
    /// Never touch running pods.
    None,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RayClusterUpgradeStrategy {
    #[serde(rename = "type")]
    pub type_: Option<RayClusterUpgradeType>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Disabled,
    Token,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    pub mode: Option<AuthMode>,
    /// Secret holding the token under key `auth_token`; created by the operator when empty.
    pub secret_name: Option<String>,
    /// Use Kubernetes service account tokens (Ray >= 2.55, standalone clusters only).
    #[serde(rename = "enableK8sTokenAuth")]
    pub enable_k8s_token_auth: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum UpscalingMode {
    Default,
    Aggressive,
    Conservative,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoscalerVersion {
    V1,
    V2,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerOptions {
    pub resources: Option<ResourceRequirements>,
    pub image: Option<String>,
    pub image_pull_policy: Option<String>,
    pub security_context: Option<SecurityContext>,
    /// Seconds a worker must be idle before the autoscaler removes it (default 60).
    pub idle_timeout_seconds: Option<i32>,
    pub upscaling_mode: Option<UpscalingMode>,
    pub version: Option<AutoscalerVersion>,
    pub env: Option<Vec<EnvVar>>,
    pub env_from: Option<Vec<EnvFromSource>>,
    pub volume_mounts: Option<Vec<VolumeMount>>,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GcsFaultToleranceBackend {
    Redis,
    Rocksdb,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsFaultToleranceOptions {
    /// Storage backend; immutable once set.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "gcsFaultToleranceOptions.backend is immutable"}]))]
    pub backend: Option<GcsFaultToleranceBackend>,
    pub redis_username: Option<RedisCredential>,
    pub redis_password: Option<RedisCredential>,
    pub external_storage_namespace: Option<String>,
    pub redis_address: Option<String>,
    /// Embedded RocksDB storage (backend `rocksdb` only).
    pub storage: Option<GcsStorage>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisCredential {
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum GcsStorageDeletionPolicy {
    DeleteWithCluster,
    Retain,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsStorage {
    /// An existing PersistentVolumeClaim; exclusive with size, storageClassName, accessModes.
    pub claim_name: Option<String>,
    pub size: Option<Quantity>,
    pub storage_class_name: Option<String>,
    pub access_modes: Option<Vec<String>>,
    pub sub_path: Option<String>,
    pub deletion_policy: Option<GcsStorageDeletionPolicy>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryServerOptions {
    pub collector_options: Option<CollectorOptions>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectorOptions {
    pub image: Option<String>,
    pub image_pull_policy: Option<String>,
    pub resources: Option<ResourceRequirements>,
    pub env: Option<Vec<EnvVar>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum NetworkPolicyMode {
    DenyAll,
    DenyAllIngress,
    DenyAllEgress,
}

fn network_policy_mode_default() -> Option<NetworkPolicyMode> {
    Some(NetworkPolicyMode::DenyAll)
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyOptions {
    #[serde(default = "network_policy_mode_default")]
    pub mode: Option<NetworkPolicyMode>,
    pub head: Option<NetworkPolicyRules>,
    pub worker: Option<NetworkPolicyRules>,
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["groupName"]))]
    pub worker_groups: Option<Vec<WorkerGroupNetworkPolicy>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyRules {
    pub ingress_rules: Option<Vec<NetworkPolicyIngressRule>>,
    pub egress_rules: Option<Vec<NetworkPolicyEgressRule>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerGroupNetworkPolicy {
    pub group_name: String,
    pub ingress_rules: Option<Vec<NetworkPolicyIngressRule>>,
    pub egress_rules: Option<Vec<NetworkPolicyEgressRule>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TlsOptions {
    pub enabled: Option<bool>,
}

/// The head pod's template and how it is exposed.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeadGroupSpec {
    pub template: PodTemplateSpec,
    /// A custom head Service; its selector is replaced and default ports appended.
    pub head_service: Option<Service>,
    pub enable_ingress: Option<bool>,
    pub ingress_options: Option<IngressOptions>,
    /// Ray logical resources, overriding what is derived from container limits.
    pub resources: Option<BTreeMap<String, String>>,
    /// Ray node labels, also merged into the pod's labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Flags for `ray start`, without the leading dashes.
    pub ray_start_params: Option<BTreeMap<String, String>>,
    pub service_type: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum IngressPathType {
    Exact,
    Prefix,
    ImplementationSpecific,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressOptions {
    pub host: Option<String>,
    pub path: Option<String>,
    pub path_type: Option<IngressPathType>,
    pub tls: Option<Vec<IngressTLS>>,
}

/// One group of identical worker pods.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerGroupSpec {
    /// Not a user-facing field: RayJob's DeleteWorkers policy suspends groups.
    pub suspend: Option<bool>,
    pub group_name: String,
    #[schemars(extend("default" = 0))]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub min_replicas: i32,
    #[serde(default = "max_replicas_default")]
    pub max_replicas: i32,
    /// Autoscaler v2: seconds before an idle worker of this group is removed.
    pub idle_timeout_seconds: Option<i32>,
    /// Autoscaler v2 (Ray >= 2.56): groups with higher priority scale up first.
    #[schemars(extend("default" = 0))]
    pub priority: Option<i32>,
    pub resources: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub ray_start_params: Option<BTreeMap<String, String>>,
    pub template: PodTemplateSpec,
    pub scale_strategy: Option<ScaleStrategy>,
    /// Pods per replica: a multi-host replica (e.g. a TPU slice) is created and deleted as a unit.
    #[schemars(extend("default" = 1))]
    pub num_of_hosts: Option<i32>,
}

impl Default for WorkerGroupSpec {
    fn default() -> Self {
        Self {
            suspend: None,
            group_name: String::new(),
            replicas: None,
            min_replicas: 0,
            max_replicas: max_replicas_default(),
            idle_timeout_seconds: None,
            priority: None,
            resources: None,
            labels: None,
            ray_start_params: None,
            template: PodTemplateSpec::default(),
            scale_strategy: None,
            num_of_hosts: None,
        }
    }
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleStrategy {
    /// Pod names the autoscaler wants removed.
    pub workers_to_delete: Option<Vec<String>>,
}

/// Observed state of a Ray cluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RayClusterStatus {
    /// Deprecated: `ready` or `suspended`.
    pub state: Option<String>,
    #[serde(rename = "desiredCPU")]
    pub desired_cpu: Option<Quantity>,
    pub desired_memory: Option<Quantity>,
    #[serde(rename = "desiredGPU")]
    pub desired_gpu: Option<Quantity>,
    #[serde(rename = "desiredTPU")]
    pub desired_tpu: Option<Quantity>,
    pub last_update_time: Option<Time>,
    pub state_transition_times: Option<BTreeMap<String, Time>>,
    /// Port name to port number of the head service.
    pub endpoints: Option<BTreeMap<String, String>>,
    pub head: Option<HeadInfo>,
    pub reason: Option<String>,
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
    pub ready_worker_replicas: Option<i32>,
    pub available_worker_replicas: Option<i32>,
    pub desired_worker_replicas: Option<i32>,
    pub min_worker_replicas: Option<i32>,
    pub max_worker_replicas: Option<i32>,
    pub observed_generation: Option<i64>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeadInfo {
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "serviceIP")]
    pub service_ip: Option<String>,
    pub pod_name: Option<String>,
    pub service_name: Option<String>,
}
