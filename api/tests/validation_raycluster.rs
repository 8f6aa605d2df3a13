//! One denied and one admitted case per RayCluster rule (behaviour.md §3.2, §3.3) and per
//! raygate topology rule, named by rule id.

mod validation_support;

use serde_json::json;
use validation_support::{Case, allow, cluster, deny, fixed_by_defaults, run, warn, with};

macro_rules! head {
    ($rest:literal) => {
        concat!("/spec/headGroupSpec", $rest)
    };
}
macro_rules! hc {
    ($rest:literal) => {
        concat!("/spec/headGroupSpec/template/spec/containers/0", $rest)
    };
}
macro_rules! w0 {
    ($rest:literal) => {
        concat!("/spec/workerGroupSpecs/0", $rest)
    };
}
macro_rules! wc {
    ($rest:literal) => {
        concat!("/spec/workerGroupSpecs/0/template/spec/containers/0", $rest)
    };
}

const HEAD_ENV0: &str = "spec.headGroupSpec.template.spec.containers[0].env[0]";

fn autoscaling_v2() -> serde_json::Value {
    with(
        cluster(),
        &[
            ("/spec/enableInTreeAutoscaling", json!(true)),
            ("/spec/autoscalerOptions/version", json!("v2")),
        ],
    )
}

fn gcs_ft(options: serde_json::Value) -> serde_json::Value {
    with(cluster(), &[("/spec/gcsFaultToleranceOptions", options)])
}

fn history(collector: serde_json::Value) -> serde_json::Value {
    with(
        cluster(),
        &[("/spec/historyServerOptions/collectorOptions", collector)],
    )
}

fn tls() -> serde_json::Value {
    with(cluster(), &[("/spec/tlsOptions/enabled", json!(true))])
}

fn names_and_groups() -> Vec<Case> {
    vec![
        deny(
            "C1",
            with(cluster(), &[("/metadata/name", json!("a".repeat(54)))]),
            "metadata.name",
            &["no more than 53 characters", "54"],
        ),
        allow(
            "C1",
            with(cluster(), &[("/metadata/name", json!("a".repeat(53)))]),
        ),
        deny(
            "C2",
            with(cluster(), &[("/metadata/name", json!("Demo_1"))]),
            "metadata.name",
            &["valid DNS1035 label", "Demo_1"],
        ),
        deny(
            "C2",
            with(cluster(), &[("/metadata/name", json!("1demo"))]),
            "metadata.name",
            &["DNS1035"],
        ),
        allow(
            "C2",
            with(cluster(), &[("/metadata/name", json!("demo-1"))]),
        ),
        deny(
            "C2-generateName",
            with(
                cluster(),
                &[
                    ("/metadata/name", json!(null)),
                    ("/metadata/generateName", json!("Demo-")),
                ],
            ),
            "metadata.generateName",
            &["DNS1035", "Demo-"],
        ),
        deny(
            "C1-generateName",
            with(
                cluster(),
                &[
                    ("/metadata/name", json!(null)),
                    ("/metadata/generateName", json!("a".repeat(49))),
                ],
            ),
            "metadata.generateName",
            &["no more than 53", "5 generated characters"],
        ),
        allow(
            "C2-generateName",
            with(
                cluster(),
                &[
                    ("/metadata/name", json!(null)),
                    ("/metadata/generateName", json!("demo-")),
                ],
            ),
        ),
        deny(
            "C3",
            with(
                cluster(),
                &[(
                    "/spec/workerGroupSpecs/1",
                    cluster()["spec"]["workerGroupSpecs"][0].clone(),
                )],
            ),
            "spec.workerGroupSpecs[1].groupName",
            &[
                "worker group names must be unique",
                "small",
                "workerGroupSpecs[0]",
            ],
        ),
        allow(
            "C3",
            with(
                cluster(),
                &[
                    (
                        "/spec/workerGroupSpecs/1",
                        cluster()["spec"]["workerGroupSpecs"][0].clone(),
                    ),
                    ("/spec/workerGroupSpecs/1/groupName", json!("large")),
                ],
            ),
        ),
        deny(
            "C3-empty",
            with(cluster(), &[(w0!("/groupName"), json!(""))]),
            "spec.workerGroupSpecs[0].groupName",
            &["must not be empty"],
        ),
        deny(
            "C4",
            with(
                cluster(),
                &[(head!("/template/spec/containers"), json!([]))],
            ),
            "spec.headGroupSpec.template.spec.containers",
            &["headGroupSpec should have at least one container"],
        ),
        deny(
            "C4",
            with(cluster(), &[(head!("/template/spec"), json!(null))]),
            "spec.headGroupSpec.template.spec.containers",
            &["at least one container"],
        ),
        allow("C4", cluster()),
        deny(
            "C5",
            with(cluster(), &[(w0!("/template/spec/containers"), json!([]))]),
            "spec.workerGroupSpecs[0].template.spec.containers",
            &[
                "workerGroupSpec should have at least one container",
                "small",
            ],
        ),
        allow(
            "C5",
            with(
                cluster(),
                &[(
                    w0!("/template/spec/containers/1"),
                    json!({"name": "sidecar", "image": "busybox"}),
                )],
            ),
        ),
        deny(
            "C7",
            with(cluster(), &[(w0!("/minReplicas"), json!(-1))]),
            "spec.workerGroupSpecs[0].minReplicas",
            &["worker group small has negative minReplicas -1"],
        ),
        deny(
            "C7",
            with(
                cluster(),
                &[
                    (w0!("/minReplicas"), json!(0)),
                    (w0!("/maxReplicas"), json!(-2)),
                ],
            ),
            "spec.workerGroupSpecs[0].maxReplicas",
            &["negative maxReplicas -2"],
        ),
        allow(
            "C7",
            with(
                cluster(),
                &[
                    (w0!("/minReplicas"), json!(0)),
                    (w0!("/maxReplicas"), json!(0)),
                ],
            ),
        ),
        deny(
            "C8",
            with(
                cluster(),
                &[
                    (w0!("/minReplicas"), json!(3)),
                    (w0!("/maxReplicas"), json!(2)),
                ],
            ),
            "spec.workerGroupSpecs[0].maxReplicas",
            &[
                "minReplicas 3 greater than maxReplicas 2",
                "minReplicas (3) must not exceed maxReplicas (2)",
            ],
        ),
        allow(
            "C8",
            with(
                cluster(),
                &[
                    (w0!("/minReplicas"), json!(2)),
                    (w0!("/maxReplicas"), json!(2)),
                ],
            ),
        ),
        allow(
            "C8-defaults",
            with(
                cluster(),
                &[
                    (w0!("/minReplicas"), json!(null)),
                    (w0!("/maxReplicas"), json!(null)),
                ],
            ),
        ),
    ]
}

fn ray_node_params() -> Vec<Case> {
    vec![
        deny(
            "C9",
            with(
                cluster(),
                &[
                    (w0!("/rayStartParams/num-cpus"), json!("1")),
                    (w0!("/resources"), json!({"CPU": "1"})),
                ],
            ),
            "spec.workerGroupSpecs[0].resources",
            &[
                "resource fields should not be set in both rayStartParams and Resources for small group",
                "num-cpus",
            ],
        ),
        deny(
            "C9-head",
            with(
                cluster(),
                &[
                    (head!("/rayStartParams/num-gpus"), json!("0")),
                    (head!("/resources"), json!({"GPU": "0"})),
                ],
            ),
            "spec.headGroupSpec.resources",
            &["for Head group"],
        ),
        allow(
            "C9",
            with(
                cluster(),
                &[(w0!("/resources"), json!({"CPU": "1", "custom": "2"}))],
            ),
        ),
        deny(
            "C10",
            with(
                cluster(),
                &[(w0!("/rayStartParams/labels"), json!("zone=a"))],
            ),
            "spec.workerGroupSpecs[0].rayStartParams.labels",
            &[
                "rayStartParams['labels'] is not supported for small group",
                "top-level Labels",
            ],
        ),
        allow(
            "C10",
            with(cluster(), &[(w0!("/labels"), json!({"zone": "a"}))]),
        ),
        deny(
            "C11",
            with(cluster(), &[(w0!("/labels"), json!({"bad key!": "x"}))]),
            "spec.workerGroupSpecs[0].labels[bad key!]",
            &["invalid label key for small group: 'bad key!'"],
        ),
        deny(
            "C11",
            with(cluster(), &[(head!("/labels"), json!({"zone": "-a"}))]),
            "spec.headGroupSpec.labels.zone",
            &["invalid label value for key 'zone' in Head group: '-a'"],
        ),
        allow(
            "C11",
            with(
                cluster(),
                &[(
                    w0!("/labels"),
                    json!({"ray.io/market-type": "spot", "zone": ""}),
                )],
            ),
        ),
    ]
}

fn autoscaler_v2_features() -> Vec<Case> {
    vec![
        deny(
            "C12",
            with(autoscaling_v2(), &[(w0!("/idleTimeoutSeconds"), json!(-1))]),
            "spec.workerGroupSpecs[0].idleTimeoutSeconds",
            &["idleTimeoutSeconds must be non-negative, got -1"],
        ),
        allow(
            "C12",
            with(autoscaling_v2(), &[(w0!("/idleTimeoutSeconds"), json!(60))]),
        ),
        deny(
            "C13",
            with(cluster(), &[(w0!("/idleTimeoutSeconds"), json!(60))]),
            "spec.workerGroupSpecs[0].idleTimeoutSeconds",
            &["idleTimeoutSeconds is set, but autoscaler v2 is not enabled"],
        ),
        allow(
            "C13",
            with(
                cluster(),
                &[
                    ("/spec/enableInTreeAutoscaling", json!(true)),
                    (
                        hc!("/env"),
                        json!([{"name": "RAY_enable_autoscaler_v2", "value": "true"}]),
                    ),
                    (w0!("/idleTimeoutSeconds"), json!(60)),
                ],
            ),
        ),
        deny(
            "C14",
            with(autoscaling_v2(), &[(w0!("/priority"), json!(5))]),
            "spec.rayVersion",
            &["priority is set, but minimum Ray version is 2.56.0, got 2.52.0"],
        ),
        deny(
            "C14",
            with(
                autoscaling_v2(),
                &[
                    (w0!("/priority"), json!(5)),
                    ("/spec/rayVersion", json!(null)),
                ],
            ),
            "spec.rayVersion",
            &["priority is set, but RayVersion was not specified"],
        ),
        deny(
            "C14",
            with(
                autoscaling_v2(),
                &[
                    (w0!("/priority"), json!(5)),
                    ("/spec/rayVersion", json!("latest")),
                ],
            ),
            "spec.rayVersion",
            &["RayVersion format is invalid: latest"],
        ),
        deny(
            "C14",
            with(
                cluster(),
                &[
                    (w0!("/priority"), json!(5)),
                    ("/spec/rayVersion", json!("2.56.0")),
                ],
            ),
            "spec.workerGroupSpecs[0].priority",
            &["priority is set to 5, but autoscaler v2 is not enabled"],
        ),
        allow(
            "C14",
            with(
                autoscaling_v2(),
                &[
                    (w0!("/priority"), json!(5)),
                    ("/spec/rayVersion", json!("2.56.0")),
                ],
            ),
        ),
        allow("C14-zero", with(cluster(), &[(w0!("/priority"), json!(0))])),
    ]
}

fn gcs_fault_tolerance() -> Vec<Case> {
    let redis = || json!({"redisAddress": "redis:6379"});
    vec![
        deny(
            "C15",
            with(
                gcs_ft(redis()),
                &[("/metadata/annotations/ray.io~1ft-enabled", json!("true"))],
            ),
            "metadata.annotations[ray.io/ft-enabled]",
            &["annotation and GcsFaultToleranceOptions are both set"],
        ),
        allow("C15", gcs_ft(redis())),
        deny(
            "C16",
            with(
                cluster(),
                &[(
                    hc!("/env"),
                    json!([{"name": "RAY_REDIS_ADDRESS", "value": "redis:6379"}]),
                )],
            ),
            HEAD_ENV0,
            &["RAY_REDIS_ADDRESS is set which implicitly enables GCS fault tolerance"],
        ),
        warn(
            "C16",
            with(
                cluster(),
                &[
                    ("/metadata/annotations/ray.io~1ft-enabled", json!("true")),
                    (
                        hc!("/env"),
                        json!([{"name": "RAY_REDIS_ADDRESS", "value": "redis:6379"}]),
                    ),
                ],
            ),
            &["ray.io/ft-enabled is deprecated"],
        ),
        deny(
            "C17",
            with(
                gcs_ft(redis()),
                &[(head!("/rayStartParams/redis-password"), json!("secret"))],
            ),
            "spec.headGroupSpec.rayStartParams.redis-password",
            &["cannot set `redis-password` in rayStartParams"],
        ),
        allow(
            "C17",
            gcs_ft(json!({"redisAddress": "redis:6379", "redisPassword": {"value": "secret"}})),
        ),
        deny(
            "C18",
            with(
                gcs_ft(redis()),
                &[(
                    hc!("/env"),
                    json!([{"name": "REDIS_PASSWORD", "value": "x"}]),
                )],
            ),
            HEAD_ENV0,
            &["cannot set `REDIS_PASSWORD` env var"],
        ),
        allow(
            "C18",
            with(
                gcs_ft(redis()),
                &[(hc!("/env"), json!([{"name": "OTHER", "value": "x"}]))],
            ),
        ),
        deny(
            "C19",
            with(
                gcs_ft(redis()),
                &[(
                    hc!("/env"),
                    json!([{"name": "RAY_REDIS_ADDRESS", "value": "r:1"}]),
                )],
            ),
            HEAD_ENV0,
            &["cannot set `RAY_REDIS_ADDRESS` env var", "RedisAddress"],
        ),
        allow(
            "C19",
            with(
                gcs_ft(json!({"redisAddress": "redis:6379"})),
                &[(hc!("/env"), json!([{"name": "RAY_ADDRESS", "value": "x"}]))],
            ),
        ),
        deny(
            "C20",
            with(
                gcs_ft(redis()),
                &[(
                    "/metadata/annotations/ray.io~1external-storage-namespace",
                    json!("ns"),
                )],
            ),
            "metadata.annotations[ray.io/external-storage-namespace]",
            &["ExternalStorageNamespace instead"],
        ),
        allow(
            "C20",
            gcs_ft(json!({"redisAddress": "redis:6379", "externalStorageNamespace": "ns"})),
        ),
        allow("C21", gcs_ft(json!({"backend": "rocksdb"}))),
        deny(
            "C22",
            gcs_ft(json!({"backend": "rocksdb", "redisAddress": "redis:6379"})),
            "spec.gcsFaultToleranceOptions.redisAddress",
            &["cannot set GcsFaultToleranceOptions.RedisAddress when backend is 'rocksdb'"],
        ),
        deny(
            "C22",
            gcs_ft(json!({"backend": "rocksdb", "redisPassword": {"value": "x"}})),
            "spec.gcsFaultToleranceOptions.redisPassword",
            &["RedisPassword when backend is 'rocksdb'"],
        ),
        allow(
            "C22",
            gcs_ft(json!({"backend": "rocksdb", "storage": {"size": "2Gi"}})),
        ),
        deny(
            "C23",
            gcs_ft(json!({"backend": "rocksdb", "storage": {"claimName": "pvc", "size": "2Gi"}})),
            "spec.gcsFaultToleranceOptions.storage.claimName",
            &["ClaimName is mutually exclusive"],
        ),
        allow(
            "C23",
            gcs_ft(
                json!({"backend": "rocksdb", "storage": {"claimName": "pvc", "subPath": "gcs"}}),
            ),
        ),
        deny(
            "C24",
            with(
                gcs_ft(json!({"backend": "rocksdb"})),
                &[(
                    hc!("/env"),
                    json!([{"name": "RAY_gcs_storage", "value": "x"}]),
                )],
            ),
            HEAD_ENV0,
            &["these are managed by KubeRay"],
        ),
        deny(
            "C24",
            with(
                gcs_ft(json!({"backend": "rocksdb"})),
                &[(
                    hc!("/volumeMounts"),
                    json!([{"name": "data", "mountPath": "/data/gcs"}]),
                )],
            ),
            "spec.headGroupSpec.template.spec.containers[0].volumeMounts[0]",
            &["mounted at /data/gcs"],
        ),
        deny(
            "C24",
            with(
                gcs_ft(json!({"backend": "rocksdb"})),
                &[(
                    head!("/template/spec/volumes"),
                    json!([{"name": "gcs-storage", "emptyDir": {}}]),
                )],
            ),
            "spec.headGroupSpec.template.spec.volumes[0]",
            &["volume named \"gcs-storage\""],
        ),
        allow(
            "C24",
            with(
                gcs_ft(redis()),
                &[(
                    hc!("/volumeMounts"),
                    json!([{"name": "gcs-storage", "mountPath": "/data/gcs"}]),
                )],
            ),
        ),
        deny(
            "C25",
            gcs_ft(json!({"redisAddress": "redis:6379", "storage": {"size": "1Gi"}})),
            "spec.gcsFaultToleranceOptions.storage",
            &["cannot set GcsFaultToleranceOptions.Storage when backend is 'redis'"],
        ),
        allow(
            "C25",
            gcs_ft(json!({"backend": "rocksdb", "storage": {"size": "1Gi"}})),
        ),
        deny(
            "C26",
            with(
                cluster(),
                &[(head!("/rayStartParams/redis-username"), json!("ray"))],
            ),
            "spec.headGroupSpec.rayStartParams.redis-username",
            &["cannot set redis username"],
        ),
        deny(
            "C26",
            with(
                cluster(),
                &[(
                    hc!("/env"),
                    json!([{"name": "REDIS_USERNAME", "value": "ray"}]),
                )],
            ),
            HEAD_ENV0,
            &["RedisUsername"],
        ),
        allow(
            "C26",
            gcs_ft(json!({"redisAddress": "redis:6379", "redisUsername": {"value": "ray"}})),
        ),
    ]
}

fn autoscaler() -> Vec<Case> {
    vec![
        allow("C27", with(cluster(), &[(w0!("/suspend"), json!(true))])),
        deny(
            "C28",
            with(
                cluster(),
                &[(
                    hc!("/env"),
                    json!([{"name": "RAY_enable_autoscaler_v2", "value": "1"}]),
                )],
            ),
            HEAD_ENV0,
            &[
                "RAY_enable_autoscaler_v2 cannot be set to '1' when enableInTreeAutoscaling is false",
            ],
        ),
        allow(
            "C28",
            with(
                cluster(),
                &[(
                    hc!("/env"),
                    json!([{"name": "RAY_enable_autoscaler_v2", "value": "false"}]),
                )],
            ),
        ),
        deny(
            "C29",
            with(autoscaling_v2(), &[(w0!("/suspend"), json!(true))]),
            "spec.workerGroupSpecs[0].suspend",
            &["worker group small cannot be suspended with Autoscaler enabled"],
        ),
        allow(
            "C29",
            with(autoscaling_v2(), &[(w0!("/suspend"), json!(false))]),
        ),
        deny(
            "C30",
            with(
                autoscaling_v2(),
                &[(
                    hc!("/env"),
                    json!([{"name": "RAY_enable_autoscaler_v2", "value": "true"}]),
                )],
            ),
            "spec.autoscalerOptions.version",
            &[
                "both .spec.autoscalerOptions.version",
                "please only use the former",
            ],
        ),
        allow("C30", autoscaling_v2()),
        deny(
            "C31",
            with(
                autoscaling_v2(),
                &[(w0!("/template/spec/restartPolicy"), json!("Always"))],
            ),
            "spec.workerGroupSpecs[0].template.spec.restartPolicy",
            &[
                "restartPolicy for worker group small should be Never or unset when using autoscaler V2",
            ],
        ),
        deny(
            "C31",
            with(
                autoscaling_v2(),
                &[(head!("/template/spec/restartPolicy"), json!("OnFailure"))],
            ),
            "spec.headGroupSpec.template.spec.restartPolicy",
            &["restartPolicy for head Pod should be Never or unset"],
        ),
        allow(
            "C31",
            with(
                autoscaling_v2(),
                &[(w0!("/template/spec/restartPolicy"), json!("Never"))],
            ),
        ),
        warn(
            "C32",
            with(
                cluster(),
                &[
                    ("/spec/enableInTreeAutoscaling", json!(true)),
                    ("/spec/autoscalerOptions/version", json!("v1")),
                    (w0!("/template/spec/restartPolicy"), json!("Always")),
                ],
            ),
            &["restartPolicy for worker groups [small]", "autoscaler V1"],
        ),
        allow(
            "C32",
            with(
                cluster(),
                &[
                    ("/spec/enableInTreeAutoscaling", json!(true)),
                    ("/spec/autoscalerOptions/version", json!("v1")),
                    (w0!("/template/spec/restartPolicy"), json!("Never")),
                ],
            ),
        ),
        deny(
            "C33",
            with(
                autoscaling_v2(),
                &[("/spec/autoscalerOptions/idleTimeoutSeconds", json!(-5))],
            ),
            "spec.autoscalerOptions.idleTimeoutSeconds",
            &["must be non-negative, got -5"],
        ),
        allow(
            "C33",
            with(
                autoscaling_v2(),
                &[("/spec/autoscalerOptions/idleTimeoutSeconds", json!(0))],
            ),
        ),
        deny(
            "C34",
            with(
                autoscaling_v2(),
                &[(
                    "/spec/autoscalerOptions/env",
                    json!([{"name": "KUBERAY_GEN_AUTOSCALER_START_CMD", "value": "x"}]),
                )],
            ),
            "spec.autoscalerOptions.env[0]",
            &["must not contain KUBERAY_GEN_AUTOSCALER_START_CMD"],
        ),
        allow(
            "C34",
            with(
                autoscaling_v2(),
                &[(
                    "/spec/autoscalerOptions/env",
                    json!([{"name": "FOO", "value": "x"}]),
                )],
            ),
        ),
        warn(
            "T-autoscalerOptions-unused",
            with(
                cluster(),
                &[("/spec/autoscalerOptions/idleTimeoutSeconds", json!(30))],
            ),
            &["autoscalerOptions has no effect"],
        ),
    ]
}

fn history_server() -> Vec<Case> {
    let s3 = || {
        json!({"image": "collector:1", "env": [
        {"name": "STORAGE_BACKEND", "value": "S3"}, {"name": "S3_REGION", "value": "us-east-1"}]})
    };
    vec![
        deny(
            "C35",
            with(cluster(), &[("/spec/historyServerOptions", json!({}))]),
            "spec.historyServerOptions.collectorOptions",
            &["collectorOptions must be set"],
        ),
        deny(
            "C35-image",
            with(
                history(s3()),
                &[(
                    "/spec/historyServerOptions/collectorOptions/image",
                    json!(null),
                )],
            ),
            "spec.historyServerOptions.collectorOptions.image",
            &["image must be set"],
        ),
        deny(
            "C35-env",
            with(
                history(s3()),
                &[(
                    "/spec/historyServerOptions/collectorOptions/env/2",
                    json!({"name": "POD_IP", "value": "x"}),
                )],
            ),
            "spec.historyServerOptions.collectorOptions.env[2]",
            &["must not contain POD_IP"],
        ),
        deny(
            "C35-backend",
            history(json!({"image": "collector:1"})),
            "spec.historyServerOptions.collectorOptions.env",
            &["STORAGE_BACKEND environment variable must be set"],
        ),
        deny(
            "C35-s3",
            with(
                history(s3()),
                &[(
                    "/spec/historyServerOptions/collectorOptions/env/1",
                    json!(null),
                )],
            ),
            "spec.historyServerOptions.collectorOptions.env",
            &["S3_REGION environment variable must be set when STORAGE_BACKEND is S3"],
        ),
        deny(
            "C35-azure",
            history(
                json!({"image": "c:1", "env": [{"name": "STORAGE_BACKEND", "value": "azureblob"}]}),
            ),
            "spec.historyServerOptions.collectorOptions.env",
            &["either AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL"],
        ),
        deny(
            "C35-container",
            with(
                history(s3()),
                &[(
                    w0!("/template/spec/containers/1"),
                    json!({"name": "ray-history-collector", "image": "x"}),
                )],
            ),
            "spec.workerGroupSpecs[0].template.spec.containers[1].name",
            &["must not define a container with name 'ray-history-collector'"],
        ),
        allow("C35", history(s3())),
        // Admitted, but not built by raygate's controller yet: said at apply time.
        warn(
            "N-historyServerOptions",
            history(s3()),
            &["spec.historyServerOptions: raygate does not add the history-server collector"],
        ),
        allow(
            "C35-oss",
            history(json!({"image": "c:1", "env": [
            {"name": "STORAGE_BACKEND", "value": "ALIYUNOSS"}, {"name": "OSS_BUCKET", "value": "b"},
            {"name": "OSS_ENDPOINT", "value": "e"}, {"name": "OSS_REGION", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]})),
        ),
    ]
}

fn auth() -> Vec<Case> {
    let token = |version: Option<&str>| {
        with(
            cluster(),
            &[
                ("/spec/authOptions/mode", json!("token")),
                (
                    "/spec/rayVersion",
                    version.map_or(json!(null), |v| json!(v)),
                ),
            ],
        )
    };
    vec![
        deny(
            "C36",
            token(Some("2.46.0")),
            "spec.rayVersion",
            &["authOptions.mode is 'token' but minimum Ray version is 2.52.0, got 2.46.0"],
        ),
        deny(
            "C36",
            token(None),
            "spec.rayVersion",
            &["RayVersion was not specified"],
        ),
        deny(
            "C36",
            token(Some("two")),
            "spec.rayVersion",
            &["RayVersion format is invalid: two"],
        ),
        allow("C36", token(Some("2.52.0"))),
        allow(
            "C36-disabled",
            with(
                cluster(),
                &[
                    ("/spec/authOptions/mode", json!("disabled")),
                    ("/spec/rayVersion", json!("2.0.0")),
                ],
            ),
        ),
        deny(
            "C37",
            with(
                cluster(),
                &[("/spec/authOptions/enableK8sTokenAuth", json!(true))],
            ),
            "spec.authOptions.enableK8sTokenAuth",
            &["mode not set to 'token'"],
        ),
        deny(
            "C37",
            with(
                token(Some("2.52.0")),
                &[("/spec/authOptions/enableK8sTokenAuth", json!(true))],
            ),
            "spec.rayVersion",
            &["enableK8sTokenAuth is enabled but minimum Ray version is 2.55.0, got 2.52.0"],
        ),
        deny(
            "C37",
            with(
                token(Some("2.55.0")),
                &[
                    ("/spec/authOptions/enableK8sTokenAuth", json!(true)),
                    ("/spec/authOptions/secretName", json!("s")),
                ],
            ),
            "spec.authOptions.secretName",
            &["secretName is also set"],
        ),
        allow(
            "C37",
            with(
                token(Some("2.55.0")),
                &[("/spec/authOptions/enableK8sTokenAuth", json!(true))],
            ),
        ),
    ]
}

fn network_policy_and_tls() -> Vec<Case> {
    vec![
        allow(
            "C38",
            with(cluster(), &[("/spec/networkPolicy", json!({}))]),
        ),
        deny(
            "C39",
            with(
                cluster(),
                &[(
                    "/spec/networkPolicy",
                    json!({"mode": "DenyAllEgress", "head": {"ingressRules": [{}]}}),
                )],
            ),
            "spec.networkPolicy.head.ingressRules",
            &["cannot be set when mode is \"DenyAllEgress\""],
        ),
        deny(
            "C39",
            with(
                cluster(),
                &[(
                    "/spec/networkPolicy",
                    json!({"mode": "DenyAllIngress", "worker": {"egressRules": [{}]}}),
                )],
            ),
            "spec.networkPolicy.worker.egressRules",
            &["egress is not restricted"],
        ),
        deny(
            "C39",
            with(
                cluster(),
                &[(
                    "/spec/networkPolicy",
                    json!({"mode": "DenyAllEgress", "workerGroups": [{"groupName": "small", "ingressRules": [{}]}]}),
                )],
            ),
            "spec.networkPolicy.workerGroups[0].ingressRules",
            &["cannot be set when mode"],
        ),
        allow(
            "C39",
            with(
                cluster(),
                &[(
                    "/spec/networkPolicy",
                    json!({"mode": "DenyAll", "head": {"ingressRules": [{}], "egressRules": [{}]}}),
                )],
            ),
        ),
        deny(
            "C40",
            with(
                cluster(),
                &[
                    ("/spec/networkPolicy", json!({})),
                    (w0!("/groupName"), json!("Small_Group")),
                ],
            ),
            "spec.workerGroupSpecs[0].groupName",
            &["must be a valid DNS1123 label when networkPolicy is enabled"],
        ),
        deny(
            "C40",
            with(
                cluster(),
                &[(
                    "/spec/networkPolicy",
                    json!({"workerGroups": [{"groupName": "large"}]}),
                )],
            ),
            "spec.networkPolicy.workerGroups[0].groupName",
            &["networkPolicy.workerGroups[\"large\"] does not match any group name"],
        ),
        allow(
            "C40",
            with(
                cluster(),
                &[(
                    "/spec/networkPolicy",
                    json!({"workerGroups": [{"groupName": "small"}]}),
                )],
            ),
        ),
        allow(
            "C40-no-policy",
            with(cluster(), &[(w0!("/groupName"), json!("Small_Group"))]),
        ),
        allow("C41", tls()),
        // Admitted, but not built by raygate's controller yet: said at apply time.
        warn(
            "N-tlsOptions",
            tls(),
            &["spec.tlsOptions: raygate does not set up Ray mTLS yet"],
        ),
        warn(
            "N-networkPolicy",
            with(cluster(), &[("/spec/networkPolicy", json!({}))]),
            &["spec.networkPolicy: raygate does not create NetworkPolicies yet"],
        ),
        deny(
            "C42",
            with(
                tls(),
                &[(hc!("/env"), json!([{"name": "RAY_USE_TLS", "value": "1"}]))],
            ),
            HEAD_ENV0,
            &["cannot set RAY_USE_TLS environment variable in head Pod when tlsOptions is set"],
        ),
        deny(
            "C42",
            with(
                tls(),
                &[(
                    wc!("/volumeMounts"),
                    json!([{"name": "ray-tls", "mountPath": "/certs"}]),
                )],
            ),
            "spec.workerGroupSpecs[0].template.spec.containers[0].volumeMounts[0]",
            &["volume mount named \"ray-tls\" in worker group \"small\""],
        ),
        deny(
            "C42",
            with(
                tls(),
                &[(
                    "/spec/autoscalerOptions/env",
                    json!([{"name": "RAY_TLS_CA_CERT", "value": "x"}]),
                )],
            ),
            "spec.autoscalerOptions.env[0]",
            &["RAY_TLS_CA_CERT environment variable in autoscalerOptions.env"],
        ),
        deny(
            "C42",
            with(
                tls(),
                &[(
                    "/spec/autoscalerOptions/volumeMounts",
                    json!([{"name": "certs", "mountPath": "/etc/ray/tls"}]),
                )],
            ),
            "spec.autoscalerOptions.volumeMounts[0]",
            &["at path \"/etc/ray/tls\""],
        ),
        allow(
            "C42",
            with(
                cluster(),
                &[
                    ("/spec/tlsOptions/enabled", json!(false)),
                    (hc!("/env"), json!([{"name": "RAY_USE_TLS", "value": "1"}])),
                ],
            ),
        ),
    ]
}

fn upgrade_managed_by_and_serve() -> Vec<Case> {
    vec![
        deny(
            "C45",
            with(
                cluster(),
                &[
                    (
                        "/metadata/labels/ray.io~1originated-from-crd",
                        json!("RayJob"),
                    ),
                    ("/spec/upgradeStrategy/type", json!("Recreate")),
                ],
            ),
            "spec.upgradeStrategy.type",
            &["upgradeStrategy cannot be set when RayCluster is created by RayJob"],
        ),
        allow(
            "C45",
            with(
                cluster(),
                &[("/spec/upgradeStrategy/type", json!("Recreate"))],
            ),
        ),
        deny(
            "CRD-managedBy",
            with(cluster(), &[("/spec/managedBy", json!("someone-else"))]),
            "spec.managedBy",
            &[
                "the managedBy field value must be either 'ray.io/kuberay-operator' or 'kueue.x-k8s.io/multikueue'",
                "someone-else",
            ],
        ),
        allow(
            "CRD-managedBy",
            with(
                cluster(),
                &[("/spec/managedBy", json!("kueue.x-k8s.io/multikueue"))],
            ),
        ),
        fixed_by_defaults(deny(
            "S9-raycluster",
            with(
                cluster(),
                &[
                    (
                        "/metadata/annotations/ray.io~1enable-serve-service",
                        json!("true"),
                    ),
                    (
                        hc!("/ports"),
                        json!([{"name": "dashboard", "containerPort": 8265}]),
                    ),
                ],
            ),
            "spec.headGroupSpec.template.spec.containers[0].ports",
            &["Please specify a port named 'serve'"],
        )),
        allow(
            "S9-raycluster",
            with(
                cluster(),
                &[
                    (
                        "/metadata/annotations/ray.io~1enable-serve-service",
                        json!("true"),
                    ),
                    (
                        hc!("/ports"),
                        json!([{"name": "serve-grpc", "containerPort": 9000}]),
                    ),
                ],
            ),
        ),
    ]
}

fn topology() -> Vec<Case> {
    let gpu_worker = |gpus: &str| {
        with(
            cluster(),
            &[
                (wc!("/resources/limits/nvidia.com~1gpu"), json!("1")),
                (wc!("/resources/requests/nvidia.com~1gpu"), json!("1")),
                (w0!("/rayStartParams/num-gpus"), json!(gpus)),
            ],
        )
    };
    let tpu_group = || {
        with(
            cluster(),
            &[
                (w0!("/numOfHosts"), json!(2)),
                (
                    w0!("/template/spec/nodeSelector"),
                    json!({"cloud.google.com/gke-tpu-topology": "2x2x2"}),
                ),
            ],
        )
    };
    vec![
        warn(
            "T-imageTag",
            with(
                cluster(),
                &[(wc!("/image"), json!("rayproject/ray:2.41.0-py310"))],
            ),
            &["worker group \"small\" runs Ray 2.41.0 but the head runs Ray 2.52.0"],
        ),
        allow(
            "T-imageTag",
            with(
                cluster(),
                &[(wc!("/image"), json!("rayproject/ray-ml:2.52.0-gpu"))],
            ),
        ),
        warn(
            "T-rayVersion",
            with(
                cluster(),
                &[
                    ("/spec/rayVersion", json!("2.46.0")),
                    (hc!("/image"), json!("rayproject/ray:2.41.0")),
                    (wc!("/image"), json!("rayproject/ray:2.41.0")),
                ],
            ),
            &["spec.rayVersion 2.46.0 does not match the head image's Ray 2.41.0"],
        ),
        allow(
            "T-rayVersion",
            with(
                cluster(),
                &[
                    ("/spec/rayVersion", json!("2.52")),
                    (hc!("/image"), json!("rayproject/ray:2.52.0-py310-gpu")),
                ],
            ),
        ),
        warn(
            "T-rayVersion-format",
            with(cluster(), &[("/spec/rayVersion", json!("nightly"))]),
            &["\"nightly\" is not a Ray version"],
        ),
        deny(
            "T-gpu",
            gpu_worker("2"),
            "spec.workerGroupSpecs[0].rayStartParams.num-gpus",
            &["num-gpus (2) differs from the Ray container's nvidia.com/gpu limit (1)"],
        ),
        deny(
            "T-gpu",
            gpu_worker("many"),
            "spec.workerGroupSpecs[0].rayStartParams.num-gpus",
            &["\"many\" is not a number"],
        ),
        allow("T-gpu", gpu_worker("1")),
        warn(
            "T-tpu",
            tpu_group(),
            &["multi-host TPU group", "google.com/tpu"],
        ),
        allow(
            "T-tpu",
            with(
                tpu_group(),
                &[
                    (wc!("/resources/limits/google.com~1tpu"), json!(4)),
                    (wc!("/resources/requests/google.com~1tpu"), json!(4)),
                ],
            ),
        ),
        deny(
            "T-requests",
            with(cluster(), &[(wc!("/resources/requests/cpu"), json!("2"))]),
            "spec.workerGroupSpecs[0].template.spec.containers[0].resources.requests.cpu",
            &["cpu request (2) must not exceed its limit (1)"],
        ),
        deny(
            "T-requests",
            with(
                cluster(),
                &[(hc!("/resources/requests/nvidia.com~1gpu"), json!(1))],
            ),
            "spec.headGroupSpec.template.spec.containers[0].resources.limits[nvidia.com/gpu]",
            &["nvidia.com/gpu has a request (1) but no limit"],
        ),
        deny(
            "T-requests",
            with(
                cluster(),
                &[
                    (hc!("/resources/requests/nvidia.com~1gpu"), json!(1)),
                    (hc!("/resources/limits/nvidia.com~1gpu"), json!(2)),
                ],
            ),
            "spec.headGroupSpec.template.spec.containers[0].resources.requests[nvidia.com/gpu]",
            &["must equal its limit (2)"],
        ),
        deny(
            "T-requests-init",
            with(
                cluster(),
                &[(
                    w0!("/template/spec/initContainers"),
                    json!([{"name": "init", "image": "busybox",
                "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}]),
                )],
            ),
            "spec.workerGroupSpecs[0].template.spec.initContainers[0].resources.requests.memory",
            &["memory request (2Gi)"],
        ),
        deny(
            "T-quantity",
            with(
                cluster(),
                &[(wc!("/resources/limits/memory"), json!("lots"))],
            ),
            "spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.memory",
            &["\"lots\" is not a valid Kubernetes quantity"],
        ),
        allow(
            "T-quantity",
            with(
                cluster(),
                &[
                    (wc!("/resources/limits/memory"), json!("2.5e9")),
                    (wc!("/resources/requests/memory"), json!("2000M")),
                ],
            ),
        ),
        allow(
            "T-requests",
            with(
                cluster(),
                &[
                    (wc!("/resources/requests/cpu"), json!("1000m")),
                    (wc!("/resources/requests/memory"), json!("1Gi")),
                ],
            ),
        ),
        warn(
            "T-memory",
            with(
                cluster(),
                &[
                    (wc!("/resources/limits/memory"), json!("512Mi")),
                    (wc!("/resources/requests/memory"), json!("512Mi")),
                ],
            ),
            &["worker group \"small\" memory 512Mi is below 1Gi"],
        ),
        allow(
            "T-memory",
            with(
                cluster(),
                &[
                    (wc!("/resources/limits/memory"), json!("1Gi")),
                    (wc!("/resources/requests/memory"), json!("1Gi")),
                ],
            ),
        ),
        deny(
            "T-labels",
            with(
                cluster(),
                &[(
                    head!("/template/metadata/labels"),
                    json!({"ray.io/node-type": "worker"}),
                )],
            ),
            "spec.headGroupSpec.template.metadata.labels[ray.io/node-type]",
            &[
                "label ray.io/node-type is set by the controller",
                "autoscaler",
            ],
        ),
        deny(
            "T-labels",
            with(
                cluster(),
                &[(w0!("/labels"), json!({"ray.io/group": "other"}))],
            ),
            "spec.workerGroupSpecs[0].labels[ray.io/group]",
            &["label ray.io/group"],
        ),
        deny(
            "T-labels",
            with(
                cluster(),
                &[(
                    w0!("/template/metadata/labels"),
                    json!({"ray.io/cluster": "x", "ray.io/identifier": "y", "ray.io/is-ray-node": "yes"}),
                )],
            ),
            "spec.workerGroupSpecs[0].template.metadata.labels[ray.io/is-ray-node]",
            &["ray.io/is-ray-node"],
        ),
        allow(
            "T-labels",
            with(
                cluster(),
                &[(
                    w0!("/template/metadata/labels"),
                    json!({"app": "ray", "ray.io/market-type": "spot"}),
                )],
            ),
        ),
    ]
}

#[test]
fn names_and_worker_groups() {
    run(names_and_groups());
}

#[test]
fn ray_start_params_resources_and_labels() {
    run(ray_node_params());
}

#[test]
fn autoscaler_v2_only_settings() {
    run(autoscaler_v2_features());
}

#[test]
fn gcs_fault_tolerance_rules() {
    run(gcs_fault_tolerance());
}

#[test]
fn autoscaler_rules() {
    run(autoscaler());
}

#[test]
fn history_server_rules() {
    run(history_server());
}

#[test]
fn auth_rules() {
    run(auth());
}

#[test]
fn network_policy_and_tls_rules() {
    run(network_policy_and_tls());
}

#[test]
fn upgrade_strategy_managed_by_and_serve_service() {
    run(upgrade_managed_by_and_serve());
}

#[test]
fn topology_rules() {
    run(topology());
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let object = with(
        cluster(),
        &[
            ("/metadata/name", json!("Bad_Name")),
            (w0!("/minReplicas"), json!(3)),
            (w0!("/maxReplicas"), json!(2)),
            (head!("/rayStartParams/labels"), json!("a=b")),
            (wc!("/resources/requests/cpu"), json!("4")),
        ],
    );
    let result = validation_support::validate(&object, None);
    let paths: Vec<&str> = result.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "metadata.name",
            "spec.workerGroupSpecs[0].maxReplicas",
            "spec.headGroupSpec.rayStartParams.labels",
            "spec.workerGroupSpecs[0].template.spec.containers[0].resources.requests.cpu",
        ]
    );
}

#[test]
fn the_base_objects_are_clean() {
    for object in [
        cluster(),
        validation_support::job(),
        validation_support::service(),
    ] {
        let result = validation_support::validate(&object, None);
        assert_eq!(result.errors, [], "{object:#}");
        assert_eq!(result.warnings, Vec::<String>::new(), "{object:#}");
    }
}

/// §3.2 enums (C44 and the others) are enforced by the types: a value outside the enum
/// doesn't deserialize, so it never reaches validation.
#[test]
fn enum_values_outside_the_crd_enums_do_not_parse() {
    for (pointer, value) in [
        ("/spec/upgradeStrategy/type", "Rolling"),
        ("/spec/authOptions/mode", "password"),
        ("/spec/gcsFaultToleranceOptions/backend", "etcd"),
        ("/spec/autoscalerOptions/version", "v3"),
        ("/spec/autoscalerOptions/upscalingMode", "Fast"),
        ("/spec/networkPolicy/mode", "AllowAll"),
        ("/spec/headGroupSpec/ingressOptions/pathType", "Regex"),
    ] {
        let object = with(cluster(), &[(pointer, json!(value))]);
        assert!(
            serde_json::from_value::<raygate_api::RayCluster>(object).is_err(),
            "{pointer}: {value} parsed"
        );
    }
}

#[test]
#[should_panic(expected = "1 of 1 cases failed")]
fn the_table_runner_catches_a_wrong_expectation() {
    run(vec![deny(
        "self-check",
        cluster(),
        "metadata.name",
        &["no such message"],
    )]);
}
