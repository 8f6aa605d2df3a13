//! Kubernetes Events (events.k8s.io/v1) on Ray objects for every create, delete, transition and
//! failure, with KubeRay's reporter and reason names so `kubectl describe` reads the same.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// KubeRay's reporter names; tools filter events by them.
pub const REPORTER: &str = "raycluster-controller";
pub const RAYJOB_REPORTER: &str = "rayjob-controller";
pub const RAYSERVICE_REPORTER: &str = "rayservice-controller";
pub const RAYCRONJOB_REPORTER: &str = "raycronjob-controller";

/// Normal events waiting to be written; beyond this a burst drops events (with a log line)
/// rather than holding up the passes that report them.
const QUEUE: usize = 4096;
/// Event writes at once, so a burst of them doesn't crowd out the controller's own writes.
const WRITES_IN_FLIGHT: usize = 4;

/// Normal events (what was created, deleted, changed) are queued and written by a background
/// task: a pass hands its event over and goes on, instead of waiting a round trip per event
/// before its cluster's next step. Warnings are still written before the pass goes on.
#[derive(Clone)]
pub struct EventSink {
    queue: mpsc::Sender<K8sEvent>,
    reporter: Reporter,
    /// For warnings: a failure repeated on every retry becomes one event with a growing
    /// `series.count`, as client-go's recorder does, instead of an event per retry.
    recorder: Recorder,
}

impl EventSink {
    pub fn new(client: kube::Client, instance: Option<String>, writers: &EventWriters) -> Self {
        Self::for_reporter(client, REPORTER, instance, writers)
    }

    pub fn for_reporter(
        client: kube::Client,
        controller: &str,
        instance: Option<String>,
        writers: &EventWriters,
    ) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance,
        };
        let (queue, pending) = mpsc::channel(QUEUE);
        writers.add(tokio::spawn(write_events(client.clone(), pending)));
        Self {
            recorder: Recorder::new(client, reporter.clone()),
            reporter,
            queue,
        }
    }

    /// A Normal event, always written as an event of its own. The recorder's series would
    /// fold a second "Created 2 worker pods: ..." for the same cluster into the first one and
    /// keep only the first note, so the names of the later pods would never be reported; and
    /// its cache would hold an entry per cluster and reason for minutes.
    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        cluster: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let regarding = cluster.object_ref(&());
        let event = self.event(regarding, reason, action, note);
        match self.queue.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(reason, "event queue full; event dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::warn!(reason, "event writer stopped; event dropped");
            }
        }
    }

    /// The event the recorder would write for a first occurrence.
    fn event(
        &self,
        regarding: ObjectReference,
        reason: &str,
        action: &str,
        note: String,
    ) -> K8sEvent {
        let now = Timestamp::now();
        let prefix = regarding
            .name
            .as_deref()
            .unwrap_or(&self.reporter.controller);
        K8sEvent {
            action: Some(action.to_string()),
            reason: Some(reason.to_string()),
            event_time: Some(MicroTime(now)),
            note: Some(note),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!("{prefix}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some("Normal".to_string()),
            regarding: Some(regarding),
            ..K8sEvent::default()
        }
    }

    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        cluster: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        // An event that can't be written is logged, never fails the reconcile: events are
        // best-effort in Kubernetes too.
        let event = Event {
            type_: EventType::Warning,
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

/// The background writers of every sink. The controller awaits them when it stops, after
/// dropping its sinks, so the events of its last passes ("Deleted worker pod ...: why") are
/// written before it exits or gives up its lease.
#[derive(Default)]
pub struct EventWriters(Mutex<Vec<JoinHandle<()>>>);

impl EventWriters {
    fn add(&self, writer: JoinHandle<()>) {
        if let Ok(mut writers) = self.0.lock() {
            writers.push(writer);
        }
    }

    /// Waits until every writer has written what was queued (all sinks must be gone), at
    /// most `within`; what is left then is dropped, with a log line.
    pub async fn finish(self, within: Duration) {
        let writers = self.0.into_inner().unwrap_or_default();
        let deadline = tokio::time::Instant::now() + within;
        for writer in writers {
            if tokio::time::timeout_at(deadline, writer).await.is_err() {
                tracing::warn!("events still queued at shutdown were not written");
                return;
            }
        }
    }
}

/// Writes queued events until every sink is gone (the controller stopped).
async fn write_events(client: kube::Client, mut pending: mpsc::Receiver<K8sEvent>) {
    stream::poll_fn(|cx| pending.poll_recv(cx))
        .for_each_concurrent(WRITES_IN_FLIGHT, |event| {
            let client = client.clone();
            async move {
                let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
                let api: Api<K8sEvent> = Api::namespaced(client, namespace);
                if let Err(error) = api.create(&PostParams::default(), &event).await {
                    let reason = event.reason.as_deref().unwrap_or_default();
                    tracing::warn!(%error, reason, "could not record an event");
                }
            }
        })
        .await;
}
