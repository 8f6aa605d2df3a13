//! Deleting a RayCluster with Redis-backed GCS fault tolerance: the pods go first, then a
//! Job removes the cluster's keys from Redis, then the finalizer is lifted so Kubernetes
//! completes the deletion. A cleanup that never ends is cut off after
//! `ray.io/gcs-ft-deletion-timeout` seconds, so a lost Redis cannot pin the object forever.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use raygate_api::RayCluster;
use serde_json::json;

use crate::error::Error;
use crate::gcs_ft::{self, Backend};
use crate::pod_state;
use crate::pods::{PodContext, head_pod};
use crate::reconcile::{Context, delete_pod, list_owned_pods};
use crate::scaling::{DeleteReason, PodToDelete};
use crate::spec_hash::pod_template_hash;

const POLL: Duration = Duration::from_secs(3);

/// Adds the cleanup finalizer; the resourceVersion makes it a compare-and-swap with other
/// writers of `metadata.finalizers`.
pub async fn add_finalizer(ctx: &Context, cluster: &RayCluster) -> Result<(), Error> {
    let mut finalizers = cluster.finalizers().to_vec();
    finalizers.push(gcs_ft::FINALIZER.to_string());
    patch_finalizers(ctx, cluster, finalizers).await
}

async fn remove_finalizer(ctx: &Context, cluster: &RayCluster) -> Result<(), Error> {
    let finalizers: Vec<String> = cluster
        .finalizers()
        .iter()
        .filter(|f| *f != gcs_ft::FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(ctx, cluster, finalizers).await
}

async fn patch_finalizers(
    ctx: &Context,
    cluster: &RayCluster,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let name = cluster.name_any();
    let api: Api<RayCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": cluster.resource_version(),
    }});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Finalizer {
            cluster: name,
            source,
        })?;
    Ok(())
}

/// One pass of the deletion of a cluster that carries the cleanup finalizer.
pub async fn finalize(ctx: &Context, cluster: &RayCluster) -> Result<Action, Error> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    if gcs_ft::backend(cluster) != Some(Backend::Redis) {
        // A stale finalizer (the backend is not Redis any more): nothing to clean.
        remove_finalizer(ctx, cluster).await?;
        return Ok(Action::await_change());
    }
    let timeout = gcs_ft::deletion_timeout_seconds(cluster);
    if let Some(deleted) = &cluster.metadata.deletion_timestamp
        && deleted.0 + SignedDuration::from_secs(timeout) < Timestamp::now()
    {
        ctx.events
            .warning(
                cluster,
                "ForceDeletedStuckCluster",
                "Cleanup",
                format!(
                    "Redis cleanup did not finish within {timeout} s of deletion; removing \
                     finalizer {} anyway (keys may remain in Redis)",
                    gcs_ft::FINALIZER
                ),
            )
            .await;
        remove_finalizer(ctx, cluster).await?;
        return Ok(Action::await_change());
    }

    // The head must be gone first: a live GCS would write its state back after the cleanup.
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let owned = list_owned_pods(&pods_api, cluster).await?;
    for pod in &owned.live {
        let target = PodToDelete {
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            why: DeleteReason::Suspended,
        };
        if let Err(failure) =
            delete_pod(ctx, cluster, &pods_api, target, pod_state::is_head(pod)).await
        {
            return Err(Error::ReplicaFailure {
                cluster: name,
                message: failure.message,
            });
        }
    }
    // A terminating head still runs its GCS until its grace period ends.
    if !list_owned_pods(&pods_api, cluster).await?.all_gone() {
        return Ok(Action::requeue(POLL));
    }

    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let job_name = gcs_ft::cleanup_job_name(cluster);
    let job_error = |source| Error::CleanupJob {
        cluster: name.clone(),
        source,
    };
    match jobs.get_opt(&job_name).await.map_err(job_error)? {
        Some(job) if gcs_ft::job_finished(&job) => {
            remove_finalizer(ctx, cluster).await?;
            Ok(Action::await_change())
        }
        Some(_) => Ok(Action::requeue(POLL)),
        None => {
            let hash = pod_template_hash(&cluster.spec);
            let pod_ctx = PodContext {
                cluster,
                cluster_domain: &ctx.cluster_domain,
                template_hash: &hash,
            };
            let job = gcs_ft::cleanup_job(cluster, &head_pod(&pod_ctx));
            match jobs.create(&PostParams::default(), &job).await {
                Ok(_) => {
                    ctx.events
                        .normal(
                            cluster,
                            "CreatedRedisCleanupJob",
                            "Create",
                            format!("Created Redis cleanup Job {job_name}"),
                        )
                        .await;
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(source) => {
                    ctx.events
                        .warning(
                            cluster,
                            "FailedToCreateRedisCleanupJob",
                            "Create",
                            format!("Failed to create Redis cleanup Job {job_name}: {source}"),
                        )
                        .await;
                    return Err(job_error(source));
                }
            }
            Ok(Action::requeue(POLL))
        }
    }
}
