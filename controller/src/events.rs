//! Kubernetes Events (events.k8s.io/v1) on the RayCluster for every create, delete and
//! failure, with KubeRay's reason names so `kubectl describe` reads the same.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use raygate_api::RayCluster;

/// KubeRay's reporter name; tools filter events by it.
pub const REPORTER: &str = "raycluster-controller";

#[derive(Clone)]
pub struct EventSink {
    recorder: Recorder,
}

impl EventSink {
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: REPORTER.to_string(),
            instance,
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    pub async fn normal(&self, cluster: &RayCluster, reason: &str, action: &str, note: String) {
        self.publish(cluster, EventType::Normal, reason, action, note)
            .await;
    }

    pub async fn warning(&self, cluster: &RayCluster, reason: &str, action: &str, note: String) {
        self.publish(cluster, EventType::Warning, reason, action, note)
            .await;
    }

    /// An event that can't be written is logged, never fails the reconcile: events are
    /// best-effort in Kubernetes too.
    async fn publish(
        &self,
        cluster: &RayCluster,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(error) = self
            .recorder
            .publish(&event, &cluster.object_ref(&()))
            .await
        {
            tracing::warn!(%error, reason, "could not record an event");
        }
    }
}
