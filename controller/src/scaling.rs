//! Which pods to delete and which to create, decided from the spec and the pods the cluster
//! owns right now. Pure: the reconciler lists pods fresh from the API server before calling
//! this, so a restarted controller counts what its predecessor created and never duplicates.

use std::collections::{BTreeMap, BTreeSet};

use crate::pods::WorkerSlot;

/// What the planner needs to know about one owned, not-terminating pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPod {
    pub name: String,
    pub uid: String,
    pub replica_index: Option<u32>,
    pub replica_name: Option<String>,
    /// Running with every container ready.
    pub ready: bool,
    /// Failed, Succeeded, or its Ray container ended under `restartPolicy: Never`: it will
    /// never serve again and must be replaced.
    pub finished: bool,
}

/// A pod to delete, by name and uid (the uid guards against deleting a same-named successor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodToDelete {
    pub name: String,
    pub uid: String,
    pub why: DeleteReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    Suspended,
    Finished,
    WorkersToDelete,
    ScaleDown,
    IncompleteReplica,
    /// `upgradeStrategy: Recreate` and the pod template changed.
    Recreate,
    /// The worker group was removed from the spec.
    GroupRemoved,
}

impl DeleteReason {
    pub fn describe(self) -> &'static str {
        match self {
            DeleteReason::Suspended => "the cluster or group is suspended",
            DeleteReason::Finished => "the pod finished or failed",
            DeleteReason::WorkersToDelete => "listed in scaleStrategy.workersToDelete",
            DeleteReason::ScaleDown => "scaling down to the desired replicas",
            DeleteReason::IncompleteReplica => "its multi-host replica is incomplete or unhealthy",
            DeleteReason::Recreate => "the pod template changed (upgradeStrategy Recreate)",
            DeleteReason::GroupRemoved => "its worker group is no longer in the spec",
        }
    }
}

/// One worker group's wishes.
#[derive(Debug, Clone)]
pub struct GroupWish<'a> {
    /// Replicas (not pods) after clamping; 0 when suspended.
    pub replicas: u32,
    pub num_of_hosts: u32,
    pub suspended: bool,
    /// With in-tree autoscaling the autoscaler alone picks which workers go, through
    /// `workersToDelete`; the controller must not remove others on its own.
    pub autoscaling: bool,
    pub workers_to_delete: &'a [String],
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPlan {
    pub delete: Vec<PodToDelete>,
    pub create: Vec<WorkerSlot>,
}

/// `clamp(replicas, min, max)`, where a missing `replicas` means `min`, as KubeRay runs it.
pub fn desired_replicas(replicas: Option<i32>, min: i32, max: i32) -> u32 {
    let replicas = replicas.unwrap_or(min);
    let clamped = if min <= max {
        replicas.clamp(min, max)
    } else {
        replicas
    };
    u32::try_from(clamped).unwrap_or(0)
}

/// Plans one group. `new_replica_name` names each new multi-host replica.
pub fn plan_group(
    wish: &GroupWish,
    pods: &[ObservedPod],
    mut new_replica_name: impl FnMut() -> String,
) -> GroupPlan {
    let hosts = wish.num_of_hosts.max(1);
    // Single-host pods are replicas of one; multi-host pods are grouped by replica name.
    let mut replicas: BTreeMap<String, Vec<&ObservedPod>> = BTreeMap::new();
    for pod in pods {
        let key = if hosts > 1 {
            pod.replica_name
                .clone()
                .unwrap_or_else(|| format!("\0{}", pod.name))
        } else {
            pod.name.clone()
        };
        replicas.entry(key).or_default().push(pod);
    }

    let mut plan = GroupPlan::default();
    let delete_replica = |members: &[&ObservedPod], why: DeleteReason, plan: &mut GroupPlan| {
        for pod in members {
            plan.delete.push(PodToDelete {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                why,
            });
        }
    };

    if wish.suspended {
        for members in replicas.values() {
            delete_replica(members, DeleteReason::Suspended, &mut plan);
        }
        return plan;
    }

    let to_delete: BTreeSet<&str> = wish.workers_to_delete.iter().map(String::as_str).collect();
    let mut remaining: Vec<&Vec<&ObservedPod>> = Vec::new();
    for members in replicas.values() {
        let why = if members.iter().any(|p| p.finished) {
            Some(if hosts > 1 {
                DeleteReason::IncompleteReplica
            } else {
                DeleteReason::Finished
            })
        } else if hosts > 1 && members.len() as u32 != hosts {
            Some(DeleteReason::IncompleteReplica)
        } else if members.iter().any(|p| to_delete.contains(p.name.as_str())) {
            Some(DeleteReason::WorkersToDelete)
        } else {
            None
        };
        match why {
            Some(why) => delete_replica(members, why, &mut plan),
            None => remaining.push(members),
        }
    }

    let have = remaining.len() as u32;
    if have > wish.replicas && !wish.autoscaling {
        // Remove replicas that serve least first: not ready, then the newest (highest index).
        remaining.sort_by_key(|members| {
            let ready = members.iter().all(|p| p.ready);
            let index = members.iter().filter_map(|p| p.replica_index).max();
            (ready, std::cmp::Reverse(index))
        });
        let excess = (have - wish.replicas) as usize;
        for members in remaining.drain(..excess) {
            delete_replica(members, DeleteReason::ScaleDown, &mut plan);
        }
    } else if have < wish.replicas {
        let used: BTreeSet<u32> = remaining
            .iter()
            .flat_map(|members| members.iter().filter_map(|p| p.replica_index))
            .collect();
        let mut free = (0u32..).filter(|i| !used.contains(i));
        for _ in have..wish.replicas {
            let Some(index) = free.next() else { break };
            if hosts > 1 {
                let name = new_replica_name();
                for host in 0..hosts {
                    plan.create.push(WorkerSlot {
                        replica_index: index,
                        replica_name: Some(name.clone()),
                        host_index: Some(host),
                    });
                }
            } else {
                plan.create.push(WorkerSlot {
                    replica_index: index,
                    replica_name: None,
                    host_index: None,
                });
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn pod(name: &str, index: u32) -> ObservedPod {
        ObservedPod {
            name: name.into(),
            uid: format!("uid-{name}"),
            replica_index: Some(index),
            replica_name: None,
            ready: true,
            finished: false,
        }
    }

    fn wish(replicas: u32) -> GroupWish<'static> {
        GroupWish {
            replicas,
            num_of_hosts: 1,
            suspended: false,
            autoscaling: false,
            workers_to_delete: &[],
        }
    }

    fn names(plan: &GroupPlan) -> Vec<&str> {
        plan.delete.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn desired_replicas_clamps_and_defaults_to_min() {
        assert_eq!(desired_replicas(Some(9), 1, 5), 5);
        assert_eq!(desired_replicas(Some(0), 1, 5), 1);
        assert_eq!(desired_replicas(None, 2, 5), 2);
        assert_eq!(desired_replicas(Some(-3), -5, 5), 0);
    }

    #[test]
    fn scale_up_fills_the_lowest_free_indices() {
        let plan = plan_group(&wish(4), &[pod("a", 0), pod("b", 2)], String::new);
        let indices: Vec<u32> = plan.create.iter().map(|s| s.replica_index).collect();
        assert_eq!(indices, vec![1, 3]);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn nothing_changes_at_the_desired_count() {
        let plan = plan_group(&wish(2), &[pod("a", 0), pod("b", 1)], String::new);
        assert_eq!(plan, GroupPlan::default());
    }

    #[test]
    fn scale_down_removes_not_ready_then_newest() {
        let mut slow = pod("slow", 0);
        slow.ready = false;
        let pods = [slow, pod("b", 1), pod("c", 2)];
        let plan = plan_group(&wish(1), &pods, String::new);
        assert_eq!(names(&plan), vec!["slow", "c"]);
        assert!(plan.delete.iter().all(|d| d.why == DeleteReason::ScaleDown));
    }

    #[test]
    fn workers_to_delete_go_first_and_are_replaced_when_replicas_stay() {
        let listed = ["b".to_string(), "gone".to_string()];
        let wish = GroupWish {
            workers_to_delete: &listed,
            ..wish(3)
        };
        let plan = plan_group(&wish, &[pod("a", 0), pod("b", 1), pod("c", 2)], String::new);
        assert_eq!(names(&plan), vec!["b"]);
        assert_eq!(plan.delete[0].why, DeleteReason::WorkersToDelete);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].replica_index, 1);
    }

    #[test]
    fn with_autoscaling_only_listed_workers_are_removed() {
        let wish = GroupWish {
            autoscaling: true,
            ..wish(1)
        };
        let plan = plan_group(&wish, &[pod("a", 0), pod("b", 1)], String::new);
        assert_eq!(plan, GroupPlan::default());
    }

    #[test]
    fn finished_pods_are_replaced() {
        let mut dead = pod("dead", 0);
        dead.finished = true;
        let plan = plan_group(&wish(2), &[dead, pod("b", 1)], String::new);
        assert_eq!(names(&plan), vec!["dead"]);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].replica_index, 0);
    }

    #[test]
    fn suspend_deletes_everything() {
        let wish = GroupWish {
            suspended: true,
            ..wish(2)
        };
        let plan = plan_group(&wish, &[pod("a", 0), pod("b", 1)], String::new);
        assert_eq!(names(&plan), vec!["a", "b"]);
        assert!(plan.create.is_empty());
    }

    #[test]
    fn multi_host_replicas_are_created_and_deleted_whole() {
        let wish = GroupWish {
            num_of_hosts: 2,
            ..wish(2)
        };
        let mut counter = 0;
        let mut namer = || {
            counter += 1;
            format!("g-{counter}")
        };
        let plan = plan_group(&wish, &[], &mut namer);
        assert_eq!(plan.create.len(), 4);
        assert_eq!(plan.create[0].replica_name.as_deref(), Some("g-1"));
        assert_eq!(plan.create[1].host_index, Some(1));
        assert_eq!(plan.create[2].replica_index, 1);

        let member = |name: &str, replica: &str, index: u32| ObservedPod {
            replica_name: Some(replica.into()),
            ..pod(name, index)
        };
        // r1 lost a host: both go; r2 has a listed member: both go.
        let listed = ["p3".to_string()];
        let wish = GroupWish {
            workers_to_delete: &listed,
            replicas: 1,
            ..wish
        };
        let pods = [
            member("p1", "r1", 0),
            member("p3", "r2", 1),
            member("p4", "r2", 1),
            member("p5", "r3", 2),
            member("p6", "r3", 2),
        ];
        let plan = plan_group(&wish, &pods, || "new".into());
        assert_eq!(names(&plan), vec!["p1", "p3", "p4"]);
        assert!(plan.create.is_empty());
    }
}
