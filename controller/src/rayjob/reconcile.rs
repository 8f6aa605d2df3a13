//! One reconcile pass of a RayJob: act on its `jobDeploymentStatus`, then write the new status
//! (a PUT of the status subresource with the object's resourceVersion, so a stale pass can't
//! overwrite a newer one) and record the transition as an event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use raygate_api::labels::{MANAGED_BY_KUBERAY, RAY_CLUSTER, RAY_NODE_TYPE};
use raygate_api::rayjob::{DeletionPolicyType, RayJobInfo};
use raygate_api::{RayCluster, RayJob, RayJobStatus};
use serde_json::json;

use super::cluster::{cluster_for_job, cluster_name, job_id};
use super::state::{
    self, STATUS_CHECK_TIMEOUT, SUBMITTER_FINISHED_GRACE, SubmissionMode, TRANSITION_GRACE_PERIOD,
    deployment, job_status, reason,
};
use super::{deletion, submitter};
use crate::dashboard::{DashboardClient, SubmitOutcome};
use crate::error::Error;
use crate::events::EventSink;
use crate::metrics::Metrics;
use crate::services;
use crate::status::STATE_READY;

/// KubeRay's finalizer: lets raygate stop the Ray job when its RayJob is deleted.
pub const FINALIZER: &str = "ray.io/rayjob-finalizer";
/// A job that is not finished is looked at this often (KubeRay: 3 s).
const REQUEUE_ACTIVE: Duration = Duration::from_secs(3);
/// After a transition, the next state acts almost at once.
const REQUEUE_TRANSITION: Duration = Duration::from_millis(200);
/// Ray puts up to 20,000 characters of driver logs into a failed job's message; the status
/// keeps their start (the whole log is in Ray and the submitter's pod).
const MAX_STATUS_MESSAGE: usize = 2000;
/// events.k8s.io rejects notes over 1 KiB.
const MAX_EVENT_NOTE: usize = 1000;
/// KubeRay's dashboard client timeout for direct connections.
const DASHBOARD_TIMEOUT: Duration = Duration::from_secs(2);

pub struct JobContext {
    pub client: Client,
    pub cluster_domain: String,
    pub events: EventSink,
    pub metrics: Arc<Metrics>,
    /// Sends every dashboard request here instead of the head Service (tests and local runs,
    /// where the Ray head is a local process on loopback).
    pub dashboard_override: Option<String>,
    /// Ray auth tokens read from clusters\' Secrets (see [`crate::auth::TokenCache`]).
    pub tokens: crate::auth::TokenCache,
}

impl JobContext {
    fn dashboard(&self, status: &RayJobStatus) -> Option<DashboardClient> {
        let base = match &self.dashboard_override {
            Some(url) => url.clone(),
            None => format!("http://{}", status.dashboard_url.as_deref()?),
        };
        match DashboardClient::new(&base, DASHBOARD_TIMEOUT) {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::warn!(%error, base, "no dashboard client");
                None
            }
        }
    }
}

pub async fn reconcile(job: Arc<RayJob>, ctx: Arc<JobContext>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_job(&job, &ctx).await;
    ctx.metrics.reconciled(
        "RayJob",
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

pub fn error_policy(job: Arc<RayJob>, error: &Error, _ctx: Arc<JobContext>) -> Action {
    tracing::warn!(
        namespace = job.namespace().unwrap_or_default(),
        name = job.name_any(),
        %error,
        "RayJob reconcile failed; retrying"
    );
    Action::requeue(Duration::from_secs(3))
}

/// What a state handler decided: the status to store and when to look again.
struct Step {
    status: RayJobStatus,
    requeue: Option<Duration>,
}

impl Step {
    fn stay(status: RayJobStatus, requeue: Duration) -> Self {
        Self {
            status,
            requeue: Some(requeue),
        }
    }

    fn to(mut status: RayJobStatus, next: &str) -> Self {
        status.job_deployment_status = Some(next.to_string());
        Self {
            status,
            requeue: Some(REQUEUE_TRANSITION),
        }
    }

    fn fail(mut status: RayJobStatus, why: &str, message: String) -> Self {
        status.reason = Some(why.to_string());
        status.message = Some(message);
        Self::to(status, deployment::FAILED)
    }
}

struct Io<'a> {
    ctx: &'a JobContext,
    job: &'a RayJob,
    name: String,
    namespace: String,
}

impl Io<'_> {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    fn error(&self, action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error + '_ {
        let action = action.into();
        move |source| Error::ObjectApi {
            object: format!("RayJob {}/{}", self.namespace, self.name),
            action,
            source,
        }
    }
}

#[tracing::instrument(skip_all, fields(kind = "RayJob", namespace = job.namespace(), name = job.name_any()))]
async fn reconcile_job(job: &RayJob, ctx: &JobContext) -> Result<Action, Error> {
    if let Some(manager) = job.spec.managed_by.as_deref()
        && manager != MANAGED_BY_KUBERAY
    {
        tracing::debug!(manager, "managed by another controller; skipped");
        return Ok(Action::await_change());
    }
    let io = Io {
        ctx,
        job,
        name: job.name_any(),
        namespace: job.namespace().unwrap_or_default(),
    };
    if job.metadata.deletion_timestamp.is_some() {
        return finalize(&io).await;
    }
    let current = state::deployment_status(job).to_string();
    if current == deployment::VALIDATION_FAILED {
        return Ok(Action::await_change());
    }
    let status = job.status.clone().unwrap_or_default();
    let verdict = raygate_api::validation::validate_rayjob(job, None);
    if !verdict.is_allowed() {
        let problems: Vec<String> = verdict.errors.iter().map(ToString::to_string).collect();
        let step = Step {
            status: RayJobStatus {
                job_deployment_status: Some(deployment::VALIDATION_FAILED.to_string()),
                reason: Some(reason::VALIDATION_FAILED.to_string()),
                message: Some(problems.join("; ")),
                ..status
            },
            requeue: None,
        };
        return finish(&io, step).await;
    }
    let now = Timestamp::now();
    let step = match current.as_str() {
        deployment::NEW => start(&io, status, now).await?,
        deployment::INITIALIZING => initialize(&io, status, now).await?,
        deployment::WAITING => wait_for_job_id(&io, status, now),
        deployment::RUNNING => run(&io, status, now).await?,
        deployment::SUSPENDING | deployment::RETRYING => tear_down(&io, status, &current).await?,
        deployment::SUSPENDED => {
            if job.spec.suspend == Some(true) {
                Step {
                    status,
                    requeue: None,
                }
            } else {
                Step::to(status, deployment::NEW)
            }
        }
        deployment::COMPLETE | deployment::FAILED => return clean_up_finished(&io, now).await,
        other => {
            tracing::warn!(status = other, "unknown jobDeploymentStatus; left alone");
            return Ok(Action::await_change());
        }
    };
    finish(&io, step).await
}

/// Stores the step's status (with the counters, times and events of a transition) and says
/// when to come back.
async fn finish(io: &Io<'_>, step: Step) -> Result<Action, Error> {
    let old = io.job.status.clone().unwrap_or_default();
    let mut status = step.status;
    let from = old.job_deployment_status.clone().unwrap_or_default();
    let mut to = status.job_deployment_status.clone().unwrap_or_default();
    let mut requeue = step.requeue;
    if to != from {
        match to.as_str() {
            deployment::COMPLETE => {
                status.end_time = Some(Time(Timestamp::now()));
                if status.job_status.as_deref() == Some(job_status::SUCCEEDED) {
                    status.succeeded = Some(status.succeeded.unwrap_or(0) + 1);
                }
            }
            deployment::FAILED => {
                status.end_time = Some(Time(Timestamp::now()));
                status.failed = Some(status.failed.unwrap_or(0) + 1);
            }
            _ => {}
        }
        if to == deployment::FAILED {
            let mut probe = io.job.clone();
            probe.status = Some(status.clone());
            if state::should_retry(&probe) {
                to = deployment::RETRYING.to_string();
                status.job_deployment_status = Some(to.clone());
                requeue = Some(REQUEUE_TRANSITION);
            }
        }
        if matches!(
            to.as_str(),
            deployment::COMPLETE | deployment::FAILED | deployment::RETRYING
        ) {
            let ran = status
                .start_time
                .as_ref()
                .map(|t| Timestamp::now().duration_since(t.0))
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or_default();
            io.ctx.metrics.job_finished(&to, ran);
        }
    }
    status.observed_generation = io.job.metadata.generation;
    if status != old {
        write_status(io, status.clone()).await?;
    }
    if to != from {
        transition_event(io, &from, &to, &status).await;
        if status.reason.as_deref() == Some(reason::DEADLINE_EXCEEDED) {
            stop_ray_job(io, &status, "its RayJob passed activeDeadlineSeconds").await;
        }
    }
    Ok(match (to.as_str(), requeue) {
        (deployment::COMPLETE | deployment::FAILED, _) => Action::requeue(REQUEUE_TRANSITION),
        (_, Some(after)) => Action::requeue(after),
        (_, None) => Action::await_change(),
    })
}

async fn transition_event(io: &Io<'_>, from: &str, to: &str, status: &RayJobStatus) {
    let from = if from.is_empty() { "New" } else { from };
    let mut note = format!("jobDeploymentStatus {from} -> {to}");
    if let Some(why) = status.reason.as_deref().filter(|_| {
        matches!(
            to,
            deployment::FAILED | deployment::RETRYING | deployment::VALIDATION_FAILED
        )
    }) {
        note.push_str(&format!(
            " ({why}: {})",
            status.message.as_deref().unwrap_or("")
        ));
    }
    let note = truncate(&note, MAX_EVENT_NOTE);
    let events = &io.ctx.events;
    if matches!(
        to,
        deployment::FAILED | deployment::RETRYING | deployment::VALIDATION_FAILED
    ) {
        events.warning(io.job, to, "Reconcile", note).await;
    } else {
        events.normal(io.job, to, "Reconcile", note).await;
    }
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

async fn write_status(io: &Io<'_>, status: RayJobStatus) -> Result<(), Error> {
    let mut updated = io.job.clone();
    updated.status = Some(status);
    io.api::<RayJob>()
        .replace_status(&io.name, &PostParams::default(), &updated)
        .await
        .map_err(io.error("writing the status"))?;
    Ok(())
}

/// New: the finalizer, the job id and cluster name this attempt uses, the start time.
async fn start(io: &Io<'_>, mut status: RayJobStatus, now: Timestamp) -> Result<Step, Error> {
    if !io.job.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = io.job.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": io.job.resource_version(),
        }});
        io.api::<RayJob>()
            .patch(&io.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(io.error("adding the finalizer"))?;
        // The patch moved the resourceVersion: the next pass writes the status.
        return Ok(Step::stay(status, REQUEUE_TRANSITION));
    }
    status.job_id = Some(job_id(io.job));
    status.ray_cluster_name = Some(cluster_name(io.job));
    status.job_status = Some(job_status::NEW.to_string());
    status.start_time.get_or_insert(Time(now));
    status.end_time = None;
    Ok(if io.job.spec.suspend == Some(true) {
        Step::to(status, deployment::SUSPENDED)
    } else {
        Step::to(status, deployment::INITIALIZING)
    })
}

/// Initializing: get or create the cluster, wait until it is ready, then start the submission.
async fn initialize(io: &Io<'_>, mut status: RayJobStatus, now: Timestamp) -> Result<Step, Error> {
    let job = io.job;
    if job.spec.suspend == Some(true) && job.spec.cluster_selector.is_none() {
        return Ok(Step::to(status, deployment::SUSPENDING));
    }
    if let Some(step) = deadline(job, &status, now) {
        return Ok(step);
    }
    if state::pre_running_deadline_exceeded(job, now) {
        return Ok(Step::fail(
            status,
            reason::PRE_RUNNING_DEADLINE_EXCEEDED,
            format!(
                "the job did not start running within preRunningDeadlineSeconds ({})",
                job.spec.pre_running_deadline_seconds.unwrap_or_default()
            ),
        ));
    }
    let Some(cluster_name) = status.ray_cluster_name.clone() else {
        return Ok(Step::to(status, deployment::NEW));
    };
    let clusters = io.api::<RayCluster>();
    let cluster = clusters
        .get_opt(&cluster_name)
        .await
        .map_err(io.error(format!("reading RayCluster {cluster_name}")))?;
    let Some(cluster) = cluster else {
        if job.spec.cluster_selector.is_some() {
            io.ctx
                .events
                .warning(
                    job,
                    "RayClusterNotFound",
                    "Reconcile",
                    format!(
                        "RayCluster {cluster_name} named by spec.clusterSelector does not exist"
                    ),
                )
                .await;
            return Err(Error::SelectedClusterNotFound {
                job: io.name.clone(),
                cluster: cluster_name,
            });
        }
        let job_id = status.job_id.clone().unwrap_or_default();
        let Some(desired) = cluster_for_job(job, &cluster_name, &job_id) else {
            return Ok(Step::fail(
                status,
                reason::VALIDATION_FAILED,
                "spec.rayClusterSpec or spec.clusterSelector is required".to_string(),
            ));
        };
        match clusters.create(&PostParams::default(), &desired).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Ok(_) => {
                io.ctx
                    .events
                    .normal(
                        job,
                        "CreatedRayCluster",
                        "Create",
                        format!("Created RayCluster {}/{cluster_name}", io.namespace),
                    )
                    .await;
            }
            Err(source) => {
                io.ctx
                    .events
                    .warning(
                        job,
                        "FailedToCreateRayCluster",
                        "Create",
                        format!("Failed to create RayCluster {cluster_name}: {source}"),
                    )
                    .await;
                return Err(io.error(format!("creating RayCluster {cluster_name}"))(
                    source,
                ));
            }
        }
        return Ok(Step::stay(status, REQUEUE_ACTIVE));
    };
    status.ray_cluster_status = cluster.status.clone();
    let ready = cluster.status.as_ref().and_then(|s| s.state.as_deref()) == Some(STATE_READY);
    if !ready {
        return Ok(Step::stay(status, REQUEUE_ACTIVE));
    }
    status.dashboard_url = Some(format!(
        "{}:{}",
        crate::names::head_service_fqdn(
            &services::head_service_name(&cluster),
            &io.namespace,
            &io.ctx.cluster_domain
        ),
        submitter::dashboard_port(&cluster.spec)
    ));
    if job.spec.cluster_selector.is_none() {
        let desired = super::cluster::head_service(job, &cluster);
        let name = desired.name_any();
        let outcome = services::ensure_selecting(&io.api::<Service>(), &desired)
            .await
            .map_err(io.error(format!("creating or pointing Service {name}")))?;
        if outcome == services::Ensured::Created {
            io.ctx
                .events
                .normal(
                    job,
                    "CreatedService",
                    "Create",
                    format!("Created Service {}/{name}", io.namespace),
                )
                .await;
        }
    }
    match SubmissionMode::of(job) {
        SubmissionMode::Interactive => Ok(Step::to(status, deployment::WAITING)),
        SubmissionMode::K8sJob => {
            ensure_submitter(io, &status, &cluster).await?;
            Ok(Step::to(status, deployment::RUNNING))
        }
        SubmissionMode::Http | SubmissionMode::Sidecar => Ok(Step::to(status, deployment::RUNNING)),
    }
}

fn deadline(job: &RayJob, status: &RayJobStatus, now: Timestamp) -> Option<Step> {
    state::deadline_exceeded(job, now).then(|| {
        Step::fail(
            status.clone(),
            reason::DEADLINE_EXCEEDED,
            format!(
                "the RayJob ran longer than activeDeadlineSeconds ({})",
                job.spec.active_deadline_seconds.unwrap_or_default()
            ),
        )
    })
}

async fn ensure_submitter(
    io: &Io<'_>,
    status: &RayJobStatus,
    cluster: &RayCluster,
) -> Result<(), Error> {
    let jobs = io.api::<Job>();
    if jobs
        .get_opt(&io.name)
        .await
        .map_err(io.error("reading the submitter Job"))?
        .is_some()
    {
        return Ok(());
    }
    let mut desired = submitter::submitter_job(
        io.job,
        Some(&cluster.spec),
        status.dashboard_url.as_deref().unwrap_or_default(),
        status.job_id.as_deref().unwrap_or_default(),
    );
    // `ray job submit` authenticates like the cluster's own processes.
    let auth_env = crate::auth::env(cluster);
    for container in desired
        .spec
        .iter_mut()
        .flat_map(|spec| spec.template.spec.iter_mut())
        .flat_map(|pod| pod.containers.iter_mut())
    {
        crate::pods::add_missing_env(&mut container.env, &auth_env);
    }
    match jobs.create(&PostParams::default(), &desired).await {
        Ok(_) => {
            io.ctx
                .events
                .normal(
                    io.job,
                    "CreatedJob",
                    "Create",
                    format!("Created Kubernetes Job {}/{}", io.namespace, io.name),
                )
                .await;
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(source) => {
            io.ctx
                .events
                .warning(
                    io.job,
                    "FailedToCreateJob",
                    "Create",
                    format!("Failed to create Kubernetes Job {}: {source}", io.name),
                )
                .await;
            Err(io.error("creating the submitter Job")(source))
        }
    }
}

/// Waiting (InteractiveMode): until the user writes `spec.jobId`.
fn wait_for_job_id(io: &Io<'_>, mut status: RayJobStatus, now: Timestamp) -> Step {
    if state::pre_running_deadline_exceeded(io.job, now) {
        return Step::fail(
            status,
            reason::PRE_RUNNING_DEADLINE_EXCEEDED,
            "no spec.jobId was set within preRunningDeadlineSeconds".to_string(),
        );
    }
    match io.job.spec.job_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => {
            status.job_id = Some(id.to_string());
            Step::to(status, deployment::RUNNING)
        }
        None => Step::stay(status, REQUEUE_ACTIVE),
    }
}

/// How the submitter (K8sJobMode's Job) ended, if it did.
#[derive(Debug, Clone, PartialEq)]
enum Submitter {
    NotFinished,
    Succeeded(Timestamp),
    /// Failed, and why (for the RayJob's status message).
    Failed(String),
}

fn submitter_outcome(job: &Job) -> Submitter {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for condition in conditions.iter().filter(|c| c.status == "True") {
        match condition.type_.as_str() {
            "Failed" => {
                return Submitter::Failed(
                    "the submitter Job failed; see its pods' logs".to_string(),
                );
            }
            "Complete" => {
                let at = condition
                    .last_transition_time
                    .as_ref()
                    .map(|t| t.0)
                    .unwrap_or_else(Timestamp::now);
                return Submitter::Succeeded(at);
            }
            _ => {}
        }
    }
    Submitter::NotFinished
}

/// SidecarMode: the submitter is a container of the head pod (which is not restarted), so its
/// exit is the submitter's outcome, and a head pod that is gone took the submitter with it.
async fn sidecar_outcome(io: &Io<'_>, status: &RayJobStatus) -> Result<Submitter, Error> {
    let Some(cluster) = status.ray_cluster_name.as_deref() else {
        return Ok(Submitter::NotFinished);
    };
    let selector = format!("{RAY_CLUSTER}={cluster},{RAY_NODE_TYPE}=head");
    let heads = io
        .api::<Pod>()
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(io.error(format!("listing the head pod of RayCluster {cluster}")))?;
    match heads
        .items
        .iter()
        .find(|pod| pod.metadata.deletion_timestamp.is_none())
    {
        Some(head) => Ok(sidecar_container_outcome(head)),
        None => Ok(Submitter::Failed(format!(
            "the head pod of RayCluster {cluster}, which ran the submitter container, is gone"
        ))),
    }
}

fn sidecar_container_outcome(head: &Pod) -> Submitter {
    let container = head
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.name == submitter::SUBMITTER_CONTAINER);
    let Some(ended) = container
        .and_then(|c| c.state.as_ref())
        .and_then(|state| state.terminated.as_ref())
    else {
        return Submitter::NotFinished;
    };
    if ended.exit_code == 0 {
        return Submitter::Succeeded(
            ended
                .finished_at
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(Timestamp::now),
        );
    }
    let detail = [ended.reason.as_deref(), ended.message.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    Submitter::Failed(format!(
        "the submitter container {} of head pod {} exited with code {}{}; see its logs",
        submitter::SUBMITTER_CONTAINER,
        head.name_any(),
        ended.exit_code,
        if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        }
    ))
}

/// Running: follow the Ray job through the dashboard until it ends.
async fn run(io: &Io<'_>, mut status: RayJobStatus, now: Timestamp) -> Result<Step, Error> {
    let job = io.job;
    if job.spec.suspend == Some(true) && job.spec.cluster_selector.is_none() {
        return Ok(Step::to(status, deployment::SUSPENDING));
    }
    if let Some(step) = deadline(job, &status, now) {
        return Ok(step);
    }
    let mode = SubmissionMode::of(job);
    let submitter = if mode == SubmissionMode::Sidecar {
        sidecar_outcome(io, &status).await?
    } else if mode == SubmissionMode::K8sJob {
        match io
            .api::<Job>()
            .get_opt(&io.name)
            .await
            .map_err(io.error("reading the submitter Job"))?
        {
            Some(k8s_job) => submitter_outcome(&k8s_job),
            None => Submitter::NotFinished,
        }
    } else {
        Submitter::NotFinished
    };
    let mut job_cluster = None;
    if let Some(name) = status.ray_cluster_name.clone()
        && let Some(cluster) = io
            .api::<RayCluster>()
            .get_opt(&name)
            .await
            .map_err(io.error(format!("reading RayCluster {name}")))?
    {
        status.ray_cluster_status = cluster.status.clone();
        job_cluster = Some(cluster);
    }
    let Some(dashboard) = io.ctx.dashboard(&status) else {
        return Ok(Step::stay(status, REQUEUE_ACTIVE));
    };
    let dashboard = crate::auth::authenticated(
        &io.ctx.client,
        &io.ctx.tokens,
        job_cluster.as_ref(),
        dashboard,
    )
    .await?;
    let job_id = status.job_id.clone().unwrap_or_default();
    let info = match dashboard.job_info(&job_id).await {
        Ok(info) => {
            status.job_status_check_failure_start_time = None;
            info
        }
        Err(error) => {
            tracing::info!(%error, "the Ray dashboard did not answer");
            let since = status
                .job_status_check_failure_start_time
                .get_or_insert(Time(now))
                .0;
            if now.duration_since(since) > STATUS_CHECK_TIMEOUT {
                return Ok(Step::fail(
                    status,
                    reason::STATUS_CHECK_TIMEOUT_EXCEEDED,
                    format!("the Ray dashboard has not answered for 300 s: {error}"),
                ));
            }
            return Ok(Step::stay(status, REQUEUE_ACTIVE));
        }
    };
    if let Submitter::Failed(message) = submitter {
        let failed_app = info
            .as_ref()
            .is_some_and(|i| i.status.as_str() == job_status::FAILED);
        let why = if failed_app {
            reason::APP_FAILED
        } else {
            reason::SUBMISSION_FAILED
        };
        if let Some(info) = &info {
            record_info(&mut status, info);
        }
        return Ok(Step::fail(status, why, message));
    }
    let Some(info) = info else {
        return Ok(match mode {
            SubmissionMode::Http => {
                submit(io, &dashboard, &job_id).await?;
                Step::stay(status, REQUEUE_ACTIVE)
            }
            _ if matches!(submitter, Submitter::Succeeded(_)) => Step::fail(
                status,
                reason::APP_FAILED,
                format!("the submitter finished but Ray has no job {job_id}"),
            ),
            _ => Step::stay(status, REQUEUE_ACTIVE),
        });
    };
    record_info(&mut status, &info);
    let ray_status = info.status.as_str();
    if let Some((next, why)) = state::terminal_transition(ray_status) {
        // K8sJobMode and SidecarMode complete with their submitter (whose logs users read),
        // within a grace period.
        let submitter_running = matches!(mode, SubmissionMode::K8sJob | SubmissionMode::Sidecar)
            && submitter == Submitter::NotFinished;
        if submitter_running {
            let ended = state::millis_to_time(info.end_time)
                .map(|t| t.0)
                .unwrap_or(now);
            if now.duration_since(ended) <= TRANSITION_GRACE_PERIOD {
                return Ok(Step::stay(status, REQUEUE_ACTIVE));
            }
            status.reason = Some(reason::TRANSITION_GRACE_PERIOD_EXCEEDED.to_string());
        } else if let Some(why) = why {
            status.reason = Some(why.to_string());
        }
        if let Some(message) = info.message.as_deref() {
            status.message = Some(truncate(message, MAX_STATUS_MESSAGE));
        }
        return Ok(Step::to(status, next));
    }
    if let Submitter::Succeeded(at) = submitter
        && now.duration_since(at) >= SUBMITTER_FINISHED_GRACE
    {
        status.job_status = Some(job_status::FAILED.to_string());
        return Ok(Step::fail(
            status,
            reason::TRANSITION_GRACE_PERIOD_EXCEEDED,
            format!("the submitter finished 30 s ago but the Ray job is still {ray_status}"),
        ));
    }
    Ok(Step::stay(status, REQUEUE_ACTIVE))
}

fn record_info(status: &mut RayJobStatus, info: &crate::dashboard::JobInfo) {
    status.job_status = Some(info.status.as_str().to_string());
    status.ray_job_info = Some(RayJobInfo {
        start_time: state::millis_to_time(info.start_time),
        end_time: state::millis_to_time(info.end_time),
    });
}

/// HTTPMode: raygate submits the job itself; a submission id already in use is a success.
async fn submit(io: &Io<'_>, dashboard: &DashboardClient, job_id: &str) -> Result<(), Error> {
    let request = match submitter::http_submission(io.job, job_id) {
        Ok(request) => request,
        Err(message) => {
            io.ctx
                .events
                .warning(io.job, "FailedToSubmitJob", "Submit", message)
                .await;
            return Ok(());
        }
    };
    match dashboard.submit_job(&request).await {
        Ok(SubmitOutcome::Submitted) => {
            io.ctx
                .events
                .normal(
                    io.job,
                    "SubmittedRayJob",
                    "Submit",
                    format!("Submitted Ray job {job_id} to {}", dashboard.base_url()),
                )
                .await;
        }
        Ok(SubmitOutcome::AlreadyExists) => {}
        Err(error) => {
            io.ctx
                .events
                .warning(
                    io.job,
                    "FailedToSubmitJob",
                    "Submit",
                    format!("Submitting Ray job {job_id}: {error}"),
                )
                .await;
        }
    }
    Ok(())
}

/// Suspending and Retrying: remove this attempt's cluster and submitter, wait until they are
/// gone, then forget the attempt.
async fn tear_down(io: &Io<'_>, mut status: RayJobStatus, current: &str) -> Result<Step, Error> {
    let mut remaining = false;
    if io.job.spec.cluster_selector.is_none()
        && let Some(name) = status.ray_cluster_name.clone()
    {
        remaining |= delete_if_present::<RayCluster>(io, &name, "RayCluster").await?;
    }
    if SubmissionMode::of(io.job) == SubmissionMode::K8sJob {
        remaining |= delete_if_present::<Job>(io, &io.name, "Job").await?;
    }
    if remaining {
        return Ok(Step::stay(status, Duration::from_secs(1)));
    }
    status.ray_cluster_status = None;
    status.ray_cluster_name = None;
    status.dashboard_url = None;
    status.job_id = None;
    status.message = None;
    status.reason = None;
    status.ray_job_info = None;
    status.job_status_check_failure_start_time = None;
    status.job_status = Some(job_status::NEW.to_string());
    status.end_time = None;
    Ok(if current == deployment::SUSPENDING {
        Step {
            requeue: None,
            ..Step::to(status, deployment::SUSPENDED)
        }
    } else {
        Step::to(status, deployment::NEW)
    })
}

/// Deletes the object if it exists; true while it still exists (deletion in progress).
async fn delete_if_present<K>(io: &Io<'_>, name: &str, kind: &str) -> Result<bool, Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api = io.api::<K>();
    let Some(existing) = api
        .get_opt(name)
        .await
        .map_err(io.error(format!("reading {kind} {name}")))?
    else {
        return Ok(false);
    };
    if existing.meta().deletion_timestamp.is_none() {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {
                io.ctx
                    .events
                    .normal(
                        io.job,
                        &format!("Deleted{kind}"),
                        "Delete",
                        format!("Deleted {kind} {}/{name}", io.namespace),
                    )
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
            Err(source) => return Err(io.error(format!("deleting {kind} {name}"))(source)),
        }
    }
    Ok(true)
}

/// Complete or Failed: run the cleanup that is due and come back when the next one is.
async fn clean_up_finished(io: &Io<'_>, now: Timestamp) -> Result<Action, Error> {
    let planned = deletion::plan(io.job);
    let (action, later) = deletion::next(&planned, now);
    let cluster = io
        .job
        .status
        .as_ref()
        .and_then(|s| s.ray_cluster_name.clone());
    match (action, cluster) {
        (Some(DeletionPolicyType::DeleteSelf), _) => {
            match io
                .api::<RayJob>()
                .delete(&io.name, &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => return Err(io.error("deleting itself")(source)),
            }
            return Ok(Action::await_change());
        }
        (Some(DeletionPolicyType::DeleteCluster), Some(name)) => {
            delete_if_present::<RayCluster>(io, &name, "RayCluster").await?;
        }
        (Some(DeletionPolicyType::DeleteWorkers), Some(name)) => {
            suspend_workers(io, &name).await?;
        }
        _ => {}
    }
    Ok(match later {
        Some(due) => {
            let wait = Duration::try_from(due.duration_since(now)).unwrap_or_default();
            Action::requeue(wait + Duration::from_secs(2))
        }
        None => Action::await_change(),
    })
}

/// DeleteWorkers: every worker group of the job's cluster suspended (the RayCluster
/// controller then deletes their pods); the head stays for logs and the dashboard.
async fn suspend_workers(io: &Io<'_>, cluster_name: &str) -> Result<(), Error> {
    let api = io.api::<RayCluster>();
    let Some(cluster) = api
        .get_opt(cluster_name)
        .await
        .map_err(io.error(format!("reading RayCluster {cluster_name}")))?
    else {
        return Ok(());
    };
    let ops: Vec<serde_json::Value> = cluster
        .spec
        .worker_group_specs
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, group)| group.suspend != Some(true))
        .map(|(i, _)| json!({"op": "add", "path": format!("/spec/workerGroupSpecs/{i}/suspend"), "value": true}))
        .collect();
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch =
        serde_json::from_value(json!(ops)).map_err(|e| Error::ObjectApi {
            object: format!("RayJob {}/{}", io.namespace, io.name),
            action: "building the suspend patch".to_string(),
            source: kube::Error::SerdeError(e),
        })?;
    api.patch(
        cluster_name,
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await
    .map_err(io.error(format!(
        "suspending the workers of RayCluster {cluster_name}"
    )))?;
    io.ctx
        .events
        .normal(
            io.job,
            "SuspendedWorkers",
            "Delete",
            format!(
                "Suspended every worker group of RayCluster {}/{cluster_name}",
                io.namespace
            ),
        )
        .await;
    Ok(())
}

/// Stops the Ray job unless Ray already reports it finished (best effort: the dashboard may be
/// gone with its cluster).
async fn stop_ray_job(io: &Io<'_>, status: &RayJobStatus, why: &str) {
    let finished = job_status::is_terminal(status.job_status.as_deref().unwrap_or_default());
    let (Some(job_id), false) = (status.job_id.as_deref(), finished) else {
        return;
    };
    let Some(dashboard) = io.ctx.dashboard(status) else {
        return;
    };
    let cluster = match status.ray_cluster_name.as_deref() {
        Some(name) => io.api::<RayCluster>().get_opt(name).await.ok().flatten(),
        None => None,
    };
    let dashboard = match crate::auth::authenticated(
        &io.ctx.client,
        &io.ctx.tokens,
        cluster.as_ref(),
        dashboard,
    )
    .await
    {
        Ok(dashboard) => dashboard,
        Err(error) => {
            tracing::info!(%error, "no auth token for stopping the Ray job");
            return;
        }
    };
    match dashboard.stop_job(job_id).await {
        Ok(true) => {
            io.ctx
                .events
                .normal(
                    io.job,
                    "StoppedRayJob",
                    "Stop",
                    format!("Stopped Ray job {job_id}: {why}"),
                )
                .await;
        }
        Ok(false) => {}
        Err(error) => tracing::info!(%error, job_id, "could not stop the Ray job"),
    }
}

/// A deleted RayJob: stop its Ray job if it still runs (best effort), then let it go.
async fn finalize(io: &Io<'_>) -> Result<Action, Error> {
    if !io.job.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let status = io.job.status.clone().unwrap_or_default();
    stop_ray_job(io, &status, "its RayJob was deleted").await;
    let finalizers: Vec<String> = io
        .job
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": io.job.resource_version(),
    }});
    match io
        .api::<RayJob>()
        .patch(&io.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(source) => return Err(io.error("removing the finalizer")(source)),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn with_conditions(conditions: &[(&str, &str)]) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(type_, status)| JobCondition {
                            type_: type_.to_string(),
                            status: status.to_string(),
                            ..JobCondition::default()
                        })
                        .collect(),
                ),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"é".repeat(600), 1000);
        assert!(cut.len() <= 1000 && cut.ends_with('…'), "{}", cut.len());
    }

    fn head_with_submitter(state: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "job-abcde-head"},
            "status": {"containerStatuses": [
                {"name": "ray-head", "ready": true, "restartCount": 0, "image": "ray", "imageID": "",
                 "state": {"running": {}}},
                {"name": "ray-job-submitter", "ready": false, "restartCount": 0, "image": "ray",
                 "imageID": "", "state": state},
            ]},
        }))
        .unwrap_or_else(|e| panic!("a pod: {e}"))
    }

    #[test]
    fn a_sidecar_submitter_outcome_is_its_container_exit() {
        assert_eq!(
            sidecar_container_outcome(&head_with_submitter(json!({"running": {}}))),
            Submitter::NotFinished
        );
        assert_eq!(
            sidecar_container_outcome(&head_with_submitter(json!({"terminated": {
                "exitCode": 0, "finishedAt": "2026-11-26T10:00:00Z"}}))),
            Submitter::Succeeded(
                "2026-11-26T10:00:00Z"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}"))
            )
        );
        assert_eq!(
            sidecar_container_outcome(&head_with_submitter(json!({"terminated": {
                "exitCode": 1, "reason": "Error"}}))),
            Submitter::Failed(
                "the submitter container ray-job-submitter of head pod job-abcde-head exited \
                 with code 1 (Error); see its logs"
                    .to_string()
            )
        );
    }

    #[test]
    fn the_submitter_outcome_comes_from_true_job_conditions() {
        assert_eq!(submitter_outcome(&Job::default()), Submitter::NotFinished);
        assert_eq!(
            submitter_outcome(&with_conditions(&[("Failed", "True")])),
            Submitter::Failed("the submitter Job failed; see its pods' logs".to_string())
        );
        assert_eq!(
            submitter_outcome(&with_conditions(&[
                ("Failed", "False"),
                ("Suspended", "True")
            ])),
            Submitter::NotFinished
        );
        assert!(matches!(
            submitter_outcome(&with_conditions(&[("Complete", "True")])),
            Submitter::Succeeded(_)
        ));
    }
}
