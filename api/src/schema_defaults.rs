//! The defaults the API server applies from a CRD's schema before it calls any webhook.
//! `raygate check` applies them too, so the offline verdict is the one the cluster gives.

use std::sync::OnceLock;

use serde_json::Value;

use crate::crd::ray_crds;

/// The v1 schema of each kind, generated once.
fn schemas() -> &'static [(String, Value)] {
    static SCHEMAS: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        ray_crds()
            .into_iter()
            .filter_map(|crd| {
                let kind = crd.spec.names.kind.clone();
                let schema = crd
                    .spec
                    .versions
                    .into_iter()
                    .find(|v| v.name == "v1")?
                    .schema?
                    .open_api_v3_schema?;
                Some((kind, serde_json::to_value(schema).ok()?))
            })
            .collect()
    })
}

/// Fills missing fields that have a schema default, in place, the way the API server does:
/// only inside objects that exist (it never creates a parent to hold a default).
pub fn apply_crd_defaults(object: &mut Value) {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some((_, schema)) = schemas().iter().find(|(k, _)| k == kind) {
        apply(schema, object);
    }
}

fn apply(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    match object.get_mut(name) {
                        Some(child) if !child.is_null() => apply(property, child),
                        _ => {
                            if let Some(default) = property.get("default") {
                                let mut default = default.clone();
                                apply(property, &mut default);
                                object.insert(name.clone(), default);
                            }
                        }
                    }
                }
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for child in object.values_mut() {
                    apply(additional, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_worker_group_and_rayjob_defaults_like_the_api_server() {
        let mut cluster = json!({
            "kind": "RayCluster",
            "spec": {"headGroupSpec": {"template": {}}, "workerGroupSpecs": [{"groupName": "w", "template": {}}]}
        });
        apply_crd_defaults(&mut cluster);
        let group = &cluster["spec"]["workerGroupSpecs"][0];
        assert_eq!(group["minReplicas"], 0);
        assert_eq!(group["maxReplicas"], 2147483647);
        assert_eq!(group["replicas"], 0);
        assert_eq!(group["numOfHosts"], 1);
        // No parent is created just to hold a default.
        assert!(cluster["spec"].get("networkPolicy").is_none());

        let mut job = json!({"kind": "RayJob", "spec": {"entrypoint": "python x.py"}});
        apply_crd_defaults(&mut job);
        assert_eq!(job["spec"]["submissionMode"], "K8sJobMode");
        assert_eq!(job["spec"]["backoffLimit"], 0);
    }
}
