//! How `raygate webhook` gets its serving certificate: from files it is given, or
//! self-managed (a CA and serving certificate in a Secret, rotated, with the `caBundle` of
//! raygate's webhook configurations kept in step).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use raygate_certs::manager::{CertManager, ManagerConfig, WebhookConfigNames};
use raygate_certs::{Lifetimes, ServingNames};
use raygate_webhook::CertificatePaths;
use raygate_webhook::webhook_config::CONFIGURATION_NAME;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CertMode {
    /// Serve --tls-cert/--tls-key (reloaded when they change), e.g. a mounted Secret.
    File,
    /// Issue and rotate a CA and serving certificate in a Secret; patch the webhooks' caBundle.
    SelfManaged,
}

/// Self-managed certificates. Replicas sharing --namespace and --secret-name share one CA.
#[derive(Debug, Args)]
pub struct CertModeArgs {
    /// Where the serving certificate comes from. Default: `file` when --tls-cert is given,
    /// else `self-managed`.
    #[arg(long, value_enum, env = "RAYGATE_CERT_MODE")]
    pub cert_mode: Option<CertMode>,
    /// raygate's namespace: holds the certificate Secret.
    #[arg(long, env = "RAYGATE_NAMESPACE", default_value = "raygate-system")]
    namespace: String,
    /// The webhook's Service; the certificate names <service>.<namespace>.svc[.<domain>].
    #[arg(long, env = "RAYGATE_SERVICE", default_value = "raygate")]
    service: String,
    /// The Secret (type kubernetes.io/tls) holding the CA and serving certificate.
    #[arg(
        long,
        env = "RAYGATE_SECRET_NAME",
        default_value = "raygate-webhook-tls"
    )]
    secret_name: String,
    /// MutatingWebhookConfiguration whose caBundle to keep current ("" for none).
    #[arg(long, env = "RAYGATE_MUTATING_WEBHOOK_CONFIG", default_value = CONFIGURATION_NAME)]
    mutating_webhook_config: String,
    /// ValidatingWebhookConfiguration whose caBundle to keep current ("" for none).
    #[arg(long, env = "RAYGATE_VALIDATING_WEBHOOK_CONFIG", default_value = CONFIGURATION_NAME)]
    validating_webhook_config: String,
    /// Lifetime of serving certificates (renewed at 2/3 of it), e.g. 90d, 2m.
    #[arg(long, env = "RAYGATE_SERVING_CERT_LIFETIME", value_parser = humantime::parse_duration, default_value = "90d")]
    serving_cert_lifetime: Duration,
    /// Lifetime of the CA (rotated from 2/3 of it, with an overlap of 1/6 in which old and
    /// new CA are both trusted); at least twice the serving lifetime.
    #[arg(long, env = "RAYGATE_CA_LIFETIME", value_parser = humantime::parse_duration, default_value = "3650d")]
    ca_lifetime: Duration,
    /// More DNS names for the serving certificate (comma-separated or repeated).
    #[arg(long = "dns", env = "RAYGATE_CERT_DNS", value_delimiter = ',')]
    dns: Vec<String>,
    /// IP addresses for the serving certificate, e.g. 127.0.0.1 for an API server that calls
    /// the webhook by URL on loopback.
    #[arg(long = "ip", env = "RAYGATE_CERT_IP", value_delimiter = ',')]
    ips: Vec<IpAddr>,
    /// Directory for the served tls.crt/tls.key. Default: a private temporary directory.
    #[arg(long, env = "RAYGATE_CERT_DIR")]
    cert_dir: Option<PathBuf>,
}

/// Self-managed certificates, ready to serve: the files exist and the Secret is current.
pub struct SelfManaged {
    pub manager: Arc<CertManager>,
    pub paths: CertificatePaths,
    /// Removed when the webhook exits.
    _dir: Option<tempfile::TempDir>,
}

impl CertModeArgs {
    /// The mode in force, given whether --tls-cert was passed.
    pub fn mode(&self, has_cert_files: bool) -> CertMode {
        self.cert_mode.unwrap_or(if has_cert_files {
            CertMode::File
        } else {
            CertMode::SelfManaged
        })
    }

    /// Ensures the Secret, the files and the caBundles. Run [`CertManager::run`] afterwards
    /// to follow rotations.
    pub async fn start_self_managed(
        &self,
        kubeconfig: Option<&Path>,
        cluster_domain: &str,
    ) -> anyhow::Result<SelfManaged> {
        let lifetimes = Lifetimes::new(self.serving_cert_lifetime, self.ca_lifetime)
            .context("--serving-cert-lifetime and --ca-lifetime")?;
        let (dir, temp) = match &self.cert_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("raygate-serving-cert-")
                    .tempdir()
                    .context("creating a directory for the serving certificate")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let non_empty = |name: &str| (!name.is_empty()).then(|| name.to_owned());
        let config = ManagerConfig {
            namespace: self.namespace.clone(),
            secret_name: self.secret_name.clone(),
            webhook_configs: WebhookConfigNames {
                mutating: non_empty(&self.mutating_webhook_config),
                validating: non_empty(&self.validating_webhook_config),
            },
            names: ServingNames::for_service(
                &self.service,
                &self.namespace,
                cluster_domain,
                &self.dns,
                &self.ips,
            ),
            lifetimes,
            dir,
        };
        let client = super::kube_client::kube_client(kubeconfig)
            .await
            .context("connecting to the API server for self-managed certificates")?;
        let manager = Arc::new(CertManager::new(client, config));
        manager.reconcile().await.with_context(|| {
            format!(
                "ensuring the certificate Secret {}/{}",
                self.namespace, self.secret_name
            )
        })?;
        Ok(SelfManaged {
            paths: CertificatePaths {
                cert: manager.cert_path(),
                key: manager.key_path(),
            },
            manager,
            _dir: temp,
        })
    }
}
