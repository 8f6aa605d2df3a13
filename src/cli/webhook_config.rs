//! `raygate webhook-config`: the MutatingWebhookConfiguration and ValidatingWebhookConfiguration
//! that point the API server at `raygate webhook`, ready for `kubectl apply -f -`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, ValueEnum};
use raygate_webhook::webhook_config::{
    WebhookConfigOptions, WebhookTarget, webhook_configurations,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["url", "service"])))]
pub struct WebhookConfigArgs {
    /// Reach the webhook at this base URL (https://HOST:PORT); /mutate and /validate are appended.
    #[arg(long, env = "RAYGATE_WEBHOOK_URL")]
    url: Option<String>,
    /// Reach the webhook through this Service (needs --namespace).
    #[arg(long, env = "RAYGATE_WEBHOOK_SERVICE", requires = "namespace")]
    service: Option<String>,
    /// The webhook's namespace: the Service's, and excluded from admission so a broken webhook
    /// can't block repairing itself.
    #[arg(long, env = "RAYGATE_NAMESPACE")]
    namespace: Option<String>,
    /// The Service port (the API server's default is 443).
    #[arg(long, env = "RAYGATE_WEBHOOK_PORT", requires = "service")]
    port: Option<u16>,
    /// PEM file of the CA that signed the serving certificate; becomes caBundle.
    #[arg(long, env = "RAYGATE_CA_BUNDLE_FILE")]
    ca_bundle_file: Option<PathBuf>,
    /// Output format: two YAML documents, or a JSON `List`.
    #[arg(
        long,
        short,
        value_enum,
        default_value = "yaml",
        env = "RAYGATE_WEBHOOK_CONFIG_OUTPUT"
    )]
    output: Format,
}

impl WebhookConfigArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let target = match (self.url, self.service) {
            (Some(url), _) => {
                if !url.starts_with("https://") {
                    bail!(
                        "--url must be https:// (the API server calls webhooks over TLS only), got {url:?}"
                    );
                }
                WebhookTarget::Url(url)
            }
            (None, Some(name)) => WebhookTarget::Service {
                name,
                namespace: self
                    .namespace
                    .clone()
                    .context("--service needs --namespace")?,
                port: self.port.map(i32::from),
            },
            (None, None) => bail!("give --url or --service"),
        };
        let ca_bundle = match &self.ca_bundle_file {
            Some(path) => {
                let pem =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    bail!("{} holds no PEM certificate", path.display());
                }
                Some(pem)
            }
            None => None,
        };
        let (mutating, validating) = webhook_configurations(&WebhookConfigOptions {
            target,
            ca_bundle,
            exclude_namespace: self.namespace,
        });
        let text = match self.output {
            Format::Yaml => {
                let mutating =
                    raygate_api::manifest::to_yaml(&mutating).context("serializing as YAML")?;
                let validating =
                    raygate_api::manifest::to_yaml(&validating).context("serializing as YAML")?;
                format!("{mutating}---\n{validating}")
            }
            Format::Json => {
                let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [mutating, validating]});
                serde_json::to_string_pretty(&list).context("serializing as JSON")? + "\n"
            }
        };
        match std::io::stdout().lock().write_all(text.as_bytes()) {
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
            other => other
                .context("writing to stdout")
                .map(|()| ExitCode::SUCCESS),
        }
    }
}
