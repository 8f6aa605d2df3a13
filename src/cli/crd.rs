//! `raygate crd`: the CRDs as multi-document YAML (or JSON), ready for `kubectl apply -f -`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Output format: multi-document YAML, or a JSON `List`.
    #[arg(
        long,
        short,
        value_enum,
        default_value = "yaml",
        env = "RAYGATE_CRD_OUTPUT"
    )]
    output: Format,
}

impl CrdArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let crds = raygate_api::crd::all_crds();
        let text = match self.output {
            Format::Yaml => raygate_api::crd::to_yaml(&crds).context("serializing CRDs as YAML")?,
            Format::Json => {
                let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": crds});
                serde_json::to_string_pretty(&list).context("serializing CRDs as JSON")? + "\n"
            }
        };
        match std::io::stdout().lock().write_all(text.as_bytes()) {
            // `raygate crd | head` closing the pipe early is not an error worth reporting.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
            other => other
                .context("writing CRDs to stdout")
                .map(|()| ExitCode::SUCCESS),
        }
    }
}
