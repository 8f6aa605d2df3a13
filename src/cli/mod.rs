//! The `raygate` command line: one module per subcommand.

mod audit;
mod cert_mode;
mod certs;
mod check;
mod controller;
mod crd;
mod default;
mod kube_client;
mod logging;
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
    /// Print the CustomResourceDefinitions for RayCluster, RayJob, RayService and RayPolicy.
    Crd(crd::CrdArgs),
    /// Serving certificates for the webhook.
    Certs(certs::CertsArgs),
    /// Run the admission pipeline offline on manifest files (exit 1 when anything is denied).
    Check(check::CheckArgs),
    /// List the Ray objects in a cluster that break the RayPolicies in force.
    Audit(audit::AuditArgs),
    /// Print Ray objects with every default filled in, as the cluster stores them.
    Default(default::DefaultArgs),
    /// Run the controller: materialize RayClusters into Pods and Services, write status.
    Controller(controller::ControllerArgs),
    /// Serve the admission webhook (mutate and validate Ray objects over TLS).
    // Boxed: its flags make it far larger than the other variants.
    Webhook(Box<webhook::WebhookArgs>),
    /// Print the Mutating/ValidatingWebhookConfiguration that registers the webhook.
    WebhookConfig(webhook_config::WebhookConfigArgs),
}

impl Cli {
    pub fn run(self) -> ExitCode {
        let result = match self.command {
            Command::Crd(args) => args.run(),
            Command::Certs(args) => args.run(),
            Command::Check(args) => args.run(),
            Command::Audit(args) => args.run(),
            Command::Default(args) => args.run(),
            Command::Controller(args) => args.run(),
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
