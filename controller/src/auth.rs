//! Ray's token authentication (`authOptions.mode: token`), as KubeRay sets it up: every Ray
//! process of the cluster gets `RAY_AUTH_MODE=token` and the token from a Secret (the user's
//! `authOptions.secretName`, or one raygate creates, named like the cluster, holding 32 random
//! bytes); with `enableK8sTokenAuth` Ray checks Kubernetes service-account tokens instead.
//! raygate's own dashboard requests (RayJob, RayService) carry the token too.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, PodSpec, ProjectedVolumeSource, Secret, SecretKeySelector,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, Client, ResourceExt};
use raygate_api::RayCluster;
use raygate_api::labels::RAY_CLUSTER;
use raygate_api::raycluster::AuthMode;
use ring::rand::{SecureRandom, SystemRandom};

use crate::dashboard::DashboardClient;
use crate::error::Error;
use crate::expiring::ExpiringMap;

/// The key of the token in the Secret.
pub const TOKEN_KEY: &str = "auth_token";

fn token_mode(cluster: &RayCluster) -> bool {
    cluster
        .spec
        .auth_options
        .as_ref()
        .is_some_and(|a| a.mode == Some(AuthMode::Token))
}

fn k8s_token_auth(cluster: &RayCluster) -> bool {
    cluster
        .spec
        .auth_options
        .as_ref()
        .is_some_and(|a| a.enable_k8s_token_auth == Some(true))
}

/// The Secret holding the cluster's token, when it has one.
pub fn secret_name(cluster: &RayCluster) -> Option<String> {
    if !token_mode(cluster) || k8s_token_auth(cluster) {
        return None;
    }
    let own = cluster
        .spec
        .auth_options
        .as_ref()
        .and_then(|a| a.secret_name.clone())
        .filter(|name| !name.is_empty());
    Some(own.unwrap_or_else(|| cluster.name_any()))
}

/// The environment every container of the cluster's pods gets (Ray, autoscaler, init
/// containers, the SidecarMode submitter), and a K8sJobMode submitter too.
pub fn env(cluster: &RayCluster) -> Vec<EnvVar> {
    if !token_mode(cluster) {
        return Vec::new();
    }
    let mut env = vec![value("RAY_AUTH_MODE", "token")];
    if k8s_token_auth(cluster) {
        env.push(value("RAY_ENABLE_K8S_TOKEN_AUTH", "true"));
    } else if let Some(secret) = secret_name(cluster) {
        env.push(EnvVar {
            name: "RAY_AUTH_TOKEN".to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret,
                    key: TOKEN_KEY.to_string(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    env
}

/// The projected service-account token volume Ray reads with `enableK8sTokenAuth`.
pub const TOKEN_VOLUME: &str = "ray-token";
/// Where Ray expects that token (`<path>/token`).
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/ray.io/serviceaccount";

/// With Kubernetes token auth, Ray processes present the pod's service-account token: the pod
/// gets it as a projected volume, mounted read-only in every container that authenticates
/// (the same containers that get [`env`]). A volume or mount the user already named so is kept.
pub fn add_k8s_token_volume(cluster: &RayCluster, spec: &mut PodSpec) {
    if !token_mode(cluster) || !k8s_token_auth(cluster) {
        return;
    }
    // The API server refuses a service-account token projection on a pod that names no
    // service account. Clusters whose ServiceAccount admission plugin runs fill in `default`
    // anyway; naming it here gives the same pod everywhere.
    if spec
        .service_account_name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        spec.service_account_name = Some("default".to_string());
    }
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if !volumes.iter().any(|v| v.name == TOKEN_VOLUME) {
        volumes.push(Volume {
            name: TOKEN_VOLUME.to_string(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".to_string(),
                        ..ServiceAccountTokenProjection::default()
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    for container in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        if !mounts
            .iter()
            .any(|m| m.name == TOKEN_VOLUME || m.mount_path == TOKEN_MOUNT_PATH)
        {
            mounts.push(VolumeMount {
                name: TOKEN_VOLUME.to_string(),
                mount_path: TOKEN_MOUNT_PATH.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }
}

fn value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

/// The Secret raygate creates when the user named none: labelled and owned by the cluster.
/// `None` when the cluster needs none, or no randomness could be had.
pub fn generated_secret(cluster: &RayCluster) -> Option<Secret> {
    let own_secret = cluster
        .spec
        .auth_options
        .as_ref()
        .and_then(|a| a.secret_name.as_deref())
        .is_some_and(|name| !name.is_empty());
    if own_secret {
        return None;
    }
    let name = secret_name(cluster)?;
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).ok()?;
    let token = base64::engine::general_purpose::STANDARD.encode(bytes);
    Some(Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: cluster.namespace(),
            labels: Some(BTreeMap::from([(
                RAY_CLUSTER.to_string(),
                cluster.name_any(),
            )])),
            owner_references: crate::pods::controller_reference(cluster),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([(TOKEN_KEY.to_string(), token)])),
        ..Secret::default()
    })
}

/// How long a token read from its Secret is reused. RayJobs and RayServices call the
/// dashboard every few seconds; a Secret the user rotates is read again within this time.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);

/// Tokens read from clusters' Secrets, by namespace, Secret and cluster UID (a cluster
/// recreated under the same name gets a new Secret, so it never sees its predecessor's token).
pub struct TokenCache(ExpiringMap<TokenKey, String>);

impl Default for TokenCache {
    fn default() -> Self {
        Self(ExpiringMap::new(TOKEN_TTL))
    }
}

impl std::fmt::Debug for TokenCache {
    // Tokens are secrets: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache")
    }
}

type TokenKey = (String, String, String);

impl TokenCache {
    fn get(&self, key: &TokenKey, now: Instant) -> Option<String> {
        self.0.get(key, now).map(|(token, _)| token)
    }

    fn put(&self, key: TokenKey, token: String, now: Instant) {
        self.0.insert(key, token, now);
    }
}

/// The token raygate's dashboard requests to this cluster must carry; `None` without token
/// authentication (or with Kubernetes token auth, which raygate's requests don't use yet).
/// A missing Secret or key is not cached: the next call looks again.
pub async fn dashboard_token(
    client: &Client,
    cache: &TokenCache,
    cluster: &RayCluster,
) -> Result<Option<String>, Error> {
    let Some(name) = secret_name(cluster) else {
        return Ok(None);
    };
    let namespace = cluster.namespace().unwrap_or_default();
    let key = (namespace, name, cluster.uid().unwrap_or_default());
    if let Some(token) = cache.get(&key, Instant::now()) {
        return Ok(Some(token));
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), &key.0);
    let secret = api
        .get_opt(&key.1)
        .await
        .map_err(|source| Error::GetChild {
            kind: "Secret",
            name: key.1.clone(),
            source,
        })?;
    let token = secret
        .and_then(|s| s.data)
        .and_then(|data| data.get(TOKEN_KEY).cloned())
        .and_then(|bytes| String::from_utf8(bytes.0).ok());
    if let Some(token) = &token {
        cache.put(key, token.clone(), Instant::now());
    }
    Ok(token)
}

/// The dashboard client for `cluster`, carrying the cluster's token when it uses one.
pub async fn authenticated(
    client: &Client,
    cache: &TokenCache,
    cluster: Option<&RayCluster>,
    dashboard: DashboardClient,
) -> Result<DashboardClient, Error> {
    let Some(cluster) = cluster else {
        return Ok(dashboard);
    };
    Ok(match dashboard_token(client, cache, cluster).await? {
        Some(token) => dashboard.with_auth_token(token),
        None => dashboard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cached_token_is_reused_until_it_expires() {
        let cache = TokenCache::default();
        let key = ("ns".to_string(), "c".to_string(), "uid-1".to_string());
        let start = Instant::now();
        assert_eq!(cache.get(&key, start), None);
        cache.put(key.clone(), "t1".to_string(), start);
        assert_eq!(
            cache.get(&key, start + TOKEN_TTL / 2).as_deref(),
            Some("t1")
        );
        assert_eq!(cache.get(&key, start + TOKEN_TTL), None);
        let other_uid = ("ns".to_string(), "c".to_string(), "uid-2".to_string());
        assert_eq!(cache.get(&other_uid, start), None);
        // Expired entries are dropped when another is stored.
        cache.put(other_uid.clone(), "t2".to_string(), start + TOKEN_TTL * 2);
        assert_eq!(cache.0.len(), 1);
    }

    fn cluster(auth: serde_json::Value) -> RayCluster {
        serde_json::from_value(json!({
            "apiVersion": "ray.io/v1", "kind": "RayCluster",
            "metadata": {"name": "secure", "namespace": "team-a", "uid": "u-1"},
            "spec": {
                "rayVersion": "2.55.0",
                "authOptions": auth,
                "headGroupSpec": {"template": {"spec": {"containers": [
                    {"name": "ray-head", "image": "rayproject/ray:2.55.0"}
                ]}}},
            },
        }))
        .unwrap_or_else(|e| panic!("a RayCluster: {e}"))
    }

    fn names(env: &[EnvVar]) -> Vec<&str> {
        env.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn token_mode_reads_the_token_from_the_clusters_secret() {
        let secure = cluster(json!({"mode": "token"}));
        assert_eq!(secret_name(&secure).as_deref(), Some("secure"));
        let env = env(&secure);
        assert_eq!(names(&env), ["RAY_AUTH_MODE", "RAY_AUTH_TOKEN"]);
        let from = env[1]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .map(|s| (s.name.as_str(), s.key.as_str()));
        assert_eq!(from, Some(("secure", "auth_token")));

        let secret = generated_secret(&secure).unwrap_or_else(|| panic!("a Secret"));
        assert_eq!(secret.name_any(), "secure");
        assert_eq!(secret.labels()[RAY_CLUSTER], "secure");
        assert_eq!(secret.owner_references()[0].name, "secure");
        let token = &secret.string_data.unwrap_or_default()[TOKEN_KEY];
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token)
            .unwrap_or_default();
        assert_eq!(raw.len(), 32);
        let again = generated_secret(&secure)
            .and_then(|s| s.string_data)
            .unwrap_or_default();
        assert_ne!(&again[TOKEN_KEY], token, "every cluster gets its own token");
    }

    #[test]
    fn a_named_secret_is_used_and_never_created() {
        let secure = cluster(json!({"mode": "token", "secretName": "mine"}));
        assert_eq!(secret_name(&secure).as_deref(), Some("mine"));
        assert!(generated_secret(&secure).is_none());
    }

    #[test]
    fn kubernetes_token_auth_and_disabled_need_no_secret() {
        let k8s = cluster(json!({"mode": "token", "enableK8sTokenAuth": true}));
        assert_eq!(
            names(&env(&k8s)),
            ["RAY_AUTH_MODE", "RAY_ENABLE_K8S_TOKEN_AUTH"]
        );
        assert!(secret_name(&k8s).is_none() && generated_secret(&k8s).is_none());
        let off = cluster(json!({"mode": "disabled"}));
        assert!(env(&off).is_empty() && generated_secret(&off).is_none());
    }
}
