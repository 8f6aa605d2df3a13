//! The one way every subcommand reaches a cluster: `--kubeconfig` when given, else the usual
//! inference (in-cluster service account, then `$KUBECONFIG` / `~/.kube/config`).

use std::path::Path;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("using kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no cluster access: not in a pod, and no kubeconfig (give --kubeconfig)")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// Like [`kube_client`], but only when cluster access is configured (`--kubeconfig`, running in
/// a pod, or `$KUBECONFIG`); `None` otherwise, for components that also work without a cluster.
pub async fn configured_kube_client(
    kubeconfig: Option<&Path>,
) -> anyhow::Result<Option<kube::Client>> {
    let configured = kubeconfig.is_some()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        || std::env::var_os("KUBECONFIG").is_some();
    if !configured {
        return Ok(None);
    }
    kube_client(kubeconfig).await.map(Some)
}
