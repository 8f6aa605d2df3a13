//! The HTTP face of admission: `POST /mutate` and `POST /validate` on the TLS port, and the
//! admin routes (`/healthz`, `/readyz`, `/metrics`) on the plain-HTTP port.
//!
//! One thin extractor turns a request into a [`ReviewRequest`] or a JSON error; the deciding
//! function ([`crate::verdict::decide`]) never sees HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use k8s_openapi::jiff::Timestamp;
use tracing::{Instrument, field};

use crate::metrics::Metrics;
use crate::policy_state::PolicyState;
use crate::review::{self, DecodeError, ReviewRequest};
use crate::verdict::{Endpoint, decide_with_policies};

/// The API server's own limit for a request body is 3 MiB; an AdmissionReview carries the
/// object (and the old one), so it fits in the same.
pub const DEFAULT_BODY_LIMIT: usize = 3 * 1024 * 1024;

/// What the admission routes share.
#[derive(Debug, Clone)]
pub struct AdmissionState {
    pub metrics: Arc<Metrics>,
    pub body_limit: usize,
    /// How long a client may take to send the body once the headers are in.
    pub body_read_timeout: Duration,
    /// The RayPolicies in force and the namespace labels they select on.
    pub policies: Arc<PolicyState>,
}

impl AdmissionState {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            body_limit: DEFAULT_BODY_LIMIT,
            body_read_timeout: Duration::from_secs(10),
            policies: Arc::new(PolicyState::default()),
        }
    }
}

/// `POST /mutate`, `POST /validate`; anything else is a JSON 404 or 405.
pub fn admission_router(state: AdmissionState) -> Router {
    Router::new()
        .route("/mutate", post(mutate).fallback(post_only))
        .route("/validate", post(validate).fallback(post_only))
        .fallback(not_found)
        .with_state(state)
}

/// What the admin port serves.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    /// True once the TLS listener is bound (and false again while shutting down).
    pub ready: Arc<AtomicBool>,
    /// Ready also needs the policy watches synced: admitting before them would skip policies.
    pub policies: Arc<PolicyState>,
}

/// `GET /healthz`, `GET /readyz`, `GET /metrics`.
pub fn admin_router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }).fallback(get_only))
        .route("/readyz", get(readyz).fallback(get_only))
        .route("/metrics", get(metrics).fallback(get_only))
        .fallback(not_found)
        .with_state(state)
}

/// An HTTP request that is not an AdmissionReview we can answer. Answered as
/// `{"error": "..."}` with the matching status code, never as plain text.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("unsupported content type {found:?}: send the AdmissionReview as application/json")]
    UnsupportedMediaType { found: String },
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body not received within {0:?}")]
    BodyTimeout(Duration),
    #[error("request body could not be read: {0}")]
    BodyRead(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("method {method} not allowed here; use {allow}")]
    MethodNotAllowed { method: Method, allow: &'static str },
    #[error("no route for {0}")]
    NotFound(String),
}

impl RequestError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            RequestError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RequestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            RequestError::BodyRead(_) | RequestError::Decode(_) => StatusCode::BAD_REQUEST,
            RequestError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::NotFound(_) => StatusCode::NOT_FOUND,
        }
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut response =
            (status, Json(serde_json::json!({"error": self.to_string()}))).into_response();
        if let RequestError::MethodNotAllowed { allow, .. } = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// The extractor: an AdmissionReview body, size-limited and decoded, or a [`RequestError`].
#[derive(Debug)]
pub struct Review(pub ReviewRequest);

impl FromRequest<AdmissionState> for Review {
    type Rejection = RequestError;

    async fn from_request(request: Request, state: &AdmissionState) -> Result<Self, RequestError> {
        let endpoint = endpoint_of(request.uri().path());
        let result = read_review(request, state).await;
        if let Err(error) = &result {
            state.metrics.observe_rejected_body(endpoint);
            tracing::warn!(verb = endpoint.as_str(), %error, "refused admission request");
        }
        result.map(Review)
    }
}

fn endpoint_of(path: &str) -> Endpoint {
    if path.starts_with("/mutate") {
        Endpoint::Mutate
    } else {
        Endpoint::Validate
    }
}

async fn read_review(
    request: Request,
    state: &AdmissionState,
) -> Result<ReviewRequest, RequestError> {
    check_content_type(request.headers().get(header::CONTENT_TYPE))?;
    let limit = state.body_limit;
    // Refuse a declared oversize body before reading any of it.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(RequestError::PayloadTooLarge { limit });
    }
    let body = Limited::new(request.into_body(), limit);
    let collected = tokio::time::timeout(state.body_read_timeout, body.collect())
        .await
        .map_err(|_| RequestError::BodyTimeout(state.body_read_timeout))?;
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return Err(RequestError::PayloadTooLarge { limit });
        }
        Err(error) => return Err(RequestError::BodyRead(error.to_string())),
    };
    Ok(review::decode(&bytes)?)
}

/// The API server sends `application/json`; a parameter such as `charset=utf-8` is fine.
fn check_content_type(value: Option<&HeaderValue>) -> Result<(), RequestError> {
    let text = value.and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        let found = if value.is_none() {
            "(none)".to_owned()
        } else {
            text.to_owned()
        };
        Err(RequestError::UnsupportedMediaType { found })
    }
}

async fn mutate(State(state): State<AdmissionState>, Review(request): Review) -> Response {
    answer(&state, Endpoint::Mutate, request).await
}

async fn validate(State(state): State<AdmissionState>, Review(request): Review) -> Response {
    answer(&state, Endpoint::Validate, request).await
}

async fn answer(state: &AdmissionState, endpoint: Endpoint, request: ReviewRequest) -> Response {
    let span = tracing::info_span!(
        "admission",
        uid = %request.uid,
        kind = %request.kind.kind,
        namespace = request.namespace.as_deref().unwrap_or_default(),
        // Not `name`: JSON logs already use that key for the span's own name.
        object = request.object_name(),
        operation = request.operation_name(),
        verb = endpoint.as_str(),
        dry_run = request.dry_run,
        allowed = field::Empty,
    );
    async {
        let started = Instant::now();
        let policies = state.policies.current();
        let namespace_labels = match request.namespace.as_deref() {
            Some(namespace) if !policies.is_empty() => state.policies.namespace_labels(namespace),
            _ => Default::default(),
        };
        let verdict = decide_with_policies(endpoint, &request, &policies, &namespace_labels);
        let elapsed = started.elapsed().as_secs_f64();
        state.metrics.observe_policy_violations(&verdict.violations);
        // A RayPolicy's status counts what really happened: a dry run changes nothing.
        if !request.dry_run && !verdict.matched_policies.is_empty() {
            state.policies.status_book().count(
                &verdict.matched_policies,
                &verdict.violations,
                Timestamp::now(),
            );
        }
        tracing::Span::current().record("allowed", verdict.allowed());
        state.metrics.observe_review(
            &request.kind.kind,
            request.operation_name(),
            endpoint,
            verdict.outcome,
            elapsed,
            verdict.warnings.len(),
        );
        tracing::info!(
            result = verdict.outcome.as_str(),
            skipped = verdict.skipped,
            patched = verdict.patch_json.is_some(),
            warnings = verdict.warnings.len(),
            policy_violations = verdict.violations.len(),
            denial = verdict.status.as_ref().map(|s| s.message.as_str()),
            "admission review answered"
        );
        Json(verdict.into_response(&request.uid).into_review()).into_response()
    }
    .instrument(span)
    .await
}

async fn post_only(method: Method) -> RequestError {
    RequestError::MethodNotAllowed {
        method,
        allow: "POST",
    }
}

async fn get_only(method: Method) -> RequestError {
    RequestError::MethodNotAllowed {
        method,
        allow: "GET",
    }
}

async fn not_found(request: Request<Body>) -> RequestError {
    RequestError::NotFound(request.uri().path().to_owned())
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if !state.ready.load(Ordering::Acquire) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the TLS listener is not serving\n",
        )
    } else if !state.policies.is_synced() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the RayPolicy and Namespace watches have not synced\n",
        )
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
