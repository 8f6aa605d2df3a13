//! What happens to a finished RayJob's resources, and when: `deletionStrategy` (rules, or the
//! legacy onSuccess/onFailure pair) or `shutdownAfterJobFinishes`, each counted from
//! `status.endTime`. Pure: the reconcile pass executes what this plans.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use raygate_api::RayJob;
use raygate_api::rayjob::{DeletionJobDeploymentStatus, DeletionJobStatus, DeletionPolicyType};

use super::state::{self, deployment, job_status};

/// One cleanup and the time it becomes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub action: DeletionPolicyType,
    pub due: Timestamp,
}

/// How much an action removes; the most impactful overdue action runs first.
pub fn impact(action: DeletionPolicyType) -> u8 {
    match action {
        DeletionPolicyType::DeleteSelf => 3,
        DeletionPolicyType::DeleteCluster => 2,
        DeletionPolicyType::DeleteWorkers => 1,
        DeletionPolicyType::DeleteNone => 0,
    }
}

fn after(end: Timestamp, seconds: Option<i32>) -> Timestamp {
    let seconds = i64::from(seconds.unwrap_or(0).max(0));
    end.checked_add(SignedDuration::from_secs(seconds))
        .unwrap_or(end)
}

/// Every cleanup that applies to this finished job (empty while it runs, or with a
/// `clusterSelector`: a selected cluster is never the job's to delete).
pub fn plan(job: &RayJob) -> Vec<Planned> {
    let deployment_status = state::deployment_status(job);
    if !matches!(deployment_status, deployment::COMPLETE | deployment::FAILED)
        || job.spec.cluster_selector.is_some()
    {
        return Vec::new();
    }
    let Some(end) = job
        .status
        .as_ref()
        .and_then(|s| s.end_time.as_ref())
        .map(|t| t.0)
    else {
        return Vec::new();
    };
    let ray_status = state::job_status(job);
    if let Some(strategy) = &job.spec.deletion_strategy {
        if let Some(rules) = &strategy.deletion_rules {
            return rules
                .iter()
                .filter(|rule| {
                    let condition = &rule.condition;
                    match (condition.job_status, condition.job_deployment_status) {
                        (Some(DeletionJobStatus::Succeeded), _) => {
                            ray_status == job_status::SUCCEEDED
                        }
                        (Some(DeletionJobStatus::Failed), _) => ray_status == job_status::FAILED,
                        (None, Some(DeletionJobDeploymentStatus::Failed)) => {
                            deployment_status == deployment::FAILED
                        }
                        (None, None) => false,
                    }
                })
                .map(|rule| Planned {
                    action: rule.policy,
                    due: after(end, rule.condition.ttl_seconds),
                })
                .collect();
        }
        let legacy = if ray_status == job_status::SUCCEEDED {
            strategy.on_success.as_ref()
        } else {
            strategy.on_failure.as_ref()
        };
        return legacy
            .and_then(|p| p.policy)
            .map(|action| Planned {
                action,
                due: after(end, job.spec.ttl_seconds_after_finished),
            })
            .into_iter()
            .collect();
    }
    if job.spec.shutdown_after_job_finishes == Some(true) {
        return vec![Planned {
            action: DeletionPolicyType::DeleteCluster,
            due: after(end, job.spec.ttl_seconds_after_finished),
        }];
    }
    Vec::new()
}

/// The action to run now (the most impactful overdue one) and when to look again for the
/// rest (the earliest action not yet due).
pub fn next(
    planned: &[Planned],
    now: Timestamp,
) -> (Option<DeletionPolicyType>, Option<Timestamp>) {
    let overdue = planned
        .iter()
        .filter(|p| p.due <= now)
        .max_by_key(|p| impact(p.action))
        .map(|p| p.action);
    let later = planned.iter().filter(|p| p.due > now).map(|p| p.due).min();
    (overdue, later)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use raygate_api::RayJobStatus;
    use serde_json::json;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("a time")
    }

    fn finished(spec: serde_json::Value, deployment: &str, ray: &str) -> RayJob {
        let mut job: RayJob = serde_json::from_value(json!({
            "apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {"name": "j", "namespace": "ns"},
            "spec": spec,
        }))
        .expect("a RayJob");
        job.status = Some(RayJobStatus {
            job_deployment_status: Some(deployment.to_string()),
            job_status: Some(ray.to_string()),
            end_time: Some(Time(at(0))),
            ..Default::default()
        });
        job
    }

    #[test]
    fn shutdown_after_finish_deletes_the_cluster_after_the_ttl() {
        let job = finished(
            json!({"shutdownAfterJobFinishes": true, "ttlSecondsAfterFinished": 30}),
            "Complete",
            "SUCCEEDED",
        );
        let planned = plan(&job);
        assert_eq!(
            planned,
            vec![Planned {
                action: DeletionPolicyType::DeleteCluster,
                due: at(30)
            }]
        );
        assert_eq!(next(&planned, at(29)), (None, Some(at(30))));
        assert_eq!(
            next(&planned, at(30)),
            (Some(DeletionPolicyType::DeleteCluster), None)
        );
    }

    #[test]
    fn running_jobs_and_selected_clusters_plan_nothing() {
        let running = finished(
            json!({"shutdownAfterJobFinishes": true}),
            "Running",
            "RUNNING",
        );
        assert!(plan(&running).is_empty());
        let selected = finished(
            json!({"shutdownAfterJobFinishes": true, "clusterSelector": {"ray.io/cluster": "c"}}),
            "Complete",
            "SUCCEEDED",
        );
        assert!(plan(&selected).is_empty());
    }

    #[test]
    fn rules_match_the_outcome_and_the_most_impactful_overdue_one_runs() {
        let spec = json!({"deletionStrategy": {"deletionRules": [
            {"policy": "DeleteWorkers", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 0}},
            {"policy": "DeleteCluster", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 60}},
            {"policy": "DeleteSelf", "condition": {"jobStatus": "FAILED", "ttlSeconds": 0}},
        ]}});
        let succeeded = finished(spec.clone(), "Complete", "SUCCEEDED");
        let planned = plan(&succeeded);
        assert_eq!(planned.len(), 2);
        assert_eq!(
            next(&planned, at(1)),
            (Some(DeletionPolicyType::DeleteWorkers), Some(at(60)))
        );
        assert_eq!(
            next(&planned, at(61)),
            (Some(DeletionPolicyType::DeleteCluster), None)
        );
        let failed = finished(spec, "Failed", "FAILED");
        assert_eq!(
            next(&plan(&failed), at(0)).0,
            Some(DeletionPolicyType::DeleteSelf)
        );
    }

    #[test]
    fn deployment_status_rules_and_legacy_policies() {
        let rules = json!({"deletionStrategy": {"deletionRules": [
            {"policy": "DeleteCluster", "condition": {"jobDeploymentStatus": "Failed"}},
        ]}});
        assert_eq!(plan(&finished(rules.clone(), "Failed", "")).len(), 1);
        assert!(plan(&finished(rules, "Complete", "SUCCEEDED")).is_empty());
        let legacy = json!({"ttlSecondsAfterFinished": 5, "deletionStrategy": {
            "onSuccess": {"policy": "DeleteSelf"}, "onFailure": {"policy": "DeleteNone"}}});
        assert_eq!(
            plan(&finished(legacy.clone(), "Complete", "SUCCEEDED")),
            vec![Planned {
                action: DeletionPolicyType::DeleteSelf,
                due: at(5)
            }]
        );
        assert_eq!(
            plan(&finished(legacy, "Failed", "FAILED"))[0].action,
            DeletionPolicyType::DeleteNone
        );
    }
}
