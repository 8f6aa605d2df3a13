//! Names and labels of a RayCluster's children, spelled as KubeRay spells them: the Ray
//! autoscaler finds pods by `ray.io/cluster` and `ray.io/group`, dashboards and users'
//! tooling by `ray.io/node-type` and the `app.kubernetes.io` labels.

use std::collections::BTreeMap;

use raygate_api::labels::{
    K8S_APP_NAME, K8S_CREATED_BY, RAY_CLUSTER, RAY_GROUP, RAY_IDENTIFIER, RAY_IS_RAY_NODE,
    RAY_NODE_TYPE,
};

/// `app.kubernetes.io/name` of every Ray pod and Service.
pub const APP_NAME: &str = "kuberay";
/// `app.kubernetes.io/created-by`: KubeRay's value, because tools select on it.
pub const CREATED_BY: &str = "kuberay-operator";
/// `ray.io/group` of the head pod.
pub const HEAD_GROUP: &str = "headgroup";

/// Pod names are at most 63 characters; `generateName` appends 5 and the node type up to 7.
const MAX_POD_PREFIX: usize = 50;
/// Service names must be DNS labels; KubeRay keeps the last 50 characters of a long one.
const MAX_SERVICE_NAME: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    Head,
    Worker,
}

impl NodeType {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Head => "head",
            NodeType::Worker => "worker",
        }
    }
}

/// `generateName` of a pod: `<cluster>-head-` or `<cluster>-<group>-worker-`, the prefix cut
/// to 50 characters and lowercased.
pub fn pod_generate_name(cluster: &str, group: Option<&str>, node_type: NodeType) -> String {
    let prefix = match group {
        Some(group) => format!("{cluster}-{group}"),
        None => cluster.to_string(),
    };
    let prefix: String = prefix.chars().take(MAX_POD_PREFIX).collect();
    format!("{}-{}-", prefix, node_type.as_str()).to_lowercase()
}

/// `<cluster>-head-svc`, made a valid DNS label.
pub fn head_service_name(cluster: &str) -> String {
    check_name(&format!("{cluster}-head-svc"))
}

/// `<cluster>-headless`, the Service that gives multi-host workers DNS names.
pub fn headless_service_name(cluster: &str) -> String {
    check_name(&format!("{cluster}-headless"))
}

/// KubeRay's `CheckName`: keep the last 50 characters, and start with a letter.
pub fn check_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let start = chars.len().saturating_sub(MAX_SERVICE_NAME);
    let mut kept: Vec<char> = chars[start..].to_vec();
    if let Some(first) = kept.first_mut()
        && !first.is_ascii_alphabetic()
    {
        *first = 'r';
    }
    kept.into_iter().collect()
}

/// `<head service>.<namespace>.svc.<cluster domain>`: what workers dial to reach the GCS.
pub fn head_service_fqdn(service: &str, namespace: &str, cluster_domain: &str) -> String {
    format!("{service}.{namespace}.svc.{cluster_domain}")
}

/// The labels KubeRay puts on every Ray pod, before template and group labels.
pub fn pod_labels(cluster: &str, node_type: NodeType, group: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (RAY_IS_RAY_NODE.to_string(), "yes".to_string()),
        (RAY_CLUSTER.to_string(), cluster.to_string()),
        (RAY_NODE_TYPE.to_string(), node_type.as_str().to_string()),
        (RAY_GROUP.to_string(), group.to_string()),
        (
            RAY_IDENTIFIER.to_string(),
            format!("{cluster}-{}", node_type.as_str()),
        ),
        (K8S_APP_NAME.to_string(), APP_NAME.to_string()),
        (K8S_CREATED_BY.to_string(), CREATED_BY.to_string()),
    ])
}

/// Labels that tie a pod to its cluster and group; users may not override them.
pub fn is_protected_label(key: &str) -> bool {
    key == RAY_NODE_TYPE || key == RAY_GROUP || key == RAY_CLUSTER
}

/// Labels and selector of the head Service. `app_name` is the head template's own
/// `app.kubernetes.io/name` when it sets one.
pub fn head_service_labels(cluster: &str, app_name: Option<&str>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (RAY_CLUSTER.to_string(), cluster.to_string()),
        (RAY_NODE_TYPE.to_string(), "head".to_string()),
        (RAY_IDENTIFIER.to_string(), format!("{cluster}-head")),
        (
            K8S_APP_NAME.to_string(),
            app_name.unwrap_or(APP_NAME).to_string(),
        ),
        (K8S_CREATED_BY.to_string(), CREATED_BY.to_string()),
    ])
}

/// Five characters of KubeRay's random-name alphabet (no vowels, so no words), as in
/// `<rayjob>-<suffix>` cluster names and multi-host replica names.
pub fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut bits = hasher.finish();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize];
            bits /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_prefixes_follow_kuberay() {
        assert_eq!(
            pod_generate_name("raycluster-kuberay", None, NodeType::Head),
            "raycluster-kuberay-head-"
        );
        assert_eq!(
            pod_generate_name("raycluster-kuberay", Some("workergroup"), NodeType::Worker),
            "raycluster-kuberay-workergroup-worker-"
        );
        let long = "a".repeat(60);
        let name = pod_generate_name(&long, Some("G"), NodeType::Worker);
        assert_eq!(name, format!("{}-worker-", "a".repeat(50)));
        assert!(name.len() + 5 <= 63);
    }

    #[test]
    fn service_names_are_dns_labels() {
        assert_eq!(head_service_name("demo"), "demo-head-svc");
        let long = format!("1{}", "b".repeat(60));
        let name = head_service_name(&long);
        assert_eq!(name.len(), 50);
        assert!(name.ends_with("-head-svc"));
        assert_eq!(check_name("9abc"), "rabc");
    }

    #[test]
    fn head_labels_match_the_service_selector() {
        let pod = pod_labels("c", NodeType::Head, HEAD_GROUP);
        for (key, value) in head_service_labels("c", None) {
            assert_eq!(pod.get(&key), Some(&value), "{key}");
        }
        assert_eq!(pod[RAY_IDENTIFIER], "c-head");
        assert_eq!(pod[RAY_IS_RAY_NODE], "yes");
    }
}
