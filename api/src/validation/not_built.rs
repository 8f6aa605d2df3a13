//! KubeRay features (behind its feature gates) whose fields raygate admits and validates, but
//! whose objects its controller does not build yet: Ray mTLS through cert-manager, the cluster's
//! NetworkPolicies, the history-server collector sidecar. Each gets a warning at `kubectl apply`,
//! so nobody believes a security setting is in force when it isn't.

use super::cluster_spec::ClusterScope;
use crate::field_error::Validation;

pub(crate) fn check(v: &mut Validation, scope: &ClusterScope) {
    let spec = scope.spec;
    if spec.tls_options.as_ref().and_then(|t| t.enabled) == Some(true) {
        v.warn(format!(
            "{}: raygate does not set up Ray mTLS yet; Ray traffic is not encrypted",
            scope.field("tlsOptions")
        ));
    }
    if spec.network_policy.is_some() {
        v.warn(format!(
            "{}: raygate does not create NetworkPolicies yet; the pods are not isolated",
            scope.field("networkPolicy")
        ));
    }
    if spec.history_server_options.is_some() {
        v.warn(format!(
            "{}: raygate does not add the history-server collector yet",
            scope.field("historyServerOptions")
        ));
    }
}
