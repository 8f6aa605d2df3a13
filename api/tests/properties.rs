//! Properties over generated objects: normalization is idempotent and keeps unknown fields;
//! admission never panics, whatever JSON it is given.

use proptest::prelude::*;
use raygate_api::admission::{admit, mutate};
use serde_json::{Map, Value, json};

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z0-9./-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-zA-Z]{1,10}",
                    Just("spec".to_string()),
                    Just("template".to_string()),
                    Just("containers".to_string()),
                    Just("resources".to_string()),
                    Just("limits".to_string()),
                    Just("workerGroupSpecs".to_string()),
                    Just("headGroupSpec".to_string()),
                    Just("rayStartParams".to_string()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn quantity() -> impl Strategy<Value = Value> {
    prop_oneof![
        (1u32..64).prop_map(|n| json!(n)),
        (1u32..64000).prop_map(|n| json!(format!("{n}m"))),
        (1u32..512).prop_map(|n| json!(format!("{n}Gi"))),
        "[a-z]{1,4}".prop_map(Value::String),
    ]
}

fn group(role: &'static str) -> impl Strategy<Value = Value> {
    (
        quantity(),
        quantity(),
        prop::option::of(0u32..8),
        prop::option::of(0i64..5),
        prop::option::of(0i64..10),
        prop::option::of(-2i64..20),
        any::<bool>(),
        arbitrary_json(),
    )
        .prop_map(
            move |(cpu, memory, gpus, min, max, replicas, accel, extra)| {
                let mut limits = json!({"cpu": cpu, "memory": memory});
                if let Some(gpus) = gpus {
                    limits["nvidia.com/gpu"] = json!(gpus);
                }
                let mut group = json!({
                    "groupName": role,
                    "template": {"spec": {"containers": [{
                        "name": role, "image": "rayproject/ray:2.46.0",
                        "resources": {"limits": limits},
                        "unknownContainerField": extra.clone()
                    }]}},
                    "unknownGroupField": extra
                });
                if accel {
                    group["template"]["metadata"] =
                        json!({"annotations": {"ray.io/accelerator-type": "A100"}});
                }
                for (key, value) in [
                    ("minReplicas", min),
                    ("maxReplicas", max),
                    ("replicas", replicas),
                ] {
                    if let Some(value) = value {
                        group[key] = json!(value);
                    }
                }
                group
            },
        )
}

fn ray_object() -> impl Strategy<Value = Value> {
    (
        group("head"),
        prop::collection::vec(group("workers"), 0..3),
        any::<bool>(),
        prop_oneof![Just("RayCluster"), Just("RayJob"), Just("RayService")],
    )
        .prop_map(|(head, workers, autoscaling, kind)| {
            let workers: Vec<Value> = workers
                .into_iter()
                .enumerate()
                .map(|(i, mut w)| {
                    w["groupName"] = json!(format!("w{i}"));
                    w
                })
                .collect();
            let cluster = json!({
                "enableInTreeAutoscaling": autoscaling,
                "headGroupSpec": head,
                "workerGroupSpecs": workers,
            });
            let spec = match kind {
                "RayCluster" => cluster,
                "RayJob" => json!({"entrypoint": "python x.py", "rayClusterSpec": cluster}),
                _ => json!({"rayClusterConfig": cluster}),
            };
            json!({"apiVersion": "ray.io/v1", "kind": kind, "metadata": {"name": "p"}, "spec": spec})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn normalize_is_idempotent(object in ray_object()) {
        let (once, _, _) = mutate(&object);
        let (twice, patch, _) = mutate(&once);
        prop_assert!(patch.0.is_empty(), "second pass patched {:?}", patch);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn unknown_fields_survive_normalization(object in ray_object()) {
        let (normalized, _, _) = mutate(&object);
        let spec_path = match object["kind"].as_str() {
            Some("RayJob") => "/spec/rayClusterSpec",
            Some("RayService") => "/spec/rayClusterConfig",
            _ => "/spec",
        };
        let head = format!("{spec_path}/headGroupSpec");
        prop_assert_eq!(
            object.pointer(&format!("{head}/unknownGroupField")),
            normalized.pointer(&format!("{head}/unknownGroupField"))
        );
        prop_assert_eq!(
            object.pointer(&format!("{head}/template/spec/containers/0/unknownContainerField")),
            normalized.pointer(&format!("{head}/template/spec/containers/0/unknownContainerField"))
        );
    }

    #[test]
    fn admission_never_panics_on_arbitrary_json(spec in arbitrary_json(), kind in prop_oneof![Just("RayCluster"), Just("RayJob"), Just("RayService"), Just("Pod")]) {
        let object = json!({"apiVersion": "ray.io/v1", "kind": kind, "metadata": {"name": "x"}, "spec": spec});
        let old = object.clone();
        let _ = admit(&object, Some(&old));
        let _ = admit(&spec, None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The webhook's patch, applied by the API server to the object it sent, gives exactly the
    /// normalized object, whatever the two documents are.
    #[test]
    fn patch_turns_the_received_object_into_the_normalized_one(before in arbitrary_json(), after in arbitrary_json()) {
        let patch = raygate_api::json_diff::diff(&before, &after);
        let mut applied = before.clone();
        prop_assert!(json_patch::patch(&mut applied, &patch).is_ok(), "patch {:?} does not apply", patch);
        prop_assert_eq!(&applied, &after);
        // The webhook sends the patch's text, written without building the operations.
        let text = raygate_api::json_diff::diff_json(&before, &after);
        let expected = (!patch.0.is_empty()).then(|| serde_json::to_vec(&patch).unwrap_or_default());
        prop_assert_eq!(text, expected);
    }

    #[test]
    fn mutation_patch_applies_to_the_received_object(object in ray_object()) {
        let (normalized, patch, _) = mutate(&object);
        let mut applied = object.clone();
        prop_assert!(json_patch::patch(&mut applied, &patch).is_ok());
        prop_assert_eq!(applied, normalized);
    }
}
