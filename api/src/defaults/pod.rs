//! Defaults of one group (head or workers): `rayStartParams`, and the Ray container's ports,
//! `/dev/shm`, probes, env, and GPU tolerations and node selectors in its pod template.
//! The Ray container is the first container of the template, as in KubeRay.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::ClusterOwner;
use super::cluster::port_number;
use super::derived::Ledger;
use super::json_edit::{child_array, child_object, has_named, set_if_absent, str_at};
use crate::quantity;
use crate::ray_version::{MIN_HTTP_PROBES, RayVersion};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Head,
    Worker,
}

pub struct GroupContext {
    pub role: Role,
    pub owner: ClusterOwner,
    /// The cluster serves Ray Serve traffic (a RayService, or a RayCluster with a serve Service).
    pub serves: bool,
    pub autoscaling: bool,
    pub ray_version: Option<RayVersion>,
    /// The head's GCS port, which workers need too (`RAY_PORT`).
    pub gcs_port: i64,
    /// Ledger key prefix of this group, e.g. `spec.workerGroupSpecs[groupName=gpu]`.
    pub key: String,
}

/// Annotation on a group's pod template naming the accelerator, e.g. `A100`: raygate adds
/// the node selector and Ray's `accelerator_type:A100` resource.
pub const ANNOTATION_ACCELERATOR_TYPE: &str = "ray.io/accelerator-type";

const DASHBOARD_AGENT_PORT: &str = "52365";
const METRICS_PORT: i64 = 8080;
const DASHBOARD_PORT: i64 = 8265;
const CLIENT_PORT: i64 = 10001;
const SERVE_PORT: i64 = 8000;

pub fn normalize_group(group: &mut Map<String, Value>, ctx: &GroupContext, ledger: &mut Ledger) {
    let limits = ray_container_resources(group, "limits");
    let requests = ray_container_resources(group, "requests");
    let accelerator = group
        .get("template")
        .and_then(|t| {
            t.pointer(&format!(
                "/metadata/annotations/{}",
                ANNOTATION_ACCELERATOR_TYPE.replace('/', "~1")
            ))
        })
        .and_then(Value::as_str)
        .map(str::to_string);
    let has_group_resources = group
        .get("resources")
        .and_then(Value::as_object)
        .is_some_and(|r| !r.is_empty());

    let Some(params) = child_object(group, "rayStartParams") else {
        return;
    };
    ray_start_params(params, ctx);
    if !has_group_resources {
        derived_resource_params(
            params,
            ctx,
            &limits,
            &requests,
            accelerator.as_deref(),
            ledger,
        );
    }
    let params = params.clone();

    let Some(pod_spec) = group
        .get_mut("template")
        .and_then(Value::as_object_mut)
        .and_then(|template| child_object(template, "spec"))
    else {
        return;
    };
    gpu_scheduling(pod_spec, &limits, accelerator.as_deref());
    let Some(container) = pod_spec
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .and_then(|containers| containers.first_mut())
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    ports(container, ctx, &params);
    probes(container, ctx, &params);
    env(container, ctx);
    let shm_size = limits
        .get("memory")
        .or_else(|| requests.get("memory"))
        .cloned();
    dev_shm(pod_spec, &params, shm_size, ctx, ledger);
}

fn ray_container_resources(group: &Map<String, Value>, which: &str) -> BTreeMap<String, Value> {
    group
        .get("template")
        .and_then(|t| t.pointer(&format!("/spec/containers/0/resources/{which}")))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The fixed flags KubeRay passes to `ray start` when they are missing.
fn ray_start_params(params: &mut Map<String, Value>, ctx: &GroupContext) {
    if ctx.role == Role::Head {
        // The dashboard must listen beyond localhost for the head Service to reach it.
        set_if_absent(params, "dashboard-host", json!("0.0.0.0"));
        if ctx.autoscaling {
            // The autoscaler sidecar replaces Ray's own monitor process.
            set_if_absent(params, "no-monitor", json!("true"));
        }
    }
    set_if_absent(
        params,
        "metrics-export-port",
        json!(METRICS_PORT.to_string()),
    );
    // Probes query the dashboard agent on this port.
    set_if_absent(
        params,
        "dashboard-agent-listen-port",
        json!(DASHBOARD_AGENT_PORT),
    );
    // Without --block, `ray start` returns and the container exits.
    set_if_absent(params, "block", json!("true"));
}

/// `num-cpus`, `memory`, `num-gpus` and `resources` from the Ray container's limits, by
/// KubeRay's rules: CPU from limits else requests, rounded up; memory from limits only;
/// GPUs from the first `*gpu` or MIG limit; TPUs and Neuron cores as custom resources.
fn derived_resource_params(
    params: &mut Map<String, Value>,
    ctx: &GroupContext,
    limits: &BTreeMap<String, Value>,
    requests: &BTreeMap<String, Value>,
    accelerator: Option<&str>,
    ledger: &mut Ledger,
) {
    let key = |field: &str| format!("{}.rayStartParams.{field}", ctx.key);
    let cpus = limits
        .get("cpu")
        .or_else(|| requests.get("cpu"))
        .and_then(quantity::ceil_integer)
        .filter(|cpus| *cpus > 0)
        .map(|cpus| json!(cpus.to_string()));
    ledger.derive(params, "num-cpus", key("num-cpus"), cpus);
    let memory = limits
        .get("memory")
        .and_then(quantity::ceil_integer)
        .filter(|bytes| *bytes > 0)
        .map(|bytes| json!(bytes.to_string()));
    ledger.derive(params, "memory", key("memory"), memory);
    let gpus = limits
        .iter()
        .find(|(name, _)| name.ends_with("gpu") || is_mig_resource(name))
        .and_then(|(_, value)| quantity::ceil_integer(value))
        .filter(|gpus| *gpus > 0)
        .map(|gpus| json!(gpus.to_string()));
    ledger.derive(params, "num-gpus", key("num-gpus"), gpus);

    let mut custom = Map::new();
    if let Some(tpus) = limits
        .get("google.com/tpu")
        .and_then(quantity::ceil_integer)
    {
        custom.insert("TPU".into(), json!(tpus));
    } else if let Some(cores) = limits
        .get("aws.amazon.com/neuroncore")
        .and_then(quantity::ceil_integer)
    {
        custom.insert("neuron_cores".into(), json!(cores));
    }
    if let Some(accelerator) = accelerator {
        custom.insert(format!("accelerator_type:{accelerator}"), json!(1));
    }
    // Single-quoted because KubeRay pastes the value into a shell command line.
    let resources = (!custom.is_empty()).then(|| json!(format!("'{}'", Value::Object(custom))));
    ledger.derive(params, "resources", key("resources"), resources);
}

/// `nvidia.com/mig-1g.5gb` and friends: a MIG slice counts as one GPU to Ray.
fn is_mig_resource(name: &str) -> bool {
    name.strip_prefix("nvidia.com/mig-")
        .is_some_and(|profile| profile.ends_with("gb") && profile.contains("g."))
}

/// GPU and TPU nodes carry taints; a pod that asks for the device needs the toleration.
fn gpu_scheduling(
    pod_spec: &mut Map<String, Value>,
    limits: &BTreeMap<String, Value>,
    accelerator: Option<&str>,
) {
    let mut taint_keys: Vec<&str> = Vec::new();
    for name in limits.keys() {
        let key = match name.as_str() {
            "nvidia.com/gpu" => "nvidia.com/gpu",
            n if is_mig_resource(n) => "nvidia.com/gpu",
            "amd.com/gpu" => "amd.com/gpu",
            "google.com/tpu" => "google.com/tpu",
            _ => continue,
        };
        if !taint_keys.contains(&key) {
            taint_keys.push(key);
        }
    }
    if !taint_keys.is_empty()
        && let Some(tolerations) = child_array(pod_spec, "tolerations")
    {
        let tolerates_all = tolerations.iter().any(|t| {
            t.get("key").is_none() && t.get("operator").and_then(Value::as_str) == Some("Exists")
        });
        for key in taint_keys {
            if !tolerates_all && !has_named(tolerations, "key", key) {
                tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoSchedule"}));
            }
        }
    }
    if let Some(accelerator) = accelerator
        && let Some(selector) = child_object(pod_spec, "nodeSelector")
    {
        set_if_absent(selector, ANNOTATION_ACCELERATOR_TYPE, json!(accelerator));
    }
}

/// The ports Ray listens on, named as KubeRay names them: the head Service exposes exactly
/// the head container's ports, so a missing `gcs-server` port means workers cannot join.
fn ports(container: &mut Map<String, Value>, ctx: &GroupContext, params: &Map<String, Value>) {
    let param =
        |name: &str, default: i64| params.get(name).and_then(port_number).unwrap_or(default);
    let mut wanted: Vec<(&str, i64)> = Vec::new();
    if ctx.role == Role::Head {
        wanted.push(("gcs-server", ctx.gcs_port));
        wanted.push(("dashboard", param("dashboard-port", DASHBOARD_PORT)));
        wanted.push(("client", param("ray-client-server-port", CLIENT_PORT)));
    }
    wanted.push(("metrics", param("metrics-export-port", METRICS_PORT)));
    if ctx.serves {
        wanted.push(("serve", SERVE_PORT));
    }
    let Some(ports) = child_array(container, "ports") else {
        return;
    };
    for (name, number) in wanted {
        let taken = ports.iter().any(|port| {
            let port_name = port.get("name").and_then(Value::as_str).unwrap_or_default();
            port_name == name
                || (name == "serve" && port_name.starts_with("serve-"))
                || port.get("containerPort").and_then(Value::as_i64) == Some(number)
        });
        if !taken {
            ports.push(json!({"name": name, "containerPort": number, "protocol": "TCP"}));
        }
    }
}

fn probes(container: &mut Map<String, Value>, ctx: &GroupContext, params: &Map<String, Value>) {
    let agent_port = params
        .get("dashboard-agent-listen-port")
        .and_then(port_number)
        .unwrap_or(52365);
    let dashboard_port = params
        .get("dashboard-port")
        .and_then(port_number)
        .unwrap_or(DASHBOARD_PORT);
    let timeout = if ctx.role == Role::Head { 5 } else { 2 };
    let serve_worker = ctx.owner == ClusterOwner::RayService && ctx.role == Role::Worker;
    let http = ctx
        .ray_version
        .as_ref()
        .is_some_and(|v| !v.less_than(MIN_HTTP_PROBES));

    let mut checks = vec![format!(
        "wget --tries 1 -T 2 -q -O- http://localhost:{agent_port}/api/local_raylet_healthz | grep success"
    )];
    if ctx.role == Role::Head {
        checks.push(format!(
            "wget --tries 1 -T 10 -q -O- http://localhost:{dashboard_port}/api/gcs_healthz | grep success"
        ));
    }
    let handler = |checks: &[String]| {
        if http {
            json!({"httpGet": {"path": "/api/healthz", "port": agent_port}})
        } else {
            json!({"exec": {"command": ["bash", "-c", checks.join(" && ")]}})
        }
    };
    let probe = |mut handler: Value, initial_delay: i64, failures: i64| {
        if let Some(object) = handler.as_object_mut() {
            object.insert("initialDelaySeconds".into(), json!(initial_delay));
            object.insert("timeoutSeconds".into(), json!(timeout));
            object.insert("periodSeconds".into(), json!(5));
            object.insert("successThreshold".into(), json!(1));
            object.insert("failureThreshold".into(), json!(failures));
        }
        handler
    };
    set_if_absent(container, "livenessProbe", probe(handler(&checks), 30, 120));
    let readiness = if serve_worker {
        // A Serve worker is ready only when its proxy answers; one failure takes it out of
        // the serve Service so requests never reach a dead replica.
        let mut serve_checks = checks.clone();
        serve_checks.push(format!(
            "wget --tries 1 -T 10 -q -O- http://localhost:{SERVE_PORT}/-/healthz | grep success"
        ));
        probe(
            json!({"exec": {"command": ["bash", "-c", serve_checks.join(" && ")]}}),
            10,
            1,
        )
    } else {
        probe(handler(&checks), 10, 10)
    };
    set_if_absent(container, "readinessProbe", readiness);
}

fn field_ref(path: &str) -> Value {
    json!({"fieldRef": {"fieldPath": path}})
}

/// The environment Ray reads to know where it runs.
fn env(container: &mut Map<String, Value>, ctx: &GroupContext) {
    let mut wanted = vec![
        (
            "RAY_CLUSTER_NAME",
            None,
            Some(field_ref("metadata.labels['ray.io/cluster']")),
        ),
        (
            "RAY_CLUSTER_NAMESPACE",
            None,
            Some(field_ref("metadata.namespace")),
        ),
        (
            "RAY_NODE_TYPE_NAME",
            None,
            Some(field_ref("metadata.labels['ray.io/group']")),
        ),
        (
            "RAY_CLOUD_INSTANCE_ID",
            None,
            Some(field_ref("metadata.name")),
        ),
        ("RAY_PORT", Some(ctx.gcs_port.to_string()), None),
        (
            "RAY_USAGE_STATS_KUBERAY_IN_USE",
            Some("1".to_string()),
            None,
        ),
        (
            "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE",
            Some("1".to_string()),
            None,
        ),
    ];
    if ctx.role == Role::Head {
        wanted.push((
            "RAY_ADDRESS",
            Some(format!("127.0.0.1:{}", ctx.gcs_port)),
            None,
        ));
    }
    if ctx.owner == ClusterOwner::RayService {
        // Serve needs failures detected fast, or requests hang on dead replicas.
        wanted.push((
            "RAY_timeout_ms_task_wait_for_death_info",
            Some("0".into()),
            None,
        ));
        wanted.push((
            "RAY_gcs_server_request_timeout_seconds",
            Some("5".into()),
            None,
        ));
        wanted.push(("RAY_SERVE_KV_TIMEOUT_S", Some("5".into()), None));
    }
    let Some(env) = child_array(container, "env") else {
        return;
    };
    for (name, value, value_from) in wanted {
        if has_named(env, "name", name) {
            continue;
        }
        let mut entry = json!({"name": name});
        if let Some(value) = value {
            entry["value"] = json!(value);
        }
        if let Some(value_from) = value_from {
            entry["valueFrom"] = value_from;
        }
        env.push(entry);
    }
}

/// Ray's object store lives in shared memory; Docker's default 64 MB `/dev/shm` makes it spill
/// to disk. A memory-backed emptyDir sized to the container's memory fixes that.
fn dev_shm(
    pod_spec: &mut Map<String, Value>,
    params: &Map<String, Value>,
    size: Option<Value>,
    ctx: &GroupContext,
    ledger: &mut Ledger,
) {
    if params.contains_key("plasma-directory") {
        return;
    }
    let mounted = pod_spec
        .get("containers")
        .and_then(|c| c.pointer("/0/volumeMounts"))
        .and_then(Value::as_array)
        .is_some_and(|mounts| has_named(mounts, "mountPath", "/dev/shm"));
    let volume_exists = pod_spec
        .get("volumes")
        .and_then(Value::as_array)
        .is_some_and(|volumes| has_named(volumes, "name", "shared-mem"));
    if mounted && !volume_exists {
        return; // the user mounted something of their own there
    }
    if !volume_exists {
        let Some(volumes) = child_array(pod_spec, "volumes") else {
            return;
        };
        volumes.push(json!({"name": "shared-mem", "emptyDir": {"medium": "Memory"}}));
    }
    let Some(volume) = pod_spec
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .and_then(|volumes| {
            volumes
                .iter_mut()
                .find(|v| v.get("name").and_then(Value::as_str) == Some("shared-mem"))
        })
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if let Some(empty_dir) = volume.get_mut("emptyDir").and_then(Value::as_object_mut)
        && str_at(empty_dir, "medium") == Some("Memory")
    {
        ledger.derive(
            empty_dir,
            "sizeLimit",
            format!("{}.shm.sizeLimit", ctx.key),
            size,
        );
    }
    if !mounted
        && let Some(mounts) = pod_spec
            .get_mut("containers")
            .and_then(Value::as_array_mut)
            .and_then(|c| c.first_mut())
            .and_then(Value::as_object_mut)
            .and_then(|container| child_array(container, "volumeMounts"))
    {
        mounts.push(json!({"name": "shared-mem", "mountPath": "/dev/shm"}));
    }
}
