//! Validation of RayCluster, RayJob and RayService: every rule KubeRay applies (in its CRD,
//! webhook or controllers), checked at admission, plus raygate's own topology rules.
//!
//! Pure functions over typed objects; they run on the *normalized* object (after defaults).

use crate::field_error::Validation;
use crate::{RayCluster, RayJob, RayService};

/// Problems with a RayCluster; `old` is the stored object on UPDATE.
pub fn validate_raycluster(cluster: &RayCluster, old: Option<&RayCluster>) -> Validation {
    let _ = (cluster, old);
    Validation::default()
}

/// Problems with a RayJob; `old` is the stored object on UPDATE.
pub fn validate_rayjob(job: &RayJob, old: Option<&RayJob>) -> Validation {
    let _ = (job, old);
    Validation::default()
}

/// Problems with a RayService; `old` is the stored object on UPDATE.
pub fn validate_rayservice(service: &RayService, old: Option<&RayService>) -> Validation {
    let _ = (service, old);
    Validation::default()
}
