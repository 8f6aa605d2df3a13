//! Read-only views of the pod templates inside a Ray spec: the Ray container (index 0, as
//! KubeRay assumes), env lookups, and the head and worker groups seen through one shape so
//! that per-group rules are written once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};

use super::field_path;
use crate::raycluster::RayClusterSpec;

/// KubeRay treats the first container of every Ray pod template as the Ray container.
pub(crate) const RAY_CONTAINER_INDEX: usize = 0;

pub(crate) fn pod_spec(template: &PodTemplateSpec) -> Option<&PodSpec> {
    template.spec.as_ref()
}

pub(crate) fn containers(template: &PodTemplateSpec) -> &[Container] {
    pod_spec(template).map_or(&[], |spec| spec.containers.as_slice())
}

pub(crate) fn ray_container(template: &PodTemplateSpec) -> Option<&Container> {
    containers(template).get(RAY_CONTAINER_INDEX)
}

pub(crate) fn restart_policy(template: &PodTemplateSpec) -> &str {
    pod_spec(template)
        .and_then(|spec| spec.restart_policy.as_deref())
        .unwrap_or_default()
}

/// The first env var called `name`, with its index in the list.
pub(crate) fn env_var<'a>(env: Option<&'a Vec<EnvVar>>, name: &str) -> Option<(usize, &'a EnvVar)> {
    env?.iter().enumerate().find(|(_, var)| var.name == name)
}

pub(crate) fn container_env_var<'a>(
    container: Option<&'a Container>,
    name: &str,
) -> Option<(usize, &'a EnvVar)> {
    env_var(container?.env.as_ref(), name)
}

/// One Ray node group — the head or a worker group — in the shape the per-group rules need.
pub(crate) struct Group<'a> {
    /// `spec.headGroupSpec` or `spec.workerGroupSpecs[1]`, under the spec's own prefix.
    pub path: String,
    /// How KubeRay names the group in messages: `Head`, or the worker group's name.
    pub name: &'a str,
    pub is_head: bool,
    pub template: &'a PodTemplateSpec,
    pub ray_start_params: Option<&'a BTreeMap<String, String>>,
    pub resources: Option<&'a BTreeMap<String, String>>,
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// Pods per replica (`numOfHosts`, 1 for the head and when unset).
    pub num_of_hosts: i32,
}

impl<'a> Group<'a> {
    pub(crate) fn template_path(&self) -> String {
        format!("{}.template", self.path)
    }

    pub(crate) fn containers_path(&self) -> String {
        format!("{}.template.spec.containers", self.path)
    }

    pub(crate) fn container_path(&self, index: usize) -> String {
        field_path::index(&self.containers_path(), index)
    }

    pub(crate) fn ray_container(&self) -> Option<&'a Container> {
        ray_container(self.template)
    }

    pub(crate) fn ray_container_env_path(&self, env_index: usize) -> String {
        field_path::index(
            &format!("{}.env", self.container_path(RAY_CONTAINER_INDEX)),
            env_index,
        )
    }

    pub(crate) fn ray_start_param(&self, key: &str) -> Option<&'a str> {
        self.ray_start_params?.get(key).map(String::as_str)
    }

    pub(crate) fn ray_start_param_path(&self, key: &str) -> String {
        field_path::key(&format!("{}.rayStartParams", self.path), key)
    }

    /// How the group appears in a short warning: `head` or `worker group "gpu"`.
    pub(crate) fn display(&self) -> String {
        if self.is_head {
            "head".to_string()
        } else {
            format!("worker group \"{}\"", self.name)
        }
    }
}

/// The head group followed by every worker group, with paths under `prefix`.
pub(crate) fn groups<'a>(spec: &'a RayClusterSpec, prefix: &str) -> Vec<Group<'a>> {
    let head = &spec.head_group_spec;
    let mut groups = vec![Group {
        path: [prefix, ".headGroupSpec"].concat(),
        name: "Head",
        is_head: true,
        template: &head.template,
        ray_start_params: head.ray_start_params.as_ref(),
        resources: head.resources.as_ref(),
        labels: head.labels.as_ref(),
        num_of_hosts: 1,
    }];
    for (index, worker) in worker_groups(spec).iter().enumerate() {
        groups.push(Group {
            path: field_path::index(&[prefix, ".workerGroupSpecs"].concat(), index),
            name: &worker.group_name,
            is_head: false,
            template: &worker.template,
            ray_start_params: worker.ray_start_params.as_ref(),
            resources: worker.resources.as_ref(),
            labels: worker.labels.as_ref(),
            num_of_hosts: worker.num_of_hosts.unwrap_or(1).max(1),
        });
    }
    groups
}

pub(crate) fn worker_groups(spec: &RayClusterSpec) -> &[crate::WorkerGroupSpec] {
    spec.worker_group_specs.as_deref().unwrap_or_default()
}
