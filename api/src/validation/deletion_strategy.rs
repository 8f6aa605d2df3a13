//! A RayJob's `deletionStrategy` (J7–J14 and the CRD's CEL rules): either the legacy
//! `onSuccess`/`onFailure` pair or `deletionRules`, each rule with exactly one condition, no
//! duplicates, and TTLs that delete workers no later than the cluster and the cluster no later
//! than the RayJob itself. The `RayJobDeletionPolicy` feature gate (J6) is always on.

use std::collections::BTreeMap;

use crate::field_error::Validation;
use crate::raycluster::RayClusterSpec;
use crate::rayjob::{
    DeletionCondition, DeletionJobDeploymentStatus, DeletionJobStatus, DeletionPolicy,
    DeletionPolicyType, DeletionStrategy, RayJob,
};

use super::autoscaling;

const PATH: &str = "spec.deletionStrategy";

pub(crate) fn check(v: &mut Validation, job: &RayJob) {
    let Some(strategy) = &job.spec.deletion_strategy else {
        return;
    };
    let shutdown = job.spec.shutdown_after_job_finishes == Some(true);
    let legacy = strategy.on_success.is_some() || strategy.on_failure.is_some();
    let rules = strategy.deletion_rules.as_deref();

    // CRD: minItems 1.
    if rules.is_some_and(<[_]>::is_empty) {
        v.error(
            format!("{PATH}.deletionRules"),
            "deletionRules must have at least 1 item; remove the field or add a rule",
        );
    }
    let rules_configured = rules.is_some_and(|r| !r.is_empty());

    // J7
    if rules_configured && shutdown {
        v.error(
            format!("{PATH}.deletionRules"),
            "spec.shutdownAfterJobFinishes and spec.deletionStrategy.deletionRules are mutually \
             exclusive: express the cluster deletion as a DeleteCluster rule instead",
        );
    }
    if legacy && rules.is_some() {
        v.error(
            PATH,
            "legacy policies (onSuccess/onFailure) and deletionRules cannot be used together \
             within the same deletionStrategy: Cannot use both legacy onSuccess/onFailure fields \
             and deletionRules simultaneously",
        );
        return;
    }

    if legacy {
        v.warn("spec.deletionStrategy.onSuccess/onFailure are deprecated; use deletionRules");
        check_legacy(v, job, strategy, shutdown);
    } else if rules_configured {
        check_rules(v, job, rules.unwrap_or_default());
    } else if rules.is_none() {
        // J8
        v.error(
            PATH,
            "DeletionStrategy requires either BOTH onSuccess and onFailure, OR the deletionRules \
             field (cannot be empty)",
        );
    }
}

fn autoscaling_enabled(spec: Option<&RayClusterSpec>) -> bool {
    spec.is_some_and(autoscaling::enabled)
}

fn cluster_selector_mode(job: &RayJob) -> bool {
    job.spec
        .cluster_selector
        .as_ref()
        .is_some_and(|s| !s.is_empty())
}

fn policy_name(policy: DeletionPolicyType) -> &'static str {
    match policy {
        DeletionPolicyType::DeleteCluster => "DeleteCluster",
        DeletionPolicyType::DeleteWorkers => "DeleteWorkers",
        DeletionPolicyType::DeleteSelf => "DeleteSelf",
        DeletionPolicyType::DeleteNone => "DeleteNone",
    }
}

/// J14
fn check_legacy(v: &mut Validation, job: &RayJob, strategy: &DeletionStrategy, shutdown: bool) {
    let sides: [(&str, &str, Option<&DeletionPolicy>); 2] = [
        ("onSuccess", "OnSuccess", strategy.on_success.as_ref()),
        ("onFailure", "OnFailure", strategy.on_failure.as_ref()),
    ];
    for (field, go_name, side) in sides {
        let path = format!("{PATH}.{field}");
        let Some(side) = side else {
            v.error(
                path,
                "both DeletionStrategy.OnSuccess and DeletionStrategy.OnFailure must be set when \
                 using the legacy deletion policy fields of DeletionStrategy",
            );
            continue;
        };
        let Some(policy) = side.policy else {
            v.error(
                format!("{path}.policy"),
                format!(
                    "the DeletionPolicyType field of DeletionStrategy.{go_name} cannot be unset \
                     when DeletionStrategy is enabled"
                ),
            );
            continue;
        };
        let when = if field == "onSuccess" {
            "on success"
        } else {
            "on failure"
        };
        let policy_path = format!("{path}.policy");
        if cluster_selector_mode(job)
            && matches!(
                policy,
                DeletionPolicyType::DeleteCluster | DeletionPolicyType::DeleteWorkers
            )
        {
            v.error(
                policy_path.clone(),
                format!(
                    "the ClusterSelector mode doesn't support DeletionStrategy={} {when}",
                    policy_name(policy)
                ),
            );
        }
        if policy == DeletionPolicyType::DeleteWorkers
            && autoscaling_enabled(job.spec.ray_cluster_spec.as_ref())
        {
            v.error(
                policy_path.clone(),
                "DeletionStrategy=DeleteWorkers currently does not support RayCluster with \
                 autoscaling enabled",
            );
        }
        if shutdown && policy == DeletionPolicyType::DeleteNone {
            v.error(
                policy_path,
                "shutdownAfterJobFinshes is set to 'true' while deletion policy is 'DeleteNone'",
            );
        }
    }
}

/// The condition a rule waits for, as KubeRay names it in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Trigger {
    JobStatus(&'static str),
    JobDeploymentStatus(&'static str),
}

impl Trigger {
    fn of(condition: &DeletionCondition) -> Option<Trigger> {
        match (condition.job_status, condition.job_deployment_status) {
            (Some(status), None) => Some(Trigger::JobStatus(match status {
                DeletionJobStatus::Succeeded => "SUCCEEDED",
                DeletionJobStatus::Failed => "FAILED",
            })),
            (None, Some(DeletionJobDeploymentStatus::Failed)) => {
                Some(Trigger::JobDeploymentStatus("Failed"))
            }
            _ => None,
        }
    }

    fn describe(self) -> String {
        match self {
            Trigger::JobStatus(s) => format!("JobStatus '{s}'"),
            Trigger::JobDeploymentStatus(s) => format!("JobDeploymentStatus '{s}'"),
        }
    }
}

/// J9–J13
fn check_rules(v: &mut Validation, job: &RayJob, rules: &[crate::rayjob::DeletionRule]) {
    let selector_mode = cluster_selector_mode(job);
    let autoscaling = autoscaling_enabled(job.spec.ray_cluster_spec.as_ref());
    // (trigger, policy) → (rule index, ttl)
    let mut seen: BTreeMap<(Trigger, &'static str), (usize, i32)> = BTreeMap::new();

    for (index, rule) in rules.iter().enumerate() {
        let path = format!("{PATH}.deletionRules[{index}]");
        let condition = &rule.condition;
        let policy = policy_name(rule.policy);
        // J9
        let ttl = condition.ttl_seconds.unwrap_or(0);
        if ttl < 0 {
            v.error(
                format!("{path}.condition.ttlSeconds"),
                format!("deletionRules[{index}]: TTLSeconds must be non-negative, got {ttl}"),
            );
        }
        let Some(trigger) = Trigger::of(condition) else {
            let message = if condition.job_status.is_some() {
                "cannot set both JobStatus and JobDeploymentStatus at the same time"
            } else {
                "exactly one of JobStatus and JobDeploymentStatus must be set"
            };
            v.error(
                format!("{path}.condition"),
                format!("deletionRules[{index}]: {message}"),
            );
            continue;
        };
        // J10
        if selector_mode && matches!(policy, "DeleteCluster" | "DeleteWorkers") {
            v.error(
                format!("{path}.policy"),
                format!(
                    "deletionRules[{index}]: DeletionPolicyType '{policy}' not supported when \
                     ClusterSelector is set"
                ),
            );
            continue;
        }
        // J11
        if autoscaling && policy == "DeleteWorkers" {
            v.error(
                format!("{path}.policy"),
                format!(
                    "deletionRules[{index}]: DeletionPolicyType 'DeleteWorkers' not supported \
                     with autoscaling enabled"
                ),
            );
            continue;
        }
        // J12
        if let Some((first, _)) = seen.get(&(trigger, policy)) {
            v.error(
                path,
                format!(
                    "deletionRules[{index}]: duplicate rule for DeletionPolicyType '{policy}' and \
                     {} (first at deletionRules[{first}])",
                    trigger.describe()
                ),
            );
            continue;
        }
        seen.insert((trigger, policy), (index, ttl));
    }

    // J13: per trigger, DeleteWorkers ≤ DeleteCluster ≤ DeleteSelf.
    let triggers: std::collections::BTreeSet<Trigger> = seen.keys().map(|(t, _)| *t).collect();
    for trigger in triggers {
        let mut previous: Option<(&str, i32)> = None;
        for policy in ["DeleteWorkers", "DeleteCluster", "DeleteSelf"] {
            let Some(&(index, ttl)) = seen.get(&(trigger, policy)) else {
                continue;
            };
            if let Some((previous_policy, previous_ttl)) = previous
                && ttl < previous_ttl
            {
                v.error(
                    format!("{PATH}.deletionRules[{index}].condition.ttlSeconds"),
                    format!(
                        "for {}: {policy} TTL ({ttl}) must be >= {previous_policy} TTL \
                         ({previous_ttl})",
                        trigger.describe()
                    ),
                );
            }
            previous = Some((policy, ttl));
        }
    }
}
