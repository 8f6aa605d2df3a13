//! The `raygate` command line: one module per subcommand.

mod certs;
mod check;
mod crd;
mod default;
mod manifests;
mod webhook;
mod webhook_config;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Admission-first Ray on Kubernetes, serving KubeRay's ray.io/v1 API.
#[derive(Debug, Parser)]
#[command(name = "raygate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions for RayCluster, RayJob and RayService.
    Crd(crd::CrdArgs),
    /// Serving certificates for the webhook.
    Certs(certs::CertsArgs),
    /// Run the admission pipeline offline on manifest files (exit 1 when anything is denied).
    Check(check::CheckArgs),
    /// Print Ray objects with every default filled in, as the cluster stores them.
    Default(default::DefaultArgs),
    /// Serve the admission webhook (mutate and validate Ray objects over TLS).
    Webhook(webhook::WebhookArgs),
    /// Print the Mutating/ValidatingWebhookConfiguration that registers the webhook.
    WebhookConfig(webhook_config::WebhookConfigArgs),
}

impl Cli {
    pub fn run(self) -> ExitCode {
        let result = match self.command {
            Command::Crd(args) => args.run(),
            Command::Certs(args) => args.run(),
            Command::Check(args) => args.run(),
            Command::Default(args) => args.run(),
            Command::Webhook(args) => args.run(),
            Command::WebhookConfig(args) => args.run(),
        };
        match result {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(2)
            }
        }
    }
}
