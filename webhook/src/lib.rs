//! raygate's admission webhook: decodes AdmissionReviews, decides them with the pure core in
//! `raygate-api` (mutate → JSON patch, validate → `422 Invalid` with one cause per field), and
//! serves them over TLS with reloadable certificates, plus health and metrics on an admin port.
//!
//! - [`review`]: the AdmissionReview wire format.
//! - [`verdict`]: the deciding function; no HTTP.
//! - [`routes`]: the axum routers and the request extractor.
//! - [`server`]: listeners, TLS, graceful shutdown.
//! - [`certificate`]: the reloading certificate resolver.
//! - [`policy_watch`], [`policy_state`]: the RayPolicies in force; [`policy_status`] and
//!   [`policy_status_writer`]: what each reports in its `status`.
//! - [`webhook_config`]: the webhook configurations that register raygate with the API server.

pub mod certificate;
pub mod metrics;
pub mod policy_files;
pub mod policy_state;
pub mod policy_status;
pub mod policy_status_writer;
pub mod policy_watch;
pub mod review;
pub mod routes;
pub mod server;
pub mod verdict;
pub mod webhook_config;

use std::net::SocketAddr;

pub use certificate::{CertificateError, CertificatePaths, CertificateResolver};
pub use metrics::Metrics;
pub use policy_state::PolicyState;
pub use routes::{AdmissionState, admission_router};
pub use server::{Server, ServerConfig, shutdown_signal};
pub use verdict::{Endpoint, Outcome, Verdict, decide};

/// What can stop the webhook server. Causes are chained as `source`s (print with `{:#}`
/// through anyhow, or walk `source()`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("loading the serving certificate")]
    Certificate(#[from] CertificateError),
    #[error("configuring TLS")]
    Tls(#[from] rustls::Error),
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reading a listener's address")]
    LocalAddr(#[source] std::io::Error),
    #[error("the admin server failed")]
    AdminServer(#[source] std::io::Error),
}

/// Makes ring the process-wide rustls provider, for clients (kube) that build their TLS
/// configuration from the default. The webhook's own server names its provider explicitly.
/// Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
