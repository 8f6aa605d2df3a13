//! A RayService with `upgradeStrategy: NewClusterWithIncrementalUpgrade`, as a user sees it
//! against a real API server with the Gateway API's CRDs and a real Ray head running Serve.
//!
//! The test plays the Gateway controller (it marks the Gateway and HTTPRoute accepted, as the
//! stand-in kubelet marks pods ready). One Ray head stands in for every cluster of the
//! RayService (`--dashboard-url-override`), so what Serve answers over HTTP says nothing about
//! which cluster serves; the test checks what raygate decides — route weights, Serve's
//! `target_capacity` per cluster, the order of steps — and a capacity step is only recorded
//! after the real Serve accepted it.

use std::time::{Duration, Instant};

use kube::api::DynamicObject;
use kube::{Api, ResourceExt};
use raygate_api::{RayCluster, RayService};
use raygate_e2e::gateway_api::{
    accept_gateway, accept_route, gateways, http_routes, install_gateway_api_crds,
};
use raygate_e2e::hello_serve;
use raygate_e2e::ray_env::RayEnv;
use raygate_e2e::ray_head::{free_loopback_port, loopback_http_get};
use raygate_e2e::rayservice_status::{cluster_of, condition, side};
use raygate_e2e::wait::wait_until;
use serde_json::json;

const NS: &str = "default";
const NAME: &str = "hello";
const TIMEOUT: Duration = Duration::from_secs(180);

fn rayservice(port: u16, app_dir: &str, head_env: &str) -> String {
    let strategy = json!({
        "type": "NewClusterWithIncrementalUpgrade",
        "clusterUpgradeOptions": {
            "maxSurgePercent": 50, "stepSizePercent": 25, "intervalSeconds": 1,
            "gatewayClassName": "raygate-test",
        },
    });
    rayservice_with(port, app_dir, head_env, strategy)
}

/// The Serve tests' RayService with an upgrade strategy and the autoscaler (which
/// incremental upgrades require); two replicas, so capacity steps change their number.
fn rayservice_with(
    port: u16,
    app_dir: &str,
    head_env: &str,
    strategy: serde_json::Value,
) -> String {
    let config = hello_serve::serve_config(port, app_dir, "hello", 2);
    let mut service = hello_serve::rayservice(NS, NAME, &config, head_env);
    service["spec"]["upgradeStrategy"] = strategy;
    service["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] = json!(true);
    serde_json::to_string(&service).expect("JSON")
}

/// The HTTPRoute's backends: (Service, weight).
async fn route_backends(routes: &Api<DynamicObject>) -> Vec<(String, i64)> {
    let Some(route) = routes
        .get_opt("hello-httproute")
        .await
        .expect("get the HTTPRoute")
    else {
        return Vec::new();
    };
    route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["name"].as_str().unwrap_or_default().to_string(),
                b["weight"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

/// (active capacity, active traffic, pending capacity, pending traffic) from the status.
fn split(service: &RayService) -> (Option<i32>, Option<i32>, Option<i32>, Option<i32>) {
    let active = side(service, false);
    let pending = side(service, true);
    (
        active.and_then(|s| s.target_capacity),
        active.and_then(|s| s.traffic_routed_percent),
        pending.and_then(|s| s.target_capacity),
        pending.and_then(|s| s.traffic_routed_percent),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_moves_in_steps_through_the_gateway_rolls_back_and_switches_off() {
    let env = RayEnv::start(NS)
        .await
        .expect("control plane, raygate and a Ray head start (tests/controlplane/build.sh, tests/tools/install-ray.sh)");
    install_gateway_api_crds(&env.cp)
        .expect("the Gateway API CRDs install (tests/gatewayapi/fetch-crds.sh)");
    let app_dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(app_dir.path().join("raygate_hello.py"), hello_serve::APP)
        .expect("write the app");
    let app_dir = app_dir.path().display().to_string();
    let port = free_loopback_port().expect("a free port");
    let services: Api<RayService> = Api::namespaced(env.client.clone(), NS);
    let clusters: Api<RayCluster> = Api::namespaced(env.client.clone(), NS);
    let serve_services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(env.client.clone(), NS);
    let routes = http_routes(&env.client, NS);
    let apply = |head_env: &str| {
        env.apply(&rayservice(port, &app_dir, head_env))
            .expect("kubectl apply")
    };

    // First deploy: Ready on one cluster, all of whose traffic the route sends to its own
    // serve Service.
    apply("a");
    let ready = wait_until("the RayService Ready", TIMEOUT, || async {
        let service = services.get(NAME).await.expect("get the RayService");
        (condition(&service, "Ready").as_deref() == Some("True")).then_some(service)
    })
    .await;
    let first = cluster_of(&ready, false).expect("an active cluster");
    let first_svc = format!("{first}-serve-svc");
    let gateway = wait_until("the Gateway", TIMEOUT, || async {
        gateways(&env.client, NS)
            .get_opt("hello-gateway")
            .await
            .expect("get the Gateway")
    })
    .await;
    assert_eq!(gateway.data["spec"]["gatewayClassName"], "raygate-test");
    assert_eq!(gateway.data["spec"]["listeners"][0]["port"], 80);
    assert_eq!(gateway.owner_references()[0].name, NAME);
    let own = serve_services
        .get(&first_svc)
        .await
        .expect("the cluster's own serve Service");
    assert_eq!(own.owner_references()[0].name, first);
    wait_until("the route on the first cluster", TIMEOUT, || async {
        (route_backends(&routes).await == [(first_svc.clone(), 100)]).then_some(())
    })
    .await;

    // A cluster change: a new cluster comes up at no capacity, and nothing moves while the
    // Gateway isn't programmed.
    apply("b");
    let upgrading = wait_until("a pending cluster", TIMEOUT, || async {
        let service = services.get(NAME).await.expect("get");
        cluster_of(&service, true)
            .filter(|_| condition(&service, "UpgradeInProgress").as_deref() == Some("True"))
            .map(|pending| (service, pending))
    })
    .await;
    let (_, second) = upgrading;
    let second_svc = format!("{second}-serve-svc");
    wait_until("the route with both clusters", TIMEOUT, || async {
        (route_backends(&routes).await == [(first_svc.clone(), 100), (second_svc.clone(), 0)])
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let waiting = services.get(NAME).await.expect("get");
    assert_eq!(
        split(&waiting).2,
        Some(0),
        "no capacity for the new cluster before the Gateway is programmed"
    );
    assert_eq!(
        route_backends(&routes).await,
        [(first_svc.clone(), 100), (second_svc.clone(), 0)]
    );

    // The Gateway controller accepts both: capacity surges, traffic follows in steps, the old
    // cluster drains, and the new one takes over.
    accept_gateway(&env.client, NS, "hello-gateway")
        .await
        .expect("accept the Gateway");
    accept_route(&env.client, NS, "hello-httproute", "hello-gateway")
        .await
        .expect("accept the HTTPRoute");
    let mut traffic_seen = Vec::new();
    let mut not_ready = 0;
    let deadline = Instant::now() + TIMEOUT;
    let promoted = loop {
        let service = services.get(NAME).await.expect("get");
        if cluster_of(&service, false).as_deref() == Some(second.as_str())
            && cluster_of(&service, true).is_none()
        {
            break service;
        }
        if condition(&service, "Ready").as_deref() != Some("True") {
            not_ready += 1;
        }
        let (active_capacity, _, pending_capacity, pending_traffic) = split(&service);
        if let (Some(a), Some(p), Some(t)) = (active_capacity, pending_capacity, pending_traffic) {
            assert!(t <= p, "traffic {t} beyond the new cluster's capacity {p}");
            assert!(a + p >= 100, "less than one cluster's capacity: {a} + {p}");
            if traffic_seen.last() != Some(&t) {
                traffic_seen.push(t);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no promotion; traffic so far {traffic_seen:?}, status {:?}",
            service.status
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    eprintln!("pending traffic seen during the upgrade: {traffic_seen:?}");
    assert_eq!(
        not_ready, 0,
        "the RayService stayed Ready during the upgrade"
    );
    assert!(
        traffic_seen.windows(2).all(|w| w[0] < w[1]),
        "traffic only moves forward: {traffic_seen:?}"
    );
    assert!(
        traffic_seen
            .iter()
            .all(|t| [0, 25, 50, 75, 100].contains(t)),
        "steps of 25: {traffic_seen:?}"
    );
    assert!(
        traffic_seen.len() >= 3,
        "traffic moved in steps: {traffic_seen:?}"
    );
    assert_eq!(split(&promoted).0, Some(100), "{:?}", promoted.status);
    wait_until("the route on the new cluster only", TIMEOUT, || async {
        (route_backends(&routes).await == [(second_svc.clone(), 100)]).then_some(())
    })
    .await;
    wait_until("the old cluster deleted", TIMEOUT, || async {
        clusters
            .get_opt(&first)
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    let selector = serve_services
        .get("hello-serve-svc")
        .await
        .expect("the RayService's serve Service")
        .spec
        .and_then(|s| s.selector)
        .unwrap_or_default();
    assert_eq!(selector.get("ray.io/cluster"), Some(&second));
    // Serve itself holds the target_capacity raygate sent last.
    let (code, body) = loopback_http_get(env.head.dashboard_port(), "/api/serve/applications/")
        .expect("Serve's status from the dashboard");
    assert_eq!(code, 200, "{body}");
    let details: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        details["target_capacity"].is_number(),
        "Serve runs with a target_capacity: {details}"
    );

    // Mid-upgrade, the user reverts: traffic and capacity go back to the active cluster, and
    // the new cluster is dropped without ever taking over.
    apply("c");
    let third = wait_until("the next upgrade under way", TIMEOUT, || async {
        let service = services.get(NAME).await.expect("get");
        let pending = cluster_of(&service, true)?;
        (split(&service).3.unwrap_or(0) >= 25).then_some(pending)
    })
    .await;
    apply("b");
    wait_until("a rollback", TIMEOUT, || async {
        let service = services.get(NAME).await.expect("get");
        (condition(&service, "RollbackInProgress").as_deref() == Some("True")).then_some(())
    })
    .await;
    let rolled_back = wait_until("the rollback complete", TIMEOUT, || async {
        let service = services.get(NAME).await.expect("get");
        (cluster_of(&service, true).is_none()
            && condition(&service, "RollbackInProgress").is_none())
        .then_some(service)
    })
    .await;
    assert_eq!(cluster_of(&rolled_back, false), Some(second.clone()));
    assert_eq!(split(&rolled_back).0, Some(100));
    assert_eq!(split(&rolled_back).1, Some(100));
    assert_eq!(
        condition(&rolled_back, "UpgradeInProgress").as_deref(),
        Some("False")
    );
    wait_until("the route back on one cluster", TIMEOUT, || async {
        (route_backends(&routes).await == [(second_svc.clone(), 100)]).then_some(())
    })
    .await;
    wait_until("the dropped cluster deleted", TIMEOUT, || async {
        clusters
            .get_opt(&third)
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;

    // Back to blue/green upgrades: the Gateway API objects go, and Serve runs at full
    // capacity again (no target_capacity).
    env.apply(&rayservice_with(
        port,
        &app_dir,
        "b",
        json!({"type": "NewCluster"}),
    ))
    .expect("kubectl apply");
    let plain = wait_until("the incremental state gone", TIMEOUT, || async {
        let service = services.get(NAME).await.expect("get");
        (split(&service) == (None, None, None, None)).then_some(service)
    })
    .await;
    assert_eq!(cluster_of(&plain, false), Some(second.clone()));
    wait_until("the Gateway and HTTPRoute deleted", TIMEOUT, || async {
        let gateway = gateways(&env.client, NS)
            .get_opt("hello-gateway")
            .await
            .expect("get");
        let route = routes.get_opt("hello-httproute").await.expect("get");
        (gateway.is_none() && route.is_none()).then_some(())
    })
    .await;
    let (_, body) = loopback_http_get(env.head.dashboard_port(), "/api/serve/applications/")
        .expect("Serve's status from the dashboard");
    let details: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        details["target_capacity"].is_null(),
        "Serve runs at full capacity: {details}"
    );

    env.expect_event_reasons(
        "RayService",
        NAME,
        &[
            "CreatedGateway",
            "CreatedHTTPRoute",
            "UpdatedHTTPRoute",
            "UpdatedServeTargetCapacity",
            "PromotedRayCluster",
            "RolledBack",
        ],
    );
}
