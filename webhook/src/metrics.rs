//! Prometheus metrics, `raygate_` prefixed, served on the admin port.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::verdict::{Endpoint, Outcome};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: String,
    operation: String,
    verb: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WarningLabels {
    kind: String,
    verb: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
    rule: String,
    action: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusWriteLabels {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RotationLabels {
    step: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateErrorLabels {
    reason: String,
}

/// The webhook's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
    warnings: Family<WarningLabels, Counter>,
    tls_reloads: Family<ReloadLabels, Counter>,
    tls_connections: Family<ConnectionLabels, Counter>,
    certificate_expiry: Gauge,
    certificate_rotations: Family<RotationLabels, Counter>,
    certificate_errors: Family<CertificateErrorLabels, Counter>,
    policy_violations: Family<PolicyLabels, Counter>,
    policy_status_writes: Family<StatusWriteLabels, Counter>,
}

/// The label for a kind: one of ours, or `other` so a misconfigured webhook can't blow up
/// the label set with every kind in the cluster.
pub fn kind_label(kind: &str) -> &str {
    if raygate_api::admission::RAY_KINDS.contains(&kind) {
        kind
    } else {
        "other"
    }
}

fn duration_histogram() -> Histogram {
    // 0.5 ms .. ~4 s: admission normally takes about a millisecond; the API server's
    // timeout is 5 s at most.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("raygate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "AdmissionReviews answered, by kind, operation, verb (mutate/validate) and result",
            requests.clone(),
        );
        let duration: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "admission_duration",
            "Time to decide one AdmissionReview, by kind, operation, verb and result",
            Unit::Seconds,
            duration.clone(),
        );
        let warnings = Family::<WarningLabels, Counter>::default();
        registry.register(
            "admission_warnings",
            "Warnings returned to API clients",
            warnings.clone(),
        );
        let tls_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "tls_reloads",
            "Serving certificate reloads from disk, by result (success/failure)",
            tls_reloads.clone(),
        );
        let tls_connections = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "tls_connections",
            "Connections to the admission port, by result: h2 or http/1.1 once the TLS handshake \
             succeeded, handshake_failed (often a caBundle that does not match the serving \
             certificate) or handshake_timeout",
            tls_connections.clone(),
        );
        let certificate_expiry = Gauge::default();
        registry.register_with_unit(
            "certificate_expiry_timestamp",
            "notAfter of the serving certificate in use, as a Unix timestamp",
            Unit::Seconds,
            certificate_expiry.clone(),
        );
        let certificate_rotations = Family::<RotationLabels, Counter>::default();
        registry.register(
            "certificate_rotations",
            "Changes this replica wrote to the self-managed certificate Secret, by step",
            certificate_rotations.clone(),
        );
        let certificate_errors = Family::<CertificateErrorLabels, Counter>::default();
        registry.register(
            "certificate_sync_errors",
            "Failures keeping the self-managed Secret, files or caBundles current, by reason",
            certificate_errors.clone(),
        );
        let policy_violations = Family::<PolicyLabels, Counter>::default();
        registry.register(
            "policy_violations",
            "RayPolicy rules broken by admitted or denied Ray objects, by policy, rule and action",
            policy_violations.clone(),
        );
        let policy_status_writes = Family::<StatusWriteLabels, Counter>::default();
        registry.register(
            "policy_status_writes",
            "RayPolicy status writes, by result (written, conflict: another replica wrote first \
             and the write is redone, error: retried in the next round)",
            policy_status_writes.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            warnings,
            tls_reloads,
            tls_connections,
            certificate_expiry,
            certificate_rotations,
            certificate_errors,
            policy_violations,
            policy_status_writes,
        }
    }

    /// Records one answered review.
    pub fn observe_review(
        &self,
        kind: &str,
        operation: &str,
        endpoint: Endpoint,
        outcome: Outcome,
        seconds: f64,
        warnings: usize,
    ) {
        let labels = RequestLabels {
            kind: kind_label(kind).to_owned(),
            operation: operation.to_owned(),
            verb: endpoint.as_str().to_owned(),
            result: outcome.as_str().to_owned(),
        };
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(seconds);
        if warnings > 0 {
            let RequestLabels { kind, verb, .. } = labels;
            self.warnings
                .get_or_create(&WarningLabels { kind, verb })
                .inc_by(warnings as u64);
        }
    }

    /// Counts RayPolicy violations (the validating call reports them; mutation never does, so
    /// each is counted once per admission).
    pub fn observe_policy_violations(&self, violations: &[raygate_api::policy::Violation]) {
        for violation in violations {
            self.policy_violations
                .get_or_create(&PolicyLabels {
                    policy: violation.policy.clone(),
                    rule: violation.rule.to_owned(),
                    action: violation.action.as_str().to_owned(),
                })
                .inc();
        }
    }

    /// One RayPolicy status write ended with `result` (`written`, `conflict`, `error`).
    pub fn observe_policy_status_write(&self, result: &str) {
        self.policy_status_writes
            .get_or_create(&StatusWriteLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Records a body that was not an AdmissionReview we could answer.
    pub fn observe_rejected_body(&self, endpoint: Endpoint) {
        self.requests
            .get_or_create(&RequestLabels {
                kind: "unknown".to_owned(),
                operation: "unknown".to_owned(),
                verb: endpoint.as_str().to_owned(),
                result: Outcome::Error.as_str().to_owned(),
            })
            .inc();
    }

    pub fn observe_tls_reload(&self, succeeded: bool) {
        let result = if succeeded { "success" } else { "failure" };
        self.tls_reloads
            .get_or_create(&ReloadLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// One connection to the admission port: `h2`, `http/1.1`, `handshake_failed` or
    /// `handshake_timeout`.
    pub fn observe_connection(&self, result: &'static str) {
        self.tls_connections
            .get_or_create(&ConnectionLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Self-managed mode wrote a rotation `step` (`renew_serving`, `start_ca_rotation`, ...).
    pub fn observe_certificate_rotation(&self, step: &str) {
        self.certificate_rotations
            .get_or_create(&RotationLabels {
                step: step.to_owned(),
            })
            .inc();
    }

    pub fn observe_certificate_sync_error(&self, reason: &str) {
        self.certificate_errors
            .get_or_create(&CertificateErrorLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn set_certificate_expiry(&self, unix_seconds: i64) {
        self.certificate_expiry.set(unix_seconds);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_units() {
        let metrics = Metrics::new();
        metrics.observe_review(
            "RayCluster",
            "CREATE",
            Endpoint::Validate,
            Outcome::Denied,
            0.001,
            2,
        );
        metrics.observe_review("Pod", "CREATE", Endpoint::Mutate, Outcome::Denied, 0.001, 0);
        metrics.observe_tls_reload(true);
        metrics.set_certificate_expiry(1_900_000_000);
        metrics.observe_policy_status_write("conflict");
        metrics.observe_connection("h2");
        metrics.observe_connection("handshake_failed");
        let text = metrics.render();
        for expected in [
            "raygate_admission_requests_total{kind=\"RayCluster\",operation=\"CREATE\",verb=\"validate\",result=\"denied\"} 1",
            "raygate_admission_requests_total{kind=\"other\",operation=\"CREATE\",verb=\"mutate\",result=\"denied\"} 1",
            "raygate_admission_duration_seconds_bucket{",
            "raygate_admission_warnings_total{kind=\"RayCluster\",verb=\"validate\"} 2",
            "raygate_tls_reloads_total{result=\"success\"} 1",
            "raygate_certificate_expiry_timestamp_seconds 1900000000",
            "raygate_policy_status_writes_total{result=\"conflict\"} 1",
            "raygate_tls_connections_total{result=\"h2\"} 1",
            "raygate_tls_connections_total{result=\"handshake_failed\"} 1",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
