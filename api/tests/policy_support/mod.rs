//! Shared fixtures for the RayPolicy tests: a policy from a `spec`, a small GPU cluster, and
//! evaluation in a namespace.

#![allow(dead_code)]

use std::collections::BTreeMap;

use raygate_api::policy::{PolicyEvaluation, PolicySet, compile};
use serde_json::{Value, json};

pub fn policy_object(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "raygate.io/v1alpha1",
        "kind": "RayPolicy",
        "metadata": {"name": name},
        "spec": spec,
    })
}

pub fn set(policies: &[(&str, Value)]) -> PolicySet {
    PolicySet::new(
        policies
            .iter()
            .map(|(name, spec)| {
                compile(&policy_object(name, spec.clone()))
                    .unwrap_or_else(|e| panic!("policy {name} is valid: {e:?}"))
            })
            .collect(),
    )
}

pub fn one(spec: Value) -> PolicySet {
    set(&[("p", spec)])
}

/// A RayCluster in `team-a`: a head (2 CPU, 8Gi) and worker group `gpu` of 2 replicas
/// (max 4), each 8 CPU, 32Gi, 2 nvidia.com/gpu.
pub fn cluster() -> Value {
    json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "c", "namespace": "team-a", "labels": {"team": "a"}},
        "spec": {
            "rayVersion": "2.46.0",
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {"spec": {"containers": [{
                    "name": "ray-head",
                    "image": "rayproject/ray:2.46.0",
                    "resources": {"limits": {"cpu": "2", "memory": "8Gi"}}
                }]}}
            },
            "workerGroupSpecs": [{
                "groupName": "gpu",
                "replicas": 2, "minReplicas": 1, "maxReplicas": 4,
                "rayStartParams": {},
                "template": {"spec": {"containers": [{
                    "name": "ray-worker",
                    "image": "rayproject/ray:2.46.0-gpu",
                    "resources": {"limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": 2}}
                }]}}
            }]
        }
    })
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn evaluate(policies: &PolicySet, object: &Value) -> PolicyEvaluation {
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    policies.evaluate(object, namespace, &labels(&[("tier", "team")]))
}

/// (rule, path) of every violation.
pub fn found(evaluation: &PolicyEvaluation) -> Vec<(String, String)> {
    evaluation
        .violations
        .iter()
        .map(|v| (v.rule.to_owned(), v.path.clone()))
        .collect()
}

/// Sets `value` at a JSON pointer, creating missing objects.
pub fn set_at(object: &mut Value, pointer: &str, value: Value) {
    let mut current = object;
    let parts: Vec<String> = pointer
        .trim_start_matches('/')
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        current = match current {
            Value::Array(items) => &mut items[part.parse::<usize>().expect("index")],
            Value::Object(map) => {
                if last {
                    map.insert(part.clone(), value);
                    return;
                }
                map.entry(part.clone()).or_insert_with(|| json!({}))
            }
            _ => panic!("{pointer} crosses a scalar"),
        };
        if last {
            *current = value;
            return;
        }
    }
}
