//! One table case per RayPolicy rule: a cluster that breaks it (the violation names the field
//! and the limit) and the same cluster within it (no violation).

mod policy_support;

use policy_support::{cluster, evaluate, found, labels, one, set, set_at};
use raygate_api::admission::{AdmissionVerdict, admit_with_policies};
use raygate_api::policy::{Action, PolicySet};
use serde_json::{Value, json};

/// The whole admission pipeline (inject, default, validate, evaluate), as the webhook runs it.
fn admit(policies: &PolicySet, object: &Value) -> AdmissionVerdict {
    admit_with_policies(
        object,
        None,
        policies,
        "team-a",
        &labels(&[("tier", "team")]),
    )
}

struct Case {
    name: &'static str,
    rules: Value,
    /// Changes the fixture so that it breaks the rule.
    breaks: fn(&mut Value),
    /// (rule, path) expected.
    expect: (&'static str, &'static str),
    /// Words the message must contain (the limit and the offending value).
    says: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "GPUs per pod",
            rules: json!({"maxGpusPerPod": {"limit": 4}}),
            breaks: |c| {
                set_at(
                    c,
                    "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits/nvidia.com~1gpu",
                    json!(8),
                )
            },
            expect: (
                "maxGpusPerPod",
                "spec.workerGroupSpecs[0].template.spec.containers[0].resources",
            ),
            says: &["8 GPUs", "limit of 4 per pod", "worker group \"gpu\""],
        },
        Case {
            name: "MIG slices and AMD GPUs count as GPUs",
            rules: json!({"maxGpusPerPod": {"limit": 2}}),
            breaks: |c| {
                set_at(
                    c,
                    "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits",
                    json!({"nvidia.com/mig-1g.10gb": 2, "amd.com/gpu": "1"}),
                )
            },
            expect: (
                "maxGpusPerPod",
                "spec.workerGroupSpecs[0].template.spec.containers[0].resources",
            ),
            says: &["3 GPUs", "limit of 2"],
        },
        Case {
            // Ray and KubeRay take any resource ending in `gpu` as a GPU; the cap must too.
            name: "any resource ending in gpu counts",
            rules: json!({"maxGpusPerPod": {"limit": 4}}),
            breaks: |c| {
                set_at(
                    c,
                    "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits",
                    json!({"intel.com/gpu": 8}),
                )
            },
            expect: (
                "maxGpusPerPod",
                "spec.workerGroupSpecs[0].template.spec.containers[0].resources",
            ),
            says: &["8 GPUs", "limit of 4 per pod"],
        },
        Case {
            name: "GPUs per group",
            rules: json!({"maxGpusPerGroup": {"limit": 4}}),
            breaks: |c| set_at(c, "/spec/workerGroupSpecs/0/replicas", json!(3)),
            expect: ("maxGpusPerGroup", "spec.workerGroupSpecs[0]"),
            says: &[
                "up to 6 GPUs",
                "2 per pod × replicas 3",
                "limit of 4 per group",
            ],
        },
        Case {
            name: "GPUs per cluster count maxReplicas when autoscaling",
            rules: json!({"maxGpusPerCluster": {"limit": 4}}),
            breaks: |c| set_at(c, "/spec/enableInTreeAutoscaling", json!(true)),
            expect: ("maxGpusPerCluster", "spec"),
            says: &["up to 8 GPUs", "maxReplicas 4", "limit of 4"],
        },
        Case {
            name: "TPUs on multi-host groups",
            rules: json!({"maxGpusPerCluster": {"limit": 8}}),
            breaks: |c| {
                set_at(
                    c,
                    "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits",
                    json!({"google.com/tpu": 4}),
                );
                set_at(c, "/spec/workerGroupSpecs/0/numOfHosts", json!(2));
            },
            expect: ("maxGpusPerCluster", "spec"),
            says: &["up to 16 GPUs", "numOfHosts 2", "limit of 8"],
        },
        Case {
            name: "CPU per cluster",
            rules: json!({"maxCpuPerCluster": {"limit": 16}}),
            breaks: |_| {},
            expect: ("maxCpuPerCluster", "spec"),
            says: &["up to 18 CPUs", "head 2", "limit of 16"],
        },
        Case {
            name: "memory per cluster",
            rules: json!({"maxMemoryPerCluster": {"limit": "64Gi"}}),
            breaks: |_| {},
            expect: ("maxMemoryPerCluster", "spec"),
            says: &["up to 72Gi", "limit of 64Gi"],
        },
        Case {
            name: "maxReplicas per group",
            rules: json!({"maxReplicasPerGroup": {"limit": 10}}),
            breaks: |c| set_at(c, "/spec/workerGroupSpecs/0/maxReplicas", json!(20)),
            expect: (
                "maxReplicasPerGroup",
                "spec.workerGroupSpecs[0].maxReplicas",
            ),
            says: &["maxReplicas 20", "limit of 10"],
        },
        Case {
            name: "worker groups",
            rules: json!({"maxWorkerGroups": {"limit": 1}}),
            breaks: |c| {
                let mut group = c["spec"]["workerGroupSpecs"][0].clone();
                // A valid second group, so that only the policy decides.
                group["groupName"] = json!("gpu-2");
                c["spec"]["workerGroupSpecs"]
                    .as_array_mut()
                    .expect("groups")
                    .push(group);
            },
            expect: ("maxWorkerGroups", "spec.workerGroupSpecs"),
            says: &["2 worker groups", "limit of 1"],
        },
        Case {
            name: "accelerator types",
            rules: json!({"allowedAcceleratorTypes": {"values": ["nvidia-h100-80gb"]}}),
            breaks: |c| {
                set_at(
                    c,
                    "/spec/workerGroupSpecs/0/template/spec/nodeSelector",
                    json!({"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}),
                )
            },
            expect: (
                "allowedAcceleratorTypes",
                "spec.workerGroupSpecs[0].template.spec.nodeSelector[cloud.google.com/gke-accelerator]",
            ),
            says: &["\"nvidia-tesla-t4\"", "allowed: nvidia-h100-80gb"],
        },
        Case {
            name: "images of init containers",
            rules: json!({"allowedImages": {"registries": ["docker.io/rayproject"]}}),
            breaks: |c| {
                set_at(
                    c,
                    "/spec/headGroupSpec/template/spec/initContainers",
                    json!([{"name": "fetch", "image": "evil.example.com/fetch:1"}]),
                )
            },
            expect: (
                "allowedImages",
                "spec.headGroupSpec.template.spec.initContainers[0].image",
            ),
            says: &[
                "\"evil.example.com/fetch:1\"",
                "registry evil.example.com",
                "docker.io/rayproject",
            ],
        },
        Case {
            name: "images of sidecars, by pattern",
            rules: json!({"allowedImages": {"patterns": ["docker.io/rayproject/ray:2.*"]}}),
            breaks: |c| {
                let containers = c["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .expect("containers");
                containers.push(json!({"name": "log", "image": "fluent/fluent-bit:3"}));
            },
            expect: (
                "allowedImages",
                "spec.workerGroupSpecs[0].template.spec.containers[1].image",
            ),
            says: &["\"fluent/fluent-bit:3\"", "registry docker.io"],
        },
        Case {
            name: "Ray version range",
            rules: json!({"allowedRayVersions": {"range": ">=2.47.0, <3.0.0"}}),
            breaks: |_| {},
            expect: ("allowedRayVersions", "spec.rayVersion"),
            says: &["Ray 2.46.0", ">=2.47.0, <3.0.0"],
        },
        Case {
            name: "Ray version from the head image when rayVersion is unset",
            rules: json!({"allowedRayVersions": {"range": ">=2.47.0"}}),
            breaks: |c| {
                c["spec"]
                    .as_object_mut()
                    .expect("spec")
                    .remove("rayVersion");
            },
            expect: (
                "allowedRayVersions",
                "spec.headGroupSpec.template.spec.containers[0].image",
            ),
            says: &["runs Ray 2.46.0", ">=2.47.0"],
        },
        Case {
            name: "required limits",
            rules: json!({"requiredLimits": {}}),
            breaks: |c| {
                c["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]
                    ["limits"]
                    .as_object_mut()
                    .expect("limits")
                    .remove("memory");
            },
            expect: (
                "requiredLimits",
                "spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits",
            ),
            says: &["\"ray-worker\"", "no memory limit", "cpu, memory"],
        },
        Case {
            name: "privileged containers",
            rules: json!({"forbiddenPodSettings": {"privileged": true}}),
            breaks: |c| {
                set_at(
                    c,
                    "/spec/workerGroupSpecs/0/template/spec/containers/0/securityContext",
                    json!({"privileged": true}),
                )
            },
            expect: (
                "forbiddenPodSettings",
                "spec.workerGroupSpecs[0].template.spec.containers[0].securityContext.privileged",
            ),
            says: &["privileged"],
        },
        Case {
            name: "hostNetwork",
            rules: json!({"forbiddenPodSettings": {"hostNetwork": true}}),
            breaks: |c| {
                set_at(
                    c,
                    "/spec/headGroupSpec/template/spec/hostNetwork",
                    json!(true),
                )
            },
            expect: (
                "forbiddenPodSettings",
                "spec.headGroupSpec.template.spec.hostNetwork",
            ),
            says: &["hostNetwork: true is forbidden"],
        },
        Case {
            name: "hostPID",
            rules: json!({"forbiddenPodSettings": {"hostPID": true}}),
            breaks: |c| set_at(c, "/spec/headGroupSpec/template/spec/hostPID", json!(true)),
            expect: (
                "forbiddenPodSettings",
                "spec.headGroupSpec.template.spec.hostPID",
            ),
            says: &["hostPID"],
        },
        Case {
            name: "hostPath volumes",
            rules: json!({"forbiddenPodSettings": {"hostPathVolumes": true}}),
            breaks: |c| {
                set_at(
                    c,
                    "/spec/workerGroupSpecs/0/template/spec/volumes",
                    json!([{"name": "tmp", "emptyDir": {}}, {"name": "root", "hostPath": {"path": "/"}}]),
                )
            },
            expect: (
                "forbiddenPodSettings",
                "spec.workerGroupSpecs[0].template.spec.volumes[1].hostPath",
            ),
            says: &["hostPath volume \"root\""],
        },
        Case {
            name: "added capabilities outside the allowed list",
            rules: json!({"forbiddenPodSettings": {"addedCapabilities": true, "allowedCapabilities": ["NET_BIND_SERVICE"]}}),
            breaks: |c| {
                set_at(
                    c,
                    "/spec/workerGroupSpecs/0/template/spec/containers/0/securityContext",
                    json!({"capabilities": {"add": ["NET_BIND_SERVICE", "SYS_ADMIN"]}}),
                )
            },
            expect: (
                "forbiddenPodSettings",
                "spec.workerGroupSpecs[0].template.spec.containers[0].securityContext.capabilities.add[1]",
            ),
            says: &["SYS_ADMIN"],
        },
        Case {
            name: "required labels",
            rules: json!({"requiredLabels": {"keys": ["team", "cost-center"]}}),
            breaks: |_| {},
            expect: ("requiredLabels", "metadata.labels"),
            says: &["cost-center"],
        },
    ]
}

/// Each rule under each action: the violation (rule, field, words) is the same; the action
/// decides what admission does with it.
#[test]
fn each_rule_names_the_field_and_the_limit_under_every_action() {
    for case in cases() {
        let mut broken = cluster();
        (case.breaks)(&mut broken);
        for action in [Action::Deny, Action::Warn, Action::Audit] {
            let name = format!("{} ({action})", case.name);
            let policies = one(json!({"action": action, "rules": case.rules}));
            let evaluation = evaluate(&policies, &broken);
            let (rule, path) = case.expect;
            assert_eq!(
                found(&evaluation),
                [(rule.to_owned(), path.to_owned())],
                "{name}: {:#?}",
                evaluation.violations
            );
            let message = &evaluation.violations[0].message;
            for word in case.says {
                assert!(message.contains(word), "{name}: {message:?} lacks {word:?}");
            }
            expect_admission(action, &admit(&policies, &broken), rule, message, &name);
        }
    }
}

#[test]
fn deny_is_the_default_action() {
    let policies = one(json!({"rules": {"maxGpusPerPod": {"limit": 1}}}));
    let verdict = admit(&policies, &cluster());
    assert!(!verdict.allowed(), "{:#?}", verdict.warnings);
    assert_eq!(verdict.violations[0].action, Action::Deny);
}

/// What admission answers for one violation of `rule` under `action`: Deny refuses with the
/// message, Warn admits with it as a warning, Audit admits silently and records it.
fn expect_admission(
    action: Action,
    verdict: &AdmissionVerdict,
    rule: &str,
    message: &str,
    name: &str,
) {
    let policy_warnings: Vec<&String> = verdict
        .warnings
        .iter()
        .filter(|w| w.starts_with("RayPolicy p"))
        .collect();
    let audit = verdict.audit_annotations();
    match action {
        Action::Deny => {
            assert!(
                verdict.errors.iter().any(|e| e.message.contains(message)),
                "{name}: denied with the message: {:#?}",
                verdict.errors
            );
            assert!(policy_warnings.is_empty(), "{name}: {policy_warnings:#?}");
            assert!(audit.is_empty(), "{name}: {audit:#?}");
        }
        Action::Warn => {
            assert!(verdict.allowed(), "{name}: allowed: {:#?}", verdict.errors);
            assert_eq!(policy_warnings.len(), 1, "{name}: {:#?}", verdict.warnings);
            assert!(
                policy_warnings[0].contains(message),
                "{name}: {:?}",
                policy_warnings[0]
            );
            assert!(audit.is_empty(), "{name}: {audit:#?}");
        }
        Action::Audit => {
            assert!(verdict.allowed(), "{name}: allowed: {:#?}", verdict.errors);
            assert!(policy_warnings.is_empty(), "{name}: {policy_warnings:#?}");
            let recorded = audit.get(&format!("p.{rule}"));
            assert!(
                recorded.is_some_and(|text| text.contains(message)),
                "{name}: audit annotation: {audit:#?}"
            );
        }
    }
}

#[test]
fn the_fixture_passes_rules_it_stays_within() {
    let rules = json!({
        "maxGpusPerPod": {"limit": 2},
        "maxGpusPerGroup": {"limit": 4},
        "maxGpusPerCluster": {"limit": 4},
        "maxCpuPerCluster": {"limit": "18"},
        "maxMemoryPerCluster": {"limit": "72Gi"},
        "maxReplicasPerGroup": {"limit": 4},
        "maxWorkerGroups": {"limit": 1},
        "allowedAcceleratorTypes": {"values": ["nvidia-h100-80gb"]},
        "allowedImages": {"registries": ["docker.io/rayproject"]},
        "allowedRayVersions": {"range": ">=2.46.0, <3"},
        "requiredLimits": {"resources": ["cpu", "memory"]},
        "forbiddenPodSettings": {"privileged": true, "hostNetwork": true, "hostPID": true, "hostIPC": true, "hostPathVolumes": true, "addedCapabilities": true},
        "requiredLabels": {"keys": ["team"]},
    });
    let evaluation = evaluate(&one(json!({"rules": rules})), &cluster());
    assert!(
        evaluation.violations.is_empty(),
        "{:#?}",
        evaluation.violations
    );
    assert_eq!(evaluation.matched, ["p"]);
}

#[test]
fn rayjob_and_rayservice_are_checked_on_their_embedded_cluster() {
    let policies = one(
        json!({"rules": {"maxGpusPerPod": {"limit": 1}, "allowedImages": {"registries": ["docker.io/rayproject"]}}}),
    );
    let spec = cluster()["spec"].clone();
    let job = json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": "j", "namespace": "team-a"},
        "spec": {
            "entrypoint": "python x.py",
            "rayClusterSpec": spec,
            "submitterPodTemplate": {"spec": {"restartPolicy": "Never", "containers": [{"name": "submit", "image": "quay.io/me/submit:1"}]}}
        }
    });
    assert_eq!(
        found(&evaluate(&policies, &job)),
        [
            (
                "maxGpusPerPod".to_owned(),
                "spec.rayClusterSpec.workerGroupSpecs[0].template.spec.containers[0].resources"
                    .to_owned()
            ),
            (
                "allowedImages".to_owned(),
                "spec.submitterPodTemplate.spec.containers[0].image".to_owned()
            ),
        ]
    );
    let service = json!({
        "apiVersion": "ray.io/v1", "kind": "RayService",
        "metadata": {"name": "s", "namespace": "team-a"},
        "spec": {"rayClusterConfig": cluster()["spec"].clone()}
    });
    assert_eq!(
        found(&evaluate(&policies, &service)),
        [(
            "maxGpusPerPod".to_owned(),
            "spec.rayClusterConfig.workerGroupSpecs[0].template.spec.containers[0].resources"
                .to_owned()
        )]
    );
}

#[test]
fn an_unset_max_replicas_is_unbounded() {
    let policies = one(json!({"rules": {"maxReplicasPerGroup": {"limit": 10}}}));
    let mut unbounded = cluster();
    unbounded["spec"]["workerGroupSpecs"][0]
        .as_object_mut()
        .expect("group")
        .remove("maxReplicas");
    let evaluation = evaluate(&policies, &unbounded);
    assert_eq!(
        found(&evaluation),
        [(
            "maxReplicasPerGroup".to_owned(),
            "spec.workerGroupSpecs[0].maxReplicas".to_owned()
        )]
    );
    assert!(evaluation.violations[0].message.contains("unbounded"));
}

#[test]
fn odd_objects_never_panic() {
    let policies = one(json!({"rules": {
        "maxGpusPerPod": {"limit": 0}, "maxCpuPerCluster": {"limit": 1}, "maxReplicasPerGroup": {"limit": 1},
        "allowedImages": {"patterns": ["*"]}, "allowedRayVersions": {"range": ">=2"},
        "requiredLimits": {}, "forbiddenPodSettings": {"privileged": true, "addedCapabilities": true},
        "requiredLabels": {"keys": ["team"]}
    }}));
    for odd in [
        json!({"kind": "RayCluster"}),
        json!({"kind": "RayCluster", "spec": []}),
        json!({"kind": "RayCluster", "spec": {"workerGroupSpecs": [1, null, {"template": 3}], "headGroupSpec": {"template": {"spec": {"containers": "x"}}}}}),
        json!({"kind": "RayJob", "spec": {"rayClusterSpec": null, "submitterPodTemplate": {"spec": {"containers": [{"image": 5, "securityContext": {"capabilities": {"add": [1]}}}]}}}}),
        json!({"kind": "RayCluster", "metadata": {"labels": "x"}, "spec": {"workerGroupSpecs": [{"maxReplicas": "x", "template": {"spec": {"containers": [{"resources": {"limits": {"cpu": "lots", "nvidia.com/gpu": "x"}}}]}}}]}}),
    ] {
        let _ = evaluate(&policies, &odd);
    }
}

/// Policies requiring different limits of the same container each get their own message;
/// policies requiring the same ones get the same message, each under its own name.
#[test]
fn each_policy_reports_the_limits_it_requires() {
    let policies = set(&[
        (
            "a-cpu",
            json!({"rules": {"requiredLimits": {"resources": ["cpu"]}}}),
        ),
        ("b-both", json!({"rules": {"requiredLimits": {}}})),
        (
            "c-cpu",
            json!({"rules": {"requiredLimits": {"resources": ["cpu"]}}}),
        ),
        (
            "d-gpu",
            json!({"rules": {"requiredLimits": {"resources": ["nvidia.com/gpu"]}}}),
        ),
    ]);
    let mut object = cluster();
    let limits = "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits";
    set_at(&mut object, limits, json!({"nvidia.com/gpu": 2}));
    let evaluation = evaluate(&policies, &object);
    let worker: Vec<(&str, &str)> = evaluation
        .violations
        .iter()
        .filter(|v| v.path.starts_with("spec.workerGroupSpecs[0]"))
        .map(|v| (v.policy.as_str(), v.message.as_str()))
        .collect();
    assert_eq!(worker.len(), 3, "{worker:#?}");
    assert_eq!(worker[0].0, "a-cpu");
    assert!(
        worker[0]
            .1
            .ends_with("sets no cpu limit; limits required: cpu"),
        "{}",
        worker[0].1
    );
    assert_eq!(worker[1].0, "b-both");
    assert!(
        worker[1]
            .1
            .ends_with("sets no cpu or memory limit; limits required: cpu, memory"),
        "{}",
        worker[1].1
    );
    assert_eq!(worker[2], ("c-cpu", worker[0].1));
}
