//! The checks of one policy on one Ray object. Each finding names the field as the user wrote
//! it and says which limit it crossed with which value.

use serde_json::Value;

use super::Violation;
use super::compile::CompiledPolicy;
use super::pods::{
    Finding, ObjectView, PodResources, Role, Template, TemplateView, container_accelerators,
    containers, format_cpu, format_memory, group_name,
};
use super::types::Action;
use crate::ray_version;

/// nodeSelector keys that name an accelerator type, when a rule lists none.
const DEFAULT_ACCELERATOR_KEYS: [&str; 4] = [
    "cloud.google.com/gke-accelerator",
    "cloud.google.com/gke-tpu-accelerator",
    "nvidia.com/gpu.product",
    "karpenter.k8s.aws/instance-gpu-name",
];

/// The resources `requiredLimits` asks for when it lists none.
const DEFAULT_REQUIRED_LIMITS: [&str; 2] = ["cpu", "memory"];

struct Findings<'a> {
    policy: &'a CompiledPolicy,
    out: &'a mut Vec<Violation>,
}

impl Findings<'_> {
    fn push(&mut self, rule: &'static str, action: Option<Action>, path: String, message: String) {
        self.out.push(Violation {
            policy: self.policy.name.clone(),
            rule,
            action: self.policy.action(action),
            path,
            message,
        });
    }
}

/// Appends every violation of `policy` by `object` to `out`.
pub(crate) fn evaluate(policy: &CompiledPolicy, view: &ObjectView<'_>, out: &mut Vec<Violation>) {
    let mut findings = Findings { policy, out };
    let object = view.object;
    let cluster = view.cluster;
    let rules = &policy.spec.rules;
    // Everything read from the object is in `view`, read once for every policy; this function
    // runs once per matching policy, so it allocates only for findings.
    let ray_pods = view.ray_pods();

    if let Some(rule) = &rules.max_gpus_per_pod {
        for template in ray_pods.clone() {
            let resources = &template.resources;
            if resources.accelerators > rule.limit as u64 {
                findings.push(
                    "maxGpusPerPod",
                    rule.action,
                    accelerator_container_path(&template.meta, template.value),
                    format!(
                        "a pod of {} asks for {} GPUs, above the limit of {} per pod",
                        view.describe(template),
                        resources.accelerators,
                        rule.limit
                    ),
                );
            }
        }
    }
    if let Some(rule) = &rules.max_gpus_per_group {
        for template in ray_pods.clone() {
            let resources = &template.resources;
            let total = resources.accelerators.saturating_mul(template.meta.pods);
            if total > rule.limit as u64 {
                findings.push(
                    "maxGpusPerGroup",
                    rule.action,
                    group_path(&template.meta),
                    format!(
                        "{} can use up to {total} GPUs ({} per pod × {}), above the limit of {} per group",
                        view.describe(template),
                        resources.accelerators,
                        template.meta.pods_basis,
                        rule.limit
                    ),
                );
            }
        }
    }
    if let Some((_, _, cluster_path)) = cluster {
        let total = view.cluster_resources;
        if let Some(rule) = &rules.max_gpus_per_cluster
            && total.accelerators > rule.limit as u64
        {
            findings.push(
                "maxGpusPerCluster",
                rule.action,
                cluster_path.to_owned(),
                format!(
                    "the cluster can use up to {} GPUs ({}), above the limit of {}",
                    total.accelerators,
                    breakdown(view, |r| (r.accelerators > 0)
                        .then(|| r.accelerators.to_string())),
                    rule.limit
                ),
            );
        }
        if let (Some(rule), Some(limit)) = (&rules.max_cpu_per_cluster, policy.max_cpu)
            && total.cpu_nanos > limit.nanos()
        {
            findings.push(
                "maxCpuPerCluster",
                rule.action,
                cluster_path.to_owned(),
                format!(
                    "the cluster can use up to {} CPUs ({}), above the limit of {}",
                    format_cpu(total.cpu_nanos),
                    breakdown(view, |r| (r.cpu_nanos > 0).then(|| format_cpu(r.cpu_nanos))),
                    rule.limit.0
                ),
            );
        }
        if let (Some(rule), Some(limit)) = (&rules.max_memory_per_cluster, policy.max_memory)
            && total.memory_nanos > limit.nanos()
        {
            findings.push(
                "maxMemoryPerCluster",
                rule.action,
                cluster_path.to_owned(),
                format!(
                    "the cluster can use up to {} of memory ({}), above the limit of {}",
                    format_memory(total.memory_nanos),
                    breakdown(view, |r| (r.memory_nanos > 0)
                        .then(|| format_memory(r.memory_nanos))),
                    rule.limit.0
                ),
            );
        }
    }
    if let Some((spec, _, cluster_path)) = cluster {
        let groups = spec
            .get("workerGroupSpecs")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(rule) = &rules.max_replicas_per_group {
            for (index, group) in groups.iter().enumerate() {
                // Built only for a finding: this runs for every policy on every admission.
                let name = || group_name(group);
                let path = || format!("{cluster_path}.workerGroupSpecs[{index}]");
                match group.get("maxReplicas").and_then(Value::as_i64) {
                    Some(max) if max > rule.limit => findings.push(
                        "maxReplicasPerGroup",
                        rule.action,
                        format!("{}.maxReplicas", path()),
                        format!(
                            "worker group {:?} has maxReplicas {max}, above the limit of {}",
                            name(),
                            rule.limit
                        ),
                    ),
                    None => findings.push(
                        "maxReplicasPerGroup",
                        rule.action,
                        format!("{}.maxReplicas", path()),
                        format!(
                            "worker group {:?} sets no maxReplicas (unbounded); set it to at most {}",
                            name(),
                            rule.limit
                        ),
                    ),
                    Some(_) => {}
                }
                if let Some(replicas) = group.get("replicas").and_then(Value::as_i64)
                    && replicas > rule.limit
                {
                    findings.push(
                        "maxReplicasPerGroup",
                        rule.action,
                        format!("{}.replicas", path()),
                        format!(
                            "worker group {:?} has replicas {replicas}, above the limit of {}",
                            name(),
                            rule.limit
                        ),
                    );
                }
            }
        }
        if let Some(rule) = &rules.max_worker_groups
            && groups.len() as i64 > rule.limit
        {
            findings.push(
                "maxWorkerGroups",
                rule.action,
                format!("{cluster_path}.workerGroupSpecs"),
                format!(
                    "the cluster has {} worker groups, above the limit of {}",
                    groups.len(),
                    rule.limit
                ),
            );
        }
        if let (Some(rule), Some(range)) = (&rules.allowed_ray_versions, &policy.ray_versions) {
            check_ray_version(&mut findings, view, rule, range, spec, cluster_path);
        }
    }
    if let Some(rule) = &rules.allowed_accelerator_types {
        let keys = Names::or_default(&rule.node_selector_keys, &DEFAULT_ACCELERATOR_KEYS);
        for template in ray_pods.clone() {
            let Some(selector) = template
                .spec
                .and_then(|spec| spec.get("nodeSelector"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            for key in keys.clone() {
                let Some(accelerator) = selector.get(key).and_then(Value::as_str) else {
                    continue;
                };
                if !rule.values.iter().any(|allowed| allowed == accelerator) {
                    findings.push(
                        "allowedAcceleratorTypes",
                        rule.action,
                        format!("{}.spec.nodeSelector[{key}]", template.meta.path),
                        format!(
                            "accelerator type {accelerator:?} of {} is not allowed; allowed: {}",
                            view.describe(template),
                            rule.values.join(", ")
                        ),
                    );
                }
            }
        }
    }
    if let Some(rule) = &rules.allowed_images {
        for template in &view.templates {
            for container in &template.containers {
                let (Some(image), Some(qualified)) = (container.image, &container.qualified_image)
                else {
                    continue;
                };
                if !qualified_image_allowed(image, qualified, &rule.registries, &rule.patterns) {
                    let allowed: Vec<&str> = rule
                        .registries
                        .iter()
                        .chain(&rule.patterns)
                        .map(String::as_str)
                        .collect();
                    findings.push(
                        "allowedImages",
                        rule.action,
                        format!("{}.image", template.container_path(container)),
                        format!(
                            "image {image:?} (registry {}) is not from an approved registry or \
                             pattern: {}",
                            registry_of(image),
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
    }
    if let Some(rule) = &rules.required_limits {
        let required = Names::or_default(&rule.resources, &DEFAULT_REQUIRED_LIMITS);
        for template in ray_pods.clone() {
            if let Some((path, message)) = required_limits_finding(view, template, required.clone())
            {
                findings.push("requiredLimits", rule.action, path, message);
            }
        }
    }
    if let Some(rule) = &rules.forbidden_pod_settings {
        for view_template in &view.templates {
            let template = &view_template.meta;
            let spec = view_template.spec;
            let spec_path = || format!("{}.spec", template.path);
            let flag = |key: &str| spec.and_then(|s| s.get(key)) == Some(&Value::Bool(true));
            for (forbidden, key) in [
                (rule.host_network, "hostNetwork"),
                (rule.host_pid, "hostPID"),
                (rule.host_ipc, "hostIPC"),
            ] {
                if forbidden && flag(key) {
                    findings.push(
                        "forbiddenPodSettings",
                        rule.action,
                        format!("{}.{key}", spec_path()),
                        format!(
                            "{key}: true is forbidden ({})",
                            view.describe(view_template)
                        ),
                    );
                }
            }
            if rule.host_path_volumes {
                let volumes = spec
                    .and_then(|s| s.get("volumes"))
                    .and_then(Value::as_array);
                for (index, volume) in volumes.into_iter().flatten().enumerate() {
                    if volume.get("hostPath").is_some_and(|h| !h.is_null()) {
                        let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
                        findings.push(
                            "forbiddenPodSettings",
                            rule.action,
                            format!("{}.volumes[{index}].hostPath", spec_path()),
                            format!("hostPath volume {name:?} is forbidden"),
                        );
                    }
                }
            }
            for container_view in &view_template.containers {
                let container = container_view.value;
                let path = || view_template.container_path(container_view);
                let security = container.get("securityContext");
                if rule.privileged
                    && security.and_then(|s| s.get("privileged")) == Some(&Value::Bool(true))
                {
                    findings.push(
                        "forbiddenPodSettings",
                        rule.action,
                        format!("{}.securityContext.privileged", path()),
                        "privileged containers are forbidden".to_owned(),
                    );
                }
                if rule.added_capabilities {
                    let added = security
                        .and_then(|s| s.get("capabilities"))
                        .and_then(|c| c.get("add"))
                        .and_then(Value::as_array);
                    for (index, capability) in added.into_iter().flatten().enumerate() {
                        let capability = capability.as_str().unwrap_or_default();
                        let bare = capability.trim_start_matches("CAP_");
                        let allowed = rule
                            .allowed_capabilities
                            .iter()
                            .any(|a| a.trim_start_matches("CAP_") == bare);
                        if !allowed {
                            findings.push(
                                "forbiddenPodSettings",
                                rule.action,
                                format!("{}.securityContext.capabilities.add[{index}]", path()),
                                format!("adding capability {capability} is forbidden"),
                            );
                        }
                    }
                }
            }
        }
    }
    if let Some(rule) = &rules.required_labels {
        let labels = object
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        let missing: Vec<&str> = rule
            .keys
            .iter()
            .map(String::as_str)
            .filter(|key| {
                labels
                    .and_then(|l| l.get(*key))
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            })
            .collect();
        if !missing.is_empty() {
            findings.push(
                "requiredLabels",
                rule.action,
                "metadata.labels".to_owned(),
                format!("missing required label(s) {}", missing.join(", ")),
            );
        }
    }
}

fn check_ray_version(
    findings: &mut Findings<'_>,
    view: &ObjectView<'_>,
    rule: &super::types::RayVersionsRule,
    range: &super::version_range::VersionRange,
    spec: &Value,
    cluster_path: &str,
) {
    if let Some(text) = spec.get("rayVersion").and_then(Value::as_str) {
        let path = || format!("{cluster_path}.rayVersion");
        match view.ray_version(text) {
            Ok(version) if range.contains(version) => {}
            Ok(_) => findings.push(
                "allowedRayVersions",
                rule.action,
                path(),
                format!("Ray {text} is outside the allowed range {}", rule.range),
            ),
            Err(error) => findings.push(
                "allowedRayVersions",
                rule.action,
                path(),
                format!("{error}; allowed range {}", rule.range),
            ),
        }
        return;
    }
    let image_path = format!("{cluster_path}.headGroupSpec.template.spec.containers[0].image");
    let image = ["headGroupSpec", "template", "spec", "containers"]
        .into_iter()
        .try_fold(spec, |value, key| value.get(key))
        .and_then(|containers| containers.get(0))
        .and_then(|container| container.get("image"))
        .and_then(Value::as_str);
    match image.map(|i| (i, ray_version::from_image(i))) {
        Some((_, Some(version))) if range.contains(&version) => {}
        Some((image, Some(version))) => findings.push(
            "allowedRayVersions",
            rule.action,
            image_path,
            format!(
                "head image {image:?} runs Ray {version}, outside the allowed range {}",
                rule.range
            ),
        ),
        _ => findings.push(
            "allowedRayVersions",
            rule.action,
            format!("{cluster_path}.rayVersion"),
            format!(
                "rayVersion is not set and the head image names no Ray version; set rayVersion \
                 within {}",
                rule.range
            ),
        ),
    }
}

/// The names a rule lists, or its default ones when it lists none; iterated without collecting
/// them for every policy.
#[derive(Clone)]
enum Names<'a> {
    Default(std::slice::Iter<'a, &'static str>),
    Listed(std::slice::Iter<'a, String>),
}

impl<'a> Names<'a> {
    fn or_default(listed: &'a [String], default: &'a [&'static str]) -> Self {
        if listed.is_empty() {
            Self::Default(default.iter())
        } else {
            Self::Listed(listed.iter())
        }
    }
}

impl<'a> Iterator for Names<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match self {
            Self::Default(keys) => keys.next().copied(),
            Self::Listed(keys) => keys.next().map(String::as_str),
        }
    }
}

/// The `requiredLimits` finding of a template (path, message), when its Ray container lacks a
/// limit among `required`. Every policy requiring the same names gets the same finding, so it
/// is built once per template and names, then copied.
fn required_limits_finding(
    view: &ObjectView<'_>,
    template: &TemplateView<'_>,
    required: Names<'_>,
) -> Option<Finding> {
    let mut cache = template.required_limits.borrow_mut();
    if let Some((_, finding)) = cache
        .iter()
        .find(|(names, _)| names.iter().map(String::as_str).eq(required.clone()))
    {
        return finding.clone();
    }
    // KubeRay's Ray container is the first one of each Ray pod.
    let finding = template.ray_container().and_then(|container| {
        let limits = container
            .get("resources")
            .and_then(|resources| resources.get("limits"));
        let is_missing = |r: &&str| limits.and_then(|l| l.get(*r)).is_none_or(Value::is_null);
        let missing: Vec<&str> = required.clone().filter(is_missing).collect();
        if missing.is_empty() {
            return None;
        }
        let all: Vec<&str> = required.clone().collect();
        let name = container.get("name").and_then(Value::as_str).unwrap_or("");
        Some((
            format!("{}.spec.containers[0].resources.limits", template.meta.path),
            format!(
                "Ray container {name:?} of {} sets no {} limit; limits required: {}",
                view.describe(template),
                missing.join(" or "),
                all.join(", ")
            ),
        ))
    });
    cache.push((required.map(str::to_owned).collect(), finding.clone()));
    finding
}

/// The group of a template (`spec.workerGroupSpecs[1]`, `spec.headGroupSpec`).
fn group_path(template: &Template) -> String {
    template
        .path
        .strip_suffix(".template")
        .unwrap_or(&template.path)
        .to_owned()
}

/// The resources of the first container that asks for accelerators, else the pod's containers.
fn accelerator_container_path(template: &Template, value: &Value) -> String {
    containers(value, &template.path)
        .into_iter()
        .find(|(_, c)| container_accelerators(c) > 0)
        .map(|(path, _)| format!("{path}.resources"))
        .unwrap_or_else(|| format!("{}.spec.containers", template.path))
}

/// `head 2, worker group "gpu" 8 × replicas 4` for the templates that contribute.
fn breakdown(view: &ObjectView<'_>, amount: impl Fn(&PodResources) -> Option<String>) -> String {
    let parts: Vec<String> = view
        .ray_pods()
        .filter(|t| t.meta.pods > 0)
        .filter_map(|template: &TemplateView<'_>| {
            let per_pod = amount(&template.resources)?;
            Some(match template.meta.role {
                Role::Head => format!("head {per_pod}"),
                _ => format!(
                    "{} {per_pod} × {}",
                    view.describe(template),
                    template.meta.pods_basis
                ),
            })
        })
        .collect();
    parts.join(", ")
}

/// The registry an image is pulled from, as the container runtime resolves it.
pub(crate) fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

#[cfg(test)]
fn image_allowed(image: &str, registries: &[String], patterns: &[String]) -> bool {
    qualified_image_allowed(
        image,
        &super::pods::qualified_image(image),
        registries,
        patterns,
    )
}

fn qualified_image_allowed(
    image: &str,
    qualified: &str,
    registries: &[String],
    patterns: &[String],
) -> bool {
    let by_registry = registries.iter().any(|registry| {
        let registry = registry.trim_end_matches('/');
        qualified
            .strip_prefix(registry)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', ':', '@']))
    });
    by_registry
        || patterns
            .iter()
            .any(|pattern| glob(pattern, image) || glob(pattern, qualified))
}

/// `*` matches any run of characters (slashes too), `?` one character. Image references are
/// ASCII, so bytes are characters.
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_resolve_to_registries_like_the_runtime() {
        assert_eq!(registry_of("rayproject/ray:2.46.0"), "docker.io");
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(
            registry_of("registry.example.com/ml/ray:2.46"),
            "registry.example.com"
        );
        assert_eq!(registry_of("localhost:5000/ray"), "localhost:5000");
        let registries = ["registry.example.com/ml".to_owned()];
        assert!(image_allowed(
            "registry.example.com/ml/ray:2.46",
            &registries,
            &[]
        ));
        assert!(!image_allowed(
            "registry.example.com/mlx/ray:2.46",
            &registries,
            &[]
        ));
        assert!(!image_allowed("rayproject/ray:2.46.0", &registries, &[]));
        let hub = ["docker.io/rayproject".to_owned()];
        assert!(image_allowed("rayproject/ray:2.46.0", &hub, &[]));
    }

    #[test]
    fn globs_match_whole_references() {
        assert!(glob(
            "docker.io/rayproject/ray:2.*",
            "docker.io/rayproject/ray:2.46.0"
        ));
        assert!(!glob(
            "docker.io/rayproject/ray:2.*",
            "docker.io/rayproject/ray:3.0"
        ));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*/ray:*-gpu", "rayproject/ray:2.46.0-py310-gpu"));
    }
}
