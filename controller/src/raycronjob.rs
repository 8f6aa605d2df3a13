//! The RayCronJob controller: creates a RayJob from `spec.jobTemplate` at every scheduled
//! time, as KubeRay's does: named `<cronjob>-<minutes since the epoch>` (so a retried or
//! repeated create is the same object), labelled `ray.io/cronjob-name`, annotated with the
//! scheduled time, owned by the RayCronJob; `status.lastScheduleTime` records the last run.
//!
//! One deliberate difference: after the controller was down, KubeRay creates one RayJob per
//! missed time, back to back. Like a Kubernetes CronJob, raygate runs only the latest missed
//! time (and says how many were skipped), so an outage never ends in a flood of Ray clusters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::{Predicate, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use raygate_api::cron::{self, Schedule};
use raygate_api::labels::{ANNOTATION_CRONJOB_SCHEDULED_TIMESTAMP, RAY_CRONJOB_NAME};
use raygate_api::validation::validate_raycronjob;
use raygate_api::{RayCronJob, RayJob};
use serde_json::json;

use crate::error::Error;
use crate::events::EventSink;
use crate::metrics::Metrics;

/// Missed times counted at most, looking for the latest one (about 69 days of a schedule that
/// runs every minute); beyond that the last one counted runs.
const MAX_MISSED: usize = 100_000;
/// A little after the scheduled minute, so the clock has surely passed it when we wake.
const WAKE_SLACK: Duration = Duration::from_millis(200);

pub struct CronContext {
    pub client: Client,
    pub events: EventSink,
    pub metrics: Arc<Metrics>,
}

/// The RayCronJob controller for one namespace (or all). Only the user's changes wake it (its
/// own status writes don't); between them it sleeps until the next scheduled time.
pub fn controller(
    client: &Client,
    namespace: Option<String>,
    concurrency: u16,
    context: Arc<CronContext>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> + Send {
    let cron_jobs: Api<RayCronJob> = crate::scoped(client, namespace.as_deref());
    let (reader, writer) = reflector::store();
    let events = watcher(cron_jobs, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::labels)
                .combine(predicates::annotations),
            Default::default(),
        );
    Controller::for_stream(events, reader)
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                tracing::debug!(%error, "RayCronJob reconcile request ended with an error");
            }
        })
}

pub async fn reconcile(cron_job: Arc<RayCronJob>, ctx: Arc<CronContext>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_cron_job(&cron_job, &ctx, Timestamp::now()).await;
    ctx.metrics.reconciled(
        "RayCronJob",
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

pub fn error_policy(cron_job: Arc<RayCronJob>, error: &Error, _ctx: Arc<CronContext>) -> Action {
    tracing::warn!(
        namespace = cron_job.namespace().unwrap_or_default(),
        name = cron_job.name_any(),
        %error,
        "RayCronJob reconcile failed; retrying"
    );
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_cron_job(
    cron_job: &RayCronJob,
    ctx: &CronContext,
    now: Timestamp,
) -> Result<Action, Error> {
    if cron_job.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // The webhook refuses an invalid spec; this covers objects stored while it was bypassed.
    let validation = validate_raycronjob(cron_job, None);
    if !validation.errors.is_empty() {
        let problems: Vec<String> = validation.errors.iter().map(ToString::to_string).collect();
        ctx.events
            .warning(
                cron_job,
                "InvalidRayCronJobSpec",
                "Validate",
                problems.join("; "),
            )
            .await;
        return Ok(Action::await_change());
    }
    if cron_job.spec.suspend == Some(true) {
        ctx.events
            .normal(
                cron_job,
                "SuspendedRayCronJob",
                "Suspend",
                "spec.suspend is true: no RayJobs are created".to_string(),
            )
            .await;
        return Ok(Action::await_change());
    }
    let (Ok(schedule), Ok(zone)) = (
        Schedule::parse(&cron_job.spec.schedule),
        cron::time_zone(cron_job.spec.time_zone.as_deref()),
    ) else {
        // Validation above refuses both; nothing to schedule.
        return Ok(Action::await_change());
    };
    let Some(since) = last_run(cron_job) else {
        return Ok(Action::await_change());
    };
    let Some(due) = schedule.next_after(since, &zone) else {
        return Ok(Action::await_change());
    };
    if due > now {
        return Ok(wake_at(due, now));
    }

    let (latest, missed) = latest_due(&schedule, &zone, due, now);
    if missed > 0 {
        ctx.events
            .warning(
                cron_job,
                "MissedSchedules",
                "Schedule",
                format!(
                    "{missed} scheduled time(s) before {latest} were missed (the controller was \
                     not running); running only the latest"
                ),
            )
            .await;
    }
    create_run(cron_job, ctx, latest).await?;
    record_run(cron_job, ctx, latest).await?;
    match schedule.next_after(latest, &zone) {
        Some(next) => Ok(wake_at(next, Timestamp::now())),
        None => Ok(Action::await_change()),
    }
}

/// The last scheduled time already handled: `status.lastScheduleTime`, or the creation of
/// the RayCronJob (a new one never runs for times before it existed).
fn last_run(cron_job: &RayCronJob) -> Option<Timestamp> {
    cron_job
        .status
        .as_ref()
        .and_then(|status| status.last_schedule_time.as_ref())
        .or(cron_job.meta().creation_timestamp.as_ref())
        .map(|time| time.0)
}

/// The latest scheduled time not after `now`, starting from the first one due, and how many
/// earlier ones it skips.
fn latest_due(
    schedule: &Schedule,
    zone: &jiff::tz::TimeZone,
    first_due: Timestamp,
    now: Timestamp,
) -> (Timestamp, usize) {
    let mut latest = first_due;
    let mut missed = 0;
    while missed < MAX_MISSED {
        match schedule.next_after(latest, zone) {
            Some(next) if next <= now => {
                latest = next;
                missed += 1;
            }
            _ => break,
        }
    }
    (latest, missed)
}

fn wake_at(time: Timestamp, now: Timestamp) -> Action {
    let wait = now
        .duration_until(time)
        .try_into()
        .unwrap_or(Duration::ZERO);
    Action::requeue(wait + WAKE_SLACK)
}

/// `<cronjob>-<minutes since the epoch>`, KubeRay's name: the same scheduled time always
/// gives the same RayJob.
pub fn run_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

/// The RayJob for one scheduled time.
pub fn run_for(cron_job: &RayCronJob, scheduled: Timestamp) -> RayJob {
    let name = cron_job.name_any();
    let scheduled_at = scheduled
        .round(jiff::Unit::Second)
        .unwrap_or(scheduled)
        .to_string();
    RayJob {
        metadata: ObjectMeta {
            name: Some(run_name(&name, scheduled)),
            namespace: cron_job.namespace(),
            labels: Some(BTreeMap::from([(RAY_CRONJOB_NAME.to_string(), name)])),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_CRONJOB_SCHEDULED_TIMESTAMP.to_string(),
                scheduled_at,
            )])),
            owner_references: cron_job.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: cron_job.spec.job_template.clone(),
        status: None,
    }
}

/// Creates the run; one that exists already (a retry after a failed status write) is done. A
/// refusal by admission (policy, validation) can't succeed by retrying: it is reported and
/// the time skipped, so the next one is tried.
async fn create_run(
    cron_job: &RayCronJob,
    ctx: &CronContext,
    scheduled: Timestamp,
) -> Result<(), Error> {
    let namespace = cron_job.namespace().unwrap_or_default();
    let jobs: Api<RayJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let run = run_for(cron_job, scheduled);
    let name = run.name_any();
    match jobs.create(&PostParams::default(), &run).await {
        Ok(_) => {
            ctx.events
                .normal(
                    cron_job,
                    "CreatedRayJob",
                    "Create",
                    format!("Created RayJob {namespace}/{name} scheduled for {scheduled}"),
                )
                .await;
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
            ctx.events
                .warning(
                    cron_job,
                    "FailedToCreateRayJob",
                    "Create",
                    format!(
                        "RayJob {namespace}/{name} for {scheduled} was refused: {}",
                        status.message
                    ),
                )
                .await;
            Ok(())
        }
        Err(source) => Err(Error::ObjectApi {
            object: format!("RayJob {namespace}/{name}"),
            action: "creating".to_string(),
            source,
        }),
    }
}

async fn record_run(
    cron_job: &RayCronJob,
    ctx: &CronContext,
    scheduled: Timestamp,
) -> Result<(), Error> {
    let namespace = cron_job.namespace().unwrap_or_default();
    let name = cron_job.name_any();
    let api: Api<RayCronJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let status = json!({"status": {"lastScheduleTime": Time(scheduled)}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(|source| Error::ObjectApi {
            object: format!("RayCronJob {namespace}/{name}"),
            action: "writing status.lastScheduleTime".to_string(),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron_job(schedule: &str, last: Option<&str>) -> RayCronJob {
        serde_json::from_value(json!({
            "apiVersion": "ray.io/v1", "kind": "RayCronJob",
            "metadata": {
                "name": "nightly", "namespace": "team-a", "uid": "u-1",
                "creationTimestamp": "2026-11-26T10:00:30Z",
            },
            "spec": {
                "schedule": schedule,
                "jobTemplate": {"entrypoint": "python train.py", "shutdownAfterJobFinishes": true},
            },
            "status": last.map(|t| json!({"lastScheduleTime": t})),
        }))
        .unwrap_or_else(|e| panic!("a RayCronJob: {e}"))
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_run_is_named_by_its_minute_labelled_annotated_and_owned() {
        let run = run_for(&cron_job("* * * * *", None), at("2026-11-26T10:01:00Z"));
        assert_eq!(run.name_any(), format!("nightly-{}", 1_795_687_260 / 60));
        assert_eq!(run.namespace().as_deref(), Some("team-a"));
        assert_eq!(
            run.labels().get(RAY_CRONJOB_NAME).map(String::as_str),
            Some("nightly")
        );
        assert_eq!(
            run.annotations()
                .get(ANNOTATION_CRONJOB_SCHEDULED_TIMESTAMP)
                .map(String::as_str),
            Some("2026-11-26T10:01:00Z")
        );
        let owner = &run.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("RayCronJob", "nightly")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(run.spec.entrypoint.as_deref(), Some("python train.py"));
    }

    #[test]
    fn the_first_run_is_the_first_time_after_creation_then_after_the_last_run() {
        assert_eq!(
            last_run(&cron_job("* * * * *", None)),
            Some(at("2026-11-26T10:00:30Z"))
        );
        assert_eq!(
            last_run(&cron_job("* * * * *", Some("2026-11-26T11:00:00Z"))),
            Some(at("2026-11-26T11:00:00Z"))
        );
    }

    #[test]
    fn after_an_outage_only_the_latest_missed_time_runs() {
        let schedule = Schedule::parse("*/10 * * * *").unwrap_or_else(|e| panic!("{e}"));
        let zone = jiff::tz::TimeZone::UTC;
        let (latest, missed) = latest_due(
            &schedule,
            &zone,
            at("2026-11-26T10:10:00Z"),
            at("2026-11-26T10:55:00Z"),
        );
        assert_eq!((latest, missed), (at("2026-11-26T10:50:00Z"), 4));
        let (latest, missed) = latest_due(
            &schedule,
            &zone,
            at("2026-11-26T10:10:00Z"),
            at("2026-11-26T10:12:00Z"),
        );
        assert_eq!((latest, missed), (at("2026-11-26T10:10:00Z"), 0));
    }
}
