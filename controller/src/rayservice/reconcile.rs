//! One reconcile pass of a RayService: make sure the right clusters exist, apply the serve
//! config to the cluster that should serve, move the Services to a new cluster once its
//! applications run, retire old clusters after the deletion delay, and write status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use raygate_api::labels::{
    MANAGED_BY_KUBERAY, RAY_ORIGINATED_FROM_CR_NAME, RAY_ORIGINATED_FROM_CRD,
};
use raygate_api::rayservice::RayServiceStatus;
use raygate_api::{RayCluster, RayService, RayServiceStatuses};
use serde_json::json;

use super::plan::{self, DELETE_AFTER, SERVE_CONFIG_HASH};
use super::{incremental, services, upgrade};
use crate::dashboard::DashboardClient;
use crate::error::Error;
use crate::events::EventSink;
use crate::metrics::Metrics;
use crate::pod_state;
use crate::rayjob::submitter::dashboard_port;
use crate::services::Ensured;
use crate::status::{HEAD_POD_READY, condition_is_true};

/// KubeRay requeues every RayService every 2 s.
const REQUEUE: Duration = Duration::from_secs(2);
/// Status queries; KubeRay uses 2 s.
pub(super) const DASHBOARD_TIMEOUT: Duration = Duration::from_secs(2);
/// The first PUT of a serve config starts Serve's controller on the head, which takes many
/// seconds on a busy head.
pub(super) const SERVE_PUT_TIMEOUT: Duration = Duration::from_secs(60);

pub const READY: &str = "Ready";
pub const UPGRADE_IN_PROGRESS: &str = "UpgradeInProgress";
pub const ROLLBACK_IN_PROGRESS: &str = "RollbackInProgress";
pub const SUSPENDING: &str = "Suspending";
pub const SUSPENDED: &str = "Suspended";
/// Ready's reason once `ray.io/initializing-timeout` passed: terminal until recreated.
pub const INITIALIZING_TIMEOUT: &str = "InitializingTimeout";

pub struct ServiceContext {
    pub client: Client,
    pub cluster_domain: String,
    pub events: EventSink,
    pub metrics: Arc<Metrics>,
    /// As for RayJobs: every dashboard request goes here when set (tests, local runs).
    pub dashboard_override: Option<String>,
    /// Ray auth tokens read from clusters\' Secrets (see [`crate::auth::TokenCache`]).
    pub tokens: crate::auth::TokenCache,
}

impl ServiceContext {
    pub(super) fn dashboard(
        &self,
        cluster: &RayCluster,
        timeout: Duration,
    ) -> Option<DashboardClient> {
        let base = match &self.dashboard_override {
            Some(url) => url.clone(),
            None => format!(
                "http://{}:{}",
                crate::names::head_service_fqdn(
                    &crate::services::head_service_name(cluster),
                    &cluster.namespace().unwrap_or_default(),
                    &self.cluster_domain
                ),
                dashboard_port(&cluster.spec)
            ),
        };
        DashboardClient::new(&base, timeout)
            .inspect_err(|error| tracing::warn!(%error, base, "no dashboard client"))
            .ok()
    }
}

pub async fn reconcile(
    service: Arc<RayService>,
    ctx: Arc<ServiceContext>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_service(&service, &ctx).await;
    ctx.metrics.reconciled(
        "RayService",
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

pub fn error_policy(service: Arc<RayService>, error: &Error, _ctx: Arc<ServiceContext>) -> Action {
    tracing::warn!(
        namespace = service.namespace().unwrap_or_default(),
        name = service.name_any(),
        %error,
        "RayService reconcile failed; retrying"
    );
    Action::requeue(Duration::from_secs(3))
}

pub(super) struct Io<'a> {
    pub(super) ctx: &'a ServiceContext,
    pub(super) service: &'a RayService,
    pub(super) name: String,
    pub(super) namespace: String,
}

impl Io<'_> {
    pub(super) fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    pub(super) fn error(
        &self,
        action: impl Into<String>,
    ) -> impl FnOnce(kube::Error) -> Error + '_ {
        let action = action.into();
        move |source| Error::ObjectApi {
            object: format!("RayService {}/{}", self.namespace, self.name),
            action,
            source,
        }
    }
}

#[tracing::instrument(skip_all, fields(kind = "RayService", namespace = service.namespace(), name = service.name_any()))]
async fn reconcile_service(service: &RayService, ctx: &ServiceContext) -> Result<Action, Error> {
    if let Some(manager) = service.spec.managed_by.as_deref()
        && manager != MANAGED_BY_KUBERAY
    {
        return Ok(Action::await_change());
    }
    if service.metadata.deletion_timestamp.is_some() {
        // Clusters and Services go with it through their owner references.
        return Ok(Action::await_change());
    }
    let io = Io {
        ctx,
        service,
        name: service.name_any(),
        namespace: service.namespace().unwrap_or_default(),
    };
    let old = service.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let now = Timestamp::now();

    let verdict = raygate_api::validation::validate_rayservice(service, None);
    if !verdict.is_allowed() {
        let problems: Vec<String> = verdict.errors.iter().map(ToString::to_string).collect();
        set_condition(
            &mut status,
            service,
            READY,
            false,
            "ValidationFailed",
            &problems.join("; "),
        );
        write_if_changed(&io, &old, status).await?;
        return Ok(Action::await_change());
    }

    let clusters = owned_clusters(&io).await?;
    // Atomic, as in KubeRay: once Suspending is recorded, the suspension completes.
    if service.spec.suspend == Some(true) || condition_true(&old, SUSPENDING) {
        suspend(&io, &clusters, &mut status).await?;
        status.observed_generation = service.metadata.generation;
        write_if_changed(&io, &old, status).await?;
        return Ok(Action::requeue(REQUEUE));
    }
    if condition_true(&old, SUSPENDED) {
        set_condition(
            &mut status,
            service,
            SUSPENDED,
            false,
            "RayServiceResumed",
            "",
        );
        set_condition(&mut status, service, READY, false, "Initializing", "");
    }
    if let Some(action) = initializing_timeout(&io, &old, &mut status, &clusters, now).await? {
        return Ok(action);
    }
    let find = |name: Option<&String>| {
        name.and_then(|n| clusters.iter().find(|c| &c.name_any() == n))
            .cloned()
    };
    let mut active = find(
        status
            .active_service_status
            .as_ref()
            .and_then(|s| s.ray_cluster_name.as_ref()),
    );
    let mut pending = find(
        status
            .pending_service_status
            .as_ref()
            .and_then(|s| s.ray_cluster_name.as_ref()),
    );
    let incremental = incremental::options(service);
    if plan::needs_new_cluster(
        service,
        active.as_ref(),
        pending.as_ref(),
        incremental.is_some(),
    ) {
        let name = plan::new_cluster_name(service);
        let mut desired = plan::cluster_for_service(service, &name);
        if incremental.is_some() && active.is_some() {
            start_small(&mut desired);
        }
        let created = io
            .api::<RayCluster>()
            .create(&PostParams::default(), &desired)
            .await
            .map_err(io.error(format!("creating RayCluster {name}")))?;
        ctx.events
            .normal(
                service,
                "CreatedRayCluster",
                "Create",
                format!("Created RayCluster {}/{name}", io.namespace),
            )
            .await;
        status.pending_service_status = Some(RayServiceStatus {
            ray_cluster_name: Some(name),
            // An incremental upgrade's new cluster starts at no capacity; the first
            // cluster at full capacity.
            target_capacity: incremental
                .as_ref()
                .map(|_| if active.is_some() { 0 } else { 100 }),
            ..RayServiceStatus::default()
        });
        pending = Some(created);
    }
    // Worker groups appended to the spec: the cluster gets them in place, as in KubeRay (the
    // pending cluster while upgrading, otherwise the active one).
    let upgrading_incrementally = incremental.is_some() && active.is_some() && pending.is_some();
    let target = if pending.is_some() {
        pending.as_mut()
    } else {
        active.as_mut()
    };
    if let Some(cluster) = target
        && plan::only_groups_appended(service, cluster)
    {
        let name = cluster.name_any();
        let mut updated = plan::updated_in_place(service, cluster);
        if upgrading_incrementally {
            start_small(&mut updated);
        }
        *cluster = io
            .api::<RayCluster>()
            .replace(&name, &PostParams::default(), &updated)
            .await
            .map_err(io.error(format!("updating RayCluster {name} in place")))?;
        ctx.events
            .normal(
                service,
                "UpdatedRayCluster",
                "Update",
                format!(
                    "Updated RayCluster {}/{name} in place: worker groups were appended",
                    io.namespace
                ),
            )
            .await;
    }
    // An incremental upgrade whose spec left the new cluster (the user reverted, or asked for
    // a third spec) first rolls back to the active cluster.
    let rolling_back = incremental.is_some()
        && active.is_some()
        && pending
            .as_ref()
            .is_some_and(|p| !plan::matches_goal(service, p));
    if rolling_back && !condition_true(&status, ROLLBACK_IN_PROGRESS) {
        set_condition(
            &mut status,
            service,
            ROLLBACK_IN_PROGRESS,
            true,
            "DesiredClusterSpecChanged",
            "the spec no longer matches the new cluster: traffic and capacity go back to the \
             active cluster first",
        );
    } else if !rolling_back {
        remove_condition(&mut status, ROLLBACK_IN_PROGRESS);
    }
    let pending_name = pending.as_ref().map(ResourceExt::name_any);

    // Which cluster gets the current serve config: the new one while upgrading, the active one
    // otherwise — and while rolling back.
    let config = plan::serve_config(service);
    let mut serving = BTreeMap::new();
    for (cluster, is_pending) in [(pending.as_mut(), true), (active.as_mut(), false)] {
        let Some(cluster) = cluster else { continue };
        if service.spec.exclude_head_pod_from_serve_svc == Some(true) {
            exclude_head(&io, &cluster.name_any()).await?;
        }
        let apply = if is_pending {
            !rolling_back
        } else {
            pending_name.is_none() || rolling_back
        };
        let name = cluster.name_any();
        let entry = if is_pending {
            &mut status.pending_service_status
        } else {
            &mut status.active_service_status
        };
        let recorded = entry
            .as_ref()
            .filter(|e| e.ray_cluster_name.as_deref() == Some(name.as_str()))
            .and_then(|e| e.target_capacity);
        // Serve's target_capacity: what the upgrade reached; full once no upgrade runs;
        // unset without incremental upgrades (also when the strategy just changed away).
        let capacity = match &incremental {
            None => None,
            Some(_) if !is_pending && pending_name.is_none() => Some(100),
            Some(_) => recorded,
        };
        let send = ServeConfig {
            config: &config,
            apply,
            capacity,
            recorded,
            keep: incremental.is_some(),
        };
        let report = reconcile_serve(&io, cluster, &send).await?;
        if report.sent {
            let entry = entry.get_or_insert_with(RayServiceStatus::default);
            entry.ray_cluster_name = Some(name.clone());
            entry.target_capacity = capacity;
        }
        serving.insert(name, report);
    }
    if incremental.is_none() {
        left_incremental(&io, &mut status).await?;
    }
    let pending_running = pending_name
        .as_ref()
        .and_then(|n| serving.get(n))
        .is_some_and(|r| r.running);

    let mut promote = pending_running && (incremental.is_none() || active.is_none());
    if let Some(options) = &incremental {
        let split = upgrade::pass(
            &io,
            options,
            &mut status,
            upgrade::Clusters {
                active: active.as_ref(),
                pending: pending.as_ref(),
                rolling_back,
                pending_running,
            },
            now,
        )
        .await?;
        if active.is_some() && pending.is_some() {
            promote = !rolling_back && incremental::upgrade_complete(split);
            let pending_healthy = pending
                .as_ref()
                .is_some_and(|p| condition_is_true(p.status.as_ref(), HEAD_POD_READY));
            if rolling_back && incremental::rollback_complete(split, pending_healthy) {
                if let Some(dropped) = pending.take() {
                    ctx.events
                        .normal(
                            service,
                            "RolledBack",
                            "Upgrade",
                            format!(
                                "RayCluster {} serves everything again; {} is retired",
                                active
                                    .as_ref()
                                    .map(ResourceExt::name_any)
                                    .unwrap_or_default(),
                                dropped.name_any()
                            ),
                        )
                        .await;
                }
                status.pending_service_status = None;
                remove_condition(&mut status, ROLLBACK_IN_PROGRESS);
            }
        }
    }

    // Promotion: the pending cluster takes over the Services — for blue/green as soon as its
    // applications run, for an incremental upgrade once it has all the traffic.
    let active_name = active.as_ref().map(ResourceExt::name_any);
    if promote && let Some(new) = pending.take() {
        if let Some(old) = &active_name {
            ctx.events
                .normal(
                    service,
                    "PromotedRayCluster",
                    "Upgrade",
                    format!("RayCluster {} now serves; {old} is retired", new.name_any()),
                )
                .await;
        }
        status.active_service_status = status.pending_service_status.take();
        active = Some(new);
    }
    let active_name = active.as_ref().map(ResourceExt::name_any);
    let pending_name = pending.as_ref().map(ResourceExt::name_any);
    if let Some(cluster) = &active {
        ensure_service(&io, services::head_service(service, cluster)).await?;
        ensure_service(&io, services::serve_service(service, cluster)).await?;
    }
    retire_others(&io, &clusters, [&active_name, &pending_name], now).await?;

    status.active_service_status = active.as_ref().map(|c| {
        cluster_status(
            status.active_service_status.take(),
            c,
            serving.get(&c.name_any()),
        )
    });
    status.pending_service_status = pending.as_ref().map(|c| {
        cluster_status(
            status.pending_service_status.take(),
            c,
            serving.get(&c.name_any()),
        )
    });
    let mut endpoints = match &active_name {
        Some(name) => serve_endpoints(&io, name).await?,
        None => 0,
    };
    // During an incremental upgrade the new cluster serves its share too.
    if incremental.is_some()
        && active_name.is_some()
        && let Some(name) = &pending_name
    {
        endpoints = endpoints.saturating_add(serve_endpoints(&io, name).await?);
    }
    status.num_serve_endpoints = Some(endpoints);
    if endpoints > 0 {
        set_condition(
            &mut status,
            service,
            READY,
            true,
            "NonZeroServeEndpoints",
            "",
        );
    } else if active.is_some() {
        set_condition(&mut status, service, READY, false, "ZeroServeEndpoints", "");
    } else {
        set_condition(&mut status, service, READY, false, "Initializing", "");
    }
    match (&active_name, &pending_name) {
        (Some(_), Some(_)) => set_condition(
            &mut status,
            service,
            UPGRADE_IN_PROGRESS,
            true,
            "BothActivePendingClustersExist",
            "",
        ),
        (Some(_), None) => set_condition(
            &mut status,
            service,
            UPGRADE_IN_PROGRESS,
            false,
            "NoPendingCluster",
            "",
        ),
        (None, _) => {
            set_condition_unknown(&mut status, service, UPGRADE_IN_PROGRESS, "NoActiveCluster")
        }
    }
    status.service_status = Some(if endpoints > 0 { "Running" } else { "" }.to_string());
    status.observed_generation = service.metadata.generation;
    write_if_changed(&io, &old, status).await?;
    Ok(Action::requeue(REQUEUE))
}

/// An incremental upgrade's new cluster leaves its workers' `replicas` unset: Serve's
/// `target_capacity` and the autoscaler grow it from `minReplicas`.
fn start_small(cluster: &mut RayCluster) {
    for group in cluster.spec.worker_group_specs.iter_mut().flatten() {
        group.replicas = None;
    }
}

async fn owned_clusters(io: &Io<'_>) -> Result<Vec<RayCluster>, Error> {
    let selector = format!(
        "{RAY_ORIGINATED_FROM_CRD}=RayService,{RAY_ORIGINATED_FROM_CR_NAME}={}",
        io.name
    );
    let uid = io.service.uid();
    let list = io
        .api::<RayCluster>()
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(io.error("listing its RayClusters"))?;
    Ok(list
        .items
        .into_iter()
        .filter(|c| {
            c.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .collect())
}

#[derive(Debug, Default)]
struct ServeReport {
    running: bool,
    /// The config went to Serve this pass.
    sent: bool,
    apps: Option<BTreeMap<String, raygate_api::rayservice::AppStatus>>,
}

/// What goes to a cluster's Serve this pass.
struct ServeConfig<'a> {
    config: &'a Result<Option<serde_json::Value>, String>,
    /// Whether this cluster should run the RayService's current config.
    apply: bool,
    /// Its `target_capacity` (incremental upgrades).
    capacity: Option<i32>,
    /// The `target_capacity` the status says Serve has; a difference sends the config again.
    recorded: Option<i32>,
    /// Keep the applied config on the cluster, for later capacity changes.
    keep: bool,
}

/// Applies the serve config to the cluster when it lacks it (its annotation tells), and reads
/// back what Serve runs. Nothing happens before the head pod is ready.
async fn reconcile_serve(
    io: &Io<'_>,
    cluster: &mut RayCluster,
    send: &ServeConfig<'_>,
) -> Result<ServeReport, Error> {
    if !condition_is_true(cluster.status.as_ref(), HEAD_POD_READY) {
        return Ok(ServeReport::default());
    }
    let Some(client) = io.ctx.dashboard(cluster, DASHBOARD_TIMEOUT) else {
        return Ok(ServeReport::default());
    };
    let client =
        crate::auth::authenticated(&io.ctx.client, &io.ctx.tokens, Some(cluster), client).await?;
    let details = match client.serve_details().await {
        Ok(details) => Some(details),
        Err(error) => {
            tracing::info!(%error, cluster = cluster.name_any(), "Serve did not answer");
            None
        }
    };
    let config = match send.config {
        Ok(config) => config.as_ref(),
        Err(message) => {
            io.ctx
                .events
                .warning(
                    io.service,
                    "FailedToUpdateServeApplications",
                    "Serve",
                    message.clone(),
                )
                .await;
            None
        }
    };
    let mut sent = false;
    if send.apply
        && let Some(config) = config
    {
        let hash = plan::config_hash(config);
        let applied = cluster.annotations().get(SERVE_CONFIG_HASH) == Some(&hash);
        // No applications at all: the head restarted without GCS fault tolerance.
        let lost = details.as_ref().is_some_and(|d| d.applications.is_empty());
        if !applied || lost || send.capacity != send.recorded {
            sent = put_config(io, cluster, config, send, &hash).await?;
        }
    }
    Ok(match details {
        Some(details) => ServeReport {
            running: plan::apps_running(&details),
            apps: Some(plan::app_statuses(&details)),
            sent,
        },
        None => ServeReport {
            sent,
            ..ServeReport::default()
        },
    })
}

async fn put_config(
    io: &Io<'_>,
    cluster: &mut RayCluster,
    config: &serde_json::Value,
    send: &ServeConfig<'_>,
    hash: &str,
) -> Result<bool, Error> {
    let Some(client) = io.ctx.dashboard(cluster, SERVE_PUT_TIMEOUT) else {
        return Ok(false);
    };
    let client =
        crate::auth::authenticated(&io.ctx.client, &io.ctx.tokens, Some(cluster), client).await?;
    let name = cluster.name_any();
    let sent = incremental::with_capacity(config, send.capacity);
    if let Err(error) = client.put_serve_config(&sent).await {
        io.ctx
            .events
            .warning(
                io.service,
                "FailedToUpdateServeApplications",
                "Serve",
                format!("Applying serveConfigV2 to RayCluster {name}: {error}"),
            )
            .await;
        return Ok(false);
    }
    let patch = upgrade::config_annotations(hash, send.keep.then_some(config));
    *cluster = io
        .api::<RayCluster>()
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(io.error(format!("recording the serve config on RayCluster {name}")))?;
    io.ctx
        .events
        .normal(
            io.service,
            "UpdatedServeApplications",
            "Serve",
            format!(
                "Applied serveConfigV2 to RayCluster {}/{name}",
                io.namespace
            ),
        )
        .await;
    Ok(true)
}

/// The strategy changed away from an incremental upgrade: its Gateway and HTTPRoute go, and
/// the status stops reporting traffic (capacity goes once Serve runs at full capacity again).
async fn left_incremental(io: &Io<'_>, status: &mut RayServiceStatuses) -> Result<(), Error> {
    if !routes_traffic(status) {
        return Ok(());
    }
    upgrade::delete_gateway_objects(io).await?;
    let entries = [
        &mut status.active_service_status,
        &mut status.pending_service_status,
    ];
    for entry in entries.into_iter().flatten() {
        entry.traffic_routed_percent = None;
        entry.last_traffic_migrated_time = None;
    }
    Ok(())
}

/// The status reports traffic weights: an incremental upgrade's Gateway objects exist.
fn routes_traffic(status: &RayServiceStatuses) -> bool {
    [
        &status.active_service_status,
        &status.pending_service_status,
    ]
    .into_iter()
    .flatten()
    .any(|e| e.traffic_routed_percent.is_some())
}

async fn ensure_service(io: &Io<'_>, desired: Service) -> Result<(), Error> {
    let name = desired.name_any();
    let outcome = crate::services::ensure_selecting(&io.api::<Service>(), &desired)
        .await
        .map_err(io.error(format!("creating or pointing Service {name}")))?;
    let (reason, note) = match outcome {
        Ensured::Created => (
            "CreatedService",
            format!("Created Service {}/{name}", io.namespace),
        ),
        Ensured::Moved => (
            "UpdatedService",
            format!(
                "Service {name} now selects RayCluster {}",
                selected_cluster(&desired).unwrap_or_default()
            ),
        ),
        Ensured::Unchanged => return Ok(()),
    };
    io.ctx
        .events
        .normal(io.service, reason, "Reconcile", note)
        .await;
    Ok(())
}

fn selected_cluster(service: &Service) -> Option<String> {
    service
        .spec
        .as_ref()?
        .selector
        .as_ref()?
        .get(raygate_api::labels::RAY_CLUSTER)
        .cloned()
}

/// Clusters neither active nor pending are deleted `rayClusterDeletionDelaySeconds` after
/// they were first seen so (the time is stored on the cluster, so a restart keeps it).
async fn retire_others(
    io: &Io<'_>,
    clusters: &[RayCluster],
    keep: [&Option<String>; 2],
    now: Timestamp,
) -> Result<(), Error> {
    let delay = io
        .service
        .spec
        .ray_cluster_deletion_delay_seconds
        .map_or(plan::DEFAULT_DELETION_DELAY_SECONDS, i64::from)
        .max(0);
    let api = io.api::<RayCluster>();
    for cluster in clusters {
        let name = cluster.name_any();
        if keep.iter().any(|k| k.as_deref() == Some(name.as_str())) {
            continue;
        }
        let due = cluster
            .annotations()
            .get(DELETE_AFTER)
            .and_then(|t| t.parse::<Timestamp>().ok());
        match due {
            None => {
                let at = now
                    .checked_add(SignedDuration::from_secs(delay))
                    .unwrap_or(now);
                let patch = json!({"metadata": {"annotations": {DELETE_AFTER: at.to_string()}}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(io.error(format!("scheduling the deletion of RayCluster {name}")))?;
            }
            Some(at) if at <= now => {
                let params = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => {
                        io.ctx
                            .events
                            .normal(
                                io.service,
                                "DeletedRayCluster",
                                "Delete",
                                format!("Deleted RayCluster {}/{name}", io.namespace),
                            )
                            .await;
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(source) => {
                        return Err(io.error(format!("deleting RayCluster {name}"))(source));
                    }
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Deletes every cluster and the RayService's Services; Suspended once nothing is left.
async fn suspend(
    io: &Io<'_>,
    clusters: &[RayCluster],
    status: &mut RayServiceStatuses,
) -> Result<(), Error> {
    let service = io.service;
    let routed = routes_traffic(status);
    set_condition(status, service, SUSPENDING, true, "SuspendInProgress", "");
    status.active_service_status = None;
    status.pending_service_status = None;
    status.num_serve_endpoints = Some(0);
    status.service_status = Some(String::new());
    let mut remaining = false;
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    for cluster in clusters {
        remaining = true;
        let name = cluster.name_any();
        match io.api::<RayCluster>().delete(&name, &params).await {
            Ok(_) => {
                io.ctx
                    .events
                    .normal(
                        service,
                        "DeletedRayCluster",
                        "Suspend",
                        format!("Deleted RayCluster {}/{name}", io.namespace),
                    )
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(io.error(format!("deleting RayCluster {name}"))(source)),
        }
    }
    for name in [
        services::head_service_name(service),
        services::serve_service_name(service),
    ] {
        match io
            .api::<Service>()
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => remaining = true,
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(io.error(format!("deleting Service {name}"))(source)),
        }
    }
    if (routed || incremental::options(service).is_some())
        && upgrade::delete_gateway_objects(io).await?
    {
        remaining = true;
    }
    if !remaining {
        remove_condition(status, ROLLBACK_IN_PROGRESS);
        set_condition(status, service, SUSPENDING, false, "SuspendComplete", "");
        set_condition(status, service, SUSPENDED, true, "SuspendComplete", "");
        set_condition(status, service, READY, false, "SuspendComplete", "");
        set_condition(
            status,
            service,
            UPGRADE_IN_PROGRESS,
            false,
            "SuspendComplete",
            "",
        );
    }
    Ok(())
}

/// `excludeHeadPodFromServeSvc`: the head pods leave the serve Service.
async fn exclude_head(io: &Io<'_>, cluster: &str) -> Result<(), Error> {
    let api = io.api::<Pod>();
    let selector = format!(
        "{}={cluster},{}=head",
        raygate_api::labels::RAY_CLUSTER,
        raygate_api::labels::RAY_NODE_TYPE
    );
    let heads = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(io.error("listing head pods"))?;
    for pod in heads.items {
        if pod
            .labels()
            .get(raygate_api::labels::RAY_SERVE)
            .map(String::as_str)
            == Some("false")
        {
            continue;
        }
        let patch = json!({"metadata": {"labels": {raygate_api::labels::RAY_SERVE: "false"}}});
        api.patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(io.error(format!(
            "taking head pod {} out of the serve Service",
            pod.name_any()
        )))?;
    }
    Ok(())
}

/// KubeRay's `ray.io/initializing-timeout`: a RayService whose Ready condition stays
/// `Initializing` longer than the annotation says gives up (Ready=False/InitializingTimeout,
/// an event), its clusters are retired, and it stays so until recreated. `Some` ends the pass.
async fn initializing_timeout(
    io: &Io<'_>,
    old: &RayServiceStatuses,
    status: &mut RayServiceStatuses,
    clusters: &[RayCluster],
    now: Timestamp,
) -> Result<Option<Action>, Error> {
    let service = io.service;
    if condition(old, READY).is_some_and(|c| c.reason == INITIALIZING_TIMEOUT) {
        retire_others(io, clusters, [&None, &None], now).await?;
        return Ok(Some(if clusters.is_empty() {
            Action::await_change()
        } else {
            Action::requeue(REQUEUE)
        }));
    }
    let Some(timeout) = raygate_api::validation::initializing_timeout(&service.metadata) else {
        return Ok(None);
    };
    let Some(ready) = condition(old, READY).filter(|c| c.reason == "Initializing") else {
        return Ok(None);
    };
    // Time spent suspended doesn't count: the clock starts again at the resume.
    let since = condition(old, SUSPENDED)
        .map(|c| c.last_transition_time.0)
        .map_or(ready.last_transition_time.0, |resumed| {
            resumed.max(ready.last_transition_time.0)
        });
    let waited = now.duration_since(since);
    if waited.unsigned_abs() <= timeout {
        return Ok(None);
    }
    let message = format!(
        "not ready within the {:?} of annotation {}; its clusters are deleted: recreate the \
         RayService to try again",
        timeout,
        raygate_api::labels::ANNOTATION_INITIALIZING_TIMEOUT
    );
    set_condition(
        status,
        service,
        READY,
        false,
        INITIALIZING_TIMEOUT,
        &message,
    );
    status.active_service_status = None;
    status.pending_service_status = None;
    status.num_serve_endpoints = Some(0);
    io.ctx
        .events
        .warning(
            service,
            "RayServiceInitializingTimeout",
            "Initialize",
            message,
        )
        .await;
    retire_others(io, clusters, [&None, &None], now).await?;
    status.observed_generation = service.metadata.generation;
    write_if_changed(io, old, std::mem::take(status)).await?;
    Ok(Some(Action::requeue(REQUEUE)))
}

fn condition<'a>(status: &'a RayServiceStatuses, type_: &str) -> Option<&'a Condition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

fn condition_true(status: &RayServiceStatuses, type_: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == "True")
}

fn remove_condition(status: &mut RayServiceStatuses, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// A cluster's entry in the status; what an incremental upgrade recorded about the same
/// cluster (capacity, traffic) carries over.
fn cluster_status(
    previous: Option<RayServiceStatus>,
    cluster: &RayCluster,
    report: Option<&ServeReport>,
) -> RayServiceStatus {
    let name = cluster.name_any();
    let previous = previous
        .filter(|p| p.ray_cluster_name.as_deref() == Some(name.as_str()))
        .unwrap_or_default();
    RayServiceStatus {
        ray_cluster_name: Some(name),
        ray_cluster_status: cluster.status.clone(),
        application_statuses: report.and_then(|r| r.apps.clone()),
        ..previous
    }
}

/// Ready pods the serve Service selects: what its endpoints hold (counted from pods, which
/// needs no EndpointSlice controller).
async fn serve_endpoints(io: &Io<'_>, cluster: &str) -> Result<i32, Error> {
    let selector = services::serve_selector(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = io
        .api::<Pod>()
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(io.error("listing serving pods"))?;
    let ready = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_state::is_running_and_ready(p))
        .count();
    Ok(i32::try_from(ready).unwrap_or(i32::MAX))
}

fn set_condition(
    status: &mut RayServiceStatuses,
    service: &RayService,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
) {
    let value = if value { "True" } else { "False" };
    put_condition(status, service, type_, value, reason, message);
}

fn set_condition_unknown(
    status: &mut RayServiceStatuses,
    service: &RayService,
    type_: &str,
    reason: &str,
) {
    put_condition(status, service, type_, "Unknown", reason, "");
}

/// Sets a condition; its transition time moves only when its status does.
fn put_condition(
    status: &mut RayServiceStatuses,
    service: &RayService,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let existing = conditions.iter().position(|c| c.type_ == type_);
    let transition = existing
        .map(|i| &conditions[i])
        .filter(|c| c.status == value)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    let condition = Condition {
        type_: type_.to_string(),
        status: value.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: transition,
        observed_generation: service.metadata.generation,
    };
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

async fn write_if_changed(
    io: &Io<'_>,
    old: &RayServiceStatuses,
    mut status: RayServiceStatuses,
) -> Result<(), Error> {
    if &status == old {
        return Ok(());
    }
    status.last_update_time = Some(Time(Timestamp::now()));
    let mut updated = io.service.clone();
    updated.status = Some(status);
    io.api::<RayService>()
        .replace_status(&io.name, &PostParams::default(), &updated)
        .await
        .map_err(io.error("writing the status"))?;
    Ok(())
}
