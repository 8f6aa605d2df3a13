//! `raygate check` and `raygate default` as a CI pipeline uses them: exit codes, kubectl-style
//! text, JSON reports, stdin, and KubeRay's samples all admitted.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn raygate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raygate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("raygate runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("raygate exits")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn samples() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/kuberay/samples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("KubeRay samples")
        .map(|e| e.expect("entry").path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    files
}

/// An invalid RayCluster followed by a ConfigMap, which `check` must skip.
fn invalid() -> String {
    let cluster = include_str!("data/invalid-raycluster.yaml");
    format!("{cluster}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ignored}}\n")
}

#[test]
fn every_kuberay_sample_is_admitted() {
    let files = samples();
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let output = raygate(&args, None);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.matches(" admitted\n").count() >= 80, "{text}");
    assert!(
        !text.contains("ConfigMap"),
        "other kinds are skipped: {text}"
    );
}

#[test]
fn an_invalid_cluster_is_denied_with_one_line_per_problem() {
    let output = raygate(&["check", "-"], Some(&invalid()));
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.starts_with("-: RayCluster/broken denied:\n"), "{text}");
    assert!(text.contains("  spec.workerGroupSpecs[0]"), "{text}");
    assert!(text.contains("minReplicas"), "{text}");
}

#[test]
fn json_output_lists_errors_warnings_and_the_patch() {
    let output = raygate(&["check", "--output", "json", "-"], Some(&invalid()));
    assert_eq!(output.status.code(), Some(1));
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let report = &reports[0];
    assert_eq!(
        reports.as_array().map(Vec::len),
        Some(1),
        "ConfigMap skipped"
    );
    assert_eq!(report["kind"], "RayCluster");
    assert_eq!(report["name"], "broken");
    assert_eq!(report["allowed"], false);
    assert!(
        report["errors"][0]["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("spec.workerGroupSpecs[0]"))
    );
    assert!(report["patch"].as_array().is_some_and(|p| !p.is_empty()));
}

/// What `kubectl get rayclusters -o json` prints (a `List`), and the same objects as a JSON
/// stream (`jq -c '.items[]'`): both are checked object by object, not skipped as other kinds.
#[test]
fn a_kubectl_list_and_a_json_stream_are_checked_object_by_object() {
    let broken: serde_json::Value = serde_json::to_value(
        raygate_api::manifest::parse_documents(include_str!("data/invalid-raycluster.yaml"))
            .expect("YAML")
            .remove(0),
    )
    .expect("JSON");
    let mut fine = serde_json::from_str::<serde_json::Value>(
        r#"{"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "fine"},
            "spec": {"headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers":
            [{"name": "ray-head", "image": "rayproject/ray:2.46.0"}]}}}}}"#,
    )
    .expect("JSON");
    fine["metadata"]["namespace"] = "default".into();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [fine, broken]});
    let stream = format!("{fine}\n{broken}\n");
    for input in [list.to_string(), stream] {
        let output = raygate(&["check", "--output", "json", "-"], Some(&input));
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        let reports: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let verdicts: Vec<(&str, bool)> = reports
            .as_array()
            .expect("reports")
            .iter()
            .map(|r| (r["name"].as_str().unwrap_or(""), r["allowed"] == true))
            .collect();
        assert_eq!(verdicts, [("fine", true), ("broken", false)], "{input}");
    }
}

#[test]
fn unreadable_input_exits_2_with_file_line_and_column() {
    let output = raygate(&["check", "-"], Some("kind: RayCluster\nspec: [unclosed\n"));
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("-:2:"), "{error}");

    let missing = raygate(&["check", "/nonexistent/file.yaml"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/file.yaml"));
}

#[test]
fn default_prints_the_stored_form_and_passes_other_kinds_through() {
    let valid = invalid().replace("minReplicas: 3", "minReplicas: 1");
    let output = raygate(&["default", "-"], Some(&valid));
    assert_eq!(output.status.code(), Some(0));
    let documents =
        raygate_api::manifest::parse_documents(&stdout(&output)).expect("valid YAML output");
    assert_eq!(documents.len(), 2);
    let cluster = &documents[0];
    assert_eq!(
        cluster["metadata"]["annotations"]["raygate.io/normalized"],
        "1"
    );
    assert_eq!(cluster["spec"]["workerGroupSpecs"][0]["replicas"], 1);
    assert_eq!(
        cluster["spec"]["headGroupSpec"]["rayStartParams"]["dashboard-host"],
        "0.0.0.0"
    );
    assert_eq!(
        documents[1],
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ignored"}})
    );
}

#[test]
fn crd_prints_the_ray_crds_and_raypolicy() {
    let output = raygate(&["crd"], None);
    assert_eq!(output.status.code(), Some(0));
    let documents = raygate_api::manifest::parse_documents(&stdout(&output)).expect("YAML");
    let names: Vec<_> = documents
        .iter()
        .map(|d| d["metadata"]["name"].clone())
        .collect();
    assert_eq!(
        names,
        [
            "rayclusters.ray.io",
            "rayjobs.ray.io",
            "rayservices.ray.io",
            "raycronjobs.ray.io",
            "raypolicies.raygate.io"
        ]
    );
}

#[test]
fn a_raycronjob_with_a_bad_schedule_is_denied_naming_the_field() {
    let yaml = "apiVersion: ray.io/v1\nkind: RayCronJob\nmetadata: {name: nightly}\nspec:\n  \
                schedule: '0 25 * * *'\n  jobTemplate:\n    entrypoint: python train.py\n    \
                clusterSelector: {ray.io/cluster: shared}\n";
    let output = raygate(&["check", "-"], Some(yaml));
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.contains("RayCronJob/nightly denied:"), "{text}");
    assert!(
        text.contains("  spec.schedule: invalid cron schedule \"0 25 * * *\": hour field \"25\": 25 is out of range [0, 23]"),
        "{text}"
    );
}
