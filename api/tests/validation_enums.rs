//! Enum fields at admission: a value outside the enum is one error at the field's path that
//! names the accepted values — what `kubectl apply` prints — whether the enum is the CRD's
//! (checked while reading the typed object) or one KubeRay checks only in its controller.

mod validation_support;

use raygate_api::admission::admit;
use serde_json::{Value, json};
use validation_support::{cluster, job, service, with};

fn denial(object: Value) -> Vec<(String, String)> {
    admit(&object, None)
        .errors
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect()
}

#[test]
fn a_value_outside_an_enum_is_denied_naming_the_field_and_the_choices() {
    let cases = [
        (
            with(
                cluster(),
                &[("/spec/upgradeStrategy", json!({"type": "Sometimes"}))],
            ),
            "spec.upgradeStrategy.type",
            &["Sometimes", "Recreate", "None"][..],
        ),
        (
            with(
                cluster(),
                &[("/spec/authOptions", json!({"mode": "maybe"}))],
            ),
            "spec.authOptions.mode",
            &["maybe", "disabled", "token"],
        ),
        (
            with(
                cluster(),
                &[(
                    "/spec/gcsFaultToleranceOptions",
                    json!({"backend": "mongo", "redisAddress": "r:6379"}),
                )],
            ),
            "spec.gcsFaultToleranceOptions.backend",
            &["mongo", "redis", "rocksdb"],
        ),
        (
            with(
                cluster(),
                &[("/spec/networkPolicy", json!({"mode": "DenyMost"}))],
            ),
            "spec.networkPolicy.mode",
            &["DenyMost", "DenyAll", "DenyAllIngress", "DenyAllEgress"],
        ),
        (
            with(
                service(),
                &[("/spec/upgradeStrategy", json!({"type": "Sideways"}))],
            ),
            "spec.upgradeStrategy.type",
            &[
                "Sideways",
                "NewClusterWithIncrementalUpgrade",
                "NewCluster",
                "None",
            ],
        ),
        (
            with(job(), &[("/spec/submissionMode", json!("Carrier"))]),
            "spec.submissionMode",
            &[
                "Carrier",
                "K8sJobMode",
                "HTTPMode",
                "InteractiveMode",
                "SidecarMode",
            ],
        ),
    ];
    for (object, path, words) in cases {
        let errors = denial(object);
        assert!(
            errors
                .iter()
                .any(|(p, m)| p == path && words.iter().all(|w| m.contains(w))),
            "{path}: expected an error naming {words:?}, got {errors:#?}"
        );
    }
}
