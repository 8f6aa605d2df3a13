//! Defaults of one group (head or workers): `rayStartParams`, and the Ray container's ports,
//! `/dev/shm`, probes, env, and GPU tolerations and node selectors in its pod template.
//! The Ray container is the first container of the template, as in KubeRay.

use serde_json::{Map, Value, json};

use super::ClusterOwner;
use super::cluster::port_number;
use super::derived::{self, Ledger};
use super::json_edit::{at, child_array, child_object, has_named, set_if_absent_with, str_at};
use crate::ray_version::{MIN_HTTP_PROBES, RayVersion};
use crate::{accelerators, quantity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Head,
    Worker,
}

pub struct GroupContext<'a> {
    pub role: Role,
    pub owner: ClusterOwner,
    /// The cluster serves Ray Serve traffic (a RayService, or a RayCluster with a serve Service).
    pub serves: bool,
    pub autoscaling: bool,
    /// `autoscalerOptions.version: v2` with autoscaling on.
    pub autoscaler_v2: bool,
    pub ray_version: Option<&'a RayVersion>,
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
    // Everything read from the Ray container and the template comes first, as owned summaries,
    // so the edits below need no copy of the group's maps.
    let template = group.get("template");
    let accelerator = template
        .and_then(|t| at(t, &["metadata", "annotations", ANNOTATION_ACCELERATOR_TYPE]))
        .and_then(Value::as_str)
        .map(str::to_string);
    let resources = template.and_then(|t| at(t, &["spec", "containers", "0", "resources"]));
    let limits = resources
        .and_then(|r| r.get("limits"))
        .and_then(Value::as_object);
    let requests = resources
        .and_then(|r| r.get("requests"))
        .and_then(Value::as_object);
    let has_group_resources = group
        .get("resources")
        .and_then(Value::as_object)
        .is_some_and(|r| !r.is_empty());
    let derived = (!has_group_resources)
        .then(|| DerivedParams::new(limits, requests, accelerator.as_deref()));
    let taint_keys = taint_keys(limits);
    let shm_size = limits
        .and_then(|l| l.get("memory"))
        .or_else(|| requests.and_then(|r| r.get("memory")))
        .cloned();

    let Some(params) = child_object(group, "rayStartParams") else {
        return;
    };
    ray_start_params(params, ctx);
    if let Some(derived) = derived {
        derived.write(params, ctx, ledger);
    }
    let params = StartParams::read(params);

    let Some(pod_spec) = group
        .get_mut("template")
        .and_then(Value::as_object_mut)
        .and_then(|template| child_object(template, "spec"))
    else {
        return;
    };
    gpu_scheduling(pod_spec, &taint_keys, accelerator.as_deref());
    restart_policy(pod_spec, ctx, ledger);
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
    dev_shm(pod_spec, &params, shm_size, ctx, ledger);
}

/// Autoscaler v2 replaces a failed Ray node itself: a container restarted by the kubelet would
/// come back as a node it does not know. KubeRay sets `Never` on every pod it builds; written
/// here, the stored template shows it. Recorded in the ledger, so it goes again when the
/// cluster leaves autoscaler v2 (a head that never restarts is not what v1 wants).
fn restart_policy(pod_spec: &mut Map<String, Value>, ctx: &GroupContext, ledger: &mut Ledger) {
    let key = derived::key(&ctx.key, "template.spec", "restartPolicy");
    let never = ctx.autoscaler_v2.then(|| Value::from("Never"));
    ledger.derive(pod_spec, "restartPolicy", key, never);
}

/// The `rayStartParams` the container's ports and probes follow, read once they are complete.
struct StartParams {
    dashboard_port: i64,
    client_port: i64,
    metrics_port: i64,
    agent_port: i64,
    plasma_directory: bool,
}

impl StartParams {
    fn read(params: &Map<String, Value>) -> Self {
        let port =
            |name: &str, default: i64| params.get(name).and_then(port_number).unwrap_or(default);
        Self {
            dashboard_port: port("dashboard-port", DASHBOARD_PORT),
            client_port: port("ray-client-server-port", CLIENT_PORT),
            metrics_port: port("metrics-export-port", METRICS_PORT),
            agent_port: port("dashboard-agent-listen-port", 52365),
            plasma_directory: params.contains_key("plasma-directory"),
        }
    }
}

/// The fixed flags KubeRay passes to `ray start` when they are missing.
fn ray_start_params(params: &mut Map<String, Value>, ctx: &GroupContext) {
    if ctx.role == Role::Head {
        // The dashboard must listen beyond localhost for the head Service to reach it.
        set_if_absent_with(params, "dashboard-host", || "0.0.0.0".into());
        if ctx.autoscaling {
            // The autoscaler sidecar replaces Ray's own monitor process.
            set_if_absent_with(params, "no-monitor", || "true".into());
        }
    }
    set_if_absent_with(params, "metrics-export-port", || {
        METRICS_PORT.to_string().into()
    });
    // Probes query the dashboard agent on this port.
    set_if_absent_with(params, "dashboard-agent-listen-port", || {
        DASHBOARD_AGENT_PORT.into()
    });
    // Without --block, `ray start` returns and the container exits.
    set_if_absent_with(params, "block", || "true".into());
}

/// `num-cpus`, `memory`, `num-gpus` and `resources` from the Ray container's limits, by
/// KubeRay's rules: CPU from limits else requests, rounded up; memory from limits only;
/// GPUs from the first `*gpu` or MIG limit; TPUs and Neuron cores as custom resources.
struct DerivedParams {
    cpus: Option<Value>,
    memory: Option<Value>,
    gpus: Option<Value>,
    /// Ray custom resources: `TPU` or `neuron_cores`, `accelerator_type:<type>`.
    custom: Map<String, Value>,
}

impl DerivedParams {
    fn new(
        limits: Option<&Map<String, Value>>,
        requests: Option<&Map<String, Value>>,
        accelerator: Option<&str>,
    ) -> Self {
        let limit = |name: &str| limits.and_then(|l| l.get(name));
        let cpus = limit("cpu")
            .or_else(|| requests.and_then(|r| r.get("cpu")))
            .and_then(quantity::ceil_integer)
            .filter(|cpus| *cpus > 0)
            .map(|cpus| Value::String(cpus.to_string()));
        let memory = limit("memory")
            .and_then(quantity::ceil_integer)
            .filter(|bytes| *bytes > 0)
            .map(|bytes| Value::String(bytes.to_string()));
        let gpus = limits
            .into_iter()
            .flatten()
            .find(|(name, _)| accelerators::is_gpu_resource(name))
            .and_then(|(_, value)| quantity::ceil_integer(value))
            .filter(|gpus| *gpus > 0)
            .map(|gpus| Value::String(gpus.to_string()));

        let mut custom = Map::new();
        if let Some(tpus) = limit("google.com/tpu").and_then(quantity::ceil_integer) {
            custom.insert("TPU".into(), json!(tpus));
        } else if let Some(cores) =
            limit("aws.amazon.com/neuroncore").and_then(quantity::ceil_integer)
        {
            custom.insert("neuron_cores".into(), json!(cores));
        }
        if let Some(accelerator) = accelerator {
            custom.insert(format!("accelerator_type:{accelerator}"), json!(1));
        }
        Self {
            cpus,
            memory,
            gpus,
            custom,
        }
    }

    fn write(self, params: &mut Map<String, Value>, ctx: &GroupContext, ledger: &mut Ledger) {
        let key = |field: &str| derived::key(&ctx.key, "rayStartParams", field);
        ledger.derive(params, "num-cpus", key("num-cpus"), self.cpus);
        ledger.derive(params, "memory", key("memory"), self.memory);
        ledger.derive(params, "num-gpus", key("num-gpus"), self.gpus);
        let resources = key("resources");
        if !self.custom.is_empty() && ledger.is_users(params, "resources", &resources) {
            merge_custom_resources(params, self.custom);
        } else {
            let derived = (!self.custom.is_empty()).then(|| resources_param(self.custom));
            ledger.derive(params, "resources", resources, derived);
        }
    }
}

/// `rayStartParams.resources` as KubeRay writes it: JSON, single-quoted because KubeRay pastes
/// the value into a shell command line.
fn resources_param(custom: Map<String, Value>) -> Value {
    Value::String(format!("'{}'", Value::Object(custom)))
}

/// A user's own `resources` gets the accelerator's entry added, as KubeRay adds it at pod
/// build time, unless it already names an accelerator (`TPU`, `neuron_cores`) or the entry.
/// A value that isn't a JSON object is left for validation to report.
fn merge_custom_resources(params: &mut Map<String, Value>, custom: Map<String, Value>) {
    let Some(text) = params.get("resources").and_then(Value::as_str) else {
        return;
    };
    let Ok(Value::Object(mut resources)) =
        serde_json::from_str::<Value>(text.trim_matches(|c: char| "'\"` ".contains(c)))
    else {
        return;
    };
    const DEVICES: [&str; 2] = ["TPU", "neuron_cores"];
    let has_device = DEVICES.iter().any(|name| resources.contains_key(*name));
    let mut added = false;
    for (name, value) in custom {
        let is_device = DEVICES.contains(&name.as_str());
        if (is_device && has_device) || resources.contains_key(&name) {
            continue;
        }
        resources.insert(name, value);
        added = true;
    }
    if added {
        params.insert("resources".into(), resources_param(resources));
    }
}

/// The taints of the devices the Ray container asks for, each once.
fn taint_keys(limits: Option<&Map<String, Value>>) -> Vec<&'static str> {
    let mut taint_keys: Vec<&'static str> = Vec::new();
    for name in limits.into_iter().flat_map(Map::keys) {
        let key = match name.as_str() {
            "nvidia.com/gpu" => "nvidia.com/gpu",
            n if accelerators::is_mig_resource(n) => "nvidia.com/gpu",
            "amd.com/gpu" => "amd.com/gpu",
            "google.com/tpu" => "google.com/tpu",
            _ => continue,
        };
        if !taint_keys.contains(&key) {
            taint_keys.push(key);
        }
    }
    taint_keys
}

/// GPU and TPU nodes carry taints; a pod that asks for the device needs the toleration.
fn gpu_scheduling(
    pod_spec: &mut Map<String, Value>,
    taint_keys: &[&'static str],
    accelerator: Option<&str>,
) {
    if !taint_keys.is_empty()
        && let Some(tolerations) = child_array(pod_spec, "tolerations")
    {
        let tolerates_all = tolerations.iter().any(|t| {
            t.get("key").is_none() && t.get("operator").and_then(Value::as_str) == Some("Exists")
        });
        for &key in taint_keys {
            if !tolerates_all && !has_named(tolerations, "key", key) {
                tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoSchedule"}));
            }
        }
    }
    if let Some(accelerator) = accelerator
        && let Some(selector) = child_object(pod_spec, "nodeSelector")
    {
        set_if_absent_with(selector, ANNOTATION_ACCELERATOR_TYPE, || accelerator.into());
    }
}

/// The ports Ray listens on, named as KubeRay names them: the head Service exposes exactly
/// the head container's ports, so a missing `gcs-server` port means workers cannot join.
fn ports(container: &mut Map<String, Value>, ctx: &GroupContext, params: &StartParams) {
    let head = ctx.role == Role::Head;
    let wanted = [
        ("gcs-server", ctx.gcs_port, head),
        ("dashboard", params.dashboard_port, head),
        ("client", params.client_port, head),
        ("metrics", params.metrics_port, true),
        ("serve", SERVE_PORT, ctx.serves),
    ];
    let Some(ports) = child_array(container, "ports") else {
        return;
    };
    for (name, number, _) in wanted.into_iter().filter(|(_, _, wanted)| *wanted) {
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

/// Liveness and readiness probes, built only when the container lacks them (an object
/// normalized before has both, and costs nothing here).
fn probes(container: &mut Map<String, Value>, ctx: &GroupContext, params: &StartParams) {
    let timeout = if ctx.role == Role::Head { 5 } else { 2 };
    let serve_worker = ctx.owner == ClusterOwner::RayService && ctx.role == Role::Worker;
    let http = ctx
        .ray_version
        .is_some_and(|v| !v.less_than(MIN_HTTP_PROBES));
    let agent_port = params.agent_port;

    let checks = |serve: bool| {
        let mut checks = format!(
            "wget --tries 1 -T 2 -q -O- http://localhost:{agent_port}/api/local_raylet_healthz | grep success"
        );
        if ctx.role == Role::Head {
            checks.push_str(&format!(
                " && wget --tries 1 -T 10 -q -O- http://localhost:{}/api/gcs_healthz | grep success",
                params.dashboard_port
            ));
        }
        if serve {
            checks.push_str(&format!(
                " && wget --tries 1 -T 10 -q -O- http://localhost:{SERVE_PORT}/-/healthz | grep success"
            ));
        }
        checks
    };
    let exec = |serve: bool| json!({"exec": {"command": ["bash", "-c", checks(serve)]}});
    let handler = || {
        if http {
            json!({"httpGet": {"path": "/api/healthz", "port": agent_port}})
        } else {
            exec(false)
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
    set_if_absent_with(container, "livenessProbe", || probe(handler(), 30, 120));
    set_if_absent_with(container, "readinessProbe", || {
        if serve_worker {
            // A Serve worker is ready only when its proxy answers; one failure takes it out
            // of the serve Service so requests never reach a dead replica.
            probe(exec(true), 10, 1)
        } else {
            probe(handler(), 10, 10)
        }
    });
}

/// Where an environment variable's value comes from.
#[derive(Clone, Copy)]
enum EnvSource {
    Value(&'static str),
    FieldRef(&'static str),
    GcsPort,
    HeadAddress,
}

/// The environment Ray reads to know where it runs; values are built only for missing names.
fn env(container: &mut Map<String, Value>, ctx: &GroupContext) {
    const COMMON: [(&str, EnvSource); 7] = [
        (
            "RAY_CLUSTER_NAME",
            EnvSource::FieldRef("metadata.labels['ray.io/cluster']"),
        ),
        (
            "RAY_CLUSTER_NAMESPACE",
            EnvSource::FieldRef("metadata.namespace"),
        ),
        (
            "RAY_NODE_TYPE_NAME",
            EnvSource::FieldRef("metadata.labels['ray.io/group']"),
        ),
        (
            "RAY_CLOUD_INSTANCE_ID",
            EnvSource::FieldRef("metadata.name"),
        ),
        ("RAY_PORT", EnvSource::GcsPort),
        ("RAY_USAGE_STATS_KUBERAY_IN_USE", EnvSource::Value("1")),
        ("RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", EnvSource::Value("1")),
    ];
    const HEAD: [(&str, EnvSource); 1] = [("RAY_ADDRESS", EnvSource::HeadAddress)];
    // Serve needs failures detected fast, or requests hang on dead replicas.
    const SERVE: [(&str, EnvSource); 3] = [
        (
            "RAY_timeout_ms_task_wait_for_death_info",
            EnvSource::Value("0"),
        ),
        (
            "RAY_gcs_server_request_timeout_seconds",
            EnvSource::Value("5"),
        ),
        ("RAY_SERVE_KV_TIMEOUT_S", EnvSource::Value("5")),
    ];
    let head: &[_] = if ctx.role == Role::Head { &HEAD } else { &[] };
    let serve: &[_] = if ctx.owner == ClusterOwner::RayService {
        &SERVE
    } else {
        &[]
    };
    let Some(env) = child_array(container, "env") else {
        return;
    };
    // The names already set, read once (the names wanted are distinct, so what is pushed below
    // never needs checking again).
    let present: Vec<bool> = {
        let names: Vec<&str> = env
            .iter()
            .filter_map(|item| item.get("name").and_then(Value::as_str))
            .collect();
        COMMON
            .iter()
            .chain(head)
            .chain(serve)
            .map(|(name, _)| names.contains(name))
            .collect()
    };
    for (&(name, source), present) in COMMON.iter().chain(head).chain(serve).zip(present) {
        if present {
            continue;
        }
        let mut entry = Map::new();
        entry.insert("name".into(), name.into());
        match source {
            EnvSource::Value(value) => {
                entry.insert("value".into(), value.into());
            }
            EnvSource::GcsPort => {
                entry.insert("value".into(), ctx.gcs_port.to_string().into());
            }
            EnvSource::HeadAddress => {
                entry.insert("value".into(), format!("127.0.0.1:{}", ctx.gcs_port).into());
            }
            EnvSource::FieldRef(path) => {
                entry.insert("valueFrom".into(), json!({"fieldRef": {"fieldPath": path}}));
            }
        }
        env.push(Value::Object(entry));
    }
}

/// Ray's object store lives in shared memory; Docker's default 64 MB `/dev/shm` makes it spill
/// to disk. A memory-backed emptyDir sized to the container's memory fixes that.
fn dev_shm(
    pod_spec: &mut Map<String, Value>,
    params: &StartParams,
    size: Option<Value>,
    ctx: &GroupContext,
    ledger: &mut Ledger,
) {
    if params.plasma_directory {
        return;
    }
    let mounted = pod_spec
        .get("containers")
        .and_then(|c| at(c, &["0", "volumeMounts"]))
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
            derived::key(&ctx.key, "shm", "sizeLimit"),
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
