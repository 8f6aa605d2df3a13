//! One denied and one admitted case per RayCronJob rule (behaviour.md §3.6): the name leaves
//! room for the RayJobs' suffix, the schedule parses (without `TZ=`), the time zone exists, and
//! the job template passes every RayJob rule, reported under `spec.jobTemplate`.

mod validation_support;

use serde_json::json;
use validation_support::{allow, cron_job, deny, run, update, warn, with};

#[test]
fn raycronjob_rules() {
    run(vec![
        allow("R-base", cron_job()),
        deny(
            "R-name",
            with(cron_job(), &[("/metadata/name", json!("c".repeat(37)))]),
            "metadata.name",
            &["RayCronJob name should be no more than 36 characters"],
        ),
        allow(
            "R-name",
            with(cron_job(), &[("/metadata/name", json!("c".repeat(36)))]),
        ),
        deny(
            "R-schedule-tz",
            with(
                cron_job(),
                &[("/spec/schedule", json!("CRON_TZ=UTC 0 * * * *"))],
            ),
            "spec.schedule",
            &[
                "CRON_TZ or TZ in the schedule is not supported",
                "spec.timeZone",
            ],
        ),
        deny(
            "R-schedule",
            with(cron_job(), &[("/spec/schedule", json!("61 * * * *"))]),
            "spec.schedule",
            &[
                "invalid cron schedule \"61 * * * *\"",
                "minute field",
                "out of range [0, 59]",
            ],
        ),
        deny(
            "R-schedule",
            with(cron_job(), &[("/spec/schedule", json!("0 0 * *"))]),
            "spec.schedule",
            &["expected exactly 5 fields"],
        ),
        allow(
            "R-schedule",
            with(
                cron_job(),
                &[("/spec/schedule", json!("*/15 9-17 * JAN-MAR mon-fri"))],
            ),
        ),
        allow(
            "R-schedule",
            with(cron_job(), &[("/spec/schedule", json!("@hourly"))]),
        ),
        allow(
            "R-schedule",
            with(cron_job(), &[("/spec/schedule", json!("@every 2h30m"))]),
        ),
        warn(
            "R-schedule-never",
            with(cron_job(), &[("/spec/schedule", json!("0 0 30 2 *"))]),
            &["no date in the next 5 years"],
        ),
        deny(
            "R-timeZone",
            with(
                cron_job(),
                &[("/spec/timeZone", json!("Mars/Olympus_Mons"))],
            ),
            "spec.timeZone",
            &["unknown time zone \"Mars/Olympus_Mons\"", "IANA name"],
        ),
        deny(
            "R-timeZone",
            with(cron_job(), &[("/spec/timeZone", json!(""))]),
            "spec.timeZone",
            &["must not be empty"],
        ),
        allow(
            "R-timeZone",
            with(cron_job(), &[("/spec/timeZone", json!("Asia/Tokyo"))]),
        ),
        deny(
            "R-jobTemplate",
            with(
                cron_job(),
                &[("/spec/jobTemplate/submissionMode", json!("BatchMode"))],
            ),
            "spec.jobTemplate.submissionMode",
            &["submissionMode \"BatchMode\" is not supported"],
        ),
        deny(
            "R-jobTemplate",
            with(
                cron_job(),
                &[("/spec/jobTemplate/rayClusterSpec", json!(null))],
            ),
            "spec.jobTemplate.rayClusterSpec",
            &["one of RayClusterSpec or ClusterSelector must be set"],
        ),
        deny(
            "R-jobTemplate",
            with(
                cron_job(),
                &[("/spec/jobTemplate/rayClusterSpec/managedBy", json!("me"))],
            ),
            "spec.jobTemplate.rayClusterSpec.managedBy",
            &["must be either"],
        ),
        warn(
            "R-jobTemplate",
            with(
                cron_job(),
                &[(
                    "/spec/jobTemplate/clusterSelector",
                    json!({"ray.io/cluster": "shared"}),
                )],
            ),
            &["spec.jobTemplate.rayClusterSpec is ignored"],
        ),
        // Nothing is immutable: a new template applies to the RayJobs created afterwards.
        allow(
            "R-update",
            with(
                cron_job(),
                &[("/spec/jobTemplate/entrypoint", json!("python other.py"))],
            ),
        ),
        update(
            allow(
                "R-update",
                with(
                    cron_job(),
                    &[("/spec/jobTemplate/entrypoint", json!("python other.py"))],
                ),
            ),
            cron_job(),
        ),
    ]);
}
