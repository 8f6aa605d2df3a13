//! The bad-input catalogue: everything a confused or hostile client can send to the admission
//! routes, each with the exact status code and the exact message that tells the sender what to
//! fix.
//! Nothing here may crash the server or come back as plain text.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};

/// What a case must come back with.
enum Expect {
    /// An HTTP error with exactly `{"error": "<message>"}`.
    Error(StatusCode, &'static str),
    /// HTTP 200, `allowed: false`, exactly this `status.message`.
    Denied(&'static str),
    /// HTTP 200, `allowed: true`, exactly these warnings (one, or none).
    Allowed(Option<&'static str>),
}

async fn check(request: Request<Body>, expect: Expect) {
    let reply = send(router(), request).await;
    assert!(
        reply.content_type.starts_with("application/json"),
        "not JSON ({}): {}",
        reply.content_type,
        reply.text
    );
    match expect {
        Expect::Error(status, message) => {
            assert_eq!(reply.status, status, "{}", reply.text);
            assert_eq!(reply.error(), message, "{}", reply.text);
        }
        Expect::Denied(message) => {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            assert!(!reply.allowed(), "{}", reply.text);
            assert!(
                reply.response()["uid"]
                    .as_str()
                    .is_some_and(|u| !u.is_empty())
            );
            assert_eq!(
                reply.response()["status"]["message"].as_str(),
                Some(message),
                "{}",
                reply.text
            );
        }
        Expect::Allowed(warning) => {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            assert!(reply.allowed(), "{}", reply.text);
            let expected: Vec<String> = warning.into_iter().map(str::to_owned).collect();
            assert_eq!(reply.warnings(), expected, "{}", reply.text);
        }
    }
}

fn json_post(path: &str, body: impl Into<Body>) -> Request<Body> {
    request(Method::POST, path, Some("application/json"), body)
}

fn review_post(path: &str, review: &Value) -> Request<Body> {
    json_post(path, serde_json::to_vec(review).expect("JSON"))
}

fn create(object: &Value) -> Value {
    review("CREATE", Some(object), None)
}

macro_rules! catalogue {
    ($($name:ident: $request:expr => $expect:expr;)+) => {
        $(
            #[tokio::test]
            async fn $name() {
                check($request, $expect).await;
            }
        )+
    };
}

use Expect::*;

catalogue! {
    not_json: json_post("/validate", "this is not JSON")
        => Error(StatusCode::BAD_REQUEST, "request body is not valid JSON: expected ident at line 1 column 2");
    truncated_json: json_post("/validate", r#"{"apiVersion": "admission.k8s.io/v1", "kind": "#)
        => Error(StatusCode::BAD_REQUEST, "request body is not valid JSON: EOF while parsing a value at line 1 column 46");
    invalid_utf8: json_post("/mutate", vec![b'{', 0xff, 0xfe, b'}'])
        => Error(StatusCode::BAD_REQUEST, "request body is not valid JSON: key must be a string at line 1 column 2");
    empty_body: json_post("/validate", "")
        => Error(StatusCode::BAD_REQUEST, "request body is empty; expected an AdmissionReview (admission.k8s.io/v1)");
    whitespace_body: json_post("/mutate", " \n\t ")
        => Error(StatusCode::BAD_REQUEST, "request body is empty; expected an AdmissionReview (admission.k8s.io/v1)");
    json_null: json_post("/validate", "null")
        => Error(StatusCode::BAD_REQUEST, "request body is not an AdmissionReview: expected a JSON object with kind \"AdmissionReview\"");
    json_array: json_post("/validate", "[1, 2, 3]")
        => Error(StatusCode::BAD_REQUEST, "request body is not an AdmissionReview: expected a JSON object with kind \"AdmissionReview\"");
    json_string: json_post("/mutate", r#""AdmissionReview""#)
        => Error(StatusCode::BAD_REQUEST, "request body is not an AdmissionReview: expected a JSON object with kind \"AdmissionReview\"");
    json_but_not_a_review: review_post("/validate", &ray_cluster())
        => Error(StatusCode::BAD_REQUEST, "request body is not an AdmissionReview: kind is \"RayCluster\"");
    review_without_kind: review_post("/validate", &{
        let mut r = create(&ray_cluster());
        r.as_object_mut().map(|m| m.remove("kind"));
        r
    }) => Error(StatusCode::BAD_REQUEST, "request body is not an AdmissionReview: kind is missing");
    v1beta1_review: review_post("/validate", &{
        let mut r = create(&ray_cluster());
        r["apiVersion"] = json!("admission.k8s.io/v1beta1");
        r
    }) => Error(StatusCode::BAD_REQUEST, "unsupported AdmissionReview apiVersion \"admission.k8s.io/v1beta1\": raygate speaks admission.k8s.io/v1 only (set admissionReviewVersions: [v1] in the webhook configuration)");
    review_without_api_version: review_post("/mutate", &{
        let mut r = create(&ray_cluster());
        r.as_object_mut().map(|m| m.remove("apiVersion"));
        r
    }) => Error(StatusCode::BAD_REQUEST, "unsupported AdmissionReview apiVersion (missing): raygate speaks admission.k8s.io/v1 only (set admissionReviewVersions: [v1] in the webhook configuration)");
    missing_request: review_post("/validate", &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}))
        => Error(StatusCode::BAD_REQUEST, "AdmissionReview has no request");
    null_request: review_post("/mutate", &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": null}))
        => Error(StatusCode::BAD_REQUEST, "AdmissionReview has no request");
    response_instead_of_request: review_post("/validate", &json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": "x", "allowed": true}
    })) => Error(StatusCode::BAD_REQUEST, "AdmissionReview has no request");
    missing_uid: review_post("/validate", &{
        let mut r = create(&ray_cluster());
        r["request"].as_object_mut().map(|m| m.remove("uid"));
        r
    }) => Error(StatusCode::BAD_REQUEST, "AdmissionReview request has no uid");
    empty_uid: review_post("/mutate", &{
        let mut r = create(&ray_cluster());
        r["request"]["uid"] = json!("");
        r
    }) => Error(StatusCode::BAD_REQUEST, "AdmissionReview request has no uid");
    numeric_uid: review_post("/mutate", &{
        let mut r = create(&ray_cluster());
        r["request"]["uid"] = json!(42);
        r
    }) => Error(StatusCode::BAD_REQUEST, "AdmissionReview request has no uid");
    missing_object: review_post("/validate", &review("CREATE", None, None))
        => Error(StatusCode::BAD_REQUEST, "AdmissionReview request for CREATE has no object");
    object_not_an_object: review_post("/mutate", &{
        let mut r = review("UPDATE", Some(&ray_cluster()), Some(&ray_cluster()));
        r["request"]["object"] = json!("RayCluster");
        r
    }) => Error(StatusCode::BAD_REQUEST, "AdmissionReview request for UPDATE has no object");
    unknown_operation: review_post("/validate", &{
        let mut r = create(&ray_cluster());
        r["request"]["operation"] = json!("PATCH");
        r
    }) => Error(StatusCode::BAD_REQUEST, "AdmissionReview request is malformed at request.operation: unknown variant `PATCH`, expected one of `CREATE`, `UPDATE`, `DELETE`, `CONNECT`");
    request_without_kind: review_post("/validate", &{
        let mut r = create(&ray_cluster());
        r["request"].as_object_mut().map(|m| m.remove("kind"));
        r
    }) => Error(StatusCode::BAD_REQUEST, "AdmissionReview request is malformed at request: missing field `kind`");
    kind_we_do_not_serve: review_post("/validate", &{
        let mut r = create(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}));
        r["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
        r
    }) => Denied("raygate does not serve kind Deployment (apps/v1); it admits ray.io/v1 RayCluster, RayJob, RayService, RayCronJob and raygate.io/v1alpha1 RayPolicy: check the rules of the webhook configuration");
    ray_kind_in_an_unserved_version: review_post("/mutate", &{
        let mut r = create(&ray_cluster());
        r["request"]["kind"]["version"] = json!("v1alpha1");
        r
    }) => Denied("raygate does not serve kind RayCluster (ray.io/v1alpha1); it admits ray.io/v1 RayCluster, RayJob, RayService, RayCronJob and raygate.io/v1alpha1 RayPolicy: check the rules of the webhook configuration");
    worker_group_specs_is_a_number: review_post("/validate", &{
        let mut cluster = ray_cluster();
        cluster["spec"]["workerGroupSpecs"] = json!(5);
        create(&cluster)
    }) => Denied("RayCluster.ray.io \"raycluster-kuberay\" is invalid: spec.workerGroupSpecs: Invalid value: 5: invalid type: integer `5`, expected a sequence");
    worker_group_specs_is_a_number_on_mutate_does_not_crash: review_post("/mutate", &{
        let mut cluster = ray_cluster();
        cluster["spec"]["workerGroupSpecs"] = json!(5);
        create(&cluster)
    }) => Allowed(None);
    spec_is_a_string: review_post("/validate", &{
        let mut cluster = ray_cluster();
        cluster["spec"] = json!("big");
        create(&cluster)
    }) => Denied("RayCluster.ray.io \"raycluster-kuberay\" is invalid: spec: Invalid value: \"big\": invalid type: string \"big\", expected struct RayClusterSpec");
    name_is_a_number: review_post("/validate", &{
        let mut cluster = ray_cluster();
        cluster["metadata"]["name"] = json!(7);
        create(&cluster)
    }) => Denied("RayCluster.ray.io \"\" is invalid: metadata.name: Invalid value: 7: invalid type: integer `7`, expected a string");
    deeply_nested_array: json_post("/validate", "[".repeat(100_000) + &"]".repeat(100_000))
        => Error(StatusCode::BAD_REQUEST, "request body is not valid JSON: recursion limit exceeded at line 1 column 128");
    deeply_nested_object_inside_a_review: json_post("/mutate", {
        let review = serde_json::to_string(&create(&ray_cluster())).expect("JSON");
        let deep = r#"{"a":"#.repeat(100_000) + "1" + &"}".repeat(100_000);
        review.replacen(r#""spec":"#, &format!(r#""deep":{deep},"spec":"#), 1)
    }) => Error(StatusCode::BAD_REQUEST, "request body is not valid JSON: recursion limit exceeded at line 1 column 944");
    ten_megabyte_body: {
        let mut request = json_post("/validate", vec![b' '; 10 * 1024 * 1024]);
        request.headers_mut().insert(header::CONTENT_LENGTH, (10 * 1024 * 1024).into());
        request
    } => Error(StatusCode::PAYLOAD_TOO_LARGE, "request body exceeds the limit of 3145728 bytes");
    ten_megabyte_body_without_content_length: json_post("/mutate", {
        let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024]));
        // A stream has no length known up front, so only the running count can stop it.
        Body::from_stream(futures_util::stream::iter(chunks))
    }) => Error(StatusCode::PAYLOAD_TOO_LARGE, "request body exceeds the limit of 3145728 bytes");
    lying_content_length_is_still_bounded: {
        let mut request = json_post("/validate", vec![b' '; 4 * 1024 * 1024]);
        request.headers_mut().insert(header::CONTENT_LENGTH, 10.into());
        request
    } => Error(StatusCode::PAYLOAD_TOO_LARGE, "request body exceeds the limit of 3145728 bytes");
    wrong_content_type: request(Method::POST, "/validate", Some("text/plain"), serde_json::to_vec(&create(&ray_cluster())).expect("JSON"))
        => Error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported content type \"text/plain\": send the AdmissionReview as application/json");
    yaml_content_type: request(Method::POST, "/mutate", Some("application/yaml"), "kind: AdmissionReview")
        => Error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported content type \"application/yaml\": send the AdmissionReview as application/json");
    missing_content_type: request(Method::POST, "/validate", None, serde_json::to_vec(&create(&ray_cluster())).expect("JSON"))
        => Error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported content type \"(none)\": send the AdmissionReview as application/json");
    content_type_with_charset_is_fine: request(Method::POST, "/mutate", Some("application/json; charset=utf-8"), serde_json::to_vec(&create(&ray_cluster())).expect("JSON"))
        => Allowed(None);
    get_mutate: request(Method::GET, "/mutate", None, "")
        => Error(StatusCode::METHOD_NOT_ALLOWED, "method GET not allowed here; use POST");
    put_validate: request(Method::PUT, "/validate", Some("application/json"), "{}")
        => Error(StatusCode::METHOD_NOT_ALLOWED, "method PUT not allowed here; use POST");
    unknown_route: request(Method::POST, "/admit", Some("application/json"), "{}")
        => Error(StatusCode::NOT_FOUND, "no route for /admit");
    delete_is_allowed: review_post("/validate", &review("DELETE", None, Some(&ray_cluster())))
        => Allowed(None);
    delete_of_a_broken_object_is_allowed: review_post("/validate", &{
        let mut cluster = ray_cluster();
        cluster["spec"] = json!(5);
        review("DELETE", None, Some(&cluster))
    }) => Allowed(None);
    connect_is_allowed: review_post("/mutate", &{
        let mut r = review("CONNECT", None, None);
        r["request"]["object"] = json!({"apiVersion": "v1", "kind": "PodExecOptions"});
        r
    }) => Allowed(None);
    update_without_old_object: review_post("/validate", &review("UPDATE", Some(&ray_cluster()), None))
        => Allowed(Some("the UPDATE review carried no oldObject, so rules on immutable fields were not checked"));
    dry_run_denial_is_the_same_denial: review_post("/validate", &{
        let mut cluster = ray_cluster();
        cluster["spec"]["workerGroupSpecs"] = json!(5);
        let mut r = create(&cluster);
        r["request"]["dryRun"] = json!(true);
        r
    }) => Denied("RayCluster.ray.io \"raycluster-kuberay\" is invalid: spec.workerGroupSpecs: Invalid value: 5: invalid type: integer `5`, expected a sequence");
    dry_run_create_is_admitted: review_post("/mutate", &{
        let mut r = create(&ray_cluster());
        r["request"]["dryRun"] = json!(true);
        r
    }) => Allowed(None);
}

#[tokio::test]
async fn dry_run_answers_equal_real_answers() {
    let mut cluster = ray_cluster();
    cluster["spec"]["workerGroupSpecs"][0]["minReplicas"] = json!(9);
    for path in ["/mutate", "/validate"] {
        let real = post(path, &create(&cluster)).await;
        let mut dry = create(&cluster);
        dry["request"]["dryRun"] = json!(true);
        let dry = post(path, &dry).await;
        assert_eq!(real.response(), dry.response(), "{path}");
    }
}
