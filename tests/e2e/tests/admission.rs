//! What a user sees through `kubectl` when raygate's webhooks are registered with a real API
//! server: defaults in the stored object, invalid objects rejected with the field named, dry
//! runs without side effects, no drift on re-apply, UPDATE rules, and a webhook outage that
//! fails closed for Ray objects only.

use raygate_e2e::kuberay_samples::{ray_objects, sample_text};
use raygate_e2e::{ControlPlane, KubectlOutput, Webhook, install_ray_crds};
use serde_json::Value;

struct Cluster {
    cp: ControlPlane,
    webhook: Webhook,
}

fn start() -> Cluster {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_ray_crds(&cp).expect("raygate's CRDs install");
    let webhook = Webhook::start(&cp).expect("start raygate webhook");
    Cluster { cp, webhook }
}

fn kubectl(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    cp.kubectl(args, stdin).expect("kubectl runs")
}

fn kubectl_ok(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(cp, args, stdin);
    assert!(out.success(), "kubectl {args:?} failed:\n{out}");
    out.stdout
}

fn apply_ok(cp: &ControlPlane, yaml: &str) -> String {
    kubectl_ok(cp, &["apply", "-f", "-"], Some(yaml))
}

/// `kubectl apply` that must be refused; returns what kubectl printed on stderr.
fn expect_rejected(cp: &ControlPlane, yaml: &str, field: &str) -> String {
    let out = kubectl(cp, &["apply", "-f", "-"], Some(yaml));
    assert!(!out.success(), "the API server admitted it:\n{out}");
    assert!(
        out.stderr.contains(field),
        "stderr does not name {field}:\n{out}"
    );
    out.stderr
}

fn get(cp: &ControlPlane, resource: &str) -> Value {
    serde_json::from_str(&kubectl_ok(cp, &["get", resource, "-o", "json"], None)).expect("JSON")
}

fn sample(name: &str) -> String {
    sample_text(name).expect("KubeRay sample")
}

const INVALID: &str = include_str!("../../data/invalid-raycluster.yaml");

#[test]
fn the_stored_sample_shows_raygates_defaults() {
    let cluster = start();
    apply_ok(&cluster.cp, &sample("ray-cluster.sample.yaml"));
    let stored = get(&cluster.cp, "raycluster/raycluster-kuberay");
    assert_eq!(
        stored["metadata"]["annotations"]["raygate.io/normalized"],
        "1"
    );
    let head = &stored["spec"]["headGroupSpec"];
    assert_eq!(head["rayStartParams"]["dashboard-host"], "0.0.0.0");
    assert_eq!(head["rayStartParams"]["num-cpus"], "1");
    let container = &head["template"]["spec"]["containers"][0];
    assert!(container["readinessProbe"].is_object(), "{container}");
    assert_eq!(
        head["template"]["spec"]["volumes"][0]["emptyDir"]["medium"],
        "Memory"
    );
    let worker = &stored["spec"]["workerGroupSpecs"][0];
    assert_eq!(worker["replicas"], 1);
    assert_eq!(worker["rayStartParams"]["memory"], "1073741824");

    let metrics = cluster.webhook.metrics().expect("metrics");
    assert!(
        metrics.contains("raygate_admission_requests_total"),
        "{metrics}"
    );
}

/// Per kind, fields raygate defaults (JSON pointer, default). A sample that sets one itself
/// keeps its own value; the test expects that instead.
fn defaults_of(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "RayCluster" => &[
            (
                "/spec/headGroupSpec/rayStartParams/dashboard-host",
                "0.0.0.0",
            ),
            ("/spec/headGroupSpec/rayStartParams/block", "true"),
        ],
        "RayJob" => &[
            ("/spec/submissionMode", "K8sJobMode"),
            ("/spec/backoffLimit", "0"),
            (
                "/spec/rayClusterSpec/headGroupSpec/rayStartParams/dashboard-host",
                "0.0.0.0",
            ),
        ],
        "RayService" => &[
            ("/spec/rayClusterDeletionDelaySeconds", "60"),
            (
                "/spec/rayClusterConfig/headGroupSpec/rayStartParams/dashboard-host",
                "0.0.0.0",
            ),
        ],
        "RayCronJob" => &[("/spec/jobTemplate/submissionMode", "K8sJobMode")],
        _ => &[],
    }
}

/// A JSON scalar as `kubectl -o jsonpath` would print it: strings bare, numbers as digits.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[test]
fn every_kuberay_sample_is_admitted_and_normalized_through_the_api_server() {
    let cluster = start();
    let samples = ray_objects().expect("KubeRay samples");
    assert!(samples.len() >= 80, "only {} Ray objects", samples.len());
    // Per kind: how many samples had a default filled in (not set by the sample itself).
    let mut autoscaler_v2 = 0;
    let mut defaulted: std::collections::BTreeMap<String, usize> = Default::default();
    for (index, (file, object)) in samples.iter().enumerate() {
        // Each in its own namespace: samples reuse names.
        let namespace = format!("sample-{index}");
        kubectl_ok(&cluster.cp, &["create", "namespace", &namespace], None);
        let kind = object["kind"].as_str().expect("kind").to_string();
        let mut object = object.clone();
        // `kubectl apply` needs a name; three samples only have generateName.
        if object["metadata"]["name"].as_str().is_none() {
            let prefix = object["metadata"]["generateName"]
                .as_str()
                .expect("a name or generateName")
                .to_string();
            object["metadata"]["name"] = Value::from(format!("{prefix}applied"));
            if let Some(metadata) = object["metadata"].as_object_mut() {
                metadata.remove("generateName");
            }
        }
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        let json = serde_json::to_string(&object).expect("JSON");
        let out = kubectl(
            &cluster.cp,
            &["apply", "-n", &namespace, "-f", "-"],
            Some(&json),
        );
        assert!(out.success(), "{file}: rejected:\n{out}");

        // Read back what the API server stored.
        let resource = format!("{}/{name}", kind.to_lowercase());
        let stored: Value = serde_json::from_str(&kubectl_ok(
            &cluster.cp,
            &["get", "-n", &namespace, &resource, "-o", "json"],
            None,
        ))
        .expect("JSON");
        assert_eq!(
            stored["metadata"]["annotations"]["raygate.io/normalized"], "1",
            "{file}: not normalized"
        );
        let mut filled_in = false;
        for &(pointer, default) in defaults_of(&kind) {
            // A group's defaults need the group: a RayJob for an existing cluster has none.
            if let Some((group, _)) = pointer.split_once("/rayStartParams")
                && object.pointer(group).is_none()
            {
                continue;
            }
            let own = object.pointer(pointer).and_then(scalar_text);
            let expected = own.clone().unwrap_or_else(|| default.to_string());
            let got = stored.pointer(pointer).and_then(scalar_text);
            assert_eq!(
                got.as_deref(),
                Some(expected.as_str()),
                "{file} ({kind} {name}): {pointer} as stored"
            );
            filled_in |= own.is_none();
        }
        if kind == "RayCluster"
            && object["spec"]["enableInTreeAutoscaling"] == true
            && object["spec"]["autoscalerOptions"]["version"] == "v2"
        {
            let head = &stored["spec"]["headGroupSpec"]["template"]["spec"];
            assert_eq!(
                head["restartPolicy"], "Never",
                "{file}: autoscaler v2 head as stored"
            );
            autoscaler_v2 += 1;
        }
        if filled_in {
            *defaulted.entry(kind).or_default() += 1;
        }
    }
    assert!(autoscaler_v2 > 0, "no autoscaler v2 RayCluster sample");
    for kind in ["RayCluster", "RayJob", "RayService", "RayCronJob"] {
        assert!(
            defaulted.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} sample showed a default raygate filled in: {defaulted:?}"
        );
    }
    eprintln!("samples with a default filled in, per kind: {defaulted:?}");
}

#[test]
fn an_invalid_cluster_is_rejected_naming_the_field() {
    let cluster = start();
    let stderr = expect_rejected(&cluster.cp, INVALID, "spec.workerGroupSpecs[0]");
    // The same shape kubectl prints for an invalid built-in object.
    assert!(
        stderr.contains("The RayCluster \"broken\" is invalid: spec.workerGroupSpecs[0]"),
        "{stderr}"
    );
    assert!(stderr.contains("minReplicas"), "{stderr}");
    let out = kubectl(&cluster.cp, &["get", "raycluster", "broken"], None);
    assert!(!out.success(), "a rejected object must not exist");
}

#[test]
fn dry_run_and_diff_have_no_side_effects() {
    let cluster = start();
    let yaml = sample("ray-cluster.sample.yaml");
    let out = kubectl_ok(
        &cluster.cp,
        &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
        Some(&yaml),
    );
    let would_store: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        would_store["metadata"]["annotations"]["raygate.io/normalized"],
        "1"
    );
    let missing = kubectl(
        &cluster.cp,
        &["get", "raycluster", "raycluster-kuberay"],
        None,
    );
    assert!(!missing.success(), "dry run created the object");

    // A dry run of an invalid object is refused the same way.
    let out = kubectl(
        &cluster.cp,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(INVALID),
    );
    assert!(
        !out.success() && out.stderr.contains("spec.workerGroupSpecs[0]"),
        "{out}"
    );

    // After a real apply, `kubectl diff` of the same manifest shows nothing to change.
    apply_ok(&cluster.cp, &yaml);
    let diff = kubectl(&cluster.cp, &["diff", "-f", "-"], Some(&yaml));
    assert_eq!(diff.code(), Some(0), "kubectl diff reports drift:\n{diff}");
}

#[test]
fn server_side_apply_twice_changes_nothing() {
    let cluster = start();
    let yaml = sample("ray-cluster.sample.yaml");
    let args = [
        "apply",
        "--server-side",
        "--field-manager=gitops",
        "-f",
        "-",
    ];
    kubectl_ok(&cluster.cp, &args, Some(&yaml));
    let first = get(&cluster.cp, "raycluster/raycluster-kuberay");
    kubectl_ok(&cluster.cp, &args, Some(&yaml));
    let second = get(&cluster.cp, "raycluster/raycluster-kuberay");
    assert_eq!(
        first["metadata"]["resourceVersion"], second["metadata"]["resourceVersion"],
        "re-applying the same manifest wrote a new version"
    );
    assert_eq!(
        first["metadata"]["generation"],
        second["metadata"]["generation"]
    );
}

#[test]
fn update_rules_are_enforced() {
    let cluster = start();
    let yaml = sample("ray-cluster.sample.yaml");
    apply_ok(&cluster.cp, &yaml);
    // numOfHosts of an existing group is immutable while the cluster runs.
    let patch = r#"[{"op": "replace", "path": "/spec/workerGroupSpecs/0/numOfHosts", "value": 2}]"#;
    let out = kubectl(
        &cluster.cp,
        &[
            "patch",
            "raycluster",
            "raycluster-kuberay",
            "--type=json",
            "-p",
            patch,
        ],
        None,
    );
    assert!(
        !out.success(),
        "numOfHosts changed on a running cluster:\n{out}"
    );
    assert!(
        out.stderr.contains("spec.workerGroupSpecs[0].numOfHosts"),
        "{out}"
    );

    // Scaling a group (what the autoscaler does) is fine.
    let scale = r#"[{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 3}]"#;
    kubectl_ok(
        &cluster.cp,
        &[
            "patch",
            "raycluster",
            "raycluster-kuberay",
            "--type=json",
            "-p",
            scale,
        ],
        None,
    );
    let stored = get(&cluster.cp, "raycluster/raycluster-kuberay");
    assert_eq!(stored["spec"]["workerGroupSpecs"][0]["replicas"], 3);
}

#[test]
fn a_stopped_webhook_fails_closed_for_ray_objects_only() {
    let mut cluster = start();
    cluster.webhook.stop();
    let out = kubectl(
        &cluster.cp,
        &["apply", "-f", "-"],
        Some(&sample("ray-cluster.sample.yaml")),
    );
    assert!(
        !out.success(),
        "a Ray object was admitted without the webhook:\n{out}"
    );
    assert!(
        out.stderr.contains("failed calling webhook") && out.stderr.contains("raygate.io"),
        "{out}"
    );
    // Everything else in the cluster is unaffected.
    kubectl_ok(
        &cluster.cp,
        &["create", "configmap", "still-works", "--from-literal=a=b"],
        None,
    );
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}"#;
    kubectl_ok(&cluster.cp, &["create", "-f", "-"], Some(pod));
}
