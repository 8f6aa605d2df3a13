//! What normalization writes into Ray objects, one case per default, and what it never does:
//! overwrite a user's value, lose an unknown field, or change an already normalized object.

mod kuberay_samples;

use raygate_api::admission::mutate;
use raygate_api::defaults::{NORMALIZED_VERSION, is_normalized, normalize};
use raygate_api::manifest::parse_documents;
use raygate_api::schema_defaults::apply_crd_defaults;
use serde_json::{Value, json};

fn object(yaml: &str) -> Value {
    let mut value = parse_documents(yaml).expect("valid YAML").remove(0);
    apply_crd_defaults(&mut value);
    value
}

fn normalized(yaml: &str) -> Value {
    let mut value = object(yaml);
    normalize(&mut value);
    value
}

const CLUSTER: &str = r#"
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: demo, namespace: ml}
spec:
  rayVersion: "2.46.0"
  headGroupSpec:
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.46.0
          resources:
            limits: {cpu: "2", memory: 8Gi}
  workerGroupSpecs:
  - groupName: gpu
    minReplicas: 1
    maxReplicas: 4
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.46.0-gpu
          resources:
            limits: {cpu: 1500m, memory: 16Gi, nvidia.com/gpu: 2}
"#;

fn head(value: &Value) -> &Value {
    &value["spec"]["headGroupSpec"]
}

fn worker(value: &Value) -> &Value {
    &value["spec"]["workerGroupSpecs"][0]
}

fn container(group: &Value) -> &Value {
    &group["template"]["spec"]["containers"][0]
}

fn port(container: &Value, name: &str) -> Option<i64> {
    container["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_i64())
}

fn env(container: &Value, name: &str) -> Option<Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

#[test]
fn head_gets_ray_ports_and_fixed_start_params() {
    let value = normalized(CLUSTER);
    let params = &head(&value)["rayStartParams"];
    assert_eq!(params["dashboard-host"], "0.0.0.0");
    assert_eq!(params["metrics-export-port"], "8080");
    assert_eq!(params["dashboard-agent-listen-port"], "52365");
    assert_eq!(params["block"], "true");
    let c = container(head(&value));
    assert_eq!(port(c, "gcs-server"), Some(6379));
    assert_eq!(port(c, "dashboard"), Some(8265));
    assert_eq!(port(c, "client"), Some(10001));
    assert_eq!(port(c, "metrics"), Some(8080));
    assert_eq!(port(c, "serve"), None, "only RayService clusters serve");
    assert!(
        worker(&value)["rayStartParams"]
            .get("dashboard-host")
            .is_none()
    );
}

#[test]
fn resources_are_derived_from_the_ray_container_limits() {
    let value = normalized(CLUSTER);
    let head_params = &head(&value)["rayStartParams"];
    assert_eq!(head_params["num-cpus"], "2");
    assert_eq!(head_params["memory"], (8u64 << 30).to_string());
    let params = &worker(&value)["rayStartParams"];
    assert_eq!(params["num-cpus"], "2", "1500m rounds up");
    assert_eq!(params["num-gpus"], "2");
    assert!(head_params.get("num-gpus").is_none());
}

#[test]
fn gpu_groups_get_the_gpu_toleration_once() {
    let value = normalized(CLUSTER);
    let tolerations = &worker(&value)["template"]["spec"]["tolerations"];
    assert_eq!(
        tolerations,
        &json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
    assert!(
        head(&value)["template"]["spec"]
            .get("tolerations")
            .is_none()
    );
    let again = normalized(&serde_json::to_string(&value).expect("serializes"));
    assert_eq!(
        again["spec"]["workerGroupSpecs"][0]["template"]["spec"]["tolerations"],
        *tolerations
    );
}

#[test]
fn accelerator_annotation_becomes_node_selector_and_ray_resource() {
    let yaml = CLUSTER.replace(
        "  - groupName: gpu\n    minReplicas: 1\n    maxReplicas: 4\n    template:\n",
        "  - groupName: gpu\n    minReplicas: 1\n    maxReplicas: 4\n    template:\n      metadata:\n        annotations: {ray.io/accelerator-type: A100}\n",
    );
    let value = normalized(&yaml);
    let group = worker(&value);
    assert_eq!(
        group["template"]["spec"]["nodeSelector"]["ray.io/accelerator-type"],
        "A100"
    );
    assert_eq!(
        group["rayStartParams"]["resources"],
        r#"'{"accelerator_type:A100":1}'"#
    );
}

#[test]
fn tpu_limits_become_the_tpu_custom_resource_and_toleration() {
    let yaml = CLUSTER.replace("nvidia.com/gpu: 2", "google.com/tpu: 4");
    let value = normalized(&yaml);
    let group = worker(&value);
    assert_eq!(group["rayStartParams"]["resources"], r#"'{"TPU":4}'"#);
    assert_eq!(
        group["template"]["spec"]["tolerations"][0]["key"],
        "google.com/tpu"
    );
}

/// Every GPU and accelerator name KubeRay knows: `num-gpus` (or the custom resource) and the
/// device's node taint tolerated, once.
#[test]
fn amd_mig_intel_and_neuron_limits_are_derived_like_kuberay() {
    let cases = [
        ("amd.com/gpu: 2", Some("2"), None, Some("amd.com/gpu")),
        (
            "nvidia.com/mig-1g.5gb: 1",
            Some("1"),
            None,
            Some("nvidia.com/gpu"),
        ),
        ("intel.com/gpu: 3", Some("3"), None, None),
        (
            "aws.amazon.com/neuroncore: 2",
            None,
            Some(r#"'{"neuron_cores":2}'"#),
            None,
        ),
    ];
    for (limit, gpus, resources, taint) in cases {
        let value = normalized(&CLUSTER.replace("nvidia.com/gpu: 2", limit));
        let group = worker(&value);
        let params = &group["rayStartParams"];
        assert_eq!(params["num-gpus"].as_str(), gpus, "{limit}");
        assert_eq!(params["resources"].as_str(), resources, "{limit}");
        let tolerations = &group["template"]["spec"]["tolerations"];
        match taint {
            Some(key) => assert_eq!(
                tolerations,
                &json!([{"key": key, "operator": "Exists", "effect": "NoSchedule"}]),
                "{limit}"
            ),
            None => assert!(tolerations.is_null(), "{limit}: {tolerations}"),
        }
    }
}

/// KubeRay adds the accelerator to a user's own `resources` (unless it names one already);
/// raygate writes the same merge, and only once.
#[test]
fn a_users_resources_get_the_accelerator_entry_merged_in() {
    let with_params = |params: &str| {
        CLUSTER
            .replace("nvidia.com/gpu: 2", "google.com/tpu: 4")
            .replace(
                "    maxReplicas: 4\n",
                &format!("    maxReplicas: 4\n    rayStartParams: {{resources: '{params}'}}\n"),
            )
    };
    let value = normalized(&with_params(r#"{"custom": 2}"#));
    let merged = &worker(&value)["rayStartParams"]["resources"];
    assert_eq!(merged, r#"'{"TPU":4,"custom":2}'"#);
    let again = normalized(&serde_json::to_string(&value).expect("serializes"));
    assert_eq!(again, value, "a second pass changes nothing");

    // A user who sized the accelerator themselves keeps their figure.
    let value = normalized(&with_params(r#"{"TPU": 1, "custom": 2}"#));
    assert_eq!(
        worker(&value)["rayStartParams"]["resources"],
        r#"{"TPU": 1, "custom": 2}"#
    );
}

#[test]
fn dev_shm_is_memory_backed_and_sized_to_the_memory_limit() {
    let value = normalized(CLUSTER);
    let spec = &worker(&value)["template"]["spec"];
    assert_eq!(
        spec["volumes"],
        json!([{"name": "shared-mem", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}])
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"],
        json!([{"name": "shared-mem", "mountPath": "/dev/shm"}])
    );
}

#[test]
fn probes_are_http_from_ray_2_53_and_exec_before() {
    let old = normalized(CLUSTER);
    let probe = &container(head(&old))["readinessProbe"];
    let command = probe["exec"]["command"][2].as_str().expect("exec probe");
    assert!(command.contains("/api/gcs_healthz"), "{command}");
    assert_eq!(probe["timeoutSeconds"], 5);
    assert_eq!(
        container(worker(&old))["livenessProbe"]["failureThreshold"],
        120
    );

    let new = normalized(&CLUSTER.replace("rayVersion: \"2.46.0\"", "rayVersion: \"2.53.0\""));
    assert_eq!(
        container(head(&new))["livenessProbe"]["httpGet"],
        json!({"path": "/api/healthz", "port": 52365})
    );
}

#[test]
fn ray_environment_is_added() {
    let value = normalized(CLUSTER);
    let c = container(worker(&value));
    assert_eq!(
        env(c, "RAY_CLUSTER_NAME").expect("set")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['ray.io/cluster']"
    );
    assert_eq!(
        env(c, "RAY_USAGE_STATS_KUBERAY_IN_USE").expect("set")["value"],
        "1"
    );
    assert_eq!(env(c, "RAY_PORT").expect("set")["value"], "6379");
    assert!(
        env(c, "RAY_ADDRESS").is_none(),
        "workers learn the head address per pod"
    );
    assert_eq!(
        env(container(head(&value)), "RAY_ADDRESS").expect("set")["value"],
        "127.0.0.1:6379"
    );
}

#[test]
fn replicas_default_to_min_and_are_clamped_with_a_warning() {
    let mut value = object(CLUSTER);
    value["spec"]["workerGroupSpecs"][0]
        .as_object_mut()
        .expect("group")
        .remove("replicas");
    normalize(&mut value);
    assert_eq!(worker(&value)["replicas"], 1);

    let mut value = object(&CLUSTER.replace("minReplicas: 1", "minReplicas: 1\n    replicas: 9"));
    let warnings = normalize(&mut value);
    assert_eq!(worker(&value)["replicas"], 4);
    assert_eq!(
        warnings,
        ["spec.workerGroupSpecs[0].replicas: 9 is outside [1, 4]; set to 4"]
    );
}

#[test]
fn autoscaling_adds_sidecar_settings_and_no_monitor() {
    let value = normalized(&CLUSTER.replace(
        "  rayVersion:",
        "  enableInTreeAutoscaling: true\n  rayVersion:",
    ));
    assert_eq!(head(&value)["rayStartParams"]["no-monitor"], "true");
    let options = &value["spec"]["autoscalerOptions"];
    assert_eq!(options["idleTimeoutSeconds"], 60);
    assert_eq!(options["upscalingMode"], "Default");
    assert_eq!(options["resources"]["limits"]["cpu"], "500m");
}

#[test]
fn autoscaler_v2_pods_never_restart_until_the_cluster_leaves_v2() {
    let autoscaler = |version: &str| {
        CLUSTER.replace(
            "  rayVersion:",
            &format!(
                "  enableInTreeAutoscaling: true\n  autoscalerOptions: {{version: {version}}}\n  rayVersion:"
            ),
        )
    };
    let v2 = autoscaler("v2");
    let first = normalized(&v2);
    for group in [head(&first), worker(&first)] {
        assert_eq!(group["template"]["spec"]["restartPolicy"], "Never");
    }
    let mut again = first.clone();
    normalize(&mut again);
    assert_eq!(again, first, "a second pass changes nothing");

    let v1 = normalized(&autoscaler("v1"));
    assert_eq!(head(&v1)["template"]["spec"].get("restartPolicy"), None);

    // kubectl apply moves the cluster to v1: the policy raygate wrote goes with v2.
    let mut moved = first.clone();
    moved["spec"]["autoscalerOptions"]["version"] = json!("v1");
    normalize(&mut moved);
    for group in [head(&moved), worker(&moved)] {
        assert_eq!(group["template"]["spec"].get("restartPolicy"), None);
    }

    // A policy the user wrote stays, whatever the version.
    let mut users = object(&v2);
    users["spec"]["workerGroupSpecs"][0]["template"]["spec"]["restartPolicy"] = json!("Never");
    users["spec"]["autoscalerOptions"]["version"] = json!("v1");
    normalize(&mut users);
    assert_eq!(worker(&users)["template"]["spec"]["restartPolicy"], "Never");
}

#[test]
fn user_values_are_never_overwritten() {
    let yaml = r#"
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: mine}
spec:
  headGroupSpec:
    rayStartParams: {dashboard-host: 127.0.0.1, num-cpus: "0", block: "true"}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.46.0
          resources: {limits: {cpu: "4", memory: 4Gi}}
          ports: [{name: gcs, containerPort: 6379}]
          env: [{name: RAY_PORT, value: "7000"}]
          readinessProbe: {tcpSocket: {port: 6379}}
"#;
    let value = normalized(yaml);
    let head = head(&value);
    assert_eq!(head["rayStartParams"]["dashboard-host"], "127.0.0.1");
    assert_eq!(
        head["rayStartParams"]["num-cpus"], "0",
        "a head that runs no tasks stays so"
    );
    let c = container(head);
    assert_eq!(port(c, "gcs"), Some(6379));
    assert_eq!(port(c, "gcs-server"), None, "port 6379 is already exposed");
    assert_eq!(env(c, "RAY_PORT").expect("kept")["value"], "7000");
    assert_eq!(c["readinessProbe"], json!({"tcpSocket": {"port": 6379}}));
}

#[test]
fn derived_values_follow_a_changed_limit_but_not_a_user_override() {
    let first = normalized(CLUSTER);
    assert_eq!(
        worker(&first)["rayStartParams"]["memory"],
        (16u64 << 30).to_string()
    );

    // kubectl apply changes the limit; the stored object still has what raygate derived.
    let mut updated = first.clone();
    updated["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]
        ["memory"] = json!("32Gi");
    normalize(&mut updated);
    assert_eq!(
        worker(&updated)["rayStartParams"]["memory"],
        (32u64 << 30).to_string()
    );
    assert_eq!(
        worker(&updated)["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"],
        "32Gi"
    );

    // The user overrides memory; raygate keeps their number from then on.
    let mut overridden = updated.clone();
    overridden["spec"]["workerGroupSpecs"][0]["rayStartParams"]["memory"] = json!("1000");
    overridden["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]
        ["memory"] = json!("64Gi");
    normalize(&mut overridden);
    assert_eq!(worker(&overridden)["rayStartParams"]["memory"], "1000");
}

#[test]
fn group_resources_map_replaces_derived_params() {
    let yaml = CLUSTER.replace(
        "  - groupName: gpu\n",
        "  - groupName: gpu\n    resources: {CPU: \"3\", custom: \"1\"}\n",
    );
    let value = normalized(&yaml);
    let params = &worker(&value)["rayStartParams"];
    assert!(params.get("num-cpus").is_none(), "{params}");
    assert!(params.get("num-gpus").is_none(), "{params}");
}

#[test]
fn rayjob_and_rayservice_defaults() {
    let job = normalized(
        "apiVersion: ray.io/v1\nkind: RayJob\nmetadata: {name: j}\nspec:\n  entrypoint: python -c 'print(1)'\n",
    );
    assert_eq!(job["spec"]["submissionMode"], "K8sJobMode");
    assert_eq!(job["spec"]["submitterConfig"]["backoffLimit"], 2);

    let sidecar = normalized(
        "apiVersion: ray.io/v1\nkind: RayJob\nmetadata: {name: j}\nspec:\n  submissionMode: SidecarMode\n",
    );
    assert!(
        sidecar["spec"].get("submitterConfig").is_none(),
        "SidecarMode forbids submitterConfig"
    );

    let service = normalized(&format!(
        "apiVersion: ray.io/v1\nkind: RayService\nmetadata: {{name: s}}\nspec:\n  rayClusterConfig:\n{}",
        CLUSTER
            .split_once("\nspec:\n")
            .expect("cluster spec")
            .1
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    ));
    assert_eq!(service["spec"]["rayClusterDeletionDelaySeconds"], 60);
    assert_eq!(service["spec"]["upgradeStrategy"]["type"], "NewCluster");
    let head = &service["spec"]["rayClusterConfig"]["headGroupSpec"];
    assert_eq!(port(container(head), "serve"), Some(8000));
    assert_eq!(
        env(container(head), "RAY_SERVE_KV_TIMEOUT_S").expect("set")["value"],
        "5"
    );
    let worker_probe = &service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
        ["containers"][0]["readinessProbe"];
    assert_eq!(worker_probe["failureThreshold"], 1);
    assert!(
        worker_probe["exec"]["command"][2]
            .as_str()
            .expect("exec")
            .contains("/-/healthz")
    );
}

#[test]
fn normalized_objects_are_stamped_and_a_second_pass_is_a_no_op() {
    let value = normalized(CLUSTER);
    assert_eq!(
        value["metadata"]["annotations"]["raygate.io/normalized"],
        NORMALIZED_VERSION
    );
    assert!(is_normalized(&value));
    let (_, patch, warnings) = mutate(&value);
    assert!(patch.0.is_empty(), "{patch:?}");
    assert!(warnings.is_empty());
}

#[test]
fn unknown_fields_survive_and_other_kinds_are_untouched() {
    let mut value = object(CLUSTER);
    value["spec"]["futureField"] = json!({"x": 1});
    value["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["newPodField"] =
        json!(true);
    normalize(&mut value);
    assert_eq!(value["spec"]["futureField"], json!({"x": 1}));
    assert_eq!(container(worker(&value))["newPodField"], true);

    let mut config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}});
    let before = config_map.clone();
    normalize(&mut config_map);
    assert_eq!(config_map, before);
}

#[test]
fn every_kuberay_sample_normalizes_idempotently() {
    let samples = kuberay_samples::ray_objects();
    assert!(samples.len() >= 80, "only {} samples", samples.len());
    for (file, mut document) in samples {
        apply_crd_defaults(&mut document);
        let (once, _, _) = mutate(&document);
        let (_, patch, _) = mutate(&once);
        assert!(patch.0.is_empty(), "{file}: second pass changed {patch:?}");
    }
}

#[test]
fn a_raycluster_with_a_serve_service_exposes_the_serve_port() {
    let yaml = CLUSTER.replace(
        "metadata: {name: demo, namespace: ml}",
        "metadata:\n  name: demo\n  annotations: {ray.io/enable-serve-service: \"true\"}",
    );
    let value = normalized(&yaml);
    assert_eq!(port(container(head(&value)), "serve"), Some(8000));
    let plain = normalized(CLUSTER);
    assert_eq!(port(container(head(&plain)), "serve"), None);
}

#[test]
fn a_raycronjob_template_gets_the_rayjob_defaults() {
    let cluster_spec: String = CLUSTER
        .split_once("\nspec:\n")
        .expect("cluster spec")
        .1
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let cron_job = normalized(&format!(
        "apiVersion: ray.io/v1\nkind: RayCronJob\nmetadata: {{name: c}}\nspec:\n  schedule: '@daily'\n  jobTemplate:\n    entrypoint: python -c 'print(1)'\n    rayClusterSpec:\n{cluster_spec}"
    ));
    let template = &cron_job["spec"]["jobTemplate"];
    assert_eq!(template["submissionMode"], "K8sJobMode");
    assert_eq!(template["backoffLimit"], 0);
    let head = &template["rayClusterSpec"]["headGroupSpec"];
    assert_eq!(port(container(head), "gcs-server"), Some(6379));
    assert_eq!(head["rayStartParams"]["dashboard-host"], "0.0.0.0");
    // The schedule itself has no defaults; a second pass changes nothing.
    assert_eq!(cron_job["spec"]["schedule"], "@daily");
    let mut again = cron_job.clone();
    raygate_api::defaults::normalize(&mut again);
    assert_eq!(again, cron_job);
}
