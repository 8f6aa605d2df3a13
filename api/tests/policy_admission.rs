//! RayPolicy through the admission pipeline: actions (Deny, Warn, Audit, per-rule overrides),
//! several policies combined, matching by namespace, labels and kind, injection before
//! validation (idempotent, never overwriting), and refusing broken policies.

mod policy_support;

use std::collections::BTreeMap;

use policy_support::{cluster, labels, one, policy_object, set};
use raygate_api::admission::{admit, admit_with_policies};
use raygate_api::policy::{Action, PolicySet, validate_policy};
use serde_json::{Value, json};

fn admit_in(
    policies: &PolicySet,
    object: &Value,
    ns_labels: &BTreeMap<String, String>,
) -> raygate_api::admission::AdmissionVerdict {
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    admit_with_policies(object, None, policies, namespace, ns_labels)
}

fn no_labels() -> BTreeMap<String, String> {
    BTreeMap::new()
}

const GPU_LIMIT_2: fn(&str) -> Value =
    |action| json!({"action": action, "rules": {"maxGpusPerCluster": {"limit": 2}}});

#[test]
fn deny_refuses_with_one_cause_naming_policy_rule_and_field() {
    let verdict = admit_in(
        &set(&[("gpu-quota", GPU_LIMIT_2("Deny"))]),
        &cluster(),
        &no_labels(),
    );
    assert!(!verdict.allowed());
    assert_eq!(verdict.errors.len(), 1, "{:#?}", verdict.errors);
    assert_eq!(verdict.errors[0].path, "spec");
    assert!(
        verdict.errors[0].message.starts_with(
            "RayPolicy gpu-quota (maxGpusPerCluster): the cluster can use up to 4 GPUs"
        ),
        "{}",
        verdict.errors[0].message
    );
}

#[test]
fn warn_admits_with_a_warning_prefixed_by_the_policy() {
    let verdict = admit_in(
        &set(&[("gpu-quota", GPU_LIMIT_2("Warn"))]),
        &cluster(),
        &no_labels(),
    );
    assert!(verdict.allowed(), "{:#?}", verdict.errors);
    let warnings: Vec<&String> = verdict
        .warnings
        .iter()
        .filter(|w| w.starts_with("RayPolicy gpu-quota"))
        .collect();
    assert_eq!(warnings.len(), 1, "{:#?}", verdict.warnings);
    assert!(
        warnings[0].contains("(maxGpusPerCluster): spec: the cluster can use up to 4 GPUs"),
        "{}",
        warnings[0]
    );
    assert!(verdict.audit_annotations().is_empty());
}

#[test]
fn audit_admits_silently_and_records_an_audit_annotation() {
    let verdict = admit_in(
        &set(&[("gpu-quota", GPU_LIMIT_2("Audit"))]),
        &cluster(),
        &no_labels(),
    );
    assert!(verdict.allowed());
    assert!(
        !verdict.warnings.iter().any(|w| w.contains("RayPolicy")),
        "{:#?}",
        verdict.warnings
    );
    let annotations = verdict.audit_annotations();
    let value = annotations
        .get("gpu-quota.maxGpusPerCluster")
        .expect("audit annotation");
    assert!(
        value.starts_with("spec: the cluster can use up to 4 GPUs"),
        "{value}"
    );
    assert_eq!(verdict.violations[0].action, Action::Audit);
}

#[test]
fn a_rule_action_overrides_the_policy_action() {
    let policies = one(json!({
        "action": "Warn",
        "rules": {
            "maxGpusPerCluster": {"limit": 2, "action": "Deny"},
            "requiredLabels": {"keys": ["cost-center"]},
            "maxWorkerGroups": {"limit": 0, "action": "Audit"}
        }
    }));
    let verdict = admit_in(&policies, &cluster(), &no_labels());
    let actions: Vec<(&str, Action)> = verdict
        .violations
        .iter()
        .map(|v| (v.rule, v.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("maxGpusPerCluster", Action::Deny),
            ("maxWorkerGroups", Action::Audit),
            ("requiredLabels", Action::Warn)
        ]
    );
    assert_eq!(verdict.errors.len(), 1);
    assert!(verdict.warnings.iter().any(|w| w.contains("cost-center")));
    assert!(
        verdict
            .audit_annotations()
            .contains_key("p.maxWorkerGroups")
    );
}

#[test]
fn policies_combine_any_deny_denies_and_every_message_is_reported() {
    let policies = set(&[
        ("a-quota", GPU_LIMIT_2("Deny")),
        (
            "b-images",
            json!({"action": "Deny", "rules": {"allowedImages": {"registries": ["registry.example.com"]}}}),
        ),
        (
            "c-labels",
            json!({"action": "Warn", "rules": {"requiredLabels": {"keys": ["cost-center"]}}}),
        ),
        (
            "d-audit",
            json!({"action": "Audit", "rules": {"maxCpuPerCluster": {"limit": 1}}}),
        ),
    ]);
    let mut broken = cluster();
    // A schema problem too: validation errors and policy denials are reported together.
    broken["spec"]["workerGroupSpecs"][0]["minReplicas"] = json!(3);
    let verdict = admit_in(&policies, &broken, &no_labels());
    assert!(!verdict.allowed());
    let fields: Vec<&str> = verdict.errors.iter().map(|e| e.path.as_str()).collect();
    assert!(
        fields.contains(&"spec.workerGroupSpecs[0]")
            || fields
                .iter()
                .any(|f| f.starts_with("spec.workerGroupSpecs[0]")),
        "{fields:?}"
    );
    let policy_errors: Vec<&str> = verdict
        .errors
        .iter()
        .filter(|e| e.message.starts_with("RayPolicy"))
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        policy_errors,
        [
            "spec",
            "spec.headGroupSpec.template.spec.containers[0].image",
            "spec.workerGroupSpecs[0].template.spec.containers[0].image",
        ]
    );
    assert!(
        verdict
            .warnings
            .iter()
            .any(|w| w.starts_with("RayPolicy c-labels (requiredLabels)"))
    );
    assert!(
        verdict
            .audit_annotations()
            .contains_key("d-audit.maxCpuPerCluster")
    );
}

#[test]
fn policies_match_by_namespace_label_and_kind() {
    let spec = |m: Value| json!({"match": m, "rules": {"maxGpusPerCluster": {"limit": 2}}});
    let team = labels(&[("tier", "team")]);
    let other = labels(&[("tier", "prod")]);
    let cases = [
        (json!({}), &team, true),
        (json!({"namespaces": ["team-a"]}), &team, true),
        (json!({"namespaces": ["team-b"]}), &team, false),
        (
            json!({"namespaceSelector": {"matchLabels": {"tier": "team"}}}),
            &team,
            true,
        ),
        (
            json!({"namespaceSelector": {"matchLabels": {"tier": "team"}}}),
            &other,
            false,
        ),
        (
            json!({"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["team", "dev"]}]}}),
            &team,
            true,
        ),
        (
            json!({"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["team"]}]}}),
            &team,
            false,
        ),
        (
            json!({"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}}),
            &team,
            false,
        ),
        // The API server labels every namespace with its own name.
        (
            json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}}}),
            &other,
            true,
        ),
        (json!({"kinds": ["RayJob", "RayService"]}), &team, false),
        (
            json!({"kinds": ["RayCluster"], "namespaces": ["team-a"], "namespaceSelector": {"matchLabels": {"tier": "team"}}}),
            &team,
            true,
        ),
        (
            json!({"kinds": ["RayCluster"], "namespaces": ["team-a"], "namespaceSelector": {"matchLabels": {"tier": "team"}}}),
            &other,
            false,
        ),
    ];
    for (m, ns_labels, applies) in cases {
        let verdict = admit_in(&one(spec(m.clone())), &cluster(), ns_labels);
        assert_eq!(!verdict.allowed(), applies, "match {m} with {ns_labels:?}");
    }
}

#[test]
fn no_policies_admit_exactly_like_admit() {
    let plain = admit(&cluster(), None);
    let with = admit_in(&PolicySet::default(), &cluster(), &no_labels());
    assert_eq!(plain, with);
}

fn injecting() -> PolicySet {
    one(json!({
        "rules": {"requiredLabels": {"keys": ["cost-center"]}},
        "inject": {
            "labels": {"cost-center": "ml-research", "team": "injected"},
            "annotations": {"example.com/owner": "platform"},
            "priorityClassName": "ray-batch",
            "imagePullSecrets": [{"name": "regcred"}],
            "gpuGroups": {
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "nodeSelector": {"node.example.com/pool": "gpu"}
            }
        }
    }))
}

#[test]
fn injection_happens_before_validation_and_never_overwrites() {
    let verdict = admit_in(&injecting(), &cluster(), &no_labels());
    assert!(
        verdict.allowed(),
        "the injected label satisfies requiredLabels: {:#?}",
        verdict.errors
    );
    let stored = &verdict.normalized;
    assert_eq!(stored["metadata"]["labels"]["cost-center"], "ml-research");
    assert_eq!(
        stored["metadata"]["labels"]["team"], "a",
        "the user's value wins"
    );
    assert_eq!(
        stored["metadata"]["annotations"]["example.com/owner"],
        "platform"
    );
    let head = &stored["spec"]["headGroupSpec"]["template"];
    let worker = &stored["spec"]["workerGroupSpecs"][0]["template"];
    for template in [head, worker] {
        assert_eq!(template["spec"]["priorityClassName"], "ray-batch");
        assert_eq!(
            template["spec"]["imagePullSecrets"],
            json!([{"name": "regcred"}])
        );
        assert_eq!(template["metadata"]["labels"]["cost-center"], "ml-research");
    }
    assert!(
        head["spec"].get("tolerations").is_none(),
        "the head uses no GPU"
    );
    assert_eq!(
        worker["spec"]["tolerations"],
        json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
    assert_eq!(
        worker["spec"]["nodeSelector"]["node.example.com/pool"],
        "gpu"
    );
    // The patch carries the injection (kubectl sees it in the stored object).
    let patch = serde_json::to_string(&verdict.patch).expect("patch");
    assert!(
        patch.contains("ray-batch") && patch.contains("regcred"),
        "{patch}"
    );
}

#[test]
fn injection_is_idempotent_and_keeps_user_values() {
    let mut mine = cluster();
    mine["spec"]["workerGroupSpecs"][0]["template"]["spec"]["priorityClassName"] = json!("urgent");
    mine["spec"]["workerGroupSpecs"][0]["template"]["spec"]["tolerations"] =
        json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]);
    mine["spec"]["workerGroupSpecs"][0]["template"]["spec"]["nodeSelector"] =
        json!({"node.example.com/pool": "a100"});
    let first = admit_in(&injecting(), &mine, &no_labels());
    let worker = &first.normalized["spec"]["workerGroupSpecs"][0]["template"]["spec"];
    assert_eq!(worker["priorityClassName"], "urgent");
    assert_eq!(
        worker["tolerations"].as_array().map(Vec::len),
        Some(1),
        "no duplicate toleration"
    );
    assert_eq!(worker["nodeSelector"]["node.example.com/pool"], "a100");
    let again = admit_in(&injecting(), &first.normalized, &no_labels());
    assert!(
        again.patch.0.is_empty(),
        "second admission patches nothing: {:?}",
        again.patch
    );
    assert_eq!(again.normalized, first.normalized);
}

fn policy_errors(spec: Value) -> Vec<(String, String)> {
    validate_policy(&policy_object("broken", spec))
        .errors
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect()
}

#[test]
fn a_broken_policy_is_refused_with_the_field_named() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"rules": {"maxMemoryPerCluster": {"limit": "lots"}}}),
            "spec.rules.maxMemoryPerCluster.limit",
            "not a valid Kubernetes quantity",
        ),
        (
            json!({"rules": {"maxCpuPerCluster": {"limit": "-1"}}}),
            "spec.rules.maxCpuPerCluster.limit",
            "negative",
        ),
        (
            json!({"rules": {"allowedRayVersions": {"range": "~2.4"}}}),
            "spec.rules.allowedRayVersions.range",
            "not a version range",
        ),
        (
            json!({"rules": {"maxGpusPerPod": {"limit": -1}}}),
            "spec.rules.maxGpusPerPod.limit",
            "zero or more",
        ),
        (
            json!({"rules": {"maxGpusPerPod": {"limit": "four"}}}),
            "spec.rules.maxGpusPerPod.limit",
            "invalid type",
        ),
        (json!({"action": "Block"}), "spec.action", "unknown variant"),
        (
            json!({"rules": {"maxGpus": {"limit": 1}}}),
            "spec.rules.maxGpus",
            "unknown field `maxGpus`, expected one of `maxGpusPerPod`",
        ),
        (
            json!({"match": {"kinds": ["Pod"]}}),
            "spec.match.kinds[0]",
            "unknown variant",
        ),
        (
            json!({"match": {"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "Like", "values": ["x"]}]}}}),
            "spec.match.namespaceSelector.matchExpressions[0].operator",
            "not a valid operator",
        ),
        (
            json!({"rules": {"allowedImages": {}}}),
            "spec.rules.allowedImages",
            "set registries or patterns",
        ),
        (
            json!({"rules": {"allowedImages": {"registries": ["docker.io/*"]}}}),
            "spec.rules.allowedImages.registries[0]",
            "is a pattern",
        ),
        (
            json!({"rules": {"forbiddenPodSettings": {}}}),
            "spec.rules.forbiddenPodSettings",
            "forbids nothing",
        ),
        (
            json!({"rules": {"requiredLabels": {"keys": []}}}),
            "spec.rules.requiredLabels.keys",
            "at least one",
        ),
    ];
    for (spec, path, words) in cases {
        let errors = policy_errors(spec.clone());
        assert!(
            errors.iter().any(|(p, m)| p == path && m.contains(words)),
            "{spec}: expected {path}: …{words}…, got {errors:#?}"
        );
    }
    assert!(policy_errors(json!({"rules": {"maxGpusPerPod": {"limit": 8}}})).is_empty());
}

#[test]
fn loading_is_all_or_nothing() {
    let good = policy_object("good", json!({"rules": {"maxGpusPerPod": {"limit": 8}}}));
    let bad = policy_object(
        "bad",
        json!({"rules": {"maxMemoryPerCluster": {"limit": "lots"}}}),
    );
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let loaded = PolicySet::from_documents([("a.yaml", &good), ("a.yaml", &other)]).expect("loads");
    assert_eq!(loaded.len(), 1);
    let errors =
        PolicySet::from_documents([("a.yaml", &good), ("b.yaml", &bad)]).expect_err("refused");
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert!(
        text.starts_with(
            "b.yaml: RayPolicy \"bad\" is invalid: spec.rules.maxMemoryPerCluster.limit"
        ),
        "{text}"
    );
}

/// A RayCronJob is held to the RayJob policies at its own apply (its runs would be refused one
/// after another otherwise), with paths into its template, and gets their injections there.
#[test]
fn a_raycronjob_template_is_held_to_rayjob_policies() {
    let spec = cluster()["spec"].clone();
    let cron_job = json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayCronJob",
        "metadata": {"name": "nightly", "namespace": "team-a"},
        "spec": {
            "schedule": "@daily",
            "jobTemplate": {"entrypoint": "python train.py", "rayClusterSpec": spec},
        },
    });
    let policies = set(&[
        (
            "jobs-gpu-quota",
            json!({
                "match": {"kinds": ["RayJob"]},
                "action": "Deny",
                "rules": {"maxGpusPerCluster": {"limit": 2}},
            }),
        ),
        (
            "jobs-label",
            json!({
                "match": {"kinds": ["RayJob"]},
                "inject": {"labels": {"cost-center": "ml"}},
            }),
        ),
        (
            "clusters-only",
            json!({
                "match": {"kinds": ["RayCluster"]},
                "action": "Deny",
                "rules": {"maxGpusPerCluster": {"limit": 0}},
            }),
        ),
    ]);
    let verdict = admit_in(&policies, &cron_job, &no_labels());
    assert_eq!(verdict.errors.len(), 1, "{:#?}", verdict.errors);
    assert_eq!(verdict.errors[0].path, "spec.jobTemplate.rayClusterSpec");
    assert!(
        verdict.errors[0]
            .message
            .starts_with("RayPolicy jobs-gpu-quota (maxGpusPerCluster)"),
        "{}",
        verdict.errors[0].message
    );
    let head_labels = &verdict.normalized["spec"]["jobTemplate"]["rayClusterSpec"]["headGroupSpec"]
        ["template"]["metadata"]["labels"];
    assert_eq!(head_labels["cost-center"], "ml", "{head_labels}");
}
