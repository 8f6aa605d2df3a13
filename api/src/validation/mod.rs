//! Validation of RayCluster, RayJob and RayService: every rule KubeRay applies (in its CRD,
//! webhook or controllers), checked at admission, plus raygate's own topology rules.
//!
//! Pure functions over typed objects; they run on the *normalized* object (after defaults).
//! Every problem is reported, not just the first: one [`FieldError`](crate::FieldError) per
//! bad field, with KubeRay's wording where KubeRay has a message, so a search for KubeRay's
//! message finds ours. Features KubeRay hides behind feature gates are always on here, so the
//! gate checks themselves (C21, C27, C35's gate, C38, C41, J6) are not errors, but the rules
//! those features impose are.
//!
//! On UPDATE the same rules run on the new object, problems the stored object already had
//! (unchanged) are ratcheted down to warnings, and the rules comparing old and new apply
//! (`update`). Enum values (§3.2, C44) are enforced by the types: they don't deserialize.
//! C6 cannot fail on typed objects (min/max always carry the CRD defaults); C43 and C46 are
//! runtime/status matters.
//!
//! Rule ids in comments (C1…C46, J1…J25, S1…S9) are those of `shared/kuberay/behaviour.md` §3;
//! raygate's own are T-… (`topology`, `resources`) and U-… (`update`).

mod auth;
mod autoscaling;
mod cluster_spec;
mod deletion_strategy;
mod field_path;
mod gcs_ft;
pub(crate) mod go_duration;
mod history_server;
mod k8s_names;
mod metadata;
pub use metadata::initializing_timeout;
mod network_policy;
mod not_built;
mod pod_template;
mod ray_node_params;
mod raycronjob;
mod rayjob;
mod rayservice;
mod resources;
mod tls;
mod topology;
mod update;
mod worker_groups;
mod yaml_text;

use crate::field_error::Validation;
use crate::{RayCluster, RayCronJob, RayJob, RayService};

use cluster_spec::{ClusterScope, Owner};

/// kubectl prints each warning on its own line; longer ones are cut to this many characters.
pub const MAX_WARNING_CHARS: usize = 120;

/// Problems with a RayCluster; `old` is the stored object on UPDATE.
pub fn validate_raycluster(cluster: &RayCluster, old: Option<&RayCluster>) -> Validation {
    validate(cluster, old, raycluster_rules, update::check_raycluster)
}

/// Problems with a RayJob; `old` is the stored object on UPDATE.
pub fn validate_rayjob(job: &RayJob, old: Option<&RayJob>) -> Validation {
    validate(job, old, rayjob::check, update::check_rayjob)
}

/// Problems with a RayCronJob; `old` is the stored object on UPDATE. A template change only
/// affects the RayJobs created afterwards, so nothing is immutable.
pub fn validate_raycronjob(cron_job: &RayCronJob, old: Option<&RayCronJob>) -> Validation {
    validate(cron_job, old, raycronjob::check, |_, _, _| {})
}

/// Problems with a RayService; `old` is the stored object on UPDATE.
pub fn validate_rayservice(service: &RayService, old: Option<&RayService>) -> Validation {
    validate(service, old, rayservice::check, update::check_rayservice)
}

fn raycluster_rules(v: &mut Validation, cluster: &RayCluster) {
    metadata::check_name(
        v,
        &cluster.metadata,
        "RayCluster",
        metadata::MAX_RAYCLUSTER_NAME,
    );
    let scope = ClusterScope::new(&cluster.spec, "spec", Owner::RayCluster, &cluster.metadata);
    cluster_spec::check(v, &scope);
}

/// The object's own rules, then on UPDATE ratcheting and the rules comparing it with `old`.
fn validate<K>(
    object: &K,
    old: Option<&K>,
    rules: fn(&mut Validation, &K),
    update_rules: fn(&mut Validation, &K, &K),
) -> Validation {
    let mut v = Validation::default();
    rules(&mut v, object);
    if let Some(old) = old {
        let mut stored = Validation::default();
        rules(&mut stored, old);
        ratchet(&mut v, &stored);
        update_rules(&mut v, object, old);
    }
    finish(v)
}

/// Ratcheting, as Kubernetes does for CRD schemas: on UPDATE, a problem the stored object
/// already had, unchanged (same field, same message), doesn't block the update; it becomes a
/// warning. Otherwise an object stored before a rule existed, or while the webhook was
/// bypassed, could not even take the autoscaler's `replicas` patches. Problems in fields the
/// update touches are still errors, and so are the UPDATE-only rules, applied after this.
fn ratchet(v: &mut Validation, stored: &Validation) {
    let (kept, existing): (Vec<_>, Vec<_>) = std::mem::take(&mut v.errors)
        .into_iter()
        .partition(|error| !stored.errors.contains(error));
    v.errors = kept;
    for error in existing {
        v.warn(format!("unchanged since stored, not blocking: {error}"));
    }
}

/// Drops repeated warnings and keeps each within [`MAX_WARNING_CHARS`].
fn finish(mut v: Validation) -> Validation {
    let mut seen = std::collections::BTreeSet::new();
    v.warnings = v
        .warnings
        .into_iter()
        .map(|warning| shorten(&warning))
        .filter(|warning| seen.insert(warning.clone()))
        .collect();
    v
}

fn shorten(warning: &str) -> String {
    if warning.chars().count() <= MAX_WARNING_CHARS {
        return warning.to_string();
    }
    let mut short: String = warning.chars().take(MAX_WARNING_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_the_stored_object_already_had_become_warnings() {
        let mut new = Validation::default();
        new.error("spec.a", "still wrong");
        new.error("spec.b", "newly wrong");
        let mut stored = Validation::default();
        stored.error("spec.a", "still wrong");
        stored.error("spec.c", "fixed now");
        ratchet(&mut new, &stored);
        assert_eq!(
            new.errors,
            [crate::FieldError::new("spec.b", "newly wrong")]
        );
        assert_eq!(
            new.warnings,
            ["unchanged since stored, not blocking: spec.a: still wrong"]
        );
    }

    #[test]
    fn long_warnings_are_cut_to_the_limit() {
        let long = "x".repeat(300);
        let v = finish(Validation {
            errors: vec![],
            warnings: vec![long.clone(), long, "short".into()],
        });
        assert_eq!(v.warnings.len(), 2);
        assert_eq!(v.warnings[0].chars().count(), MAX_WARNING_CHARS);
        assert!(v.warnings[0].ends_with('…'));
        assert_eq!(v.warnings[1], "short");
    }
}
