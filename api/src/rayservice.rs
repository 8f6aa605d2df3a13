//! `RayService` (`ray.io/v1`): Ray Serve applications with zero-downtime cluster upgrades.

// kube's `printcolumn(...)` arguments repeat keys like `type_` by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::raycluster::{RayClusterSpec, RayClusterStatus};
use crate::schema_attrs::managed_by_rules;

/// Ray Serve applications and the cluster that serves them.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ray.io",
    version = "v1",
    kind = "RayService",
    plural = "rayservices",
    singular = "rayservice",
    namespaced,
    status = "RayServiceStatuses",
    category = "all",
    derive = "Default",
    derive = "PartialEq",
    doc = "RayService is the Schema for the rayservices API",
    printcolumn(
        name = "service status",
        type_ = "string",
        json_path = ".status.serviceStatus"
    ),
    printcolumn(
        name = "num serve endpoints",
        type_ = "string",
        json_path = ".status.numServeEndpoints"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RayServiceSpec {
    /// Seconds to keep the old cluster after traffic moved to the new one (default 60).
    #[schemars(range(min = 0))]
    pub ray_cluster_deletion_delay_seconds: Option<i32>,
    /// Deprecated and unused.
    pub service_unhealthy_second_threshold: Option<i32>,
    /// Deprecated and unused.
    pub deployment_unhealthy_second_threshold: Option<i32>,
    /// A custom serve Service.
    pub serve_service: Option<Service>,
    pub upgrade_strategy: Option<RayServiceUpgradeStrategy>,
    #[schemars(extend("x-kubernetes-validations" = managed_by_rules()))]
    pub managed_by: Option<String>,
    /// Ray Serve multi-application config, as YAML.
    #[serde(rename = "serveConfigV2")]
    pub serve_config_v2: Option<String>,
    pub ray_cluster_config: RayClusterSpec,
    /// Keep the head pod out of the serve Service.
    pub exclude_head_pod_from_serve_svc: Option<bool>,
    pub suspend: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RayServiceUpgradeStrategy {
    /// `NewCluster`, `NewClusterWithIncrementalUpgrade` or `None`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub cluster_upgrade_options: Option<ClusterUpgradeOptions>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterUpgradeOptions {
    #[schemars(extend("default" = 100))]
    pub max_surge_percent: Option<i32>,
    pub step_size_percent: i32,
    pub interval_seconds: i32,
    pub gateway_class_name: String,
}

/// Observed state of a RayService.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RayServiceStatuses {
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
    pub last_update_time: Option<Time>,
    /// Deprecated: `Running` or empty.
    pub service_status: Option<String>,
    pub active_service_status: Option<RayServiceStatus>,
    pub pending_service_status: Option<RayServiceStatus>,
    pub num_serve_endpoints: Option<i32>,
    pub observed_generation: Option<i64>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RayServiceStatus {
    pub application_statuses: Option<BTreeMap<String, AppStatus>>,
    pub target_capacity: Option<i32>,
    pub traffic_routed_percent: Option<i32>,
    pub last_traffic_migrated_time: Option<Time>,
    pub ray_cluster_name: Option<String>,
    pub ray_cluster_status: Option<RayClusterStatus>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    pub status: Option<String>,
    pub message: Option<String>,
    pub serve_deployment_statuses: Option<BTreeMap<String, ServeDeploymentStatus>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ServeDeploymentStatus {
    pub status: Option<String>,
    pub message: Option<String>,
}
