//! One reconcile pass of a RayCluster: Services, then Pods, then status.
//!
//! Pods are counted from a fresh LIST on every pass, not from a watch cache, so a pass never
//! acts on a stale picture: after a crash or restart the new process sees every pod its
//! predecessor created and creates only what is missing. A pass that wrote computes status
//! from that LIST and its own writes' answers rather than listing again.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use raygate_api::labels::{
    ANNOTATION_DISABLE_PROVISIONED_HEAD_RESTART, ANNOTATION_UPGRADE_STRATEGY_RECREATE_HASH,
    MANAGED_BY_KUBERAY, RAY_CLUSTER,
};
use raygate_api::raycluster::RayClusterUpgradeType;
use raygate_api::{RayCluster, RayClusterStatus};
use serde_json::Value;

use crate::error::Error;
use crate::events::EventSink;
use crate::expiring::ExpiringMap;
use crate::metrics::Metrics;
use crate::pod_state;
use crate::pods::{self, PodContext, WorkerSlot};
use crate::scaling::{self, DeleteReason, GroupWish, PodToDelete};
use crate::services;
use crate::spec_hash::{self, pod_template_hash};
use crate::status::{self, Observed, ReplicaFailure};
use crate::{autoscaler, cleanup, gcs_ft};

/// Creates and deletes in flight per pass: enough to build a large cluster in seconds without
/// flooding the API server.
const WRITES_IN_FLIGHT: usize = 16;
/// A 409 means the cache is behind by a write or so: the watch catches up within moments.
const CONFLICT_RETRY: Duration = Duration::from_millis(500);
/// How long the Warning event of a failed pass may take to write.
const FAILURE_EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Requeue after a pass that created or deleted pods.
const REQUEUE_BUSY: Duration = Duration::from_secs(2);
/// Requeue of a cluster whose pods are still starting.
const REQUEUE_UNSETTLED: Duration = Duration::from_secs(10);
/// Requeue of a quiet cluster: a safety net, since pod and Service changes wake us anyway.
const REQUEUE_IDLE: Duration = Duration::from_secs(300);

pub struct Context {
    pub client: Client,
    pub cluster_domain: String,
    pub events: EventSink,
    pub metrics: Arc<Metrics>,
    /// (uid, generation) already warned about a missing webhook, so the event is not repeated
    /// on every pass.
    warned: ExpiringMap<(String, i64), ()>,
    /// The Services labelled `ray.io/cluster` or `ray.io/headless-worker-svc`, two caches per
    /// watched scope.
    services: Vec<Store<Service>>,
    written: WrittenStatuses,
    passes: PassTimes,
}

/// The least time from the end of one pass of a cluster to the start of the next. Changes
/// that come sooner are taken up together when it has passed: a cluster whose pods change
/// without pause (hundreds starting, a busy autoscaler) gets four passes a second, not one
/// after another, each with its pod LIST.
const MIN_PASS_GAP: Duration = Duration::from_millis(250);

/// When each cluster's last pass ended, by uid; an entry older than the gap says nothing.
struct PassTimes(ExpiringMap<String, ()>);

impl Default for PassTimes {
    fn default() -> Self {
        Self(ExpiringMap::new(MIN_PASS_GAP))
    }
}

impl PassTimes {
    /// How long until the cluster may have its next pass; `None`: now. The map keeps an
    /// end only while it is younger than the gap, so the wait is never zero.
    fn too_soon(&self, uid: &str) -> Option<Duration> {
        let ((), since) = self.0.get(uid, Instant::now())?;
        Some(MIN_PASS_GAP - since)
    }

    fn ended(&self, uid: String) {
        self.0.insert(uid, (), Instant::now());
    }
}

/// Statuses this controller wrote that the RayCluster cache may not show yet, by uid: a pass
/// woken by the pods the previous pass created often comes before the watch shows that
/// pass's status, and would otherwise write the same status again.
struct WrittenStatuses(ExpiringMap<String, WrittenStatus>);

impl Default for WrittenStatuses {
    fn default() -> Self {
        Self(ExpiringMap::new(WRITTEN_STATUS_TTL))
    }
}

#[derive(Clone)]
struct WrittenStatus {
    /// The resourceVersion the write was made against.
    over: Option<String>,
    status: RayClusterStatus,
}

impl WrittenStatuses {
    /// The status last written for `cluster`, if the cached object predates that write.
    fn unseen(&self, cluster: &RayCluster) -> Option<RayClusterStatus> {
        let uid = cluster.uid()?;
        let (written, _) = self.0.get(&uid, Instant::now())?;
        if written.over == cluster.metadata.resource_version {
            return Some(written.status);
        }
        self.0.remove(&uid);
        None
    }

    fn remember(&self, cluster: &RayCluster, status: &RayClusterStatus) {
        let Some(uid) = cluster.uid() else { return };
        let written = WrittenStatus {
            over: cluster.metadata.resource_version.clone(),
            status: status.clone(),
        };
        self.0.insert(uid, written, Instant::now());
    }
}

/// How long a written status is remembered for a cluster whose cache never moves on (it was
/// deleted): the watch shows a write far sooner.
const WRITTEN_STATUS_TTL: Duration = Duration::from_secs(60);

/// How long a cluster generation's webhook-bypass warning holds off another for it: a cluster
/// left unnormalized is reminded of hourly, not on every pass.
const BYPASS_WARNING_TTL: Duration = Duration::from_secs(3600);

impl Context {
    pub fn new(
        client: Client,
        cluster_domain: String,
        events: EventSink,
        metrics: Arc<Metrics>,
        services: Vec<Store<Service>>,
    ) -> Self {
        Self {
            client,
            cluster_domain,
            events,
            metrics,
            warned: ExpiringMap::new(BYPASS_WARNING_TTL),
            services,
            written: WrittenStatuses::default(),
            passes: PassTimes::default(),
        }
    }

    /// What the Service caches know of `namespace/name`: `Some(None)` when every cache has
    /// synced and none holds it, `None` when a cache is still filling (then only the API
    /// server can tell).
    fn cached_service(&self, namespace: &str, name: &str) -> Option<Option<Arc<Service>>> {
        let key = ObjectRef::new(name).within(namespace);
        let mut synced = !self.services.is_empty();
        for store in &self.services {
            if let Some(service) = store.get(&key) {
                return Some(Some(service));
            }
            synced &= matches!(store.wait_until_ready().now_or_never(), Some(Ok(())));
        }
        synced.then_some(None)
    }

    /// True the first time for this object generation (and again an hour later).
    fn first_warning(&self, cluster: &RayCluster) -> bool {
        let key = (
            cluster.uid().unwrap_or_default(),
            cluster.metadata.generation.unwrap_or_default(),
        );
        self.warned.insert_new(key, (), Instant::now())
    }

    /// `<group>-<5 random characters>`, the name shared by a multi-host replica's pods.
    fn replica_name(&self, group: &str) -> String {
        format!("{group}-{}", crate::names::random_suffix())
    }
}

pub async fn reconcile(cluster: Arc<RayCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = cluster.uid().unwrap_or_default();
    if let Some(wait) = ctx.passes.too_soon(&uid) {
        return Ok(Action::requeue(wait));
    }
    let started = Instant::now();
    let result = reconcile_cluster(&cluster, &ctx).await;
    ctx.passes.ended(uid);
    ctx.metrics.reconciled(
        "RayCluster",
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

pub fn error_policy(cluster: Arc<RayCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        tracing::debug!(
            namespace = cluster.namespace().unwrap_or_default(),
            name = cluster.name_any(),
            %error,
            "write conflict; retrying with the newer object"
        );
        return Action::requeue(CONFLICT_RETRY);
    }
    tracing::warn!(
        namespace = cluster.namespace().unwrap_or_default(),
        name = cluster.name_any(),
        %error,
        "reconcile failed; retrying"
    );
    // So `kubectl describe` shows why the cluster is stuck. The recorder folds the same
    // failure on every retry into one event with a growing count. Bounded: against an API
    // server that hangs, these would otherwise pile up, one per failed pass.
    if let Some(reason) = error.event_reason() {
        let message = format!("{error}; retrying");
        tokio::spawn(async move {
            let write = ctx
                .events
                .warning(cluster.as_ref(), reason, "Reconcile", message);
            if tokio::time::timeout(FAILURE_EVENT_TIMEOUT, write)
                .await
                .is_err()
            {
                tracing::warn!(reason, "the failure event could not be written in time");
            }
        });
    }
    Action::requeue(Duration::from_secs(5))
}

#[tracing::instrument(skip_all, fields(kind = "RayCluster", namespace = cluster.namespace(), name = cluster.name_any()))]
async fn reconcile_cluster(cluster: &RayCluster, ctx: &Context) -> Result<Action, Error> {
    if let Some(manager) = cluster.spec.managed_by.as_deref()
        && manager != MANAGED_BY_KUBERAY
    {
        tracing::debug!(manager, "managed by another controller; skipped");
        return Ok(Action::await_change());
    }
    let name = cluster.name_any();
    let namespace = cluster.namespace().ok_or_else(|| Error::MissingNamespace {
        cluster: name.clone(),
    })?;

    let normalized = normalized(cluster, ctx).await?;
    if cluster.metadata.deletion_timestamp.is_some() {
        if gcs_ft::has_finalizer(cluster) {
            return cleanup::finalize(ctx, normalized.as_deref().unwrap_or(cluster)).await;
        }
        // Children go with the cluster through their owner references.
        return Ok(Action::await_change());
    }
    let Some(mut normalized) = normalized else {
        return Ok(Action::await_change());
    };
    if let Some(latest) = ctx.written.unseen(&normalized) {
        normalized.to_mut().status = Some(latest);
    }
    let cluster: &RayCluster = &normalized;
    if gcs_ft::wants_finalizer(cluster) && !gcs_ft::has_finalizer(cluster) {
        cleanup::add_finalizer(ctx, cluster).await?;
    }

    let services_api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    if autoscaler::enabled(cluster) {
        ensure_autoscaler_rbac(ctx, cluster, &namespace).await?;
    }
    let services = async {
        let head_service = ensure_head_service(ctx, cluster, &namespace, &services_api).await?;
        if services::needs_headless_service(cluster) {
            let headless = services::headless_worker_service(cluster);
            ensure_cached_child(ctx, cluster, &namespace, &services_api, headless).await?;
        }
        Ok(head_service)
    };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    // The pod LIST needs nothing from the Services, so both go out at once; pods are still
    // only created once the head Service is known to be the cluster's (an error stops here).
    let (head_service, listed) =
        futures_util::try_join!(services, list_owned_pods(&pods_api, cluster))?;
    let OwnedPods {
        live: owned,
        mut terminating,
    } = listed;
    let hash = pod_template_hash(&cluster.spec);
    let plan = plan(ctx, cluster, &owned, &hash);
    let now = Time(Timestamp::now());
    // KubeRay's two-phase suspend: `RayClusterSuspending` is stored before the first pod is
    // deleted, so a suspend cut short by a restart still runs to the end (`suspending` reads
    // the condition) even if `spec.suspend` is cleared meanwhile.
    let mut stored_status = cluster.status.clone();
    if plan.suspends
        && !plan.is_empty()
        && !status::condition_is_true(stored_status.as_ref(), status::SUSPENDING)
    {
        let before = status::compute(
            cluster,
            &Observed {
                pods: &owned,
                terminating,
                head_service: Some(&head_service),
                failure: None,
                now: now.clone(),
            },
        );
        write_status(ctx, cluster, stored_status.as_ref(), &before).await?;
        stored_status = Some(before);
    }
    // Before pods are created: they read their Ray auth token from it (create-only, so a
    // pass that creates no pod costs no request).
    if (plan.create_head || !plan.create_workers.is_empty())
        && let Some(secret) = crate::auth::generated_secret(cluster)
    {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        create_child(ctx, cluster, &secrets, secret, "Secret").await?;
    }
    let acted = !plan.is_empty();
    let (failure, owned) = if acted {
        let done = execute(ctx, cluster, &pods_api, &hash, plan).await;
        // What a LIST now would show: the pods seen, less those deleted, plus those created.
        // A deleted pod may still be stopping (a kubelet gives it its grace period), so it
        // counts as terminating until a LIST no longer shows it.
        let mut owned = owned;
        let seen = owned.len();
        owned.retain(|pod| {
            pod.metadata
                .uid
                .as_ref()
                .is_none_or(|uid| !done.deleted.contains(uid))
        });
        terminating += seen - owned.len();
        owned.extend(done.created);
        (done.failure, owned)
    } else {
        (None, owned)
    };

    let new_status = status::compute(
        cluster,
        &Observed {
            pods: &owned,
            terminating,
            head_service: Some(&head_service),
            failure: failure.clone(),
            now,
        },
    );
    let status_changed = status::changed(stored_status.as_ref(), &new_status);
    if status_changed {
        write_status(ctx, cluster, stored_status.as_ref(), &new_status).await?;
        observe_provisioning(ctx, cluster, &new_status);
    }

    if let Some(failure) = failure {
        return Err(Error::ReplicaFailure {
            cluster: name,
            message: failure.message,
        });
    }
    // Pod and Service changes wake the cluster through the watches; a pass that wrote looks
    // again soon to see its writes land, and a cluster still starting is looked at now and
    // then in case a watch was down (an API server restart) when its pods changed.
    let settled = new_status.state.as_deref() == Some(status::STATE_READY)
        || new_status.state.as_deref() == Some(status::STATE_SUSPENDED)
            && !status::suspending(cluster);
    Ok(if acted {
        Action::requeue(REQUEUE_BUSY)
    } else if !settled {
        Action::requeue(REQUEUE_UNSETTLED)
    } else {
        Action::requeue(REQUEUE_IDLE)
    })
}

/// The cluster with the webhook's defaults. An object admitted while the webhook was bypassed
/// (or under an older schema) is normalized here in memory by the same pure function, and
/// validated, since nothing else checked it. `None`: invalid, nothing to do until it changes.
async fn normalized<'a>(
    cluster: &'a RayCluster,
    ctx: &Context,
) -> Result<Option<Cow<'a, RayCluster>>, Error> {
    // The stamp is read off the typed object (as `defaults::is_normalized` reads it off the
    // JSON): the common case then costs neither a serialization nor a copy.
    if cluster
        .annotations()
        .get(raygate_api::labels::ANNOTATION_NORMALIZED)
        .map(String::as_str)
        == Some(raygate_api::defaults::NORMALIZED_VERSION)
    {
        return Ok(Some(Cow::Borrowed(cluster)));
    }
    let name = cluster.name_any();
    let mut value = serde_json::to_value(cluster).map_err(|source| Error::Normalize {
        cluster: name.clone(),
        source,
    })?;
    raygate_api::defaults::normalize(&mut value);
    let normalized: RayCluster =
        serde_json::from_value(value).map_err(|source| Error::Normalize {
            cluster: name.clone(),
            source,
        })?;
    let verdict = raygate_api::validation::validate_raycluster(&normalized, None);
    let first = ctx.first_warning(cluster);
    if !verdict.is_allowed() {
        if first {
            let problems: Vec<String> = verdict.errors.iter().map(ToString::to_string).collect();
            ctx.events
                .warning(
                    cluster,
                    "InvalidRayClusterSpec",
                    "Validate",
                    format!("not reconciled: {}", problems.join("; ")),
                )
                .await;
        }
        return Ok(None);
    }
    if first {
        tracing::warn!("RayCluster lacks raygate.io/normalized: the webhook was bypassed");
        ctx.events
            .warning(
                cluster,
                "WebhookBypassed",
                "Reconcile",
                format!(
                    "the object was not normalized by raygate's webhook (annotation {} missing or \
                     not version {}); defaults applied in memory only",
                    raygate_api::labels::ANNOTATION_NORMALIZED,
                    raygate_api::defaults::NORMALIZED_VERSION
                ),
            )
            .await;
    }
    Ok(Some(Cow::Owned(normalized)))
}

/// The head Service (see `ensure_cached_child`).
///
/// A Service of that name the cluster does not control (the user's, or another object's) is
/// reported and left alone, and the pass stops there: workers dial the head through this name
/// (`--address=<name>.<ns>.svc...:6379`), so pods created now would look for their head behind
/// someone else's selector. The pass is retried, so the cluster converges once the name is free.
async fn ensure_head_service(
    ctx: &Context,
    cluster: &RayCluster,
    namespace: &str,
    api: &Api<Service>,
) -> Result<Service, Error> {
    let desired = services::head_service(cluster);
    let name = desired.name_any();
    let service = ensure_cached_child(ctx, cluster, namespace, api, desired).await?;
    if !is_controlled_by(&service, &cluster.uid().unwrap_or_default()) {
        ctx.events
            .warning(
                cluster,
                "FailedToCreateService",
                "Create",
                format!(
                    "Service {namespace}/{name} already exists and is not owned by this \
                     RayCluster: it is left alone and no pods are created, since workers would \
                     look for their head behind it. Delete or rename that Service, or set \
                     headGroupSpec.headService.metadata.name"
                ),
            )
            .await;
        return Err(Error::HeadServiceNotOwned {
            cluster: cluster.name_any(),
            service: name,
        });
    }
    Ok(service)
}

/// A Service of the cluster: from the cache when it is there (no request), created straight
/// away when the synced cache says it is absent, and asked of the API server only when the
/// cache can't tell or is behind (a 409 on create).
async fn ensure_cached_child(
    ctx: &Context,
    cluster: &RayCluster,
    namespace: &str,
    api: &Api<Service>,
    desired: Service,
) -> Result<Service, Error> {
    Ok(match ctx.cached_service(namespace, &desired.name_any()) {
        Some(Some(cached)) => Arc::unwrap_or_clone(cached),
        Some(None) => create_child(ctx, cluster, api, desired, "Service").await?,
        None => ensure_child(ctx, cluster, api, desired, "Service").await?,
    })
}

/// Creates a child (Service, ServiceAccount, Role, RoleBinding) if absent. Existing ones are
/// left as they are: KubeRay does not update them either, and users and cloud controllers
/// annotate Services after the fact.
async fn ensure_child<K>(
    ctx: &Context,
    cluster: &RayCluster,
    api: &Api<K>,
    desired: K,
    kind: &'static str,
) -> Result<K, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = desired.name_any();
    let get_error = |source| Error::GetChild {
        kind,
        name: name.clone(),
        source,
    };
    if let Some(existing) = api.get_opt(&name).await.map_err(get_error)? {
        return Ok(existing);
    }
    create_child(ctx, cluster, api, desired, kind).await
}

/// Creates a child believed absent; if it exists after all, returns the existing one.
async fn create_child<K>(
    ctx: &Context,
    cluster: &RayCluster,
    api: &Api<K>,
    desired: K,
    kind: &'static str,
) -> Result<K, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = desired.name_any();
    let get_error = |source| Error::GetChild {
        kind,
        name: name.clone(),
        source,
    };
    match api.create(&PostParams::default(), &desired).await {
        Ok(created) => {
            ctx.events
                .normal(
                    cluster,
                    &format!("Created{kind}"),
                    "Create",
                    format!(
                        "Created {kind} {}/{name}",
                        cluster.namespace().unwrap_or_default()
                    ),
                )
                .await;
            Ok(created)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            api.get(&name).await.map_err(get_error)
        }
        Err(source) => {
            ctx.events
                .warning(
                    cluster,
                    &format!("FailedToCreate{kind}"),
                    "Create",
                    format!("Failed to create {kind} {name}: {source}"),
                )
                .await;
            Err(Error::CreateChild { kind, name, source })
        }
    }
}

/// The autoscaler's ServiceAccount (unless the user named their own), Role and RoleBinding.
async fn ensure_autoscaler_rbac(
    ctx: &Context,
    cluster: &RayCluster,
    namespace: &str,
) -> Result<(), Error> {
    if !autoscaler::user_service_account(cluster) {
        let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), namespace);
        ensure_child(
            ctx,
            cluster,
            &accounts,
            autoscaler::service_account(cluster),
            "ServiceAccount",
        )
        .await?;
    }
    let roles: Api<Role> = Api::namespaced(ctx.client.clone(), namespace);
    ensure_child(ctx, cluster, &roles, autoscaler::role(cluster), "Role").await?;
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), namespace);
    ensure_child(
        ctx,
        cluster,
        &bindings,
        autoscaler::role_binding(cluster),
        "RoleBinding",
    )
    .await?;
    Ok(())
}

/// The pods a cluster owns, as one LIST saw them.
pub(crate) struct OwnedPods {
    /// Not terminating: the pods the cluster counts and acts on.
    pub live: Vec<Pod>,
    /// Deleted but still there, their containers still stopping: a suspend is not done, nor
    /// is the head gone for a Redis cleanup, until these are gone too.
    pub terminating: usize,
}

impl OwnedPods {
    /// No pod of the cluster exists any more, not even one still stopping.
    pub fn all_gone(&self) -> bool {
        self.live.is_empty() && self.terminating == 0
    }
}

/// Pods labelled for the cluster **and** owned by it (controller reference with its uid),
/// live and terminating apart. A pod that only carries the label is someone else's: it is
/// neither counted nor ever deleted.
pub(crate) async fn list_owned_pods(
    api: &Api<Pod>,
    cluster: &RayCluster,
) -> Result<OwnedPods, Error> {
    let name = cluster.name_any();
    let uid = cluster.uid().unwrap_or_default();
    let params = ListParams::default().labels(&format!("{RAY_CLUSTER}={name}"));
    let pods = api.list(&params).await.map_err(|source| Error::ListPods {
        cluster: name,
        source,
    })?;
    let (terminating, live): (Vec<Pod>, Vec<Pod>) = pods
        .items
        .into_iter()
        .filter(|pod| is_owned_by(pod, &uid))
        .partition(pod_state::is_terminating);
    Ok(OwnedPods {
        live,
        terminating: terminating.len(),
    })
}

pub fn is_owned_by(pod: &Pod, uid: &str) -> bool {
    is_controlled_by(pod, uid)
}

/// Whether the object's controller owner reference names the object with `uid`.
pub fn is_controlled_by<K: kube::Resource>(object: &K, uid: &str) -> bool {
    !uid.is_empty()
        && object
            .meta()
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid && o.controller == Some(true))
}

#[derive(Debug, Default)]
struct Plan {
    delete: Vec<(PodToDelete, bool)>,
    create_head: bool,
    create_workers: Vec<(String, WorkerSlot)>,
    /// Every pod goes for a cluster suspend.
    suspends: bool,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.delete.is_empty() && !self.create_head && self.create_workers.is_empty()
    }

    fn delete_all(pods: &[Pod], why: DeleteReason) -> Self {
        Plan {
            delete: pods
                .iter()
                .map(|pod| {
                    let observed = pod_state::observe(pod);
                    (
                        PodToDelete {
                            name: observed.name,
                            uid: observed.uid,
                            why,
                        },
                        pod_state::is_head(pod),
                    )
                })
                .collect(),
            ..Plan::default()
        }
    }
}

fn plan(ctx: &Context, cluster: &RayCluster, owned: &[Pod], hash: &str) -> Plan {
    if status::suspending(cluster) {
        return Plan {
            suspends: true,
            ..Plan::delete_all(owned, DeleteReason::Suspended)
        };
    }
    let heads: Vec<&Pod> = owned.iter().filter(|p| pod_state::is_head(p)).collect();
    let recreate = cluster.spec.upgrade_strategy.as_ref().and_then(|s| s.type_)
        == Some(RayClusterUpgradeType::Recreate);
    if recreate
        && let Some(head) = heads.first()
        && !spec_hash::is_current(
            head.annotations()
                .get(ANNOTATION_UPGRADE_STRATEGY_RECREATE_HASH)
                .map(String::as_str),
            &cluster.spec,
            hash,
        )
    {
        tracing::info!("pod template changed under upgradeStrategy Recreate: recreating all pods");
        return Plan::delete_all(owned, DeleteReason::Recreate);
    }

    let mut plan = Plan::default();
    // Keep one head: the oldest that still runs. A second can only come from a create whose
    // answer was lost; two GCS processes would split the cluster.
    let mut live_heads: Vec<&Pod> = Vec::new();
    for head in &heads {
        if pod_state::is_finished(head) {
            plan.delete
                .push((delete_of(head, DeleteReason::Finished), true));
        } else {
            live_heads.push(head);
        }
    }
    live_heads.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    for extra in live_heads.iter().skip(1) {
        plan.delete
            .push((delete_of(extra, DeleteReason::ScaleDown), true));
    }
    if live_heads.is_empty() {
        let provisioned = status::condition_is_true(cluster.status.as_ref(), status::PROVISIONED);
        let no_restart = cluster
            .annotations()
            .get(ANNOTATION_DISABLE_PROVISIONED_HEAD_RESTART)
            .map(String::as_str)
            == Some("true");
        plan.create_head = !(provisioned && no_restart);
    }

    let autoscaling = cluster.spec.enable_in_tree_autoscaling == Some(true);
    for group in cluster.spec.worker_group_specs.iter().flatten() {
        let observed: Vec<scaling::ObservedPod> = owned
            .iter()
            .filter(|p| pod_state::is_worker(p) && pod_state::group(p) == Some(&group.group_name))
            .map(pod_state::observe)
            .collect();
        let suspended = group.suspend == Some(true);
        let wish = GroupWish {
            replicas: if suspended {
                0
            } else {
                scaling::desired_replicas(group.replicas, group.min_replicas, group.max_replicas)
            },
            num_of_hosts: u32::try_from(group.num_of_hosts.unwrap_or(1)).unwrap_or(1),
            suspended,
            autoscaling,
            workers_to_delete: group
                .scale_strategy
                .as_ref()
                .and_then(|s| s.workers_to_delete.as_deref())
                .unwrap_or(&[]),
        };
        let group_plan =
            scaling::plan_group(&wish, &observed, || ctx.replica_name(&group.group_name));
        plan.delete
            .extend(group_plan.delete.into_iter().map(|d| (d, false)));
        plan.create_workers.extend(
            group_plan
                .create
                .into_iter()
                .map(|slot| (group.group_name.clone(), slot)),
        );
    }
    // Workers of a group the user removed from the spec would otherwise run (and cost) for
    // the cluster's lifetime. Only pods carrying a group name are taken: ours, by the owner
    // check `owned` went through, and provably of a group that is gone.
    let in_spec = |name: &str| {
        cluster
            .spec
            .worker_group_specs
            .iter()
            .flatten()
            .any(|group| group.group_name == name)
    };
    for pod in owned.iter().filter(|p| pod_state::is_worker(p)) {
        if pod_state::group(pod).is_some_and(|group| !in_spec(group)) {
            plan.delete
                .push((delete_of(pod, DeleteReason::GroupRemoved), false));
        }
    }
    plan
}

fn delete_of(pod: &Pod, why: DeleteReason) -> PodToDelete {
    let observed = pod_state::observe(pod);
    PodToDelete {
        name: observed.name,
        uid: observed.uid,
        why,
    }
}

enum Write {
    Delete(PodToDelete, bool),
    Create(Box<Pod>, Option<String>),
}

enum Written {
    Deleted(String),
    Created(Box<Pod>, bool),
}

/// What a pass's writes did.
#[derive(Default)]
struct Done {
    /// The first failure.
    failure: Option<ReplicaFailure>,
    /// The pods created, as the API server answered.
    created: Vec<Pod>,
    /// uids of the pods deleted (or found gone).
    deleted: HashSet<String>,
}

/// Runs the plan's writes, a bounded number at a time. Pod creations are reported in one
/// event per pass and kind ("Created 2 worker pods: a, b"), not one per pod: on a large
/// cluster those event writes would otherwise double the requests the pass makes.
async fn execute(
    ctx: &Context,
    cluster: &RayCluster,
    api: &Api<Pod>,
    hash: &str,
    plan: Plan,
) -> Done {
    let mut done = Done::default();
    if plan.is_empty() {
        return done;
    }
    let pod_ctx = PodContext {
        cluster,
        cluster_domain: &ctx.cluster_domain,
        template_hash: hash,
    };
    // Deletions and the head's creation go first, and the workers' creations after them:
    // where a quota admits only some pods, a worker must not take the place the head needs
    // (workers without a head do nothing), and a head that can't be created leaves its workers
    // for the retry. Deletions never wait on the head: they may be what frees its place.
    let create_head = plan.create_head;
    let mut first: Vec<Write> = plan
        .delete
        .into_iter()
        .map(|(pod, head)| Write::Delete(pod, head))
        .collect();
    if create_head {
        first.push(Write::Create(Box::new(pods::head_pod(&pod_ctx)), None));
    }
    let mut writes = Vec::new();
    for (group_name, slot) in &plan.create_workers {
        if let Some(group) = cluster
            .spec
            .worker_group_specs
            .iter()
            .flatten()
            .find(|g| &g.group_name == group_name)
        {
            writes.push(Write::Create(
                Box::new(pods::worker_pod(&pod_ctx, group, slot)),
                Some(group_name.clone()),
            ));
        }
    }
    let write_all = |writes: Vec<Write>| {
        stream::iter(writes)
            .map(|write| async move {
                match write {
                    Write::Delete(pod, head) => {
                        let uid = pod.uid.clone();
                        delete_pod(ctx, cluster, api, pod, head)
                            .await
                            .map(|()| Written::Deleted(uid))
                    }
                    Write::Create(pod, group) => {
                        let head = group.is_none();
                        create_pod(ctx, cluster, api, *pod, group)
                            .await
                            .map(|created| Written::Created(Box::new(created), head))
                    }
                }
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect::<Vec<Result<Written, ReplicaFailure>>>()
    };
    let mut outcomes = write_all(first).await;
    let head_created = outcomes
        .iter()
        .any(|outcome| matches!(outcome, Ok(Written::Created(_, true))));
    if !create_head || head_created {
        outcomes.extend(write_all(writes).await);
    }
    let mut heads = Vec::new();
    let mut workers = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(Written::Deleted(uid)) => {
                done.deleted.insert(uid);
            }
            Ok(Written::Created(pod, head)) => {
                let name = pod.name_any();
                if head { &mut heads } else { &mut workers }.push(name);
                done.created.push(*pod);
            }
            Err(failure) => {
                done.failure.get_or_insert(failure);
            }
        }
    }
    for (names, kind, reason) in [
        (heads, "head", "CreatedHeadPod"),
        (workers, "worker", "CreatedWorkerPod"),
    ] {
        let note = match names.as_slice() {
            [] => continue,
            [one] => format!("Created {kind} pod {one}"),
            many => format!("Created {} {kind} pods: {}", many.len(), many.join(", ")),
        };
        ctx.events.normal(cluster, reason, "Create", note).await;
    }
    done
}

pub(crate) async fn delete_pod(
    ctx: &Context,
    cluster: &RayCluster,
    api: &Api<Pod>,
    pod: PodToDelete,
    head: bool,
) -> Result<(), ReplicaFailure> {
    // The uid precondition makes sure the pod we decided about is the one that goes.
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(pod.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let (kind, done, failed, failed_condition) = if head {
        (
            "head",
            "DeletedHeadPod",
            "FailedToDeleteHeadPod",
            "FailedDeleteHeadPod",
        )
    } else {
        (
            "worker",
            "DeletedWorkerPod",
            "FailedToDeleteWorkerPod",
            "FailedDeleteWorkerPod",
        )
    };
    match api.delete(&pod.name, &params).await {
        Ok(_) => {
            tracing::info!(
                pod = pod.name,
                why = pod.why.describe(),
                "deleted {kind} pod"
            );
            ctx.events
                .normal(
                    cluster,
                    done,
                    "Delete",
                    format!("Deleted {kind} pod {}: {}", pod.name, pod.why.describe()),
                )
                .await;
            Ok(())
        }
        // Already gone, or replaced by a same-named pod that is not ours to judge.
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(error) => {
            let message = format!("Failed to delete {kind} pod {}: {error}", pod.name);
            ctx.events
                .warning(cluster, failed, "Delete", message.clone())
                .await;
            Err(ReplicaFailure {
                reason: failed_condition.to_string(),
                message,
            })
        }
    }
}

async fn create_pod(
    ctx: &Context,
    cluster: &RayCluster,
    api: &Api<Pod>,
    pod: Pod,
    group: Option<String>,
) -> Result<Pod, ReplicaFailure> {
    let (kind, failed, failed_condition) = match group {
        None => ("head", "FailedToCreateHeadPod", "FailedCreateHeadPod"),
        Some(_) => ("worker", "FailedToCreateWorkerPod", "FailedCreateWorkerPod"),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                tracing::debug!(pod = created.name_any(), "created {kind} pod");
                return Ok(created);
            }
            // A generated name collided; another try draws a new one.
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < 3 => continue,
            Err(error) => {
                let message = match &group {
                    Some(group) => {
                        format!("Failed to create worker pod for group {group}: {error}")
                    }
                    None => format!("Failed to create head pod: {error}"),
                };
                ctx.events
                    .warning(cluster, failed, "Create", message.clone())
                    .await;
                return Err(ReplicaFailure {
                    reason: failed_condition.to_string(),
                    message,
                });
            }
        }
    }
}

/// A JSON merge patch (RFC 7386) turning `old` into `new`: changed keys, `null` for removed
/// ones. Fields of the stored status this build does not know are left alone, and a merge
/// patch carries no resourceVersion, so it cannot conflict with another writer.
pub fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(previous) if previous == value => {}
                    Some(previous) => {
                        patch.insert(key.clone(), merge_patch(previous, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys() {
                if !new.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// Writes `status` as a merge patch over `stored`, the status as last known to be stored.
async fn write_status(
    ctx: &Context,
    cluster: &RayCluster,
    stored: Option<&RayClusterStatus>,
    status: &RayClusterStatus,
) -> Result<(), Error> {
    let name = cluster.name_any();
    let to_error = |source| Error::PatchStatus {
        cluster: name.clone(),
        source,
    };
    let old = serde_json::to_value(stored.cloned().unwrap_or_default())
        .unwrap_or(Value::Object(Default::default()));
    let new = serde_json::to_value(status).unwrap_or(Value::Object(Default::default()));
    let patch = serde_json::json!({ "status": merge_patch(&old, &new) });
    let api: Api<RayCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(to_error)?;
    ctx.written.remember(cluster, status);
    tracing::debug!(state = ?status.state, "status written");
    Ok(())
}

fn observe_provisioning(ctx: &Context, cluster: &RayCluster, new: &RayClusterStatus) {
    let was = status::condition_is_true(cluster.status.as_ref(), status::PROVISIONED);
    let is = status::condition_is_true(Some(new), status::PROVISIONED);
    if !was
        && is
        && let Some(created) = &cluster.metadata.creation_timestamp
    {
        let took = Timestamp::now().duration_since(created.0);
        if let Ok(took) = Duration::try_from(took) {
            ctx.metrics.provisioned_after(took);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_nulls_removed_fields_and_skips_equal_ones() {
        let old = json!({"state": "ready", "head": {"podIP": "127.0.0.2", "podName": "h"}, "reason": "x"});
        let new = json!({"state": "ready", "head": {"podName": "h2"}});
        assert_eq!(
            merge_patch(&old, &new),
            json!({"head": {"podIP": null, "podName": "h2"}, "reason": null})
        );
    }

    fn cluster_at(resource_version: &str) -> RayCluster {
        serde_json::from_value(json!({
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {"name": "c", "namespace": "n", "uid": "u1", "resourceVersion": resource_version},
            "spec": {"headGroupSpec": {"template": {"spec": {"containers": []}}}},
        }))
        .expect("a RayCluster")
    }

    #[test]
    fn a_pass_comes_no_sooner_than_the_gap_after_the_last() {
        let passes = PassTimes::default();
        assert_eq!(passes.too_soon("u1"), None, "a first pass runs at once");
        passes.ended("u1".into());
        let wait = passes.too_soon("u1").expect("too soon");
        assert!(wait <= MIN_PASS_GAP && !wait.is_zero(), "{wait:?}");
        assert_eq!(passes.too_soon("u2"), None, "other clusters are not held");
        std::thread::sleep(MIN_PASS_GAP);
        assert_eq!(passes.too_soon("u1"), None);
    }

    #[test]
    fn a_written_status_stands_in_until_the_cache_shows_a_newer_object() {
        let written = WrittenStatuses::default();
        let status = RayClusterStatus {
            state: Some("ready".into()),
            ..RayClusterStatus::default()
        };
        let before = cluster_at("10");
        assert_eq!(written.unseen(&before), None);
        written.remember(&before, &status);
        // The cache still shows the object the write was made against.
        assert_eq!(written.unseen(&before), Some(status.clone()));
        assert_eq!(written.unseen(&before), Some(status));
        // Once it shows a newer one, the cache is the truth again, and the entry is gone.
        assert_eq!(written.unseen(&cluster_at("11")), None);
        assert_eq!(written.unseen(&before), None);
    }
}
