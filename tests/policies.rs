//! The RayPolicies shipped in `policies/` load, and `raygate check --policy` gives the verdicts
//! `policies/README.md` documents for the inputs in `tests/data/policies/`.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn raygate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raygate"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("raygate runs")
}

fn check_json(args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut all = vec!["check", "--output", "json"];
    all.extend_from_slice(args);
    let output = raygate(&all);
    let reports: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON report ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (
        output.status.code(),
        reports.as_array().cloned().unwrap_or_default(),
    )
}

fn report<'a>(reports: &'a [Value], name: &str) -> &'a Value {
    reports
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no report for {name}"))
}

/// (policy, rule, action, field) of each violation.
fn violations(report: &Value) -> Vec<(String, String, String, String)> {
    report["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            (s("policy"), s("rule"), s("action"), s("field"))
        })
        .collect()
}

fn owned(items: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    items
        .iter()
        .map(|(a, b, c, d)| ((*a).into(), (*b).into(), (*c).into(), (*d).into()))
        .collect()
}

#[test]
fn shipped_policies_behave_as_documented() {
    let (code, reports) = check_json(&[
        "--policy",
        "policies/",
        "tests/data/policies/namespaces.yaml",
        "tests/data/policies/clusters.yaml",
    ]);
    assert_eq!(code, Some(1), "some inputs are denied");

    let too_many = report(&reports, "too-many-gpus");
    assert_eq!(too_many["allowed"], false);
    assert_eq!(
        violations(too_many),
        owned(&[
            (
                "approved-registries",
                "allowedImages",
                "Deny",
                "spec.workerGroupSpecs[0].template.spec.containers[1].image"
            ),
            ("gpu-quota-per-team", "maxGpusPerCluster", "Deny", "spec"),
        ])
    );
    let message = too_many["errors"][1]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("up to 20 GPUs") && message.contains("limit of 16"),
        "{message}"
    );

    let within = report(&reports, "within-quota");
    assert_eq!(within["allowed"], true, "{within}");
    assert!(violations(within).is_empty());
    // The GPU group got the toleration and node pool, and the pull secret, through the patch.
    let patch = within["patch"].to_string();
    for injected in [
        "node.example.com/pool",
        "nvidia.com/gpu",
        "registry-example-com",
    ] {
        assert!(patch.contains(injected), "{injected} not injected: {patch}");
    }

    let old = report(&reports, "old-ray");
    assert_eq!(
        violations(old),
        owned(&[
            (
                "production-guardrails",
                "allowedRayVersions",
                "Deny",
                "spec.rayVersion"
            ),
            (
                "production-guardrails",
                "requiredLabels",
                "Deny",
                "metadata.labels"
            ),
        ])
    );
    assert!(
        old["patch"].to_string().contains("ray-production"),
        "priority class injected"
    );

    let host = report(&reports, "host-network");
    assert_eq!(
        violations(host),
        owned(&[(
            "baseline",
            "forbiddenPodSettings",
            "Deny",
            "spec.headGroupSpec.template.spec.hostNetwork"
        )])
    );
}

#[test]
fn every_kuberay_sample_passes_the_baseline_with_at_most_warnings() {
    let dir = root().join("../shared/kuberay/samples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("KubeRay samples")
        .map(|e| e.expect("entry").path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut args = vec!["--policy", "policies/baseline.yaml"];
    args.extend(files.iter().map(String::as_str));
    let (code, reports) = check_json(&args);
    assert_eq!(code, Some(0), "{reports:#?}");
    assert!(reports.len() >= 80);
    let warned = reports
        .iter()
        .filter(|r| !violations(r).is_empty())
        .inspect(|r| {
            for (policy, rule, action, _) in violations(r) {
                assert_eq!(
                    (policy.as_str(), rule.as_str(), action.as_str()),
                    ("baseline", "requiredLimits", "Warn")
                );
            }
        })
        .count();
    assert!(
        warned > 0,
        "some samples set no limits, and the baseline says so"
    );
}

#[test]
fn text_output_shows_warnings_and_audits() {
    let dir = tempfile_dir();
    let policy = dir.join("warn.yaml");
    std::fs::write(
        &policy,
        "apiVersion: raygate.io/v1alpha1\nkind: RayPolicy\nmetadata: {name: soft}\nspec:\n  action: Warn\n  rules:\n    maxWorkerGroups: {limit: 0}\n    requiredLabels: {keys: [team], action: Audit}\n",
    )
    .expect("write policy");
    let output = raygate(&[
        "check",
        "--policy",
        policy.to_str().expect("path"),
        "tests/data/policies/clusters.yaml",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("RayCluster/within-quota warning: RayPolicy soft (maxWorkerGroups): spec.workerGroupSpecs: the cluster has 1 worker groups, above the limit of 0"),
        "{text}"
    );
    assert!(
        text.contains("RayCluster/host-network audit: soft.requiredLabels: metadata.labels: missing required label(s) team"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_broken_policy_stops_check_with_exit_2_naming_the_field() {
    let dir = tempfile_dir();
    let policy = dir.join("broken.yaml");
    std::fs::write(
        &policy,
        "apiVersion: raygate.io/v1alpha1\nkind: RayPolicy\nmetadata: {name: broken}\nspec:\n  rules:\n    maxMemoryPerCluster: {limit: lots}\n",
    )
    .expect("write policy");
    let output = raygate(&[
        "check",
        "--policy",
        dir.to_str().expect("path"),
        "tests/data/policies/clusters.yaml",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("RayPolicy \"broken\" is invalid: spec.rules.maxMemoryPerCluster.limit: quantity \"lots\""),
        "{error}"
    );
    assert!(
        output.stdout.is_empty(),
        "nothing is checked with a half-loaded policy set"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "raygate-policy-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
