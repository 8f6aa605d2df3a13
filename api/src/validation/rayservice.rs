//! RayService rules (S1–S9), plus the CRD rules a webhook can see and a parseable
//! `serveConfigV2`. `spec.rayClusterConfig` gets every RayCluster spec rule under its own
//! path (S4).

use super::cluster_spec::{self, ClusterScope, Owner};
use super::yaml_text::{YamlMappingProblem, yaml_mapping_problem};
use super::{autoscaling, metadata};
use crate::field_error::Validation;
use crate::rayservice::RayService;

const NEW_CLUSTER: &str = "NewCluster";
const INCREMENTAL_UPGRADE: &str = "NewClusterWithIncrementalUpgrade";
const UPGRADE_NONE: &str = "None";

pub(crate) fn check(v: &mut Validation, service: &RayService) {
    let spec = &service.spec;
    // S1, S2
    metadata::check_name(
        v,
        &service.metadata,
        "RayService",
        metadata::MAX_RAYSERVICE_NAME,
    );
    metadata::check_initializing_timeout(v, &service.metadata);
    cluster_spec::check_managed_by_value(v, spec.managed_by.as_deref(), "spec.managedBy".into());

    let cluster = &spec.ray_cluster_config;
    // S3
    if cluster
        .auth_options
        .as_ref()
        .and_then(|a| a.enable_k8s_token_auth)
        == Some(true)
    {
        v.error(
            "spec.rayClusterConfig.authOptions.enableK8sTokenAuth",
            "K8s token auth mode is currently not supported for RayService",
        );
    }
    // S4
    let scope = ClusterScope::new(
        cluster,
        "spec.rayClusterConfig",
        Owner::RayService,
        &service.metadata,
    );
    cluster_spec::check(v, &scope);

    // S5: the RayService names the head Services of the clusters it creates and replaces.
    if let Some(name) = cluster
        .head_group_spec
        .head_service
        .as_ref()
        .and_then(|s| s.metadata.name.as_deref())
        .filter(|n| !n.is_empty())
    {
        v.error(
            "spec.rayClusterConfig.headGroupSpec.headService.metadata.name",
            format!(
                "spec.rayClusterConfig.headGroupSpec.headService.metadata.name should not be set \
                 (got \"{name}\"): every cluster of a RayService needs its own head Service"
            ),
        );
    }

    // S6
    let strategy = spec.upgrade_strategy.as_ref();
    let upgrade_type = strategy.and_then(|s| s.type_.as_deref());
    if let Some(type_) = upgrade_type
        && ![INCREMENTAL_UPGRADE, NEW_CLUSTER, UPGRADE_NONE].contains(&type_)
    {
        v.error(
            "spec.upgradeStrategy.type",
            format!(
                "Spec.UpgradeStrategy.Type value {type_} is invalid, valid options are \
                 {INCREMENTAL_UPGRADE}, {NEW_CLUSTER}, or {UPGRADE_NONE}"
            ),
        );
    }
    // S7
    if let Some(seconds) = spec.ray_cluster_deletion_delay_seconds
        && seconds < 0
    {
        v.error(
            "spec.rayClusterDeletionDelaySeconds",
            format!(
                "Spec.RayClusterDeletionDelaySeconds should be a non-negative integer, got {seconds}"
            ),
        );
    }
    // S8
    let incremental = upgrade_type == Some(INCREMENTAL_UPGRADE);
    if incremental {
        check_incremental_upgrade(v, service);
    }
    // S9
    cluster_spec::check_serve_port(v, &scope, spec.serve_service.is_some() && !incremental);

    if let Some(text) = spec.serve_config_v2.as_deref() {
        check_serve_config(v, text);
    }
    for (field, value) in [
        (
            "serviceUnhealthySecondThreshold",
            spec.service_unhealthy_second_threshold,
        ),
        (
            "deploymentUnhealthySecondThreshold",
            spec.deployment_unhealthy_second_threshold,
        ),
    ] {
        if value.is_some() {
            v.warn(format!("spec.{field} is deprecated and has no effect"));
        }
    }
}

/// S8: traffic moves step by step through a Gateway while the autoscaler grows the new cluster.
fn check_incremental_upgrade(v: &mut Validation, service: &RayService) {
    if !autoscaling::enabled(&service.spec.ray_cluster_config) {
        v.error(
            "spec.rayClusterConfig.enableInTreeAutoscaling",
            "Ray Autoscaler is required for NewClusterWithIncrementalUpgrade: set \
             enableInTreeAutoscaling: true",
        );
    }
    let Some(options) = service
        .spec
        .upgrade_strategy
        .as_ref()
        .and_then(|s| s.cluster_upgrade_options.as_ref())
    else {
        v.error(
            "spec.upgradeStrategy.clusterUpgradeOptions",
            "ClusterUpgradeOptions are required for NewClusterWithIncrementalUpgrade",
        );
        return;
    };
    let at = |field: &str| format!("spec.upgradeStrategy.clusterUpgradeOptions.{field}");
    let max_surge = options.max_surge_percent.unwrap_or(100);
    let step = options.step_size_percent;
    if !(0..=100).contains(&max_surge) {
        v.error(
            at("maxSurgePercent"),
            format!("maxSurgePercent must be between 0 and 100, got {max_surge}"),
        );
    }
    if !(0..=100).contains(&step) {
        v.error(
            at("stepSizePercent"),
            format!("stepSizePercent must be between 0 and 100, got {step}"),
        );
    } else if step > max_surge {
        v.error(
            at("stepSizePercent"),
            format!(
                "stepSizePercent must be less than or equal to maxSurgePercent ({step} > \
                 {max_surge})"
            ),
        );
    }
    if options.interval_seconds <= 0 {
        v.error(
            at("intervalSeconds"),
            format!(
                "intervalSeconds must be greater than 0, got {}",
                options.interval_seconds
            ),
        );
    }
    if options.gateway_class_name.is_empty() {
        v.error(
            at("gatewayClassName"),
            "gatewayClassName is required for NewClusterWithIncrementalUpgrade",
        );
    }
}

/// KubeRay reads `serveConfigV2` as a YAML mapping (`applications: [...]`) before sending it
/// to Ray Serve; anything else fails at every reconcile.
fn check_serve_config(v: &mut Validation, text: &str) {
    match yaml_mapping_problem(text) {
        None => {}
        Some(YamlMappingProblem::Unparsable(error)) => v.error(
            "spec.serveConfigV2",
            format!("serveConfigV2 is not valid YAML: {error}"),
        ),
        Some(YamlMappingProblem::NotAMapping) => v.error(
            "spec.serveConfigV2",
            "serveConfigV2 must be a YAML mapping of the Ray Serve config (e.g. \
                 `applications: [...]`)",
        ),
    }
}
