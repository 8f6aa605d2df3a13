//! `raygate certs self-signed`: a CA and a serving certificate for local runs and tests.
//! `raygate certs status`: whether the cluster's webhooks trust the certificate raygate serves.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use raygate_certs::WebhookConfigNames;
use raygate_webhook::webhook_config::CONFIGURATION_NAME;

#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Write ca.crt, tls.crt and tls.key for a new self-signed CA and serving certificate.
    SelfSigned(SelfSignedArgs),
    /// Print the certificate mode, expiry dates, and whether each webhook's caBundle trusts
    /// the served certificate (exit 1 when any does not, or anything expired).
    Status(StatusArgs),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Kubeconfig to use. Default: in-cluster, $KUBECONFIG, or ~/.kube/config.
    #[arg(long, env = "RAYGATE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// raygate's namespace (holds the certificate Secret).
    #[arg(long, env = "RAYGATE_NAMESPACE", default_value = "raygate-system")]
    namespace: String,
    /// The certificate Secret.
    #[arg(
        long,
        env = "RAYGATE_SECRET_NAME",
        default_value = "raygate-webhook-tls"
    )]
    secret_name: String,
    /// MutatingWebhookConfiguration to check ("" for none).
    #[arg(long, env = "RAYGATE_MUTATING_WEBHOOK_CONFIG", default_value = CONFIGURATION_NAME)]
    mutating_webhook_config: String,
    /// ValidatingWebhookConfiguration to check ("" for none).
    #[arg(long, env = "RAYGATE_VALIDATING_WEBHOOK_CONFIG", default_value = CONFIGURATION_NAME)]
    validating_webhook_config: String,
}

impl StatusArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        raygate_webhook::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let non_empty = |name: String| (!name.is_empty()).then_some(name);
        let configs = WebhookConfigNames {
            mutating: non_empty(self.mutating_webhook_config),
            validating: non_empty(self.validating_webhook_config),
        };
        let report = runtime.block_on(async {
            let client = super::kube_client::kube_client(self.kubeconfig.as_deref()).await?;
            raygate_certs::manager::read_status(
                &client,
                &self.namespace,
                &self.secret_name,
                &configs,
            )
            .await
            .map_err(anyhow::Error::from)
        });
        let report = report.context("reading certificates from the cluster")?;
        print!("{}", report.render());
        Ok(if report.problems().is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

#[derive(Debug, Args)]
struct SelfSignedArgs {
    /// Directory to write the files into (created if missing).
    #[arg(long, env = "RAYGATE_CERTS_DIR")]
    dir: PathBuf,
    /// DNS names of the webhook (e.g. raygate.raygate-system.svc).
    #[arg(long = "dns")]
    dns_names: Vec<String>,
    /// IP addresses of the webhook (e.g. 127.0.0.1 for a local API server).
    #[arg(long = "ip")]
    ips: Vec<IpAddr>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

impl CertsArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            CertsCommand::SelfSigned(args) => {
                std::fs::create_dir_all(&args.dir)
                    .with_context(|| format!("creating {}", args.dir.display()))?;
                let certificate = raygate_certs::self_signed(&args.dns_names, &args.ips, args.days)
                    .context("issuing the certificates")?;
                certificate.write_to(&args.dir)?;
                println!("wrote ca.crt, tls.crt, tls.key to {}", args.dir.display());
                Ok(ExitCode::SUCCESS)
            }
            CertsCommand::Status(args) => args.run(),
        }
    }
}
