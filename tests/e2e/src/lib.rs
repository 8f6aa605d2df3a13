//! Test support: the local control plane (etcd + kube-apiserver) and helpers named for what a user sees.

pub mod control_plane;
pub mod kuberay_samples;
pub mod ray_crds;
pub mod webhook;

pub use control_plane::{Binaries, ControlPlane, KubectlOutput};
pub use ray_crds::install_ray_crds;
pub use webhook::Webhook;
