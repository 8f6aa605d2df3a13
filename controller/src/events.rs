//! Kubernetes Events (events.k8s.io/v1) on Ray objects for every create, delete, transition and
//! failure, with KubeRay's reporter and reason names so `kubectl describe` reads the same.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// KubeRay's reporter names; tools filter events by them.
pub const REPORTER: &str = "raycluster-controller";
pub const RAYJOB_REPORTER: &str = "rayjob-controller";
pub const RAYSERVICE_REPORTER: &str = "rayservice-controller";
pub const RAYCRONJOB_REPORTER: &str = "raycronjob-controller";

#[derive(Clone)]
pub struct EventSink {
    recorder: Recorder,
}

impl EventSink {
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        Self::for_reporter(client, REPORTER, instance)
    }

    pub fn for_reporter(client: kube::Client, controller: &str, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance,
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        cluster: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(cluster, EventType::Normal, reason, action, note)
            .await;
    }

    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        cluster: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(cluster, EventType::Warning, reason, action, note)
            .await;
    }

    /// An event that can't be written is logged, never fails the reconcile: events are
    /// best-effort in Kubernetes too.
    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        cluster: &K,
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
