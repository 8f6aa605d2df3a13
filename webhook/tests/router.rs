//! The admission and admin routers, driven with `tower::ServiceExt::oneshot` on KubeRay's own
//! samples: every route and every kind of verdict.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{Method, StatusCode};
use common::*;
use raygate_webhook::routes::{AdminState, admin_router};
use raygate_webhook::{Metrics, PolicyState};
use serde_json::{Value, json};

fn invalid_cluster() -> Value {
    let mut cluster = ray_cluster();
    cluster["spec"]["workerGroupSpecs"][0]["minReplicas"] = json!(3);
    cluster["spec"]["workerGroupSpecs"][0]["maxReplicas"] = json!(2);
    cluster
}

#[tokio::test]
async fn mutate_create_returns_a_base64_json_patch_that_normalizes() {
    let cluster = ray_cluster();
    let reply = post("/mutate", &review("CREATE", Some(&cluster), None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.content_type.starts_with("application/json"));
    assert_eq!(reply.json["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(reply.json["kind"], "AdmissionReview");
    assert_eq!(reply.response()["uid"], "uid-CREATE-raycluster-kuberay");
    assert!(reply.allowed());
    assert_eq!(reply.response()["patchType"], "JSONPatch");
    let patch = reply.patch().expect("the sample gets defaults");
    assert!(!patch.0.is_empty());

    let mut patched = cluster.clone();
    json_patch::patch(&mut patched, &patch).expect("the patch applies to the object as sent");
    assert_eq!(patched, raygate_api::admission::mutate(&cluster).0);

    // Idempotent: the normalized object needs no patch, and none is sent.
    let again = post("/mutate", &review("CREATE", Some(&patched), None)).await;
    assert!(again.allowed());
    assert!(again.response().get("patch").is_none(), "{}", again.text);
    assert!(again.response().get("patchType").is_none());
}

/// The API server decodes a repeated key last-wins, and so must whatever the patch is computed
/// from: a patch written while reading the text would see the first repeat too, and fail.
#[tokio::test]
async fn mutate_of_an_object_whose_text_repeats_a_key_patches_the_last_one() {
    let cluster = ray_cluster();
    let mut first = cluster["spec"]["headGroupSpec"].clone();
    first["stale"] = json!({"gone": [1, 2, 3]});
    let spec = cluster["spec"].to_string();
    let repeated = format!(
        r#"{{"headGroupSpec":{first},{}"#,
        spec.strip_prefix('{').expect("an object")
    );
    let plain = review("CREATE", Some(&cluster), None).to_string();
    let text = plain.replace(&spec, &repeated);
    assert_ne!(
        text, plain,
        "the review's text holds the spec as serialized"
    );
    let reply = post_bytes("/mutate", text).await;
    assert!(reply.allowed(), "{}", reply.text);
    let mut patched = cluster.clone();
    json_patch::patch(&mut patched, &reply.patch().expect("patch")).expect("applies");
    assert_eq!(patched, raygate_api::admission::mutate(&cluster).0);
}

#[tokio::test]
async fn mutate_keeps_fields_our_types_do_not_know() {
    let mut cluster = ray_cluster();
    cluster["spec"]["vendorExtension"] = json!({"keep": "me"});
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["someFutureField"] = json!(true);
    let reply = post("/mutate", &review("CREATE", Some(&cluster), None)).await;
    let mut patched = cluster.clone();
    json_patch::patch(&mut patched, &reply.patch().expect("patch")).expect("applies");
    assert_eq!(patched["spec"]["vendorExtension"], json!({"keep": "me"}));
    assert_eq!(
        patched["spec"]["headGroupSpec"]["template"]["spec"]["someFutureField"],
        json!(true)
    );
}

#[tokio::test]
async fn every_sample_kind_is_admitted_after_mutation() {
    for file in [
        "ray-cluster.sample.yaml",
        "ray-job.sample.yaml",
        "ray-service.sample.yaml",
    ] {
        let object = sample(file);
        let normalized = normalized(&object).await;
        let reply = post("/validate", &review("CREATE", Some(&normalized), None)).await;
        assert_eq!(reply.status, StatusCode::OK, "{file}");
        assert!(reply.allowed(), "{file}: {}", reply.text);
        assert!(
            reply.response().get("status").is_none(),
            "{file}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn validate_denies_with_one_cause_per_field_and_a_kubectl_message() {
    let mut cluster = normalized(&invalid_cluster()).await;
    cluster["metadata"]["name"] = json!("Not_A_DNS_Name");
    let reply = post("/validate", &review("CREATE", Some(&cluster), None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.allowed());
    let status = &reply.response()["status"];
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["kind"], "RayCluster");
    assert_eq!(status["details"]["group"], "ray.io");
    assert_eq!(status["details"]["name"], "Not_A_DNS_Name");
    let causes = status["details"]["causes"].as_array().expect("causes");
    assert!(causes.len() >= 2, "{causes:?}");
    for cause in causes {
        assert_eq!(cause["reason"], "FieldValueInvalid");
        assert!(!cause["message"].as_str().unwrap_or_default().is_empty());
    }
    let fields: Vec<&str> = causes.iter().filter_map(|c| c["field"].as_str()).collect();
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("spec.workerGroupSpecs[0]")),
        "{fields:?}"
    );
    assert!(fields.contains(&"metadata.name"), "{fields:?}");
    let message = status["message"].as_str().expect("message");
    assert!(
        message.starts_with("RayCluster.ray.io \"Not_A_DNS_Name\" is invalid: ["),
        "{message}"
    );
    for field in fields {
        assert!(
            message.contains(&format!("{field}: Invalid value: ")),
            "{field} in {message}"
        );
    }
    assert!(message.contains("minReplicas"), "{message}");
}

#[tokio::test]
async fn warnings_are_returned_with_an_allowed_answer() {
    let mut service = normalized(&sample("ray-service.sample.yaml")).await;
    service["spec"]["serviceUnhealthySecondThreshold"] = json!(900);
    let reply = post("/validate", &review("CREATE", Some(&service), None)).await;
    assert!(reply.allowed(), "{}", reply.text);
    let warnings = reply.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("serviceUnhealthySecondThreshold")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn warnings_are_returned_with_a_denial_too() {
    let mut service = normalized(&sample("ray-service.sample.yaml")).await;
    service["spec"]["serviceUnhealthySecondThreshold"] = json!(900);
    service["metadata"]["name"] = json!("UPPER");
    let reply = post("/validate", &review("CREATE", Some(&service), None)).await;
    assert!(!reply.allowed(), "{}", reply.text);
    assert!(!reply.warnings().is_empty(), "{}", reply.text);
}

#[tokio::test]
async fn delete_is_allowed_unchecked_on_both_routes() {
    let old = invalid_cluster();
    for path in ["/mutate", "/validate"] {
        let reply = post(path, &review("DELETE", None, Some(&old))).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.allowed(), "{path}: {}", reply.text);
        assert_eq!(reply.response()["uid"], "uid-DELETE-raycluster-kuberay");
        assert!(reply.response().get("patch").is_none());
    }
}

#[tokio::test]
async fn status_subresource_update_is_allowed_unchecked() {
    let old = invalid_cluster();
    let mut new = old.clone();
    new["status"] = json!({"state": "ready"});
    let mut body = review("UPDATE", Some(&new), Some(&old));
    body["request"]["subResource"] = json!("status");
    for path in ["/mutate", "/validate"] {
        let reply = post(path, &body).await;
        assert!(reply.allowed(), "{path}: {}", reply.text);
        assert!(reply.response().get("patch").is_none());
    }
}

#[tokio::test]
async fn update_that_only_touches_status_or_bookkeeping_is_not_rechecked() {
    let old = invalid_cluster();
    let mut new = old.clone();
    new["metadata"]["resourceVersion"] = json!("77");
    new["metadata"]["generation"] = json!(2);
    new["status"] = json!({"state": "ready"});
    let reply = post("/validate", &review("UPDATE", Some(&new), Some(&old))).await;
    assert!(reply.allowed(), "{}", reply.text);
}

#[tokio::test]
async fn update_that_changes_spec_is_checked_against_the_old_object() {
    let old = normalized(&ray_cluster()).await;
    let mut new = old.clone();
    new["spec"]["workerGroupSpecs"][0]["minReplicas"] = json!(9);
    let reply = post("/validate", &review("UPDATE", Some(&new), Some(&old))).await;
    assert!(!reply.allowed(), "{}", reply.text);
    assert!(
        reply.response()["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.workerGroupSpecs[0]")
    );
}

#[tokio::test]
async fn removing_finalizers_of_a_terminating_object_is_never_blocked() {
    let mut old = invalid_cluster();
    old["metadata"]["finalizers"] = json!(["ray.io/gcs-ft-redis-cleanup-finalizer"]);
    old["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let mut new = old.clone();
    new["metadata"]["finalizers"] = json!([]);
    let reply = post("/validate", &review("UPDATE", Some(&new), Some(&old))).await;
    assert!(reply.allowed(), "{}", reply.text);
}

#[tokio::test]
async fn a_kind_we_do_not_serve_is_refused_by_name() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}});
    let mut body = review("CREATE", Some(&pod), None);
    body["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    for path in ["/mutate", "/validate"] {
        let reply = post(path, &body).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(!reply.allowed());
        let message = reply.response()["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("does not serve kind Pod"), "{message}");
        assert_eq!(reply.response()["status"]["code"], 400);
    }
}

#[tokio::test]
async fn dry_run_is_answered_like_a_real_request() {
    let cluster = ray_cluster();
    let real = post("/mutate", &review("CREATE", Some(&cluster), None)).await;
    let mut body = review("CREATE", Some(&cluster), None);
    body["request"]["dryRun"] = json!(true);
    let dry = post("/mutate", &body).await;
    assert_eq!(dry.response(), real.response());
}

#[tokio::test]
async fn update_without_old_object_is_validated_and_warned_about() {
    let cluster = normalized(&ray_cluster()).await;
    let reply = post("/validate", &review("UPDATE", Some(&cluster), None)).await;
    assert!(reply.allowed(), "{}", reply.text);
    assert!(
        reply.warnings().iter().any(|w| w.contains("oldObject")),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn method_and_route_errors_are_json() {
    let reply = send(router(), request(Method::GET, "/mutate", None, "")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(reply.error().contains("GET"), "{}", reply.text);
    let reply = send(
        router(),
        request(Method::POST, "/nope", Some("application/json"), "{}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.error().contains("/nope"));
}

#[tokio::test]
async fn reviews_are_counted_in_metrics() {
    let metrics = Arc::new(Metrics::new());
    let cluster = ray_cluster();
    let body = serde_json::to_vec(&review("CREATE", Some(&cluster), None)).expect("json");
    send(
        router_with(metrics.clone()),
        request(Method::POST, "/mutate", Some("application/json"), body),
    )
    .await;
    send(
        router_with(metrics.clone()),
        request(Method::POST, "/validate", Some("application/json"), "nope"),
    )
    .await;
    let text = metrics.render();
    assert!(text.contains(
        "raygate_admission_requests_total{kind=\"RayCluster\",operation=\"CREATE\",verb=\"mutate\",result=\"allowed\"} 1"
    ), "{text}");
    assert!(text.contains(
        "raygate_admission_requests_total{kind=\"unknown\",operation=\"unknown\",verb=\"validate\",result=\"error\"} 1"
    ), "{text}");
    assert!(text.contains("raygate_admission_duration_seconds_count{kind=\"RayCluster\",operation=\"CREATE\",verb=\"mutate\",result=\"allowed\"} 1"), "{text}");
}

#[tokio::test]
async fn admin_routes_report_health_readiness_and_metrics() {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let policies = Arc::new(PolicyState::default());
    let admin = admin_router(AdminState {
        metrics: metrics.clone(),
        ready: ready.clone(),
        policies: policies.clone(),
    });
    let get = |path: &str| request(Method::GET, path, None, "");
    assert_eq!(
        send(admin.clone(), get("/healthz")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(admin.clone(), get("/readyz")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    ready.store(true, Ordering::Release);
    assert_eq!(
        send(admin.clone(), get("/readyz")).await.status,
        StatusCode::OK
    );
    // Admitting before the RayPolicy watch has listed would skip the cluster's policies.
    policies.mark_unsynced();
    let reply = send(admin.clone(), get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.text.contains("RayPolicy"), "{}", reply.text);
    policies.mark_synced();
    assert_eq!(
        send(admin.clone(), get("/readyz")).await.status,
        StatusCode::OK
    );
    let reply = send(admin.clone(), get("/metrics")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .content_type
            .starts_with("application/openmetrics-text")
    );
    assert!(
        reply
            .text
            .contains("raygate_certificate_expiry_timestamp_seconds"),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("# EOF"));
    let reply = send(admin.clone(), request(Method::POST, "/healthz", None, "")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(reply.error().contains("POST"));
    assert_eq!(
        send(admin, get("/mutate")).await.status,
        StatusCode::NOT_FOUND
    );
}
