//! `helm`, built from its Go module by `tests/tools/build-helm.sh`, run on raygate's chart.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::control_plane::workspace_root;

/// The Kubernetes version the chart is rendered for: the API server the tests run.
pub const KUBE_VERSION: &str = "1.37.2";
/// The namespace the chart is installed into in these tests.
pub const RELEASE_NAMESPACE: &str = "raygate-system";

/// `RAYGATE_HELM_BIN`, else `target/tools/bin/helm`.
pub fn helm_binary() -> Result<PathBuf> {
    let path = std::env::var_os("RAYGATE_HELM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/tools/bin/helm"));
    if !path.is_file() {
        bail!(
            "helm is missing at {} (run tests/tools/build-helm.sh or set RAYGATE_HELM_BIN)",
            path.display()
        );
    }
    Ok(path)
}

pub fn chart_dir() -> PathBuf {
    workspace_root().join("deploy/helm/raygate")
}

/// What one `helm` run printed.
#[derive(Debug)]
pub struct HelmOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `helm` with these arguments.
pub fn helm(args: &[&str]) -> Result<HelmOutput> {
    let output = Command::new(helm_binary()?)
        .args(args)
        // Keep helm's caches and config out of the user's home.
        .env(
            "HELM_CACHE_HOME",
            workspace_root().join("target/tools/helm-home/cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            workspace_root().join("target/tools/helm-home/config"),
        )
        .env(
            "HELM_DATA_HOME",
            workspace_root().join("target/tools/helm-home/data"),
        )
        .output()
        .context("running helm")?;
    Ok(HelmOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// `helm template raygate <chart> --namespace raygate-system` with extra arguments
/// (`--set ...`); an error carries helm's message.
pub fn render(extra: &[&str]) -> Result<String> {
    let chart = chart_dir();
    let chart = chart.to_str().context("chart path is UTF-8")?;
    let mut args = vec![
        "template",
        "raygate",
        chart,
        "--namespace",
        RELEASE_NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ];
    args.extend_from_slice(extra);
    let out = helm(&args)?;
    if !out.success {
        bail!("helm template failed: {}", out.stderr);
    }
    Ok(out.stdout)
}
