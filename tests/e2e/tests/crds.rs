//! raygate's CRDs in a real API server: plain (client-side) `kubectl apply -f` takes them,
//! `kubectl get` shows KubeRay's columns, and every KubeRay sample is stored with the CRD's
//! defaults — the compatibility promise, checked against the real thing.

use std::path::PathBuf;

use raygate_api::crd::{ray_crds, to_yaml};
use raygate_e2e::ControlPlane;

fn kubectl_ok(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> String {
    let out = cp.kubectl(args, stdin).expect("run kubectl");
    assert!(out.success(), "kubectl {args:?} failed:\n{out}");
    out.stdout
}

fn install_crds(cp: &ControlPlane) {
    let yaml = to_yaml(&ray_crds()).expect("CRDs serialize");
    // Plain client-side apply: the whole object goes into the last-applied annotation.
    kubectl_ok(cp, &["apply", "-f", "-"], Some(&yaml));
    kubectl_ok(
        cp,
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
}

fn ray_samples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kuberay/samples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("KubeRay samples at {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable sample");
        for doc in raygate_api::manifest::parse_documents(&text).expect("YAML") {
            let kind = doc["kind"].as_str().unwrap_or_default();
            if doc["apiVersion"] == "ray.io/v1" && raygate_api::admission::RAY_KINDS.contains(&kind)
            {
                let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
                out.push((
                    name.unwrap_or_default(),
                    serde_json::to_string(&doc).expect("JSON"),
                ));
            }
        }
    }
    out
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

    let sample = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/kuberay/samples/ray-cluster.sample.yaml"),
    )
    .expect("sample");
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
    let samples = ray_samples();
    assert!(
        samples.len() >= 80,
        "only {} Ray samples found",
        samples.len()
    );
    for (index, (file, json)) in samples.iter().enumerate() {
        // Each in its own namespace: samples reuse names.
        let namespace = format!("sample-{index}");
        kubectl_ok(&cp, &["create", "namespace", &namespace], None);
        let out = cp
            // `create`, not `apply`: some samples use generateName.
            .kubectl(["create", "-n", &namespace, "-f", "-"], Some(json))
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
