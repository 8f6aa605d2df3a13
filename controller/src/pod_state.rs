//! Reading a Pod the way the cluster status and the scaler need it.

use k8s_openapi::api::core::v1::Pod;
use raygate_api::labels::{
    RAY_GROUP, RAY_NODE_TYPE, RAY_WORKER_GROUP_REPLICA_INDEX, RAY_WORKER_GROUP_REPLICA_NAME,
};

use crate::scaling::ObservedPod;

pub fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

pub fn is_head(pod: &Pod) -> bool {
    label(pod, RAY_NODE_TYPE) == Some("head")
}

pub fn is_worker(pod: &Pod) -> bool {
    label(pod, RAY_NODE_TYPE) == Some("worker")
}

pub fn group(pod: &Pod) -> Option<&str> {
    label(pod, RAY_GROUP)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

pub fn is_running(pod: &Pod) -> bool {
    phase(pod) == Some("Running")
}

/// The pod's `Ready` condition, if it has one.
pub fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

pub fn is_running_and_ready(pod: &Pod) -> bool {
    is_running(pod) && ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// A pod that will never run Ray again: it ended, or its Ray container exited and
/// `restartPolicy: Never` keeps it from restarting.
pub fn is_finished(pod: &Pod) -> bool {
    match phase(pod) {
        Some("Failed") | Some("Succeeded") => true,
        Some("Running") => {
            let never =
                pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("Never");
            let ray_container = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.as_str());
            never
                && pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten()
                    .filter(|c| Some(c.name.as_str()) == ray_container)
                    .any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
        }
        _ => false,
    }
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn observe(pod: &Pod) -> ObservedPod {
    ObservedPod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        replica_index: label(pod, RAY_WORKER_GROUP_REPLICA_INDEX).and_then(|i| i.parse().ok()),
        replica_name: label(pod, RAY_WORKER_GROUP_REPLICA_NAME).map(str::to_string),
        ready: is_running_and_ready(pod),
        finished: is_finished(pod),
    }
}

/// Why the head is not ready, in the pod's own words: the first waiting or terminated
/// container's reason beats the generic `ContainersNotReady`.
pub fn not_ready_reason(pod: &Pod) -> (String, String) {
    let container_reason = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref())
        .find_map(|state| {
            state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone().map(|r| (r, w.message.clone())))
                .or_else(|| {
                    state
                        .terminated
                        .as_ref()
                        .and_then(|t| t.reason.clone().map(|r| (r, t.message.clone())))
                })
        });
    if let Some((reason, message)) = container_reason {
        return (reason, message.unwrap_or_default());
    }
    match ready_condition(pod) {
        Some(c) => (
            c.reason.clone().unwrap_or_else(|| "Unknown".to_string()),
            c.message.clone().unwrap_or_default(),
        ),
        None => ("Unknown".to_string(), String::new()),
    }
}
