//! `raygate webhook`: the admission webhook server (TLS on `--listen`, health and metrics on
//! `--admin-listen`), until SIGTERM or SIGINT.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use raygate_webhook::{CertificatePaths, Server, ServerConfig, shutdown_signal};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Address of the admission server (HTTPS only: POST /mutate, POST /validate).
    #[arg(long, env = "RAYGATE_LISTEN", default_value = "0.0.0.0:9443")]
    listen: SocketAddr,
    /// Address of the admin server (plain HTTP: /healthz, /readyz, /metrics).
    #[arg(long, env = "RAYGATE_ADMIN_LISTEN", default_value = "0.0.0.0:8081")]
    admin_listen: SocketAddr,
    /// PEM file with the serving certificate (and its chain). Re-read when it changes.
    #[arg(long, env = "RAYGATE_TLS_CERT")]
    tls_cert: PathBuf,
    /// PEM file with the serving certificate's private key. Re-read when it changes.
    #[arg(long, env = "RAYGATE_TLS_KEY")]
    tls_key: PathBuf,
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
    /// Directory of RayPolicy YAML files (accepted; policies are not enforced yet).
    #[arg(long, env = "RAYGATE_POLICY_DIR")]
    policy_dir: Option<PathBuf>,
    /// Log output: human-readable text or one JSON object per line. Filter with RUST_LOG.
    #[arg(long, value_enum, env = "RAYGATE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

impl WebhookArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        init_tracing(self.log_format)?;
        raygate_webhook::install_crypto_provider();
        if let Some(dir) = &self.policy_dir {
            tracing::warn!(policy_dir = %dir.display(), "--policy-dir is accepted but policies are not enforced yet");
        }
        tracing::debug!(cluster_domain = %self.cluster_domain, "configuration");
        let config = ServerConfig {
            listen: self.listen,
            admin_listen: self.admin_listen,
            certificate: CertificatePaths {
                cert: self.tls_cert,
                key: self.tls_key,
            },
            body_limit: self.body_limit_bytes,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds.max(1)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            ..ServerConfig::new(CertificatePaths {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            })
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async {
            let server = Server::bind(config)
                .await
                .context("starting the admission webhook")?;
            server
                .run(shutdown_signal())
                .await
                .context("serving the admission webhook")?;
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        })
    }
}

/// hyper, h2 and rustls log every connection at debug; keep them to warnings unless RUST_LOG
/// says otherwise.
const DEFAULT_LOG_FILTER: &str =
    "info,hyper=warn,hyper_util=warn,h2=warn,rustls=warn,tokio_rustls=warn,tower=warn";

fn init_tracing(format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(&directives).with_context(|| format!("RUST_LOG={directives:?}"))?
        }
        _ => EnvFilter::new(DEFAULT_LOG_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("setting up logging: {error}"))
}
