//! `NewClusterWithIncrementalUpgrade`, the pure half: how far Serve's `target_capacity` and the
//! HTTPRoute's traffic weights move on each pass, when the upgrade is complete, and when a
//! rollback is.
//!
//! An upgrade goes in rounds. The new (pending) cluster's capacity rises by `maxSurgePercent`;
//! traffic follows it by `stepSizePercent` every `intervalSeconds` while its applications run;
//! once traffic caught up, the old (active) cluster's capacity drops by `maxSurgePercent`. It is
//! complete when the active cluster is at capacity 0 and the pending one takes all traffic. A
//! rollback is the same dance backwards. Everything here reads and writes the RayService's
//! status, so a controller restart picks the upgrade up where it was.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use raygate_api::RayService;
use raygate_api::rayservice::RayServiceStatus;

pub const INCREMENTAL_UPGRADE: &str = "NewClusterWithIncrementalUpgrade";
/// `maxSurgePercent` when unset.
const DEFAULT_MAX_SURGE: i32 = 100;

/// `spec.upgradeStrategy.clusterUpgradeOptions`, read once per pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub max_surge: i32,
    pub step: i32,
    pub interval: SignedDuration,
    pub gateway_class: String,
}

/// The options when the RayService upgrades incrementally (admission made sure they are set).
pub fn options(service: &RayService) -> Option<Options> {
    let strategy = service.spec.upgrade_strategy.as_ref()?;
    if strategy.type_.as_deref() != Some(INCREMENTAL_UPGRADE) {
        return None;
    }
    let options = strategy.cluster_upgrade_options.as_ref()?;
    Some(Options {
        max_surge: options
            .max_surge_percent
            .unwrap_or(DEFAULT_MAX_SURGE)
            .clamp(0, 100),
        step: options.step_size_percent.clamp(0, 100),
        interval: SignedDuration::from_secs(i64::from(options.interval_seconds.max(0))),
        gateway_class: options.gateway_class_name.clone(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Active,
    Pending,
}

/// Capacity and traffic of both clusters while an upgrade runs, as percentages. What the
/// status doesn't say yet is where an upgrade starts: everything on the active cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub active_capacity: i32,
    pub pending_capacity: i32,
    pub active_traffic: i32,
    pub pending_traffic: i32,
}

impl Split {
    pub fn of(active: Option<&RayServiceStatus>, pending: Option<&RayServiceStatus>) -> Self {
        Split {
            active_capacity: active.and_then(|s| s.target_capacity).unwrap_or(100),
            pending_capacity: pending.and_then(|s| s.target_capacity).unwrap_or(0),
            active_traffic: active.and_then(|s| s.traffic_routed_percent).unwrap_or(100),
            pending_traffic: pending.and_then(|s| s.traffic_routed_percent).unwrap_or(0),
        }
    }
}

/// The one `target_capacity` change due now, if any: which cluster, and to what.
///
/// Capacity only moves once traffic caught up with the cluster that receives it, and never
/// so that the two clusters together hold less than 100 %: the receiving cluster grows first,
/// then the other one shrinks.
pub fn next_capacity(split: Split, options: &Options, rolling_back: bool) -> Option<(Side, i32)> {
    let total = split.active_capacity + split.pending_capacity;
    let (side, goal) = if rolling_back {
        if split.active_capacity == 100 && split.pending_capacity == 0 {
            return None;
        }
        if split.active_capacity != split.active_traffic {
            return None;
        }
        if total > 100 {
            (
                Side::Pending,
                (split.pending_capacity - options.max_surge).max(0),
            )
        } else {
            (
                Side::Active,
                (split.active_capacity + options.max_surge).min(100),
            )
        }
    } else {
        if split.active_capacity == 0 && split.pending_capacity == 100 {
            return None;
        }
        if split.pending_capacity != split.pending_traffic {
            return None;
        }
        if total > 100 {
            (
                Side::Active,
                (split.active_capacity - options.max_surge).max(0),
            )
        } else {
            (
                Side::Pending,
                (split.pending_capacity + options.max_surge).min(100),
            )
        }
    };
    let current = match side {
        Side::Active => split.active_capacity,
        Side::Pending => split.pending_capacity,
    };
    (goal != current).then_some((side, goal))
}

/// The traffic weights (active, pending) for this pass. Traffic moves one step toward the
/// cluster that receives it, at most up to that cluster's capacity, once `interval` passed
/// since it last moved; toward the pending cluster only while its applications run.
pub fn next_traffic(
    split: Split,
    options: &Options,
    rolling_back: bool,
    pending_running: bool,
    last_moved: Option<Timestamp>,
    now: Timestamp,
) -> (i32, i32) {
    let unchanged = (split.active_traffic, split.pending_traffic);
    let caught_up = if rolling_back {
        split.active_traffic >= split.active_capacity
    } else {
        split.pending_traffic >= split.pending_capacity
    };
    let due = last_moved.is_none_or(|at| now.duration_since(at) >= options.interval);
    if caught_up || !due {
        return unchanged;
    }
    if rolling_back {
        let active = (split.active_traffic + options.step)
            .min(split.active_capacity)
            .min(100);
        (active, 100 - active)
    } else if pending_running {
        let pending = (split.pending_traffic + options.step)
            .min(split.pending_capacity)
            .min(100);
        (100 - pending, pending)
    } else {
        unchanged
    }
}

/// The pending cluster took over: it has all traffic and the active one no capacity left.
pub fn upgrade_complete(split: Split) -> bool {
    split.active_capacity == 0 && split.pending_traffic == 100
}

/// The active cluster is back at full capacity with all traffic, and the pending cluster has
/// drained (or is too broken to be asked to).
pub fn rollback_complete(split: Split, pending_healthy: bool) -> bool {
    split.active_capacity == 100
        && split.active_traffic == 100
        && (!pending_healthy || (split.pending_capacity == 0 && split.pending_traffic == 0))
}

/// The serve config as sent to one cluster: with its `target_capacity` when one is set.
pub fn with_capacity(config: &serde_json::Value, capacity: Option<i32>) -> serde_json::Value {
    let mut config = config.clone();
    if let (Some(capacity), Some(map)) = (capacity, config.as_object_mut()) {
        map.insert("target_capacity".to_string(), capacity.into());
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(max_surge: i32, step: i32) -> Options {
        Options {
            max_surge,
            step,
            interval: SignedDuration::from_secs(10),
            gateway_class: "gw".into(),
        }
    }

    fn split(active: (i32, i32), pending: (i32, i32)) -> Split {
        Split {
            active_capacity: active.0,
            active_traffic: active.1,
            pending_capacity: pending.0,
            pending_traffic: pending.1,
        }
    }

    /// Runs the state machine to its end as the controller would, every pass a step of
    /// capacity then of traffic, and returns every split it went through.
    fn run(mut s: Split, o: &Options, rolling_back: bool) -> Vec<Split> {
        let mut seen = vec![s];
        let mut now = Timestamp::UNIX_EPOCH;
        for _ in 0..100 {
            if let Some((side, goal)) = next_capacity(s, o, rolling_back) {
                match side {
                    Side::Active => s.active_capacity = goal,
                    Side::Pending => s.pending_capacity = goal,
                }
            }
            now += SignedDuration::from_secs(10);
            (s.active_traffic, s.pending_traffic) =
                next_traffic(s, o, rolling_back, true, None, now);
            seen.push(s);
            let done = if rolling_back {
                rollback_complete(s, true)
            } else {
                upgrade_complete(s)
            };
            if done {
                return seen;
            }
        }
        panic!("no end after 100 passes: {seen:?}");
    }

    #[test]
    fn an_upgrade_surges_capacity_then_moves_traffic_step_by_step_then_drains_the_old_cluster() {
        let steps = run(Split::of(None, None), &options(50, 25), false);
        let traffic: Vec<i32> = steps.iter().map(|s| s.pending_traffic).collect();
        let capacity: Vec<(i32, i32)> = steps
            .iter()
            .map(|s| (s.active_capacity, s.pending_capacity))
            .collect();
        capacity.windows(2).for_each(|w| {
            assert!(
                w[1].0 <= w[0].0 && w[1].1 >= w[0].1,
                "monotone: {capacity:?}"
            )
        });
        assert_eq!(capacity.first(), Some(&(100, 0)));
        assert_eq!(capacity.last(), Some(&(0, 100)));
        assert!(capacity.contains(&(100, 50)) && capacity.contains(&(50, 100)));
        let mut distinct = traffic.clone();
        distinct.dedup();
        assert_eq!(distinct, [0, 25, 50, 75, 100]);
        for s in &steps {
            assert!(s.pending_traffic <= s.pending_capacity, "{s:?}");
            assert!(
                s.active_capacity + s.pending_capacity >= 100,
                "never less than one cluster's worth: {s:?}"
            );
            assert_eq!(s.active_traffic + s.pending_traffic, 100);
        }
    }

    #[test]
    fn a_rollback_restores_the_active_cluster_before_draining_the_pending_one() {
        // Halfway: the pending cluster has 50 % of traffic at full capacity.
        let start = split((50, 50), (100, 50));
        let steps = run(start, &options(50, 25), true);
        let last = steps.last().copied().unwrap_or(start);
        assert_eq!(last, split((100, 100), (0, 0)));
        for s in &steps {
            assert!(s.active_traffic <= s.active_capacity, "{s:?}");
            assert!(s.active_capacity + s.pending_capacity >= 100, "{s:?}");
        }
        assert!(rollback_complete(split((100, 100), (100, 0)), false));
        assert!(!rollback_complete(split((100, 100), (100, 0)), true));
    }

    #[test]
    fn traffic_waits_for_the_interval_and_for_running_applications() {
        let o = options(100, 20);
        let s = split((100, 100), (100, 0));
        let at = Timestamp::UNIX_EPOCH;
        let soon = at + SignedDuration::from_secs(9);
        let later = at + SignedDuration::from_secs(10);
        assert_eq!(next_traffic(s, &o, false, true, Some(at), soon), (100, 0));
        assert_eq!(next_traffic(s, &o, false, true, Some(at), later), (80, 20));
        assert_eq!(next_traffic(s, &o, false, false, Some(at), later), (100, 0));
        // Capacity waits for traffic to catch up.
        assert_eq!(next_capacity(split((100, 80), (100, 20)), &o, false), None);
    }

    #[test]
    fn the_capacity_goes_into_the_serve_config() {
        let config = serde_json::json!({"applications": []});
        assert_eq!(
            with_capacity(&config, Some(40)),
            serde_json::json!({"applications": [], "target_capacity": 40})
        );
        assert_eq!(with_capacity(&config, None), config);
    }
}
