//! raygate's CRDs in a real API server: plain (client-side) `kubectl apply -f` takes them,
//! `kubectl get` shows KubeRay's columns, and every KubeRay sample is stored with the CRD's
//! defaults — the compatibility promise, checked against the real thing.

use raygate_api::crd::{ray_crds, to_yaml};
use raygate_e2e::kuberay_samples::{ray_objects, sample_text};
use raygate_e2e::{ControlPlane, install_ray_crds};

fn kubectl_ok(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> String {
    let out = cp.kubectl(args, stdin).expect("run kubectl");
    assert!(out.success(), "kubectl {args:?} failed:\n{out}");
    out.stdout
}

fn install_crds(cp: &ControlPlane) {
    install_ray_crds(cp).expect("raygate's CRDs install with plain kubectl apply");
}

#[test]
fn crds_install_with_plain_kubectl_apply_and_show_kuberay_columns() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_crds(&cp);
    // Applying the same CRDs again is a no-op, not a conflict.
    let again = kubectl_ok(
        &cp,
        &["apply", "-f", "-"],
        Some(&to_yaml(&ray_crds()).expect("yaml")),
    );
    assert!(again.contains("unchanged"), "{again}");

    let sample = sample_text("ray-cluster.sample.yaml").expect("sample");
    kubectl_ok(&cp, &["apply", "-f", "-"], Some(&sample));
    let table = kubectl_ok(&cp, &["get", "rayclusters"], None);
    let header = table.lines().next().unwrap_or_default();
    for column in [
        "DESIRED WORKERS",
        "AVAILABLE WORKERS",
        "CPUS",
        "MEMORY",
        "GPUS",
        "STATUS",
        "AGE",
    ] {
        assert!(
            header.contains(column),
            "missing column {column} in {header:?}"
        );
    }
    assert!(table.contains("raycluster-kuberay"), "{table}");
    // categories: [all] — `kubectl get all` lists Ray objects, as with KubeRay.
    let all = kubectl_ok(&cp, &["get", "all"], None);
    assert!(
        all.contains("raycluster.ray.io/raycluster-kuberay"),
        "{all}"
    );
}

#[test]
fn every_kuberay_sample_is_stored_with_the_crd_defaults() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_crds(&cp);
    let samples = ray_objects().expect("KubeRay samples");
    assert!(
        samples.len() >= 80,
        "only {} Ray samples found",
        samples.len()
    );
    for (index, (file, object)) in samples.iter().enumerate() {
        let json = serde_json::to_string(object).expect("JSON");
        // Each in its own namespace: samples reuse names.
        let namespace = format!("sample-{index}");
        kubectl_ok(&cp, &["create", "namespace", &namespace], None);
        let out = cp
            // `create`, not `apply`: some samples use generateName.
            .kubectl(["create", "-n", &namespace, "-f", "-"], Some(&json))
            .expect("kubectl runs");
        assert!(out.success(), "{file}: the API server rejected it:\n{out}");
    }

    // Read one back: the API server applied our CRD defaults, as it does KubeRay's.
    let stored: serde_json::Value = serde_json::from_str(&kubectl_ok(
        &cp,
        &["get", "rayjobs", "-A", "-o", "json"],
        None,
    ))
    .expect("JSON");
    let jobs = stored["items"].as_array().expect("items");
    assert!(!jobs.is_empty());
    for job in jobs {
        assert!(job["spec"]["submissionMode"].is_string(), "{job}");
        assert!(job["spec"]["backoffLimit"].is_number(), "{job}");
        if let Some(groups) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"].as_array() {
            for group in groups {
                assert!(group["maxReplicas"].is_number(), "{group}");
                assert!(group["numOfHosts"].as_i64().is_some(), "{group}");
            }
        }
    }
}

#[test]
fn the_api_server_enforces_the_crd_rules() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_crds(&cp);
    let cluster = |spec_extra: &str| {
        format!(
            r#"{{"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {{"name": "bad"}},
            "spec": {{"headGroupSpec": {{"template": {{"spec": {{"containers": [{{"name": "h", "image": "rayproject/ray"}}]}}}}}}, {spec_extra}}}}}"#
        )
    };
    let out = cp
        .kubectl(
            ["apply", "-f", "-"],
            Some(&cluster(r#""upgradeStrategy": {"type": "Sometimes"}"#)),
        )
        .expect("kubectl runs");
    assert!(!out.success(), "accepted an invalid enum:\n{out}");
    assert!(
        out.stderr
            .contains("spec.upgradeStrategy.type: Unsupported value"),
        "{out}"
    );

    let out = cp
        .kubectl(
            ["apply", "-f", "-"],
            Some(&cluster(r#""managedBy": "someone-else""#)),
        )
        .expect("kubectl runs");
    assert!(!out.success(), "accepted an invalid managedBy:\n{out}");
    assert!(
        out.stderr.contains("managedBy field value must be either"),
        "{out}"
    );
}
