//! One pass of an incremental upgrade against the cluster: each cluster's serve Service, the
//! Gateway and HTTPRoute, Serve's `target_capacity` on the cluster whose turn it is, and the
//! traffic weights, all recorded in the RayService's status. The decisions are
//! [`super::incremental`]'s.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, DynamicObject};
use kube::{Api, ResourceExt};
use raygate_api::rayservice::RayServiceStatus;
use raygate_api::{RayCluster, RayServiceStatuses};
use serde_json::json;

use super::gateway::{self, Backend, Change};
use super::incremental::{self, Options, Side, Split};
use super::plan;
use super::reconcile::{Io, SERVE_PUT_TIMEOUT};
use crate::error::Error;
use crate::status::{HEAD_POD_READY, condition_is_true};

/// On a cluster of an incremental upgrade: the serve config last applied to it (without
/// `target_capacity`), so its capacity can be changed later even after `serveConfigV2` moved
/// on to the next version.
pub const SERVE_CONFIG: &str = "raygate.io/serve-config";
/// Configs larger than this aren't kept on the cluster (annotations share a 256 KiB budget);
/// capacity changes then send the RayService's current config.
const MAX_KEPT_CONFIG: usize = 64 * 1024;

/// The annotation that keeps the applied config, when it fits.
fn kept_config(config: &serde_json::Value) -> Option<String> {
    let text = config.to_string();
    (text.len() <= MAX_KEPT_CONFIG).then_some(text)
}

/// The clusters of a pass as the rest of the reconcile found them.
pub struct Clusters<'a> {
    pub active: Option<&'a RayCluster>,
    pub pending: Option<&'a RayCluster>,
    pub rolling_back: bool,
    /// The pending cluster's applications all run.
    pub pending_running: bool,
}

/// The Gateway API part of a pass; the split after this pass's changes, for promotion.
/// Failures of the Gateway API objects are reported as events and stall the upgrade, never the
/// RayService: traffic stays where it is.
pub async fn pass(
    io: &Io<'_>,
    options: &Options,
    status: &mut RayServiceStatuses,
    clusters: Clusters<'_>,
    now: Timestamp,
) -> Result<Split, Error> {
    let Clusters {
        active,
        pending,
        rolling_back,
        pending_running,
    } = clusters;
    for cluster in [active, pending].into_iter().flatten() {
        ensure_cluster_serve_service(io, cluster).await?;
    }
    let split = Split::of(
        status.active_service_status.as_ref(),
        status.pending_service_status.as_ref(),
    );
    let Some(active) = active else {
        return Ok(split);
    };
    let namespace = io.namespace.clone();
    let gateways: Api<DynamicObject> = Api::namespaced_with(
        io.ctx.client.clone(),
        &namespace,
        &gateway::gateway_resource(),
    );
    let routes: Api<DynamicObject> = Api::namespaced_with(
        io.ctx.client.clone(),
        &namespace,
        &gateway::route_resource(),
    );
    let desired = gateway::gateway(io.service, &options.gateway_class);
    let existing = gateways.get_opt(&desired.name_any()).await;
    let Some(gateway) = ensure(io, &gateways, existing, desired).await else {
        return Ok(split);
    };
    let gateway_name = gateway.name_any();
    // Read once: for its readiness now, and as the object to update below.
    let route = routes.get_opt(&gateway::route_name(io.service)).await;
    let route_ready = route
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .is_some_and(|r| gateway::route_ready(r, &gateway_name, &namespace));

    let mut split = split;
    if let Some(pending) = pending
        && gateway::gateway_ready(&gateway)
        && route_ready
        && let Some((side, goal)) = incremental::next_capacity(split, options, rolling_back)
    {
        let cluster = match side {
            Side::Active => active,
            Side::Pending => pending,
        };
        let leaving = rolling_back && side == Side::Pending;
        if set_capacity(io, cluster, goal, leaving).await {
            let entry = match side {
                Side::Active => &mut status.active_service_status,
                Side::Pending => &mut status.pending_service_status,
            };
            entry
                .get_or_insert_with(RayServiceStatus::default)
                .target_capacity = Some(goal);
            match side {
                Side::Active => split.active_capacity = goal,
                Side::Pending => split.pending_capacity = goal,
            }
        }
    }

    let (active_weight, pending_weight) = match pending {
        Some(_) => {
            let receiving = if rolling_back {
                status.active_service_status.as_ref()
            } else {
                status.pending_service_status.as_ref()
            };
            let last_moved = receiving
                .and_then(|s| s.last_traffic_migrated_time.as_ref())
                .map(|t| t.0);
            incremental::next_traffic(
                split,
                options,
                rolling_back,
                pending_running,
                last_moved,
                now,
            )
        }
        None => (split.active_traffic, 0),
    };
    let mut backends = vec![Backend::of(active, active_weight)];
    if let Some(pending) = pending {
        backends.push(Backend::of(pending, pending_weight));
    }
    if ensure(
        io,
        &routes,
        route,
        gateway::http_route(io.service, &backends),
    )
    .await
    .is_some()
    {
        record_traffic(&mut status.active_service_status, active_weight, now);
        split.active_traffic = active_weight;
        if pending.is_some() {
            record_traffic(&mut status.pending_service_status, pending_weight, now);
            split.pending_traffic = pending_weight;
        }
    }
    Ok(split)
}

fn record_traffic(entry: &mut Option<RayServiceStatus>, weight: i32, now: Timestamp) {
    let entry = entry.get_or_insert_with(RayServiceStatus::default);
    if entry.traffic_routed_percent != Some(weight) {
        entry.traffic_routed_percent = Some(weight);
        entry.last_traffic_migrated_time = Some(Time(now));
    }
}

/// Creates or corrects a Gateway API object; `None` (with a Warning event) when that fails,
/// most often because the Gateway API CRDs aren't installed.
async fn ensure(
    io: &Io<'_>,
    api: &Api<DynamicObject>,
    existing: Result<Option<DynamicObject>, kube::Error>,
    desired: DynamicObject,
) -> Option<DynamicObject> {
    let kind = desired
        .types
        .as_ref()
        .map(|t| t.kind.clone())
        .unwrap_or_default();
    let name = desired.name_any();
    let at = format!("{}/{name}", io.namespace);
    let ensured = match existing {
        Ok(existing) => gateway::ensure(api, existing, &desired).await,
        Err(error) => Err(error),
    };
    match ensured {
        Ok((object, change)) => {
            let (reason, note) = match change {
                Change::Created => (format!("Created{kind}"), format!("Created {kind} {at}")),
                Change::Updated => (format!("Updated{kind}"), format!("Updated {kind} {at}")),
                Change::Unchanged => return Some(object),
            };
            io.ctx
                .events
                .normal(io.service, &reason, "Upgrade", note)
                .await;
            Some(object)
        }
        Err(error) => {
            let hint = match &error {
                kube::Error::Api(e) if e.code == 404 => {
                    " (is the Gateway API, gateway.networking.k8s.io/v1, installed?)"
                }
                _ => "",
            };
            io.ctx
                .events
                .warning(
                    io.service,
                    &format!("FailedToReconcile{kind}"),
                    "Upgrade",
                    format!("{kind} {at}: {error}{hint}; traffic stays where it is"),
                )
                .await;
            None
        }
    }
}

/// The serve config the cluster runs, as far as raygate knows it: the one kept on it, or the
/// RayService's current one, whichever carries the hash recorded on the cluster.
fn running_config(io: &Io<'_>, cluster: &RayCluster) -> Option<serde_json::Value> {
    let hash = cluster.annotations().get(plan::SERVE_CONFIG_HASH)?;
    let kept = cluster
        .annotations()
        .get(SERVE_CONFIG)
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    let current = plan::serve_config(io.service).ok().flatten();
    [kept, current]
        .into_iter()
        .flatten()
        .find(|config| &plan::config_hash(config) == hash)
}

/// How a capacity step went.
enum Step {
    /// Serve took the new `target_capacity`.
    Sent,
    /// The step counts without a Serve call, for the reason given.
    Counted(&'static str),
    /// Not now (Serve refused or can't be reached; the head isn't ready).
    Failed(Option<String>),
}

/// Sends the cluster its serve config with a new `target_capacity`; true once the step counts.
///
/// A step counts without a Serve call when raygate can't tell which config the cluster runs
/// (never the RayService's newer one: that could redeploy code the old cluster can't run), and
/// while rolling back from a pending cluster whose head is gone. Either way the cluster is on
/// its way out and gets no more traffic than its capacity says.
async fn set_capacity(io: &Io<'_>, cluster: &RayCluster, capacity: i32, leaving: bool) -> bool {
    let at = format!("RayCluster {}/{}", io.namespace, cluster.name_any());
    let step = if !condition_is_true(cluster.status.as_ref(), HEAD_POD_READY) {
        if leaving {
            Step::Counted("its head pod is not ready")
        } else {
            Step::Failed(None)
        }
    } else if let Some(config) = running_config(io, cluster) {
        send_capacity(io, cluster, &config, capacity).await
    } else {
        Step::Counted("the serve config it runs is not known")
    };
    match step {
        Step::Sent => {
            let note = format!("Set target_capacity of {at} to {capacity}");
            io.ctx
                .events
                .normal(io.service, "UpdatedServeTargetCapacity", "Upgrade", note)
                .await;
            true
        }
        Step::Counted(why) => {
            let note = format!(
                "target_capacity of {at} counts as {capacity} without telling Serve: {why}"
            );
            io.ctx
                .events
                .warning(io.service, "UpdatedServeTargetCapacity", "Upgrade", note)
                .await;
            true
        }
        Step::Failed(None) => false,
        Step::Failed(Some(error)) => {
            let note = format!("Setting target_capacity of {at} to {capacity}: {error}");
            io.ctx
                .events
                .warning(io.service, "FailedToUpdateTargetCapacity", "Upgrade", note)
                .await;
            false
        }
    }
}

async fn send_capacity(
    io: &Io<'_>,
    cluster: &RayCluster,
    config: &serde_json::Value,
    capacity: i32,
) -> Step {
    let Some(client) = io.ctx.dashboard(cluster, SERVE_PUT_TIMEOUT) else {
        return Step::Failed(Some("no dashboard address".to_string()));
    };
    let client =
        match crate::auth::authenticated(&io.ctx.client, &io.ctx.tokens, Some(cluster), client)
            .await
        {
            Ok(client) => client,
            Err(error) => return Step::Failed(Some(error.to_string())),
        };
    match client
        .put_serve_config(&incremental::with_capacity(config, Some(capacity)))
        .await
    {
        Ok(()) => Step::Sent,
        Err(error) => Step::Failed(Some(error.to_string())),
    }
}

async fn ensure_cluster_serve_service(io: &Io<'_>, cluster: &RayCluster) -> Result<(), Error> {
    let desired = gateway::cluster_serve_service(io.service, cluster);
    let name = desired.name_any();
    let outcome = crate::services::ensure_selecting(&io.api::<Service>(), &desired)
        .await
        .map_err(io.error(format!("creating Service {name}")))?;
    if outcome == crate::services::Ensured::Created {
        io.ctx
            .events
            .normal(
                io.service,
                "CreatedService",
                "Upgrade",
                format!("Created Service {}/{name}", io.namespace),
            )
            .await;
    }
    Ok(())
}

/// Suspending: the Gateway and HTTPRoute go too. True while one was still there.
pub async fn delete_gateway_objects(io: &Io<'_>) -> Result<bool, Error> {
    let mut remaining = false;
    for (resource, name) in [
        (gateway::route_resource(), gateway::route_name(io.service)),
        (
            gateway::gateway_resource(),
            gateway::gateway_name(io.service),
        ),
    ] {
        let api: Api<DynamicObject> =
            Api::namespaced_with(io.ctx.client.clone(), &io.namespace, &resource);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => remaining = true,
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(io.error(format!("deleting {} {name}", resource.kind))(
                    source,
                ));
            }
        }
    }
    Ok(remaining)
}

/// Records the applied serve config's hash on the cluster and, for incremental upgrades, the
/// config itself (`null` removes an older one when it doesn't fit).
pub fn config_annotations(hash: &str, config: Option<&serde_json::Value>) -> serde_json::Value {
    let mut annotations = json!({ plan::SERVE_CONFIG_HASH: hash });
    if let Some(config) = config {
        annotations[SERVE_CONFIG] = json!(kept_config(config));
    }
    json!({"metadata": {"annotations": annotations}})
}
