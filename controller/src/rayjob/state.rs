//! The RayJob state machine's vocabulary and its pure decisions: deadlines, retries, and how a
//! Ray job's status maps onto `jobDeploymentStatus`. KubeRay's names, because users, Kueue and
//! dashboards read them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use raygate_api::RayJob;

/// `status.jobDeploymentStatus` values.
pub mod deployment {
    pub const NEW: &str = "";
    pub const INITIALIZING: &str = "Initializing";
    pub const WAITING: &str = "Waiting";
    pub const RUNNING: &str = "Running";
    pub const COMPLETE: &str = "Complete";
    pub const FAILED: &str = "Failed";
    pub const SUSPENDING: &str = "Suspending";
    pub const SUSPENDED: &str = "Suspended";
    pub const RETRYING: &str = "Retrying";
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
}

/// `status.reason` values.
pub mod reason {
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
    pub const PRE_RUNNING_DEADLINE_EXCEEDED: &str = "PreRunningDeadlineExceeded";
    pub const APP_FAILED: &str = "AppFailed";
    pub const SUBMISSION_FAILED: &str = "SubmissionFailed";
    pub const TRANSITION_GRACE_PERIOD_EXCEEDED: &str =
        "JobDeploymentStatusTransitionGracePeriodExceeded";
    pub const STATUS_CHECK_TIMEOUT_EXCEEDED: &str = "JobStatusCheckTimeoutExceeded";
}

/// `status.jobStatus` values (the Ray job's own status, as the dashboard reports it).
pub mod job_status {
    pub const NEW: &str = "";
    pub const SUCCEEDED: &str = "SUCCEEDED";
    pub const FAILED: &str = "FAILED";
    pub const STOPPED: &str = "STOPPED";

    pub fn is_terminal(status: &str) -> bool {
        matches!(status, SUCCEEDED | FAILED | STOPPED)
    }
}

/// Submission modes (`spec.submissionMode`; the webhook defaults it to K8sJobMode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionMode {
    K8sJob,
    Http,
    Sidecar,
    Interactive,
}

impl SubmissionMode {
    pub fn of(job: &RayJob) -> Self {
        match job.spec.submission_mode.as_deref() {
            Some("HTTPMode") => Self::Http,
            Some("SidecarMode") => Self::Sidecar,
            Some("InteractiveMode") => Self::Interactive,
            _ => Self::K8sJob,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::K8sJob => "K8sJobMode",
            Self::Http => "HTTPMode",
            Self::Sidecar => "SidecarMode",
            Self::Interactive => "InteractiveMode",
        }
    }

    /// Modes in which a submitter (Job or sidecar container) runs `ray job submit`.
    pub fn has_submitter(self) -> bool {
        matches!(self, Self::K8sJob | Self::Sidecar)
    }
}

/// How long a Ray job may report a terminal status while its submitter still runs (KubeRay's
/// `RAYJOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_SECONDS`).
pub const TRANSITION_GRACE_PERIOD: SignedDuration = SignedDuration::from_secs(300);
/// How long the dashboard may fail to answer before the job is failed
/// (`RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS`).
pub const STATUS_CHECK_TIMEOUT: SignedDuration = SignedDuration::from_secs(300);
/// How long a finished submitter waits for the Ray job to turn terminal.
pub const SUBMITTER_FINISHED_GRACE: SignedDuration = SignedDuration::from_secs(30);

pub fn deployment_status(job: &RayJob) -> &str {
    job.status
        .as_ref()
        .and_then(|s| s.job_deployment_status.as_deref())
        .unwrap_or(deployment::NEW)
}

pub fn job_status(job: &RayJob) -> &str {
    job.status
        .as_ref()
        .and_then(|s| s.job_status.as_deref())
        .unwrap_or(job_status::NEW)
}

fn started(job: &RayJob) -> Option<Timestamp> {
    job.status.as_ref()?.start_time.as_ref().map(|t| t.0)
}

fn elapsed_over(since: Option<Timestamp>, limit_seconds: Option<i32>, now: Timestamp) -> bool {
    match (since, limit_seconds) {
        (Some(since), Some(limit)) if limit > 0 => {
            now.duration_since(since) >= SignedDuration::from_secs(i64::from(limit))
        }
        _ => false,
    }
}

/// `activeDeadlineSeconds` counted from `status.startTime`.
pub fn deadline_exceeded(job: &RayJob, now: Timestamp) -> bool {
    elapsed_over(started(job), job.spec.active_deadline_seconds, now)
}

/// `preRunningDeadlineSeconds`, for a job that has not reached Running.
pub fn pre_running_deadline_exceeded(job: &RayJob, now: Timestamp) -> bool {
    elapsed_over(started(job), job.spec.pre_running_deadline_seconds, now)
}

/// After a failure: another attempt (with a new cluster) while attempts remain, except when
/// the deadline or the status checks ran out, which a retry can't fix.
pub fn should_retry(job: &RayJob) -> bool {
    let status = job.status.as_ref();
    let failed = status.and_then(|s| s.failed).unwrap_or(0);
    let limit = job.spec.backoff_limit.unwrap_or(0).max(0);
    let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    failed <= limit
        && !matches!(
            reason,
            reason::DEADLINE_EXCEEDED | reason::STATUS_CHECK_TIMEOUT_EXCEEDED
        )
        && job.spec.cluster_selector.is_none()
}

/// Where a terminal Ray job status leads: Complete for SUCCEEDED and STOPPED, Failed for FAILED.
pub fn terminal_transition(ray_status: &str) -> Option<(&'static str, Option<&'static str>)> {
    match ray_status {
        job_status::SUCCEEDED | job_status::STOPPED => Some((deployment::COMPLETE, None)),
        job_status::FAILED => Some((deployment::FAILED, Some(reason::APP_FAILED))),
        _ => None,
    }
}

/// A Ray job timestamp (milliseconds since the epoch; 0 means unset) as a Kubernetes time.
pub fn millis_to_time(millis: Option<u64>) -> Option<Time> {
    let millis = i64::try_from(millis?).ok().filter(|m| *m > 0)?;
    Timestamp::from_millisecond(millis).ok().map(Time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raygate_api::RayJobStatus;

    fn job(spec: serde_json::Value, status: RayJobStatus) -> RayJob {
        let mut job: RayJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {"name": "j", "namespace": "default"},
            "spec": spec,
        }))
        .expect("a RayJob");
        job.status = Some(status);
        job
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("a time")
    }

    #[test]
    fn active_deadline_counts_from_start_time() {
        let status = RayJobStatus {
            start_time: Some(Time(at(0))),
            ..Default::default()
        };
        let j = job(serde_json::json!({"activeDeadlineSeconds": 10}), status);
        assert!(!deadline_exceeded(&j, at(9)));
        assert!(deadline_exceeded(&j, at(10)));
        let unlimited = job(serde_json::json!({}), j.status.clone().unwrap_or_default());
        assert!(!deadline_exceeded(&unlimited, at(100_000)));
    }

    #[test]
    fn retries_while_attempts_remain_but_never_after_a_deadline() {
        let failed = |count, reason: &str| RayJobStatus {
            failed: Some(count),
            reason: Some(reason.to_string()),
            ..Default::default()
        };
        let spec = serde_json::json!({"backoffLimit": 2});
        assert!(should_retry(&job(
            spec.clone(),
            failed(1, reason::APP_FAILED)
        )));
        assert!(should_retry(&job(
            spec.clone(),
            failed(2, reason::APP_FAILED)
        )));
        assert!(!should_retry(&job(
            spec.clone(),
            failed(3, reason::APP_FAILED)
        )));
        assert!(!should_retry(&job(
            spec.clone(),
            failed(1, reason::DEADLINE_EXCEEDED)
        )));
        assert!(!should_retry(&job(
            spec,
            failed(1, reason::STATUS_CHECK_TIMEOUT_EXCEEDED)
        )));
        assert!(!should_retry(&job(
            serde_json::json!({}),
            failed(1, reason::APP_FAILED)
        )));
    }

    #[test]
    fn terminal_ray_statuses_map_to_deployment_statuses() {
        assert_eq!(
            terminal_transition("SUCCEEDED"),
            Some((deployment::COMPLETE, None))
        );
        assert_eq!(
            terminal_transition("STOPPED"),
            Some((deployment::COMPLETE, None))
        );
        assert_eq!(
            terminal_transition("FAILED"),
            Some((deployment::FAILED, Some(reason::APP_FAILED)))
        );
        assert_eq!(terminal_transition("RUNNING"), None);
    }

    #[test]
    fn ray_millisecond_times_become_kubernetes_times() {
        assert_eq!(millis_to_time(Some(0)), None);
        assert_eq!(millis_to_time(None), None);
        let t = millis_to_time(Some(1_800_000_000_123)).expect("a time");
        assert_eq!(t.0.as_millisecond(), 1_800_000_000_123);
    }
}
