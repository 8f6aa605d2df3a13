//! What a user sees when `raygate controller` runs against a real API server: the pods and
//! Service a RayCluster yields, its status once pods are ready, scaling, suspend, Recreate
//! upgrades, and nothing lost or duplicated across crashes and failovers. There is no kubelet:
//! tests mark pods Running/Ready themselves, with loopback pod IPs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Api, Client, ResourceExt};
use raygate_api::RayCluster;
use raygate_e2e::control_plane::{api_server_metrics, sample_value};
use raygate_e2e::job_controller;
use raygate_e2e::kubelet::{finish_deletion, hold_deletion, mark_all_ready, mark_failed};
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::stall_proxy::StallProxy;
use raygate_e2e::wait::wait_until;
use raygate_e2e::{ControlPlane, Controller, Webhook, install_ray_crds};
use serde_json::{Value, json};

const CLUSTER: &str = "raycluster-kuberay";
const NS: &str = "default";
const TIMEOUT: Duration = Duration::from_secs(60);
/// The ResourceQuota of [`Env::limit_pods`].
const POD_LIMIT: &str = "pod-limit";

struct Env {
    cp: ControlPlane,
    _webhook: Option<Webhook>,
    controller: Controller,
    client: Client,
}

async fn start(with_webhook: bool) -> Env {
    start_with(with_webhook, &[]).await
}

/// Same, the controller started with extra flags (`--namespace=...`).
async fn start_with(with_webhook: bool, controller_flags: &[&str]) -> Env {
    let cp = ControlPlane::start_async()
        .await
        .expect("start the control plane (tests/controlplane/build.sh)");
    install_ray_crds(&cp).expect("raygate's CRDs install");
    let webhook = with_webhook.then(|| Webhook::start(&cp).expect("start raygate webhook"));
    let controller =
        Controller::start_with(&cp, controller_flags).expect("start raygate controller");
    let client = cp.client().await.expect("kube client");
    Env {
        cp,
        _webhook: webhook,
        controller,
        client,
    }
}

impl Env {
    fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cp.kubectl(args, stdin).expect("kubectl runs");
        assert!(out.success(), "kubectl {args:?} failed:\n{out}");
        out.stdout
    }

    fn apply(&self, yaml: &str) {
        self.kubectl_ok(&["apply", "-f", "-"], Some(yaml));
    }

    /// A JSON patch on the RayCluster, as `kubectl patch --type=json` sends it.
    fn patch(&self, ops: Value) {
        let ops = ops.to_string();
        self.kubectl_ok(
            &["patch", "raycluster", CLUSTER, "--type=json", "-p", &ops],
            None,
        );
    }

    fn pods_api(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn cluster(&self) -> RayCluster {
        Api::<RayCluster>::namespaced(self.client.clone(), NS)
            .get(CLUSTER)
            .await
            .expect("get the RayCluster")
    }

    /// Pods labelled for the cluster that are not terminating: (heads, workers).
    async fn ray_pods(&self) -> (Vec<Pod>, Vec<Pod>) {
        let list = self
            .pods_api()
            .list(&ListParams::default().labels(&format!("ray.io/cluster={CLUSTER}")))
            .await
            .expect("list pods");
        let live = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none());
        live.partition(|p| label(p, "ray.io/node-type") == Some("head"))
    }

    /// Owned workers only (an unowned pod may carry the label).
    async fn owned_workers(&self) -> Vec<Pod> {
        let uid = self.cluster().await.uid().expect("uid");
        self.ray_pods()
            .await
            .1
            .into_iter()
            .filter(|p| owned_by(p, &uid))
            .collect()
    }

    async fn wait_for_pods(&self, heads: usize, workers: usize) -> (Vec<Pod>, Vec<Pod>) {
        wait_until(
            &format!("{heads} head and {workers} worker pods"),
            TIMEOUT,
            || async {
                let uid = self.cluster().await.uid().expect("uid");
                let (h, w) = self.ray_pods().await;
                let h: Vec<Pod> = h.into_iter().filter(|p| owned_by(p, &uid)).collect();
                let w: Vec<Pod> = w.into_iter().filter(|p| owned_by(p, &uid)).collect();
                (h.len() == heads && w.len() == workers).then_some((h, w))
            },
        )
        .await
    }

    /// Waits until the cluster's only pod left is `pod`, deleted but still terminating (held
    /// by [`hold_deletion`]).
    async fn wait_until_only_terminating(&self, pod: &str) {
        wait_until(
            &format!("only {pod} left, terminating"),
            TIMEOUT,
            || async {
                let list = self
                    .pods_api()
                    .list(&ListParams::default().labels(&format!("ray.io/cluster={CLUSTER}")))
                    .await
                    .expect("list pods");
                let only_it = list.items.len() == 1
                    && list.items[0].name_any() == pod
                    && list.items[0].metadata.deletion_timestamp.is_some();
                only_it.then_some(())
            },
        )
        .await;
    }

    /// A ResourceQuota admitting at most `pods` pods in the namespace.
    async fn limit_pods(&self, pods: usize) {
        let quotas: Api<ResourceQuota> = Api::namespaced(self.client.clone(), NS);
        let quota: ResourceQuota = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": POD_LIMIT},
            "spec": {"hard": {"pods": pods.to_string()}},
        }))
        .expect("quota");
        quotas
            .create(&PostParams::default(), &quota)
            .await
            .expect("create the quota");
        // No controller-manager here: play its quota controller, without which the API server
        // refuses every pod ("status unknown for quota").
        let status = json!({"status": {"hard": {"pods": pods.to_string()}, "used": {"pods": "0"}}});
        quotas
            .patch_status(POD_LIMIT, &PatchParams::default(), &Patch::Merge(status))
            .await
            .expect("quota status");
    }

    async fn lift_pod_limit(&self) {
        Api::<ResourceQuota>::namespaced(self.client.clone(), NS)
            .delete(POD_LIMIT, &DeleteParams::default())
            .await
            .expect("delete the quota");
    }

    async fn mark_ready(&self) {
        mark_all_ready(&self.pods_api(), &format!("ray.io/cluster={CLUSTER}"))
            .await
            .expect("mark pods ready");
    }

    async fn wait_for_state(&self, state: &str) -> RayCluster {
        wait_until(&format!("status.state {state}"), TIMEOUT, || async {
            let cluster = self.cluster().await;
            let current = cluster.status.as_ref().and_then(|s| s.state.clone());
            (current.as_deref() == Some(state)).then_some(cluster)
        })
        .await
    }

    /// `kubectl get events` for the cluster: (type, reason, message).
    fn events(&self) -> Vec<(String, String, String)> {
        let out = self.kubectl_ok(&["get", "events", "-o", "json"], None);
        let list: Value = serde_json::from_str(&out).expect("JSON");
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["involvedObject"]["name"] == CLUSTER)
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("").to_string(),
                    e["reason"].as_str().unwrap_or("").to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.labels().get(key).map(String::as_str)
}

fn owned_by(pod: &Pod, uid: &str) -> bool {
    pod.owner_references()
        .iter()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

fn names(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter().map(|p| p.name_any()).collect()
}

/// The object's resourceVersion as the etcd revision it is on this control plane.
fn revision<K: kube::Resource>(object: &K) -> u64 {
    object
        .meta()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion")
}

fn condition(cluster: &RayCluster, type_: &str) -> Option<String> {
    cluster
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

fn sample() -> String {
    sample_text("ray-cluster.sample.yaml").expect("KubeRay sample")
}

fn sample_with_workers(replicas: u32) -> String {
    sample()
        .replace("  - replicas: 1\n", &format!("  - replicas: {replicas}\n"))
        .replace("    maxReplicas: 5\n", "    maxReplicas: 100\n")
}

/// The sample with a second worker group, `second`, of `replicas` workers (1 CPU, 1Gi each).
fn sample_with_second_group(replicas: u32) -> String {
    let mut cluster: Value = serde_saphyr::from_str(&sample()).expect("YAML");
    let groups = cluster["spec"]["workerGroupSpecs"]
        .as_array_mut()
        .expect("worker groups");
    let mut second = groups[0].clone();
    second["groupName"] = json!("second");
    second["replicas"] = json!(replicas);
    groups.push(second);
    cluster.to_string()
}

/// The workers of one group, by name.
fn group_members(workers: &[Pod], group: &str) -> BTreeSet<String> {
    workers
        .iter()
        .filter(|p| label(p, "ray.io/group") == Some(group))
        .map(|p| p.name_any())
        .collect()
}

/// The pods of cluster `name`, once its head and worker exist.
async fn head_and_worker_of(env: &Env, name: &str) -> Vec<Pod> {
    wait_until("the cluster's pods", TIMEOUT, || async {
        let list = env
            .pods_api()
            .list(&ListParams::default().labels(&format!("ray.io/cluster={name}")))
            .await
            .ok()?;
        (list.items.len() >= 2).then_some(list.items)
    })
    .await
}

fn container_args(pod: &Pod) -> String {
    pod.spec.as_ref().expect("spec").containers[0]
        .args
        .clone()
        .unwrap_or_default()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_yields_a_head_a_worker_and_a_service_then_becomes_ready() {
    let env = start(true).await;
    env.apply(&sample());
    let (heads, workers) = env.wait_for_pods(1, 1).await;
    let cluster = env.cluster().await;
    let uid = cluster.uid().expect("uid");

    let head = &heads[0];
    assert!(
        head.name_any().starts_with("raycluster-kuberay-head-"),
        "{}",
        head.name_any()
    );
    for (key, value) in [
        ("ray.io/is-ray-node", "yes"),
        ("ray.io/cluster", CLUSTER),
        ("ray.io/node-type", "head"),
        ("ray.io/group", "headgroup"),
        ("ray.io/identifier", "raycluster-kuberay-head"),
        ("app.kubernetes.io/name", "kuberay"),
        ("app.kubernetes.io/created-by", "kuberay-operator"),
    ] {
        assert_eq!(label(head, key), Some(value), "head label {key}");
    }
    let owner = &head.owner_references()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str()
        ),
        ("ray.io/v1", "RayCluster", CLUSTER)
    );
    assert_eq!(owner.uid, uid);
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    let args = container_args(head);
    assert!(args.contains("ray start --head"), "{args}");
    assert!(args.contains("--dashboard-host=0.0.0.0"), "{args}");
    assert!(args.contains("--block"), "{args}");

    let worker = &workers[0];
    assert!(
        worker
            .name_any()
            .starts_with("raycluster-kuberay-workergroup-worker-"),
        "{}",
        worker.name_any()
    );
    assert_eq!(label(worker, "ray.io/node-type"), Some("worker"));
    assert_eq!(label(worker, "ray.io/group"), Some("workergroup"));
    assert_eq!(
        label(worker, "ray.io/identifier"),
        Some("raycluster-kuberay-worker")
    );
    assert_eq!(
        label(worker, "ray.io/worker-group-replica-index"),
        Some("0")
    );
    let args = container_args(worker);
    assert!(
        args.contains("--address=raycluster-kuberay-head-svc.default.svc.cluster.local:6379"),
        "{args}"
    );
    let init = worker
        .spec
        .as_ref()
        .expect("spec")
        .init_containers
        .clone()
        .unwrap_or_default();
    assert!(init.iter().any(|c| c.name == "wait-gcs-ready"), "{init:?}");

    let services: Api<Service> = Api::namespaced(env.client.clone(), NS);
    let service = services
        .get("raycluster-kuberay-head-svc")
        .await
        .expect("head service");
    let spec = service.spec.as_ref().expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    let ports: BTreeSet<(String, i32)> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.port))
        .collect();
    assert_eq!(
        ports,
        BTreeSet::from([
            ("client".to_string(), 10001),
            ("dashboard".to_string(), 8265),
            ("gcs-server".to_string(), 6379),
            ("metrics".to_string(), 8080),
        ])
    );
    assert_eq!(
        spec.selector.as_ref().expect("selector")["ray.io/node-type"],
        "head"
    );
    assert_eq!(service.owner_references()[0].uid, uid);

    env.mark_ready().await;
    let cluster = env.wait_for_state("ready").await;
    let status = cluster.status.as_ref().expect("status");
    assert_eq!(status.ready_worker_replicas, Some(1));
    assert_eq!(status.available_worker_replicas, Some(1));
    assert_eq!(status.desired_worker_replicas, Some(1));
    assert_eq!(status.min_worker_replicas, Some(1));
    assert_eq!(status.max_worker_replicas, Some(5));
    assert_eq!(status.desired_cpu.as_ref().map(|q| q.0.as_str()), Some("2"));
    assert_eq!(
        status.desired_memory.as_ref().map(|q| q.0.as_str()),
        Some("6Gi")
    );
    assert_eq!(status.observed_generation, cluster.metadata.generation);
    let endpoints = status.endpoints.clone().expect("endpoints");
    assert_eq!(endpoints["client"], "10001");
    assert_eq!(endpoints["dashboard"], "8265");
    assert_eq!(endpoints["gcs-server"], "6379");
    assert_eq!(endpoints["metrics"], "8080");
    let head_info = status.head.clone().expect("head");
    let pod_ip = head_info.pod_ip.clone().expect("podIP");
    assert!(pod_ip.starts_with("127.0.0."), "{pod_ip}");
    assert_eq!(head_info.service_ip, Some(pod_ip));
    assert_eq!(head_info.pod_name, Some(head.name_any()));
    assert_eq!(
        head_info.service_name.as_deref(),
        Some("raycluster-kuberay-head-svc")
    );
    assert_eq!(condition(&cluster, "HeadPodReady").as_deref(), Some("True"));
    assert_eq!(
        condition(&cluster, "RayClusterProvisioned").as_deref(),
        Some("True")
    );

    let events = env.events();
    let reasons: BTreeSet<&str> = events.iter().map(|(_, r, _)| r.as_str()).collect();
    for reason in ["CreatedHeadPod", "CreatedWorkerPod", "CreatedService"] {
        assert!(reasons.contains(reason), "no {reason} event in {events:?}");
    }
    assert!(!reasons.contains("WebhookBypassed"), "{events:?}");

    // A settled cluster's status is not rewritten on every pass: a change to one of its pods
    // wakes passes (counted by the reconcile metric), which find nothing to write.
    let before = env.cluster().await.metadata.resource_version;
    let passes = || {
        let metrics = env.controller.metrics().expect("metrics");
        sample_value(
            &metrics,
            "raygate_controller_reconciles_total{kind=\"RayCluster\"}",
        )
    };
    let passes_before = passes();
    let (_, workers) = env.ray_pods().await;
    for touch in 0..3 {
        let note = json!({"metadata": {"annotations": {"raygate.test/touch": touch.to_string()}}});
        env.pods_api()
            .patch(
                &workers[0].name_any(),
                &PatchParams::default(),
                &Patch::Merge(&note),
            )
            .await
            .expect("touch a worker");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    wait_until("passes woken by the pod changes", TIMEOUT, || async {
        (passes() >= passes_before + 2.0).then_some(())
    })
    .await;
    assert_eq!(env.cluster().await.metadata.resource_version, before);

    let metrics = wait_until("the ready cluster counted", TIMEOUT, || async {
        let metrics = env.controller.metrics().expect("metrics");
        metrics
            .contains("raygate_clusters{state=\"ready\"} 1")
            .then_some(metrics)
    })
    .await;
    assert!(
        metrics.contains("raygate_controller_reconciles_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("raygate_cluster_provisioned_duration_seconds_count 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_follows_replicas_and_workers_to_delete() {
    let env = start(true).await;
    env.apply(&sample());
    env.wait_for_pods(1, 1).await;

    env.patch(json!([{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 3}]));
    let (_, workers) = env.wait_for_pods(1, 3).await;
    let indices: BTreeSet<&str> = workers
        .iter()
        .filter_map(|p| label(p, "ray.io/worker-group-replica-index"))
        .collect();
    assert_eq!(indices, BTreeSet::from(["0", "1", "2"]));

    // The autoscaler's way: name the worker to remove and lower replicas together.
    let victim = workers[1].name_any();
    env.patch(json!([
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2},
        {"op": "add", "path": "/spec/workerGroupSpecs/0/scaleStrategy", "value": {"workersToDelete": [victim]}},
    ]));
    let (_, workers) = env.wait_for_pods(1, 2).await;
    assert!(!names(&workers).contains(&victim), "{victim} survived");
    let kept: BTreeSet<String> = names(&workers);
    // Events are written by a background task, just after the deletion.
    wait_until(
        &format!("a DeletedWorkerPod event naming {victim}"),
        TIMEOUT,
        || async {
            env.events()
                .iter()
                .any(|(t, r, m)| t == "Normal" && r == "DeletedWorkerPod" && m.contains(&victim))
                .then_some(())
        },
    )
    .await;

    env.patch(json!([
        {"op": "remove", "path": "/spec/workerGroupSpecs/0/scaleStrategy"},
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1}
    ]));
    let (_, workers) = env.wait_for_pods(1, 1).await;
    assert!(kept.contains(&workers[0].name_any()));

    env.mark_ready().await;
    let cluster = env.wait_for_state("ready").await;
    assert_eq!(
        cluster.status.expect("status").desired_worker_replicas,
        Some(1)
    );
}

/// A ResourceQuota that admits one pod: the head gets in, its workers are forbidden by the API
/// server. The user sees why (a Warning event and the `ReplicaFailure` condition); once the
/// quota goes the cluster converges by itself and the condition clears.
#[tokio::test(flavor = "multi_thread")]
async fn forbidden_worker_pods_are_reported_and_the_cluster_converges_once_allowed() {
    let env = start(true).await;
    env.limit_pods(1).await;

    env.apply(&sample());
    let cluster = wait_until("the ReplicaFailure condition", TIMEOUT, || async {
        let cluster = env.cluster().await;
        (condition(&cluster, "ReplicaFailure").as_deref() == Some("True")).then_some(cluster)
    })
    .await;
    let failure = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "ReplicaFailure"))
        .cloned()
        .expect("the condition");
    assert_eq!(failure.reason, "FailedCreateWorkerPod");
    assert!(
        failure.message.contains("exceeded quota"),
        "the message should carry the API server's reason: {}",
        failure.message
    );
    let (heads, workers) = env.ray_pods().await;
    assert_eq!((heads.len(), workers.len()), (1, 0));
    let events = wait_until("a FailedToCreateWorkerPod event", TIMEOUT, || async {
        let events = env.events();
        events
            .iter()
            .any(|(t, r, m)| {
                t == "Warning" && r == "FailedToCreateWorkerPod" && m.contains("exceeded quota")
            })
            .then_some(events)
    })
    .await;
    assert!(
        !events.iter().any(|(_, r, _)| r == "CreatedWorkerPod"),
        "{events:?}"
    );
    assert_ne!(
        cluster.status.as_ref().and_then(|s| s.state.as_deref()),
        Some("ready")
    );

    env.lift_pod_limit().await;
    env.wait_for_pods(1, 1).await;
    env.mark_ready().await;
    let cluster = env.wait_for_state("ready").await;
    assert_eq!(condition(&cluster, "ReplicaFailure"), None);
    assert_eq!(cluster.status.as_ref().and_then(|s| s.reason.clone()), None);
    let events = env.events();
    assert!(
        events.iter().any(|(_, r, _)| r == "CreatedWorkerPod"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_pods_are_replaced_and_a_pod_the_cluster_does_not_own_is_never_touched() {
    let env = start(true).await;
    // Carries the cluster's labels but no owner reference: someone else's pod.
    let intruder: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "intruder",
            "labels": {
                "ray.io/cluster": CLUSTER,
                "ray.io/node-type": "worker",
                "ray.io/group": "workergroup",
            }
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod");
    let intruder = env
        .pods_api()
        .create(&PostParams::default(), &intruder)
        .await
        .expect("create the intruder");

    env.apply(&sample());
    let (heads, workers) = env.wait_for_pods(1, 1).await;
    let first = workers[0].name_any();

    // The head too: a lost head comes back (a new pod, the same role).
    env.pods_api()
        .delete(&heads[0].name_any(), &DeleteParams::default())
        .await
        .expect("delete the head");
    let (new_heads, _) = wait_until("the head replaced", TIMEOUT, || async {
        let (heads_now, workers_now) = env.wait_for_pods(1, 1).await;
        (heads_now[0].name_any() != heads[0].name_any()).then_some((heads_now, workers_now))
    })
    .await;
    assert_eq!(new_heads.len(), 1);

    env.pods_api()
        .delete(&first, &DeleteParams::default())
        .await
        .expect("delete a worker");
    let (_, workers) = env.wait_for_pods(1, 1).await;
    let second = workers[0].name_any();
    assert_ne!(second, first, "the deleted worker was not replaced");

    mark_failed(&env.pods_api(), &second)
        .await
        .expect("fail a worker");
    let replaced = wait_until("the failed worker replaced", TIMEOUT, || async {
        let workers = env.owned_workers().await;
        (workers.len() == 1 && workers[0].name_any() != second).then_some(workers)
    })
    .await;
    assert_eq!(replaced.len(), 1);

    // Suspend deletes every pod the cluster owns, and only those.
    env.patch(json!([{"op": "add", "path": "/spec/suspend", "value": true}]));
    env.wait_for_pods(0, 0).await;
    env.wait_for_state("suspended").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = env
        .pods_api()
        .get("intruder")
        .await
        .expect("the unowned pod must survive");
    assert_eq!(
        after.metadata.resource_version, intruder.metadata.resource_version,
        "the unowned pod was modified"
    );
    assert!(after.metadata.deletion_timestamp.is_none());
}

/// A Service the user made, already holding the head Service's name: the controller says so
/// (a Warning event naming it), never changes or deletes it, and creates no pods whose workers
/// would look for their head behind it. Once the user removes it, the cluster converges.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_service_holding_the_head_service_name_is_reported_and_left_alone() {
    let env = start(true).await;
    let services: Api<Service> = Api::namespaced(env.client.clone(), NS);
    let theirs: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "raycluster-kuberay-head-svc", "labels": {"app": "mine"}},
        "spec": {"selector": {"app": "mine"}, "ports": [{"name": "web", "port": 80}]},
    }))
    .expect("service");
    let theirs = services
        .create(&PostParams::default(), &theirs)
        .await
        .expect("create the user's Service");

    env.apply(&sample());
    let events = wait_until("a Warning about the head Service", TIMEOUT, || async {
        let events = env.events();
        events
            .iter()
            .any(|(t, r, m)| {
                t == "Warning"
                    && r == "FailedToCreateService"
                    && m.contains("raycluster-kuberay-head-svc")
                    && m.contains("not owned")
            })
            .then_some(events)
    })
    .await;
    assert!(
        !events.iter().any(|(_, r, _)| r == "CreatedService"),
        "{events:?}"
    );
    // Let a few retries pass before judging what they did.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let now = services
        .get("raycluster-kuberay-head-svc")
        .await
        .expect("the user's Service must survive");
    assert_eq!(now.uid(), theirs.uid());
    assert_eq!(
        now.metadata.resource_version, theirs.metadata.resource_version,
        "the user's Service was modified"
    );
    assert!(now.owner_references().is_empty());
    let (heads, workers) = env.ray_pods().await;
    assert_eq!(
        (heads.len(), workers.len()),
        (0, 0),
        "pods were created whose workers would look for the head behind the user's Service"
    );

    services
        .delete("raycluster-kuberay-head-svc", &DeleteParams::default())
        .await
        .expect("the user removes their Service");
    env.wait_for_pods(1, 1).await;
    let ours = wait_until("the cluster's own head Service", TIMEOUT, || async {
        let service = services
            .get_opt("raycluster-kuberay-head-svc")
            .await
            .ok()??;
        (service.uid() != theirs.uid()).then_some(service)
    })
    .await;
    let uid = env.cluster().await.uid().expect("uid");
    assert!(
        ours.owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true)),
        "{:?}",
        ours.owner_references()
    );
    env.mark_ready().await;
    let cluster = env.wait_for_state("ready").await;
    let head = cluster.status.and_then(|s| s.head).expect("status.head");
    assert_eq!(
        head.service_name.as_deref(),
        Some("raycluster-kuberay-head-svc")
    );
}

/// KubeRay's two-phase suspend as a user (or Kueue) sees it: `RayClusterSuspending` is stored
/// first, and the cluster is `suspended` only once every pod is really gone. A finalizer on
/// the worker stands in for a kubelet still stopping its containers.
#[tokio::test(flavor = "multi_thread")]
async fn suspend_and_resume() {
    let env = start(true).await;
    env.apply(&sample());
    let (_, workers) = env.wait_for_pods(1, 1).await;
    env.mark_ready().await;
    let ready = env.wait_for_state("ready").await;
    let worker = workers[0].name_any();
    hold_deletion(&env.pods_api(), &worker)
        .await
        .expect("hold the worker");

    // Every stored version of the RayCluster from here on: (Suspending, Suspended).
    let clusters: Api<RayCluster> = Api::namespaced(env.client.clone(), NS);
    let since = ready.resource_version().expect("resourceVersion");
    let mut versions = clusters
        .watch(
            &WatchParams::default().fields(&format!("metadata.name={CLUSTER}")),
            &since,
        )
        .await
        .expect("watch the RayCluster")
        .boxed();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = tokio::spawn({
        let seen = seen.clone();
        async move {
            while let Some(Ok(event)) = versions.next().await {
                // Bookmarks and the like carry no version of the object.
                let WatchEvent::Modified(cluster) = event else {
                    continue;
                };
                let pair = (
                    condition(&cluster, "RayClusterSuspending"),
                    condition(&cluster, "RayClusterSuspended"),
                );
                seen.lock()
                    .expect("not poisoned")
                    .push((revision(&cluster), pair));
            }
        }
    });
    // The revision of the first pod deletion: a pod gone, or marked for deletion.
    let mut pod_events = env
        .pods_api()
        .watch(
            &WatchParams::default().labels(&format!("ray.io/cluster={CLUSTER}")),
            &since,
        )
        .await
        .expect("watch the pods")
        .boxed();
    let first_deletion = tokio::spawn(async move {
        while let Some(Ok(event)) = pod_events.next().await {
            match event {
                WatchEvent::Deleted(pod) => return revision(&pod),
                WatchEvent::Modified(pod) if pod.metadata.deletion_timestamp.is_some() => {
                    return revision(&pod);
                }
                _ => {}
            }
        }
        panic!("the pod watch ended without a deletion");
    });

    env.patch(json!([{"op": "add", "path": "/spec/suspend", "value": true}]));
    env.wait_until_only_terminating(&worker).await;
    // Passes keep running (the deletions wake it, a pass that wrote looks again in 2 s); none
    // may call the cluster suspended while a pod still stops.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let cluster = env.cluster().await;
        assert_ne!(
            cluster.status.as_ref().and_then(|s| s.state.as_deref()),
            Some("suspended"),
            "suspended with a pod still terminating: {:?}",
            cluster.status
        );
        assert_eq!(
            condition(&cluster, "RayClusterSuspending").as_deref(),
            Some("True")
        );
        assert_ne!(
            condition(&cluster, "RayClusterSuspended").as_deref(),
            Some("True")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    finish_deletion(&env.pods_api(), &worker)
        .await
        .expect("release the worker");
    env.wait_for_pods(0, 0).await;
    let cluster = env.wait_for_state("suspended").await;
    assert_eq!(
        condition(&cluster, "RayClusterSuspended").as_deref(),
        Some("True")
    );
    assert_eq!(
        condition(&cluster, "RayClusterSuspending").as_deref(),
        Some("False")
    );
    let status = cluster.status.as_ref().expect("status");
    assert_eq!(status.desired_worker_replicas, Some(0));
    // The watch may deliver the last versions a moment after a GET shows them.
    let seen = wait_until("the watch to show Suspended", TIMEOUT, || async {
        let seen = seen.lock().expect("not poisoned").clone();
        seen.iter()
            .any(|(_, (_, ed))| ed.as_deref() == Some("True"))
            .then_some(seen)
    })
    .await;
    recorder.abort();
    let suspending = seen
        .iter()
        .position(|(_, (ing, _))| ing.as_deref() == Some("True"))
        .unwrap_or_else(|| panic!("Suspending was never stored: {seen:?}"));
    let suspended = seen
        .iter()
        .position(|(_, (_, ed))| ed.as_deref() == Some("True"))
        .unwrap_or_else(|| panic!("Suspended was never stored: {seen:?}"));
    assert!(suspending < suspended, "{seen:?}");
    assert!(
        seen.iter().all(|(_, (ing, ed))| {
            !(ing.as_deref() == Some("True") && ed.as_deref() == Some("True"))
        }),
        "Suspending and Suspended both True (KubeRay rejects that state): {seen:?}"
    );
    // Two-phase: Suspending was stored before the first pod was deleted. resourceVersions are
    // opaque to clients, but on this etcd-backed API server they are its revisions, which
    // order every write.
    let first_deletion = first_deletion.await.expect("the pod watch");
    assert!(
        seen[suspending].0 < first_deletion,
        "Suspending stored at revision {}, a pod deleted at {first_deletion}",
        seen[suspending].0
    );

    env.patch(json!([{"op": "replace", "path": "/spec/suspend", "value": false}]));
    env.wait_for_pods(1, 1).await;
    env.mark_ready().await;
    let cluster = env.wait_for_state("ready").await;
    assert_eq!(
        condition(&cluster, "RayClusterSuspended").as_deref(),
        Some("False")
    );
    assert_eq!(
        condition(&cluster, "RayClusterProvisioned").as_deref(),
        Some("True")
    );
}

/// `workerGroupSpecs[i].suspend` takes down that group only: the head and the other group keep
/// running (the same pods), and the status stops counting the group until it is resumed.
#[tokio::test(flavor = "multi_thread")]
async fn suspending_one_worker_group_deletes_only_its_pods_and_resuming_brings_them_back() {
    let env = start(true).await;
    env.apply(&sample_with_second_group(2));
    let (heads, workers) = env.wait_for_pods(1, 3).await;
    let first_group = group_members(&workers, "workergroup");
    assert_eq!(first_group.len(), 1, "{workers:?}");
    assert_eq!(group_members(&workers, "second").len(), 2);
    env.mark_ready().await;
    let cluster = env.wait_for_state("ready").await;
    let status = cluster.status.expect("status");
    assert_eq!(status.desired_worker_replicas, Some(3));
    // Head 1 CPU + 3 workers of 1 CPU.
    assert_eq!(status.desired_cpu.as_ref().map(|q| q.0.as_str()), Some("4"));

    env.patch(json!([{"op": "add", "path": "/spec/workerGroupSpecs/1/suspend", "value": true}]));
    let (heads_now, workers_now) = env.wait_for_pods(1, 1).await;
    assert_eq!(names(&heads_now), names(&heads), "the head was touched");
    assert_eq!(
        names(&workers_now),
        first_group,
        "the other group's worker was touched"
    );
    let cluster = wait_until("desiredWorkerReplicas 1", TIMEOUT, || async {
        let cluster = env.cluster().await;
        let desired = cluster.status.as_ref()?.desired_worker_replicas;
        (desired == Some(1)).then_some(cluster)
    })
    .await;
    let status = cluster.status.as_ref().expect("status");
    assert_eq!(status.desired_cpu.as_ref().map(|q| q.0.as_str()), Some("2"));
    assert_eq!(status.ready_worker_replicas, Some(1));
    // Suspending a group is not suspending the cluster: it stays ready with what remains.
    assert_eq!(status.state.as_deref(), Some("ready"));
    assert_ne!(
        condition(&cluster, "RayClusterSuspended").as_deref(),
        Some("True")
    );
    // One DeletedWorkerPod event per pod of the group (written just after the deletions).
    wait_until("two DeletedWorkerPod events", TIMEOUT, || async {
        let deleted = env
            .events()
            .into_iter()
            .filter(|(_, r, _)| r == "DeletedWorkerPod")
            .count();
        (deleted == 2).then_some(())
    })
    .await;

    env.patch(
        json!([{"op": "replace", "path": "/spec/workerGroupSpecs/1/suspend", "value": false}]),
    );
    let (heads_now, workers_now) = env.wait_for_pods(1, 3).await;
    assert_eq!(names(&heads_now), names(&heads));
    assert_eq!(group_members(&workers_now, "workergroup"), first_group);
    let second = group_members(&workers_now, "second");
    assert_eq!(second.len(), 2);
    assert!(
        second.is_disjoint(&group_members(&workers, "second")),
        "{second:?} were not recreated"
    );
    env.mark_ready().await;
    let cluster = wait_until("ready with 3 desired workers", TIMEOUT, || async {
        let cluster = env.cluster().await;
        let status = cluster.status.as_ref()?;
        (status.desired_worker_replicas == Some(3) && status.ready_worker_replicas == Some(3))
            .then_some(cluster)
    })
    .await;
    assert_eq!(
        cluster.status.expect("status").state.as_deref(),
        Some("ready")
    );
}

/// Removing a worker group from the spec removes its pods (KubeRay leaves them running for the
/// cluster's lifetime); the other group and the head are not touched.
#[tokio::test(flavor = "multi_thread")]
async fn removing_a_worker_group_deletes_its_pods_only() {
    let env = start(true).await;
    env.apply(&sample_with_second_group(2));
    let (heads, workers) = env.wait_for_pods(1, 3).await;
    let first_group = group_members(&workers, "workergroup");
    assert_eq!(group_members(&workers, "second").len(), 2, "{workers:?}");

    env.patch(json!([{"op": "remove", "path": "/spec/workerGroupSpecs/1"}]));
    let (heads_now, workers_now) = env.wait_for_pods(1, 1).await;
    assert_eq!(names(&heads_now), names(&heads), "the head was touched");
    assert_eq!(
        names(&workers_now),
        first_group,
        "the other group was touched"
    );
    // Each deletion is reported, naming why (events are written just after the deletions).
    wait_until(
        "two DeletedWorkerPod events naming the removal",
        TIMEOUT,
        || async {
            let removed = env
                .events()
                .into_iter()
                .filter(|(_, reason, message)| {
                    reason == "DeletedWorkerPod" && message.contains("no longer in the spec")
                })
                .count();
            (removed == 2).then_some(())
        },
    )
    .await;
    env.mark_ready().await;
    let cluster = wait_until("ready with 1 desired worker", TIMEOUT, || async {
        let cluster = env.cluster().await;
        let status = cluster.status.as_ref()?;
        (status.state.as_deref() == Some("ready") && status.desired_worker_replicas == Some(1))
            .then_some(cluster)
    })
    .await;
    assert_eq!(
        cluster.status.and_then(|s| s.ready_worker_replicas),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn recreate_upgrade_replaces_pods_when_the_template_changes_but_not_on_scaling() {
    let env = start(true).await;
    let yaml = sample().replacen(
        "spec:\n",
        "spec:\n  upgradeStrategy:\n    type: Recreate\n",
        1,
    );
    env.apply(&yaml);
    let (heads, workers) = env.wait_for_pods(1, 1).await;
    let original: BTreeSet<String> = names(&heads).union(&names(&workers)).cloned().collect();

    env.patch(json!([{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2}]));
    let (heads, workers) = env.wait_for_pods(1, 2).await;
    let now: BTreeSet<String> = names(&heads).union(&names(&workers)).cloned().collect();
    assert!(
        original.is_subset(&now),
        "scaling recreated pods: {original:?} -> {now:?}"
    );

    env.patch(json!([{
        "op": "replace",
        "path": "/spec/workerGroupSpecs/0/template/spec/containers/0/image",
        "value": "rayproject/ray:2.53.0"
    }]));
    let (heads, workers) = wait_until("every pod recreated", TIMEOUT, || async {
        let (heads, workers) = env.ray_pods().await;
        let all: BTreeSet<String> = names(&heads).union(&names(&workers)).cloned().collect();
        (heads.len() == 1 && workers.len() == 2 && all.is_disjoint(&now))
            .then_some((heads, workers))
    })
    .await;
    assert_eq!(heads.len(), 1);
    for worker in &workers {
        let image = worker.spec.as_ref().expect("spec").containers[0]
            .image
            .clone();
        assert_eq!(image.as_deref(), Some("rayproject/ray:2.53.0"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_webhook_the_controller_normalizes_in_memory_and_warns() {
    let env = start(false).await;
    env.apply(&sample());
    let (heads, workers) = env.wait_for_pods(1, 1).await;
    let args = container_args(&heads[0]);
    assert!(args.contains("--dashboard-host=0.0.0.0"), "{args}");
    assert!(args.contains("--num-cpus=1"), "{args}");
    assert!(args.contains("--block"), "{args}");
    let ports = heads[0].spec.as_ref().expect("spec").containers[0]
        .ports
        .clone()
        .unwrap_or_default();
    assert!(
        ports.iter().any(|p| p.name.as_deref() == Some("metrics")),
        "{ports:?}"
    );
    assert!(container_args(&workers[0]).contains("--address="));

    // The stored object stays as the user wrote it; only the pods carry the defaults.
    let stored = env.cluster().await;
    assert!(!stored.annotations().contains_key("raygate.io/normalized"));
    let events = wait_until("a WebhookBypassed event", TIMEOUT, || async {
        let events = env.events();
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "WebhookBypassed")
            .then_some(events)
    })
    .await;
    let bypass = events
        .iter()
        .filter(|(_, r, _)| r == "WebhookBypassed")
        .count();
    assert_eq!(bypass, 1, "warned more than once: {events:?}");
}

/// SIGKILL while the 50 workers are being created, then a new controller: exactly 50 in the
/// end. A pod quota of 26 (the head and 25 workers) makes sure the kill lands halfway however
/// fast the creates go; it is lifted before the restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_controller_killed_while_creating_50_workers_ends_with_exactly_50() {
    let mut env = start(false).await;
    env.limit_pods(26).await;
    env.apply(&sample_with_workers(50));
    wait_until("the first workers", TIMEOUT, || async {
        (!env.ray_pods().await.1.is_empty()).then_some(())
    })
    .await;
    env.controller.kill();
    let after_kill = env.ray_pods().await.1.len();
    // The quota makes this hold; it is here to say so if the setup ever stops holding.
    assert!(
        (1..=25).contains(&after_kill),
        "{after_kill} workers at the kill"
    );
    eprintln!("killed the controller with {after_kill} of 50 workers created");

    env.lift_pod_limit().await;
    env.controller = Controller::start(&env.cp).expect("restart the controller");
    let (heads, workers) = env.wait_for_pods(1, 50).await;
    // Let any duplicate show up before judging.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (heads_later, workers_later) = env.ray_pods().await;
    assert_eq!(heads_later.len(), 1, "duplicate heads");
    assert_eq!(
        workers_later.len(),
        50,
        "duplicate workers after restart ({after_kill} existed at the kill)"
    );
    assert_eq!(names(&heads), names(&heads_later));
    assert_eq!(names(&workers), names(&workers_later));
    let indices: BTreeSet<&str> = workers
        .iter()
        .filter_map(|p| label(p, "ray.io/worker-group-replica-index"))
        .collect();
    assert_eq!(indices.len(), 50, "replica indices repeat");
}

/// A controller that starts with more RayClusters stored than fit in one page of its initial
/// LIST (50) builds every one of them, once: a head, a worker and a head Service each.
#[tokio::test(flavor = "multi_thread")]
async fn a_controller_started_with_60_clusters_stored_builds_each_exactly_once() {
    const CLUSTERS: usize = 60;
    let mut env = start(true).await;
    env.controller.kill();
    let manifests: Vec<String> = (0..CLUSTERS)
        .map(|i| {
            sample().replace(
                &format!("name: {CLUSTER}\n"),
                &format!("name: stored-{i}\n"),
            )
        })
        .collect();
    env.apply(&manifests.join("\n---\n"));
    let clusters = Api::<RayCluster>::namespaced(env.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("list RayClusters");
    assert_eq!(clusters.items.len(), CLUSTERS);

    env.controller = Controller::start(&env.cp).expect("start the controller");
    let all_pods = || async {
        env.pods_api()
            .list(&ListParams::default().labels("ray.io/cluster"))
            .await
            .expect("list pods")
            .items
    };
    wait_until("a head and a worker for every cluster", TIMEOUT, || async {
        (all_pods().await.len() >= 2 * CLUSTERS).then_some(())
    })
    .await;
    // Let any duplicate show up before judging.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pods = all_pods().await;
    assert_eq!(pods.len(), 2 * CLUSTERS, "{:?}", names(&pods));
    let services: Api<Service> = Api::namespaced(env.client.clone(), NS);
    for cluster in &clusters.items {
        let uid = cluster.uid().expect("uid");
        let name = cluster.name_any();
        let owned: Vec<&Pod> = pods.iter().filter(|p| owned_by(p, &uid)).collect();
        let heads = owned
            .iter()
            .filter(|p| label(p, "ray.io/node-type") == Some("head"))
            .count();
        assert_eq!((heads, owned.len()), (1, 2), "pods of {name}");
        assert!(
            services
                .get_opt(&format!("{name}-head-svc"))
                .await
                .expect("get a Service")
                .is_some(),
            "no head Service for {name}"
        );
    }
}

/// `--namespace=team-a --namespace=team-c`: the controller materializes the clusters of both
/// and leaves a cluster in team-b alone (no pods, no Service, no status), as a namespaced
/// install must.
#[tokio::test(flavor = "multi_thread")]
async fn with_watched_namespaces_a_cluster_elsewhere_is_left_alone() {
    let mut env = start_with(true, &["--namespace=team-a", "--namespace=team-c"]).await;
    for namespace in ["team-a", "team-b", "team-c"] {
        env.kubectl_ok(&["create", "namespace", namespace], None);
        env.kubectl_ok(&["apply", "-n", namespace, "-f", "-"], Some(&sample()));
    }
    let clusters = |namespace| Api::<RayCluster>::namespaced(env.client.clone(), namespace);
    let pods = |namespace| Api::<Pod>::namespaced(env.client.clone(), namespace);
    let selector = format!("ray.io/cluster={CLUSTER}");

    for namespace in ["team-a", "team-c"] {
        let watched = wait_until(
            &format!("{namespace}'s head and worker"),
            TIMEOUT,
            || async {
                let list = pods(namespace)
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .expect("list the watched pods");
                (list.items.len() == 2).then_some(list.items)
            },
        )
        .await;
        let uid = clusters(namespace)
            .get(CLUSTER)
            .await
            .expect("cluster")
            .uid();
        assert!(
            watched
                .iter()
                .all(|p| owned_by(p, uid.as_deref().expect("uid"))),
            "{watched:?}"
        );
        mark_all_ready(&pods(namespace), &selector)
            .await
            .expect("mark the watched pods ready");
        wait_until(&format!("{namespace} ready"), TIMEOUT, || async {
            let cluster = clusters(namespace).get(CLUSTER).await.ok()?;
            (cluster.status?.state.as_deref() == Some("ready")).then_some(())
        })
        .await;
    }

    // The controller is busy and healthy; give it time to (wrongly) reach team-b too.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let unwatched = pods("team-b")
        .list(&ListParams::default())
        .await
        .expect("list team-b's pods");
    assert!(unwatched.items.is_empty(), "{:?}", names(&unwatched.items));
    let services: Api<Service> = Api::namespaced(env.client.clone(), "team-b");
    assert!(
        services
            .get_opt("raycluster-kuberay-head-svc")
            .await
            .expect("get a Service")
            .is_none(),
        "a head Service was created in team-b"
    );
    let other = clusters("team-b").get(CLUSTER).await.expect("team-b");
    assert_eq!(other.status, None, "team-b's cluster got a status");
    assert!(!env.controller.exited());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_two_replicas_only_the_leader_acts_and_the_other_takes_over() {
    let mut env = start(false).await;
    // The default controller runs without leader election; replace it with two that elect.
    env.controller.stop();
    let flags = [
        "--leader-elect",
        "--leader-election-namespace=default",
        "--leader-lease-seconds=10",
    ];
    let first = Controller::start_with(&env.cp, &flags).expect("first replica");
    let second = Controller::start_with(&env.cp, &flags).expect("second replica");
    let mut replicas = [first, second];
    let leader = wait_until("one leader", TIMEOUT, || async {
        let leaders: Vec<usize> = (0..2).filter(|i| replicas[*i].is_leader()).collect();
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await;
    let standby = 1 - leader;

    env.apply(&sample());
    env.wait_for_pods(1, 1).await;
    assert!(!replicas[standby].is_leader());
    let standby_metrics = replicas[standby].metrics().expect("metrics");
    assert!(
        !standby_metrics.contains("raygate_controller_reconciles_total{"),
        "the standby reconciled:\n{standby_metrics}"
    );

    let killed_at = Instant::now();
    replicas[leader].kill();
    wait_until("the standby to lead", Duration::from_secs(30), || async {
        replicas[standby].is_leader().then_some(())
    })
    .await;
    let failover = killed_at.elapsed();
    assert!(
        failover <= Duration::from_secs(15),
        "failover took {failover:?}"
    );

    env.patch(json!([{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2}]));
    env.wait_for_pods(1, 2).await;
    assert!(!replicas[standby].exited());
}

/// A holder whose clock lags (its `renewTime` an hour old) but which keeps renewing keeps
/// the lease: a standby times expiry on its own clock, from the lease's last change. Once the
/// renewals stop, the standby takes over within the lease duration and a renewal period.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_renewed_by_a_holder_with_a_lagging_clock_is_not_taken() {
    let mut env = start(false).await;
    env.controller.stop();
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "default");
    let an_hour_ago = Timestamp::now() - SignedDuration::from_hours(1);
    let mut lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "raygate-controller", "namespace": "default"},
        "spec": {
            "holderIdentity": "elsewhere",
            "leaseDurationSeconds": 10,
            "acquireTime": MicroTime(an_hour_ago),
            "renewTime": MicroTime(an_hour_ago),
        }
    }))
    .expect("a Lease");
    lease = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("the lagging holder's Lease");
    let standby = Controller::start_with(
        &env.cp,
        &[
            "--leader-elect",
            "--leader-election-namespace=default",
            "--leader-lease-seconds=10",
        ],
    )
    .expect("the standby");
    // The holder renews every 2 s for 14 s, each renewTime still an hour behind.
    for round in 1..=7 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(MicroTime(
                an_hour_ago + SignedDuration::from_secs(2 * round),
            ));
        }
        // A 409 here: someone else wrote the lease, i.e. the standby took it.
        lease = leases
            .replace("raygate-controller", &PostParams::default(), &lease)
            .await
            .unwrap_or_else(|e| panic!("renewal {round}: the lease was taken while renewed: {e}"));
        assert!(!standby.is_leader(), "the standby leads a renewed lease");
    }
    let stopped = Instant::now();
    wait_until("the standby to lead", Duration::from_secs(30), || async {
        standby.is_leader().then_some(())
    })
    .await;
    let waited = stopped.elapsed();
    assert!(
        waited >= Duration::from_secs(8) && waited <= Duration::from_secs(16),
        "took over {waited:?} after the last renewal"
    );
    let held = leases.get("raygate-controller").await.expect("the Lease");
    assert_ne!(
        held.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("elsewhere")
    );
}

/// A leader whose connection to the API server stalls (its renewals hang; they do not fail)
/// steps down by itself before its lease can expire, so it has stopped acting before the
/// standby may take over; the standby then leads and acts.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_whose_renewals_hang_steps_down_before_the_standby_takes_over() {
    let mut env = start(false).await;
    env.controller.stop();
    let flags = [
        "--leader-elect",
        "--leader-election-namespace=default",
        "--leader-lease-seconds=10",
    ];
    let relay = StallProxy::start(&env.cp).await.expect("the relay");
    let dir = tempfile::tempdir().expect("a temp dir");
    let kubeconfig = relay.kubeconfig(&env.cp, dir.path()).expect("kubeconfig");
    let mut leader = Controller::start_as(&kubeconfig, &flags).expect("the leader");
    wait_until("the first replica to lead", TIMEOUT, || async {
        leader.is_leader().then_some(())
    })
    .await;
    let standby = Controller::start_with(&env.cp, &flags).expect("the standby");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!standby.is_leader(), "two leaders");

    relay.stall();
    let stalled_at = Instant::now();
    // Polled closely: the standby must not lead while the stalled replica still acts as
    // leader (its admin port, not relayed, still answers).
    let stepped_down = loop {
        if leader.exited() {
            break stalled_at.elapsed();
        }
        // An admin port that does not answer (a loaded machine) says nothing either way.
        if let Ok(metrics) = leader.metrics()
            && !metrics
                .lines()
                .any(|l| l.trim() == "raygate_controller_is_leader 1")
        {
            break stalled_at.elapsed();
        }
        assert!(
            !standby.is_leader(),
            "the standby leads while the stalled leader still acts"
        );
        assert!(
            stalled_at.elapsed() < Duration::from_secs(30),
            "the stalled leader still acts after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Its last renewal was sent at most 2 s before the stall; it gives up 8 s after that.
    assert!(
        stepped_down <= Duration::from_secs(10),
        "stepped down after {stepped_down:?}"
    );
    // Then it exits, to be restarted as a standby (events still queued get 5 s).
    wait_until(
        "the stalled replica to exit",
        Duration::from_secs(15),
        || {
            let exited = leader.exited();
            async move { exited.then_some(()) }
        },
    )
    .await;
    wait_until("the standby to lead", Duration::from_secs(30), || async {
        standby.is_leader().then_some(())
    })
    .await;
    let failover = stalled_at.elapsed();
    assert!(
        failover <= Duration::from_secs(15),
        "failover took {failover:?}"
    );
    env.apply(&sample());
    env.wait_for_pods(1, 1).await;
}

/// The API server killed (SIGKILL) while a 20-worker cluster is half built, then started
/// again: the controller survives and converges on exactly 20. A pod quota of 11 holds the
/// cluster halfway until after the restart.
#[tokio::test(flavor = "multi_thread")]
async fn an_api_server_restart_in_the_middle_of_creating_pods_converges() {
    let mut env = start(false).await;
    env.limit_pods(11).await;
    env.apply(&sample_with_workers(20));
    wait_until("the first workers", TIMEOUT, || async {
        (!env.ray_pods().await.1.is_empty()).then_some(())
    })
    .await;
    env.cp.kill_apiserver();
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.cp.start_apiserver().expect("restart the API server");
    env.client = env.cp.client().await.expect("kube client");
    // Held there by the quota; checked in case the setup ever stops holding it.
    let (_, workers) = env.ray_pods().await;
    assert!(
        (1..=10).contains(&workers.len()),
        "{} workers at the restart",
        workers.len()
    );
    env.lift_pod_limit().await;

    env.wait_for_pods(1, 20).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (heads, workers) = env.ray_pods().await;
    assert_eq!((heads.len(), workers.len()), (1, 20));
    env.mark_ready().await;
    env.wait_for_state("ready").await;
    assert!(
        !env.controller.exited(),
        "the controller died with the API server"
    );
}

/// The sample with Redis GCS fault tolerance, and KubeRay's annotation giving its cleanup
/// `timeout` seconds.
fn redis_sample(timeout: u32) -> String {
    sample()
        .replacen(
            "spec:\n",
            "spec:\n  gcsFaultToleranceOptions:\n    redisAddress: redis:6379\n",
            1,
        )
        .replacen(
            "  name: raycluster-kuberay\n",
            &format!(
                "  name: raycluster-kuberay\n  annotations:\n    ray.io/gcs-ft-deletion-timeout: \"{timeout}\"\n"
            ),
            1,
        )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_fault_tolerant_cluster_runs_its_cleanup_before_it_goes() {
    let env = start(true).await;
    env.apply(&redis_sample(10));
    let (heads, _) = env.wait_for_pods(1, 1).await;
    let cluster = env.cluster().await;
    assert!(
        cluster
            .finalizers()
            .contains(&"ray.io/gcs-ft-redis-cleanup-finalizer".to_string()),
        "{:?}",
        cluster.finalizers()
    );
    let env_vars = heads[0].spec.as_ref().expect("spec").containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let value = |name: &str| {
        env_vars
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(value("RAY_external_storage_namespace"), cluster.uid());
    assert_eq!(value("RAY_REDIS_ADDRESS").as_deref(), Some("redis:6379"));

    env.kubectl_ok(&["delete", "raycluster", CLUSTER, "--wait=false"], None);
    wait_until("the pods gone", TIMEOUT, || async {
        let (heads, workers) = env.ray_pods().await;
        (heads.is_empty() && workers.is_empty()).then_some(())
    })
    .await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(env.client.clone(), NS);
    let job = wait_until("the cleanup Job", TIMEOUT, || async {
        jobs.get_opt("raycluster-kuberay-redis-cleanup")
            .await
            .expect("get job")
    })
    .await;
    let template_labels = job
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(template_labels["ray.io/node-type"], "redis-cleanup");

    // No Redis answers here, so the Job never ends: the timeout lifts the finalizer.
    let clusters: Api<RayCluster> = Api::namespaced(env.client.clone(), NS);
    wait_until("the RayCluster gone", TIMEOUT, || async {
        clusters
            .get_opt(CLUSTER)
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    let events = env.events();
    assert!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "ForceDeletedStuckCluster"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|(_, r, _)| r == "CreatedRedisCleanupJob"),
        "{events:?}"
    );
}

/// The Redis cleanup Job starts only once the head is really gone (a finalizer holds it here,
/// as a kubelet still stopping its GCS would: a live GCS would write its state back), and
/// when the Job completes the RayCluster goes at once, long before its timeout, with no
/// warning.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_cleanup_waits_for_the_head_to_stop_and_ends_when_its_job_completes() {
    let env = start(true).await;
    env.apply(&redis_sample(600));
    let (heads, _) = env.wait_for_pods(1, 1).await;
    let head = heads[0].name_any();
    hold_deletion(&env.pods_api(), &head)
        .await
        .expect("hold the head");

    env.kubectl_ok(&["delete", "raycluster", CLUSTER, "--wait=false"], None);
    env.wait_until_only_terminating(&head).await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(env.client.clone(), NS);
    let job_name = "raycluster-kuberay-redis-cleanup";
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        jobs.get_opt(job_name).await.expect("get job").is_none(),
        "the cleanup Job started while the head was still stopping"
    );

    finish_deletion(&env.pods_api(), &head)
        .await
        .expect("release the head");
    wait_until("the cleanup Job", TIMEOUT, || async {
        jobs.get_opt(job_name).await.expect("get job")
    })
    .await;
    job_controller::mark_complete(&jobs, job_name)
        .await
        .expect("mark the Job complete");
    let clusters: Api<RayCluster> = Api::namespaced(env.client.clone(), NS);
    wait_until("the RayCluster gone", TIMEOUT, || async {
        let gone = clusters.get_opt(CLUSTER).await.expect("get").is_none();
        gone.then_some(())
    })
    .await;
    let events = env.events();
    assert!(
        !events
            .iter()
            .any(|(_, r, _)| r == "ForceDeletedStuckCluster"),
        "{events:?}"
    );
}

/// PATCHes of RayClusters the API server answered 409 Conflict so far.
async fn raycluster_patch_conflicts(client: &Client) -> f64 {
    let metrics = api_server_metrics(client)
        .await
        .expect("API server metrics");
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("apiserver_request_total{")
                && line.contains("code=\"409\"")
                && line.contains("resource=\"rayclusters\"")
                && line.contains("verb=\"PATCH\"")
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

/// 409 Conflict: the controller takes its Redis-cleanup finalizer off with a patch made
/// against its cached RayCluster, resourceVersion included, so it can never overwrite a
/// change it has not seen. Four writers keep changing the RayCluster meanwhile; the API
/// server answers 409 (as its own metrics count), and the controller retries with the newer
/// object until the finalizer comes off and the cluster goes, with no warning for it. The
/// writers also wake the cluster without pause: passes must still run while they do. (Should
/// a run see no conflict at all, the controller having won every race, it runs again.)
#[tokio::test(flavor = "multi_thread")]
async fn finalizer_patches_that_meet_409_conflicts_are_retried_until_they_land() {
    let env = start(true).await;
    let clusters: Api<RayCluster> = Api::namespaced(env.client.clone(), NS);
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(env.client.clone(), NS);
    for attempt in 0..3 {
        let name = format!("conflicted-{attempt}");
        env.apply(&redis_sample(600).replacen(
            &format!("  name: {CLUSTER}\n"),
            &format!("  name: {name}\n"),
            1,
        ));
        wait_until("the finalizer", TIMEOUT, || async {
            let cluster = clusters.get(&name).await.expect("get");
            (!cluster.finalizers().is_empty()).then_some(())
        })
        .await;
        env.kubectl_ok(&["delete", "raycluster", &name, "--wait=false"], None);
        let job_name = format!("{name}-redis-cleanup");
        wait_until("the cleanup Job", TIMEOUT, || async {
            jobs.get_opt(&job_name).await.expect("get job")
        })
        .await;

        let before = raycluster_patch_conflicts(&env.client).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let (clusters, name, stop) = (clusters.clone(), name.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        n += 1;
                        let note = json!({"metadata": {"annotations": {
                            format!("raygate.test/writer-{writer}"): n.to_string()
                        }}});
                        // Gone (404) ends the writer too.
                        if clusters
                            .patch(&name, &PatchParams::default(), &Patch::Merge(&note))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        // Some room for the rest of a 2-core machine.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        job_controller::mark_complete(&jobs, &job_name)
            .await
            .expect("mark the Job complete");
        let conflicted = wait_until("a conflict, or the cluster gone", TIMEOUT, || async {
            if raycluster_patch_conflicts(&env.client).await > before {
                return Some(true);
            }
            let gone = clusters.get_opt(&name).await.expect("get").is_none();
            gone.then_some(false)
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for writer in writers {
            writer.await.expect("writer task");
        }
        wait_until("the RayCluster gone", TIMEOUT, || async {
            let gone = clusters.get_opt(&name).await.expect("get").is_none();
            gone.then_some(())
        })
        .await;
        if conflicted {
            let warnings = env.kubectl_ok(
                &[
                    "get",
                    "events",
                    "--field-selector=reason=FailedToUpdateFinalizers",
                    "-o",
                    "name",
                ],
                None,
            );
            assert!(warnings.trim().is_empty(), "{warnings}");
            return;
        }
        eprintln!("attempt {attempt}: the controller met no conflict; again");
    }
    panic!("three runs and the API server never answered a finalizer patch with 409");
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_host_replicas_come_and_go_whole_with_a_headless_service() {
    let env = start(true).await;
    let yaml = sample_with_workers(2).replacen(
        "    groupName: workergroup\n",
        "    groupName: workergroup\n    numOfHosts: 2\n",
        1,
    );
    env.apply(&yaml);
    let (_, workers) = env.wait_for_pods(1, 4).await;
    let mut replicas = std::collections::BTreeMap::<String, Vec<String>>::new();
    for worker in &workers {
        let replica = label(worker, "ray.io/worker-group-replica-name")
            .expect("replica name")
            .to_string();
        assert!(replica.starts_with("workergroup-"), "{replica}");
        let host = label(worker, "ray.io/replica-host-index").expect("host index");
        replicas.entry(replica).or_default().push(host.to_string());
    }
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    for hosts in replicas.values_mut() {
        hosts.sort();
        assert_eq!(hosts, &vec!["0".to_string(), "1".to_string()]);
    }
    let services: Api<Service> = Api::namespaced(env.client.clone(), NS);
    let headless = services
        .get("raycluster-kuberay-headless")
        .await
        .expect("headless worker service");
    assert_eq!(
        headless.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        Some("None")
    );

    // Its deletion wakes the cluster through the headless Services' watch: it is back long
    // before the 5 minutes after which a ready cluster is looked at again anyway.
    env.mark_ready().await;
    env.wait_for_state("ready").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    services
        .delete("raycluster-kuberay-headless", &DeleteParams::default())
        .await
        .expect("delete the headless Service");
    let deleted_at = Instant::now();
    let old_uid = headless.metadata.uid.clone();
    wait_until(
        "the headless Service back",
        Duration::from_secs(5),
        || async {
            let again = services
                .get_opt("raycluster-kuberay-headless")
                .await
                .ok()??;
            (again.metadata.uid != old_uid).then_some(())
        },
    )
    .await;
    eprintln!(
        "headless Service recreated after {:?}",
        deleted_at.elapsed()
    );

    // Losing one host takes its whole replica down; a complete replica replaces it.
    let lost = &workers[0];
    let lost_replica = label(lost, "ray.io/worker-group-replica-name")
        .expect("replica")
        .to_string();
    env.pods_api()
        .delete(&lost.name_any(), &DeleteParams::default())
        .await
        .expect("delete a host");
    let workers = wait_until("the broken replica replaced", TIMEOUT, || async {
        let workers = env.owned_workers().await;
        let gone = workers
            .iter()
            .all(|w| label(w, "ray.io/worker-group-replica-name") != Some(lost_replica.as_str()));
        (workers.len() == 4 && gone).then_some(workers)
    })
    .await;
    let names: BTreeSet<&str> = workers
        .iter()
        .filter_map(|w| label(w, "ray.io/worker-group-replica-name"))
        .collect();
    assert_eq!(names.len(), 2);

    // Scaling down takes a whole replica: both its hosts go, the other stays whole.
    env.patch(json!([{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1}]));
    let workers = wait_until("one replica left", TIMEOUT, || async {
        let workers = env.owned_workers().await;
        (workers.len() == 2).then_some(workers)
    })
    .await;
    let left: BTreeSet<String> = replica_names(&workers);
    assert_eq!(left.len(), 1, "a replica split: {workers:?}");
    assert!(left.iter().all(|n| names.contains(n.as_str())), "{left:?}");

    // workersToDelete naming one host removes its whole replica; the group, still at one
    // replica, gets a new complete one.
    let victim = workers[0].name_any();
    let victim_replica = left.iter().next().expect("a replica").clone();
    env.patch(json!([{
        "op": "add",
        "path": "/spec/workerGroupSpecs/0/scaleStrategy",
        "value": {"workersToDelete": [victim]},
    }]));
    let workers = wait_until("a new whole replica", TIMEOUT, || async {
        let workers = env.owned_workers().await;
        let replicas = replica_names(&workers);
        (workers.len() == 2 && replicas.len() == 1 && !replicas.contains(&victim_replica))
            .then_some(workers)
    })
    .await;
    let hosts: BTreeSet<&str> = workers
        .iter()
        .filter_map(|w| label(w, "ray.io/replica-host-index"))
        .collect();
    assert_eq!(hosts, BTreeSet::from(["0", "1"]));
}

fn replica_names(workers: &[Pod]) -> BTreeSet<String> {
    workers
        .iter()
        .filter_map(|w| label(w, "ray.io/worker-group-replica-name"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_in_tree_autoscaling_the_head_runs_the_autoscaler_which_alone_picks_workers_to_remove()
{
    let env = start(true).await;
    let yaml =
        sample_with_workers(2).replacen("spec:\n", "spec:\n  enableInTreeAutoscaling: true\n", 1);
    env.apply(&yaml);
    let (heads, workers) = env.wait_for_pods(1, 2).await;
    let spec = heads[0].spec.as_ref().expect("spec");
    assert_eq!(spec.service_account_name.as_deref(), Some(CLUSTER));
    assert!(
        spec.containers.iter().any(|c| c.name == "autoscaler"),
        "{:?}",
        spec.containers.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
    for resource in ["serviceaccount", "role", "rolebinding"] {
        env.kubectl_ok(&["get", resource, CLUSTER], None);
    }

    // Lowering replicas alone removes nobody: the autoscaler names the workers it drains.
    env.patch(json!([{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1}]));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(env.owned_workers().await.len(), 2);
    let victim = workers[0].name_any();
    env.patch(json!([{
        "op": "add",
        "path": "/spec/workerGroupSpecs/0/scaleStrategy",
        "value": {"workersToDelete": [victim]}
    }]));
    let (_, left) = env.wait_for_pods(1, 1).await;
    assert_eq!(left[0].name_any(), workers[1].name_any());
}

/// KubeRay's token-auth sample switched to Kubernetes token auth (Ray 2.55): no token Secret is
/// created; every container of the pods the API server accepted mounts the projected
/// service-account token where Ray reads it.
#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_token_auth_mounts_the_service_account_token_in_every_container() {
    let env = start(true).await;
    let sample = sample_text("ray-cluster.auth.yaml")
        .expect("KubeRay's auth sample")
        .replace("name: ray-cluster-with-auth", "name: k8s-token-auth")
        .replace("mode: token", "mode: token\n    enableK8sTokenAuth: true")
        .replace("rayVersion: \"2.53.0\"", "rayVersion: \"2.55.0\"");
    assert!(sample.contains("enableK8sTokenAuth: true") && sample.contains("2.55.0"));
    let name = "k8s-token-auth";
    env.apply(&sample);
    let pods = head_and_worker_of(&env, name).await;
    for pod in &pods {
        let spec = pod.spec.as_ref().expect("spec");
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "ray-token")
            .and_then(|v| v.projected.as_ref())
            .and_then(|p| p.sources.as_ref())
            .and_then(|s| s.first())
            .and_then(|s| s.service_account_token.as_ref());
        assert_eq!(
            volume.map(|t| t.path.as_str()),
            Some("token"),
            "{:?}",
            spec.volumes
        );
        for container in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let env = container.env.as_deref().unwrap_or_default();
            let k8s = env.iter().find(|e| e.name == "RAY_ENABLE_K8S_TOKEN_AUTH");
            assert_eq!(
                k8s.and_then(|e| e.value.as_deref()),
                Some("true"),
                "{}",
                container.name
            );
            let mount = container
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.name == "ray-token")
                .map(|m| m.mount_path.as_str());
            assert_eq!(
                mount,
                Some("/var/run/secrets/ray.io/serviceaccount"),
                "{}",
                container.name
            );
        }
    }
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(env.client.clone(), NS);
    assert!(
        secrets.get_opt(name).await.expect("read Secrets").is_none(),
        "Kubernetes token auth needs no token Secret"
    );
}

/// KubeRay's token-auth sample: the cluster's token Secret is created (32 random bytes, owned
/// by the cluster) and every container of its pods reads the token from it.
#[tokio::test(flavor = "multi_thread")]
async fn token_auth_creates_the_token_secret_and_every_container_reads_it() {
    let env = start(true).await;
    let sample = sample_text("ray-cluster.auth.yaml").expect("KubeRay's auth sample");
    let name = serde_saphyr::from_str::<Value>(&sample).expect("YAML")["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_string();
    env.apply(&sample);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(env.client.clone(), NS);
    let secret = wait_until("the token Secret", TIMEOUT, || async {
        secrets.get_opt(&name).await.ok().flatten()
    })
    .await;
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get("auth_token"))
        .map(|b| b.0.clone())
        .expect("an auth_token");
    assert_eq!(token.len(), 44, "base64 of 32 random bytes");
    assert_eq!(secret.labels().get("ray.io/cluster"), Some(&name));
    assert_eq!(secret.owner_references()[0].name, name);

    let pods = head_and_worker_of(&env, &name).await;
    for pod in &pods {
        let spec = pod.spec.as_ref().expect("spec");
        for container in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let env = container.env.as_deref().unwrap_or_default();
            let mode = env.iter().find(|e| e.name == "RAY_AUTH_MODE");
            assert_eq!(
                mode.and_then(|e| e.value.as_deref()),
                Some("token"),
                "{}",
                container.name
            );
            let from = env
                .iter()
                .find(|e| e.name == "RAY_AUTH_TOKEN")
                .and_then(|e| e.value_from.as_ref())
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|s| (s.name.clone(), s.key.clone()));
            assert_eq!(
                from,
                Some((name.clone(), "auth_token".to_string())),
                "{}",
                container.name
            );
        }
    }
    // The token is never rotated under running Ray processes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = secrets.get(&name).await.expect("the Secret");
    assert_eq!(again.data, secret.data);
}
