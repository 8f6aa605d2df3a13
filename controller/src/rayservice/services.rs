//! The RayService's own Services: `<rayservice>-head-svc` and `<rayservice>-serve-svc`. They
//! outlive any one cluster: an upgrade only moves their selector from the old cluster to the
//! new one, so clients keep one name and the ClusterIP never changes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use raygate_api::labels::{RAY_CLUSTER, RAY_IDENTIFIER, RAY_SERVE};
use raygate_api::{RayCluster, RayService};

use super::plan::originated_from;
use crate::names;

const DEFAULT_SERVE_PORT: i32 = 8000;

pub fn head_service_name(service: &RayService) -> String {
    names::head_service_name(&service.name_any())
}

pub fn serve_service_name(service: &RayService) -> String {
    service
        .spec
        .serve_service
        .as_ref()
        .and_then(|s| s.metadata.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| names::check_name(&format!("{}-serve-svc", service.name_any())))
}

pub fn serve_selector(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (RAY_CLUSTER.to_string(), cluster.to_string()),
        (RAY_SERVE.to_string(), "true".to_string()),
    ])
}

fn metadata(service: &RayService, name: String, extra: (&str, String)) -> ObjectMeta {
    let mut labels = originated_from(service);
    labels.insert(extra.0.to_string(), extra.1);
    ObjectMeta {
        name: Some(name),
        namespace: service.namespace(),
        labels: Some(labels),
        owner_references: service.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// A copy of the serving cluster's head Service, named for the RayService.
pub fn head_service(service: &RayService, cluster: &RayCluster) -> Service {
    let meta = metadata(
        service,
        head_service_name(service),
        (RAY_IDENTIFIER, format!("{}-head", service.name_any())),
    );
    crate::services::owner_head_service(
        cluster,
        head_service_name(service),
        meta.labels.unwrap_or_default(),
        service.controller_owner_ref(&()),
    )
}

pub fn serve_port(cluster: &RayCluster) -> i32 {
    cluster
        .spec
        .head_group_spec
        .template
        .spec
        .as_ref()
        .and_then(|pod| pod.containers.first())
        .and_then(|c| c.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some("serve")))
        .map_or(DEFAULT_SERVE_PORT, |p| p.container_port)
}

/// The Service that carries Serve traffic: every pod of the serving cluster labelled
/// `ray.io/serve=true`, with the user's `serveService` ports and metadata merged in.
pub fn serve_service(service: &RayService, cluster: &RayCluster) -> Service {
    let custom = service.spec.serve_service.clone().unwrap_or_default();
    let mut meta = metadata(
        service,
        serve_service_name(service),
        (RAY_SERVE, format!("{}-serve", service.name_any())),
    );
    if let Some(labels) = custom.metadata.labels {
        meta.labels.get_or_insert_with(BTreeMap::new).extend(
            labels
                .into_iter()
                .filter(|(k, _)| !names::is_protected_label(k)),
        );
    }
    meta.annotations = custom.metadata.annotations;
    let mut spec: ServiceSpec = custom.spec.unwrap_or_default();
    spec.selector = Some(serve_selector(&cluster.name_any()));
    let ports = spec.ports.get_or_insert_with(Vec::new);
    if !ports.iter().any(|p| p.name.as_deref() == Some("serve")) {
        ports.push(ServicePort {
            name: Some("serve".to_string()),
            port: serve_port(cluster),
            ..ServicePort::default()
        });
    }
    Service {
        metadata: meta,
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use raygate_api::labels::RAY_NODE_TYPE;
    use serde_json::json;

    /// A RayService whose head names a `serve` port (9000); also used by `gateway`'s tests.
    pub(in crate::rayservice) fn service() -> RayService {
        serde_json::from_value(json!({
            "apiVersion": "ray.io/v1", "kind": "RayService",
            "metadata": {"name": "svc", "namespace": "ns", "uid": "u-1"},
            "spec": {"rayClusterConfig": {"headGroupSpec": {"template": {"spec": {"containers": [
                {"name": "ray-head", "image": "rayproject/ray:2.46.0",
                 "ports": [{"name": "serve", "containerPort": 9000}]}
            ]}}}}},
        }))
        .expect("a RayService")
    }

    #[test]
    fn the_serve_service_selects_serving_pods_of_one_cluster() {
        let svc = service();
        let cluster = super::super::plan::cluster_for_service(&svc, "svc-aaaaa");
        let serve = serve_service(&svc, &cluster);
        assert_eq!(serve.name_any(), "svc-serve-svc");
        let spec = serve.spec.expect("spec");
        assert_eq!(spec.selector, Some(serve_selector("svc-aaaaa")));
        assert_eq!(spec.ports.expect("ports")[0].port, 9000);
        assert_eq!(
            serve.metadata.owner_references.expect("owner")[0].kind,
            "RayService"
        );
        let head = head_service(&svc, &cluster);
        assert_eq!(head.name_any(), "svc-head-svc");
        let selector = head.spec.and_then(|s| s.selector).unwrap_or_default();
        assert_eq!(selector[RAY_CLUSTER], "svc-aaaaa");
        assert_eq!(selector[RAY_NODE_TYPE], "head");
        assert_eq!(
            head.metadata.labels.unwrap_or_default()[RAY_IDENTIFIER],
            "svc-head"
        );
    }
}
