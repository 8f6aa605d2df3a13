//! The Jobs API's documents: what is submitted (`POST /api/jobs/`) and what a job reports
//! (`GET /api/jobs/<submission_id>`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A job's status as Ray reports it (`ray.dashboard.modules.job.common.JobStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Submitted; the supervisor actor or the entrypoint is not running yet (Ray reports this
    /// while it waits for resources or sets up the runtime environment).
    Pending,
    Running,
    /// Stopped through the API (`POST /api/jobs/<id>/stop`).
    Stopped,
    /// The entrypoint exited 0.
    Succeeded,
    /// The entrypoint exited non-zero, or Ray could not start it.
    Failed,
}

impl JobStatus {
    /// Ray's spelling, as in `RayJob.status.jobStatus`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Stopped => "STOPPED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    /// The job will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Stopped | Self::Succeeded | Self::Failed)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `GET /api/jobs/<submission_id>` reports about a job (Ray's `JobDetails`). Fields this
/// type does not name are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobInfo {
    #[serde(default)]
    pub submission_id: Option<String>,
    /// The Ray job id of the driver; `None` until (and unless) the entrypoint connects a
    /// driver with `ray.init()`.
    #[serde(default)]
    pub job_id: Option<String>,
    pub status: JobStatus,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub message: Option<String>,
    /// Set on failure, e.g. `JOB_ENTRYPOINT_COMMAND_ERROR`.
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub entrypoint: Option<String>,
    /// Milliseconds since the Unix epoch; `None` when Ray reports none (`null` or `0`).
    #[serde(default, deserialize_with = "zero_as_none")]
    pub start_time: Option<u64>,
    /// Milliseconds since the Unix epoch; `None` until the job ends (`null` or `0`).
    #[serde(default, deserialize_with = "zero_as_none")]
    pub end_time: Option<u64>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// The entrypoint's exit code, once it exited on its own (`None` when stopped).
    #[serde(default)]
    pub driver_exit_code: Option<i32>,
}

/// The body of `POST /api/jobs/` (Ray's `JobSubmitRequest`); `None` fields are left out so
/// Ray applies its own defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobSubmission {
    /// A shell command, run on the head by the job's supervisor.
    pub entrypoint: String,
    /// Chosen by the caller so a retried submission is recognised (see
    /// [`SubmitOutcome::AlreadyExists`]).
    pub submission_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_env: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_cpus: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_gpus: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_resources: Option<BTreeMap<String, f64>>,
}

/// How a submission ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitOutcome {
    Submitted,
    /// A job with this submission id exists already: an earlier attempt (perhaps one whose
    /// answer was lost) went through.
    AlreadyExists,
}

/// Whether a failed submission's answer says the submission id is taken.
///
/// Ray 2.60 answers `500` with a traceback ending in `ValueError: Job with submission_id <id>
/// already exists. Please use a different submission_id.` (the job agent's `400`, wrapped by
/// the head). The status is not specific, so the words are matched, and the id must appear:
/// an unrelated "already exists" (a runtime env, a file) is not this.
pub(crate) fn is_already_exists(body: &str, submission_id: &str) -> bool {
    let names_the_id = body.contains(&format!("submission_id {submission_id} "))
        || body.contains(&format!("submission_id {submission_id}."))
        || body.contains(&format!("'{submission_id}'"));
    let taken = body.contains("already exists")
        || body.contains("already been used")
        || body.contains("Please use a different submission_id");
    names_the_id && taken
}

fn empty_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
}

fn zero_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<u64>::deserialize(deserializer)?.filter(|t| *t != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../tests/data/ray-dashboard/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    fn job(name: &str) -> JobInfo {
        serde_json::from_str(&fixture(name)).expect("a captured JobDetails decodes")
    }

    #[test]
    fn a_succeeded_job_decodes() {
        let info = job("job-succeeded.json");
        assert_eq!(
            info,
            JobInfo {
                submission_id: Some("j1".into()),
                job_id: None,
                status: JobStatus::Succeeded,
                message: Some("Job finished successfully.".into()),
                error_type: None,
                entrypoint: Some("/work/main/target/ray-venv/bin/python -c 'print(1)'".into()),
                start_time: Some(1_795_653_067_942),
                end_time: Some(1_795_653_069_770),
                metadata: Some(BTreeMap::from([("a".into(), "b".into())])),
                driver_exit_code: Some(0),
            }
        );
    }

    #[test]
    fn a_failed_job_reports_its_exit_code_and_error_type() {
        let info = job("job-failed.json");
        assert_eq!(info.status, JobStatus::Failed);
        assert_eq!(info.driver_exit_code, Some(1));
        assert_eq!(
            info.error_type.as_deref(),
            Some("JOB_ENTRYPOINT_COMMAND_ERROR")
        );
        assert!(
            info.message
                .as_deref()
                .is_some_and(|m| m.contains("failed with exit code 1"))
        );
    }

    #[test]
    fn a_pending_job_has_no_end_time() {
        let info = job("job-pending.json");
        assert_eq!(info.status, JobStatus::Pending);
        assert!(info.start_time.is_some());
        assert_eq!(info.end_time, None);
        assert_eq!(info.driver_exit_code, None);
    }

    #[test]
    fn a_stopped_job_is_terminal_without_exit_code() {
        let info = job("job-stopped.json");
        assert_eq!(info.status, JobStatus::Stopped);
        assert!(info.status.is_terminal());
        assert_eq!(info.driver_exit_code, None);
        assert!(info.end_time.is_some());
    }

    #[test]
    fn zero_times_and_missing_fields_are_none() {
        let info: JobInfo =
            serde_json::from_str(r#"{"status": "PENDING", "start_time": 0, "message": ""}"#)
                .expect("decodes");
        assert_eq!(info.start_time, None);
        assert_eq!(info.end_time, None);
        assert_eq!(info.message, None);
        assert_eq!(info.submission_id, None);
    }

    #[test]
    fn an_unknown_status_is_an_error() {
        assert!(serde_json::from_str::<JobInfo>(r#"{"status": "EXPLODED"}"#).is_err());
    }

    #[test]
    fn statuses_spell_as_ray_does() {
        for status in [
            JobStatus::Pending,
            JobStatus::Running,
            JobStatus::Stopped,
            JobStatus::Succeeded,
            JobStatus::Failed,
        ] {
            let json = serde_json::to_value(status).expect("serializes");
            assert_eq!(json, serde_json::Value::from(status.as_str()));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert!(!JobStatus::Pending.is_terminal());
        assert!(!JobStatus::Running.is_terminal());
        assert!(JobStatus::Succeeded.is_terminal());
        assert!(JobStatus::Failed.is_terminal());
    }

    #[test]
    fn a_submission_leaves_out_what_is_unset() {
        let minimal = JobSubmission {
            entrypoint: "python main.py".into(),
            submission_id: "rayjob-sample-abc12".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&minimal).expect("serializes"),
            serde_json::json!({"entrypoint": "python main.py", "submission_id": "rayjob-sample-abc12"})
        );
        let full = JobSubmission {
            runtime_env: Some(serde_json::json!({"pip": ["requests"]})),
            metadata: Some(BTreeMap::from([("owner".into(), "me".into())])),
            entrypoint_num_cpus: Some(0.5),
            entrypoint_num_gpus: Some(1.0),
            entrypoint_resources: Some(BTreeMap::from([("custom".into(), 2.0)])),
            ..minimal
        };
        assert_eq!(
            serde_json::to_value(&full).expect("serializes"),
            serde_json::json!({
                "entrypoint": "python main.py",
                "submission_id": "rayjob-sample-abc12",
                "runtime_env": {"pip": ["requests"]},
                "metadata": {"owner": "me"},
                "entrypoint_num_cpus": 0.5,
                "entrypoint_num_gpus": 1.0,
                "entrypoint_resources": {"custom": 2.0},
            })
        );
    }

    #[test]
    fn ray_s_already_exists_answer_is_recognised() {
        let body = fixture("submit-already-exists.txt");
        assert!(is_already_exists(&body, "j1"));
        // Another id, or another failure, is not this.
        assert!(!is_already_exists(&body, "j"));
        assert!(!is_already_exists(&body, "j10"));
        assert!(!is_already_exists(
            "ValueError: Job with submission_id j1 failed: runtime env setup",
            "j1"
        ));
        assert!(!is_already_exists(
            "RuntimeError: file /tmp/x already exists",
            "x"
        ));
    }
}
