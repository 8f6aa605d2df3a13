//! Prometheus metrics of the controller, `raygate_` prefixed, served on the admin port.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    error: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `jobDeploymentStatus` entered: Complete, Failed or Retrying.
    outcome: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    clusters: Family<StateLabels, Gauge>,
    provisioned: Histogram,
    is_leader: Gauge,
    job_outcomes: Family<OutcomeLabels, Counter>,
    job_duration: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
}

fn job_histogram() -> Histogram {
    // 1 s .. ~9 h: from the RayJob's start until it finished.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

fn reconcile_histogram() -> Histogram {
    // 1 ms .. ~33 s: a pass is a list plus a few writes; creating many pods takes seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("raygate");
        let reconciles = Family::<KindLabels, Counter>::default();
        registry.register(
            "controller_reconciles",
            "Reconcile passes, by kind",
            reconciles.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "controller_reconcile_errors",
            "Reconcile passes that failed, by kind and error",
            errors.clone(),
        );
        let duration = Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            reconcile_histogram,
        );
        registry.register_with_unit(
            "controller_reconcile_duration",
            "Time a reconcile pass takes",
            Unit::Seconds,
            duration.clone(),
        );
        let clusters = Family::<StateLabels, Gauge>::default();
        registry.register(
            "clusters",
            "RayClusters by status.state (`none` before the first state)",
            clusters.clone(),
        );
        // 1 s .. ~2.3 h: from creation until every pod is running and ready.
        let provisioned = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register_with_unit(
            "cluster_provisioned_duration",
            "Time from a RayCluster's creation until all its pods were first ready",
            Unit::Seconds,
            provisioned.clone(),
        );
        let is_leader = Gauge::default();
        registry.register(
            "controller_is_leader",
            "1 while this replica holds the leader lease and acts",
            is_leader.clone(),
        );
        let job_outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "job_outcomes",
            "RayJobs that entered Complete, Failed or Retrying",
            job_outcomes.clone(),
        );
        let job_duration =
            Family::<OutcomeLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                job_histogram,
            );
        registry.register_with_unit(
            "job_execution_duration",
            "Time from a RayJob's start until it entered Complete, Failed or Retrying",
            Unit::Seconds,
            job_duration.clone(),
        );
        Self {
            registry,
            job_outcomes,
            job_duration,
            reconciles,
            errors,
            duration,
            clusters,
            provisioned,
            is_leader,
        }
    }

    pub fn reconciled(&self, kind: &str, took: Duration, error: Option<&'static str>) {
        let labels = KindLabels {
            kind: kind.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(error) = error {
            self.errors
                .get_or_create(&ErrorLabels {
                    kind: kind.to_string(),
                    error: error.to_string(),
                })
                .inc();
        }
    }

    /// Replaces the per-state cluster counts (computed from the watch cache, so deleted
    /// clusters drop out without a reconcile).
    pub fn set_cluster_states(&self, counts: &BTreeMap<String, i64>) {
        self.clusters.clear();
        for (state, count) in counts {
            self.clusters
                .get_or_create(&StateLabels {
                    state: state.clone(),
                })
                .set(*count);
        }
    }

    pub fn provisioned_after(&self, took: Duration) {
        self.provisioned.observe(took.as_secs_f64());
    }

    /// A RayJob entered Complete, Failed or Retrying after running for `took`.
    pub fn job_finished(&self, outcome: &str, took: Duration) {
        let labels = OutcomeLabels {
            outcome: outcome.to_string(),
        };
        self.job_outcomes.get_or_create(&labels).inc();
        self.job_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn set_leader(&self, leader: bool) {
        self.is_leader.set(i64::from(leader));
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_counts_are_replaced_and_errors_counted() {
        let metrics = Metrics::new();
        let counts = |pairs: &[(&str, i64)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        metrics.set_cluster_states(&counts(&[("none", 1), ("ready", 2)]));
        metrics.set_cluster_states(&counts(&[("ready", 2)]));
        metrics.reconciled("RayCluster", Duration::from_millis(3), Some("ListPods"));
        let text = metrics.encode();
        assert!(
            text.contains("raygate_clusters{state=\"ready\"} 2"),
            "{text}"
        );
        assert!(!text.contains("state=\"none\""), "{text}");
        let errors =
            "raygate_controller_reconcile_errors_total{kind=\"RayCluster\",error=\"ListPods\"} 1";
        assert!(text.contains(errors), "{text}");
    }
}
