//! What the webhook reports in each RayPolicy's `status`, decided without I/O: the admissions
//! counted since the last write, what this replica made of the policy's current generation,
//! and from those the next status to write ([`PolicyStatusBook::due`]).
//! [`crate::policy_status_writer`] does the writing.
//!
//! ## Several replicas, one status
//!
//! The webhook runs as several replicas (the chart's default is 2), each admitting a share of
//! the requests, and each policy has one status. Per-replica entries would keep counting pods
//! that are long gone after every rollout, and counts that restart from zero with each pod; so
//! the replicas share totals instead, and take turns adding to them:
//!
//! - Every write is computed from the object as last read (watch event, GET, or the previous
//!   write's answer) and carries that read's `resourceVersion`. A write based on a stale read is
//!   refused with 409 Conflict and redone from a fresh read, so no replica ever overwrites
//!   another's counts.
//! - Counts are added, never set: a replica keeps what it counted until a write that includes
//!   them succeeds, then takes exactly those off (admissions counted meanwhile wait for the
//!   next write). The totals therefore cover every replica since the policy was created and
//!   survive restarts and rollouts; a replica killed without SIGTERM loses its last few
//!   seconds (it flushes on SIGTERM). Per-replica rates are in `raygate_policy_violations_total`.
//! - Writes happen every few seconds, one per policy that has counts to add or a `Ready` report
//!   to make, and never otherwise.
//! - The `Ready` report merges the same way on every replica ([`ready_report`]), so replicas
//!   that disagree converge instead of rewriting each other.
//!
//! Only cluster RayPolicies are tracked: a `--policy-dir` policy has no object to report on, so
//! what it matches is counted only in metrics. (A file policy with the same name as a cluster
//! policy would be counted under the cluster object; the names are the only link we have.)

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use raygate_api::policy::{Action, READY_CONDITION, RayPolicyStatus, Violation};

/// Reason of `Ready=True`.
pub const REASON_LOADED: &str = "Loaded";
/// Reason of `Ready=False`: the stored policy does not compile.
pub const REASON_INVALID: &str = "Invalid";

/// Admissions counted for one policy. Each admission counts once per policy, whatever the
/// number of violations (`raygate_policy_violations_total` counts violations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub matched: u64,
    pub denied: u64,
    pub warned: u64,
    pub audited: u64,
}

impl Counts {
    /// One admission's part for `policy`, which matched it: `denied`, `warned` and `audited`
    /// each count when any of the policy's violations has that action.
    pub fn of_admission(policy: &str, violations: &[Violation]) -> Self {
        let has = |action: Action| {
            u64::from(
                violations
                    .iter()
                    .any(|v| v.policy == policy && v.action == action),
            )
        };
        Self {
            matched: 1,
            denied: has(Action::Deny),
            warned: has(Action::Warn),
            audited: has(Action::Audit),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    fn add(&mut self, other: Counts) {
        self.matched = self.matched.saturating_add(other.matched);
        self.denied = self.denied.saturating_add(other.denied);
        self.warned = self.warned.saturating_add(other.warned);
        self.audited = self.audited.saturating_add(other.audited);
    }

    fn subtract(&mut self, other: Counts) {
        self.matched = self.matched.saturating_sub(other.matched);
        self.denied = self.denied.saturating_sub(other.denied);
        self.warned = self.warned.saturating_sub(other.warned);
        self.audited = self.audited.saturating_sub(other.audited);
    }
}

/// What this replica made of one generation of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    /// Compiled and in force.
    Loaded,
    /// Did not compile (every error, joined); the policy is not enforced at all.
    Invalid(String),
}

/// A RayPolicy as last read from the API server: what a status write is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedPolicy {
    pub name: String,
    pub uid: String,
    pub generation: i64,
    pub resource_version: String,
    pub status: RayPolicyStatus,
}

impl ObservedPolicy {
    /// Reads a RayPolicy object; `None` without a name, uid or resourceVersion (never the case
    /// for an object the API server returns). A status that doesn't parse reads as empty.
    pub fn from_object(object: &DynamicObject) -> Option<Self> {
        let meta = &object.metadata;
        let status = object
            .data
            .get("status")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default();
        Some(Self {
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            generation: meta.generation.unwrap_or_default(),
            resource_version: meta.resource_version.clone()?,
            status,
        })
    }
}

/// One status write the book asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusWrite {
    pub name: String,
    /// The object it was computed for: a recreated policy with the same name is another object.
    pub uid: String,
    /// The read it was computed from; the API server refuses the write if the object changed.
    pub resource_version: String,
    /// Only the fields the webhook manages (the `Ready` condition among the conditions).
    pub status: RayPolicyStatus,
    /// The counts it adds to the stored ones; taken off the pending counts once written.
    pub adds: Counts,
}

#[derive(Debug)]
struct Tracked {
    observed: ObservedPolicy,
    /// This replica's compile result, and the generation it was for.
    load: Option<(i64, LoadOutcome)>,
    /// Counted and not yet written.
    pending: Counts,
    last_matched: Option<Timestamp>,
}

/// The tracked cluster RayPolicies, by name. Admission threads count into it; the policy watch
/// and the writer keep it in step with the API server.
#[derive(Debug, Default)]
pub struct PolicyStatusBook {
    policies: Mutex<HashMap<String, Tracked>>,
}

impl PolicyStatusBook {
    /// Counts one admission for every tracked policy in `matched` (the names of the policies
    /// that applied to the object; `violations` are all of them, any policy).
    pub fn count(&self, matched: &[String], violations: &[Violation], now: Timestamp) {
        if matched.is_empty() {
            return;
        }
        let mut policies = self.lock();
        for name in matched {
            if let Some(tracked) = policies.get_mut(name) {
                tracked.pending.add(Counts::of_admission(name, violations));
                tracked.last_matched = Some(now);
            }
        }
    }

    /// Records the object as read (from the watch, a GET or a write's response). A new uid is a
    /// new policy: what was counted for the old one is dropped with it.
    pub fn observe(&self, observed: ObservedPolicy) {
        let mut policies = self.lock();
        match policies.get_mut(&observed.name) {
            Some(tracked) if tracked.observed.uid == observed.uid => tracked.observed = observed,
            _ => {
                policies.insert(
                    observed.name.clone(),
                    Tracked {
                        observed,
                        load: None,
                        pending: Counts::default(),
                        last_matched: None,
                    },
                );
            }
        }
    }

    /// Records what this replica made of `generation` of an observed policy. Returns whether
    /// that is news (another generation, or another outcome), e.g. to log it once.
    pub fn loaded(&self, name: &str, generation: i64, outcome: LoadOutcome) -> bool {
        let mut policies = self.lock();
        let Some(tracked) = policies.get_mut(name) else {
            return false;
        };
        let load = Some((generation, outcome));
        let news = tracked.load != load;
        tracked.load = load;
        news
    }

    /// The policy was deleted: nothing more to report.
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    /// After a full list: forgets policies not in it (deleted while the watch was down).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|name, _| keep(name));
    }

    /// Counted for `name` and not yet written.
    pub fn pending(&self, name: &str) -> Counts {
        self.lock().get(name).map(|t| t.pending).unwrap_or_default()
    }

    /// Every write due now: one per policy that has counts to add or a `Ready` report to make.
    /// Called every few seconds, so a busy policy's status is written at that pace at most.
    pub fn due(&self, replica: &str, now: Timestamp) -> Vec<StatusWrite> {
        let policies = self.lock();
        let mut writes: Vec<StatusWrite> = policies
            .values()
            .filter_map(|t| next_write(t, replica, now))
            .collect();
        writes.sort_by(|a, b| a.name.cmp(&b.name));
        writes
    }

    /// The write due for one policy (after a conflict and a fresh read).
    pub fn due_for(&self, name: &str, replica: &str, now: Timestamp) -> Option<StatusWrite> {
        self.lock()
            .get(name)
            .and_then(|t| next_write(t, replica, now))
    }

    /// `write` succeeded and the API server answered `updated`: its counts are no longer
    /// pending.
    pub fn written(&self, write: &StatusWrite, updated: ObservedPolicy) {
        let mut policies = self.lock();
        if let Some(tracked) = policies.get_mut(&write.name)
            && tracked.observed.uid == write.uid
        {
            tracked.pending.subtract(write.adds);
            if updated.uid == write.uid {
                tracked.observed = updated;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        match self.policies.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn next_write(tracked: &Tracked, replica: &str, now: Timestamp) -> Option<StatusWrite> {
    let observed = &tracked.observed;
    // Report only on the generation just read: a newer one (seen by a GET before the watch
    // delivered it) is reported once this replica has compiled it.
    let ready = tracked
        .load
        .as_ref()
        .filter(|(generation, _)| *generation == observed.generation)
        .and_then(|(generation, outcome)| {
            ready_report(&observed.status, *generation, outcome, replica, now)
        });
    if ready.is_none() && tracked.pending.is_zero() {
        return None;
    }
    let stored = &observed.status;
    let adds = tracked.pending;
    let mut status = RayPolicyStatus {
        observed_generation: stored.observed_generation,
        // Ours is `Ready`; other conditions, if someone adds any, are theirs to keep.
        conditions: stored.ready().map(|c| vec![c.clone()]),
        matched: Some(total(stored.matched, adds.matched)),
        denied: Some(total(stored.denied, adds.denied)),
        warned: Some(total(stored.warned, adds.warned)),
        audited: Some(total(stored.audited, adds.audited)),
        last_matched_time: stored.last_matched_time.clone(),
    };
    if adds.matched > 0
        && let Some(at) = tracked.last_matched
        && stored.last_matched_time.as_ref().is_none_or(|t| t.0 < at)
    {
        status.last_matched_time = Some(Time(at));
    }
    if let Some(condition) = ready {
        status.observed_generation = condition.observed_generation;
        status.conditions = Some(vec![condition]);
    }
    Some(StatusWrite {
        name: observed.name.clone(),
        uid: observed.uid.clone(),
        resource_version: observed.resource_version.clone(),
        status,
        adds,
    })
}

fn total(stored: Option<i64>, adds: u64) -> i64 {
    stored
        .unwrap_or_default()
        .max(0)
        .saturating_add(i64::try_from(adds).unwrap_or(i64::MAX))
}

/// The `Ready` condition this replica should write for `generation`, or `None` when the stored
/// one already says it. The first report of a generation wins, except that a failure replaces
/// a success: one replica not enforcing the policy makes it unreliable. (A failure for a
/// generation therefore stays until the policy changes, even if a later replica compiles it.)
/// That rule is the same on every replica, so replicas that disagree (during an upgrade from an
/// older raygate) converge instead of rewriting each other's report every few seconds.
pub fn ready_report(
    stored: &RayPolicyStatus,
    generation: i64,
    outcome: &LoadOutcome,
    replica: &str,
    now: Timestamp,
) -> Option<Condition> {
    let current = stored
        .ready()
        .filter(|_| stored.observed_generation == Some(generation))
        .filter(|c| c.observed_generation == Some(generation));
    let (status, reason, message) = match outcome {
        LoadOutcome::Loaded => (
            "True",
            REASON_LOADED,
            format!(
                "the webhook compiled generation {generation} and enforces it (reported by \
                 replica {replica})"
            ),
        ),
        LoadOutcome::Invalid(errors) => (
            "False",
            REASON_INVALID,
            format!(
                "not enforced: webhook replica {replica} could not compile generation \
                 {generation}: {errors}"
            ),
        ),
    };
    if let Some(current) = current
        && (current.status == status || current.status == "False")
    {
        return None;
    }
    // The transition time moves only when the status does.
    let last_transition_time = match stored.ready() {
        Some(previous) if previous.status == status => previous.last_transition_time.clone(),
        _ => Time(now),
    };
    Some(Condition {
        type_: READY_CONDITION.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: Some(generation),
        last_transition_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const REPLICA: &str = "raygate-webhook-a";

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp")
    }

    fn violation(policy: &str, action: Action) -> Violation {
        Violation {
            policy: policy.to_owned(),
            rule: "maxReplicasPerGroup",
            action,
            path: "spec.workerGroupSpecs[0].maxReplicas".to_owned(),
            message: "above the limit".to_owned(),
        }
    }

    fn observed(
        generation: i64,
        resource_version: &str,
        status: RayPolicyStatus,
    ) -> ObservedPolicy {
        ObservedPolicy {
            name: "quota".to_owned(),
            uid: "uid-1".to_owned(),
            generation,
            resource_version: resource_version.to_owned(),
            status,
        }
    }

    /// A book tracking `quota` at generation 1, loaded, with its Ready report already stored.
    fn settled_book() -> PolicyStatusBook {
        let book = PolicyStatusBook::default();
        book.observe(observed(1, "10", RayPolicyStatus::default()));
        book.loaded("quota", 1, LoadOutcome::Loaded);
        let write = book.due(REPLICA, at(0)).pop().expect("a Ready report");
        book.written(&write, observed(1, "11", write.status.clone()));
        book
    }

    fn counted(matched: u64, denied: u64, warned: u64, audited: u64) -> Counts {
        Counts {
            matched,
            denied,
            warned,
            audited,
        }
    }

    #[test]
    fn an_admission_counts_once_per_policy_and_action_whatever_the_number_of_violations() {
        let violations = [
            violation("quota", Action::Deny),
            violation("quota", Action::Deny),
            violation("quota", Action::Audit),
            violation("other", Action::Warn),
        ];
        assert_eq!(
            Counts::of_admission("quota", &violations),
            counted(1, 1, 0, 1)
        );
        assert_eq!(
            Counts::of_admission("other", &violations),
            counted(1, 0, 1, 0)
        );
        assert_eq!(
            Counts::of_admission("clean", &violations),
            counted(1, 0, 0, 0)
        );
    }

    #[test]
    fn a_loaded_policy_is_reported_ready_with_zero_counters() {
        let book = PolicyStatusBook::default();
        book.observe(observed(3, "10", RayPolicyStatus::default()));
        assert!(book.due(REPLICA, at(0)).is_empty(), "nothing known yet");
        assert!(book.loaded("quota", 3, LoadOutcome::Loaded));
        assert!(
            !book.loaded("quota", 3, LoadOutcome::Loaded),
            "not news twice"
        );
        let writes = book.due(REPLICA, at(5));
        assert_eq!(writes.len(), 1);
        let write = &writes[0];
        assert_eq!(write.resource_version, "10");
        assert_eq!(write.adds, Counts::default());
        assert_eq!(write.status.observed_generation, Some(3));
        assert_eq!(
            (write.status.matched, write.status.denied),
            (Some(0), Some(0))
        );
        let ready = write.status.ready().expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Loaded")
        );
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(ready.last_transition_time, Time(at(5)));
        assert!(ready.message.contains("generation 3"), "{}", ready.message);
    }

    #[test]
    fn nothing_is_written_when_nothing_changed() {
        let book = settled_book();
        assert_eq!(book.due(REPLICA, at(10)), Vec::new());
        // Another replica reporting the same generation ready changes nothing either.
        assert_eq!(book.due("raygate-webhook-b", at(10)), Vec::new());
    }

    #[test]
    fn admissions_are_batched_into_one_write_that_adds_to_the_stored_totals() {
        let book = settled_book();
        // Stored totals include other replicas' counts.
        book.observe(observed(
            1,
            "12",
            RayPolicyStatus {
                matched: Some(10),
                denied: Some(4),
                warned: Some(1),
                audited: Some(0),
                ..settled_status()
            },
        ));
        let matched = ["quota".to_owned()];
        book.count(&matched, &[violation("quota", Action::Deny)], at(20));
        book.count(&matched, &[violation("quota", Action::Warn)], at(21));
        book.count(&matched, &[], at(22));
        // Policies not tracked (from --policy-dir) are not counted here.
        book.count(&["from-file".to_owned()], &[], at(22));
        assert_eq!(book.pending("from-file"), Counts::default());

        let writes = book.due(REPLICA, at(25));
        assert_eq!(writes.len(), 1, "{writes:#?}");
        let write = &writes[0];
        assert_eq!(write.resource_version, "12");
        assert_eq!(write.adds, counted(3, 1, 1, 0));
        let s = &write.status;
        assert_eq!(
            (s.matched, s.denied, s.warned, s.audited),
            (Some(13), Some(5), Some(2), Some(0))
        );
        assert_eq!(s.last_matched_time, Some(Time(at(22))));
        assert_eq!(s.ready().map(|c| c.status.as_str()), Some("True"), "kept");
        assert_eq!(s.observed_generation, Some(1), "kept");

        // An admission while the write is in flight stays pending for the next one.
        book.count(&matched, &[violation("quota", Action::Audit)], at(26));
        book.written(write, observed(1, "13", write.status.clone()));
        assert_eq!(book.pending("quota"), counted(1, 0, 0, 1));
        let next = book.due(REPLICA, at(30)).pop().expect("the rest");
        assert_eq!(next.resource_version, "13");
        assert_eq!(
            (next.status.matched, next.status.audited),
            (Some(14), Some(1))
        );
    }

    fn settled_status() -> RayPolicyStatus {
        let book = PolicyStatusBook::default();
        book.observe(observed(1, "10", RayPolicyStatus::default()));
        book.loaded("quota", 1, LoadOutcome::Loaded);
        book.due(REPLICA, at(0))
            .pop()
            .expect("a Ready report")
            .status
    }

    #[test]
    fn a_failed_write_keeps_the_counts_and_a_fresh_read_recomputes_from_the_other_replicas_totals()
    {
        let book = settled_book();
        book.count(
            &["quota".to_owned()],
            &[violation("quota", Action::Deny)],
            at(20),
        );
        let stale = book.due(REPLICA, at(25)).pop().expect("write");
        assert_eq!(stale.status.denied, Some(1));
        // 409 Conflict: another replica wrote in between. Nothing is taken off; the fresh
        // read has its counts, and ours are added to those.
        book.observe(observed(
            1,
            "15",
            RayPolicyStatus {
                matched: Some(7),
                denied: Some(7),
                ..settled_status()
            },
        ));
        let retry = book.due_for("quota", REPLICA, at(26)).expect("retry");
        assert_eq!(retry.resource_version, "15");
        assert_eq!(
            (retry.status.matched, retry.status.denied),
            (Some(8), Some(8))
        );
        assert_eq!(retry.adds, stale.adds);
    }

    #[test]
    fn a_new_generation_moves_observed_generation_and_keeps_the_transition_time() {
        let book = settled_book();
        book.observe(observed(2, "20", settled_status()));
        // Read before this replica compiled it: not reported yet.
        assert!(book.due(REPLICA, at(30)).is_empty());
        book.loaded("quota", 2, LoadOutcome::Loaded);
        let write = book
            .due(REPLICA, at(31))
            .pop()
            .expect("report for generation 2");
        assert_eq!(write.status.observed_generation, Some(2));
        let ready = write.status.ready().expect("Ready");
        assert_eq!(ready.observed_generation, Some(2));
        assert_eq!(ready.status, "True");
        assert_eq!(
            ready.last_transition_time,
            Time(at(0)),
            "still True since then"
        );
    }

    #[test]
    fn a_policy_that_does_not_compile_is_reported_not_ready_with_the_errors() {
        let book = settled_book();
        book.observe(observed(2, "20", settled_status()));
        let errors = "spec.rules.maxMemoryPerCluster.limit: quantity \"lots\" is not valid";
        book.loaded("quota", 2, LoadOutcome::Invalid(errors.to_owned()));
        let write = book.due(REPLICA, at(40)).pop().expect("report");
        let ready = write.status.ready().expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Invalid")
        );
        assert_eq!(ready.last_transition_time, Time(at(40)));
        assert!(ready.message.contains(errors), "{}", ready.message);
        assert!(ready.message.contains(REPLICA), "{}", ready.message);
        assert_eq!(write.status.observed_generation, Some(2));
    }

    #[test]
    fn for_one_generation_a_failure_replaces_success_and_is_never_replaced_by_it() {
        let ready_true = settled_status();
        let failed = ready_report(
            &ready_true,
            1,
            &LoadOutcome::Invalid("unknown field".to_owned()),
            "old-replica",
            at(50),
        )
        .expect("failure replaces success");
        let ready_false = RayPolicyStatus {
            conditions: Some(vec![failed]),
            ..ready_true.clone()
        };
        assert_eq!(
            ready_report(&ready_false, 1, &LoadOutcome::Loaded, REPLICA, at(51)),
            None
        );
        assert_eq!(
            ready_report(
                &ready_false,
                1,
                &LoadOutcome::Invalid("other".to_owned()),
                REPLICA,
                at(51)
            ),
            None,
            "the first failure stays"
        );
        // The next generation starts afresh.
        let next = ready_report(&ready_false, 2, &LoadOutcome::Loaded, REPLICA, at(52))
            .expect("new generation");
        assert_eq!(next.status, "True");
        assert_eq!(next.last_transition_time, Time(at(52)));
    }

    #[test]
    fn a_recreated_policy_starts_from_zero_and_a_deleted_one_is_forgotten() {
        let book = settled_book();
        book.count(&["quota".to_owned()], &[], at(60));
        book.observe(ObservedPolicy {
            uid: "uid-2".to_owned(),
            ..observed(1, "30", RayPolicyStatus::default())
        });
        assert_eq!(book.pending("quota"), Counts::default());
        book.count(&["quota".to_owned()], &[], at(61));
        book.forget("quota");
        assert_eq!(book.pending("quota"), Counts::default());
        assert!(book.due(REPLICA, at(62)).is_empty());
    }

    #[test]
    fn a_write_for_a_replaced_object_takes_nothing_off_the_new_one() {
        let book = settled_book();
        book.count(&["quota".to_owned()], &[], at(70));
        let write = book.due(REPLICA, at(71)).pop().expect("write");
        book.observe(ObservedPolicy {
            uid: "uid-2".to_owned(),
            ..observed(1, "40", RayPolicyStatus::default())
        });
        book.count(&["quota".to_owned()], &[], at(72));
        book.written(&write, observed(1, "41", write.status.clone()));
        assert_eq!(book.pending("quota"), counted(1, 0, 0, 0));
    }

    #[test]
    fn a_relist_forgets_policies_deleted_meanwhile() {
        let book = settled_book();
        book.observe(ObservedPolicy {
            name: "gone".to_owned(),
            ..observed(1, "5", RayPolicyStatus::default())
        });
        book.count(&["gone".to_owned(), "quota".to_owned()], &[], at(80));
        book.retain(|name| name == "quota");
        assert_eq!(book.pending("gone"), Counts::default());
        assert_eq!(book.pending("quota"), counted(1, 0, 0, 0));
    }

    #[test]
    fn the_last_matched_time_never_goes_back() {
        let book = settled_book();
        book.observe(observed(
            1,
            "50",
            RayPolicyStatus {
                last_matched_time: Some(Time(at(100))),
                ..settled_status()
            },
        ));
        book.count(&["quota".to_owned()], &[], at(90));
        let write = book.due(REPLICA, at(101)).pop().expect("write");
        assert_eq!(write.status.last_matched_time, Some(Time(at(100))));
    }

    #[test]
    fn reads_a_policy_object_and_tolerates_a_status_it_does_not_know() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "raygate.io/v1alpha1",
            "kind": "RayPolicy",
            "metadata": {"name": "quota", "uid": "u", "generation": 4, "resourceVersion": "9"},
            "spec": {},
            "status": {"denied": "many"}
        }))
        .expect("object");
        let observed = ObservedPolicy::from_object(&object).expect("observed");
        assert_eq!(
            (observed.generation, observed.resource_version.as_str()),
            (4, "9")
        );
        assert_eq!(observed.status, RayPolicyStatus::default());
    }
}
