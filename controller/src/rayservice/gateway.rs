//! The Gateway API objects of an incremental upgrade: the RayService's Gateway
//! `<rayservice>-gateway`, its HTTPRoute `<rayservice>-httproute` splitting traffic by weight
//! over each cluster's own serve Service `<cluster>-serve-svc`, and whether the Gateway
//! controller has accepted them.
//!
//! The Gateway API types aren't in k8s-openapi; the objects are handled as JSON. Comparisons
//! look only at the fields raygate sets, because the API server fills in defaults (allowed
//! routes, backend kinds, weights) that would otherwise read as a difference on every pass.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Resource, ResourceExt};
use raygate_api::labels::RAY_SERVE;
use raygate_api::{RayCluster, RayService};
use serde_json::{Value, json};

use super::plan::originated_from;
use super::services::{serve_port, serve_selector};
use crate::names;

const GROUP: &str = "gateway.networking.k8s.io";
const LISTENER: &str = "http";
const LISTENER_PORT: i32 = 80;

pub fn gateway_resource() -> ApiResource {
    resource("Gateway", "gateways")
}

pub fn route_resource() -> ApiResource {
    resource("HTTPRoute", "httproutes")
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.to_string(),
        version: "v1".to_string(),
        api_version: format!("{GROUP}/v1"),
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

pub fn gateway_name(service: &RayService) -> String {
    names::check_name(&format!("{}-gateway", service.name_any()))
}

pub fn route_name(service: &RayService) -> String {
    names::check_name(&format!("{}-httproute", service.name_any()))
}

/// One cluster's own serve Service, which the HTTPRoute sends that cluster's share to.
pub fn cluster_serve_service_name(cluster: &str) -> String {
    names::check_name(&format!("{cluster}-serve-svc"))
}

fn metadata(service: &RayService, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: service.namespace(),
        labels: Some(originated_from(service)),
        owner_references: service.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

fn object(resource: &ApiResource, metadata: ObjectMeta, spec: Value) -> DynamicObject {
    let mut object = DynamicObject::new(metadata.name.as_deref().unwrap_or_default(), resource);
    object.metadata = metadata;
    object.data = json!({ "spec": spec });
    object
}

/// One HTTP listener on port 80 of the class the RayService names.
pub fn gateway(service: &RayService, class: &str) -> DynamicObject {
    let spec = json!({
        "gatewayClassName": class,
        "listeners": [{"name": LISTENER, "protocol": "HTTP", "port": LISTENER_PORT}],
    });
    object(
        &gateway_resource(),
        metadata(service, gateway_name(service)),
        spec,
    )
}

/// Where the route sends traffic: a cluster's serve Service, its port and its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub service: String,
    pub port: i32,
    pub weight: i32,
}

impl Backend {
    pub fn of(cluster: &RayCluster, weight: i32) -> Self {
        Backend {
            service: cluster_serve_service_name(&cluster.name_any()),
            port: serve_port(cluster),
            weight,
        }
    }
}

/// Everything under `/` of the Gateway, split over the backends by weight.
pub fn http_route(service: &RayService, backends: &[Backend]) -> DynamicObject {
    let namespace = service.namespace().unwrap_or_default();
    let refs: Vec<Value> = backends
        .iter()
        .map(|b| {
            json!({
                "group": "", "kind": "Service", "name": b.service, "namespace": namespace,
                "port": b.port, "weight": b.weight,
            })
        })
        .collect();
    let spec = json!({
        "parentRefs": [{
            "group": GROUP, "kind": "Gateway", "name": gateway_name(service), "namespace": namespace,
        }],
        "rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": refs,
        }],
    });
    object(
        &route_resource(),
        metadata(service, route_name(service)),
        spec,
    )
}

/// The part of a Gateway's spec raygate sets.
fn gateway_view(spec: &Value) -> Value {
    let listeners: Vec<Value> = spec["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| json!([l["name"], l["protocol"], l["port"]]))
        .collect();
    json!([spec["gatewayClassName"], listeners])
}

/// The part of an HTTPRoute's spec raygate sets (a missing weight is 1, the API's default).
fn route_view(spec: &Value) -> Value {
    let parents: Vec<Value> = spec["parentRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| json!([p["name"], p["namespace"]]))
        .collect();
    let rules: Vec<Value> = spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| {
            let backends: Vec<Value> = rule["backendRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| json!([b["name"], b["port"], b["weight"].as_i64().unwrap_or(1)]))
                .collect();
            json!([rule["matches"][0]["path"]["value"], backends])
        })
        .collect();
    json!([parents, rules])
}

/// The weights the route gives each backend Service now.
pub fn route_weights(route: &DynamicObject) -> Vec<(String, i32)> {
    route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            let weight = b["weight"].as_i64().unwrap_or(1);
            Some((b["name"].as_str()?.to_string(), i32::try_from(weight).ok()?))
        })
        .collect()
}

fn condition_true(conditions: &Value, type_: &str) -> bool {
    conditions
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

/// The Gateway controller accepted and programmed the Gateway.
pub fn gateway_ready(gateway: &DynamicObject) -> bool {
    let conditions = &gateway.data["status"]["conditions"];
    condition_true(conditions, "Accepted") && condition_true(conditions, "Programmed")
}

/// The Gateway controller attached the route to the Gateway and found its backends.
pub fn route_ready(route: &DynamicObject, gateway: &str, namespace: &str) -> bool {
    route.data["status"]["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["parentRef"]["name"] == gateway)
        .filter(|p| {
            p["parentRef"]["namespace"]
                .as_str()
                .is_none_or(|ns| ns == namespace)
        })
        .any(|p| {
            condition_true(&p["conditions"], "Accepted")
                && condition_true(&p["conditions"], "ResolvedRefs")
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

/// Creates the object, or puts raygate's spec back when the fields it sets differ. `existing`
/// is the object as just read (`None`: not there).
pub async fn ensure(
    api: &Api<DynamicObject>,
    existing: Option<DynamicObject>,
    desired: &DynamicObject,
) -> Result<(DynamicObject, Change), kube::Error> {
    let view = match desired.types.as_ref().map(|t| t.kind.as_str()) {
        Some("Gateway") => gateway_view,
        _ => route_view,
    };
    let name = desired.name_any();
    match existing {
        None => {
            let created = api.create(&PostParams::default(), desired).await?;
            Ok((created, Change::Created))
        }
        Some(existing) if view(&existing.data["spec"]) == view(&desired.data["spec"]) => {
            Ok((existing, Change::Unchanged))
        }
        Some(mut existing) => {
            existing.data["spec"] = desired.data["spec"].clone();
            let updated = api
                .replace(&name, &PostParams::default(), &existing)
                .await?;
            Ok((updated, Change::Updated))
        }
    }
}

/// A cluster's own serve Service: its pods that serve, on the serve port. It belongs to the
/// cluster and goes with it.
pub fn cluster_serve_service(service: &RayService, cluster: &RayCluster) -> Service {
    let cluster_name = cluster.name_any();
    let mut labels = originated_from(service);
    labels.insert(RAY_SERVE.to_string(), format!("{cluster_name}-serve"));
    Service {
        metadata: ObjectMeta {
            name: Some(cluster_serve_service_name(&cluster_name)),
            namespace: cluster.namespace(),
            labels: Some(labels),
            owner_references: cluster.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(serve_selector(&cluster_name)),
            ports: Some(vec![ServicePort {
                name: Some("serve".to_string()),
                port: serve_port(cluster),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rayservice::services::tests::service;

    fn cluster(name: &str) -> RayCluster {
        let mut cluster = super::super::plan::cluster_for_service(&service(), name);
        cluster.metadata.uid = Some(format!("uid-{name}"));
        cluster
    }

    #[test]
    fn the_route_splits_traffic_over_each_clusters_serve_service() {
        let backends = [
            Backend::of(&cluster("svc-a"), 75),
            Backend::of(&cluster("svc-b"), 25),
        ];
        let route = http_route(&service(), &backends);
        assert_eq!(route.name_any(), "svc-httproute");
        assert_eq!(
            route_weights(&route),
            [
                ("svc-a-serve-svc".to_string(), 75),
                ("svc-b-serve-svc".to_string(), 25)
            ]
        );
        let refs = &route.data["spec"]["rules"][0]["backendRefs"];
        assert_eq!(refs[0]["port"], 9000, "the cluster's serve port");
        assert_eq!(route.data["spec"]["parentRefs"][0]["name"], "svc-gateway");
        assert_eq!(route.owner_references()[0].name, "svc");
    }

    #[test]
    fn api_server_defaults_are_not_a_difference_but_weights_are() {
        let desired = http_route(&service(), &[Backend::of(&cluster("svc-a"), 100)]);
        let mut stored = desired.data["spec"].clone();
        stored["rules"][0]["backendRefs"][0]["extra"] = json!("defaulted");
        stored["parentRefs"][0]["sectionName"] = json!("http");
        assert_eq!(route_view(&stored), route_view(&desired.data["spec"]));
        stored["rules"][0]["backendRefs"][0]["weight"] = json!(90);
        assert_ne!(route_view(&stored), route_view(&desired.data["spec"]));

        let gateway = gateway(&service(), "istio");
        let mut stored = gateway.data["spec"].clone();
        stored["listeners"][0]["allowedRoutes"] = json!({"namespaces": {"from": "Same"}});
        assert_eq!(gateway_view(&stored), gateway_view(&gateway.data["spec"]));
        stored["gatewayClassName"] = json!("other");
        assert_ne!(gateway_view(&stored), gateway_view(&gateway.data["spec"]));
    }

    #[test]
    fn readiness_needs_every_condition_the_gateway_controller_sets() {
        let mut gateway = gateway(&service(), "istio");
        assert!(!gateway_ready(&gateway));
        gateway.data["status"] = json!({"conditions": [
            {"type": "Accepted", "status": "True"}, {"type": "Programmed", "status": "False"}]});
        assert!(!gateway_ready(&gateway));
        gateway.data["status"]["conditions"][1]["status"] = json!("True");
        assert!(gateway_ready(&gateway));

        let mut route = http_route(&service(), &[]);
        route.data["status"] = json!({"parents": [{
            "parentRef": {"name": "svc-gateway", "namespace": "ns"},
            "conditions": [{"type": "Accepted", "status": "True"},
                           {"type": "ResolvedRefs", "status": "True"}],
        }]});
        assert!(route_ready(&route, "svc-gateway", "ns"));
        assert!(!route_ready(&route, "other-gateway", "ns"));
        route.data["status"]["parents"][0]["conditions"][1]["status"] = json!("False");
        assert!(!route_ready(&route, "svc-gateway", "ns"));
    }

    #[test]
    fn each_cluster_has_its_own_serve_service_owned_by_it() {
        let svc = cluster_serve_service(&service(), &cluster("svc-a"));
        assert_eq!(svc.name_any(), "svc-a-serve-svc");
        assert_eq!(svc.owner_references()[0].name, "svc-a");
        let spec = svc.spec.unwrap_or_default();
        assert_eq!(spec.selector, Some(serve_selector("svc-a")));
        assert_eq!(spec.ports.unwrap_or_default()[0].port, 9000);
    }
}
