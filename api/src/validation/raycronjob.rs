//! RayCronJob rules (behaviour.md §3.6): a name that leaves room for the RayJobs' suffix, a
//! schedule Go's cron parser accepts without a `TZ=` prefix, a known time zone, and a job
//! template that passes every RayJob rule (reported under `spec.jobTemplate`). KubeRay checks
//! these only in its controller, as an `InvalidRayCronJobSpec` event.

use jiff::Timestamp;

use super::{metadata, rayjob};
use crate::cron::{self, Schedule};
use crate::field_error::Validation;
use crate::raycronjob::RayCronJob;
use crate::rayjob::RayJob;

/// RayJobs are named `<cronjob>-<minutes since the epoch>` (10 digits reserved), and must fit
/// a RayJob name.
pub(crate) const MAX_RAYCRONJOB_NAME: usize = metadata::MAX_RAYJOB_NAME - 11;

pub(crate) fn check(v: &mut Validation, cron_job: &RayCronJob) {
    metadata::check_name(v, &cron_job.metadata, "RayCronJob", MAX_RAYCRONJOB_NAME);
    let spec = &cron_job.spec;

    let schedule = spec.schedule.as_str();
    let parsed = if schedule.contains("TZ") {
        v.error(
            "spec.schedule",
            "CRON_TZ or TZ in the schedule is not supported: set spec.timeZone instead",
        );
        None
    } else {
        match Schedule::parse(schedule) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                v.error(
                    "spec.schedule",
                    format!("invalid cron schedule {schedule:?}: {error}"),
                );
                None
            }
        }
    };
    let zone = match spec.time_zone.as_deref() {
        Some("") => {
            v.error(
                "spec.timeZone",
                "timeZone must not be empty: omit it for UTC",
            );
            None
        }
        name => match cron::time_zone(name) {
            Ok(zone) => Some(zone),
            Err(error) => {
                v.error(
                    "spec.timeZone",
                    format!("{error}: use an IANA name such as \"Europe/Berlin\""),
                );
                None
            }
        },
    };
    if let (Some(parsed), Some(zone)) = (parsed, zone)
        && parsed.next_after(Timestamp::now(), &zone).is_none()
    {
        v.warn(format!(
            "schedule {schedule:?} has no date in the next 5 years: no RayJob will be created"
        ));
    }

    check_job_template(v, cron_job);
}

/// Every RayJob rule on the template, as if it were the first RayJob this cron job creates.
fn check_job_template(v: &mut Validation, cron_job: &RayCronJob) {
    let mut metadata = cron_job.metadata.clone();
    let name = metadata.name.as_deref().unwrap_or("raycronjob");
    metadata.name = Some(format!("{name}-0000000000"));
    metadata.generate_name = None;
    let job = RayJob {
        metadata,
        spec: cron_job.spec.job_template.clone(),
        status: None,
    };
    let mut template = Validation::default();
    rayjob::check(&mut template, &job);
    for mut error in template.errors {
        // The name was checked above, in the cron job's own terms.
        if error.path.starts_with("metadata.") {
            continue;
        }
        error.path = under_template(&error.path);
        error.message = mention_template(&error.message);
        v.errors.push(error);
    }
    v.warnings.extend(
        template
            .warnings
            .iter()
            .map(|warning| mention_template(warning)),
    );
}

/// `spec.rayClusterSpec` → `spec.jobTemplate.rayClusterSpec`.
fn under_template(path: &str) -> String {
    match path.strip_prefix("spec") {
        Some(rest) if rest.is_empty() || rest.starts_with(['.', '[']) => {
            format!("spec.jobTemplate{rest}")
        }
        _ => path.to_string(),
    }
}

/// Field paths quoted in a RayJob message, moved under the template.
fn mention_template(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 16);
    let mut rest = message;
    while let Some(at) = rest.find("spec.") {
        let starts_word = at == 0
            || rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| !(c.is_alphanumeric() || c == '.' || c == '_'));
        out.push_str(&rest[..at]);
        out.push_str(if starts_word {
            "spec.jobTemplate."
        } else {
            "spec."
        });
        rest = &rest[at + "spec.".len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_messages_move_under_the_template() {
        assert_eq!(
            under_template("spec.rayClusterSpec.headGroupSpec"),
            "spec.jobTemplate.rayClusterSpec.headGroupSpec"
        );
        assert_eq!(under_template("spec"), "spec.jobTemplate");
        assert_eq!(under_template("specification"), "specification");
        assert_eq!(
            mention_template("spec.rayClusterSpec is ignored: spec.clusterSelector wins"),
            "spec.jobTemplate.rayClusterSpec is ignored: spec.jobTemplate.clusterSelector wins"
        );
        assert_eq!(
            mention_template("the template.spec.containers list"),
            "the template.spec.containers list"
        );
    }
}
