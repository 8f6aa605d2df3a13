//! The `ray.io/v1` API served by raygate: KubeRay's RayCluster, RayJob and RayService types,
//! their CRDs, and (in later modules) defaults and validation as pure functions.
//!
//! This crate does no I/O: the webhook, the controller and `raygate check` all call it.

pub mod accelerators;
pub mod admission;
pub mod crd;
pub mod cron;
pub mod defaults;
pub mod field_error;
pub mod json_diff;
pub mod labels;
pub mod manifest;
pub mod policy;
pub mod quantity;
mod ray_version;
pub mod raycluster;
pub mod raycronjob;
pub mod rayjob;
pub mod rayservice;
mod schema_attrs;
pub mod schema_defaults;
pub mod validation;

pub use field_error::{FieldError, Validation};
pub use raycluster::{RayCluster, RayClusterSpec, RayClusterStatus, WorkerGroupSpec};
pub use raycronjob::{RayCronJob, RayCronJobSpec, RayCronJobStatus};
pub use rayjob::{RayJob, RayJobSpec, RayJobStatus};
pub use rayservice::{RayService, RayServiceSpec, RayServiceStatuses};
