//! The RayPolicy CRD: cluster-scoped, `raygate.io/v1alpha1`, with a status subresource, and a
//! structural schema the API server accepts (no closed objects, no `nullable`).

use raygate_api::crd::{all_crds, policy_crd};
use serde_json::Value;

fn walk(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.get("additionalProperties") == Some(&Value::Bool(false)) {
                found.push(format!("{path}: additionalProperties false"));
            }
            if map.contains_key("nullable") {
                found.push(format!("{path}: nullable"));
            }
            if map.contains_key("properties") && map.contains_key("additionalProperties") {
                found.push(format!("{path}: properties and additionalProperties"));
            }
            for (key, child) in map {
                walk(child, &format!("{path}.{key}"), found);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| walk(i, path, found)),
        _ => {}
    }
}

#[test]
fn raypolicy_is_cluster_scoped_with_status() {
    let crd = serde_json::to_value(policy_crd()).expect("CRD serializes");
    assert_eq!(crd["metadata"]["name"], "raypolicies.raygate.io");
    assert_eq!(crd["spec"]["scope"], "Cluster");
    assert_eq!(crd["spec"]["names"]["kind"], "RayPolicy");
    assert_eq!(crd["spec"]["names"]["listKind"], "RayPolicyList");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "rpol");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object(), "{version}");
    let schema = &version["schema"]["openAPIV3Schema"];
    let rules = &schema["properties"]["spec"]["properties"]["rules"]["properties"];
    for rule in [
        "maxGpusPerPod",
        "maxGpusPerGroup",
        "maxGpusPerCluster",
        "maxCpuPerCluster",
        "maxMemoryPerCluster",
        "maxReplicasPerGroup",
        "maxWorkerGroups",
        "allowedAcceleratorTypes",
        "allowedImages",
        "allowedRayVersions",
        "requiredLimits",
        "forbiddenPodSettings",
        "requiredLabels",
    ] {
        assert!(
            rules[rule].is_object(),
            "rule {rule} missing from the schema"
        );
    }
    assert_eq!(
        schema["properties"]["spec"]["properties"]["action"]["enum"],
        serde_json::json!(["Deny", "Warn", "Audit"])
    );
    assert_eq!(
        rules["maxMemoryPerCluster"]["properties"]["limit"]["x-kubernetes-int-or-string"],
        true
    );
    let mut problems = Vec::new();
    walk(schema, "", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn all_crds_lists_raypolicy_last() {
    let names: Vec<String> = all_crds()
        .into_iter()
        .map(|c| c.metadata.name.unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "rayclusters.ray.io",
            "rayjobs.ray.io",
            "rayservices.ray.io",
            "raycronjobs.ray.io",
            "raypolicies.raygate.io"
        ]
    );
}

/// `kubectl get raypolicies` shows whether each policy is enforced and what it counted; the
/// status has the usual `observedGeneration` and a `Ready` condition in a list-map by type.
#[test]
fn raypolicy_status_and_printer_columns() {
    let crd = serde_json::to_value(policy_crd()).expect("CRD serializes");
    let version = &crd["spec"]["versions"][0];
    let columns: Vec<(&str, &str)> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default(),
                c["jsonPath"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Action", ".spec.action"),
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
            ("Matched", ".status.matched"),
            ("Denied", ".status.denied"),
            ("Warned", ".status.warned"),
            ("Audited", ".status.audited"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
    let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    for field in [
        "observedGeneration",
        "matched",
        "denied",
        "warned",
        "audited",
    ] {
        assert_eq!(status[field]["type"], "integer", "{field}");
    }
    let conditions = &status["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    assert_eq!(
        conditions["items"]["properties"]["status"]["enum"],
        serde_json::json!(["True", "False", "Unknown"])
    );
}
