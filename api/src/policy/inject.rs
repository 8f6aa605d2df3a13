//! A policy's `inject`: values added to matching objects before defaults and validation run.
//! Only what is missing is added (a value the user set always wins), so injecting twice, or
//! re-admitting an injected object, changes nothing.
//!
//! Several matching policies inject as if each were applied in turn, in name order: for a key
//! (a label, an annotation, a nodeSelector key, priorityClassName) the user's value wins, then
//! the first policy's; list entries (imagePullSecrets by name, tolerations) are appended in
//! policy order, each once. [`Injection`] merges the policies with exactly that outcome first,
//! then walks the pod templates once, however many policies matched.

use serde_json::{Map, Value};

use super::compile::CompiledPolicy;
use super::pods::{self, Role};
use crate::defaults::json_edit::{child_array, child_object, set_if_absent_with};

/// The pod templates injections go to: (pointer, role, uses GPUs). Read once, on the object
/// as received, before any policy's edit changes it.
pub(crate) fn targets(object: &Value) -> Vec<(String, Role, bool)> {
    pods::templates(object)
        .into_iter()
        .map(|t| {
            let uses_gpus = pods::at(object, &t.pointer)
                .is_some_and(|v| pods::pod_resources(v).accelerators > 0);
            (t.pointer, t.role, uses_gpus)
        })
        .collect()
}

/// What the matching policies inject, merged: each key with its first policy's value, each
/// list entry once, in policy order.
#[derive(Debug, Default)]
pub(crate) struct Injection<'p> {
    /// Whether any matching policy has an `inject` at all: even an empty one makes sure the
    /// object's `metadata` and each template's `metadata` (Ray pods) and `spec` exist.
    any: bool,
    labels: Vec<(&'p str, &'p str)>,
    annotations: Vec<(&'p str, &'p str)>,
    priority_class_name: Option<&'p str>,
    image_pull_secrets: Vec<&'p str>,
    /// Whether any policy lists GPU tolerations (the list is created even if none converts).
    gpu_tolerations_listed: bool,
    gpu_tolerations: Vec<Value>,
    gpu_node_selector: Vec<(&'p str, &'p str)>,
}

impl<'p> Injection<'p> {
    /// Merges the injections of `policies`, in the order given (name order in a `PolicySet`).
    pub(crate) fn merge(policies: impl IntoIterator<Item = &'p CompiledPolicy>) -> Self {
        let mut merged = Self::default();
        for inject in policies.into_iter().filter_map(|p| p.spec.inject.as_ref()) {
            merged.any = true;
            add_pairs(&mut merged.labels, &inject.labels);
            add_pairs(&mut merged.annotations, &inject.annotations);
            if merged.priority_class_name.is_none() {
                merged.priority_class_name = inject.priority_class_name.as_deref();
            }
            for secret in &inject.image_pull_secrets {
                if !merged.image_pull_secrets.contains(&secret.name.as_str()) {
                    merged.image_pull_secrets.push(&secret.name);
                }
            }
            if let Some(gpu) = &inject.gpu_groups {
                merged.gpu_tolerations_listed |= !gpu.tolerations.is_empty();
                for toleration in &gpu.tolerations {
                    let Ok(toleration) = serde_json::to_value(toleration) else {
                        continue;
                    };
                    if !merged.gpu_tolerations.contains(&toleration) {
                        merged.gpu_tolerations.push(toleration);
                    }
                }
                add_pairs(&mut merged.gpu_node_selector, &gpu.node_selector);
            }
        }
        merged
    }

    /// Whether no matching policy has an `inject`: applying it changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        !self.any
    }

    /// Adds what is missing to `object`, whose pod templates are `targets` (read before the
    /// first edit).
    pub(crate) fn apply(&self, object: &mut Value, targets: &[(String, Role, bool)]) {
        if self.is_empty() {
            return;
        }
        if let Some(metadata) = object
            .as_object_mut()
            .and_then(|o| child_object(o, "metadata"))
        {
            add_strings(metadata, "labels", &self.labels);
            add_strings(metadata, "annotations", &self.annotations);
        }
        for (pointer, role, uses_gpus) in targets {
            let Some(template) = pods::at_mut(object, pointer).and_then(Value::as_object_mut)
            else {
                continue;
            };
            let ray_pod = *role != Role::Submitter;
            if ray_pod && let Some(metadata) = child_object(template, "metadata") {
                add_strings(metadata, "labels", &self.labels);
                add_strings(metadata, "annotations", &self.annotations);
            }
            let Some(spec) = child_object(template, "spec") else {
                continue;
            };
            if ray_pod && let Some(priority_class) = self.priority_class_name {
                set_if_absent_with(spec, "priorityClassName", || {
                    Value::String(priority_class.to_owned())
                });
            }
            if !self.image_pull_secrets.is_empty()
                && let Some(secrets) = child_array(spec, "imagePullSecrets")
            {
                for &name in &self.image_pull_secrets {
                    let present = secrets
                        .iter()
                        .any(|s| s.get("name").and_then(Value::as_str) == Some(name));
                    if !present {
                        secrets.push(serde_json::json!({ "name": name }));
                    }
                }
            }
            if !(ray_pod && *uses_gpus) {
                continue;
            }
            if self.gpu_tolerations_listed
                && let Some(tolerations) = child_array(spec, "tolerations")
            {
                for toleration in &self.gpu_tolerations {
                    if !tolerations.contains(toleration) {
                        tolerations.push(toleration.clone());
                    }
                }
            }
            add_strings(spec, "nodeSelector", &self.gpu_node_selector);
        }
    }
}

/// Appends the pairs whose key is not there yet: the first policy's value wins, as it would
/// when applied first.
fn add_pairs<'p>(
    merged: &mut Vec<(&'p str, &'p str)>,
    values: &'p std::collections::BTreeMap<String, String>,
) {
    for (key, value) in values {
        if !merged.iter().any(|(k, _)| k == key) {
            merged.push((key, value));
        }
    }
}

fn add_strings(parent: &mut Map<String, Value>, key: &str, values: &[(&str, &str)]) {
    if values.is_empty() {
        return;
    }
    if let Some(map) = child_object(parent, key) {
        for &(name, value) in values {
            set_if_absent_with(map, name, || Value::String(value.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    //! The merged injection against the per-policy one it replaced (kept here as the
    //! reference): same object, whatever the policies and the object's shape.

    use serde_json::json;

    use super::*;
    use crate::defaults::json_edit::set_if_absent;
    use crate::policy::compile;

    /// The injection as it was: each policy applied to the object in turn.
    fn inject_one_by_one(
        policy: &CompiledPolicy,
        object: &mut Value,
        targets: &[(String, Role, bool)],
    ) {
        let Some(inject) = &policy.spec.inject else {
            return;
        };
        if let Some(metadata) = object
            .as_object_mut()
            .and_then(|o| child_object(o, "metadata"))
        {
            add_strings_one(metadata, "labels", &inject.labels);
            add_strings_one(metadata, "annotations", &inject.annotations);
        }
        for (pointer, role, uses_gpus) in targets {
            let (role, uses_gpus) = (*role, *uses_gpus);
            let Some(template) = object.pointer_mut(pointer).and_then(Value::as_object_mut) else {
                continue;
            };
            let ray_pod = role != Role::Submitter;
            if ray_pod && let Some(metadata) = child_object(template, "metadata") {
                add_strings_one(metadata, "labels", &inject.labels);
                add_strings_one(metadata, "annotations", &inject.annotations);
            }
            let Some(spec) = child_object(template, "spec") else {
                continue;
            };
            if ray_pod && let Some(priority_class) = &inject.priority_class_name {
                set_if_absent(
                    spec,
                    "priorityClassName",
                    Value::String(priority_class.clone()),
                );
            }
            if !inject.image_pull_secrets.is_empty()
                && let Some(secrets) = child_array(spec, "imagePullSecrets")
            {
                for secret in &inject.image_pull_secrets {
                    let present = secrets.iter().any(|s| {
                        s.get("name").and_then(Value::as_str) == Some(secret.name.as_str())
                    });
                    if !present {
                        secrets.push(serde_json::json!({"name": secret.name}));
                    }
                }
            }
            let Some(gpu) = inject.gpu_groups.as_ref().filter(|_| ray_pod && uses_gpus) else {
                continue;
            };
            if !gpu.tolerations.is_empty()
                && let Some(tolerations) = child_array(spec, "tolerations")
            {
                for toleration in &gpu.tolerations {
                    let Ok(toleration) = serde_json::to_value(toleration) else {
                        continue;
                    };
                    if !tolerations.contains(&toleration) {
                        tolerations.push(toleration);
                    }
                }
            }
            if !gpu.node_selector.is_empty() {
                add_strings_one(spec, "nodeSelector", &gpu.node_selector);
            }
        }
    }

    fn add_strings_one(
        parent: &mut Map<String, Value>,
        key: &str,
        values: &std::collections::BTreeMap<String, String>,
    ) {
        if values.is_empty() {
            return;
        }
        if let Some(map) = child_object(parent, key) {
            for (name, value) in values {
                set_if_absent(map, name, Value::String(value.clone()));
            }
        }
    }

    fn policy(name: &str, inject: Value) -> CompiledPolicy {
        let object = json!({
            "apiVersion": "raygate.io/v1alpha1",
            "kind": "RayPolicy",
            "metadata": {"name": name},
            "spec": {"inject": inject},
        });
        match compile(&object) {
            Ok(policy) => policy,
            Err(errors) => panic!("test policy {name} is invalid: {errors:?}"),
        }
    }

    fn gpu_worker() -> Value {
        json!({"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.46.0",
            "resources": {"limits": {"nvidia.com/gpu": 1}}}]}})
    }

    fn objects() -> Vec<Value> {
        let head = json!({"spec": {"containers": [{"name": "ray-head"}]}});
        vec![
            json!({"kind": "RayCluster", "metadata": {"name": "c"}, "spec": {
                "headGroupSpec": {"template": head},
                "workerGroupSpecs": [{"groupName": "gpu", "template": gpu_worker()},
                                     {"groupName": "cpu", "template": {}}]}}),
            // User values everywhere (some null, some of the wrong type).
            json!({"kind": "RayCluster", "metadata": {"name": "c", "labels": {"team": "mine", "b": null}},
                "spec": {
                "headGroupSpec": {"template": {"metadata": "oops", "spec": {
                    "priorityClassName": null, "imagePullSecrets": [{"name": "b"}]}}},
                "workerGroupSpecs": [{"groupName": "gpu", "template": {
                    "metadata": {"annotations": {"x": "user"}},
                    "spec": {"containers": gpu_worker()["spec"]["containers"],
                        "priorityClassName": "urgent",
                        "tolerations": [{"key": "b", "operator": "Exists"}],
                        "nodeSelector": {"pool": "a100"}}}},
                    {"groupName": "bad", "template": {"spec": "not an object"}},
                    {"groupName": "gpu-list", "template": {"spec": {
                        "containers": gpu_worker()["spec"]["containers"],
                        "tolerations": "not a list", "nodeSelector": null,
                        "imagePullSecrets": {}}}}]}}),
            json!({"kind": "RayJob", "metadata": null, "spec": {
                "rayClusterSpec": {"headGroupSpec": {"template": null},
                    "workerGroupSpecs": [{"template": gpu_worker()}]},
                "submitterPodTemplate": {"spec": {"containers": [{"name": "submit"}]}}}}),
            json!({"kind": "RayService", "spec": {"rayClusterConfig": {
                "headGroupSpec": {"template": {"spec": null}}}}}),
        ]
    }

    fn policies() -> Vec<CompiledPolicy> {
        vec![
            policy(
                "a",
                json!({
                "labels": {"team": "a", "b": "a"},
                "priorityClassName": "batch-a",
                "imagePullSecrets": [{"name": "a"}, {"name": "b"}, {"name": "a"}],
                "gpuGroups": {
                    "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "a", "operator": "Exists"}],
                    "nodeSelector": {"pool": "gpu-a"}}}),
            ),
            policy(
                "b",
                json!({
                "labels": {"team": "b", "c": "b"},
                "annotations": {"x": "b", "y": "b"},
                "priorityClassName": "batch-b",
                "imagePullSecrets": [{"name": "b"}, {"name": "c"}],
                "gpuGroups": {
                    "tolerations": [{"key": "b", "operator": "Exists"}, {"key": "a", "operator": "Exists"}],
                    "nodeSelector": {"pool": "gpu-b", "zone": "b"}}}),
            ),
            policy("c", json!({})),
            policy(
                "d",
                json!({"gpuGroups": {"tolerations": [{"key": "d", "effect": "NoSchedule"}]}}),
            ),
        ]
    }

    #[test]
    fn merged_injection_equals_each_policy_in_turn() {
        let policies = policies();
        // Every ordered selection of the policies, as name order and matching could give.
        let selections: Vec<Vec<&CompiledPolicy>> = (0u32..1 << policies.len())
            .flat_map(|mask| {
                let chosen: Vec<&CompiledPolicy> = policies
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, p)| p)
                    .collect();
                let reversed: Vec<&CompiledPolicy> = chosen.iter().rev().copied().collect();
                [chosen, reversed]
            })
            .collect();
        for object in objects() {
            for selection in &selections {
                let targets = targets(&object);
                let mut expected = object.clone();
                for policy in selection {
                    inject_one_by_one(policy, &mut expected, &targets);
                }
                let mut merged = object.clone();
                Injection::merge(selection.iter().copied()).apply(&mut merged, &targets);
                let names: Vec<&str> = selection.iter().map(|p| p.name.as_str()).collect();
                assert_eq!(merged, expected, "policies {names:?} on {object:#}");
            }
        }
    }

    #[test]
    fn the_first_policy_wins_and_list_entries_come_once() {
        let policies = policies();
        let mut object = objects().swap_remove(0);
        let targets = targets(&object);
        Injection::merge(&policies).apply(&mut object, &targets);
        assert_eq!(
            object["metadata"]["labels"],
            json!({"team": "a", "b": "a", "c": "b"})
        );
        let worker = &object["spec"]["workerGroupSpecs"][0]["template"]["spec"];
        assert_eq!(worker["priorityClassName"], "batch-a");
        assert_eq!(
            worker["imagePullSecrets"],
            json!([{"name": "a"}, {"name": "b"}, {"name": "c"}])
        );
        assert_eq!(
            worker["tolerations"],
            json!([{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"},
                   {"key": "d", "effect": "NoSchedule"}])
        );
        assert_eq!(
            worker["nodeSelector"],
            json!({"pool": "gpu-a", "zone": "b"})
        );
    }
}
