//! Our generated CRDs against KubeRay's: every property KubeRay has, with the same type, enum,
//! format and default; the same names, scope, subresources and printer columns.

use std::collections::BTreeSet;
use std::path::PathBuf;

use raygate_api::crd::ray_crds;
use serde_json::Value;

fn kuberay_crd(plural: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/kuberay/crd")
        .join(format!("ray.io_{plural}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading KubeRay CRD {}: {e}", path.display()));
    raygate_api::manifest::parse_documents(&text)
        .expect("KubeRay CRD is YAML")
        .remove(0)
}

fn our_crd(plural: &str) -> Value {
    let crd = ray_crds()
        .into_iter()
        .find(|crd| crd.spec.names.plural == plural)
        .unwrap_or_else(|| panic!("raygate generates no CRD for {plural}"));
    serde_json::to_value(crd).expect("CRD serializes")
}

fn v1(crd: &Value) -> &Value {
    crd["spec"]["versions"]
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["name"] == "v1"))
        .expect("CRD serves v1")
}

/// The schema type as the API server sees it: int-or-string is its own type.
fn schema_type(schema: &Value) -> String {
    if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
        return "int-or-string".into();
    }
    schema["type"].as_str().unwrap_or("<none>").to_string()
}

fn enum_set(schema: &Value) -> Option<BTreeSet<String>> {
    schema["enum"]
        .as_array()
        .map(|values| values.iter().map(Value::to_string).collect())
}

/// Every difference between KubeRay's schema (`theirs`) and ours that would change what a user
/// can store or what the API server defaults.
fn schema_differences(theirs: &Value, ours: &Value, path: &str, out: &mut Vec<String>) {
    let (their_type, our_type) = (schema_type(theirs), schema_type(ours));
    if their_type != our_type {
        out.push(format!(
            "{path}: type {their_type} in KubeRay, {our_type} in raygate"
        ));
    }
    if enum_set(theirs) != enum_set(ours) {
        out.push(format!(
            "{path}: enum {:?} in KubeRay, {:?} in raygate",
            enum_set(theirs),
            enum_set(ours)
        ));
    }
    if theirs.get("format") != ours.get("format") && their_type == "integer" {
        out.push(format!(
            "{path}: format {} in KubeRay, {} in raygate",
            theirs["format"], ours["format"]
        ));
    }
    if theirs.get("default") != ours.get("default") {
        out.push(format!(
            "{path}: default {} in KubeRay, {} in raygate",
            theirs["default"], ours["default"]
        ));
    }
    if theirs.get("x-kubernetes-preserve-unknown-fields")
        != ours.get("x-kubernetes-preserve-unknown-fields")
    {
        out.push(format!(
            "{path}: x-kubernetes-preserve-unknown-fields differs"
        ));
    }
    if let Some(properties) = theirs["properties"].as_object() {
        for (name, their_property) in properties {
            match ours["properties"].get(name) {
                Some(our_property) => {
                    schema_differences(their_property, our_property, &format!("{path}.{name}"), out)
                }
                None => out.push(format!("{path}.{name}: missing in raygate")),
            }
        }
    }
    if let Some(items) = theirs.get("items") {
        match ours.get("items") {
            Some(our_items) => schema_differences(items, our_items, &format!("{path}[]"), out),
            None => out.push(format!("{path}[]: items missing in raygate")),
        }
    }
    if let Some(additional) = theirs.get("additionalProperties").filter(|v| v.is_object()) {
        match ours.get("additionalProperties").filter(|v| v.is_object()) {
            Some(our_additional) => {
                schema_differences(additional, our_additional, &format!("{path}{{}}"), out)
            }
            None => out.push(format!(
                "{path}{{}}: additionalProperties missing in raygate"
            )),
        }
    }
}

fn compare_kind(plural: &str) -> Vec<String> {
    let (theirs, ours) = (kuberay_crd(plural), our_crd(plural));
    let mut out = Vec::new();
    for key in ["group", "names", "scope"] {
        if theirs["spec"][key] != ours["spec"][key] {
            out.push(format!(
                "spec.{key}: {} in KubeRay, {} in raygate",
                theirs["spec"][key], ours["spec"][key]
            ));
        }
    }
    let (their_v1, our_v1) = (v1(&theirs), v1(&ours));
    for key in [
        "served",
        "storage",
        "subresources",
        "additionalPrinterColumns",
    ] {
        if their_v1[key] != our_v1[key] {
            out.push(format!(
                "versions[v1].{key}: {} in KubeRay, {} in raygate",
                their_v1[key], our_v1[key]
            ));
        }
    }
    schema_differences(
        &their_v1["schema"]["openAPIV3Schema"],
        &our_v1["schema"]["openAPIV3Schema"],
        "",
        &mut out,
    );
    out
}

#[test]
fn raycluster_crd_matches_kuberay() {
    let differences = compare_kind("rayclusters");
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn rayjob_crd_matches_kuberay() {
    let differences = compare_kind("rayjobs");
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn rayservice_crd_matches_kuberay() {
    let differences = compare_kind("rayservices");
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn raycronjob_crd_matches_kuberay() {
    let differences = compare_kind("raycronjobs");
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// The comparison itself catches a removed field, a changed type, a lost enum value and a
/// lost default — otherwise the tests above could pass vacuously.
#[test]
fn comparison_reports_removed_and_changed_fields() {
    let theirs = kuberay_crd("rayclusters");
    let their_schema = &v1(&theirs)["schema"]["openAPIV3Schema"];
    let ours = our_crd("rayclusters");
    let mut our_schema = v1(&ours)["schema"]["openAPIV3Schema"].clone();
    let spec = &mut our_schema["properties"]["spec"]["properties"];
    spec.as_object_mut()
        .expect("spec has properties")
        .remove("rayVersion");
    let worker = &mut spec["workerGroupSpecs"]["items"]["properties"];
    worker["numOfHosts"]["type"] = "string".into();
    worker["maxReplicas"]
        .as_object_mut()
        .expect("maxReplicas is a schema")
        .remove("default");
    spec["upgradeStrategy"]["properties"]["type"]["enum"] = serde_json::json!(["Recreate"]);

    let mut out = Vec::new();
    schema_differences(their_schema, &our_schema, "", &mut out);
    let expect = [
        ".spec.rayVersion: missing in raygate",
        ".spec.workerGroupSpecs[].numOfHosts: type integer in KubeRay, string in raygate",
        ".spec.workerGroupSpecs[].maxReplicas: default 2147483647 in KubeRay, null in raygate",
        ".spec.upgradeStrategy.type: enum",
    ];
    for expected in expect {
        assert!(
            out.iter().any(|line| line.starts_with(expected)),
            "expected a difference starting with {expected:?}, got:\n{}",
            out.join("\n")
        );
    }
}

/// Plain `kubectl apply -f` stores the whole object as JSON in the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation, and all annotations together
/// may not exceed 256 KiB. KubeRay's CRDs don't fit (users need `--server-side`); ours must.
#[test]
fn crds_fit_in_the_last_applied_annotation() {
    const ANNOTATIONS_LIMIT: usize = 256 * 1024;
    for crd in ray_crds() {
        let applied = serde_json::to_string(&crd).expect("CRD serializes");
        assert!(
            applied.len() < ANNOTATIONS_LIMIT * 9 / 10,
            "{} is {} bytes as JSON; plain kubectl apply needs it well under {ANNOTATIONS_LIMIT}",
            crd.metadata.name.unwrap_or_default(),
            applied.len()
        );
    }
    let kuberay = serde_json::to_string(&kuberay_crd("rayjobs")).expect("serializes");
    assert!(
        kuberay.len() > ANNOTATIONS_LIMIT,
        "KubeRay's RayJob CRD should be the one that doesn't fit"
    );
}
