//! Validation never panics, whatever the free-form strings and numbers inside an object hold
//! (versions, images, quantities, durations, YAML, JSON, label keys, names), and its warnings
//! always fit kubectl's line.

mod validation_support;

use proptest::prelude::*;
use raygate_api::validation::MAX_WARNING_CHARS;
use serde_json::{Value, json};
use validation_support::{cluster, job, service, validate, with};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-+.0-9a-zA-Z/:@_ ]{0,24}",
        "[0-9]{1,40}(\\.[0-9]{0,20})?(m|Ki|Mi|Gi|Ei|e[-+]?[0-9]{1,4}|E|n)?",
        "v?[0-9]{1,25}(\\.[0-9]{1,25}){0,4}[-.a-z0-9]{0,6}",
        "[-+]?[0-9.]{0,20}(h|m|s|ms|us|µs|ns){0,3}",
        "(rayproject/)?ray(-ml)?:[0-9a-z.\\-]{0,20}",
    ]
}

fn number() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::from(i32::MIN)),
        Just(i64::from(i32::MAX)),
        -3i64..10
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cluster_validation_never_panics(
        strings in prop::collection::vec(text(), 12),
        numbers in prop::collection::vec(number(), 6),
    ) {
        let s = |i: usize| json!(strings[i]);
        let n = |i: usize| json!(numbers[i]);
        let object = with(cluster(), &[
            ("/metadata/name", s(0)),
            ("/spec/rayVersion", s(1)),
            ("/spec/headGroupSpec/template/spec/containers/0/image", s(2)),
            ("/spec/workerGroupSpecs/0/template/spec/containers/0/image", s(3)),
            ("/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits/memory", s(4)),
            ("/spec/workerGroupSpecs/0/template/spec/containers/0/resources/requests/nvidia.com~1gpu", s(5)),
            ("/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits/nvidia.com~1gpu", s(6)),
            ("/spec/workerGroupSpecs/0/rayStartParams/num-gpus", s(7)),
            ("/spec/workerGroupSpecs/0/groupName", s(8)),
            ("/spec/workerGroupSpecs/0/labels", json!({strings[9].clone(): strings[10].clone()})),
            ("/metadata/annotations/ray.io~1ft-enabled", s(11)),
            ("/spec/workerGroupSpecs/0/minReplicas", n(0)),
            ("/spec/workerGroupSpecs/0/maxReplicas", n(1)),
            ("/spec/workerGroupSpecs/0/numOfHosts", n(2)),
            ("/spec/workerGroupSpecs/0/priority", n(3)),
            ("/spec/workerGroupSpecs/0/idleTimeoutSeconds", n(4)),
            ("/spec/authOptions/mode", json!("token")),
            ("/spec/networkPolicy", json!({"workerGroups": [{"groupName": strings[8].clone()}]})),
        ]);
        let old = with(cluster(), &[("/spec/workerGroupSpecs/0/numOfHosts", n(5))]);
        check(&object, Some(&old));
    }

    #[test]
    fn rayjob_and_rayservice_validation_never_panics(
        strings in prop::collection::vec(text(), 6),
        numbers in prop::collection::vec(number(), 4),
    ) {
        let s = |i: usize| json!(strings[i]);
        let n = |i: usize| json!(numbers[i]);
        let object = with(job(), &[
            ("/spec/runtimeEnvYAML", s(0)),
            ("/spec/entrypointResources", s(1)),
            ("/spec/submissionMode", s(2)),
            ("/spec/metadata", json!({"k": "v"})),
            ("/spec/rayClusterSpec/rayVersion", s(3)),
            ("/spec/backoffLimit", n(0)),
            ("/spec/activeDeadlineSeconds", n(1)),
            ("/spec/deletionStrategy", json!({"deletionRules": [
                {"policy": "DeleteWorkers", "condition": {"jobStatus": "FAILED", "ttlSeconds": numbers[2]}},
                {"policy": "DeleteCluster", "condition": {"jobStatus": "FAILED", "ttlSeconds": numbers[3]}},
            ]})),
        ]);
        let old = with(job(), &[("/status/jobDeploymentStatus", s(4))]);
        check(&object, Some(&old));

        let object = with(service(), &[
            ("/metadata/annotations/ray.io~1initializing-timeout", s(5)),
            ("/spec/serveConfigV2", s(0)),
            ("/spec/upgradeStrategy", json!({"type": "NewClusterWithIncrementalUpgrade",
                "clusterUpgradeOptions": {"maxSurgePercent": numbers[0], "stepSizePercent": numbers[1],
                    "intervalSeconds": numbers[2], "gatewayClassName": strings[2].clone()}})),
        ]);
        check(&object, None);
    }
}

fn check(object: &Value, old: Option<&Value>) {
    let result = validate(object, old);
    for warning in &result.warnings {
        assert!(warning.chars().count() <= MAX_WARNING_CHARS, "{warning}");
    }
}

/// An object with every optional part missing still validates (with errors, not panics).
#[test]
fn bare_objects_do_not_panic() {
    for kind in ["RayCluster", "RayJob", "RayService"] {
        let object = json!({"apiVersion": "ray.io/v1", "kind": kind, "metadata": {},
            "spec": {"headGroupSpec": {"template": {}}, "rayClusterConfig": {"headGroupSpec": {"template": {}}}}});
        let result = validate(&object, None);
        assert!(
            !result.errors.is_empty(),
            "{kind}: a nameless object must be denied"
        );
        // On UPDATE the same problems were already stored: ratcheted to warnings.
        let result = validate(&object, Some(&object));
        assert!(
            result.errors.is_empty() && !result.warnings.is_empty(),
            "{kind}"
        );
    }
}
