//! Helpers for the webhook's HTTP tests: real KubeRay samples wrapped in AdmissionReviews, and
//! a router driven without sockets.
#![allow(dead_code)] // each test file uses a different subset

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine as _;
use http_body_util::BodyExt;
use raygate_webhook::{AdmissionState, Metrics, admission_router};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A KubeRay sample (first document) from `shared/kuberay/samples`.
pub fn sample(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/kuberay/samples")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut documents = raygate_api::manifest::parse_documents(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    assert!(!documents.is_empty(), "{} is empty", path.display());
    let mut object = documents.swap_remove(0);
    // The API server defaults the namespace before calling webhooks.
    object["metadata"]["namespace"] = json!("default");
    object
}

pub fn ray_cluster() -> Value {
    sample("ray-cluster.sample.yaml")
}

pub fn resource_of(kind: &str) -> String {
    format!("{}s", kind.to_lowercase())
}

/// An AdmissionReview v1 as kube-apiserver sends it.
pub fn review(operation: &str, object: Option<&Value>, old: Option<&Value>) -> Value {
    let template = object.or(old).cloned().unwrap_or(Value::Null);
    let kind = template["kind"].as_str().unwrap_or("RayCluster").to_owned();
    let name = template["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{operation}-{name}"),
            "kind": {"group": "ray.io", "version": "v1", "kind": kind},
            "resource": {"group": "ray.io", "version": "v1", "resource": resource_of(&kind)},
            "requestKind": {"group": "ray.io", "version": "v1", "kind": kind},
            "requestResource": {"group": "ray.io", "version": "v1", "resource": resource_of(&kind)},
            "name": name,
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": format!("{}Options", title(operation))},
        }
    })
}

fn title(operation: &str) -> String {
    let lower = operation.to_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

pub fn router() -> Router {
    admission_router(AdmissionState::new(Arc::new(Metrics::new())))
}

pub fn router_with(metrics: Arc<Metrics>) -> Router {
    admission_router(AdmissionState::new(metrics))
}

/// What came back: status, the raw body, and the body as JSON (Null if it isn't).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// The AdmissionReview `response`.
    pub fn response(&self) -> &Value {
        &self.json["response"]
    }

    pub fn allowed(&self) -> bool {
        self.response()["allowed"] == json!(true)
    }

    /// The decoded JSON patch, if any.
    pub fn patch(&self) -> Option<json_patch::Patch> {
        let encoded = self.response()["patch"].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("patch is base64");
        Some(serde_json::from_slice(&bytes).expect("patch is a JSON patch"))
    }

    pub fn warnings(&self) -> Vec<String> {
        self.response()["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or_default()
    }
}

pub async fn send(router: Router, request: Request<Body>) -> Reply {
    let response = router
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        text,
        json,
    }
}

pub fn request(
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(body.into()).expect("request")
}

/// POSTs raw bytes as JSON.
pub async fn post_bytes(path: &str, body: impl Into<Body>) -> Reply {
    send(
        router(),
        request(Method::POST, path, Some("application/json"), body),
    )
    .await
}

/// POSTs a JSON document.
pub async fn post(path: &str, body: &Value) -> Reply {
    post_bytes(path, serde_json::to_vec(body).expect("JSON")).await
}

/// The object after the mutating webhook's patch.
pub async fn normalized(object: &Value) -> Value {
    let reply = post("/mutate", &review("CREATE", Some(object), None)).await;
    assert!(reply.allowed(), "mutation refused: {}", reply.text);
    let mut object = object.clone();
    if let Some(patch) = reply.patch() {
        json_patch::patch(&mut object, &patch).expect("the patch applies");
    }
    object
}
