//! How `raygate webhook` gets its serving certificate: from files it is given, self-managed
//! (a CA and serving certificate in a Secret, rotated, with the `caBundle` of raygate's webhook
//! configurations kept in step), or from cert-manager (an Issuer and a Certificate raygate
//! declares; cert-manager's cainjector keeps the `caBundle`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use raygate_certs::cert_manager::{CertManagerConfig, CertManagerSource, IssuerRef};
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
    /// Declare a cert-manager Issuer and Certificate, serve the Secret cert-manager writes
    /// (reloaded on renewal), and annotate the webhooks for cert-manager's cainjector.
    CertManager,
}

/// Self-managed and cert-manager certificates. Replicas sharing --namespace and --secret-name
/// share one certificate.
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
    /// cert-manager mode: the Certificate raygate declares (the webhooks' inject-ca-from).
    /// Its Secret is --secret-name, its lifetime --serving-cert-lifetime.
    #[arg(long, env = "RAYGATE_CERTIFICATE_NAME", default_value = "raygate")]
    certificate_name: String,
    /// cert-manager mode: an existing issuer to sign the Certificate. Default: raygate
    /// declares its own CA (a self-signed Issuer, a CA Certificate of --ca-lifetime, a CA
    /// Issuer), so renewals keep the CA the webhooks trust.
    #[arg(long, env = "RAYGATE_ISSUER_NAME")]
    issuer_name: Option<String>,
    /// Kind of --issuer-name: Issuer, ClusterIssuer, or an external issuer's kind.
    #[arg(
        long,
        env = "RAYGATE_ISSUER_KIND",
        default_value = "Issuer",
        requires = "issuer_name"
    )]
    issuer_kind: String,
    /// API group of --issuer-name.
    #[arg(
        long,
        env = "RAYGATE_ISSUER_GROUP",
        default_value = "cert-manager.io",
        requires = "issuer_name"
    )]
    issuer_group: String,
    /// cert-manager mode: how long to wait at start for cert-manager to issue the
    /// certificate before giving up.
    #[arg(long, env = "RAYGATE_CERT_MANAGER_TIMEOUT", value_parser = humantime::parse_duration, default_value = "2m")]
    cert_manager_timeout: Duration,
}

/// cert-manager certificates, ready to serve: the files hold what cert-manager issued.
pub struct FromCertManager {
    pub source: Arc<CertManagerSource>,
    pub paths: CertificatePaths,
    /// Removed when the webhook exits.
    _dir: Option<tempfile::TempDir>,
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
        let (dir, temp) = self.serving_dir()?;
        let config = ManagerConfig {
            namespace: self.namespace.clone(),
            secret_name: self.secret_name.clone(),
            webhook_configs: self.webhook_configs(),
            names: self.names(cluster_domain),
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

impl CertModeArgs {
    fn serving_dir(&self) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
        Ok(match &self.cert_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("raygate-serving-cert-")
                    .tempdir()
                    .context("creating a directory for the serving certificate")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        })
    }

    fn webhook_configs(&self) -> WebhookConfigNames {
        let non_empty = |name: &str| (!name.is_empty()).then(|| name.to_owned());
        WebhookConfigNames {
            mutating: non_empty(&self.mutating_webhook_config),
            validating: non_empty(&self.validating_webhook_config),
        }
    }

    fn names(&self, cluster_domain: &str) -> ServingNames {
        ServingNames::for_service(
            &self.service,
            &self.namespace,
            cluster_domain,
            &self.dns,
            &self.ips,
        )
    }

    /// Declares the Issuer(s) and Certificate, annotates the webhook configurations, and
    /// waits for cert-manager's first certificate. Run [`CertManagerSource::run`] afterwards
    /// to follow renewals.
    pub async fn start_cert_manager(
        &self,
        kubeconfig: Option<&Path>,
        cluster_domain: &str,
    ) -> anyhow::Result<FromCertManager> {
        // cert-manager's own rule: renewBefore (a third of the lifetime here) must leave a
        // certificate valid for a while.
        Lifetimes::new(self.serving_cert_lifetime, self.ca_lifetime)
            .context("--serving-cert-lifetime and --ca-lifetime")?;
        let (dir, temp) = self.serving_dir()?;
        let config = CertManagerConfig {
            namespace: self.namespace.clone(),
            certificate_name: self.certificate_name.clone(),
            secret_name: self.secret_name.clone(),
            issuer: self.issuer_name.as_ref().map(|name| IssuerRef {
                name: name.clone(),
                kind: self.issuer_kind.clone(),
                group: self.issuer_group.clone(),
            }),
            names: self.names(cluster_domain),
            duration: self.serving_cert_lifetime,
            ca_duration: self.ca_lifetime,
            webhook_configs: self.webhook_configs(),
            dir,
        };
        let client = super::kube_client::kube_client(kubeconfig)
            .await
            .context("connecting to the API server for cert-manager certificates")?;
        let source = Arc::new(CertManagerSource::new(client, config));
        source.declare().await.with_context(|| {
            format!(
                "declaring the cert-manager Certificate {}/{}",
                self.namespace, self.certificate_name
            )
        })?;
        source
            .wait_for_secret(self.cert_manager_timeout)
            .await
            .context("waiting for cert-manager to issue the serving certificate")?;
        Ok(FromCertManager {
            paths: CertificatePaths {
                cert: source.cert_path(),
                key: source.key_path(),
            },
            source,
            _dir: temp,
        })
    }
}
