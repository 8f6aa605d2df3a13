//! One denied and one admitted case per RayJob rule (behaviour.md §3.2, §3.4), named by rule id.

mod validation_support;

use serde_json::{Value, json};
use validation_support::{Case, allow, deny, job, run, warn, with};

macro_rules! rc {
    ($rest:literal) => {
        concat!("/spec/rayClusterSpec", $rest)
    };
}

const DS: &str = "/spec/deletionStrategy";

fn selector_job() -> Value {
    with(
        job(),
        &[
            ("/spec/rayClusterSpec", json!(null)),
            ("/spec/clusterSelector", json!({"ray.io/cluster": "shared"})),
            ("/spec/shutdownAfterJobFinishes", json!(false)),
        ],
    )
}

fn rules(rules: Value) -> Value {
    with(
        job(),
        &[
            ("/spec/shutdownAfterJobFinishes", json!(false)),
            (DS, json!({"deletionRules": rules})),
        ],
    )
}

fn rule(policy: &str, status: &str, ttl: i64) -> Value {
    json!({"policy": policy, "condition": {"jobStatus": status, "ttlSeconds": ttl}})
}

fn legacy(on_success: Value, on_failure: Value) -> Value {
    with(
        job(),
        &[(
            DS,
            json!({"onSuccess": on_success, "onFailure": on_failure}),
        )],
    )
}

fn autoscaling(object: Value) -> Value {
    with(object, &[(rc!("/enableInTreeAutoscaling"), json!(true))])
}

fn basics() -> Vec<Case> {
    vec![
        deny(
            "J1",
            with(job(), &[("/metadata/name", json!("j".repeat(48)))]),
            "metadata.name",
            &["RayJob name should be no more than 47 characters"],
        ),
        allow(
            "J1",
            with(job(), &[("/metadata/name", json!("j".repeat(47)))]),
        ),
        deny(
            "J2",
            with(job(), &[("/metadata/name", json!("1job"))]),
            "metadata.name",
            &["RayJob name should be a valid DNS1035 label"],
        ),
        allow("J2", with(job(), &[("/metadata/name", json!("job-1"))])),
        deny(
            "J3",
            with(
                job(),
                &[
                    ("/spec/suspend", json!(true)),
                    ("/spec/shutdownAfterJobFinishes", json!(false)),
                ],
            ),
            "spec.suspend",
            &["shutdownAfterJobFinishes set to false is not allowed to be suspended"],
        ),
        allow("J3", with(job(), &[("/spec/suspend", json!(true))])),
        deny(
            "J4",
            with(job(), &[("/spec/ttlSecondsAfterFinished", json!(-1))]),
            "spec.ttlSecondsAfterFinished",
            &["TTLSecondsAfterFinished must be a non-negative integer"],
        ),
        allow(
            "J4",
            with(job(), &[("/spec/ttlSecondsAfterFinished", json!(0))]),
        ),
        deny(
            "J5",
            with(
                job(),
                &[
                    ("/spec/ttlSecondsAfterFinished", json!(60)),
                    ("/spec/shutdownAfterJobFinishes", json!(false)),
                ],
            ),
            "spec.ttlSecondsAfterFinished",
            &["shutdownAfterJobFinishes set to false cannot have TTLSecondsAfterFinished (60)"],
        ),
        allow(
            "J5",
            with(job(), &[("/spec/ttlSecondsAfterFinished", json!(60))]),
        ),
        deny(
            "J-managedBy",
            with(job(), &[("/spec/managedBy", json!("me"))]),
            "spec.managedBy",
            &["the managedBy field value must be either"],
        ),
        deny(
            "J-managedBy-nested",
            with(job(), &[(rc!("/managedBy"), json!("me"))]),
            "spec.rayClusterSpec.managedBy",
            &["must be either"],
        ),
        allow(
            "J-managedBy",
            with(
                job(),
                &[("/spec/managedBy", json!("kueue.x-k8s.io/multikueue"))],
            ),
        ),
        deny(
            "J-submissionMode",
            with(job(), &[("/spec/submissionMode", json!("BatchMode"))]),
            "spec.submissionMode",
            &[
                "\"BatchMode\" is not supported",
                "K8sJobMode, HTTPMode, InteractiveMode, SidecarMode",
            ],
        ),
        allow(
            "J-submissionMode",
            with(job(), &[("/spec/submissionMode", json!("HTTPMode"))]),
        ),
        deny(
            "J-entrypointResources",
            with(job(), &[("/spec/entrypointResources", json!("{custom: 1"))]),
            "spec.entrypointResources",
            &["must be a JSON object"],
        ),
        allow(
            "J-entrypointResources",
            with(
                job(),
                &[(
                    "/spec/entrypointResources",
                    json!(r#"{"custom": 1, "other": 2.5}"#),
                )],
            ),
        ),
    ]
}

fn deletion_strategy() -> Vec<Case> {
    vec![
        allow("J6", rules(json!([rule("DeleteCluster", "SUCCEEDED", 0)]))),
        deny(
            "J7",
            with(
                rules(json!([rule("DeleteCluster", "SUCCEEDED", 0)])),
                &[("/spec/shutdownAfterJobFinishes", json!(true))],
            ),
            "spec.deletionStrategy.deletionRules",
            &[
                "spec.shutdownAfterJobFinishes and spec.deletionStrategy.deletionRules are mutually exclusive",
            ],
        ),
        deny(
            "J7",
            with(
                rules(json!([rule("DeleteCluster", "SUCCEEDED", 0)])),
                &[(
                    "/spec/deletionStrategy/onSuccess",
                    json!({"policy": "DeleteCluster"}),
                )],
            ),
            "spec.deletionStrategy",
            &["legacy policies (onSuccess/onFailure) and deletionRules cannot be used together"],
        ),
        allow(
            "J7",
            with(
                rules(json!([rule("DeleteCluster", "SUCCEEDED", 0)])),
                &[("/spec/shutdownAfterJobFinishes", json!(false))],
            ),
        ),
        allow(
            "J8",
            with(
                job(),
                &[
                    ("/spec/shutdownAfterJobFinishes", json!(false)),
                    (
                        DS,
                        json!({"onSuccess": {"policy": "DeleteCluster"}, "onFailure": {"policy": "DeleteNone"}}),
                    ),
                ],
            ),
        ),
        deny(
            "J8",
            with(job(), &[(DS, json!({}))]),
            "spec.deletionStrategy",
            &["requires either BOTH onSuccess and onFailure, OR the deletionRules field"],
        ),
        deny(
            "J8",
            rules(json!([])),
            "spec.deletionStrategy.deletionRules",
            &["at least 1 item"],
        ),
        deny(
            "J9",
            rules(
                json!([{"policy": "DeleteCluster", "condition": {"jobStatus": "FAILED", "jobDeploymentStatus": "Failed"}}]),
            ),
            "spec.deletionStrategy.deletionRules[0].condition",
            &["cannot set both JobStatus and JobDeploymentStatus"],
        ),
        deny(
            "J9",
            rules(json!([{"policy": "DeleteCluster", "condition": {}}])),
            "spec.deletionStrategy.deletionRules[0].condition",
            &["exactly one of JobStatus and JobDeploymentStatus must be set"],
        ),
        deny(
            "J9",
            rules(json!([rule("DeleteCluster", "FAILED", -1)])),
            "spec.deletionStrategy.deletionRules[0].condition.ttlSeconds",
            &["TTLSeconds must be non-negative"],
        ),
        allow(
            "J9",
            rules(
                json!([{"policy": "DeleteSelf", "condition": {"jobDeploymentStatus": "Failed", "ttlSeconds": 30}}]),
            ),
        ),
        deny(
            "J10",
            with(
                selector_job(),
                &[(
                    DS,
                    json!({"deletionRules": [rule("DeleteCluster", "SUCCEEDED", 0)]}),
                )],
            ),
            "spec.deletionStrategy.deletionRules[0].policy",
            &["DeletionPolicyType 'DeleteCluster' not supported when ClusterSelector is set"],
        ),
        allow(
            "J10",
            with(
                selector_job(),
                &[(
                    DS,
                    json!({"deletionRules": [rule("DeleteSelf", "SUCCEEDED", 0)]}),
                )],
            ),
        ),
        deny(
            "J11",
            autoscaling(rules(json!([rule("DeleteWorkers", "SUCCEEDED", 0)]))),
            "spec.deletionStrategy.deletionRules[0].policy",
            &["'DeleteWorkers' not supported with autoscaling enabled"],
        ),
        allow(
            "J11",
            autoscaling(rules(json!([rule("DeleteCluster", "SUCCEEDED", 0)]))),
        ),
        deny(
            "J12",
            rules(json!([
                rule("DeleteCluster", "SUCCEEDED", 0),
                rule("DeleteCluster", "SUCCEEDED", 10)
            ])),
            "spec.deletionStrategy.deletionRules[1]",
            &["duplicate rule for DeletionPolicyType 'DeleteCluster' and JobStatus 'SUCCEEDED'"],
        ),
        allow(
            "J12",
            rules(json!([
                rule("DeleteCluster", "SUCCEEDED", 0),
                rule("DeleteCluster", "FAILED", 0)
            ])),
        ),
        deny(
            "J13",
            rules(json!([
                rule("DeleteWorkers", "SUCCEEDED", 100),
                rule("DeleteCluster", "SUCCEEDED", 10)
            ])),
            "spec.deletionStrategy.deletionRules[1].condition.ttlSeconds",
            &[
                "for JobStatus 'SUCCEEDED': DeleteCluster TTL (10) must be >= DeleteWorkers TTL (100)",
            ],
        ),
        allow(
            "J13",
            rules(json!([
                rule("DeleteWorkers", "SUCCEEDED", 10),
                rule("DeleteCluster", "SUCCEEDED", 60),
                rule("DeleteSelf", "SUCCEEDED", 600)
            ])),
        ),
        deny(
            "J14",
            with(
                job(),
                &[(DS, json!({"onSuccess": {"policy": "DeleteCluster"}}))],
            ),
            "spec.deletionStrategy.onFailure",
            &["both DeletionStrategy.OnSuccess and DeletionStrategy.OnFailure must be set"],
        ),
        deny(
            "J14",
            legacy(json!({}), json!({"policy": "DeleteCluster"})),
            "spec.deletionStrategy.onSuccess.policy",
            &["DeletionPolicyType field of DeletionStrategy.OnSuccess cannot be unset"],
        ),
        deny(
            "J14",
            with(
                legacy(
                    json!({"policy": "DeleteCluster"}),
                    json!({"policy": "DeleteSelf"}),
                ),
                &[
                    ("/spec/rayClusterSpec", json!(null)),
                    ("/spec/clusterSelector", json!({"ray.io/cluster": "c"})),
                    ("/spec/shutdownAfterJobFinishes", json!(false)),
                ],
            ),
            "spec.deletionStrategy.onSuccess.policy",
            &["the ClusterSelector mode doesn't support DeletionStrategy=DeleteCluster on success"],
        ),
        deny(
            "J14",
            autoscaling(legacy(
                json!({"policy": "DeleteWorkers"}),
                json!({"policy": "DeleteCluster"}),
            )),
            "spec.deletionStrategy.onSuccess.policy",
            &["DeleteWorkers currently does not support RayCluster with autoscaling enabled"],
        ),
        deny(
            "J14",
            legacy(
                json!({"policy": "DeleteCluster"}),
                json!({"policy": "DeleteNone"}),
            ),
            "spec.deletionStrategy.onFailure.policy",
            &["while deletion policy is 'DeleteNone'"],
        ),
        warn(
            "J14",
            legacy(
                json!({"policy": "DeleteCluster"}),
                json!({"policy": "DeleteSelf"}),
            ),
            &["deprecated; use deletionRules"],
        ),
    ]
}

fn cluster_selection_and_modes() -> Vec<Case> {
    vec![
        deny(
            "J15",
            with(
                selector_job(),
                &[
                    ("/spec/suspend", json!(true)),
                    ("/spec/shutdownAfterJobFinishes", json!(true)),
                ],
            ),
            "spec.suspend",
            &["the ClusterSelector mode doesn't support the suspend operation"],
        ),
        allow("J15", selector_job()),
        deny(
            "J16",
            with(job(), &[("/spec/rayClusterSpec", json!(null))]),
            "spec.rayClusterSpec",
            &["one of RayClusterSpec or ClusterSelector must be set"],
        ),
        warn(
            "J16",
            with(
                job(),
                &[("/spec/clusterSelector", json!({"ray.io/cluster": "shared"}))],
            ),
            &["spec.rayClusterSpec is ignored"],
        ),
        deny(
            "J17",
            with(
                selector_job(),
                &[("/spec/clusterSelector", json!({"ray.io/cluster": ""}))],
            ),
            "spec.clusterSelector[ray.io/cluster]",
            &["cluster name in ClusterSelector should not be empty"],
        ),
        deny(
            "J17",
            with(
                selector_job(),
                &[("/spec/clusterSelector", json!({"app": "x"}))],
            ),
            "spec.clusterSelector",
            &["cluster name in ClusterSelector should not be empty"],
        ),
        deny(
            "J17",
            with(
                selector_job(),
                &[("/spec/submissionMode", json!("SidecarMode"))],
            ),
            "spec.submissionMode",
            &["ClusterSelector is not supported in SidecarMode"],
        ),
        deny(
            "J17",
            with(selector_job(), &[("/spec/backoffLimit", json!(2))]),
            "spec.backoffLimit",
            &["BackoffLimit is incompatible with ClusterSelector mode"],
        ),
        allow(
            "J17",
            with(
                selector_job(),
                &[
                    ("/spec/backoffLimit", json!(0)),
                    ("/spec/submissionMode", json!("HTTPMode")),
                ],
            ),
        ),
        deny(
            "J18",
            with(
                job(),
                &[
                    ("/spec/submissionMode", json!("InteractiveMode")),
                    ("/spec/backoffLimit", json!(1)),
                ],
            ),
            "spec.backoffLimit",
            &["BackoffLimit is incompatible with InteractiveMode"],
        ),
        allow("J18", with(job(), &[("/spec/backoffLimit", json!(3))])),
        deny(
            "J19",
            with(
                job(),
                &[
                    ("/spec/submissionMode", json!("SidecarMode")),
                    (
                        "/spec/submitterPodTemplate",
                        json!({"spec": {"containers": []}}),
                    ),
                ],
            ),
            "spec.submitterPodTemplate",
            &["SidecarMode doesn't support SubmitterPodTemplate"],
        ),
        deny(
            "J19",
            with(
                job(),
                &[
                    ("/spec/submissionMode", json!("SidecarMode")),
                    ("/spec/submitterConfig", json!({"backoffLimit": 1})),
                ],
            ),
            "spec.submitterConfig",
            &["SidecarMode doesn't support SubmitterConfig"],
        ),
        deny(
            "J19",
            with(
                job(),
                &[
                    ("/spec/submissionMode", json!("SidecarMode")),
                    (
                        rc!("/headGroupSpec/template/spec/restartPolicy"),
                        json!("Always"),
                    ),
                ],
            ),
            "spec.rayClusterSpec.headGroupSpec.template.spec.restartPolicy",
            &["restartPolicy for head Pod should be Never or unset when using SidecarMode"],
        ),
        allow(
            "J19",
            with(
                job(),
                &[
                    ("/spec/submissionMode", json!("SidecarMode")),
                    (
                        rc!("/headGroupSpec/template/spec/restartPolicy"),
                        json!("Never"),
                    ),
                ],
            ),
        ),
        deny(
            "J20",
            with(
                job(),
                &[
                    (
                        rc!("/authOptions"),
                        json!({"mode": "token", "enableK8sTokenAuth": true}),
                    ),
                    (rc!("/rayVersion"), json!("2.55.0")),
                ],
            ),
            "spec.rayClusterSpec.authOptions.enableK8sTokenAuth",
            &["K8s token auth mode is currently not supported for RayJob"],
        ),
        allow(
            "J20",
            with(job(), &[(rc!("/authOptions"), json!({"mode": "token"}))]),
        ),
        deny(
            "J21",
            with(
                job(),
                &[
                    (rc!("/workerGroupSpecs/0/minReplicas"), json!(3)),
                    (rc!("/workerGroupSpecs/0/maxReplicas"), json!(2)),
                ],
            ),
            "spec.rayClusterSpec.workerGroupSpecs[0].maxReplicas",
            &["minReplicas (3) must not exceed maxReplicas (2)"],
        ),
        deny(
            "J21",
            with(
                job(),
                &[(rc!("/headGroupSpec/template/spec/containers"), json!([]))],
            ),
            "spec.rayClusterSpec.headGroupSpec.template.spec.containers",
            &["at least one container"],
        ),
        deny(
            "J21-C45",
            with(job(), &[(rc!("/upgradeStrategy/type"), json!("Recreate"))]),
            "spec.rayClusterSpec.upgradeStrategy.type",
            &["upgradeStrategy cannot be set when RayCluster is created by RayJob"],
        ),
        deny(
            "J21-C15",
            with(
                job(),
                &[
                    ("/metadata/annotations/ray.io~1ft-enabled", json!("true")),
                    (
                        rc!("/gcsFaultToleranceOptions/redisAddress"),
                        json!("r:6379"),
                    ),
                ],
            ),
            "metadata.annotations[ray.io/ft-enabled]",
            &["both set"],
        ),
        allow("J21", job()),
        deny(
            "J22",
            with(job(), &[("/spec/runtimeEnvYAML", json!("pip: [requests"))]),
            "spec.runtimeEnvYAML",
            &["failed to unmarshal RuntimeEnvYAML"],
        ),
        deny(
            "J22",
            with(
                job(),
                &[("/spec/runtimeEnvYAML", json!("- requests\n- numpy\n"))],
            ),
            "spec.runtimeEnvYAML",
            &["must be a YAML mapping"],
        ),
        allow(
            "J22",
            with(
                job(),
                &[(
                    "/spec/runtimeEnvYAML",
                    json!("pip:\n  - requests==2.26.0\nenv_vars:\n  counter_name: test\n"),
                )],
            ),
        ),
        deny(
            "J23",
            with(job(), &[("/spec/activeDeadlineSeconds", json!(0))]),
            "spec.activeDeadlineSeconds",
            &["activeDeadlineSeconds must be a positive integer"],
        ),
        deny(
            "J23",
            with(job(), &[("/spec/preRunningDeadlineSeconds", json!(-3))]),
            "spec.preRunningDeadlineSeconds",
            &["preRunningDeadlineSeconds must be a positive integer, got -3"],
        ),
        deny(
            "J23",
            with(job(), &[("/spec/backoffLimit", json!(-1))]),
            "spec.backoffLimit",
            &["backoffLimit must be a positive integer"],
        ),
        allow(
            "J23",
            with(
                job(),
                &[
                    ("/spec/activeDeadlineSeconds", json!(600)),
                    ("/spec/preRunningDeadlineSeconds", json!(1)),
                ],
            ),
        ),
        deny(
            "J24",
            with(job(), &[("/status/jobDeploymentStatus", json!("Waiting"))]),
            "spec.submissionMode",
            &["JobDeploymentStatus cannot be `Waiting` when SubmissionMode is not InteractiveMode"],
        ),
        allow(
            "J24",
            with(
                job(),
                &[
                    ("/status/jobDeploymentStatus", json!("Waiting")),
                    ("/spec/submissionMode", json!("InteractiveMode")),
                ],
            ),
        ),
        deny(
            "J25",
            with(
                job(),
                &[
                    ("/spec/metadata", json!({"owner": "me"})),
                    (rc!("/rayVersion"), json!("2.5.0")),
                ],
            ),
            "spec.rayClusterSpec.rayVersion",
            &["the Ray version must be at least 2.6.0 to use the metadata field"],
        ),
        allow(
            "J25",
            with(job(), &[("/spec/metadata", json!({"owner": "me"}))]),
        ),
        deny(
            "T-requests-submitter",
            with(
                job(),
                &[(
                    "/spec/submitterPodTemplate",
                    json!({"spec": {"restartPolicy": "Never", "containers": [
            {"name": "submitter", "image": "rayproject/ray:2.52.0",
             "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}}),
                )],
            ),
            "spec.submitterPodTemplate.spec.containers[0].resources.requests.cpu",
            &["cpu request (2) must not exceed its limit (1)"],
        ),
    ]
}

#[test]
fn rayjob_basics() {
    run(basics());
}

#[test]
fn rayjob_deletion_strategy() {
    run(deletion_strategy());
}

#[test]
fn rayjob_cluster_selection_and_submission_modes() {
    run(cluster_selection_and_modes());
}
