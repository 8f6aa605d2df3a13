//! GCS fault tolerance (C15–C26): the legacy annotation versus `gcsFaultToleranceOptions`,
//! settings KubeRay derives from the options (so the user must not set them by hand), and
//! what each backend (external Redis, embedded RocksDB) accepts. C21 (the RocksDB feature
//! gate) does not apply: raygate always supports RocksDB.

use super::cluster_spec::{ClusterScope, annotation_path};
use crate::field_error::Validation;
use crate::labels::{ANNOTATION_EXTERNAL_STORAGE_NAMESPACE, ANNOTATION_FT_ENABLED};
use crate::raycluster::GcsFaultToleranceBackend;

const RAY_REDIS_ADDRESS: &str = "RAY_REDIS_ADDRESS";
const REDIS_PASSWORD: &str = "REDIS_PASSWORD";
const REDIS_USERNAME: &str = "REDIS_USERNAME";
const RAY_GCS_STORAGE: &str = "RAY_gcs_storage";
const RAY_GCS_STORAGE_PATH: &str = "RAY_gcs_storage_path";
/// The PVC volume KubeRay mounts for the embedded RocksDB store, and where.
const GCS_STORAGE_VOLUME: &str = "gcs-storage";
const GCS_STORAGE_MOUNT_PATH: &str = "/data/gcs";

pub(crate) fn check(v: &mut Validation, scope: &ClusterScope) {
    let options = scope.spec.gcs_fault_tolerance_options.as_ref();
    let annotation = scope.annotation(ANNOTATION_FT_ENABLED).unwrap_or_default();
    let head = scope.head();

    // C15
    if !annotation.is_empty() && options.is_some() {
        v.error(
            annotation_path(ANNOTATION_FT_ENABLED),
            format!(
                "{ANNOTATION_FT_ENABLED} annotation and GcsFaultToleranceOptions are both set. \
                 Please use only GcsFaultToleranceOptions to configure GCS fault tolerance"
            ),
        );
    } else if annotation.eq_ignore_ascii_case("true") {
        v.warn(format!(
            "annotation {ANNOTATION_FT_ENABLED} is deprecated: use {} instead",
            scope.field("gcsFaultToleranceOptions")
        ));
    }

    // C16
    let ft_enabled = annotation.eq_ignore_ascii_case("true") || options.is_some();
    if !ft_enabled && let Some((path, _)) = scope.head_env(RAY_REDIS_ADDRESS) {
        v.error(
            path,
            format!(
                "{RAY_REDIS_ADDRESS} is set which implicitly enables GCS fault tolerance, but \
                 GcsFaultToleranceOptions is not set. Please set GcsFaultToleranceOptions to \
                 enable GCS fault tolerance"
            ),
        );
    }

    if let Some(options) = options {
        // C17
        if head
            .ray_start_param("redis-password")
            .is_some_and(|p| !p.is_empty())
        {
            v.error(
                head.ray_start_param_path("redis-password"),
                "cannot set `redis-password` in rayStartParams when GcsFaultToleranceOptions is \
                 enabled - use GcsFaultToleranceOptions.RedisPassword instead",
            );
        }
        // C18
        if let Some((path, _)) = scope.head_env(REDIS_PASSWORD) {
            v.error(
                path,
                "cannot set `REDIS_PASSWORD` env var in head Pod when GcsFaultToleranceOptions is \
                 enabled - use GcsFaultToleranceOptions.RedisPassword instead",
            );
        }
        // C19
        if let Some((path, _)) = scope.head_env(RAY_REDIS_ADDRESS) {
            v.error(
                path,
                "cannot set `RAY_REDIS_ADDRESS` env var in head Pod when GcsFaultToleranceOptions \
                 is enabled - use GcsFaultToleranceOptions.RedisAddress instead",
            );
        }
        // C20
        if scope
            .annotation(ANNOTATION_EXTERNAL_STORAGE_NAMESPACE)
            .is_some_and(|ns| !ns.is_empty())
        {
            v.error(
                annotation_path(ANNOTATION_EXTERNAL_STORAGE_NAMESPACE),
                "cannot set `ray.io/external-storage-namespace` annotation when \
                 GcsFaultToleranceOptions is enabled - use \
                 GcsFaultToleranceOptions.ExternalStorageNamespace instead",
            );
        }

        let at = |field: &str| scope.field(&format!("gcsFaultToleranceOptions.{field}"));
        match options.backend.unwrap_or(GcsFaultToleranceBackend::Redis) {
            GcsFaultToleranceBackend::Rocksdb => {
                // C22: Redis settings mean nothing to the embedded store.
                let redis_fields = [
                    (
                        "redisAddress",
                        options
                            .redis_address
                            .as_deref()
                            .is_some_and(|a| !a.is_empty()),
                    ),
                    ("redisUsername", options.redis_username.is_some()),
                    ("redisPassword", options.redis_password.is_some()),
                    (
                        "externalStorageNamespace",
                        options
                            .external_storage_namespace
                            .as_deref()
                            .is_some_and(|ns| !ns.is_empty()),
                    ),
                ];
                for (field, set) in redis_fields {
                    if set {
                        v.error(
                            at(field),
                            format!(
                                "cannot set GcsFaultToleranceOptions.{} when backend is 'rocksdb'",
                                upper_first(field)
                            ),
                        );
                    }
                }
                // C23
                if let Some(storage) = &options.storage
                    && storage.claim_name.as_deref().is_some_and(|c| !c.is_empty())
                    && (storage.size.is_some()
                        || storage.storage_class_name.is_some()
                        || storage.access_modes.as_ref().is_some_and(|m| !m.is_empty()))
                {
                    v.error(
                        at("storage.claimName"),
                        "GcsFaultToleranceOptions.Storage.ClaimName is mutually exclusive with \
                         size, storageClassName, and accessModes",
                    );
                }
                check_embedded_storage_is_unmanaged(v, scope);
            }
            GcsFaultToleranceBackend::Redis => {
                // C25
                if options.storage.is_some() {
                    v.error(
                        at("storage"),
                        "cannot set GcsFaultToleranceOptions.Storage when backend is 'redis' - it \
                         only applies to the 'rocksdb' backend",
                    );
                }
            }
        }
    }

    // C26: always — the username only comes from gcsFaultToleranceOptions.
    if head
        .ray_start_param("redis-username")
        .is_some_and(|u| !u.is_empty())
    {
        v.error(
            head.ray_start_param_path("redis-username"),
            "cannot set redis username in rayStartParams or environment variables - use \
             GcsFaultToleranceOptions.RedisUsername instead",
        );
    }
    if let Some((path, _)) = scope.head_env(REDIS_USERNAME) {
        v.error(
            path,
            "cannot set redis username in rayStartParams or environment variables - use \
             GcsFaultToleranceOptions.RedisUsername instead",
        );
    }
}

/// C24: KubeRay sets the RocksDB env vars and mounts the PVC itself.
fn check_embedded_storage_is_unmanaged(v: &mut Validation, scope: &ClusterScope) {
    let head = scope.head();
    for name in [RAY_GCS_STORAGE, RAY_GCS_STORAGE_PATH] {
        if let Some((path, _)) = scope.head_env(name) {
            v.error(
                path,
                format!(
                    "cannot set `{RAY_GCS_STORAGE}` or `{RAY_GCS_STORAGE_PATH}` env var in head Pod \
                     when the embedded GCS FT backend is used - these are managed by KubeRay"
                ),
            );
        }
    }
    if let Some(container) = scope.head_container() {
        for (index, mount) in container.volume_mounts.iter().flatten().enumerate() {
            if mount.mount_path == GCS_STORAGE_MOUNT_PATH || mount.name == GCS_STORAGE_VOLUME {
                v.error(
                    format!("{}.volumeMounts[{index}]", head.container_path(0)),
                    format!(
                        "cannot set a volume mount named \"{GCS_STORAGE_VOLUME}\" or mounted at \
                         {GCS_STORAGE_MOUNT_PATH} in the head container when the embedded GCS FT \
                         backend is used - it is managed by KubeRay"
                    ),
                );
            }
        }
    }
    let volumes = head.template.spec.as_ref().and_then(|s| s.volumes.as_ref());
    for (index, volume) in volumes.into_iter().flatten().enumerate() {
        if volume.name == GCS_STORAGE_VOLUME {
            v.error(
                format!("{}.template.spec.volumes[{index}]", head.path),
                format!(
                    "cannot set a volume named \"{GCS_STORAGE_VOLUME}\" in the head Pod when the \
                     embedded GCS FT backend is used - it is managed by KubeRay"
                ),
            );
        }
    }
}

fn upper_first(field: &str) -> String {
    let mut chars = field.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}
