//! RayPolicy through the real API server: a policy applied with kubectl is enforced within
//! seconds by the running webhook (no restart), only in the namespaces it selects; switching it
//! to Warn admits with a kubectl `Warning:`; deleting it stops it; a malformed RayPolicy is
//! refused at its own apply.

use std::time::{Duration, Instant};

use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::{
    ControlPlane, KubectlOutput, Webhook, WebhookOptions, install_policy_crd, install_ray_crds,
};

/// The issue's promise: a policy change applies within 5 s.
const PROPAGATION: Duration = Duration::from_secs(5);

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

#[test]
fn a_raypolicy_applies_changes_and_stops_without_a_webhook_restart() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_ray_crds(&cp).expect("Ray CRDs install");
    install_policy_crd(&cp).expect("RayPolicy CRD installs");
    let webhook = Webhook::start_with(
        &cp,
        &WebhookOptions {
            watch_cluster: true,
            policy_dir: None,
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

    // Deleted: it stops applying (no warning on the next change).
    kubectl_ok(&cp, &["delete", "raypolicy", "team-quota"], None);
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

    let metrics = webhook.metrics().expect("metrics");
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
