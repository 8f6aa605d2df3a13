//! The `ray start` command line of a pod, rendered from the group's (normalized)
//! `rayStartParams` the way KubeRay renders it, so a pod runs the same Ray flags under raygate.

use std::collections::BTreeMap;

use crate::names::NodeType;

/// Flags Ray reads as booleans that default to true: `false` must be passed explicitly.
const EXPLICIT_FALSE_FLAGS: [&str; 3] = ["log-color", "include-dashboard", "include-log-monitor"];

/// Raises the open-file limit first: Ray opens a socket per worker process and Docker's
/// default of 1024 is exhausted by a busy node.
const ULIMIT_PREFIX: &str = "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; ";

/// `ray start [--head] --flag=value ...`, flags sorted by name.
pub fn ray_start_command(node_type: NodeType, params: &BTreeMap<String, String>) -> String {
    let mut command = String::from("ray start");
    if node_type == NodeType::Head {
        command.push_str(" --head");
    }
    for (key, value) in params {
        match value.trim() {
            "true" => {
                command.push_str(" --");
                command.push_str(key);
            }
            "false" if !EXPLICIT_FALSE_FLAGS.contains(&key.as_str()) => {}
            _ => {
                command.push_str(&format!(" --{key}={value}"));
            }
        }
    }
    command
}

/// The Ray container's shell script: the user's own command, if any, runs before Ray.
pub fn container_script(user_command: Option<&str>, ray_start: &str) -> String {
    match user_command.map(str::trim).filter(|c| !c.is_empty()) {
        Some(user) => format!("{user} && {ULIMIT_PREFIX}{ray_start}"),
        None => format!("{ULIMIT_PREFIX}{ray_start}"),
    }
}

/// The params `ray start` gets for one group: the stored `rayStartParams`, with the group's
/// `resources` and `labels` maps folded in, and (workers) the head's address.
pub fn group_params(
    stored: Option<&BTreeMap<String, String>>,
    resources: Option<&BTreeMap<String, String>>,
    labels: Option<&BTreeMap<String, String>>,
    worker_address: Option<&str>,
) -> BTreeMap<String, String> {
    let mut params = stored.cloned().unwrap_or_default();
    if let Some(resources) = resources.filter(|r| !r.is_empty()) {
        let mut custom = serde_json::Map::new();
        for (name, value) in resources {
            if name == "cpu" {
                params.insert("num-cpus".into(), value.clone());
            } else if name == "memory" {
                params.insert("memory".into(), value.clone());
            } else if name.ends_with("gpu") {
                params.insert("num-gpus".into(), value.clone());
            } else {
                let number = value
                    .parse::<i64>()
                    .ok()
                    .map(serde_json::Number::from)
                    .or_else(|| {
                        value
                            .parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                    })
                    .map(serde_json::Value::Number)
                    .unwrap_or_else(|| serde_json::Value::String(value.clone()));
                custom.insert(name.clone(), number);
            }
        }
        if !custom.is_empty() {
            // Quoted: the value is pasted into a shell command line.
            params.insert(
                "resources".into(),
                format!("'{}'", serde_json::Value::Object(custom)),
            );
        }
    }
    if let Some(labels) = labels.filter(|l| !l.is_empty()) {
        let joined: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        params.insert("labels".into(), joined.join(","));
    }
    if let Some(address) = worker_address {
        params
            .entry("address".into())
            .or_insert_with(|| address.to_string());
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn head_flags_are_sorted_and_booleans_render_bare() {
        let params = map(&[
            ("num-cpus", "1"),
            ("block", "true"),
            ("dashboard-host", "0.0.0.0"),
            ("disable-usage-stats", "false"),
            ("include-dashboard", "false"),
        ]);
        assert_eq!(
            ray_start_command(NodeType::Head, &params),
            "ray start --head --block --dashboard-host=0.0.0.0 --include-dashboard=false --num-cpus=1"
        );
    }

    #[test]
    fn workers_get_the_head_address_unless_set() {
        let params = group_params(
            Some(&map(&[("block", "true")])),
            None,
            None,
            Some("c-head-svc.ns.svc.cluster.local:6379"),
        );
        assert_eq!(
            ray_start_command(NodeType::Worker, &params),
            "ray start --address=c-head-svc.ns.svc.cluster.local:6379 --block"
        );
        let own = group_params(
            Some(&map(&[("address", "elsewhere:1")])),
            None,
            None,
            Some("x:6379"),
        );
        assert_eq!(own["address"], "elsewhere:1");
    }

    #[test]
    fn group_resources_and_labels_become_flags() {
        let params = group_params(
            None,
            Some(&map(&[("cpu", "4"), ("nvidia.com/gpu", "1"), ("TPU", "4")])),
            Some(&map(&[("zone", "a"), ("tier", "x")])),
            None,
        );
        assert_eq!(params["num-cpus"], "4");
        assert_eq!(params["num-gpus"], "1");
        assert_eq!(params["resources"], "'{\"TPU\":4}'");
        assert_eq!(params["labels"], "tier=x,zone=a");
    }

    #[test]
    fn the_user_command_runs_first() {
        assert_eq!(
            container_script(Some("echo hi"), "ray start --head"),
            "echo hi && ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; ray start --head"
        );
        assert_eq!(
            container_script(None, "ray start"),
            "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; ray start"
        );
    }
}
