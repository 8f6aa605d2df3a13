//! The RayJob controller: runs a batch job on a RayCluster it creates (or one a
//! `clusterSelector` names), submits it in the job's submission mode, follows it through the
//! Ray dashboard, and cleans up after it, as KubeRay's RayJob controller does.

pub mod cluster;
pub mod deletion;
pub mod reconcile;
pub mod state;
pub mod submitter;

use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::{Predicate, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client};
use raygate_api::labels::RAY_ORIGINATED_FROM_CRD;
use raygate_api::{RayCluster, RayJob};

pub use reconcile::JobContext;

/// The RayJob controller for one namespace (or all). Clusters and submitter Jobs are watched
/// only when they came from a RayJob; a change to one wakes its RayJob.
pub fn controller(
    client: &Client,
    namespace: Option<String>,
    concurrency: u16,
    context: Arc<JobContext>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> + Send {
    let namespace = namespace.as_deref();
    let jobs: Api<RayJob> = crate::scoped(client, namespace);
    let clusters: Api<PartialObjectMeta<RayCluster>> = crate::scoped(client, namespace);
    let submitters: Api<PartialObjectMeta<Job>> = crate::scoped(client, namespace);
    let children = watcher::Config::default().labels(&format!("{RAY_ORIGINATED_FROM_CRD}=RayJob"));
    let cluster_events = watcher(clusters, children.clone())
        .default_backoff()
        .touched_objects();
    let submitter_events = watcher(submitters, children)
        .default_backoff()
        .touched_objects();
    // Status writes are this controller's own; spec, label, annotation, finalizer and
    // deletion changes are the user's and wake the job. Active jobs requeue themselves.
    let (reader, writer) = reflector::store();
    let job_events = watcher(jobs, watcher::Config::default())
        .default_backoff()
        .modify(crate::strip_managed_fields)
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
    Controller::for_stream(job_events, reader)
        .owns_stream(cluster_events)
        .owns_stream(submitter_events)
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                tracing::debug!(%error, "RayJob reconcile request ended with an error");
            }
        })
}

fn deleting(job: &RayJob) -> Option<u64> {
    Some(u64::from(job.metadata.deletion_timestamp.is_some()))
}
