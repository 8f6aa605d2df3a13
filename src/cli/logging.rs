//! Logs of the long-running subcommands (`webhook`, `controller`): text or one JSON object
//! per line on stderr, filtered by RUST_LOG.

use std::io::IsTerminal;

use anyhow::Context;
use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// hyper, h2, rustls and kube's client log every connection or request at debug; keep them to
/// warnings unless RUST_LOG says otherwise.
const DEFAULT_LOG_FILTER: &str = "info,hyper=warn,hyper_util=warn,h2=warn,rustls=warn,\
     tokio_rustls=warn,tower=warn,kube_client=warn";

pub fn init_tracing(format: LogFormat) -> anyhow::Result<()> {
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
