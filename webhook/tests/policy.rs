//! RayPolicies through the webhook's routes: injection in the mutating call, Deny / Warn /
//! Audit in the validating call (422 causes, warnings, auditAnnotations, metrics), namespace
//! labels for namespaceSelector, and RayPolicy objects admitted or refused on their own.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use common::*;
use raygate_api::policy::{PolicySet, compile};
use raygate_webhook::policy_status::{Counts, ObservedPolicy};
use raygate_webhook::{AdmissionState, Metrics, PolicyState, admission_router};
use serde_json::{Value, json};

fn policy(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "raygate.io/v1alpha1", "kind": "RayPolicy", "metadata": {"name": name}, "spec": spec})
}

fn state_with(policies: &[Value]) -> (Router, Arc<Metrics>, Arc<PolicyState>) {
    let compiled = policies
        .iter()
        .map(|p| compile(p).expect("valid policy"))
        .collect();
    let state = Arc::new(PolicyState::from_files(PolicySet::new(compiled)));
    let metrics = Arc::new(Metrics::new());
    let router = admission_router(AdmissionState {
        policies: state.clone(),
        ..AdmissionState::new(metrics.clone())
    });
    (router, metrics, state)
}

async fn call(router: &Router, path: &str, review: &Value) -> Reply {
    let body = serde_json::to_vec(review).expect("JSON");
    send(
        router.clone(),
        request(Method::POST, path, Some("application/json"), body),
    )
    .await
}

/// `ray-cluster.sample.yaml` asks for 1 CPU / 2G on the head and 1 CPU / 1G per worker.
fn worker_group_limit(action: &str) -> Value {
    policy(
        "groups",
        json!({"action": action, "rules": {"maxWorkerGroups": {"limit": 0}}}),
    )
}

#[tokio::test]
async fn deny_is_a_422_with_one_cause_per_violation_and_is_counted() {
    let (router, metrics, _) = state_with(&[
        worker_group_limit("Deny"),
        policy(
            "labels",
            json!({"rules": {"requiredLabels": {"keys": ["team", "cost-center"]}}}),
        ),
    ]);
    let cluster = normalized(&ray_cluster()).await;
    let reply = call(
        &router,
        "/validate",
        &review("CREATE", Some(&cluster), None),
    )
    .await;
    assert!(!reply.allowed());
    let status = &reply.response()["status"];
    assert_eq!(status["code"], 422);
    assert_eq!(status["reason"], "Invalid");
    let causes = status["details"]["causes"].as_array().expect("causes");
    let fields: Vec<&str> = causes.iter().filter_map(|c| c["field"].as_str()).collect();
    assert_eq!(fields, ["spec.workerGroupSpecs", "metadata.labels"]);
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.workerGroupSpecs: Invalid value: RayPolicy groups (maxWorkerGroups): the cluster has 1 worker groups, above the limit of 0"),
        "{message}"
    );
    assert!(
        message.contains(
            "RayPolicy labels (requiredLabels): missing required label(s) team, cost-center"
        ),
        "{message}"
    );
    let text = metrics.render();
    assert!(
        text.contains("raygate_policy_violations_total{policy=\"groups\",rule=\"maxWorkerGroups\",action=\"Deny\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn warn_admits_with_a_warning_and_audit_with_an_audit_annotation() {
    let (router, metrics, _) = state_with(&[
        worker_group_limit("Warn"),
        policy(
            "audited",
            json!({"action": "Audit", "rules": {"requiredLabels": {"keys": ["team"]}}}),
        ),
    ]);
    let cluster = normalized(&ray_cluster()).await;
    let reply = call(
        &router,
        "/validate",
        &review("CREATE", Some(&cluster), None),
    )
    .await;
    assert!(reply.allowed(), "{}", reply.text);
    assert!(
        reply
            .warnings()
            .iter()
            .any(|w| w.starts_with("RayPolicy groups (maxWorkerGroups): spec.workerGroupSpecs:")),
        "{:?}",
        reply.warnings()
    );
    assert_eq!(
        reply.response()["auditAnnotations"],
        json!({"audited.requiredLabels": "metadata.labels: missing required label(s) team"})
    );
    let text = metrics.render();
    assert!(text.contains("raygate_policy_violations_total{policy=\"audited\",rule=\"requiredLabels\",action=\"Audit\"} 1"), "{text}");
    assert!(text.contains("raygate_policy_violations_total{policy=\"groups\",rule=\"maxWorkerGroups\",action=\"Warn\"} 1"), "{text}");
}

#[tokio::test]
async fn mutation_injects_before_defaults_and_is_not_counted_twice() {
    let (router, metrics, _) = state_with(&[policy(
        "inject",
        json!({
            "rules": {"maxWorkerGroups": {"limit": 0, "action": "Warn"}},
            "inject": {"priorityClassName": "ray-batch", "labels": {"cost-center": "ml"}}
        }),
    )]);
    let cluster = ray_cluster();
    let reply = call(&router, "/mutate", &review("CREATE", Some(&cluster), None)).await;
    assert!(reply.allowed());
    let mut patched = cluster.clone();
    json_patch::patch(&mut patched, &reply.patch().expect("a patch")).expect("applies");
    assert_eq!(patched["metadata"]["labels"]["cost-center"], "ml");
    assert_eq!(
        patched["spec"]["workerGroupSpecs"][0]["template"]["spec"]["priorityClassName"],
        "ray-batch"
    );
    assert_eq!(
        patched["metadata"]["annotations"]["raygate.io/normalized"],
        "1"
    );
    // Warnings come from the validating call only, so kubectl shows each once.
    assert!(!reply.warnings().iter().any(|w| w.contains("RayPolicy")));
    assert!(
        !metrics
            .render()
            .contains("raygate_policy_violations_total{")
    );
    let again = call(&router, "/mutate", &review("CREATE", Some(&patched), None)).await;
    assert!(again.patch().is_none(), "idempotent: {}", again.text);
}

#[tokio::test]
async fn namespace_selectors_see_the_namespace_labels_the_watch_keeps() {
    let (router, _, state) = state_with(&[policy(
        "teams",
        json!({"match": {"namespaceSelector": {"matchLabels": {"raygate.io/tier": "team"}}},
               "rules": {"maxWorkerGroups": {"limit": 0}}}),
    )]);
    let cluster = normalized(&ray_cluster()).await;
    let create = review("CREATE", Some(&cluster), None);
    let validate = || call(&router, "/validate", &create);
    assert!(
        validate().await.allowed(),
        "namespace default is not a team namespace yet"
    );
    state.upsert_namespace(
        "default".to_owned(),
        BTreeMap::from([("raygate.io/tier".to_owned(), "team".to_owned())]),
    );
    assert!(!validate().await.allowed(), "now it is");
}

fn policy_review(object: &Value) -> Value {
    let mut review = review("CREATE", Some(object), None);
    let request = &mut review["request"];
    request["kind"] = json!({"group": "raygate.io", "version": "v1alpha1", "kind": "RayPolicy"});
    request["resource"] =
        json!({"group": "raygate.io", "version": "v1alpha1", "resource": "raypolicies"});
    request["namespace"] = Value::Null;
    review
}

#[tokio::test]
async fn a_raypolicy_is_validated_at_its_own_admission() {
    let router = router();
    let good = policy("good", json!({"rules": {"maxGpusPerPod": {"limit": 8}}}));
    assert!(
        call(&router, "/validate", &policy_review(&good))
            .await
            .allowed()
    );
    let mutate = call(&router, "/mutate", &policy_review(&good)).await;
    assert!(mutate.allowed() && mutate.patch().is_none());

    let bad = policy(
        "bad",
        json!({"rules": {"maxMemoryPerCluster": {"limit": "lots"}, "allowedRayVersions": {"range": "newest"}}}),
    );
    let reply = call(&router, "/validate", &policy_review(&bad)).await;
    assert!(!reply.allowed());
    let status = &reply.response()["status"];
    assert_eq!(status["code"], 422);
    assert_eq!(status["details"]["group"], "raygate.io");
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.rules.maxMemoryPerCluster.limit",
            "spec.rules.allowedRayVersions.range"
        ]
    );
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("RayPolicy.raygate.io \"bad\" is invalid: [spec.rules.maxMemoryPerCluster.limit: Invalid value: \"lots\""), "{message}");
}

#[tokio::test]
async fn policies_change_without_a_restart() {
    let (router, _, state) = state_with(&[]);
    let cluster = normalized(&ray_cluster()).await;
    let create = review("CREATE", Some(&cluster), None);
    let validate = || call(&router, "/validate", &create);
    assert!(validate().await.allowed());
    state.upsert_cluster_policy(compile(&worker_group_limit("Deny")).expect("valid"));
    assert!(!validate().await.allowed());
    state.remove_cluster_policy("groups");
    assert!(validate().await.allowed());
}

/// What a RayPolicy's status counts comes from the validating call of real admissions: once per
/// admission and policy, never for dry runs, never twice through the mutating call.
#[tokio::test]
async fn status_counts_real_admissions_once_per_policy() {
    let (router, _, state) = state_with(&[]);
    let book = state.status_book();
    // A cluster policy as the watch records it.
    book.observe(ObservedPolicy {
        name: "groups".to_owned(),
        uid: "uid-groups".to_owned(),
        generation: 1,
        resource_version: "1".to_owned(),
        status: Default::default(),
    });
    state.upsert_cluster_policy(compile(&worker_group_limit("Deny")).expect("valid"));
    let cluster = normalized(&ray_cluster()).await;
    let create = review("CREATE", Some(&cluster), None);
    let mut dry_run = create.clone();
    dry_run["request"]["dryRun"] = json!(true);

    assert!(!call(&router, "/validate", &dry_run).await.allowed());
    assert_eq!(book.pending("groups"), Counts::default(), "a dry run");
    assert!(call(&router, "/mutate", &create).await.allowed());
    assert!(!call(&router, "/validate", &create).await.allowed());
    assert_eq!(
        book.pending("groups"),
        Counts {
            matched: 1,
            denied: 1,
            warned: 0,
            audited: 0
        }
    );

    state.upsert_cluster_policy(compile(&worker_group_limit("Warn")).expect("valid"));
    assert!(call(&router, "/validate", &create).await.allowed());
    assert_eq!(
        book.pending("groups"),
        Counts {
            matched: 2,
            denied: 1,
            warned: 1,
            audited: 0
        }
    );
}
