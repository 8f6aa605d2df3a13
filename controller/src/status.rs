//! `RayCluster.status` computed from the pods and head Service the cluster owns. Written only
//! when something other than `lastUpdateTime` changed: a status write wakes every watcher of
//! the object (GitOps tools, RayJob and RayService controllers), so churn costs the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use raygate_api::raycluster::HeadInfo;
use raygate_api::{RayCluster, RayClusterStatus};

use crate::desired_resources::desired_resources;
use crate::pod_state;
use crate::scaling::desired_replicas;

pub const STATE_READY: &str = "ready";
pub const STATE_SUSPENDED: &str = "suspended";

pub const HEAD_POD_READY: &str = "HeadPodReady";
pub const PROVISIONED: &str = "RayClusterProvisioned";
/// KubeRay's `RayClusterReplicaFailure` condition type is spelled `ReplicaFailure`.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const SUSPENDING: &str = "RayClusterSuspending";
pub const SUSPENDED: &str = "RayClusterSuspended";

/// A create or delete that failed in this pass, as `ReplicaFailure` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaFailure {
    /// `FailedCreateWorkerPod`, `FailedDeleteHeadPod`, ...
    pub reason: String,
    pub message: String,
}

/// What the reconciler saw after acting.
pub struct Observed<'a> {
    /// Pods the cluster owns that are not terminating.
    pub pods: &'a [Pod],
    /// Pods the cluster owns that were deleted but are still there (or may be: deleted in
    /// this very pass).
    pub terminating: usize,
    pub head_service: Option<&'a Service>,
    pub failure: Option<ReplicaFailure>,
    pub now: Time,
}

pub fn condition_is_true(status: Option<&RayClusterStatus>, type_: &str) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the cluster is deleting all its pods for a suspend. Once started, a suspend runs to
/// the end even if `spec.suspend` is cleared meanwhile, so no half-suspended cluster resumes.
pub fn suspending(cluster: &RayCluster) -> bool {
    cluster.spec.suspend == Some(true) || condition_is_true(cluster.status.as_ref(), SUSPENDING)
}

/// Workers the spec asks for: Σ clamp(replicas) × numOfHosts over groups not suspended.
pub fn desired_workers(cluster: &RayCluster) -> i32 {
    if cluster.spec.suspend == Some(true) {
        return 0;
    }
    let total: i64 = cluster
        .spec
        .worker_group_specs
        .iter()
        .flatten()
        .filter(|g| g.suspend != Some(true))
        .map(|g| {
            i64::from(desired_replicas(g.replicas, g.min_replicas, g.max_replicas))
                * i64::from(g.num_of_hosts.unwrap_or(1).max(1))
        })
        .sum();
    i32::try_from(total).unwrap_or(i32::MAX)
}

fn worker_bound(cluster: &RayCluster, bound: impl Fn(&raygate_api::WorkerGroupSpec) -> i32) -> i32 {
    let total: i64 = cluster
        .spec
        .worker_group_specs
        .iter()
        .flatten()
        .map(|g| i64::from(bound(g).max(0)) * i64::from(g.num_of_hosts.unwrap_or(1).max(1)))
        .fold(0i64, i64::saturating_add);
    i32::try_from(total).unwrap_or(i32::MAX)
}

pub fn compute(cluster: &RayCluster, observed: &Observed) -> RayClusterStatus {
    let old = cluster.status.as_ref();
    let generation = cluster.metadata.generation;
    let pods = observed.pods;
    let workers: Vec<&Pod> = pods.iter().filter(|p| pod_state::is_worker(p)).collect();
    let head = pods.iter().find(|p| pod_state::is_head(p));
    let desired = desired_workers(cluster);
    let all_ready = !pods.is_empty() && pods.iter().all(pod_state::is_running_and_ready);
    let complete = all_ready && pods.len() as i64 == i64::from(desired) + 1;
    let suspend_requested = cluster.spec.suspend == Some(true);
    // Suspended only once every pod is really gone: what a suspend is for (Kueue, quota) is
    // the resources back, and a terminating pod still holds them.
    let all_gone = pods.is_empty() && observed.terminating == 0;
    let suspending_now = suspending(cluster) && !all_gone;
    let suspended_now = suspend_requested && all_gone;

    let mut state = old.and_then(|s| s.state.clone());
    if observed.failure.is_none() && complete && !suspend_requested {
        state = Some(STATE_READY.to_string());
    } else if suspended_now {
        state = Some(STATE_SUSPENDED.to_string());
    }
    let mut transition_times = old
        .and_then(|s| s.state_transition_times.clone())
        .unwrap_or_default();
    if state != old.and_then(|s| s.state.clone())
        && let Some(state) = &state
    {
        transition_times.insert(state.clone(), observed.now.clone());
    }

    let mut conditions = Conditions::new(old, generation, &observed.now);
    match head {
        Some(pod) if pod_state::is_running_and_ready(pod) => {
            conditions.set(HEAD_POD_READY, true, "HeadPodRunningAndReady", "")
        }
        Some(pod) => {
            let (reason, message) = pod_state::not_ready_reason(pod);
            conditions.set(HEAD_POD_READY, false, &reason, &message)
        }
        None => conditions.set(HEAD_POD_READY, false, "HeadPodNotFound", ""),
    }
    let was_provisioned = condition_is_true(old, PROVISIONED);
    if suspended_now {
        conditions.set(PROVISIONED, false, "RayClusterPodsProvisioning", "");
    } else if was_provisioned || complete {
        conditions.set(PROVISIONED, true, "AllPodRunningAndReadyFirstTime", "");
    } else {
        conditions.set(PROVISIONED, false, "RayClusterPodsProvisioning", "");
    }
    match &observed.failure {
        Some(failure) => conditions.set(REPLICA_FAILURE, true, &failure.reason, &failure.message),
        None => conditions.remove(REPLICA_FAILURE),
    }
    if suspending_now {
        conditions.set(SUSPENDING, true, SUSPENDING, "");
    } else if conditions.has(SUSPENDING) {
        conditions.set(SUSPENDING, false, SUSPENDING, "");
    }
    if suspended_now {
        conditions.set(SUSPENDED, true, SUSPENDED, "");
    } else if conditions.has(SUSPENDED) {
        conditions.set(SUSPENDED, false, SUSPENDED, "");
    }

    let resources = desired_resources(cluster);
    let count = |pred: fn(&Pod) -> bool| workers.iter().filter(|p| pred(p)).count() as i32;
    RayClusterStatus {
        state,
        desired_cpu: Some(resources.cpu),
        desired_memory: Some(resources.memory),
        desired_gpu: Some(resources.gpu),
        desired_tpu: Some(resources.tpu),
        last_update_time: Some(observed.now.clone()),
        state_transition_times: (!transition_times.is_empty()).then_some(transition_times),
        endpoints: observed
            .head_service
            .map(endpoints)
            .filter(|e| !e.is_empty()),
        head: head_info(head, observed.head_service),
        reason: observed.failure.as_ref().map(|f| f.message.clone()),
        conditions: Some(conditions.into_vec()),
        ready_worker_replicas: Some(count(pod_state::is_running_and_ready)),
        available_worker_replicas: Some(count(pod_state::is_running)),
        desired_worker_replicas: Some(desired),
        min_worker_replicas: Some(worker_bound(cluster, |g| g.min_replicas)),
        max_worker_replicas: Some(worker_bound(cluster, |g| g.max_replicas)),
        observed_generation: generation,
    }
}

/// Whether `new` differs from `old` in anything but `lastUpdateTime`.
pub fn changed(old: Option<&RayClusterStatus>, new: &RayClusterStatus) -> bool {
    let Some(old) = old else { return true };
    let mut old = old.clone();
    old.last_update_time = new.last_update_time.clone();
    &old != new
}

/// Each named port of the head Service: its nodePort when exposed on nodes, else the pod port.
fn endpoints(service: &Service) -> BTreeMap<String, String> {
    service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|port| {
            let name = port.name.clone().filter(|n| !n.is_empty())?;
            let value = match (port.node_port, &port.target_port) {
                (Some(node_port), _) if node_port != 0 => node_port.to_string(),
                (_, Some(IntOrString::Int(target))) => target.to_string(),
                (_, Some(IntOrString::String(target))) => target.clone(),
                (_, None) => port.port.to_string(),
            };
            Some((name, value))
        })
        .collect()
}

fn head_info(head: Option<&Pod>, service: Option<&Service>) -> Option<HeadInfo> {
    let pod_ip = head
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.pod_ip.clone())
        .filter(|ip| !ip.is_empty());
    let cluster_ip = service
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.cluster_ip.clone());
    // A headless Service has no IP of its own; clients reach the head pod directly.
    let service_ip = match cluster_ip.as_deref() {
        Some("None") | None => pod_ip.clone(),
        Some(ip) => Some(ip.to_string()),
    };
    let info = HeadInfo {
        pod_ip,
        service_ip,
        pod_name: head.and_then(|p| p.metadata.name.clone()),
        service_name: service.and_then(|s| s.metadata.name.clone()),
    };
    (info != HeadInfo::default()).then_some(info)
}

/// Conditions keyed by type, keeping `lastTransitionTime` while the status stays the same.
struct Conditions<'a> {
    list: Vec<Condition>,
    generation: Option<i64>,
    now: &'a Time,
}

impl<'a> Conditions<'a> {
    fn new(old: Option<&RayClusterStatus>, generation: Option<i64>, now: &'a Time) -> Self {
        Self {
            list: old.and_then(|s| s.conditions.clone()).unwrap_or_default(),
            generation,
            now,
        }
    }

    fn has(&self, type_: &str) -> bool {
        self.list.iter().any(|c| c.type_ == type_)
    }

    fn set(&mut self, type_: &str, status: bool, reason: &str, message: &str) {
        let status = if status { "True" } else { "False" };
        let reason = if reason.is_empty() { type_ } else { reason };
        match self.list.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => {
                if existing.status != status {
                    existing.last_transition_time = self.now.clone();
                }
                existing.status = status.to_string();
                existing.reason = reason.to_string();
                existing.message = message.to_string();
                existing.observed_generation = self.generation;
            }
            None => self.list.push(Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message: message.to_string(),
                last_transition_time: self.now.clone(),
                observed_generation: self.generation,
            }),
        }
    }

    fn remove(&mut self, type_: &str) {
        self.list.retain(|c| c.type_ != type_);
    }

    fn into_vec(self) -> Vec<Condition> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::Timestamp;

    fn cluster(replicas: i32, suspend: bool) -> RayCluster {
        let yaml = format!(
            r#"
apiVersion: ray.io/v1
kind: RayCluster
metadata: {{name: demo, namespace: ns, generation: 3}}
spec:
  suspend: {suspend}
  headGroupSpec:
    template:
      spec:
        containers: [{{name: ray-head}}]
  workerGroupSpecs:
  - groupName: g
    replicas: {replicas}
    minReplicas: 0
    maxReplicas: 5
    template:
      spec:
        containers: [{{name: w}}]
"#
        );
        let value = raygate_api::manifest::parse_documents(&yaml).expect("yaml")[0].clone();
        serde_json::from_value(value).expect("RayCluster")
    }

    fn pod(name: &str, node_type: &str, ready: bool, ip: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(
                    "ray.io/node-type".to_string(),
                    node_type.to_string(),
                )])),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn service() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("demo-head-svc".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                ports: Some(vec![ServicePort {
                    name: Some("gcs-server".into()),
                    port: 6379,
                    target_port: Some(IntOrString::Int(6379)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn now(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("time"))
    }

    /// What a pass saw at `seconds`, with no head Service and no failure.
    fn seen(pods: &[Pod], terminating: usize, seconds: i64) -> Observed<'_> {
        Observed {
            pods,
            terminating,
            head_service: None,
            failure: None,
            now: now(seconds),
        }
    }

    fn condition<'s>(status: &'s RayClusterStatus, type_: &str) -> &'s Condition {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .expect("condition")
    }

    #[test]
    fn all_pods_ready_makes_the_cluster_ready() {
        let cluster = cluster(2, false);
        let pods = [
            pod("h", "head", true, "127.0.0.2"),
            pod("w1", "worker", true, "127.0.0.3"),
            pod("w2", "worker", true, "127.0.0.4"),
        ];
        let service = service();
        let status = compute(
            &cluster,
            &Observed {
                pods: &pods,
                terminating: 0,
                head_service: Some(&service),
                failure: None,
                now: now(100),
            },
        );
        assert_eq!(status.state.as_deref(), Some(STATE_READY));
        assert_eq!(status.ready_worker_replicas, Some(2));
        assert_eq!(status.desired_worker_replicas, Some(2));
        assert_eq!(status.max_worker_replicas, Some(5));
        assert_eq!(status.observed_generation, Some(3));
        let head = status.head.as_ref().expect("head");
        assert_eq!(head.pod_ip.as_deref(), Some("127.0.0.2"));
        assert_eq!(head.service_ip.as_deref(), Some("127.0.0.2"));
        assert_eq!(
            status.endpoints.as_ref().expect("endpoints")["gcs-server"],
            "6379"
        );
        assert_eq!(condition(&status, PROVISIONED).status, "True");
        assert_eq!(condition(&status, HEAD_POD_READY).status, "True");
    }

    #[test]
    fn a_missing_worker_keeps_the_cluster_provisioning_and_time_alone_is_no_change() {
        let mut cluster = cluster(2, false);
        let pods = [
            pod("h", "head", true, "127.0.0.2"),
            pod("w1", "worker", false, "127.0.0.3"),
        ];
        let first = compute(&cluster, &seen(&pods, 0, 100));
        assert_eq!(first.state, None);
        assert_eq!(first.available_worker_replicas, Some(1));
        assert_eq!(first.ready_worker_replicas, Some(0));
        assert_eq!(condition(&first, PROVISIONED).status, "False");
        cluster.status = Some(first.clone());
        let second = compute(&cluster, &seen(&pods, 0, 200));
        assert!(!changed(Some(&first), &second), "{second:?}");
    }

    #[test]
    fn suspend_goes_through_suspending_to_suspended() {
        let mut cluster = cluster(1, true);
        let pods = [pod("h", "head", true, "127.0.0.2")];
        let during = compute(&cluster, &seen(&pods, 0, 1));
        assert_eq!(condition(&during, SUSPENDING).status, "True");
        cluster.status = Some(during);
        let after = compute(&cluster, &seen(&[], 0, 2));
        assert_eq!(after.state.as_deref(), Some(STATE_SUSPENDED));
        assert_eq!(condition(&after, SUSPENDING).status, "False");
        assert_eq!(condition(&after, SUSPENDED).status, "True");
        assert_eq!(after.desired_worker_replicas, Some(0));
    }

    #[test]
    fn a_suspend_is_not_done_while_a_deleted_pod_still_stops() {
        let mut cluster = cluster(1, true);
        let stopping = compute(&cluster, &seen(&[], 1, 1));
        assert_eq!(condition(&stopping, SUSPENDING).status, "True");
        assert!(
            stopping
                .conditions
                .iter()
                .flatten()
                .all(|c| c.type_ != SUSPENDED),
            "{stopping:?}"
        );
        assert_ne!(stopping.state.as_deref(), Some(STATE_SUSPENDED));
        cluster.status = Some(stopping);
        let gone = compute(&cluster, &seen(&[], 0, 2));
        assert_eq!(gone.state.as_deref(), Some(STATE_SUSPENDED));
        assert_eq!(condition(&gone, SUSPENDING).status, "False");
        assert_eq!(condition(&gone, SUSPENDED).status, "True");
    }

    #[test]
    fn a_failed_create_is_reported_and_cleared_when_it_passes() {
        let mut cluster = cluster(0, false);
        let failure = ReplicaFailure {
            reason: "FailedCreateHeadPod".into(),
            message: "quota".into(),
        };
        let failed = compute(
            &cluster,
            &Observed {
                pods: &[],
                terminating: 0,
                head_service: None,
                failure: Some(failure),
                now: now(1),
            },
        );
        assert_eq!(
            condition(&failed, REPLICA_FAILURE).reason,
            "FailedCreateHeadPod"
        );
        cluster.status = Some(failed);
        let pods = [pod("h", "head", true, "127.0.0.2")];
        let fine = compute(&cluster, &seen(&pods, 0, 2));
        assert!(
            fine.conditions
                .iter()
                .flatten()
                .all(|c| c.type_ != REPLICA_FAILURE)
        );
        assert_eq!(fine.state.as_deref(), Some(STATE_READY));
    }
}
