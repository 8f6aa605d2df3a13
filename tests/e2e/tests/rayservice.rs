//! A RayService as a user sees it, against a real API server and a real Ray head running Ray
//! Serve: the first deploy, a serve-config change applied in place, and a cluster upgrade in
//! which the serve Service never lacks ready endpoints.
//!
//! The controller reaches the local head through `--dashboard-url-override`, so every cluster
//! of the RayService talks to that one head; pods are marked Ready by a stand-in kubelet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use raygate_api::{RayCluster, RayService};
use raygate_e2e::hello_serve::{self, APP};
use raygate_e2e::ray_env::RayEnv;
use raygate_e2e::ray_head::{free_loopback_port, loopback_http_get};
use raygate_e2e::rayservice_status::{cluster_of, condition};
use raygate_e2e::wait::wait_until;
use serde_json::json;

const NS: &str = "default";
const NAME: &str = "hello";
/// The first deploy starts Serve on the head (up to ~20 s on a busy machine).
const TIMEOUT: Duration = Duration::from_secs(180);

fn serve_config(port: u16, app_dir: &str, message: &str) -> String {
    hello_serve::serve_config(port, app_dir, message, 1)
}

fn rayservice(config: &str, head_env: &str) -> String {
    rayservice_with(config, head_env, json!({}))
}

fn rayservice_with(config: &str, head_env: &str, extra: serde_json::Value) -> String {
    let mut service = hello_serve::rayservice(NS, NAME, config, head_env);
    if let (Some(spec), Some(extra)) = (service["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::to_string(&service).expect("JSON")
}

fn app_status(service: &RayService) -> Option<(String, String)> {
    let apps = service
        .status
        .as_ref()?
        .active_service_status
        .as_ref()?
        .application_statuses
        .as_ref()?;
    let hello = apps.get("hello")?;
    let deployment = hello
        .serve_deployment_statuses
        .as_ref()?
        .get("Hello")?
        .status
        .clone()?;
    Some((hello.status.clone()?, deployment))
}

/// Ready pods the Service's selector picks: what its endpoints would hold.
async fn ready_endpoints(pods: &Api<Pod>, services: &Api<Service>) -> Option<usize> {
    let service = services.get_opt("hello-serve-svc").await.ok()??;
    let selector = service.spec?.selector?;
    let selector: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let list = pods
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .ok()?;
    Some(
        list.items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count(),
    )
}

async fn http_answer(port: u16, wanted: &str) {
    wait_until(&format!("Serve answers {wanted:?}"), TIMEOUT, || async {
        match tokio::task::spawn_blocking(move || loopback_http_get(port, "/")).await {
            Ok(Ok((200, body))) if body == wanted => Some(()),
            _ => None,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_deploys_updates_in_place_upgrades_without_downtime_and_suspends() {
    let env = RayEnv::start(NS)
        .await
        .expect("control plane, raygate and a Ray head start (tests/controlplane/build.sh, tests/tools/install-ray.sh)");
    let app_dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(app_dir.path().join("raygate_hello.py"), APP).expect("write the app");
    let app_dir = app_dir.path().display().to_string();
    let port = free_loopback_port().expect("a free port");
    let services: Api<RayService> = Api::namespaced(env.client.clone(), NS);
    let clusters: Api<RayCluster> = Api::namespaced(env.client.clone(), NS);
    let apply = |yaml: String| env.apply(&yaml).expect("kubectl apply");

    // First deploy: a cluster, the config applied, the Services, Ready.
    apply(rayservice(&serve_config(port, &app_dir, "v1"), "a"));
    let ready = wait_until("the RayService Ready", TIMEOUT, || async {
        let service = services.get(NAME).await.expect("get the RayService");
        (condition(&service, "Ready").as_deref() == Some("True")).then_some(service)
    })
    .await;
    let first = cluster_of(&ready, false).expect("an active cluster");
    assert_eq!(
        app_status(&ready),
        Some(("RUNNING".to_string(), "HEALTHY".to_string()))
    );
    let status = ready.status.clone().unwrap_or_default();
    assert!(status.num_serve_endpoints.unwrap_or(0) >= 1);
    assert_eq!(status.service_status.as_deref(), Some("Running"));
    assert_eq!(
        condition(&ready, "UpgradeInProgress").as_deref(),
        Some("False")
    );
    let serve_svc: Api<Service> = Api::namespaced(env.client.clone(), NS);
    let selector = serve_svc
        .get("hello-serve-svc")
        .await
        .expect("the serve Service")
        .spec
        .and_then(|s| s.selector)
        .unwrap_or_default();
    assert_eq!(selector.get("ray.io/cluster"), Some(&first));
    assert_eq!(
        selector.get("ray.io/serve").map(String::as_str),
        Some("true")
    );
    serve_svc
        .get("hello-head-svc")
        .await
        .expect("the head Service");
    http_answer(port, "v1").await;

    // A serve-config change is applied in place: same cluster, new answer.
    apply(rayservice(&serve_config(port, &app_dir, "v2"), "a"));
    http_answer(port, "v2").await;
    let after = services.get(NAME).await.expect("get");
    assert_eq!(cluster_of(&after, false), Some(first.clone()));
    assert_eq!(
        cluster_of(&after, true),
        None,
        "no new cluster for a config change"
    );
    let listed = clusters.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1, "one cluster");

    // A cluster change: a new cluster comes up, takes over, and the old one goes away, while
    // the serve Service always selects ready pods.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), NS);
    let stop = Arc::new(AtomicBool::new(false));
    // Looks that got an answer: the watcher must be looking before the change and still
    // after it, however quickly the upgrade goes.
    let looked = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (pods, serve_svc) = (pods.clone(), serve_svc.clone());
        let (stop, looked) = (stop.clone(), looked.clone());
        tokio::spawn(async move {
            let mut gaps = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(ready) = ready_endpoints(&pods, &serve_svc).await {
                    if ready == 0 {
                        gaps.push(Instant::now());
                    }
                    looked.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            gaps
        })
    };
    let looks_since = |before: usize| {
        let looked = looked.clone();
        async move { (looked.load(Ordering::Relaxed) >= before + 2).then_some(()) }
    };
    wait_until("the endpoint watcher to look", TIMEOUT, || looks_since(0)).await;
    apply(rayservice(&serve_config(port, &app_dir, "v2"), "b"));
    let mut saw_pending = false;
    let deadline = Instant::now() + TIMEOUT;
    let upgraded = loop {
        let service = services.get(NAME).await.expect("get");
        saw_pending |= cluster_of(&service, true).is_some()
            && condition(&service, "UpgradeInProgress").as_deref() == Some("True");
        let active = cluster_of(&service, false);
        if active.is_some_and(|a| a != first) && cluster_of(&service, true).is_none() {
            break service;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the new cluster to take over"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let second = cluster_of(&upgraded, false).expect("active");
    assert!(saw_pending, "the upgrade went through a pending cluster");
    wait_until("the old cluster deleted", TIMEOUT, || async {
        clusters
            .get_opt(&first)
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    let after = looked.load(Ordering::Relaxed);
    wait_until("the endpoint watcher to look again", TIMEOUT, || {
        looks_since(after)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let gaps = watcher.await.expect("the endpoint watcher");
    assert!(
        gaps.is_empty(),
        "the serve Service had no ready endpoints {} times",
        gaps.len()
    );
    let selector = serve_svc
        .get("hello-serve-svc")
        .await
        .expect("the serve Service")
        .spec
        .and_then(|s| s.selector)
        .unwrap_or_default();
    assert_eq!(selector.get("ray.io/cluster"), Some(&second));
    http_answer(port, "v2").await;
    env.expect_event_reasons(
        "RayService",
        NAME,
        &[
            "CreatedRayCluster",
            "UpdatedServeApplications",
            "PromotedRayCluster",
            "DeletedRayCluster",
        ],
    );

    // Suspend: every cluster and both Services go, and the status says so.
    apply(rayservice_with(
        &serve_config(port, &app_dir, "v2"),
        "b",
        json!({"suspend": true}),
    ));
    let suspended = wait_until("the RayService Suspended", TIMEOUT, || async {
        let service = services.get(NAME).await.expect("get");
        (condition(&service, "Suspended").as_deref() == Some("True")).then_some(service)
    })
    .await;
    assert_eq!(condition(&suspended, "Ready").as_deref(), Some("False"));
    assert_eq!(cluster_of(&suspended, false), None);
    assert!(
        serve_svc
            .get_opt("hello-serve-svc")
            .await
            .expect("get")
            .is_none()
    );
    let listed = clusters.list(&ListParams::default()).await.expect("list");
    assert!(
        listed
            .items
            .iter()
            .all(|c| c.metadata.deletion_timestamp.is_some()),
        "every cluster is being deleted"
    );

    // Resume with the head kept out of the serve Service: a new cluster whose head serves
    // nothing, so no serve endpoints (there are no workers).
    apply(rayservice_with(
        &serve_config(port, &app_dir, "v2"),
        "b",
        json!({"suspend": false, "excludeHeadPodFromServeSvc": true}),
    ));
    let resumed = wait_until("an active cluster after resume", TIMEOUT, || async {
        let service = services.get(NAME).await.expect("get");
        let active = cluster_of(&service, false)?;
        (condition(&service, "Suspended").as_deref() == Some("False")
            && app_status(&service).is_some_and(|(app, _)| app == "RUNNING"))
        .then_some((service, active))
    })
    .await;
    let (_, third) = resumed;
    assert!(third != first && third != second, "a new cluster: {third}");
    let heads = pods
        .list(
            &ListParams::default().labels(&format!("ray.io/cluster={third},ray.io/node-type=head")),
        )
        .await
        .expect("list");
    assert!(!heads.items.is_empty());
    wait_until("the head out of the serve Service", TIMEOUT, || async {
        let service = services.get(NAME).await.expect("get");
        let heads = pods
            .list(
                &ListParams::default()
                    .labels(&format!("ray.io/cluster={third},ray.io/node-type=head")),
            )
            .await
            .expect("list");
        let excluded = heads
            .items
            .iter()
            .all(|p| p.labels().get("ray.io/serve").map(String::as_str) == Some("false"));
        let status = service.status.clone().unwrap_or_default();
        (excluded
            && status.num_serve_endpoints == Some(0)
            && condition(&service, "Ready").as_deref() == Some("False"))
        .then_some(())
    })
    .await;
}

/// KubeRay's `ray.io/initializing-timeout`: a RayService that doesn't become ready in time
/// gives up for good. Its pods are in a namespace the stand-in kubelet leaves alone, so they
/// never get ready (and nothing reaches the Ray head).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_that_never_get_ready_grow_in_place_or_time_out() {
    let env = RayEnv::start(NS)
        .await
        .expect("control plane, raygate and a Ray head start");
    env.kubectl_ok(&["create", "namespace", "stuck"], None)
        .expect("namespace");
    let mut service: serde_json::Value =
        serde_json::from_str(&rayservice("applications: []\n", "x")).expect("JSON");
    service["metadata"]["namespace"] = json!("stuck");
    service["metadata"]["annotations"] = json!({"ray.io/initializing-timeout": "5s"});
    env.apply(&service.to_string()).expect("applied");

    // Meanwhile, in another namespace: worker groups appended while the cluster comes up are
    // added to that cluster in place; no new cluster is prepared.
    env.kubectl_ok(&["create", "namespace", "growing"], None)
        .expect("namespace");
    let mut growing: serde_json::Value =
        serde_json::from_str(&rayservice("applications: []\n", "x")).expect("JSON");
    growing["metadata"]["namespace"] = json!("growing");
    env.apply(&growing.to_string()).expect("applied");
    let growing_services: Api<RayService> = Api::namespaced(env.client.clone(), "growing");
    let first = wait_until("a pending cluster", Duration::from_secs(60), || async {
        growing_services
            .get(NAME)
            .await
            .ok()?
            .status?
            .pending_service_status?
            .ray_cluster_name
    })
    .await;
    growing["spec"]["rayClusterConfig"]["workerGroupSpecs"] = json!([{
        "groupName": "extra", "replicas": 1, "minReplicas": 1, "maxReplicas": 1,
        "rayStartParams": {},
        "template": {"spec": {"containers": [{
            "name": "ray-worker", "image": "rayproject/ray:2.46.0",
            "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
        }]}},
    }]);
    env.apply(&growing.to_string())
        .expect("applied with a worker group");
    let growing_clusters: Api<RayCluster> = Api::namespaced(env.client.clone(), "growing");
    wait_until(
        "the worker group added in place",
        Duration::from_secs(60),
        || async {
            let cluster = growing_clusters.get(&first).await.ok()?;
            let groups = cluster.spec.worker_group_specs.unwrap_or_default();
            (groups.len() == 1 && groups[0].group_name == "extra").then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let names: Vec<String> = growing_clusters
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(
        names,
        vec![first.clone()],
        "no new cluster for appended groups"
    );
    let growing_events = env
        .kubectl_ok(&["get", "events", "-n", "growing", "-o", "json"], None)
        .expect("events");
    assert!(
        growing_events.contains("\"reason\": \"UpdatedRayCluster\""),
        "{growing_events}"
    );

    let services: Api<RayService> = Api::namespaced(env.client.clone(), "stuck");
    let given_up = wait_until(
        "Ready=False/InitializingTimeout",
        Duration::from_secs(60),
        || async {
            let service = services.get(NAME).await.ok()?;
            let ready = service
                .status
                .as_ref()?
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")?
                .clone();
            (ready.reason == "InitializingTimeout").then_some((service, ready))
        },
    )
    .await;
    let (service, ready) = given_up;
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("not ready within the 5s"),
        "{}",
        ready.message
    );
    let status = service.status.unwrap_or_default();
    assert!(status.active_service_status.is_none() && status.pending_service_status.is_none());
    let events = env
        .kubectl_ok(&["get", "events", "-n", "stuck", "-o", "json"], None)
        .expect("events");
    assert!(
        events.contains("\"reason\": \"RayServiceInitializingTimeout\""),
        "{events}"
    );
    // Its cluster goes after rayClusterDeletionDelaySeconds (3 s here), and none comes back.
    let clusters: Api<RayCluster> = Api::namespaced(env.client.clone(), "stuck");
    wait_until("the cluster deleted", Duration::from_secs(60), || async {
        clusters
            .list(&ListParams::default())
            .await
            .ok()
            .filter(|l| l.items.is_empty())
            .map(drop)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = clusters.list(&ListParams::default()).await.expect("list");
    assert!(
        after.items.is_empty(),
        "a timed-out RayService creates no new cluster"
    );
}
