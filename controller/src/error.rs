//! What can go wrong in the controller. Variant names double as the `error` label of
//! `raygate_controller_reconcile_errors_total`.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("RayCluster {cluster} has no namespace")]
    MissingNamespace { cluster: String },
    #[error("listing the pods of RayCluster {cluster}: {source}")]
    ListPods {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading {kind} {name}: {source}")]
    GetChild {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating {kind} {name}: {source}")]
    CreateChild {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "RayCluster {cluster}: Service {service} exists and is not owned by the cluster; \
         no pods are created until it is gone"
    )]
    HeadServiceNotOwned { cluster: String, service: String },
    #[error("creating or deleting pods of RayCluster {cluster}: {message}")]
    ReplicaFailure { cluster: String, message: String },
    #[error("writing the status of RayCluster {cluster}: {source}")]
    PatchStatus {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("normalizing RayCluster {cluster} in memory: {source}")]
    Normalize {
        cluster: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("updating the finalizers of RayCluster {cluster}: {source}")]
    Finalizer {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("the Redis cleanup Job of RayCluster {cluster}: {source}")]
    CleanupJob {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("serving the admin endpoints on {address}: {source}")]
    Admin {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("leader election: {source}")]
    LeaderElection {
        #[source]
        source: kube::Error,
    },
    #[error("lost the leader lease {lease}: another replica acts now")]
    LostLease { lease: String },
    #[error("{object}: {action}: {source}")]
    ObjectApi {
        object: String,
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("RayJob {job}: the RayCluster {cluster} named by spec.clusterSelector does not exist")]
    SelectedClusterNotFound { job: String, cluster: String },
}

impl Error {
    /// The reason of the Warning event a failed pass writes on its RayCluster, for failures
    /// that wrote none where they happened (creates and deletes write their own, with
    /// KubeRay's reasons). `None`: already reported, or not about one cluster.
    pub fn event_reason(&self) -> Option<&'static str> {
        if self.is_conflict() {
            return None;
        }
        match self {
            Error::ListPods { .. } => Some("FailedToListPods"),
            Error::GetChild { .. } => Some("FailedToGetChild"),
            Error::PatchStatus { .. } => Some("FailedToUpdateStatus"),
            Error::Finalizer { .. } => Some("FailedToUpdateFinalizers"),
            Error::CleanupJob { .. } => Some("FailedToCleanupRedis"),
            Error::MissingNamespace { .. }
            | Error::CreateChild { .. }
            | Error::HeadServiceNotOwned { .. }
            | Error::ReplicaFailure { .. }
            | Error::Normalize { .. }
            | Error::Admin { .. }
            | Error::LeaderElection { .. }
            | Error::LostLease { .. }
            | Error::ObjectApi { .. }
            | Error::SelectedClusterNotFound { .. } => None,
        }
    }

    /// A write that lost an optimistic-concurrency race (409 Conflict): it was made against
    /// a cached object another writer has changed since. Expected, and retried at once.
    pub fn is_conflict(&self) -> bool {
        let source = match self {
            Error::Finalizer { source, .. }
            | Error::PatchStatus { source, .. }
            | Error::ObjectApi { source, .. } => source,
            _ => return false,
        };
        matches!(source, kube::Error::Api(status) if status.code == 409)
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingNamespace { .. } => "MissingNamespace",
            Error::ListPods { .. } => "ListPods",
            Error::GetChild { .. } => "GetChild",
            Error::CreateChild { .. } => "CreateChild",
            Error::HeadServiceNotOwned { .. } => "HeadServiceNotOwned",
            Error::ReplicaFailure { .. } => "ReplicaFailure",
            Error::PatchStatus { .. } => "PatchStatus",
            Error::Normalize { .. } => "Normalize",
            Error::Admin { .. } => "Admin",
            Error::Finalizer { .. } => "Finalizer",
            Error::CleanupJob { .. } => "CleanupJob",
            Error::LeaderElection { .. } => "LeaderElection",
            Error::LostLease { .. } => "LostLease",
            Error::ObjectApi { .. } => "ObjectApi",
            Error::SelectedClusterNotFound { .. } => "SelectedClusterNotFound",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        let status: kube::core::Status =
            serde_json::from_value(serde_json::json!({"code": code, "message": "m"}))
                .expect("a Status");
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_conflict_is_retried_quietly_and_other_failures_get_a_warning() {
        let conflict = Error::Finalizer {
            cluster: "c".into(),
            source: api_error(409),
        };
        assert!(conflict.is_conflict());
        assert_eq!(conflict.event_reason(), None);
        let forbidden = Error::PatchStatus {
            cluster: "c".into(),
            source: api_error(403),
        };
        assert!(!forbidden.is_conflict());
        assert_eq!(forbidden.event_reason(), Some("FailedToUpdateStatus"));
        // Creates and deletes report their own failures where they happen.
        let replica = Error::ReplicaFailure {
            cluster: "c".into(),
            message: "quota".into(),
        };
        assert_eq!(replica.event_reason(), None);
    }
}
