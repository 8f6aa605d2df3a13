//! The RayService controller: runs Ray Serve applications on a RayCluster it creates, applies
//! `serveConfigV2` through the Ray dashboard, and upgrades without downtime: a cluster spec
//! change brings up a new cluster, which takes over the RayService's Services only once its
//! applications run; the old cluster is deleted after `rayClusterDeletionDelaySeconds`.

pub mod gateway;
pub mod incremental;
pub mod plan;
pub mod reconcile;
pub mod services;
mod upgrade;

use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::{Predicate, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client};
use raygate_api::labels::RAY_ORIGINATED_FROM_CRD;
use raygate_api::{RayCluster, RayService};

pub use reconcile::ServiceContext;

/// The RayService controller for one namespace (or all). Every RayService is looked at every
/// 2 s (Serve's state lives in Ray, which has no watch); its clusters and Services wake it too.
pub fn controller(
    client: &Client,
    namespace: Option<String>,
    concurrency: u16,
    context: Arc<ServiceContext>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> + Send {
    let namespace = namespace.as_deref();
    let services: Api<RayService> = crate::scoped(client, namespace);
    let clusters: Api<PartialObjectMeta<RayCluster>> = crate::scoped(client, namespace);
    let owned_services: Api<PartialObjectMeta<Service>> = crate::scoped(client, namespace);
    let children =
        watcher::Config::default().labels(&format!("{RAY_ORIGINATED_FROM_CRD}=RayService"));
    let cluster_events = watcher(clusters, children.clone())
        .default_backoff()
        .touched_objects();
    let service_events = watcher(owned_services, children)
        .default_backoff()
        .touched_objects();
    let (reader, writer) = reflector::store();
    let events = watcher(services, watcher::Config::default())
        .default_backoff()
        .modify(crate::strip_managed_fields)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::labels)
                .combine(predicates::annotations),
            Default::default(),
        );
    Controller::for_stream(events, reader)
        .owns_stream(cluster_events)
        .owns_stream(service_events)
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                tracing::debug!(%error, "RayService reconcile request ended with an error");
            }
        })
}
