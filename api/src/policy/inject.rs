//! A policy's `inject`: values added to matching objects before defaults and validation run.
//! Only what is missing is added (a value the user set always wins), so injecting twice, or
//! re-admitting an injected object, changes nothing.

use serde_json::{Map, Value};

use super::compile::CompiledPolicy;
use super::pods::{self, Role};
use crate::defaults::json_edit::{child_array, child_object, set_if_absent};

/// The pod templates injections go to: (pointer, role, uses GPUs). Read once, on the object
/// as received, before any policy's edit changes it.
pub(crate) fn targets(object: &Value) -> Vec<(String, Role, bool)> {
    pods::templates(object)
        .into_iter()
        .map(|t| {
            let uses_gpus = object
                .pointer(&t.pointer)
                .is_some_and(|v| pods::pod_resources(v).accelerators > 0);
            (t.pointer, t.role, uses_gpus)
        })
        .collect()
}

pub(crate) fn inject(
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
        add_strings(metadata, "labels", &inject.labels);
        add_strings(metadata, "annotations", &inject.annotations);
    }
    for (pointer, role, uses_gpus) in targets {
        let (role, uses_gpus) = (*role, *uses_gpus);
        let Some(template) = object.pointer_mut(pointer).and_then(Value::as_object_mut) else {
            continue;
        };
        let ray_pod = role != Role::Submitter;
        if ray_pod && let Some(metadata) = child_object(template, "metadata") {
            add_strings(metadata, "labels", &inject.labels);
            add_strings(metadata, "annotations", &inject.annotations);
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
                let present = secrets
                    .iter()
                    .any(|s| s.get("name").and_then(Value::as_str) == Some(secret.name.as_str()));
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
            add_strings(spec, "nodeSelector", &gpu.node_selector);
        }
    }
}

fn add_strings(
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
