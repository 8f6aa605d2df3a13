//! One denied and one admitted case per RayService rule (behaviour.md §3.2, §3.5), named by
//! rule id.

mod validation_support;

use serde_json::{Value, json};
use validation_support::{Case, allow, deny, fixed_by_defaults, run, service, warn, with};

macro_rules! rcc {
    ($rest:literal) => {
        concat!("/spec/rayClusterConfig", $rest)
    };
}

fn incremental(options: Value) -> Value {
    with(
        service(),
        &[
            (rcc!("/enableInTreeAutoscaling"), json!(true)),
            (
                "/spec/upgradeStrategy",
                json!({"type": "NewClusterWithIncrementalUpgrade", "clusterUpgradeOptions": options}),
            ),
        ],
    )
}

fn options() -> Value {
    json!({"maxSurgePercent": 50, "stepSizePercent": 10, "intervalSeconds": 30, "gatewayClassName": "istio"})
}

fn timeout(value: &str) -> Value {
    with(
        service(),
        &[(
            "/metadata/annotations/ray.io~1initializing-timeout",
            json!(value),
        )],
    )
}

fn cases() -> Vec<Case> {
    vec![
        deny(
            "S1",
            with(service(), &[("/metadata/name", json!("s".repeat(48)))]),
            "metadata.name",
            &["RayService name should be no more than 47 characters"],
        ),
        deny(
            "S1",
            with(service(), &[("/metadata/name", json!("my.service"))]),
            "metadata.name",
            &["RayService name should be a valid DNS1035 label"],
        ),
        allow(
            "S1",
            with(service(), &[("/metadata/name", json!("s".repeat(47)))]),
        ),
        deny(
            "S2",
            timeout("soon"),
            "metadata.annotations[ray.io/initializing-timeout]",
            &["annotation ray.io/initializing-timeout has invalid format: soon"],
        ),
        deny(
            "S2",
            timeout("-5m"),
            "metadata.annotations[ray.io/initializing-timeout]",
            &["must be a positive duration, got: -5m"],
        ),
        deny(
            "S2",
            timeout("0"),
            "metadata.annotations[ray.io/initializing-timeout]",
            &["must be a positive duration"],
        ),
        deny(
            "S2",
            timeout("-30"),
            "metadata.annotations[ray.io/initializing-timeout]",
            &["must be a positive integer (seconds), got: -30"],
        ),
        allow("S2", timeout("1h30m")),
        allow("S2", timeout("600")),
        deny(
            "S3",
            with(
                service(),
                &[(
                    rcc!("/authOptions"),
                    json!({"mode": "token", "enableK8sTokenAuth": true}),
                )],
            ),
            "spec.rayClusterConfig.authOptions.enableK8sTokenAuth",
            &["K8s token auth mode is currently not supported for RayService"],
        ),
        allow(
            "S3",
            with(
                service(),
                &[(rcc!("/authOptions"), json!({"mode": "token"}))],
            ),
        ),
        deny(
            "S4",
            with(
                service(),
                &[(rcc!("/workerGroupSpecs/0/minReplicas"), json!(-1))],
            ),
            "spec.rayClusterConfig.workerGroupSpecs[0].minReplicas",
            &["negative minReplicas -1"],
        ),
        deny(
            "S4-C45",
            with(service(), &[(rcc!("/upgradeStrategy/type"), json!("None"))]),
            "spec.rayClusterConfig.upgradeStrategy.type",
            &["created by RayService"],
        ),
        allow("S4", service()),
        deny(
            "S5",
            with(
                service(),
                &[(
                    rcc!("/headGroupSpec/headService"),
                    json!({"metadata": {"name": "my-head"}}),
                )],
            ),
            "spec.rayClusterConfig.headGroupSpec.headService.metadata.name",
            &["headService.metadata.name should not be set"],
        ),
        allow(
            "S5",
            with(
                service(),
                &[(
                    rcc!("/headGroupSpec/headService"),
                    json!({"metadata": {"labels": {"a": "b"}}}),
                )],
            ),
        ),
        deny(
            "S6",
            with(
                service(),
                &[("/spec/upgradeStrategy/type", json!("Rolling"))],
            ),
            "spec.upgradeStrategy.type",
            &["Spec.UpgradeStrategy.Type value Rolling is invalid"],
        ),
        allow(
            "S6",
            with(
                service(),
                &[("/spec/upgradeStrategy/type", json!("NewCluster"))],
            ),
        ),
        deny(
            "S7",
            with(
                service(),
                &[("/spec/rayClusterDeletionDelaySeconds", json!(-1))],
            ),
            "spec.rayClusterDeletionDelaySeconds",
            &["should be a non-negative integer, got -1"],
        ),
        allow(
            "S7",
            with(
                service(),
                &[("/spec/rayClusterDeletionDelaySeconds", json!(0))],
            ),
        ),
        deny(
            "S8",
            with(
                incremental(options()),
                &[(rcc!("/enableInTreeAutoscaling"), json!(false))],
            ),
            "spec.rayClusterConfig.enableInTreeAutoscaling",
            &["Ray Autoscaler is required for NewClusterWithIncrementalUpgrade"],
        ),
        deny(
            "S8",
            with(
                incremental(options()),
                &[("/spec/upgradeStrategy/clusterUpgradeOptions", json!(null))],
            ),
            "spec.upgradeStrategy.clusterUpgradeOptions",
            &["ClusterUpgradeOptions are required"],
        ),
        deny(
            "S8",
            with(
                incremental(options()),
                &[(
                    "/spec/upgradeStrategy/clusterUpgradeOptions/maxSurgePercent",
                    json!(150),
                )],
            ),
            "spec.upgradeStrategy.clusterUpgradeOptions.maxSurgePercent",
            &["maxSurgePercent must be between 0 and 100"],
        ),
        deny(
            "S8",
            with(
                incremental(options()),
                &[(
                    "/spec/upgradeStrategy/clusterUpgradeOptions/stepSizePercent",
                    json!(60),
                )],
            ),
            "spec.upgradeStrategy.clusterUpgradeOptions.stepSizePercent",
            &["stepSizePercent must be less than or equal to maxSurgePercent"],
        ),
        deny(
            "S8",
            with(
                incremental(options()),
                &[(
                    "/spec/upgradeStrategy/clusterUpgradeOptions/stepSizePercent",
                    json!(-1),
                )],
            ),
            "spec.upgradeStrategy.clusterUpgradeOptions.stepSizePercent",
            &["between 0 and 100"],
        ),
        deny(
            "S8",
            with(
                incremental(options()),
                &[(
                    "/spec/upgradeStrategy/clusterUpgradeOptions/intervalSeconds",
                    json!(0),
                )],
            ),
            "spec.upgradeStrategy.clusterUpgradeOptions.intervalSeconds",
            &["intervalSeconds must be greater than 0"],
        ),
        deny(
            "S8",
            with(
                incremental(options()),
                &[(
                    "/spec/upgradeStrategy/clusterUpgradeOptions/gatewayClassName",
                    json!(""),
                )],
            ),
            "spec.upgradeStrategy.clusterUpgradeOptions.gatewayClassName",
            &["gatewayClassName is required"],
        ),
        allow("S8", incremental(options())),
        allow(
            "S8-default-surge",
            incremental(
                json!({"stepSizePercent": 100, "intervalSeconds": 5, "gatewayClassName": "istio"}),
            ),
        ),
        // raygate adds the serve port at admission, so only a webhook-bypassing object (which
        // the controller re-normalizes) ever lacks it.
        fixed_by_defaults(deny(
            "S9",
            with(
                service(),
                &[(
                    rcc!("/headGroupSpec/template/spec/containers/0/ports"),
                    json!([{"name": "dashboard", "containerPort": 8265}]),
                )],
            ),
            "spec.rayClusterConfig.headGroupSpec.template.spec.containers[0].ports",
            &["Please specify a port named 'serve'"],
        )),
        allow(
            "S9",
            with(
                service(),
                &[
                    (
                        rcc!("/headGroupSpec/template/spec/containers/0/ports"),
                        json!([{"name": "dashboard", "containerPort": 8265}]),
                    ),
                    (
                        "/spec/serveService",
                        json!({"metadata": {"name": "custom"}, "spec": {"ports": [{"name": "serve", "port": 8000}]}}),
                    ),
                ],
            ),
        ),
        allow(
            "S9",
            with(
                service(),
                &[(
                    rcc!("/headGroupSpec/template/spec/containers/0/ports"),
                    json!([{"name": "serve", "containerPort": 8000}]),
                )],
            ),
        ),
        deny(
            "S-serveConfigV2",
            with(
                service(),
                &[("/spec/serveConfigV2", json!("applications: [\n"))],
            ),
            "spec.serveConfigV2",
            &["serveConfigV2 is not valid YAML"],
        ),
        deny(
            "S-serveConfigV2",
            with(
                service(),
                &[("/spec/serveConfigV2", json!("just a string"))],
            ),
            "spec.serveConfigV2",
            &["must be a YAML mapping"],
        ),
        deny(
            "S-managedBy",
            with(service(), &[("/spec/managedBy", json!("x"))]),
            "spec.managedBy",
            &["must be either"],
        ),
        allow(
            "S-managedBy",
            with(
                service(),
                &[("/spec/managedBy", json!("ray.io/kuberay-operator"))],
            ),
        ),
        allow(
            "S-serveConfigV2",
            with(service(), &[("/spec/serveConfigV2", json!(""))]),
        ),
        warn(
            "S-deprecated",
            with(
                service(),
                &[("/spec/serviceUnhealthySecondThreshold", json!(900))],
            ),
            &["spec.serviceUnhealthySecondThreshold is deprecated"],
        ),
    ]
}

#[test]
fn rayservice_rules() {
    run(cases());
}
