//! The pod templates of a Ray object as policies see them: where each lives (as a JSON pointer
//! for edits and as the user's path for messages), whose pods it makes, and how many of them
//! can run at once.

use std::cell::{OnceCell, RefCell};

use serde_json::{Map, Value};

use crate::accelerators;
use crate::quantity;
use crate::ray_version::{self, RayVersion};

/// Extended resources that GPU caps count: every GPU as defaulting and the controller see one
/// (any name ending in `gpu`, MIG slices), and TPU chips, budgeted like GPUs.
pub(crate) fn is_accelerator_resource(name: &str) -> bool {
    accelerators::is_gpu_resource(name) || name == "google.com/tpu"
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Head,
    Worker,
    /// A RayJob's submitter pod: not a Ray node, but its containers run in the namespace too.
    Submitter,
}

/// One pod template of a Ray object.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    /// JSON pointer of the template (`/spec/workerGroupSpecs/1/template`).
    pub pointer: String,
    /// The user's path of the template (`spec.workerGroupSpecs[1].template`).
    pub path: String,
    pub role: Role,
    /// The worker group's index within `workerGroupSpecs`.
    pub group_index: Option<usize>,
    /// How many pods of this template can run at the largest.
    pub pods: u64,
    /// What `pods` was computed from, for messages.
    pub pods_basis: String,
}

/// Where the Ray cluster spec of an object lives: (pointer, path).
pub(crate) fn cluster_spec_location(object: &Value) -> Option<(&'static str, &'static str)> {
    match object.get("kind").and_then(Value::as_str)? {
        "RayCluster" => Some(("/spec", "spec")),
        "RayJob" => Some(("/spec/rayClusterSpec", "spec.rayClusterSpec")),
        "RayService" => Some(("/spec/rayClusterConfig", "spec.rayClusterConfig")),
        // The RayJobs a RayCronJob creates are its template: refused at the cron job's apply,
        // not one scheduled run after another.
        "RayCronJob" => Some((
            "/spec/jobTemplate/rayClusterSpec",
            "spec.jobTemplate.rayClusterSpec",
        )),
        _ => None,
    }
}

pub(crate) fn cluster_spec(object: &Value) -> Option<(&Value, &'static str, &'static str)> {
    let (pointer, path) = cluster_spec_location(object)?;
    let spec = object.pointer(pointer).filter(|s| s.is_object())?;
    Some((spec, pointer, path))
}

/// Every pod template of the object: head, worker groups, and a RayJob's submitter.
pub(crate) fn templates(object: &Value) -> Vec<Template> {
    let mut out = Vec::new();
    if let Some((spec, pointer, path)) = cluster_spec(object) {
        if spec.pointer("/headGroupSpec/template").is_some() {
            out.push(Template {
                pointer: format!("{pointer}/headGroupSpec/template"),
                path: format!("{path}.headGroupSpec.template"),
                role: Role::Head,
                group_index: None,
                pods: 1,
                pods_basis: "the head".to_owned(),
            });
        }
        let autoscaling =
            spec.get("enableInTreeAutoscaling").and_then(Value::as_bool) == Some(true);
        let groups = spec.get("workerGroupSpecs").and_then(Value::as_array);
        for (index, group) in groups.into_iter().flatten().enumerate() {
            if group.get("template").is_none() {
                continue;
            }
            let (pods, pods_basis) = group_pods(group, autoscaling);
            out.push(Template {
                pointer: format!("{pointer}/workerGroupSpecs/{index}/template"),
                path: format!("{path}.workerGroupSpecs[{index}].template"),
                role: Role::Worker,
                group_index: Some(index),
                pods,
                pods_basis,
            });
        }
    }
    let submitter = match object.get("kind").and_then(Value::as_str) {
        Some("RayJob") => Some(("/spec/submitterPodTemplate", "spec.submitterPodTemplate")),
        Some("RayCronJob") => Some((
            "/spec/jobTemplate/submitterPodTemplate",
            "spec.jobTemplate.submitterPodTemplate",
        )),
        _ => None,
    };
    if let Some((pointer, path)) = submitter
        && object.pointer(pointer).is_some()
    {
        out.push(Template {
            pointer: pointer.to_owned(),
            path: path.to_owned(),
            role: Role::Submitter,
            group_index: None,
            pods: 1,
            pods_basis: "the submitter".to_owned(),
        });
    }
    out
}

/// Pods a worker group can run at once. With in-tree autoscaling the autoscaler may grow the
/// group to `maxReplicas`; without it, raygate runs exactly `replicas` (kept within
/// [minReplicas, maxReplicas]), and any change to that goes through admission again. Counting
/// `maxReplicas` there would hold every group that leaves it at the CRD default (2^31-1) to a
/// limit it can never reach.
fn group_pods(group: &Value, autoscaling: bool) -> (u64, String) {
    let int = |key: &str| {
        group
            .get(key)
            .and_then(Value::as_i64)
            .map(|v| v.max(0) as u64)
    };
    let max = int("maxReplicas").unwrap_or(i32::MAX as u64);
    let hosts = int("numOfHosts").unwrap_or(1).max(1);
    let (replicas, basis) = if autoscaling {
        (max, format!("maxReplicas {max}"))
    } else {
        let min = int("minReplicas").unwrap_or(0);
        let replicas = int("replicas").unwrap_or(min).max(min).min(max);
        (replicas, format!("replicas {replicas}"))
    };
    let basis = if hosts > 1 {
        format!("{basis} × numOfHosts {hosts}")
    } else {
        basis
    };
    (replicas.saturating_mul(hosts), basis)
}

/// One container of a template: (user path, container).
pub(crate) fn containers<'a>(template: &'a Value, path: &str) -> Vec<(String, &'a Value)> {
    container_refs(template)
        .into_iter()
        .map(|(list, index, container)| (format!("{path}.spec.{list}[{index}]"), container))
        .collect()
}

const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// Every container of a template as (list, index, container), without building paths.
fn container_refs(template: &Value) -> Vec<(&'static str, usize, &Value)> {
    let spec = template.get("spec");
    let mut out = Vec::new();
    for list in CONTAINER_LISTS {
        let items = spec.and_then(|s| s.get(list)).and_then(Value::as_array);
        for (index, container) in items.into_iter().flatten().enumerate() {
            out.push((list, index, container));
        }
    }
    out
}

/// One container, with what several policies ask about it computed once.
#[derive(Debug)]
pub(crate) struct ContainerView<'a> {
    pub list: &'static str,
    pub index: usize,
    pub value: &'a Value,
    pub image: Option<&'a str>,
    /// The image's fully qualified reference (`docker.io/rayproject/ray:2.46.0`).
    pub qualified_image: Option<String>,
}

/// One pod template, with its pods' resources and containers read once.
#[derive(Debug)]
pub(crate) struct TemplateView<'a> {
    pub meta: Template,
    pub value: &'a Value,
    /// The template's `spec`, when it is an object.
    pub spec: Option<&'a Map<String, Value>>,
    pub resources: PodResources,
    pub containers: Vec<ContainerView<'a>>,
    /// `the head`, `worker group "gpu"`: built for the first finding, then shared by every
    /// policy's messages.
    description: OnceCell<String>,
    /// `requiredLimits` findings by the resource names required: the same for every policy
    /// that requires the same names, so built once (`None`: nothing missing).
    pub required_limits: RefCell<Vec<(Vec<String>, Option<Finding>)>>,
}

/// A finding's path and message.
pub(crate) type Finding = (String, String);

impl TemplateView<'_> {
    pub(crate) fn container_path(&self, container: &ContainerView<'_>) -> String {
        format!(
            "{}.spec.{}[{}]",
            self.meta.path, container.list, container.index
        )
    }

    /// Whether the template makes Ray pods (a RayJob's submitter pod is not one).
    pub(crate) fn is_ray_pod(&self) -> bool {
        self.meta.role != Role::Submitter
    }

    /// Ray's container: KubeRay runs Ray in the first container of each Ray pod.
    pub(crate) fn ray_container(&self) -> Option<&Value> {
        self.spec?.get("containers")?.get(0)
    }
}

/// A Ray object read once for every policy that evaluates it.
#[derive(Debug)]
pub(crate) struct ObjectView<'a> {
    pub object: &'a Value,
    pub cluster: Option<(&'a Value, &'static str, &'static str)>,
    pub templates: Vec<TemplateView<'a>>,
    /// What the Ray pods can use at the largest, summed over the templates.
    pub cluster_resources: PodResources,
    /// The cluster's `rayVersion`, parsed once.
    ray_version: OnceCell<Result<RayVersion, String>>,
}

impl<'a> ObjectView<'a> {
    pub(crate) fn new(object: &'a Value) -> Self {
        let templates: Vec<TemplateView<'a>> = templates(object)
            .into_iter()
            .filter_map(|meta| {
                let value = at(object, &meta.pointer)?;
                let containers = container_refs(value)
                    .into_iter()
                    .map(|(list, index, container)| {
                        let image = container.get("image").and_then(Value::as_str);
                        ContainerView {
                            list,
                            index,
                            value: container,
                            image,
                            qualified_image: image.map(qualified_image),
                        }
                    })
                    .collect();
                Some(TemplateView {
                    resources: pod_resources(value),
                    meta,
                    value,
                    spec: value.get("spec").and_then(Value::as_object),
                    containers,
                    description: OnceCell::new(),
                    required_limits: RefCell::new(Vec::new()),
                })
            })
            .collect();
        let cluster_resources = templates
            .iter()
            .filter(|t| t.is_ray_pod())
            .fold(PodResources::default(), |sum, t| {
                sum.plus(t.resources.times(t.meta.pods))
            });
        Self {
            object,
            cluster: cluster_spec(object),
            templates,
            cluster_resources,
            ray_version: OnceCell::new(),
        }
    }

    /// The templates of Ray pods (not a RayJob's submitter).
    pub(crate) fn ray_pods(&self) -> impl Iterator<Item = &TemplateView<'a>> + Clone {
        self.templates.iter().filter(|t| t.is_ray_pod())
    }

    /// `the head pod` or `worker group "gpu"`, for messages.
    pub(crate) fn describe<'v>(&self, template: &'v TemplateView<'_>) -> &'v str {
        template
            .description
            .get_or_init(|| describe(self.object, &template.meta))
    }

    /// The parsed `rayVersion` of the cluster spec `spec`, for the text `text` found there.
    pub(crate) fn ray_version(&self, text: &str) -> &Result<RayVersion, String> {
        self.ray_version.get_or_init(|| ray_version::parse(text))
    }
}

/// `the head` or `worker group "gpu"`, for messages.
pub(crate) fn describe(object: &Value, template: &Template) -> String {
    match (template.role, template.group_index) {
        (Role::Head, _) => "the head".to_owned(),
        (Role::Submitter, _) => "the submitter pod".to_owned(),
        (Role::Worker, Some(index)) => {
            let name = cluster_spec(object)
                .and_then(|(spec, _, _)| spec.get("workerGroupSpecs")?.get(index))
                .map(group_name)
                .unwrap_or_default();
            format!("worker group {name:?}")
        }
        (Role::Worker, None) => "a worker group".to_owned(),
    }
}

pub(crate) fn group_name(group: &Value) -> String {
    group
        .get("groupName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `value.pointer(pointer)` for the pointers [`templates`] builds (plain tokens, no `~`
/// escapes), without allocating an unescaped copy of every token as `serde_json` does.
pub(crate) fn at<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.contains('~') || !pointer.starts_with('/') {
        return value.pointer(pointer);
    }
    pointer
        .split('/')
        .skip(1)
        .try_fold(value, |value, token| match value {
            Value::Object(map) => map.get(token),
            Value::Array(list) => array_index(token).and_then(|i| list.get(i)),
            _ => None,
        })
}

/// [`at`], mutably.
pub(crate) fn at_mut<'v>(value: &'v mut Value, pointer: &str) -> Option<&'v mut Value> {
    if pointer.contains('~') || !pointer.starts_with('/') {
        return value.pointer_mut(pointer);
    }
    pointer
        .split('/')
        .skip(1)
        .try_fold(value, |value, token| match value {
            Value::Object(map) => map.get_mut(token),
            Value::Array(list) => array_index(token).and_then(|i| list.get_mut(i)),
            _ => None,
        })
}

/// An array index as a JSON pointer writes it: decimal, no sign, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

/// The fully qualified name: `rayproject/ray:2.46.0` is `docker.io/rayproject/ray:2.46.0`.
pub(crate) fn qualified_image(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => image.to_owned(),
        Some(_) => format!("docker.io/{image}"),
        None => format!("docker.io/library/{image}"),
    }
}

/// What one pod of a template asks for, as the scheduler counts it: the sum of its containers
/// (native sidecars included), or the largest init container if that is more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PodResources {
    pub accelerators: u64,
    pub cpu_nanos: i128,
    pub memory_nanos: i128,
}

impl PodResources {
    fn add(self, other: Self) -> Self {
        Self {
            accelerators: self.accelerators.saturating_add(other.accelerators),
            cpu_nanos: self.cpu_nanos.saturating_add(other.cpu_nanos),
            memory_nanos: self.memory_nanos.saturating_add(other.memory_nanos),
        }
    }

    fn max(self, other: Self) -> Self {
        Self {
            accelerators: self.accelerators.max(other.accelerators),
            cpu_nanos: self.cpu_nanos.max(other.cpu_nanos),
            memory_nanos: self.memory_nanos.max(other.memory_nanos),
        }
    }

    pub(crate) fn times(self, pods: u64) -> Self {
        let n = i128::from(pods);
        Self {
            accelerators: self.accelerators.saturating_mul(pods),
            cpu_nanos: self.cpu_nanos.saturating_mul(n),
            memory_nanos: self.memory_nanos.saturating_mul(n),
        }
    }

    pub(crate) fn plus(self, other: Self) -> Self {
        self.add(other)
    }
}

pub(crate) fn pod_resources(template: &Value) -> PodResources {
    let spec = template.get("spec");
    let list = |name: &str| {
        spec.and_then(|s| s.get(name))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let mut running = PodResources::default();
    let mut largest_init = PodResources::default();
    for init in list("initContainers") {
        let sidecar = init.get("restartPolicy").and_then(Value::as_str) == Some("Always");
        if sidecar {
            running = running.add(container_resources(init));
        } else {
            largest_init = largest_init.max(container_resources(init));
        }
    }
    for container in list("containers") {
        running = running.add(container_resources(container));
    }
    running.max(largest_init)
}

/// A container's limit for a resource, else its request (the scheduler's view when only one
/// is set: a limit alone also becomes the request).
fn resource<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    let resources = container.get("resources")?;
    resources
        .get("limits")
        .and_then(|l| l.get(name))
        .or_else(|| resources.get("requests").and_then(|r| r.get(name)))
}

fn quantity_nanos(value: &Value) -> i128 {
    let parsed = match value {
        Value::String(text) => quantity::parse(text),
        Value::Number(number) => quantity::parse(&number.to_string()),
        _ => None,
    };
    parsed.map(|q| q.nanos().max(0)).unwrap_or(0)
}

pub(crate) fn container_accelerators(container: &Value) -> u64 {
    let Some(resources) = container.get("resources") else {
        return 0;
    };
    let mut names: Vec<&str> = Vec::new();
    for section in ["limits", "requests"] {
        if let Some(map) = resources.get(section).and_then(Value::as_object) {
            names.extend(
                map.keys()
                    .map(String::as_str)
                    .filter(|n| is_accelerator_resource(n)),
            );
        }
    }
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| resource(container, name))
        .filter_map(quantity::ceil_integer)
        .map(|n| n.max(0) as u64)
        .fold(0u64, u64::saturating_add)
}

fn container_resources(container: &Value) -> PodResources {
    PodResources {
        accelerators: container_accelerators(container),
        cpu_nanos: resource(container, "cpu").map(quantity_nanos).unwrap_or(0),
        memory_nanos: resource(container, "memory")
            .map(quantity_nanos)
            .unwrap_or(0),
    }
}

/// CPU as people write it: `64`, `2.5`, `500m`.
pub(crate) fn format_cpu(nanos: i128) -> String {
    if nanos % 1_000_000_000 == 0 {
        format!("{}", nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 {
        format!("{}m", nanos / 1_000_000)
    } else {
        format!("{:.3}", nanos as f64 / 1e9)
    }
}

/// Memory in the largest binary unit that keeps it readable: `192Gi`, `1.5Ti`.
pub(crate) fn format_memory(nanos: i128) -> String {
    let bytes = nanos as f64 / 1e9;
    for (unit, size) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        let size = size as f64;
        if bytes >= size {
            let value = bytes / size;
            return if value.fract() == 0.0 {
                format!("{value}{unit}")
            } else {
                format!("{value:.2}{unit}")
            };
        }
    }
    format!("{bytes}")
}
