//! Head and worker Pods built from a normalized RayCluster. The webhook already wrote ports,
//! probes, `/dev/shm`, env and `rayStartParams` into the templates; what is added here is
//! what differs per pod or depends on where the controller runs: names, labels, owner,
//! the `ray start` command and the head's address.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use raygate_api::labels::{
    ANNOTATION_FT_ENABLED, ANNOTATION_KUBERAY_VERSION, ANNOTATION_OVERWRITE_CONTAINER_CMD,
    ANNOTATION_UPGRADE_STRATEGY_RECREATE_HASH, RAY_ORIGINATED_FROM_CRD, RAY_REPLICA_HOST_INDEX,
    RAY_SERVE, RAY_WORKER_GROUP_REPLICA_INDEX, RAY_WORKER_GROUP_REPLICA_NAME,
};
use raygate_api::{RayCluster, WorkerGroupSpec};

use crate::names::{self, HEAD_GROUP, NodeType};
use crate::ray_start;

/// Ray's GCS listens here unless the head's `rayStartParams.port` says otherwise.
pub const DEFAULT_GCS_PORT: &str = "6379";
/// Env var holding the generated `ray start` line, which Ray's tooling reads back.
pub const GEN_RAY_START_CMD_ENV: &str = "KUBERAY_GEN_RAY_START_CMD";
/// Init container that holds a worker until the head's GCS answers.
pub const WAIT_GCS_READY: &str = "wait-gcs-ready";

/// What every pod of one cluster shares.
pub struct PodContext<'a> {
    pub cluster: &'a RayCluster,
    pub cluster_domain: &'a str,
    /// [`crate::spec_hash::pod_template_hash`] of the cluster's spec.
    pub template_hash: &'a str,
}

/// Where a new worker sits in its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSlot {
    pub replica_index: u32,
    /// Multi-host groups only: the replica's name, shared by its hosts.
    pub replica_name: Option<String>,
    pub host_index: Option<u32>,
}

impl PodContext<'_> {
    fn name(&self) -> String {
        self.cluster.name_any()
    }

    fn namespace(&self) -> String {
        self.cluster.namespace().unwrap_or_default()
    }

    /// The GCS port from the head's `rayStartParams.port`.
    pub fn gcs_port(&self) -> String {
        self.cluster
            .spec
            .head_group_spec
            .ray_start_params
            .as_ref()
            .and_then(|p| p.get("port"))
            .map(|p| p.trim().to_string())
            .unwrap_or_else(|| DEFAULT_GCS_PORT.to_string())
    }

    /// `<head svc>.<ns>.svc.<domain>`.
    pub fn head_fqdn(&self) -> String {
        names::head_service_fqdn(
            &crate::services::head_service_name(self.cluster),
            &self.namespace(),
            self.cluster_domain,
        )
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.cluster
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    fn gcs_fault_tolerance(&self) -> bool {
        self.cluster.spec.gcs_fault_tolerance_options.is_some()
            || self.annotation(ANNOTATION_FT_ENABLED) == Some("true")
    }
}

pub fn head_pod(ctx: &PodContext) -> Pod {
    let head = &ctx.cluster.spec.head_group_spec;
    let mut params = ray_start::group_params(
        head.ray_start_params.as_ref(),
        head.resources.as_ref(),
        head.labels.as_ref(),
        None,
    );
    crate::gcs_ft::head_params(ctx.cluster, &mut params);
    let ray_start = ray_start::ray_start_command(NodeType::Head, &params);
    let crd = ctx
        .cluster
        .labels()
        .get(RAY_ORIGINATED_FROM_CRD)
        .cloned()
        .unwrap_or_else(|| "RayCluster".to_string());
    let mut extra_env = vec![env(
        "RAY_USAGE_STATS_EXTRA_TAGS",
        &format!("kuberay_version={};kuberay_crd={crd}", version()),
    )];
    extra_env.extend(crate::gcs_ft::head_env(ctx.cluster));
    let labels = pod_labels(ctx, NodeType::Head, HEAD_GROUP, head.labels.as_ref(), None);
    build_pod(
        ctx,
        &head.template,
        NodeType::Head,
        None,
        labels,
        &ray_start,
        extra_env,
    )
}

pub fn worker_pod(ctx: &PodContext, group: &WorkerGroupSpec, slot: &WorkerSlot) -> Pod {
    let address = format!("{}:{}", ctx.head_fqdn(), ctx.gcs_port());
    let params = ray_start::group_params(
        group.ray_start_params.as_ref(),
        group.resources.as_ref(),
        group.labels.as_ref(),
        Some(&address),
    );
    let ray_start = ray_start::ray_start_command(NodeType::Worker, &params);
    let labels = pod_labels(
        ctx,
        NodeType::Worker,
        &group.group_name,
        group.labels.as_ref(),
        Some(slot),
    );
    // FQ_RAY_IP and RAY_IP predate RAY_ADDRESS; scripts in users' images still read them.
    let mut extra_env = vec![
        env("FQ_RAY_IP", &ctx.head_fqdn()),
        env("RAY_IP", &crate::services::head_service_name(ctx.cluster)),
        env("RAY_ADDRESS", &address),
    ];
    extra_env.extend(crate::gcs_ft::worker_env(ctx.cluster));
    build_pod(
        ctx,
        &group.template,
        NodeType::Worker,
        Some(&group.group_name),
        labels,
        &ray_start,
        extra_env,
    )
}

/// The controller reference every child carries. `blockOwnerDeletion` keeps a foreground
/// deletion of the RayCluster waiting until its pods are gone, as with KubeRay.
pub fn controller_reference(cluster: &RayCluster) -> Option<Vec<OwnerReference>> {
    let mut reference = cluster.controller_owner_ref(&())?;
    reference.block_owner_deletion = Some(true);
    Some(vec![reference])
}

fn version() -> String {
    format!("raygate-{}", env!("CARGO_PKG_VERSION"))
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

/// Appends `extra` entries whose names the list does not have yet: the user's value wins.
pub(crate) fn add_missing_env(list: &mut Option<Vec<EnvVar>>, extra: &[EnvVar]) {
    let list = list.get_or_insert_with(Vec::new);
    for var in extra {
        if !list.iter().any(|existing| existing.name == var.name) {
            list.push(var.clone());
        }
    }
}

fn pod_labels(
    ctx: &PodContext,
    node_type: NodeType,
    group: &str,
    group_labels: Option<&BTreeMap<String, String>>,
    slot: Option<&WorkerSlot>,
) -> BTreeMap<String, String> {
    let cluster = ctx.name();
    let template_labels = match node_type {
        NodeType::Head => ctx.cluster.spec.head_group_spec.template.metadata.as_ref(),
        NodeType::Worker => ctx
            .cluster
            .spec
            .worker_group_specs
            .iter()
            .flatten()
            .find(|g| g.group_name == group)
            .and_then(|g| g.template.metadata.as_ref()),
    }
    .and_then(|m| m.labels.as_ref());
    let mut labels = names::pod_labels(&cluster, node_type, group);
    for user in [template_labels, group_labels].into_iter().flatten() {
        for (key, value) in user {
            if !names::is_protected_label(key) {
                labels.insert(key.clone(), value.clone());
            }
        }
    }
    // A RayService's serve Service selects these; the RayService controller takes a head
    // out of it when the RayService says so.
    if ctx
        .cluster
        .labels()
        .get(RAY_ORIGINATED_FROM_CRD)
        .map(String::as_str)
        == Some("RayService")
    {
        labels
            .entry(RAY_SERVE.to_string())
            .or_insert_with(|| "true".to_string());
    }
    if let Some(slot) = slot {
        labels.insert(
            RAY_WORKER_GROUP_REPLICA_INDEX.to_string(),
            slot.replica_index.to_string(),
        );
        if let Some(name) = &slot.replica_name {
            labels.insert(RAY_WORKER_GROUP_REPLICA_NAME.to_string(), name.clone());
        }
        if let Some(host) = slot.host_index {
            labels.insert(RAY_REPLICA_HOST_INDEX.to_string(), host.to_string());
        }
    }
    labels
}

fn build_pod(
    ctx: &PodContext,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    node_type: NodeType,
    group: Option<&str>,
    labels: BTreeMap<String, String>,
    ray_start: &str,
    extra_env: Vec<EnvVar>,
) -> Pod {
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    annotations.insert(
        ANNOTATION_FT_ENABLED.to_string(),
        ctx.gcs_fault_tolerance().to_string(),
    );
    annotations.insert(
        ANNOTATION_UPGRADE_STRATEGY_RECREATE_HASH.to_string(),
        ctx.template_hash.to_string(),
    );
    annotations.insert(ANNOTATION_KUBERAY_VERSION.to_string(), version());
    if crate::gcs_ft::backend(ctx.cluster) == Some(crate::gcs_ft::Backend::Redis) {
        annotations.insert(
            raygate_api::labels::ANNOTATION_EXTERNAL_STORAGE_NAMESPACE.to_string(),
            crate::gcs_ft::storage_namespace(ctx.cluster),
        );
    }
    let overwrite = ctx.annotation(ANNOTATION_OVERWRITE_CONTAINER_CMD) == Some("true");
    if overwrite {
        annotations.insert(
            ANNOTATION_OVERWRITE_CONTAINER_CMD.to_string(),
            "true".to_string(),
        );
    }

    let mut spec: PodSpec = template.spec.clone().unwrap_or_default();
    match node_type {
        NodeType::Head => crate::autoscaler::add_to_head(ctx.cluster, &mut spec),
        NodeType::Worker => crate::autoscaler::add_to_worker(ctx.cluster, &mut spec),
    }
    let mut ray_env = extra_env;
    ray_env.push(env(GEN_RAY_START_CMD_ENV, ray_start));
    if let Some(container) = spec.containers.first_mut() {
        add_missing_env(&mut container.env, &ray_env);
        if !overwrite && !runs_ray_start(container) {
            let user = user_command(container);
            container.command = Some(vec!["/bin/bash".into(), "-c".into(), "--".into()]);
            container.args = Some(vec![ray_start::container_script(
                user.as_deref(),
                ray_start,
            )]);
        }
    }
    if node_type == NodeType::Worker {
        let address_env: Vec<EnvVar> = ray_env
            .iter()
            .filter(|v| v.name == "FQ_RAY_IP" || v.name == "RAY_IP")
            .cloned()
            .collect();
        for init in spec.init_containers.iter_mut().flatten() {
            add_missing_env(&mut init.env, &address_env);
        }
        let has_wait = spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == WAIT_GCS_READY);
        if !has_wait && let Some(ray) = spec.containers.first() {
            let address = format!("{}:{}", ctx.head_fqdn(), ctx.gcs_port());
            let wait = wait_gcs_ready(ray, &address, &address_env);
            spec.init_containers.get_or_insert_with(Vec::new).push(wait);
        }
    }

    // Every Ray process authenticates: the Ray container, the autoscaler, wait-gcs-ready, a
    // SidecarMode submitter, and the user's own init containers.
    let auth_env = crate::auth::env(ctx.cluster);
    if !auth_env.is_empty() {
        for container in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            add_missing_env(&mut container.env, &auth_env);
        }
        crate::auth::add_k8s_token_volume(ctx.cluster, &mut spec);
    }

    Pod {
        metadata: ObjectMeta {
            generate_name: Some(names::pod_generate_name(&ctx.name(), group, node_type)),
            namespace: Some(ctx.namespace()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: controller_reference(ctx.cluster),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn runs_ray_start(container: &Container) -> bool {
    container
        .command
        .iter()
        .chain(container.args.iter())
        .flatten()
        .any(|part| part.contains("ray start"))
}

fn user_command(container: &Container) -> Option<String> {
    let parts: Vec<&str> = container
        .command
        .iter()
        .chain(container.args.iter())
        .flatten()
        .map(String::as_str)
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Workers that start before the GCS answers exit and crash-loop; this waits for it instead,
/// quietly for the first two minutes (a head usually needs that long to pull its image).
fn wait_gcs_ready(ray: &Container, address: &str, address_env: &[EnvVar]) -> Container {
    let script = format!(
        "SECONDS=0\n\
         while true; do\n\
         \x20 if (( SECONDS <= 120 )); then\n\
         \x20   if ray health-check --address {address} > /dev/null 2>&1; then echo \"GCS is ready.\"; break; fi\n\
         \x20   echo \"$SECONDS seconds elapsed: waiting for GCS to be ready.\"\n\
         \x20 else\n\
         \x20   if ray health-check --address {address}; then echo \"GCS is ready.\"; break; fi\n\
         \x20   echo \"$SECONDS seconds elapsed: still waiting for GCS at {address}.\"\n\
         \x20 fi\n\
         \x20 sleep 5\n\
         done"
    );
    let mut env = ray.env.clone();
    add_missing_env(&mut env, address_env);
    let small = BTreeMap::from([
        ("cpu".to_string(), Quantity("200m".into())),
        ("memory".to_string(), Quantity("256Mi".into())),
    ]);
    Container {
        name: WAIT_GCS_READY.to_string(),
        image: ray.image.clone(),
        image_pull_policy: ray.image_pull_policy.clone(),
        security_context: ray.security_context.clone(),
        command: Some(vec!["/bin/bash".into(), "-lc".into(), "--".into()]),
        args: Some(vec![script]),
        env,
        volume_mounts: ray.volume_mounts.clone(),
        resources: Some(ResourceRequirements {
            limits: Some(small.clone()),
            requests: Some(small),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raygate_api::labels::{RAY_CLUSTER, RAY_GROUP, RAY_NODE_TYPE};

    fn sample() -> RayCluster {
        let yaml = r#"
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: demo, namespace: ns, uid: u-1}
spec:
  headGroupSpec:
    rayStartParams: {block: "true", dashboard-host: 0.0.0.0}
    template:
      metadata:
        labels: {team: a, ray.io/cluster: evil}
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
          ports: [{containerPort: 6379, name: gcs-server}]
  workerGroupSpecs:
  - groupName: small
    replicas: 2
    minReplicas: 0
    maxReplicas: 5
    rayStartParams: {block: "true"}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.52.0
          command: ["echo", "hello"]
"#;
        let mut value: serde_json::Value =
            raygate_api::manifest::parse_documents(yaml).expect("yaml")[0].clone();
        value["metadata"]["uid"] = "u-1".into();
        serde_json::from_value(value).expect("RayCluster")
    }

    fn ctx(cluster: &RayCluster) -> PodContext<'_> {
        PodContext {
            cluster,
            cluster_domain: "cluster.local",
            template_hash: "h1",
        }
    }

    #[test]
    fn head_pod_is_named_labelled_and_owned_like_kuberays() {
        let cluster = sample();
        let pod = head_pod(&ctx(&cluster));
        let meta = &pod.metadata;
        assert_eq!(meta.generate_name.as_deref(), Some("demo-head-"));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        let labels = meta.labels.as_ref().expect("labels");
        assert_eq!(labels[RAY_CLUSTER], "demo", "a template can't move the pod");
        assert_eq!(labels[RAY_NODE_TYPE], "head");
        assert_eq!(labels[RAY_GROUP], "headgroup");
        assert_eq!(labels["team"], "a");
        let owner = &meta.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.kind, "RayCluster");
        assert_eq!(owner.uid, "u-1");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        let annotations = meta.annotations.as_ref().expect("annotations");
        assert_eq!(annotations[ANNOTATION_UPGRADE_STRATEGY_RECREATE_HASH], "h1");
        let container = &pod.spec.as_ref().expect("spec").containers[0];
        assert_eq!(
            container.args.as_ref().expect("args")[0],
            "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; ray start --head --block --dashboard-host=0.0.0.0"
        );
    }

    #[test]
    fn worker_pod_dials_the_head_service() {
        let cluster = sample();
        let group = &cluster.spec.worker_group_specs.as_ref().expect("groups")[0];
        let slot = WorkerSlot {
            replica_index: 3,
            replica_name: None,
            host_index: None,
        };
        let pod = worker_pod(&ctx(&cluster), group, &slot);
        assert_eq!(
            pod.metadata.generate_name.as_deref(),
            Some("demo-small-worker-")
        );
        let labels = pod.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[RAY_WORKER_GROUP_REPLICA_INDEX], "3");
        assert_eq!(labels["ray.io/identifier"], "demo-worker");
        let spec = pod.spec.as_ref().expect("spec");
        let container = &spec.containers[0];
        assert_eq!(
            container.args.as_ref().expect("args")[0],
            "echo hello && ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; \
             ray start --address=demo-head-svc.ns.svc.cluster.local:6379 --block"
        );
        let env = container.env.as_ref().expect("env");
        let fq = env
            .iter()
            .find(|e| e.name == "FQ_RAY_IP")
            .expect("FQ_RAY_IP");
        assert_eq!(
            fq.value.as_deref(),
            Some("demo-head-svc.ns.svc.cluster.local")
        );
        let init = &spec.init_containers.as_ref().expect("init")[0];
        assert_eq!(init.name, WAIT_GCS_READY);
        assert!(
            init.args.as_ref().expect("args")[0]
                .contains("demo-head-svc.ns.svc.cluster.local:6379")
        );
    }

    /// The head and a worker pod of an autoscaling Ray 2.55 cluster with these `authOptions`.
    fn autoscaling_pods_with_auth(auth: serde_json::Value) -> [Pod; 2] {
        let mut cluster = sample();
        cluster.spec.ray_version = Some("2.55.0".into());
        cluster.spec.enable_in_tree_autoscaling = Some(true);
        cluster.spec.auth_options = Some(serde_json::from_value(auth).expect("auth options"));
        let head = head_pod(&ctx(&cluster));
        let group = cluster.spec.worker_group_specs.as_ref().expect("groups")[0].clone();
        let slot = WorkerSlot {
            replica_index: 0,
            replica_name: None,
            host_index: None,
        };
        [head, worker_pod(&ctx(&cluster), &group, &slot)]
    }

    /// Every container and init container of a pod; each pod here has at least two (the head
    /// runs the autoscaler, workers wait-gcs-ready).
    fn all_containers(spec: &PodSpec) -> Vec<&Container> {
        let containers: Vec<_> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .collect();
        assert!(containers.len() >= 2, "{containers:?}");
        containers
    }

    #[test]
    fn with_token_auth_every_container_gets_the_token() {
        for pod in &autoscaling_pods_with_auth(serde_json::json!({"mode": "token"})) {
            let spec = pod.spec.as_ref().expect("spec");
            for container in all_containers(spec) {
                let env = container.env.as_deref().unwrap_or_default();
                let token = env.iter().find(|e| e.name == "RAY_AUTH_TOKEN");
                let secret = token
                    .and_then(|t| t.value_from.as_ref())
                    .and_then(|v| v.secret_key_ref.as_ref())
                    .map(|s| (s.name.as_str(), s.key.as_str()));
                assert_eq!(secret, Some(("demo", "auth_token")), "{}", container.name);
                assert!(
                    env.iter().any(|e| e.name == "RAY_AUTH_MODE"),
                    "{}",
                    container.name
                );
            }
        }
    }

    #[test]
    fn with_kubernetes_token_auth_every_container_mounts_the_projected_token() {
        let auth = serde_json::json!({"mode": "token", "enableK8sTokenAuth": true});
        for pod in &autoscaling_pods_with_auth(auth) {
            let spec = pod.spec.as_ref().expect("spec");
            let volumes: Vec<_> = spec
                .volumes
                .iter()
                .flatten()
                .filter(|v| v.name == "ray-token")
                .collect();
            assert_eq!(volumes.len(), 1, "{:?}", spec.volumes);
            let token = volumes[0]
                .projected
                .as_ref()
                .and_then(|p| p.sources.as_ref())
                .and_then(|s| s.first())
                .and_then(|s| s.service_account_token.as_ref());
            assert_eq!(token.map(|t| t.path.as_str()), Some("token"));
            // A projected token needs a named service account (the autoscaling head has its
            // own; workers get the namespace's default).
            assert!(
                spec.service_account_name
                    .as_deref()
                    .is_some_and(|name| !name.is_empty()),
                "{:?}",
                spec.service_account_name
            );
            for container in all_containers(spec) {
                let env = container.env.as_deref().unwrap_or_default();
                assert!(
                    env.iter().any(|e| e.name == "RAY_ENABLE_K8S_TOKEN_AUTH"),
                    "{}",
                    container.name
                );
                assert!(
                    !env.iter().any(|e| e.name == "RAY_AUTH_TOKEN"),
                    "{}",
                    container.name
                );
                let mount = container
                    .volume_mounts
                    .iter()
                    .flatten()
                    .find(|m| m.name == "ray-token");
                assert_eq!(
                    mount.map(|m| (m.mount_path.as_str(), m.read_only)),
                    Some(("/var/run/secrets/ray.io/serviceaccount", Some(true))),
                    "{}",
                    container.name
                );
            }
        }
    }

    #[test]
    fn a_user_ray_start_is_left_alone() {
        let mut cluster = sample();
        cluster
            .spec
            .head_group_spec
            .template
            .spec
            .as_mut()
            .expect("spec")
            .containers[0]
            .args = Some(vec!["ray start --head --block".into()]);
        let pod = head_pod(&ctx(&cluster));
        let container = &pod.spec.as_ref().expect("spec").containers[0];
        assert_eq!(container.command, None);
        assert_eq!(
            container.args.as_deref(),
            Some(&["ray start --head --block".to_string()][..])
        );
    }
}
