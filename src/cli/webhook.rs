//! `raygate webhook`: the admission webhook server (TLS on `--listen`, health and metrics on
//! `--admin-listen`), until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use raygate_api::policy::PolicySet;
use raygate_webhook::policy_status_writer::{self, StatusWriter};
use raygate_webhook::{
    CertificatePaths, PolicyState, Server, ServerConfig, policy_files, policy_watch,
    shutdown_signal,
};

use raygate_certs::manager::CertEvent;

use super::cert_mode::{CertMode, CertModeArgs};
use super::logging::{LogFormat, init_tracing};

#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Address of the admission server (HTTPS only: POST /mutate, POST /validate).
    #[arg(long, env = "RAYGATE_LISTEN", default_value = "0.0.0.0:9443")]
    listen: SocketAddr,
    /// Address of the admin server (plain HTTP: /healthz, /readyz, /metrics).
    #[arg(long, env = "RAYGATE_ADMIN_LISTEN", default_value = "0.0.0.0:8081")]
    admin_listen: SocketAddr,
    /// PEM file with the serving certificate (and its chain). Re-read when it changes.
    /// Implies --cert-mode file.
    #[arg(long, env = "RAYGATE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM file with the serving certificate's private key. Re-read when it changes.
    #[arg(long, env = "RAYGATE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    certs: CertModeArgs,
    /// Largest AdmissionReview body accepted, in bytes (the API server's own limit is 3 MiB).
    #[arg(long, env = "RAYGATE_BODY_LIMIT_BYTES", default_value_t = raygate_webhook::routes::DEFAULT_BODY_LIMIT)]
    body_limit_bytes: usize,
    /// Seconds a client gets for the TLS handshake, each request's headers, and its body.
    #[arg(
        long,
        env = "RAYGATE_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    header_read_timeout_seconds: u64,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "RAYGATE_SHUTDOWN_GRACE_SECONDS", default_value_t = 25)]
    shutdown_grace_seconds: u64,
    /// The cluster's DNS domain (for Service names in generated certificates).
    #[arg(long, env = "RAYGATE_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Directory (or file) of RayPolicy YAML, enforced with the cluster's RayPolicies. Read at
    /// start; one invalid policy stops the webhook.
    #[arg(long, env = "RAYGATE_POLICY_DIR")]
    policy_dir: Option<PathBuf>,
    /// Kubeconfig for watching RayPolicies and Namespaces and writing the RayPolicies'
    /// status. Default: the in-cluster service account when running in a pod, else
    /// $KUBECONFIG when set, else no watches (file policies only).
    #[arg(long, env = "RAYGATE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Seconds between RayPolicy status writes: admission counts are added in batches, and a
    /// policy's status is written only when there is something to add or report.
    #[arg(
        long,
        env = "RAYGATE_POLICY_STATUS_INTERVAL_SECONDS",
        default_value_t = policy_status_writer::DEFAULT_INTERVAL.as_secs()
    )]
    policy_status_interval_seconds: u64,
    /// This replica's name in RayPolicy status messages. The chart passes the pod's name;
    /// default: the host name.
    #[arg(long, env = "RAYGATE_POD_NAME")]
    replica_name: Option<String>,
    /// Log output: human-readable text or one JSON object per line. Filter with RUST_LOG.
    #[arg(long, value_enum, env = "RAYGATE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

impl WebhookArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        init_tracing(self.log_format)?;
        if !cfg!(tokio_unstable) {
            tracing::warn!(
                "built without --cfg tokio_unstable (a RUSTFLAGS variable replaces \
                 .cargo/config.toml's): the runtime keeps tokio's LIFO slot and spends more CPU \
                 per review under load"
            );
        }
        raygate_webhook::install_crypto_provider();
        let files = match &self.policy_dir {
            Some(dir) => policy_files::load(std::slice::from_ref(dir))
                .with_context(|| format!("loading policies from {}", dir.display()))?,
            None => PolicySet::default(),
        };
        tracing::info!(policies = files.len(), "file policies loaded");
        let policies = Arc::new(PolicyState::from_files(files));
        tracing::debug!(cluster_domain = %self.cluster_domain, "configuration");
        let cert_mode = self.certs.mode(self.tls_cert.is_some());
        if cert_mode == CertMode::File && self.tls_cert.is_none() {
            anyhow::bail!("--cert-mode file needs --tls-cert and --tls-key");
        }
        let mut config = ServerConfig {
            listen: self.listen,
            admin_listen: self.admin_listen,
            certificate: CertificatePaths {
                cert: self.tls_cert.clone().unwrap_or_default(),
                key: self.tls_key.clone().unwrap_or_default(),
            },
            body_limit: self.body_limit_bytes,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds.max(1)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            policies: policies.clone(),
            ..ServerConfig::new(CertificatePaths {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            })
        };
        let runtime = runtime().context("starting the async runtime")?;
        runtime.block_on(async {
            let client = super::kube_client::configured_kube_client(self.kubeconfig.as_deref())
                .await
                .context("connecting to the API server for RayPolicy and Namespace watches")?;
            match &client {
                Some(client) => {
                    // Not ready until the watches have listed: admitting earlier would skip
                    // the cluster's policies.
                    policies.mark_unsynced();
                    tokio::spawn(policy_watch::run(client.clone(), policies.clone()));
                }
                None => tracing::info!(
                    "no cluster access configured: enforcing --policy-dir policies only"
                ),
            }
            // Self-managed and cert-manager: the files must exist before the server loads them.
            let mut from_cert_manager = None;
            let self_managed = match cert_mode {
                CertMode::File => None,
                CertMode::SelfManaged => {
                    let certs = self
                        .certs
                        .start_self_managed(self.kubeconfig.as_deref(), &self.cluster_domain)
                        .await?;
                    config.certificate = certs.paths.clone();
                    Some(certs)
                }
                CertMode::CertManager => {
                    let certs = self
                        .certs
                        .start_cert_manager(self.kubeconfig.as_deref(), &self.cluster_domain)
                        .await?;
                    config.certificate = certs.paths.clone();
                    from_cert_manager = Some(certs);
                    None
                }
            };
            let server = Server::bind(config)
                .await
                .context("starting the admission webhook")?;
            if let Some(certs) = &self_managed {
                let metrics = server.metrics();
                certs.manager.set_observer(move |event| match event {
                    CertEvent::Rotated(step) => metrics.observe_certificate_rotation(step.as_str()),
                    CertEvent::SyncFailed(reason) => metrics.observe_certificate_sync_error(reason),
                });
                tokio::spawn(certs.manager.clone().run());
            }
            if let Some(certs) = &from_cert_manager {
                let (reloads, errors) = (server.metrics(), server.metrics());
                tokio::spawn(certs.source.clone().run(
                    move || reloads.observe_certificate_rotation("cert_manager_renewal"),
                    move |reason| errors.observe_certificate_sync_error(reason),
                ));
            }
            // RayPolicy status: what this replica loaded and counted.
            let status_writer = client.map(|client| {
                let writer = StatusWriter::new(
                    client,
                    policies.clone(),
                    server.metrics(),
                    policy_status_writer::replica_name(self.replica_name.as_deref()),
                );
                let interval = Duration::from_secs(self.policy_status_interval_seconds.max(1));
                tokio::spawn(writer.clone().run(interval));
                writer
            });
            server
                .run(shutdown_signal())
                .await
                .context("serving the admission webhook")?;
            if let Some(writer) = &status_writer {
                // The counts of the last seconds; the pod's grace period leaves time for it.
                let _ = tokio::time::timeout(Duration::from_secs(3), writer.flush()).await;
            }
            tracing::info!("stopped");
            drop(self_managed);
            drop(from_cert_manager);
            Ok(ExitCode::SUCCESS)
        })
    }
}

/// The webhook's runtime: one worker per core, without tokio's LIFO slot. With the slot, a
/// finished review wakes its connection task ahead of the reviews already waiting, and under
/// load the webhook spent 5-11 % more CPU per review (BENCHMARKS.md, `load`).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `.cargo/config.toml` sets the cfg; a build without it keeps tokio's default.
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder.enable_all().build()
}

#[cfg(test)]
mod tests {
    /// A RUSTFLAGS variable silently replaces `.cargo/config.toml`'s flags; this catches a
    /// build (CI's included) that lost the webhook's scheduling setting that way.
    #[test]
    fn the_build_has_tokio_unstable() {
        let built_with_it = cfg!(tokio_unstable);
        assert!(
            built_with_it,
            "built without --cfg tokio_unstable: is RUSTFLAGS overriding .cargo/config.toml?"
        );
    }
}
