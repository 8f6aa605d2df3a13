//! Every RayCluster, RayJob and RayService among KubeRay's samples deserializes into raygate's
//! types, and serializing it back keeps every field the user wrote.

mod kuberay_samples;

use kuberay_samples::sample_documents;

use raygate_api::{RayCluster, RayJob, RayService};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Paths present in `original` but gone from `round_tripped`. A `null` in the original is
/// not counted: the API server prunes it too.
fn dropped_fields(original: &Value, round_tripped: &Value, path: &str, out: &mut Vec<String>) {
    match (original, round_tripped) {
        (Value::Object(before), Value::Object(after)) => {
            for (key, value) in before {
                let child = format!("{path}.{key}");
                match after.get(key) {
                    Some(kept) => dropped_fields(value, kept, &child, out),
                    None if value.is_null() => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(before), Value::Array(after)) => {
            for (index, value) in before.iter().enumerate() {
                let child = format!("{path}[{index}]");
                match after.get(index) {
                    Some(kept) => dropped_fields(value, kept, &child, out),
                    None => out.push(child),
                }
            }
        }
        _ => {}
    }
}

fn round_trip<K: DeserializeOwned + serde::Serialize>(document: &Value) -> Result<Value, String> {
    let typed: K = serde_json::from_value(document.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

#[test]
fn every_kuberay_sample_round_trips_without_losing_fields() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (file, document) in sample_documents() {
        if document["apiVersion"] != "ray.io/v1" {
            continue;
        }
        let kind = document["kind"].as_str().unwrap_or_default();
        let name = document["metadata"]["name"].as_str().unwrap_or_default();
        let result = match kind {
            "RayCluster" => round_trip::<RayCluster>(&document),
            "RayJob" => round_trip::<RayJob>(&document),
            "RayService" => round_trip::<RayService>(&document),
            _ => continue,
        };
        checked += 1;
        match result {
            Err(error) => problems.push(format!("{file}: {kind}/{name} does not parse: {error}")),
            Ok(round_tripped) => {
                let mut dropped = Vec::new();
                dropped_fields(&document, &round_tripped, "", &mut dropped);
                for field in dropped {
                    problems.push(format!("{file}: {kind}/{name} drops {field}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // KubeRay ships about 90 Ray manifests; far fewer means the samples weren't found.
    assert!(
        checked >= 80,
        "only {checked} Ray objects found among the samples"
    );
}

/// The drop detector sees a field that our types don't know.
#[test]
fn an_unknown_field_is_reported_as_dropped() {
    let document = serde_json::json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "x"},
        "spec": {
            "headGroupSpec": {"template": {"spec": {"containers": []}}, "futureField": 1},
            "workerGroupSpecs": [{"groupName": "g", "template": {}, "inventedKnob": true}]
        }
    });
    let round_tripped = round_trip::<RayCluster>(&document).expect("parses");
    let mut dropped = Vec::new();
    dropped_fields(&document, &round_tripped, "", &mut dropped);
    assert_eq!(
        dropped,
        [
            ".spec.headGroupSpec.futureField",
            ".spec.workerGroupSpecs[0].inventedKnob"
        ]
    );
}
