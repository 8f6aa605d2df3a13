//! `raygate webhook-config`: the MutatingWebhookConfiguration and ValidatingWebhookConfiguration
//! that point the API server at `raygate webhook`, ready for `kubectl apply -f -`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, ValueEnum};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, DeleteParams};
use raygate_webhook::webhook_config::{
    CONFIGURATION_NAME, WebhookConfigOptions, WebhookTarget, webhook_configurations,
};

use super::kube_client::kube_client;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").args(["url", "service"])))]
pub struct WebhookConfigArgs {
    /// Delete the configurations named --name from the cluster instead of printing them (the
    /// Helm chart's pre-delete hook runs this, so uninstalling never leaves a webhook that
    /// blocks Ray objects).
    #[arg(long, conflicts_with = "target")]
    delete: bool,
    /// Name of both configuration objects, for --delete.
    #[arg(long, default_value = CONFIGURATION_NAME, requires = "delete")]
    name: String,
    /// Kubeconfig for --delete (default: in-cluster service account, then $KUBECONFIG).
    #[arg(long, env = "RAYGATE_KUBECONFIG", requires = "delete")]
    kubeconfig: Option<PathBuf>,
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
        if self.delete {
            return delete(&self.name, self.kubeconfig.as_deref());
        }
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

/// Deletes both configurations; one that is already gone is not an error (a retried hook).
fn delete(name: &str, kubeconfig: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let client = kube_client(kubeconfig).await?;
        delete_one(
            Api::<MutatingWebhookConfiguration>::all(client.clone()),
            name,
        )
        .await?;
        delete_one(Api::<ValidatingWebhookConfiguration>::all(client), name).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn delete_one<K>(api: Api<K>, name: &str) -> anyhow::Result<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => println!("{kind}/{name} deleted"),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            println!("{kind}/{name} not found (already deleted)")
        }
        Err(error) => return Err(error).with_context(|| format!("deleting {kind}/{name}")),
    }
    Ok(())
}
