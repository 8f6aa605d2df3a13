//! The RayCluster spec rules (C4–C45), applied to a RayCluster's `spec`, a RayJob's
//! `spec.rayClusterSpec` and a RayService's `spec.rayClusterConfig` alike: a [`ClusterScope`]
//! carries the path prefix and what KubeRay would know about the owner (its kind, annotations
//! and labels), so every rule reports paths in the user's own object.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::pod_template::{self, Group};
use super::{
    auth, autoscaling, field_path, gcs_ft, history_server, network_policy, not_built,
    ray_node_params, resources, tls, topology, worker_groups,
};
use crate::field_error::Validation;
use crate::labels::{
    ANNOTATION_ENABLE_SERVE_SERVICE, MANAGED_BY_KUBERAY, MANAGED_BY_MULTIKUEUE,
    RAY_ORIGINATED_FROM_CRD,
};
use crate::raycluster::RayClusterSpec;

static NO_ENTRIES: BTreeMap<String, String> = BTreeMap::new();

/// Which kind of object holds the cluster spec.
// The variants are the Kubernetes kinds, spelled as users know them.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    RayCluster,
    RayJob,
    RayService,
}

impl Owner {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Owner::RayCluster => "RayCluster",
            Owner::RayJob => "RayJob",
            Owner::RayService => "RayService",
        }
    }
}

/// A cluster spec and where it sits.
pub(crate) struct ClusterScope<'a> {
    pub spec: &'a RayClusterSpec,
    /// `spec`, `spec.rayClusterSpec` or `spec.rayClusterConfig`.
    pub path: &'a str,
    pub owner: Owner,
    /// The owning object's annotations: KubeRay copies RayJob/RayService annotations onto the
    /// RayCluster it creates, so the FT annotations are read from the owner.
    pub annotations: &'a BTreeMap<String, String>,
    pub labels: &'a BTreeMap<String, String>,
    /// The head group, then every worker group; built once, since most rules walk them.
    groups: Vec<Group<'a>>,
}

impl<'a> ClusterScope<'a> {
    pub(crate) fn new(
        spec: &'a RayClusterSpec,
        path: &'a str,
        owner: Owner,
        meta: &'a ObjectMeta,
    ) -> Self {
        Self {
            spec,
            path,
            owner,
            annotations: meta.annotations.as_ref().unwrap_or(&NO_ENTRIES),
            labels: meta.labels.as_ref().unwrap_or(&NO_ENTRIES),
            groups: pod_template::groups(spec, path),
        }
    }

    /// `<prefix>.<rest>`.
    pub(crate) fn field(&self, rest: &str) -> String {
        format!("{}.{rest}", self.path)
    }

    pub(crate) fn annotation(&self, key: &str) -> Option<&'a str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// The head group followed by every worker group.
    pub(crate) fn groups(&self) -> &[Group<'a>] {
        &self.groups
    }

    pub(crate) fn head(&self) -> &Group<'a> {
        // `pod_template::groups` always starts with the head.
        &self.groups[0]
    }

    pub(crate) fn workers(&self) -> &[Group<'a>] {
        &self.groups[1..]
    }

    pub(crate) fn head_container(&self) -> Option<&'a Container> {
        pod_template::ray_container(&self.spec.head_group_spec.template)
    }

    /// An env var of the head's Ray container, with its path.
    pub(crate) fn head_env(&self, name: &str) -> Option<(String, &'a EnvVar)> {
        let (index, var) = pod_template::container_env_var(self.head_container(), name)?;
        Some((self.head().ray_container_env_path(index), var))
    }
}

pub(crate) const MANAGED_BY_VALUES: [&str; 2] = [MANAGED_BY_KUBERAY, MANAGED_BY_MULTIKUEUE];

/// CRD rule on every `managedBy`: one of the two controllers KubeRay knows.
pub(crate) fn check_managed_by_value(v: &mut Validation, value: Option<&str>, path: String) {
    if let Some(value) = value
        && !MANAGED_BY_VALUES.contains(&value)
    {
        v.error(
            path,
            format!(
                "the managedBy field value must be either '{MANAGED_BY_KUBERAY}' or \
                 '{MANAGED_BY_MULTIKUEUE}', got \"{value}\""
            ),
        );
    }
}

/// Every RayCluster spec rule.
pub(crate) fn check(v: &mut Validation, scope: &ClusterScope) {
    check_managed_by_value(
        v,
        scope.spec.managed_by.as_deref(),
        scope.field("managedBy"),
    );

    // C4: the head pod needs its Ray container.
    let head = scope.head();
    if pod_template::containers(head.template).is_empty() {
        v.error(
            head.containers_path(),
            "headGroupSpec should have at least one container: add the Ray container \
             (image rayproject/ray) as containers[0]",
        );
    }

    worker_groups::check(v, scope);
    for group in scope.groups() {
        ray_node_params::check(v, group);
        resources::check_template(v, group.template, || group.template_path());
    }
    gcs_ft::check(v, scope);
    autoscaling::check(v, scope);
    history_server::check(v, scope);
    auth::check(v, scope);
    network_policy::check(v, scope);
    tls::check(v, scope);
    not_built::check(v, scope);
    check_upgrade_strategy(v, scope);
    if scope.owner == Owner::RayCluster
        && scope.annotation(ANNOTATION_ENABLE_SERVE_SERVICE) == Some("true")
    {
        check_serve_port(v, scope, false);
    }
    topology::check(v, scope);
}

/// C45: `upgradeStrategy` (Recreate) is for RayClusters users create themselves; the
/// RayJob and RayService controllers replace their clusters on their own terms.
/// (C44, the enum, is enforced by the type.)
fn check_upgrade_strategy(v: &mut Validation, scope: &ClusterScope) {
    let Some(type_) = scope.spec.upgrade_strategy.as_ref().and_then(|s| s.type_) else {
        return;
    };
    let creator = match scope.owner {
        Owner::RayCluster => match scope
            .labels
            .get(RAY_ORIGINATED_FROM_CRD)
            .map(String::as_str)
        {
            Some("RayJob") => Some("RayJob"),
            Some("RayService") => Some("RayService"),
            _ => None,
        },
        owner => Some(owner.kind()),
    };
    if let Some(creator) = creator {
        v.error(
            scope.field("upgradeStrategy.type"),
            format!(
                "upgradeStrategy cannot be set when RayCluster is created by {creator} \
                 (got {type_:?}); remove spec.upgradeStrategy"
            ),
        );
    }
}

/// S9 (and a RayCluster with `ray.io/enable-serve-service: "true"`): the serve Service takes
/// its ports from the head container's ports named `serve` or `serve-*`; a head container
/// that lists ports but none of those gets no serve Service. No ports at all means KubeRay's
/// defaults, which include `serve: 8000`.
pub(crate) fn check_serve_port(v: &mut Validation, scope: &ClusterScope, has_custom_service: bool) {
    if has_custom_service {
        return;
    }
    let Some(container) = scope.head_container() else {
        return;
    };
    let Some(ports) = container.ports.as_ref().filter(|p| !p.is_empty()) else {
        return;
    };
    let serving = ports.iter().any(|port| {
        port.name
            .as_deref()
            .is_some_and(|name| name == "serve" || name.starts_with("serve-"))
    });
    if !serving {
        v.error(
            format!("{}.ports", scope.head().container_path(0)),
            "Please specify a port named 'serve' (or with the prefix 'serve-', e.g. 'serve-grpc') \
             in the Ray head container; otherwise, the Kubernetes service for Ray Serve will not \
             be created.",
        );
    }
}

/// `metadata.annotations[<key>]`.
pub(crate) fn annotation_path(key: &str) -> String {
    field_path::key("metadata.annotations", key)
}
