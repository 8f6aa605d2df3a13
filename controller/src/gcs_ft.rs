//! GCS fault tolerance: the env that points Ray's GCS at its external store, and the cleanup
//! that runs when a Redis-backed cluster is deleted. Without the cleanup the cluster's keys
//! stay in Redis forever, and a new cluster with the same storage namespace would load them.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{EnvVar, Pod, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use raygate_api::RayCluster;
use raygate_api::labels::{
    ANNOTATION_EXTERNAL_STORAGE_NAMESPACE, ANNOTATION_FT_ENABLED,
    ANNOTATION_GCS_FT_DELETION_TIMEOUT, RAY_NODE_TYPE,
};
use raygate_api::raycluster::{GcsFaultToleranceBackend, RedisCredential};

/// KubeRay's finalizer name, so a cluster moved between KubeRay and raygate keeps working.
pub const FINALIZER: &str = "ray.io/gcs-ft-redis-cleanup-finalizer";
/// Seconds after deletion when the finalizer is removed even if cleanup never finished.
pub const DEFAULT_DELETION_TIMEOUT_SECONDS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redis,
    Rocksdb,
}

/// The fault-tolerance backend, if fault tolerance is on.
pub fn backend(cluster: &RayCluster) -> Option<Backend> {
    match &cluster.spec.gcs_fault_tolerance_options {
        Some(options) => Some(match options.backend {
            Some(GcsFaultToleranceBackend::Rocksdb) => Backend::Rocksdb,
            _ => Backend::Redis,
        }),
        None => (cluster
            .annotations()
            .get(ANNOTATION_FT_ENABLED)
            .map(String::as_str)
            == Some("true"))
        .then_some(Backend::Redis),
    }
}

pub fn wants_finalizer(cluster: &RayCluster) -> bool {
    backend(cluster) == Some(Backend::Redis)
}

pub fn has_finalizer(cluster: &RayCluster) -> bool {
    cluster.finalizers().iter().any(|f| f == FINALIZER)
}

/// `ray.io/gcs-ft-deletion-timeout` in seconds, else 300.
pub fn deletion_timeout_seconds(cluster: &RayCluster) -> i64 {
    cluster
        .annotations()
        .get(ANNOTATION_GCS_FT_DELETION_TIMEOUT)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_DELETION_TIMEOUT_SECONDS)
}

/// The Redis key prefix of this cluster: the user's choice, else the cluster's uid (unique, so
/// two clusters never share state by accident).
pub fn storage_namespace(cluster: &RayCluster) -> String {
    cluster
        .spec
        .gcs_fault_tolerance_options
        .as_ref()
        .and_then(|o| o.external_storage_namespace.clone())
        .or_else(|| {
            cluster
                .annotations()
                .get(ANNOTATION_EXTERNAL_STORAGE_NAMESPACE)
                .cloned()
        })
        .unwrap_or_else(|| cluster.uid().unwrap_or_default())
}

fn value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

fn credential(name: &str, credential: &RedisCredential) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: credential.value.clone(),
        value_from: credential.value_from.clone(),
    }
}

/// Env the head's Ray container needs for fault tolerance (added where missing).
pub fn head_env(cluster: &RayCluster) -> Vec<EnvVar> {
    let mut env = Vec::new();
    match backend(cluster) {
        Some(Backend::Redis) => {
            env.push(value(
                "RAY_external_storage_namespace",
                &storage_namespace(cluster),
            ));
            if let Some(options) = &cluster.spec.gcs_fault_tolerance_options {
                if let Some(address) = &options.redis_address {
                    env.push(value("RAY_REDIS_ADDRESS", address));
                }
                if let Some(username) = &options.redis_username {
                    env.push(credential("REDIS_USERNAME", username));
                }
                if let Some(password) = &options.redis_password {
                    env.push(credential("REDIS_PASSWORD", password));
                }
            }
        }
        Some(Backend::Rocksdb) => {
            env.push(value("RAY_gcs_storage", "rocksdb"));
            env.push(value("RAY_gcs_storage_path", "/data/gcs"));
        }
        None => {}
    }
    env
}

/// Workers wait this long for a restarted GCS instead of exiting with it.
pub fn worker_env(cluster: &RayCluster) -> Vec<EnvVar> {
    match backend(cluster) {
        Some(_) => vec![value("RAY_gcs_rpc_server_reconnect_timeout_s", "600")],
        None => Vec::new(),
    }
}

/// `ray start` flags that read the Redis credentials from the env set above.
pub fn head_params(cluster: &RayCluster, params: &mut BTreeMap<String, String>) {
    let Some(options) = &cluster.spec.gcs_fault_tolerance_options else {
        return;
    };
    if backend(cluster) != Some(Backend::Redis) {
        return;
    }
    if options.redis_password.is_some() {
        params.insert("redis-password".into(), "$REDIS_PASSWORD".into());
    }
    if options.redis_username.is_some() {
        params.insert("redis-username".into(), "$REDIS_USERNAME".into());
    }
}

/// `<cluster>-redis-cleanup`, within the 63 characters of a label value (Jobs label their pods
/// with their own name).
pub fn cleanup_job_name(cluster: &RayCluster) -> String {
    let name = format!("{}-redis-cleanup", cluster.name_any());
    let chars: Vec<char> = name.chars().collect();
    chars[chars.len().saturating_sub(63)..].iter().collect()
}

/// Deletes the cluster's keys from Redis with Ray's own helper; exits non-zero on failure.
const CLEANUP_SCRIPT: &str = r#"python -c "
import os, sys
from urllib.parse import urlparse
from ray._private.gcs_utils import cleanup_redis_storage
address = os.getenv('RAY_REDIS_ADDRESS', '').split(',')[0]
if '://' not in address:
    address = 'redis://' + address
url = urlparse(address)
ok = cleanup_redis_storage(
    host=url.hostname,
    port=url.port or 6379,
    username=os.getenv('REDIS_USERNAME', url.username or ''),
    password=os.getenv('REDIS_PASSWORD', url.password or ''),
    use_ssl=url.scheme == 'rediss',
    storage_namespace=os.getenv('RAY_external_storage_namespace'),
)
sys.exit(0 if ok else 1)
""#;

/// The cleanup Job: the head pod (same image, env and credentials) running only the cleanup.
pub fn cleanup_job(cluster: &RayCluster, head: &Pod) -> Job {
    let mut labels = head.metadata.labels.clone().unwrap_or_default();
    labels.insert(RAY_NODE_TYPE.to_string(), "redis-cleanup".to_string());
    let mut spec = head.spec.clone().unwrap_or_default();
    spec.containers.truncate(1);
    spec.init_containers = None;
    spec.restart_policy = Some("Never".to_string());
    let small = BTreeMap::from([
        ("cpu".to_string(), Quantity("200m".into())),
        ("memory".to_string(), Quantity("256Mi".into())),
    ]);
    if let Some(container) = spec.containers.first_mut() {
        container.liveness_probe = None;
        container.readiness_probe = None;
        container.startup_probe = None;
        container.ports = None;
        container.command = Some(vec!["/bin/bash".into(), "-lc".into(), "--".into()]);
        container.args = Some(vec![CLEANUP_SCRIPT.to_string()]);
        container.resources = Some(ResourceRequirements {
            limits: Some(small.clone()),
            requests: Some(small),
            ..ResourceRequirements::default()
        });
        let env = container.env.get_or_insert_with(Vec::new);
        // Redis may still be coming back: keep trying for a minute before giving up.
        for (name, v) in [
            ("RAY_redis_db_connect_retries", "120"),
            ("RAY_redis_db_connect_wait_milliseconds", "500"),
        ] {
            if !env.iter().any(|e| e.name == name) {
                env.push(value(name, v));
            }
        }
    }
    Job {
        metadata: ObjectMeta {
            name: Some(cleanup_job_name(cluster)),
            namespace: cluster.namespace(),
            labels: Some(labels.clone()),
            owner_references: crate::pods::controller_reference(cluster),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(300),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: head.metadata.annotations.clone(),
                    ..ObjectMeta::default()
                }),
                spec: Some(spec),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Whether the cleanup Job ended, successfully or not: either way the finalizer goes.
pub fn job_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            matches!(c.type_.as_str(), "Complete" | "Failed" | "FailureTarget")
                && c.status == "True"
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(extra: &str) -> RayCluster {
        let yaml = format!(
            r#"
apiVersion: ray.io/v1
kind: RayCluster
metadata: {{name: demo, namespace: ns, uid: u-1}}
spec:
{extra}
  headGroupSpec:
    template:
      spec:
        containers: [{{name: ray-head, image: rayproject/ray:2.52.0}}]
"#
        );
        let value = raygate_api::manifest::parse_documents(&yaml).expect("yaml")[0].clone();
        serde_json::from_value(value).expect("RayCluster")
    }

    #[test]
    fn redis_fault_tolerance_points_the_head_at_redis_under_the_uid() {
        let c = cluster(
            "  gcsFaultToleranceOptions:\n    redisAddress: redis:6379\n    redisPassword: {value: pw}",
        );
        assert_eq!(backend(&c), Some(Backend::Redis));
        assert!(wants_finalizer(&c));
        let env = head_env(&c);
        let get = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(
            get("RAY_external_storage_namespace").as_deref(),
            Some("u-1")
        );
        assert_eq!(get("RAY_REDIS_ADDRESS").as_deref(), Some("redis:6379"));
        assert_eq!(get("REDIS_PASSWORD").as_deref(), Some("pw"));
        let mut params = BTreeMap::new();
        head_params(&c, &mut params);
        assert_eq!(params["redis-password"], "$REDIS_PASSWORD");
        assert_eq!(worker_env(&c).len(), 1);
    }

    #[test]
    fn rocksdb_needs_no_cleanup_and_plain_clusters_no_env() {
        let c = cluster("  gcsFaultToleranceOptions:\n    backend: rocksdb");
        assert_eq!(backend(&c), Some(Backend::Rocksdb));
        assert!(!wants_finalizer(&c));
        let plain = cluster("  rayVersion: '2.52.0'");
        assert_eq!(backend(&plain), None);
        assert!(head_env(&plain).is_empty());
    }

    #[test]
    fn the_cleanup_job_runs_once_with_the_heads_image() {
        let c = cluster("  gcsFaultToleranceOptions:\n    redisAddress: redis:6379");
        let hash = "h";
        let ctx = crate::pods::PodContext {
            cluster: &c,
            cluster_domain: "cluster.local",
            template_hash: hash,
        };
        let head = crate::pods::head_pod(&ctx);
        let job = cleanup_job(&c, &head);
        assert_eq!(job.metadata.name.as_deref(), Some("demo-redis-cleanup"));
        let spec = job.spec.expect("spec");
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.containers.len(), 1);
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("rayproject/ray:2.52.0")
        );
        assert!(pod.containers[0].readiness_probe.is_none());
        let labels = spec
            .template
            .metadata
            .expect("meta")
            .labels
            .expect("labels");
        assert_eq!(labels[RAY_NODE_TYPE], "redis-cleanup");
    }
}
