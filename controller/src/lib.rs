//! The lean controller: turns normalized RayClusters into Pods and Services and reports
//! status. It trusts the spec the webhook admitted; its only defaulting is the same pure
//! `normalize` the webhook runs, applied in memory when an object lacks the webhook's stamp.
//!
//! Pure parts (pod and Service builders, scaling decisions, status) are plain functions in
//! their own modules; [`reconcile`] does the I/O and [`run`] wires watches, leader election
//! and the admin port.

pub mod admin;
pub mod auth;
pub mod autoscaler;
pub mod cleanup;
pub mod dashboard;
pub mod desired_resources;
pub mod error;
pub mod events;
pub mod expiring;
pub mod gcs_ft;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod pod_state;
pub mod pods;
pub mod ray_start;
pub mod raycronjob;
pub mod rayjob;
pub mod rayservice;
pub mod reconcile;
pub mod scaling;
pub mod services;
pub mod spec_hash;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::{Predicate, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client};
use raygate_api::RayCluster;
use raygate_api::labels::{RAY_CLUSTER, RAY_HEADLESS_WORKER_SVC};
use tokio::sync::watch;

pub use error::Error;
pub use leader::LeaseOptions;
pub use metrics::Metrics;

/// RayClusters per page of a watch's initial LIST. Each is several KB with its templates and
/// written-in defaults; a page of kube's default 500 is held whole while it is decoded, which
/// set the controller's peak memory when it started with hundreds of clusters stored.
const LIST_PAGE: u32 = 50;
/// How often `raygate_clusters` is recounted from the watch cache.
const CLUSTER_STATE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a stopping controller waits for its queued events to be written.
const EVENT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Options {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// DNS domain of the cluster, for the head Service's FQDN that workers dial.
    pub cluster_domain: String,
    pub admin_listen: SocketAddr,
    /// `None`: act at once, without a lease (a single replica).
    pub leader_election: Option<LeaseOptions>,
    /// RayClusters reconciled at the same time (0: unbounded).
    pub concurrency: u16,
    /// Names this replica in events and the lease.
    pub identity: String,
    /// Every Ray dashboard request goes here instead of the head Service: for tests and local
    /// runs whose Ray head is a process on this machine.
    pub dashboard_override: Option<String>,
}

/// Runs until `shutdown` completes (then returns `Ok`) or the leader lease is lost.
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let listener = admin::bind(options.admin_listen).await?;
    tracing::info!(address = %options.admin_listen, "admin endpoints listening");
    let admin_state = admin::AdminState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let admin = tokio::spawn(admin::serve(
        listener,
        admin_state,
        stopped(stop_rx.clone()),
    ));

    let mut lease = None;
    if let Some(lease_options) = options.leader_election.clone() {
        // A standby is healthy and ready: it is doing its job, waiting.
        ready.store(true, Ordering::Release);
        tracing::info!(
            lease = lease_options.name,
            identity = lease_options.identity,
            "waiting for the leader lease"
        );
        tokio::select! {
            acquired = leader::LeaderLease::acquire(client.clone(), lease_options) => {
                lease = Some(acquired?);
            }
            () = stopped(stop_rx.clone()) => {
                let _ = admin.await;
                return Ok(());
            }
        }
        ready.store(false, Ordering::Release);
    }
    metrics.set_leader(true);

    let event_writers = events::EventWriters::default();
    let job_context = Arc::new(rayjob::JobContext {
        client: client.clone(),
        cluster_domain: options.cluster_domain.clone(),
        events: events::EventSink::for_reporter(
            client.clone(),
            events::RAYJOB_REPORTER,
            Some(options.identity.clone()),
            &event_writers,
        ),
        metrics: metrics.clone(),
        dashboard_override: options.dashboard_override.clone(),
        tokens: auth::TokenCache::default(),
    });
    let service_context = Arc::new(rayservice::ServiceContext {
        client: client.clone(),
        cluster_domain: options.cluster_domain.clone(),
        events: events::EventSink::for_reporter(
            client.clone(),
            events::RAYSERVICE_REPORTER,
            Some(options.identity.clone()),
            &event_writers,
        ),
        metrics: metrics.clone(),
        dashboard_override: options.dashboard_override.clone(),
        tokens: auth::TokenCache::default(),
    });
    let cron_context = Arc::new(raycronjob::CronContext {
        client: client.clone(),
        events: events::EventSink::for_reporter(
            client.clone(),
            events::RAYCRONJOB_REPORTER,
            Some(options.identity.clone()),
            &event_writers,
        ),
        metrics: metrics.clone(),
    });
    let scopes: Vec<Option<String>> = if options.namespaces.is_empty() {
        vec![None]
    } else {
        options.namespaces.iter().cloned().map(Some).collect()
    };
    // Two Service caches per scope, filled by the controllers' Service watches and read by
    // every pass: a head or headless worker Service that exists costs no request.
    let (service_stores, service_writers): (Vec<_>, Vec<_>) = scopes
        .iter()
        .map(|_| {
            let (labelled, labelled_writer) = reflector::store::<Service>();
            let (headless, headless_writer) = reflector::store::<Service>();
            (
                [labelled, headless],
                ServiceWriters {
                    labelled: labelled_writer,
                    headless: headless_writer,
                },
            )
        })
        .unzip();
    let service_stores = service_stores.into_iter().flatten().collect();
    let context = Arc::new(reconcile::Context::new(
        client.clone(),
        options.cluster_domain.clone(),
        events::EventSink::new(
            client.clone(),
            Some(options.identity.clone()),
            &event_writers,
        ),
        metrics.clone(),
        service_stores,
    ));
    let mut stores = Vec::new();
    let mut controllers = Vec::new();
    for (scope, writers) in scopes.into_iter().zip(service_writers) {
        let (controller, store) = cluster_controller(
            &client,
            scope.clone(),
            options.concurrency,
            context.clone(),
            writers,
            stopped(stop_rx.clone()),
        );
        stores.push(store);
        controllers.push(controller.boxed());
        controllers.push(
            rayjob::controller(
                &client,
                scope.clone(),
                options.concurrency,
                job_context.clone(),
                stopped(stop_rx.clone()),
            )
            .boxed(),
        );
        controllers.push(
            rayservice::controller(
                &client,
                scope.clone(),
                options.concurrency,
                service_context.clone(),
                stopped(stop_rx.clone()),
            )
            .boxed(),
        );
        controllers.push(
            raycronjob::controller(
                &client,
                scope.clone(),
                options.concurrency,
                cron_context.clone(),
                stopped(stop_rx.clone()),
            )
            .boxed(),
        );
    }
    let readiness = ready.clone();
    let cluster_metrics = metrics.clone();
    tokio::spawn(async move {
        for store in &stores {
            // The store's readiness is a oneshot that wakes only its latest waiter, and the
            // controller itself waits on it too; so look again periodically.
            loop {
                match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready())
                    .await
                {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return,
                    Err(_) => continue,
                }
            }
        }
        readiness.store(true, Ordering::Release);
        tracing::info!("watches synced; reconciling");
        loop {
            let mut counts = std::collections::BTreeMap::new();
            for store in &stores {
                for cluster in store.state() {
                    let state = cluster
                        .status
                        .as_ref()
                        .and_then(|s| s.state.clone())
                        .unwrap_or_else(|| "none".to_string());
                    *counts.entry(state).or_insert(0i64) += 1;
                }
            }
            cluster_metrics.set_cluster_states(&counts);
            tokio::time::sleep(CLUSTER_STATE_INTERVAL).await;
        }
    });

    let outcome = match lease.as_mut() {
        Some(held) => {
            tokio::select! {
                _ = join_all(controllers) => Ok(()),
                lost = held.keep() => Err(lost),
            }
        }
        None => {
            join_all(controllers).await;
            Ok(())
        }
    };
    metrics.set_leader(false);
    ready.store(false, Ordering::Release);
    // The controllers are gone; with the last sinks dropped, the event writers finish what
    // the last passes queued, before the lease goes to another replica.
    drop((context, job_context, service_context, cron_context));
    event_writers.finish(EVENT_FLUSH_TIMEOUT).await;
    if let (Some(held), Ok(())) = (lease, &outcome) {
        held.release().await;
    }
    if outcome.is_err() {
        // No shutdown signal comes for a lost lease: the process exits now, to be restarted
        // as a standby.
        admin.abort();
    } else {
        let _ = admin.await;
    }
    outcome
}

/// Resolves once the shutdown flag is raised (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

type Store = kube::runtime::reflector::Store<RayCluster>;

/// The writers of one scope's Service caches: those labelled `ray.io/cluster` (the head
/// Service) and those labelled `ray.io/headless-worker-svc` (multi-host groups' headless
/// Service, which carries only that label, as in KubeRay).
struct ServiceWriters {
    labelled: reflector::store::Writer<Service>,
    headless: reflector::store::Writer<Service>,
}

/// The RayCluster controller for one namespace (or all). Pods and Services are watched only
/// when labelled `ray.io/cluster`, so memory follows Ray's objects, not the size of the
/// cluster; a change to one wakes its owning RayCluster. Pods are watched metadata-only (a
/// pass lists its own); Services are cached whole (without managedFields) for `writers`.
fn cluster_controller(
    client: &Client,
    namespace: Option<String>,
    concurrency: u16,
    context: Arc<reconcile::Context>,
    writers: ServiceWriters,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> (impl Future<Output = ()> + Send, Store) {
    let namespace = namespace.as_deref();
    let clusters: Api<RayCluster> = scoped(client, namespace);
    let pods: Api<PartialObjectMeta<Pod>> = scoped(client, namespace);
    let services: Api<Service> = scoped(client, namespace);
    let children = watcher::Config::default().labels(RAY_CLUSTER);
    // `PartialObjectMeta`: the API server sends only metadata, not the pods' specs.
    let pod_events = watcher(pods, children.clone())
        .default_backoff()
        .touched_objects();
    let headless_events = watcher(
        services.clone(),
        watcher::Config::default().labels(RAY_HEADLESS_WORKER_SVC),
    )
    .default_backoff()
    .modify(strip_managed_fields)
    .reflect(writers.headless)
    .touched_objects();
    let service_events = watcher(services, children)
        .default_backoff()
        .modify(strip_managed_fields)
        .reflect(writers.labelled)
        .touched_objects();
    // Only spec, label and annotation changes wake a cluster, as in KubeRay: the status this
    // controller writes would otherwise trigger a pass of its own each time.
    let (reader, writer) = reflector::store();
    let cluster_events = watcher(clusters, watcher::Config::default().page_size(LIST_PAGE))
        .default_backoff()
        .modify(strip_managed_fields)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::labels)
                .combine(predicates::annotations)
                .combine(predicates::finalizers)
                .combine(deleting),
            Default::default(),
        );
    let controller = Controller::for_stream(cluster_events, reader)
        .owns_stream(pod_events)
        .owns_stream(service_events)
        .owns_stream(headless_events)
        // No debounce: kube's is trailing-edge, so a cluster whose objects change more often
        // than its period (pods starting by the hundred, a busy autoscaler) would never be
        // reconciled while that lasts. Passes are spaced instead (`MIN_PASS_GAP` in
        // reconcile.rs), and events that arrive while a cluster's pass runs are coalesced into
        // one more pass, so creating 50 workers still costs a few.
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown);
    let store = controller.store();
    let run = controller
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                tracing::debug!(%error, "reconcile request ended with an error");
            }
        });
    (run, store)
}

/// managedFields can be as large as the object itself and nothing here reads them; cached
/// objects drop them.
pub(crate) fn strip_managed_fields<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Changes when deletion starts, which moves neither generation nor labels.
fn deleting(cluster: &RayCluster) -> Option<u64> {
    Some(u64::from(cluster.metadata.deletion_timestamp.is_some()))
}

pub(crate) fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}
