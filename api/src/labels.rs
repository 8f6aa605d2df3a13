//! Label and annotation names KubeRay puts on Ray objects and their children.
//!
//! They are de-facto API: the Ray autoscaler selects pods by `ray.io/cluster` and `ray.io/group`,
//! dashboards and users' tooling select by `ray.io/node-type`. raygate writes the same names.

/// Name of the RayCluster a pod or service belongs to.
pub const RAY_CLUSTER: &str = "ray.io/cluster";
/// `head` or `worker`.
pub const RAY_NODE_TYPE: &str = "ray.io/node-type";
/// `headgroup` for the head, the worker group's name otherwise.
pub const RAY_GROUP: &str = "ray.io/group";
/// `<cluster>-head` or `<cluster>-worker`.
pub const RAY_IDENTIFIER: &str = "ray.io/identifier";
/// Always `yes` on Ray pods.
pub const RAY_IS_RAY_NODE: &str = "ray.io/is-ray-node";
/// Replica index of a worker within its group (multi-host indexing).
pub const RAY_WORKER_GROUP_REPLICA_INDEX: &str = "ray.io/worker-group-replica-index";
/// Name shared by the pods of one multi-host replica.
pub const RAY_WORKER_GROUP_REPLICA_NAME: &str = "ray.io/worker-group-replica-name";
/// Host index of a pod inside a multi-host replica.
pub const RAY_REPLICA_HOST_INDEX: &str = "ray.io/replica-host-index";
/// Set on the headless worker Service of a cluster with multi-host groups.
pub const RAY_HEADLESS_WORKER_SVC: &str = "ray.io/headless-worker-svc";
/// `true` on pods that serve traffic for a RayService.
pub const RAY_SERVE: &str = "ray.io/serve";
/// Name of the custom resource (RayJob, RayService, RayCluster) a child originates from.
pub const RAY_ORIGINATED_FROM_CR_NAME: &str = "ray.io/originated-from-cr-name";
/// Kind of the custom resource a child originates from.
pub const RAY_ORIGINATED_FROM_CRD: &str = "ray.io/originated-from-crd";
/// Submission mode of the RayJob that created a cluster.
pub const RAY_JOB_SUBMISSION_MODE: &str = "ray.io/job-submission-mode";
/// Hash of the cluster spec without replicas and workersToDelete (Recreate upgrades).
pub const RAY_HASH_WITHOUT_REPLICAS: &str = "ray.io/hash-without-replicas-and-workers-to-delete";
/// Number of worker groups, recorded next to the spec hash.
pub const RAY_NUM_WORKER_GROUPS: &str = "ray.io/num-worker-groups";
/// Priority class recorded for batch schedulers.
pub const RAY_PRIORITY_CLASS_NAME: &str = "ray.io/priority-class-name";
/// Name of the RayCronJob that created a RayJob.
pub const RAY_CRONJOB_NAME: &str = "ray.io/cronjob-name";
/// `kuberay` on every Ray pod and service (or the head template's own value).
pub const K8S_APP_NAME: &str = "app.kubernetes.io/name";
/// Who created an object: `kuberay-operator` in KubeRay, kept for tooling that selects on it.
pub const K8S_CREATED_BY: &str = "app.kubernetes.io/created-by";

/// Legacy GCS fault tolerance switch (superseded by `gcsFaultToleranceOptions`).
pub const ANNOTATION_FT_ENABLED: &str = "ray.io/ft-enabled";
/// Legacy external storage namespace for GCS fault tolerance.
pub const ANNOTATION_EXTERNAL_STORAGE_NAMESPACE: &str = "ray.io/external-storage-namespace";
/// `true`: keep the user's container command instead of generating `ray start`.
pub const ANNOTATION_OVERWRITE_CONTAINER_CMD: &str = "ray.io/overwrite-container-cmd";
/// Hash of the pod-relevant spec recorded on the head pod for `upgradeStrategy: Recreate`.
pub const ANNOTATION_UPGRADE_STRATEGY_RECREATE_HASH: &str = "ray.io/upgrade-strategy-recreate-hash";
/// Operator version that built a pod.
pub const ANNOTATION_KUBERAY_VERSION: &str = "ray.io/kuberay-version";
/// `true` on a RayCluster: also create `<cluster>-serve-svc`.
pub const ANNOTATION_ENABLE_SERVE_SERVICE: &str = "ray.io/enable-serve-service";
/// `true`: do not restart the head pod after the cluster was provisioned.
pub const ANNOTATION_DISABLE_PROVISIONED_HEAD_RESTART: &str =
    "ray.io/disable-provisioned-head-restart";
/// `true`: ask the batch scheduler for gang scheduling.
pub const ANNOTATION_GANG_SCHEDULING_ENABLED: &str = "ray.io/gang-scheduling-enabled";
/// How long the GCS fault tolerance cleanup may take before its finalizer is removed.
pub const ANNOTATION_GCS_FT_DELETION_TIMEOUT: &str = "ray.io/gcs-ft-deletion-timeout";
/// How long a RayService may stay initializing (`30m` or seconds).
pub const ANNOTATION_INITIALIZING_TIMEOUT: &str = "ray.io/initializing-timeout";
/// Timestamp a RayCronJob scheduled a RayJob for.
pub const ANNOTATION_CRONJOB_SCHEDULED_TIMESTAMP: &str = "ray.io/cronjob-scheduled-timestamp";

/// Set by raygate's webhook on every object it normalized: the schema version of the defaults.
pub const ANNOTATION_NORMALIZED: &str = "raygate.io/normalized";

/// The only `managedBy` values KubeRay's CRD admits.
pub const MANAGED_BY_KUBERAY: &str = "ray.io/kuberay-operator";
/// Kueue's MultiKueue controller manages the object on a worker cluster.
pub const MANAGED_BY_MULTIKUEUE: &str = "kueue.x-k8s.io/multikueue";
