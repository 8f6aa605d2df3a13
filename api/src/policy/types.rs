//! `RayPolicy` (`raygate.io/v1alpha1`): what cluster admins allow, forbid and inject for the
//! Ray objects of the namespaces a policy selects.
//!
//! Every rule is optional; a rule that is set is enforced with the policy's `action` unless it
//! names its own. The YAML shape (camelCase, one key per rule) is documented in `policies/`.

// kube's `printcolumn(...)` arguments repeat keys like `type_` by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{LocalObjectReference, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// A cluster admins' policy for Ray objects, enforced at admission.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "raygate.io",
    version = "v1alpha1",
    kind = "RayPolicy",
    plural = "raypolicies",
    singular = "raypolicy",
    shortname = "rpol",
    status = "RayPolicyStatus",
    derive = "Default",
    derive = "PartialEq",
    doc = "RayPolicy: cluster admins' rules for RayClusters, RayJobs and RayServices, enforced by raygate at admission",
    printcolumn(name = "Action", type_ = "string", json_path = ".spec.action"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the webhook compiled the current generation and enforces it"
    ),
    printcolumn(
        name = "Matched",
        type_ = "integer",
        json_path = ".status.matched",
        description = "Admissions of Ray objects this policy applied to"
    ),
    printcolumn(
        name = "Denied",
        type_ = "integer",
        json_path = ".status.denied",
        description = "Admissions this policy refused"
    ),
    printcolumn(
        name = "Warned",
        type_ = "integer",
        json_path = ".status.warned",
        description = "Admissions this policy warned about"
    ),
    printcolumn(
        name = "Audited",
        type_ = "integer",
        json_path = ".status.audited",
        priority = 1,
        description = "Admissions this policy recorded an audit annotation for"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RayPolicySpec {
    /// Which Ray objects the policy applies to. Empty: every Ray object in every namespace.
    #[serde(rename = "match", default)]
    pub match_: PolicyMatch,
    /// What a violated rule does unless the rule sets its own action. Default: Deny.
    #[serde(default)]
    pub action: Action,
    /// The checks; each is off unless set.
    #[serde(default)]
    pub rules: PolicyRules,
    /// Values added to matching objects before they are validated; a value the user set wins.
    pub inject: Option<PolicyInjection>,
}

/// What happens when a rule is violated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Action {
    /// Refuse the object (HTTP 422, one cause per violation).
    #[default]
    Deny,
    /// Admit it; kubectl prints a `Warning:` line.
    Warn,
    /// Admit it silently; recorded as an audit annotation and in metrics.
    Audit,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "Deny",
            Action::Warn => "Warn",
            Action::Audit => "Audit",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which objects a policy applies to: all conditions that are set must hold.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyMatch {
    /// Namespaces whose labels match. Unset: any namespace.
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces by name. Empty: any namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Ray kinds (RayCluster, RayJob, RayService; RayJob covers the templates of
    /// RayCronJobs too). Empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<RayKind>,
}

/// A kind a policy can select.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RayKind {
    RayCluster,
    RayJob,
    RayService,
}

impl RayKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RayKind::RayCluster => "RayCluster",
            RayKind::RayJob => "RayJob",
            RayKind::RayService => "RayService",
        }
    }
}

/// The checks a policy makes. For RayJob and RayService they apply to the embedded cluster
/// (`spec.rayClusterSpec`, `spec.rayClusterConfig`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRules {
    /// GPUs one Ray pod may use: every resource named `*gpu` (nvidia.com/gpu, amd.com/gpu, ...), MIG slices (nvidia.com/mig-1g.5gb) and google.com/tpu.
    pub max_gpus_per_pod: Option<CountLimit>,
    /// GPUs one worker group may use at its largest: per pod × replicas × numOfHosts.
    pub max_gpus_per_group: Option<CountLimit>,
    /// GPUs the whole cluster may use at its largest: head plus every group.
    pub max_gpus_per_cluster: Option<CountLimit>,
    /// CPU the whole cluster may use at its largest (limits, else requests).
    pub max_cpu_per_cluster: Option<QuantityLimit>,
    /// Memory the whole cluster may use at its largest (limits, else requests).
    pub max_memory_per_cluster: Option<QuantityLimit>,
    /// Largest `maxReplicas` (and `replicas`) of a worker group.
    pub max_replicas_per_group: Option<CountLimit>,
    /// Largest number of worker groups.
    pub max_worker_groups: Option<CountLimit>,
    /// Accelerator types Ray pods may select through their nodeSelector.
    pub allowed_accelerator_types: Option<AcceleratorTypesRule>,
    /// Where every container's image (init containers and sidecars too) may come from.
    pub allowed_images: Option<ImagesRule>,
    /// The Ray versions allowed (`spec.rayVersion`, else the head image's tag).
    pub allowed_ray_versions: Option<RayVersionsRule>,
    /// Resource limits every Ray container (the first container of each Ray pod) must set.
    pub required_limits: Option<RequiredLimitsRule>,
    /// Pod settings that break node isolation.
    pub forbidden_pod_settings: Option<ForbiddenPodSettingsRule>,
    /// Labels the Ray object itself must carry (e.g. team, cost-center).
    pub required_labels: Option<RequiredLabelsRule>,
}

/// A whole-number limit.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CountLimit {
    /// The largest value allowed.
    pub limit: i64,
    /// Overrides the policy's action for this rule.
    pub action: Option<Action>,
}

/// A quantity limit (`64`, `500m`, `1Ti`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuantityLimit {
    /// The largest value allowed, as a Kubernetes quantity.
    pub limit: QuantityText,
    pub action: Option<Action>,
}

/// A Kubernetes quantity as written: a string (`4Gi`) or a number (`64`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuantityText(pub String);

impl Serialize for QuantityText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for QuantityText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(QuantityText(text)),
            serde_json::Value::Number(number) => Ok(QuantityText(number.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a quantity (a string such as \"4Gi\" or a number), got {other}"
            ))),
        }
    }
}

impl JsonSchema for QuantityText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "QuantityText".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // The API server takes int-or-string without `anyOf`; kube's schema rewriting would
        // strip the types out of an `anyOf` and leave empty alternatives.
        schemars::json_schema!({"x-kubernetes-int-or-string": true})
    }

    fn inline_schema() -> bool {
        true
    }
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceleratorTypesRule {
    /// The accelerator types allowed (node label values, e.g. nvidia-h100-80gb, tpu-v5p-slice).
    pub values: Vec<String>,
    /// The nodeSelector keys that name an accelerator type. Default: GKE's
    /// cloud.google.com/gke-accelerator and gke-tpu-accelerator, NVIDIA GPU feature discovery's
    /// nvidia.com/gpu.product, Karpenter's karpenter.k8s.aws/instance-gpu-name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selector_keys: Vec<String>,
    pub action: Option<Action>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagesRule {
    /// Registries (and optional path prefixes) images may come from: `registry.example.com`,
    /// `registry.example.com/ml`, `docker.io/rayproject`. Images without a registry are Docker
    /// Hub's (`rayproject/ray` is `docker.io/rayproject/ray`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<String>,
    /// Image patterns allowed, `*` matching any run of characters:
    /// `docker.io/rayproject/ray:2.*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    pub action: Option<Action>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RayVersionsRule {
    /// Comparisons that must all hold, separated by commas: `>=2.40.0, <3.0.0`.
    pub range: String,
    pub action: Option<Action>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequiredLimitsRule {
    /// Resource names that need a limit. Default: cpu and memory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    pub action: Option<Action>,
}

/// Each setting set to `true` is forbidden in every Ray pod (and a RayJob's submitter pod).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForbiddenPodSettingsRule {
    /// `securityContext.privileged: true` on any container.
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub host_network: bool,
    #[serde(rename = "hostPID", default)]
    pub host_pid: bool,
    #[serde(rename = "hostIPC", default)]
    pub host_ipc: bool,
    /// Any `hostPath` volume.
    #[serde(default)]
    pub host_path_volumes: bool,
    /// Any `securityContext.capabilities.add` entry not in `allowedCapabilities`.
    #[serde(default)]
    pub added_capabilities: bool,
    /// Capabilities that may still be added when `addedCapabilities` is forbidden.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_capabilities: Vec<String>,
    pub action: Option<Action>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequiredLabelsRule {
    /// Label keys the Ray object's `metadata.labels` must have (with a non-empty value).
    pub keys: Vec<String>,
    pub action: Option<Action>,
}

/// What a policy adds to matching objects before validation. Never overwrites a value the user
/// set, and adding it twice changes nothing.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyInjection {
    /// Added to the Ray object's labels and to its Ray pod templates' labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Added to the Ray object's annotations and to its Ray pod templates' annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set on Ray pod templates that have none.
    pub priority_class_name: Option<String>,
    /// Added to every pod template (Ray pods and a RayJob's submitter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Added to the pod templates of groups that use GPUs or TPUs.
    pub gpu_groups: Option<GpuGroupInjection>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuGroupInjection {
    /// Added unless an identical toleration is there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Keys added unless the pod already selects on them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

/// What raygate's webhook reports about a policy. The counters are totals over every webhook
/// replica since the policy was created, added every few seconds; only real admissions count
/// (not dry runs, not deletions).
//
// How replicas share it without overwriting each other's counts: `raygate_webhook::policy_status`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RayPolicyStatus {
    /// The `metadata.generation` the `Ready` condition describes.
    pub observed_generation: Option<i64>,
    /// `Ready`: `True` (reason `Loaded`) when the webhook compiled `observedGeneration` and
    /// enforces it; `False` (reason `Invalid`) when a webhook replica could not compile it, so
    /// the policy is not enforced at all (never half-applied) — the message says why. For one
    /// generation a `False` report wins over `True`: one replica not enforcing it is enough to
    /// make the policy unreliable.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
    /// Admissions (creates and updates) of Ray objects this policy applied to.
    pub matched: Option<i64>,
    /// Of those, admissions refused because of at least one of this policy's `Deny` rules.
    pub denied: Option<i64>,
    /// Admissions with at least one `Warn` finding of this policy (kubectl printed a warning).
    pub warned: Option<i64>,
    /// Admissions with at least one `Audit` finding of this policy (an audit annotation).
    pub audited: Option<i64>,
    /// When this policy last matched an admission (as counted by the replica that saw it).
    pub last_matched_time: Option<Time>,
}

impl RayPolicyStatus {
    /// The `Ready` condition, when reported.
    pub fn ready(&self) -> Option<&Condition> {
        self.conditions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|c| c.type_ == READY_CONDITION)
    }
}

/// The condition type that says whether the webhook enforces a RayPolicy.
pub const READY_CONDITION: &str = "Ready";
