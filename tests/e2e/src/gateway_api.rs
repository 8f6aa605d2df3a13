//! The Gateway API's CRDs (from the sigs.k8s.io/gateway-api module, fetched by
//! tests/gatewayapi/fetch-crds.sh), and a stand-in Gateway controller: the tests say when a
//! Gateway and its HTTPRoute are accepted, as they say when pods are ready.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::ControlPlane;
use crate::crd_dir::install_crd_dir;

/// Directory with the Gateway API's standard CRDs.
pub const CRD_DIR_ENV: &str = "RAYGATE_GATEWAY_API_CRDS";

fn crd_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os(CRD_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/gateway-api/crds"),
    };
    ensure!(
        dir.join("gateway.networking.k8s.io_httproutes.yaml")
            .is_file(),
        "no Gateway API CRDs in {} (run tests/gatewayapi/fetch-crds.sh, or set ${CRD_DIR_ENV})",
        dir.display()
    );
    Ok(dir)
}

pub fn install_gateway_api_crds(cp: &ControlPlane) -> Result<()> {
    install_crd_dir(
        cp,
        "the Gateway API",
        &crd_dir()?,
        &[
            "gateways.gateway.networking.k8s.io",
            "httproutes.gateway.networking.k8s.io",
        ],
    )
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

pub fn gateways(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &resource("Gateway", "gateways"))
}

pub fn http_routes(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("HTTPRoute", "httproutes"),
    )
}

fn condition(type_: &str, generation: Option<i64>) -> serde_json::Value {
    json!({
        "type": type_, "status": "True", "reason": type_, "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": generation.unwrap_or(1),
    })
}

/// What a Gateway controller writes once it serves the Gateway: Accepted and Programmed.
pub async fn accept_gateway(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let api = gateways(client, namespace);
    let gateway = api.get(name).await.context("reading the Gateway")?;
    let generation = gateway.metadata.generation;
    let status = json!({"status": {"conditions": [
        condition("Accepted", generation), condition("Programmed", generation),
    ]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .context("accepting the Gateway")?;
    Ok(())
}

/// What a Gateway controller writes once the route is attached: Accepted and ResolvedRefs.
pub async fn accept_route(
    client: &Client,
    namespace: &str,
    name: &str,
    gateway: &str,
) -> Result<()> {
    let api = http_routes(client, namespace);
    let route = api.get(name).await.context("reading the HTTPRoute")?;
    let generation = route.metadata.generation;
    let status = json!({"status": {"parents": [{
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway, "namespace": namespace},
        "controllerName": "example.com/raygate-test-gateway",
        "conditions": [condition("Accepted", generation), condition("ResolvedRefs", generation)],
    }]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .context("accepting the HTTPRoute")?;
    Ok(())
}
