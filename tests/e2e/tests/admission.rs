//! What a user sees through `kubectl` when raygate's webhooks are registered with a real API
//! server: defaults in the stored object, invalid objects rejected with the field named, dry
//! runs without side effects, no drift on re-apply, UPDATE rules, and a webhook outage that
//! fails closed for Ray objects only.

use std::path::PathBuf;

use raygate_api::crd::{ray_crds, to_yaml};
use raygate_e2e::{ControlPlane, KubectlOutput, Webhook};
use serde_json::Value;

struct Cluster {
    cp: ControlPlane,
    webhook: Webhook,
}

fn start() -> Cluster {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    let crds = to_yaml(&ray_crds()).expect("CRDs serialize");
    apply_ok(&cp, &crds);
    kubectl_ok(
        &cp,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/rayclusters.ray.io",
            "crd/rayjobs.ray.io",
            "crd/rayservices.ray.io",
        ],
        None,
    );
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
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/kuberay/samples")
            .join(name),
    )
    .expect("KubeRay sample")
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

#[test]
fn every_kuberay_sample_is_admitted_and_normalized_through_the_api_server() {
    let cluster = start();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kuberay/samples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("samples")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut created = 0;
    for (index, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).expect("readable");
        let ray_docs: Vec<Value> = raygate_api::manifest::parse_documents(&text)
            .expect("YAML")
            .into_iter()
            .filter(|d| {
                d["apiVersion"] == "ray.io/v1"
                    && raygate_api::admission::RAY_KINDS.contains(&d["kind"].as_str().unwrap_or(""))
            })
            .collect();
        if ray_docs.is_empty() {
            continue;
        }
        let namespace = format!("sample-{index}");
        kubectl_ok(&cluster.cp, &["create", "namespace", &namespace], None);
        for doc in ray_docs {
            let json = serde_json::to_string(&doc).expect("JSON");
            let out = kubectl(
                &cluster.cp,
                &["create", "-n", &namespace, "-o", "json", "-f", "-"],
                Some(&json),
            );
            assert!(out.success(), "{}: rejected:\n{out}", file.display());
            let stored: Value = serde_json::from_str(&out.stdout).expect("JSON");
            assert_eq!(
                stored["metadata"]["annotations"]["raygate.io/normalized"],
                "1",
                "{}: not normalized",
                file.display()
            );
            created += 1;
        }
    }
    assert!(created >= 80, "only {created} Ray objects created");
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
