//! `RayCronJob` (`ray.io/v1`): creates a RayJob from a template on a cron schedule.

// kube's `printcolumn(...)` arguments repeat keys like `type_` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::rayjob::RayJobSpec;

/// A RayJob template run on a cron schedule.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ray.io",
    version = "v1",
    kind = "RayCronJob",
    plural = "raycronjobs",
    singular = "raycronjob",
    namespaced,
    status = "RayCronJobStatus",
    category = "all",
    derive = "Default",
    derive = "PartialEq",
    doc = "RayCronJob is the Schema for the raycronjobs API",
    printcolumn(name = "schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "timezone", type_ = "string", json_path = ".spec.timeZone"),
    printcolumn(
        name = "last schedule",
        type_ = "date",
        json_path = ".status.lastScheduleTime"
    ),
    printcolumn(
        name = "age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(name = "suspend", type_ = "boolean", json_path = ".spec.suspend")
)]
#[serde(rename_all = "camelCase")]
pub struct RayCronJobSpec {
    /// The RayJob created at each scheduled time.
    pub job_template: RayJobSpec,
    /// Cron schedule: five fields (minute hour day-of-month month day-of-week) or a
    /// descriptor such as `@hourly`.
    pub schedule: String,
    /// IANA time zone the schedule is read in (default UTC).
    #[schemars(length(min = 1))]
    pub time_zone: Option<String>,
    /// No new RayJobs while true; running ones are not affected.
    pub suspend: Option<bool>,
}

/// Observed state of a RayCronJob.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RayCronJobStatus {
    /// The scheduled time of the last RayJob created.
    pub last_schedule_time: Option<Time>,
}
