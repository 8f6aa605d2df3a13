//! Test support: the local control plane (etcd + kube-apiserver) and helpers named for what a user sees.

pub mod cert_manager;
pub mod control_plane;
pub mod controller;
pub mod crd_dir;
pub mod gateway_api;
pub mod hello_serve;
pub mod helm;
pub mod job_controller;
pub mod kubelet;
pub mod kuberay_samples;
pub mod listeners;
pub mod ray_crds;
pub mod ray_env;
pub mod ray_head;
pub mod rayservice_status;
pub mod self_managed;
pub mod service_account;
pub mod stall_proxy;
pub mod wait;
pub mod webhook;

pub use control_plane::{Binaries, ControlPlane, KubectlOutput};
pub use controller::Controller;
pub use ray_crds::{install_policy_crd, install_ray_crds};
pub use ray_head::RayHead;
pub use webhook::{Webhook, WebhookOptions};
