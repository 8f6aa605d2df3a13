//! `raygate certs self-signed`: a CA and a serving certificate for local runs and tests.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Write ca.crt, tls.crt and tls.key for a new self-signed CA and serving certificate.
    SelfSigned(SelfSignedArgs),
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
        }
    }
}
