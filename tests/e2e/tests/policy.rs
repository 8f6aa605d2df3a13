//! RayPolicy through the real API server: a policy applied with kubectl is enforced within
//! seconds by the running webhook (no restart), only in the namespaces it selects; switching it
//! to Warn admits with a kubectl `Warning:`; deleting it stops it (the create it refused just
//! before succeeds); a malformed RayPolicy is refused at its own apply. Its `status` says
//! whether it is enforced and what it counted, summed over two webhook replicas. A policy's
//! `inject` lands in objects applied server-side, and re-applying them changes nothing.

use std::time::{Duration, Instant};

use raygate_e2e::control_plane::sample_value;
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::{
    ControlPlane, KubectlOutput, Webhook, WebhookOptions, install_policy_crd, install_ray_crds,
};
use serde_json::{Value, json};

/// The issue's promise: a policy change applies within 5 s.
const PROPAGATION: Duration = Duration::from_secs(5);

/// Status is written every 5 s (the webhook's default): a report or a count shows within two
/// rounds, plus a conflict retry.
const STATUS_WAIT: Duration = Duration::from_secs(30);

fn kubectl(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    cp.kubectl(args, stdin).expect("kubectl runs")
}

fn kubectl_ok(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    let out = kubectl(cp, args, stdin);
    assert!(out.success(), "kubectl {args:?} failed:\n{out}");
    out
}

fn quota_policy(action: &str) -> String {
    format!(
        r#"apiVersion: raygate.io/v1alpha1
kind: RayPolicy
metadata:
  name: team-quota
spec:
  match:
    namespaceSelector:
      matchLabels:
        raygate.io/tier: team
  action: {action}
  rules:
    maxReplicasPerGroup:
      limit: 2
"#
    )
}

/// `ray-cluster.sample.yaml` (worker group `workergroup`, maxReplicas 5) in `namespace`.
fn apply_sample(cp: &ControlPlane, namespace: &str) -> KubectlOutput {
    let yaml = sample_text("ray-cluster.sample.yaml").expect("KubeRay sample");
    kubectl(cp, &["apply", "-n", namespace, "-f", "-"], Some(&yaml))
}

/// `kubectl create` of the same sample as `raycluster-second` in `team-a`: a new object, so a
/// refusal can only come from admission.
fn create_second_sample(cp: &ControlPlane) -> KubectlOutput {
    let yaml = sample_text("ray-cluster.sample.yaml")
        .expect("KubeRay sample")
        .replace("name: raycluster-kuberay", "name: raycluster-second");
    kubectl(cp, &["create", "-n", "team-a", "-f", "-"], Some(&yaml))
}

/// Retries `attempt` until `done` says so or the propagation deadline passes; returns the
/// last output and how long it took.
fn within_propagation(
    mut attempt: impl FnMut() -> KubectlOutput,
    done: impl Fn(&KubectlOutput) -> bool,
) -> (KubectlOutput, Duration) {
    let started = Instant::now();
    loop {
        let out = attempt();
        if done(&out) || started.elapsed() > PROPAGATION {
            return (out, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kubectl get raypolicy <name> -o json`.
fn policy_object(cp: &ControlPlane, name: &str) -> Value {
    let out = kubectl_ok(cp, &["get", "raypolicy", name, "-o", "json"], None);
    serde_json::from_str(&out.stdout).expect("kubectl prints JSON")
}

/// Polls the policy until `done` holds for it; panics with the last object after `STATUS_WAIT`.
fn wait_for_policy(
    cp: &ControlPlane,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let policy = policy_object(cp, name);
        if done(&policy) {
            eprintln!("RayPolicy {name}: {what} after {:?}", started.elapsed());
            return policy;
        }
        assert!(
            started.elapsed() < STATUS_WAIT,
            "RayPolicy {name}: not {what} within {STATUS_WAIT:?}:\n{policy:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The `Ready` condition, when reported.
fn ready(policy: &Value) -> Option<&Value> {
    policy["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

/// Ready=True for the policy's current generation: the webhook enforces what is stored.
fn ready_for_current_generation(policy: &Value) -> bool {
    let generation = &policy["metadata"]["generation"];
    policy["status"]["observedGeneration"] == *generation
        && ready(policy).is_some_and(|c| {
            c["status"] == "True"
                && c["reason"] == "Loaded"
                && c["observedGeneration"] == *generation
        })
}

fn counter(policy: &Value, name: &str) -> i64 {
    policy["status"][name].as_i64().unwrap_or_default()
}

#[test]
fn a_raypolicy_applies_changes_and_stops_without_a_webhook_restart() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_ray_crds(&cp).expect("Ray CRDs install");
    install_policy_crd(&cp).expect("RayPolicy CRD installs");
    let webhook = Webhook::start_with(
        &cp,
        &WebhookOptions {
            watch_cluster: true,
            ..WebhookOptions::default()
        },
    )
    .expect("start raygate webhook watching the cluster");

    kubectl_ok(&cp, &["create", "namespace", "team-a"], None);
    kubectl_ok(
        &cp,
        &["label", "namespace", "team-a", "raygate.io/tier=team"],
        None,
    );
    kubectl_ok(&cp, &["create", "namespace", "other"], None);

    // Deny: rejected in the team namespace with the policy's message, within seconds.
    kubectl_ok(&cp, &["apply", "-f", "-"], Some(&quota_policy("Deny")));
    let (out, took) = within_propagation(|| apply_sample(&cp, "team-a"), |o| !o.success());
    assert!(
        !out.success(),
        "still admitted {took:?} after the policy was applied:\n{out}"
    );
    eprintln!("policy enforced {took:?} after kubectl apply");
    assert!(
        out.stderr.contains(
            "The RayCluster \"raycluster-kuberay\" is invalid: \
             spec.workerGroupSpecs[0].maxReplicas: RayPolicy team-quota (maxReplicasPerGroup): worker group \"workergroup\" has maxReplicas 5, above the \
             limit of 2"
        ),
        "{out}"
    );
    assert!(
        !kubectl(
            &cp,
            &["get", "raycluster", "-n", "team-a", "raycluster-kuberay"],
            None
        )
        .success(),
        "a denied object is not stored"
    );
    // Namespaces the policy doesn't select are unaffected.
    let other = apply_sample(&cp, "other");
    assert!(other.success(), "{other}");
    assert!(!other.stderr.contains("RayPolicy"), "{other}");

    // Status: enforced (this generation), and the denial counted.
    let denied = wait_for_policy(&cp, "team-quota", "Ready with a denial counted", |p| {
        ready_for_current_generation(p) && counter(p, "denied") >= 1
    });
    let first_generation = denied["metadata"]["generation"]
        .as_i64()
        .expect("generation");

    // A second replica, as the chart runs (each has its own counts; they add up in status).
    // It registers itself, so the requests from here on go to it.
    let second = Webhook::start_with(
        &cp,
        &WebhookOptions {
            watch_cluster: true,
            ..WebhookOptions::default()
        },
    )
    .expect("start a second webhook replica");

    // Warn: the same apply succeeds, with kubectl's Warning line.
    kubectl_ok(&cp, &["apply", "-f", "-"], Some(&quota_policy("Warn")));
    let (out, took) = within_propagation(|| apply_sample(&cp, "team-a"), KubectlOutput::success);
    assert!(
        out.success(),
        "still denied {took:?} after switching to Warn:\n{out}"
    );
    assert!(
        out.stderr.contains("Warning: RayPolicy team-quota (maxReplicasPerGroup): spec.workerGroupSpecs[0].maxReplicas: worker group \"workergroup\" has maxReplicas 5"),
        "{out}"
    );

    // Status follows the new generation and counts the warning; the first replica's denials
    // are still there. Every admission in team-a was either denied or warned, and each broke
    // the rule once, so the totals equal the two replicas' violation metrics added up: no
    // replica overwrote the other's counts, and none was counted twice.
    let series = |action: &str| {
        format!(
            "raygate_policy_violations_total{{policy=\"team-quota\",rule=\"maxReplicasPerGroup\",action=\"{action}\"}}"
        )
    };
    let summed = |action: &str| {
        let series = series(action);
        // Counters: whole numbers, exact in an f64.
        (sample_value(&webhook.metrics().expect("metrics"), &series)
            + sample_value(&second.metrics().expect("metrics"), &series)) as i64
    };
    let warned = wait_for_policy(
        &cp,
        "team-quota",
        "Ready for the new generation with both replicas' counts",
        |p| {
            ready_for_current_generation(p)
                && counter(p, "warned") >= 1
                && counter(p, "denied") == summed("Deny")
                && counter(p, "warned") == summed("Warn")
        },
    );
    assert!(
        warned["metadata"]["generation"].as_i64() > Some(first_generation),
        "{warned:#}"
    );
    assert_eq!(
        counter(&warned, "matched"),
        counter(&warned, "denied") + counter(&warned, "warned"),
        "{warned:#}"
    );
    assert!(
        warned["status"]["lastMatchedTime"].is_string(),
        "{warned:#}"
    );
    // Written with server-side apply to the status subresource, under one field manager.
    let managed = kubectl_ok(
        &cp,
        &[
            "get",
            "raypolicy",
            "team-quota",
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    );
    let managed: Value = serde_json::from_str(&managed.stdout).expect("JSON");
    assert!(
        managed["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
            .iter()
            .any(|m| m["manager"] == "raygate-webhook"
                && m["operation"] == "Apply"
                && m["subresource"] == "status"),
        "{managed:#}"
    );
    // What an admin sees.
    let table = kubectl_ok(&cp, &["get", "raypolicies"], None).stdout;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "ACTION", "READY", "MATCHED", "DENIED", "WARNED", "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[..3], ["team-quota", "Warn", "True"], "{table}");

    // `raygate audit` lists the stored cluster that breaks the (Warn) policy, and only it.
    let audit =
        std::process::Command::new(raygate_e2e::webhook::raygate_binary().expect("raygate"))
            .arg("audit")
            .arg(format!("--kubeconfig={}", cp.kubeconfig_path().display()))
            .output()
            .expect("raygate audit runs");
    let report = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(
        audit.status.code(),
        Some(1),
        "{report}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert_eq!(
        report,
        "team-a/RayCluster/raycluster-kuberay:\n  [Warn] RayPolicy team-quota (maxReplicasPerGroup): \
         spec.workerGroupSpecs[0].maxReplicas: worker group \"workergroup\" has maxReplicas 5, \
         above the limit of 2\n"
    );

    // Deleting the policy stops it. First the controls: while it is stored, a change to the
    // stored cluster is warned about and, switched back to Deny, a new cluster is refused.
    let annotate = |n: u32| {
        kubectl(
            &cp,
            &[
                "annotate",
                "--overwrite",
                "-n",
                "team-a",
                "raycluster",
                "raycluster-kuberay",
                &format!("example.com/touch={n}"),
            ],
            None,
        )
    };
    let warned_change = annotate(0);
    assert!(
        warned_change.success()
            && warned_change
                .stderr
                .contains("Warning: RayPolicy team-quota"),
        "a change under the Warn policy is not warned about:\n{warned_change}"
    );
    kubectl_ok(&cp, &["apply", "-f", "-"], Some(&quota_policy("Deny")));
    let refused = |o: &KubectlOutput| o.stderr.contains("RayPolicy team-quota");
    let create_or_undo = || {
        let out = create_second_sample(&cp);
        if out.success() {
            // Admitted before the switch reached the webhook: undo it, so the next try is a
            // create again.
            let undo = ["delete", "-n", "team-a", "raycluster", "raycluster-second"];
            kubectl_ok(&cp, &undo, None);
        }
        out
    };
    let (out, took) = within_propagation(create_or_undo, refused);
    assert!(
        !out.success()
            && out
                .stderr
                .contains("RayPolicy team-quota (maxReplicasPerGroup)"),
        "a new cluster is still admitted {took:?} after switching back to Deny:\n{out}"
    );

    // Deleted: within seconds the create it refused succeeds, and a change has no warning.
    kubectl_ok(&cp, &["delete", "raypolicy", "team-quota"], None);
    let (out, took) = within_propagation(|| create_second_sample(&cp), KubectlOutput::success);
    assert!(
        out.success() && !out.stderr.contains("RayPolicy"),
        "the create is still refused {took:?} after the policy was deleted:\n{out}"
    );
    eprintln!("policy stopped applying {took:?} after kubectl delete");
    let mut touches = 0;
    let (out, took) = within_propagation(
        || {
            touches += 1;
            annotate(touches)
        },
        |o| o.success() && !o.stderr.contains("RayPolicy"),
    );
    assert!(
        out.success() && !out.stderr.contains("RayPolicy"),
        "still applied {took:?} after deletion:\n{out}"
    );

    // A malformed policy is refused at its own apply, naming the field, and is not stored.
    let malformed = r#"apiVersion: raygate.io/v1alpha1
kind: RayPolicy
metadata:
  name: broken
spec:
  rules:
    maxMemoryPerCluster:
      limit: lots
"#;
    let out = kubectl(&cp, &["apply", "-f", "-"], Some(malformed));
    assert!(!out.success(), "a malformed RayPolicy was stored:\n{out}");
    assert!(
        out.stderr.contains(
            "The RayPolicy \"broken\" is invalid: spec.rules.maxMemoryPerCluster.limit: \
             quantity \"lots\" is not a valid Kubernetes quantity"
        ),
        "{out}"
    );
    assert!(!kubectl(&cp, &["get", "raypolicy", "broken"], None).success());
    // An unknown rule is refused too (the API server's strict field validation).
    let typo = malformed.replace(
        "maxMemoryPerCluster:\n      limit: lots",
        "maxGpus:\n      limit: 1",
    );
    let out = kubectl(&cp, &["apply", "-f", "-"], Some(&typo));
    assert!(
        !out.success(),
        "a RayPolicy with an unknown rule was stored:\n{out}"
    );
    assert!(out.stderr.contains("maxGpus"), "{out}");

    // A policy stored while no webhook checked it (here: its validating configuration
    // removed) and that doesn't compile is not enforced, and its status says why.
    kubectl_ok(
        &cp,
        &["delete", "validatingwebhookconfiguration", "raygate"],
        None,
    );
    kubectl_ok(&cp, &["apply", "-f", "-"], Some(malformed));
    let broken = wait_for_policy(&cp, "broken", "reported not Ready", |p| {
        ready(p).is_some_and(|c| c["status"] == "False")
    });
    let condition = ready(&broken).expect("Ready");
    assert_eq!(condition["reason"], "Invalid", "{broken:#}");
    assert_eq!(
        broken["status"]["observedGeneration"], broken["metadata"]["generation"],
        "{broken:#}"
    );
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("not enforced: webhook replica ")
            && message.contains(
                "spec.rules.maxMemoryPerCluster.limit: quantity \"lots\" is not a valid \
                 Kubernetes quantity"
            ),
        "{message}"
    );
    second.register(&cp).expect("register the webhooks again");
    kubectl_ok(&cp, &["delete", "raypolicy", "broken"], None);

    let metrics = webhook.metrics().expect("metrics") + &second.metrics().expect("metrics");
    for expected in [
        "raygate_policy_violations_total{policy=\"team-quota\",rule=\"maxReplicasPerGroup\",action=\"Deny\"}",
        "raygate_policy_violations_total{policy=\"team-quota\",rule=\"maxReplicasPerGroup\",action=\"Warn\"}",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
}

/// GPU defaults for the `ml` namespace: every `inject` field the policy type has.
const GPU_DEFAULTS_POLICY: &str = r#"apiVersion: raygate.io/v1alpha1
kind: RayPolicy
metadata:
  name: gpu-defaults
spec:
  match:
    namespaces: [ml]
  inject:
    labels:
      cost-center: ml-research
    annotations:
      example.com/owner: platform
    priorityClassName: ray-batch
    imagePullSecrets:
    - name: registry-creds
    gpuGroups:
      tolerations:
      - key: example.com/gpu-pool
        operator: Equal
        value: ray
        effect: NoSchedule
      nodeSelector:
        example.com/accelerator: h100
"#;

/// A CPU head and one GPU worker group; the user sets its own `cost-center`.
const GPU_CLUSTER: &str = r#"apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: gpu-cluster
  namespace: ml
  labels:
    cost-center: set-by-user
spec:
  rayVersion: "2.46.0"
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.46.0
          resources:
            limits: {cpu: "2", memory: 8Gi}
  workerGroupSpecs:
  - groupName: gpu
    replicas: 1
    minReplicas: 1
    maxReplicas: 2
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.46.0-gpu
          resources:
            limits: {cpu: "8", memory: 32Gi, nvidia.com/gpu: 1}
"#;

#[test]
fn injections_land_through_server_side_apply_and_reapplying_changes_nothing() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_ray_crds(&cp).expect("Ray CRDs install");
    install_policy_crd(&cp).expect("RayPolicy CRD installs");
    let _webhook = Webhook::start_with(
        &cp,
        &WebhookOptions {
            watch_cluster: true,
            ..WebhookOptions::default()
        },
    )
    .expect("start raygate webhook watching the cluster");
    kubectl_ok(&cp, &["create", "namespace", "ml"], None);
    kubectl_ok(&cp, &["apply", "-f", "-"], Some(GPU_DEFAULTS_POLICY));
    wait_for_policy(&cp, "gpu-defaults", "Ready", ready_for_current_generation);

    let apply = [
        "apply",
        "--server-side",
        "--field-manager=gitops",
        "-f",
        "-",
    ];
    kubectl_ok(&cp, &apply, Some(GPU_CLUSTER));
    let get = || {
        let out = kubectl_ok(
            &cp,
            &["get", "raycluster", "-n", "ml", "gpu-cluster", "-o", "json"],
            None,
        );
        serde_json::from_str::<Value>(&out.stdout).expect("kubectl prints JSON")
    };
    let first = get();

    // The object: the user's label wins, the policy's annotation is added.
    let metadata = &first["metadata"];
    assert_eq!(
        metadata["labels"]["cost-center"], "set-by-user",
        "{first:#}"
    );
    assert_eq!(
        metadata["annotations"]["example.com/owner"], "platform",
        "{first:#}"
    );
    // Every Ray pod template: labels, annotations, priorityClassName, imagePullSecrets.
    let head = &first["spec"]["headGroupSpec"]["template"];
    let worker = &first["spec"]["workerGroupSpecs"][0]["template"];
    for template in [head, worker] {
        assert_eq!(
            template["metadata"]["labels"]["cost-center"], "ml-research",
            "{template:#}"
        );
        assert_eq!(
            template["metadata"]["annotations"]["example.com/owner"], "platform",
            "{template:#}"
        );
        assert_eq!(
            template["spec"]["priorityClassName"], "ray-batch",
            "{template:#}"
        );
        assert_eq!(
            template["spec"]["imagePullSecrets"],
            json!([{"name": "registry-creds"}]),
            "{template:#}"
        );
    }
    // GPU groups only: the toleration and the node selector.
    let pool_toleration = json!({
        "key": "example.com/gpu-pool", "operator": "Equal", "value": "ray", "effect": "NoSchedule"
    });
    let tolerations = |template: &Value| -> Vec<Value> {
        template["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(tolerations(worker).contains(&pool_toleration), "{worker:#}");
    assert_eq!(
        worker["spec"]["nodeSelector"]["example.com/accelerator"], "h100",
        "{worker:#}"
    );
    assert!(!tolerations(head).contains(&pool_toleration), "{head:#}");
    assert!(
        head["spec"]["nodeSelector"]["example.com/accelerator"].is_null(),
        "{head:#}"
    );

    // The same manifest again: the webhook injects into it exactly what it injected the
    // first time and nothing more, so the result is the stored object and nothing is written.
    kubectl_ok(&cp, &apply, Some(GPU_CLUSTER));
    let second = get();
    assert_eq!(
        first["metadata"]["resourceVersion"], second["metadata"]["resourceVersion"],
        "re-applying the same manifest wrote a new version:\n{second:#}"
    );
    assert_eq!(first["spec"], second["spec"]);
}

/// `raygate check --policy policies/` in a GitOps pipeline gives the verdicts the cluster
/// gives: the webhook loads the same files (`--policy-dir`), the namespaces carry the same
/// labels, and every input RayCluster is admitted or refused alike, with the same messages.
#[test]
fn raygate_check_gives_the_verdicts_of_the_cluster_with_the_same_policy_files() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let policies = repo.join("policies");
    let inputs = repo.join("tests/data/policies");
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_ray_crds(&cp).expect("Ray CRDs install");
    install_policy_crd(&cp).expect("RayPolicy CRD installs");
    let namespaces = std::fs::read_to_string(inputs.join("namespaces.yaml")).expect("namespaces");
    kubectl_ok(&cp, &["apply", "-f", "-"], Some(&namespaces));
    let _webhook = Webhook::start_with(
        &cp,
        &WebhookOptions {
            watch_cluster: true,
            policy_dir: Some(policies.clone()),
            ..WebhookOptions::default()
        },
    )
    .expect("start raygate webhook with --policy-dir policies/");

    let check =
        std::process::Command::new(raygate_e2e::webhook::raygate_binary().expect("raygate binary"))
            .arg("check")
            .arg(format!("--policy={}", policies.display()))
            .args(["--output", "json"])
            .arg(inputs.join("namespaces.yaml"))
            .arg(inputs.join("clusters.yaml"))
            .output()
            .expect("raygate check runs");
    let reports: Vec<Value> = serde_json::from_slice(&check.stdout).expect("JSON report");
    assert!(reports.len() >= 4, "{reports:#?}");
    assert!(
        reports.iter().any(|r| r["allowed"] == true)
            && reports.iter().any(|r| r["allowed"] == false),
        "the inputs exercise both verdicts: {reports:#?}"
    );

    let clusters = std::fs::read_to_string(inputs.join("clusters.yaml")).expect("clusters");
    let documents = raygate_api::manifest::parse_documents(&clusters).expect("YAML");
    for report in &reports {
        let name = report["name"].as_str().expect("name");
        let document = documents
            .iter()
            .find(|d| d["metadata"]["name"] == name)
            .expect("the reported object is an input");
        let json = serde_json::to_string(document).expect("JSON");
        let out = kubectl(&cp, &["apply", "-f", "-"], Some(&json));
        let allowed = report["allowed"] == true;
        assert_eq!(
            out.success(),
            allowed,
            "{name}: raygate check said allowed={allowed}, the cluster:\n{out}"
        );
        for error in report["errors"].as_array().into_iter().flatten() {
            let message = error["message"].as_str().expect("message");
            assert!(
                out.stderr.contains(message),
                "{name}: the cluster's answer lacks {message:?}:\n{out}"
            );
        }
        for warning in report["warnings"].as_array().into_iter().flatten() {
            let warning = warning.as_str().expect("warning");
            assert!(
                out.stderr.contains(&format!("Warning: {warning}")),
                "{name}: the cluster's answer lacks the warning {warning:?}:\n{out}"
            );
        }
    }
}
