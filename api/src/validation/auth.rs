//! Ray token authentication (C36, C37): token mode needs Ray 2.52.0; Kubernetes
//! service-account tokens need token mode, Ray 2.55.0 and no user secret. RayJob and RayService
//! reject service-account tokens altogether (J20, S3), checked by their own modules.

use super::cluster_spec::{ClusterScope, Owner};
use crate::field_error::Validation;
use crate::ray_version::{self, MIN_K8S_TOKEN_AUTH, MIN_TOKEN_AUTH};
use crate::raycluster::AuthMode;

pub(crate) fn check(v: &mut Validation, scope: &ClusterScope) {
    let Some(options) = &scope.spec.auth_options else {
        return;
    };
    let k8s_auth = options.enable_k8s_token_auth == Some(true) && scope.owner == Owner::RayCluster;
    let version_path = scope.field("rayVersion");

    if options.mode != Some(AuthMode::Token) {
        if k8s_auth {
            v.error(
                scope.field("authOptions.enableK8sTokenAuth"),
                "authOptions.enableK8sTokenAuth is enabled but authOptions.mode not set to \
                 'token'",
            );
        }
        return;
    }

    // C36
    let version = scope.spec.ray_version.as_deref().unwrap_or_default();
    if version.is_empty() {
        v.error(
            version_path,
            format!(
                "authOptions.mode is 'token' but RayVersion was not specified. Ray version \
                 {MIN_TOKEN_AUTH} or later is required"
            ),
        );
    } else {
        match ray_version::parse(version) {
            Err(error) => v.error(
                version_path,
                format!(
                    "authOptions.mode is 'token' but RayVersion format is invalid: {version}, \
                     {error}"
                ),
            ),
            Ok(parsed) if parsed.less_than(MIN_TOKEN_AUTH) => v.error(
                version_path,
                format!(
                    "authOptions.mode is 'token' but minimum Ray version is {MIN_TOKEN_AUTH}, got \
                     {version}"
                ),
            ),
            // C37
            Ok(parsed) if k8s_auth && parsed.less_than(MIN_K8S_TOKEN_AUTH) => v.error(
                version_path,
                format!(
                    "authOptions.enableK8sTokenAuth is enabled but minimum Ray version is \
                     {MIN_K8S_TOKEN_AUTH}, got {version}"
                ),
            ),
            Ok(_) => {}
        }
    }
    if k8s_auth
        && options
            .secret_name
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    {
        v.error(
            scope.field("authOptions.secretName"),
            "authOptions.enableK8sTokenAuth is enabled and authOptions.secretName is also set; \
             Kubernetes token auth uses service account tokens, remove secretName",
        );
    }
}
